"""The cron line and the systemd unit of README.md and docs/operations.md, copied as written, run a
cycle against the sandbox as real processes; and the two documents say the same about them."""

from __future__ import annotations

import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

from snsync.sandbox.runner import RunningSandbox

from .conftest import ServiceNowAdmin

ROOT = Path(__file__).resolve().parents[2]
DOCS = {"README": ROOT / "README.md", "operations": ROOT / "docs" / "operations.md"}
SNSYNC = Path(sys.executable).with_name("snsync")


def blocks(text: str, language: str) -> list[str]:
    return re.findall(rf"```{language}\n(.*?)```", text, flags=re.S)


def cron_line(doc: str) -> str:
    [block] = blocks(DOCS[doc].read_text(), "cron")
    [line] = [x for x in block.splitlines() if x.strip() and not x.startswith("#")]
    return line.split(None, 5)[5]  # the command after the five schedule fields


def unit_lines(doc: str, key: str) -> list[str]:
    units = "\n".join(blocks(DOCS[doc].read_text(), "ini"))
    return [line.split("=", 1)[1] for line in units.splitlines() if line.startswith(f"{key}=")]


def localised(command: str, sandbox: RunningSandbox, tmp_path: Path) -> str:
    """The documented command with its system paths pointed at the sandbox and tmp_path."""
    for system_path, local in (
        ("/opt/snsync/bin/snsync", str(SNSYNC)),
        ("/etc/snsync/config.yaml", str(sandbox.config_path)),
        ("/var/log/snsync.log", str(tmp_path / "snsync.log")),
        ("/var/lib/node_exporter/textfile/snsync.prom", str(tmp_path / "snsync.prom")),
    ):
        command = command.replace(system_path, local)
    leftover = re.findall(r"(?<![\w.-])/(?:etc|var|opt)/\S+", command)
    assert not leftover, f"a documented path this test does not know: {leftover}"
    return command


def environment() -> dict[str, str]:
    return {"PATH": f"{SNSYNC.parent}:/usr/bin:/bin", "LANG": "C.UTF-8"}


@pytest.mark.parametrize("doc", sorted(DOCS))
def test_the_cron_line_as_written_syncs_quietly(
    doc: str, sandbox: RunningSandbox, sn_admin: ServiceNowAdmin, tmp_path: Path
) -> None:
    command = localised(cron_line(doc), sandbox, tmp_path)
    done = subprocess.run(
        ["/bin/sh", "-c", command], env=environment(), capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, (command, done.stdout, done.stderr)
    assert (tmp_path / "snsync.log").read_text() == "", "-q: a good cycle prints nothing"
    assert len(sn_admin.rows("sys_user", "sourceSTARTSWITHentra:")) == 14


@pytest.mark.parametrize("doc", sorted(DOCS))
def test_the_systemd_unit_as_written_runs_a_cycle(
    doc: str, sandbox: RunningSandbox, sn_admin: ServiceNowAdmin, tmp_path: Path
) -> None:
    [exec_start] = unit_lines(doc, "ExecStart")
    [success] = unit_lines(doc, "SuccessExitStatus")
    argv = shlex.split(localised(exec_start, sandbox, tmp_path))
    done = subprocess.run(argv, env=environment(), capture_output=True, text=True, timeout=120)
    assert done.returncode in {0, *map(int, success.split())}, done.stderr
    assert done.returncode == 0, done.stderr
    assert len(sn_admin.rows("sys_user", "sourceSTARTSWITHentra:")) == 14


def test_readme_and_operations_agree_on_the_unit() -> None:
    for key in ("SuccessExitStatus", "Type", "User", "EnvironmentFile"):
        assert unit_lines("README", key) == unit_lines("operations", key), key
