"""What a finished cycle keeps (pure): the links its writes made or found gone, the log, the
escrow, held disables, and the picture both sides showed, updated by what the cycle wrote, with
the watermarks the next incremental cycle continues from. The state commits it in one go."""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any

from snsync.config import Config
from snsync.engine.kept import picture_changes, picture_facts
from snsync.engine.memberships import MembershipPlan
from snsync.engine.plan import CyclePlan, make_group_mapper, make_mapper
from snsync.engine.reading import (
    MEMBER_FIELDS,
    Reading,
    fingerprint,
    subset,
    target_fields,
    watermark,
)
from snsync.engine.written import Written
from snsync.graph.source import ALWAYS_SELECT, EXTENSIONS_PROPERTY, SYNTHESIZED
from snsync.mapping.mapper import Mapper
from snsync.masking import DIGESTS_KEY, MASKED_ATTRIBUTE, Masker
from snsync.model import (
    Action,
    CachedPicture,
    ObjectType,
    Reason,
    Record,
    Result,
    SourceCache,
    SourceObject,
    SourceSnapshot,
    Status,
    TargetSnapshot,
)
from snsync.state import CycleRecord, LinkChanges, Watermarks

USER, GROUP, MEMBERSHIP = ObjectType.USER, ObjectType.GROUP, ObjectType.MEMBERSHIP
KEPT = ObjectType.KEPT_MEMBERSHIP
# Attributes snsync itself reads (identity, scope, names) or synthesizes others from: kept in
# the cached picture even when only Redact() reads them.
ALWAYS_KEPT = frozenset(
    {*ALWAYS_SELECT, *SYNTHESIZED, "businessPhones", EXTENSIONS_PROPERTY, "members"}
)


@dataclass(frozen=True)
class Outcome:
    """How a cycle ended, as the state's cycles table keeps it."""

    cycle_id: int
    duration_s: float
    results: Sequence[Result]
    requests: Mapping[str, int]
    now: float | None = None  # the clock port's time at the end of the cycle
    # The results by action and status when counted already (CycleReport.summary): at 100,000
    # users a second pass makes every result again.
    by_action: dict[str, dict[str, int]] | None = None


def cycle_record(
    config: Config,
    planned: CyclePlan,
    reading: Reading,
    outcome: Outcome,
    masker: Masker | None = None,
) -> CycleRecord:
    """Everything the state keeps of one cycle. Only the log needs the items as they were sent
    (`outcome.results`); everything else goes through the cheap view (`outcomes_of`)."""
    results = outcomes_of(outcome.results)
    user_links = with_new_links(planned.users.links, results, USER)
    group_links = with_new_links(planned.groups.links, results, GROUP)
    links = {
        USER: LinkChanges(user_links, planned.users.stale_links),
        GROUP: LinkChanges(group_links, planned.groups.stale_links),
        **membership_links(planned.memberships, results, user_links, group_links),
    }
    picture, marks = saved_picture(config, planned.target, reading, results)
    if reading.narrowing is not None:  # only some records were loaded: never step back
        marks = replace(marks, servicenow=max(marks.servicenow, reading.narrowing.watermark))
    if masker is not None:
        picture = masked_picture(config, picture, planned.picture.source, masker)
    facts = picture_facts(config, planned, reading, results)
    changes = picture_changes(planned, reading, picture, results)
    numbers = counts(planned, outcome)
    failures = any(Status.FAILURE.value in row for row in numbers["by_action"].values())
    return CycleRecord(
        outcome.cycle_id,
        "failures" if failures else "success",
        numbers,
        outcome.requests,
        outcome.results,
        links,
        config.safety.retry_backoff,
        planned.held,
        picture,
        marks,
        # A create that failed in flight may have landed: only a full read can adopt it.
        full_next=any(
            (r.item.action is Action.CREATE and r.reason == Reason.TRANSIENT) or r.item.full_next
            for r in results
        ),
        now=outcome.now,
        redaction_key=masker.key if masker is not None else None,
        picture_facts=facts,
        picture_changes=changes,
        escrow_results=results,
    )


def outcomes_of(results: Sequence[Result]) -> Sequence[Result]:
    """The cheap view of a cycle's results (engine/written.py): what goes through them without
    reading an item's changes need not make the items as they were sent again."""
    return results.outcomes() if isinstance(results, Written) else results


def counts(planned: CyclePlan, outcome: Outcome) -> dict[str, Any]:
    """What the cycles table keeps of a cycle's numbers."""
    by_action = outcome.by_action
    if by_action is None:
        by_action = result_counts(outcomes_of(outcome.results))
    return {
        "by_action": by_action,
        "unchanged": planned.unchanged,
        "in_scope": planned.in_scope,
        "duration_s": round(outcome.duration_s, 3),
    }


def result_counts(results: Iterable[Result]) -> dict[str, dict[str, int]]:
    """Results by object kind and action, then by status (keys like 'user Create')."""
    table: dict[str, dict[str, int]] = {}
    for r in results:
        count_result(table, r)
    return table


def count_result(table: dict[str, dict[str, int]], r: Result) -> None:
    """Count one result into `table` (by 'kind Action', then by status)."""
    row = table.setdefault(f"{r.item.kind} {r.item.action.value}", {})
    row[r.status.value] = row.get(r.status.value, 0) + 1


def new_links(results: Iterable[Result]) -> dict[str, str]:
    """Links made by successful creates and adoptions."""
    return dict(_made(results))


def with_new_links(
    links: Mapping[str, str], results: Iterable[Result], kind: ObjectType
) -> dict[str, str]:
    """`links` and, over them, those the results of `kind` made: one dict (at 100,000 users a
    merge of two held both at once)."""
    merged = dict(links)
    merged.update(_made(r for r in results if r.item.object_type is kind))
    return merged


def _made(results: Iterable[Result]) -> Iterator[tuple[str, str]]:
    for r in results:
        if (
            r.sys_id
            and r.status in (Status.SUCCESS, Status.WARNING)
            and (r.item.action is Action.CREATE or r.item.adopt)
        ):
            yield r.item.directory_id, r.sys_id


def membership_links(
    memberships: MembershipPlan,
    results: Sequence[Result],
    user_links: Mapping[str, str],
    group_links: Mapping[str, str],
) -> dict[ObjectType, LinkChanges]:
    """Rows snsync added or found again (its own), rows that existed before it (kept, never
    deleted), and rows removed or gone. An existing row is linked only once both its group and
    its user are linked (their creation or adoption this cycle may have failed)."""
    removed = [
        r.item.directory_id
        for r in results
        if r.item.object_type is MEMBERSHIP
        and r.item.action is Action.DELETE
        and r.status is Status.SUCCESS
    ]
    gone = [*removed, *memberships.forgotten]

    def linked(rows: Mapping[str, str]) -> dict[str, str]:
        return {
            key: row
            for key, row in rows.items()
            if key.split(":", 1)[0] in group_links and key.split(":", 1)[1] in user_links
        }

    return {
        MEMBERSHIP: LinkChanges(
            with_new_links(linked(memberships.recovered), results, MEMBERSHIP), gone
        ),
        KEPT: LinkChanges(linked(memberships.adopted), gone),
    }


def saved_picture(
    config: Config, target: TargetSnapshot, reading: Reading, results: Sequence[Result]
) -> tuple[CachedPicture, Watermarks]:
    """What this cycle saw, updated by what it wrote, for the next incremental cycle."""
    users, groups = dict(target.users), dict(target.groups)
    rows = dict(target.memberships)
    references = {t: dict(m) for t, m in target.references.items()}
    fields = {
        USER: target_fields(make_mapper(config.mappings), "user_name"),
        GROUP: target_fields(make_group_mapper(config), "name"),
    }
    member_groups = set(target.member_groups)
    for r in results:
        if r.status is Status.FAILURE or not r.item.writes:
            continue
        kind, record = r.item.object_type, r.record
        if kind is MEMBERSHIP and r.item.action is Action.DELETE:
            rows.pop(r.sys_id or "", None)
        elif kind is MEMBERSHIP and record:
            rows[record["sys_id"]] = kept(record, MEMBER_FIELDS)
        elif (kind is USER or kind is GROUP) and record:
            store = users if kind is USER else groups
            store[record["sys_id"]] = kept(record, fields[kind])
        elif kind is ObjectType.REFERENCE and record and r.sys_id:
            table = references.setdefault(r.item.reference_table, {})
            table[r.item.display_name.lower()] = r.sys_id
        if kind is GROUP and r.item.action is Action.CREATE and r.sys_id:
            member_groups.add(r.sys_id)  # a new group has no rows but the ones snsync adds
    saved = TargetSnapshot(users, references, groups, rows, frozenset(member_groups))
    full = reading.mode == "full"
    marks = Watermarks(reading.links, watermark(users, groups), fingerprint(config), full)
    return CachedPicture(reading.cache, saved), marks


def kept(record: Record, fields: Iterable[str]) -> Record:
    """The fields of a write's answer the cached picture keeps: the answer itself when it holds
    no others (the writer asked back only those), so that no second copy is made."""
    keep = {"sys_id", "sys_updated_on", *fields}
    if all(name in keep for name in record):
        return record
    return subset(record, fields)


def masked_picture(
    config: Config, picture: CachedPicture, source: SourceSnapshot, masker: Masker
) -> CachedPicture:
    """The picture as the state keeps it: every field a Redact() mapping writes as its keyed
    digest (both sides), and every directory attribute read only inside Redact() left out, with
    the digests of the redacted mapping results standing in for it."""
    users, groups = make_mapper(config.mappings), make_group_mapper(config)
    if not users.redacted_targets and not groups.redacted_targets:
        return picture
    filtered = {c.attribute for clauses in config.scope.filters for c in clauses}
    directory = picture.directory
    kept = SourceCache(
        _masked_objects(directory.users, source.users, users, filtered, masker),
        _masked_objects(directory.groups, source.groups, groups, set(), masker),
        directory.members,
    )
    target = picture.target
    saved = replace(
        target,
        users=_digested(target.users, users.redacted_targets, masker),
        groups=_digested(target.groups, groups.redacted_targets, masker),
    )
    return CachedPicture(kept, saved)


def _masked_objects(
    raw: Mapping[str, Mapping[str, Any]],
    objects: Mapping[str, SourceObject],
    mapper: Mapper,
    needed: set[str],
    masker: Masker,
) -> dict[str, dict[str, Any]]:
    if not mapper.redacted_targets:
        return {k: dict(v) for k, v in raw.items()}
    masked = mapper.masked_attributes - needed - ALWAYS_KEPT  # filters need the value itself
    result: dict[str, dict[str, Any]] = {}
    for object_id, attributes in raw.items():
        kept = {k: MASKED_ATTRIBUTE if k in masked else v for k, v in attributes.items()}
        found = objects.get(object_id)
        if found is not None:
            kept[DIGESTS_KEY] = _result_digests(mapper, found, masker)
        result[object_id] = kept
    return result


def _result_digests(mapper: Mapper, found: SourceObject, masker: Masker) -> dict[str, str | None]:
    """Target field -> digest of the redacted mapping's result (None: the flow was ignored)."""
    wanted = mapper.desired(found)
    if wanted.error:
        return {}
    values = {**wanted.create_only, **wanted.values}
    return {
        name: (masker.digest(values[name]) if values[name] else "") if name in values else None
        for name in sorted(wanted.redacted)
    }


def _digested(
    records: Mapping[str, Record], fields: frozenset[str], masker: Masker
) -> dict[str, Record]:
    if not fields:
        return dict(records)
    return {
        sys_id: {k: masker.digest(v) if k in fields and v else v for k, v in record.items()}
        for sys_id, record in records.items()
    }
