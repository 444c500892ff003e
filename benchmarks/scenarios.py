"""Deterministic benchmark scenarios: a tenant fixture with N users in a manager tree, G groups
and the ServiceNow app's assignments, and an instance fixture where a share of those users already
exist in sys_user (unlinked, with stale attributes, so each one needs exactly one update).

Every user is in scope: through an assigned group, or (a few) by a direct assignment. A small share
of leaf users is disabled in the directory: they are never created (and never pre-exist). The
assigned groups are new to ServiceNow. The scenario knows how many writes a sync really needs.
"""

from __future__ import annotations

import hashlib
import json
import math
import random
import uuid
from collections import deque
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from snsync.sandbox.demo_instance import demo_instance, demo_sys_id
from snsync.sandbox.demo_tenant import (
    DOMAIN,
    ROLE_MSIAM_ACCESS_ID,
    ROLE_USER_ID,
    demo_tenant,
)

# Departments that exist in the demo instance's cmn_department (the mapping resolves them).
DEPARTMENTS = ("Engineering", "Sales", "Finance", "HR", "IT", "Marketing")
SPAN = (5, 10)


def _words(text: str) -> tuple[str, ...]:
    """Whitespace-separated words (keeps the name lists below readable)."""
    return tuple(text.split())


_NAMESPACE = uuid.UUID("0d7c6f1e-3b2a-4c59-9e8d-7a6b5c4d3e2f")
_GIVEN = _words(
    "Ava Ben Chloe Daniel Elena Farid Grace Hiro Ines Jonas Kavya Liam Maya Noah Olga Pablo "
    "Quinn Rosa Samir Tara Umar Vera Wei Ximena Yusuf Zoe Amara Bruno Carmen Dmitri Esther "
    "Felix Gita Hugo Ingrid Jamal Keiko Luca Mina Nils"
)
_SURNAMES = _words(
    "Adams Bauer Chen Diaz Evans Fischer Garcia Hansen Ivanova Jensen Kim Lopez Murphy Nakamura "
    "Okafor Patel Quinn Rossi Schmidt Tanaka Ueda Varga Wong Xu Yilmaz Zimmer Andersen Brown "
    "Costa Dubois Ekström Fernandes Gupta Horvat Ito Jovanovic Kowalski Larsen Moreau Novak"
)
_LEAF_TITLES = {
    "Engineering": ("Software Engineer", "Senior Engineer", "QA Engineer", "Designer"),
    "Sales": ("Account Executive", "Sales Representative", "Sales Associate"),
    "Finance": ("Financial Analyst", "Accountant", "Controller"),
    "HR": ("HR Generalist", "Recruiter", "Payroll Specialist"),
    "IT": ("Service Desk Analyst", "Systems Engineer", "Network Engineer"),
    "Marketing": ("Marketing Specialist", "Planner", "Content Writer"),
}
_OFFICES = (
    ("Redmond", "WA", "United States", "98052", "1 Microsoft Way", "US"),
    ("Seattle", "WA", "United States", "98101", "1100 4th Avenue", "US"),
    ("Berlin", "BE", "Germany", "10117", "Unter den Linden 17", "DE"),
    ("Milan", "MI", "Italy", "20121", "Via Manzoni 12", "IT"),
    ("London", "", "United Kingdom", "EC2M 7PY", "1 Finsbury Avenue", "GB"),
    ("Sydney", "NSW", "Australia", "2000", "200 George Street", "AU"),
)
STALE_TITLE = "Associate"


@dataclass(frozen=True)
class ScenarioSpec:
    """What to generate: sizes, the share already in ServiceNow, and a seed."""

    users: int
    groups: int
    share_present: float = 0.0
    share_direct: float = 0.03
    share_disabled: float = 0.01
    seed: int = 7


@dataclass(frozen=True)
class Scenario:
    """A generated tenant and instance fixture, with the facts the bound is computed from."""

    spec: ScenarioSpec
    tenant: dict[str, Any]
    instance: dict[str, Any]
    present: frozenset[str]  # directory ids whose user already exists in sys_user
    disabled: frozenset[str]  # directory ids with accountEnabled false
    managers: dict[str, str]  # directory id -> manager's directory id
    assigned_groups: dict[str, tuple[str, ...]]  # assigned group id -> member user ids
    assignments: int  # app role assignments (groups and users)

    @property
    def assigned_group_sizes(self) -> tuple[int, ...]:
        """Members of each assigned group."""
        return tuple(len(members) for members in self.assigned_groups.values())

    @property
    def users(self) -> list[dict[str, Any]]:
        """The tenant's user objects."""
        return list(self.tenant["users"])

    def write_fixtures(self, folder: Path, prefix: str = "") -> tuple[Path, Path]:
        """Write the tenant and instance fixtures into `folder` (made if missing) as
        `{prefix}tenant.json` and `{prefix}instance.json`; their paths."""
        folder.mkdir(parents=True, exist_ok=True)
        tenant, instance = folder / f"{prefix}tenant.json", folder / f"{prefix}instance.json"
        tenant.write_text(json.dumps(self.tenant), encoding="utf-8")
        instance.write_text(json.dumps(self.instance), encoding="utf-8")
        return tenant, instance

    def creates_needed(self) -> int:
        """Users a first sync must create: enabled and not in sys_user yet."""
        return sum(
            1 for u in self.users if u["id"] not in self.present and u["id"] not in self.disabled
        )

    def updates_needed(self) -> int:
        """Existing records a first sync must update (each differs from its desired record)."""
        return len(self.present)

    def memberships_needed(self) -> int:
        """Memberships a first sync must add: assigned group x member with an account."""
        return sum(
            1
            for members in self.assigned_groups.values()
            for user_id in members
            if user_id not in self.disabled
        )

    def sys_user_rows(self) -> int:
        """Rows in the instance fixture's sys_user table."""
        return len(self.instance["tables"]["sys_user"])


def generate(spec: ScenarioSpec) -> Scenario:
    """The scenario for `spec`; the same spec always gives the same fixtures."""
    if spec.users < 1 or spec.groups < 0:
        raise ValueError("a scenario needs at least one user and no negative group count")
    rng = random.Random(spec.seed)
    bosses = manager_tree(spec.users, rng)
    ids = [_guid(spec.seed, f"user:{i}") for i in range(spec.users)]
    departments = _departments(bosses)
    has_reports = {b for b in bosses if b is not None}
    users = [
        _user(i, ids, bosses, departments[i], i in has_reports, rng) for i in range(spec.users)
    ]
    leaves = [i for i in range(spec.users) if i not in has_reports]
    for i in rng.sample(leaves, min(len(leaves), round(spec.users * spec.share_disabled))):
        users[i]["accountEnabled"] = False
    groups, assignments = _groups_and_assignments(spec, ids, departments, rng)
    tenant = demo_tenant()
    tenant.update({"users": users, "groups": groups, "assignments": assignments})
    # Only enabled users pre-exist: snsync neither adopts nor creates a disabled user's record.
    enabled = [i for i, u in enumerate(users) if u["accountEnabled"]]
    present = sorted(rng.sample(enabled, min(len(enabled), round(spec.users * spec.share_present))))
    managers = {ids[i]: ids[b] for i, b in enumerate(bosses) if b is not None}
    return Scenario(
        spec=spec,
        tenant=tenant,
        instance=_instance(users, present, managers),
        present=frozenset(ids[i] for i in present),
        disabled=frozenset(u["id"] for u in users if not u["accountEnabled"]),
        managers=managers,
        assigned_groups=_assigned(groups, assignments),
        assignments=len(assignments),
    )


def manager_tree(count: int, rng: random.Random, span: tuple[int, int] = SPAN) -> list[int | None]:
    """Each user's manager (by index), filled breadth first with 5-10 reports per manager."""
    bosses: list[int | None] = [None] * count
    queue = deque([0])
    following = 1
    while following < count:
        boss = queue.popleft()
        for _ in range(rng.randint(*span)):
            if following >= count:
                break
            bosses[following] = boss
            queue.append(following)
            following += 1
    return bosses


def depths(managers: Mapping[str, str]) -> dict[str, int]:
    """Each managed user's depth below the top; ValueError on a reporting loop."""
    found: dict[str, int] = {}
    for start in managers:
        path: list[str] = []
        node = start
        while node in managers and node not in found:
            if node in path:
                raise ValueError(f"reporting loop through {node}")
            path.append(node)
            node = managers[node]
        depth = found.get(node, 0)
        for member in reversed(path):
            depth += 1
            found[member] = depth
    return found


def user_changes(scenario: Scenario, share: float, seed: int = 11) -> dict[str, dict[str, Any]]:
    """PATCH bodies for `share` of the enabled users: a new job title and mobile number."""
    enabled = [u for u in scenario.users if u["accountEnabled"]]
    count = min(len(enabled), max(1, math.ceil(len(scenario.users) * share)))
    chosen = random.Random(seed).sample(enabled, count)
    return {
        u["id"]: {
            "jobTitle": f"Senior {u['jobTitle']}",
            "mobilePhone": f"+1 206 555 {int(u['employeeId'][1:]) % 10_000:04d}",
        }
        for u in chosen
    }


def _guid(seed: int, name: str) -> str:
    return str(uuid.uuid5(_NAMESPACE, f"{seed}:{name}"))


def _departments(bosses: Sequence[int | None]) -> list[str]:
    # The top's direct reports each head a department; their subtrees inherit it.
    result = ["Finance"] * len(bosses)
    heads = 0
    for i, boss in enumerate(bosses):
        if boss == 0:
            result[i] = DEPARTMENTS[heads % len(DEPARTMENTS)]
            heads += 1
        elif boss is not None:
            result[i] = result[boss]
    return result


def _level(i: int, bosses: Sequence[int | None]) -> int:
    level = 0
    boss = bosses[i]
    while boss is not None:
        level, boss = level + 1, bosses[boss]
    return level


def _title(level: int, department: str, manages: bool, rng: random.Random) -> str:
    if level == 0:
        return "Chief Executive Officer"
    if level == 1:
        return f"VP {department}"
    if level == 2:
        return f"Director of {department}"
    if manages:
        return f"{department} Manager" if level == 3 else "Team Lead"
    return rng.choice(_LEAF_TITLES[department])


def _user(
    i: int,
    ids: Sequence[str],
    bosses: Sequence[int | None],
    department: str,
    manages: bool,
    rng: random.Random,
) -> dict[str, Any]:
    given, surname = rng.choice(_GIVEN), rng.choice(_SURNAMES)
    nickname = f"{given}.{surname}.{i:05d}".lower().replace("ö", "o")
    city, state, country, postal, street, usage = rng.choice(_OFFICES)
    user: dict[str, Any] = {
        "id": ids[i],
        "userPrincipalName": f"{nickname}@{DOMAIN}",
        "mailNickname": nickname,
        "displayName": f"{given} {surname}",
        "givenName": given,
        "surname": surname,
        "mail": f"{nickname}@{DOMAIN}",
        "jobTitle": _title(_level(i, bosses), department, manages, rng),
        "department": department,
        "companyName": "Contoso",
        "employeeId": f"E{100_000 + i}",
        "mobilePhone": f"+1 425 555 {i % 10_000:04d}",
        "businessPhones": [f"+1 425 556 {i % 10_000:04d}"],
        "officeLocation": f"{city} {i % 7 + 1}/{100 + i % 400}",
        "city": city,
        "state": state,
        "country": country,
        "postalCode": postal,
        "streetAddress": street,
        "usageLocation": usage,
        "userType": "Member",
        "accountEnabled": True,
        "createdDateTime": f"2022-{1 + i % 12:02d}-{1 + i % 28:02d}T08:00:00Z",
    }
    boss = bosses[i]
    if boss is not None:
        user["manager"] = ids[boss]
    return user


def _groups_and_assignments(
    spec: ScenarioSpec, ids: Sequence[str], departments: Sequence[str], rng: random.Random
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    names = [f"SN {DEPARTMENTS[k % len(DEPARTMENTS)]} {k:03d}" for k in range(spec.groups)]
    assigned = [k for k in range(spec.groups) if k % 5 != 4]  # four groups in five are assigned
    spare = [k for k in range(spec.groups) if k % 5 == 4]
    by_department = {d: [k for k in assigned if names[k].split()[1] == d] for d in DEPARTMENTS}
    members: list[list[str]] = [[] for _ in range(spec.groups)]
    direct: list[int] = []
    for i, user_id in enumerate(ids):
        own = by_department[departments[i]] or assigned
        if not own or rng.random() < spec.share_direct:
            direct.append(i)
            own = spare
        if own:
            members[rng.choice(own)].append(user_id)
        if spec.groups > 1 and rng.random() < 0.25:
            other = rng.randrange(spec.groups)
            if user_id not in members[other]:
                members[other].append(user_id)
    groups = [_group(spec.seed, name, members[k]) for k, name in enumerate(names)]
    assignments = [
        {"principalId": groups[k]["id"], "appRoleId": ROLE_USER_ID} for k in assigned
    ] + [
        {"principalId": ids[i], "appRoleId": ROLE_MSIAM_ACCESS_ID if i % 2 else ROLE_USER_ID}
        for i in direct
    ]
    return groups, assignments


def _assigned(
    groups: Sequence[Mapping[str, Any]], assignments: Sequence[Mapping[str, Any]]
) -> dict[str, tuple[str, ...]]:
    principals = {a["principalId"] for a in assignments}
    return {g["id"]: tuple(g["members"]) for g in groups if g["id"] in principals}


def _group(seed: int, name: str, members: list[str]) -> dict[str, Any]:
    nickname = name.lower().replace(" ", "-")
    return {
        "id": _guid(seed, f"group:{name}"),
        "displayName": name,
        "description": f"{name} (ServiceNow access)",
        "mailNickname": nickname,
        "securityEnabled": True,
        "groupTypes": [],
        "createdDateTime": "2022-01-10T08:00:00Z",
        "members": members,
    }


def _instance(
    users: Sequence[Mapping[str, Any]], present: Sequence[int], managers: Mapping[str, str]
) -> dict[str, Any]:
    instance = demo_instance()
    sys_ids = {users[i]["id"]: _sys_id(users[i]["userPrincipalName"]) for i in present}
    records = [_existing_record(users[i], sys_ids, managers) for i in present]
    instance["tables"]["sys_user"] = instance["tables"]["sys_user"] + records
    return instance


def _sys_id(user_name: str) -> str:
    return hashlib.md5(f"bench:sys_user:{user_name}".encode(), usedforsecurity=False).hexdigest()


def _existing_record(
    user: Mapping[str, Any], sys_ids: Mapping[str, str], managers: Mapping[str, str]
) -> dict[str, Any]:
    # A record an earlier hand-made or CSV import left behind: same user_name, no snsync stamp,
    # a stale title (and, for a third of them, a stale mobile number).
    number = int(user["employeeId"][1:])
    return {
        "sys_id": sys_ids[user["id"]],
        "user_name": user["userPrincipalName"],
        "first_name": user["givenName"],
        "last_name": user["surname"],
        "email": user["mail"],
        "title": STALE_TITLE,
        "department": demo_sys_id("cmn_department", user["department"]),
        "manager": sys_ids.get(managers.get(user["id"], ""), ""),
        "employee_number": user["employeeId"],
        "phone": user["businessPhones"][0],
        "mobile_phone": "+1 425 000 0000" if number % 3 == 0 else user["mobilePhone"],
        "street": user["streetAddress"],
        "city": user["city"],
        "state": user["state"],
        "zip": user["postalCode"],
        "country": user["country"],
        "active": True,
        "sys_created_on": "2023-06-01 09:00:00",
    }
