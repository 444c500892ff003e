"""`snsync test-connection`: each check in order, with its cause and fix, changing nothing."""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

import requests

from snsync.config import AttributeMapping, Config
from snsync.connections import Connections
from snsync.engine.scope import DEFAULT_ROLE_ID
from snsync.errors import (
    ApiError,
    BadRequestError,
    ConfigError,
    ForbiddenError,
    NotFoundError,
    SnsyncError,
)
from snsync.graph.source import find_service_principal
from snsync.http import describe_failure
from snsync.redact import redact
from snsync.servicenow.client import TableClient, servicenow_error

MANAGED_TABLES = ("sys_user", "sys_user_group", "sys_user_grmember")
WRITE_ROLES = frozenset({"admin", "user_admin"})
UNAVAILABLE_TRIES = 3  # a 503 is asked again twice before test-connection judges it
MAX_CHECK_WAIT_S = 5.0


@dataclass(frozen=True)
class Check:
    """One check's outcome; `skipped` when a check it needs failed first."""

    name: str
    ok: bool
    detail: str
    skipped: bool = False


def run_checks(config: Config, conns: Connections) -> Iterator[Check]:
    """Yield every check in order; one that needs a failed check is reported as skipped, all
    the others still run."""
    yield Check("config", True, f"{config.source_path} is valid")
    yield from _graph_checks(config, conns)
    yield from _servicenow_checks(config, conns)


def service_problems(config: Config, conns: Connections) -> tuple[list[str], bool]:
    """What the services say is wrong with the config (an excluded role that is no app role,
    a reference table or a mapped field that does not exist), each naming its key; and whether
    every question could be asked (a service that cannot be asked is no finding: the cycle
    itself reports that)."""
    problems: list[str] = []
    complete = True
    try:
        problems += excluded_role_problems(config, find_service_principal(conns.graph, config))
    except (SnsyncError, requests.RequestException):
        complete = False
    try:
        problems += reference_problems(config, conns.servicenow)
        problems += field_problems(config, conns.servicenow)
    except (SnsyncError, requests.RequestException):
        complete = False
    return problems, complete


def checked_mark(config: Config) -> str:
    """A digest of what service_problems depends on: checked again only when it changes."""
    parts = [
        config.scope.model_dump(mode="json"),
        config.mappings.model_dump(mode="json"),
        [config.graph.app_id, config.graph.service_principal_id, str(config.servicenow.instance)],
    ]
    return hashlib.sha256(json.dumps(parts, sort_keys=True, default=str).encode()).hexdigest()


def excluded_role_problems(config: Config, sp: Mapping[str, Any]) -> list[str]:
    """Each scope.excluded_app_roles entry that names no app role of the service principal."""
    roles = [r for r in sp.get("appRoles") or [] if isinstance(r, dict)]
    known = {DEFAULT_ROLE_ID, "default access"}
    for role in roles:
        known |= {str(role.get(k) or "").lower() for k in ("id", "value", "displayName")}
    values = ", ".join(str(r.get("value") or r.get("displayName")) for r in roles) or "none"
    return [
        f"scope.excluded_app_roles[{i}]: '{name}' is not an app role of '{sp.get('displayName')}'"
        f" (its roles: {values}, or Default Access); fix the name or remove the entry"
        for i, name in enumerate(config.scope.excluded_app_roles)
        if name.lower() not in known
    ]


def reference_problems(config: Config, client: TableClient) -> list[str]:
    """Each mapping whose `reference` table does not exist in ServiceNow."""
    problems = []
    for key, mapping in _mappings(config):
        table = mapping.reference
        if not table or table == "sys_user":
            continue
        try:
            next(client.iter_pages(table, ["sys_id"], "sys_idISEMPTY", page_size=1), None)
        except (BadRequestError, NotFoundError) as exc:
            problems.append(
                f"{key}.reference: table '{table}' does not exist in ServiceNow ({exc}); fix the "
                "table name (cmn_department, cmn_location, core_company, ...)"
            )
    return problems


def field_problems(config: Config, client: TableClient) -> list[str]:
    """Each mapping target that is not a field of its table (judged from one record)."""
    problems = []
    for table, kind in (("sys_user", "users"), ("sys_user_group", "groups")):
        mapped = [(k, m.target) for k, m in _mappings(config) if k.startswith(f"mappings.{kind}")]
        page = next(client.iter_pages(table, [t for _, t in mapped], page_size=1), [])
        if not page:
            continue  # an empty table says nothing about its fields
        problems += [
            f"{key}.target: '{target}' is not a field of {table} (ServiceNow does not return "
            "it); fix the target name"
            for key, target in mapped
            if target not in page[0]
        ]
    return problems


def _mappings(config: Config) -> Iterator[tuple[str, AttributeMapping]]:
    for kind in ("users", "groups"):
        for i, mapping in enumerate(getattr(config.mappings, kind)):
            if mapping.kind != "none":
                yield f"mappings.{kind}[{i}]", mapping


def _skipped(names: Iterable[str], needs: str) -> Iterator[Check]:
    for name in names:
        yield Check(name, False, f"not run: needs the '{needs}' check to pass", skipped=True)


def _problems_check(name: str, find: Callable[[], list[str]], fine: str) -> Check:
    def judge() -> str:
        problems = find()
        if problems:
            raise ConfigError("; ".join(problems))
        return fine

    return _step(name, judge)


def _graph_checks(config: Config, conns: Connections) -> Iterator[Check]:
    token = _step("graph token", lambda: (conns.graph.tokens.token(), "token acquired")[1])
    yield token
    if not token.ok:
        yield from _skipped(
            ("service principal", "excluded app roles", "read assignments", "read users"),
            "graph token",
        )
        return
    sp: dict[str, Any] = {}

    def find() -> str:
        sp.update(find_service_principal(conns.graph, config))
        roles = [str(r.get("value")) for r in sp.get("appRoles", []) or [] if isinstance(r, dict)]
        return (
            f"'{sp.get('displayName')}' ({sp.get('id')}), app roles: {', '.join(roles) or 'none'}"
        )

    found = _step("service principal", find)
    yield found
    if found.ok:
        yield _problems_check(
            "excluded app roles",
            lambda: excluded_role_problems(config, sp),
            f"{len(config.scope.excluded_app_roles)} configured, each an app role",
        )
        path = f"servicePrincipals/{sp['id']}/appRoleAssignedTo"
        yield _step("read assignments", _reader(conns, path, "Application.Read.All"))
    else:
        yield from _skipped(("excluded app roles", "read assignments"), "service principal")
    yield _step("read users", _reader(conns, "users", "User.Read.All"))
    group = _first_assigned_group(conns, str(sp["id"])) if found.ok else None
    if group:
        path = f"groups/{group}/members"
        yield _step("read group members", _reader(conns, path, "GroupMember.Read.All"))


def _reader(conns: Connections, path: str, permission: str) -> Callable[[], str]:
    def read() -> str:
        try:
            conns.graph.get(path, {"$top": "1"})
        except ForbiddenError as exc:
            raise ForbiddenError(
                f"missing Graph application permission {permission}: grant it to the snsync app "
                f"registration and give admin consent ({exc.code})",
                service="graph",
            ) from None
        return f"allowed ({permission})"

    return read


def _first_assigned_group(conns: Connections, sp_id: str) -> str | None:
    try:
        rows = conns.graph.get(f"servicePrincipals/{sp_id}/appRoleAssignedTo", {"$top": "999"})
    except SnsyncError:
        return None
    return next(
        (str(r["principalId"]) for r in rows.get("value", []) if r.get("principalType") == "Group"),
        None,
    )


def _servicenow_checks(config: Config, conns: Connections) -> Iterator[Check]:
    later = [f"read {t}" for t in MANAGED_TABLES] + ["reference tables", "mapped fields"]
    reach = _step("servicenow reachable", lambda: _reachable(config, conns))
    yield reach
    if not reach.ok:
        yield from _skipped(["servicenow login", *later, "write access"], "servicenow reachable")
        return
    client = conns.servicenow
    auth = _step("servicenow login", lambda: _login(config, conns))
    yield auth
    if not auth.ok:
        yield from _skipped([*later, "write access"], "servicenow login")
        return
    for table in MANAGED_TABLES:
        yield _step(f"read {table}", _table_reader(client, table))
    yield _problems_check(
        "reference tables", lambda: reference_problems(config, client), "every one exists"
    )
    yield _problems_check(
        "mapped fields", lambda: field_problems(config, client), "every target is a field"
    )
    yield _step("write access", lambda: _write_roles(config, conns))


def _table_reader(client: TableClient, table: str) -> Callable[[], str]:
    def read() -> str:
        # A query that matches nothing proves read access without transferring records.
        client.read_all(table, ["sys_id"], "sys_idISEMPTY")
        return "allowed"

    return read


def _reachable(config: Config, conns: Connections) -> str:
    url = f"{config.servicenow.instance}/api/now/table/sys_user"
    response = _get_retrying(config, conns, url)
    if response.status_code in (200, 401, 403) and _is_table_api(response):
        return f"{config.servicenow.instance} answers the Table API"
    if response.status_code in (200, 404) or not _is_json(response):
        raise ApiError(
            f"{config.servicenow.instance} answered {response.status_code} "
            f"{'with a web page' if not _is_json(response) else 'without a Table API result'}, "
            "not the Table API (ServiceNowInstanceInvalid): check servicenow.instance; a "
            "hibernating developer instance answers like this until it is woken",
            service="servicenow",
        )
    raise servicenow_error(response, "GET", url)


def _get_retrying(config: Config, conns: Connections, url: str) -> requests.Response:
    """GET `url`; a 502/503/504 (an instance restarting, a node busy) is asked again before it
    is judged."""
    http = conns.servicenow_http
    for attempt in range(1, UNAVAILABLE_TRIES + 1):
        try:
            response = http.session.get(
                url, params={"sysparm_limit": "1"}, timeout=http.timeout_s, verify=http.verify
            )
        except requests.exceptions.SSLError as exc:
            raise ApiError(
                f"TLS to {config.servicenow.instance} failed ({_first(exc)}); if the instance "
                "uses a private CA, set servicenow.ca_bundle to its PEM file",
                service="servicenow",
            ) from None
        except requests.ConnectionError as exc:
            text = str(exc)
            if "Name or service not known" in text or "getaddrinfo" in text:
                raise ApiError(
                    f"{config.servicenow.instance} does not resolve: check servicenow.instance "
                    "(the NAME in https://NAME.service-now.com)",
                    service="servicenow",
                ) from None
            raise ApiError(
                f"cannot connect to {config.servicenow.instance}: {describe_failure(exc)}",
                service="servicenow",
            ) from None
        if response.status_code not in (502, 503, 504) or attempt == UNAVAILABLE_TRIES:
            return response
        time.sleep(_retry_after(response, attempt))
    raise AssertionError("unreachable")  # pragma: no cover


def _retry_after(response: requests.Response, attempt: int) -> float:
    try:
        return min(float(response.headers.get("Retry-After", "")), MAX_CHECK_WAIT_S)
    except ValueError:
        return min(float(attempt), MAX_CHECK_WAIT_S)


def _is_json(response: requests.Response) -> bool:
    return "json" in response.headers.get("Content-Type", "")


def _is_table_api(response: requests.Response) -> bool:
    """A Table API answer is JSON with `result` (success) or `error` (refused)."""
    if not _is_json(response):
        return False
    try:
        body = response.json()
    except ValueError:
        return False
    key = "result" if response.status_code == 200 else "error"
    return isinstance(body, dict) and key in body


def _login(config: Config, conns: Connections) -> str:
    records = conns.servicenow.read_all(
        "sys_user", ["user_name"], f"user_name={config.servicenow.auth.username}"
    )
    return f"authenticated as {config.servicenow.auth.username}" + (
        "" if records else " (its own sys_user record is not readable)"
    )


def _write_roles(config: Config, conns: Connections) -> str:
    """Write access is judged from the account's roles, so that the check changes nothing."""
    client = conns.servicenow
    me = client.read_all("sys_user", ["user_name"], f"user_name={config.servicenow.auth.username}")
    if not me:
        raise NotFoundError(
            f"cannot find the account '{config.servicenow.auth.username}' in sys_user to read its "
            "roles; give it a readable sys_user record",
            service="servicenow",
        )
    grants = client.read_all("sys_user_has_role", ["role"], f"user={me[0]['sys_id']}")
    role_ids = {g.get("role", "") for g in grants}
    names = {
        r.get("name", "")
        for r in client.read_all("sys_user_role", ["name"])
        if r["sys_id"] in role_ids
    }
    if names & WRITE_ROLES:
        return f"roles {', '.join(sorted(names))} allow writing {', '.join(MANAGED_TABLES)}"
    raise ForbiddenError(
        f"the account has roles {', '.join(sorted(names)) or 'none'}; it needs user_admin (or "
        f"admin) to write {', '.join(MANAGED_TABLES)}",
        service="servicenow",
    )


def _step(name: str, action: Callable[[], str]) -> Check:
    try:
        return Check(name, True, action())
    except SnsyncError as exc:
        return Check(name, False, redact(str(exc)))
    except requests.RequestException as exc:
        return Check(name, False, redact(_first(exc)))


def _first(exc: Exception) -> str:
    text = str(exc)
    return text.splitlines()[0][:200] if text else type(exc).__name__
