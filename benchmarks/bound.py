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

GRAPH_PAGE = 999
GRAPH_BATCH = 20
SERVICENOW_PAGE = 1000
GRAPH_FIXED = 2  # the token request and the service principal look-up
REFERENCE_TABLES = 1  # cmn_department, which the default user mappings resolve
# An incremental repeat run reads one page of changes from each table it mirrors.
INCREMENTAL_TABLES = ("sys_user", "sys_user_group", "sys_user_grmember", "cmn_department")

FORMULA = (
    "bound = ceil((SN reads + SN writes) / cap) x SN latency + Graph reads x Graph latency",
    "  SN writes   = user creates + users whose desired record differs",
    "                + assigned groups to create + memberships to add",
    "  SN reads    = ceil(sys_user rows / 1000) + 1 (cmn_department) + ceil(sys_user_group rows"
    " / 1000)",
    "                + ceil(membership rows of the assigned groups / 1000) once the groups exist",
    "  Graph reads = ceil(users / 999) + ceil(assignments / 999)",
    "                + sum over assigned groups of ceil(members / 999)",
    "                + min(ceil(groups / 999), ceil(assigned groups / 20)) + 2 (token, app)",
    "  (ServiceNow requests run `cap` at a time; Graph requests one after another)",
    "  (a write costs its latency whether it travels alone or inside a Batch API request:"
    " the sandbox serves sub-requests one after another in one slot, as ServiceNow does)",
    "incremental bound (repeat runs, shown as a note): the same, reading only changes:",
    "  Graph reads = 2 (token, app) + ceil(assignments / 999) + ceil(changed users / 999)"
    " + 1 (groups delta)",
    "  SN reads    = 1 page of changed rows per table (sys_user, sys_user_group,"
    " sys_user_grmember, cmn_department)",
)


@dataclass(frozen=True)
class LatencyProfile:
    """Per-request latency of each service and the ServiceNow concurrency cap."""

    servicenow_ms: float = 50.0
    graph_ms: float = 20.0
    cap: int = 16
    name: str = "custom"

    def describe(self) -> str:
        """One line for the report."""
        return (
            f"{self.name}: ServiceNow {self.servicenow_ms:g} ms per request inside a cap of "
            f"{self.cap} concurrent requests; Graph {self.graph_ms:g} ms per request"
        )


# `today`: the profile main has been measured on so far (issue 11's figures).
PROFILES = {"today": LatencyProfile(50.0, 20.0, 16, "today")}


@dataclass(frozen=True)
class Writes:
    """ServiceNow records that must be written, by table."""

    users: int = 0
    groups: int = 0
    memberships: int = 0

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

    @property
    def servicenow_writes(self) -> int:
        return self.writes.total

    @property
    def servicenow(self) -> int:
        return self.servicenow_reads + self.servicenow_writes


def graph_reads_needed(scenario: Scenario) -> int:
    """Pages of users, assignments and members, the assigned groups, plus token and app."""
    users = math.ceil(len(scenario.tenant["users"]) / GRAPH_PAGE)
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
    return Needed(graph_reads_needed(scenario), servicenow_reads_needed(rows), writes)


def needed_incremental(scenario: Scenario, changed_users: int, writes: Writes) -> Needed:
    """What a repeat cycle needs when it reads only what changed since the last one."""
    assignments = max(1, math.ceil(scenario.assignments / GRAPH_PAGE))
    users = max(1, math.ceil(changed_users / GRAPH_PAGE))
    graph = GRAPH_FIXED + assignments + users + 1
    return Needed(graph, len(INCREMENTAL_TABLES), writes)


def bound_seconds(need: Needed, profile: LatencyProfile) -> float:
    """The time the profile allows: ServiceNow in rounds of `cap`, Graph one after another."""
    rounds = math.ceil(need.servicenow / profile.cap)
    return rounds * profile.servicenow_ms / 1000.0 + need.graph_reads * profile.graph_ms / 1000.0


def _pages(rows: int) -> int:
    return max(1, math.ceil(rows / SERVICENOW_PAGE))
