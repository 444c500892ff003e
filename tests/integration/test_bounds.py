"""Bounds against hostile or broken answers, through the sandbox: one line and a documented exit
code for errors outside the HTTP vocabulary, credentials only to the configured origins, loops
that end."""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from snsync.sandbox.runner import RunningSandbox
from snsync.sandbox.server import Request, Response, SandboxServer
from snsync.sandbox.tls import SandboxTls, create_tls

from .conftest import ServiceNowAdmin, Snsync


def edit(snsync: Snsync, change: Callable[[dict[str, Any]], None]) -> None:
    data = yaml.safe_load(snsync.config_path.read_text())
    change(data)
    snsync.config_path.write_text(yaml.safe_dump(data))


@pytest.mark.parametrize("service", ["graph", "servicenow"])
def test_tls_with_another_ca_is_one_line_and_exit_3(
    snsync: Snsync, tmp_path: Path, service: str
) -> None:
    other = create_tls(tmp_path / "other-ca")
    edit(snsync, lambda d: d[service].update(ca_bundle=str(other.ca_pem)))
    result = snsync("run", "--once")
    assert result.exit_code == 3, result.output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("error: ") and "TLS failed" in lines[0]
    assert f"{service}.ca_bundle" in lines[0] and "certificate verify failed" in lines[0]
    assert "Traceback" not in result.output


def test_unexpected_exception_is_one_line_exit_70_and_vv_shows_the_traceback(
    snsync: Snsync, monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken(*_: Any, **__: Any) -> Any:
        raise RuntimeError("something nobody foresaw\nsecond line")

    monkeypatch.setattr("snsync.engine.supervisor.cycle", broken)
    result = snsync("run", "--once")
    assert result.exit_code == 70
    assert result.stderr.strip() == (
        "internal error: RuntimeError: something nobody foresaw; run with -vv for the traceback"
    )
    verbose = snsync("-vv", "run", "--once")
    assert verbose.exit_code == 70
    assert "Traceback (most recent call last)" in verbose.stderr
    assert verbose.stderr.strip().splitlines()[-1].startswith("internal error: RuntimeError")


def test_main_turns_an_unexpected_exception_into_exit_70(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from snsync import cli

    def broken(**_: Any) -> None:
        raise KeyError("boom")

    monkeypatch.setattr(cli, "cli", broken)
    logging.getLogger("snsync").setLevel(logging.WARNING)  # as in a fresh process without -vv
    with pytest.raises(SystemExit) as ended:
        cli.main()
    assert ended.value.code == 70
    assert capsys.readouterr().err.strip() == (
        "internal error: KeyError: 'boom'; run with -vv for the traceback"
    )


class Recorder:
    """A second HTTPS service on loopback that records what it was sent."""

    def __init__(self) -> None:
        self.requests: list[Request] = []
        self.lock = threading.Lock()

    def handle(self, request: Request) -> Response:
        with self.lock:
            self.requests.append(request)
        return Response(200, {"value": [], "@odata.deltaLink": f"{request.base_url}/delta"})

    def fault_response(self, status: int, retry_after: int) -> Response:
        return Response(status, {})


def sandbox_tls(sandbox: RunningSandbox) -> SandboxTls:
    folder = sandbox.directory / "tls"
    return SandboxTls(folder / "ca.pem", folder / "server.pem", folder / "server-key.pem")


@pytest.fixture
def elsewhere(sandbox: RunningSandbox) -> Iterator[tuple[SandboxServer, Recorder]]:
    """A server with a certificate the configured CA trusts: only the origin rule protects."""
    recorder = Recorder()
    server = SandboxServer(recorder, sandbox_tls(sandbox)).start()
    yield server, recorder
    server.stop()


def rewrite_links(sandbox: RunningSandbox, path_end: str, target: str, key: str) -> None:
    """Make the sandbox Graph answer `path_end` pages with `key` pointing at `target`."""
    app = sandbox.graph_app
    original = app.handle

    def handle(request: Request) -> Response:
        response = original(request)
        if not request.path.endswith(path_end) or response.status != 200:
            return response
        body = json.loads(response.body) if isinstance(response.body, bytes) else response.body
        link = body.get(key)
        if link:
            body[key] = link.replace(request.base_url, target)
        return Response(200, body)

    app.handle = handle  # type: ignore[method-assign]


def test_cross_origin_next_link_gets_no_token_and_disables_nothing(
    snsync: Snsync, sandbox: RunningSandbox, elsewhere: tuple[SandboxServer, Recorder]
) -> None:
    assert snsync("run", "--once").exit_code == 0
    server, recorder = elsewhere
    sn = ServiceNowAdmin(sandbox)
    active_before = len(sn.rows("sys_user", "active=true^sourceSTARTSWITHentra:"))
    rewrite_links(sandbox, "/users", server.base_url, "@odata.nextLink")
    edit(snsync, lambda d: d["graph"].update(page_size=3))
    result = snsync("run", "--once", "--full", "--output", "json")
    assert not recorder.requests, "nothing may be sent to another origin"
    assert "Traceback" not in result.output
    assert f"refused to follow @odata.nextLink to {server.base_url}" in result.stdout
    active_after = len(sn.rows("sys_user", "active=true^sourceSTARTSWITHentra:"))
    assert active_after == active_before, "an incomplete read disables nothing"


def test_fresh_delta_link_to_another_origin_is_refused(
    snsync: Snsync, sandbox: RunningSandbox, elsewhere: tuple[SandboxServer, Recorder]
) -> None:
    server, recorder = elsewhere
    rewrite_links(sandbox, "/users/delta", server.base_url, "@odata.deltaLink")
    result = snsync("run", "--once")
    assert result.exit_code == 3, result.output
    assert not recorder.requests
    lines = result.stderr.strip().splitlines()
    assert (
        len(lines) == 1 and f"refused to follow @odata.deltaLink to {server.base_url}" in lines[0]
    )
    assert ServiceNowAdmin(sandbox).rows("sys_user", "sourceSTARTSWITHentra:") == []


def test_stored_delta_link_to_another_origin_is_refused(
    snsync: Snsync, sandbox: RunningSandbox, elsewhere: tuple[SandboxServer, Recorder]
) -> None:
    import sqlite3

    server, recorder = elsewhere
    assert snsync("run", "--once").exit_code == 0
    with sqlite3.connect(sandbox.directory / "state.db") as db:  # a tampered state file
        changed = db.execute(
            "UPDATE kv SET value = replace(value, ?, ?) WHERE key LIKE '%users%'",
            (sandbox.info["graph_url"], server.base_url),
        ).rowcount
    assert changed == 1
    result = snsync("run", "--once")
    assert result.exit_code == 3, result.output
    assert not recorder.requests, "a stored link to another origin gets no request"
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "refused to follow a stored or given link" in lines[0]
    assert server.base_url in lines[0]


def test_sigterm_during_a_slow_read_exits_within_10_s(sandbox: RunningSandbox) -> None:
    import signal
    import subprocess
    import sys
    import time

    reading = threading.Event()
    release = threading.Event()
    app = sandbox.graph_app
    original = app.handle

    def slow(request: Request) -> Response:
        if request.path.endswith("/users"):
            reading.set()
            release.wait(60)  # a read that would hang for a minute
        return original(request)

    app.handle = slow  # type: ignore[method-assign]
    process = subprocess.Popen(
        [sys.executable, "-m", "snsync", "--config", str(sandbox.config_path), "run", "--once"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert reading.wait(30), "snsync reached the slow read"
        time.sleep(0.2)
        process.send_signal(signal.SIGTERM)
        _, err = process.communicate(timeout=10)
    finally:
        release.set()
        if process.poll() is None:
            process.kill()
    assert process.returncode == 130, err
    lines = err.strip().splitlines()
    assert lines[-1].startswith("error: stopped (SIGTERM) while reading"), err
    assert "Traceback" not in err
    assert ServiceNowAdmin(sandbox).rows("sys_user", "sourceSTARTSWITHentra:") == []


def test_expired_delta_link_answered_400_gives_a_full_cycle_and_exit_0(
    snsync: Snsync, sandbox: RunningSandbox
) -> None:
    assert snsync("run", "--once").exit_code == 0
    # Every delta token answers 400 syncStateNotFound from now on: inside the incremental
    # cycle's opening $batch (graph/opening.py) as on its own.
    sandbox.graph_app.expire_delta_tokens()
    result = snsync("run", "--once")
    assert result.exit_code == 0, result.output
    assert snsync.json("status")["cycles"][0]["kind"] == "full"
    warnings = [line for line in result.stderr.splitlines() if "delta link expired" in line]
    assert len(warnings) == 1 and "WARNING" in warnings[0], result.stderr


def test_past_max_cycle_time_the_cycle_starts_no_new_work_and_exits_6(
    snsync: Snsync, sandbox: RunningSandbox
) -> None:
    import time

    app = sandbox.servicenow_app
    original = app.handle

    def slow_writes(request: Request) -> Response:
        if request.method in ("POST", "PATCH"):
            time.sleep(0.25)
        return original(request)

    app.handle = slow_writes  # type: ignore[method-assign]
    edit(snsync, lambda d: d.update(schedule={"max_cycle_time": "1s"}))
    edit(snsync, lambda d: d["servicenow"].update(max_concurrency=2))
    result = snsync("run", "--once", "--output", "json")
    assert result.exit_code == 6, result.output
    assert "schedule.max_cycle_time (1s) has passed" in result.stderr
    report = json.loads(result.stdout)
    skipped = [r for r in report["results"] if r["reason"] == "Interrupted"]
    done = [r for r in report["results"] if r["status"] == "Success"]
    assert skipped and done, "work in flight finished, the rest was not started"
    app.handle = original  # type: ignore[method-assign]
    edit(snsync, lambda d: d.update(schedule={"max_cycle_time": "30m"}))
    assert snsync("run", "--once").exit_code == 0, "the next cycle goes on"
    rows = ServiceNowAdmin(sandbox).rows("sys_user", "sourceSTARTSWITHentra:")
    names = [u["user_name"] for u in rows]
    assert len(names) == len(set(names)) == 14
