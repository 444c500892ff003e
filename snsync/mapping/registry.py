"""The core of the expression function library: the value type, the registry every function
is entered in, and the conversions functions share (Azure's text forms, integers, booleans)."""

from __future__ import annotations

import operator
import re
import secrets
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from random import Random
from types import MappingProxyType
from typing import Any, Final, Protocol, TypeAlias

Value: TypeAlias = str | bool | int | list["Value"] | None
"""A value as Microsoft Graph JSON gives it; a missing attribute is None."""

Impl: TypeAlias = Callable[["Args", "EvalContext"], Value]
"""Implementation of one function: reads its arguments on demand."""


class ArgumentError(Exception):
    """A function was given arguments it cannot work with (message omits the function name)."""


class IgnoreFlowSignal(Exception):
    """Raised by IgnoreFlowIfNullOrEmpty; the evaluator turns it into the IGNORE sentinel."""


class Args(Protocol):
    """Arguments of one call, evaluated on first access; a missing optional argument is None."""

    def __len__(self) -> int: ...

    def __getitem__(self, index: int) -> Value: ...


@dataclass(frozen=True)
class EvalContext:
    """Everything an evaluation needs besides the source object."""

    now: Callable[[], datetime] = field(default=lambda: datetime.now(UTC))
    """Clock for Now() and time-only FormatDateTime input; naive results are taken as UTC."""
    is_unique: Callable[[str], bool] | None = None
    """Uniqueness check for SelectUniqueValue; None accepts the first candidate."""
    random: Random | None = None
    """Seeded generator for Guid/RandomString in tests; None uses the OS CSPRNG."""


@dataclass(frozen=True)
class FunctionSpec:
    """Name, arity and implementation of one expression function."""

    name: str
    min_args: int
    max_args: int | None
    impl: Impl
    even_args: bool = False
    top_level_only: bool = False


_REGISTRY: dict[str, FunctionSpec] = {}
FUNCTIONS: Final[Mapping[str, FunctionSpec]] = MappingProxyType(_REGISTRY)
"""Every supported function by its case-sensitive name."""


def to_text(value: Value) -> str | None:
    """String form of a value as Azure renders it (booleans as "True"/"False"); None stays None."""
    if isinstance(value, list):
        return single(value)
    if isinstance(value, bool):
        return "True" if value else "False"
    if value is None or isinstance(value, str):
        return value
    return str(value)  # ints, and any other JSON scalar (a float) a caller passes anyway


def compare_values(op: str, left: Value, right: Value) -> bool:
    """Apply a comparison operator of an IIF condition: numeric when either side is a number."""
    if left is None or right is None:
        # Microsoft: "If the source attribute used within the IIF function is empty or null,
        # the condition check fails", so a silent False would hide bad data.
        raise ArgumentError("cannot compare a null value (use Switch to test for null/empty)")
    if op not in _OPERATORS:
        raise ArgumentError(f"unknown operator {op!r}")
    numbers = _numeric_pair(left, right)
    if numbers is not None:
        return _OPERATORS[op](*numbers)
    return _OPERATORS[op](text_required(left, "left"), text_required(right, "right"))


# --- registration -------------------------------------------------------------------------


def register(
    name: str, min_args: int, max_args: int | None, **flags: bool
) -> Callable[[Impl], Impl]:
    """Decorator entering an implementation in FUNCTIONS under `name` with its arity."""

    def add(impl: Impl) -> Impl:
        _REGISTRY[name] = FunctionSpec(name, min_args, max_args, impl, **flags)
        return impl

    return add


# --- value conversion helpers ---------------------------------------------------------------


def single(values: list[Value]) -> str | None:
    """The one value of a list as text (None when empty); several values are an error."""
    if not values:
        return None
    if len(values) > 1:
        raise ArgumentError(
            f"expected a single value, got a multi-valued one ({len(values)} values)"
        )
    return to_text(values[0])


def text_required(value: Value, what: str) -> str:
    """The value as text; ArgumentError naming `what` when it is null."""
    text = to_text(value)
    if text is None:
        raise ArgumentError(f"{what} is required")
    return text


def int_arg(value: Value, what: str) -> int | None:
    """The value as an integer (null stays None); ArgumentError when it is not one."""
    if value is None or (isinstance(value, int) and not isinstance(value, bool)):
        return value
    text = to_text(value)
    if isinstance(value, bool) or text is None or not re.fullmatch(r"\s*[+-]?\d+\s*", text):
        raise ArgumentError(f"{what} must be an integer, got {value!r}")
    return int(text)


def int_required(value: Value, what: str) -> int:
    """As int_arg, and null is an error too."""
    number = int_arg(value, what)
    if number is None:
        raise ArgumentError(f"{what} is required")
    return number


def _numeric_pair(left: Value, right: Value) -> tuple[int, int] | None:
    # Only a real number on one side makes the comparison numeric: "01" = "1" stays textual.
    if not any(isinstance(v, int) and not isinstance(v, bool) for v in (left, right)):
        return None
    try:
        return int_required(left, "left operand"), int_required(right, "right operand")
    except ArgumentError:
        return None


_OPERATORS: Final[Mapping[str, Callable[[Any, Any], bool]]] = {
    "=": operator.eq,
    "<>": operator.ne,
    "<": operator.lt,
    "<=": operator.le,
    ">": operator.gt,
    ">=": operator.ge,
}


def bool_arg(value: Value) -> bool | None:
    """The value as a boolean: true/false in any case, or a number (0 is false)."""
    if value is None or isinstance(value, bool):
        return value
    if isinstance(value, int):
        return value != 0
    text = text_required(value, "value").strip()
    if text.lower() in ("true", "false"):
        return text.lower() == "true"
    if re.fullmatch(r"[+-]?\d+", text):
        return int(text) != 0
    raise ArgumentError(f"{value!r} is not a boolean or a number")


def values_of(value: Value) -> list[Value]:
    """The value as a list: null is empty, a single value a list of one."""
    if value is None:
        return []
    return value if isinstance(value, list) else [value]


def is_empty(value: Value) -> bool:
    """Null, an empty string or an empty list."""
    return value is None or value == "" or value == []


def rng(ctx: EvalContext) -> Random:
    """The caller's seeded generator, or the OS CSPRNG."""
    # Without a seeded generator from the caller, use the OS CSPRNG: RandomString makes passwords.
    return ctx.random if ctx.random is not None else secrets.SystemRandom()


def simple_case(text: str, upper: bool) -> str:
    """Upper- or lower-case one character at a time, as .NET does."""
    # .NET maps case one character at a time ("ß" stays "ß"), so positions never shift.
    return "".join(_simple_char_case(char, upper) for char in text)


def _simple_char_case(char: str, upper: bool) -> str:
    mapped = char.upper() if upper else char.lower()
    if len(mapped) == 1:
        return mapped
    # U+0130 is the one letter whose simple lowercase (i) differs from its full one (i + dot).
    return "i" if char == "\u0130" and not upper else char
