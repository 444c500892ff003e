"""Write an imported schema as snsync's YAML: connection settings from a base config (or
placeholders), then scope, action switches and mappings, one comment per item saying where in
the schema it came from."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import yaml

from snsync.errors import ConfigError
from snsync.migrate.model import Carried, Imported
from snsync.printable import printable

PLACEHOLDERS: Mapping[str, Any] = {
    "graph": {
        "tenant_id": "REPLACE-WITH-TENANT-ID",
        "client_id": "REPLACE-WITH-CLIENT-ID",
        "client_secret": "${SNSYNC_GRAPH_SECRET}",
        "app_id": "REPLACE-WITH-THE-SERVICENOW-APP-ID",
    },
    "servicenow": {
        "instance": "your-instance",
        "auth": {"type": "basic", "username": "snsync", "password": "${SNSYNC_SN_PASSWORD}"},
    },
}
"""Connection settings written when no --base config is given (fill them in, then validate)."""


def load_base(path: Path) -> dict[str, Any]:
    """The base config as written (secrets and ${ENV} references untouched); ConfigError if bad."""
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read the base config: {exc.strerror}") from exc
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: the base config is not valid YAML") from exc
    if not isinstance(raw, dict):
        raise ConfigError(f"{path}: the base config's top level must be a mapping of sections")
    return raw


def render(imported: Imported, source_name: str, base: Mapping[str, Any] | None) -> str:
    """The config text for `imported`, keeping the connection settings of `base`."""
    sections = dict(base) if base is not None else {k: dict(v) for k, v in PLACEHOLDERS.items()}
    head = [f"# snsync config written by `snsync import-schema` from {_one_line(source_name)}"]
    if base is None:
        head.append("# graph and servicenow hold placeholders: fill them in, then snsync validate")
    head += [f"# {_one_line(note)}" for note in imported.notes]
    for problem in imported.not_carried:
        head.append(f"# NOT CARRIED {_one_line(str(problem))}")
    scope = {k: v for k, v in dict(sections.pop("scope", None) or {}).items() if k != "filters"}
    mappings = dict(sections.pop("mappings", None) or {})
    mappings.pop("users", None)
    mappings.pop("groups", None)
    safety = dict(sections.pop("safety", None) or {})
    if imported.actions:
        safety["actions"] = imported.actions
    parts = ["\n".join(head), _dump(sections)]
    if safety:
        parts.append(_dump({"safety": safety}))
    parts.append(_scope(scope, imported.filters))
    parts.append(_mappings(mappings, imported))
    return "\n".join(p for p in parts if p) + "\n"


def _scope(other: Mapping[str, Any], filters: Sequence[Carried]) -> str:
    lines = ["scope:"]
    lines += _indent(_dump(dict(other)), 2) if other else []
    if not filters:
        lines.append("  filters: []")
        return "\n".join(lines)
    lines.append("  filters:  # filter groups are ORed, the clauses of one group ANDed")
    for carried in filters:
        lines.append(f"    # from {_one_line(carried.origin)}")
        clauses = list(carried.item)
        lines.append(f"    - - {_flow(clauses[0])}")
        lines += [f"      - {_flow(clause)}" for clause in clauses[1:]]
    return "\n".join(lines)


def _mappings(other: Mapping[str, Any], imported: Imported) -> str:
    lines = ["mappings:"]
    lines += _indent(_dump(dict(other)), 2) if other else []
    for name, items in (("users", imported.users), ("groups", imported.groups)):
        if not items:
            continue  # snsync's defaults apply; the NOT CARRIED lines above say why
        lines.append(f"  {name}:")
        for carried in items:
            lines.append(f"    # from {_one_line(carried.origin)}")
            lines.append(f"    - {_flow(carried.item)}")
    return "\n".join(lines) if len(lines) > 1 else ""


def _dump(data: Mapping[str, Any]) -> str:
    if not data:
        return ""
    return yaml.safe_dump(dict(data), sort_keys=False, default_flow_style=False, width=100).rstrip()


def _flow(item: Any) -> str:
    return yaml.safe_dump(item, sort_keys=False, default_flow_style=True, width=10_000).strip()


def _indent(text: str, spaces: int) -> list[str]:
    return [" " * spaces + line for line in text.splitlines()]


def _one_line(text: str) -> str:
    # Schema text ends up in comments: a line break there (YAML also breaks lines at NEL and
    # U+2028/U+2029) would start a YAML line of its own.
    return printable(text)
