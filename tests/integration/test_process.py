"""snsync as a real process: SIGTERM in the middle of a cycle, the `run` loop, a stale lock."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from snsync.sandbox.runner import RunningSandbox, SandboxOptions, start_sandbox

from .conftest import ServiceNowAdmin, Snsync


@pytest.fixture
def slow_sandbox(tmp_path: Path) -> Iterator[RunningSandbox]:
    """ServiceNow answering in 150 ms, 2 at a time: a cycle takes long enough to interrupt."""
    running = start_sandbox(
        SandboxOptions(
            directory=tmp_path / "sbx", servicenow_latency_ms=150, servicenow_max_concurrent=2
        )
    )
    yield running
    running.stop()


def snsync_process(config: Path, *args: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "snsync", "--config", str(config), *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def wait_until(condition: object, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():  # type: ignore[operator]
            return
        time.sleep(0.02)
    raise AssertionError("condition not met in time")


def test_sigterm_mid_cycle_then_a_clean_cycle(slow_sandbox: RunningSandbox) -> None:
    process = snsync_process(slow_sandbox.config_path, "run", "--once", "--output", "json")
    wait_until(lambda: slow_sandbox.servicenow_app.write_count() >= 2)
    process.send_signal(signal.SIGTERM)
    out, err = process.communicate(timeout=30)
    assert process.returncode == 0, err
    report = json.loads(out)
    interrupted = [r for r in report["results"] if r["reason"] == "Interrupted"]
    assert interrupted, "objects not started were skipped"
    written = slow_sandbox.servicenow_app.write_count()
    assert written < 25, "the cycle stopped early"

    snsync = Snsync(slow_sandbox, slow_sandbox.config_path)
    again = snsync("run", "--once")
    assert again.exit_code == 0, again.output
    sn = ServiceNowAdmin(slow_sandbox)
    names = [u["user_name"] for u in sn.rows("sys_user", "sourceSTARTSWITHentra:")]
    assert len(names) == len(set(names)) == 14, "every user once, nothing duplicated"
    assert snsync.json("run", "--once")["counts"].get("user Create") is None


def test_run_loop_cycles_until_sigterm(sandbox: RunningSandbox) -> None:
    data = yaml.safe_load(sandbox.config_path.read_text())
    data["schedule"] = {"interval": "1s", "jitter": 0}
    sandbox.config_path.write_text(yaml.safe_dump(data))
    process = snsync_process(sandbox.config_path, "run")
    snsync = Snsync(sandbox, sandbox.config_path)
    wait_until(lambda: len(snsync.json("status")["cycles"]) >= 2)
    process.send_signal(signal.SIGTERM)
    _, err = process.communicate(timeout=30)
    assert process.returncode == 0
    assert "stopped (SIGTERM)" in err


def test_stale_lock_from_a_dead_process_is_taken_over(sandbox: RunningSandbox) -> None:
    lock = sandbox.directory / "state.db.lock"
    lock.write_text(f"pid {os.getpid() + 100000} since 2026-01-01 00:00:00 UTC\n")
    result = Snsync(sandbox, sandbox.config_path)("run", "--once")
    assert result.exit_code == 0, result.output
