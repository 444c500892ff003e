""".NET date and time handling of the expression language: parsing, formatting, intervals.

Pure functions over aware UTC datetimes; the expression functions in functions.py are thin
wrappers. Errors are DateError with a message that omits the calling function's name.
"""

from __future__ import annotations

import calendar
import re
from collections.abc import Callable, Iterator, Mapping
from datetime import UTC, date, datetime, timedelta, timezone
from typing import Final

DATE_FORMAT: Final = "M/d/yyyy h:mm:ss tt"
""".NET format of every date/time string the date functions return (always UTC)."""

FILETIME_EPOCH: Final = datetime(1601, 1, 1, tzinfo=UTC)
"""Day zero of Windows FILETIME (100 ns ticks), used by DateFromNum and NumFromDate."""


class DateError(ValueError):
    """A date/time text, format or interval that the .NET rules cannot work with."""


def parse_datetime(text: str) -> datetime:
    """Parse ISO 8601, 'M/d/yyyy h:mm:ss tt' or AD generalized time to an aware UTC datetime."""
    stripped = text.strip()
    for pattern in _DATE_PATTERNS:
        match = pattern.fullmatch(stripped)
        if match is not None:
            return _from_match(match)
    raise DateError(f"{text!r} is not a recognised date/time")


def format_datetime(moment: datetime, fmt: str = DATE_FORMAT) -> str:
    """Render a time (converted to UTC) with a .NET custom date and time format string."""
    utc = as_utc(moment)
    return "".join(text if kind == "lit" else _render(utc, text) for kind, text in _tokens(fmt))


def parse_exact(text: str, fmt: str, default_date: date) -> datetime:
    """DateTime.ParseExact with a .NET custom format; a format without a date means default_date."""
    pattern, fields = _format_regex(fmt)
    match = re.fullmatch(pattern, text.strip(), re.IGNORECASE)
    if match is None:
        raise DateError(f"{text!r} does not match inputFormat {fmt!r}")
    try:
        return _assemble(match, fields, default_date)
    except ValueError:
        raise DateError(f"{text!r} is not a valid date/time") from None


def check_styles(styles: str | None) -> None:
    """Reject unknown DateTimeStyles names (all known ones behave the same on a UTC host)."""
    for style in re.split(r"[,|]", styles or ""):
        name = style.strip().removeprefix("DateTimeStyles.")
        if name and name not in _STYLES:
            raise DateError(f"unknown dateTimeStyles value {name!r}")


def as_utc(moment: datetime) -> datetime:
    """The same instant in UTC; a naive time is taken as UTC."""
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def interval_name(text: str) -> str:
    """A VB.NET DateAdd/DateDiff interval (yyyy, q, m, y, d, w, ww, h, n, s), normalised."""
    interval = text.strip().lower()
    if interval not in _ADDERS:
        raise DateError(f"unknown interval {interval!r} (use yyyy, q, m, y, d, w, ww, h, n, s)")
    return interval


def add_interval(interval: str, amount: int, moment: datetime) -> datetime:
    """VB.NET DateAdd; OverflowError or ValueError when the result leaves years 1..9999."""
    return _ADDERS[interval_name(interval)](moment, amount)


def diff_interval(interval: str, first: datetime, second: datetime) -> int:
    """VB.NET DateDiff: calendar units count boundaries, clock units truncate toward zero."""
    return _DIFFERS[interval_name(interval)](first, second)


# --- helpers --------------------------------------------------------------------------------

_STYLES: Final = frozenset(
    ("None", "AllowLeadingWhite", "AllowTrailingWhite", "AllowInnerWhite", "AllowWhiteSpaces",
     "NoCurrentDateDefault", "AdjustToUniversal", "AssumeLocal", "AssumeUniversal",
     "RoundtripKind")
)  # fmt: skip


def _add_months(moment: datetime, months: int) -> datetime:
    year, month = divmod(moment.year * 12 + moment.month - 1 + months, 12)
    if not 1 <= year <= 9999:
        raise ValueError("year out of range")
    last_day = calendar.monthrange(year, month + 1)[1]
    return moment.replace(year=year, month=month + 1, day=min(moment.day, last_day))


# VB.NET DateAdd: y (day of year) and w (weekday) both add days.
_ADDERS: Final[Mapping[str, Callable[[datetime, int], datetime]]] = {
    "yyyy": lambda m, n: _add_months(m, 12 * n),
    "q": lambda m, n: _add_months(m, 3 * n),
    "m": _add_months,
    "y": lambda m, n: m + timedelta(days=n),
    "d": lambda m, n: m + timedelta(days=n),
    "w": lambda m, n: m + timedelta(days=n),
    "ww": lambda m, n: m + timedelta(weeks=n),
    "h": lambda m, n: m + timedelta(hours=n),
    "n": lambda m, n: m + timedelta(minutes=n),
    "s": lambda m, n: m + timedelta(seconds=n),
}


def _elapsed(first: datetime, second: datetime, unit_seconds: int) -> int:
    delta = second - first
    micros = (delta.days * 86_400 + delta.seconds) * 1_000_000 + delta.microseconds
    quotient = abs(micros) // (unit_seconds * 1_000_000)
    return quotient if micros >= 0 else -quotient  # VB truncates toward zero


def _sunday_before(moment: datetime) -> datetime:
    return moment - timedelta(days=(moment.weekday() + 1) % 7)


# VB.NET DateDiff: calendar units count boundaries, clock units truncate the elapsed time,
# "ww" counts Sunday-started weeks; this reproduces every row of Microsoft's DateDiff table.
_DIFFERS: Final[Mapping[str, Callable[[datetime, datetime], int]]] = {
    "yyyy": lambda a, b: b.year - a.year,
    "q": lambda a, b: 4 * (b.year - a.year) + (b.month - 1) // 3 - (a.month - 1) // 3,
    "m": lambda a, b: 12 * (b.year - a.year) + b.month - a.month,
    "y": lambda a, b: _elapsed(a, b, 86_400),
    "d": lambda a, b: _elapsed(a, b, 86_400),
    "w": lambda a, b: _elapsed(a, b, 7 * 86_400),
    "ww": lambda a, b: _elapsed(_sunday_before(a), _sunday_before(b), 7 * 86_400),
    "h": lambda a, b: _elapsed(a, b, 3_600),
    "n": lambda a, b: _elapsed(a, b, 60),
    "s": lambda a, b: _elapsed(a, b, 1),
}


# --- free-form date parsing -------------------------------------------------------------------

_ZONE: Final = r"\s*(?P<zone>[Zz]|[+-]\d{2}(?::?\d{2})?)?"
_TIME: Final = (
    r"(?P<hour>\d{1,2}):(?P<minute>\d{2})(?::(?P<second>\d{2})(?:[.,](?P<frac>\d{1,7}))?)?"
)
_ISO: Final = re.compile(
    rf"(?P<year>\d{{4}})-(?P<month>\d{{1,2}})-(?P<day>\d{{1,2}})(?:[Tt ]\s*{_TIME})?{_ZONE}"
)
_US: Final = re.compile(
    rf"(?P<month>\d{{1,2}})/(?P<day>\d{{1,2}})/(?P<year>\d{{4}})"
    rf"(?:\s+{_TIME}(?:\s*(?P<ampm>[AaPp][Mm]))?)?{_ZONE}"
)
_GENERALIZED: Final = re.compile(
    r"(?P<year>\d{4})(?P<month>\d{2})(?P<day>\d{2})(?P<hour>\d{2})(?P<minute>\d{2})"
    r"(?P<second>\d{2})(?:\.(?P<frac>\d{1,7}))?" + _ZONE
)


def _from_match(match: re.Match[str]) -> datetime:
    parts = {k: int(v) for k, v in match.groupdict().items() if v and k not in _NON_NUMERIC}
    hour = parts.get("hour", 0)
    ampm = match.groupdict().get("ampm")
    if ampm:
        hour = hour % 12 + (12 if ampm.upper() == "PM" else 0)
    micro = int(((match.groupdict().get("frac") or "") + "000000")[:6])
    try:
        moment = datetime(parts["year"], parts["month"], parts["day"], hour,
                          parts.get("minute", 0), parts.get("second", 0), micro,
                          tzinfo=_zone(match.group("zone")))  # fmt: skip
    except ValueError:
        raise DateError(f"{match.string!r} is not a valid date/time") from None
    return moment.astimezone(UTC)


_NON_NUMERIC: Final = frozenset({"zone", "ampm", "frac"})
_DATE_PATTERNS: Final = (_ISO, _US, _GENERALIZED)


def _zone(text: str | None) -> timezone:
    if not text or text in "Zz":
        return UTC
    digits = text[1:].replace(":", "")
    minutes = int(digits[:2]) * 60 + int(digits[2:] or 0)
    if minutes >= 24 * 60:
        raise DateError(f"time zone offset {text!r} is out of range")
    return timezone(timedelta(minutes=-minutes if text[0] == "-" else minutes))


# --- .NET custom date and time format strings -----------------------------------------------

_SPECIFIERS: Final = "yMdHhmsfFtzK"
_MONTHS: Final = ("January", "February", "March", "April", "May", "June", "July", "August",
                  "September", "October", "November", "December")  # fmt: skip
_DAYS: Final = ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday")


def _tokens(fmt: str) -> Iterator[tuple[str, str]]:
    if len(fmt) == 1:
        yield from _tokens(_standard_format(fmt))
        return
    i = 0
    while i < len(fmt):
        char = fmt[i]
        if char in "'\"":
            end = fmt.find(char, i + 1)
            if end < 0:
                raise DateError(f"unterminated quote in date format {fmt!r}")
            yield "lit", fmt[i + 1 : end]
            i = end + 1
        elif char == "\\":
            yield "lit", fmt[i + 1 : i + 2]
            i += 2
        elif char in _SPECIFIERS:
            run = len(fmt[i:]) - len(fmt[i:].lstrip(char))
            yield "spec", char * run
            i += run
        else:
            # "%" only marks a lone specifier; every other character is copied literally.
            yield "lit", "" if char == "%" else char
            i += 1


def _standard_format(letter: str) -> str:
    # .NET reads a one-character format as a standard format; these are the invariant-culture ones.
    if letter not in _STANDARD_FORMATS:
        raise DateError(f"unsupported standard date format {letter!r}; use e.g. 'yyyy-MM-dd'")
    return _STANDARD_FORMATS[letter]


_STANDARD_FORMATS: Final = {
    "o": "yyyy'-'MM'-'dd'T'HH':'mm':'ss'.'fffffffK",
    "O": "yyyy'-'MM'-'dd'T'HH':'mm':'ss'.'fffffffK",
    "s": "yyyy'-'MM'-'dd'T'HH':'mm':'ss",
    "u": "yyyy'-'MM'-'dd HH':'mm':'ss'Z'",
    "r": "ddd, dd MMM yyyy HH':'mm':'ss 'GMT'",
    "R": "ddd, dd MMM yyyy HH':'mm':'ss 'GMT'",
    "d": "MM/dd/yyyy",
    "D": "dddd, dd MMMM yyyy",
    "t": "HH:mm",
    "T": "HH:mm:ss",
    "g": "MM/dd/yyyy HH:mm",
    "G": "MM/dd/yyyy HH:mm:ss",
    "f": "dddd, dd MMMM yyyy HH:mm",
    "F": "dddd, dd MMMM yyyy HH:mm:ss",
}


def _render(moment: datetime, spec: str) -> str:
    kind, width = spec[0], len(spec)
    if kind in "fF":
        if width > 7:
            raise DateError(f"at most 7 fraction digits are supported, got {spec!r}")
        digits = f"{moment.microsecond:06}0"[:width]
        return digits if kind == "f" else digits.rstrip("0")
    return _RENDERERS[kind](moment, width)


def _numeric(value: int, width: int) -> str:
    return str(value).zfill(min(width, 2))


def _year(moment: datetime, width: int) -> str:
    return _numeric(moment.year % 100, width) if width <= 2 else str(moment.year).zfill(width)


def _named(value: int, names: tuple[str, ...], width: int) -> str:
    return names[value][:3] if width == 3 else names[value]


_RENDERERS: Final[Mapping[str, Callable[[datetime, int], str]]] = {
    "y": _year,
    "M": lambda m, w: _numeric(m.month, w) if w <= 2 else _named(m.month - 1, _MONTHS, w),
    "d": lambda m, w: _numeric(m.day, w) if w <= 2 else _named(m.weekday(), _DAYS, w),
    "H": lambda m, w: _numeric(m.hour, w),
    "h": lambda m, w: _numeric(m.hour % 12 or 12, w),
    "m": lambda m, w: _numeric(m.minute, w),
    "s": lambda m, w: _numeric(m.second, w),
    "t": lambda m, w: ("AM" if m.hour < 12 else "PM")[:w],
    "z": lambda m, w: ("+0", "+00", "+00:00")[min(w, 3) - 1],  # every time here is UTC
    "K": lambda m, w: "Z",
}


def _format_regex(fmt: str) -> tuple[str, list[tuple[str, str]]]:
    parts: list[str] = []
    fields: list[tuple[str, str]] = []
    for index, (kind, text) in enumerate(_tokens(fmt)):
        if kind == "lit":
            parts.append(re.escape(text))
        else:
            fields.append((f"g{index}", text))
            parts.append(f"(?P<g{index}>{_field_pattern(text)})")
    return "".join(parts), fields


def _field_pattern(spec: str) -> str:
    kind, width = spec[0], len(spec)
    if kind in "Md" and width >= 3:
        names = _MONTHS if kind == "M" else _DAYS
        return "|".join(n[:3] if width == 3 else n for n in names)
    if kind in "fF":
        return rf"\d{{{'0' if kind == 'F' else width},{min(width, 7)}}}"
    return {
        "y": r"\d{1,2}" if width == 1 else r"\d{2}" if width == 2 else rf"\d{{{min(width, 4)},4}}",
        "t": "[AP]" if width == 1 else "AM|PM",
        "z": r"[+-]\d{2}:\d{2}" if width >= 3 else r"[+-]\d{1,2}",
        "K": r"Z|[+-]\d{2}:\d{2}|",
    }.get(kind, r"\d{2}" if width >= 2 else r"\d{1,2}")


def _assemble(match: re.Match[str], fields: list[tuple[str, str]], default_date: date) -> datetime:
    values: dict[str, int] = {}
    zone: str | None = None
    pm: bool | None = None
    for group, spec in fields:
        text = match.group(group) or ""
        kind = spec[0]
        if kind in "zK":
            zone = text or zone
        elif kind == "t":
            pm = text.upper().startswith("P")
        elif kind in "fF":
            values["micro"] = int((text + "000000")[:6])
        elif not (kind == "d" and len(spec) >= 3):  # a day name carries no date information
            values[_FIELD_NAMES[kind]] = _field_value(spec, text)
    return _build(values, zone, pm, default_date)


_FIELD_NAMES: Final = {"y": "year", "M": "month", "d": "day", "H": "hour", "h": "hour",
                       "m": "minute", "s": "second"}  # fmt: skip


def _field_value(spec: str, text: str) -> int:
    kind, width = spec[0], len(spec)
    if kind == "M" and width >= 3:
        return [n[: len(text)].lower() for n in _MONTHS].index(text.lower()) + 1
    if kind == "y" and width <= 2:
        return 2000 + int(text) if int(text) <= 49 else 1900 + int(text)  # .NET two-digit window
    return int(text)


def _build(values: dict[str, int], zone: str | None, pm: bool | None, default: date) -> datetime:
    # Like .NET: a format without any date part means today; a partial date defaults to 1/1/1.
    has_date = any(k in values for k in ("year", "month", "day"))
    year, month, day = (1, 1, 1) if has_date else (default.year, default.month, default.day)
    hour = values.get("hour", 0)
    if pm is not None:
        hour = hour % 12 + (12 if pm else 0)
    moment = datetime(
        values.get("year", year), values.get("month", month), values.get("day", day), hour,
        values.get("minute", 0), values.get("second", 0), values.get("micro", 0), _zone(zone),
    )  # fmt: skip
    return moment.astimezone(UTC)
