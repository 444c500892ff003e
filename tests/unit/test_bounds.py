"""Bounds of the HTTP layer and the clients against hostile answers (faked by `responses`, or by
a small local HTTPS server where sockets matter): loops end, sizes and nesting are capped, a
trickled body is cut at its deadline, Graph's expired delta links, the shared limiter, the stop
token, one session per worker, and the error vocabulary's table."""

from __future__ import annotations

import socket
import sqlite3
import ssl
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests
import responses

from snsync.bounds import Limits, PageGuard, json_depth, over_long_reason, same_origin
from snsync.config import ServiceNowConfig
from snsync.errors import (
    MEANINGS,
    ConfigError,
    CycleStopped,
    DeltaExpired,
    ExitCode,
    LocalFileError,
    LockedError,
    Outcome,
    RequestDeadlineError,
    SnsyncError,
    TlsError,
    TransientError,
    UnsafeAnswerError,
    from_os_error,
    from_requests_error,
    from_sqlite_error,
    meaning,
    read_outcome,
    write_outcome,
)
from snsync.graph.client import GraphClient
from snsync.http import HttpClient, RetryPolicy
from snsync.limiter import AdaptiveLimiter
from snsync.sandbox.tls import create_tls
from snsync.servicenow.client import TableClient
from snsync.stop import StopSignal

SN = "https://acme.service-now.com"
GRAPH = "https://graph.example"


def http(limits: Limits | None = None, **extra: Any) -> HttpClient:
    return HttpClient(
        service="test",
        policy=RetryPolicy(attempts=3, base_s=0.0),
        sleep=lambda _s: None,
        limits=limits,
        **extra,
    )


class FakeTokens:
    def token(self) -> str:
        return "tok"


def graph(client: HttpClient) -> GraphClient:
    return GraphClient(GRAPH, client, FakeTokens())  # type: ignore[arg-type]


def sn(client: HttpClient) -> TableClient:
    config = ServiceNowConfig.model_validate(
        {"instance": "acme", "auth": {"username": "u", "password": "p"}, "page_size": 2}
    )
    return TableClient(config, client)


@responses.activate
def test_a_next_link_pointing_at_itself_ends_the_read_at_the_second_page() -> None:
    loop = f"{GRAPH}/v1.0/users?$skiptoken=same"
    responses.get(loop, json={"value": [{"id": "2"}], "@odata.nextLink": loop})
    with pytest.raises(UnsafeAnswerError, match="already read"):
        graph(http()).list_all("users?$skiptoken=same")
    assert len(responses.calls) == 1


@responses.activate
def test_more_pages_than_max_pages_end_the_read() -> None:
    for i in range(5):
        link = f"{GRAPH}/v1.0/users?$skiptoken={i + 1}"
        responses.get(f"{GRAPH}/v1.0/users", json={"value": [], "@odata.nextLink": link})
    with pytest.raises(UnsafeAnswerError, match=r"limits.max_pages \(3\)"):
        graph(http(Limits(max_pages=3))).list_all("users")


@responses.activate
def test_a_keyset_cursor_that_does_not_advance_ends_the_read() -> None:
    page = {"result": [{"sys_id": "b"}, {"sys_id": "b"}]}
    responses.get(f"{SN}/api/now/table/sys_user", json={"result": [{"sys_id": "a"}]})
    responses.get(f"{SN}/api/now/table/sys_user", json=page)
    responses.get(f"{SN}/api/now/table/sys_user", json={"result": [{"sys_id": "a"}]})
    with pytest.raises(UnsafeAnswerError, match=r"did not advance|already read"):
        sn(http()).read_all("sys_user", ["user_name"])
    assert len(responses.calls) <= 3


@responses.activate
def test_a_body_over_the_cap_is_refused_and_deep_json_is_no_recursion_error() -> None:
    responses.get(f"{SN}/big", body=b"x" * 5000, content_type="application/json")
    with pytest.raises(UnsafeAnswerError, match=r"limits\.max_body_bytes"):
        http(Limits(max_body_bytes=1024)).fetch_json("GET", f"{SN}/big")
    deep = b"[" * 100_000 + b"]" * 100_000
    responses.get(f"{SN}/deep", body=deep, content_type="application/json")
    with pytest.raises(UnsafeAnswerError, match="nested 100000 deep"):
        http().fetch_json("GET", f"{SN}/deep")
    assert json_depth(b'{"a": "[[[[", "b": [[1]]}') == 3


@responses.activate
def test_graph_expired_delta_link_is_delta_expired_for_400_and_410() -> None:
    body = {"error": {"code": "syncStateNotFound", "message": "expired"}}
    responses.get(f"{GRAPH}/v1.0/users/delta?$deltatoken=old", status=400, json=body)
    with pytest.raises(DeltaExpired):
        graph(http()).delta(f"{GRAPH}/v1.0/users/delta?$deltatoken=old")
    responses.get(f"{GRAPH}/v1.0/users/delta?$deltatoken=gone", status=410, json=body)
    with pytest.raises(DeltaExpired):
        graph(http()).delta(f"{GRAPH}/v1.0/users/delta?$deltatoken=gone")
    assert read_outcome(DeltaExpired("x", service="graph")) is Outcome.READ_FULLY


@responses.activate
def test_requests_go_only_to_configured_origins_and_redirects_are_not_followed() -> None:
    client = http(origins=(SN,))
    with pytest.raises(UnsafeAnswerError, match="not a configured origin"):
        client.request("GET", "https://acme.service-now.com:8443/x")
    assert not responses.calls
    responses.get(f"{SN}/moved", status=302, headers={"Location": "https://evil.example/x"})
    with pytest.raises(UnsafeAnswerError, match=r"redirected \(302\) to https://evil\.example"):
        client.request("GET", f"{SN}/moved")
    assert same_origin("https://a.example/x", "https://A.example:443/")
    assert not same_origin("http://a.example/x", "http://a.example/")


@responses.activate
def test_every_thread_has_its_own_session_so_no_cookie_is_shared() -> None:
    client = http()
    seen: list[requests.Session] = []
    threads = [threading.Thread(target=lambda: seen.append(client.session)) for _ in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    seen.append(client.session)
    assert len({id(s) for s in seen}) == 4
    assert len({id(s.cookies) for s in seen}) == 4
    responses.get(f"{SN}/x", json={}, headers={"Set-Cookie": "JSESSIONID=abc; Path=/"})
    client.request("GET", f"{SN}/x")
    assert [c.name for c in client.session.cookies] == ["JSESSIONID"]
    assert not list(seen[0].cookies), "another worker's session does not get the cookie"
    none = http(cookies="none")
    none.request("GET", f"{SN}/x")
    assert not list(none.session.cookies), "no cookie jar: every request is its own session"


def test_the_limiter_halves_on_429_grows_while_latency_holds_and_pauses_everyone() -> None:
    now = [0.0]
    limiter = AdaptiveLimiter("test", max_concurrency=8, start=4, clock=lambda: now[0])
    limiter.release(0.1, 429, retry_after_s=5)
    assert limiter.limit == 2 and limiter._paused_until == 5.0
    for _ in range(20):
        limiter.release(0.1, 200)
    assert 2 < limiter.limit <= 8
    slow = limiter.limit
    limiter.release(5.0, 200)
    assert limiter.limit == slow, "latency does not hold: no growth"


def test_a_spent_hourly_quota_stops_the_cycle_with_its_exit_code() -> None:
    stop = StopSignal()
    wall = 1_700_000_000.0
    limiter = AdaptiveLimiter("servicenow", max_concurrency=4, stop=stop, wall=lambda: wall)
    reset = str(int(wall + 3600))
    headers = {"X-RateLimit-Limit": "400", "X-RateLimit-Reset": reset, "X-RateLimit-Rule": "r"}
    with stop.cycle(None):
        assert limiter.quota_spent({"Retry-After": "3"}, 3.0) is None, "a short wait will do"
        reason = limiter.quota_spent(headers, None)
        assert reason and "quota of 400 requests (rule r) is spent for about 60 min" in reason
        assert stop and stop.exit_code() is ExitCode.QUOTA
        with pytest.raises(CycleStopped) as stopped:
            stop.check("reading sys_user")
        assert stopped.value.exit_code is ExitCode.QUOTA
    assert not stop, "a cycle's own stop ends with the cycle"


def test_max_cycle_time_stops_the_cycle_not_the_process() -> None:
    stop = StopSignal()
    with stop.cycle(0.000001):
        time.sleep(0.01)
        assert stop and stop.exit_code() is ExitCode.DEADLINE
        assert "schedule.max_cycle_time" in stop.reason
    assert not stop and not stop.signalled


@pytest.fixture
def trickler(tmp_path: Path) -> Iterator[tuple[str, Path, list[int]]]:
    """An HTTPS server that sends headers, then one body byte every 0.1 s."""
    tls = create_tls(tmp_path / "tls")
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(tls.cert_pem, tls.key_pem)
    listener = socket.create_server(("127.0.0.1", 0))
    port = listener.getsockname()[1]
    sent: list[int] = [0]
    done = threading.Event()

    def serve() -> None:
        conn, _ = listener.accept()
        with context.wrap_socket(conn, server_side=True) as tls_conn:
            tls_conn.recv(65536)
            tls_conn.sendall(
                b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 1000\r\n\r\n"
            )
            try:
                while not done.is_set() and sent[0] < 1000:
                    tls_conn.sendall(b" ")
                    sent[0] += 1
                    time.sleep(0.1)
            except OSError:
                return

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    yield f"https://127.0.0.1:{port}/slow", tls.ca_pem, sent
    done.set()
    listener.close()


def test_a_trickled_body_is_cut_at_the_request_deadline(
    trickler: tuple[str, Path, list[int]],
) -> None:
    url, ca, sent = trickler
    client = HttpClient(
        service="servicenow",
        ca_bundle=ca,
        timeout_s=1.0,
        policy=RetryPolicy(attempts=1),
    )
    with pytest.raises(RequestDeadlineError, match=r"1s deadline .*servicenow\.timeout_s"):
        client.fetch_json("GET", url)
    assert sent[0] < 1000, "the body was cut, not read to its end"


def test_the_table_gives_every_class_a_meaning_and_maps_outside_exceptions(
    tmp_path: Path,
) -> None:
    assert all(issubclass(cls, SnsyncError) for cls in MEANINGS)
    assert meaning(RuntimeError("x")).exit_code is ExitCode.INTERNAL
    assert write_outcome(TransientError("x", service="s")) is Outcome.FAIL_OBJECT
    assert read_outcome(TransientError("x", service="s")) is Outcome.INCOMPLETE_READ
    ssl_error = requests.exceptions.SSLError(
        ssl.SSLCertVerificationError("certificate verify failed: unable to get local issuer")
    )
    tls = from_requests_error(ssl_error, service="graph", method="GET", url="u", ca_key="graph.ca")
    assert isinstance(tls, TlsError) and "graph.ca" in str(tls)
    assert write_outcome(tls) is Outcome.STOP_CYCLE
    denied = from_os_error(PermissionError(13, "Permission denied"), what="state file", path="/x")
    assert isinstance(denied, LocalFileError) and denied.exit_code is ExitCode.LOCAL_FILE
    assert "check the owner and mode" in str(denied)
    locked = from_sqlite_error(sqlite3.OperationalError("database is locked"), path="/s.db")
    assert isinstance(locked, LockedError) and locked.exit_code is ExitCode.LOCKED
    bad = from_sqlite_error(sqlite3.DatabaseError("file is not a database"), path="/s.db")
    assert isinstance(bad, ConfigError) and "state.path" in str(bad)


def test_attribute_values_over_the_limit_are_named() -> None:
    reason = over_long_reason({"jobTitle": "x" * 50, "city": "Oslo", "tags": ["y" * 60]}, 40)
    assert reason is not None and "jobTitle (50 characters)" in reason
    assert "tags (60 characters)" in reason and "city" not in reason
    assert over_long_reason({"jobTitle": "ok"}, 40) is None


def test_page_guard_counts_pages() -> None:
    guard = PageGuard("graph", "users", 2)
    guard.next_page("a")
    guard.next_page("b")
    with pytest.raises(UnsafeAnswerError):
        guard.next_page("c")
