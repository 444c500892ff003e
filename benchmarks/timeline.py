"""`make bench BENCH=timeline` (`python -m benchmarks.timeline`): where the wall time of one
first sync goes.

One cycle of a scenario (by default `empty`, 1,000 users) runs in a fresh snsync process
(`benchmarks/timeline_child.py`) against a sandbox with a latency profile, and records every
HTTP answer and every write result with its time. Printed: the phases (read, plan, write,
record), how much of the Graph and ServiceNow reads overlapped, and for the write phase and each
wave of the plan: its items, when its first and last result came back, and the average number
of ServiceNow requests in flight (against `servicenow.max_concurrency`): a wave that keeps few
requests in flight leaves the instance's threads idle.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from benchmarks.bound import PROFILES
from benchmarks.measure import ROOT, bench_config
from benchmarks.run import SHARE_PRESENT
from benchmarks.sandbox_host import Sandbox, SandboxSetup, make_host
from benchmarks.scenarios import ScenarioSpec, generate

Span = tuple[float, float]


@dataclass(frozen=True)
class Timeline:
    """What the child recorded."""

    requests: list[dict[str, Any]]
    results: list[dict[str, Any]]
    marks: dict[str, float]
    waves: list[list[str]]
    concurrency: int

    def of(self, service: str, start: float = 0.0, end: float = float("inf")) -> list[Span]:
        """(start, end) of the service's requests that ended within [start, end]."""
        return [
            (r["start"], r["end"])
            for r in self.requests
            if r["service"] == service and start <= r["end"] <= end
        ]


def union(spans: Iterable[Span]) -> float:
    """Seconds covered by at least one span."""
    total, reach = 0.0, float("-inf")
    for start, end in sorted(spans):
        if end <= reach:
            continue
        total += end - max(start, reach)
        reach = end
    return total


def in_flight(spans: Iterable[Span], start: float, end: float) -> float:
    """Average number of spans open during [start, end]."""
    if end <= start:
        return 0.0
    busy = sum(max(0.0, min(e, end) - max(s, start)) for s, e in spans)
    return busy / (end - start)


def phases(t: Timeline) -> list[str]:
    """Read, plan, write and record, and what overlapped while reading."""
    planned, done = t.marks.get("planned", 0.0), t.marks["done"]
    reads = [r for r in t.requests if r["end"] <= planned]
    read_end = max((r["end"] for r in reads), default=0.0)
    writes = [r for r in t.requests if r["start"] >= planned]
    write_start = min((r["start"] for r in writes), default=planned)
    write_end = max((r["end"] for r in writes), default=planned)
    graph, sn = t.of("graph", 0.0, planned), t.of("servicenow", 0.0, planned)
    busy = in_flight(t.of("servicenow", planned), write_start, write_end)
    lines = [
        f"read   0.00 - {read_end:6.2f} s  ({read_end:.2f} s): Graph {len(graph)} requests "
        f"(busy {union(graph):.2f} s, {sum(e - s for s, e in graph):.2f} s summed), ServiceNow "
        f"{len(sn)} requests (busy {union(sn):.2f} s); both busy together "
        f"{union(graph) + union(sn) - union(graph + sn):.2f} s",
        f"plan   {read_end:6.2f} - {planned:6.2f} s  ({planned - read_end:.2f} s)",
        f"write  {write_start:6.2f} - {write_end:6.2f} s  ({write_end - write_start:.2f} s): "
        f"{len(writes)} requests, {busy:.1f} in flight on average (cap {t.concurrency})",
        f"record {write_end:6.2f} - {done:6.2f} s  ({done - write_end:.2f} s)",
    ]
    return lines


def waves(t: Timeline) -> list[str]:
    """One line per wave of the plan: items, writes, when its first and last result came back
    (waves overlap in time: an item starts once what it references exists)."""
    at: dict[str, list[float]] = {}
    for r in t.results:
        if r["writes"]:
            at.setdefault(r["key"], []).append(r["at"])
    lines = ["wave  kinds                      items  writes   first s    last s"]
    for number, keys in enumerate(t.waves):
        kinds = sorted({k.split("|", 2)[0] + " " + k.split("|", 2)[1] for k in keys})
        times = [s for k in keys for s in at.get(k, ())]
        first, last = (f"{min(times):9.2f}", f"{max(times):9.2f}") if times else ("-", "-")
        lines.append(
            f"{number:>4}  {', '.join(kinds)[:25]:25} {len(keys):>6} {len(times):>7} "
            f"{first:>9} {last:>9}"
        )
    return lines


def occupancy(t: Timeline, slices: int = 10) -> str:
    """ServiceNow requests in flight, on average, in each tenth of the write phase."""
    planned = t.marks.get("planned", 0.0)
    spans = t.of("servicenow", planned)
    if not spans:
        return "no writes"
    start, end = min(s for s, _ in spans), max(e for _, e in spans)
    step = (end - start) / slices
    shares = [in_flight(spans, start + i * step, start + (i + 1) * step) for i in range(slices)]
    return (
        f"in flight by tenth of the write phase ({step:.2f} s each, cap {t.concurrency}): "
        + " ".join(f"{x:.1f}" for x in shares)
    )


def run(args: argparse.Namespace) -> Timeline:
    profile = PROFILES[args.profile]
    groups = args.groups if args.groups is not None else max(1, args.users // 50)
    spec = ScenarioSpec(args.users, groups, SHARE_PRESENT[args.scenario], seed=args.seed)
    scenario = generate(spec)
    folder = args.workdir.resolve() / f"timeline-{args.scenario}-{args.users}"
    shutil.rmtree(folder, ignore_errors=True)  # a fresh sandbox and state every time
    tenant, instance = scenario.write_fixtures(folder)
    host = make_host("process")
    try:
        sandbox = Sandbox(host, SandboxSetup(tenant, instance, folder / "sandbox", profile))
        config = bench_config(sandbox.config_path, {"servicenow": {"max_concurrency": profile.cap}})
        out = folder / "timeline.json"
        load = os.getloadavg()[0]
        command = [sys.executable, "-m", "benchmarks.timeline_child", str(config), str(out)]
        done = subprocess.run(command, capture_output=True, text=True, check=False, cwd=ROOT)
        if done.returncode:
            raise SystemExit(f"the snsync child failed: {done.stderr.strip()[-500:]}")
        print(f"load average (1 min) {load:.2f} before, {os.getloadavg()[0]:.2f} after")
        sandbox.stop()
    finally:
        host.close()
    return Timeline(**json.loads(out.read_text(encoding="utf-8")))


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of `python -m benchmarks.timeline`."""
    parser = argparse.ArgumentParser(prog="python -m benchmarks.timeline", description=__doc__)
    parser.add_argument("--users", type=int, default=1000)
    parser.add_argument("--groups", type=int, help="default: 20 per 1,000 users")
    parser.add_argument("--scenario", choices=sorted(SHARE_PRESENT), default="empty")
    parser.add_argument("--profile", choices=sorted(PROFILES), default="today")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--workdir", type=Path, default=Path(".bench"))
    args = parser.parse_args(argv)
    timeline = run(args)
    print(f"timeline of a first sync ({args.scenario}, {args.users:,} users, {args.profile})")
    print("\n".join(phases(timeline)))
    print("\n".join(waves(timeline)))
    print(occupancy(timeline))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
