"""The sandbox's Azure AD: the Microsoft identity platform token service (the authority host) and
Microsoft Graph v1.0 on one HTTPS listener, both driven by a tenant fixture.

Faithful enough that MSAL and plain `requests` Graph clients written for the real services work
unchanged, and fail the same way (error shapes, codes, paging, delta, throttling). The fixture
format, the endpoints and the known differences are in docs/sandbox-graph.md.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import re
import secrets
import threading
import time
import uuid
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, quote, unquote, urlsplit

import jwt
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from snsync.errors import FixtureError
from snsync.sandbox.server import Request, Response

GRAPH_RESOURCE = "https://graph.microsoft.com"
GRAPH_APP_ID = "00000003-0000-0000-c000-000000000000"
DEFAULT_ACCESS_ROLE_ID = "00000000-0000-0000-0000-000000000000"
JWT_BEARER = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"

# Application permissions a fixture client may list (anything else is a typo in the fixture).
KNOWN_PERMISSIONS = frozenset(
    {
        "Application.Read.All",
        "Application.ReadWrite.All",
        "AppRoleAssignment.ReadWrite.All",
        "Directory.Read.All",
        "Directory.ReadWrite.All",
        "Group.Read.All",
        "Group.ReadWrite.All",
        "GroupMember.Read.All",
        "GroupMember.ReadWrite.All",
        "User.Read.All",
        "User.ReadWrite.All",
        "User.DeleteRestore.All",
    }
)


class GraphApp:
    """Token service + Graph v1.0 for one tenant fixture (an `snsync.sandbox.server.App`)."""

    def __init__(
        self,
        tenant: Mapping[str, Any],
        *,
        token_lifetime_s: int = 3599,
        throttle_every: int | None = None,
        delta_token_ttl_s: int = 7 * 24 * 3600,
        clock: Callable[[], float] | None = None,
    ) -> None:
        self._clock = clock or time.time
        self._directory = _load_directory(tenant, self._clock)
        self.tenant_id = self._directory.tenant_id
        self._tokens = _TokenService(self._directory, token_lifetime_s, self._clock)
        self._graph = _GraphService(
            self._directory,
            self._tokens,
            throttle_every=throttle_every,
            delta_token_ttl_s=delta_token_ttl_s,
            clock=self._clock,
        )

    def handle(self, request: Request) -> Response:
        """Answer one request: Graph under /v1.0 (and /beta), the token service elsewhere."""
        first = request.path.lstrip("/").split("/", 1)[0].lower()
        if first in ("v1.0", "beta"):
            return self._graph.handle(request)
        return self._tokens.handle(request)

    def fault_response(self, status: int, retry_after: int) -> Response:
        """Graph's own shape of a throttled (429) or unavailable (503) answer."""
        return self._graph.fault(status, retry_after)

    def expire_delta_tokens(self) -> None:
        """Make every delta token (and delta paging token) issued so far answer 410 when used."""
        self._graph.expire_delta_tokens()

    def request_count(self) -> int:
        """Graph operations served: each request, and each item of a $batch (not the envelope)."""
        return self._graph.request_count()

    def hard_delete_user(self, user_id: str) -> None:
        """Purge a user as Azure AD does 30 days after a soft delete (delta then says "deleted")."""
        with self._directory.lock:
            if user_id.lower() not in self._directory.users:
                raise KeyError(user_id)
            self._directory.hard_delete_user(user_id.lower())


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


# ---------------------------------------------------------------------------------------------
# Property catalogues (Graph v1.0 resource types, the parts a provisioning client can touch)
# ---------------------------------------------------------------------------------------------


def _names(text: str) -> tuple[str, ...]:
    """Whitespace-separated names as a tuple (keeps the long catalogues below readable)."""
    return tuple(text.split())


USER_PROPERTIES = _names(
    "id accountEnabled ageGroup assignedLicenses assignedPlans businessPhones city companyName "
    "consentProvidedForMinor country createdDateTime creationType deletedDateTime department "
    "displayName employeeHireDate employeeLeaveDateTime employeeId employeeOrgData employeeType "
    "externalUserState externalUserStateChangeDateTime faxNumber givenName identities imAddresses "
    "isResourceAccount jobTitle lastPasswordChangeDateTime legalAgeGroupClassification mail "
    "mailNickname mobilePhone officeLocation onPremisesDistinguishedName onPremisesDomainName "
    "onPremisesExtensionAttributes onPremisesImmutableId onPremisesLastSyncDateTime "
    "onPremisesSamAccountName onPremisesSecurityIdentifier onPremisesSyncEnabled "
    "onPremisesUserPrincipalName otherMails passwordPolicies passwordProfile postalCode "
    "preferredDataLocation preferredLanguage proxyAddresses securityIdentifier showInAddressList "
    "signInSessionsValidFromDateTime state streetAddress surname usageLocation userPrincipalName "
    "userType"
)
USER_DEFAULT_SELECT = _names(
    "businessPhones displayName givenName jobTitle mail mobilePhone officeLocation "
    "preferredLanguage surname userPrincipalName id"
)
_USER_READ_ONLY = frozenset(
    _names(
        "id createdDateTime deletedDateTime securityIdentifier lastPasswordChangeDateTime "
        "signInSessionsValidFromDateTime creationType externalUserStateChangeDateTime "
        "assignedPlans assignedLicenses onPremisesDistinguishedName onPremisesDomainName "
        "onPremisesLastSyncDateTime onPremisesSamAccountName onPremisesSecurityIdentifier "
        "onPremisesSyncEnabled onPremisesUserPrincipalName proxyAddresses "
        "legalAgeGroupClassification isResourceAccount"
    )
)
_USER_REQUIRED_ON_CREATE = (
    "accountEnabled",
    "displayName",
    "mailNickname",
    "passwordProfile",
    "userPrincipalName",
)
GROUP_PROPERTIES = _names(
    "id classification createdDateTime deletedDateTime description displayName expirationDateTime "
    "groupTypes isAssignableToRole mail mailEnabled mailNickname membershipRule "
    "membershipRuleProcessingState onPremisesDomainName onPremisesLastSyncDateTime "
    "onPremisesNetBiosName onPremisesSamAccountName onPremisesSecurityIdentifier "
    "onPremisesSyncEnabled preferredDataLocation preferredLanguage proxyAddresses renewedDateTime "
    "securityEnabled securityIdentifier theme visibility"
)
GROUP_DEFAULT_SELECT = _names(
    "id deletedDateTime classification createdDateTime description displayName "
    "expirationDateTime groupTypes isAssignableToRole mail mailEnabled mailNickname membershipRule "
    "membershipRuleProcessingState onPremisesSyncEnabled proxyAddresses renewedDateTime "
    "securityEnabled securityIdentifier visibility"
)
_GROUP_READ_ONLY = frozenset(
    _names(
        "id createdDateTime deletedDateTime mail proxyAddresses renewedDateTime securityIdentifier "
        "onPremisesSyncEnabled onPremisesLastSyncDateTime"
    )
)
SP_PROPERTIES = _names(
    "id deletedDateTime accountEnabled addIns alternativeNames appDescription appDisplayName appId "
    "applicationTemplateId appOwnerOrganizationId appRoleAssignmentRequired appRoles description "
    "disabledByMicrosoftStatus displayName homepage info keyCredentials loginUrl logoutUrl notes "
    "notificationEmailAddresses oauth2PermissionScopes passwordCredentials "
    "preferredSingleSignOnMode preferredTokenSigningKeyThumbprint replyUrls "
    "resourceSpecificApplicationPermissions samlSingleSignOnSettings servicePrincipalNames "
    "servicePrincipalType signInAudience tags tokenEncryptionKeyId verifiedPublisher"
)
ASSIGNMENT_PROPERTIES = _names(
    "id deletedDateTime appRoleId createdDateTime principalDisplayName principalId principalType "
    "resourceDisplayName resourceId"
)
_COLLECTIONS = frozenset(
    _names(
        "businessPhones otherMails proxyAddresses identities imAddresses assignedLicenses "
        "assignedPlans groupTypes appRoles tags servicePrincipalNames replyUrls keyCredentials "
        "passwordCredentials addIns alternativeNames notificationEmailAddresses "
        "oauth2PermissionScopes resourceSpecificApplicationPermissions"
    )
)

# Which application permissions open which operations (any one of a set is enough).
_READ_APPS = frozenset(
    {"Application.Read.All", "Application.ReadWrite.All", "Directory.Read.All"}
    | {"Directory.ReadWrite.All"}
)
_READ_ASSIGNMENTS = _READ_APPS | {"AppRoleAssignment.ReadWrite.All"}
_WRITE_ASSIGNMENTS = frozenset({"AppRoleAssignment.ReadWrite.All"})
_READ_USERS = frozenset(
    {"User.Read.All", "User.ReadWrite.All", "Directory.Read.All", "Directory.ReadWrite.All"}
)
_WRITE_USERS = frozenset({"User.ReadWrite.All", "Directory.ReadWrite.All"})
_DELETE_USERS = _WRITE_USERS | {"User.DeleteRestore.All"}
_READ_GROUPS = frozenset(
    {"Group.Read.All", "Group.ReadWrite.All", "GroupMember.Read.All", "GroupMember.ReadWrite.All"}
    | {"Directory.Read.All", "Directory.ReadWrite.All"}
)
_WRITE_MEMBERS = frozenset(
    {"GroupMember.ReadWrite.All", "Group.ReadWrite.All", "Directory.ReadWrite.All"}
)
_WRITE_GROUPS = frozenset({"Group.ReadWrite.All", "Directory.ReadWrite.All"})
_READ_DIRECTORY_OBJECTS = _READ_USERS | _READ_GROUPS

_USER_TYPE = "#microsoft.graph.user"
_GROUP_TYPE = "#microsoft.graph.group"
# Signatures are checked by PyJWT; time, audience and issuer by us (the sandbox has its own clock).
_NO_CLAIM_CHECKS: Any = {
    "verify_exp": False,
    "verify_nbf": False,
    "verify_iat": False,
    "verify_aud": False,
    "verify_iss": False,
}
_GUID_RE = re.compile(r"^[0-9a-fA-F]{8}-(?:[0-9a-fA-F]{4}-){3}[0-9a-fA-F]{12}$")
_MAX_BATCH = 20


# ---------------------------------------------------------------------------------------------
# Tenant state
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Client:
    """An app registration that may ask the token service for Graph tokens."""

    client_id: str
    display_name: str
    secret: str | None
    secret_expires_at: float | None
    certificate: x509.Certificate | None
    permissions: frozenset[str]


@dataclass(frozen=True)
class _Change:
    """One write to the directory, in sequence order; delta rounds read these."""

    seq: int
    kind: str  # "user" | "group"
    object_id: str
    member_id: str | None = None  # set for a group membership change
    old_manager: str | None = None  # set when a user's manager was removed


class _Directory:
    """Users, groups, memberships, assignments and the change log; guarded by `lock`."""

    def __init__(
        self,
        tenant_id: str,
        tenant_name: str,
        domains: frozenset[str],
        clients: dict[str, _Client],
        service_principal: dict[str, Any],
        clock: Callable[[], float],
    ) -> None:
        self.lock = threading.RLock()
        self.tenant_id = tenant_id
        self.tenant_name = tenant_name
        self.domains = domains
        self.clients = clients
        self.service_principal = service_principal
        self.clock = clock
        self.users: dict[str, dict[str, Any]] = {}
        self.managers: dict[str, str] = {}
        self.soft_deleted: set[str] = set()
        self.groups: dict[str, dict[str, Any]] = {}
        self.members: dict[str, dict[str, None]] = {}  # group id -> ordered set of member ids
        self.assignments: dict[str, dict[str, Any]] = {}
        self.changes: list[_Change] = []
        self._upns: dict[str, str] = {}

    @property
    def seq(self) -> int:
        """The sequence number of the latest change (0 before any)."""
        return len(self.changes)

    def user(self, key: str) -> dict[str, Any] | None:
        """A visible (not soft-deleted) user by id or userPrincipalName."""
        user_id = key.lower() if _GUID_RE.match(key) else self._upns.get(key.lower(), "")
        if user_id in self.soft_deleted:
            return None
        return self.users.get(user_id)

    def group(self, group_id: str) -> dict[str, Any] | None:
        """A group by id."""
        return self.groups.get(group_id.lower())

    def kind_of(self, object_id: str) -> str | None:
        """'user' or 'group' for a visible directory object, else None."""
        object_id = object_id.lower()
        if object_id in self.users and object_id not in self.soft_deleted:
            return "user"
        return "group" if object_id in self.groups else None

    def visible_members(self, group_id: str) -> list[str]:
        """Direct members of a group, soft-deleted users hidden."""
        return [m for m in self.members.get(group_id, {}) if self.kind_of(m)]

    def transitive_members(self, group_id: str) -> list[str]:
        """Every member reached through nested groups (nested groups included), each once."""
        seen: dict[str, None] = {}
        pending = [group_id]
        while pending:
            for member in self.visible_members(pending.pop()):
                if member not in seen and member != group_id:
                    seen[member] = None
                    if member in self.groups:
                        pending.append(member)
        return list(seen)

    def member_of(self, object_id: str) -> list[str]:
        """Groups that list the object as a direct member."""
        return [gid for gid, members in self.members.items() if object_id in members]

    def transitive_member_of(self, object_id: str) -> list[str]:
        """Every group the object belongs to, directly or through nesting."""
        seen: dict[str, None] = {}
        pending = [object_id]
        while pending:
            for gid in self.member_of(pending.pop()):
                if gid not in seen:
                    seen[gid] = None
                    pending.append(gid)
        return list(seen)

    def record(
        self, kind: str, object_id: str, member: str | None = None, old_manager: str | None = None
    ) -> None:
        """Append a change for the delta log."""
        self.changes.append(_Change(self.seq + 1, kind, object_id, member, old_manager))

    def changes_between(self, after: int, upto: int) -> list[_Change]:
        """Changes with after < seq <= upto (seq n lives at index n-1)."""
        return self.changes[after:upto]

    def add_user(self, user: dict[str, Any], manager: str | None) -> None:
        """Create a user (already validated) and log it."""
        self.users[user["id"]] = user
        self._upns[user["userPrincipalName"].lower()] = user["id"]
        if manager:
            self.managers[user["id"]] = manager
        self.record("user", user["id"])

    def upn_owner(self, upn: str) -> str | None:
        """The id of the user (soft-deleted included) holding a userPrincipalName."""
        return self._upns.get(upn.lower())

    def update_user(self, user_id: str, changes: Mapping[str, Any]) -> None:
        """Apply property changes to a user; logs a change only when something differs."""
        user = self.users[user_id]
        updated = {**user, **changes}
        if updated == user:
            return
        if updated["userPrincipalName"] != user["userPrincipalName"]:
            del self._upns[user["userPrincipalName"].lower()]
            self._upns[updated["userPrincipalName"].lower()] = user_id
        self.users[user_id] = updated  # replaced, never mutated: readers may hold the old dict
        self.record("user", user_id)

    def set_manager(self, user_id: str, manager_id: str | None) -> None:
        """Set or clear a user's manager and log it."""
        old = self.managers.get(user_id)
        if old == manager_id:
            return
        if manager_id:
            self.managers[user_id] = manager_id
        else:
            self.managers.pop(user_id, None)
        self.record("user", user_id, old_manager=old if manager_id is None else None)

    def soft_delete_user(self, user_id: str) -> None:
        """Soft delete: hidden from reads, memberships and assignments; delta says 'changed'."""
        self.soft_deleted.add(user_id)
        self.users[user_id] = {**self.users[user_id], "deletedDateTime": _iso(self.clock())}
        self.record("user", user_id)
        for group_id in self.member_of(user_id):
            self.record("group", group_id, member=user_id)

    def hard_delete_user(self, user_id: str) -> None:
        """Purge a user: memberships, assignments and manager links go too."""
        user = self.users.pop(user_id)
        self.soft_deleted.discard(user_id)
        self._upns.pop(user["userPrincipalName"].lower(), None)
        self.managers.pop(user_id, None)
        self.record("user", user_id)
        self._drop_principal(user_id)
        for report, manager in list(self.managers.items()):
            if manager == user_id:
                self.set_manager(report, None)

    def add_group(self, group: dict[str, Any], members: Iterable[str]) -> None:
        """Create a group (already validated) and log it."""
        self.groups[group["id"]] = group
        self.members[group["id"]] = dict.fromkeys(members)
        self.record("group", group["id"])

    def update_group(self, group_id: str, changes: Mapping[str, Any]) -> None:
        """Apply property changes to a group; logs a change only when something differs."""
        group = self.groups[group_id]
        updated = {**group, **changes}
        if updated != group:
            self.groups[group_id] = updated
            self.record("group", group_id)

    def delete_group(self, group_id: str) -> None:
        """Delete a security group (immediately permanent, as in Azure AD)."""
        del self.groups[group_id]
        del self.members[group_id]
        self.record("group", group_id)
        self._drop_principal(group_id)

    def add_member(self, group_id: str, member_id: str) -> None:
        """Add a direct member and log it."""
        self.members[group_id][member_id] = None
        self.record("group", group_id, member=member_id)

    def remove_member(self, group_id: str, member_id: str) -> None:
        """Remove a direct member and log it."""
        del self.members[group_id][member_id]
        self.record("group", group_id, member=member_id)

    def visible_assignments(self) -> list[dict[str, Any]]:
        """Assignments whose principal is visible (soft-deleted users' assignments disappear)."""
        return [a for a in self.assignments.values() if self.kind_of(a["principalId"])]

    def _drop_principal(self, object_id: str) -> None:
        for group_id in self.member_of(object_id):
            self.remove_member(group_id, object_id)
        for assignment_id, assignment in list(self.assignments.items()):
            if assignment["principalId"] == object_id:
                del self.assignments[assignment_id]


# ---------------------------------------------------------------------------------------------
# Fixture loading and validation
# ---------------------------------------------------------------------------------------------


class _FixtureReader:
    """Validates a tenant fixture; every problem is one FixtureError line naming the json path."""

    def __init__(self, tenant: Mapping[str, Any], now: float) -> None:
        self.tenant = tenant
        self.now = now
        self.object_ids: set[str] = set()

    def fail(self, path: str, message: str) -> FixtureError:
        return FixtureError(f"tenant fixture: {path}: {message}")

    def guid(self, value: Any, path: str) -> str:
        if not isinstance(value, str) or not _GUID_RE.match(value):
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


def _load_directory(tenant: Mapping[str, Any], clock: Callable[[], float]) -> _Directory:
    if not isinstance(tenant, Mapping):
        raise FixtureError("tenant fixture: expected an object at the top level")
    reader = _FixtureReader(tenant, clock())
    reader.unknown_keys(
        tenant,
        _names(
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
    directory = _Directory(tenant_id, name, domains, clients, sp, clock)
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


def _load_clients(reader: _FixtureReader) -> dict[str, _Client]:
    clients: dict[str, _Client] = {}
    entries = reader.items("clients")
    if not entries:
        raise reader.fail("clients", "at least one client is needed")
    for index, raw in enumerate(entries):
        path = f"clients[{index}]"
        entry = reader.obj(raw, path)
        reader.unknown_keys(
            entry,
            _names(
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
        clients[client_id] = _Client(
            client_id=client_id,
            display_name=reader.text(entry.get("displayName", "snsync"), f"{path}.displayName")
            or "",
            secret=secret,
            secret_expires_at=_load_expiry(reader, entry.get("client_secret_expires"), path),
            certificate=certificate,
            permissions=_load_permissions(reader, entry, path),
        )
    return clients


def _load_certificate(reader: _FixtureReader, value: Any, path: str) -> x509.Certificate | None:
    if value is None:
        return None
    if not isinstance(value, str):
        raise reader.fail(f"{path}.certificate_pem", "expected a PEM string")
    try:
        return x509.load_pem_x509_certificate(value.encode())
    except ValueError as exc:
        raise reader.fail(f"{path}.certificate_pem", f"not a PEM certificate ({exc})") from exc


def _load_expiry(reader: _FixtureReader, value: Any, path: str) -> float | None:
    if value is None:
        return None
    try:
        return datetime.fromisoformat(str(value).replace("Z", "+00:00")).timestamp()
    except ValueError as exc:
        raise reader.fail(
            f"{path}.client_secret_expires", f"expected an ISO 8601 date-time, got {value!r}"
        ) from exc


def _load_permissions(
    reader: _FixtureReader, entry: Mapping[str, Any], path: str
) -> frozenset[str]:
    if "permissions" not in entry:
        return KNOWN_PERMISSIONS  # no list: the client has been granted everything
    permissions = entry["permissions"]
    if not isinstance(permissions, list):
        raise reader.fail(f"{path}.permissions", "expected a list of permission names")
    for index, name in enumerate(permissions):
        if name not in KNOWN_PERMISSIONS:
            raise reader.fail(f"{path}.permissions[{index}]", f"unknown permission {name!r}")
    return frozenset(permissions)


def _load_service_principal(reader: _FixtureReader) -> dict[str, Any]:
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


def _load_role(reader: _FixtureReader, raw: Any, index: int) -> dict[str, Any]:
    path = f"service_principal.appRoles[{index}]"
    role = dict(reader.obj(raw, path))
    reader.unknown_keys(
        role, _names("id value displayName description isEnabled allowedMemberTypes origin"), path
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


def _load_users(reader: _FixtureReader) -> tuple[list[dict[str, Any]], dict[str, str]]:
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


def _load_domains(reader: _FixtureReader, users: list[dict[str, Any]]) -> frozenset[str]:
    domains = reader.items("domains", required=False)
    for index, domain in enumerate(domains):
        reader.text(domain, f"domains[{index}]")
    found = {user["userPrincipalName"].rsplit("@", 1)[1] for user in users}
    return frozenset(d.lower() for d in [*domains, *found])


def _load_groups(
    reader: _FixtureReader, directory: _Directory
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
        groups.append((_group_defaults(group, name), members, path))
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


def _group_defaults(group: dict[str, Any], name: str) -> dict[str, Any]:
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


def _load_assignments(reader: _FixtureReader, directory: _Directory) -> list[dict[str, Any]]:
    role_ids = {role["id"] for role in directory.service_principal["appRoles"]}
    role_ids.add(DEFAULT_ACCESS_ROLE_ID)
    loaded: list[dict[str, Any]] = []
    seen_ids: set[str] = set()
    seen_pairs: set[tuple[str, str]] = set()
    for index, raw in enumerate(reader.items("assignments", required=False)):
        path = f"assignments[{index}]"
        entry = reader.obj(raw, path)
        reader.unknown_keys(entry, _names("id principalId appRoleId createdDateTime"), path)
        principal = reader.guid(entry.get("principalId"), f"{path}.principalId")
        if principal not in directory.users and principal not in directory.groups:
            raise reader.fail(f"{path}.principalId", f"no user or group {principal!r}")
        role = reader.guid(entry.get("appRoleId", DEFAULT_ACCESS_ROLE_ID), f"{path}.appRoleId")
        if role not in role_ids:
            raise reader.fail(f"{path}.appRoleId", f"{role!r} is not a role of the app")
        if (principal, role) in seen_pairs:
            raise reader.fail(path, f"{principal!r} already has role {role!r}")
        assignment_id = entry.get("id") or _assignment_id(principal, role)
        reader.text(assignment_id, f"{path}.id")
        if assignment_id in seen_ids:
            raise reader.fail(f"{path}.id", f"duplicate id {assignment_id!r}")
        seen_ids.add(assignment_id)
        seen_pairs.add((principal, role))
        created = entry.get("createdDateTime") or _iso(reader.now)
        loaded.append(
            {
                "id": assignment_id,
                "principalId": principal,
                "appRoleId": role,
                "createdDateTime": created,
            }
        )
    return loaded


def _assignment_id(principal_id: str, role_id: str, salt: str = "") -> str:
    # Real assignment ids are 43-character base64url strings that start with the principal's
    # object id, not GUIDs; clients that assume GUIDs should fail here as they would in Azure.
    digest = hashlib.sha256(f"{principal_id}:{role_id}:{salt}".encode()).digest()[:16]
    raw = uuid.UUID(principal_id).bytes_le + digest
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


# ---------------------------------------------------------------------------------------------
# Token service (login.microsoftonline.com)
# ---------------------------------------------------------------------------------------------


class _TokenError(Exception):
    """An AADSTS error answer."""

    def __init__(self, status: int, error: str, code: int, description: str) -> None:
        super().__init__(description)
        self.status = status
        self.error = error
        self.code = code
        self.description = description


@dataclass(frozen=True)
class _Principal:
    """Who a valid Graph access token speaks for."""

    client_id: str
    roles: frozenset[str]


class _TokenService:
    """OpenID discovery, JWKS and the OAuth2 client-credentials token endpoint (v2 and v1)."""

    def __init__(self, directory: _Directory, lifetime_s: int, clock: Callable[[], float]) -> None:
        self._directory = directory
        self._lifetime_s = lifetime_s
        self._clock = clock
        self._key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        public_der = self._key.public_key().public_bytes(
            serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
        )
        self._kid = _b64url(hashlib.sha1(public_der).digest())

    def handle(self, request: Request) -> Response:
        """Answer a request to the authority host."""
        trace_id = str(uuid.uuid4())
        try:
            return self._route(request, trace_id)
        except _TokenError as exc:
            return self._error(request, exc, trace_id)
        except Exception as exc:  # a sandbox bug: answer 500 rather than drop the connection
            bug = _TokenError(500, "server_error", 90033, f"snsync sandbox: {exc!r}")
            return self._error(request, bug, trace_id)

    def verify(self, token: str, base_url: str) -> _Principal:
        """The principal of a Graph access token; raises _GraphError 401 when it is not valid."""
        if not token:
            raise _GraphError(401, "InvalidAuthenticationToken", "Access token is empty.")
        if token.count(".") != 2:
            raise _GraphError(
                401,
                "InvalidAuthenticationToken",
                "CompactToken parsing failed with error code: 80049217",
            )
        try:
            claims = jwt.decode(
                token,
                self._key.public_key(),
                algorithms=["RS256"],
                options=_NO_CLAIM_CHECKS,
            )
        except jwt.PyJWTError as exc:
            raise _GraphError(
                401, "InvalidAuthenticationToken", "Access token validation failure."
            ) from exc
        if claims.get("aud") not in (GRAPH_RESOURCE, f"{GRAPH_RESOURCE}/", GRAPH_APP_ID, base_url):
            raise _GraphError(
                401,
                "InvalidAuthenticationToken",
                "Access token validation failure. Invalid audience.",
            )
        if claims.get("tid") != self._directory.tenant_id:
            raise _GraphError(401, "InvalidAuthenticationToken", "Access token validation failure.")
        if self._clock() >= float(claims.get("exp", 0)):
            raise _GraphError(
                401,
                "InvalidAuthenticationToken",
                "Lifetime validation failed, the token is expired.",
            )
        return _Principal(str(claims.get("appid")), frozenset(claims.get("roles", [])))

    def _route(self, request: Request, trace_id: str) -> Response:
        parts = [p for p in request.path.split("/") if p]
        method = "GET" if request.method == "HEAD" else request.method
        if len(parts) >= 2 and parts[0].lower() == "common" and method == "GET":
            return self._common(request, parts[1:])
        if not parts:
            return _plain_not_found()
        tenant = parts[0]
        rest = "/".join(parts[1:]).lower()
        known = {
            ("GET", "v2.0/.well-known/openid-configuration"),
            ("GET", ".well-known/openid-configuration"),
            ("GET", "discovery/v2.0/keys"),
            ("GET", "discovery/keys"),
            ("POST", "oauth2/v2.0/token"),
            ("POST", "oauth2/token"),
        }
        if (method, rest) not in known:
            return _plain_not_found()
        if tenant.lower() != self._directory.tenant_id:
            error = "invalid_tenant" if method == "GET" else "invalid_request"
            raise _TokenError(400, error, 90002, _tenant_not_found(tenant))
        if rest == "v2.0/.well-known/openid-configuration":
            return _json_ok(self._openid_configuration(request.base_url, v2=True))
        if rest == ".well-known/openid-configuration":
            return _json_ok(self._openid_configuration(request.base_url, v2=False))
        if rest.startswith("discovery/"):
            return _json_ok(self._jwks())
        return self._token(request, v2=rest == "oauth2/v2.0/token")

    def _common(self, request: Request, rest: list[str]) -> Response:
        path = "/".join(rest).lower()
        if path in ("discovery/keys", "discovery/v2.0/keys"):
            return _json_ok(self._jwks())
        if path == "discovery/instance":
            tenant = self._directory.tenant_id
            return _json_ok(
                {
                    "tenant_discovery_endpoint": (
                        f"{request.base_url}/{tenant}/v2.0/.well-known/openid-configuration"
                    ),
                    "api-version": "1.1",
                    "metadata": [],
                }
            )
        return _plain_not_found()

    def _openid_configuration(self, base: str, *, v2: bool) -> dict[str, Any]:
        tenant = self._directory.tenant_id
        host = urlsplit(base).netloc
        oauth = f"{base}/{tenant}/oauth2/v2.0" if v2 else f"{base}/{tenant}/oauth2"
        return {
            "token_endpoint": f"{oauth}/token",
            "token_endpoint_auth_methods_supported": [
                "client_secret_post",
                "private_key_jwt",
                "client_secret_basic",
            ],
            "jwks_uri": f"{base}/{tenant}/discovery/v2.0/keys"
            if v2
            else f"{base}/common/discovery/keys",
            "response_modes_supported": ["query", "fragment", "form_post"],
            "subject_types_supported": ["pairwise"],
            "id_token_signing_alg_values_supported": ["RS256"],
            "response_types_supported": ["code", "id_token", "code id_token", "id_token token"],
            "scopes_supported": ["openid", "profile", "email", "offline_access"],
            "issuer": f"{base}/{tenant}/v2.0" if v2 else f"https://sts.windows.net/{tenant}/",
            "request_uri_parameter_supported": False,
            "userinfo_endpoint": f"{base}/oidc/userinfo",
            "authorization_endpoint": f"{oauth}/authorize",
            "device_authorization_endpoint": f"{oauth}/devicecode",
            "http_logout_supported": True,
            "frontchannel_logout_supported": True,
            "end_session_endpoint": f"{oauth}/logout",
            "claims_supported": _names(
                "sub iss cloud_instance_name cloud_instance_host_name cloud_graph_host_name "
                "msgraph_host aud exp iat auth_time acr nonce preferred_username name tid ver "
                "at_hash c_hash email"
            ),
            "kerberos_endpoint": f"{base}/{tenant}/kerberos",
            "tenant_region_scope": "NA",
            "cloud_instance_name": "microsoftonline.com",
            "cloud_graph_host_name": "graph.windows.net",
            "msgraph_host": host,
            "rbac_url": "https://pas.windows.net",
        }

    def _jwks(self) -> dict[str, Any]:
        jwk: dict[str, Any] = dict(
            jwt.algorithms.RSAAlgorithm.to_jwk(self._key.public_key(), as_dict=True)
        )
        jwk.update({"kid": self._kid, "x5t": self._kid, "use": "sig"})
        jwk["issuer"] = f"https://login.microsoftonline.com/{self._directory.tenant_id}/v2.0"
        return {"keys": [jwk]}

    def _token(self, request: Request, *, v2: bool) -> Response:
        form = {k: v[-1] for k, v in parse_qs(request.body.decode(errors="replace")).items()}
        basic_id, basic_secret = _basic_credentials(request.header("authorization"))
        grant_type = form.get("grant_type")
        if not grant_type:
            raise _missing_parameter("grant_type")
        if grant_type != "client_credentials":
            raise _TokenError(
                400,
                "unsupported_grant_type",
                70003,
                f"The app requested an unsupported grant type '{grant_type}'.",
            )
        client_id = form.get("client_id") or basic_id
        if not client_id:
            raise _missing_parameter("client_id")
        client = self._directory.clients.get(client_id.lower())
        if client is None:
            raise _TokenError(400, "unauthorized_client", 700016, self._app_not_found(client_id))
        self._authenticate(client, form, basic_secret, request.base_url)
        resource = self._resource(form, request.base_url, v2=v2)
        return self._issue(client, resource, form, v2=v2)

    def _authenticate(
        self, client: _Client, form: Mapping[str, str], basic_secret: str | None, base: str
    ) -> None:
        assertion = form.get("client_assertion")
        secret = form.get("client_secret") or basic_secret
        if assertion:
            if form.get("client_assertion_type") != JWT_BEARER:
                raise _TokenError(
                    400,
                    "invalid_request",
                    50027,
                    f"Invalid JWT token. The client_assertion_type must be '{JWT_BEARER}'.",
                )
            _check_assertion(client, assertion, self._audiences(base), self._directory.tenant_id)
            return
        if not secret:
            raise _TokenError(
                401,
                "invalid_client",
                7000218,
                "The request body must contain the following parameter: 'client_assertion' or "
                "'client_secret'.",
            )
        if client.secret is None or not hmac.compare_digest(secret, client.secret):
            raise _TokenError(
                401,
                "invalid_client",
                7000215,
                "Invalid client secret provided. Ensure the secret being sent in the request is "
                "the client secret value, not the client secret ID, for a secret added to app "
                f"'{client.client_id}'.",
            )
        if client.secret_expires_at is not None and self._clock() >= client.secret_expires_at:
            raise _TokenError(
                401,
                "invalid_client",
                7000222,
                f"The provided client secret keys for app '{client.client_id}' are expired. "
                "Visit the Azure portal to create new keys for your app: "
                "https://aka.ms/NewClientSecret, or consider using certificate credentials for "
                "added security: https://aka.ms/certCreds.",
            )

    def _audiences(self, base: str) -> set[str]:
        tenant = self._directory.tenant_id
        hosts = {base, "https://login.microsoftonline.com"}
        return {
            f"{host}/{tenant}/{suffix}"
            for host in hosts
            for suffix in ("oauth2/v2.0/token", "oauth2/token", "v2.0")
        }

    def _resource(self, form: Mapping[str, str], base: str, *, v2: bool) -> str:
        accepted = {GRAPH_RESOURCE, GRAPH_APP_ID, base}
        if not v2:
            resource = form.get("resource")
            if not resource:
                raise _missing_parameter("resource")
            if resource.rstrip("/") not in accepted:
                raise self._resource_not_found(resource)
            return resource.rstrip("/")
        scope = form.get("scope")
        if not scope:
            raise _missing_parameter("scope")
        scopes = scope.split()
        for item in scopes:
            if not item.endswith("/.default"):
                raise _TokenError(
                    400,
                    "invalid_scope",
                    1002012,
                    f"The provided value for scope {item} is not valid. Client credential flows "
                    "must have a scope value with /.default suffixed to the resource identifier "
                    "(application ID URI).",
                )
        resource = scopes[0].removesuffix("/.default")
        if len(scopes) > 1 or resource not in accepted:
            raise self._resource_not_found(resource)
        return resource

    def _issue(
        self, client: _Client, resource: str, form: Mapping[str, str], *, v2: bool
    ) -> Response:
        now = int(self._clock())
        tenant = self._directory.tenant_id
        claims = {
            "aud": resource,
            "iss": f"https://sts.windows.net/{tenant}/",
            "iat": now,
            "nbf": now,
            "exp": now + self._lifetime_s,
            "app_displayname": client.display_name,
            "appid": client.client_id,
            "appidacr": "2" if form.get("client_assertion") else "1",
            "idp": f"https://sts.windows.net/{tenant}/",
            "idtyp": "app",
            "oid": str(uuid.uuid5(uuid.NAMESPACE_URL, f"sp:{client.client_id}")),
            "roles": sorted(client.permissions),
            "sub": str(uuid.uuid5(uuid.NAMESPACE_URL, f"sp:{client.client_id}")),
            "tid": tenant,
            "uti": _b64url(secrets.token_bytes(16)),
            "ver": "1.0",
        }
        token = jwt.encode(
            claims, self._key, algorithm="RS256", headers={"kid": self._kid, "x5t": self._kid}
        )
        if v2:
            body: dict[str, Any] = {
                "token_type": "Bearer",
                "expires_in": self._lifetime_s,
                "ext_expires_in": self._lifetime_s,
                "access_token": token,
            }
        else:  # the v1 endpoint answers numbers as strings and names the resource
            body = {
                "token_type": "Bearer",
                "expires_in": str(self._lifetime_s),
                "ext_expires_in": str(self._lifetime_s),
                "expires_on": str(now + self._lifetime_s),
                "not_before": str(now),
                "resource": resource,
                "access_token": token,
            }
        return _json_ok(body)

    def _error(self, request: Request, exc: _TokenError, trace_id: str) -> Response:
        correlation_id = request.header("client-request-id") or str(uuid.uuid4())
        stamp = datetime.fromtimestamp(self._clock(), UTC).strftime("%Y-%m-%d %H:%M:%SZ")
        description = (
            f"AADSTS{exc.code}: {exc.description}\r\nTrace ID: {trace_id}\r\n"
            f"Correlation ID: {correlation_id}\r\nTimestamp: {stamp}"
        )
        body = {
            "error": exc.error,
            "error_description": description,
            "error_codes": [exc.code],
            "timestamp": stamp,
            "trace_id": trace_id,
            "correlation_id": correlation_id,
            "error_uri": f"{request.base_url}/error?code={exc.code}",
        }
        return _json_ok(body, status=exc.status, headers={"x-ms-request-id": trace_id})

    def _app_not_found(self, client_id: str) -> str:
        return (
            f"Application with identifier '{client_id}' was not found in the directory "
            f"'{self._directory.tenant_name}'. This can happen if the application has not been "
            "installed by the administrator of the tenant or consented to by any user in the "
            "tenant. You may have sent your authentication request to the wrong tenant."
        )

    def _resource_not_found(self, resource: str) -> _TokenError:
        return _TokenError(
            400,
            "invalid_resource",
            500011,
            f"The resource principal named {resource} was not found in the tenant named "
            f"{self._directory.tenant_name}. This can happen if the application has not been "
            "installed by the administrator of the tenant or consented to by any user in the "
            "tenant. You might have sent your authentication request to the wrong tenant.",
        )


def _check_assertion(client: _Client, assertion: str, audiences: set[str], tenant_id: str) -> None:
    """Verify a private_key_jwt client assertion; raises the AADSTS error Azure AD would."""
    try:
        header = jwt.get_unverified_header(assertion)
    except jwt.PyJWTError as exc:
        raise _bad_assertion("Client assertion is not a valid JWT.") from exc
    thumbprint = _header_thumbprint(header)
    if thumbprint is None:
        raise _bad_assertion("No certificate thumbprint specified in token header.")
    cert = client.certificate
    if cert is None or thumbprint not in _thumbprints(cert):
        shown = thumbprint[1].hex().upper()
        raise _bad_assertion(
            "Client assertion contains an invalid signature. [Reason - The key was not found., "
            f"Thumbprint of key used by client: '{shown}', Please visit the Azure Portal, Graph "
            "Explorer or directly use MS Graph to see configured keys for app Id "
            f"'{client.client_id}'. Review the documentation at "
            "https://docs.microsoft.com/en-us/graph/deployments to determine the corresponding "
            "service endpoint and https://docs.microsoft.com/en-us/graph/api/application-get?"
            "view=graph-rest-1.0&tabs=http to build a query request URL, such as "
            f"'https://graph.microsoft.com/beta/applications/{client.client_id}']"
        )
    claims = _assertion_claims(assertion, cert, thumbprint[1].hex().upper())
    if claims.get("aud") not in audiences:
        raise _bad_assertion(
            f"Client assertion audience claim does not match Realm issuer (tenant {tenant_id}). "
            "Review the documentation at https://docs.microsoft.com/en-us/azure/"
            "active-directory/develop/active-directory-certificate-credentials ."
        )
    if claims.get("iss") != client.client_id or claims.get("sub") != client.client_id:
        raise _TokenError(
            401,
            "invalid_client",
            700021,
            "Client assertion application identifier doesn't match 'client_id' parameter. "
            "Review the documentation at https://docs.microsoft.com/en-us/azure/active-directory/"
            "develop/active-directory-certificate-credentials .",
        )
    _check_assertion_lifetime(claims)


def _header_thumbprint(header: Mapping[str, Any]) -> tuple[str, bytes] | None:
    for name, algorithm in (("x5t#S256", "sha256"), ("x5t", "sha1")):
        value = header.get(name)
        if isinstance(value, str):
            try:
                return algorithm, base64.urlsafe_b64decode(value + "=" * (-len(value) % 4))
            except ValueError:
                return None
    return None


def _thumbprints(cert: x509.Certificate) -> set[tuple[str, bytes]]:
    return {
        ("sha1", cert.fingerprint(hashes.SHA1())),  # the x5t header is a SHA-1 thumbprint
        ("sha256", cert.fingerprint(hashes.SHA256())),
    }


def _assertion_claims(assertion: str, cert: x509.Certificate, shown: str) -> dict[str, Any]:
    try:
        claims: dict[str, Any] = jwt.decode(
            assertion,
            cert.public_key(),  # type: ignore[arg-type]
            algorithms=["RS256", "PS256"],
            options=_NO_CLAIM_CHECKS,
        )
    except jwt.PyJWTError as exc:
        start = cert.not_valid_before_utc.strftime("%m/%d/%Y %H:%M:%S")
        end = cert.not_valid_after_utc.strftime("%m/%d/%Y %H:%M:%S")
        raise _bad_assertion(
            "Client assertion contains an invalid signature. [Reason - The provided signature "
            "value did not match the expected signature value., Thumbprint of key used by "
            f"client: '{shown}', Found key 'Start={start}, End={end}']"
        ) from exc
    return claims


def _check_assertion_lifetime(claims: Mapping[str, Any]) -> None:
    # The assertion comes from a client on the real clock, whatever clock the sandbox runs on.
    now = time.time()
    skew = 300
    expires = float(claims.get("exp", 0))
    not_before = float(claims.get("nbf", claims.get("iat", 0)))
    if now > expires + skew or now < not_before - skew:
        raise _TokenError(
            401,
            "invalid_client",
            700024,
            f"Client assertion is not within its valid time range. Current time: {_iso(now)}, "
            f"assertion valid from {_iso(not_before)}, expiry time of assertion {_iso(expires)}. "
            "Review the documentation at https://docs.microsoft.com/en-us/azure/active-directory/"
            "develop/active-directory-certificate-credentials .",
        )


def _bad_assertion(reason: str) -> _TokenError:
    return _TokenError(401, "invalid_client", 700027, reason)


def _missing_parameter(name: str) -> _TokenError:
    return _TokenError(
        400,
        "invalid_request",
        900144,
        f"The request body must contain the following parameter: '{name}'.",
    )


def _tenant_not_found(tenant: str) -> str:
    return (
        f"Tenant '{tenant}' not found. Check to make sure you have the correct tenant ID and are "
        "signing into the correct cloud. Check with your subscription administrator, this may "
        "happen if there are no active subscriptions for the tenant."
    )


def _basic_credentials(header: str) -> tuple[str | None, str | None]:
    if not header.lower().startswith("basic "):
        return None, None
    try:
        decoded = base64.b64decode(header[6:].strip()).decode()
    except ValueError:
        return None, None
    client_id, _, secret = decoded.partition(":")
    # RFC 6749 2.3.1: both halves are form-urlencoded before they are joined.
    return unquote(client_id.replace("+", " ")), unquote(secret.replace("+", " "))


# ---------------------------------------------------------------------------------------------
# Microsoft Graph v1.0
# ---------------------------------------------------------------------------------------------


class _GraphError(Exception):
    """A Graph error answer."""

    def __init__(
        self, status: int, code: str, message: str, headers: Mapping[str, str] | None = None
    ) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.headers = dict(headers or {})


@dataclass(frozen=True)
class _Call:
    """One Graph operation: a top-level request or one item of a $batch."""

    method: str
    path: str  # below /v1.0/, no leading slash, percent-decoded
    query: Mapping[str, str]
    headers: Mapping[str, str]  # lower-cased names
    body: Any  # parsed JSON, or None
    base_url: str
    principal: _Principal
    request_id: str = field(default_factory=lambda: str(uuid.uuid4()))

    @property
    def segments(self) -> list[str]:
        return [s for s in self.path.split("/") if s]

    @property
    def client_request_id(self) -> str:
        return self.headers.get("client-request-id") or self.request_id


class _Sealer:
    """Opaque, tamper-evident paging and delta tokens (HMAC-signed JSON)."""

    def __init__(self) -> None:
        self._key = secrets.token_bytes(32)

    def seal(self, payload: Mapping[str, Any]) -> str:
        data = json.dumps(payload, separators=(",", ":")).encode()
        mac = hmac.new(self._key, data, hashlib.sha256).digest()[:12]
        return _b64url(data) + "." + _b64url(mac)

    def open(self, token: str) -> dict[str, Any] | None:
        data_text, _, mac_text = token.partition(".")
        try:
            data = _b64url_decode(data_text)
            mac = _b64url_decode(mac_text)
        except ValueError:
            return None
        expected = hmac.new(self._key, data, hashlib.sha256).digest()[:12]
        if not hmac.compare_digest(mac, expected):
            return None
        payload = json.loads(data)
        return payload if isinstance(payload, dict) else None


class _GraphService:
    """Graph v1.0 over a `_Directory`: auth, throttling, routing, paging, delta and $batch."""

    def __init__(
        self,
        directory: _Directory,
        tokens: _TokenService,
        *,
        throttle_every: int | None,
        delta_token_ttl_s: int,
        clock: Callable[[], float],
    ) -> None:
        self.directory = directory
        self._tokens = tokens
        self._throttle_every = throttle_every
        self._delta_ttl_s = delta_token_ttl_s
        self._clock = clock
        self._sealer = _Sealer()
        self._generation = 0
        self._count = 0
        self._count_lock = threading.Lock()

    def handle(self, request: Request) -> Response:
        """Answer one HTTP request under /v1.0."""
        request_id = str(uuid.uuid4())
        client_request_id = request.header("client-request-id") or request_id
        try:
            call = self._call(request, request_id)
            batch = call.path.lower() == "$batch"
            reply = self._batch(call) if batch else self._operation(call)
        except _GraphError as exc:
            reply = self._error_reply(exc, request_id, client_request_id)
        except Exception as exc:  # a sandbox bug: answer 500 rather than drop the connection
            error = _GraphError(500, "generalException", f"snsync sandbox: {exc!r}")
            reply = self._error_reply(error, request_id, client_request_id)
        return _encode(reply, request_id, client_request_id)

    def fault(self, status: int, retry_after: int) -> Response:
        """Graph's answer to an injected fault."""
        code, message = {
            429: ("TooManyRequests", "Too many requests."),
            503: ("serviceNotAvailable", "Service unavailable. Please try again later."),
        }.get(status, ("generalException", "An unexpected error occurred."))
        request_id = str(uuid.uuid4())
        error = _GraphError(status, code, message, {"Retry-After": str(retry_after)})
        return _encode(self._error_reply(error, request_id, request_id), request_id, request_id)

    def expire_delta_tokens(self) -> None:
        with self.directory.lock:
            self._generation += 1

    def request_count(self) -> int:
        with self._count_lock:
            return self._count

    # -- request plumbing ---------------------------------------------------------------------

    def _call(self, request: Request, request_id: str) -> _Call:
        version, _, rest = request.path.lstrip("/").partition("/")
        if version.lower() != "v1.0":
            raise _GraphError(400, "BadRequest", "This sandbox serves Microsoft Graph v1.0 only.")
        principal = self._tokens.verify(_bearer(request.header("authorization")), request.base_url)
        return _Call(
            method="GET" if request.method == "HEAD" else request.method,
            path=rest,
            query=request.query,
            headers=request.headers,
            body=_parse_body(request.body),
            base_url=request.base_url,
            principal=principal,
            request_id=request_id,
        )

    def _operation(self, call: _Call) -> Response:
        """Count, maybe throttle, then route one operation under the directory lock."""
        with self._count_lock:
            self._count += 1
            throttled = bool(self._throttle_every and self._count % self._throttle_every == 0)
        if throttled:
            raise _GraphError(
                429,
                "TooManyRequests",
                "Too many requests.",
                {"Retry-After": "1"},
            )
        with self.directory.lock:
            return _Routes(self, call).dispatch()

    def _error_reply(self, exc: _GraphError, request_id: str, client_request_id: str) -> Response:
        body = {
            "error": {
                "code": exc.code,
                "message": exc.message,
                "innerError": {
                    "date": datetime.fromtimestamp(self._clock(), UTC).strftime(
                        "%Y-%m-%dT%H:%M:%S"
                    ),
                    "request-id": request_id,
                    "client-request-id": client_request_id,
                },
            }
        }
        headers = dict(exc.headers)
        if exc.status == 401:
            headers["WWW-Authenticate"] = (
                'Bearer realm="", authorization_uri="https://login.microsoftonline.com/common/'
                f'oauth2/authorize", client_id="{GRAPH_APP_ID}"'
            )
        return Response(exc.status, body, headers)

    # -- $batch -------------------------------------------------------------------------------

    def _batch(self, call: _Call) -> Response:
        if call.method != "POST":
            raise _GraphError(405, "Request_BadRequest", _METHOD_NOT_ALLOWED)
        items = call.body.get("requests") if isinstance(call.body, dict) else None
        if not isinstance(items, list) or not items:
            raise _GraphError(400, "BadRequest", "Invalid batch payload format.")
        if len(items) > _MAX_BATCH:
            raise _GraphError(
                400,
                "BadRequest",
                f"Invalid batch payload format. The number of requests in a batch cannot exceed "
                f"{_MAX_BATCH}.",
            )
        ids = [item.get("id") if isinstance(item, dict) else None for item in items]
        if any(not isinstance(i, str) or not i for i in ids) or len(set(ids)) != len(ids):
            raise _GraphError(400, "BadRequest", "Batch request ids must be unique strings.")
        statuses: dict[str, int] = {}
        responses = [self._batch_item(call, item, statuses) for item in items]
        return Response(200, {"responses": responses})

    def _batch_item(
        self, envelope: _Call, item: dict[str, Any], statuses: dict[str, int]
    ) -> dict[str, Any]:
        request_id = str(uuid.uuid4())
        try:
            depends = item.get("dependsOn") or []
            if any(statuses.get(d, 424) >= 400 for d in depends):
                raise _GraphError(424, "BadRequest", "Failed dependency")
            reply = self._operation(self._item_call(envelope, item, request_id))
        except _GraphError as exc:
            reply = self._error_reply(exc, request_id, request_id)
        statuses[item["id"]] = reply.status
        headers = {k: v for k, v in reply.headers.items() if k.lower() != "www-authenticate"}
        if reply.body is not None:
            headers["Content-Type"] = _GRAPH_CONTENT_TYPE
        answer: dict[str, Any] = {"id": item["id"], "status": reply.status, "headers": headers}
        if reply.body is not None:
            answer["body"] = reply.body
        return answer

    def _item_call(self, envelope: _Call, item: Mapping[str, Any], request_id: str) -> _Call:
        method, url = item.get("method"), item.get("url")
        if not isinstance(method, str) or not isinstance(url, str) or not url:
            raise _GraphError(400, "BadRequest", "A batch request needs a method and a url.")
        if "://" in url:
            raise _GraphError(
                400, "BadRequest", "Batch request urls must be relative, e.g. '/users'."
            )
        parts = urlsplit(url)
        raw_headers = item.get("headers") or {}
        if not isinstance(raw_headers, dict):
            raise _GraphError(400, "BadRequest", "Batch request headers must be an object.")
        headers = {str(k).lower(): str(v) for k, v in raw_headers.items()}
        body = item.get("body")
        if body is not None and "content-type" not in headers:
            raise _GraphError(
                400, "BadRequest", "Content-Type header must be specified when a body is present."
            )
        if unquote(parts.path).lstrip("/").lower() == "$batch":
            raise _GraphError(400, "BadRequest", "A batch request cannot contain a batch.")
        query = {k: v[-1] for k, v in parse_qs(parts.query, keep_blank_values=True).items()}
        return _Call(
            method=method.upper(),
            path=unquote(parts.path).lstrip("/"),
            query=query,
            headers=headers,
            body=body,
            base_url=envelope.base_url,
            principal=envelope.principal,
            request_id=request_id,
        )

    # -- shared helpers for routes ------------------------------------------------------------

    def seal(self, payload: Mapping[str, Any]) -> str:
        return self._sealer.seal(payload)

    def open_token(self, token: str, name: str) -> dict[str, Any]:
        payload = self._sealer.open(token)
        if payload is None:
            raise _GraphError(400, "Request_BadRequest", f"Invalid {name} value '{token[:40]}'.")
        return payload

    @property
    def generation(self) -> int:
        return self._generation

    @property
    def delta_ttl_s(self) -> int:
        return self._delta_ttl_s

    def now(self) -> float:
        return self._clock()


_METHOD_NOT_ALLOWED = "Specified HTTP method is not allowed for the request uri."
_GRAPH_CONTENT_TYPE = (
    "application/json;odata.metadata=minimal;odata.streaming=true;IEEE754Compatible=false;"
    "charset=utf-8"
)


class _Routes:
    """Routes one Graph call to its handler; runs under the directory lock."""

    def __init__(self, service: _GraphService, call: _Call) -> None:
        self.service = service
        self.call = call
        self.directory = service.directory

    def dispatch(self) -> Response:
        segments = self.call.segments
        if not segments:
            raise _GraphError(400, "BadRequest", "Resource not found for the segment ''.")
        head, rest = segments[0], segments[1:]
        alternate = re.fullmatch(r"servicePrincipals\(appId='([^']*)'\)", head, re.IGNORECASE)
        if alternate:
            return self._service_principals([self._sp_by_app_id(alternate.group(1)), *rest])
        handlers: dict[str, Callable[[list[str]], Response]] = {
            "users": self._users,
            "groups": self._groups,
            "serviceprincipals": self._service_principals,
            "directoryobjects": self._directory_objects,
        }
        handler = handlers.get(head.lower())
        if handler is None:
            raise _segment_not_found(head)
        return handler(rest)

    # -- helpers -----------------------------------------------------------------------------

    def require(self, permissions: frozenset[str]) -> None:
        if not self.call.principal.roles & permissions:
            raise _GraphError(
                403,
                "Authorization_RequestDenied",
                "Insufficient privileges to complete the operation.",
            )

    def method(self, *allowed: str) -> str:
        if self.call.method not in allowed:
            raise _GraphError(405, "Request_BadRequest", _METHOD_NOT_ALLOWED)
        return self.call.method

    def context(self, fragment: str) -> str:
        return f"{self.call.base_url}/v1.0/$metadata#{fragment}"

    def body_object(self) -> dict[str, Any]:
        if self.call.body is None:
            raise _GraphError(400, "BadRequest", "Empty Payload. JSON content expected.")
        if not isinstance(self.call.body, dict):
            raise _GraphError(400, "BadRequest", "Invalid request body: expected a JSON object.")
        return self.call.body

    def no_query_options(self, *allowed: str) -> None:
        for name in self.call.query:
            if name.startswith("$") and name.lower() not in allowed:
                raise _GraphError(
                    400, "Request_BadRequest", f"The query parameter '{name}' is not supported."
                )

    # -- users -------------------------------------------------------------------------------

    def _users(self, rest: list[str]) -> Response:
        if not rest:
            if self.method("GET", "POST") == "POST":
                return self._create_user()
            return self._list_users()
        key, tail = rest[0], [s.lower() for s in rest[1:]]
        if key.lower() in ("delta", "delta()") and not tail:
            self.method("GET")
            self.require(_READ_USERS)
            return _Delta(self, "users").answer()
        if not tail:
            return self._user_item(key)
        user = self._user_or_404(key)
        if tail == ["manager"]:
            self.method("GET")
            self.require(_READ_USERS)
            return self._manager(user)
        if tail == ["manager", "$ref"]:
            return self._manager_ref(user)
        if tail[0] in ("memberof", "transitivememberof") and len(tail) <= 2:
            self.method("GET")
            self.require(_READ_DIRECTORY_OBJECTS)
            ids = (
                self.directory.member_of(user["id"])
                if tail[0] == "memberof"
                else self.directory.transitive_member_of(user["id"])
            )
            return self._directory_object_list(ids, tail[1:])
        if tail == ["approleassignments"]:
            self.method("GET")
            self.require(_READ_ASSIGNMENTS)
            rows = [
                a for a in self.directory.visible_assignments() if a["principalId"] == user["id"]
            ]
            return self._assignment_list(rows, f"users('{user['id']}')/appRoleAssignments")
        raise _segment_not_found(rest[1])

    def _list_users(self) -> Response:
        self.require(_READ_USERS)
        self.no_query_options(*_LIST_OPTIONS, "$expand")
        select = _select(self.call.query, _USER_CATALOG)
        expand = _expand_manager(self.call.query)
        predicate = _Filter.parse(self.call, _USER_CATALOG, "User")
        rows = [
            (uid, user)
            for uid, user in self.directory.users.items()
            if uid not in self.directory.soft_deleted and predicate(user)
        ]
        return _Pager(self, rows, f"users{_select_suffix(select)}").answer(
            lambda user: self.render_user(user, select, expand)
        )

    def _user_item(self, key: str) -> Response:
        method = self.method("GET", "PATCH", "DELETE")
        user = self._user_or_404(key)
        if method == "GET":
            self.require(_READ_USERS)
            self.no_query_options("$select", "$expand")
            select = _select(self.call.query, _USER_CATALOG)
            body = {"@odata.context": self.context(f"users{_select_suffix(select)}/$entity")}
            body.update(self.render_user(user, select, _expand_manager(self.call.query)))
            return Response(200, body)
        if method == "PATCH":
            self.require(_WRITE_USERS)
            self.directory.update_user(user["id"], self._user_changes(self.body_object(), user))
            return Response(204)
        self.require(_DELETE_USERS)
        self.directory.soft_delete_user(user["id"])
        return Response(204)

    def _create_user(self) -> Response:
        self.require(_WRITE_USERS)
        body = self.body_object()
        for name in _USER_REQUIRED_ON_CREATE:
            if body.get(name) in (None, ""):
                raise _GraphError(
                    400,
                    "Request_BadRequest",
                    f"Invalid value specified for property '{name}' of resource 'User'.",
                )
        user = {"id": str(uuid.uuid4()), **self._user_changes(body, None)}
        user["createdDateTime"] = _iso(self.service.now())
        user.setdefault("userType", "Member")
        user.setdefault("businessPhones", [])
        self.directory.add_user(user, None)
        body = {"@odata.context": self.context("users/$entity")}
        body.update(self.render_user(user, None, None))
        return Response(201, body, {"Location": f"{self.call.base_url}/v1.0/users/{user['id']}"})

    def _user_changes(
        self, body: Mapping[str, Any], user: Mapping[str, Any] | None
    ) -> dict[str, Any]:
        changes: dict[str, Any] = {}
        for name, value in body.items():
            canonical = _USER_CATALOG.get(name.lower())
            if canonical is None or name.startswith("@"):
                raise _GraphError(
                    400,
                    "Request_BadRequest",
                    f"Property '{name}' does not exist as a declared property or extension "
                    "property.",
                )
            if canonical in _USER_READ_ONLY:
                raise _GraphError(
                    400,
                    "Request_BadRequest",
                    f"Property '{canonical}' is read-only and cannot be set.",
                )
            changes[canonical] = value
        upn = changes.get("userPrincipalName")
        if upn is not None:
            self._check_upn(upn, None if user is None else user["id"])
        if "accountEnabled" in changes and not isinstance(changes["accountEnabled"], bool):
            raise _GraphError(
                400,
                "Request_BadRequest",
                "Invalid value specified for property 'accountEnabled' of resource 'User'.",
            )
        return changes

    def _check_upn(self, upn: Any, own_id: str | None) -> None:
        if not isinstance(upn, str) or "@" not in upn:
            raise _GraphError(
                400,
                "Request_BadRequest",
                "Invalid value specified for property 'userPrincipalName' of resource 'User'.",
            )
        if upn.rsplit("@", 1)[1].lower() not in self.directory.domains:
            raise _GraphError(
                400,
                "Request_BadRequest",
                "The domain portion of the userPrincipalName property is invalid. You must use "
                "one of the verified domain names in your organization.",
            )
        owner = self.directory.upn_owner(upn)
        if owner is not None and owner != own_id:
            raise _GraphError(
                400,
                "Request_BadRequest",
                "Another object with the same value for property userPrincipalName already exists.",
            )

    def _user_or_404(self, key: str) -> dict[str, Any]:
        user = self.directory.user(key)
        if user is None:
            raise _not_found(key)
        return user

    def _manager(self, user: Mapping[str, Any]) -> Response:
        self.no_query_options("$select")
        manager = self._visible_manager(user["id"])
        if manager is None:
            raise _not_found("manager")
        select = _select(self.call.query, _USER_CATALOG)
        body = {
            "@odata.context": self.context("directoryObjects/$entity"),
            "@odata.type": _USER_TYPE,
        }
        body.update(self.render_user(manager, select, None))
        return Response(200, body)

    def _manager_ref(self, user: Mapping[str, Any]) -> Response:
        method = self.method("GET", "PUT", "DELETE")
        if method == "GET":
            self.require(_READ_USERS)
            manager = self._visible_manager(user["id"])
            if manager is None:
                raise _not_found("manager")
            return Response(
                200,
                {
                    "@odata.context": self.context("directoryObjects/$entity"),
                    "@odata.id": f"{self.call.base_url}/v1.0/directoryObjects/{manager['id']}"
                    "/Microsoft.DirectoryServices.User",
                },
            )
        self.require(_WRITE_USERS)
        if method == "DELETE":
            if self._visible_manager(user["id"]) is None:
                raise _not_found("manager")
            self.directory.set_manager(user["id"], None)
            return Response(204)
        manager_id = _reference_id(self.body_object())
        if self.directory.kind_of(manager_id) != "user":
            raise _not_found(manager_id)
        if manager_id == user["id"]:
            raise _GraphError(400, "Request_BadRequest", "A user cannot be their own manager.")
        self.directory.set_manager(user["id"], manager_id)
        return Response(204)

    def _visible_manager(self, user_id: str) -> dict[str, Any] | None:
        manager_id = self.directory.managers.get(user_id)
        return self.directory.user(manager_id) if manager_id else None

    def render_user(
        self,
        user: Mapping[str, Any],
        select: list[str] | None,
        expand: list[str] | None,
        *,
        limited: bool = False,
    ) -> dict[str, Any]:
        """A user as Graph returns it: the selected (or default) properties, manager expanded."""
        out = _render(user, USER_DEFAULT_SELECT if select is None else select, limited=limited)
        if expand is not None:
            manager = self._visible_manager(user["id"])
            if manager is not None:
                out["manager"] = {
                    "@odata.type": _USER_TYPE,
                    **_render(manager, expand or USER_DEFAULT_SELECT),
                }
        return out

    # -- groups ------------------------------------------------------------------------------

    def _groups(self, rest: list[str]) -> Response:
        if not rest:
            if self.method("GET", "POST") == "POST":
                return self._create_group()
            return self._list_groups()
        key, tail = rest[0], rest[1:]
        if key.lower() in ("delta", "delta()") and not tail:
            self.method("GET")
            self.require(_READ_GROUPS)
            return _Delta(self, "groups").answer()
        group = self.directory.group(key)
        if group is None:
            raise _not_found(key)
        if not tail:
            return self._group_item(group)
        relation = tail[0].lower()
        if relation == "members" and tail[1:] == ["$ref"]:
            self.method("POST")
            return self._add_member(group)
        if relation == "members" and len(tail) == 3 and tail[2] == "$ref":
            self.method("DELETE")
            return self._remove_member(group, tail[1].lower())
        if relation in ("members", "transitivemembers") and len(tail) <= 2:
            self.method("GET")
            self.require(_READ_GROUPS)
            ids = (
                self.directory.visible_members(group["id"])
                if relation == "members"
                else self.directory.transitive_members(group["id"])
            )
            return self._directory_object_list(ids, tail[1:])
        raise _segment_not_found(tail[0])

    def _list_groups(self) -> Response:
        self.require(_READ_GROUPS)
        self.no_query_options(*_LIST_OPTIONS)
        select = _select(self.call.query, _GROUP_CATALOG)
        predicate = _Filter.parse(self.call, _GROUP_CATALOG, "Group")
        rows = [(gid, g) for gid, g in self.directory.groups.items() if predicate(g)]
        return _Pager(self, rows, f"groups{_select_suffix(select)}").answer(
            lambda group: _render(group, select or GROUP_DEFAULT_SELECT)
        )

    def _group_item(self, group: Mapping[str, Any]) -> Response:
        method = self.method("GET", "PATCH", "DELETE")
        if method == "GET":
            self.require(_READ_GROUPS)
            self.no_query_options("$select")
            select = _select(self.call.query, _GROUP_CATALOG)
            body = {"@odata.context": self.context(f"groups{_select_suffix(select)}/$entity")}
            body.update(_render(group, select or GROUP_DEFAULT_SELECT))
            return Response(200, body)
        self.require(_WRITE_GROUPS)
        if method == "PATCH":
            self.directory.update_group(group["id"], self._group_changes(self.body_object()))
        else:
            self.directory.delete_group(group["id"])
        return Response(204)

    def _create_group(self) -> Response:
        self.require(_WRITE_GROUPS)
        body = self.body_object()
        for name in ("displayName", "mailEnabled", "mailNickname", "securityEnabled"):
            if body.get(name) in (None, ""):
                raise _GraphError(
                    400,
                    "Request_BadRequest",
                    f"Invalid value specified for property '{name}' of resource 'Group'.",
                )
        changes = self._group_changes(body)
        group = _group_defaults({"id": str(uuid.uuid4()), **changes}, changes["displayName"])
        group["createdDateTime"] = _iso(self.service.now())
        self.directory.add_group(group, [])
        answer = {"@odata.context": self.context("groups/$entity")}
        answer.update(_render(group, GROUP_DEFAULT_SELECT))
        return Response(201, answer)

    def _group_changes(self, body: Mapping[str, Any]) -> dict[str, Any]:
        changes: dict[str, Any] = {}
        for name, value in body.items():
            canonical = _GROUP_CATALOG.get(name.lower())
            if canonical is None:
                raise _GraphError(
                    400,
                    "Request_BadRequest",
                    f"Property '{name}' does not exist as a declared property or extension "
                    "property.",
                )
            if canonical in _GROUP_READ_ONLY:
                raise _GraphError(
                    400,
                    "Request_BadRequest",
                    f"Property '{canonical}' is read-only and cannot be set.",
                )
            changes[canonical] = value
        return changes

    def _add_member(self, group: Mapping[str, Any]) -> Response:
        self.require(_WRITE_MEMBERS)
        member_id = _reference_id(self.body_object())
        if self.directory.kind_of(member_id) is None:
            raise _not_found(member_id)
        if member_id == group["id"] or member_id in self.directory.members[group["id"]]:
            raise _GraphError(
                400,
                "Request_BadRequest",
                "One or more added object references already exist for the following modified "
                "properties: 'members'.",
            )
        self.directory.add_member(group["id"], member_id)
        return Response(204)

    def _remove_member(self, group: Mapping[str, Any], member_id: str) -> Response:
        self.require(_WRITE_MEMBERS)
        if member_id not in self.directory.members[group["id"]] or not self.directory.kind_of(
            member_id
        ):
            raise _not_found(member_id)
        self.directory.remove_member(group["id"], member_id)
        return Response(204)

    # -- directory objects (members, memberOf, directoryObjects/{id}) -------------------------

    def _directory_objects(self, rest: list[str]) -> Response:
        self.method("GET")
        self.require(_READ_DIRECTORY_OBJECTS)
        if len(rest) != 1:
            raise _segment_not_found(rest[1] if rest else "directoryObjects")
        object_id = rest[0].lower()
        if self.directory.kind_of(object_id) is None:
            raise _not_found(rest[0])
        select = _select(self.call.query, _DIRECTORY_OBJECT_CATALOG)
        body = {"@odata.context": self.context("directoryObjects/$entity")}
        body.update(self.render_object(object_id, select))
        return Response(200, body)

    def _directory_object_list(self, ids: list[str], cast: list[str]) -> Response:
        self.no_query_options(*_LIST_OPTIONS)
        kinds = {"microsoft.graph.user": "user", "microsoft.graph.group": "group"}
        wanted = None
        if cast:
            wanted = kinds.get(cast[0].lower())
            if wanted is None:
                raise _segment_not_found(cast[0])
        catalog = _USER_CATALOG if wanted == "user" else _GROUP_CATALOG if wanted else None
        select = _select(self.call.query, catalog or _DIRECTORY_OBJECT_CATALOG)
        predicate = _Filter.parse(
            self.call, catalog or _DIRECTORY_OBJECT_CATALOG, "DirectoryObject"
        )
        rows = []
        for object_id in ids:
            kind = self.directory.kind_of(object_id)
            if wanted and kind != wanted:
                continue
            source = self.directory.users if kind == "user" else self.directory.groups
            if predicate(source[object_id]):
                rows.append((object_id, object_id))
        context = {"user": "users", "group": "groups"}.get(wanted or "", "directoryObjects")
        return _Pager(self, rows, f"{context}{_select_suffix(select)}").answer(
            lambda object_id: self.render_object(object_id, select)
        )

    def render_object(self, object_id: str, select: list[str] | None) -> dict[str, Any]:
        """A user or group in a directoryObject collection, tagged with @odata.type."""
        if self.directory.kind_of(object_id) == "user":
            user = self.directory.users[object_id]
            names = [n for n in select if n in _USER_NAMES] if select else None
            # An app that may read memberships but not users sees user members' ids only.
            limited = not self.call.principal.roles & _READ_USERS
            return {
                "@odata.type": _USER_TYPE,
                **self.render_user(user, names, None, limited=limited),
            }
        group = self.directory.groups[object_id]
        group_names = [n for n in select if n in _GROUP_NAMES] if select else GROUP_DEFAULT_SELECT
        return {"@odata.type": _GROUP_TYPE, **_render(group, group_names)}

    # -- service principals and app role assignments ------------------------------------------

    def _service_principals(self, rest: list[str]) -> Response:
        self.require(_READ_APPS if not rest[1:] else _READ_ASSIGNMENTS)
        sp = self.directory.service_principal
        if not rest:
            self.method("GET")
            self.no_query_options(*_LIST_OPTIONS)
            select = _select(self.call.query, _SP_CATALOG)
            predicate = _Filter.parse(self.call, _SP_CATALOG, "ServicePrincipal")
            rows = [(sp["id"], sp)] if predicate(sp) else []
            return _Pager(self, rows, f"servicePrincipals{_select_suffix(select)}").answer(
                lambda item: _render(item, select or list(item))
            )
        if rest[0].lower() != sp["id"]:
            raise _not_found(rest[0])
        if len(rest) == 1:
            self.method("GET")
            select = _select(self.call.query, _SP_CATALOG)
            body = {
                "@odata.context": self.context(f"servicePrincipals{_select_suffix(select)}/$entity")
            }
            body.update(_render(sp, select or list(sp)))
            return Response(200, body)
        if rest[1].lower() != "approleassignedto" or len(rest) > 3:
            raise _segment_not_found(rest[1])
        if len(rest) == 3:
            return self._assignment_item(rest[2])
        if self.method("GET", "POST") == "POST":
            return self._create_assignment()
        assignments = self.directory.visible_assignments()
        return self._assignment_list(
            assignments, f"servicePrincipals('{sp['id']}')/appRoleAssignedTo"
        )

    def _sp_by_app_id(self, app_id: str) -> str:
        sp = self.directory.service_principal
        if app_id.lower() != sp["appId"]:
            raise _not_found(f"appId='{app_id}'")
        return str(sp["id"])

    def _assignment_list(self, rows: list[dict[str, Any]], context: str) -> Response:
        self.no_query_options(*_LIST_OPTIONS)
        select = _select(self.call.query, _ASSIGNMENT_CATALOG)
        predicate = _Filter.parse(self.call, _ASSIGNMENT_CATALOG, "AppRoleAssignment")
        views = [self.render_assignment(a) for a in rows]
        paged = [(view["id"], view) for view in views if predicate(view)]
        return _Pager(self, paged, context).answer(
            lambda view: _render(view, select or ASSIGNMENT_PROPERTIES)
        )

    def _assignment_item(self, assignment_id: str) -> Response:
        method = self.method("GET", "DELETE")
        assignment = self.directory.assignments.get(assignment_id)
        if assignment is None or not self.directory.kind_of(assignment["principalId"]):
            raise _not_found(assignment_id)
        if method == "GET":
            body = {"@odata.context": self.context("appRoleAssignments/$entity")}
            body.update(self.render_assignment(assignment))
            return Response(200, body)
        self.require(_WRITE_ASSIGNMENTS)
        del self.directory.assignments[assignment_id]
        return Response(204)

    def _create_assignment(self) -> Response:
        self.require(_WRITE_ASSIGNMENTS)
        body = self.body_object()
        sp = self.directory.service_principal
        principal = str(body.get("principalId") or "").lower()
        role = str(body.get("appRoleId") or "").lower()
        if str(body.get("resourceId") or "").lower() != sp["id"]:
            raise _GraphError(
                400,
                "Request_BadRequest",
                "Invalid value specified for property 'resourceId' of resource "
                "'AppRoleAssignment'.",
            )
        if self.directory.kind_of(principal) is None:
            raise _not_found(str(body.get("principalId")))
        if role != DEFAULT_ACCESS_ROLE_ID and role not in {r["id"] for r in sp["appRoles"]}:
            raise _GraphError(
                400,
                "Request_BadRequest",
                f"Permission being assigned was not found on application '{sp['appId']}'.",
            )
        if any(
            a["principalId"] == principal and a["appRoleId"] == role
            for a in self.directory.assignments.values()
        ):
            raise _GraphError(
                400, "Request_BadRequest", "Permission being assigned already exists on the object."
            )
        assignment = {
            "id": _assignment_id(
                principal, role, salt=str(self.directory.seq) + secrets.token_hex(4)
            ),
            "principalId": principal,
            "appRoleId": role,
            "createdDateTime": _iso(self.service.now()),
        }
        self.directory.assignments[assignment["id"]] = assignment
        answer = {"@odata.context": self.context("appRoleAssignments/$entity")}
        answer.update(self.render_assignment(assignment))
        return Response(201, answer)

    def render_assignment(self, assignment: Mapping[str, Any]) -> dict[str, Any]:
        """An appRoleAssignment with its live display names."""
        principal = assignment["principalId"]
        kind = self.directory.kind_of(principal)
        source = self.directory.users if kind == "user" else self.directory.groups
        sp = self.directory.service_principal
        return {
            "id": assignment["id"],
            "deletedDateTime": None,
            "appRoleId": assignment["appRoleId"],
            "createdDateTime": assignment["createdDateTime"],
            "principalDisplayName": source[principal].get("displayName"),
            "principalId": principal,
            "principalType": "User" if kind == "user" else "Group",
            "resourceDisplayName": sp["displayName"],
            "resourceId": sp["id"],
        }


_LIST_OPTIONS = ("$select", "$top", "$filter", "$skiptoken", "$count")


class _Pager:
    """Key-ordered paging with an opaque $skiptoken: no drift when rows change between pages."""

    def __init__(self, routes: _Routes, rows: list[tuple[str, Any]], context: str) -> None:
        self.routes = routes
        self.rows = sorted(rows, key=lambda row: row[0])
        self.context = context

    def answer(self, render: Callable[[Any], dict[str, Any]]) -> Response:
        call = self.routes.call
        top = _top(call.query)
        after = ""
        if "$skiptoken" in call.query:
            after = str(
                self.routes.service.open_token(call.query["$skiptoken"], "$skiptoken").get("a", "")
            )
        remaining = [row for row in self.rows if row[0] > after]
        page = remaining[:top]
        body: dict[str, Any] = {"@odata.context": self.routes.context(self.context)}
        if _counting(call):
            body["@odata.count"] = len(self.rows)
        if len(remaining) > top:
            token = self.routes.service.seal({"a": page[-1][0]})
            body["@odata.nextLink"] = _link(call, {"$skiptoken": token}, keep=True)
        body["value"] = [render(item) for _, item in page]
        return Response(200, body)


class _Delta:
    """users/delta and groups/delta over the directory's change log.

    A round starts with every object (initial) or the objects changed since a delta token's
    sequence number, frozen at the sequence number current when the round began; pages are
    keyed by object id; the last page's deltaLink carries that sequence number forward.
    """

    def __init__(self, routes: _Routes, kind: str) -> None:
        self.routes = routes
        self.service = routes.service
        self.directory = routes.directory
        self.kind = kind

    def answer(self) -> Response:
        state = self._state()
        rows = self._rows(state)
        page = rows[: state["n"]]
        more = len(rows) > state["n"]
        body: dict[str, Any] = {
            "@odata.context": self.routes.context(f"{self.kind}{_select_suffix(state['s'])}")
        }
        if more:
            token = self.service.seal({**state, "a": page[-1]})
            body["@odata.nextLink"] = _link(self.routes.call, {"$skiptoken": token}, keep=False)
        else:
            token = self.service.seal(
                {"k": self.kind, "s": state["s"], "q": state["t"], "i": self.service.now()}
                | {"g": self.service.generation, "n": state["n"]}
            )
            body["@odata.deltaLink"] = _link(self.routes.call, {"$deltatoken": token}, keep=False)
        body["value"] = [self._render(object_id, state) for object_id in page]
        return Response(200, body)

    def _state(self) -> dict[str, Any]:
        query = self.routes.call.query
        if query.get("$deltatoken") == "latest":
            # Graph's "latest" token: no initial round, just a deltaLink for changes from now.
            self.routes.no_query_options("$select", "$deltatoken")
            catalog = _USER_DELTA_CATALOG if self.kind == "users" else _GROUP_DELTA_CATALOG
            now = self.directory.seq
            return {
                "k": self.kind,
                "s": _select(query, catalog),
                "f": now,
                "t": now,
                "a": "",
                "i": self.service.now(),
                "g": self.service.generation,
                "n": 100,
            }
        for name in ("$deltatoken", "$skiptoken"):
            if name in query:
                state = self.service.open_token(query[name], name)
                if state.get("k") != self.kind:
                    raise _GraphError(400, "Request_BadRequest", f"Invalid {name} value.")
                self._check_fresh(state)
                if name == "$deltatoken":  # a new round: changes after the token's sequence
                    return {**state, "f": state["q"], "t": self.directory.seq, "a": ""}
                return state
        self.routes.no_query_options("$select", "$top", "$deltatoken", "$skiptoken")
        catalog = _USER_DELTA_CATALOG if self.kind == "users" else _GROUP_DELTA_CATALOG
        select = _select(query, catalog)
        size = _top(query, self.routes.call.headers.get("prefer", ""))
        return {
            "k": self.kind,
            "s": select,
            "f": None,
            "t": self.directory.seq,
            "a": "",
            "i": self.service.now(),
            "g": self.service.generation,
            "n": size,
        }

    def _check_fresh(self, state: Mapping[str, Any]) -> None:
        expired = self.service.now() - float(state.get("i", 0)) > self.service.delta_ttl_s
        if expired or state.get("g") != self.service.generation:
            raise _GraphError(
                410,
                "syncStateNotFound",
                "The sync state generation is not found. The delta token is expired or no "
                "longer valid; start a new delta round without a token.",
            )

    def _rows(self, state: Mapping[str, Any]) -> list[str]:
        after = state["a"]
        if state["f"] is None:
            source = self.directory.users if self.kind == "users" else self.directory.groups
            ids = [i for i in source if i not in self.directory.soft_deleted]
        else:
            kind = "user" if self.kind == "users" else "group"
            changes = self.directory.changes_between(int(state["f"]), int(state["t"]))
            ids = list(dict.fromkeys(c.object_id for c in changes if c.kind == kind))
        return sorted(i for i in ids if i > after)

    def _render(self, object_id: str, state: Mapping[str, Any]) -> dict[str, Any]:
        if self.kind == "users":
            return self._render_user(object_id, state)
        return self._render_group(object_id, state)

    def _render_user(self, user_id: str, state: Mapping[str, Any]) -> dict[str, Any]:
        user = self.directory.users.get(user_id)
        if user is None:
            return {"id": user_id, "@removed": {"reason": "deleted"}}
        if user_id in self.directory.soft_deleted:
            return {"id": user_id, "@removed": {"reason": "changed"}}
        select = state["s"] or USER_DEFAULT_SELECT
        names = [n for n in select if n != "manager"]
        out = {"id": user_id, **_render(user, names)}
        if "manager" in select:
            delta = self._manager_delta(user_id, state)
            if delta is not None:
                out["manager@delta"] = delta
        return out

    def _manager_delta(self, user_id: str, state: Mapping[str, Any]) -> list[dict[str, Any]] | None:
        manager = self.directory.managers.get(user_id)
        if manager and self.directory.kind_of(manager) == "user":
            return [{"@odata.type": _USER_TYPE, "id": manager}]
        if state["f"] is None:
            return None
        changes = self.directory.changes_between(int(state["f"]), int(state["t"]))
        removed = [c.old_manager for c in changes if c.object_id == user_id and c.old_manager]
        if not removed:
            return None
        return [{"@odata.type": _USER_TYPE, "id": removed[-1], "@removed": {"reason": "deleted"}}]

    def _render_group(self, group_id: str, state: Mapping[str, Any]) -> dict[str, Any]:
        group = self.directory.groups.get(group_id)
        if group is None:
            return {"id": group_id, "@removed": {"reason": "deleted"}}
        select = state["s"] or GROUP_DEFAULT_SELECT
        out = {"id": group_id, **_render(group, [n for n in select if n != "members"])}
        if "members" in select:
            members = self._member_delta(group_id, state)
            if members or state["f"] is None:
                out["members@delta"] = members
        return out

    def _member_delta(self, group_id: str, state: Mapping[str, Any]) -> list[dict[str, Any]]:
        current = self.directory.members.get(group_id, {})
        if state["f"] is None:
            touched = list(current)
        else:
            changes = self.directory.changes_between(int(state["f"]), int(state["t"]))
            touched = list(
                dict.fromkeys(
                    c.member_id for c in changes if c.object_id == group_id and c.member_id
                )
            )
        out: list[dict[str, Any]] = []
        for member in touched:
            kind = self.directory.kind_of(member)
            odata_type = _GROUP_TYPE if member in self.directory.groups else _USER_TYPE
            if kind and member in current:
                out.append({"@odata.type": odata_type, "id": member})
            elif state["f"] is not None:
                out.append(
                    {"@odata.type": odata_type, "id": member, "@removed": {"reason": "deleted"}}
                )
        return out


# ---------------------------------------------------------------------------------------------
# $filter: the subset of OData Graph's directory supports
# ---------------------------------------------------------------------------------------------

_FILTER_TOKEN = re.compile(
    r"\s*(?:(?P<str>'(?:[^']|'')*')"
    r"|(?P<guid>[0-9a-fA-F]{8}-(?:[0-9a-fA-F]{4}-){3}[0-9a-fA-F]{12}\b)"
    r"|(?P<date>\d{4}-\d\d-\d\dT[\d:.]+Z?)"
    r"|(?P<num>-?\d+(?:\.\d+)?)"
    r"|(?P<name>[A-Za-z_][\w./]*)"
    r"|(?P<sym>[(),]))"
)
_COMPARISONS = ("eq", "ne", "gt", "ge", "lt", "le")
_ADVANCED = ("ne", "not", "endswith")

Predicate = Callable[[Mapping[str, Any]], bool]


class _Filter:
    """Parses $filter into a predicate over stored properties; 400 for what Graph would refuse."""

    def __init__(self, text: str, catalog: Mapping[str, str], resource: str) -> None:
        self.tokens = self._tokenize(text)
        self.pos = 0
        self.catalog = catalog
        self.resource = resource
        self.advanced = False

    @staticmethod
    def parse(call: _Call, catalog: Mapping[str, str], resource: str) -> Predicate:
        text = call.query.get("$filter")
        if text is None:
            return lambda _: True
        if re.search(r"/\s*(any|all)\s*\(", text, re.IGNORECASE):
            # Azure AD supports these on a few collections; the sandbox does not (documented).
            raise _GraphError(
                400,
                "Request_UnsupportedQuery",
                "Lambda operators (any/all) are not supported by the snsync sandbox.",
            )
        parser = _Filter(text, catalog, resource)
        predicate = parser.expression()
        if parser.pos != len(parser.tokens):
            raise _bad_filter(f"unexpected '{parser.tokens[parser.pos][1]}'")
        if parser.advanced and not _counting(call):
            # ne, not and endswith are "advanced queries" in Azure AD: they need
            # ConsistencyLevel: eventual and $count=true, or Graph refuses them.
            raise _GraphError(400, "Request_UnsupportedQuery", "Unsupported Query.")
        return predicate

    @staticmethod
    def _tokenize(text: str) -> list[tuple[str, str]]:
        tokens: list[tuple[str, str]] = []
        pos = 0
        text = text.rstrip()
        while pos < len(text):
            match = _FILTER_TOKEN.match(text, pos)
            if match is None or match.end() == pos:
                raise _bad_filter(f"syntax error at position {pos} in '{text}'")
            kind = match.lastgroup or ""
            tokens.append((kind, match.group(kind)))
            pos = match.end()
        return tokens

    def peek(self) -> tuple[str, str]:
        return self.tokens[self.pos] if self.pos < len(self.tokens) else ("", "")

    def take(self, value: str | None = None) -> tuple[str, str]:
        token = self.peek()
        if not token[0] or (value is not None and token[1].lower() != value):
            raise _bad_filter(f"expected '{value or 'more'}' at token {self.pos + 1}")
        self.pos += 1
        return token

    def expression(self) -> Predicate:
        left = self.conjunction()
        while self.peek()[1].lower() == "or":
            self.take()
            right = self.conjunction()
            left = (lambda a, b: lambda item: a(item) or b(item))(left, right)
        return left

    def conjunction(self) -> Predicate:
        left = self.unary()
        while self.peek()[1].lower() == "and":
            self.take()
            right = self.unary()
            left = (lambda a, b: lambda item: a(item) and b(item))(left, right)
        return left

    def unary(self) -> Predicate:
        kind, value = self.peek()
        if value.lower() == "not":
            self.take()
            self.advanced = True
            inner = self.unary()
            return lambda item: not inner(item)
        if value == "(":
            self.take()
            inner = self.expression()
            self.take(")")
            return inner
        if kind == "name" and value.lower() in ("startswith", "endswith"):
            return self.function()
        return self.comparison()

    def function(self) -> Predicate:
        name = self.take()[1].lower()
        self.advanced = self.advanced or name == "endswith"
        self.take("(")
        prop = self.property()
        self.take(",")
        literal = self.literal()
        self.take(")")
        if not isinstance(literal, str):
            raise _bad_filter(f"{name} needs a string")
        needle = literal.casefold()

        def test(item: Mapping[str, Any]) -> bool:
            value = item.get(prop)
            if not isinstance(value, str):
                return False
            text = value.casefold()
            return text.startswith(needle) if name == "startswith" else text.endswith(needle)

        return test

    def comparison(self) -> Predicate:
        prop = self.property()
        operator = self.take()[1].lower()
        if operator == "in":
            self.take("(")
            values = [self.literal()]
            while self.peek()[1] == ",":
                self.take()
                values.append(self.literal())
            self.take(")")
            return lambda item: any(_compare(item.get(prop), "eq", v) for v in values)
        if operator not in _COMPARISONS:
            raise _bad_filter(f"unknown operator '{operator}'")
        self.advanced = self.advanced or operator == "ne"
        literal = self.literal()
        return lambda item: _compare(item.get(prop), operator, literal)

    def property(self) -> str:
        kind, value = self.take()
        if kind != "name":
            raise _bad_filter(f"expected a property name, got '{value}'")
        canonical = self.catalog.get(value.lower())
        if canonical is None or canonical in _COLLECTIONS or "/" in value:
            raise _GraphError(
                400,
                "Request_UnsupportedQuery",
                f"Unsupported or invalid query filter clause specified for property '{value}' of "
                f"resource '{self.resource}'.",
            )
        return canonical

    def literal(self) -> Any:
        kind, value = self.take()
        if kind == "str":
            return value[1:-1].replace("''", "'")
        if kind in ("guid", "date"):
            return value
        if kind == "num":
            return float(value) if "." in value else int(value)
        lowered = value.lower()
        if kind == "name" and lowered in ("true", "false", "null"):
            return {"true": True, "false": False, "null": None}[lowered]
        raise _bad_filter(f"expected a literal, got '{value}'")


def _compare(value: Any, operator: str, literal: Any) -> bool:
    if isinstance(value, str) and isinstance(literal, str):
        value, literal = value.casefold(), literal.casefold()
    if operator == "eq":
        return bool(value == literal)
    if operator == "ne":
        return bool(value != literal)
    if value is None or literal is None or type(value) is not type(literal):
        return False
    return bool(
        {
            "gt": value > literal,
            "ge": value >= literal,
            "lt": value < literal,
            "le": value <= literal,
        }[operator]
    )


def _bad_filter(detail: str) -> _GraphError:
    return _GraphError(400, "BadRequest", f"Invalid filter clause: {detail}")


# ---------------------------------------------------------------------------------------------
# Query options, rendering and encoding helpers
# ---------------------------------------------------------------------------------------------


def _catalog(*names: Iterable[str]) -> dict[str, str]:
    return {name.lower(): name for group in names for name in group}


_USER_CATALOG = _catalog(USER_PROPERTIES)
_USER_DELTA_CATALOG = _catalog(USER_PROPERTIES, ["manager"])
_GROUP_CATALOG = _catalog(GROUP_PROPERTIES)
_GROUP_DELTA_CATALOG = _catalog(GROUP_PROPERTIES, ["members"])
_SP_CATALOG = _catalog(SP_PROPERTIES)
_ASSIGNMENT_CATALOG = _catalog(ASSIGNMENT_PROPERTIES)
_DIRECTORY_OBJECT_CATALOG = _catalog(USER_PROPERTIES, GROUP_PROPERTIES)
_USER_NAMES = frozenset(USER_PROPERTIES)
_GROUP_NAMES = frozenset(GROUP_PROPERTIES)


def _select(query: Mapping[str, str], catalog: Mapping[str, str]) -> list[str] | None:
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
            raise _GraphError(
                400,
                "BadRequest",
                f"Parsing OData Select and Expand failed: Could not find a property named "
                f"'{name}' on type 'microsoft.graph.directoryObject'.",
            )
        if canonical not in names:
            names.append(canonical)
    return names or None


def _select_suffix(select: list[str] | None) -> str:
    return f"({','.join(select)})" if select else ""


def _expand_manager(query: Mapping[str, str]) -> list[str] | None:
    """None without $expand; [] for manager's default properties; else its $select."""
    text = query.get("$expand")
    if text is None:
        return None
    match = re.fullmatch(r"\s*manager\s*(?:\(\s*\$select\s*=\s*([^)]*)\))?\s*", text, re.I)
    if match is None:
        raise _GraphError(
            400,
            "BadRequest",
            f"Parsing OData Select and Expand failed: Could not find a property named "
            f"'{text.split('(')[0].strip()}' on type 'microsoft.graph.user'.",
        )
    if match.group(1) is None:
        return []
    return _select({"$select": match.group(1)}, _USER_CATALOG) or []


def _top(query: Mapping[str, str], prefer: str = "") -> int:
    text = query.get("$top")
    if text is None:
        match = re.search(r"odata\.maxpagesize=(\d+)", prefer)
        return min(int(match.group(1)), 999) if match else 100
    try:
        top = int(text)
    except ValueError:
        raise _GraphError(
            400,
            "BadRequest",
            f"Invalid value '{text}' for $top query option found. The $top query option "
            "requires a non-negative integer value.",
        ) from None
    if not 1 <= top <= 999:
        raise _GraphError(
            400,
            "Request_BadRequest",
            f"Invalid page size specified: '{top}'. Must be between 1 and 999 inclusive.",
        )
    return top


def _counting(call: _Call) -> bool:
    return (
        call.query.get("$count", "").lower() == "true"
        and call.headers.get("consistencylevel", "").lower() == "eventual"
    )


def _render(
    source: Mapping[str, Any], names: Iterable[str], *, limited: bool = False
) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for name in names:
        if name == "id":
            out[name] = source.get("id")
        elif limited or name == "passwordProfile":  # write-only, as in Graph
            out[name] = None
        else:
            out[name] = source.get(name, [] if name in _COLLECTIONS else None)
    return out


def _link(call: _Call, extra: Mapping[str, str], *, keep: bool) -> str:
    """An absolute nextLink/deltaLink on this listener (paging keeps the caller's options)."""
    params = {k: v for k, v in call.query.items() if k not in ("$skiptoken", "$deltatoken")}
    params = {**params, **extra} if keep else dict(extra)
    query = "&".join(f"{k}={quote(str(v), safe=',()$=:/@')}" for k, v in params.items())
    return f"{call.base_url}/v1.0/{call.path.lstrip('/')}?{query}"


def _reference_id(body: Mapping[str, Any]) -> str:
    ref = body.get("@odata.id")
    match = re.search(
        r"/(?:directoryObjects|users|groups)/([0-9a-fA-F-]{36})(?:/|$)", str(ref or ""), re.I
    )
    if match is None:
        raise _GraphError(400, "Request_BadRequest", f"Invalid object identifier '{ref}'.")
    return match.group(1).lower()


def _parse_body(body: bytes) -> Any:
    if not body:
        return None
    try:
        return json.loads(body)
    except ValueError:
        raise _GraphError(
            400,
            "BadRequest",
            "Unable to read JSON request payload. Please ensure Content-Type "
            "header is set and payload is of valid JSON format.",
        ) from None


def _bearer(header: str) -> str:
    scheme, _, token = header.partition(" ")
    return token.strip() if scheme.lower() == "bearer" else ""


def _not_found(key: str) -> _GraphError:
    return _GraphError(
        404,
        "Request_ResourceNotFound",
        f"Resource '{key}' does not exist or one of its queried reference-property objects are "
        "not present.",
    )


def _segment_not_found(segment: str) -> _GraphError:
    return _GraphError(400, "BadRequest", f"Resource not found for the segment '{segment}'.")


def _encode(reply: Response, request_id: str, client_request_id: str) -> Response:
    headers = {
        "Cache-Control": "no-cache",
        "OData-Version": "4.0",
        "request-id": request_id,
        "client-request-id": client_request_id,
        "x-ms-ags-diagnostic": json.dumps(
            {"ServerInfo": {"DataCenter": "Sandbox", "Slice": "E", "Ring": "1"}}
            | {"ScaleUnit": "000", "RoleInstance": "snsync-sandbox"}
        ),
        "Strict-Transport-Security": "max-age=31536000",
        **reply.headers,
    }
    if reply.body is None:
        return Response(reply.status, None, headers)
    headers["Content-Type"] = _GRAPH_CONTENT_TYPE
    return Response(reply.status, json.dumps(reply.body).encode(), headers)


def _json_ok(body: Any, status: int = 200, headers: Mapping[str, str] | None = None) -> Response:
    merged = {
        "Cache-Control": "no-store, no-cache",
        "Pragma": "no-cache",
        "Content-Type": "application/json; charset=utf-8",
        "x-ms-ests-server": "2.1.0 - snsync sandbox",
        **(headers or {}),
    }
    return Response(status, json.dumps(body).encode(), merged)


def _plain_not_found() -> Response:
    return Response(404, b"", {"Content-Type": "text/html"})


def _iso(epoch: float) -> str:
    return datetime.fromtimestamp(epoch, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode().rstrip("=")


def _b64url_decode(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
