"""The benchmark's printed output: a fixed-width table per scenario and a summary table."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from benchmarks.bound import FORMULA, MODEL_FORMULA, LatencyProfile, Needed
from benchmarks.endpoints import BATCH_PREFIX
from benchmarks.measure import CycleFigures
from benchmarks.naive import PARTS, NaiveFigures

MIB = 1024 * 1024
USERS_ONLY = ("users",)
USERS_ONLY_GOAL = 20.0  # issue 11: vs the naive per-user script, same profile, users only
SUMMARY_HEADER = (
    "scenario",
    "users",
    "Graph req",
    "SN reads",
    "SN writes",
    "wall s",
    "bound s",
    "wall/bound",
    "CPU s",
    "RSS MiB",
    "naive s",
    "speed-up",
    "naive users-only s",
    "speed-up users-only",
)


@dataclass(frozen=True)
class ScenarioResult:
    """One scenario: snsync's measured cycle, what was needed, and the naive baseline."""

    name: str
    title: str
    users: int
    need: Needed
    bound_s: float
    snsync: CycleFigures
    naive: NaiveFigures | None
    incremental: Needed | None = None  # a repeat run that reads only changes
    incremental_s: float | None = None
    older_bound_s: float | None = None  # fixed latencies: the bound before the parallel reads
    users_only: bool = False  # the scenario has no groups: snsync and the naive script sync users

    @property
    def ratio(self) -> float | None:
        """Wall time over the bound (None when the profile allows no time at all)."""
        return _over(self.snsync.wall_s, self.bound_s)

    def naive_s(self, parts: tuple[str, ...] = PARTS) -> float | None:
        """The naive script's time for every object of `parts`."""
        return self.naive.seconds_for_all(parts) if self.naive else None

    def speedup(self, parts: tuple[str, ...] = PARTS) -> float | None:
        """Naive time over snsync's wall time."""
        return _over(self.naive_s(parts), self.snsync.wall_s)


def header(lines: Sequence[str], profile: LatencyProfile) -> str:
    """The run's preamble: setup lines, the latency profile and the bound's formula."""
    formula = MODEL_FORMULA if profile.sandbox_profile else FORMULA
    return "\n".join([*lines, f"latency profile: {profile.describe()}", *formula, ""])


def scenario_table(result: ScenarioResult, sample_label: str) -> str:
    """The detailed table of one scenario, with notes under it."""
    cycle, need, naive = result.snsync, result.need, result.naive
    reads, writes = naive.requests_for_all() if naive else (0, 0)
    rows = [
        ("", "snsync", "needed / bound", "naive script"),
        ("users", _int(result.users), _int(result.users), _int(naive.users_total) if naive else ""),
        (
            "Graph requests",
            _int(cycle.requests.get("graph_reads", 0)),
            _int(need.graph_reads),
            _int(naive.graph_requests) if naive else "",
        ),
        (
            "ServiceNow reads",
            _int(cycle.requests.get("servicenow_reads", 0)),
            _int(need.servicenow_reads),
            _int(reads) if naive else "",
        ),
        (
            "ServiceNow writes",
            _int(cycle.requests.get("servicenow_writes", 0)),
            _int(need.servicenow_writes),
            _int(writes) if naive else "",
        ),
        ("retries", _int(cycle.requests.get("retries", 0)), "", ""),
        ("wall time (s)", _secs(cycle.wall_s), _secs(result.bound_s), _secs(result.naive_s())),
        (
            "wall / bound",
            _times(result.ratio),
            "1.00x",
            _times(_over(result.naive_s(), result.bound_s)),
        ),
        ("requests in all", _int(_requests(cycle)), "", ""),
        ("client CPU (s)", _secs(cycle.cpu_s), "", ""),
        ("client CPU per object (ms)", _per_object(cycle.cpu_s, need.writes.total), "", ""),
        ("peak RSS (MiB)", _mib(cycle.peak_rss_bytes), "", ""),
        ("speed-up vs naive", _times(result.speedup()), "", ""),
        ("speed-up vs naive, users only", _times(result.speedup(USERS_ONLY)), "", ""),
    ]
    title = f"== {result.name}: {result.title} =="
    return "\n".join([title, *table(rows), *_notes(result, sample_label), ""])


def summary_table(results: Sequence[ScenarioResult]) -> str:
    """One line per scenario."""
    rows = [SUMMARY_HEADER]
    for r in results:
        rows.append(
            (
                r.name,
                _int(r.users),
                _int(r.snsync.requests.get("graph_reads", 0)),
                _int(r.snsync.requests.get("servicenow_reads", 0)),
                _int(r.snsync.requests.get("servicenow_writes", 0)),
                _secs(r.snsync.wall_s),
                _secs(r.bound_s),
                _times(r.ratio),
                _secs(r.snsync.cpu_s),
                _mib(r.snsync.peak_rss_bytes),
                _secs(r.naive_s()),
                _times(r.speedup()),
                _secs(r.naive_s(USERS_ONLY)),
                _times(r.speedup(USERS_ONLY)),
            )
        )
    return "\n".join(["== summary ==", *table(rows), ""])


def table(rows: Sequence[Sequence[str]]) -> list[str]:
    """Fixed-width lines: the first column left-aligned, the others right-aligned."""
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    lines = []
    for row in rows:
        cells = [row[0].ljust(widths[0])]
        cells += [cell.rjust(width) for cell, width in zip(row[1:], widths[1:], strict=True)]
        lines.append("  ".join(cells).rstrip())
    return lines


def _notes(result: ScenarioResult, sample_label: str) -> list[str]:
    cycle = result.snsync
    server = cycle.server
    methods = ", ".join(f"{m} {_int(n)}" for m, n in sorted(server.servicenow_by_method.items()))
    actions = "; ".join(
        f"{action} " + ", ".join(f"{_int(n)} {status}" for status, n in sorted(by.items()))
        for action, by in sorted(cycle.actions.items())
    )
    notes = [
        f"  sandbox saw: Graph {_int(server.graph_requests)} requests; ServiceNow "
        f"{_int(server.servicenow_requests)} ({methods or 'none'}), "
        f"{_int(server.servicenow_writes)} writes applied; sys_user now "
        f"{_int(server.sys_user_rows)} rows",
        f"  snsync results: {actions or 'none'}; unchanged {_int(cycle.unchanged)}",
        f"  needed writes: {result.need.writes.describe()}",
        f"  snsync process: peak RSS {_mib(cycle.peak_rss_bytes)} MiB (VmHWM; "
        f"{_mib(cycle.start_rss_bytes)} MiB after start-up and imports), CPU "
        f"{_secs(cycle.cpu_s)} s for {_secs(cycle.wall_s)} s of wall time; machine load average "
        f"(1 min) {cycle.load[0]:.2f} before, {cycle.load[1]:.2f} after",
        *endpoint_lines(server.graph_endpoints, server.servicenow_endpoints),
    ]
    if result.incremental is not None and result.incremental_s is not None:
        inc = result.incremental
        notes.append(
            f"  incremental bound: Graph {_int(inc.graph_reads)} + ServiceNow "
            f"{_int(inc.servicenow_reads)} reads, {_int(inc.servicenow_writes)} writes -> "
            f"{_secs(result.incremental_s)} s; wall / incremental bound "
            f"{_times(_over(cycle.wall_s, result.incremental_s))}"
        )
    if result.older_bound_s is not None:
        notes.append(
            f"  older bound (Graph after ServiceNow, as in tables before the parallel reads): "
            f"{_secs(result.older_bound_s)} s; wall / older bound "
            f"{_times(_over(cycle.wall_s, result.older_bound_s))}"
        )
    if result.naive is not None:
        notes += _naive_notes(result.naive, sample_label)
        if result.users_only:
            notes.append(like_for_like(result))
    if cycle.failure_count:
        notes.append(f"  FAILURES: {_int(cycle.failure_count)}, e.g. " + " | ".join(cycle.failures))
    return notes


def endpoint_lines(graph: dict[str, int], servicenow: dict[str, int]) -> list[str]:
    """Requests by endpoint, Graph then ServiceNow, batch sub-requests under their batch."""
    lines = ["  requests by endpoint (as the sandbox saw them):"]
    for service, counts in (("Graph", graph), ("ServiceNow", servicenow)):
        outer = {k: n for k, n in counts.items() if not k.startswith(BATCH_PREFIX)}
        inner = {k[len(BATCH_PREFIX) :]: n for k, n in counts.items() if k.startswith(BATCH_PREFIX)}
        for name, count in sorted(outer.items(), key=lambda kv: (-kv[1], kv[0])):
            lines.append(f"    {service:<10} {_int(count):>8}  {name}")
        for name, count in sorted(inner.items(), key=lambda kv: (-kv[1], kv[0])):
            lines.append(f"    {service:<10} {_int(count):>8}    inside batches: {name}")
    return lines


def _naive_notes(naive: NaiveFigures, sample_label: str) -> list[str]:
    how = sample_label if naive.sampled else "measured on every object"
    loops = "; ".join(
        f"{name} {_secs(loop.seconds)} s for {_int(loop.run)} of {_int(loop.total)}"
        for name, loop in naive.loops.items()
    )
    return [
        f"  naive script: {how}; Graph listing {_secs(naive.graph_s)} s (always in full); {loops}",
        f"  naive users only (the issue's baseline): {_secs(naive.seconds_for_all(USERS_ONLY))} s",
    ]


def like_for_like(result: ScenarioResult) -> str:
    """snsync's users-only wall against the naive users-only time, and what the bound allows."""
    naive, speedup = result.naive_s(USERS_ONLY), result.speedup(USERS_ONLY)
    ceiling = _over(naive, result.bound_s)
    met = speedup is not None and speedup >= USERS_ONLY_GOAL
    return (
        f"  users only, like for like: snsync {_secs(result.snsync.wall_s)} s vs naive "
        f"{_secs(naive)} s: {_times(speedup)} (goal >= {USERS_ONLY_GOAL:g}x: "
        f"{'met' if met else 'NOT met'}); a client at the bound would reach {_times(ceiling)}"
    )


def _requests(cycle: CycleFigures) -> int:
    """snsync's own count of every request of the cycle (Graph and ServiceNow)."""
    names = ("graph_reads", "servicenow_reads", "servicenow_writes")
    return sum(cycle.requests.get(name, 0) for name in names)


def _per_object(cpu_s: float, objects: int) -> str:
    """Client CPU per object written (users, groups, memberships); n/a without writes."""
    return f"{cpu_s * 1000 / objects:,.3f}" if objects else "n/a"


def _over(value: float | None, base: float | None) -> float | None:
    if value is None or base is None or base <= 0:
        return None
    return value / base


def _int(value: int) -> str:
    return f"{value:,}"


def _secs(value: float | None) -> str:
    return "n/a" if value is None else f"{value:,.2f}"


def _times(value: float | None) -> str:
    return "n/a" if value is None else f"{value:,.2f}x"


def _mib(value: int | None) -> str:
    return "n/a" if value is None else f"{value / MIB:,.1f}"
