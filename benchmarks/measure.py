"""Run one snsync cycle in a fresh child process (`benchmarks/snsync_child.py`), as
`snsync run --once` would, and measure it:
wall time, client CPU seconds and peak RSS of that process (`resource.getrusage`), requests
(snsync's own counters and the servers'), actions and failures.

The child runs nothing but snsync (the sandbox is served by another process), so its CPU time and
its high-water RSS are snsync's own: interpreter and imports included, as in production.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from benchmarks.sandbox_host import Sandbox, ServerCounts

CHILD_TIMEOUT_S = 6 * 3600
ROOT = Path(__file__).resolve().parents[1]  # where `python -m benchmarks...` imports from


@dataclass(frozen=True)
class CycleFigures:
    """What one measured snsync cycle did and cost."""

    wall_s: float
    cpu_s: float  # user + system CPU of the snsync process during the cycle
    peak_rss_bytes: int  # high-water RSS of the snsync process (imports included)
    start_rss_bytes: int  # its RSS high-water mark before the cycle (interpreter and imports)
    requests: dict[str, int]  # snsync's counters: graph_reads, servicenow_reads/_writes, retries
    server: ServerCounts  # what the sandbox saw during the cycle
    actions: dict[str, dict[str, int]]  # results by action, then status
    unchanged: int
    failures: tuple[str, ...]
    failure_count: int
    load: tuple[float, float] = (0.0, 0.0)  # the machine's 1-minute load average before, after


def bench_config(path: Path, settings: dict[str, dict[str, Any]]) -> Path:
    """Merge `settings` (section -> keys) into the sandbox's config.yaml; returns its path."""
    data = yaml.safe_load(path.read_text(encoding="utf-8"))
    for section, values in settings.items():
        data.setdefault(section, {}).update(values)
    path.write_text(yaml.safe_dump(data, sort_keys=False), encoding="utf-8")
    return path


def run_snsync(
    sandbox: Sandbox,
    config_path: Path,
    *,
    dry_run: bool = False,
    full: bool = False,
    cprofile: Path | None = None,
) -> CycleFigures:
    """One cycle (connect, read, plan, write, record) in a fresh child process."""
    before = sandbox.counts()
    load_before = os.getloadavg()[0]
    command = [sys.executable, "-m", "benchmarks.snsync_child", str(config_path)]
    command += ["--dry-run"] if dry_run else []
    command += ["--full"] if full else []
    command += ["--cprofile", str(cprofile)] if cprofile else []
    value = run_child(command)
    value["failures"] = tuple(value["failures"])
    load = (load_before, os.getloadavg()[0])
    return CycleFigures(server=sandbox.counts().since(before), load=load, **value)


def run_child(command: list[str]) -> dict[str, Any]:
    """Run a benchmark child process (from the repository's root) and return the JSON object
    its last line of output holds; a failed child raises with its last line of stderr."""
    done = subprocess.run(
        command, capture_output=True, text=True, timeout=CHILD_TIMEOUT_S, check=False, cwd=ROOT
    )
    if done.returncode != 0:
        last = (done.stderr.strip().splitlines() or ["no output"])[-1]
        raise RuntimeError(f"the snsync child process failed (exit {done.returncode}): {last}")
    value: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return value
