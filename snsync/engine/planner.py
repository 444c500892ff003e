"""The plan: what to create, update, disable or skip, as a pure function of the desired records,
the ServiceNow records and the links. No I/O; most behaviour tests are tests of this module."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace

from snsync.model import (
    Action,
    Change,
    Desired,
    ObjectType,
    Plan,
    PlanItem,
    Reason,
    Record,
    Result,
    Status,
    TargetSnapshot,
)

References = Mapping[str, Mapping[str, str]]  # table -> display value (lower) -> sys_id
Notice = tuple[str, str]  # (reason code, message) of a Warning status
DEFAULT_PROTECTED = ("admin", "system", "guest", "maint", "snc_internal")


@dataclass(frozen=True)
class PlanOptions:
    """The knobs of planning, taken from the config."""

    matching_fields: tuple[str, ...] = ("user_name",)
    link_field: str | None = "source"
    link_prefix: str = "entra:"
    create: bool = True
    update: bool = True
    disable: bool = True
    skip_out_of_scope_deletions: bool = False
    protected_names: frozenset[str] = frozenset(DEFAULT_PROTECTED)
    name_field: str = "user_name"
    manager_table: str = "sys_user"
    names: Mapping[str, str] = field(default_factory=dict)  # directory id -> display name
    people: Mapping[str, str] | None = None  # user links, when planning another table than users
    object_type: ObjectType = ObjectType.USER


@dataclass
class _Index:
    """Lookups over the ServiceNow records built once per plan."""

    records: Mapping[str, Record]
    by_field: dict[str, dict[str, list[str]]] = field(default_factory=dict)
    by_stamp: dict[str, str] = field(default_factory=dict)


def effective_links(
    links: Mapping[str, str], records: Mapping[str, Record], options: PlanOptions
) -> dict[str, str]:
    """Links to use: stored links whose record still exists, plus links rebuilt from the stamp in
    the link field (so a lost state file does not make snsync create duplicates)."""
    result = {d: s for d, s in links.items() if s in records}
    if options.link_field:
        prefix = options.link_prefix
        taken = set(result.values())
        for sys_id, record in records.items():
            stamp = record.get(options.link_field, "")
            if stamp.startswith(prefix) and sys_id not in taken:
                result.setdefault(stamp[len(prefix) :], sys_id)
    return result


def plan_users(
    desired: Sequence[Desired],
    target: TargetSnapshot,
    links: Mapping[str, str],
    options: PlanOptions,
) -> Plan:
    """Plan users (sys_user) against the target."""
    return plan_objects(desired, target.users, target.references, links, options)


def plan_objects(
    desired: Sequence[Desired],
    records: Mapping[str, Record],
    references: References,
    links: Mapping[str, str],
    options: PlanOptions,
) -> Plan:
    """Plan one table: every desired record against the table's records, then linked records
    whose directory object is gone."""
    index = _build_index(records, options)
    names = {d.directory_id: d.display_name for d in desired}
    options = replace(options, names={**names, **options.names})
    linked = effective_links(links, records, options)
    claimed = {sys_id: d for d, sys_id in linked.items()}
    planned_creates = {
        d.directory_id for d in desired if d.directory_id not in linked and d.in_scope and d.active
    }
    items: list[PlanItem] = []
    unchanged = 0
    seen: set[str] = set()
    for want in sorted(desired, key=lambda d: (d.display_name.lower(), d.directory_id)):
        seen.add(want.directory_id)
        sys_id = linked.get(want.directory_id)
        if sys_id:
            item = _plan_linked(want, sys_id, index, linked, planned_creates, references, options)
        else:
            item = _plan_unlinked(
                want, index, claimed, linked, planned_creates, references, options
            )
        if item is None:
            unchanged += 1
        else:
            items.append(_switch(item, options))
    for directory_id, sys_id in sorted(linked.items()):
        if directory_id in seen:
            continue
        record = index.records[sys_id]
        item = _plan_gone(directory_id, sys_id, record, options)
        if item is not None:
            items.append(_switch(item, options))
    if options.object_type is not ObjectType.USER:
        items = [replace(item, object_type=options.object_type) for item in items]
    return Plan(tuple(items), unchanged, _missing_references(desired, references, options))


def _missing_references(
    desired: Sequence[Desired], references: References, options: PlanOptions
) -> frozenset[tuple[str, str]]:
    """Reference values (department, location, ...) that wanted records name but do not exist."""
    return frozenset(
        (table, value)
        for want in desired
        if want.in_scope
        for table, value in want.references.values()
        if table != options.manager_table and value.strip().lower() not in references.get(table, {})
    )


def execution_waves(items: Sequence[PlanItem]) -> list[list[PlanItem]]:
    """Order items so a manager is created before the people reporting to them: wave k holds
    items whose deferred manager is created in wave k-1. One pass then sets every manager at
    create time instead of a second write per user."""
    creating = {i.directory_id: i for i in items if i.action is Action.CREATE and i.writes}
    depths: dict[str, int] = {}

    def depth(item: PlanItem, path: frozenset[str]) -> int:
        if item.directory_id in depths:
            return depths[item.directory_id]
        parents = [creating[m] for m in item.deferred.values() if m in creating]
        # A reporting loop (A manages B manages A) cannot be ordered: the second pass sets it.
        found = [
            depth(p, path | {item.directory_id}) + 1 for p in parents if p.directory_id not in path
        ]
        depths[item.directory_id] = max(found, default=0)
        return depths[item.directory_id]

    waves: dict[int, list[PlanItem]] = {}
    for item in items:
        waves.setdefault(depth(item, frozenset()), []).append(item)
    return [waves[k] for k in sorted(waves)]


def with_references(item: PlanItem, links: Mapping[str, str]) -> PlanItem:
    """The item with deferred reference fields filled in from links made earlier this cycle."""
    resolved = {f: links[d] for f, d in item.deferred.items() if d in links}
    if not resolved:
        return item
    old = None if item.action is Action.CREATE else ""
    changes = item.changes + tuple(Change(f, old, v) for f, v in sorted(resolved.items()))
    pending = {f: d for f, d in item.deferred.items() if f not in resolved}
    return replace(item, changes=changes, deferred=pending)


def plan_deferred(
    items: Iterable[PlanItem], results: Iterable[Result], links: Mapping[str, str]
) -> list[PlanItem]:
    """Second pass: set reference fields (manager) that waited for a record created this cycle."""
    created = {r.item.directory_id: r.sys_id for r in results if r.sys_id}
    followups: list[PlanItem] = []
    for item in items:
        sys_id = created.get(item.directory_id) or item.sys_id
        if not item.deferred or not sys_id:
            continue
        changes = []
        for name, directory_id in sorted(item.deferred.items()):
            target_id = links.get(directory_id) or created.get(directory_id)
            if target_id:
                changes.append(Change(name, "", target_id))
        if changes:
            followups.append(
                PlanItem(
                    Action.UPDATE, item.directory_id, item.display_name, sys_id, tuple(changes)
                )
            )
    return followups


def _build_index(records: Mapping[str, Record], options: PlanOptions) -> _Index:
    index = _Index(records)
    for name in options.matching_fields:
        by_value: dict[str, list[str]] = {}
        for sys_id, record in records.items():
            value = record.get(name, "").strip().lower()
            if value:
                by_value.setdefault(value, []).append(sys_id)
        index.by_field[name] = by_value
    return index


def _plan_linked(
    want: Desired,
    sys_id: str,
    index: _Index,
    linked: Mapping[str, str],
    planned_creates: set[str],
    references: References,
    options: PlanOptions,
) -> PlanItem | None:
    record = index.records[sys_id]
    if want.error:
        return _failure(want, sys_id, Reason.EXPRESSION_FAILED, want.error)
    if not want.in_scope:
        return _plan_gone(want.directory_id, sys_id, record, options, want.display_name)
    labels: dict[str, str] = {}
    values, deferred, warnings = _resolve(
        want, linked, planned_creates, references, options, labels
    )
    changes = _diff(values, record, labels)
    if not changes and not deferred:
        return None
    return _update_item(want, sys_id, changes, deferred, warnings)


def _plan_unlinked(
    want: Desired,
    index: _Index,
    claimed: dict[str, str],
    linked: Mapping[str, str],
    planned_creates: set[str],
    references: References,
    options: PlanOptions,
) -> PlanItem | None:
    if not want.in_scope:
        return None  # never provisioned and not wanted: nothing of ours to touch
    if want.error:
        return _failure(want, None, Reason.EXPRESSION_FAILED, want.error)
    if not want.active:
        return _skip(
            want,
            Reason.NOT_ACTIVE,
            "disabled or soft-deleted in the directory; "
            "an account is created only for an active user",
        )
    empty = [name for name, value in want.matching if not value.strip()]
    if empty:
        return _skip(
            want,
            Reason.MISSING_MATCH_VALUE,
            f"matching attribute '{empty[0]}' is empty in the directory; fill the "
            "source attribute or change the matching mapping",
        )
    match = _match(want, index, options)
    if isinstance(match, PlanItem):
        return match
    labels: dict[str, str] = {}
    values, deferred, warnings = _resolve(
        want, linked, planned_creates, references, options, labels
    )
    if match is None:
        merged = {**want.create_only, **values}
        changes = tuple(
            Change(k, None, v, labels.get(k)) for k, v in sorted(merged.items()) if v != ""
        )
        return PlanItem(
            Action.CREATE,
            want.directory_id,
            want.display_name,
            None,
            changes,
            _status(warnings),
            _reason(warnings),
            _message(warnings),
            deferred=deferred,
        )
    owner = claimed.get(match)
    if owner is not None and owner != want.directory_id:
        return _failure(
            want,
            match,
            Reason.MATCH_LINKED_ELSEWHERE,
            f"the matching record is already linked to directory object {owner}; "
            "resolve the duplicate in the directory or ServiceNow",
        )
    record = index.records[match]
    stamp = record.get(options.link_field, "") if options.link_field else ""
    if stamp and not stamp.startswith(options.link_prefix):
        return _failure(
            want,
            match,
            Reason.OWNED_ELSEWHERE,
            f"the matching record has {options.link_field}='{stamp}' from another "
            "integration; snsync does not take it over",
        )
    claimed[match] = want.directory_id
    changes = _diff(values, record, labels)
    item = _update_item(want, match, changes, deferred, warnings)
    return PlanItem(
        item.action,
        item.directory_id,
        item.display_name,
        match,
        item.changes,
        item.status,
        item.reason,
        item.message or "adopted by matching",
        True,
        item.deferred,
    )


def _match(want: Desired, index: _Index, options: PlanOptions) -> str | PlanItem | None:
    for name, value in want.matching:
        candidates = index.by_field.get(name, {}).get(value.strip().lower(), [])
        if len(candidates) > 1:
            return _failure(
                want,
                None,
                Reason.AMBIGUOUS_MATCH,
                f"{len(candidates)} ServiceNow records have {name}='{value}'; "
                "nothing was written. Make the value unique in ServiceNow",
            )
        if candidates:
            record = index.records[candidates[0]]
            if record.get(options.name_field, "").lower() in options.protected_names:
                return _skip(
                    want,
                    Reason.PROTECTED_RECORD,
                    f"matches protected local account '{record.get(options.name_field)}'"
                    "; snsync never writes to it",
                )
            return candidates[0]
    return None


def _resolve(
    want: Desired,
    linked: Mapping[str, str],
    planned_creates: set[str],
    references: References,
    options: PlanOptions,
    labels: dict[str, str],
) -> tuple[dict[str, str], dict[str, str], list[Notice]]:
    """Resolve reference fields to sys_ids; `labels` receives their display values."""
    values = dict(want.values)
    deferred: dict[str, str] = {}
    warnings: list[Notice] = []
    for name, (table, value) in sorted(want.references.items()):
        labels[name] = options.names.get(value, value)
        if table == options.manager_table:
            people = linked if options.people is None else options.people
            if value in people:
                values[name] = people[value]
            elif value in planned_creates and options.people is None:
                deferred[name] = value
            else:
                warnings.append(
                    (
                        Reason.MANAGER_NOT_PROVISIONED,
                        f"{name} '{labels.get(name, value)}' has no ServiceNow account from snsync;"
                        " left empty",
                    )
                )
                values[name] = ""
            continue
        found = references.get(table, {}).get(value.strip().lower())
        if found:
            values[name] = found
        else:
            warnings.append(
                (
                    Reason.INVALID_LOOKUP,
                    f"{name} '{value}' does not exist in {table}; the field was left as it is",
                )
            )
    return values, deferred, warnings


def _diff(
    values: Mapping[str, str], record: Record, labels: Mapping[str, str]
) -> tuple[Change, ...]:
    return tuple(
        Change(name, record.get(name, ""), value, labels.get(name))
        for name, value in sorted(values.items())
        if record.get(name, "") != value
    )


def _update_item(
    want: Desired,
    sys_id: str,
    changes: tuple[Change, ...],
    deferred: Mapping[str, str],
    warnings: list[Notice],
) -> PlanItem:
    action = Action.UPDATE
    for change in changes:
        if change.field == "active" and change.new == "false":
            action = Action.DISABLE
        elif change.field == "active" and change.new == "true":
            action = Action.ENABLE
    return PlanItem(
        action,
        want.directory_id,
        want.display_name,
        sys_id,
        changes,
        _status(warnings),
        _reason(warnings),
        _message(warnings),
        deferred=deferred,
    )


def _plan_gone(
    directory_id: str,
    sys_id: str,
    record: Record,
    options: PlanOptions,
    display_name: str = "",
) -> PlanItem | None:
    name = display_name or record.get(options.name_field, "") or directory_id
    if record.get("active", "true") == "false":
        return None
    if options.skip_out_of_scope_deletions:
        return PlanItem(
            Action.SKIP,
            directory_id,
            name,
            sys_id,
            (),
            Status.SKIPPED,
            Reason.OUT_OF_SCOPE_KEPT,
            "out of scope; left active because skip_out_of_scope_deletions is on",
        )
    return PlanItem(
        Action.DISABLE,
        directory_id,
        name,
        sys_id,
        (Change("active", record.get("active", "true"), "false"),),
        message="no longer assigned, in scope or present in the directory",
    )


def _switch(item: PlanItem, options: PlanOptions) -> PlanItem:
    allowed = {
        Action.CREATE: options.create,
        Action.UPDATE: options.update,
        Action.ENABLE: options.update,
        Action.DISABLE: options.disable,
    }.get(item.action, True)
    if allowed:
        return item
    return PlanItem(
        Action.SKIP,
        item.directory_id,
        item.display_name,
        item.sys_id,
        item.changes,
        Status.SKIPPED,
        Reason.ACTION_SWITCHED_OFF,
        f"{item.action.value} is switched off in safety.actions",
    )


def _skip(want: Desired, reason: Reason, message: str) -> PlanItem:
    return PlanItem(
        Action.SKIP, want.directory_id, want.display_name, None, (), Status.SKIPPED, reason, message
    )


def _failure(want: Desired, sys_id: str | None, reason: Reason, message: str) -> PlanItem:
    return PlanItem(
        Action.SKIP,
        want.directory_id,
        want.display_name,
        sys_id,
        (),
        Status.FAILURE,
        reason,
        message,
    )


def _status(warnings: list[Notice]) -> Status:
    return Status.WARNING if warnings else Status.SUCCESS


def _reason(warnings: list[Notice]) -> str | None:
    return warnings[0][0] if warnings else None


def _message(warnings: list[Notice]) -> str:
    return "; ".join(message for _, message in warnings)
