"""What snsync prints, as real processes against the sandbox: -q silent, -v phases, -vv requests
and writes, JSON-only stderr, the log file, and crafted directory values that cannot forge a line
or reach the terminal as control sequences."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from snsync.sandbox.runner import RunningSandbox

from .conftest import GraphAdmin, Snsync

FORGED_LINE = "2026-12-01T03:00:00.000Z ERROR snsync: every user was deleted"
CRAFTED = f"Mallory\n{FORGED_LINE}\r\x1b[2J\x1b]0;owned\x07\x9b31m"


def snsync(config: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "snsync", "--config", str(config), *args],
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_quiet_cycle_prints_nothing(sandbox: RunningSandbox) -> None:
    done = snsync(sandbox.config_path, "run", "--once", "-q")
    assert (done.returncode, done.stdout, done.stderr) == (0, "", "")


def test_quiet_error_is_one_line(sandbox: RunningSandbox, tmp_path: Path) -> None:
    done = snsync(tmp_path / "missing.yaml", "-q", "run", "--once")
    assert done.returncode == 2 and done.stdout == ""
    [line] = done.stderr.splitlines()
    assert line.startswith("error: ") and "missing.yaml" in line


def test_verbose_logs_one_line_per_phase(sandbox: RunningSandbox) -> None:
    done = snsync(sandbox.config_path, "run", "--once", "-v")
    assert done.returncode == 0, done.stderr
    phases = [line for line in done.stderr.splitlines() if "snsync.progress" in line]
    assert any("reading users: 30 items in" in line for line in phases), phases
    assert any("planned: " in line for line in phases) and any(
        "applying: " in line for line in phases
    )
    assert not any(" GET " in line for line in phases), "-v has no request lines"
    assert done.stdout.startswith("Cycle 1 (full: ")


def test_very_verbose_logs_requests_and_writes(sandbox: RunningSandbox) -> None:
    done = snsync(sandbox.config_path, "-vv", "run", "--once")
    assert done.returncode == 0, done.stderr
    lines = done.stderr.splitlines()
    assert any("servicenow POST https://" in line and "-> 201 in" in line for line in lines), lines
    assert any("graph GET https://" in line for line in lines)
    assert any("write user Create 'Patti Fernandez'" in line for line in lines)
    secret = (sandbox.directory / "graph-client-secret.txt").read_text().strip()
    assert secret not in done.stderr


def test_json_logs_every_stderr_line_is_json_and_the_file_gets_the_same(
    sandbox: RunningSandbox, tmp_path: Path
) -> None:
    log_file = tmp_path / "snsync.log"
    done = snsync(
        sandbox.config_path,
        "run",
        "--once",
        "-v",
        "--log-format",
        "json",
        "--log-file",
        str(log_file),
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout == "", "the summary is a JSON record on stderr"
    records = [json.loads(line) for line in done.stderr.splitlines()]
    summary = records[-1]
    assert summary["message"].startswith("Cycle 1 (full: ") and summary["exit_code"] == 0
    assert summary["counts"]["user Create"]["Success"] == 10
    assert any(r.get("phase") == "applying" for r in records)
    assert log_file.read_text() == done.stderr
    assert log_file.stat().st_mode & 0o777 == 0o600


def test_json_logs_errors_too(sandbox: RunningSandbox, tmp_path: Path) -> None:
    for args in (["run", "--once"], ["run", "--no-such-option"]):
        done = snsync(tmp_path / "missing.yaml", "--log-format", "json", *args)
        assert done.returncode == 2
        [line] = done.stderr.splitlines()
        assert json.loads(line)["level"] == "ERROR"


def test_crafted_display_name_cannot_forge_a_line_or_drive_the_terminal(
    sandbox: RunningSandbox, graph_admin: GraphAdmin, tmp_path: Path
) -> None:
    user = graph_admin.create_user("mallory", displayName=CRAFTED, department=CRAFTED)
    graph_admin.assign(user["id"])
    plan = snsync(sandbox.config_path, "plan")
    run = snsync(sandbox.config_path, "-vv", "run", "--once", "--log-file", str(tmp_path / "l"))
    logs = snsync(sandbox.config_path, "logs", "--user", "mallory@contoso.example")
    status = Snsync(sandbox, sandbox.config_path)("logs", "--output", "json")
    assert plan.returncode == 0 and logs.returncode == 0, (plan.stderr, logs.stderr)
    outputs = {
        "plan": plan.stdout,
        "run stdout": run.stdout,
        "run stderr": run.stderr,
        "log file": (tmp_path / "l").read_text(),
        "logs": logs.stdout,
    }
    for name, text in outputs.items():
        for line in text.splitlines():
            assert not line.startswith(FORGED_LINE[:20]), (name, line)
        assert not any(c in text for c in "\r\x1b\x07\x9b"), name
    assert "Mallory\\n2026-12-01T03:00:00.000Z ERROR" in plan.stdout
    assert "Mallory\\n" in logs.stdout and "\\x1b]0;owned\\x07" in logs.stdout
    entries = json.loads(status.stdout)
    assert any(e["display_name"] == CRAFTED for e in entries), "JSON keeps the real value"
