"""Redact(): a changed value still plans an Update, an unchanged one does not, whether
ServiceNow's side is the value or the digest the cached picture keeps; nothing shows the value."""

from __future__ import annotations

from snsync.config import AttributeMapping
from snsync.engine.planner import PlanOptions, plan_users
from snsync.mapping.mapper import Mapper
from snsync.masking import DIGESTS_KEY, MASKED_ATTRIBUTE, Masker
from snsync.model import Action, Reason, SourceObject, TargetSnapshot

MASKER = Masker(b"k" * 32)
MAPPER = Mapper(
    [
        AttributeMapping(target="user_name", source="userPrincipalName", matching=True),
        AttributeMapping(target="employee_number", expression="Redact([employeeId])"),
    ]
)
OPTIONS = PlanOptions(redacted=MAPPER.redacted_targets, masker=MASKER)


def user(**attributes: object) -> SourceObject:
    return SourceObject("u1", "Ada", {"userPrincipalName": "ada@x", **attributes}, True, "")


def record(employee_number: str) -> TargetSnapshot:
    row = {"sys_id": "s1", "user_name": "ada@x", "source": "entra:u1"}
    return TargetSnapshot({"s1": {**row, "employee_number": employee_number}})


def plan(source: SourceObject, target: TargetSnapshot) -> list[tuple[Action, str | None]]:
    result = plan_users([MAPPER.desired(source)], target, {"u1": "s1"}, OPTIONS)
    return [(i.action, i.reason) for i in result.items]


def test_a_changed_redacted_value_plans_an_update_shown_redacted() -> None:
    result = plan_users([MAPPER.desired(user(employeeId="E2"))], record("E1"), {}, OPTIONS)
    (item,) = result.items
    assert item.action is Action.UPDATE
    (change,) = item.changes
    assert (change.new, change.shown_old, change.shown_new) == ("E2", "[redacted]", "[redacted]")


def test_an_unchanged_redacted_value_plans_nothing() -> None:
    assert plan(user(employeeId="E1"), record("E1")) == []


def test_against_the_cached_digest() -> None:
    cached = record(MASKER.digest("E1"))
    assert plan(user(employeeId="E1"), cached) == []
    assert plan(user(employeeId="E2"), cached) == [(Action.UPDATE, None)]


def test_a_cached_directory_object_compares_by_its_digest() -> None:
    masked = user(
        employeeId=MASKED_ATTRIBUTE, **{DIGESTS_KEY: {"employee_number": MASKER.digest("E1")}}
    )
    assert plan(masked, record(MASKER.digest("E1"))) == []
    # ServiceNow changed by hand: the value is not known here, so nothing is written.
    assert plan(masked, record("typed")) == [(Action.SKIP, Reason.REDACTED_NOT_CACHED)]


def test_a_redacted_matching_value_matches_by_digest() -> None:
    mapper = Mapper(
        [
            AttributeMapping(
                target="employee_number", expression="Redact([employeeId])", matching=True
            )
        ]
    )
    options = PlanOptions(
        matching_fields=("employee_number",), redacted=mapper.redacted_targets, masker=MASKER
    )
    target = TargetSnapshot({"s1": {"sys_id": "s1", "employee_number": MASKER.digest("e1")}})
    (item,) = plan_users([mapper.desired(user(employeeId="E1 "))], target, {}, options).items
    assert (item.action, item.sys_id, item.adopt) == (Action.UPDATE, "s1", True)


def test_only_attributes_read_inside_redact_alone_are_left_out_of_the_cache() -> None:
    mapper = Mapper(
        [
            AttributeMapping(target="u_a", expression='Join("-", Redact([employeeId]), [city])'),
            AttributeMapping(target="u_b", expression="Redact([employeeType])"),
            AttributeMapping(target="u_c", source="employeeType"),
            AttributeMapping(target="u_d", expression="Redact(ToUpper([jobTitle]))"),
        ]
    )
    assert mapper.masked_attributes == {"employeeId", "jobTitle"}
    assert mapper.redacted_targets == {"u_a", "u_b", "u_d"}


def test_a_cached_object_without_a_digest_plans_no_write_of_a_guess() -> None:
    masked = user(employeeId=MASKED_ATTRIBUTE)
    assert plan(masked, record("E1")) == [(Action.SKIP, Reason.REDACTED_NOT_CACHED)]
    created = plan_users([MAPPER.desired(masked)], TargetSnapshot({}), {}, OPTIONS).items
    (item,) = created
    assert item.action is Action.CREATE and item.full_next
    assert "employee_number" not in {c.field for c in item.changes}
