"""`make bench BENCH=writes` (`python -m benchmarks.writes`): the cost of a write, single Table API
requests against Batch API requests of several sizes.

The same number of `sys_user` creates goes through `snsync.servicenow.batch.write_batched` once
per batch size (1 = one Table API request per record), from this process, against a sandbox
served by a child process. Each pass prints its wall time, the bound the profile allows
(`ceil(writes / cap) x latency`: a batch holds its slot for the latency of each sub-request, as
an instance serves them one after another), the client CPU seconds (getrusage of this process,
which does nothing else meanwhile), CPU per write and the requests the sandbox saw.
"""

from __future__ import annotations

import argparse
import math
import resource
import shutil
import time
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path

from benchmarks.bound import PROFILES, LatencyProfile
from benchmarks.measure import bench_config
from benchmarks.report import table
from benchmarks.sandbox_host import Sandbox, SandboxSetup, make_host
from benchmarks.scenarios import ScenarioSpec, generate
from snsync.config import load_config
from snsync.connections import connect
from snsync.servicenow.batch import WriteKind, WriteRequest, write_batched

FIELDS = ("user_name", "sys_updated_on")


@dataclass(frozen=True)
class Pass:
    """One batch size's figures."""

    batch_size: int
    writes: int
    wall_s: float
    bound_s: float
    cpu_s: float
    requests: int
    failures: int


def requests_for(label: str, count: int) -> list[WriteRequest]:
    """`count` sys_user creates with realistic values, unique per `label`."""
    return [
        WriteRequest(
            WriteKind.CREATE,
            "sys_user",
            {
                "user_name": f"{label}.{i}@bench.example",
                "first_name": f"First{i}",
                "last_name": f"Last{i}",
                "email": f"{label}.{i}@bench.example",
                "title": "Engineer",
                "source": f"entra:{label}-{i}",
            },
            fields=FIELDS,
        )
        for i in range(count)
    ]


def one_pass(sandbox: Sandbox, config_path: Path, size: int, count: int) -> Pass:
    """Create `count` users in batches of `size` and measure it."""
    config = load_config(config_path)
    conns = connect(config, read_only=False)
    requests = requests_for(f"b{size}", count)
    before = sandbox.counts().servicenow_requests
    start = resource.getrusage(resource.RUSAGE_SELF)
    started = time.perf_counter()
    try:
        results = write_batched(
            conns.servicenow,
            requests,
            batch_size=size,
            concurrency=config.servicenow.max_concurrency,
        )
    finally:
        conns.close()
    wall = time.perf_counter() - started
    end = resource.getrusage(resource.RUSAGE_SELF)
    profile = sandbox.profile
    return Pass(
        batch_size=size,
        writes=count,
        wall_s=wall,
        bound_s=math.ceil(count / profile.cap) * profile.servicenow_ms / 1000.0,
        cpu_s=(end.ru_utime - start.ru_utime) + (end.ru_stime - start.ru_stime),
        requests=sandbox.counts().servicenow_requests - before,
        failures=sum(1 for r in results if not r.ok),
    )


def report(profile: LatencyProfile, passes: Sequence[Pass]) -> str:
    """The table of passes."""
    rows = [
        (
            "batch size",
            "writes",
            "requests",
            "wall s",
            "bound s",
            "wall/bound",
            "CPU s",
            "CPU ms/write",
            "failures",
        )
    ]
    for p in passes:
        ratio = f"{p.wall_s / p.bound_s:.2f}x" if p.bound_s > 0 else "n/a"
        rows.append(
            (
                str(p.batch_size),
                f"{p.writes:,}",
                f"{p.requests:,}",
                f"{p.wall_s:.2f}",
                f"{p.bound_s:.2f}",
                ratio,
                f"{p.cpu_s:.2f}",
                f"{1000 * p.cpu_s / p.writes:.3f}",
                str(p.failures),
            )
        )
    return "\n".join([f"sys_user creates; latency profile: {profile.describe()}", *table(rows)])


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of `python -m benchmarks.writes`."""
    parser = argparse.ArgumentParser(prog="python -m benchmarks.writes", description=__doc__)
    parser.add_argument("--writes", type=int, default=2000)
    parser.add_argument("--sizes", default="1,10,50,100", help="batch sizes, comma-separated")
    parser.add_argument("--profile", choices=sorted(PROFILES), default="today")
    parser.add_argument("--sn-latency-ms", type=float, help="override the profile's")
    parser.add_argument("--cap", type=int, help="override the profile's")
    parser.add_argument("--workdir", type=Path, default=Path(".bench"))
    args = parser.parse_args(argv)
    sizes = [int(n) for n in args.sizes.split(",")]
    if args.writes < 1 or not sizes or min(sizes) < 1:
        parser.error("--writes and every batch size must be at least 1")
    profile = PROFILES[args.profile]
    if args.sn_latency_ms is not None:
        profile = replace(profile, servicenow_ms=args.sn_latency_ms)
    if args.cap is not None:
        profile = replace(profile, cap=args.cap)
    folder = args.workdir.resolve() / "writes"
    shutil.rmtree(folder, ignore_errors=True)
    tenant, instance = generate(ScenarioSpec(10, 1)).write_fixtures(folder)
    host = make_host("process")
    try:
        sandbox = Sandbox(host, SandboxSetup(tenant, instance, folder / "sandbox", profile))
        config = bench_config(sandbox.config_path, {"servicenow": {"max_concurrency": profile.cap}})
        passes = [one_pass(sandbox, config, size, args.writes) for size in sizes]
        sandbox.stop()
    finally:
        host.close()
    print(report(profile, passes))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
