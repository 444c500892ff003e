"""Query options ($select, $expand=manager, $top, $count), key-ordered paging with opaque
$skiptoken links, and rendering of stored objects.
"""

from __future__ import annotations

import bisect
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

from snsync.sandbox.graph.catalog import COLLECTIONS, USER_CATALOG
from snsync.sandbox.graph.wire import Call, GraphError
from snsync.sandbox.server import Response

if TYPE_CHECKING:
    from snsync.sandbox.graph.routing import RouteBase


LIST_OPTIONS = ("$select", "$top", "$filter", "$skiptoken", "$count")


class Pager:
    """Key-ordered paging with an opaque $skiptoken: no drift when rows change between pages.

    Built from rows (sorted here), or with `Pager.over` from keys already in order and a look-up
    that says which of them the listing shows: a page then costs its own rows, not the whole
    collection's (a 100,000-user listing has 1,000 pages)."""

    def __init__(self, routes: RouteBase, rows: list[tuple[str, Any]], context: str) -> None:
        ordered = sorted(rows, key=lambda row: row[0])
        items = dict(ordered)
        self._setup(routes, [key for key, _ in ordered], items.get, context)

    @classmethod
    def over(
        cls,
        routes: RouteBase,
        keys: Sequence[str],
        lookup: Callable[[str], Any | None],
        context: str,
    ) -> Pager:
        """A pager over `keys` (sorted, unique); `lookup` gives a key's item, None to skip it."""
        pager = cls.__new__(cls)
        pager._setup(routes, keys, lookup, context)
        return pager

    def _setup(
        self,
        routes: RouteBase,
        keys: Sequence[str],
        lookup: Callable[[str], Any | None],
        context: str,
    ) -> None:
        self.routes = routes
        self.keys = keys
        self.lookup = lookup
        self.context = context

    def answer(self, render: Callable[[Any], dict[str, Any]]) -> Response:
        call = self.routes.call
        top = parse_top(call.query)
        if "$expand" in call.query:  # Graph caps pages of expanded directory objects
            top = min(top, self.routes.service.options.expand_page_cap)
        after = ""
        if "$skiptoken" in call.query:
            after = str(
                self.routes.service.open_token(call.query["$skiptoken"], "$skiptoken").get("a", "")
            )
        page, more = self._window(after, top)
        body: dict[str, Any] = {"@odata.context": self.routes.context(self.context)}
        if is_counting(call):
            body["@odata.count"] = sum(1 for key in self.keys if self.lookup(key) is not None)
        if more:
            token = self.routes.service.seal({"a": page[-1][0]})
            body["@odata.nextLink"] = paging_link(call, {"$skiptoken": token}, keep=True)
        body["value"] = [render(item) for _, item in page]
        return Response(200, body)

    def _window(self, after: str, top: int) -> tuple[list[tuple[str, Any]], bool]:
        """Up to `top` shown rows with keys after `after`, and whether another follows them."""
        keys, lookup = self.keys, self.lookup
        page: list[tuple[str, Any]] = []
        for index in range(bisect.bisect_right(keys, after), len(keys)):
            item = lookup(keys[index])
            if item is None:
                continue
            if len(page) == top:
                return page, True
            page.append((keys[index], item))
        return page, False


def parse_select(query: Mapping[str, str], catalog: Mapping[str, str]) -> list[str] | None:
    text = query.get("$select")
    if text is None:
        return None
    names: list[str] = []
    for raw in text.split(","):
        name = raw.strip()
        if not name:
            continue
        canonical = catalog.get(name.lower())
        if canonical is None:
            raise GraphError(
                400,
                "BadRequest",
                f"Parsing OData Select and Expand failed: Could not find a property named "
                f"'{name}' on type 'microsoft.graph.directoryObject'.",
            )
        if canonical not in names:
            names.append(canonical)
    return names or None


def select_suffix(select: list[str] | None) -> str:
    return f"({','.join(select)})" if select else ""


def parse_expand_manager(query: Mapping[str, str]) -> list[str] | None:
    """None without $expand; [] for manager's default properties; else its $select."""
    text = query.get("$expand")
    if text is None:
        return None
    match = re.fullmatch(r"\s*manager\s*(?:\(\s*\$select\s*=\s*([^)]*)\))?\s*", text, re.I)
    if match is None:
        raise GraphError(
            400,
            "BadRequest",
            f"Parsing OData Select and Expand failed: Could not find a property named "
            f"'{text.split('(')[0].strip()}' on type 'microsoft.graph.user'.",
        )
    if match.group(1) is None:
        return []
    return parse_select({"$select": match.group(1)}, USER_CATALOG) or []


def parse_top(query: Mapping[str, str], prefer: str = "") -> int:
    text = query.get("$top")
    if text is None:
        match = re.search(r"odata\.maxpagesize=(\d+)", prefer)
        return min(int(match.group(1)), 999) if match else 100
    try:
        top = int(text)
    except ValueError:
        raise GraphError(
            400,
            "BadRequest",
            f"Invalid value '{text}' for $top query option found. The $top query option "
            "requires a non-negative integer value.",
        ) from None
    if not 1 <= top <= 999:
        raise GraphError(
            400,
            "Request_BadRequest",
            f"Invalid page size specified: '{top}'. Must be between 1 and 999 inclusive.",
        )
    return top


def is_counting(call: Call) -> bool:
    return (
        call.query.get("$count", "").lower() == "true"
        and call.headers.get("consistencylevel", "").lower() == "eventual"
    )


def render_props(
    source: Mapping[str, Any], names: Iterable[str], *, limited: bool = False
) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for name in names:
        if name == "id":
            out[name] = source.get("id")
        elif limited or name == "passwordProfile":  # write-only, as in Graph
            out[name] = None
        else:
            out[name] = source.get(name, [] if name in COLLECTIONS else None)
    return out


def paging_link(call: Call, extra: Mapping[str, str], *, keep: bool) -> str:
    """An absolute nextLink/deltaLink on this listener (paging keeps the caller's options)."""
    params = {k: v for k, v in call.query.items() if k not in ("$skiptoken", "$deltatoken")}
    params = {**params, **extra} if keep else dict(extra)
    query = "&".join(f"{k}={quote(str(v), safe=',()$=:/@')}" for k, v in params.items())
    return f"{call.base_url}/v1.0/{call.path.lstrip('/')}?{query}"


def reference_id(body: Mapping[str, Any]) -> str:
    ref = body.get("@odata.id")
    match = re.search(
        r"/(?:directoryObjects|users|groups)/([0-9a-fA-F-]{36})(?:/|$)", str(ref or ""), re.I
    )
    if match is None:
        raise GraphError(400, "Request_BadRequest", f"Invalid object identifier '{ref}'.")
    return match.group(1).lower()
