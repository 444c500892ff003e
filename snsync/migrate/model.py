"""Plain data passed between the schema reader, the translators and the YAML writer."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class NotCarried:
    """One construct of the schema that the written config does not reproduce."""

    path: str
    """Where it is in the schema, e.g. synchronizationRules[0].objectMappings[1].scope."""
    what: str
    """What it is and why it was left out, for an admin reading the import's output."""

    def __str__(self) -> str:
        return f"{self.path}: {self.what}"


@dataclass(frozen=True)
class Carried:
    """One snsync config item (a mapping or a filter group) and where in the schema it came from."""

    item: Any
    origin: str


@dataclass(frozen=True)
class Imported:
    """Everything translated from one schema."""

    users: tuple[Carried, ...] = ()
    groups: tuple[Carried, ...] = ()
    filters: tuple[Carried, ...] = ()
    actions: dict[str, bool] = field(default_factory=dict)
    not_carried: tuple[NotCarried, ...] = ()
    notes: tuple[str, ...] = ()
    """Comments for the head of the written file (source directory, template, ...)."""
