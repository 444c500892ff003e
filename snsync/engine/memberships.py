"""Group memberships (sys_user_grmember) as a pure plan: add the rows the directory wants, link
rows that already exist, and remove only rows snsync created itself. A row that existed before
snsync is never deleted by it: when its member leaves, the log says so and how to remove it."""

from __future__ import annotations

from collections.abc import Collection, Iterable, Iterator, Mapping
from dataclasses import dataclass, field

from snsync.engine.trust import CREATOR_FIELD
from snsync.model import (
    MEMBER_TABLE,
    Action,
    Change,
    ObjectType,
    Plan,
    PlanItem,
    Reason,
    Record,
    Status,
)

MEMBERSHIP_TABLE = MEMBER_TABLE


@dataclass(frozen=True)
class MembershipPlan:
    """Rows to add or remove, and existing rows to link without a write."""

    plan: Plan
    adopted: Mapping[str, str]  # pair key -> row that existed before snsync: never deleted
    forgotten: tuple[str, ...]  # pair keys whose links go (row gone, or kept and reported)
    recovered: Mapping[str, str] = field(default_factory=dict)  # snsync's rows found again


def pair_key(group_id: str, user_id: str) -> str:
    """The link key of one membership: group and user directory ids."""
    return f"{group_id}:{user_id}"


def plan_memberships(
    wanted: Mapping[str, Iterable[str]],
    group_links: Mapping[str, str],
    user_links: Mapping[str, str],
    rows: Iterable[Record],
    owned: Mapping[str, str],
    names: Mapping[str, str],
    *,
    kept: Mapping[str, str] | None = None,
    account: str = "",
    frozen: Collection[str] = (),
    waits: Waits | None = None,
) -> MembershipPlan:
    """Plan memberships of the groups in `wanted` (in-scope group id -> member user ids).

    Only users with a ServiceNow account from snsync become members. Rows of groups that are not
    in `wanted` (out of scope, disabled) are left as they are. `rows` are the membership rows of
    the wanted groups; `owned` the pair keys of rows snsync created, `kept` of rows it found (and
    never deletes). A row created by the integration `account` is snsync's even when its link
    was lost (a create whose answer never came back), and one created by anyone else never is.
    No row of a `frozen` user or group (linked to a protected record) is added or removed.
    A new row waits for its group and user when they are created or adopted this cycle
    (`waits`): it names their placeholders, marked pending.
    """
    rows = list(rows)
    kept = kept or {}
    by_pair = {(r.get("group", ""), r.get("user", "")): r for r in reversed(rows)}
    creators = _Creators(account)
    items: list[PlanItem] = []
    adopted: dict[str, str] = {}
    recovered: dict[str, str] = {}
    forgotten: list[str] = []
    wanted_keys: set[str] = set()
    unchanged = 0
    adding = _Adding(names, waits or Waits({}, {}))
    for key, group_sys, user_sys in _wanted_pairs(wanted, group_links, user_links, frozen):
        wanted_keys.add(key)
        row = by_pair.get((group_sys, user_sys))
        if row is None:
            group_id, user_id = key.split(":", 1)
            items.append(adding.item(key, group_id, user_id, group_sys, user_sys))
        elif _linked(key, row, owned, kept, creators):
            unchanged += 1
        elif creators.ours(row):
            recovered[key] = row["sys_id"]
        else:
            adopted[key] = row["sys_id"]
            forgotten += [key] if key in owned else []
    leaving = _Leaving(
        wanted, wanted_keys, {r["sys_id"]: r for r in rows}, names, creators, frozenset(frozen)
    )
    items += leaving.owned(owned) + leaving.kept(kept)
    items += leaving.orphans(rows, owned, kept, _reverse(group_links), _reverse(user_links))
    forgotten += leaving.forgotten
    plan = Plan(tuple(items), unchanged)
    return MembershipPlan(plan, adopted, tuple(dict.fromkeys(forgotten)), recovered)


@dataclass(frozen=True)
class _Creators:
    """Who made a row, by its sys_created_by (absent when the row came from the cache)."""

    account: str

    def ours(self, row: Record) -> bool:
        creator = row.get(CREATOR_FIELD, "").strip().lower()
        return bool(self.account) and creator == self.account.strip().lower()

    def foreign(self, row: Record) -> bool:
        return CREATOR_FIELD in row and not self.ours(row)


@dataclass
class _Leaving:
    """Rows of wanted groups whose pair the directory no longer wants."""

    wanted: Mapping[str, Iterable[str]]
    wanted_keys: set[str]
    rows: Mapping[str, Record]
    names: Mapping[str, str]
    creators: _Creators
    frozen: frozenset[str]
    forgotten: list[str] = field(default_factory=list)

    def _left(self, key: str) -> bool:
        group_id, user_id = key.split(":", 1)
        if group_id in self.frozen or user_id in self.frozen:
            return False
        return group_id in self.wanted and key not in self.wanted_keys

    def owned(self, owned: Mapping[str, str]) -> list[PlanItem]:
        """Rows snsync created go; a row the state calls snsync's but someone else made stays."""
        items = []
        for key, row_id in sorted(owned.items()):
            if not self._left(key):
                continue
            row = self.rows.get(row_id)
            if row is None:
                self.forgotten.append(key)
            elif self.creators.foreign(row):
                items.append(self._keep(key, row))
            else:
                items.append(_remove(key, row_id, self.names, "the row was added by snsync"))
        return items

    def kept(self, kept: Mapping[str, str]) -> list[PlanItem]:
        """Rows that existed before snsync stay; the log says so once."""
        items = []
        for key, row_id in sorted(kept.items()):
            if not self._left(key):
                continue
            row = self.rows.get(row_id)
            if row is None:
                self.forgotten.append(key)
            else:
                items.append(self._keep(key, row))
        return items

    def orphans(
        self,
        rows: Iterable[Record],
        owned: Mapping[str, str],
        kept: Mapping[str, str],
        groups: Mapping[str, str],
        users: Mapping[str, str],
    ) -> list[PlanItem]:
        """Rows snsync's account created whose link was lost (the create's answer never came)."""
        linked = set(owned.values()) | set(kept.values())
        items = []
        for row in sorted(rows, key=lambda r: r["sys_id"]):
            group_id = groups.get(row.get("group", ""))
            user_id = users.get(row.get("user", ""))
            if group_id is None or user_id is None or row["sys_id"] in linked:
                continue
            key = pair_key(group_id, user_id)
            if self._left(key) and self.creators.ours(row):
                why = "the row was added by snsync's account (its link was lost in flight)"
                items.append(_remove(key, row["sys_id"], self.names, why))
        return items

    def _keep(self, key: str, row: Record) -> PlanItem:
        self.forgotten.append(key)
        creator = row.get(CREATOR_FIELD, "") or "someone else"
        return PlanItem(
            Action.SKIP,
            key,
            _label(self.names, *key.split(":", 1)),
            row["sys_id"],
            status=Status.SKIPPED,
            reason=Reason.MEMBERSHIP_KEPT,
            message=(
                f"no longer a member in the directory, but the row existed before snsync "
                f"(created by '{creator}'), so snsync leaves it in place; if this access should "
                f"end, delete sys_user_grmember {row['sys_id']} in ServiceNow"
            ),
            object_type=ObjectType.MEMBERSHIP,
        )


def _linked(
    key: str, row: Record, owned: Mapping[str, str], kept: Mapping[str, str], creators: _Creators
) -> bool:
    """Whether the row is already linked as what it is: snsync's own, or kept."""
    if owned.get(key) == row["sys_id"]:
        return not creators.foreign(row)
    return kept.get(key) == row["sys_id"]


def _wanted_pairs(
    wanted: Mapping[str, Iterable[str]],
    group_links: Mapping[str, str],
    user_links: Mapping[str, str],
    frozen: Collection[str],
) -> Iterator[tuple[str, str, str]]:
    for group_id in sorted(wanted):
        group_sys = group_links.get(group_id)
        if not group_sys or group_id in frozen:
            continue
        for user_id in sorted(set(wanted[group_id])):
            user_sys = user_links.get(user_id)
            if user_sys and user_id not in frozen:
                yield pair_key(group_id, user_id), group_sys, user_sys


def _reverse(links: Mapping[str, str]) -> dict[str, str]:
    return {sys_id: directory_id for directory_id, sys_id in links.items()}


def _label(names: Mapping[str, str], group_id: str, user_id: str) -> str:
    return f"{names.get(group_id, group_id)} / {names.get(user_id, user_id)}"


@dataclass(frozen=True)
class Waits:
    """The placeholders of the groups and users created or adopted this cycle, by directory
    id: a new row names them, and waits for their writes."""

    groups: Mapping[str, str]
    users: Mapping[str, str]


@dataclass(frozen=True)
class _Adding:
    """Builds the rows to add. Their group and user Changes are shared: every new row of a
    group names the same group value and label (at 100,000 users there are about 116,000
    rows to add, and two Changes each would be about 16 MB)."""

    names: Mapping[str, str]
    waits: Waits
    changes: dict[tuple[str, str, str], Change] = field(default_factory=dict)

    def change(self, name: str, directory_id: str, value: str) -> Change:
        found = self.changes.get((name, directory_id, value))
        if found is None:
            found = Change(name, None, value, self.names.get(directory_id))
            self.changes[(name, directory_id, value)] = found
        return found

    def item(
        self, key: str, group_id: str, user_id: str, group_sys: str, user_sys: str
    ) -> PlanItem:
        group_wait, user_wait = self.waits.groups.get(group_id), self.waits.users.get(user_id)
        changes = (
            self.change("group", group_id, group_wait or group_sys),
            self.change("user", user_id, user_wait or user_sys),
        )
        pending = {"group"} if group_wait else set()
        if user_wait:
            pending.add("user")
        return PlanItem(
            Action.CREATE,
            key,
            _label(self.names, group_id, user_id),
            None,
            changes,
            message="member in the directory",
            object_type=ObjectType.MEMBERSHIP,
            pending=frozenset(pending),
        )


def _remove(key: str, row: str, names: Mapping[str, str], why: str) -> PlanItem:
    return PlanItem(
        Action.DELETE,
        key,
        _label(names, *key.split(":", 1)),
        row,
        message=f"no longer a member in the directory; {why}",
        object_type=ObjectType.MEMBERSHIP,
    )
