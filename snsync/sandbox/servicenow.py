"""A local ServiceNow instance for the sandbox: Table, Stats and Batch APIs and `/oauth_token.do`,
with ServiceNow's value formats, roles, business rules, paging headers and error shapes.

It is the only ServiceNow the tests and benchmarks see, so it answers the way a real instance does
(docs/sandbox-servicenow.md lists what is faithful and the known differences).
"""

from __future__ import annotations

import base64
import binascii
import bisect
import hmac
import json
import re
import secrets
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from functools import cached_property
from http import HTTPStatus
from pathlib import Path
from typing import Any, NoReturn
from urllib.parse import parse_qs, unquote, urlencode, urlsplit

from snsync.errors import FixtureError
from snsync.sandbox.encoded_query import (
    EncodedQuery,
    FieldKind,
    Getter,
    compile_query,
    is_true,
    order_records,
    parse,
)
from snsync.sandbox.server import Request, Response

DATETIME_FORMAT = "%Y-%m-%d %H:%M:%S"
DEFAULT_LIMIT = 10_000
ACCESS_TOKEN_SECONDS = 1799
REFRESH_TOKEN_SECONDS = 100 * 24 * 3600


class ServiceNowApp:
    """A ServiceNow instance serving one fixture; implements `snsync.sandbox.server.App`."""

    def __init__(
        self,
        instance: Mapping[str, Any],
        *,
        rate_limit_per_hour: int | None = None,
        max_concurrent: int | None = None,
        clock: Callable[[], datetime] | None = None,
    ) -> None:
        if rate_limit_per_hour is not None and rate_limit_per_hour < 1:
            raise ValueError("rate_limit_per_hour must be at least 1")
        if max_concurrent is not None and max_concurrent < 1:
            raise ValueError("max_concurrent must be at least 1")
        self._clock = clock or _utc_now
        loaded = _load_instance(instance, _timestamp(self._clock()))
        self._accounts = loaded.accounts
        self._clients = loaded.clients
        self._store = _Store(loaded.specs, loaded.rows)
        self._lock = threading.RLock()
        self._tokens = _Tokens()
        self._limiter = _RateLimiter(rate_limit_per_hour, self._clock)
        self._gate = _Gate(max_concurrent)
        self._writes = 0

    def handle(self, request: Request) -> Response:
        """Answer one HTTP request, holding a concurrency slot while doing so."""
        with self._gate.slot():
            try:
                return self._handle(request)
            except _Failure as failure:
                return failure.response()
            except Exception as exc:  # a sandbox bug: answer as an instance would, visibly
                return _Failure(500, "Internal server error", f"{exc!r}").response()

    def fault_response(self, status: int, retry_after: int) -> Response:
        """An injected fault as an instance sends it: rate-limit JSON or a maintenance page."""
        if status == 429:
            reset = int(self._clock().timestamp()) + retry_after
            return _rate_limited(retry_after, reset, None).response()
        if status == 503:
            return Response(
                503,
                _MAINTENANCE_PAGE,
                {"Content-Type": "text/html;charset=UTF-8", "Retry-After": str(retry_after)},
            )
        return _Failure(status, HTTPStatus(status).phrase, None).response()

    def records(self, table: str) -> list[dict[str, str]]:
        """Copies of a table's stored records with raw values, in insertion order."""
        with self._lock:
            if table not in self._store.specs:
                raise KeyError(f"unknown table {table}")
            return [dict(record) for record in self._store.rows[table].values()]

    def write_count(self) -> int:
        """Successful POST/PUT/PATCH/DELETE calls so far, those inside batches included."""
        with self._lock:
            return self._writes

    def set_concurrency_latency(self, ms: float) -> None:
        """Time each API call spends while holding its concurrency slot (a busy node)."""
        self._gate.latency_s = max(ms, 0.0) / 1000.0

    def peak_concurrency(self) -> int:
        """The most requests that were ever being worked on at once."""
        return self._gate.peak

    def _handle(self, request: Request) -> Response:
        route = _route(request.path)
        if route.kind == "oauth":
            self._gate.pause()
            return self._oauth(request)
        if route.kind == "none":
            return Response(404, _NOT_FOUND_PAGE, {"Content-Type": "text/html;charset=UTF-8"})
        account = self._authenticate(request)
        if route.kind == "batch":
            return self._batch(request, account)
        self._gate.pause()
        if not self._limiter.take(account.user_name):
            raise self._limiter.rejection(account.user_name)
        return self._api(route, request, account)

    def _authenticate(self, request: Request) -> _Account:
        scheme, _, credentials = request.header("Authorization").partition(" ")
        account: _Account | None = None
        if scheme.lower() == "basic":
            account = self._basic_account(credentials.strip())
        elif scheme.lower() == "bearer":
            user_name = self._tokens.user_for(credentials.strip(), self._clock())
            account = self._accounts.get(user_name or "")
        if account is None or self._locked_out(account.user_name):
            raise _Failure(
                401,
                "User Not Authenticated",
                "Required to provide Auth information",
                {"WWW-Authenticate": 'BASIC realm="Service-now"'},
            )
        return account

    def _basic_account(self, credentials: str) -> _Account | None:
        try:
            decoded = base64.b64decode(credentials, validate=True).decode()
        except (binascii.Error, UnicodeDecodeError):
            return None
        user_name, _, password = decoded.partition(":")
        return self._check_password(user_name, password)

    def _check_password(self, user_name: str, password: str) -> _Account | None:
        account = self._accounts.get(user_name)
        if account is None or not hmac.compare_digest(account.password, password):
            return None
        return account

    def _locked_out(self, user_name: str) -> bool:
        # An account whose sys_user row is inactive or locked cannot log in, as on an instance.
        with self._lock:
            user = self._store.find_user(user_name)
        return user is not None and (not is_true(user["active"]) or is_true(user["locked_out"]))

    def _oauth(self, request: Request) -> Response:
        if request.method != "POST":
            raise _Failure(405, "Method not Supported", f"{request.method} method not supported")
        form = {k: v[-1] for k, v in parse_qs(request.body.decode(errors="replace")).items()}
        client = self._oauth_client(form, request)
        grant = form.get("grant_type", "")
        now = self._clock()
        user_name = ""
        refresh = True
        if grant == "password":
            account = self._check_password(form.get("username", ""), form.get("password", ""))
            user_name = account.user_name if account else ""
        elif grant == "refresh_token":
            user_name = self._tokens.refresh_user(form.get("refresh_token", ""), client, now) or ""
        elif grant == "client_credentials" and client and client.user_name:
            user_name, refresh = client.user_name, False
        if client is None or not user_name or self._locked_out(user_name):
            return Response(401, {"error_description": "access_denied", "error": "server_error"})
        body = self._tokens.issue(user_name, client.client_id, now, refresh=refresh)
        return Response(200, body, {"Cache-Control": "no-store", "Pragma": "no-cache"})

    def _oauth_client(self, form: Mapping[str, str], request: Request) -> _OAuthClient | None:
        client_id, client_secret = form.get("client_id", ""), form.get("client_secret", "")
        scheme, _, credentials = request.header("Authorization").partition(" ")
        if not client_id and scheme.lower() == "basic":
            try:
                decoded = base64.b64decode(credentials.strip(), validate=True).decode()
            except (binascii.Error, UnicodeDecodeError):
                return None
            client_id, _, client_secret = decoded.partition(":")
        client = self._clients.get(client_id)
        if client is None or not hmac.compare_digest(client.client_secret, client_secret):
            return None
        return client

    def _batch(self, request: Request, account: _Account) -> Response:
        if request.method != "POST":
            raise _Failure(405, "Method not Supported", f"{request.method} method not supported")
        payload = _json_object(request)
        items = payload.get("rest_requests")
        if not isinstance(items, list) or not all(isinstance(item, dict) for item in items):
            raise _Failure(400, "Exception while reading request", "rest_requests must be a list")
        serviced: list[dict[str, Any]] = []
        unserviced: list[str] = []
        for item in items:
            if not self._limiter.take(account.user_name):
                unserviced.append(str(item.get("id", "")))
                continue
            self._gate.pause()  # sub-requests run one after another on the node
            serviced.append(self._sub_request(item, request, account))
        if items and not serviced:
            raise self._limiter.rejection(account.user_name)
        return Response(
            200,
            {
                "batch_request_id": str(payload.get("batch_request_id", "")),
                "serviced_requests": serviced,
                "unserviced_requests": unserviced,
            },
        )

    def _sub_request(
        self, item: Mapping[str, Any], outer: Request, account: _Account
    ) -> dict[str, Any]:
        started = time.monotonic()
        try:
            sub = _batched_request(item, outer)
            route = _route(sub.path)
            if route.kind in ("batch", "oauth", "none"):
                route = _Route("unknown")  # a batch may not nest batches or reach non-API pages
            response = self._api(route, sub, account)
        except _Failure as failure:
            response = failure.response()
        payload, content_type = response.encoded()
        headers = [{"name": k, "value": v} for k, v in response.headers.items()]
        if content_type:
            headers.append({"name": "Content-Type", "value": content_type})
        return {
            "id": str(item.get("id", "")),
            "status_code": response.status,
            "status_text": HTTPStatus(response.status).phrase,
            "headers": [] if item.get("exclude_response_headers") is True else headers,
            "body": base64.b64encode(payload).decode(),
            "execution_time": int((time.monotonic() - started) * 1000),
        }

    def _api(self, route: _Route, request: Request, account: _Account) -> Response:
        if route.kind == "unknown":
            raise _Failure(400, "Requested URI does not represent any resource", None)
        spec = self._store.specs.get(route.table)
        if spec is None:
            raise _Failure(400, f"Invalid table {route.table}", None)
        method = "GET" if request.method == "HEAD" else request.method
        handler = _HANDLERS.get((route.kind, method))
        if handler is None:
            raise _Failure(405, "Method not Supported", f"{method} method not supported for API")
        self._require(account, spec.name, _OPERATION[method])
        response = handler(self, spec, route, request, account)
        if method in ("POST", "PUT", "PATCH", "DELETE") and response.status < 300:
            with self._lock:
                self._writes += 1
        return response

    def _require(self, account: _Account, table: str, operation: str) -> None:
        if _allowed(account.roles, table, operation):
            return
        raise _Failure(
            403,
            "Operation Failed",
            f"ACL Exception {operation.capitalize()} Failed due to security constraints",
        )

    def _list(
        self, spec: TableSpec, route: _Route, request: Request, account: _Account
    ) -> Response:
        query = parse(request.query.get("sysparm_query", ""))
        limit = _number_param(request.query.get("sysparm_limit"), DEFAULT_LIMIT, minimum=1)
        offset = _number_param(request.query.get("sysparm_offset"), 0, minimum=0)
        with self._lock:
            rows = self._store.select(spec.name, query)
            render = _View.of(request).renderer(self._store, spec)
            page = [render(row) for row in rows[offset : offset + limit]]
        headers: dict[str, str] = {}
        if request.query.get("sysparm_no_count", "").lower() != "true":
            headers["X-Total-Count"] = str(len(rows))
        if request.query.get("sysparm_suppress_pagination_header", "").lower() != "true":
            headers["Link"] = _link_header(request, len(rows), limit, offset)
        return Response(200, {"result": page}, headers)

    def _read(
        self, spec: TableSpec, route: _Route, request: Request, account: _Account
    ) -> Response:
        with self._lock:
            record = self._existing(spec, route.sys_id)
            return Response(200, {"result": _View.of(request).render(self._store, spec, record)})

    def _create(
        self, spec: TableSpec, route: _Route, request: Request, account: _Account
    ) -> Response:
        body = _json_object(request)
        view = _View.of(request)
        with self._lock:
            record = self._store.create(spec, body, self._write_context(request, account))
            result = view.render(self._store, spec, record)
        location = f"{request.base_url}/api/now/table/{spec.name}/{record['sys_id']}"
        return Response(201, {"result": result}, {"Location": location})

    def _update(
        self, spec: TableSpec, route: _Route, request: Request, account: _Account
    ) -> Response:
        body = _json_object(request)
        view = _View.of(request)
        with self._lock:
            self._existing(spec, route.sys_id)
            context = self._write_context(request, account)
            record = self._store.update(spec, route.sys_id, body, context)
            return Response(200, {"result": view.render(self._store, spec, record)})

    def _delete(
        self, spec: TableSpec, route: _Route, request: Request, account: _Account
    ) -> Response:
        with self._lock:
            self._existing(spec, route.sys_id)
            self._store.delete(spec.name, route.sys_id)
        return Response(204)

    def _stats(
        self, spec: TableSpec, route: _Route, request: Request, account: _Account
    ) -> Response:
        query = parse(request.query.get("sysparm_query", ""))
        counting = request.query.get("sysparm_count", "").lower() == "true"
        group_by = _field_list(request.query.get("sysparm_group_by", ""))
        with self._lock:
            rows = self._store.select(spec.name, query)
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

    def _existing(self, spec: TableSpec, sys_id: str) -> dict[str, str]:
        record = self._store.rows[spec.name].get(sys_id)
        if record is None:
            raise _Failure(
                404,
                "No Record found",
                "Record doesn't exist or ACL restricts the record retrieval",
            )
        return record

    def _write_context(self, request: Request, account: _Account) -> _WriteContext:
        by_display = request.query.get("sysparm_input_display_value", "").lower() == "true"
        return _WriteContext(account.user_name, _timestamp(self._clock()), by_display)


def load_instance_file(path: Path) -> dict[str, Any]:
    """Read an instance fixture from a JSON file; FixtureError names the file and the spot."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as error:
        raise FixtureError(f"instance fixture {path}: cannot read: {error.strerror}") from None
    except UnicodeDecodeError:
        raise FixtureError(f"instance fixture {path}: not UTF-8 text") from None
    try:
        loaded = json.loads(text)
    except json.JSONDecodeError as error:
        raise FixtureError(
            f"instance fixture {path}: invalid JSON at line {error.lineno} column {error.colno}: "
            f"{error.msg}"
        ) from None
    if not isinstance(loaded, dict):
        raise FixtureError(f"instance fixture {path}: must be a JSON object")
    return loaded


@dataclass(frozen=True)
class FieldSpec:
    """One column of a table."""

    name: str
    kind: FieldKind = FieldKind.STRING
    reference: str = ""  # the referenced table, for references
    default: str = ""
    read_only: bool = False  # set by the instance; ignored in request bodies


@dataclass(frozen=True)
class TableSpec:
    """A table: its columns, the field that names a record, and the fields kept unique."""

    name: str
    fields: tuple[FieldSpec, ...]
    display_field: str = "name"
    unique: tuple[str, ...] = ()

    @cached_property
    def by_name(self) -> dict[str, FieldSpec]:
        """The columns by name."""
        return {column.name: column for column in self.fields}


SYSTEM_FIELDS = (
    FieldSpec("sys_id", read_only=True),
    FieldSpec("sys_created_on", FieldKind.DATETIME, read_only=True),
    FieldSpec("sys_created_by", read_only=True),
    FieldSpec("sys_updated_on", FieldKind.DATETIME, read_only=True),
    FieldSpec("sys_updated_by", read_only=True),
    FieldSpec("sys_mod_count", FieldKind.INTEGER, default="0", read_only=True),
)


def _text_fields(*names: str) -> tuple[FieldSpec, ...]:
    return tuple(FieldSpec(name) for name in names)


def _flag(name: str, default: bool) -> FieldSpec:
    return FieldSpec(name, FieldKind.BOOLEAN, default="true" if default else "false")


def _ref(name: str, table: str) -> FieldSpec:
    return FieldSpec(name, FieldKind.REFERENCE, reference=table)


_ADDRESS = _text_fields("street", "city", "state", "zip", "country")

TABLES: dict[str, TableSpec] = {
    spec.name: spec
    for spec in (
        TableSpec(
            "sys_user",
            (
                *_text_fields("user_name", "first_name", "middle_name", "last_name"),
                FieldSpec("name", read_only=True),
                *_text_fields("email", "title", "employee_number"),
                _flag("active", True),
                _flag("locked_out", False),
                _ref("department", "cmn_department"),
                _ref("manager", "sys_user"),
                _ref("location", "cmn_location"),
                _ref("company", "core_company"),
                *_text_fields("phone", "mobile_phone", "home_phone", *[f.name for f in _ADDRESS]),
                *_text_fields("source", "time_zone", "gender"),
                _flag("vip", False),
                _flag("web_service_access_only", False),
                _flag("internal_integration_user", False),
                _flag("password_needs_reset", False),
                FieldSpec("failed_attempts", FieldKind.INTEGER),
                FieldSpec("last_login_time", FieldKind.DATETIME),
                FieldSpec("sys_class_name", default="sys_user", read_only=True),
                *SYSTEM_FIELDS,
            ),
            unique=("user_name",),
        ),
        TableSpec(
            "sys_user_group",
            (
                *_text_fields("name", "description", "email", "type", "roles", "source"),
                _flag("active", True),
                _ref("manager", "sys_user"),
                _ref("parent", "sys_user_group"),
                _ref("default_assignee", "sys_user"),
                _flag("exclude_manager", False),
                _flag("include_members", False),
                *SYSTEM_FIELDS,
            ),
        ),
        TableSpec(
            "sys_user_grmember",
            (_ref("user", "sys_user"), _ref("group", "sys_user_group"), *SYSTEM_FIELDS),
            display_field="sys_id",
        ),
        TableSpec(
            "cmn_department",
            (
                *_text_fields("name", "id", "description"),
                _ref("dept_head", "sys_user"),
                _ref("primary_contact", "sys_user"),
                _ref("parent", "cmn_department"),
                _ref("company", "core_company"),
                FieldSpec("head_count", FieldKind.INTEGER),
                *SYSTEM_FIELDS,
            ),
        ),
        TableSpec(
            "cmn_location",
            (
                *_text_fields("name", "full_name", *[f.name for f in _ADDRESS], "phone"),
                *_text_fields("latitude", "longitude"),
                _ref("parent", "cmn_location"),
                _ref("company", "core_company"),
                *SYSTEM_FIELDS,
            ),
        ),
        TableSpec(
            "core_company",
            (
                *_text_fields("name", *[f.name for f in _ADDRESS], "phone", "website"),
                _flag("customer", False),
                _flag("vendor", False),
                _flag("manufacturer", False),
                _ref("parent", "core_company"),
                *SYSTEM_FIELDS,
            ),
        ),
        TableSpec(
            "sys_user_role",
            (
                *_text_fields("name", "description", "suffix"),
                _flag("elevated_privilege", False),
                *SYSTEM_FIELDS,
            ),
            unique=("name",),
        ),
        TableSpec(
            "sys_user_has_role",
            (
                _ref("user", "sys_user"),
                _ref("role", "sys_user_role"),
                _ref("granted_by", "sys_user_group"),
                FieldSpec("state", default="active"),
                _flag("inherited", False),
                *SYSTEM_FIELDS,
            ),
            display_field="sys_id",
        ),
    )
}

# Table access per role beyond `admin` (which may do anything): "r" read, "rw" read and write.
ROLE_ACCESS: dict[str, dict[str, str]] = {
    "user_admin": {
        "sys_user": "rw",
        "sys_user_group": "rw",
        "sys_user_grmember": "rw",
        "sys_user_has_role": "rw",
        "sys_user_role": "r",
        "cmn_department": "r",
        "cmn_location": "r",
        "core_company": "r",
    },
    "itil": {
        "sys_user": "r",
        "sys_user_group": "r",
        "sys_user_grmember": "r",
        "cmn_department": "r",
        "cmn_location": "r",
        "core_company": "r",
    },
}

# Rows that only tie two records together go when either record goes (the cascade rule
# "delete"); any other reference to a deleted record is cleared.
CASCADE_DELETE = frozenset({"sys_user_grmember", "sys_user_has_role"})

_SYS_ID = re.compile(r"[0-9a-f]{32}")
_TABLE_NAME = re.compile(r"[a-z][a-z0-9_]*")
_TABLE_PATH = re.compile(r"/api/now/(?:v[12]/)?table/([^/]+)(?:/([^/]+))?/?")
_STATS_PATH = re.compile(r"/api/now/(?:v1/)?stats/([^/]+)/?")
_BATCH_PATH = re.compile(r"/api/now/(?:v1/)?batch/?")
_OPERATION = {
    "GET": "read",
    "POST": "insert",
    "PUT": "update",
    "PATCH": "update",
    "DELETE": "delete",
}
_MAINTENANCE_PAGE = (
    "<html><head><title>Service Unavailable</title></head><body><h1>Service Unavailable</h1>"
    "<p>This instance is temporarily unavailable while it is being upgraded or maintained. "
    "Please try again later.</p></body></html>"
)
_NOT_FOUND_PAGE = "<html><head><title>Not Found</title></head><body>Not Found</body></html>"


@dataclass(frozen=True)
class _Account:
    user_name: str
    password: str
    roles: frozenset[str]


@dataclass(frozen=True)
class _OAuthClient:
    client_id: str
    client_secret: str
    user_name: str = ""  # the account a client_credentials grant acts as; "" disables it


@dataclass(frozen=True)
class _Route:
    kind: str  # table | record | stats | batch | oauth | none
    table: str = ""
    sys_id: str = ""


@dataclass(frozen=True)
class _WriteContext:
    user_name: str
    now: str
    by_display_value: bool


class _Failure(Exception):
    """An error answer in ServiceNow's shape, raised from anywhere below `handle`."""

    def __init__(
        self,
        status: int,
        message: str,
        detail: str | None,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.detail = detail
        self.headers = dict(headers or {})

    def response(self) -> Response:
        body = {"error": {"message": self.message, "detail": self.detail}, "status": "failure"}
        return Response(self.status, body, dict(self.headers))


_Handler = Callable[[ServiceNowApp, TableSpec, _Route, Request, _Account], Response]
_HANDLERS: dict[tuple[str, str], _Handler] = {
    ("table", "GET"): ServiceNowApp._list,
    ("table", "POST"): ServiceNowApp._create,
    ("record", "GET"): ServiceNowApp._read,
    ("record", "PUT"): ServiceNowApp._update,
    ("record", "PATCH"): ServiceNowApp._update,
    ("record", "DELETE"): ServiceNowApp._delete,
    ("stats", "GET"): ServiceNowApp._stats,
}


def _utc_now() -> datetime:
    return datetime.now(UTC)


def _timestamp(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime(DATETIME_FORMAT)


def _new_sys_id() -> str:
    return secrets.token_hex(16)


def _route(path: str) -> _Route:
    if path == "/oauth_token.do":
        return _Route("oauth")
    if _BATCH_PATH.fullmatch(path):
        return _Route("batch")
    if found := _TABLE_PATH.fullmatch(path):
        table, sys_id = found.group(1), found.group(2)
        return _Route("record", table, sys_id) if sys_id else _Route("table", table)
    if found := _STATS_PATH.fullmatch(path):
        return _Route("stats", found.group(1))
    if path.startswith("/api/"):
        return _Route("unknown")
    return _Route("none")


def _allowed(roles: frozenset[str], table: str, operation: str) -> bool:
    if "admin" in roles:
        return True
    wanted = "r" if operation == "read" else "w"
    return any(wanted in ROLE_ACCESS.get(role, {}).get(table, "") for role in roles)


def _number_param(text: str | None, default: int, *, minimum: int) -> int:
    try:
        value = int(text or "")
    except ValueError:
        return default
    return value if value >= minimum else default


def _field_list(text: str) -> list[str]:
    return [name.strip() for name in text.split(",") if name.strip()]


def _json_object(request: Request) -> dict[str, Any]:
    content_type = request.header("Content-Type").lower()
    if content_type and "json" not in content_type:
        raise _Failure(415, "Unsupported Media Type", f"Content-Type {content_type} not supported")
    if not request.body.strip():
        raise _Failure(400, "Exception while reading request", "Empty request body")
    try:
        payload = json.loads(request.body)
    except (ValueError, UnicodeDecodeError):
        raise _Failure(
            400, "Exception while reading request", "The payload is not valid JSON."
        ) from None
    if not isinstance(payload, dict):
        raise _Failure(400, "Exception while reading request", "The payload is not a JSON object.")
    return payload


def _batched_request(item: Mapping[str, Any], outer: Request) -> Request:
    url = str(item.get("url", ""))
    parts = urlsplit(url)
    headers: dict[str, str] = {}
    for header in item.get("headers") or []:
        if isinstance(header, dict) and "name" in header:
            headers[str(header["name"]).lower()] = str(header.get("value", ""))
    try:
        body = base64.b64decode(str(item.get("body") or ""), validate=True)
    except binascii.Error:
        raise _Failure(400, "Exception while reading request", "body is not base64") from None
    return Request(
        method=str(item.get("method", "GET")).upper(),
        path=unquote(parts.path),
        raw_path=url,
        query={k: v[-1] for k, v in parse_qs(parts.query, keep_blank_values=True).items()},
        headers=headers,
        body=body,
        base_url=outer.base_url,
    )


def _link_header(request: Request, total: int, limit: int, offset: int) -> str:
    base = request.base_url + urlsplit(request.raw_path).path
    kept = [
        (k, v) for k, v in request.query.items() if k not in ("sysparm_offset", "sysparm_limit")
    ]

    def link(at: int, rel: str) -> str:
        params = [*kept, ("sysparm_limit", str(limit)), ("sysparm_offset", str(at))]
        return f'<{base}?{urlencode(params)}>;rel="{rel}"'

    links = [link(0, "first")]
    if offset > 0:
        links.append(link(max(offset - limit, 0), "prev"))
    if offset + limit < total:
        links.append(link(offset + limit, "next"))
    links.append(link((total - 1) // limit * limit if total else 0, "last"))
    return ",".join(links)


@dataclass(frozen=True)
class _View:
    """How a response renders records: sysparm_display_value, links and sysparm_fields."""

    display: str  # false | true | all
    links: bool
    fields: tuple[str, ...]
    base_url: str

    @classmethod
    def of(cls, request: Request) -> _View:
        display = request.query.get("sysparm_display_value", "false").lower()
        excluded = request.query.get("sysparm_exclude_reference_link", "").lower() == "true"
        return cls(
            display if display in ("true", "all") else "false",
            not excluded,
            tuple(_field_list(request.query.get("sysparm_fields", ""))),
            request.base_url,
        )

    def render(self, store: _Store, spec: TableSpec, record: Mapping[str, str]) -> dict[str, Any]:
        """One record as the response shows it."""
        return self.renderer(store, spec)(record)

    def renderer(
        self, store: _Store, spec: TableSpec
    ) -> Callable[[Mapping[str, str]], dict[str, Any]]:
        """A function rendering records of one table; fields are resolved once, not per record."""
        paths = self.fields or tuple(column.name for column in spec.fields)
        columns = [(path, store.column(spec.name, path)) for path in paths]
        known = [(path, column) for path, column in columns if column is not None]

        def render(record: Mapping[str, str]) -> dict[str, Any]:
            return {
                path: self._value(store, column, store.value_at(spec.name, record, path))
                for path, column in known
            }

        return render

    def _value(self, store: _Store, column: FieldSpec, value: str) -> Any:
        if column.kind is FieldKind.REFERENCE:
            return self._reference(store, column.reference, value)
        shown = _display_text(column, value)
        if self.display == "all":
            return {"display_value": shown, "value": value}
        return shown if self.display == "true" else value

    def _reference(self, store: _Store, table: str, value: str) -> Any:
        if not value:
            return {"display_value": "", "value": ""} if self.display == "all" else ""
        link = f"{self.base_url}/api/now/table/{table}/{value}"
        shown = store.display(table, value)
        if self.display == "all":
            both = {"display_value": shown, "value": value}
            return {**both, "link": link} if self.links else both
        if self.display == "true":
            return {"display_value": shown, "link": link} if self.links else shown
        return {"link": link, "value": value} if self.links else value


def _display_text(column: FieldSpec, value: str) -> str:
    if column.kind is FieldKind.INTEGER and value.strip().lstrip("-").isdigit():
        return f"{int(value):,}"  # integers display with grouping, as the platform formats them
    return value


class _Store:
    """Every table's records and the rules that run on write; callers hold the app's lock."""

    def __init__(self, specs: dict[str, TableSpec], rows: dict[str, dict[str, dict[str, str]]]):
        self.specs = specs
        self.rows = rows
        self._sorted = {table: sorted(records) for table, records in rows.items()}
        # Unique fields are indexed (lower-cased, as the database compares them), so that
        # uniqueness checks and account look-ups stay cheap on large tables.
        self._unique: dict[tuple[str, str], dict[str, str]] = {
            (table, name): {} for table, spec in specs.items() for name in spec.unique
        }
        for table, records in rows.items():
            for record in records.values():
                self._index(table, record)

    def column(self, table: str, path: str) -> FieldSpec | None:
        """The field a (dot-walked) path ends on, or None when a step does not exist."""
        spec = self.specs[table]
        *steps, last = path.split(".")
        for step in steps:
            column = spec.by_name.get(step)
            if column is None or column.kind is not FieldKind.REFERENCE:
                return None
            spec = self.specs[column.reference]
        return spec.by_name.get(last)

    def value_at(self, table: str, record: Mapping[str, str], path: str) -> str:
        """The stored value at a (dot-walked) path; "" past an empty or dangling reference."""
        if "." not in path:
            return record.get(path, "")
        *steps, last = path.split(".")
        for step in steps:
            column = self.specs[table].by_name[step]
            table = column.reference
            found = self.rows[table].get(record.get(step, ""))
            if found is None:
                return ""
            record = found
        return record.get(last, "")

    def display(self, table: str, sys_id: str) -> str:
        """A record's display value; "" for a reference to nothing."""
        record = self.rows[table].get(sys_id)
        return record.get(self.specs[table].display_field, "") if record else ""

    def find_by_display(self, table: str, text: str) -> str:
        """The sys_id of the record a display value names (users also by user_name), or ""."""
        wanted = text.strip().lower()
        if table == "sys_user" and (user := self.find_user(wanted)):
            return user["sys_id"]
        key = self.specs[table].display_field
        for sys_id in self._sorted[table]:
            if self.rows[table][sys_id].get(key, "").lower() == wanted:
                return sys_id
        return ""

    def find_user(self, user_name: str) -> dict[str, str] | None:
        """The sys_user row with this user_name, if there is one."""
        sys_id = self._unique[("sys_user", "user_name")].get(user_name.lower(), "")
        return self.rows["sys_user"].get(sys_id)

    def select(self, table: str, query: EncodedQuery) -> list[dict[str, str]]:
        """The records matching a query, in its order (sys_id order by default)."""
        fields = _TableFields(self, table)
        matching = compile_query(query, fields)
        rows = self.rows[table]
        found = [rows[i] for i in self._candidates(table, query) if matching(rows[i])]
        return order_records(found, query, fields)

    def create(
        self, spec: TableSpec, body: Mapping[str, Any], context: _WriteContext
    ) -> dict[str, str]:
        """Insert a record from a request body; unknown and read-only fields are ignored."""
        record = {column.name: column.default for column in spec.fields}
        record.update(self._input(spec, body, context.by_display_value))
        sys_id = str(body.get("sys_id") or "")
        duplicate_id = sys_id in self.rows[spec.name]
        record["sys_id"] = sys_id if _SYS_ID.fullmatch(sys_id) else _new_sys_id()
        for name in ("created", "updated"):
            record[f"sys_{name}_on"], record[f"sys_{name}_by"] = context.now, context.user_name
        record["sys_mod_count"] = "0"
        _apply_rules(spec, None, record)
        if duplicate_id or self._collides(spec, record):
            raise _insert_failure("insert", spec, record)
        self.add(spec.name, record)
        return record

    def update(
        self, spec: TableSpec, sys_id: str, body: Mapping[str, Any], context: _WriteContext
    ) -> dict[str, str]:
        """Apply a request body to a record; a write that changes nothing leaves it untouched."""
        before = self.rows[spec.name][sys_id]
        after = {**before, **self._input(spec, body, context.by_display_value)}
        _apply_rules(spec, before, after)
        if after == before:
            return before
        if self._collides(spec, after):
            raise _insert_failure("update", spec, after)
        after["sys_updated_on"], after["sys_updated_by"] = context.now, context.user_name
        after["sys_mod_count"] = str(int(before.get("sys_mod_count") or 0) + 1)
        self._unindex(spec.name, before)
        self.rows[spec.name][sys_id] = after
        self._index(spec.name, after)
        return after

    def add(self, table: str, record: dict[str, str]) -> None:
        """Store a complete record."""
        self.rows[table][record["sys_id"]] = record
        bisect.insort(self._sorted[table], record["sys_id"])
        self._index(table, record)

    def delete(self, table: str, sys_id: str) -> None:
        """Remove a record, then cascade: link rows go with it, other references are cleared."""
        self._unindex(table, self.rows[table].pop(sys_id))
        ordered = self._sorted[table]
        del ordered[bisect.bisect_left(ordered, sys_id)]
        for spec in self.specs.values():
            for column in spec.fields:
                if column.reference == table:
                    self._cascade(spec, column.name, sys_id)

    def _cascade(self, spec: TableSpec, name: str, sys_id: str) -> None:
        for record in [r for r in self.rows[spec.name].values() if r.get(name) == sys_id]:
            if spec.name in CASCADE_DELETE:
                self.delete(spec.name, record["sys_id"])
            else:
                record[name] = ""

    def _input(self, spec: TableSpec, body: Mapping[str, Any], by_display: bool) -> dict[str, str]:
        values: dict[str, str] = {}
        for name, raw in body.items():
            column = spec.by_name.get(name)
            if column is None or column.read_only:
                continue  # unknown fields are ignored silently, as the platform does
            text = _input_text(raw)
            if column.kind is FieldKind.REFERENCE:
                values[name] = self._reference_input(column.reference, text, by_display)
            else:
                values[name] = _normalise(column.kind, text)
        return values

    def _reference_input(self, table: str, text: str, by_display: bool) -> str:
        text = text.strip()
        if not text or table not in self.specs:
            return ""
        if by_display:
            found = self.find_by_display(table, text)
            return found or (text if text in self.rows[table] else "")
        # A sys_id is stored as given, even one that points nowhere (the platform does too).
        return text if _SYS_ID.fullmatch(text) else self.find_by_display(table, text)

    def _collides(self, spec: TableSpec, record: Mapping[str, str]) -> bool:
        for name in spec.unique:
            owner = self._unique[(spec.name, name)].get(record.get(name, "").lower())
            if owner and owner != record["sys_id"]:
                return True
        return False

    def _index(self, table: str, record: Mapping[str, str]) -> None:
        for name in self.specs[table].unique:
            if value := record.get(name, "").lower():
                self._unique[(table, name)][value] = record["sys_id"]

    def _unindex(self, table: str, record: Mapping[str, str]) -> None:
        for name in self.specs[table].unique:
            index = self._unique[(table, name)]
            if index.get(record.get(name, "").lower()) == record["sys_id"]:
                del index[record.get(name, "").lower()]

    def _candidates(self, table: str, query: EncodedQuery) -> list[str]:
        # The sys_ids that can match, in sys_id order: an AND-ed `sys_id=X` or `unique_field=X`
        # is answered from an index, and keyset paging (`sys_id>X`) starts at X, not at the top.
        ordered = self._sorted[table]
        if len(query.segments) != 1:
            return ordered
        start = 0
        for condition, *alternatives in query.segments[0]:
            if alternatives:
                continue
            value = condition.value.lower()
            if condition.operator == "=" and condition.field == "sys_id":
                return [value] if value in self.rows[table] else []
            index = self._unique.get((table, condition.field))
            if condition.operator == "=" and index is not None and value:
                return [index[value]] if value in index else []
            if condition.field == "sys_id" and condition.operator in (">", ">="):
                find = bisect.bisect_right if condition.operator == ">" else bisect.bisect_left
                start = max(start, find(ordered, value))
        return ordered[start:]


@dataclass(frozen=True)
class _TableFields:
    """The encoded-query `Fields` of one table, dot-walking through references."""

    store: _Store
    table: str

    def kind(self, path: str) -> FieldKind | None:
        column = self.store.column(self.table, path)
        return column.kind if column else None

    def getter(self, path: str) -> Getter:
        if "." not in path:
            return lambda record: record.get(path, "")
        return lambda record: self.store.value_at(self.table, record, path)

    def sort_getter(self, path: str) -> Getter:
        column = self.store.column(self.table, path)
        read = self.getter(path)
        if column is None or column.kind is not FieldKind.REFERENCE:
            return read
        # A reference sorts by the display value of the record it points at.
        return lambda record: self.store.display(column.reference, read(record))


def _apply_rules(spec: TableSpec, before: Mapping[str, str] | None, after: dict[str, str]) -> None:
    """The business rules that run on every write of a table."""
    if spec.name != "sys_user":
        return
    parts = (after.get("first_name", ""), after.get("middle_name", ""), after.get("last_name", ""))
    after["name"] = " ".join(part for part in parts if part)
    active = is_true(after.get("active", "true"))
    if before is None and not active:
        after["locked_out"] = "true"
    elif before is not None and is_true(before.get("active", "true")) != active:
        after["locked_out"] = "false" if active else "true"


def _insert_failure(verb: str, spec: TableSpec, record: Mapping[str, str]) -> _Failure:
    shown = record.get(spec.display_field, "") or record.get("sys_id", "")
    return _Failure(403, "Operation Failed", f"Error during {verb} of {spec.name} ({shown})")


def _input_text(raw: Any) -> str:
    if raw is None:
        return ""
    if isinstance(raw, bool):
        return "true" if raw else "false"
    if isinstance(raw, float) and raw.is_integer():
        return str(int(raw))
    if isinstance(raw, dict):
        return _input_text(raw.get("value", raw.get("display_value")))
    if isinstance(raw, list):
        return ",".join(_input_text(item) for item in raw)
    return str(raw)


def _normalise(kind: FieldKind, text: str) -> str:
    """A value as the instance stores it; what cannot be read as the field's type becomes ""."""
    if kind is FieldKind.BOOLEAN:
        return "true" if is_true(text) else "false"
    if kind is FieldKind.INTEGER:
        try:
            return str(int(float(text.replace(",", "")))) if text.strip() else ""
        except ValueError:
            return ""
    if kind is FieldKind.DATETIME:
        return _datetime_text(text) or ""
    return text


def _datetime_text(text: str) -> str | None:
    text = text.strip()
    if not text:
        return ""
    for pattern in (DATETIME_FORMAT, "%Y-%m-%d"):
        try:
            return datetime.strptime(text, pattern).strftime(DATETIME_FORMAT)
        except ValueError:
            continue
    return None


class _Gate:
    """The node's API semaphore: at most N requests work at once, the rest queue."""

    def __init__(self, max_concurrent: int | None) -> None:
        self._slots = threading.BoundedSemaphore(max_concurrent) if max_concurrent else None
        self._lock = threading.Lock()
        self._in_flight = 0
        self.peak = 0
        self.latency_s = 0.0

    @contextmanager
    def slot(self) -> Iterator[None]:
        if self._slots is not None:
            self._slots.acquire()
        with self._lock:
            self._in_flight += 1
            self.peak = max(self.peak, self._in_flight)
        try:
            yield
        finally:
            with self._lock:
                self._in_flight -= 1
            if self._slots is not None:
                self._slots.release()

    def pause(self) -> None:
        if self.latency_s > 0:
            time.sleep(self.latency_s)


class _RateLimiter:
    """Per-account request budget in fixed clock-hour windows."""

    def __init__(self, per_hour: int | None, clock: Callable[[], datetime]) -> None:
        self._limit = per_hour
        self._clock = clock
        self._lock = threading.Lock()
        self._window = -1
        self._used: dict[str, int] = {}

    def take(self, user_name: str) -> bool:
        """Spend one request of the account's budget; False when none is left."""
        if self._limit is None:
            return True
        window = self._window_start()
        with self._lock:
            if window != self._window:
                self._window, self._used = window, {}
            used = self._used.get(user_name, 0)
            if used >= self._limit:
                return False
            self._used[user_name] = used + 1
            return True

    def rejection(self, user_name: str) -> _Failure:
        """The 429 for an account that has spent its budget in this window."""
        reset = self._window_start() + 3600
        now = int(self._clock().timestamp())
        return _rate_limited(max(reset - now, 1), reset, self._limit)

    def _window_start(self) -> int:
        return int(self._clock().timestamp()) // 3600 * 3600


def _rate_limited(retry_after: int, reset: int, limit: int | None) -> _Failure:
    headers = {"Retry-After": str(retry_after), "X-RateLimit-Reset": str(reset)}
    if limit is not None:
        headers["X-RateLimit-Limit"] = str(limit)
    rule = f"{limit} requests per hour" if limit is not None else "the rate limit"
    detail = f"Exceeded {rule}; retry after {retry_after} seconds"
    return _Failure(429, "Rate limit exceeded", detail, headers)


@dataclass(frozen=True)
class _Grant:
    user_name: str
    client_id: str
    expires: datetime


@dataclass
class _Tokens:
    """OAuth access and refresh tokens handed out by /oauth_token.do."""

    access: dict[str, _Grant] = field(default_factory=dict)
    refresh: dict[str, _Grant] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def issue(
        self, user_name: str, client_id: str, now: datetime, *, refresh: bool
    ) -> dict[str, Any]:
        access_token = secrets.token_urlsafe(64)[:86]  # the platform's tokens are 86 characters
        body: dict[str, Any] = {"access_token": access_token, "scope": "useraccount"}
        with self.lock:
            expires = now + timedelta(seconds=ACCESS_TOKEN_SECONDS)
            self.access[access_token] = _Grant(user_name, client_id, expires)
            if refresh:
                refresh_token = secrets.token_urlsafe(64)[:86]
                expires = now + timedelta(seconds=REFRESH_TOKEN_SECONDS)
                self.refresh[refresh_token] = _Grant(user_name, client_id, expires)
                body["refresh_token"] = refresh_token
        return {**body, "token_type": "Bearer", "expires_in": ACCESS_TOKEN_SECONDS}

    def user_for(self, access_token: str, now: datetime) -> str | None:
        with self.lock:
            grant = self.access.get(access_token)
        return grant.user_name if grant and grant.expires > now else None

    def refresh_user(
        self, refresh_token: str, client: _OAuthClient | None, now: datetime
    ) -> str | None:
        with self.lock:
            grant = self.refresh.get(refresh_token)
        if grant is None or client is None or grant.client_id != client.client_id:
            return None
        return grant.user_name if grant.expires > now else None


@dataclass(frozen=True)
class _Instance:
    accounts: dict[str, _Account]
    clients: dict[str, _OAuthClient]
    specs: dict[str, TableSpec]
    rows: dict[str, dict[str, dict[str, str]]]


def _load_instance(instance: Mapping[str, Any], now: str) -> _Instance:
    if not isinstance(instance, Mapping):
        _fixture_error("", "must be a JSON object")
    unknown = sorted(set(instance) - {"accounts", "oauth_clients", "tables"})
    if unknown:
        _fixture_error(unknown[0], "unknown key (expected accounts, oauth_clients, tables)")
    accounts = _load_accounts(instance.get("accounts", []))
    clients = _load_clients(instance.get("oauth_clients", []), accounts)
    tables = instance.get("tables", {})
    if not isinstance(tables, Mapping):
        _fixture_error("tables", "must be an object of table name to list of records")
    specs = dict(TABLES)
    for name, records in tables.items():
        if not _TABLE_NAME.fullmatch(str(name)):
            _fixture_error(f"tables.{name}", "table names are lowercase letters, digits and _")
        if not isinstance(records, list):
            _fixture_error(f"tables.{name}", "must be a list of records")
        if name not in specs:
            specs[name] = _custom_table(name, records)
    rows = _RecordLoader(specs, now).load(tables)
    return _Instance(accounts, clients, specs, rows)


def _fixture_error(path: str, problem: str) -> NoReturn:
    where = f"{path}: " if path else ""
    raise FixtureError(f"instance fixture: {where}{problem}")


def _load_accounts(raw: Any) -> dict[str, _Account]:
    if not isinstance(raw, list):
        _fixture_error("accounts", "must be a list")
    accounts: dict[str, _Account] = {}
    for index, entry in enumerate(raw):
        path = f"accounts[{index}]"
        user_name = _required_text(entry, path, "user_name")
        password = _required_text(entry, path, "password")
        roles = entry.get("roles", [])
        if not isinstance(roles, list) or not all(isinstance(r, str) and r for r in roles):
            _fixture_error(f"{path}.roles", "must be a list of role names")
        if user_name in accounts:
            _fixture_error(f"{path}.user_name", f"duplicate account {user_name!r}")
        accounts[user_name] = _Account(user_name, password, frozenset(roles))
    return accounts


def _load_clients(raw: Any, accounts: Mapping[str, _Account]) -> dict[str, _OAuthClient]:
    if not isinstance(raw, list):
        _fixture_error("oauth_clients", "must be a list")
    clients: dict[str, _OAuthClient] = {}
    for index, entry in enumerate(raw):
        path = f"oauth_clients[{index}]"
        client_id = _required_text(entry, path, "client_id")
        secret = _required_text(entry, path, "client_secret")
        user_name = entry.get("user_name", "")
        if user_name and user_name not in accounts:
            _fixture_error(f"{path}.user_name", f"no account named {user_name!r}")
        if client_id in clients:
            _fixture_error(f"{path}.client_id", f"duplicate client {client_id!r}")
        clients[client_id] = _OAuthClient(client_id, secret, str(user_name))
    return clients


def _required_text(entry: Any, path: str, key: str) -> str:
    if not isinstance(entry, Mapping):
        _fixture_error(path, "must be an object")
    value = entry.get(key)
    if not isinstance(value, str) or not value:
        _fixture_error(f"{path}.{key}", "must be a non-empty string")
    return value


def _custom_table(name: str, records: list[Any]) -> TableSpec:
    names: dict[str, None] = {}
    for record in records:
        if isinstance(record, Mapping):
            names.update(dict.fromkeys(str(key) for key in record))
    system = {column.name for column in SYSTEM_FIELDS}
    columns = tuple(FieldSpec(key) for key in names if key not in system)
    display = "name" if "name" in names else "sys_id"
    return TableSpec(name, (*columns, *SYSTEM_FIELDS), display_field=display)


class _RecordLoader:
    """Turns fixture tables into stored records: validated, completed, references resolved."""

    def __init__(self, specs: dict[str, TableSpec], now: str) -> None:
        self.specs = specs
        self.now = now
        self.rows: dict[str, dict[str, dict[str, str]]] = {name: {} for name in specs}
        self.paths: dict[tuple[str, str], str] = {}
        self._display: dict[str, list[dict[str, str]]] = {}

    def load(self, tables: Mapping[str, list[Any]]) -> dict[str, dict[str, dict[str, str]]]:
        for name, given in tables.items():
            for index, raw in enumerate(given):
                self._add(self.specs[name], f"tables.{name}[{index}]", raw)
        for name, stored in self.rows.items():
            for record in stored.values():
                self._resolve(self.specs[name], record)
            self._check_unique(self.specs[name], stored)
        return self.rows

    def _add(self, spec: TableSpec, path: str, raw: Any) -> None:
        if not isinstance(raw, Mapping):
            _fixture_error(path, "must be an object")
        record = {column.name: column.default for column in spec.fields}
        for key, value in raw.items():
            record[key] = self._value(spec, f"{path}.{key}", key, value)
        sys_id = record["sys_id"] or _new_sys_id()
        if not _SYS_ID.fullmatch(sys_id):
            _fixture_error(f"{path}.sys_id", "must be 32 lowercase hex characters")
        if sys_id in self.rows[spec.name]:
            _fixture_error(f"{path}.sys_id", f"duplicate sys_id {sys_id}")
        record["sys_id"] = sys_id
        record["sys_created_on"] = record["sys_created_on"] or self.now
        record["sys_updated_on"] = record["sys_updated_on"] or record["sys_created_on"]
        record["sys_created_by"] = record["sys_created_by"] or "system"
        record["sys_updated_by"] = record["sys_updated_by"] or record["sys_created_by"]
        record["sys_mod_count"] = record["sys_mod_count"] or "0"
        given = dict(record)
        _apply_rules(spec, None, record)
        if spec.name == "sys_user" and "name" in raw and given["name"] != record["name"]:
            _fixture_error(f"{path}.name", "calculated from first_name, middle_name, last_name")
        if "locked_out" in raw:
            record["locked_out"] = given["locked_out"]  # as the fixture says, not as a rule would
        self.rows[spec.name][sys_id] = record
        self.paths[(spec.name, sys_id)] = path

    def _value(self, spec: TableSpec, path: str, key: str, value: Any) -> str:
        column = spec.by_name.get(key)
        if column is None:
            _fixture_error(path, f"{spec.name} has no such field")
        if isinstance(value, dict | list):
            _fixture_error(path, "must be a string, number, boolean or null")
        text = _input_text(value)
        if column.kind is FieldKind.BOOLEAN and text.strip().lower() not in (
            "true",
            "false",
            "1",
            "0",
        ):
            _fixture_error(path, "must be true or false")
        if column.kind is FieldKind.INTEGER and text and not text.lstrip("-").isdigit():
            _fixture_error(path, "must be an integer")
        if column.kind is FieldKind.DATETIME and _datetime_text(text) is None:
            _fixture_error(path, "must be a date-time 'YYYY-MM-DD HH:MM:SS' (UTC)")
        if column.kind is FieldKind.REFERENCE:
            return text.strip()
        return text if key == "sys_id" else _normalise(column.kind, text)

    def _resolve(self, spec: TableSpec, record: dict[str, str]) -> None:
        # Fixtures may name a referenced record by sys_id or by display value (users also by
        # user_name); unlike the API, a fixture that names nothing is an error, not an empty field.
        for column in spec.fields:
            text = record[column.name]
            if column.kind is not FieldKind.REFERENCE or not text:
                continue
            target = self.rows.get(column.reference, {})
            if text in target:
                continue
            found = self._by_display(column.reference, text)
            if not found:
                where = f"{self.paths[(spec.name, record['sys_id'])]}.{column.name}"
                _fixture_error(where, f"no {column.reference} record with sys_id or name {text!r}")
            record[column.name] = found

    def _by_display(self, table: str, text: str) -> str:
        wanted = text.lower()
        return next((i[wanted] for i in self._display_indexes(table) if wanted in i), "")

    def _display_indexes(self, table: str) -> list[dict[str, str]]:
        # Built once per table after every record is in, so large fixtures resolve in linear time;
        # the first record with a given name wins, as it does in the API's look-up.
        if table not in self._display:
            spec = self.specs[table]
            keys = ("user_name", "name") if table == "sys_user" else (spec.display_field,)
            indexes: list[dict[str, str]] = []
            for key in keys:
                index: dict[str, str] = {}
                for sys_id, record in self.rows[table].items():
                    index.setdefault(record.get(key, "").lower(), sys_id)
                indexes.append(index)
            self._display[table] = indexes
        return self._display[table]

    def _check_unique(self, spec: TableSpec, records: Mapping[str, dict[str, str]]) -> None:
        for name in spec.unique:
            seen: set[str] = set()
            for sys_id, record in records.items():
                value = record.get(name, "").lower()
                if value and value in seen:
                    path = self.paths[(spec.name, sys_id)]
                    _fixture_error(f"{path}.{name}", f"duplicate {name} {record[name]!r}")
                seen.add(value)
