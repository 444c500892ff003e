"""`snsync test-connection`: each check in order, with its cause and fix, changing nothing."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass

import requests

from snsync.config import Config
from snsync.connections import Connections
from snsync.errors import ApiError, ForbiddenError, NotFoundError, SnsyncError
from snsync.graph.source import find_service_principal
from snsync.http import describe_failure
from snsync.redact import redact
from snsync.servicenow.client import TableClient, servicenow_error

MANAGED_TABLES = ("sys_user", "sys_user_group", "sys_user_grmember")
WRITE_ROLES = frozenset({"admin", "user_admin"})


@dataclass(frozen=True)
class Check:
    """One check's outcome."""

    name: str
    ok: bool
    detail: str


def run_checks(config: Config, conns: Connections) -> Iterator[Check]:
    """Yield checks in order; a failing step stops the checks that depend on it."""
    yield Check("config", True, f"{config.source_path} is valid")
    yield from _graph_checks(config, conns)
    yield from _servicenow_checks(config, conns)


def _graph_checks(config: Config, conns: Connections) -> Iterator[Check]:
    token = _step("graph token", lambda: (conns.graph.tokens.token(), "token acquired")[1])
    yield token
    if not token.ok:
        return
    sp: dict[str, object] = {}

    def find() -> str:
        sp.update(find_service_principal(conns.graph, config))
        roles = [
            str(r.get("value"))
            for r in sp.get("appRoles", []) or []  # type: ignore[attr-defined]
            if isinstance(r, dict)
        ]
        return (
            f"'{sp.get('displayName')}' ({sp.get('id')}), app roles: {', '.join(roles) or 'none'}"
        )

    found = _step("service principal", find)
    yield found
    if not found.ok:
        return
    sp_id = sp["id"]
    reads = [
        (
            "read assignments",
            f"servicePrincipals/{sp_id}/appRoleAssignedTo",
            "Application.Read.All",
        ),
        ("read users", "users", "User.Read.All"),
    ]
    for name, path, permission in reads:
        yield _step(name, _reader(conns, path, permission))
    group = _first_assigned_group(conns, str(sp_id))
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
    reach = _step("servicenow reachable", lambda: _reachable(config, conns))
    yield reach
    if not reach.ok:
        return
    client = conns.servicenow
    auth = _step("servicenow login", lambda: _login(config, conns))
    yield auth
    if not auth.ok:
        return
    for table in MANAGED_TABLES:
        yield _step(f"read {table}", _table_reader(client, table))
    yield _step("write access", lambda: _write_roles(config, conns))


def _table_reader(client: TableClient, table: str) -> Callable[[], str]:
    def read() -> str:
        # A query that matches nothing proves read access without transferring records.
        client.read_all(table, ["sys_id"], "sys_idISEMPTY")
        return "allowed"

    return read


def _reachable(config: Config, conns: Connections) -> str:
    url = f"{config.servicenow.instance}/api/now/table/sys_user"
    http = conns.servicenow_http
    try:
        response = http.session.get(
            url, params={"sysparm_limit": "1"}, timeout=http.timeout_s, verify=http.verify
        )
    except requests.exceptions.SSLError as exc:
        raise ApiError(
            f"TLS to {config.servicenow.instance} failed ({_first(exc)}); if the instance uses a "
            "private CA, set servicenow.ca_bundle to its PEM file",
            service="servicenow",
        ) from None
    except requests.ConnectionError as exc:
        text = str(exc)
        if "Name or service not known" in text or "getaddrinfo" in text:
            raise ApiError(
                f"{config.servicenow.instance} does not resolve: check servicenow.instance (the "
                "NAME in https://NAME.service-now.com)",
                service="servicenow",
            ) from None
        raise ApiError(
            f"cannot connect to {config.servicenow.instance}: {describe_failure(exc)}",
            service="servicenow",
        ) from None
    if response.status_code in (401, 200, 403):
        return f"{config.servicenow.instance} answers the Table API"
    if response.status_code == 404 or "json" not in response.headers.get("Content-Type", ""):
        raise ApiError(
            f"{config.servicenow.instance} answered {response.status_code} without the Table API "
            "(ServiceNowInstanceInvalid): check servicenow.instance",
            service="servicenow",
        )
    raise servicenow_error(response, "GET", url)


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
