"""Honest status: a running cycle is visible from another process (pid, phase, progress); a cycle
held by the threshold or stopped by SIGTERM says so in the summary and in `status`, with the
next command; the summary says full or incremental."""

from __future__ import annotations

import json
import signal
from pathlib import Path

from snsync.sandbox.runner import RunningSandbox

from .conftest import GraphAdmin, Snsync
from .test_operations import LEE, PATTI
from .test_process import slow_sandbox, snsync_process, wait_until

__all__ = ["slow_sandbox"]  # the fixture, used by name below


def test_summary_says_full_then_incremental(snsync: Snsync) -> None:
    first = snsync("run", "--once")
    assert (
        first.stdout.startswith("Cycle 1 (full: ") and ": success." in first.stdout.splitlines()[0]
    )
    second = snsync("run", "--once")
    assert second.stdout.startswith("Cycle 2 (incremental) finished in")
    report = snsync.json("run", "--once")
    assert (report["mode"], report["outcome"]) == ("incremental", "success")


def test_held_cycle_says_held_with_the_next_command(
    snsync: Snsync, graph_admin: GraphAdmin
) -> None:
    snsync.reconfigure(safety={"max_disables": {"users": 1}})
    snsync("run", "--once")
    graph_admin.unassign(LEE)
    graph_admin.unassign(PATTI)
    held = snsync("run", "--once")
    assert held.exit_code == 4
    assert ": held." in held.stdout.splitlines()[0]
    assert "HELD: 2 user disables exceed safety.max_disables" in held.stdout
    assert "snsync approve" in held.stdout
    cycles = snsync.json("status")["cycles"]
    assert cycles[0]["outcome"] == "held" and cycles[1]["outcome"] == "success"


def test_running_cycle_visible_then_interrupted(slow_sandbox: RunningSandbox) -> None:
    snsync = Snsync(slow_sandbox, slow_sandbox.config_path)
    process = snsync_process(slow_sandbox.config_path, "run", "--once")
    try:
        wait_until(lambda: slow_sandbox.servicenow_app.write_count() >= 2)
        status = snsync.json("status")
        running = status["running"]
        assert running and running["pid"] == process.pid and running["phase"] == "applying"
        assert running["progress"].startswith("applying [")
        assert status["cycles"][0]["outcome"] == "running"
        text = snsync("status").stdout
        assert f"RUNNING: a cycle in process {process.pid}" in text
    finally:
        process.send_signal(signal.SIGTERM)
        out, err = process.communicate(timeout=30)
    assert process.returncode == 0, err
    assert ": interrupted." in out.splitlines()[0]
    assert "INTERRUPTED: " in out and "snsync run --once" in out
    status = snsync.json("status")
    assert status["running"] is None
    assert status["cycles"][0]["outcome"] == "interrupted"
    assert not (slow_sandbox.directory / "state.db.running").exists()


def test_a_killed_run_is_not_shown_running(slow_sandbox: RunningSandbox) -> None:
    snsync = Snsync(slow_sandbox, slow_sandbox.config_path)
    process = snsync_process(slow_sandbox.config_path, "run", "--once")
    wait_until(lambda: slow_sandbox.servicenow_app.write_count() >= 1)
    process.kill()
    process.communicate(timeout=30)
    status = snsync.json("status")
    assert status["running"] is None, "the activity file of a dead process is not believed"
    assert status["cycles"][0]["outcome"] == "interrupted"
    assert json.dumps(status)


def test_metrics_say_full_then_incremental(snsync: Snsync, tmp_path: Path) -> None:
    prom = tmp_path / "snsync.prom"
    seen = []
    for _ in range(2):
        assert snsync("run", "--once", "--metrics-file", str(prom)).exit_code in (0, 1)
        line = next(x for x in prom.read_text().splitlines() if x.startswith("snsync_cycle_full "))
        seen.append(line.split()[1])
    assert [float(v) for v in seen] == [1.0, 0.0]


def test_auth_quarantine_is_per_credentials(snsync: Snsync, sandbox: RunningSandbox) -> None:
    secret_file = sandbox.directory / "graph-client-secret.txt"
    good = secret_file.read_text()
    secret_file.write_text("wrong-one")
    assert [snsync("run", "--once").exit_code for _ in range(2)] == [3, 3]
    secret_file.write_text("wrong-two")  # another config sharing the state: its own count
    assert snsync("run", "--once").exit_code == 3
    assert snsync.json("status")["quarantine"] is None, "2 + 1 failures of two credentials"
    assert [snsync("run", "--once").exit_code for _ in range(2)] == [3, 3]
    quarantined = snsync("run", "--once")
    assert quarantined.exit_code == 4 and "authentication failed 3 cycles" in quarantined.stderr
    secret_file.write_text(good)  # the fix
    fixed = snsync("run", "--once")
    assert fixed.exit_code in (0, 1), fixed.output
    assert "auth quarantine lifted: the credentials or endpoints changed" in fixed.stderr
    assert snsync.json("status")["quarantine"] is None
