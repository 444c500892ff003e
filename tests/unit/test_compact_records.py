"""The memory-saving forms of issue 11 item 5: what they share must behave exactly like the
copies they replace (same values, same equality), and share only what is safe to share."""

from __future__ import annotations

from typing import Any

import pytest

from snsync.engine.record import kept
from snsync.graph.source import Interner
from snsync.model import (
    Action,
    Attributes,
    Change,
    ObjectType,
    PlanItem,
    created_value,
)
from snsync.servicenow.batch import WriteKind, WriteRequest, _kept


def fresh(text: str) -> str:
    """An equal string that is another object (as JSON parsing makes them)."""
    return "".join(list(text))


def test_attributes_lie_on_top_of_the_graph_object_without_copying_it() -> None:
    raw: dict[str, Any] = {"id": "u1", "manager": {"id": "m1"}, "city": "Milan"}
    attributes = Attributes(raw, {"manager": "m1", "objectId": "u1"})
    assert attributes["manager"] == "m1"  # the synthesized value wins
    assert attributes["city"] == "Milan"
    assert "objectId" in attributes and "city" in attributes and "nope" not in attributes
    assert attributes.get("nope") is None
    assert sorted(attributes) == ["city", "id", "manager", "objectId"]
    assert len(attributes) == 4
    assert attributes == {"id": "u1", "manager": "m1", "city": "Milan", "objectId": "u1"}
    assert raw["manager"] == {"id": "m1"}  # the Graph object itself is left as read
    with pytest.raises(KeyError):
        attributes["nope"]


def test_interner_shares_repeated_values_and_leaves_unique_attributes_alone() -> None:
    interner = Interner(limit=3)
    users = [
        {"id": fresh(f"id-{n}"), "city": fresh("Milan"), "manager": {"id": fresh("m1")}}
        for n in range(6)
    ]
    shared = [interner.share(user) for user in users]
    assert all(user["city"] is shared[0]["city"] for user in shared)
    assert all(user["manager"]["id"] is shared[0]["manager"]["id"] for user in shared)
    assert [user["id"] for user in shared] == [f"id-{n}" for n in range(6)]
    late = interner.share({"id": fresh("id-0")})  # "id" went past the limit: not interned
    assert late["id"] == "id-0" and late["id"] is not shared[0]["id"]


def test_created_values_repeat_as_one_object_but_never_a_redacted_one() -> None:
    first, second = (
        created_value("city", fresh("Milan"), None, False),
        created_value("city", fresh("Milan"), None, False),
    )
    assert first is second and first == Change("city", None, "Milan")
    assert created_value("city", "Milan", "label", False) is not first  # label differs
    secret = created_value("u_pin", "1234", None, True)
    assert secret.redacted and secret is not created_value("u_pin", "1234", None, True)


def test_created_values_of_a_field_with_many_values_are_new_objects() -> None:
    for n in range(300):
        created_value("u_unique_test_field", f"value-{n}", None, False)
    late = created_value("u_unique_test_field", "value-1", None, False)
    assert late == Change("u_unique_test_field", None, "value-1")
    assert late is not created_value("u_unique_test_field", "value-1", None, False)


def test_a_write_answer_keeps_the_sent_strings_and_interns_what_was_not_sent() -> None:
    sent = {"user_name": "ada", "title": "Engineer"}
    request = WriteRequest(WriteKind.CREATE, "sys_user", sent, fields=("user_name", "title", "x"))
    answer = {
        "sys_id": "s1",
        "user_name": fresh("ada"),
        "title": "Senior Engineer",  # the instance changed it: the answer's value is kept
        "x": fresh("admin"),
        "other": "not asked for",
    }
    first = _kept(answer, request.fields, request.values)
    assert first == {"sys_id": "s1", "user_name": "ada", "title": "Senior Engineer", "x": "admin"}
    assert first["user_name"] is sent["user_name"]
    again = _kept({**answer, "sys_id": "s2", "x": fresh("admin")}, request.fields, request.values)
    assert again["x"] is first["x"]


def test_the_cached_picture_keeps_an_answer_as_is_when_it_holds_only_kept_fields() -> None:
    answer = {"sys_id": "s1", "user": "u", "group": "g"}
    assert kept(answer, ("user", "group")) is answer
    wider = {**answer, "title": "x"}
    assert kept(wider, ("user", "group")) == answer


def test_plan_items_share_their_pending_sets_and_an_empty_deferred_map() -> None:
    def item(key: str) -> PlanItem:
        return PlanItem(
            Action.CREATE,
            key,
            key,
            None,
            pending=frozenset({"group", "user"}),
            object_type=ObjectType.MEMBERSHIP,
        )

    one, two = item("g:u1"), item("g:u2")
    assert one.pending is two.pending and one.pending == {"group", "user"}
    assert one.deferred == {} and one.deferred is two.deferred
    assert one == item("g:u1")
