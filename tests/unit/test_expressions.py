"""Tests of the expression parser and evaluator: syntax, errors, IGNORE, attribute references."""

from __future__ import annotations

import contextlib
from datetime import UTC, datetime
from random import Random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from snsync.mapping.expressions import (
    IGNORE,
    MAX_DEPTH,
    Attribute,
    Call,
    Compare,
    EvalContext,
    Expr,
    ExpressionEvalError,
    ExpressionSyntaxError,
    IgnoreFlow,
    Literal,
    Value,
    evaluate,
    is_redacted,
    parse,
    referenced_attributes,
)
from snsync.mapping.functions import FUNCTIONS

SERVICENOW_ACTIVE = 'Switch([IsSoftDeleted], , "False", "1", "True", "0")'


@pytest.mark.parametrize(
    ("text", "tree"),
    [
        ("[givenName]", Attribute("givenName")),
        ("[extension_abc123_costCenter]", Attribute("extension_abc123_costCenter")),
        ("[a.b-c_d9]", Attribute("a.b-c_d9")),
        ('"United States"', Literal("United States")),
        ('""', Literal("")),
        ("42", Literal(42)),
        ("-10", Literal(-10)),
        ("&HF7", Literal(247)),
        ("Guid()", Call("Guid")),
        ("Guid( )", Call("Guid")),
        ("Left([x], 3)", Call("Left", (Attribute("x"), Literal(3)))),
        (" \n\tLeft (\n [x] ,\t3 ) \n", Call("Left", (Attribute("x"), Literal(3)))),
        (
            'Append(ToLower([a]), "@x")',
            Call("Append", (Call("ToLower", (Attribute("a"),)), Literal("@x"))),
        ),
        (
            'Switch([s], , "k", "v")',
            Call("Switch", (Attribute("s"), Literal(None), Literal("k"), Literal("v"))),
        ),
        ('Replace([m], "a", , ,"", ,)', Call("Replace", (Attribute("m"), Literal("a"),
            Literal(None), Literal(None), Literal(""), Literal(None), Literal(None)))),
        ("Join(,)", Call("Join", (Literal(None), Literal(None)))),
        ('IIF([c]="USA", "y", "n")', Call("IIF", (Compare("=", Attribute("c"), Literal("USA")),
            Literal("y"), Literal("n")))),
        ("[a] <> [b]", Compare("<>", Attribute("a"), Attribute("b"))),
        ('InStr("a", "b", 1, vbTextCompare)', Call("InStr", (Literal("a"), Literal("b"),
            Literal(1), Literal("vbTextCompare")))),
    ],
)  # fmt: skip
def test_parse_tree(text: str, tree: Expr) -> None:
    assert parse(text) == tree


@pytest.mark.parametrize(
    ("literal", "value"),
    [
        (r'"Company name: \"Contoso\""', 'Company name: "Contoso"'),  # Microsoft's example
        (r'"back\\slash"', "back\\slash"),
        (r'"\\\""', '\\"'),
        (r'"\d{10}"', r"\d{10}"),  # other backslashes stay, so regexes need no doubling
        ('"multi\nline"', "multi\nline"),
    ],
)
def test_string_escapes(literal: str, value: str) -> None:
    assert parse(literal) == Literal(value)


def test_columns_are_recorded_and_ignored_by_equality() -> None:
    tree = parse('  Join(",",\n [a], Left([b], 2))')
    assert isinstance(tree, Call) and tree.column == 3
    separator, attribute, left = tree.args
    assert isinstance(separator, Literal) and isinstance(attribute, Attribute)
    assert isinstance(left, Call)
    assert (separator.column, attribute.column, left.column) == (8, 14, 19)
    assert tree == Call("Join", (Literal(","), Attribute("a"), Call("Left", (Attribute("b"),
        Literal(2)))))  # fmt: skip


SYNTAX_ERRORS = [
    ("", 1, "empty expression"),
    ("   \n", 1, "empty expression"),
    ("Left([x], 3", 12, "expected ')'"),
    ("Left(", 6, "expected ')'"),
    ("Join(Left([x], 3), [y]", 23, "expected ')'"),
    ("Left([x] 3)", 10, "expected ',' or ')'"),
    ('Append([a], "abc)', 13, "unterminated string literal"),
    ('"abc\\"', 1, "unterminated string literal"),
    ("Foo([x])", 1, "unknown function 'Foo' (names are case-sensitive)"),
    ("Join(\",\", toLower([x]))", 11,
     "unknown function 'toLower' (names are case-sensitive); did you mean 'ToLower'?"),
    ("Switch([x])", 1, "Switch takes at least 2 arguments, got 1"),
    ('Switch([x], "d", "k")', 1, "Switch takes an even number of arguments, got 3"),
    ("Left([x])", 1, "Left takes 2 arguments, got 1"),
    ("Append(ToLower([x], , ,), [y])", 8, "ToLower takes 1 to 2 arguments, got 4"),
    ("Now(1)", 1, "Now takes no arguments, got 1"),
    ("IsNull()", 1, "IsNull takes 1 argument, got 0"),
    ("Left([x], 3) junk", 14, "unexpected 'junk' after expression"),
    ("Left([x], 3))", 13, "unexpected ')' after expression"),
    ('"a" "b"', 5, "unexpected '\"b\"' after expression"),
    ("[given name]", 7, "invalid character ' ' in attribute name"),
    ("[]", 1, "empty attribute name"),
    ("Left([abc, 1)", 10, "invalid character ',' in attribute name"),
    ("[abc", 1, "unterminated attribute name (missing ']')"),
    ("Left([x], @)", 11, "unexpected character '@'"),
    ("Left([x], &H)", 11, "unexpected character '&'"),
    ("givenName", 1, "unknown name 'givenName': a function call needs '(' and text needs quotes"),
    ("[a] =", 6, "unexpected end of expression"),
    ("[a] = = [b]", 7, "expected a function, attribute, string or number, found '='"),
    ('Join(",", ([a]))', 11, "expected a function, attribute, string or number, found '('"),
    ('ToLower(SelectUniqueValue("a", "b"))', 9, "SelectUniqueValue must be the outermost function"),
    ("ToLower(" * (MAX_DEPTH + 1) + "[a]" + ")" * (MAX_DEPTH + 1), MAX_DEPTH * 8 + 1,
     f"functions nested over {MAX_DEPTH} deep"),
]  # fmt: skip


@pytest.mark.parametrize(
    ("text", "column", "reason"), SYNTAX_ERRORS, ids=[e[2] for e in SYNTAX_ERRORS]
)
def test_syntax_error(text: str, column: int, reason: str) -> None:
    with pytest.raises(ExpressionSyntaxError) as caught:
        parse(text)
    assert (caught.value.column, caught.value.reason) == (column, reason)
    assert str(caught.value) == f"col {column}: {reason}"
    assert isinstance(caught.value, ValueError)


def test_nesting_up_to_the_limit_parses_and_evaluates() -> None:
    text = "ToLower(" * MAX_DEPTH + '"ABC"' + ")" * MAX_DEPTH
    assert evaluate(parse(text), {}) == "abc"


@pytest.mark.parametrize(
    ("deleted", "expected"),
    [(True, "0"), (False, "1"), ("True", "0"), ("False", "1"), (None, None)],
)
def test_servicenow_default_active_mapping(deleted: Value, expected: Value) -> None:
    source: dict[str, Value] = {} if deleted is None else {"IsSoftDeleted": deleted}
    assert evaluate(parse(SERVICENOW_ACTIVE), source) == expected


@pytest.mark.parametrize(
    ("expression", "source", "expected"),
    [
        ('Join(",", IgnoreFlowIfNullOrEmpty([x]), "a")', {}, IGNORE),
        ('Join(",", IgnoreFlowIfNullOrEmpty([x]), "a")', {"x": "v"}, "v,a"),
        ("ToUpper(Left(Append(IgnoreFlowIfNullOrEmpty([x]), \"!\"), 3))", {"x": ""}, IGNORE),
        ('IsNull(IgnoreFlowIfNullOrEmpty([x]))', {}, IGNORE),
        ('IIF(IsPresent([x]), [x], IgnoreFlowIfNullOrEmpty([y]))', {"x": "a"}, "a"),
        ('IIF(IsPresent([x]), [x], IgnoreFlowIfNullOrEmpty([y]))', {}, IGNORE),
        ('Switch([k], IgnoreFlowIfNullOrEmpty([y]), "a", "hit")', {"k": "a"}, "hit"),
    ],
)  # fmt: skip
def test_ignore_flow_propagates_out_of_enclosing_calls(
    expression: str, source: dict[str, Value], expected: Value | IgnoreFlow
) -> None:
    assert evaluate(parse(expression), source) == expected


def test_ignore_is_a_singleton() -> None:
    assert IgnoreFlow() is IGNORE
    assert repr(IGNORE) == "IGNORE"


@pytest.mark.parametrize(
    ("expression", "source", "expected"),
    [
        ('[age] > 5', {"age": "30"}, True),
        ('10 > 9', {}, True),
        ('"10" > "9"', {}, False),  # two strings compare as text
        ('[code] = "01"', {"code": "1"}, False),
        ('[n] >= 3', {"n": 3}, True),
        ('[n] <= 2', {"n": 3}, False),
        ('[n] < [m]', {"n": "a", "m": "b"}, True),
        ('[a] <> "x"', {"a": "y"}, True),
        ('[flag] = "True"', {"flag": True}, True),
    ],
)  # fmt: skip
def test_comparisons(expression: str, source: dict[str, Value], expected: bool) -> None:
    assert evaluate(parse(expression), source) is expected


def test_attribute_lookup_prefers_exact_name_then_ignores_case() -> None:
    source: dict[str, Value] = {"givenName": "exact", "GIVENNAME": "other", "mail": "m"}
    assert evaluate(parse("[givenName]"), source) == "exact"
    assert evaluate(parse("[Mail]"), source) == "m"
    assert evaluate(parse("[missing]"), source) is None


def test_evaluate_defaults_context_and_passes_lists_through() -> None:
    source: dict[str, Value] = {"otherMails": ["a@x", "b@x"]}
    assert evaluate(parse("[otherMails]"), source) == ["a@x", "b@x"]
    assert evaluate(parse("Now()"), {}, None) != ""


def test_hand_built_tree_with_unknown_function_fails_cleanly() -> None:
    with pytest.raises(ExpressionEvalError, match=r"^Nope: unknown function$"):
        evaluate(Call("Nope"), {})
    with pytest.raises(ExpressionEvalError, match="unknown operator"):
        evaluate(Compare("~", Literal(1), Literal(2)), {})


@pytest.mark.parametrize(
    ("expression", "attributes"),
    [
        ('"constant"', set()),
        ("[mail]", {"mail"}),
        (SERVICENOW_ACTIVE, {"IsSoftDeleted"}),
        ('Coalesce([mail], Join("@", [mailNickname], "x.com"), [mail])', {"mail", "mailNickname"}),
        ('IIF([country]="USA", [state], [region])', {"country", "state", "region"}),
        ('Replace([telephoneNumber], , "(?<p>\\\\d+)", "p", , [mobile], )',
         {"telephoneNumber", "mobile"}),
    ],
)  # fmt: skip
def test_referenced_attributes(expression: str, attributes: set[str]) -> None:
    assert referenced_attributes(parse(expression)) == frozenset(attributes)


@pytest.mark.parametrize(
    ("expression", "redacted"),
    [
        ("Redact([userPrincipalName])", True),
        ('Join("", "pw-", Redact(RandomString(6,3,0,0,3)))', True),
        ("ToLower([mail])", False),
        ('"Redact"', False),
    ],
)
def test_is_redacted(expression: str, redacted: bool) -> None:
    assert is_redacted(parse(expression)) is redacted


# --- properties ----------------------------------------------------------------------------


@given(st.text())
def test_any_string_literal_round_trips(text: str) -> None:
    escaped = text.replace("\\", "\\\\").replace('"', '\\"')
    assert evaluate(parse(f'"{escaped}"'), {}) == text


@settings(max_examples=300)
@given(st.one_of(st.text(), st.text(alphabet='()[],"\\ =<>&H019-_.aZ\n', max_size=40)))
def test_parser_only_raises_syntax_errors(text: str) -> None:
    try:
        parse(text)
    except ExpressionSyntaxError as error:
        assert 1 <= error.column <= len(text) + 1


SOURCE: dict[str, Value] = {
    "text": "Hello World",
    "empty": "",
    "flag": True,
    "number": 42,
    "numeric": "129699324000000000",
    "date": "2021-06-30T10:00:00Z",
    "list": ["b", "a", "b"],
}
_leaves = st.one_of(
    st.builds(Literal, st.one_of(st.none(), st.text(max_size=12), st.integers(-(10**20), 10**20))),
    st.builds(Attribute, st.sampled_from([*SOURCE, "missing"])),
)


@st.composite
def _calls(draw: st.DrawFn, children: st.SearchStrategy[Expr]) -> Expr:
    spec = FUNCTIONS[draw(st.sampled_from(sorted(FUNCTIONS)))]
    high = spec.max_args if spec.max_args is not None else spec.min_args + 3
    count = draw(st.integers(spec.min_args, high))
    if spec.even_args and count % 2:
        count += 1
    return Call(spec.name, tuple(draw(children) for _ in range(count)))


_trees = st.recursive(
    _leaves,
    lambda children: st.one_of(
        _calls(children),
        st.builds(Compare, st.sampled_from(["=", "<>", "<", ">"]), children, children),
    ),
    max_leaves=12,
)


@settings(max_examples=400, deadline=None)
@given(_trees)
def test_evaluation_only_raises_eval_errors(tree: Expr) -> None:
    context = EvalContext(
        now=lambda: datetime(2021, 7, 2, tzinfo=UTC), is_unique=lambda v: True, random=Random(0)
    )
    with contextlib.suppress(ExpressionEvalError):
        evaluate(tree, SOURCE, context)
