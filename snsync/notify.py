"""Mail the identity admin when a cycle needs attention: compose one message per problem, send it
over SMTP with verified TLS, and stay quiet about a problem already mailed recently."""

from __future__ import annotations

import hashlib
import logging
import shlex
import smtplib
import ssl
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from email.message import EmailMessage
from email.utils import format_datetime, make_msgid, parseaddr
from typing import Protocol

from snsync.config import NotificationsConfig, SmtpConfig
from snsync.errors import NotificationError
from snsync.model import Action, Status
from snsync.redact import redact, register

SUBJECT_PREFIX = "[snsync] "
RECOVERY_KEY = "recovery"
# Marked on every problem mail so a recovery mail is only sent after a problem was mailed.
ANY_PROBLEM_KEY = "any-problem"

log = logging.getLogger(__name__)

_MAX_MESSAGE_CHARS = 300
# `snsync logs` shows 200 rows unless told otherwise.
_LOGS_DEFAULT_LIMIT = 200
_PREVIOUS = {
    "failures": "objects failing to sync",
    "held_disables": "disables held back by the safety limit",
    "quarantine": "the quarantine",
}


@dataclass(frozen=True)
class FailedObject:
    """One directory object a cycle could not sync."""

    display_name: str
    directory_id: str
    reason: str | None
    message: str


@dataclass(frozen=True)
class CycleFacts:
    """What a finished cycle did, as much as a mail needs."""

    cycle_id: int | None
    started_at: float
    duration_s: float
    counts: Mapping[str, Mapping[str, int]]
    failures: Sequence[FailedObject]
    held_disables: int
    instance: str
    config_path: str


@dataclass(frozen=True)
class Problem:
    """One mail-worthy situation; `key` identifies it for repeat suppression."""

    kind: str
    key: str
    subject: str
    body: str


class SentStore(Protocol):
    """Remembers when a mail for a key was last sent (the state database, or memory in tests)."""

    def last_sent(self, key: str) -> float | None: ...

    def mark_sent(self, key: str, when: float) -> None: ...


def failures_problem(facts: CycleFacts, max_listed: int = 10) -> Problem | None:
    """A mail listing the cycle's failed objects, or None when nothing failed."""
    if not facts.failures:
        return None
    count = len(facts.failures)
    listed = facts.failures[: max(max_listed, 0)]
    lines = [
        f"snsync cycle {_cycle(facts)} could not sync {_n(count, 'object')} "
        f"to {facts.instance} (finished {_finished(facts)}).",
        "",
        f"Failed objects ({_shown(len(listed), count)}):",
        *(_failure_line(failed) for failed in listed),
    ]
    if count > len(listed):
        lines.append(f"  and {count - len(listed)} more.")
    lines += [
        "",
        "What to do next:",
        "  Fix what each reason names (in Azure AD, in ServiceNow or in the mappings);",
        "  the next cycle tries these objects again. See every failure of this cycle:",
        f"    {_logs_command(facts, count)}",
        "  Reason codes are explained in the README under 'Reason codes'.",
        "",
        *_counts_section(facts.counts),
        *_footer(facts.config_path),
    ]
    subject = f"{_n(count, 'object')} failed to sync to {_host(facts.instance)}"
    return _problem(
        "failures", _failures_key(facts.failures), f"{subject}{_in_cycle(facts)}", lines
    )


def held_disables_problem(facts: CycleFacts, threshold_text: str) -> Problem:
    """A mail saying the cycle held back its disables, and how to release them."""
    config = shlex.quote(facts.config_path)
    users = _n(facts.held_disables, "user")
    lines = [
        f"snsync cycle {_cycle(facts)} would have disabled {users} in {facts.instance},",
        f"more than the safety limit (safety.max_disables: {threshold_text}).",
        "It disabled none of them: they stay active in ServiceNow until you release the hold.",
        "",
        "What to do next:",
        "  If the disables are NOT expected, check the app's user and group assignments",
        "  and the scope in Azure AD first; see what would be disabled with:",
        f"    snsync --config {config} plan",
        "  If they are expected (say, a group was removed from the app on purpose),",
        "  release them with one cycle that may disable:",
        f"    snsync --config {config} run --once --allow-disables",
        "  or approve them for the next scheduled cycle:",
        f"    snsync --config {config} approve",
        "",
        *_counts_section(facts.counts),
        *_footer(facts.config_path),
    ]
    subject = f"{users} not disabled in {_host(facts.instance)}: over the safety limit"
    return _problem("held_disables", "held_disables", subject, lines)


def quarantine_problem(reason: str, until: float, config_path: str) -> Problem:
    """A mail saying syncing is paused (quarantined), why, and how to clear it."""
    when = _utc(until)
    lines = [
        f"snsync put the sync in quarantine until {when}: {_one_line(reason)}",
        "While quarantined, cycles make no changes in ServiceNow.",
        "",
        "What to do next:",
        "  Fix the cause above, then clear the quarantine so the next cycle runs normally:",
        f"    snsync --config {shlex.quote(config_path)} reset --quarantine",
        f"  Otherwise snsync tries again by itself after {when}.",
        "",
        *_footer(config_path),
    ]
    return _problem("quarantine", "quarantine", f"sync paused (quarantined) until {when}", lines)


def recovery_problem(previous_kind: str, facts: CycleFacts) -> Problem:
    """A mail saying a cycle succeeded again after a problem that was mailed."""
    previous = _PREVIOUS.get(previous_kind, previous_kind)
    lines = [
        f"snsync cycle {_cycle(facts)} ran without problems (finished {_finished(facts)}).",
        f"The earlier problem ({previous}) is over; nothing to do.",
        "",
        *_counts_section(facts.counts),
        *_footer(facts.config_path),
    ]
    subject = f"sync to {_host(facts.instance)} is healthy again{_in_cycle(facts)}"
    return _problem("recovery", RECOVERY_KEY, subject, lines)


class Notifier:
    """Sends problem mails, at most one per key every `repeat_after` seconds."""

    def __init__(
        self,
        config: NotificationsConfig,
        store: SentStore,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._config = config
        self._store = store
        self._clock = clock
        if config.email is not None and config.email.password is not None:
            register(config.email.password.get_secret_value())

    def notify(self, problem: Problem) -> bool:
        """Mail `problem` unless switched off or recently sent; True when a mail went out."""
        email = self._config.email
        if email is None or problem.kind not in self._config.on:
            return False
        now = self._clock()
        if self._suppressed(problem, now):
            log.debug("not mailing '%s' again yet (key %s)", problem.subject, problem.key)
            return False
        _deliver(email, _message(email, problem, now))
        self._store.mark_sent(problem.key, now)
        if problem.kind != "recovery":
            self._store.mark_sent(ANY_PROBLEM_KEY, now)
        log.info("mailed '%s' to %s", problem.subject, ", ".join(email.to))
        return True

    def _suppressed(self, problem: Problem, now: float) -> bool:
        """Repeat a problem only after `repeat_after`, or sooner when a recovery mail came
        between: the admin's last word must not be 'healthy again' while it is failing."""
        if problem.kind == "recovery":
            problem_at = self._store.last_sent(ANY_PROBLEM_KEY)
            recovered_at = self._store.last_sent(problem.key)
            return problem_at is None or (recovered_at is not None and recovered_at >= problem_at)
        sent_at = self._store.last_sent(problem.key)
        if sent_at is None or now - sent_at >= self._config.repeat_after:
            return False
        recovered_at = self._store.last_sent(RECOVERY_KEY)
        return recovered_at is None or recovered_at < sent_at


def _problem(kind: str, key: str, subject: str, lines: Sequence[str]) -> Problem:
    return Problem(kind, key, redact(_one_line(subject)), redact("\n".join(lines) + "\n"))


def _failures_key(failures: Sequence[FailedObject]) -> str:
    """The same set of failing objects and reasons gives the same key, in any order."""
    items = sorted({f"{f.directory_id}\x1f{f.reason or ''}" for f in failures})
    digest = hashlib.sha256("\x1e".join(items).encode("utf-8")).hexdigest()[:16]
    return f"failures:{digest}"


def _failure_line(failed: FailedObject) -> str:
    message = _one_line(failed.message)
    if len(message) > _MAX_MESSAGE_CHARS:
        message = message[: _MAX_MESSAGE_CHARS - 3] + "..."
    name = _one_line(failed.display_name) or "(no display name)"
    return f"  - {name} ({failed.directory_id}): {failed.reason or 'no reason code'}: {message}"


def _logs_command(facts: CycleFacts, count: int) -> str:
    parts = ["snsync", "--config", shlex.quote(facts.config_path), "logs"]
    if facts.cycle_id is not None:
        parts += ["--cycle", str(facts.cycle_id)]
    parts += ["--status", "Failure"]
    if count > _LOGS_DEFAULT_LIMIT:
        parts += ["--limit", str(count)]
    return " ".join(parts)


def _counts_section(counts: Mapping[str, Mapping[str, int]]) -> list[str]:
    rows = [a for a in _ordered(counts, [a.value for a in Action]) if counts[a]]
    if not rows:
        return ["The cycle changed nothing.", ""]
    statuses = _ordered({s: 0 for a in rows for s in counts[a]}, [s.value for s in Status])
    width = max(len(a) for a in rows)
    widths = [max(len(s), 5) for s in statuses]
    header = (
        "  " + " " * width + "".join(f"  {s:>{w}}" for s, w in zip(statuses, widths, strict=True))
    )
    lines = ["What the cycle did (objects by action and status):", header]
    for action in rows:
        cells = [
            f"  {counts[action].get(s, 0):>{w}}" for s, w in zip(statuses, widths, strict=True)
        ]
        lines.append(f"  {action:<{width}}" + "".join(cells))
    return [*lines, ""]


def _ordered(keys: Mapping[str, object], preferred: Sequence[str]) -> list[str]:
    """Known names in their usual order, then any others alphabetically."""
    return [k for k in preferred if k in keys] + sorted(k for k in keys if k not in preferred)


def _footer(config_path: str) -> list[str]:
    return [f"Config: {config_path}", "This mail was sent by snsync; replies are not read."]


def _message(email: SmtpConfig, problem: Problem, now: float) -> EmailMessage:
    message = EmailMessage()
    message["Subject"] = SUBJECT_PREFIX + redact(_one_line(problem.subject))
    message["From"] = email.sender
    message["To"] = ", ".join(email.to)
    message["Date"] = format_datetime(datetime.fromtimestamp(now, UTC))
    # An explicit domain: make_msgid would otherwise look up this host's FQDN (slow DNS).
    message["Message-ID"] = make_msgid("snsync", domain=_domain(email.sender))
    # RFC 3834: no out-of-office replies to a robot.
    message["Auto-Submitted"] = "auto-generated"
    message["X-Snsync-Kind"] = problem.kind
    message.set_content(redact(problem.body))
    return message


def _deliver(email: SmtpConfig, message: EmailMessage) -> None:
    try:
        context = _tls_context(email) if email.security != "none" else None
        with _connect(email, context) as client:
            if email.security == "starttls":
                client.starttls(context=context)
            if email.username is not None and email.password is not None:
                client.login(email.username, email.password.get_secret_value())
            refused = client.send_message(message)
    except (smtplib.SMTPException, OSError) as exc:
        where = f"{email.host}:{email.port}"
        raise NotificationError(
            redact(f"mail through {where} failed: {_cause(exc, email)}")
        ) from None
    if refused:
        log.warning("the SMTP server refused some recipients: %s", ", ".join(sorted(refused)))


def _tls_context(email: SmtpConfig) -> ssl.SSLContext:
    """Verified TLS, trusting `ca_bundle` alone when given, else the system's CAs."""
    cafile = str(email.ca_bundle) if email.ca_bundle is not None else None
    try:
        return ssl.create_default_context(cafile=cafile)
    except (OSError, ssl.SSLError) as exc:
        raise NotificationError(
            f"cannot read notifications.email.ca_bundle '{cafile}': {_reason(exc)}"
        ) from None


def _connect(email: SmtpConfig, context: ssl.SSLContext | None) -> smtplib.SMTP:
    if email.security == "tls":
        return smtplib.SMTP_SSL(email.host, email.port, timeout=email.timeout_s, context=context)
    return smtplib.SMTP(email.host, email.port, timeout=email.timeout_s)


def _cause(exc: BaseException, email: SmtpConfig) -> str:
    """What went wrong, and which setting to check."""
    if isinstance(exc, smtplib.SMTPException):
        return _smtp_cause(exc, email)
    if isinstance(exc, ssl.SSLCertVerificationError):
        trust = f"by ca_bundle '{email.ca_bundle}'" if email.ca_bundle else "by this system"
        return (
            f"the server's TLS certificate is not trusted {trust} ({exc.verify_message}); "
            "set notifications.email.ca_bundle to the CA that signed it"
        )
    if isinstance(exc, ssl.SSLError):
        return (
            f"TLS failed ({exc.reason or exc}); check that security: {email.security} suits "
            f"port {email.port} (starttls is usually 587, tls 465)"
        )
    if isinstance(exc, TimeoutError):
        return f"no answer within {email.timeout_s:g} s; check host, port and firewalls"
    return f"cannot connect ({_reason(exc)}); check notifications.email.host and port"


def _smtp_cause(exc: smtplib.SMTPException, email: SmtpConfig) -> str:
    if isinstance(exc, smtplib.SMTPAuthenticationError):
        return (
            f"the server refused the login for '{email.username}' ({_answer(exc)}); "
            "check notifications.email.username and password"
        )
    if isinstance(exc, smtplib.SMTPRecipientsRefused):
        return f"the server refused every recipient ({', '.join(sorted(exc.recipients))})"
    if isinstance(exc, smtplib.SMTPSenderRefused):
        return f"the server refused the sender '{email.sender}' ({_answer(exc)})"
    if isinstance(exc, smtplib.SMTPResponseException):
        return f"the server answered {_answer(exc)}"
    if isinstance(exc, smtplib.SMTPNotSupportedError):
        return f"{exc}; check notifications.email.security"
    return str(exc) or type(exc).__name__


def _answer(exc: smtplib.SMTPResponseException) -> str:
    text = exc.smtp_error
    decoded = text.decode("utf-8", "replace") if isinstance(text, bytes) else str(text)
    return f"{exc.smtp_code} {_one_line(decoded)}"


def _reason(exc: BaseException) -> str:
    return (exc.strerror if isinstance(exc, OSError) else None) or str(exc) or type(exc).__name__


def _domain(address: str) -> str:
    return parseaddr(address)[1].rpartition("@")[2] or "snsync.invalid"


def _one_line(text: str) -> str:
    return " ".join(text.split())


def _n(count: int, noun: str) -> str:
    return f"{count} {noun}" if count == 1 else f"{count} {noun}s"


def _shown(listed: int, total: int) -> str:
    return f"all {total}" if listed == total else f"first {listed} of {total}"


def _cycle(facts: CycleFacts) -> str:
    return str(facts.cycle_id) if facts.cycle_id is not None else "(unnumbered)"


def _in_cycle(facts: CycleFacts) -> str:
    return f" (cycle {facts.cycle_id})" if facts.cycle_id is not None else ""


def _finished(facts: CycleFacts) -> str:
    return f"{_utc(facts.started_at + facts.duration_s)}, took {_duration(facts.duration_s)}"


def _utc(timestamp: float) -> str:
    return datetime.fromtimestamp(timestamp, UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def _duration(seconds: float) -> str:
    if seconds < 60:
        return f"{seconds:.1f} s"
    minutes, rest = divmod(round(seconds), 60)
    return f"{minutes} min {rest} s" if minutes < 60 else f"{minutes // 60} h {minutes % 60} min"


def _host(instance: str) -> str:
    return instance.split("://", 1)[-1].rstrip("/") or instance
