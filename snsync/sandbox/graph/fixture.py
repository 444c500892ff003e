"""Tenant fixtures: read the JSON file, validate every key (one FixtureError line naming the JSON
path) and build the `Directory` the services run on.
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
import uuid
from collections.abc import Callable, Iterable, Mapping
from datetime import datetime
from pathlib import Path
from typing import Any

from cryptography import x509

from snsync.errors import FixtureError
from snsync.sandbox.graph.catalog import (
    DEFAULT_ACCESS_ROLE_ID,
    GROUP_PROPERTIES,
    GUID_RE,
    KNOWN_PERMISSIONS,
    SP_PROPERTIES,
    USER_PROPERTIES,
    name_list,
)
from snsync.sandbox.graph.directory import Client, Directory
from snsync.sandbox.graph.wire import iso


def load_tenant_file(path: Path) -> dict[str, Any]:
    """Read a tenant fixture JSON file; FixtureError names the file and the line/column."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise FixtureError(f"tenant fixture {path}: cannot read: {exc.strerror or exc}") from exc
    except UnicodeDecodeError as exc:
        raise FixtureError(f"tenant fixture {path}: not UTF-8 text: {exc.reason}") from exc
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise FixtureError(
            f"tenant fixture {path}: invalid JSON at line {exc.lineno} column {exc.colno}: "
            f"{exc.msg}"
        ) from exc
    if not isinstance(data, dict):
        raise FixtureError(f"tenant fixture {path}: expected a JSON object at the top level")
    return data


class FixtureReader:
    """Validates a tenant fixture; every problem is one FixtureError line naming the json path."""

    def __init__(self, tenant: Mapping[str, Any], now: float) -> None:
        self.tenant = tenant
        self.now = now
        self.object_ids: set[str] = set()

    def fail(self, path: str, message: str) -> FixtureError:
        return FixtureError(f"tenant fixture: {path}: {message}")

    def guid(self, value: Any, path: str) -> str:
        if not isinstance(value, str) or not GUID_RE.match(value):
            raise self.fail(path, f"expected a GUID, got {value!r}")
        return value.lower()

    def text(self, value: Any, path: str, *, optional: bool = False) -> str | None:
        if value is None and optional:
            return None
        if not isinstance(value, str) or not value.strip():
            raise self.fail(path, f"expected a non-empty string, got {value!r}")
        return value

    def items(self, key: str, *, required: bool = True) -> list[Any]:
        value = self.tenant.get(key)
        if value is None and not required:
            return []
        if not isinstance(value, list):
            raise self.fail(key, f"expected a list, got {type(value).__name__}")
        return value

    def obj(self, value: Any, path: str) -> dict[str, Any]:
        if not isinstance(value, dict):
            raise self.fail(path, f"expected an object, got {type(value).__name__}")
        return value

    def new_object_id(self, value: Any, path: str) -> str:
        object_id = self.guid(value, path)
        if object_id in self.object_ids:
            raise self.fail(path, f"duplicate id {object_id!r}")
        self.object_ids.add(object_id)
        return object_id

    def unknown_keys(self, value: Mapping[str, Any], allowed: Iterable[str], path: str) -> None:
        known = set(allowed)
        for key in value:
            if key not in known:
                raise self.fail(f"{path}.{key}", "unknown property")


def load_directory(tenant: Mapping[str, Any], clock: Callable[[], float]) -> Directory:
    if not isinstance(tenant, Mapping):
        raise FixtureError("tenant fixture: expected an object at the top level")
    reader = FixtureReader(tenant, clock())
    reader.unknown_keys(
        tenant,
        name_list(
            "tenant_id tenant_name domains clients service_principal users groups assignments "
            "$schema comment"
        ),
        "$",
    )
    tenant_id = reader.guid(tenant.get("tenant_id"), "tenant_id")
    name = reader.text(tenant.get("tenant_name", tenant_id), "tenant_name") or tenant_id
    clients = _load_clients(reader)
    sp = _load_service_principal(reader)
    users, managers = _load_users(reader)
    domains = _load_domains(reader, users)
    directory = Directory(tenant_id, name, domains, clients, sp, clock)
    for user in users:
        directory.add_user(user, None)
        if user.get("deletedDateTime"):
            directory.soft_deleted.add(user["id"])
    directory.managers.update(managers)
    for group, members in _load_groups(reader, directory):
        directory.add_group(group, members)
    for assignment in _load_assignments(reader, directory):
        directory.assignments[assignment["id"]] = assignment
    return directory


def _load_clients(reader: FixtureReader) -> dict[str, Client]:
    clients: dict[str, Client] = {}
    entries = reader.items("clients")
    if not entries:
        raise reader.fail("clients", "at least one client is needed")
    for index, raw in enumerate(entries):
        path = f"clients[{index}]"
        entry = reader.obj(raw, path)
        reader.unknown_keys(
            entry,
            name_list(
                "client_id client_secret client_secret_expires certificate_pem permissions "
                "displayName"
            ),
            path,
        )
        client_id = reader.guid(entry.get("client_id"), f"{path}.client_id")
        if client_id in clients:
            raise reader.fail(f"{path}.client_id", f"duplicate client id {client_id!r}")
        secret = reader.text(entry.get("client_secret"), f"{path}.client_secret", optional=True)
        certificate = _load_certificate(reader, entry.get("certificate_pem"), path)
        if secret is None and certificate is None:
            raise reader.fail(path, "needs client_secret or certificate_pem")
        clients[client_id] = Client(
            client_id=client_id,
            display_name=reader.text(entry.get("displayName", "snsync"), f"{path}.displayName")
            or "",
            secret=secret,
            secret_expires_at=_load_expiry(reader, entry.get("client_secret_expires"), path),
            certificate=certificate,
            permissions=_load_permissions(reader, entry, path),
        )
    return clients


def _load_certificate(reader: FixtureReader, value: Any, path: str) -> x509.Certificate | None:
    if value is None:
        return None
    if not isinstance(value, str):
        raise reader.fail(f"{path}.certificate_pem", "expected a PEM string")
    try:
        return x509.load_pem_x509_certificate(value.encode())
    except ValueError as exc:
        raise reader.fail(f"{path}.certificate_pem", f"not a PEM certificate ({exc})") from exc


def _load_expiry(reader: FixtureReader, value: Any, path: str) -> float | None:
    if value is None:
        return None
    try:
        return datetime.fromisoformat(str(value).replace("Z", "+00:00")).timestamp()
    except ValueError as exc:
        raise reader.fail(
            f"{path}.client_secret_expires", f"expected an ISO 8601 date-time, got {value!r}"
        ) from exc


def _load_permissions(reader: FixtureReader, entry: Mapping[str, Any], path: str) -> frozenset[str]:
    if "permissions" not in entry:
        return KNOWN_PERMISSIONS  # no list: the client has been granted everything
    permissions = entry["permissions"]
    if not isinstance(permissions, list):
        raise reader.fail(f"{path}.permissions", "expected a list of permission names")
    for index, name in enumerate(permissions):
        if name not in KNOWN_PERMISSIONS:
            raise reader.fail(f"{path}.permissions[{index}]", f"unknown permission {name!r}")
    return frozenset(permissions)


def _load_service_principal(reader: FixtureReader) -> dict[str, Any]:
    sp = dict(reader.obj(reader.tenant.get("service_principal"), "service_principal"))
    reader.unknown_keys(sp, SP_PROPERTIES, "service_principal")
    sp["id"] = reader.new_object_id(sp.get("id"), "service_principal.id")
    sp["appId"] = reader.guid(sp.get("appId"), "service_principal.appId")
    reader.text(sp.get("displayName"), "service_principal.displayName")
    roles = sp.get("appRoles", [])
    if not isinstance(roles, list):
        raise reader.fail("service_principal.appRoles", "expected a list")
    sp["appRoles"] = [_load_role(reader, role, index) for index, role in enumerate(roles)]
    role_ids = [role["id"] for role in sp["appRoles"]]
    for index, role_id in enumerate(role_ids):
        if role_id in role_ids[:index] or role_id == DEFAULT_ACCESS_ROLE_ID:
            raise reader.fail(f"service_principal.appRoles[{index}].id", f"duplicate {role_id!r}")
    defaults: dict[str, Any] = {
        "deletedDateTime": None,
        "accountEnabled": True,
        "appDisplayName": sp["displayName"],
        "appRoleAssignmentRequired": True,
        "servicePrincipalNames": [sp["appId"]],
        "servicePrincipalType": "Application",
        "signInAudience": "AzureADMyOrg",
        "tags": [],
    }
    return {**defaults, **sp}


def _load_role(reader: FixtureReader, raw: Any, index: int) -> dict[str, Any]:
    path = f"service_principal.appRoles[{index}]"
    role = dict(reader.obj(raw, path))
    reader.unknown_keys(
        role,
        name_list("id value displayName description isEnabled allowedMemberTypes origin"),
        path,
    )
    role["id"] = reader.guid(role.get("id"), f"{path}.id")
    reader.text(role.get("value"), f"{path}.value")
    display_name = role.get("displayName", role["value"])
    defaults = {
        "allowedMemberTypes": ["User"],
        "description": display_name,
        "displayName": display_name,
        "isEnabled": True,
        "origin": "Application",
    }
    return {**defaults, **role}


def _load_users(reader: FixtureReader) -> tuple[list[dict[str, Any]], dict[str, str]]:
    users: list[dict[str, Any]] = []
    raw_managers: dict[str, tuple[Any, str]] = {}
    upns: set[str] = set()
    for index, raw in enumerate(reader.items("users")):
        path = f"users[{index}]"
        user = dict(reader.obj(raw, path))
        reader.unknown_keys(user, [*USER_PROPERTIES, "manager"], path)
        user["id"] = reader.new_object_id(user.get("id"), f"{path}.id")
        upn = reader.text(user.get("userPrincipalName"), f"{path}.userPrincipalName") or ""
        if "@" not in upn:
            raise reader.fail(f"{path}.userPrincipalName", f"expected name@domain, got {upn!r}")
        if upn.lower() in upns:
            raise reader.fail(f"{path}.userPrincipalName", f"duplicate {upn!r}")
        upns.add(upn.lower())
        reader.text(user.get("displayName"), f"{path}.displayName")
        enabled = user.setdefault("accountEnabled", True)
        if not isinstance(enabled, bool):
            raise reader.fail(f"{path}.accountEnabled", f"expected true or false, got {enabled!r}")
        if "manager" in user:
            raw_managers[user["id"]] = (user.pop("manager"), f"{path}.manager")
        users.append(user)
    ids = {user["id"] for user in users}
    managers: dict[str, str] = {}
    for user_id, (value, path) in raw_managers.items():
        if value is None:
            continue
        manager = reader.guid(value, path)
        if manager not in ids or manager == user_id:
            raise reader.fail(path, f"{manager!r} is not another user in this fixture")
        managers[user_id] = manager
    return users, managers


def _load_domains(reader: FixtureReader, users: list[dict[str, Any]]) -> frozenset[str]:
    domains = reader.items("domains", required=False)
    for index, domain in enumerate(domains):
        reader.text(domain, f"domains[{index}]")
    found = {user["userPrincipalName"].rsplit("@", 1)[1] for user in users}
    return frozenset(d.lower() for d in [*domains, *found])


def _load_groups(
    reader: FixtureReader, directory: Directory
) -> list[tuple[dict[str, Any], list[str]]]:
    entries = reader.items("groups", required=False)
    groups: list[tuple[dict[str, Any], list[Any], str]] = []
    for index, raw in enumerate(entries):
        path = f"groups[{index}]"
        group = dict(reader.obj(raw, path))
        reader.unknown_keys(group, [*GROUP_PROPERTIES, "members"], path)
        group["id"] = reader.new_object_id(group.get("id"), f"{path}.id")
        name = reader.text(group.get("displayName"), f"{path}.displayName") or ""
        members = group.pop("members", [])
        if not isinstance(members, list):
            raise reader.fail(f"{path}.members", "expected a list of user or group ids")
        groups.append((group_defaults(group, name), members, path))
    group_ids = {group["id"] for group, _, _ in groups}
    loaded: list[tuple[dict[str, Any], list[str]]] = []
    for group, raw_members, path in groups:
        member_ids: list[str] = []
        for index, value in enumerate(raw_members):
            member = reader.guid(value, f"{path}.members[{index}]")
            if member not in directory.users and member not in group_ids:
                raise reader.fail(f"{path}.members[{index}]", f"no user or group {member!r}")
            if member == group["id"] or member in member_ids:
                raise reader.fail(f"{path}.members[{index}]", f"{member!r} listed twice or self")
            member_ids.append(member)
        loaded.append((group, member_ids))
    return loaded


def group_defaults(group: dict[str, Any], name: str) -> dict[str, Any]:
    defaults: dict[str, Any] = {
        "deletedDateTime": None,
        "description": None,
        "groupTypes": [],
        "mail": None,
        "mailEnabled": False,
        "mailNickname": re.sub(r"[^A-Za-z0-9]", "", name) or "group",
        "securityEnabled": True,
        "visibility": None,
    }
    return {**defaults, **group}


def _load_assignments(reader: FixtureReader, directory: Directory) -> list[dict[str, Any]]:
    role_ids = {role["id"] for role in directory.service_principal["appRoles"]}
    role_ids.add(DEFAULT_ACCESS_ROLE_ID)
    loaded: list[dict[str, Any]] = []
    seen_ids: set[str] = set()
    seen_pairs: set[tuple[str, str]] = set()
    for index, raw in enumerate(reader.items("assignments", required=False)):
        path = f"assignments[{index}]"
        entry = reader.obj(raw, path)
        reader.unknown_keys(entry, name_list("id principalId appRoleId createdDateTime"), path)
        principal = reader.guid(entry.get("principalId"), f"{path}.principalId")
        if principal not in directory.users and principal not in directory.groups:
            raise reader.fail(f"{path}.principalId", f"no user or group {principal!r}")
        role = reader.guid(entry.get("appRoleId", DEFAULT_ACCESS_ROLE_ID), f"{path}.appRoleId")
        if role not in role_ids:
            raise reader.fail(f"{path}.appRoleId", f"{role!r} is not a role of the app")
        if (principal, role) in seen_pairs:
            raise reader.fail(path, f"{principal!r} already has role {role!r}")
        assignment_id = entry.get("id") or make_assignment_id(principal, role)
        reader.text(assignment_id, f"{path}.id")
        if assignment_id in seen_ids:
            raise reader.fail(f"{path}.id", f"duplicate id {assignment_id!r}")
        seen_ids.add(assignment_id)
        seen_pairs.add((principal, role))
        created = entry.get("createdDateTime") or iso(reader.now)
        loaded.append(
            {
                "id": assignment_id,
                "principalId": principal,
                "appRoleId": role,
                "createdDateTime": created,
            }
        )
    return loaded


def make_assignment_id(principal_id: str, role_id: str, salt: str = "") -> str:
    # Real assignment ids are 43-character base64url strings that start with the principal's
    # object id, not GUIDs; clients that assume GUIDs should fail here as they would in Azure.
    digest = hashlib.sha256(f"{principal_id}:{role_id}:{salt}".encode()).digest()[:16]
    raw = uuid.UUID(principal_id).bytes_le + digest
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")
