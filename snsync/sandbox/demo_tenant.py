"""The built-in demo tenant: a small Contoso directory with the ServiceNow enterprise app, its
assignments (direct, by group, nested group, disabled user) and one client app that may read it."""

from __future__ import annotations

import uuid
from typing import Any

DEMO_TENANT_ID = "4f1c6a2e-8b3d-4e5f-9a7b-1c2d3e4f5a6b"
DEMO_CLIENT_ID = "7e2b9c41-3d5a-4f6e-8b1c-2a3b4c5d6e7f"
DEMO_CLIENT_SECRET = "sandbox-graph-secret"
SERVICENOW_APP_ID = "c3b1a7d2-5e4f-4a6b-9c8d-0e1f2a3b4c5d"
SERVICENOW_SP_ID = "a9d8c7b6-1e2f-4a3b-8c4d-5e6f7a8b9c0d"
ROLE_USER_ID = "18d14569-c3bd-439b-9a66-3a2aee01d14f"
ROLE_MSIAM_ACCESS_ID = "b9632174-c057-4f7e-951b-be3adc52bfe6"
ROLE_ADMIN_ID = "d1c2b3a4-9e8f-4b7a-8c6d-5e4f3a2b1c0d"
DEFAULT_ACCESS_ROLE_ID = "00000000-0000-0000-0000-000000000000"
DOMAIN = "contoso.example"

# Fixed namespace so every id below is the same on every run (snapshots and docs can quote them).
_NAMESPACE = uuid.UUID("5a0c5b8e-6f0e-4d8a-9d55-3f3c1b6a7e21")

# given, surname, department, jobTitle, office (city, state, country, postalCode, street),
# manager's mailNickname, accountEnabled
_PEOPLE: tuple[tuple[str, str, str, str, str, str | None, bool], ...] = (
    ("Patti", "Fernandez", "Finance", "Chief Executive Officer", "redmond", None, True),
    ("Lee", "Gu", "Engineering", "Director of Engineering", "redmond", "patti.fernandez", True),
    ("Diego", "Siciliani", "Sales", "Sales Director", "redmond", "patti.fernandez", True),
    ("Debra", "Berger", "Finance", "Finance Director", "redmond", "patti.fernandez", True),
    ("Lidia", "Holloway", "HR", "HR Director", "redmond", "patti.fernandez", True),
    ("Nestor", "Wilke", "IT", "IT Director", "redmond", "patti.fernandez", True),
    ("Megan", "Bowen", "Marketing", "Marketing Manager", "redmond", "patti.fernandez", True),
    ("Adele", "Vance", "Engineering", "Software Engineer", "redmond", "lee.gu", True),
    ("Isaiah", "Langer", "Engineering", "Software Engineer", "seattle", "lee.gu", True),
    ("Johanna", "Lorenz", "Engineering", "Senior Engineer", "berlin", "lee.gu", True),
    ("Grady", "Archie", "Engineering", "Designer", "seattle", "lee.gu", True),
    ("Enrico", "Cattaneo", "Engineering", "Attorney", "milan", "lee.gu", True),
    ("Pradeep", "Gupta", "Engineering", "Accountant", "seattle", "lee.gu", True),
    ("Alex", "Wilber", "Sales", "Sales Representative", "redmond", "diego.siciliani", True),
    ("Christie", "Cline", "Sales", "Buyer", "seattle", "diego.siciliani", True),
    ("Cameron", "White", "Sales", "Account Executive", "seattle", "diego.siciliani", True),
    ("Raul", "Razo", "Sales", "Sales Representative", "redmond", "diego.siciliani", True),
    ("Kai", "Carter", "Sales", "Sales Associate", "redmond", "diego.siciliani", True),
    ("Henrietta", "Mueller", "Finance", "Financial Analyst", "frankfurt", "debra.berger", True),
    ("Allan", "Deyoung", "Finance", "Controller", "redmond", "debra.berger", True),
    ("Joni", "Sherman", "HR", "Paralegal", "redmond", "lidia.holloway", True),
    ("Irvin", "Sayers", "HR", "HR Generalist", "redmond", "lidia.holloway", False),
    ("Miriam", "Graham", "IT", "Service Desk Lead", "redmond", "nestor.wilke", True),
    ("Brian", "Johnson", "IT", "Service Desk Analyst", "seattle", "nestor.wilke", True),
    ("Sanjay", "Shah", "IT", "Systems Engineer", "redmond", "nestor.wilke", True),
    ("Emily", "Braun", "IT", "Service Desk Analyst", "seattle", "nestor.wilke", True),
    ("Lynne", "Robbins", "Marketing", "Planner", "redmond", "megan.bowen", True),
    ("Delia", "Dennis", "Marketing", "Marketing Assistant", "redmond", "megan.bowen", False),
    ("Gerhart", "Möller", "Marketing", "Marketing Specialist", "munich", "megan.bowen", True),
    ("Nora", "Okafor", "Research", "Research Scientist", "redmond", "lee.gu", True),
)

_OFFICES: dict[str, tuple[str, str, str, str, str]] = {
    "redmond": ("Redmond", "WA", "United States", "98052", "1 Microsoft Way"),
    "seattle": ("Seattle", "WA", "United States", "98101", "1100 4th Avenue"),
    "berlin": ("Berlin", "BE", "Germany", "10117", "Unter den Linden 17"),
    "milan": ("Milan", "MI", "Italy", "20121", "Via Manzoni 12"),
    "frankfurt": ("Frankfurt", "HE", "Germany", "60311", "Neue Mainzer Strasse 52"),
    "munich": ("Munich", "BY", "Germany", "80331", "Marienplatz 8"),
}

_GROUPS: tuple[tuple[str, str, tuple[str, ...]], ...] = (
    (
        "ServiceNow Agents",
        "Service desk agents who work tickets in ServiceNow",
        (
            "nestor.wilke",
            "miriam.graham",
            "brian.johnson",
            "sanjay.shah",
            "emily.braun",
            "adele.vance",
        ),
    ),
    (
        "ServiceNow Approvers",
        "Managers who approve requests in ServiceNow",
        ("debra.berger", "lidia.holloway", "diego.siciliani", "group:Approvers EMEA"),
    ),
    (
        "Approvers EMEA",
        "Approvers in Europe (nested in ServiceNow Approvers, not assigned themselves)",
        ("johanna.lorenz", "enrico.cattaneo", "henrietta.mueller", "gerhart.moller"),
    ),
    ("All Staff", "Everyone at Contoso", ()),  # filled with every user below
)

# principal (mailNickname or "group:<displayName>"), app role id
_ASSIGNMENTS: tuple[tuple[str, str], ...] = (
    ("adele.vance", ROLE_USER_ID),
    ("lee.gu", ROLE_USER_ID),
    ("megan.bowen", DEFAULT_ACCESS_ROLE_ID),
    ("alex.wilber", ROLE_MSIAM_ACCESS_ID),
    ("patti.fernandez", ROLE_ADMIN_ID),
    ("irvin.sayers", ROLE_USER_ID),
    ("nora.okafor", ROLE_USER_ID),
    ("group:ServiceNow Agents", ROLE_USER_ID),
    ("group:ServiceNow Approvers", ROLE_USER_ID),
)


def demo_tenant() -> dict[str, Any]:
    """A fresh copy of the demo tenant fixture (safe to mutate)."""
    users = [_user(index, person) for index, person in enumerate(_PEOPLE)]
    return {
        "tenant_id": DEMO_TENANT_ID,
        "tenant_name": "Contoso",
        "domains": [DOMAIN],
        "clients": [
            {
                "client_id": DEMO_CLIENT_ID,
                "client_secret": DEMO_CLIENT_SECRET,
                "displayName": "snsync",
            }
        ],
        "service_principal": _service_principal(),
        "users": users,
        "groups": [
            _group(name, description, members, users) for name, description, members in _GROUPS
        ],
        "assignments": [_assignment(index, *item) for index, item in enumerate(_ASSIGNMENTS)],
    }


def demo_user_id(mail_nickname: str) -> str:
    """The fixed id of a demo user, e.g. `demo_user_id("adele.vance")`."""
    return _guid(f"user:{mail_nickname}")


def demo_group_id(display_name: str) -> str:
    """The fixed id of a demo group, e.g. `demo_group_id("ServiceNow Agents")`."""
    return _guid(f"group:{display_name}")


def _guid(name: str) -> str:
    return str(uuid.uuid5(_NAMESPACE, name))


def _nickname(given: str, surname: str) -> str:
    # UPNs stay ASCII even when the display name does not (Gerhart Möller -> gerhart.moller).
    ascii_surname = surname.replace("ö", "o").replace("ü", "u").replace("ä", "a")
    return f"{given}.{ascii_surname}".lower()


def _user(index: int, person: tuple[str, str, str, str, str, str | None, bool]) -> dict[str, Any]:
    given, surname, department, title, office, manager, enabled = person
    nickname = _nickname(given, surname)
    city, state, country, postal_code, street = _OFFICES[office]
    user: dict[str, Any] = {
        "id": demo_user_id(nickname),
        "userPrincipalName": f"{nickname}@{DOMAIN}",
        "mailNickname": nickname,
        "displayName": f"{given} {surname}",
        "givenName": given,
        "surname": surname,
        "mail": f"{nickname}@{DOMAIN}",
        "jobTitle": title,
        "department": department,
        "companyName": "Contoso",
        "employeeId": f"E{1001 + index}",
        "mobilePhone": f"+1 425 555 {100 + index:04d}",
        "businessPhones": [f"+1 425 555 {200 + index:04d}"],
        "officeLocation": f"{city} {index % 4 + 1}/{100 + index}",
        "preferredLanguage": "de-DE" if country == "Germany" else "en-US",
        "city": city,
        "state": state,
        "country": country,
        "postalCode": postal_code,
        "streetAddress": street,
        "usageLocation": {"Germany": "DE", "Italy": "IT"}.get(country, "US"),
        "userType": "Member",
        "accountEnabled": enabled,
        "createdDateTime": f"2023-0{1 + index % 9}-1{index % 10}T09:00:00Z",
    }
    if manager is not None:
        user["manager"] = demo_user_id(manager)
    if nickname == "kai.carter":
        # A user with no phones at all: mappings must cope with null and [].
        user["mobilePhone"] = None
        user["businessPhones"] = []
    return user


def _group(
    name: str, description: str, members: tuple[str, ...], users: list[dict[str, Any]]
) -> dict[str, Any]:
    if name == "All Staff":
        member_ids = [user["id"] for user in users]
    else:
        member_ids = [_principal_id(member) for member in members]
    nickname = name.lower().replace(" ", "-")
    return {
        "id": demo_group_id(name),
        "displayName": name,
        "description": description,
        "mail": f"{nickname}@{DOMAIN}" if name == "All Staff" else None,
        "mailEnabled": name == "All Staff",
        "mailNickname": nickname,
        "securityEnabled": True,
        "groupTypes": [],
        "createdDateTime": "2023-01-05T08:00:00Z",
        "members": member_ids,
    }


def _principal_id(principal: str) -> str:
    if principal.startswith("group:"):
        return demo_group_id(principal.removeprefix("group:"))
    return demo_user_id(principal)


def _assignment(index: int, principal: str, role_id: str) -> dict[str, Any]:
    return {
        "principalId": _principal_id(principal),
        "appRoleId": role_id,
        "createdDateTime": f"2023-02-{10 + index:02d}T12:00:00Z",
    }


def _service_principal() -> dict[str, Any]:
    return {
        "id": SERVICENOW_SP_ID,
        "appId": SERVICENOW_APP_ID,
        "displayName": "ServiceNow",
        "appDisplayName": "ServiceNow",
        "servicePrincipalType": "Application",
        "appRoleAssignmentRequired": True,
        "preferredSingleSignOnMode": "saml",
        "tags": [
            "WindowsAzureActiveDirectoryIntegratedApp",
            "WindowsAzureActiveDirectoryGalleryApplicationPrimaryV1",
        ],
        # The "Default Access" role (all zeros) is never listed in appRoles; the gallery app lists
        # msiam_access instead, and admins add their own roles next to it.
        "appRoles": [
            _role(ROLE_USER_ID, "User", "User"),
            _role(ROLE_MSIAM_ACCESS_ID, "msiam_access", "msiam_access"),
            _role(ROLE_ADMIN_ID, "Admin", "Admin"),
        ],
    }


def _role(role_id: str, value: str, display_name: str) -> dict[str, Any]:
    return {
        "id": role_id,
        "value": value,
        "displayName": display_name,
        "description": display_name,
        "isEnabled": True,
        "allowedMemberTypes": ["User"],
        "origin": "Application",
    }
