"""Function library of the Entra ID attribute-mapping expression language: every function,
entered in the registry (registry.py) by name."""

from __future__ import annotations

import base64
import re
import string
import unicodedata
import uuid
from datetime import datetime, timedelta
from random import Random
from typing import Final

from snsync.mapping.dates import (
    FILETIME_EPOCH,
    add_interval,
    as_utc,
    check_styles,
    diff_interval,
    format_datetime,
    interval_name,
    parse_datetime,
    parse_exact,
)
from snsync.mapping.registry import (
    FUNCTIONS,
    Args,
    ArgumentError,
    EvalContext,
    FunctionSpec,
    IgnoreFlowSignal,
    Value,
    compare_values,
    to_text,
)
from snsync.mapping.registry import bool_arg as _bool
from snsync.mapping.registry import int_arg as _int
from snsync.mapping.registry import int_required as _int_required
from snsync.mapping.registry import is_empty as _is_empty
from snsync.mapping.registry import register as _register
from snsync.mapping.registry import rng as _rng
from snsync.mapping.registry import simple_case as _simple_case
from snsync.mapping.registry import text_required as _text_required
from snsync.mapping.registry import values_of as _values

__all__ = [
    "FUNCTIONS",
    "ArgumentError",
    "EvalContext",
    "FunctionSpec",
    "IgnoreFlowSignal",
    "Value",
    "compare_values",
    "normalize_diacritics",
    "to_text",
]


def normalize_diacritics(text: str) -> str:
    """Replace accented Latin letters by plain ones, as Microsoft's NormalizeDiacritics table."""
    decomposed = unicodedata.normalize("NFD", text.translate(_LIGATURES))
    kept: list[str] = []
    latin_base = False
    for char in decomposed:
        if unicodedata.combining(char):
            # Only marks on Latin letters go: other scripts (e.g. Devanagari) need theirs.
            if not latin_base:
                kept.append(char)
            continue
        latin_base = char.isascii() and char.isalpha()
        kept.append(char)
    return unicodedata.normalize("NFC", "".join(kept))


# --- strings ----------------------------------------------------------------------------------


@_register("Append", 2, 2)
def _append(args: Args, ctx: EvalContext) -> Value:
    source = to_text(args[0])
    if source is None:
        return None
    return source + (to_text(args[1]) or "")


@_register("Join", 2, None)
def _join(args: Args, ctx: EvalContext) -> Value:
    separator = to_text(args[0]) or ""
    parts = (to_text(v) for i in range(1, len(args)) for v in _values(args[i]))
    # Microsoft's example Join(", ", "", [surname], [givenName]) gives "Doe, John": skip empties.
    return separator.join(p for p in parts if p)


@_register("Left", 2, 2)
def _left(args: Args, ctx: EvalContext) -> Value:
    text = to_text(args[0]) or ""
    count = _int_required(args[1], "NumChars")
    return text if count < 0 else text[:count]


@_register("Mid", 3, 3)
def _mid(args: Args, ctx: EvalContext) -> Value:
    text = to_text(args[0])
    start = _int_required(args[1], "start")
    length = _int_required(args[2], "length")
    if start < 1 or length < 0:
        raise ArgumentError(f"start must be 1 or more and length 0 or more, got {start}, {length}")
    return None if text is None else text[start - 1 : start - 1 + length]


@_register("InStr", 2, 4)
def _instr(args: Args, ctx: EvalContext) -> Value:
    haystack, needle = to_text(args[0]), to_text(args[1])
    start = _int(args[2], "start")
    start = 1 if start is None else start
    if start < 1:
        raise ArgumentError(f"start must be 1 or more, got {start}")
    if haystack is None or needle is None:
        return None
    if _text_compare(args[3]):
        haystack, needle = _simple_case(haystack, False), _simple_case(needle, False)
    return haystack.find(needle, start - 1) + 1


def _text_compare(value: Value) -> bool:
    mode = to_text(value)
    if mode in (None, "vbBinaryCompare", "0"):
        return False
    if mode in ("vbTextCompare", "1"):
        return True
    raise ArgumentError(f"compareType must be vbBinaryCompare or vbTextCompare, got {mode!r}")


@_register("StripSpaces", 1, 1)
def _strip_spaces(args: Args, ctx: EvalContext) -> Value:
    text = to_text(args[0])
    return None if text is None else text.replace(" ", "")


@_register("ToLower", 1, 2)
def _to_lower(args: Args, ctx: EvalContext) -> Value:
    return _change_case(args, upper=False)


@_register("ToUpper", 1, 2)
def _to_upper(args: Args, ctx: EvalContext) -> Value:
    return _change_case(args, upper=True)


def _change_case(args: Args, upper: bool) -> Value:
    text = to_text(args[0])
    culture = to_text(args[1]) or ""
    if culture and not re.fullmatch(r"[A-Za-z]{2,3}(-[A-Za-z0-9]{2,8})*", culture):
        raise ArgumentError(f"culture {culture!r} is not an RFC 4646 name such as 'en-US'")
    if text is None:
        return None
    if culture.split("-")[0].lower() in ("tr", "az"):
        # Turkic cultures pair dotted/dotless i differently; every other culture is invariant.
        text = text.translate(_TURKIC_UPPER if upper else _TURKIC_LOWER)
    return _simple_case(text, upper)


_DOTLESS_I: Final = "\u0131"
_DOTTED_I: Final = "\u0130"
_TURKIC_UPPER: Final = str.maketrans({"i": _DOTTED_I, _DOTLESS_I: "I"})
_TURKIC_LOWER: Final = str.maketrans({"I": _DOTLESS_I, _DOTTED_I: "i"})


@_register("PCase", 1, 2)
def _pcase(args: Args, ctx: EvalContext) -> Value:
    text = to_text(args[0])
    separators = to_text(args[1])
    if text is None:
        return None
    is_separator = _default_separator if separators is None else separators.__contains__
    chars: list[str] = []
    at_word_start = True
    for char in _simple_case(text, upper=False):
        chars.append(_simple_case(char, upper=True) if at_word_start else char)
        at_word_start = is_separator(char)
    return "".join(chars)


# Unicode categories that .NET ToTitleCase treats as word breaks (listed in Microsoft's doc).
_SEPARATOR_CATEGORIES: Final = frozenset(
    ("Zs", "Zl", "Zp", "Cc", "Cf", "Pc", "Pd", "Ps", "Pe", "Pi", "Pf", "Po", "Sm", "Sc", "Sk", "So")
)


def _default_separator(char: str) -> bool:
    return unicodedata.category(char) in _SEPARATOR_CATEGORIES


@_register("Word", 3, 3)
def _word(args: Args, ctx: EvalContext) -> Value:
    text = to_text(args[0]) or ""
    number = _int_required(args[1], "WordNumber")
    delimiters = _text_required(args[2], "Delimiters")
    words = [w for w in re.split(f"[{re.escape(delimiters)}]", text) if w] if delimiters else [text]
    return words[number - 1] if 1 <= number <= len(words) else ""


@_register("NormalizeDiacritics", 1, 1)
def _normalize_diacritics(args: Args, ctx: EvalContext) -> Value:
    text = to_text(args[0])
    return None if text is None else normalize_diacritics(text)


# Letters with no Unicode decomposition, mapped as Microsoft's table does.
_LIGATURES: Final = str.maketrans(
    {"æ": "ae", "Æ": "AE", "ǣ": "ae", "Ǣ": "AE", "ø": "oe", "Ø": "OE", "œ": "oe", "Œ": "OE",
     "ß": "ss", "ł": "l", "Ł": "L", _DOTLESS_I: "i", "đ": "d", "Đ": "D"}
)  # fmt: skip


@_register("Split", 2, 2)
def _split(args: Args, ctx: EvalContext) -> Value:
    text = to_text(args[0])
    delimiter = to_text(args[1])
    if text is None:
        return None
    if not delimiter:
        return [text]
    # Microsoft's example splits "PermissionSetOne, PermissionSetTwo" on "," into two clean names.
    return [part.strip() for part in text.split(delimiter)]


@_register("ConvertToBase64", 1, 1)
def _to_base64(args: Args, ctx: EvalContext) -> Value:
    text = to_text(args[0])
    # .NET "Unicode" means UTF-16 little endian.
    return None if text is None else base64.b64encode(text.encode("utf-16-le")).decode("ascii")


@_register("ConvertToUTF8Hex", 1, 1)
def _to_utf8_hex(args: Args, ctx: EvalContext) -> Value:
    text = to_text(args[0])
    return None if text is None else text.encode("utf-8").hex().upper()


@_register("Replace", 2, 7)
def _replace(args: Args, ctx: EvalContext) -> Value:
    source, old, pattern, group, replacement = (to_text(args[i]) for i in range(5))
    template = to_text(args[6])
    if old is not None and (replacement is not None or template is not None):
        return _replace_plain(source, old, replacement, template)
    if pattern is not None and replacement is not None:
        return _replace_regex(source, _regex(pattern), group, replacement)
    if pattern is not None and group is not None:
        return _replace_fallback(source, _regex(pattern), group, to_text(args[5]))
    raise ArgumentError(
        "give oldValue with replacementValue or template, or regexPattern with "
        "replacementValue or with regexGroupName and replacementAttributeName"
    )


def _replace_plain(
    source: str | None, old: str, replacement: str | None, template: str | None
) -> Value:
    if not old:
        raise ArgumentError("oldValue must not be empty")
    if source is None:
        return None
    if replacement is not None:
        return source.replace(old, replacement)
    return (template or "").replace(old, source)


def _replace_regex(
    source: str | None, regex: re.Pattern[str], group: str | None, replacement: str
) -> Value:
    if source is None:
        return None
    if group is None:
        return regex.sub(lambda m: _expand(replacement, m), source)
    if group not in regex.groupindex:
        raise ArgumentError(f"regexPattern has no group named {group!r}")
    return _replace_group(source, regex, group, replacement)


def _replace_group(source: str, regex: re.Pattern[str], group: str, replacement: str) -> str:
    pieces: list[str] = []
    done = 0
    for match in regex.finditer(source):
        begin, end = match.span(group)
        if begin >= done:
            pieces += [source[done:begin], _expand(replacement, match)]
            done = end
    return "".join(pieces) + source[done:]


def _replace_fallback(
    source: str | None, regex: re.Pattern[str], group: str, fallback: str | None
) -> Value:
    if group not in regex.groupindex:
        raise ArgumentError(f"regexPattern has no group named {group!r}")
    if source:
        return source
    match = regex.search(fallback) if fallback is not None else None
    if match is None:
        return None
    found: str | None = match.group(group)
    return found


def _regex(pattern: str) -> re.Pattern[str]:
    try:
        return re.compile(_python_pattern(pattern))
    except re.error as exc:
        raise ArgumentError(f"invalid regexPattern {pattern!r}: {exc}") from None


def _python_pattern(pattern: str) -> str:
    # .NET spells named groups (?<name>...) and back references \k<name>; Python wants P.
    out: list[str] = []
    i = 0
    while i < len(pattern):
        if pattern.startswith("\\k<", i):
            end = pattern.find(">", i)
            out.append(f"(?P={pattern[i + 3 : end]})" if end > 0 else pattern[i:])
            i = end + 1 if end > 0 else len(pattern)
        elif pattern[i] == "\\":
            out.append(pattern[i : i + 2])
            i += 2
        elif pattern.startswith("(?<", i) and pattern[i + 3 : i + 4] not in ("=", "!"):
            out.append("(?P<")
            i += 3
        else:
            out.append(pattern[i])
            i += 1
    return "".join(out)


_DOTNET_SUBSTITUTION: Final = re.compile(r"\$(?:\{(\w+)\}|(\d+)|([$&]))")


def _expand(template: str, match: re.Match[str]) -> str:
    # .NET substitutions: ${name}, $1, $$, $& (unknown groups stay literal, as in .NET).
    def substitute(token: re.Match[str]) -> str:
        name, number, symbol = token.groups()
        if symbol is not None:
            return "$" if symbol == "$" else match.group(0)
        try:
            found: str | None = match.group(int(number) if number else name)
        except IndexError:
            return token.group(0)
        return found or ""

    return _DOTNET_SUBSTITUTION.sub(substitute, template)


# --- logic --------------------------------------------------------------------------------


@_register("IIF", 3, 3)
def _iif(args: Args, ctx: EvalContext) -> Value:
    condition = _bool(args[0])
    if condition is None:
        raise ArgumentError("condition is null (Microsoft's IIF fails on null; use Switch)")
    return args[1] if condition else args[2]


@_register("Switch", 2, None, even_args=True)
def _switch(args: Args, ctx: EvalContext) -> Value:
    # Case-sensitive comparison of string forms; null matches the key "" (Microsoft's
    # documented way to test for empty/null is a "" key).
    source = to_text(args[0]) or ""
    for key_index in range(2, len(args), 2):
        if (to_text(args[key_index]) or "") == source:
            return args[key_index + 1]
    return args[1]


@_register("Coalesce", 1, None)
def _coalesce(args: Args, ctx: EvalContext) -> Value:
    for index in range(len(args)):
        if not _is_empty(args[index]):
            return args[index]
    # The last argument doubles as the default value, which may deliberately be "".
    return args[len(args) - 1]


@_register("IgnoreFlowIfNullOrEmpty", 1, 1)
def _ignore_flow(args: Args, ctx: EvalContext) -> Value:
    if _is_empty(args[0]):
        raise IgnoreFlowSignal
    return args[0]


@_register("CBool", 1, 1)
def _cbool(args: Args, ctx: EvalContext) -> Value:
    return bool(_bool(args[0]))


@_register("Not", 1, 1)
def _not(args: Args, ctx: EvalContext) -> Value:
    # Microsoft: "If source value is True, returns False. Otherwise, returns True."
    return (to_text(args[0]) or "").strip().lower() != "true"


@_register("IsNull", 1, 1)
def _is_null(args: Args, ctx: EvalContext) -> Value:
    return args[0] is None


@_register("IsNullOrEmpty", 1, 1)
def _is_null_or_empty(args: Args, ctx: EvalContext) -> Value:
    return _is_empty(args[0])


@_register("IsPresent", 1, 1)
def _is_present(args: Args, ctx: EvalContext) -> Value:
    return not _is_empty(args[0])


@_register("IsString", 1, 1)
def _is_string(args: Args, ctx: EvalContext) -> Value:
    return isinstance(args[0], str)


@_register("SelectUniqueValue", 2, None, top_level_only=True)
def _select_unique(args: Args, ctx: EvalContext) -> Value:
    for index in range(len(args)):
        candidate = to_text(args[index])
        if candidate and (ctx.is_unique is None or ctx.is_unique(candidate)):
            return candidate
    raise ArgumentError(f"none of the {len(args)} candidate values is unique")


@_register("Redact", 1, 1)
def _redact(args: Args, ctx: EvalContext) -> Value:
    # The value flows unchanged; keeping it out of logs is the caller's job (is_redacted).
    return args[0]


# --- numbers, conversion, multi-valued ----------------------------------------------------------


@_register("BitAnd", 2, 2)
def _bit_and(args: Args, ctx: EvalContext) -> Value:
    left, right = _int(args[0], "value1"), _int(args[1], "value2")
    return None if left is None or right is None else left & right


@_register("CStr", 1, 1)
def _cstr(args: Args, ctx: EvalContext) -> Value:
    return to_text(args[0])


@_register("Count", 1, 1)
def _count(args: Args, ctx: EvalContext) -> Value:
    return len(_values(args[0]))


@_register("Item", 2, 2)
def _item(args: Args, ctx: EvalContext) -> Value:
    index = _int_required(args[1], "index")
    if args[0] is None:
        return None
    values = _values(args[0])
    if not 1 <= index <= len(values):
        plural = "" if len(values) == 1 else "s"
        raise ArgumentError(f"index {index} is out of range ({len(values)} value{plural})")
    return values[index - 1]


@_register("RemoveDuplicates", 1, 1)
def _remove_duplicates(args: Args, ctx: EvalContext) -> Value:
    value = args[0]
    if not isinstance(value, list):
        return value
    unique: list[Value] = []
    for item in value:
        if item not in unique:
            unique.append(item)
    return unique


@_register("SingleAppRoleAssignment", 1, 1)
def _single_app_role(args: Args, ctx: EvalContext) -> Value:
    roles = _distinct_roles(args[0])
    if len(roles) > 1:
        raise ArgumentError(
            f"{len(roles)} different app roles are assigned ({', '.join(roles)}); "
            "Microsoft supports only one"
        )
    return roles[0] if roles else None


@_register("AppRoleAssignmentsComplex", 1, 1)
def _app_roles_complex(args: Args, ctx: EvalContext) -> Value:
    roles: list[Value] = list(_distinct_roles(args[0]))
    return roles or None


def _distinct_roles(value: Value) -> list[str]:
    roles: list[str] = []
    for item in _values(value):
        text = to_text(item)
        if text and text not in roles:
            roles.append(text)
    return roles


@_register("Guid", 0, 0)
def _guid(args: Args, ctx: EvalContext) -> Value:
    return str(uuid.UUID(int=_rng(ctx).getrandbits(128), version=4))


@_register("RandomString", 5, 6)
def _random_string(args: Args, ctx: EvalContext) -> Value:
    length = _int_required(args[0], "Length")
    minimums = [_int_required(args[i], name) for i, name in enumerate(_MINIMUM_NAMES, start=1)]
    if not 0 < length <= 256 or min(minimums) < 0 or sum(minimums) > length:
        raise ArgumentError(
            f"Length must be 1..256 and at least the sum of the non-negative minimums, "
            f"got {length} and {minimums}"
        )
    avoid = set(to_text(args[5]) or "")
    pools = ["".join(c for c in pool if c not in avoid) for pool in _POOLS]
    return _random_chars(_rng(ctx), length, minimums, pools)


_MINIMUM_NAMES: Final = ("MinimumNumbers", "MinimumSpecialCharacters", "MinimumCapital",
                         "MinimumLowerCase")  # fmt: skip
# Special characters allowed by Windows' "password must meet complexity requirements" policy.
_POOLS: Final = (string.digits, "~!@#$%^&*_-+=`|\\(){}[]:;\"'<>,.?/", string.ascii_uppercase,
                 string.ascii_lowercase)  # fmt: skip


def _random_chars(rng: Random, length: int, minimums: list[int], pools: list[str]) -> str:
    if any(count and not pool for count, pool in zip(minimums, pools, strict=True)):
        raise ArgumentError("CharactersToAvoid removes every character of a required kind")
    chars = [rng.choice(pool) for count, pool in zip(minimums, pools, strict=True)
             for _ in range(count)]  # fmt: skip
    everything = "".join(pools)
    if len(chars) < length and not everything:
        raise ArgumentError("CharactersToAvoid removes every allowed character")
    chars += [rng.choice(everything) for _ in range(length - len(chars))]
    rng.shuffle(chars)
    return "".join(chars)


# --- dates --------------------------------------------------------------------------------


@_register("Now", 0, 0)
def _now(args: Args, ctx: EvalContext) -> Value:
    return format_datetime(ctx.now())


@_register("CDate", 1, 1)
def _cdate(args: Args, ctx: EvalContext) -> Value:
    moment = _date_arg(args[0])
    return None if moment is None else format_datetime(moment)


@_register("DateAdd", 3, 3)
def _date_add(args: Args, ctx: EvalContext) -> Value:
    interval = _interval(args[0])
    amount = _int_required(args[1], "value")
    moment = _date_arg(args[2])
    if moment is None:
        return None
    try:
        return format_datetime(add_interval(interval, amount, moment))
    except (OverflowError, ValueError):
        raise ArgumentError(f"adding {amount} {interval!r} leaves the supported range") from None


@_register("DateDiff", 3, 3)
def _date_diff(args: Args, ctx: EvalContext) -> Value:
    interval = _interval(args[0])
    first, second = _date_arg(args[1]), _date_arg(args[2])
    if first is None or second is None:
        return None
    return diff_interval(interval, first, second)


@_register("DateFromNum", 1, 1)
def _date_from_num(args: Args, ctx: EvalContext) -> Value:
    ticks = _int(args[0], "value")
    if ticks is None:
        return None
    try:
        return format_datetime(FILETIME_EPOCH + timedelta(microseconds=ticks // 10))
    except OverflowError:
        raise ArgumentError(f"{ticks} is outside the supported date range") from None


@_register("NumFromDate", 1, 1)
def _num_from_date(args: Args, ctx: EvalContext) -> Value:
    moment = _date_arg(args[0])
    if moment is None:
        return None
    elapsed = moment - FILETIME_EPOCH
    # Integer arithmetic: float seconds would lose the 100 ns precision of FILETIME.
    return (elapsed.days * 86_400 + elapsed.seconds) * 10_000_000 + elapsed.microseconds * 10


@_register("FormatDateTime", 3, 4)
def _format_date_time(args: Args, ctx: EvalContext) -> Value:
    # The three-argument form predates the optional dateTimeStyles argument.
    shift = 1 if len(args) == 4 else 0
    if shift:
        check_styles(to_text(args[1]))
    source = to_text(args[0])
    input_format = _text_required(args[1 + shift], "inputFormat")
    output_format = _text_required(args[2 + shift], "outputFormat")
    if source is None:
        return None
    moment = parse_exact(source, input_format, as_utc(ctx.now()).date())
    return format_datetime(moment, output_format)


def _date_arg(value: Value) -> datetime | None:
    text = to_text(value)
    return None if text is None else parse_datetime(text)


def _interval(value: Value) -> str:
    return interval_name(_text_required(value, "interval"))
