"""Text from Graph or ServiceNow made safe for a terminal or a text log: control characters are
shown escaped, so that a crafted name can neither start a new line nor move the cursor."""

from __future__ import annotations

import re

# C0 controls (tab and newline included), DEL, C1 controls, and the Unicode line separators and
# bidirectional overrides that can make a line read differently from what it holds.
_UNSAFE = re.compile("[\x00-\x1f\x7f-\x9f\u2028\u2029\u202a-\u202e\u2066-\u2069]")
_NAMED = {"\n": "\\n", "\r": "\\r", "\t": "\\t", "\x1b": "\\x1b"}


def printable(text: str) -> str:
    """`text` with every control character written as an escape (`\\n`, `\\x1b`, `\\u202e`)."""
    return _UNSAFE.sub(_escape, text)


def printable_lines(lines: list[str]) -> str:
    """Lines made printable one by one, then joined: only the joins are real line breaks."""
    return "\n".join(printable(line) for line in lines)


def _escape(match: re.Match[str]) -> str:
    char = match.group()
    if char in _NAMED:
        return _NAMED[char]
    code = ord(char)
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"
