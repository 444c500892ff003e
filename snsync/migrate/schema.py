"""Walk a synchronization schema (as Graph's `.../synchronization/jobs/{id}/schema` returns it)
and translate its rules and object mappings into snsync's mappings, scope and action switches."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from snsync.errors import ConfigError
from snsync.mapping.catalog import ObjectType
from snsync.migrate.attributes import TargetName, Translated, translate_mapping
from snsync.migrate.model import Carried, Imported, NotCarried
from snsync.migrate.scim import is_scim_rule, scim_field, scim_object
from snsync.migrate.scoping import translate_scope

SOURCE_DIRECTORIES = frozenset({"azure active directory", "microsoft entra id"})
"""The source directory as older (Azure AD) and newer (Entra ID) exports name it."""
TABLE_OBJECTS: Mapping[str, ObjectType] = {"sys_user": "user", "sys_user_group": "group"}
FLOW_ACTIONS = {"add": "create", "update": "update", "delete": "disable"}
_TABLE_FIELD = re.compile(r"[a-z][a-z0-9_]*")


def translate_schema(schema: Any, link_field: str | None = "source") -> Imported:
    """Everything snsync can carry over from a schema, and what it cannot; raises ConfigError
    when the document is not a synchronization schema at all. `link_field` is the field snsync
    stamps its link in (mappings.link_field), which no mapping may write."""
    rules = _rules(schema)
    walk = _Walk(link_field=link_field)
    for index, rule in enumerate(rules):
        walk.rule(rule, f"synchronizationRules[{index}]")
    return walk.result()


def _rules(schema: Any) -> list[Any]:
    if isinstance(schema, Mapping) and isinstance(schema.get("schema"), Mapping):
        schema = schema["schema"]  # a synchronization job or template with its schema inline
    rules = schema.get("synchronizationRules") if isinstance(schema, Mapping) else None
    if not isinstance(rules, list):
        raise ConfigError(
            "not a synchronization schema: no synchronizationRules list at the top level (export "
            "it with GET /servicePrincipals/{id}/synchronization/jobs/{jobId}/schema)"
        )
    return rules


@dataclass
class _Walk:
    """Accumulates what the rules translate to, first object mapping of each kind winning."""

    link_field: str | None
    mappings: dict[ObjectType, list[Carried]] = field(default_factory=dict)
    filters: list[Carried] = field(default_factory=list)
    actions: dict[str, bool] = field(default_factory=dict)
    not_carried: list[NotCarried] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def rule(self, rule: Any, path: str) -> None:
        if not isinstance(rule, Mapping):
            self.not_carried.append(NotCarried(path, "not a synchronizationRule object"))
            return
        source = str(rule.get("sourceDirectoryName") or "")
        if source.strip().lower() not in SOURCE_DIRECTORIES:
            self.not_carried.append(
                NotCarried(path, f"source directory '{source}' (snsync reads Microsoft Entra ID)")
            )
            return
        scim = is_scim_rule(rule)
        target = str(rule.get("targetDirectoryName") or "")
        template = "ServiceNow SCIM template" if scim else "ServiceNow Table API"
        self.notes.append(f"{path}: '{source}' -> '{target}' ({template})")
        objects = rule.get("objectMappings")
        for index, mapping in enumerate(objects if isinstance(objects, list) else []):
            self.object_mapping(mapping, f"{path}.objectMappings[{index}]", scim)

    def object_mapping(self, raw: Any, path: str, scim: bool) -> None:
        kind = self._kind(raw, path, scim)
        if kind is None:
            return
        if kind in self.mappings:
            self.not_carried.append(NotCarried(path, f"a second {kind} object mapping"))
            return
        if raw.get("enabled") is False:
            self.not_carried.append(
                NotCarried(
                    f"{path}.enabled",
                    f"the {kind} mapping is disabled; snsync provisions assigned {kind}s always "
                    "(its mappings are carried for when it is enabled)",
                )
            )
        self._flow_types(raw.get("flowTypes"), f"{path}.flowTypes", kind)
        self.mappings[kind] = self._attributes(raw.get("attributeMappings"), path, kind, scim)
        self._scope(raw.get("scope"), f"{path}.scope", kind)

    def _kind(self, raw: Any, path: str, scim: bool) -> ObjectType | None:
        if not isinstance(raw, Mapping):
            self.not_carried.append(NotCarried(path, "not an objectMapping object"))
            return None
        source = str(raw.get("sourceObjectName") or "").strip().lower()
        target_name = str(raw.get("targetObjectName") or "").strip()
        target = scim_object(target_name) if scim else TABLE_OBJECTS.get(target_name.lower())
        if source not in ("user", "group") or target != source:
            self.not_carried.append(
                NotCarried(
                    path,
                    f"object mapping {raw.get('sourceObjectName')!r} -> {target_name!r} "
                    "(snsync provisions User -> sys_user and Group -> sys_user_group)",
                )
            )
            return None
        return target

    def _flow_types(self, raw: Any, path: str, kind: ObjectType) -> None:
        text = "Add, Update, Delete" if raw is None else str(raw)
        words = [w for w in re.split(r"[\s,]+", text.strip()) if w]
        if len(words) == 1 and words[0].lower() not in FLOW_ACTIONS:
            words = re.findall(r"[A-Z][a-z]*", words[0])  # "AddUpdateDelete", as some exports
        unknown = [w for w in words if w.lower() not in FLOW_ACTIONS]
        if unknown:
            self.not_carried.append(NotCarried(path, f"flow type '{unknown[0]}' in '{text}'"))
        wanted = {action: False for action in FLOW_ACTIONS.values()}
        wanted.update({FLOW_ACTIONS[w.lower()]: True for w in words if w.lower() in FLOW_ACTIONS})
        if not self.actions:
            self.actions = wanted
        elif wanted != self.actions:
            self.not_carried.append(
                NotCarried(
                    path,
                    f"{kind} flow types '{text}' differ from the user mapping's; snsync's "
                    "safety.actions apply to users and groups alike (the first mapping's kept)",
                )
            )

    def _attributes(self, raw: Any, path: str, kind: ObjectType, scim: bool) -> list[Carried]:
        carried: list[Carried] = []
        targets: set[str] = set()
        members = False
        name: TargetName = (lambda t: scim_field(t, kind)) if scim else _table_field
        for index, item in enumerate(raw if isinstance(raw, list) else []):
            where = f"{path}.attributeMappings[{index}]"
            done = translate_mapping(item, where, kind, name)
            members = members or done.members
            self.not_carried.extend(done.not_carried)
            if done.item is not None:
                self._add(carried, targets, done, where)
        if kind == "group":
            self._members_note(members, path)
        if not any(c.item.get("matching") for c in carried):
            self.not_carried.append(
                NotCarried(
                    f"{path}.attributeMappings",
                    "no attribute has matchingPriority above 0; snsync needs one to match "
                    "existing records (add matching: true to one mapping)",
                )
            )
        return carried

    def _add(self, carried: list[Carried], targets: set[str], done: Translated, where: str) -> None:
        assert done.item is not None
        target = str(done.item["target"])
        if target == self.link_field:
            self.not_carried.append(
                NotCarried(
                    where,
                    f"maps '{target}', the field snsync stamps its link in (mappings.link_field); "
                    "set link_field to another field or null to keep this mapping",
                )
            )
            return
        if target in targets:
            self.not_carried.append(NotCarried(where, f"a second mapping to '{target}'"))
            return
        targets.add(target)
        carried.append(Carried(done.item, f"{where} ({done.summary})"))

    def _members_note(self, members: bool, path: str) -> None:
        if members:
            self.notes.append(
                f"{path}: group members -> sys_user_grmember rows (snsync keeps the membership "
                "rows of assigned groups)"
            )
        else:
            self.not_carried.append(
                NotCarried(
                    f"{path}.attributeMappings",
                    "no members mapping: Microsoft's job leaves group memberships alone, "
                    "snsync keeps the sys_user_grmember rows of assigned groups",
                )
            )

    def _scope(self, raw: Any, path: str, kind: ObjectType) -> None:
        if kind == "group":
            if isinstance(raw, Mapping) and raw.get("groups"):
                self.not_carried.append(
                    NotCarried(
                        path, "scoping filters on groups (snsync scopes groups by assignment)"
                    ),
                )
            return
        filters, problems = translate_scope(raw, path)
        self.filters.extend(filters)
        self.not_carried.extend(problems)

    def result(self) -> Imported:
        if "user" not in self.mappings:
            self.not_carried.append(
                NotCarried("synchronizationRules", "no User -> sys_user object mapping found")
            )
        return Imported(
            users=tuple(self.mappings.get("user", ())),
            groups=tuple(self.mappings.get("group", ())),
            filters=tuple(self.filters),
            actions=self.actions,
            not_carried=tuple(self.not_carried),
            notes=tuple(self.notes),
        )


def _table_field(name: str) -> str | None:
    return name if _TABLE_FIELD.fullmatch(name) else None
