"""The Table and Stats APIs: which path is which, and the handler of each path and method."""

from __future__ import annotations

import json
import re
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from snsync.sandbox.encoded_query import parse
from snsync.sandbox.server import Request, Response
from snsync.sandbox.servicenow.acl import OPERATION, Account, ReadRule, allowed
from snsync.sandbox.servicenow.costs import ServerCosts
from snsync.sandbox.servicenow.failure import Failure
from snsync.sandbox.servicenow.render import DateStyle, View, field_list, link_header
from snsync.sandbox.servicenow.schema import TableSpec
from snsync.sandbox.servicenow.store import Store, WriteContext

DEFAULT_LIMIT = 10_000
WRITE_METHODS = ("POST", "PUT", "PATCH", "DELETE")

TABLE_PATH = re.compile(r"/api/now/(?:(v[12])/)?table/([^/]+)(?:/([^/]+))?/?")
STATS_PATH = re.compile(r"/api/now/(?:v1/)?stats/([^/]+)/?")
BATCH_PATH = re.compile(r"/api/now/(?:v1/)?batch/?")


@dataclass(frozen=True)
class Route:
    """What a path asks for."""

    kind: str  # table | record | stats | batch | oauth | unknown | none
    table: str = ""
    sys_id: str = ""
    version: str = ""  # v1, v2 or "" (unversioned)


def parse_route(path: str) -> Route:
    """The route of a percent-decoded path."""
    if path == "/oauth_token.do":
        return Route("oauth")
    if BATCH_PATH.fullmatch(path):
        return Route("batch")
    if found := TABLE_PATH.fullmatch(path):
        version, table, sys_id = found.group(1) or "", found.group(2), found.group(3)
        return Route("record" if sys_id else "table", table, sys_id or "", version)
    if found := STATS_PATH.fullmatch(path):
        return Route("stats", found.group(1))
    if path.startswith("/api/"):
        return Route("unknown")
    return Route("none")


class TableApi:
    """Answers Table and Stats API requests of an authenticated account; one lock guards the
    store for every thread."""

    def __init__(
        self,
        store: Store,
        lock: threading.RLock,
        now: Callable[[], str],
        read_rules: tuple[ReadRule, ...] = (),
        pause: Callable[[float], None] = lambda seconds: None,
    ) -> None:
        self.store = store
        self.lock = lock
        self._now = now
        self._writes = 0
        self._read_rules = read_rules
        self._pause = pause
        self.costs = ServerCosts()

    def write_count(self) -> int:
        """Successful POST/PUT/PATCH/DELETE calls so far."""
        with self.lock:
            return self._writes

    def answer(self, route: Route, request: Request, account: Account) -> Response:
        """The answer to one API request (raises Failure for error answers)."""
        if route.kind == "unknown":
            raise Failure(400, "Requested URI does not represent any resource", None)
        spec = self.store.specs.get(route.table)
        if spec is None:
            raise Failure(400, f"Invalid table {route.table}", None)
        method = "GET" if request.method == "HEAD" else request.method
        handler = HANDLERS.get((route.kind, method))
        if handler is None:
            raise Failure(405, "Method not Supported", f"{method} method not supported for API")
        require(account, spec.name, OPERATION[method])
        response = handler(self, spec, route, request, account)
        if method in WRITE_METHODS and response.status < 300:
            with self.lock:
                self._writes += 1
        if response.status < 300:
            # Server time per row and per record, spent outside the store's lock but inside the
            # caller's session and node thread.
            self._pause(self.costs.seconds(method, spec.name, _rows(response)))
        return response

    def list_records(
        self, spec: TableSpec, route: Route, request: Request, account: Account
    ) -> Response:
        """GET on a table: one page of matching records."""
        query = parse(request.query.get("sysparm_query", ""))
        limit = number_param(request.query.get("sysparm_limit"), DEFAULT_LIMIT, minimum=1)
        offset = number_param(request.query.get("sysparm_offset"), 0, minimum=0)
        with self.lock:
            rows = self.store.select(spec.name, query)
            render = self.view(request, account).renderer(self.store, spec)
            readable = self._readable(spec.name, account)
            # Row read rules run after sysparm_limit: a page can be short, or empty, mid-table.
            page = [render(row) for row in rows[offset : offset + limit] if readable(row)]
        if route.version == "v1" and not page:
            raise Failure(404, "No Record found", "Records not found")
        headers: dict[str, str] = {}
        if request.query.get("sysparm_no_count", "").lower() != "true":
            headers["X-Total-Count"] = str(len(rows))
        if request.query.get("sysparm_suppress_pagination_header", "").lower() != "true":
            headers["Link"] = link_header(request, len(rows), limit, offset)
        return Response(200, {"result": page}, headers)

    def read(self, spec: TableSpec, route: Route, request: Request, account: Account) -> Response:
        """GET on a record."""
        with self.lock:
            record = self.existing(spec, route.sys_id, account)
            return Response(
                200, {"result": self.view(request, account).render(self.store, spec, record)}
            )

    def create(self, spec: TableSpec, route: Route, request: Request, account: Account) -> Response:
        """POST on a table; no body at all inserts a record of defaults, as the platform does."""
        body = json_object(request) if request.body.strip() else {}
        view = self.view(request, account)
        with self.lock:
            record = self.store.create(spec, body, self.write_context(request, account))
            result = view.render(self.store, spec, record)
        location = f"{request.base_url}/api/now/table/{spec.name}/{record['sys_id']}"
        return Response(201, {"result": result}, {"Location": location})

    def update(self, spec: TableSpec, route: Route, request: Request, account: Account) -> Response:
        """PUT or PATCH on a record (both partial updates, as on the platform)."""
        body = json_object(request)
        view = self.view(request, account)
        with self.lock:
            self.existing(spec, route.sys_id, account)
            context = self.write_context(request, account)
            record = self.store.update(spec, route.sys_id, body, context)
            return Response(200, {"result": view.render(self.store, spec, record)})

    def delete(self, spec: TableSpec, route: Route, request: Request, account: Account) -> Response:
        """DELETE on a record, with the cascade."""
        with self.lock:
            self.existing(spec, route.sys_id, account)
            self.store.delete(spec.name, route.sys_id)
        return Response(204)

    def stats(self, spec: TableSpec, route: Route, request: Request, account: Account) -> Response:
        """GET on the stats API: count, optionally grouped."""
        query = parse(request.query.get("sysparm_query", ""))
        counting = request.query.get("sysparm_count", "").lower() == "true"
        group_by = field_list(request.query.get("sysparm_group_by", ""))
        with self.lock:
            rows = self.store.select(spec.name, query)
        stats = {"count": str(len(rows))} if counting else {}
        if not group_by:
            return Response(200, {"result": {"stats": stats}})
        groups: dict[tuple[str, ...], int] = {}
        for row in rows:
            key = tuple(row.get(name, "") for name in group_by)
            groups[key] = groups.get(key, 0) + 1
        result = [
            {
                "stats": {"count": str(count)} if counting else {},
                "groupby_fields": [
                    {"field": f, "value": v} for f, v in zip(group_by, key, strict=True)
                ],
            }
            for key, count in groups.items()
        ]
        return Response(200, {"result": result})

    def existing(self, spec: TableSpec, sys_id: str, account: Account) -> dict[str, str]:
        """The stored record the account may read, or the 404 an instance answers."""
        record = self.store.rows[spec.name].get(sys_id)
        if record is None or not self._readable(spec.name, account)(record):
            raise Failure(
                404,
                "No Record found",
                "Record doesn't exist or ACL restricts the record retrieval",
            )
        return record

    def view(self, request: Request, account: Account) -> View:
        """How this request shows records to this account (its date style included)."""
        return View.of(request, DateStyle.of_user(self.store.find_user(account.user_name)))

    def _readable(self, table: str, account: Account) -> Callable[[dict[str, str]], bool]:
        rules = [r for r in self._read_rules if r.table == table and r.applies_to(account)]
        if not rules:
            return lambda record: True
        tests = [self.store.predicate(table, rule.query) for rule in rules]
        return lambda record: all(test(record) for test in tests)

    def write_context(self, request: Request, account: Account) -> WriteContext:
        """Who writes, when, and how references in the body are read."""
        by_display = request.query.get("sysparm_input_display_value", "").lower() == "true"
        return WriteContext(account.user_name, self._now(), by_display)


Handler = Callable[[TableApi, TableSpec, Route, Request, Account], Response]
HANDLERS: dict[tuple[str, str], Handler] = {
    ("table", "GET"): TableApi.list_records,
    ("table", "POST"): TableApi.create,
    ("record", "GET"): TableApi.read,
    ("record", "PUT"): TableApi.update,
    ("record", "PATCH"): TableApi.update,
    ("record", "DELETE"): TableApi.delete,
    ("stats", "GET"): TableApi.stats,
}


def _rows(response: Response) -> int:
    result = response.body.get("result") if isinstance(response.body, dict) else None
    return len(result) if isinstance(result, list) else 1


def require(account: Account, table: str, operation: str) -> None:
    """Raise the ACL 403 unless the account's roles allow the operation on the table."""
    if allowed(account.roles, table, operation):
        return
    raise Failure(
        403,
        "Operation Failed",
        f"ACL Exception {operation.capitalize()} Failed due to security constraints",
    )


def number_param(text: str | None, default: int, *, minimum: int) -> int:
    """An integer parameter; the default when missing, not a number, or below the minimum."""
    try:
        value = int(text or "")
    except ValueError:
        return default
    return value if value >= minimum else default


def json_object(request: Request) -> dict[str, Any]:
    """The request body as a JSON object, or the 4xx an instance answers."""
    content_type = request.header("Content-Type").lower()
    if content_type and "json" not in content_type:
        raise Failure(415, "Unsupported Media Type", f"Content-Type {content_type} not supported")
    if not request.body.strip():
        raise Failure(400, "Exception while reading request", "Empty request body")
    try:
        payload = json.loads(request.body)
    except (ValueError, UnicodeDecodeError):
        raise Failure(
            400, "Exception while reading request", "The payload is not valid JSON."
        ) from None
    if not isinstance(payload, dict):
        raise Failure(400, "Exception while reading request", "The payload is not a JSON object.")
    return payload
