"""The memory-saving forms of issue 11 item 5: what they share must behave exactly like the
copies they replace (same values, same equality), and share only what is safe to share."""

from __future__ import annotations

from typing import Any

import pytest

from snsync.bounds import over_long_reason
from snsync.engine.directory import refuse_over_long
from snsync.engine.record import kept
from snsync.graph.source import Packer
from snsync.model import (
    Action,
    Change,
    Changes,
    DictView,
    ObjectType,
    PlanItem,
    Row,
    UserAttributes,
    created_value,
)
from snsync.servicenow.batch import WriteKind, WriteRequest, _kept


def fresh(text: str) -> str:
    """An equal string that is another object (as JSON parsing makes them)."""
    return "".join(list(text))


def test_user_attributes_synthesize_on_top_of_the_graph_object_without_copying_it() -> None:
    raw: dict[str, Any] = {
        "id": "u1",
        "manager": {"id": "m1"},
        "city": "Milan",
        "businessPhones": ["+1 555", "+1 556"],
    }
    attributes = UserAttributes(raw, False, ("Admin",))
    assert attributes["manager"] == "m1"  # the synthesized value wins
    assert attributes["city"] == "Milan" and attributes["objectId"] == "u1"
    assert attributes["telephoneNumber"] == "+1 555"
    assert attributes["appRoleAssignments"] == ["Admin"]
    assert attributes["IsSoftDeleted"] is False
    assert "objectId" in attributes and "city" in attributes and "nope" not in attributes
    assert attributes.get("nope") is None and attributes.get("nope", 3) == 3
    assert list(attributes) == [
        "objectId", "IsSoftDeleted", "telephoneNumber", "manager", "appRoleAssignments",
        "id", "city", "businessPhones",
    ]  # fmt: skip
    assert len(attributes) == 8
    assert dict(attributes) == {
        "objectId": "u1", "IsSoftDeleted": False, "telephoneNumber": "+1 555", "manager": "m1",
        "appRoleAssignments": ["Admin"], "id": "u1", "city": "Milan",
        "businessPhones": ["+1 555", "+1 556"],
    }  # fmt: skip
    assert raw["manager"] == {"id": "m1"}  # the Graph object itself is left as read
    with pytest.raises(KeyError):
        attributes["nope"]
    bare = UserAttributes(Row.of({"id": "u2", "manager": None}), True, ())
    assert bare["telephoneNumber"] is None and bare["manager"] is None
    assert bare["IsSoftDeleted"] is True and bare["appRoleAssignments"] == []


def test_a_row_is_the_parsed_object_exactly() -> None:
    parsed: dict[str, Any] = {
        "id": "u1",
        "displayName": "Ada",
        "manager": {"@odata.type": "#microsoft.graph.user", "id": "m1"},
        "businessPhones": ["+1 555"],
        "accountEnabled": True,
        "mail": None,
    }
    row = Packer().pack(parsed)
    assert isinstance(row["manager"], Row)
    assert row.as_dict() == parsed and list(row.as_dict()) == list(parsed)
    assert row == parsed and dict(row.items()) == dict(parsed.items())
    assert row.get("mail", "x") is None and row.get("nope", "x") == "x"
    assert "mail" in row and "nope" not in row and len(row) == 6
    assert repr(row) == repr(parsed) and str(row["manager"]) == str(parsed["manager"])
    with pytest.raises(KeyError):
        row["nope"]
    view = DictView({"u1": row})
    assert view["u1"] == parsed and type(view["u1"]) is dict
    assert type(view["u1"]["manager"]) is dict and "u1" in view and list(view) == ["u1"]


def test_over_long_values_are_measured_and_dropped_alike_in_rows_and_dicts() -> None:
    parsed: dict[str, Any] = {"id": "u1", "manager": {"id": "m" * 40}, "city": "c" * 60}
    row = Packer().pack(parsed)
    assert over_long_reason(row, 30) == over_long_reason(parsed, 30)
    (from_row,), refused_row = refuse_over_long([row], 55)
    (from_dict,), refused_dict = refuse_over_long([parsed], 55)
    assert refused_row == refused_dict and "city" in refused_row["u1"]
    assert isinstance(from_row, Row) and from_row == from_dict == {
        "id": "u1",
        "manager": {"id": "m" * 40},
    }
    (same,), _ = refuse_over_long([row], 1000)
    assert same is row  # read-only: kept as read, not copied


def test_packer_shares_repeated_values_and_ids_and_leaves_unique_attributes_alone() -> None:
    packer = Packer(limit=3)
    users = [
        {"id": fresh(f"id-{n}"), "city": fresh("Milan"), "manager": {"id": fresh("id-0")}}
        for n in range(6)
    ]
    shared = [packer.pack(user) for user in users]
    assert all(user["city"] is shared[0]["city"] for user in shared)
    # Every id is one string object per id, however many times it is read (its manager's).
    assert all(user["manager"]["id"] is shared[0]["id"] for user in shared)
    assert [user["id"] for user in shared] == [f"id-{n}" for n in range(6)]
    names = [packer.pack({"id": fresh("x"), "mail": fresh(f"m{n}")}) for n in range(6)]
    late = packer.pack({"id": fresh("y"), "mail": fresh("m0")})  # past the limit: not shared
    assert late["mail"] == "m0" and late["mail"] is not names[0]["mail"]


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


def test_compact_changes_read_as_the_tuple_of_the_same_changes() -> None:
    made = Changes.created(
        [
            ("active", "true", None, False),
            ("email", fresh("ada@contoso.example"), None, False),
            ("department", "d1", "IT", False),
            ("u_pin", "1234", None, True),
        ]
    )
    whole = (
        Change("active", None, "true"),
        Change("email", None, "ada@contoso.example"),
        Change("department", None, "d1", "IT"),
        Change("u_pin", None, "1234", None, True),
    )
    assert made == whole and whole == made and tuple(made) == whole
    assert hash(made) == hash(whole) and repr(made) == repr(whole)
    assert len(made) == 4 and made[1] == whole[1] and made[-1] == whole[-1]
    assert made[1:3] == whole[1:3]
    more = made.plus([Change("manager", None, "(new user m)"), Change("title", "", "x")])
    assert more == (*whole, Change("manager", None, "(new user m)"), Change("title", "", "x"))
    item = PlanItem(Action.CREATE, "u1", "Ada", None, made)
    assert item == PlanItem(Action.CREATE, "u1", "Ada", None, whole)
    assert {c.field: c.new for c in item.changes}["email"] == "ada@contoso.example"
    assert made != ("active",) and made != "x"


def test_compact_changes_keep_unique_plain_values_only_as_strings() -> None:
    for n in range(300):
        created_value("u_compact_test", f"v{n}", None, False)
    made = Changes.created([("u_compact_test", "v1", None, False), ("active", "true", None, False)])
    assert made._parts[0] == "v1" and isinstance(made._parts[1], Change)
    assert made[0] == Change("u_compact_test", None, "v1")
