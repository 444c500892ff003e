"""`make bench`: snsync against the sandbox under a latency profile, scenario by scenario, next to
the bound the profile allows and a naive per-user script.

Workloads: `w20k` (10,000 users, 200 groups: about 21,800 objects with the memberships):
`empty` (a first sync into an empty instance), `half` (half of the users already present),
`nochange` (the same sync again, nothing changed) and `changed` (again, 1% of users changed in
the directory), the last two on the sandbox `half` left behind. `w100k` (100,000 users, 2,000
groups): `empty`, then `nochange` on the sandbox it left behind. The naive script runs against a
fresh sandbox with the same scenario and profile each time. snsync runs in a fresh child process
per cycle, so that its CPU time and peak RSS are its own.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from benchmarks.bound import (
    PROFILES,
    LatencyProfile,
    Rows,
    Writes,
    bound_seconds,
    needed,
    needed_incremental,
    serial_bound_seconds,
)
from benchmarks.graph_admin import patch_users
from benchmarks.measure import bench_config, run_snsync
from benchmarks.naive import NaiveFigures, run_naive
from benchmarks.report import ScenarioResult, header, scenario_table, summary_table
from benchmarks.sandbox_host import Host, Sandbox, SandboxSetup, make_host
from benchmarks.scenarios import Scenario, ScenarioSpec, generate, user_changes

SCENARIOS = ("empty", "half", "nochange", "changed")
SHARE_PRESENT = {"empty": 0.0, "half": 0.5}
SHARE_CHANGED = 0.01
QUICK_USERS, QUICK_GROUPS = 1000, 20
Changes = dict[str, dict[str, str]]
Log = Callable[[str], None]


@dataclass(frozen=True)
class Workload:
    """A size and the chains of scenarios run on it: (first sync, the repeat runs after it)."""

    name: str
    users: int
    groups: int
    chains: tuple[tuple[str, tuple[str, ...]], ...]


WORKLOADS = {
    "w20k": Workload("w20k", 10_000, 200, (("empty", ()), ("half", ("nochange", "changed")))),
    "w100k": Workload("w100k", 100_000, 2_000, (("empty", ("nochange",)),)),
}


@dataclass(frozen=True)
class Options:
    """What one benchmark run was asked for."""

    users: int
    groups: int
    scenarios: tuple[str, ...]
    profile: LatencyProfile
    baseline_sample: int | None  # None: the naive script runs on every user
    baseline: bool  # False: no naive runs at all (scaling runs)
    sandbox: str
    workload: Workload
    workdir: Path
    seed: int
    users_only: bool = False  # every user assigned directly, no group: snsync syncs users only

    @property
    def quiet(self) -> LatencyProfile:
        """The profile without latency (same cap), for setup steps."""
        quiet_model = "" if self.profile.sandbox_profile is not None else None
        return replace(self.profile, servicenow_ms=0.0, graph_ms=0.0, sandbox_profile=quiet_model)


@dataclass(frozen=True)
class Step:
    """One cycle of a chain of cycles on the same sandbox."""

    name: str
    title: str
    writes: Writes
    report: bool  # printed (else a setup step for a later scenario)
    changes: Changes | None = None  # directory changes made before the cycle
    resync: bool = False  # a repeat run: the naive script needs a first run (setup) before it


def parse_args(argv: Sequence[str] | None) -> Options:
    """Options from the command line."""
    parser = argparse.ArgumentParser(prog="python -m benchmarks.run", description=__doc__)
    parser.add_argument("--workload", choices=sorted(WORKLOADS), default="w20k")
    parser.add_argument("--users", type=int, help="users in the tenant (default: the workload's)")
    parser.add_argument("--groups", type=int, help="groups in the tenant (default: the workload's)")
    parser.add_argument("--scenario", choices=("all", *SCENARIOS), default="all")
    parser.add_argument("--profile", choices=sorted(PROFILES), default="today")
    parser.add_argument("--sn-latency-ms", type=float, help="override the profile's")
    parser.add_argument("--graph-latency-ms", type=float, help="override the profile's")
    parser.add_argument("--cap", type=int, help="ServiceNow concurrent requests (the profile's)")
    parser.add_argument(
        "--serialize-sessions",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="one request at a time per session cookie (default: the profile's)",
    )
    parser.add_argument("--baseline-sample", type=int, default=300)
    parser.add_argument("--full-baseline", action="store_true", help="naive script on all users")
    parser.add_argument("--no-baseline", action="store_true", help="skip the naive script")
    parser.add_argument("--quick", action="store_true", help="1000 users, 20 groups: a smoke run")
    parser.add_argument(
        "--users-only",
        action="store_true",
        help="like for like with the naive users-only loop: every user assigned to the app "
        "directly and no group, so snsync syncs users only (the config has no switch for groups)",
    )
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--sandbox", choices=("process", "thread"), default="process")
    parser.add_argument("--workdir", type=Path, default=Path(".bench"))
    args = parser.parse_args(argv)
    workload = WORKLOADS[args.workload]
    users = args.users or (QUICK_USERS if args.quick else workload.users)
    groups = (
        args.groups
        if args.groups is not None
        else (QUICK_GROUPS if args.quick else workload.groups)
    )
    if args.users_only and args.groups:
        parser.error("--users-only generates no groups: leave --groups out")
    groups = 0 if args.users_only else groups
    profile = _profile(args)
    if users < 1 or profile.cap < 1 or args.baseline_sample < 1:
        parser.error("--users, --cap and --baseline-sample must be at least 1")
    offered = {"all", *(name for first, rest in workload.chains for name in (first, *rest))}
    if args.scenario not in offered:
        parser.error(f"--scenario {args.scenario} is not part of --workload {args.workload}")
    return Options(
        users=users,
        groups=groups,
        scenarios=tuple(sorted(offered - {"all"})) if args.scenario == "all" else (args.scenario,),
        profile=profile,
        baseline_sample=None if args.full_baseline else args.baseline_sample,
        baseline=not args.no_baseline,
        sandbox=args.sandbox,
        workload=workload,
        workdir=args.workdir.resolve(),
        seed=args.seed,
        users_only=args.users_only,
    )


def _profile(args: argparse.Namespace) -> LatencyProfile:
    base = PROFILES[args.profile]
    changed = {
        "servicenow_ms": args.sn_latency_ms,
        "graph_ms": args.graph_latency_ms,
        "cap": args.cap,
        "serialize_sessions": args.serialize_sessions,
    }
    overrides = {k: v for k, v in changed.items() if v is not None}
    if not overrides:
        return base
    return replace(base, name=f"{base.name} (overridden)", **overrides)


class Bench:
    """Scenarios, fixtures and sandboxes of one run."""

    def __init__(self, options: Options, host: Host, log: Log) -> None:
        self.options = options
        self.host = host
        self.log = log
        self._fixtures: dict[str, tuple[Scenario, Path, Path]] = {}

    def scenario(self, kind: str) -> Scenario:
        """The generated scenario for `empty` or `half` (written to fixture files once)."""
        if kind not in self._fixtures:
            spec = ScenarioSpec(
                self.options.users, self.options.groups, SHARE_PRESENT[kind], seed=self.options.seed
            )
            scenario = generate(spec)
            folder = self.options.workdir / "fixtures"
            tenant, instance = scenario.write_fixtures(folder, f"{kind}-")
            self._fixtures[kind] = (scenario, tenant, instance)
        return self._fixtures[kind][0]

    def start(self, kind: str, label: str, profile: LatencyProfile) -> Sandbox:
        """A fresh sandbox for scenario `kind` in its own folder."""
        self.scenario(kind)
        _, tenant, instance = self._fixtures[kind]
        directory = self.options.workdir / label
        shutil.rmtree(directory, ignore_errors=True)
        return Sandbox(self.host, SandboxSetup(tenant, instance, directory, profile))

    def chain(
        self, kind: str, steps: Sequence[Step], emit: Callable[[ScenarioResult], None]
    ) -> None:
        """Run `steps` one after another on one sandbox."""
        scenario = self.scenario(kind)
        sandbox = self.start(kind, f"{kind}-snsync", self.options.profile)
        try:
            config = bench_config(sandbox.config_path, snsync_settings(self.options))
            for step in steps:
                if step.changes:
                    self._change(sandbox, step.changes)
                if not step.report:  # a setup step: its figures are not shown, its state is
                    with _quiet(sandbox, self.options):
                        self.measure(step, scenario, sandbox, config)
                    self.log(f"[{step.name}] done as setup, without latency (not reported)")
                    continue
                result = self.measure(step, scenario, sandbox, config)
                naive = self.naive(step, kind) if self.options.baseline else None
                emit(replace(result, naive=naive))
        finally:
            sandbox.stop()

    def measure(
        self, step: Step, scenario: Scenario, sandbox: Sandbox, config: Path
    ) -> ScenarioResult:
        """One snsync cycle in a child process, next to what it needed (naive figures later)."""
        need = needed(scenario, starting_rows(scenario, sandbox), step.writes)
        bound = bound_seconds(need, self.options.profile)
        self.log(
            f"[{step.name}] snsync cycle over {self.options.users:,} users (bound on "
            f"{self.options.profile.name}: {bound:,.1f} s; load {os.getloadavg()[0]:.2f}) ..."
        )
        figures = run_snsync(sandbox, config)
        self.log(f"[{step.name}] snsync done in {figures.wall_s:.2f} s")
        result = ScenarioResult(
            step.name, step.title, self.options.users, need, bound, figures, None
        )
        if not self.options.profile.sandbox_profile:
            older = serial_bound_seconds(need, self.options.profile)
            result = replace(result, older_bound_s=older)
        if self.options.users_only:
            result = replace(result, users_only=True)
        if not step.resync:
            return result
        incremental = needed_incremental(scenario, len(step.changes or {}), step.writes)
        seconds = bound_seconds(incremental, self.options.profile)
        return replace(result, incremental=incremental, incremental_s=seconds)

    def naive(self, step: Step, kind: str) -> NaiveFigures:
        """The naive script on a fresh sandbox; `resync` first runs it once without latency."""
        limit = self.options.baseline_sample
        profile = self.options.quiet if step.resync else self.options.profile
        sandbox = self.start(kind, f"{step.name}-naive", profile)
        try:
            if step.resync:
                self.log(f"[{step.name}] naive script: first sync as setup, without latency ...")
                run_naive(sandbox.info, limit)
                if step.changes:
                    patch_users(sandbox.info, step.changes)
                sandbox.set_latency(self.options.profile)
            self.log(f"[{step.name}] naive script ({_sample_words(limit)}) ...")
            figures = run_naive(sandbox.info, limit)
            self.log(f"[{step.name}] naive done: {figures.seconds_for_all():.2f} s for everything")
            return figures
        finally:
            sandbox.stop()

    def _change(self, sandbox: Sandbox, changes: Changes) -> None:
        with _quiet(sandbox, self.options):
            patch_users(sandbox.info, changes)


def first_sync(scenario: Scenario) -> Writes:
    """A first sync's writes: users to create or update, every assigned group, its members."""
    return Writes(
        users=scenario.creates_needed() + scenario.updates_needed(),
        groups=len(scenario.assigned_groups),
        memberships=scenario.memberships_needed(),
        user_updates=scenario.updates_needed(),
    )


def starting_rows(scenario: Scenario, sandbox: Sandbox) -> Rows:
    """The rows a cycle starts from; memberships are those added since the fixture (ours)."""
    counts = sandbox.counts()
    fixture = len(scenario.instance["tables"].get("sys_user_grmember", []))
    return Rows(counts.sys_user_rows, counts.group_rows, counts.membership_rows - fixture)


def snsync_settings(options: Options) -> dict[str, dict[str, Any]]:
    """Config keys the benchmark sets in the sandbox's config.yaml."""
    return {"servicenow": {"max_concurrency": options.profile.cap}}


def chain_steps(bench: Bench, kind: str, repeats: Sequence[str]) -> list[Step]:
    """A first sync of scenario `kind`, then the repeat runs `repeats` on what it left behind."""
    wanted = set(bench.options.scenarios)
    scenario = bench.scenario(kind)
    users = f"{bench.options.users:,}"
    title = {
        "empty": f"{users} users into an empty instance",
        "half": f"{users} users, half of them already in ServiceNow",
    }[kind]
    if bench.options.users_only:
        title += " (users only: all assigned directly, no groups)"
    steps = [Step(kind, title, first_sync(scenario), report=kind in wanted)]
    if "nochange" in repeats and "nochange" in wanted:
        title = "the same sync again, nothing changed"
        steps.append(Step("nochange", title, Writes(), report=True, resync=True))
    if "changed" in repeats and "changed" in wanted:
        changes = user_changes(scenario, SHARE_CHANGED)
        title = f"again, with {SHARE_CHANGED:.0%} of users changed in the directory"
        writes = Writes(users=len(changes), user_updates=len(changes))
        steps.append(Step("changed", title, writes, report=True, changes=changes, resync=True))
    return steps


def run(options: Options, log: Log, out: Callable[[str], None]) -> list[ScenarioResult]:
    """Every requested scenario; prints each table as it completes, then the summary."""
    results: list[ScenarioResult] = []
    label = _sample_label(options)

    def emit(result: ScenarioResult) -> None:
        results.append(result)
        out(scenario_table(result, label))

    out(header(_preamble(options), options.profile))
    host = make_host(options.sandbox)
    try:
        bench = Bench(options, host, log)
        for kind, repeats in options.workload.chains:
            steps = chain_steps(bench, kind, repeats)
            if any(step.report for step in steps):
                bench.chain(kind, steps, emit)
    finally:
        host.close()
    out(summary_table(results))
    return results


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of `python -m benchmarks.run`."""
    options = parse_args(argv)
    started = time.perf_counter()
    run(options, _log, lambda text: print(text, flush=True))
    _log(f"benchmark finished in {time.perf_counter() - started:.1f} s")
    return 0


@contextmanager
def _quiet(sandbox: Sandbox, options: Options) -> Iterator[None]:
    """No latency while setting a scenario up."""
    sandbox.set_latency(options.quiet)
    try:
        yield
    finally:
        sandbox.set_latency(options.profile)


def _preamble(options: Options) -> list[str]:
    where = "a child process" if options.sandbox == "process" else "threads of this process"
    return [
        f"snsync benchmark: workload {options.workload.name}, {options.users:,} users, "
        f"{options.groups:,} groups, seed {options.seed}; sandbox served by {where}",
        "snsync: one cycle per scenario (connect, read, plan, write, record), each in a fresh "
        "child process that runs nothing else; "
        + (
            "users only (--users-only: every user assigned directly, no group assigned, so "
            "there are no groups or memberships to sync, for snsync or the naive script)"
            if options.users_only
            else "users, groups and memberships"
        )
        + "; config: "
        + ", ".join(
            f"{section}.{key} = {value}"
            for section, keys in snsync_settings(options).items()
            for key, value in keys.items()
        ),
        "CPU: resource.getrusage of the snsync process; peak RSS: its VmHWM (ru_maxrss where "
        "there is no /proc), interpreter and imports included",
        "naive script: list assigned users and groups from Graph, then one request at a time: per "
        "user GET sys_user by user_name, then POST or PATCH (the issue's baseline, 'users only'); "
        "per group GET by name, POST if missing; per membership GET the user, GET the row, POST "
        "if missing",
        f"naive figures: {_sample_label(options)}",
    ]


def _sample_label(options: Options) -> str:
    sample = options.baseline_sample
    if sample is None or sample >= options.users:
        return "measured on all users"
    return f"(measured on {sample:,} users, extrapolated to {options.users:,})"


def _sample_words(limit: int | None) -> str:
    return "all users" if limit is None else f"first {limit:,} users"


def _log(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


if __name__ == "__main__":
    raise SystemExit(main())
