"""Run one snsync cycle in this process against a sandbox and measure it: wall time, requests
(snsync's own counters and the servers'), actions, failures and memory."""

from __future__ import annotations

import resource
import time
import tracemalloc
from dataclasses import dataclass
from pathlib import Path

import yaml

from benchmarks.sandbox_host import Sandbox, ServerCounts
from snsync.config import Config, load_config
from snsync.connections import connect
from snsync.engine.cycle import CycleReport, run_cycle
from snsync.state import State

MAX_FAILURES_SHOWN = 3


@dataclass(frozen=True)
class CycleFigures:
    """What one measured snsync cycle did and cost."""

    wall_s: float
    requests: dict[str, int]  # snsync's counters: graph_reads, servicenow_reads/_writes, retries
    server: ServerCounts  # what the sandbox saw during the cycle
    actions: dict[str, dict[str, int]]  # results by action, then status
    unchanged: int
    failures: tuple[str, ...]
    failure_count: int
    peak_bytes: int | None  # tracemalloc peak (Python heap) of the cycle; None when not traced
    max_rss_bytes: int  # the benchmark process's high-water RSS so far


def bench_config(path: Path, cap: int) -> Config:
    """The sandbox's config.yaml with servicenow.max_concurrency set to the cap, loaded."""
    data = yaml.safe_load(path.read_text(encoding="utf-8"))
    data["servicenow"]["max_concurrency"] = cap
    path.write_text(yaml.safe_dump(data, sort_keys=False), encoding="utf-8")
    return load_config(path)


def run_snsync(sandbox: Sandbox, config: Config, *, trace_memory: bool = True) -> CycleFigures:
    """One full cycle (connect, read, plan, write, record), as `snsync run --once` makes it."""
    before = sandbox.counts()
    if trace_memory:
        tracemalloc.start()
    started = time.perf_counter()
    try:
        report = _cycle(config)
    finally:
        wall = time.perf_counter() - started
        peak = tracemalloc.get_traced_memory()[1] if trace_memory else None
        if trace_memory:
            tracemalloc.stop()
    failures = [f"{r.item.display_name}: {r.message}" for r in report.failures()]
    return CycleFigures(
        wall_s=wall,
        requests=dict(report.requests),
        server=sandbox.counts().since(before),
        actions=report.counts(),
        unchanged=report.planned.unchanged,
        failures=tuple(failures[:MAX_FAILURES_SHOWN]),
        failure_count=len(failures),
        peak_bytes=peak,
        max_rss_bytes=resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024,
    )


def _cycle(config: Config) -> CycleReport:
    conns = connect(config, read_only=False)
    state = State(config.state.path)
    try:
        return run_cycle(config, conns, state)
    finally:
        conns.close()
        state.close()
