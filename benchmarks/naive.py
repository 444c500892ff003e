"""The naive baseline: what a typical admin script does. It lists the app's assigned users and
groups from Graph with a simple page loop, then, one request at a time:

- per user: look the user up in ServiceNow by user_name, then create or update the record (always
  writing: it does not compare) - the baseline the issue defines;
- per assigned group: look it up by name, create it when missing;
- per membership: look up the user's sys_id and the membership row, add the row when missing -
  so that it does the same job as snsync, which syncs groups and memberships too.

The Graph listing always runs in full. Each loop may run on a sample (the first users, their
memberships, the first groups); its time is then scaled linearly to the whole population.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, TypeVar

import requests

from benchmarks.graph_admin import TIMEOUT_S, graph_session, graph_token

USER_SELECT = (
    "id,userPrincipalName,givenName,surname,mail,jobTitle,businessPhones,mobilePhone,"
    "department,employeeId,streetAddress,city,state,postalCode,country,accountEnabled"
)
USER_TYPE = "#microsoft.graph.user"
PARTS = ("users", "groups", "memberships")
T = TypeVar("T")


@dataclass(frozen=True)
class Loop:
    """One per-object loop: how many objects exist, how many were run, the time and requests."""

    total: int = 0
    run: int = 0
    seconds: float = 0.0
    reads: int = 0
    writes: int = 0

    @property
    def scale(self) -> float:
        return self.total / self.run if self.run else 0.0


@dataclass(frozen=True)
class NaiveFigures:
    """One naive run: the Graph listing (always complete) and the loops (maybe sampled)."""

    graph_s: float
    graph_requests: int
    loops: dict[str, Loop] = field(default_factory=dict)

    @property
    def users_total(self) -> int:
        return self.loops["users"].total

    @property
    def users_run(self) -> int:
        return self.loops["users"].run

    @property
    def sampled(self) -> bool:
        return any(loop.run < loop.total for loop in self.loops.values())

    def seconds_for_all(self, parts: tuple[str, ...] = PARTS) -> float:
        """Time for every object of `parts`: the listing plus each loop, scaled linearly."""
        loops = [self.loops[p] for p in parts if p in self.loops]
        return self.graph_s + sum(loop.seconds * loop.scale for loop in loops)

    def requests_for_all(self, parts: tuple[str, ...] = PARTS) -> tuple[int, int]:
        """ServiceNow (reads, writes) for every object of `parts`, scaled linearly."""
        loops = [self.loops[p] for p in parts if p in self.loops]
        reads = sum(loop.reads * loop.scale for loop in loops)
        return round(reads), round(sum(loop.writes * loop.scale for loop in loops))


@dataclass
class _Listing:
    """What the script learnt from Graph."""

    users: list[dict[str, Any]]
    groups: dict[str, str]  # assigned group id -> display name
    memberships: list[tuple[str, str]]  # (group id, user principal name)


class NaiveScript:
    """The script, pointed at one sandbox (its sandbox.json info)."""

    def __init__(self, info: Mapping[str, Any]) -> None:
        self.info = info
        self.session = graph_session(info)
        self.auth = (str(info["servicenow_username"]), str(info["servicenow_password"]))
        self.table = f"{info['servicenow_url']}/api/now/table"
        self.graph_requests = 0
        self.reads = 0
        self.writes = 0
        self._headers: dict[str, str] = {}
        self._group_ids: dict[str, str] = {}  # directory id -> sys_id

    def run(self, limit: int | None) -> NaiveFigures:
        """List from Graph, then sync the first `limit` users, their memberships and groups."""
        started = time.perf_counter()
        listing = self.listing()
        graph_s = time.perf_counter() - started
        users = listing.users if limit is None else listing.users[:limit]
        groups = list(listing.groups.items())
        group_batch = groups if limit is None else groups[:limit]
        ran_users = {u["userPrincipalName"] for u in users}
        ran_groups = {g for g, _ in group_batch}
        pairs = [(g, u) for g, u in listing.memberships if g in ran_groups and u in ran_users]
        loops = {
            "users": _loop(len(listing.users), users, self.sync_user, self),
            "groups": _loop(len(groups), group_batch, self.sync_group, self),
            "memberships": _loop(len(listing.memberships), pairs, self.sync_membership, self),
        }
        self.session.close()
        return NaiveFigures(graph_s, self.graph_requests, loops)

    def listing(self) -> _Listing:
        """Assigned users (directly or through a group) with their manager's UPN, and groups."""
        self.graph_requests += 1
        self._headers = {"Authorization": f"Bearer {graph_token(self.session, self.info)}"}
        app_id = self.info["app_id"]
        sp = self._graph("servicePrincipals", {"$filter": f"appId eq '{app_id}'"})["value"][0]
        direct: set[str] = set()
        groups: dict[str, str] = {}
        members: dict[str, list[str]] = {}
        for a in self._pages(f"servicePrincipals/{sp['id']}/appRoleAssignedTo", {"$top": "999"}):
            if a["principalType"] == "Group":
                groups[a["principalId"]] = a["principalDisplayName"]
                rows = self._pages(f"groups/{a['principalId']}/members", {"$top": "999"})
                members[a["principalId"]] = [
                    m["id"] for m in rows if m.get("@odata.type") == USER_TYPE
                ]
            else:
                direct.add(a["principalId"])
        query = {"$select": USER_SELECT, "$top": "999", "$expand": "manager($select=id)"}
        everyone = list(self._pages("users", query))
        upn = {u["id"]: u["userPrincipalName"] for u in everyone}
        assigned = direct.union(*members.values())
        users = [u for u in everyone if u["id"] in assigned]
        for u in users:
            u["managerUpn"] = upn.get((u.get("manager") or {}).get("id", ""), "")
        enabled = {u["id"] for u in users if u.get("accountEnabled", True)}
        pairs = [(g, upn[m]) for g, ids in members.items() for m in ids if m in enabled]
        return _Listing(users, groups, pairs)

    def sync_user(self, user: Mapping[str, Any]) -> None:
        """Look the user up by user_name, then create or update the record."""
        found = self._find("sys_user", f"user_name={user['userPrincipalName']}")
        params = {"sysparm_input_display_value": "true"}
        if found:
            self._write("PATCH", f"{self.table}/sys_user/{found}", params, record_for(user))
        else:
            self._write("POST", f"{self.table}/sys_user", params, record_for(user))

    def sync_group(self, group: tuple[str, str]) -> None:
        """Look the group up by name, create it when missing."""
        group_id, name = group
        found = self._find("sys_user_group", f"name={name}")
        if not found:
            body = {"name": name, "source": f"naive:{group_id}"}
            found = self._write("POST", f"{self.table}/sys_user_group", {}, body)
        self._group_ids[group_id] = found

    def sync_membership(self, pair: tuple[str, str]) -> None:
        """Look up the user's sys_id and the membership row; add the row when missing."""
        group_id, user_name = pair
        group = self._group_ids[group_id]
        user = self._find("sys_user", f"user_name={user_name}")
        if not user or self._find("sys_user_grmember", f"user={user}^group={group}"):
            return
        self._write("POST", f"{self.table}/sys_user_grmember", {}, {"user": user, "group": group})

    def _find(self, table: str, query: str) -> str:
        params = {"sysparm_query": query, "sysparm_limit": "1", "sysparm_fields": "sys_id"}
        self.reads += 1
        found = self._servicenow("GET", f"{self.table}/{table}", params)["result"]
        return str(found[0]["sys_id"]) if found else ""

    def _write(
        self, method: str, url: str, params: Mapping[str, str], body: Mapping[str, str]
    ) -> str:
        self.writes += 1
        return str(self._servicenow(method, url, params, body)["result"]["sys_id"])

    def _graph(self, path: str, params: Mapping[str, str] | None = None) -> dict[str, Any]:
        url = path if path.startswith("https://") else f"{self.info['graph_url']}/v1.0/{path}"
        self.graph_requests += 1
        response = self.session.get(url, params=params, headers=self._headers, timeout=TIMEOUT_S)
        response.raise_for_status()
        body: dict[str, Any] = response.json()
        return body

    def _pages(self, path: str, params: Mapping[str, str]) -> Iterator[dict[str, Any]]:
        page = self._graph(path, params)
        yield from page.get("value", [])
        while "@odata.nextLink" in page:
            page = self._graph(page["@odata.nextLink"])
            yield from page.get("value", [])

    def _servicenow(
        self,
        method: str,
        url: str,
        params: Mapping[str, str],
        body: Mapping[str, str] | None = None,
    ) -> dict[str, Any]:
        response = self.session.request(
            method,
            url,
            params=params,
            json=body,
            auth=self.auth,
            headers={"Accept": "application/json"},
            timeout=TIMEOUT_S,
        )
        response.raise_for_status()
        result: dict[str, Any] = response.json()
        return result


def _loop(total: int, batch: Sequence[T], sync: Callable[[T], None], script: NaiveScript) -> Loop:
    """Run `sync` over `batch` one item at a time and measure it."""
    reads, writes = script.reads, script.writes
    started = time.perf_counter()
    for item in batch:
        sync(item)
    seconds = time.perf_counter() - started
    return Loop(total, len(batch), seconds, script.reads - reads, script.writes - writes)


def record_for(user: Mapping[str, Any]) -> dict[str, str]:
    """The sys_user values for a Graph user (references given by display value)."""
    phones = user.get("businessPhones") or [""]
    return {
        "user_name": user["userPrincipalName"],
        "first_name": user.get("givenName") or "",
        "last_name": user.get("surname") or "",
        "email": user.get("mail") or "",
        "title": user.get("jobTitle") or "",
        "phone": phones[0],
        "mobile_phone": user.get("mobilePhone") or "",
        "department": user.get("department") or "",
        "employee_number": user.get("employeeId") or "",
        "manager": user.get("managerUpn") or "",
        "street": user.get("streetAddress") or "",
        "city": user.get("city") or "",
        "state": user.get("state") or "",
        "zip": user.get("postalCode") or "",
        "country": user.get("country") or "",
        "active": "true" if user.get("accountEnabled", True) else "false",
    }


def run_naive(info: Mapping[str, Any], limit: int | None) -> NaiveFigures:
    """One naive run against the sandbox described by `info`."""
    try:
        return NaiveScript(info).run(limit)
    except requests.RequestException as exc:
        raise RuntimeError(f"naive baseline failed: {exc}") from exc
