"""The built-in demo ServiceNow instance: accounts, an OAuth client and a small, realistic org.

Three users carry the user principal names of demo tenant users (so a first sync adopts them by
matching); `legacy.user@contoso.example` exists only here; the local accounts and built-in groups
are records snsync must never touch. sys_ids are fixed so that tests and docs can name records.
"""

from __future__ import annotations

import hashlib
from typing import Any

DEMO_PASSWORD = "sandbox-password"
DEMO_CLIENT_ID = "snsync-sandbox-client"
DEMO_CLIENT_SECRET = "sandbox-client-secret"
ADMIN_SYS_ID = "6816f79cc0a8016401c5a33be04be441"  # the admin sys_id every instance ships with
CREATED_ON = "2024-01-15 09:00:00"


def demo_instance() -> dict[str, Any]:
    """A fresh copy of the demo fixture (see docs/sandbox-servicenow.md for the format)."""
    return {
        "accounts": [
            {"user_name": "admin", "password": DEMO_PASSWORD, "roles": ["admin"]},
            {"user_name": "snsync", "password": DEMO_PASSWORD, "roles": ["user_admin"]},
            {"user_name": "auditor", "password": DEMO_PASSWORD, "roles": ["itil"]},
        ],
        "oauth_clients": [
            {
                "client_id": DEMO_CLIENT_ID,
                "client_secret": DEMO_CLIENT_SECRET,
                "user_name": "snsync",
            }
        ],
        "tables": {
            "core_company": _companies(),
            "cmn_department": _departments(),
            "cmn_location": _locations(),
            "sys_user": _local_accounts() + _people(),
            "sys_user_group": _groups(),
            "sys_user_grmember": _memberships(),
            "sys_user_role": _roles(),
            "sys_user_has_role": _role_grants(),
        },
    }


def demo_sys_id(table: str, key: str) -> str:
    """The fixed sys_id of a demo record, e.g. `demo_sys_id("cmn_department", "Sales")`."""
    if table == "sys_user" and key == "admin":
        return ADMIN_SYS_ID
    return hashlib.md5(f"{table}:{key}".encode(), usedforsecurity=False).hexdigest()


def _record(table: str, key: str, **values: Any) -> dict[str, Any]:
    return {"sys_id": demo_sys_id(table, key), "sys_created_on": CREATED_ON, **values}


def _companies() -> list[dict[str, Any]]:
    return [
        _record(
            "core_company",
            "Contoso",
            name="Contoso",
            street="1 Contoso Way",
            city="Redmond",
            state="WA",
            zip="98052",
            country="US",
            website="https://contoso.example",
        ),
        _record("core_company", "Fabrikam", name="Fabrikam", city="Seattle", vendor=True),
    ]


def _departments() -> list[dict[str, Any]]:
    names = ("Engineering", "Sales", "Finance", "HR", "IT", "Marketing")
    return [
        _record("cmn_department", name, name=name, id=name[:3].upper(), company="Contoso")
        for name in names
    ]


def _locations() -> list[dict[str, Any]]:
    places = (
        ("Redmond HQ", "Redmond", "WA", "US"),
        ("London", "London", "", "GB"),
        ("Sydney", "Sydney", "NSW", "AU"),
        ("Remote", "", "", ""),
    )
    return [
        _record(
            "cmn_location",
            name,
            name=name,
            full_name=name,
            city=city,
            state=state,
            country=country,
            company="Contoso",
        )
        for name, city, state, country in places
    ]


def _local_accounts() -> list[dict[str, Any]]:
    return [
        _record(
            "sys_user",
            "admin",
            user_name="admin",
            first_name="System",
            last_name="Administrator",
            email="admin@contoso.example",
            title="System Administrator",
        ),
        _record("sys_user", "system", user_name="system", first_name="System"),
        _record(
            "sys_user",
            "snsync",
            user_name="snsync",
            first_name="snsync",
            last_name="Integration",
            web_service_access_only=True,
            internal_integration_user=True,
        ),
        _record(
            "sys_user",
            "auditor",
            user_name="auditor",
            first_name="Audit",
            last_name="Reader",
            email="auditor@contoso.example",
            department="IT",
        ),
    ]


def _people() -> list[dict[str, Any]]:
    return [
        _person("megan.bowen", "Megan", "Bowen", "Marketing Manager", "Marketing", "", "1001"),
        _person(
            "alex.wilber",
            "Alex",
            "Wilber",
            "Marketing Assistant",
            "Marketing",
            "megan.bowen",
            "1002",
        ),
        _person("adele.vance", "Adele", "Vance", "Retail Manager", "Sales", "", "1003"),
        _person("legacy.user", "Legacy", "User", "Former Contractor", "IT", "", "0042"),
    ]


def _person(
    local: str,
    first: str,
    last: str,
    title: str,
    department: str,
    manager: str,
    employee_number: str,
) -> dict[str, Any]:
    user_name = f"{local}@contoso.example"
    return _record(
        "sys_user",
        user_name,
        user_name=user_name,
        first_name=first,
        last_name=last,
        email=user_name,
        title=title,
        department=department,
        manager=f"{manager}@contoso.example" if manager else "",
        location="Redmond HQ",
        company="Contoso",
        employee_number=employee_number,
        phone="+1 425 555 " + employee_number,
        city="Redmond",
        state="WA",
        country="US",
    )


def _groups() -> list[dict[str, Any]]:
    return [
        _record(
            "sys_user_group",
            "Service Desk",
            name="Service Desk",
            description="First line support",
            email="servicedesk@contoso.example",
            manager="admin",
            type="itil",
            roles=["itil"],
        ),
        _record(
            "sys_user_group",
            "CAB Approval",
            name="CAB Approval",
            description="Change Advisory Board approvers",
            manager="admin",
        ),
    ]


def _memberships() -> list[dict[str, Any]]:
    pairs = (
        ("Service Desk", "legacy.user@contoso.example"),
        ("Service Desk", "alex.wilber@contoso.example"),
        ("CAB Approval", "admin"),
        ("CAB Approval", "megan.bowen@contoso.example"),
    )
    return [
        _record("sys_user_grmember", f"{group}|{user}", group=group, user=user)
        for group, user in pairs
    ]


def _roles() -> list[dict[str, Any]]:
    described = (
        ("admin", "Administrator"),
        ("user_admin", "Manages users, groups and their roles"),
        ("itil", "Fulfiller"),
    )
    return [
        _record("sys_user_role", name, name=name, description=description)
        for name, description in described
    ]


def _role_grants() -> list[dict[str, Any]]:
    grants = (("admin", "admin"), ("snsync", "user_admin"), ("auditor", "itil"))
    return [
        _record("sys_user_has_role", f"{user}|{role}", user=user, role=role)
        for user, role in grants
    ]
