"""The sandbox's ServiceNow encoded-query parser and matcher."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from snsync.sandbox.encoded_query import (
    Condition,
    EncodedQuery,
    FieldKind,
    MappingFields,
    OrderBy,
    compile_query,
    matches,
    order_records,
    parse,
)

FIELDS = MappingFields(
    {
        "sys_id": FieldKind.STRING,
        "user_name": FieldKind.STRING,
        "active": FieldKind.BOOLEAN,
        "sys_mod_count": FieldKind.INTEGER,
        "sys_updated_on": FieldKind.DATETIME,
        "manager": FieldKind.REFERENCE,
        "title": FieldKind.STRING,
    }
)

ADA = {
    "sys_id": "a" * 32,
    "user_name": "ada@contoso.example",
    "active": "true",
    "sys_mod_count": "9",
    "sys_updated_on": "2024-05-01 13:45:00",
    "manager": "",
    "title": "Engineer",
}
BOB = {
    "sys_id": "b" * 32,
    "user_name": "bob@contoso.example",
    "active": "false",
    "sys_mod_count": "10",
    "sys_updated_on": "2023-12-31 23:59:59",
    "manager": "a" * 32,
    "title": "",
}
CY = {
    "sys_id": "c" * 32,
    "user_name": "Cy^Caret",
    "active": "true",
    "sys_mod_count": "2",
    "sys_updated_on": "2024-01-01 00:00:00",
    "manager": "b" * 32,
    "title": "Engineering Manager",
}
PEOPLE = (ADA, BOB, CY)


def names(query: str) -> list[str]:
    """The user_names a query matches, in input order."""
    predicate = compile_query(parse(query), FIELDS)
    return [person["user_name"] for person in PEOPLE if predicate(person)]


def test_parse_builds_segments_clauses_and_order() -> None:
    query = parse(
        "active=true^user_nameSTARTSWITHa^ORtitleISEMPTY^NQsys_mod_count>5^ORDERBYDESCtitle"
    )
    assert query == EncodedQuery(
        segments=(
            (
                (Condition("active", "=", "true"),),
                (Condition("user_name", "STARTSWITH", "a"), Condition("title", "ISEMPTY")),
            ),
            ((Condition("sys_mod_count", ">", "5"),),),
        ),
        order_by=(OrderBy("title", descending=True),),
    )


def test_parse_unescapes_doubled_caret_and_skips_eq_terminator() -> None:
    assert parse("user_name=Cy^^Caret^EQ").segments == (
        ((Condition("user_name", "=", "Cy^Caret"),),),
    )


def test_parse_keeps_unknown_operator_as_dropped_term() -> None:
    assert parse("user_nameMATCHESx").segments == (((Condition("user_nameMATCHESx", ""),),),)


def test_parse_aliases_and_spacing_of_negative_operators() -> None:
    assert parse("titleNOTLIKEx").segments[0][0][0].operator == "NOT LIKE"
    assert parse("titleNOT LIKEx").segments[0][0][0].operator == "NOT LIKE"
    assert parse("titleCONTAINSx").segments[0][0][0].operator == "LIKE"


def test_parse_keeps_related_list_subqueries_as_one_term() -> None:
    query = parse("active=true^RLQUERYsys_user_has_role.user,>0^role=x^ENDRLQUERY^title=y")
    inner = EncodedQuery((((Condition("role", "=", "x"),),),))
    assert query.segments == (
        (
            (Condition("active", "=", "true"),),
            (Condition("sys_user_has_role.user", "RLQUERY", ">0", inner),),
            (Condition("title", "=", "y"),),
        ),
    )


def test_related_terms_are_dropped_where_no_other_tables_exist() -> None:
    query = parse("RLQUERYsys_user_has_role.user,>0^role=x^ENDRLQUERY^JOINsys_user.sys_id=t.u!a=b")
    assert [r for r in PEOPLE if matches(query, r, FIELDS)] == list(PEOPLE)


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ("", ["ada@contoso.example", "bob@contoso.example", "Cy^Caret"]),
        ("user_name=ada@contoso.example", ["ada@contoso.example"]),
        ("user_name=ADA@CONTOSO.EXAMPLE", ["ada@contoso.example"]),  # collation is case-blind
        ("user_name!=ada@contoso.example", ["bob@contoso.example", "Cy^Caret"]),
        ("title!=Engineer", ["bob@contoso.example", "Cy^Caret"]),  # != keeps empty values
        ("active=true", ["ada@contoso.example", "Cy^Caret"]),
        ("active=1", ["ada@contoso.example", "Cy^Caret"]),
        ("active=false", ["bob@contoso.example"]),
        ("active!=true", ["bob@contoso.example"]),
        ("sys_mod_count>9", ["bob@contoso.example"]),  # numeric, not "10" < "9"
        ("sys_mod_count>=9", ["ada@contoso.example", "bob@contoso.example"]),
        ("sys_mod_count<9", ["Cy^Caret"]),
        ("sys_mod_count<=9", ["ada@contoso.example", "Cy^Caret"]),
        ("sys_mod_count=10.0", ["bob@contoso.example"]),
        ("sys_updated_on>2024-01-01 00:00:00", ["ada@contoso.example"]),
        ("sys_updated_on>=2024-01-01 00:00:00", ["ada@contoso.example", "Cy^Caret"]),
        ("sys_updated_on<2024-01-01 00:00:00", ["bob@contoso.example"]),
        (
            "sys_updated_on<javascript:gs.dateGenerate('2024-01-01','00:00:00')",
            ["bob@contoso.example"],
        ),
        ("sys_id>" + "a" * 32, ["bob@contoso.example", "Cy^Caret"]),
        ("title>E", ["ada@contoso.example", "Cy^Caret"]),  # an empty value never compares
        ("user_nameINbob@contoso.example,cy^^caret", ["bob@contoso.example", "Cy^Caret"]),
        ("user_nameNOT INbob@contoso.example,cy^^caret", ["ada@contoso.example"]),
        ("user_nameSTARTSWITHa", ["ada@contoso.example"]),
        ("user_nameENDSWITHcaret", ["Cy^Caret"]),
        ("titleLIKEengineer", ["ada@contoso.example", "Cy^Caret"]),
        ("titleNOT LIKEmanager", ["ada@contoso.example", "bob@contoso.example"]),
        ("titleNOTLIKEmanager", ["ada@contoso.example", "bob@contoso.example"]),
        ("titleISEMPTY", ["bob@contoso.example"]),
        ("titleISNOTEMPTY", ["ada@contoso.example", "Cy^Caret"]),
        ("managerISEMPTY", ["ada@contoso.example"]),
        ("manager=" + "a" * 32, ["bob@contoso.example"]),
        ("titleANYTHING", ["ada@contoso.example", "bob@contoso.example", "Cy^Caret"]),
        ("sys_mod_countBETWEEN2@9", ["ada@contoso.example", "Cy^Caret"]),
        ("user_name=", []),
        ("title=", ["bob@contoso.example"]),
        ("active=true^titleLIKEmanager", ["Cy^Caret"]),
        ("active=false^ORtitle=Engineer", ["ada@contoso.example", "bob@contoso.example"]),
        # ^OR binds to the condition before it: a AND (b OR c)
        ("active=true^title=Engineer^ORtitleISEMPTY", ["ada@contoso.example"]),
        ("active=false^NQtitle=Engineer", ["ada@contoso.example", "bob@contoso.example"]),
        ("^NQuser_name=Cy^^Caret", ["Cy^Caret"]),
        # a condition on an unknown field is dropped: a typo matches every row
        ("usr_name=nobody", ["ada@contoso.example", "bob@contoso.example", "Cy^Caret"]),
        ("usr_name=nobody^active=false", ["bob@contoso.example"]),
        ("active=false^ORusr_name=x", ["bob@contoso.example"]),
        ("user_nameMATCHESada", ["ada@contoso.example", "bob@contoso.example", "Cy^Caret"]),
        ("titleSAMEASuser_name", []),
        ("titleNSAMEASuser_name", ["ada@contoso.example", "bob@contoso.example", "Cy^Caret"]),
        ("active=true^ORDERBYuser_name", ["ada@contoso.example", "Cy^Caret"]),
    ],
)
def test_matching(query: str, expected: list[str]) -> None:
    assert names(query) == expected


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ("", ["ada@contoso.example", "bob@contoso.example", "Cy^Caret"]),
        ("ORDERBYsys_mod_count", ["Cy^Caret", "ada@contoso.example", "bob@contoso.example"]),
        ("ORDERBYDESCsys_mod_count", ["bob@contoso.example", "ada@contoso.example", "Cy^Caret"]),
        ("ORDERBYDESCuser_name", ["Cy^Caret", "bob@contoso.example", "ada@contoso.example"]),
        ("ORDERBYtitle", ["bob@contoso.example", "ada@contoso.example", "Cy^Caret"]),
        (
            "ORDERBYactive^ORDERBYDESCsys_mod_count",
            ["bob@contoso.example", "ada@contoso.example", "Cy^Caret"],
        ),
        (
            "ORDERBYnosuchfield^ORDERBYDESCsys_id",
            ["Cy^Caret", "bob@contoso.example", "ada@contoso.example"],
        ),
    ],
)
def test_ordering(query: str, expected: list[str]) -> None:
    ordered = order_records(PEOPLE, parse(query), FIELDS)
    assert [person["user_name"] for person in ordered] == expected


TERMS = st.sampled_from(
    [
        "active=true",
        "active=false",
        "sys_mod_count>5",
        "sys_mod_count<=2",
        "titleISEMPTY",
        "titleLIKEengineer",
        "user_nameSTARTSWITHb",
        "user_nameINada@contoso.example,cy^^caret",
        "sys_updated_on<2024-01-01 00:00:00",
        "manager!=" + "a" * 32,
    ]
)
RECORDS = st.fixed_dictionaries(
    {
        "sys_id": st.text("0123456789abcdef", min_size=32, max_size=32),
        "user_name": st.sampled_from(["ada@contoso.example", "bob@x", "Cy^Caret", ""]),
        "active": st.sampled_from(["true", "false", ""]),
        "sys_mod_count": st.integers(0, 12).map(str),
        "sys_updated_on": st.sampled_from(["2023-06-01 10:00:00", "2024-02-02 00:00:00", ""]),
        "manager": st.sampled_from(["", "a" * 32, "b" * 32]),
        "title": st.sampled_from(["", "Engineer", "Sales"]),
    }
)


def hit(query: str, record: dict[str, str]) -> bool:
    return matches(parse(query), record, FIELDS)


@given(TERMS, TERMS, RECORDS)
def test_or_matches_iff_either_matches(a: str, b: str, record: dict[str, str]) -> None:
    assert hit(f"{a}^OR{b}", record) == (hit(a, record) or hit(b, record))


@given(TERMS, TERMS, RECORDS)
def test_and_matches_iff_both_match(a: str, b: str, record: dict[str, str]) -> None:
    assert hit(f"{a}^{b}", record) == (hit(a, record) and hit(b, record))


@given(TERMS, TERMS, TERMS, RECORDS)
def test_new_query_matches_iff_either_query_matches(
    a: str, b: str, c: str, record: dict[str, str]
) -> None:
    assert hit(f"{a}^{b}^NQ{c}", record) == ((hit(a, record) and hit(b, record)) or hit(c, record))


@given(TERMS, RECORDS)
def test_unknown_field_never_changes_the_result(a: str, record: dict[str, str]) -> None:
    assert hit(f"{a}^nosuch=1", record) == hit(a, record) == hit(f"{a}^ORnosuch=1", record)


@given(st.sampled_from(["title", "user_name", "manager", "sys_mod_count"]), RECORDS)
def test_equal_and_not_equal_partition_every_record(field: str, record: dict[str, str]) -> None:
    value = record[field].replace("^", "^^")
    assert hit(f"{field}={value}", record)
    assert not hit(f"{field}!={value}", record)


@given(RECORDS, st.lists(st.sampled_from(["Engineer", "Sales", "x"]), min_size=1))
def test_in_and_not_in_are_complements(record: dict[str, str], values: list[str]) -> None:
    listed = ",".join(values)
    assert hit(f"titleIN{listed}", record) != hit(f"titleNOT IN{listed}", record)
