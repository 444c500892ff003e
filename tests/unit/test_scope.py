"""Scope: assignments, groups, excluded roles and scoping filters (pure)."""

from __future__ import annotations

from typing import Any

import pytest

from snsync.config import ScopeClause, ScopeConfig
from snsync.engine.scope import DEFAULT_ROLE_ID, clause_holds, decide_scope
from snsync.model import Assignment

ROLES = {"r-user": "User", "r-msiam": "msiam_access"}
ASSIGNMENTS = (
    Assignment("a1", "u-direct", "User", "r-user"),
    Assignment("a2", "g-agents", "Group", "r-user", "ServiceNow Agents"),
    Assignment("a3", "u-default", "User", DEFAULT_ROLE_ID),
    Assignment("a4", "u-msiam", "User", "r-msiam"),
    Assignment("a5", "sp-1", "ServicePrincipal", "r-user"),
)
MEMBERS = {"g-agents": ("u-member",)}


def decide(user_id: str, config: ScopeConfig | None = None, **attrs: Any) -> tuple[bool, str]:
    decision = decide_scope(
        {"id": user_id, **attrs}, ASSIGNMENTS, MEMBERS, ROLES, config or ScopeConfig()
    )
    return decision.in_scope, decision.reason


@pytest.mark.parametrize(
    ("user_id", "in_scope", "reason_part"),
    [
        ("u-direct", True, "assigned directly (role User)"),
        ("u-member", True, "member of assigned group 'ServiceNow Agents'"),
        ("u-default", True, "Default Access"),
        ("u-msiam", True, "msiam_access"),
        ("u-nobody", False, "not assigned"),
        ("sp-1", False, "not assigned"),
    ],
)
def test_assignment_scope(user_id: str, in_scope: bool, reason_part: str) -> None:
    got, reason = decide(user_id)
    assert got is in_scope and reason_part in reason


@pytest.mark.parametrize("excluded", ["msiam_access", "r-msiam", "MSIAM_ACCESS"])
def test_excluded_roles_by_value_or_id(excluded: str) -> None:
    got, reason = decide("u-msiam", ScopeConfig(excluded_app_roles=[excluded]))
    assert not got and "excluded" in reason


def test_default_access_can_be_excluded() -> None:
    assert not decide("u-default", ScopeConfig(excluded_app_roles=["Default Access"]))[0]


def test_filters_and_within_or_between() -> None:
    sales = [
        ScopeClause(attribute="department", operator="EQUALS", value="Sales"),
        ScopeClause(attribute="country", operator="EQUALS", value="US"),
    ]
    it = [ScopeClause(attribute="department", operator="EQUALS", value="IT")]
    config = ScopeConfig(filters=[sales, it])
    assert decide("u-direct", config, department="Sales", country="US")[0]
    assert decide("u-direct", config, department="IT", country="FR")[0]
    got, reason = decide("u-direct", config, department="Sales", country="FR")
    assert not got and "failed country EQUALS US" in reason


@pytest.mark.parametrize(
    ("operator", "clause_value", "value", "expected"),
    [
        ("EQUALS", "Sales", "Sales", True),
        ("EQUALS", "Sales", "sales", False),
        ("NOT EQUALS", "Sales", "IT", True),
        ("IS TRUE", None, True, True),
        ("IS TRUE", None, "false", False),
        ("IS FALSE", None, False, True),
        ("IS NULL", None, None, True),
        ("IS NULL", None, "", True),
        ("IS NOT NULL", None, "x", True),
        ("REGEX MATCH", r"^\d{4}$", "1234", True),
        ("REGEX MATCH", r"^\d{4}$", "12345", False),
        ("NOT REGEX MATCH", r"^temp", "temp-1", False),
        ("Includes", "ops", "devops team", True),
        ("Includes", "a@x", ["b@x", "a@x"], True),
        ("ENDS_WITH", "@contoso.example", "ann@contoso.example", True),
        ("Greater_Than", "10", "11", True),
        ("Greater_Than", "10", "10", False),
        ("Greater_Than_OR_EQUALS", "10", "10", True),
        ("Greater_Than", "10", "abc", False),
        ("&", "2", "6", True),
        ("&", "2", "5", False),
        ("!&", "2", "5", True),
    ],
)
def test_clause_operators(
    operator: str, clause_value: str | None, value: Any, expected: bool
) -> None:
    clause = ScopeClause(attribute="x", operator=operator, value=clause_value)  # type: ignore[arg-type]
    assert clause_holds(value, clause) is expected
