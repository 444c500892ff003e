"""Redact(): what stands in for a redacted value outside ServiceNow. Printed, it is `[redacted]`;
kept (the cached picture), it is a keyed hash, so that a change is still detected without the
value being stored. Stdlib only, below every layer that shows or keeps values."""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass
from typing import Any

from snsync.model import REDACTED

__all__ = ["REDACTED", "Masker", "is_digest", "is_masked", "new_key"]

DIGEST_PREFIX = "hmac-sha256:"
# A directory attribute read only inside Redact(), as the cached picture keeps it.
MASKED_ATTRIBUTE: dict[str, str] = {"@snsync": "redacted"}
# The key of a cached directory object holding its redacted mapping results' digests.
DIGESTS_KEY = "@snsync.redacted"


def new_key() -> bytes:
    """A random key for one state file."""
    return secrets.token_bytes(32)


def is_digest(value: str) -> bool:
    """Whether `value` is a kept digest rather than a value."""
    return value.startswith(DIGEST_PREFIX)


def is_masked(value: Any) -> bool:
    """Whether a cached directory attribute stands for a value that was not kept."""
    return isinstance(value, dict) and value == MASKED_ATTRIBUTE


@dataclass(frozen=True)
class Masker:
    """Keyed hashes of redacted values (HMAC-SHA256 with the state file's key). A digest keeps
    the exact value's hash and the hash of its trimmed lower-case form (for matching)."""

    key: bytes

    def digest(self, value: str) -> str:
        """The digest kept for `value` (a digest is kept as it is)."""
        if is_digest(value):
            return value
        return f"{DIGEST_PREFIX}{self._mac(value)}.{self._mac(value.strip().lower())}"

    def same(self, a: str, b: str) -> bool:
        """Whether two values (either or both may be digests) are the same value."""
        if not is_digest(a) and not is_digest(b):
            return a == b
        return hmac.compare_digest(self.digest(a), self.digest(b))

    def folded(self, value: str) -> str:
        """What matching compares for a redacted value: the hash of its trimmed lower-case form
        (empty stays empty, so an empty matching value is still seen as empty)."""
        if not value.strip():
            return ""
        return self.digest(value).rsplit(".", 1)[1]

    def _mac(self, text: str) -> str:
        return hmac.new(self.key, text.encode("utf-8"), hashlib.sha256).hexdigest()[:32]
