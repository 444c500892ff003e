"""`snsync import-schema`: read the schema file, translate it, write the config file."""

from __future__ import annotations

import json
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from snsync.errors import ConfigError
from snsync.migrate.model import Imported
from snsync.migrate.schema import translate_schema
from snsync.migrate.writer import load_base, render

MAX_SCHEMA_BYTES = 32 * 1024 * 1024
"""Real schemas are well under a megabyte; anything this big is not one."""


@dataclass(frozen=True)
class SchemaImport:
    """The config text written and what the schema held that it does not carry."""

    text: str
    imported: Imported


def import_schema(schema_path: Path, base_path: Path | None) -> SchemaImport:
    """Translate the schema at `schema_path`, keeping the connection settings of `base_path`."""
    base = load_base(base_path) if base_path is not None else None
    mappings = (base or {}).get("mappings")
    link_field = mappings.get("link_field", "source") if isinstance(mappings, dict) else "source"
    imported = translate_schema(read_schema(schema_path), link_field)
    return SchemaImport(render(imported, schema_path.name, base), imported)


def read_schema(path: Path) -> Any:
    """The schema document; ConfigError naming the file and the problem."""
    try:
        with path.open("rb") as handle:
            data = handle.read(MAX_SCHEMA_BYTES + 1)
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read the schema file: {exc.strerror}") from exc
    if len(data) > MAX_SCHEMA_BYTES:
        raise ConfigError(f"{path}: larger than {MAX_SCHEMA_BYTES // 2**20} MB, not a schema")
    # Windows PowerShell 5 writes `> file` as UTF-16 with a byte order mark.
    encoding = "utf-16" if data[:2] in (b"\xff\xfe", b"\xfe\xff") else "utf-8-sig"
    try:
        return json.loads(data.decode(encoding))
    except UnicodeDecodeError:
        raise ConfigError(f"{path}: not UTF-8 or UTF-16 text (export the schema as JSON)") from None
    except json.JSONDecodeError as exc:
        raise ConfigError(
            f"{path}: line {exc.lineno}, col {exc.colno}: not valid JSON ({exc.msg})"
        ) from None


def write_config(path: Path, text: str) -> None:
    """Write the config atomically, readable by its owner only (a base may hold secrets)."""
    folder = path.parent if str(path.parent) else Path(".")
    try:
        fd, tmp = tempfile.mkstemp(dir=folder, prefix=f".{path.name}.", suffix=".tmp")
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
        os.chmod(tmp, 0o600)
        os.replace(tmp, path)
    except OSError as exc:
        raise ConfigError(f"{path}: cannot write the config: {exc.strerror}") from exc
