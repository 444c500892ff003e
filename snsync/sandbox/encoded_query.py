"""ServiceNow encoded queries (`sysparm_query`): parse the text once, then match and order records.

Semantics follow the platform: `^` is AND, `^OR` binds to the condition before it (so `a^b^ORc`
is `a AND (b OR c)`), `^NQ` starts a new query ORed with the others, `^^` is a literal caret.
String comparisons are case-insensitive, as the platform's database collation makes them.
A condition on a field the table does not have, or with an operator not understood, is dropped,
so a typo widens the match instead of failing it (the platform's default).

Two terms reach other tables: `RLQUERY<table>.<field>,<op><n>^...^ENDRLQUERY` keeps records
that have (`>=1`), lack (`=0`) or have so many related rows matching the inner query, and
`JOIN<table>.<field>=<other>.<other_field>!<condition>` keeps records whose field equals the
other field of some row of the other table matching the condition.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from enum import Enum
from typing import Protocol, TypeVar

Record = Mapping[str, str]
Predicate = Callable[[Record], bool]
Getter = Callable[[Record], str]
R = TypeVar("R", bound=Record)


class FieldKind(Enum):
    """How a field's string value compares and sorts."""

    STRING = "string"
    BOOLEAN = "boolean"
    INTEGER = "integer"
    DATETIME = "glide_date_time"
    REFERENCE = "reference"


@dataclass(frozen=True)
class Condition:
    """One `field OPERATOR value` term; `operator` is canonical, "" when not understood."""

    field: str
    operator: str
    value: str = ""
    related: EncodedQuery | None = None  # the inner query of RLQUERY and JOIN


@dataclass(frozen=True)
class OrderBy:
    """One `ORDERBY` / `ORDERBYDESC` term."""

    field: str
    descending: bool = False


Clause = tuple[Condition, ...]  # conditions joined by ^OR
Segment = tuple[Clause, ...]  # clauses joined by ^


@dataclass(frozen=True)
class EncodedQuery:
    """A parsed query: segments joined by ^NQ, each an AND of OR-clauses, plus the ordering."""

    segments: tuple[Segment, ...] = ()
    order_by: tuple[OrderBy, ...] = ()


class Fields(Protocol):
    """What the matcher needs to know about a table's fields (dot-walked paths included)."""

    def kind(self, path: str) -> FieldKind | None:
        """The field's kind, or None when the table has no such field."""
        ...

    def getter(self, path: str) -> Getter:
        """A function reading the field's stored value from a record ("" when absent)."""
        ...

    def sort_getter(self, path: str) -> Getter:
        """A function reading the value the field sorts by (a reference sorts by display value)."""
        ...

    def related_counts(self, table: str, field: str, query: EncodedQuery) -> Counts | None:
        """How many rows of another table match the query, by their (lower-cased) value of
        `field`; None when the table or field does not exist."""
        ...


Counts = Mapping[str, int]

OPERATORS = (
    "=",
    "!=",
    ">",
    ">=",
    "<",
    "<=",
    "IN",
    "NOT IN",
    "STARTSWITH",
    "ENDSWITH",
    "LIKE",
    "NOT LIKE",
    "ISEMPTY",
    "ISNOTEMPTY",
    "EMPTYSTRING",
    "ANYTHING",
    "BETWEEN",
    "SAMEAS",
    "NSAMEAS",
)


def parse(text: str) -> EncodedQuery:
    """Parse an encoded query; never fails (what is not understood is kept as a dropped term)."""
    return _parse_pieces(iter(_split(text)))


def _parse_pieces(pieces: Iterator[str], *, until: str = "") -> EncodedQuery:
    segments: list[list[list[Condition]]] = [[]]
    order: list[OrderBy] = []
    for piece in pieces:
        if until and piece == until:
            break
        if piece.startswith("NQ"):
            segments.append([])
            piece = piece[2:]
        if piece in ("", "EQ") or piece.startswith("GROUPBY"):
            continue
        if piece.startswith("RLQUERY"):
            inner = _parse_pieces(pieces, until="ENDRLQUERY")
            segments[-1].append([_related_list(piece[len("RLQUERY") :], inner)])
        elif piece.startswith("JOIN"):
            segments[-1].append([_join(piece[len("JOIN") :])])
        elif piece.startswith("ORDERBYDESC"):
            order.append(OrderBy(piece[len("ORDERBYDESC") :], descending=True))
        elif piece.startswith("ORDERBY"):
            order.append(OrderBy(piece[len("ORDERBY") :]))
        elif piece.startswith("OR") and segments[-1]:
            segments[-1][-1].append(_condition(piece[2:]))
        else:
            segments[-1].append([_condition(piece.removeprefix("OR"))])
    kept = tuple(tuple(tuple(clause) for clause in seg) for seg in segments if seg)
    return EncodedQuery(kept, tuple(order))


def compile_query(query: EncodedQuery, fields: Fields) -> Predicate:
    """A predicate over records; field kinds are resolved once, not per record."""
    segments = [_compile_segment(segment, fields) for segment in query.segments]
    if not segments:
        return _always
    if len(segments) == 1:
        return segments[0]
    return lambda record: any(segment(record) for segment in segments)


def matches(query: EncodedQuery, record: Record, fields: Fields) -> bool:
    """Whether one record matches the query."""
    return compile_query(query, fields)(record)


def order_records(records: Iterable[R], query: EncodedQuery, fields: Fields) -> list[R]:
    """Records in the query's ORDERBY order; ties keep the order they came in."""
    ordered = list(records)
    for term in reversed(query.order_by):
        kind = fields.kind(term.field)
        if kind is None:
            continue
        key = _sort_key(kind, fields.sort_getter(term.field))
        ordered.sort(key=key, reverse=term.descending)
    return ordered


def is_true(text: str) -> bool:
    """ServiceNow's reading of a boolean value."""
    return text.strip().lower() in ("true", "1")


@dataclass(frozen=True)
class MappingFields:
    """`Fields` over flat records whose field kinds are known up front."""

    kinds: Mapping[str, FieldKind]

    def kind(self, path: str) -> FieldKind | None:
        """The field's kind, or None when unknown."""
        return self.kinds.get(path)

    def getter(self, path: str) -> Getter:
        """Read the field straight from the record."""
        return lambda record: record.get(path, "")

    def sort_getter(self, path: str) -> Getter:
        """Flat records sort by their stored values."""
        return self.getter(path)

    def related_counts(self, table: str, field: str, query: EncodedQuery) -> Counts | None:
        """Flat records have no other tables: RLQUERY and JOIN terms are dropped."""
        return None


_CONDITION = re.compile(
    r"([a-z0-9_][a-z0-9_.]*)"
    r"(ISNOTEMPTY|ISEMPTY|EMPTYSTRING|ANYTHING|NOT IN|NOT LIKE|NOTLIKE|DOES NOT CONTAIN|CONTAINS"
    r"|INSTANCEOF|IN|STARTSWITH|ENDSWITH|LIKE|BETWEEN|NSAMEAS|SAMEAS|!=|>=|<=|=|>|<)?(.*)",
    re.DOTALL,
)
_ALIASES = {"NOTLIKE": "NOT LIKE", "CONTAINS": "LIKE", "DOES NOT CONTAIN": "NOT LIKE"}
_UNARY = ("ISEMPTY", "ISNOTEMPTY", "EMPTYSTRING", "ANYTHING")
_COUNT = re.compile(r"(>=|<=|!=|>|<|=)([0-9]+)")
# The form the platform's own condition builder writes a date-time in.
_DATE_GENERATE = re.compile(r"javascript:gs\.dateGenerate\('([0-9-]+)','([0-9:]+)'\)")


def _split(text: str) -> list[str]:
    # `^^` is an escaped caret inside a value, a single `^` separates terms.
    pieces: list[str] = []
    current: list[str] = []
    index = 0
    while index < len(text):
        char = text[index]
        if char == "^" and text.startswith("^^", index):
            current.append("^")
            index += 2
            continue
        if char == "^":
            pieces.append("".join(current))
            current = []
        else:
            current.append(char)
        index += 1
    pieces.append("".join(current))
    return pieces


def _condition(term: str) -> Condition:
    found = _CONDITION.fullmatch(term)
    if found is None or found.group(2) is None:
        return Condition(term, "")
    field, operator, value = found.groups()
    operator = _ALIASES.get(operator, operator)
    value = _DATE_GENERATE.sub(r"\1 \2", value)
    if operator not in OPERATORS:
        return Condition(field, "", value)
    return Condition(field, operator, "" if operator in _UNARY else value)


def _related_list(head: str, inner: EncodedQuery) -> Condition:
    # `sys_user_grmember.user,>=1` (an optional `,m2m` after the count is ignored)
    target, _, count = head.partition(",")
    count = count.split(",")[0].strip()
    if not _COUNT.fullmatch(count) or "." not in target:
        return Condition(head, "")
    return Condition(target, "RLQUERY", count, inner)


def _join(body: str) -> Condition:
    # `sys_user.sys_id=sys_user_grmember.user!group=<sys_id>`
    link, _, condition = body.partition("!")
    this, _, other = link.partition("=")
    this_field = this.partition(".")[2]
    if not this_field or "." not in other:
        return Condition(body, "")
    return Condition(this_field, "JOIN", other, parse(condition))


def _always(record: Record) -> bool:
    return True


def _compile_segment(segment: Segment, fields: Fields) -> Predicate:
    clauses = [_compile_clause(clause, fields) for clause in segment]
    kept = [clause for clause in clauses if clause is not None]
    if not kept:
        return _always
    if len(kept) == 1:
        return kept[0]
    return lambda record: all(clause(record) for clause in kept)


def _compile_clause(clause: Clause, fields: Fields) -> Predicate | None:
    terms = [_compile_condition(condition, fields) for condition in clause]
    kept = [term for term in terms if term is not None]
    if not kept:
        return None  # every term dropped: the clause does not narrow anything
    if len(kept) == 1:
        return kept[0]
    return lambda record: any(term(record) for term in kept)


def _compile_condition(condition: Condition, fields: Fields) -> Predicate | None:
    if condition.operator in ("RLQUERY", "JOIN") and condition.related is not None:
        return _compile_related(condition, condition.related, fields)
    kind = fields.kind(condition.field)
    if kind is None or not condition.operator:
        return None
    read = fields.getter(condition.field)
    if condition.operator in ("SAMEAS", "NSAMEAS"):
        return _same_as(condition, kind, read, fields)
    test = _test(condition.operator, kind, condition.value)
    return lambda record: test(read(record))


def _compile_related(condition: Condition, inner: EncodedQuery, fields: Fields) -> Predicate | None:
    if condition.operator == "RLQUERY":
        table, _, field = condition.field.partition(".")
        found = _COUNT.fullmatch(condition.value)
        related = fields.related_counts(table, field, inner)
        if related is None or found is None:
            return None
        counts: Counts = related
        test = _count_test(found.group(1), int(found.group(2)))
        own = fields.getter("sys_id")
        return lambda record: test(counts.get(own(record).lower(), 0))
    table, _, field = condition.value.partition(".")
    joined = fields.related_counts(table, field, inner)
    if joined is None or fields.kind(condition.field) is None:
        return None
    matched: Counts = joined
    read = fields.getter(condition.field)
    return lambda record: matched.get(read(record).lower(), 0) > 0


def _count_test(operator: str, wanted: int) -> Callable[[int], bool]:
    tests: dict[str, Callable[[int], bool]] = {
        ">": lambda n: n > wanted,
        ">=": lambda n: n >= wanted,
        "<": lambda n: n < wanted,
        "<=": lambda n: n <= wanted,
        "=": lambda n: n == wanted,
        "!=": lambda n: n != wanted,
    }
    return tests[operator]


def _same_as(
    condition: Condition, kind: FieldKind, read: Getter, fields: Fields
) -> Predicate | None:
    if fields.kind(condition.value) is None:
        return None
    other = fields.getter(condition.value)
    wanted = condition.operator == "SAMEAS"
    return lambda record: (_norm(kind, read(record)) == _norm(kind, other(record))) == wanted


def _test(operator: str, kind: FieldKind, raw: str) -> Callable[[str], bool]:
    if operator in ("ISEMPTY", "EMPTYSTRING"):
        return lambda value: value.strip() == ""
    if operator == "ISNOTEMPTY":
        return lambda value: value.strip() != ""
    if operator == "ANYTHING":
        return lambda value: True
    if operator in ("=", "!="):
        return _equality(kind, raw, operator == "=")
    if operator in ("IN", "NOT IN"):
        wanted = {_norm(kind, item) for item in raw.split(",")}
        member = operator == "IN"
        return lambda value: (_norm(kind, value) in wanted) == member
    if operator in (">", ">=", "<", "<=", "BETWEEN"):
        return _range(operator, kind, raw)
    return _text_test(operator, raw.lower())


def _equality(kind: FieldKind, raw: str, equal: bool) -> Callable[[str], bool]:
    wanted = _norm(kind, raw)
    # `!=` keeps empty values: the platform adds "OR field IS NULL" to a negative condition.
    return lambda value: (_norm(kind, value) == wanted) == equal


def _range(operator: str, kind: FieldKind, raw: str) -> Callable[[str], bool]:
    low, _, high = raw.partition("@") if operator == "BETWEEN" else (raw, "", raw)
    low_key, high_key = _order_value(kind, low), _order_value(kind, high)
    if low_key is None or high_key is None:
        return lambda value: False
    checks: dict[str, Callable[[tuple[int, float, str]], bool]] = {
        ">": lambda key: key > low_key,
        ">=": lambda key: key >= low_key,
        "<": lambda key: key < low_key,
        "<=": lambda key: key <= low_key,
        "BETWEEN": lambda key: low_key <= key <= high_key,
    }
    check = checks[operator]

    def test(value: str) -> bool:
        key = _order_value(kind, value) if value.strip() else None
        return key is not None and check(key)  # an empty value never compares (SQL NULL)

    return test


def _text_test(operator: str, wanted: str) -> Callable[[str], bool]:
    if operator == "STARTSWITH":
        return lambda value: value != "" and value.lower().startswith(wanted)
    if operator == "ENDSWITH":
        return lambda value: value != "" and value.lower().endswith(wanted)
    if operator == "LIKE":
        return lambda value: value != "" and wanted in value.lower()
    return lambda value: wanted not in value.lower()  # NOT LIKE, empty values included


def _norm(kind: FieldKind, value: str) -> str:
    if kind is FieldKind.BOOLEAN:
        lowered = value.strip().lower()
        return (
            "true"
            if lowered in ("true", "1")
            else "false"
            if lowered in ("false", "0", "")
            else lowered
        )
    if kind is FieldKind.INTEGER:
        number = _number(value)
        return value.strip() if number is None else repr(number)
    return value.lower()


def _order_value(kind: FieldKind, value: str) -> tuple[int, float, str] | None:
    if kind is FieldKind.INTEGER:
        number = _number(value)
        return None if number is None else (0, number, "")
    return (0, 0.0, _norm(kind, value))


def _number(value: str) -> float | None:
    try:
        return float(value.replace(",", ""))
    except ValueError:
        return None


def _sort_key(kind: FieldKind, read: Getter) -> Callable[[Record], tuple[int, float, str]]:
    def key(record: Record) -> tuple[int, float, str]:
        value = read(record)
        if not value.strip():
            return (-1, 0.0, "")  # empty sorts first ascending, as NULL does
        return _order_value(kind, value) or (1, 0.0, value.lower())

    return key
