"""The value types of the config, each validated one way: durations (`40m`, `6h`, `1d`), https
URLs, files relative to the config's folder (every CA file is one), mail addresses, and
ServiceNow instance names."""

from __future__ import annotations

import re
from email.utils import parseaddr
from pathlib import Path
from typing import Annotated

from pydantic import AfterValidator, BeforeValidator, Field, ValidationInfo

_INSTANCE_NAME = re.compile(r"^[a-z0-9][a-z0-9-]{0,62}$")
_DURATION = re.compile(r"^\s*(\d+)\s*([smhd]?)\s*$")
_ADDRESS = re.compile(r"[^@\s<>,;]+@[^@\s<>,;]+")


def parse_duration(text: str | int) -> int:
    """Seconds in a duration such as `40m`, `6h`, `1d`, `30s` or a bare number of seconds."""
    if isinstance(text, int):
        return text
    match = _DURATION.match(str(text))
    if not match:
        raise ValueError(f"'{text}' is not a duration like 30s, 40m, 6h or 1d")
    return int(match.group(1)) * {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400}[match.group(2)]


def _https_url(value: str) -> str:
    if not value.lower().startswith("https://"):
        raise ValueError(f"'{value}' must be an https:// URL (TLS is required)")
    return value.rstrip("/")


def relative_to_config(value: Path, info: ValidationInfo) -> Path:
    """Relative paths in the config are relative to the config file's folder, not the cwd."""
    path = value.expanduser()
    base = (info.context or {}).get("base") if info else None
    return path if path.is_absolute() or base is None else Path(base) / path


def _existing_file(value: Path, info: ValidationInfo) -> Path:
    path = relative_to_config(value, info)
    if not path.is_file():
        raise ValueError(f"file '{path}' does not exist")
    return path


def _address(value: str) -> str:
    text = value.strip()
    if "\r" in text or "\n" in text:
        raise ValueError("a mail address must not contain a line break")
    if not _ADDRESS.fullmatch(parseaddr(text)[1]):
        raise ValueError(f"'{value}' is not a mail address like snsync@example.com")
    return text


HttpsUrl = Annotated[str, AfterValidator(_https_url)]
ExistingFile = Annotated[Path, AfterValidator(_existing_file)]  # also every CA file
Duration = Annotated[int, BeforeValidator(lambda v: parse_duration(v)), Field(ge=1)]
Address = Annotated[str, AfterValidator(_address)]


def instance_url(value: str) -> str:
    """The https base URL of a ServiceNow instance given by name (`acme`) or by URL."""
    text = value.strip()
    if "://" in text:
        return _https_url(text)
    if not _INSTANCE_NAME.match(text):
        raise ValueError(
            f"'{value}' is not a ServiceNow instance name (lowercase letters, digits and "
            "hyphens, as in https://NAME.service-now.com) nor an https:// URL"
        )
    return f"https://{text}.service-now.com"
