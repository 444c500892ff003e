"""Who should have an account: assignments (direct or through groups), excluded roles and scoping
filters, decided as a pure function over what the source read from Graph."""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from snsync.config import ScopeClause, ScopeConfig
from snsync.model import Assignment, ScopeDecision

DEFAULT_ROLE_ID = "00000000-0000-0000-0000-000000000000"


def role_label(role_id: str, roles: Mapping[str, str]) -> str:
    """The role's value (e.g. msiam_access), or 'Default Access' for the default role id."""
    if role_id == DEFAULT_ROLE_ID:
        return roles.get(role_id, "Default Access")
    return roles.get(role_id, role_id)


def counted_assignments(
    assignments: Sequence[Assignment], roles: Mapping[str, str], config: ScopeConfig
) -> tuple[list[Assignment], list[Assignment]]:
    """Split assignments into those that count and those whose role is excluded."""
    excluded = {name.lower() for name in config.excluded_app_roles}
    kept: list[Assignment] = []
    dropped: list[Assignment] = []
    for assignment in assignments:
        names = {assignment.app_role_id.lower(), role_label(assignment.app_role_id, roles).lower()}
        if assignment.app_role_id == DEFAULT_ROLE_ID:
            names.add("default access")
        (dropped if names & excluded else kept).append(assignment)
    return kept, dropped


@dataclass(frozen=True)
class ScopeIndex:
    """Who is assigned, and how, built once per cycle: user id -> reasons and role values."""

    reasons: Mapping[str, tuple[str, ...]]
    excluded: Mapping[str, tuple[str, ...]]
    roles: Mapping[str, tuple[str, ...]]


def build_index(
    assignments: Sequence[Assignment],
    group_members: Mapping[str, Sequence[str]],
    roles: Mapping[str, str],
    config: ScopeConfig,
) -> ScopeIndex:
    """Index the assignments by user, so that deciding scope costs one look-up per user."""
    kept, dropped = counted_assignments(assignments, roles, config)
    reasons: dict[str, list[str]] = {}
    excluded: dict[str, list[str]] = {}
    values: dict[str, list[str]] = {}
    for target, group in ((reasons, kept), (excluded, dropped)):
        for a, user_id, reason in _expand(group, group_members, roles):
            target.setdefault(user_id, []).append(reason)
            if group is kept:
                values.setdefault(user_id, []).append(roles.get(a.app_role_id, "msiam_access"))
    return ScopeIndex(
        {u: tuple(r) for u, r in reasons.items()},
        {u: tuple(r) for u, r in excluded.items()},
        {u: tuple(dict.fromkeys(v)) for u, v in values.items()},
    )


def decide(user: Mapping[str, Any], index: ScopeIndex, config: ScopeConfig) -> ScopeDecision:
    """Decide one user's scope from the index and the scoping filters."""
    user_id = str(user.get("id", ""))
    via = index.reasons.get(user_id, ())
    if not via:
        excluded = index.excluded.get(user_id, ())
        if excluded:
            return ScopeDecision(False, f"only {excluded[0]}, and that role is excluded")
        return ScopeDecision(False, "not assigned to the app, directly or through a group")
    failed = filter_failure(user, config.filters)
    if failed:
        return ScopeDecision(False, f"{via[0]}, but {failed}")
    return ScopeDecision(True, via[0])


def decide_scope(
    user: Mapping[str, Any],
    assignments: Sequence[Assignment],
    group_members: Mapping[str, Sequence[str]],
    roles: Mapping[str, str],
    config: ScopeConfig,
) -> ScopeDecision:
    """Decide one user's scope from the assignments, group memberships and scoping filters."""
    return decide(user, build_index(assignments, group_members, roles, config), config)


def filter_failure(user: Mapping[str, Any], filters: Sequence[Sequence[ScopeClause]]) -> str:
    """Why the user fails the scoping filters (clauses ANDed, filters ORed); empty if it passes."""
    if not filters:
        return ""
    reasons: list[str] = []
    for clauses in filters:
        failing = next((c for c in clauses if not clause_holds(user.get(c.attribute), c)), None)
        if failing is None:
            return ""
        reasons.append(f"{failing.attribute} {failing.operator} {failing.value or ''}".strip())
    return "no scoping filter matches (" + "; ".join(f"failed {r}" for r in reasons) + ")"


def clause_holds(value: Any, clause: ScopeClause) -> bool:
    """Evaluate one scoping clause against an attribute value."""
    op, expected = clause.operator, clause.value or ""
    if op == "IS NULL":
        return value is None or value == "" or value == []
    if op == "IS NOT NULL":
        return not (value is None or value == "" or value == [])
    if op in ("IS TRUE", "IS FALSE"):
        truth = value is True or str(value).lower() == "true"
        return truth if op == "IS TRUE" else (value is False or str(value).lower() == "false")
    values = [_text(v) for v in value] if isinstance(value, list) else [_text(value)]
    return _string_clause(op, values, expected)


def _string_clause(op: str, values: list[str], expected: str) -> bool:
    if op == "EQUALS":
        return expected in values
    if op == "NOT EQUALS":
        return expected not in values
    if op == "REGEX MATCH":
        return any(re.search(expected, v) for v in values)
    if op == "NOT REGEX MATCH":
        return not any(re.search(expected, v) for v in values)
    if op == "Includes":
        return any(expected in v for v in values)
    if op == "ENDS_WITH":
        return any(v.endswith(expected) for v in values)
    return any(_numeric_clause(op, v, expected) for v in values)


def _numeric_clause(op: str, value: str, expected: str) -> bool:
    try:
        left, right = int(value), int(expected)
    except ValueError:
        return False
    if op == "Greater_Than":
        return left > right
    if op == "Greater_Than_OR_EQUALS":
        return left >= right
    if op == "&":
        return left & right == right
    return left & right != right  # "!&"


def _expand(
    assignments: Sequence[Assignment],
    group_members: Mapping[str, Sequence[str]],
    roles: Mapping[str, str],
) -> Iterator[tuple[Assignment, str, str]]:
    """(assignment, user id, reason in words) for every user an assignment reaches."""
    for a in assignments:
        role = role_label(a.app_role_id, roles)
        if a.principal_type == "User":
            yield a, a.principal_id, f"assigned directly (role {role})"
        elif a.principal_type == "Group":
            name = a.principal_name or a.principal_id
            reason = f"member of assigned group '{name}' (role {role})"
            for user_id in dict.fromkeys(group_members.get(a.principal_id, ())):
                yield a, user_id, reason


def _text(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "True" if value else "False"
    return str(value)
