"""Accounts and the table access their roles give."""

from __future__ import annotations

from dataclasses import dataclass

from snsync.sandbox.encoded_query import EncodedQuery


@dataclass(frozen=True)
class Account:
    user_name: str
    password: str
    roles: frozenset[str]


@dataclass(frozen=True)
class ReadRule:
    """A row-level read rule: on `table`, the account may read only rows matching `query`.
    It applies to `accounts` when given, else to every account without the admin role."""

    table: str
    condition: str
    query: EncodedQuery
    accounts: frozenset[str] | None = None

    def applies_to(self, account: Account) -> bool:
        """Whether the rule restricts this account."""
        if self.accounts is not None:
            return account.user_name in self.accounts
        return "admin" not in account.roles


ROLE_ACCESS: dict[str, dict[str, str]] = {
    "personalize_dictionary": {"sys_dictionary": "r"},
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
        "cmn_cost_center": "r",
        "cmn_building": "r",
        "cmn_schedule": "r",
    },
    "itil": {
        "sys_user": "r",
        "sys_user_group": "r",
        "sys_user_grmember": "r",
        "cmn_department": "r",
        "cmn_location": "r",
        "core_company": "r",
        "cmn_cost_center": "r",
        "cmn_building": "r",
        "cmn_schedule": "r",
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
