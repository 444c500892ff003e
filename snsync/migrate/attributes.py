"""One attributeMapping of a synchronization schema -> one snsync attribute mapping."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from snsync.mapping.catalog import (
    ObjectType,
    UnknownAttributeError,
    expression_attributes,
    mapping_attribute,
)
from snsync.mapping.expressions import (
    Call,
    ExpressionSyntaxError,
    Literal,
    parse,
)
from snsync.migrate.model import NotCarried

REFERENCE_FIELDS: Mapping[ObjectType, Mapping[str, str]] = {
    "user": {
        "department": "cmn_department",
        "manager": "sys_user",
        "location": "cmn_location",
        "company": "core_company",
        "cost_center": "cmn_cost_center",
        "building": "cmn_building",
    },
    "group": {"manager": "sys_user", "parent": "sys_user_group"},
}
"""Out-of-box reference fields of sys_user and sys_user_group, and the table each points at."""

MEMBERS = "members"
_FLOW_TYPES = {"always": "always", "objectaddonly": "on_create"}
_FLOW_BEHAVIORS = frozenset({"flowwhenchanged", "flowalways"})

TargetName = Callable[[str], "str | None"]
"""Schema target attribute name -> Table API field (None: no field corresponds)."""


@dataclass(frozen=True)
class Translated:
    """What one attributeMapping became."""

    item: dict[str, Any] | None
    """The snsync mapping, or None when it was not carried (or is the group members mapping)."""
    summary: str = ""
    """How the schema spelled it, for the comment above the mapping."""
    not_carried: tuple[NotCarried, ...] = ()
    members: bool = False


def translate_mapping(
    raw: Any, path: str, object_type: ObjectType, target_name: TargetName
) -> Translated:
    """Translate the attributeMapping `raw` found at `path` in the schema."""
    if not isinstance(raw, Mapping):
        return _dropped(path, "not an attributeMapping object")
    schema_target = raw.get("targetAttributeName")
    if not isinstance(schema_target, str) or not schema_target.strip():
        return _dropped(path, "no targetAttributeName")
    if object_type == "group" and schema_target.strip().lower() == MEMBERS:
        return Translated(None, members=True)
    target = target_name(schema_target.strip())
    if target is None:
        return _dropped(
            path, f"target '{schema_target}' has no ServiceNow Table API field that corresponds"
        )
    flow = str(raw.get("flowType") or "Always")
    apply = _FLOW_TYPES.get(flow.lower())
    if apply is None:
        return _dropped(
            path,
            f"flowType '{flow}' on target '{target}' (snsync supports Always and ObjectAddOnly; "
            "map it by hand if 'only during creation' is close enough)",
        )
    problems = _behavior_problems(raw, path)
    item, summary, problem = _source(raw.get("source"), raw.get("defaultValue"), object_type)
    if item is None:
        return _dropped(path, f"target '{target}': {problem}", problems)
    return _finish(raw, target, apply, item, summary, object_type, problems)


def _finish(
    raw: Mapping[str, Any],
    target: str,
    apply: str,
    item: dict[str, Any],
    summary: str,
    object_type: ObjectType,
    problems: tuple[NotCarried, ...],
) -> Translated:
    mapping: dict[str, Any] = {"target": target, **item}
    default = raw.get("defaultValue")
    if default is not None and "constant" not in item and item.get("type") != "none":
        mapping["default"] = str(default)
    priority = raw.get("matchingPriority")
    if isinstance(priority, int) and not isinstance(priority, bool) and priority > 0:
        mapping.update(matching=True, precedence=priority)
        summary += f", matching priority {priority}"
    if apply != "always":
        mapping["apply"] = apply
        summary += ", ObjectAddOnly"
    reference = REFERENCE_FIELDS[object_type].get(target)
    if reference and item.get("type") != "none":
        mapping["reference"] = reference
    if raw.get("exportMissingReferences") is True:
        # "For internal use only" in Graph's reference; snsync orders creates so that managers
        # exist before their reports, and creates missing departments only if configured to.
        summary += ", exportMissingReferences (internal to Microsoft's service)"
    return Translated(mapping, summary, problems)


def _source(
    source: Any, default: Any, object_type: ObjectType
) -> tuple[dict[str, Any] | None, str, str]:
    """(snsync mapping keys, summary, problem) for an attributeMappingSource."""
    if source is None:
        if default is None:
            return {"type": "none"}, "no source (leave the field alone)", ""
        return {"constant": str(default)}, "no source, defaultValue", ""
    if not isinstance(source, Mapping):
        return None, "", "source is not an attributeMappingSource object"
    kind = str(source.get("type") or "Attribute")
    if kind == "Attribute":
        return _attribute_source(source, object_type)
    if kind == "Constant":
        return _constant_source(source)
    if kind == "Function":
        return _function_source(source, object_type)
    return None, "", f"source type '{kind}' (snsync knows Attribute, Constant and Function)"


def _attribute_source(
    source: Mapping[str, Any], object_type: ObjectType
) -> tuple[dict[str, Any] | None, str, str]:
    name = source.get("name")
    if not isinstance(name, str) or not name:
        return None, "", "Attribute source without a name"
    try:
        resolved = mapping_attribute(name, object_type)
    except UnknownAttributeError as exc:
        return None, "", str(exc)
    note = (
        f", the provisioning service's name of {resolved}"
        if resolved.lower() != name.lower()
        else ""
    )
    return {"source": resolved}, f"Attribute [{name}]{note}", ""


def _constant_source(source: Mapping[str, Any]) -> tuple[dict[str, Any] | None, str, str]:
    expression = source.get("expression")
    if isinstance(expression, str) and expression.strip():
        try:
            tree = parse(expression)
        except ExpressionSyntaxError as exc:
            return None, "", f"Constant expression {expression!r}: {exc}"
        if isinstance(tree, Literal) and tree.value is not None:
            return {"constant": str(tree.value)}, "Constant", ""
        return None, "", f"Constant expression {expression!r} is not a single quoted value"
    name = source.get("name")
    if name is None:
        return None, "", "Constant source without a value"
    return {"constant": str(name)}, "Constant", ""


def _function_source(
    source: Mapping[str, Any], object_type: ObjectType
) -> tuple[dict[str, Any] | None, str, str]:
    # The expression text is the truth; `parameters` mirrors it imperfectly and is not read.
    # parse() also refuses functions snsync does not implement (names are case-sensitive).
    expression = source.get("expression")
    if not isinstance(expression, str) or not expression.strip():
        return None, "", "Function source without an expression"
    try:
        tree = parse(expression)
    except ExpressionSyntaxError as exc:
        return None, "", f"expression {expression!r} does not parse: {exc}"
    try:
        text = expression_attributes(expression, object_type)
    except UnknownAttributeError as exc:
        return None, "", f"expression {expression!r}: {exc}"
    note = ", the provisioning service's attribute names translated" if text != expression else ""
    return {"expression": text}, f"Function {tree.name if isinstance(tree, Call) else ''}{note}", ""


def _behavior_problems(raw: Mapping[str, Any], path: str) -> tuple[NotCarried, ...]:
    behavior = raw.get("flowBehavior")
    if behavior is None or str(behavior).lower() in _FLOW_BEHAVIORS:
        return ()
    return (NotCarried(f"{path}.flowBehavior", f"unknown flowBehavior '{behavior}'"),)


def _dropped(path: str, what: str, more: tuple[NotCarried, ...] = ()) -> Translated:
    return Translated(None, not_carried=(NotCarried(path, what), *more))
