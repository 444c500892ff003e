"""Notification mails: what they say, that they reach a real SMTP server over plain, STARTTLS and
implicit TLS with a verified certificate and a login, and that an unchanged problem is not
mailed again before `repeat_after`."""

from __future__ import annotations

import socket
import ssl
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from email import message_from_bytes
from email.message import EmailMessage
from email.policy import default as default_policy
from pathlib import Path
from typing import Any

import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, AuthResult, Envelope, LoginPassword, Session
from pydantic import ValidationError

from snsync.config import NotificationsConfig, SmtpConfig
from snsync.errors import NotificationError, SnsyncError
from snsync.notify import (
    CycleFacts,
    FailedObject,
    Notifier,
    Problem,
    failures_problem,
    held_disables_problem,
    quarantine_problem,
    recovery_problem,
)
from snsync.redact import register
from snsync.sandbox.tls import SandboxTls, create_tls

CONFIG = "/etc/snsync/config.yaml"
USER = "snsync-mailer"
PASSWORD = "smtp-Pa55word-for-tests"
register(PASSWORD)


def facts(failures: int = 0, cycle_id: int | None = 42, config_path: str = CONFIG) -> CycleFacts:
    return CycleFacts(
        cycle_id=cycle_id,
        started_at=1714532400.0,  # 2024-05-01 03:00:00 UTC
        duration_s=75.0,
        counts={"Create": {"Success": 10, "Failure": failures}, "Update": {"Success": 3}},
        failures=[
            FailedObject(f"User {i}", f"id-{i:03}", "Conflict", f"user_name 'u{i}' exists")
            for i in range(failures)
        ],
        held_disables=30,
        instance="https://acme.service-now.com",
        config_path=config_path,
    )


# --- composition ------------------------------------------------------------------------------


def test_no_failures_no_problem() -> None:
    assert failures_problem(facts(0)) is None


def test_failures_mail_lists_the_first_ten_and_says_how_many_more() -> None:
    problem = failures_problem(facts(15))
    assert problem is not None
    assert problem.kind == "failures"
    assert problem.subject == "15 objects failed to sync to acme.service-now.com (cycle 42)"
    body = problem.body
    assert "snsync cycle 42 could not sync 15 objects to https://acme.service-now.com" in body
    assert "2024-05-01 03:01:15 UTC" in body
    assert "first 10 of 15" in body
    assert "  - User 9 (id-009): Conflict: user_name 'u9' exists" in body
    assert "User 10 " not in body
    assert "and 5 more." in body
    assert f"snsync --config {CONFIG} logs --cycle 42 --status Failure" in body
    assert "Create" in body and "Update" in body and "Success" in body


def test_failures_mail_without_a_cycle_number_or_with_many_failures() -> None:
    problem = failures_problem(facts(3, cycle_id=None, config_path="/etc/my snsync.yaml"), 5)
    assert problem is not None
    assert "all 3" in problem.body and "more." not in problem.body
    assert "snsync --config '/etc/my snsync.yaml' logs --status Failure" in problem.body
    many = failures_problem(facts(250), max_listed=10)
    assert many is not None
    assert "--status Failure --limit 250" in many.body


def test_failure_messages_are_one_line_short_and_without_secrets() -> None:
    register("tok-3xtra-secret")
    failed = FailedObject(
        "Ada\nLovelace", "id-1", None, "denied for tok-3xtra-secret\n" + "x" * 900
    )
    problem = failures_problem(CycleFacts(7, 0.0, 1.0, {}, [failed], 0, "https://x", CONFIG))
    assert problem is not None
    line = next(x for x in problem.body.splitlines() if "id-1" in x)
    assert line.startswith("  - Ada Lovelace (id-1): no reason code: denied for ***")
    assert len(line) < 400 and line.endswith("...")
    assert "tok-3xtra-secret" not in problem.body
    assert "The cycle changed nothing." in problem.body


def test_failures_key_depends_on_the_set_of_objects_and_reasons_only() -> None:
    a, b = FailedObject("A", "1", "Conflict", "m1"), FailedObject("B", "2", None, "m2")
    b_other = FailedObject("B", "2", "Forbidden", "m2")

    def key(*failed: FailedObject) -> str:
        problem = failures_problem(CycleFacts(1, 0.0, 1.0, {}, failed, 0, "https://x", CONFIG))
        assert problem is not None
        return problem.key

    assert key(a, b) == key(b, a)
    assert key(a, b).startswith("failures:")
    assert key(a, b) != key(a)
    assert key(a, b) != key(a, b_other)


def test_held_disables_mail_says_how_many_and_how_to_release() -> None:
    problem = held_disables_problem(facts(), "25")
    assert problem.kind == problem.key == "held_disables"
    assert "30 users" in problem.subject
    assert "would have disabled 30 users in https://acme.service-now.com" in problem.body
    assert "safety.max_disables: 25" in problem.body
    assert f"snsync --config {CONFIG} run --once --allow-disables" in problem.body
    assert f"snsync --config {CONFIG} approve" in problem.body


def test_quarantine_mail_says_why_until_when_and_how_to_clear() -> None:
    problem = quarantine_problem("the directory returned 0 users", 1714560000.0, CONFIG)
    assert problem.kind == problem.key == "quarantine"
    assert "2024-05-01 10:40:00 UTC" in problem.subject
    assert "the directory returned 0 users" in problem.body
    assert f"snsync --config {CONFIG} reset --quarantine" in problem.body


def test_recovery_mail_names_what_is_over() -> None:
    problem = recovery_problem("held_disables", facts())
    assert problem.kind == "recovery"
    assert problem.subject == "sync to acme.service-now.com is healthy again (cycle 42)"
    assert "disables held back by the safety limit" in problem.body


# --- config -----------------------------------------------------------------------------------


def smtp_dict(**changes: Any) -> dict[str, Any]:
    return {
        "host": "mail.example.com",
        "sender": "snsync@example.com",
        "to": ["iam@x.org"],
    } | changes


def test_config_defaults_and_durations() -> None:
    config = NotificationsConfig.model_validate({"email": smtp_dict()})
    assert config.repeat_after == 86400
    assert config.on == {"failures", "held_disables", "quarantine", "recovery"}
    assert config.email is not None and config.email.port == 587
    assert config.email.security == "starttls"
    for text, seconds in [("24h", 86400), ("30m", 1800), ("1d", 86400), ("90", 90), (600, 600)]:
        config = NotificationsConfig.model_validate({"repeat_after": text})
        assert config.repeat_after == seconds


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        ({"repeat_after": "soon"}, "'soon' is not a duration"),
        ({"on": ["failures", "typo"]}, "on"),
        ({"email": smtp_dict(sender="not an address")}, "not a mail address"),
        ({"email": smtp_dict(to=[])}, "at least 1"),
        ({"email": smtp_dict(to=["ok@x.org", "nope"])}, "'nope' is not a mail address"),
        ({"email": smtp_dict(username="u")}, "both username and password"),
        ({"email": smtp_dict(password="p")}, "both username and password"),
        ({"email": smtp_dict(username="u", password="p", security="none")}, "unencrypted"),
        ({"email": smtp_dict(ca_bundle="/nonexistent/ca.pem")}, "does not exist"),
        ({"email": smtp_dict(verify=False)}, "Extra inputs are not permitted"),
    ],
)
def test_config_mistakes_are_refused(data: dict[str, Any], expected: str) -> None:
    with pytest.raises(ValidationError, match=expected):
        NotificationsConfig.model_validate(data)


def test_config_accepts_display_names_and_resolves_ca_bundle_beside_the_config(
    tmp_path: Path,
) -> None:
    (tmp_path / "ca.pem").write_text("pem")
    data = {"email": smtp_dict(sender="snsync <snsync@example.com>", ca_bundle="ca.pem")}
    config = NotificationsConfig.model_validate(data, context={"base": tmp_path})
    assert config.email is not None
    assert config.email.ca_bundle == tmp_path / "ca.pem"
    secret = SmtpConfig.model_validate(smtp_dict(username="u", password=PASSWORD))
    assert PASSWORD not in repr(secret)


# --- a real SMTP server -----------------------------------------------------------------------


@dataclass
class Received:
    """One mail as the server got it."""

    mail_from: str
    rcpt_tos: list[str]
    message: EmailMessage
    encrypted: bool
    login: bytes | None


@dataclass
class Inbox:
    """An aiosmtpd handler that keeps every mail it is given."""

    mails: list[Received] = field(default_factory=list)
    mechanisms: list[str] = field(default_factory=list)

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        assert isinstance(envelope.content, bytes)
        message = message_from_bytes(envelope.content, policy=default_policy)
        assert isinstance(message, EmailMessage)
        transport = server.transport
        encrypted = transport is not None and transport.get_extra_info("ssl_object") is not None
        login = session.auth_data.login if isinstance(session.auth_data, LoginPassword) else None
        self.mails.append(
            Received(str(envelope.mail_from), list(envelope.rcpt_tos), message, encrypted, login)
        )
        return "250 OK"

    def authenticate(
        self, server: SMTP, session: Session, envelope: Envelope, mechanism: str, data: Any
    ) -> AuthResult:
        self.mechanisms.append(mechanism)
        ok = isinstance(data, LoginPassword) and data == (USER.encode(), PASSWORD.encode())
        return AuthResult(success=ok, handled=False, auth_data=data)


@dataclass
class Server:
    inbox: Inbox
    port: int


StartServer = Callable[..., Server]


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


@pytest.fixture
def smtp_server() -> Iterator[StartServer]:
    """Start aiosmtpd on loopback with the given SMTP options; every one is stopped after."""
    controllers: list[Controller] = []

    def start(**options: Any) -> Server:
        inbox = Inbox()
        port = free_port()
        controller = Controller(
            inbox,
            hostname="127.0.0.1",
            port=port,
            server_hostname="localhost",
            authenticator=inbox.authenticate,
            **options,
        )
        controller.start()
        controllers.append(controller)
        return Server(inbox, port)

    yield start
    for controller in controllers:
        controller.stop()


class MemoryStore:
    """The SentStore protocol in a dict."""

    def __init__(self) -> None:
        self.sent: dict[str, float] = {}

    def last_sent(self, key: str) -> float | None:
        return self.sent.get(key)

    def mark_sent(self, key: str, when: float) -> None:
        self.sent[key] = when


class Clock:
    def __init__(self, now: float = 1714532400.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def notifier(
    port: int, store: MemoryStore | None = None, clock: Clock | None = None, **email: Any
) -> Notifier:
    smtp = {"host": "127.0.0.1", "port": port, "security": "none", "timeout_s": 5} | email
    config = NotificationsConfig.model_validate({"email": smtp_dict(**smtp), "repeat_after": "1h"})
    return Notifier(config, store or MemoryStore(), clock or Clock())


PROBLEM = Problem("failures", "failures:abc", "2 objects failed", "body line\n")


def test_plain_smtp_delivers_a_complete_message(smtp_server: StartServer) -> None:
    server = smtp_server()
    sent = notifier(server.port, to=["iam@x.org", "oncall@x.org"]).notify(PROBLEM)
    assert sent is True
    [mail] = server.inbox.mails
    assert mail.mail_from == "snsync@example.com"
    assert mail.rcpt_tos == ["iam@x.org", "oncall@x.org"]
    assert mail.encrypted is False
    message = mail.message
    assert message["Subject"] == "[snsync] 2 objects failed"
    assert message["From"] == "snsync@example.com"
    assert message["To"] == "iam@x.org, oncall@x.org"
    assert message["Date"] == "Wed, 01 May 2024 03:00:00 +0000"
    assert message["Message-ID"].endswith("@example.com>")
    assert message["Auto-Submitted"] == "auto-generated"
    assert message["X-Snsync-Kind"] == "failures"
    assert message.get_content().splitlines() == ["body line"]


def test_starttls_with_the_private_ca_and_a_login(
    smtp_server: StartServer, sandbox_tls: SandboxTls
) -> None:
    server = smtp_server(
        tls_context=sandbox_tls.server_context(), require_starttls=True, auth_require_tls=True
    )
    mailer = notifier(
        server.port,
        security="starttls",
        ca_bundle=str(sandbox_tls.ca_pem),
        username=USER,
        password=PASSWORD,
    )
    assert mailer.notify(PROBLEM) is True
    [mail] = server.inbox.mails
    assert mail.encrypted is True
    assert mail.login == USER.encode()


@pytest.mark.parametrize("mechanism", ["LOGIN", "PLAIN"])
def test_each_auth_mechanism(
    smtp_server: StartServer, sandbox_tls: SandboxTls, mechanism: str
) -> None:
    other = {"LOGIN": "PLAIN", "PLAIN": "LOGIN"}[mechanism]
    server = smtp_server(
        tls_context=sandbox_tls.server_context(),
        require_starttls=True,
        auth_exclude_mechanism=[other],
    )
    mailer = notifier(
        server.port,
        security="starttls",
        ca_bundle=sandbox_tls.ca_pem,
        username=USER,
        password=PASSWORD,
    )
    assert mailer.notify(PROBLEM) is True
    assert server.inbox.mechanisms == [mechanism]
    assert server.inbox.mails[0].login == USER.encode()


def test_implicit_tls_with_a_login(smtp_server: StartServer, sandbox_tls: SandboxTls) -> None:
    # aiosmtpd only counts STARTTLS as TLS for AUTH, so allow AUTH on its already-TLS socket.
    server = smtp_server(ssl_context=sandbox_tls.server_context(), auth_require_tls=False)
    mailer = notifier(
        server.port, security="tls", ca_bundle=sandbox_tls.ca_pem, username=USER, password=PASSWORD
    )
    assert mailer.notify(PROBLEM) is True
    [mail] = server.inbox.mails
    assert mail.encrypted is True
    assert mail.login == USER.encode()


def test_a_certificate_from_another_ca_is_refused(
    smtp_server: StartServer, sandbox_tls: SandboxTls, tmp_path: Path
) -> None:
    other_ca = create_tls(tmp_path / "other").ca_pem
    server = smtp_server(tls_context=sandbox_tls.server_context(), require_starttls=True)
    mailer = notifier(server.port, security="starttls", ca_bundle=other_ca)
    message = failure_of(mailer)
    assert message.startswith(f"mail through 127.0.0.1:{server.port} failed:")
    assert "TLS certificate is not trusted" in message
    assert "set notifications.email.ca_bundle" in message
    assert server.inbox.mails == []


def test_a_wrong_password_is_named_but_never_shown(
    smtp_server: StartServer, sandbox_tls: SandboxTls
) -> None:
    server = smtp_server(tls_context=sandbox_tls.server_context(), require_starttls=True)
    wrong = "Wr0ng-password-value"
    register(wrong)
    mailer = notifier(
        server.port,
        security="starttls",
        ca_bundle=sandbox_tls.ca_pem,
        username=USER,
        password=wrong,
    )
    message = failure_of(mailer)
    assert f"refused the login for '{USER}' (535" in message
    assert "check notifications.email.username and password" in message
    assert wrong not in message and PASSWORD not in message


def test_security_that_does_not_match_the_server(
    smtp_server: StartServer, sandbox_tls: SandboxTls
) -> None:
    plain = smtp_server()
    assert "check notifications.email.security" in failure_of(
        notifier(plain.port, security="starttls", ca_bundle=sandbox_tls.ca_pem)
    )
    assert "check that security: tls suits port" in failure_of(
        notifier(plain.port, security="tls", ca_bundle=sandbox_tls.ca_pem)
    )


def test_nothing_listening() -> None:
    message = failure_of(notifier(free_port()))
    assert "cannot connect (Connection refused); check notifications.email.host" in message


def failure_of(mailer: Notifier) -> str:
    with pytest.raises(NotificationError) as caught:
        mailer.notify(PROBLEM)
    assert isinstance(caught.value, SnsyncError)
    message = str(caught.value)
    assert "\n" not in message
    return message


# --- when not to mail -------------------------------------------------------------------------


def test_same_key_is_not_mailed_again_before_repeat_after(smtp_server: StartServer) -> None:
    server, store, clock = smtp_server(), MemoryStore(), Clock()
    mailer = notifier(server.port, store, clock)
    assert mailer.notify(PROBLEM) is True
    clock.now += 3599
    assert mailer.notify(PROBLEM) is False
    assert mailer.notify(Problem("failures", "failures:other", "s", "b")) is True
    clock.now += 1
    assert mailer.notify(PROBLEM) is True
    assert len(server.inbox.mails) == 3
    assert store.sent["failures:abc"] == clock.now


def test_a_recovery_mail_lets_the_same_problem_be_mailed_again(smtp_server: StartServer) -> None:
    server, clock = smtp_server(), Clock()
    mailer = notifier(server.port, clock=clock)
    recovered = recovery_problem("failures", facts())
    assert mailer.notify(recovered) is False  # nothing was mailed, so nothing to recover from
    assert mailer.notify(PROBLEM) is True
    clock.now += 60
    assert mailer.notify(recovered) is True
    clock.now += 60
    assert mailer.notify(recovered) is False  # said once is enough
    assert mailer.notify(PROBLEM) is True  # failing again: the last word must not be "healthy"
    assert [m.message["X-Snsync-Kind"] for m in server.inbox.mails] == [
        "failures",
        "recovery",
        "failures",
    ]


def test_switched_off_kinds_and_missing_email_send_nothing(smtp_server: StartServer) -> None:
    server = smtp_server()
    email = smtp_dict(host="127.0.0.1", port=server.port, security="none")
    only_quarantine = NotificationsConfig.model_validate({"email": email, "on": ["quarantine"]})
    store = MemoryStore()
    assert Notifier(only_quarantine, store).notify(PROBLEM) is False
    assert Notifier(NotificationsConfig(), store).notify(PROBLEM) is False
    assert server.inbox.mails == [] and store.sent == {}


def test_a_failed_send_is_not_remembered() -> None:
    store = MemoryStore()
    with pytest.raises(NotificationError):
        notifier(free_port(), store).notify(PROBLEM)
    assert store.sent == {}


def test_tls_context_is_always_verified() -> None:
    from snsync import notify

    email = SmtpConfig.model_validate(smtp_dict())
    context = notify._tls_context(email)
    assert context.verify_mode == ssl.CERT_REQUIRED and context.check_hostname
