"""`make bench BENCH=memory` (`python -m benchmarks.memory`): first syncs at several sizes, for
memory and client CPU per object.

Each size is a first sync (scenario `empty`: N users, N / 50 groups, every user created) into a
fresh sandbox without latency, served by a child process; snsync runs in its own fresh child
process (`benchmarks/memory_child.py`), so its CPU (`getrusage`) and peak RSS (`VmHWM`) are its
own. It prints, per size: the objects synced (users + assigned groups + memberships), the
requests, client CPU seconds and milliseconds per object, peak RSS, the RSS at the cycle's phase
boundaries, and the machine's load average before and after (the cores are shared).
`--tracemalloc` also writes, per size, the source lines holding the most Python heap at each
boundary (`memory-N.txt` in the work folder); tracing slows the cycle several times.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from benchmarks.bound import LatencyProfile
from benchmarks.measure import bench_config, run_child
from benchmarks.sandbox_host import Sandbox, SandboxSetup, make_host
from benchmarks.scenarios import ScenarioSpec, generate

QUIET = LatencyProfile(0.0, 0.0, 16, "none")
MIB = 2**20


@dataclass(frozen=True)
class SizeFigures:
    """One measured first sync."""

    users: int
    objects: int  # users + assigned groups + memberships the first sync must write
    written: int  # records the sandbox counted as written
    graph_requests: int
    servicenow_requests: int
    cpu_s: float
    gc_s: float  # of cpu_s, in the garbage collector
    gc_collections: tuple[int, ...]  # collections by generation
    wall_s: float
    peak_rss_bytes: int
    start_rss_bytes: int
    phases: dict[str, int]
    failures: int
    load: tuple[float, float]

    @property
    def cpu_ms_per_object(self) -> float:
        return 1000 * self.cpu_s / max(self.objects, 1)


def measure_size(
    users: int, workdir: Path, trace: bool, seed: int, collector: str = "default"
) -> SizeFigures:
    """A first sync of `users` users (and users / 50 groups) into an empty sandbox."""
    scenario = generate(ScenarioSpec(users, max(1, users // 50), 0.0, seed=seed))
    folder = workdir / f"memory-{users}"
    tenant, instance = scenario.write_fixtures(folder)
    objects = (
        scenario.creates_needed() + len(scenario.assigned_groups) + scenario.memberships_needed()
    )
    del scenario
    shutil.rmtree(folder / "sandbox", ignore_errors=True)  # a first sync: nothing left over
    host = make_host("process")
    try:
        sandbox = Sandbox(host, SandboxSetup(tenant, instance, folder / "sandbox", QUIET))
        config = bench_config(sandbox.config_path, {"servicenow": {"max_concurrency": QUIET.cap}})
        before = sandbox.counts()
        load = os.getloadavg()[0]
        value = _child(config, workdir / f"memory-{users}.txt" if trace else None, collector)
        seen = sandbox.counts().since(before)
        sandbox.stop()
    finally:
        host.close()
    return SizeFigures(
        users,
        objects,
        seen.servicenow_writes,
        seen.graph_requests,
        seen.servicenow_requests,
        value["cpu_s"],
        value["gc_s"],
        tuple(value["gc_collections"]),
        value["wall_s"],
        value["peak_rss_bytes"],
        value["start_rss_bytes"],
        value["phase_rss_bytes"],
        value["failure_count"],
        (load, os.getloadavg()[0]),
    )


def _child(config: Path, trace: Path | None, collector: str) -> dict[str, Any]:
    command = [sys.executable, "-m", "benchmarks.memory_child", str(config), "--gc", collector]
    command += ["--tracemalloc", str(trace)] if trace else []
    return run_child(command)


def table(rows: Sequence[SizeFigures]) -> str:
    """The figures, one line per size."""
    heads = [
        "users", "objects", "written", "Graph req", "SN req", "CPU s", "gc s", "CPU ms/object",
        "wall s", "peak RSS MiB", "start MiB", "planned MiB", "written MiB", "failures", "load",
    ]  # fmt: skip
    lines = [heads]
    for r in rows:
        lines.append(
            [
                f"{r.users:,}",
                f"{r.objects:,}",
                f"{r.written:,}",
                f"{r.graph_requests:,}",
                f"{r.servicenow_requests:,}",
                f"{r.cpu_s:.2f}",
                f"{r.gc_s:.2f}",
                f"{r.cpu_ms_per_object:.3f}",
                f"{r.wall_s:.2f}",
                f"{r.peak_rss_bytes / MIB:.1f}",
                f"{r.start_rss_bytes / MIB:.1f}",
                f"{r.phases.get('read and planned', 0) / MIB:.1f}",
                f"{r.phases.get('written', 0) / MIB:.1f}",
                str(r.failures),
                f"{r.load[0]:.1f}-{r.load[1]:.1f}",
            ]
        )
    widths = [max(len(line[i]) for line in lines) for i in range(len(heads))]
    return "\n".join(
        "  ".join(c.rjust(w) for c, w in zip(line, widths, strict=True)) for line in lines
    )


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of `python -m benchmarks.memory`."""
    parser = argparse.ArgumentParser(prog="python -m benchmarks.memory", description=__doc__)
    parser.add_argument("--sizes", default="1000,10000", help="users per first sync")
    parser.add_argument("--tracemalloc", action="store_true", help="write the heap's top lines")
    parser.add_argument(
        "--gc",
        choices=("default", "freeze", "off", "lazy"),
        default="default",
        help="experiments: gc.freeze() or gc.disable() once planned, or lazy young collections",
    )
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--workdir", type=Path, default=Path(".bench"))
    args = parser.parse_args(argv)
    sizes = sorted({int(n) for n in args.sizes.split(",")})
    if not sizes or sizes[0] < 1:
        parser.error("--sizes needs positive sizes")
    rows = []
    for users in sizes:
        workdir = args.workdir.resolve()
        rows.append(measure_size(users, workdir, args.tracemalloc, args.seed, args.gc))
        done = rows[-1]
        print(
            f"first sync of {users:,} users measured; collections by generation: "
            f"{done.gc_collections}",
            file=sys.stderr,
            flush=True,
        )
    print(
        "first sync (scenario empty, users / 50 groups) without latency; CPU: getrusage of the "
        "snsync process; peak RSS: its VmHWM; planned / written: its RSS before the writes and "
        "before the record; load: 1-minute load average before-after"
    )
    print(table(rows))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
