"""$filter: the subset of OData that Graph's directory supports, parsed into a predicate."""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from typing import Any

from snsync.sandbox.graph.catalog import COLLECTIONS
from snsync.sandbox.graph.paging import is_counting
from snsync.sandbox.graph.wire import Call, GraphError

_FILTER_TOKEN = re.compile(
    r"\s*(?:(?P<str>'(?:[^']|'')*')"
    r"|(?P<guid>[0-9a-fA-F]{8}-(?:[0-9a-fA-F]{4}-){3}[0-9a-fA-F]{12}\b)"
    r"|(?P<date>\d{4}-\d\d-\d\dT[\d:.]+Z?)"
    r"|(?P<num>-?\d+(?:\.\d+)?)"
    r"|(?P<name>[A-Za-z_][\w./]*)"
    r"|(?P<sym>[(),]))"
)
_COMPARISONS = ("eq", "ne", "gt", "ge", "lt", "le")
_ADVANCED = ("ne", "not", "endswith")

Predicate = Callable[[Mapping[str, Any]], bool]


class ODataFilter:
    """Parses $filter into a predicate over stored properties; 400 for what Graph would refuse."""

    def __init__(self, text: str, catalog: Mapping[str, str], resource: str) -> None:
        self.tokens = self._tokenize(text)
        self.pos = 0
        self.catalog = catalog
        self.resource = resource
        self.advanced = False

    @staticmethod
    def parse(call: Call, catalog: Mapping[str, str], resource: str) -> Predicate:
        text = call.query.get("$filter")
        if text is None:
            return lambda _: True
        if re.search(r"/\s*(any|all)\s*\(", text, re.IGNORECASE):
            # Azure AD supports these on a few collections; the sandbox does not (documented).
            raise GraphError(
                400,
                "Request_UnsupportedQuery",
                "Lambda operators (any/all) are not supported by the snsync sandbox.",
            )
        parser = ODataFilter(text, catalog, resource)
        predicate = parser.expression()
        if parser.pos != len(parser.tokens):
            raise _bad_filter(f"unexpected '{parser.tokens[parser.pos][1]}'")
        if parser.advanced and not is_counting(call):
            # ne, not and endswith are "advanced queries" in Azure AD: they need
            # ConsistencyLevel: eventual and $count=true, or Graph refuses them.
            raise GraphError(400, "Request_UnsupportedQuery", "Unsupported Query.")
        return predicate

    @staticmethod
    def _tokenize(text: str) -> list[tuple[str, str]]:
        tokens: list[tuple[str, str]] = []
        pos = 0
        text = text.rstrip()
        while pos < len(text):
            match = _FILTER_TOKEN.match(text, pos)
            if match is None or match.end() == pos:
                raise _bad_filter(f"syntax error at position {pos} in '{text}'")
            kind = match.lastgroup or ""
            tokens.append((kind, match.group(kind)))
            pos = match.end()
        return tokens

    def peek(self) -> tuple[str, str]:
        return self.tokens[self.pos] if self.pos < len(self.tokens) else ("", "")

    def take(self, value: str | None = None) -> tuple[str, str]:
        token = self.peek()
        if not token[0] or (value is not None and token[1].lower() != value):
            raise _bad_filter(f"expected '{value or 'more'}' at token {self.pos + 1}")
        self.pos += 1
        return token

    def expression(self) -> Predicate:
        left = self.conjunction()
        while self.peek()[1].lower() == "or":
            self.take()
            right = self.conjunction()
            left = (lambda a, b: lambda item: a(item) or b(item))(left, right)
        return left

    def conjunction(self) -> Predicate:
        left = self.unary()
        while self.peek()[1].lower() == "and":
            self.take()
            right = self.unary()
            left = (lambda a, b: lambda item: a(item) and b(item))(left, right)
        return left

    def unary(self) -> Predicate:
        kind, value = self.peek()
        if value.lower() == "not":
            self.take()
            self.advanced = True
            inner = self.unary()
            return lambda item: not inner(item)
        if value == "(":
            self.take()
            inner = self.expression()
            self.take(")")
            return inner
        if kind == "name" and value.lower() in ("startswith", "endswith"):
            return self.function()
        return self.comparison()

    def function(self) -> Predicate:
        name = self.take()[1].lower()
        self.advanced = self.advanced or name == "endswith"
        self.take("(")
        prop = self.property()
        self.take(",")
        literal = self.literal()
        self.take(")")
        if not isinstance(literal, str):
            raise _bad_filter(f"{name} needs a string")
        needle = literal.casefold()

        def test(item: Mapping[str, Any]) -> bool:
            value = item.get(prop)
            if not isinstance(value, str):
                return False
            text = value.casefold()
            return text.startswith(needle) if name == "startswith" else text.endswith(needle)

        return test

    def comparison(self) -> Predicate:
        prop = self.property()
        operator = self.take()[1].lower()
        if operator == "in":
            self.take("(")
            values = [self.literal()]
            while self.peek()[1] == ",":
                self.take()
                values.append(self.literal())
            self.take(")")
            return lambda item: any(_compare(item.get(prop), "eq", v) for v in values)
        if operator not in _COMPARISONS:
            raise _bad_filter(f"unknown operator '{operator}'")
        self.advanced = self.advanced or operator == "ne"
        literal = self.literal()
        return lambda item: _compare(item.get(prop), operator, literal)

    def property(self) -> str:
        kind, value = self.take()
        if kind != "name":
            raise _bad_filter(f"expected a property name, got '{value}'")
        canonical = self.catalog.get(value.lower())
        if canonical is None or canonical in COLLECTIONS or "/" in value:
            raise GraphError(
                400,
                "Request_UnsupportedQuery",
                f"Unsupported or invalid query filter clause specified for property '{value}' of "
                f"resource '{self.resource}'.",
            )
        return canonical

    def literal(self) -> Any:
        kind, value = self.take()
        if kind == "str":
            return value[1:-1].replace("''", "'")
        if kind in ("guid", "date"):
            return value
        if kind == "num":
            return float(value) if "." in value else int(value)
        lowered = value.lower()
        if kind == "name" and lowered in ("true", "false", "null"):
            return {"true": True, "false": False, "null": None}[lowered]
        raise _bad_filter(f"expected a literal, got '{value}'")


def _compare(value: Any, operator: str, literal: Any) -> bool:
    if isinstance(value, str) and isinstance(literal, str):
        value, literal = value.casefold(), literal.casefold()
    if operator == "eq":
        return bool(value == literal)
    if operator == "ne":
        return bool(value != literal)
    if value is None or literal is None or type(value) is not type(literal):
        return False
    return bool(
        {
            "gt": value > literal,
            "ge": value >= literal,
            "lt": value < literal,
            "le": value <= literal,
        }[operator]
    )


def _bad_filter(detail: str) -> GraphError:
    return GraphError(400, "BadRequest", f"Invalid filter clause: {detail}")
