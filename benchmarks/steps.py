"""`make bench BENCH=steps` (`python -m benchmarks.steps`): the quadratic-step check.

A dry run with a full read (read everything, plan everything, write nothing) runs under cProfile
at several sizes: by default a first sync of the `half` scenario (half of the users are adopted
by matching); with `--linked`, after a real first sync without profiling, so that every user is
linked. Each run is in a fresh snsync process against a sandbox without latency. The profiler's
clock is the process's CPU time, so other work on the machine does not look like a slow step;
it follows the main thread's calls (worker threads' CPU counts towards the call waiting for
them). For every snsync function that takes a noticeable share of the largest run, it prints the
cumulative seconds at each size and the growth exponent between the two largest sizes (log of
the time ratio over log of the size ratio: 1 is linear, 2 quadratic), and names the steps that
grow faster than N.
"""

from __future__ import annotations

import argparse
import math
import pstats
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from benchmarks.bound import LatencyProfile
from benchmarks.measure import bench_config, run_snsync
from benchmarks.run import SHARE_PRESENT
from benchmarks.sandbox_host import Sandbox, SandboxSetup, make_host
from benchmarks.scenarios import ScenarioSpec, generate

SNSYNC_PATH = "/snsync/"
MIN_SHARE = 0.02  # of the largest run's total, for a function to be shown
MIN_SECONDS = 0.05  # below this a growth exponent is noise
FASTER_THAN_N = 1.3  # exponent above which a step is reported as growing faster than N
QUIET = LatencyProfile(0.0, 0.0, 16, "none")

FunctionKey = tuple[str, int, str]


@dataclass(frozen=True)
class Growth:
    """One function's cumulative seconds at each size, and its growth exponent."""

    name: str
    seconds: tuple[float, ...]
    exponent: float | None  # None when the times are too small to tell

    @property
    def faster_than_n(self) -> bool:
        return self.exponent is not None and self.exponent > FASTER_THAN_N


def cumulative(stats: pstats.Stats) -> dict[FunctionKey, float]:
    """Cumulative seconds by function, for functions in snsync's own code."""
    table: dict[FunctionKey, tuple[int, int, float, float, object]] = stats.stats  # type: ignore[attr-defined]
    return {key: row[3] for key, row in table.items() if SNSYNC_PATH in key[0]}


def growth(sizes: Sequence[int], runs: Sequence[dict[FunctionKey, float]]) -> list[Growth]:
    """Functions of the largest run over MIN_SHARE of its total, slowest first."""
    largest = runs[-1]
    total = max(largest.values(), default=0.0)
    rows = []
    for key, seconds in largest.items():
        if total <= 0 or seconds < MIN_SHARE * total:
            continue
        times = tuple(run.get(key, 0.0) for run in runs)
        rows.append(Growth(_name(key), times, exponent(sizes[-2:], times[-2:])))
    return sorted(rows, key=lambda g: -g.seconds[-1])


def exponent(sizes: Sequence[int], seconds: Sequence[float]) -> float | None:
    """log(t2 / t1) / log(n2 / n1), or None when either time is under MIN_SECONDS."""
    (n1, n2), (t1, t2) = sizes, seconds
    if min(t1, t2) < MIN_SECONDS or n1 == n2:
        return None
    return math.log(t2 / t1) / math.log(n2 / n1)


def report(sizes: Sequence[int], rows: Sequence[Growth]) -> str:
    """The table and the verdict."""
    heads = ["function", *(f"s @{n:,}" for n in sizes), "exponent"]
    lines = [heads]
    for g in rows:
        shown = "n/a" if g.exponent is None else f"{g.exponent:.2f}"
        lines.append([g.name, *(f"{t:.2f}" for t in g.seconds), shown])
    widths = [max(len(line[i]) for line in lines) for i in range(len(heads))]
    text = [
        "  ".join(
            [
                line[0].ljust(widths[0]),
                *(c.rjust(w) for c, w in zip(line[1:], widths[1:], strict=True)),
            ]
        )
        for line in lines
    ]
    fast = [g.name for g in rows if g.faster_than_n]
    verdict = (
        f"steps growing faster than N (exponent > {FASTER_THAN_N}): " + ", ".join(fast)
        if fast
        else f"no step grows faster than N (every exponent <= {FASTER_THAN_N} or too small to tell)"
    )
    return "\n".join([*text, verdict])


@dataclass(frozen=True)
class Setup:
    """What each profiled run starts from."""

    scenario: str  # empty | half
    linked: bool  # a real first sync before the profiled dry run
    groups_per_1000: int
    seed: int
    workdir: Path


def profile_size(users: int, setup: Setup) -> dict[FunctionKey, float]:
    """One profiled dry run at `users` users; cumulative seconds by snsync function."""
    groups = max(1, users * setup.groups_per_1000 // 1000)
    spec = ScenarioSpec(users, groups, SHARE_PRESENT[setup.scenario], seed=setup.seed)
    scenario = generate(spec)
    workdir = setup.workdir
    folder = workdir / f"steps-{users}"
    tenant, instance = scenario.write_fixtures(folder)
    host = make_host("process")
    try:
        sandbox = Sandbox(host, SandboxSetup(tenant, instance, folder / "sandbox", QUIET))
        config = bench_config(sandbox.config_path, {"servicenow": {"max_concurrency": QUIET.cap}})
        out = folder / "cycle.prof"
        if setup.linked:
            run_snsync(sandbox, config)
        figures = run_snsync(sandbox, config, dry_run=True, full=True, cprofile=out)
        print(
            f"dry run at {users:,} users: {figures.wall_s:.2f} s wall, {figures.cpu_s:.2f} s CPU, "
            f"peak RSS {figures.peak_rss_bytes / 2**20:.1f} MiB",
            file=sys.stderr,
            flush=True,
        )
        sandbox.stop()
    finally:
        host.close()
    return cumulative(pstats.Stats(str(out)))


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of `python -m benchmarks.steps`."""
    parser = argparse.ArgumentParser(prog="python -m benchmarks.steps", description=__doc__)
    parser.add_argument("--sizes", default="2500,5000,10000", help="users per run, ascending")
    parser.add_argument("--scenario", choices=sorted(SHARE_PRESENT), default="half")
    parser.add_argument("--linked", action="store_true", help="real first sync, then the dry run")
    parser.add_argument("--groups-per-1000", type=int, default=20)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--workdir", type=Path, default=Path(".bench"))
    args = parser.parse_args(argv)
    sizes = sorted({int(n) for n in args.sizes.split(",")})
    if len(sizes) < 2 or sizes[0] < 1:
        parser.error("--sizes needs at least two different positive sizes")
    setup = Setup(
        args.scenario, args.linked, args.groups_per_1000, args.seed, args.workdir.resolve()
    )
    runs = [profile_size(n, setup) for n in sizes]
    after = "after a real first sync" if setup.linked else "as a first sync"
    print(
        f"quadratic-step check: dry run with a full read of scenario {setup.scenario} {after}, "
        f"under cProfile (CPU seconds), sizes {sizes}"
    )
    print(report(sizes, growth(sizes, runs)))
    return 0


def _name(key: FunctionKey) -> str:
    path, line, function = key
    short = path[path.rfind(SNSYNC_PATH) + 1 :]
    return f"{short}:{line}({function})"


if __name__ == "__main__":
    raise SystemExit(main())
