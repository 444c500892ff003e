"""Latency profiles and the bound (the least time a profile allows) for the requests a sync really
needs.

"Really needed" is computed from the scenario, not from what snsync did: the records that must be
created or changed (users, the assigned groups, their memberships) and the pages that must be read
to know that, at the services' largest page sizes.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from benchmarks.scenarios import Scenario
from snsync.sandbox.graph_settings import DEFAULT_RESOURCE_UNITS
from snsync.sandbox.options import DEFAULT_CONCURRENCY, DEFAULT_QUEUE
from snsync.sandbox.profiles import PROFILES as SANDBOX_PROFILES
from snsync.sandbox.profiles import SandboxProfile

GRAPH_PAGE = 999
# Graph caps pages of directory objects at 100 when `$expand` is used (reference.md section 7),
# and the users are read with their manager expanded.
GRAPH_EXPAND_PAGE = 100
GRAPH_BATCH = 20
SERVICENOW_PAGE = 1000
GRAPH_FIXED = 2  # the token request and the service principal look-up
REFERENCE_TABLES = 1  # cmn_department, which the default user mappings resolve
# An incremental repeat run reads one page of changes from each table it mirrors.
INCREMENTAL_TABLES = ("sys_user", "sys_user_group", "sys_user_grmember", "cmn_department")

FORMULA = (
    "bound = max(Graph chain x Graph latency, ServiceNow keyset chain x SN latency)",
    "        + ceil(SN writes / cap) x SN latency",
    "  Graph chain = 2 (token, app) + ceil(users / 100): the pages that follow one another;"
    " the other Graph reads (counted below) overlap them",
    "  ServiceNow keyset chain = pages of the longest table read (the tables are read side by"
    " side, and beside Graph)",
    "older bound (tables before the parallel reads; printed as a note):",
    "  ceil((SN reads + SN writes) / cap) x SN latency + Graph reads x Graph latency",
    "  SN writes   = user creates + users whose desired record differs",
    "                + assigned groups to create + memberships to add",
    "  SN reads    = ceil(sys_user rows / 1000) + 1 (cmn_department) + ceil(sys_user_group rows"
    " / 1000)",
    "                + ceil(membership rows of the assigned groups / 1000) once the groups exist",
    "  Graph reads = ceil(users / 100) ($expand=manager caps pages at 100) + ceil(assignments"
    " / 999)",
    "                + sum over assigned groups of ceil(members / 999)",
    "                + min(ceil(groups / 999), ceil(assigned groups / 20)) + 2 (token, app)",
    "  (older bound: ServiceNow requests run `cap` at a time; Graph requests one after another,"
    " after them)",
    "  (a write costs its latency whether it travels alone or inside a Batch API request:"
    " the sandbox serves sub-requests one after another in one slot, as ServiceNow does)",
    "incremental bound (repeat runs, shown as a note): the same, reading only changes, as the",
    "opening reads go (one Graph $batch, one ServiceNow Batch API request):",
    "  Graph reads = 2 (token, one $batch with the app, the first page of assignments and of",
    "                the users and groups delta rounds) + ceil(assignments / 999) - 1",
    "                + ceil(changed users / 999) - 1 (the pages that follow, one by one)",
    "  Graph chain = 2 + max(ceil(assignments / 999), ceil(changed users / 999)) - 1",
    "  SN reads    = 1 Batch API request of 4 GETs, one page of changed rows per table"
    " (sys_user, sys_user_group,",
    "                sys_user_grmember, cmn_department): one slot, each GET its own latency",
)


MODEL_FORMULA = (
    "bound (profiles lan, cloud: the sandbox's latency model, in ms) =",
    "  max(Graph chain x (Graph round trip + page time),",
    "      sum over the longest ServiceNow keyset chain of (round trip + request time"
    " + rows x per-row read))",
    "  + server time of the writes / REST threads + one round trip",
    "  Graph chain  = 2 (token, app) + ceil(users / 100): pages that follow one another;"
    " the other Graph reads can overlap them",
    "  write server time = user inserts x (request + sys_user insert) + user updates x"
    " (request + sys_user update)",
    "                      + (groups + memberships) x (request + other insert)",
    "  (a write costs the same server time alone or inside a batch, which saves only the"
    " round trip; waves by manager depth and groups-before-memberships are ignored: a lower"
    " bound)",
)


@dataclass(frozen=True)
class LatencyProfile:
    """Per-request latency of each service and the ServiceNow concurrency cap."""

    servicenow_ms: float = 50.0
    graph_ms: float = 20.0
    cap: int = 16
    name: str = "custom"
    # The sandbox's realism (issue 14): off in `today`, which is the kind sandbox of issue 11.
    serialize_sessions: bool = False  # one request at a time per session cookie
    queue: int | None = None  # requests a node queues before answering 429 (None: no limit)
    graph_resource_units: int = 0  # Graph throttling budget per 10 s (0: off)
    # A latency model of the sandbox itself (snsync.sandbox.profiles: lan, cloud); "" = that
    # model switched off (quiet setup steps); None = the fixed latencies above.
    sandbox_profile: str | None = None

    def describe(self) -> str:
        """One line for the report."""
        realism = [
            "sessions serialised" if self.serialize_sessions else "no session serialisation",
            f"node queue {self.queue}" if self.queue is not None else "unbounded queue",
            f"Graph {self.graph_resource_units} RU per 10 s"
            if self.graph_resource_units
            else "no Graph throttling",
        ]
        if self.sandbox_profile:
            model = SANDBOX_PROFILES[self.sandbox_profile]
            costs = model.servicenow_costs
            latency = (
                f"the sandbox's {self.sandbox_profile} model: ServiceNow round trip "
                f"{model.servicenow_network_ms:g} ms outside the {self.cap} REST threads, inside "
                f"them {model.servicenow_request_ms:g} ms per request (and per batch sub-request)"
                f" + {costs.user_insert_ms:g} / {costs.user_update_ms:g} ms per sys_user insert /"
                f" update, {costs.insert_ms:g} ms per other insert, {costs.delete_ms:g} ms per "
                f"delete, {costs.row_read_ms:g} ms per row read; Graph {model.graph_network_ms:g}"
                f" + {model.graph_page_ms:g} ms per request"
            )
        else:
            latency = (
                f"ServiceNow {self.servicenow_ms:g} ms per request inside a cap of {self.cap} "
                f"concurrent requests; Graph {self.graph_ms:g} ms per request"
            )
        return f"{self.name}: {latency}; " + ", ".join(realism)


# `today`: the profile main has been measured on so far (issue 11's figures): a kind sandbox
# (no session serialisation, no queue limit, no Graph throttling).
# `lan` and `cloud`: the sandbox's own latency models (docs/sandbox.md) with its realism on, as
# a real instance has it: 8 REST threads (2 nodes x 4), a queue of 50, sessions served one
# request at a time, Graph's resource-unit budget.
PROFILES = {
    "today": LatencyProfile(50.0, 20.0, 16, "today"),
    **{
        name: LatencyProfile(
            0.0,
            0.0,
            DEFAULT_CONCURRENCY,
            name,
            serialize_sessions=True,
            queue=DEFAULT_QUEUE,
            graph_resource_units=DEFAULT_RESOURCE_UNITS,
            sandbox_profile=name,
        )
        for name in ("lan", "cloud")
    },
}


@dataclass(frozen=True)
class Writes:
    """ServiceNow records that must be written, by table."""

    users: int = 0
    groups: int = 0
    memberships: int = 0
    user_updates: int = 0  # of `users`, those that update an existing record

    @property
    def total(self) -> int:
        return self.users + self.groups + self.memberships

    def describe(self) -> str:
        """`users a, groups b, memberships c`."""
        return f"users {self.users:,}, groups {self.groups:,}, memberships {self.memberships:,}"


@dataclass(frozen=True)
class Rows:
    """ServiceNow rows a cycle must read, by table, when it starts."""

    sys_user: int
    sys_user_group: int = 0
    memberships: int = 0  # rows of the assigned groups (0 while the groups do not exist)


@dataclass(frozen=True)
class Needed:
    """The requests a cycle really needs."""

    graph_reads: int
    servicenow_reads: int
    writes: Writes
    graph_chain: int = 0  # Graph requests that must follow one another (token, app, users pages)
    read_chain_rows: tuple[int, ...] = ()  # rows of each page of the longest ServiceNow read chain
    read_batched: bool = False  # that chain's pages travel in one Batch API request

    @property
    def servicenow_writes(self) -> int:
        return self.writes.total

    @property
    def servicenow(self) -> int:
        return self.servicenow_reads + self.servicenow_writes


def graph_reads_needed(scenario: Scenario) -> int:
    """Pages of users, assignments and members, the assigned groups, plus token and app."""
    users = math.ceil(len(scenario.tenant["users"]) / GRAPH_EXPAND_PAGE)
    assignments = max(1, math.ceil(scenario.assignments / GRAPH_PAGE))
    members = sum(max(1, math.ceil(size / GRAPH_PAGE)) for size in scenario.assigned_group_sizes)
    assigned = len(scenario.assigned_groups)
    groups = 0
    if assigned:
        listing = math.ceil(len(scenario.tenant["groups"]) / GRAPH_PAGE)
        groups = min(listing, math.ceil(assigned / GRAPH_BATCH))
    return users + assignments + members + groups + GRAPH_FIXED


def servicenow_reads_needed(rows: Rows) -> int:
    """Pages of sys_user, the reference table, sys_user_group and the groups' memberships."""
    reads = _pages(rows.sys_user) + REFERENCE_TABLES + _pages(rows.sys_user_group)
    return reads + (_pages(rows.memberships) if rows.memberships else 0)


def needed(scenario: Scenario, rows: Rows, writes: Writes) -> Needed:
    """What one cycle over `scenario` needs when it starts from `rows` and must make `writes`."""
    chain = GRAPH_FIXED + math.ceil(len(scenario.tenant["users"]) / GRAPH_EXPAND_PAGE)
    longest = max(rows.sys_user, rows.sys_user_group, rows.memberships)
    pages = tuple(
        min(SERVICENOW_PAGE, longest - i * SERVICENOW_PAGE) for i in range(_pages(longest))
    )
    return Needed(graph_reads_needed(scenario), servicenow_reads_needed(rows), writes, chain, pages)


def needed_incremental(scenario: Scenario, changed_users: int, writes: Writes) -> Needed:
    """What a repeat cycle needs when it reads only what changed since the last one: the token,
    one Graph `$batch` holding the first page of each opening read (the app, its assignments,
    the users and groups delta rounds), then the pages that follow; beside them one ServiceNow
    Batch API request with one page of changed rows from each mirrored table."""
    assignments = max(1, math.ceil(scenario.assignments / GRAPH_PAGE))
    users = max(1, math.ceil(changed_users / GRAPH_PAGE))
    graph = GRAPH_FIXED + (assignments - 1) + (users - 1)
    chain = GRAPH_FIXED + max(assignments, users) - 1
    pages = (changed_users,) + (0,) * (len(INCREMENTAL_TABLES) - 1)
    return Needed(graph, 1, writes, chain, pages, read_batched=True)


def bound_seconds(need: Needed, profile: LatencyProfile) -> float:
    """The least time the profile allows for `need` (MODEL_FORMULA or FORMULA)."""
    if profile.sandbox_profile:
        return model_bound_seconds(need, profile.cap, SANDBOX_PROFILES[profile.sandbox_profile])
    return parallel_bound_seconds(need, profile)


def parallel_bound_seconds(need: Needed, profile: LatencyProfile) -> float:
    """FORMULA for fixed latencies: the longer of the two read chains (Graph's pages of users,
    ServiceNow's keyset pages of its longest table), which overlap, then the writes in rounds of
    `cap`. The other reads run beside those chains."""
    graph = need.graph_chain * profile.graph_ms
    reads = len(need.read_chain_rows) * profile.servicenow_ms
    writes = math.ceil(need.servicenow_writes / profile.cap) * profile.servicenow_ms
    return (max(graph, reads) + writes) / 1000.0


def serial_bound_seconds(need: Needed, profile: LatencyProfile) -> float:
    """The older fixed-latency bound (tables before the parallel reads): every ServiceNow request
    in rounds of `cap`, then every Graph request one after another."""
    rounds = math.ceil(need.servicenow / profile.cap)
    return rounds * profile.servicenow_ms / 1000.0 + need.graph_reads * profile.graph_ms / 1000.0


def _pages(rows: int) -> int:
    return max(1, math.ceil(rows / SERVICENOW_PAGE))


def model_bound_seconds(need: Needed, threads: int, model: SandboxProfile) -> float:
    """MODEL_FORMULA: the reads' two critical paths (overlapping), then the server time of the
    writes spread over every REST thread, plus one round trip."""
    costs = model.servicenow_costs
    graph = need.graph_chain * (model.graph_network_ms + model.graph_page_ms)
    page = model.servicenow_network_ms + model.servicenow_request_ms
    reads = sum(page + rows * costs.row_read_ms for rows in need.read_chain_rows)
    if need.read_batched and need.read_chain_rows:  # one round trip for the whole batch
        reads -= model.servicenow_network_ms * (len(need.read_chain_rows) - 1)
    w = need.writes
    request = model.servicenow_request_ms
    server = (
        (w.users - w.user_updates) * (request + costs.user_insert_ms)
        + w.user_updates * (request + costs.user_update_ms)
        + (w.groups + w.memberships) * (request + costs.insert_ms)
    )
    writes = server / threads + (model.servicenow_network_ms if w.total else 0.0)
    return (max(graph, reads) + writes) / 1000.0
