"""`python -m benchmarks.snsync_child CONFIG`: one snsync cycle in this process, which imports
nothing but snsync, then its figures as JSON on stdout: wall time, CPU seconds and high-water RSS
from `resource.getrusage`, snsync's request counters, results by action and failures."""

from __future__ import annotations

import json
import resource
import sys
import time
from pathlib import Path
from typing import Any

from snsync.config import load_config
from snsync.connections import connect
from snsync.engine.cycle import run_cycle
from snsync.state import State

MAX_FAILURES_SHOWN = 3


def measured_cycle(config_path: Path) -> dict[str, Any]:
    """Run one cycle as `snsync run --once` does and measure it."""
    config = load_config(config_path)
    start = resource.getrusage(resource.RUSAGE_SELF)
    started = time.perf_counter()
    conns = connect(config, read_only=False)
    state = State(config.state.path)
    try:
        report = run_cycle(config, conns, state)
    finally:
        conns.close()
        state.close()
    wall = time.perf_counter() - started
    end = resource.getrusage(resource.RUSAGE_SELF)
    failures = [f"{r.item.display_name}: {r.message}" for r in report.failures()]
    return {
        "wall_s": wall,
        "cpu_s": (end.ru_utime - start.ru_utime) + (end.ru_stime - start.ru_stime),
        "peak_rss_bytes": end.ru_maxrss * 1024,  # Linux reports kilobytes
        "start_rss_bytes": start.ru_maxrss * 1024,
        "requests": dict(report.requests),
        "actions": report.counts(),
        "unchanged": report.planned.unchanged,
        "failures": failures[:MAX_FAILURES_SHOWN],
        "failure_count": len(failures),
    }


def main(argv: list[str]) -> int:
    """Entry point: the config path is the only argument."""
    if len(argv) != 1:
        print("usage: python -m benchmarks.snsync_child CONFIG", file=sys.stderr)
        return 2
    print(json.dumps(measured_cycle(Path(argv[0]))))
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
