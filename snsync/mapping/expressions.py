"""Parser and evaluator for Microsoft Entra ID attribute-mapping expressions."""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import ClassVar, Final, final

from snsync.mapping.functions import (
    FUNCTIONS,
    ArgumentError,
    EvalContext,
    FunctionSpec,
    IgnoreFlowSignal,
    Value,
    compare_values,
    to_text,
)

__all__ = [
    "IGNORE",
    "MAX_DEPTH",
    "Attribute",
    "Call",
    "Compare",
    "EvalContext",
    "Expr",
    "ExpressionEvalError",
    "ExpressionSyntaxError",
    "IgnoreFlow",
    "Literal",
    "Value",
    "attribute_nodes",
    "evaluate",
    "is_redacted",
    "parse",
    "plain_attributes",
    "referenced_attributes",
    "rename_attributes",
    "to_text",
]

MAX_DEPTH: Final = 64
"""Deepest function nesting parse() accepts; keeps hostile input away from the recursion limit."""


class ExpressionSyntaxError(ValueError):
    """The expression text is malformed; column is the 1-based character offset of the problem."""

    column: int
    reason: str

    def __init__(self, column: int, reason: str) -> None:
        super().__init__(f"col {column}: {reason}")
        self.column = column
        self.reason = reason


class ExpressionEvalError(ValueError):
    """Evaluation failed; the message starts with the function name, then the problem."""


@final
class IgnoreFlow:
    """Type of IGNORE: IgnoreFlowIfNullOrEmpty decided the target attribute must not be written."""

    _instance: ClassVar[IgnoreFlow | None] = None

    def __new__(cls) -> IgnoreFlow:
        if cls._instance is None:
            cls._instance = super().__new__(cls)
        return cls._instance

    def __repr__(self) -> str:
        return "IGNORE"


IGNORE: Final[IgnoreFlow] = IgnoreFlow()


@dataclass(frozen=True)
class Expr:
    """Base class of parsed expression nodes; columns are 1-based and ignored by ==."""


@dataclass(frozen=True)
class Literal(Expr):
    """A string or integer constant; None stands for an omitted argument as in `Fn(a, , b)`."""

    value: str | int | None
    column: int = field(default=0, compare=False)


@dataclass(frozen=True)
class Attribute(Expr):
    """A source attribute reference such as `[givenName]`."""

    name: str
    column: int = field(default=0, compare=False)


@dataclass(frozen=True)
class Call(Expr):
    """A function call such as `ToLower([mail])`."""

    name: str
    args: tuple[Expr, ...] = ()
    column: int = field(default=0, compare=False)


@dataclass(frozen=True)
class Compare(Expr):
    """A comparison such as `[country]="USA"`, as Microsoft documents for IIF conditions."""

    op: str
    left: Expr
    right: Expr
    column: int = field(default=0, compare=False)


def parse(text: str) -> Expr:
    """Parse expression text into a tree; raises ExpressionSyntaxError."""
    tree = _Parser(text).parse()
    _check_top_level_only(tree)
    return tree


def evaluate(
    expr: Expr, source: Mapping[str, Value], ctx: EvalContext | None = None
) -> Value | IgnoreFlow:
    """Evaluate a parsed expression against one source object; raises ExpressionEvalError."""
    try:
        return _evaluate(expr, source, ctx or EvalContext())
    except IgnoreFlowSignal:
        return IGNORE


def referenced_attributes(expr: Expr) -> frozenset[str]:
    """Names of every source attribute the expression reads."""
    return frozenset(node.name for node in _walk(expr) if isinstance(node, Attribute))


def attribute_nodes(expr: Expr) -> list[Attribute]:
    """Every `[name]` of the expression, in the order they appear in its text."""
    return sorted((n for n in _walk(expr) if isinstance(n, Attribute)), key=lambda n: n.column)


def rename_attributes(text: str, renames: Mapping[str, str]) -> str:
    """The expression text with each `[old]` written `[new]`; everything else kept as typed."""
    pieces: list[str] = []
    done = 0
    for node in attribute_nodes(parse(text)):
        start = node.column - 1
        end = start + len(node.name) + 2
        new = renames.get(node.name)
        if new is None or text[start:end] != f"[{node.name}]":
            continue
        pieces += [text[done:start], f"[{new}]"]
        done = end
    return "".join(pieces) + text[done:]


def is_redacted(expr: Expr) -> bool:
    """Whether the result must be kept out of logs: a Redact call appears anywhere in it."""
    # Anywhere, not only outermost: Join("", Redact([secret]), "x") still carries the secret.
    return any(isinstance(node, Call) and node.name == "Redact" for node in _walk(expr))


def plain_attributes(expr: Expr) -> frozenset[str]:
    """Source attributes the expression reads outside any Redact call."""
    if isinstance(expr, Attribute):
        return frozenset({expr.name})
    if isinstance(expr, Call):
        if expr.name == "Redact":
            return frozenset()
        return frozenset().union(*(plain_attributes(a) for a in expr.args))
    if isinstance(expr, Compare):
        return plain_attributes(expr.left) | plain_attributes(expr.right)
    return frozenset()


# --- tokenizer ----------------------------------------------------------------------------


@dataclass(frozen=True)
class _Token:
    kind: str  # name, int, string, attr, op, "(", ")", ",", end
    text: str
    column: int
    value: str | int = ""


_SIMPLE_TOKENS: Final = (
    ("int", re.compile(r"[+-]?[0-9]+")),
    ("hex", re.compile(r"&[Hh][0-9A-Fa-f]+")),  # VB hex literal, as in BitAnd(&HF, &HF7)
    ("name", re.compile(r"[A-Za-z_][A-Za-z0-9_]*")),
    ("op", re.compile(r"<>|<=|>=|[=<>]")),
    ("punct", re.compile(r"[(),]")),
)
# Bare identifiers Microsoft's examples use as constants: InStr("a", "b", 1, vbTextCompare).
_CONSTANTS: Final = frozenset({"vbTextCompare", "vbBinaryCompare"})


def _tokenize(text: str) -> Iterator[_Token]:
    pos = 0
    while True:
        while pos < len(text) and text[pos].isspace():
            pos += 1
        if pos == len(text):
            yield _Token("end", "end of expression", pos + 1)
            return
        token, pos = _read_token(text, pos)
        yield token


def _read_token(text: str, pos: int) -> tuple[_Token, int]:
    if text[pos] == '"':
        return _read_string(text, pos)
    if text[pos] == "[":
        return _read_attribute(text, pos)
    for kind, pattern in _SIMPLE_TOKENS:
        match = pattern.match(text, pos)
        if match is not None:
            return _simple_token(kind, match.group(), pos + 1), match.end()
    raise ExpressionSyntaxError(pos + 1, f"unexpected character {text[pos]!r}")


def _simple_token(kind: str, text: str, column: int) -> _Token:
    if kind == "int":
        return _Token("int", text, column, int(text))
    if kind == "hex":
        return _Token("int", text, column, int(text[2:], 16))
    return _Token(text if kind == "punct" else kind, text, column, text)


def _read_string(text: str, pos: int) -> tuple[_Token, int]:
    chars: list[str] = []
    i = pos + 1
    while i < len(text):
        char = text[i]
        if char == '"':
            return _Token("string", text[pos : i + 1], pos + 1, "".join(chars)), i + 1
        if char == "\\" and text[i + 1 : i + 2] in ('"', "\\"):
            char = text[i + 1]
            i += 1
        # Any other backslash is kept as is, so regex patterns like "\d" survive.
        chars.append(char)
        i += 1
    raise ExpressionSyntaxError(pos + 1, "unterminated string literal")


def _read_attribute(text: str, pos: int) -> tuple[_Token, int]:
    end = pos + 1
    while end < len(text) and (text[end].isalnum() or text[end] in "._-"):
        end += 1
    if end == len(text):
        raise ExpressionSyntaxError(pos + 1, "unterminated attribute name (missing ']')")
    if text[end] != "]":
        raise ExpressionSyntaxError(end + 1, f"invalid character {text[end]!r} in attribute name")
    if end == pos + 1:
        raise ExpressionSyntaxError(pos + 1, "empty attribute name")
    return _Token("attr", text[pos : end + 1], pos + 1, text[pos + 1 : end]), end + 1


# --- parser -------------------------------------------------------------------------------


class _Parser:
    """Recursive descent over: argument := operand [op operand]; operand := call | constant."""

    def __init__(self, text: str) -> None:
        # Tokens are pulled lazily so the first problem by position is the one reported.
        self._tokens = _tokenize(text)
        self._current = next(self._tokens)
        self._depth = 0

    def parse(self) -> Expr:
        if self._current.kind == "end":
            raise ExpressionSyntaxError(1, "empty expression")
        tree = self._argument()
        if self._current.kind != "end":
            token = self._current
            raise ExpressionSyntaxError(token.column, f"unexpected {token.text!r} after expression")
        return tree

    def _advance(self) -> _Token:
        token = self._current
        if token.kind != "end":
            self._current = next(self._tokens)
        return token

    def _argument(self) -> Expr:
        left = self._operand()
        if self._current.kind != "op":
            return left
        operator = self._advance()
        return Compare(operator.text, left, self._operand(), operator.column)

    def _operand(self) -> Expr:
        token = self._current
        if token.kind == "name":
            return self._name()
        if token.kind in ("string", "int"):
            self._advance()
            return Literal(token.value, token.column)
        if token.kind == "attr":
            self._advance()
            return Attribute(str(token.value), token.column)
        if token.kind == "end":
            raise ExpressionSyntaxError(token.column, "unexpected end of expression")
        raise ExpressionSyntaxError(
            token.column, f"expected a function, attribute, string or number, found {token.text!r}"
        )

    def _name(self) -> Expr:
        token = self._advance()
        if self._current.kind != "(":
            if token.text in _CONSTANTS:
                return Literal(token.text, token.column)
            raise ExpressionSyntaxError(
                token.column,
                f"unknown name {token.text!r}: a function call needs '(' and text needs quotes",
            )
        spec = _function(token)
        self._advance()
        self._depth += 1
        if self._depth > MAX_DEPTH:
            raise ExpressionSyntaxError(token.column, f"functions nested over {MAX_DEPTH} deep")
        args = self._arguments()
        self._depth -= 1
        _check_arity(spec, len(args), token.column)
        return Call(spec.name, args, token.column)

    def _arguments(self) -> tuple[Expr, ...]:
        if self._current.kind == ")":
            self._advance()
            return ()
        args = [self._optional_argument()]
        while self._current.kind == ",":
            self._advance()
            args.append(self._optional_argument())
        closing = self._current
        if closing.kind != ")":
            reason = "expected ')'" if closing.kind == "end" else "expected ',' or ')'"
            raise ExpressionSyntaxError(closing.column, reason)
        self._advance()
        return tuple(args)

    def _optional_argument(self) -> Expr:
        token = self._current
        if token.kind in (",", ")"):
            return Literal(None, token.column)
        if token.kind == "end":
            raise ExpressionSyntaxError(token.column, "expected ')'")
        return self._argument()


def _function(token: _Token) -> FunctionSpec:
    spec = FUNCTIONS.get(token.text)
    if spec is not None:
        return spec
    reason = f"unknown function '{token.text}' (names are case-sensitive)"
    near = [name for name in FUNCTIONS if name.lower() == token.text.lower()]
    raise ExpressionSyntaxError(
        token.column, reason + (f"; did you mean '{near[0]}'?" if near else "")
    )


def _check_arity(spec: FunctionSpec, count: int, column: int) -> None:
    low, high = spec.min_args, spec.max_args
    if count < low or (high is not None and count > high):
        raise ExpressionSyntaxError(column, f"{spec.name} takes {_arity(low, high)}, got {count}")
    if spec.even_args and count % 2:
        raise ExpressionSyntaxError(
            column, f"{spec.name} takes an even number of arguments, got {count}"
        )


def _arity(low: int, high: int | None) -> str:
    plural = "" if low == 1 else "s"
    if high is None:
        return f"at least {low} argument{plural}"
    if low == high:
        return f"{low} argument{plural}" if low else "no arguments"
    return f"{low} to {high} arguments"


def _check_top_level_only(tree: Expr) -> None:
    # Microsoft: SelectUniqueValue "must be at the top-level and can't be nested".
    for node in _walk(tree):
        if node is not tree and isinstance(node, Call) and FUNCTIONS[node.name].top_level_only:
            raise ExpressionSyntaxError(node.column, f"{node.name} must be the outermost function")


def _walk(expr: Expr) -> Iterator[Expr]:
    yield expr
    if isinstance(expr, Call):
        for arg in expr.args:
            yield from _walk(arg)
    elif isinstance(expr, Compare):
        yield from _walk(expr.left)
        yield from _walk(expr.right)


# --- evaluator ----------------------------------------------------------------------------


class _LazyArgs:
    """Arguments evaluated on first access, so IIF and Switch only run the branch they pick."""

    def __init__(self, nodes: tuple[Expr, ...], source: Mapping[str, Value], ctx: EvalContext):
        self._nodes = nodes
        self._source = source
        self._ctx = ctx
        self._cache: dict[int, Value] = {}

    def __len__(self) -> int:
        return len(self._nodes)

    def __getitem__(self, index: int) -> Value:
        if not 0 <= index < len(self._nodes):
            return None
        if index not in self._cache:
            self._cache[index] = _evaluate(self._nodes[index], self._source, self._ctx)
        return self._cache[index]


def _evaluate(node: Expr, source: Mapping[str, Value], ctx: EvalContext) -> Value:
    if isinstance(node, Literal):
        return node.value
    if isinstance(node, Attribute):
        return _attribute(source, node.name)
    if isinstance(node, Call):
        return _call(node, source, ctx)
    if isinstance(node, Compare):
        return _compare(node, source, ctx)
    raise TypeError(f"not an expression node: {node!r}")


def _attribute(source: Mapping[str, Value], name: str) -> Value:
    if name in source:
        return source[name]
    # Entra attribute names are case-insensitive ([GivenName] reads givenName).
    folded = name.casefold()
    return next((value for key, value in source.items() if key.casefold() == folded), None)


def _call(node: Call, source: Mapping[str, Value], ctx: EvalContext) -> Value:
    spec = FUNCTIONS.get(node.name)
    if spec is None:
        raise ExpressionEvalError(f"{node.name}: unknown function")
    try:
        return spec.impl(_LazyArgs(node.args, source, ctx), ctx)
    except ExpressionEvalError:
        raise  # from a nested call: already names its own function
    except (ArgumentError, ValueError, OverflowError) as exc:
        raise ExpressionEvalError(f"{node.name}: {exc}") from exc


def _compare(node: Compare, source: Mapping[str, Value], ctx: EvalContext) -> Value:
    left = _evaluate(node.left, source, ctx)
    right = _evaluate(node.right, source, ctx)
    try:
        return compare_values(node.op, left, right)
    except ArgumentError as exc:
        raise ExpressionEvalError(f"comparison '{node.op}' at col {node.column}: {exc}") from exc
