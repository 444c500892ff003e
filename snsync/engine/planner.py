"""The plan: what to create, update, disable or skip, as a pure function of the desired records,
the ServiceNow records and the links. No I/O; most behaviour tests are tests of this module."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace

from snsync.engine.matching import ByField, Match, Refused, resolve_matches
from snsync.engine.trust import (
    BUILT_IN_PROTECTED,
    Roles,
    Trust,
    hold_why,
    protected_why,
    stamp_distrust,
)
from snsync.masking import Masker, is_digest
from snsync.model import (
    REDACTED,
    Action,
    Change,
    Changes,
    Desired,
    ObjectType,
    Plan,
    PlanItem,
    Reason,
    Record,
    Status,
    TargetSnapshot,
)

References = Mapping[str, Mapping[str, str]]  # table -> display value (lower) -> sys_id
Notice = tuple[str, str]  # (reason code, message) of a Warning status
DEFAULT_PROTECTED = BUILT_IN_PROTECTED


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
    protected_names: frozenset[str] = frozenset(DEFAULT_PROTECTED)  # lower-case names, sys_ids
    name_field: str = "user_name"
    manager_table: str = "sys_user"
    names: Mapping[str, str] = field(default_factory=dict)  # directory id -> display name
    people: Mapping[str, str] | None = None  # user links, when planning another table than users
    object_type: ObjectType = ObjectType.USER
    account: str = ""  # the integration account: never written; its records' stamps are trusted
    privileged: Roles | None = field(default_factory=dict)  # sys_id -> roles; None: unread
    approved: Mapping[str, str] = field(default_factory=dict)  # directory id -> approved sys_id
    whole_directory: bool = True  # False: a later matching attribute's claim cannot be weighed
    redacted: frozenset[str] = frozenset()  # fields fed by Redact(): compared by keyed digest
    masker: Masker | None = None  # the state file's key (the cached picture keeps digests)


@dataclass
class _Context:
    """What one table's plan is computed against, built once per plan."""

    records: Mapping[str, Record]
    references: References
    options: PlanOptions
    linked: dict[str, str]
    planned_creates: set[str]
    matches: Mapping[str, Match | Refused] = field(default_factory=dict)


def with_trust(options: PlanOptions, trust: Trust) -> PlanOptions:
    """The options with this cycle's trust facts for the options' object type."""
    users = options.object_type == "user"
    return replace(
        options,
        account=trust.account,
        protected_names=trust.protected_users if users else trust.protected_groups,
        privileged=trust.user_roles if users else trust.group_roles,
        approved=trust.approved.get(options.object_type, {}),
        whole_directory=trust.whole_directory,
    )


def effective_links(
    links: Mapping[str, str], records: Mapping[str, Record], options: PlanOptions
) -> dict[str, str]:
    """Links to use: stored links whose record still exists, plus links rebuilt from the stamp in
    the link field (so a lost state file does not make snsync create duplicates). A stamp is
    trusted only on a record the integration account created: anyone can write a stamp."""
    result = {d: s for d, s in links.items() if s in records}
    if options.link_field:
        taken = set(result.values())
        for sys_id, record in records.items():
            directory_id = _stamped(record, options)
            if directory_id and sys_id not in taken and not stamp_distrust(record, options.account):
                result.setdefault(directory_id, sys_id)
    return result


def protected_links(
    links: Mapping[str, str], records: Mapping[str, Record], options: PlanOptions
) -> frozenset[str]:
    """Directory ids linked to a protected record: no membership row of theirs is written."""
    return frozenset(
        directory_id
        for directory_id, sys_id in links.items()
        if sys_id in records
        and protected_why(sys_id, records[sys_id], options.name_field, *_protection(options))
    )


def untrusted_stamps(
    linked: Mapping[str, str], records: Mapping[str, Record], options: PlanOptions
) -> dict[str, str]:
    """Directory id -> why a record stamped for it was not taken as its link."""
    result: dict[str, str] = {}
    taken = set(linked.values())
    for sys_id, record in sorted(records.items()):
        directory_id = _stamped(record, options)
        why = stamp_distrust(record, options.account) if directory_id else None
        if directory_id and why and sys_id not in taken:
            name = record.get(options.name_field, "") or sys_id
            result.setdefault(
                directory_id,
                f"the stamp {options.link_field}={record.get(options.link_field or '')} on "
                f"'{name}' ({sys_id}) was not trusted because {why}; that record was treated "
                "as unlinked",
            )
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
    whose directory object is gone. Protected records are never written, whatever links them."""
    names = {d.directory_id: d.display_name for d in desired}
    options = replace(options, names={**names, **options.names})
    linked = effective_links(links, records, options)
    planned_creates = {
        d.directory_id for d in desired if d.directory_id not in linked and d.in_scope and d.active
    }
    ctx = _Context(records, references, options, linked, planned_creates)
    claimed = {sys_id: d for d, sys_id in linked.items()}
    unlinked = [
        _folded(d, options) for d in desired if d.directory_id not in linked and _may_match(d)
    ]
    ctx.matches = resolve_matches(unlinked, _build_index(records, options), claimed)
    doubted = untrusted_stamps(linked, records, options)
    items: list[PlanItem] = []
    unchanged = 0
    for want in sorted(desired, key=lambda d: (d.display_name.lower(), d.directory_id)):
        sys_id = linked.get(want.directory_id)
        if sys_id:
            item = _plan_linked(want, sys_id, ctx)
        else:
            item = _noted(_plan_unlinked(want, ctx), doubted.get(want.directory_id))
        item = _unless_protected(item, ctx)
        if item is None:
            unchanged += 1
        else:
            items.append(_switch(item, options))
    seen = set(names)
    for directory_id, sys_id in sorted(linked.items()):
        if directory_id not in seen:
            gone = _plan_gone(directory_id, sys_id, records[sys_id], options)
            gone = _unless_protected(gone, ctx)
            if gone is not None:
                items.append(_switch(gone, options))
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


def _build_index(records: Mapping[str, Record], options: PlanOptions) -> ByField:
    by_field: dict[str, dict[str, list[str]]] = {}
    for name in options.matching_fields:
        by_value: dict[str, list[str]] = {}
        for sys_id, record in records.items():
            value = _fold(name, record.get(name, ""), options).strip().lower()
            if value:
                by_value.setdefault(value, []).append(sys_id)
        by_field[name] = by_value
    return by_field


def _fold(name: str, value: str, options: PlanOptions) -> str:
    """What matching compares: a redacted field by the keyed digest of its folded value."""
    if name in options.redacted and options.masker is not None:
        return options.masker.folded(value)
    return value


def _folded(want: Desired, options: PlanOptions) -> Desired:
    """`want` with its redacted matching values as matching compares them."""
    if not options.redacted & {name for name, _ in want.matching}:
        return want
    matching = tuple((name, _fold(name, value, options)) for name, value in want.matching)
    return replace(want, matching=matching)


def _stamped(record: Record, options: PlanOptions) -> str | None:
    """The directory id a record's stamp names, if it carries snsync's stamp."""
    stamp = record.get(options.link_field, "") if options.link_field else ""
    return stamp[len(options.link_prefix) :] if stamp.startswith(options.link_prefix) else None


def _may_match(want: Desired) -> bool:
    """Whether an unlinked object gets as far as matching (see _plan_unlinked)."""
    values = [value for _, value in want.matching]
    return want.in_scope and want.active and not want.error and all(v.strip() for v in values)


def _plan_linked(want: Desired, sys_id: str, ctx: _Context) -> PlanItem | None:
    record = ctx.records[sys_id]
    if want.error:
        return _failure(want, sys_id, want.error_reason or Reason.EXPRESSION_FAILED, want.error)
    if not want.in_scope:
        return _plan_gone(want.directory_id, sys_id, record, ctx.options, want.display_name)
    labels: dict[str, str] = {}
    values, deferred, warnings = _resolve(want, ctx, labels)
    changes = _diff(values, record, labels, want, ctx.options)
    if not changes and not deferred:
        return None
    return _update_item(want, sys_id, changes, deferred, warnings)


def _plan_unlinked(want: Desired, ctx: _Context) -> PlanItem | None:
    if not want.in_scope:
        return None  # never provisioned and not wanted: nothing of ours to touch
    if want.error:
        return _failure(want, None, want.error_reason or Reason.EXPRESSION_FAILED, want.error)
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
    found = ctx.matches.get(want.directory_id)
    if isinstance(found, Refused):
        return _failure(want, found.sys_id, found.reason, found.message)
    labels: dict[str, str] = {}
    values, deferred, warnings = _resolve(want, ctx, labels)
    if found is None:
        return _plan_create(want, values, deferred, warnings, labels, ctx.options)
    return _plan_adoption(want, found, ctx, (values, deferred, warnings), labels)


def _plan_create(
    want: Desired,
    values: Mapping[str, str],
    deferred: Mapping[str, str],
    warnings: list[Notice],
    labels: Mapping[str, str],
    options: PlanOptions,
) -> PlanItem:
    merged = {**want.create_only, **values}
    name = merged.get(options.name_field, "")
    why = protected_why("", {options.name_field: name}, options.name_field, *_protection(options))
    if why:
        return _skip(want, Reason.PROTECTED_RECORD, f"not created: {why}; snsync never writes it")
    changes = Changes.created(
        (k, v, labels.get(k), k in want.redacted) for k, v in sorted(merged.items()) if v != ""
    )
    return _write_item(
        Action.CREATE, want, None, changes, _writable(changes, warnings), deferred, warnings
    )


def _plan_adoption(
    want: Desired,
    match: Match,
    ctx: _Context,
    resolved: tuple[dict[str, str], dict[str, str], list[Notice]],
    labels: Mapping[str, str],
) -> PlanItem:
    """Adopt the matched record, unless it is protected, another integration's, or privileged
    or inactive without an admin's approval."""
    options, (values, deferred, warnings) = ctx.options, resolved
    record = ctx.records[match.sys_id]
    name = record.get(options.name_field, "") or match.sys_id
    why = protected_why(match.sys_id, record, options.name_field, *_protection(options))
    if why:
        message = f"matches '{name}' through {match.field}, but {why}; snsync never writes it"
        return _skip(want, Reason.PROTECTED_RECORD, message)
    stamp = record.get(options.link_field, "") if options.link_field else ""
    if stamp and not stamp.startswith(options.link_prefix):
        return _failure(
            want,
            match.sys_id,
            Reason.OWNED_ELSEWHERE,
            f"the matching record has {options.link_field}='{stamp}' from another "
            "integration; snsync does not take it over",
        )
    changes = _diff(values, record, labels, want, options)
    approved = options.approved.get(want.directory_id) == match.sys_id
    held = hold_why(match.sys_id, record, options.privileged)
    if not held and match.rank > 0 and not options.whole_directory:
        held = (
            f"was matched through {match.field} while only this {options.object_type} was read "
            "(another may match it through an earlier attribute; a full cycle weighs them all)"
        )
    if held and not approved:
        message = (
            f"matches existing {options.object_type} '{name}' ({match.sys_id}) through "
            f"{match.field}, which {held}: adoption held, nothing is written. If it is the same "
            f"{options.object_type}, approve with: snsync approve --adoption {want.directory_id}"
        )
        return PlanItem(
            Action.SKIP,
            want.directory_id,
            want.display_name,
            match.sys_id,
            changes,
            Status.SKIPPED,
            Reason.ADOPTION_HELD,
            message,
        )
    notes = ["adopted with an admin's approval" if approved else "adopted by matching"]
    if match.rank > 0 and not approved:
        changes, note = _keep_name(changes, match, options)
        notes += [note] if note else []
    item = _update_item(want, match.sys_id, changes, deferred, warnings)
    message = "; ".join(m for m in (item.message, *notes) if m)
    return replace(item, message=message, adopt=True)


def _keep_name(
    changes: tuple[Change, ...], match: Match, options: PlanOptions
) -> tuple[tuple[Change, ...], str]:
    """An adoption through a later matching attribute does not rename the record that cycle."""
    kept = {options.name_field, *options.matching_fields[:1]}
    renames = [c for c in changes if c.field in kept]
    if not renames:
        return changes, ""
    first = renames[0]
    note = (
        f"matched through {match.field}, so {first.field} stays '{first.shown_old}' this "
        f"cycle (the directory says '{first.shown_new}'); the next cycle renames it"
    )
    return tuple(c for c in changes if c.field not in kept), note


def _protection(options: PlanOptions) -> tuple[frozenset[str], str]:
    return options.protected_names, options.account


def _unless_protected(item: PlanItem | None, ctx: _Context) -> PlanItem | None:
    """Whatever path planned a write, a protected record is never written."""
    if item is None or not item.writes or item.sys_id is None or item.sys_id not in ctx.records:
        return item
    options = ctx.options
    record = ctx.records[item.sys_id]
    why = protected_why(item.sys_id, record, options.name_field, *_protection(options))
    if why is None:
        return item
    return replace(
        item,
        action=Action.SKIP,
        status=Status.SKIPPED,
        reason=Reason.PROTECTED_RECORD,
        message=f"not {item.action.value.lower()}d: {why}; snsync never writes it",
        adopt=False,
        deferred={},
    )


def _noted(item: PlanItem | None, note: str | None) -> PlanItem | None:
    if item is None or not note:
        return item
    return replace(item, message="; ".join(m for m in (item.message, note) if m))


def _resolve(
    want: Desired, ctx: _Context, labels: dict[str, str]
) -> tuple[dict[str, str], dict[str, str], list[Notice]]:
    """Resolve reference fields to sys_ids; `labels` receives their display values."""
    linked, planned_creates = ctx.linked, ctx.planned_creates
    references, options = ctx.references, ctx.options
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
                    f"{name} '{REDACTED if name in want.redacted else value}' does not exist "
                    f"in {table}; the field was left as it is",
                )
            )
    return values, deferred, warnings


def _diff(
    values: Mapping[str, str],
    record: Record,
    labels: Mapping[str, str],
    want: Desired,
    options: PlanOptions,
) -> tuple[Change, ...]:
    changes: list[Change] = []
    for name, value in sorted(values.items()):
        old, redacted = record.get(name, ""), name in want.redacted
        if redacted and options.masker is not None:
            if options.masker.same(old, value):
                continue
        elif old == value:
            continue
        changes.append(Change(name, old, value, labels.get(name), redacted))
    return tuple(changes)


def _writable(changes: Sequence[Change], warnings: list[Notice]) -> Sequence[Change]:
    """The changes a write can carry: a redacted value the cached picture keeps only as a digest
    is left out, with a warning (the next cycle reads everything and writes it)."""
    unknown = [c.field for c in changes if c.redacted and is_digest(c.new)]
    if not unknown:
        return changes  # as it is (a created record's compact Changes stay compact)
    warnings.append(
        (
            Reason.REDACTED_NOT_CACHED,
            f"{', '.join(unknown)} (Redact()) differs from ServiceNow, and the cached picture "
            "keeps only a digest of it: left out; the next cycle reads everything and "
            "writes it",
        )
    )
    return tuple(c for c in changes if c.field not in unknown)


def _update_item(
    want: Desired,
    sys_id: str,
    changes: tuple[Change, ...],
    deferred: Mapping[str, str],
    warnings: list[Notice],
) -> PlanItem:
    writable = _writable(changes, warnings)
    if not writable and not deferred and writable != changes:
        return replace(
            _skip(want, Reason.REDACTED_NOT_CACHED, _message(warnings)),
            sys_id=sys_id,
            status=Status.WARNING,
            full_next=True,
        )
    action = Action.UPDATE
    for change in writable:
        if change.field == "active" and change.new == "false":
            action = Action.DISABLE
        elif change.field == "active" and change.new == "true":
            action = Action.ENABLE
    return _write_item(action, want, sys_id, changes, writable, deferred, warnings)


def _write_item(
    action: Action,
    want: Desired,
    sys_id: str | None,
    changes: Sequence[Change],
    writable: Sequence[Change],
    deferred: Mapping[str, str],
    warnings: list[Notice],
) -> PlanItem:
    """A create or update of `writable` (the changes that may be written this cycle); a change
    held back makes the next cycle full."""
    return PlanItem(
        action,
        want.directory_id,
        want.display_name,
        sys_id,
        writable,
        _status(warnings),
        _reason(warnings),
        _message(warnings),
        deferred=deferred,
        full_next=writable != changes,
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
