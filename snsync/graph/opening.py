"""The opening reads of an incremental cycle in one Graph `$batch`: the first pages of the users
and the groups delta rounds and, when the app's service principal id is known (configured, or
remembered from the last cycle), the service principal and the first page of its assignments.
None of them depends on another, so four round trips become one; the pages that follow
(`@odata.nextLink`) are read one after another as before.

Every sub-response is treated as hostile and used only when it is what the standalone answer
would have to be: a 200 whose body is a JSON object with a list of objects (or, for the service
principal, the object asked for: its id, and the configured appId), with next and delta links
that stay at Graph's origin under `/v1.0/`. A delta that expired (400 syncStateNotFound or 410)
ends the incremental read as a standalone answer would (the cycle reads everything). Anything
else (a 429 or 503, which also tell the limiter; another error; a missing, repeated or malformed
answer; a link elsewhere) is read again on its own through the ordinary path, with its retries,
permission hints and messages, so that a batch can neither send a request elsewhere nor change
what a cycle reads. A service principal that is not the remembered one (deleted and created
again, another app) drops both of its parts: the assignments are read as a full cycle does."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

from snsync.bounds import same_origin
from snsync.config import Config
from snsync.errors import ApiError, DeltaExpired
from snsync.graph.client import (
    PREFER_LARGE_PAGES,
    DeltaRound,
    GraphClient,
    graph_error_of,
    page_values,
)
from snsync.model import DeltaLinks

SP_SELECT = "id,appId,displayName,appRoles"
ASSIGNMENTS_TOP = "999"
OBJECT_ID = re.compile(r"[0-9a-fA-F]{8}-(?:[0-9a-fA-F]{4}-){3}[0-9a-fA-F]{12}")
EXPIRED_STATUSES = frozenset({400, 410})


@dataclass(frozen=True)
class Opening:
    """The opening reads: both delta rounds (whole), and what the batch served cleanly of the
    service principal and its assignments (None: read them as a full cycle does)."""

    users: DeltaRound
    groups: DeltaRound
    service_principal: Mapping[str, Any] | None = None
    assignments: Mapping[str, Any] | None = None  # the first page, given with the principal


def assignments_path(sp_id: str) -> str:
    return f"servicePrincipals/{sp_id}/appRoleAssignedTo"


def assignments_params() -> dict[str, str]:
    return {"$top": ASSIGNMENTS_TOP}


def known_principal(config: Config, remembered: str) -> str | None:
    """The service principal id to ask for by id: the configured one, else the one the last
    cycle read (only when it has an object id's form: it goes into a URL)."""
    if config.graph.service_principal_id:
        return config.graph.service_principal_id
    return remembered if OBJECT_ID.fullmatch(remembered or "") else None


def read_opening(
    graph: GraphClient, config: Config, links: DeltaLinks, remembered_sp: str = ""
) -> Opening:
    """Both delta rounds, and the app's service principal and first assignments page when its
    id is known, their first pages in one `$batch` (DeltaExpired as a single read raises it)."""
    sp_id = known_principal(config, remembered_sp)
    parts: dict[str, dict[str, Any]] = {}
    for key, link in (("users", links.users), ("groups", links.groups)):
        relative = graph.batch_url(link)
        if relative is not None:
            parts[key] = {"url": relative, "headers": {"Prefer": PREFER_LARGE_PAGES}}
    if sp_id:
        quoted = quote(sp_id, safe="")
        parts["sp"] = {"url": f"/servicePrincipals/{quoted}?$select={SP_SELECT}"}
        parts["assignments"] = {"url": f"/{assignments_path(quoted)}?$top={ASSIGNMENTS_TOP}"}
    answers = _batched(graph, parts) if len(parts) > 1 else {}
    users = _delta(graph, links.users, answers.get("users"))
    groups = _delta(graph, links.groups, answers.get("groups"))
    principal = answers.get("sp")
    if sp_id is None or not _is_principal(principal, sp_id, config):
        return Opening(users, groups)
    first: dict[str, Any] | None = answers.get("assignments")
    path = f"{graph.base}/{assignments_path(sp_id)}"
    if first is None or not _clean_page(graph, first, path):
        return Opening(users, groups, principal)
    return Opening(users, groups, principal, first if _assigned_to(first, sp_id) else None)


def _batched(graph: GraphClient, parts: Mapping[str, Mapping[str, Any]]) -> dict[str, Any]:
    """The sub-responses' bodies by part, where the answer was a 200 (DeltaExpired raised for
    an expired delta); the other parts are left out, to be read on their own."""
    requests_ = [{"id": key, "method": "GET", **part} for key, part in parts.items()]
    try:
        answers = graph.batch(requests_)
    except ApiError:
        return {}  # the batch itself failed: each part is read on its own
    bodies: dict[str, Any] = {}
    for key, answer in zip(parts, answers, strict=True):
        status = answer.get("status")
        if status == 200:
            bodies[key] = answer.get("body")
        elif status in EXPIRED_STATUSES and key in ("users", "groups"):
            _raise_if_expired(graph, parts[key]["url"], status, answer.get("body"))
    return bodies


def _raise_if_expired(graph: GraphClient, url: str, status: int, body: Any) -> None:
    error = graph_error_of(status, body, None, "GET", f"{graph.base}{url}")
    if isinstance(error, DeltaExpired):
        raise error


def _delta(graph: GraphClient, link: str, body: Any) -> DeltaRound:
    """The delta round of `link`, starting from its batched first page when that is clean."""
    if _clean_page(graph, body, link.split("?")[0], delta=True):
        return graph.delta(link, first=body)
    return graph.delta(link)


def _clean_page(graph: GraphClient, body: Any, path: str, *, delta: bool = False) -> bool:
    """Whether a page is what a standalone answer must be: an object with a list of objects,
    and links (next, and for a delta round the delta link) to the same collection at Graph:
    the sub-response's id is all that ties it to its request, so a page whose links name
    another collection answers another request."""
    if page_values(body) is None:
        return False
    keys = ("@odata.nextLink", "@odata.deltaLink") if delta else ("@odata.nextLink",)
    links = [body[k] for k in keys if k in body]
    if (delta and not links) or (not delta and "@odata.deltaLink" in body):
        return False
    return all(_link_to(graph, link, path) for link in links)


def _link_to(graph: GraphClient, link: Any, path: str) -> bool:
    """Whether `link` stays at Graph's origin and names the collection at `path` (a URL)."""
    if not isinstance(link, str) or not same_origin(link, graph.home):
        return False
    return link.split("?")[0].lower() == path.lower()


def _assigned_to(page: Mapping[str, Any], sp_id: str) -> bool:
    """Whether every assignment of a page is to the service principal `sp_id` (resourceId)."""
    return all(str(a.get("resourceId", "")).lower() == sp_id.lower() for a in page["value"])


def _is_principal(body: Any, sp_id: str, config: Config) -> bool:
    """Whether the batched answer is the service principal asked for, of the configured app."""
    if not isinstance(body, dict) or str(body.get("id", "")).lower() != sp_id.lower():
        return False
    roles = body.get("appRoles", [])
    if not isinstance(roles, list) or not all(isinstance(r, dict) for r in roles):
        return False
    return config.graph.app_id is None or body.get("appId") == config.graph.app_id
