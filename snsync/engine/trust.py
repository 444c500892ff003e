"""Who snsync may write, as pure rules: protected records, which `source` stamps prove that snsync
made a record, and which adoptions wait for an admin's approval. A stamp or a matching value is a
claim anyone who can write ServiceNow (or edit a directory attribute) can make; none is proof."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from snsync.model import Record

BUILT_IN_PROTECTED = ("admin", "system", "guest", "maint", "snc_internal")
DEFAULT_PRIVILEGED_ROLES = ("admin", "security_admin", "user_admin")
CREATOR_FIELD = "sys_created_by"
Roles = Mapping[str, tuple[str, ...]]  # sys_id -> the roles that make adopting it need approval


@dataclass(frozen=True)
class Trust:
    """The facts of one cycle that decide trust, for users and groups."""

    account: str = ""  # the integration account's user_name: its records are snsync's
    protected_users: frozenset[str] = frozenset(BUILT_IN_PROTECTED)  # lower-case names, sys_ids
    protected_groups: frozenset[str] = frozenset()
    user_roles: Roles | None = field(default_factory=dict)  # holders of a privileged role
    group_roles: Roles | None = field(default_factory=dict)  # groups holding any role
    approved: Mapping[str, Mapping[str, str]] = field(default_factory=dict)  # type -> id -> sys_id
    whole_directory: bool = True  # False (provision on demand): other users' claims are unseen


def protected_set(configured: Iterable[str], built_in: Iterable[str] = ()) -> frozenset[str]:
    """Protected names (compared lower-case) and sys_ids, from the config and a built-in list."""
    return frozenset(item.strip().lower() for item in (*built_in, *configured) if item.strip())


def protected_why(
    sys_id: str, record: Record, name_field: str, protected: frozenset[str], account: str
) -> str | None:
    """Why snsync must never write this record, or None when it may."""
    name = record.get(name_field, "").strip()
    if account and name_field == "user_name" and name.lower() == account.strip().lower():
        return f"it is snsync's own integration account '{name}'"
    if name.lower() in protected:
        return f"'{name}' is a protected record (built-in list or safety.protected_*)"
    if sys_id.lower() in protected:
        return f"sys_id {sys_id} is listed in safety.protected_*"
    return None


def stamp_distrust(record: Record, account: str) -> str | None:
    """Why a record's `source` stamp does not prove that snsync made it, or None when it does."""
    creator = record.get(CREATOR_FIELD)
    if not account:
        return "the integration account is not known"
    if creator is None:
        return "its creator (sys_created_by) was not read"
    if creator.strip().lower() != account.strip().lower():
        return f"it was created by '{creator}', not by snsync's account '{account}'"
    return None


def hold_why(sys_id: str, record: Record, roles: Roles | None) -> str | None:
    """Why adopting this existing record by matching needs an admin's approval, or None.
    `roles` None means they could not be read: then every adoption waits (fail closed)."""
    if roles is None:
        return "may hold roles (the role table could not be read this cycle)"
    held = roles.get(sys_id)
    if held:
        return f"holds the role{'s' if len(held) > 1 else ''} {', '.join(sorted(held))}"
    if record.get("active", "true") == "false":
        return "is inactive"
    if record.get("locked_out", "false") == "true":
        return "is locked out"
    return None


def trust_fields(name_field: str) -> tuple[str, ...]:
    """The fields the trust rules read on a user (sys_user) or group record."""
    return (CREATOR_FIELD, "locked_out") if name_field == "user_name" else (CREATOR_FIELD,)
