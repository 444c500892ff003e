"""The plan of a group provisioned on demand (pure): whatever the partial read brought along as
context (a manager's record, another member's row, a record stamped for another group) gets no
item; the chosen members' rows follow the cycle's membership rules."""

from __future__ import annotations

from pathlib import Path

from snsync.engine.directory import source_group, source_user
from snsync.engine.ondemand_plan import members_line, plan_group
from snsync.engine.trust import Trust
from snsync.model import (
    Action,
    ObjectType,
    Picture,
    ScopeDecision,
    SourceSnapshot,
    TargetSnapshot,
)

from .fakes import ACCOUNT, fake_config

USER, GROUP, MEMBERSHIP = ObjectType.USER, ObjectType.GROUP, ObjectType.MEMBERSHIP
KEPT = ObjectType.KEPT_MEMBERSHIP


def person(uid: str, manager: str | None = None) -> dict[str, object]:
    return {
        "id": uid,
        "userPrincipalName": f"{uid}@contoso.example",
        "displayName": uid.title(),
        "accountEnabled": True,
        "manager": {"id": manager} if manager else None,
    }


def test_only_the_chosen_objects_get_items(tmp_path: Path) -> None:
    config = fake_config(tmp_path)
    ada = source_user(person("ada", manager="boss"), ScopeDecision(True, "member of team"))
    team = source_group({"id": "team", "displayName": "Team"}, "User")
    users = {
        "s-ada": {"sys_id": "s-ada", "user_name": "ada@contoso.example", "active": "true"},
        # The manager's record, read so the reference resolves: linked, but boss is not read.
        "s-boss": {"sys_id": "s-boss", "user_name": "boss@contoso.example", "active": "true"},
    }
    groups = {
        "s-team": {"sys_id": "s-team", "name": "Team", "active": "true"},
        # Stamped for another group by snsync's account: a trusted link, but not this run's.
        "s-other": {
            "sys_id": "s-other",
            "name": "Team",
            "source": "entra:other",
            "active": "true",
            "sys_created_by": ACCOUNT,
        },
    }
    rows = {
        "r-ada": {"sys_id": "r-ada", "group": "s-team", "user": "s-ada", "sys_created_by": "x"},
        # Another member's row, created by snsync: a whole-group plan would remove it.
        "r-bob": {"sys_id": "r-bob", "group": "s-team", "user": "s-bob", "sys_created_by": ACCOUNT},
    }
    target = TargetSnapshot(users, {}, groups, rows, frozenset({"s-team"}))
    source = SourceSnapshot({"ada": ada}, groups={"team": team}, members={"team": ("ada",)})
    links = {
        USER: {"ada": "s-ada", "boss": "s-boss", "bob": "s-bob"},
        GROUP: {"team": "s-team"},
        MEMBERSHIP: {"team:bob": "r-bob"},
    }
    planned = plan_group(
        config, Picture(source, target), links, Trust(account=ACCOUNT), "team", ("ada",)
    )
    items = planned.items()
    assert {i.directory_id for i in items if i.object_type is USER} <= {"ada"}
    assert {i.directory_id for i in items if i.object_type is GROUP} <= {"team"}
    assert not [i for i in items if i.action is Action.DISABLE]
    assert not [i for i in items if i.object_type is MEMBERSHIP], (
        "ada's row exists; bob's is not ours"
    )
    assert dict(planned.memberships.adopted) == {"team:ada": "r-ada"}  # kept, never deleted


def test_the_members_line() -> None:
    assert members_line(0, 0, 5, chosen=False) == "the group has no user members"
    assert members_line(3, 3, 5, chosen=False) == (
        "all 3 provisioned now (provision.max_group_members is 5)"
    )
    assert members_line(6, 5, 5, chosen=False).endswith(
        "the other one is synced by the next cycle (snsync run --once), or choose with --member"
    )
    assert members_line(9, 2, 5, chosen=True) == (
        "2 of 9 chosen with --member; the other 7 are synced by the next cycle (snsync run --once)"
    )
