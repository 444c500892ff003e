"""How the instance stores and reads values: strings in ServiceNow's formats, sys_ids, clocks."""

from __future__ import annotations

import hashlib
import re
import secrets
from datetime import UTC, datetime
from typing import Any

from snsync.sandbox.encoded_query import FieldKind, is_true

DATETIME_FORMAT = "%Y-%m-%d %H:%M:%S"


SYS_ID = re.compile(r"[0-9a-f]{32}")
# A sys_id an insert brings itself: any 32 printable characters but "/" (it goes in URLs).
OWN_SYS_ID = re.compile(r"[!-.0-~]{32}")
PASSWORD_MASK = "********"


def utc_now() -> datetime:
    return datetime.now(UTC)


def timestamp(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime(DATETIME_FORMAT)


def new_sys_id() -> str:
    return secrets.token_hex(16)


def input_text(raw: Any) -> str:
    if raw is None:
        return ""
    if isinstance(raw, bool):
        return "true" if raw else "false"
    if isinstance(raw, float) and raw.is_integer():
        return str(int(raw))
    if isinstance(raw, dict):
        return input_text(raw.get("value", raw.get("display_value")))
    if isinstance(raw, list):
        return ",".join(input_text(item) for item in raw)
    return str(raw)


def normalise(kind: FieldKind, text: str) -> str:
    """A value as the instance stores it; what cannot be read as the field's type becomes ""."""
    if kind is FieldKind.BOOLEAN:
        return "true" if is_true(text) else "false"
    if kind is FieldKind.INTEGER:
        try:
            return str(int(float(text.replace(",", "")))) if text.strip() else ""
        except ValueError:
            return ""
    if kind is FieldKind.DATETIME:
        return datetime_text(text) or ""
    return text


def datetime_text(text: str) -> str | None:
    text = text.strip()
    if not text:
        return ""
    for pattern in (DATETIME_FORMAT, "%Y-%m-%d"):
        try:
            return datetime.strptime(text, pattern).strftime(DATETIME_FORMAT)
        except ValueError:
            continue
    return None


def stored_password(text: str) -> str:
    """A password as the instance keeps it: a one-way hash, never the text ("" stays "")."""
    if not text:
        return ""
    return "sha256:" + hashlib.sha256(text.encode()).hexdigest()
