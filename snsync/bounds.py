"""Bounds against hostile or broken answers, as pure functions: links stay at home, loops end,
bodies, JSON nesting and attribute values have a size limit."""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from snsync.errors import UnsafeAnswerError

DEFAULT_PORTS = {"https": 443, "http": 80}
_STRING = re.compile(rb'"(?:[^"\\]|\\.)*"', re.DOTALL)
_BRACKETS = re.compile(rb"[\[\]{}]")


@dataclass(frozen=True)
class Limits:
    """The bounds in force (config `limits:`; the defaults are far above real answers)."""

    max_pages: int = 100_000
    max_body_bytes: int = 64 * 1024 * 1024
    max_json_depth: int = 64
    max_attribute_length: int = 32_768


def origin(url: str) -> tuple[str, str, int]:
    """(scheme, host, port) of a URL, with the scheme's default port filled in."""
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    try:
        port = parts.port
    except ValueError:
        port = -1
    return scheme, (parts.hostname or "").lower(), port or DEFAULT_PORTS.get(scheme, -1)


def origin_text(url: str) -> str:
    """An origin for messages: scheme://host:port (no path or query, which may hold tokens)."""
    scheme, host, port = origin(url)
    return f"{scheme}://{host}:{port}" if host else "(no host)"


def same_origin(url: str, home: str) -> bool:
    """Whether `url` has the scheme, host and port of `home` (an https origin)."""
    return origin(url) == origin(home) and origin(home)[0] == "https"


def check_link(link: str, home: str, *, service: str, what: str) -> str:
    """`link` if it stays at `home`'s origin, else UnsafeAnswerError naming the link's origin."""
    if not same_origin(link, home):
        raise UnsafeAnswerError(
            f"{service}: refused to follow {what} to {origin_text(link)}: it is not the "
            f"configured {origin_text(home)}; nothing was sent there and this read counts as "
            "incomplete (nothing is disabled)",
            service=service,
            url=origin_text(link),
        )
    return link


class PageGuard:
    """Bounds one paged read: a link seen twice, a cursor that does not advance, or more than
    `max_pages` pages end it with UnsafeAnswerError."""

    def __init__(self, service: str, what: str, max_pages: int) -> None:
        self.service = service
        self.what = what
        self.max_pages = max_pages
        self.pages = 0
        self._seen: set[str] = set()
        self._first_count: int | None = None  # X-Total-Count where stepping past hidden rows began

    def next_page(self, cursor: str) -> None:
        """Count one more page, identified by its link or keyset cursor."""
        self.pages += 1
        if cursor in self._seen:
            raise self._error(
                f"the {'link' if '://' in cursor else 'cursor'} of page {self.pages} was "
                "already read (the service is looping)"
            )
        self._seen.add(cursor)
        if self.pages > self.max_pages:
            raise self._error(f"more than limits.max_pages ({self.max_pages}) pages")

    def advancing(self, previous: str, current: str) -> None:
        """A keyset cursor must grow from page to page."""
        if previous and current <= previous:
            raise self._error(
                f"the keyset cursor did not advance after page {self.pages} ({current!r} after "
                f"{previous!r})"
            )

    def hidden_window(self, offset: int, count: int, slack: int) -> None:
        """Stepping past rows the read rules hide, `offset` rows past the cursor: the row count
        of one keyset query may grow by rows inserted meanwhile (`slack`), not by more; the
        number of steps is bounded by max_pages as any page is. `offset` 0 ends the stepping."""
        if offset == 0:
            self._first_count = None
            return
        if self._first_count is None:
            self._first_count = count
        elif count > self._first_count + slack:
            raise self._error(
                f"its row count (X-Total-Count) grew from {self._first_count:,} to {count:,} "
                f"while stepping past rows the read rules hide ({offset:,} rows past the cursor)"
            )

    def _error(self, why: str) -> UnsafeAnswerError:
        return UnsafeAnswerError(
            f"{self.service}: reading {self.what} stopped: {why}; this read counts as "
            "incomplete (nothing is disabled)",
            service=self.service,
        )


def json_depth(data: bytes) -> int:
    """The deepest nesting of arrays and objects in a JSON text (strings skipped)."""
    depth = deepest = 0
    for match in _BRACKETS.finditer(_STRING.sub(b'""', data)):
        if match.group() in (b"[", b"{"):
            depth += 1
            deepest = max(deepest, depth)
        else:
            depth -= 1
    return deepest


def parse_json(data: bytes, limits: Limits, *, service: str, where: str) -> Any:
    """Parse a JSON body within the nesting limit. ValueError if it is not JSON;
    UnsafeAnswerError if it nests deeper than limits.max_json_depth."""
    if data.count(b"[") + data.count(b"{") > limits.max_json_depth:  # cheap test first
        depth = json_depth(data)
        if depth > limits.max_json_depth:
            raise UnsafeAnswerError(
                f"{service}: {where} answered JSON nested {depth} deep, more than "
                f"limits.max_json_depth ({limits.max_json_depth})",
                service=service,
            )
    try:
        return json.loads(data)
    except RecursionError:
        raise UnsafeAnswerError(
            f"{service}: {where} answered JSON nested too deep", service=service
        ) from None


def over_long(values: Mapping[str, Any], max_length: int) -> dict[str, int]:
    """Attribute name -> length, for every value (or list item) longer than `max_length`
    characters (pure; the mapper refuses such an object with a Failure, never caches it)."""
    found: dict[str, int] = {}
    for name, value in values.items():
        items = value if isinstance(value, list | tuple) else [value]
        for item in items:
            length = len(item) if isinstance(item, str) else len(str(item)) if item else 0
            if length > max_length:
                found[name] = max(found.get(name, 0), length)
    return found


def over_long_reason(values: Mapping[str, Any], max_length: int) -> str | None:
    """One line naming the over-long attributes, or None when every value is within bounds."""
    found = over_long(values, max_length)
    if not found:
        return None
    listed = ", ".join(f"{name} ({length:,} characters)" for name, length in sorted(found.items()))
    return (
        f"refused: {listed} over limits.max_attribute_length ({max_length:,}); fix the value "
        "in the directory"
    )
