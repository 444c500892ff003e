"""Accounts and the table access their roles give."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Account:
    user_name: str
    password: str
    roles: frozenset[str]


ROLE_ACCESS: dict[str, dict[str, str]] = {
    "user_admin": {
        "sys_user": "rw",
        "sys_user_group": "rw",
        "sys_user_grmember": "rw",
        "sys_user_has_role": "rw",
        "sys_group_has_role": "rw",
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


OPERATION = {
    "GET": "read",
    "POST": "insert",
    "PUT": "update",
    "PATCH": "update",
    "DELETE": "delete",
}


def allowed(roles: frozenset[str], table: str, operation: str) -> bool:
    if "admin" in roles:
        return True
    wanted = "r" if operation == "read" else "w"
    return any(wanted in ROLE_ACCESS.get(role, {}).get(table, "") for role in roles)
