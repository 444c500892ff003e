"""The plan of a group provisioned on demand (pure): the group, the chosen members as users, and
the membership rows of exactly those members, with the cycle's own planner, trust and membership
rules. Whatever else the partial read brought along (a manager's record, another member's rows)
is only context: no item is planned for it."""

from __future__ import annotations

from collections.abc import Collection, Mapping
from dataclasses import replace

from snsync.config import Config
from snsync.engine.memberships import MembershipPlan, pair_key
from snsync.engine.plan import (
    CyclePlan,
    TablePlan,
    desired,
    make_group_mapper,
    make_mapper,
    plan_cycle_memberships,
    plan_options,
    plan_table,
)
from snsync.engine.planner import with_trust
from snsync.engine.trust import Trust
from snsync.engine.waves import user_waves
from snsync.model import ObjectType, Picture

USER, GROUP, MEMBERSHIP = ObjectType.USER, ObjectType.GROUP, ObjectType.MEMBERSHIP
Links = Mapping[ObjectType, Mapping[str, str]]


def plan_group(
    config: Config,
    picture: Picture,
    links: Links,
    trust: Trust,
    group_id: str,
    member_ids: Collection[str] = (),
) -> CyclePlan:
    """Plan the group `group_id` and the members `member_ids` (in the picture's source), in the
    cycle's wave order: users by manager depth, the group, the membership rows."""
    # Only these objects were read: another object's claim on a record cannot be weighed.
    trust = replace(trust, whole_directory=False)
    source, target = picture.source, picture.target
    user_mapper = make_mapper(config.mappings, target)
    user_options = with_trust(plan_options(config, user_mapper), trust)
    stored_users, stored_groups = links.get(USER, {}), links.get(GROUP, {})
    wanted = desired(user_mapper, source.users, target.users, stored_users, user_options)
    users = _only(
        plan_table(wanted, target.users, target.references, stored_users, user_options),
        member_ids,
    )
    group_mapper = make_group_mapper(config)
    group_options = with_trust(plan_options(config, group_mapper, GROUP), trust)
    group_options = replace(group_options, people=users.links)
    groups = _only(
        plan_table(
            desired(group_mapper, source.groups, target.groups, stored_groups, group_options),
            target.groups,
            target.references,
            stored_groups,
            group_options,
        ),
        (group_id,),
    )
    names = {d.directory_id: d.display_name for d in (*users.desired, *groups.desired)}
    memberships = _pairs(
        plan_cycle_memberships(source, target, users, groups, links, names, trust.account),
        {pair_key(group_id, user_id) for user_id in member_ids},
    )
    waves = (*user_waves(users.plan.items), groups.plan.items, memberships.plan.items)
    in_scope = sum(1 for u in source.users.values() if u.in_scope)
    return CyclePlan(
        users, groups, memberships, (), tuple(w for w in waves if w), picture, in_scope
    )


def members_line(total: int, now: int, bound: int, *, chosen: bool) -> str:
    """What the `members` step says: how many are provisioned now, and how the rest are."""
    if not total:
        return "the group has no user members"
    limit = f"provision.max_group_members is {bound}"
    rest = total - now
    others = f"the other {rest} are" if rest > 1 else "the other one is"
    later = f"{others} synced by the next cycle (snsync run --once)"
    if chosen:
        return f"{now} of {total} chosen with --member" + (f"; {later}" if rest else "")
    if total <= bound:
        return f"all {total} provisioned now ({limit})"
    return f"the first {now} of {total} provisioned now ({limit}); {later}, or choose with --member"


def _only(table: TablePlan, ids: Collection[str]) -> TablePlan:
    """The table plan reduced to the objects of this run."""
    wanted = set(ids)
    items = tuple(i for i in table.plan.items if i.directory_id in wanted)
    kept = tuple(d for d in table.desired if d.directory_id in wanted)
    return replace(table, plan=replace(table.plan, items=items), desired=kept, stale_links=())


def _pairs(planned: MembershipPlan, keys: Collection[str]) -> MembershipPlan:
    """Membership rows of the chosen members only: the group's other rows are not this run's
    (it did not read their users), whatever the plan of the whole group would do with them."""
    wanted = set(keys)
    items = tuple(i for i in planned.plan.items if i.directory_id in wanted)
    return MembershipPlan(
        replace(planned.plan, items=items),
        {k: v for k, v in planned.adopted.items() if k in wanted},
        tuple(k for k in planned.forgotten if k in wanted),
        {k: v for k, v in planned.recovered.items() if k in wanted},
    )
