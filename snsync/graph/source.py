"""Read the source side of a cycle from Graph: the app's assignments, its groups' members, the
directory's users and the assigned groups, as Graph returns them. Deciding scope and synthesizing
attributes is the engine's job (engine/directory.py); nothing here decides."""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from typing import Any

from snsync.config import Config
from snsync.errors import BadRequestError, NotFoundError, TransientError
from snsync.graph.batchread import list_many
from snsync.graph.client import DeltaRound, GraphClient
from snsync.graph.delta import latest_links
from snsync.graph.opening import (
    SP_SELECT,
    Opening,
    assignments_params,
    assignments_path,
    read_opening,
)
from snsync.model import AppScope, Assignment, DeltaLinks, Progress, Row, shape_of

# Attributes the Azure provisioning schema offers that Graph does not return as such.
SYNTHESIZED = frozenset(
    {"IsSoftDeleted", "objectId", "telephoneNumber", "manager", "appRoleAssignments"}
)
# extensionAttribute1..15 come nested in this property (engine/directory.py lifts them).
EXTENSIONS_PROPERTY = "onPremisesExtensionAttributes"
EXTENSION_ATTRIBUTE = re.compile(r"extensionAttribute(?:[1-9]|1[0-5])")
ALWAYS_SELECT = ("id", "userPrincipalName", "displayName", "accountEnabled")
USER_TYPE = "#microsoft.graph.user"


def graph_select(attributes: Iterable[str]) -> list[str]:
    """The `$select` list for users: what mappings and filters read, minus synthesized names."""
    wanted = dict.fromkeys(ALWAYS_SELECT)
    for name in attributes:
        if name == "telephoneNumber":
            wanted["businessPhones"] = None
        elif EXTENSION_ATTRIBUTE.fullmatch(name):
            wanted[EXTENSIONS_PROPERTY] = None
        elif name not in SYNTHESIZED and name:
            wanted[name] = None
    return list(wanted)


def group_select(attributes: Iterable[str]) -> list[str]:
    """The `$select` list for groups: what the group mappings read, minus synthesized names."""
    wanted = dict.fromkeys(("id", "displayName"))
    wanted.update(dict.fromkeys(a for a in attributes if a and a not in SYNTHESIZED))
    return list(wanted)


def find_service_principal(graph: GraphClient, config: Config) -> dict[str, Any]:
    """The ServiceNow app's service principal, by id or by its app (client) id."""
    params = {"$select": SP_SELECT}
    if config.graph.service_principal_id:
        return graph.get(f"servicePrincipals/{config.graph.service_principal_id}", params)
    found = graph.get(
        "servicePrincipals", {**params, "$filter": f"appId eq '{config.graph.app_id}'"}
    ).get("value", [])
    if not found:
        raise NotFoundError(
            f"no service principal with appId '{config.graph.app_id}' in this tenant; check "
            "graph.app_id (the ServiceNow enterprise app's Application ID)",
            service="graph",
            status=404,
        )
    return dict(found[0])


def read_app_scope(
    graph: GraphClient,
    config: Config,
    progress: Progress | None = None,
    known_members: Mapping[str, tuple[str, ...]] | None = None,
    opening: Opening | None = None,
) -> AppScope:
    """The app's roles, its assignments and the user members of its assigned groups (members
    already known, from the cache of an incremental cycle, are not listed again). An opening
    `$batch` (graph/opening.py) may have read the service principal and the assignments' first
    page already."""
    sp: Mapping[str, Any]
    if opening is not None and opening.service_principal is not None:
        sp, first = opening.service_principal, opening.assignments
    else:
        sp, first = find_service_principal(graph, config), None
    sp_id = str(sp["id"])
    roles = {
        str(r.get("id")): str(r.get("value") or r.get("displayName") or "")
        for r in sp.get("appRoles", [])
    }
    incomplete: list[str] = []
    path, params = assignments_path(sp_id), assignments_params()
    rows = _pages(graph, path, params, "assignments", incomplete, first=first)
    assignments = tuple(
        Assignment(
            id=str(a.get("id", "")),
            principal_id=str(a.get("principalId", "")),
            principal_type=str(a.get("principalType", "")),
            app_role_id=str(a.get("appRoleId", "")),
            principal_name=str(a.get("principalDisplayName") or ""),
        )
        for a in rows
    )
    groups = dict.fromkeys(a.principal_id for a in assignments if a.principal_type == "Group")
    members = read_members(graph, config, list(groups), known_members or {}, incomplete, progress)
    return AppScope(
        sp_id, str(sp.get("displayName", "")), roles, assignments, members, tuple(incomplete)
    )


def read_members(
    graph: GraphClient,
    config: Config,
    group_ids: list[str],
    known: Mapping[str, tuple[str, ...]],
    incomplete: list[str],
    progress: Progress | None = None,
) -> dict[str, tuple[str, ...]]:
    """The user members of each group (those `known` are not listed again), read through
    parallel `$batch` requests (graph/batchread.py); a listing the batch could not serve is
    read on its own, with the usual retries and "incomplete" notes."""
    relation = "transitiveMembers" if config.scope.expand_nested_groups else "members"
    params = {"$select": "id", "$top": "999"}
    paths = {g: f"groups/{g}/{relation}" for g in group_ids if g not in known}
    batched = list_many(graph, list(paths.values()), params)
    members: dict[str, tuple[str, ...]] = {}
    for group_id in group_ids:
        if group_id in known:
            members[group_id] = known[group_id]
            continue
        listed = batched.get(paths[group_id])
        if listed is None:
            what = f"members of group {group_id}"
            listed = _pages(graph, paths[group_id], params, what, incomplete)
        members[group_id] = tuple(
            m["id"]
            for m in listed
            if m.get("@odata.type") == USER_TYPE and isinstance(m.get("id"), str)
        )
        if progress:
            progress("group members", len(listed))
    return members


def _pages(
    graph: GraphClient,
    path: str,
    params: Mapping[str, str],
    what: str,
    incomplete: list[str],
    progress: Progress | None = None,
    first: Mapping[str, Any] | None = None,
) -> list[dict[str, Any]]:
    """Every item of a listing; if a page fails after retries, what was read so far, and the
    failure noted in `incomplete` (so that the cycle disables nothing). `first`: the first
    page's answer when a `$batch` read it already."""
    items: list[dict[str, Any]] = []
    try:
        for page in graph.iter_pages(path, params, first=first):
            items.extend(page)
            if progress:
                progress(what, len(page))
    except (TransientError, BadRequestError) as exc:
        incomplete.append(f"{what}: stopped after {len(items)} items: {exc}")
    return items


class Interner:
    """Makes equal attribute values of the objects read one string object (department, city,
    job title, the manager's `@odata.type` repeat from user to user; JSON parsing makes a new
    string of each). An attribute that shows more than `limit` different values is left alone
    from then on, so unique values (ids, names, mail) cost no table."""

    def __init__(self, limit: int = 512) -> None:
        self.limit = limit
        self._values: dict[str, dict[str, str]] = {}
        self._unique: set[str] = set()

    def share(self, raw: dict[str, Any], prefix: str = "") -> dict[str, Any]:
        """`raw` with its repeated string values (and those of its nested objects) shared."""
        for key, value in raw.items():
            if isinstance(value, str):
                name = prefix + key
                if name not in self._unique:
                    raw[key] = self._shared(name, value)
            elif isinstance(value, dict):
                self.share(value, f"{prefix}{key}/")
        return raw

    def _shared(self, key: str, value: str) -> str:
        table = self._values.setdefault(key, {})
        found = table.setdefault(value, value)
        if len(table) > self.limit:
            self._unique.add(key)
            del self._values[key]
        return found


class Packer(Interner):
    """Turns each user of a listing into a compact read-only Row as soon as its page is parsed
    (model.Row: its values against a key list shared by the users), with repeated values
    shared as the Interner shares them, and every `id` (the user's, its manager's) one string
    object per id. At 100,000 users the dicts Graph's JSON parses into cost about 45 MB more
    than the Rows, and parsing page by page lets each page reuse the memory of the last."""

    def __init__(self, limit: int = 512) -> None:
        super().__init__(limit)
        self._ids: dict[str, str] = {}

    def pack(self, raw: Mapping[str, Any], prefix: str = "") -> Row:
        """`raw` as a Row, nested objects as Rows; equal values of one object are one string
        (mail is often the userPrincipalName)."""
        values: list[Any] = []
        own: dict[str, str] = {}
        for key, value in raw.items():
            if isinstance(value, str):
                if key == "id":
                    value = self._ids.setdefault(value, value)
                else:
                    name = prefix + key
                    if name not in self._unique:
                        value = self._shared(name, value)
                    value = own.setdefault(value, value)
            elif isinstance(value, dict):
                value = self.pack(value, f"{prefix}{key}/")
            values.append(value)
        return Row(shape_of(tuple(raw)), tuple(values))


def read_users(
    graph: GraphClient,
    attributes: Iterable[str],
    page_size: int,
    progress: Progress | None = None,
    incomplete: list[str] | None = None,
) -> list[Mapping[str, Any]]:
    """Every user in the directory with the attributes the mappings need, as compact Rows."""
    params: dict[str, str] = {"$select": ",".join(graph_select(attributes)), "$top": str(page_size)}
    if "manager" in attributes:
        params["$expand"] = "manager($select=id)"
    noted = incomplete if incomplete is not None else []
    packer = Packer()
    users: list[Mapping[str, Any]] = []
    try:
        for page in graph.iter_pages("users", params):
            users.extend(packer.pack(user) for user in page)
            if progress:
                progress("users", len(page))
    except (TransientError, BadRequestError) as exc:
        noted.append(f"users: stopped after {len(users)} items: {exc}")
    return users


def read_groups(
    graph: GraphClient,
    wanted: Iterable[str],
    attributes: Iterable[str],
    incomplete: list[str] | None = None,
    known: Mapping[str, dict[str, Any]] | None = None,
) -> list[dict[str, Any]]:
    """The `wanted` groups with the attributes the group mappings need (`$batch`, 20 a call);
    groups already `known` (cached and kept current by delta) are not fetched again."""
    select = group_select(attributes)
    cached = known or {}
    ids = list(dict.fromkeys(wanted))
    paths = [f"groups/{group_id}" for group_id in ids if group_id not in cached]
    try:
        found = graph.get_many(paths, {"$select": ",".join(select)}) if paths else {}
    except (TransientError, BadRequestError) as exc:
        if incomplete is not None:
            incomplete.append(f"assigned groups: {exc}")
        found = {}
    return [cached[g] for g in ids if g in cached] + [g for g in found.values() if g]


class GraphDirectory:
    """The directory port of the engine (snsync.engine.ports.Directory) over a GraphClient."""

    def __init__(self, graph: GraphClient, config: Config) -> None:
        self.graph = graph
        self.config = config

    def latest_delta_links(self, user_select: str, group_select: str) -> DeltaLinks:
        return latest_links(self.graph, user_select, group_select)

    def delta(self, link: str) -> DeltaRound:
        return self.graph.delta(link)

    def opening(self, links: DeltaLinks, service_principal: str = "") -> Opening:
        """An incremental cycle's opening reads in one `$batch` (graph/opening.py)."""
        return read_opening(self.graph, self.config, links, service_principal)

    def app_scope(
        self,
        progress: Progress | None = None,
        known_members: Mapping[str, tuple[str, ...]] | None = None,
        opening: Opening | None = None,
    ) -> AppScope:
        return read_app_scope(self.graph, self.config, progress, known_members, opening)

    def users(
        self, attributes: set[str], progress: Progress | None, incomplete: list[str]
    ) -> list[Mapping[str, Any]]:
        return read_users(self.graph, attributes, self.config.graph.page_size, progress, incomplete)

    def groups(
        self,
        ids: Iterable[str],
        attributes: set[str],
        incomplete: list[str],
        known: Mapping[str, dict[str, Any]] | None = None,
    ) -> list[dict[str, Any]]:
        return read_groups(self.graph, ids, attributes, incomplete, known)

    def user(self, ref: str, attributes: set[str]) -> dict[str, Any]:
        """One user by UPN or object id, with what the mappings need."""
        params = {"$select": ",".join(graph_select(attributes))}
        if "manager" in attributes:
            params["$expand"] = "manager($select=id)"
        try:
            return self.graph.get(f"users/{ref}", params)
        except NotFoundError:
            raise NotFoundError(
                f"no directory user '{ref}': give a userPrincipalName or object id",
                service="graph",
                status=404,
            ) from None

    def group(self, group_id: str, attributes: set[str]) -> dict[str, Any]:
        """One group by object id, with what the group mappings need."""
        params = {"$select": ",".join(group_select(attributes))}
        try:
            return self.graph.get(f"groups/{group_id}", params)
        except NotFoundError:
            raise NotFoundError(
                f"no directory group with object id '{group_id}'", service="graph", status=404
            ) from None

    def groups_named(self, name: str, attributes: set[str]) -> list[dict[str, Any]]:
        """The groups whose displayName is `name` (Graph compares it ignoring case)."""
        quoted = name.replace("'", "''")  # OData: a quote inside a string literal is doubled
        params = {
            "$filter": f"displayName eq '{quoted}'",
            "$select": ",".join(group_select(attributes)),
            "$top": "999",
        }
        return [g for page in self.graph.iter_pages("groups", params) for g in page]
