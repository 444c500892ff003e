"""`python -m benchmarks.snsync_child CONFIG [--dry-run] [--full] [--cprofile PATH]`: one
snsync cycle in this process, which imports nothing but snsync, then its figures as JSON on the
last line of stdout: wall time, CPU seconds and high-water RSS from `resource.getrusage`,
snsync's request counters, results by action and failures. `--cprofile` writes the cycle's
cProfile statistics (CPU time)."""

from __future__ import annotations

import argparse
import cProfile
import json
import resource
import time
from pathlib import Path
from typing import Any

from snsync.config import load_config
from snsync.connections import connect
from snsync.engine.cycle import run_cycle
from snsync.state import State

MAX_FAILURES_SHOWN = 3


def measured_cycle(
    config_path: Path,
    *,
    dry_run: bool = False,
    full: bool = False,
    cprofile: Path | None = None,
) -> dict[str, Any]:
    """Run one cycle as `snsync run --once` (or `snsync run --dry-run`) does and measure it."""
    config = load_config(config_path)
    # CPU time, not wall time: other processes on the machine must not look like a slow step.
    profiler = cProfile.Profile(time.process_time) if cprofile else None
    start = resource.getrusage(resource.RUSAGE_SELF)
    start_rss = peak_rss_bytes(start)
    started = time.perf_counter()
    if profiler:
        profiler.enable()
    conns = connect(config, read_only=dry_run)
    state = State(config.state.path)
    try:
        report = run_cycle(config, conns, state, dry_run=dry_run, force_full=full)
    finally:
        conns.close()
        state.close()
        if profiler:
            profiler.disable()
    wall = time.perf_counter() - started
    if profiler and cprofile:
        profiler.dump_stats(cprofile)
    end = resource.getrusage(resource.RUSAGE_SELF)
    failures = [f"{r.item.display_name}: {r.message}" for r in report.failures()]
    return {
        "wall_s": wall,
        "cpu_s": (end.ru_utime - start.ru_utime) + (end.ru_stime - start.ru_stime),
        "peak_rss_bytes": peak_rss_bytes(end),
        "start_rss_bytes": start_rss,
        "requests": dict(report.requests),
        "actions": report.counts(),
        "unchanged": report.planned.unchanged,
        "failures": failures[:MAX_FAILURES_SHOWN],
        "failure_count": len(failures),
    }


def peak_rss_bytes(usage: resource.struct_rusage) -> int:
    """This process's high-water RSS. Linux's `ru_maxrss` survives exec, so a child forked from
    a big parent would report the parent's size; the kernel's VmHWM starts afresh at exec and is
    preferred where it exists."""
    try:
        for line in Path("/proc/self/status").read_text(encoding="ascii").splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    return usage.ru_maxrss * 1024  # kilobytes on Linux


def main(argv: list[str] | None = None) -> int:
    """Entry point."""
    parser = argparse.ArgumentParser(prog="python -m benchmarks.snsync_child")
    parser.add_argument("config", type=Path)
    parser.add_argument("--dry-run", action="store_true")
    parser.add_argument("--full", action="store_true", help="a full read even if one is not due")
    parser.add_argument("--cprofile", type=Path)
    args = parser.parse_args(argv)
    figures = measured_cycle(
        args.config, dry_run=args.dry_run, full=args.full, cprofile=args.cprofile
    )
    print(json.dumps(figures))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
