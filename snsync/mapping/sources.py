"""Check the directory attributes a config's mappings and scoping filters read (catalog.py),
and spell each as snsync reads it from Graph; config.py's validators call these."""

from __future__ import annotations

from typing import TYPE_CHECKING

from snsync.mapping.catalog import (
    ObjectType,
    UnknownAttributeError,
    expression_attributes,
    filter_attribute,
    mapping_attribute,
)

if TYPE_CHECKING:
    from snsync.config import AttributeMapping, ScopeClause


class LocatedError(ValueError):
    """A problem found by a list's validator, reported at the key path `where` inside it."""

    def __init__(self, where: tuple[str | int, ...], message: str) -> None:
        super().__init__(message)
        self.where = where


def mapping_sources(
    mappings: list[AttributeMapping], object_type: ObjectType
) -> list[AttributeMapping]:
    """The mappings with every directory attribute they read spelled as snsync reads it from
    Graph (the provisioning service's names translated); LocatedError at an unknown one."""
    checked: list[AttributeMapping] = []
    for index, m in enumerate(mappings):
        key = "expression" if m.kind == "expression" else "source"
        try:
            if m.kind == "direct" and m.source:
                m = m.model_copy(update={"source": mapping_attribute(m.source, object_type)})
            elif m.kind == "expression" and m.expression:
                text = expression_attributes(m.expression, object_type)
                m = m.model_copy(update={"expression": text})
        except UnknownAttributeError as exc:
            raise LocatedError((index, key), str(exc)) from None
        checked.append(m)
    return checked


def filter_attributes(filters: list[list[ScopeClause]]) -> list[list[ScopeClause]]:
    """The scoping filters with each clause's attribute spelled as Graph returns it."""
    checked: list[list[ScopeClause]] = []
    for i, clauses in enumerate(filters):
        group: list[ScopeClause] = []
        for j, clause in enumerate(clauses):
            try:
                name = filter_attribute(clause.attribute)
            except UnknownAttributeError as exc:
                raise LocatedError((i, j, "attribute"), str(exc)) from None
            group.append(clause.model_copy(update={"attribute": name}))
        checked.append(group)
    return checked
