"""Scoping filters of a synchronization schema -> snsync's `scope.filters`."""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from snsync.mapping.catalog import UnknownAttributeError, filter_attribute
from snsync.migrate.model import Carried, NotCarried

OPERATORS = (
    "EQUALS", "NOT EQUALS", "IS TRUE", "IS FALSE", "IS NULL", "IS NOT NULL", "REGEX MATCH",
    "NOT REGEX MATCH", "Includes", "ENDS_WITH", "Greater_Than", "Greater_Than_OR_EQUALS", "&",
    "!&",
)  # fmt: skip
"""Every scoping operator Entra documents, spelled as snsync's config spells it."""

UNARY = frozenset({"IS TRUE", "IS FALSE", "IS NULL", "IS NOT NULL"})
_BY_KEY = {re.sub(r"[\s_]+", " ", op).upper(): op for op in OPERATORS}


def operator_name(text: str) -> str | None:
    """snsync's spelling of a schema operatorName (spaces, underscores and case vary)."""
    return _BY_KEY.get(re.sub(r"[\s_]+", " ", text.strip()).upper())


def translate_scope(scope: Any, path: str) -> tuple[list[Carried], list[NotCarried]]:
    """The filter groups of a user objectMapping's `scope` (groups ORed, clauses ANDed).

    A group with a clause snsync cannot evaluate is left out whole: dropping only the clause
    would let more users into scope than Microsoft's job lets in."""
    if scope is None:
        return [], []
    if not isinstance(scope, Mapping):
        return [], [NotCarried(path, "scope is not a filter object")]
    problems = [
        NotCarried(f"{path}.{key}", f"{key} (experimental in Graph) is not supported by snsync")
        for key in ("inputFilterGroups", "categoryFilterGroups")
        if scope.get(key)
    ]
    carried: list[Carried] = []
    groups = scope.get("groups") or []
    for index, group in enumerate(groups if isinstance(groups, list) else []):
        where = f"{path}.groups[{index}]"
        clauses, problem = _group(group, where)
        if problem is not None:
            problems.append(problem)
        else:
            name = group.get("name") if isinstance(group, Mapping) else None
            origin = where + (f" ('{name}')" if isinstance(name, str) and name else "")
            carried.append(Carried(clauses, origin))
    if groups and not carried:
        problems.append(
            NotCarried(
                f"{path}.groups",
                "no scoping filter group could be carried: as written, snsync would sync every "
                "assigned user; add a filter by hand before the first run",
            )
        )
    return carried, problems


def _group(group: Any, where: str) -> tuple[list[dict[str, str]], NotCarried | None]:
    raw_clauses = group.get("clauses") if isinstance(group, Mapping) else None
    if not isinstance(raw_clauses, list) or not raw_clauses:
        return [], NotCarried(where, "filter group without clauses")
    clauses: list[dict[str, str]] = []
    for index, raw in enumerate(raw_clauses):
        clause = _clause(raw)
        if isinstance(clause, str):
            return [], NotCarried(
                f"{where}.clauses[{index}]", f"{clause}; the whole filter group was left out"
            )
        clauses.append(clause)
    return clauses, None


def _clause(raw: Any) -> dict[str, str] | str:
    """The snsync clause, or why it cannot be one."""
    if not isinstance(raw, Mapping):
        return "not a filterClause object"
    name, op_text = raw.get("sourceOperandName"), raw.get("operatorName")
    if not isinstance(name, str) or not isinstance(op_text, str):
        return "clause without sourceOperandName or operatorName"
    operator = operator_name(op_text)
    if operator is None:
        return f"operator '{op_text}' is not one snsync evaluates ({', '.join(OPERATORS)})"
    try:
        attribute = filter_attribute(name)
    except UnknownAttributeError as exc:
        return str(exc)
    clause = {"attribute": attribute, "operator": operator}
    if operator in UNARY:
        return clause
    operand = raw.get("targetOperand")
    values = operand.get("values") if isinstance(operand, Mapping) else None
    if not isinstance(values, list) or len(values) != 1 or not isinstance(values[0], str):
        return f"operator '{op_text}' on '{name}' needs exactly one value, got {values!r}"
    if operator in ("REGEX MATCH", "NOT REGEX MATCH"):
        try:
            re.compile(values[0])
        except re.error as exc:
            return f"pattern {values[0]!r} is not a regular expression snsync can run: {exc}"
    return {**clause, "value": values[0]}
