"""`python -m benchmarks.memory_child CONFIG [--tracemalloc OUT] [--top N]`: one real snsync
cycle in this process, measured as `benchmarks.snsync_child` measures it (CPU, VmHWM, requests),
with the RSS at each phase boundary (after the read and plan, after the writes, when the state
records the cycle). With `--tracemalloc`, the Python heap is traced and, at each boundary, the
`--top` source lines holding the most memory are written to OUT: for finding where the memory is
(tracing slows the cycle down several times, so its CPU figures are not the ones to quote)."""

from __future__ import annotations

import argparse
import gc
import json
import sys
import time
import tracemalloc
from collections.abc import Callable
from pathlib import Path
from typing import Any

import snsync.engine.cycle as cycle_module
from benchmarks.snsync_child import measured_cycle
from snsync.state import State

Phases = dict[str, int]


def current_rss_bytes() -> int:
    """This process's RSS now (VmRSS), 0 where there is no /proc."""
    try:
        for line in Path("/proc/self/status").read_text(encoding="ascii").splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 0


def top_lines(title: str, limit: int) -> str:
    """The traced heap now: total, and the `limit` lines holding the most."""
    snapshot = tracemalloc.take_snapshot().filter_traces(
        [tracemalloc.Filter(False, tracemalloc.__file__)]
    )
    stats = snapshot.statistics("lineno")
    total = sum(s.size for s in stats)
    lines = [f"== {title}: traced heap {total / 2**20:.1f} MiB"]
    for stat in stats[:limit]:
        frame = stat.traceback[0]
        lines.append(
            f"{stat.size / 2**20:8.1f} MiB {stat.count:>9,} blocks  {frame.filename}:{frame.lineno}"
        )
    # Allocations made inside the standard library (dataclasses.replace, json), by their caller.
    for stat in snapshot.statistics("traceback")[:limit]:
        frames = stat.traceback
        if len(frames) > 1 and any("/snsync/" not in f.filename for f in frames):
            callers = " <- ".join(f"{f.filename.rsplit('/', 2)[-1]}:{f.lineno}" for f in frames)
            lines.append(f"{stat.size / 2**20:8.1f} MiB  {callers}")
    return "\n".join(lines)


def instrument(phases: Phases, report: list[str], trace: bool, limit: int, collector: str) -> None:
    """Note the RSS (and the traced heap) at the phase boundaries of a cycle; `collector`
    "freeze" or "off": gc.freeze() or gc.disable() once the cycle is planned (an experiment)."""

    def mark(name: str) -> None:
        phases[name] = current_rss_bytes()
        if trace:
            peak = tracemalloc.get_traced_memory()[1]
            report.append(f"(traced peak before this point: {peak / 2**20:.1f} MiB)")
            report.append(top_lines(name, limit))
            tracemalloc.reset_peak()
        if name == "read and planned" and collector == "freeze":
            gc.freeze()
        elif name == "read and planned" and collector == "off":
            gc.disable()

    def before(name: str, wrapped: Callable[..., Any]) -> Callable[..., Any]:
        def call(*args: Any, **kwargs: Any) -> Any:
            mark(name)
            return wrapped(*args, **kwargs)

        return call

    for name, phase in (("execute_waves", "read and planned"), ("cycle_record", "written")):
        setattr(cycle_module, name, before(phase, getattr(cycle_module, name)))
    State.record_cycle = before("recording", State.record_cycle)  # type: ignore[method-assign]


class CollectorClock:
    """CPU seconds spent in the garbage collector, and its collections by generation."""

    def __init__(self) -> None:
        self.seconds = 0.0
        self.collections = [0, 0, 0]
        self._started = 0.0
        gc.callbacks.append(self._event)

    def _event(self, phase: str, info: dict[str, int]) -> None:
        if phase == "start":
            self._started = time.process_time()
        else:
            self.seconds += time.process_time() - self._started
            self.collections[info["generation"]] += 1


def main(argv: list[str] | None = None) -> int:
    """Entry point."""
    parser = argparse.ArgumentParser(prog="python -m benchmarks.memory_child")
    parser.add_argument("config", type=Path)
    parser.add_argument("--tracemalloc", type=Path, help="write the heap's top lines here")
    parser.add_argument("--top", type=int, default=25)
    parser.add_argument(
        "--gc",
        choices=("default", "freeze", "off", "lazy"),
        default="default",
        help="the collector during the writes: as is, gc.freeze() after planning, or disabled",
    )
    args = parser.parse_args(argv)
    phases: Phases = {}
    report: list[str] = []
    if args.tracemalloc:
        tracemalloc.start(3)
    instrument(phases, report, bool(args.tracemalloc), args.top, args.gc)
    if args.gc == "lazy":  # an experiment: young collections 100 times rarer
        gc.set_threshold(70_000, 10, 10)
    clock = CollectorClock()
    figures = measured_cycle(args.config)
    figures["gc_s"], figures["gc_collections"] = clock.seconds, clock.collections
    if args.tracemalloc:
        report.append(top_lines("after the cycle", args.top))
        args.tracemalloc.write_text("\n\n".join(report) + "\n", encoding="utf-8")
    figures["phase_rss_bytes"] = phases
    print(f"gc collections by generation: {clock.collections}", file=sys.stderr)
    print(json.dumps(figures))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
