"""One sync cycle as data flowing through named steps: read (engine/reading.py) -> plan and
guard (engine/plan.py, pure) -> execute (engine/executor.py) -> record (engine/record.py, then
the state in one transaction). This module only puts them in order."""

from __future__ import annotations

import gc
import logging
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field

from snsync.config import Config
from snsync.connections import Connections
from snsync.engine.approvals import read_trust, trust_from_config
from snsync.engine.batched import batching_for
from snsync.engine.executor import OnResult, execute_waves
from snsync.engine.journal import journaling
from snsync.engine.plan import CyclePlan, cycle_options, plan_cycle
from snsync.engine.ports import Ports, StateStore, ports_for
from snsync.engine.reading import Reading, read_picture
from snsync.engine.record import Outcome, count_result, cycle_record, outcomes_of
from snsync.engine.trust import Trust
from snsync.errors import ExitCode
from snsync.masking import Masker, new_key
from snsync.model import ObjectType, Progress, Reason, Result, Status
from snsync.state import State

log = logging.getLogger(__name__)
TO_APPLY = "to apply"  # progress key announcing the planned writes, so applying shows a bar
YOUNG_COLLECTION_EVERY = 70_000  # allocations between young collections (Python's: 700)
KINDS = (ObjectType.USER, ObjectType.GROUP, ObjectType.MEMBERSHIP, ObjectType.KEPT_MEMBERSHIP)


@dataclass(frozen=True)
class Summary:
    """What the summary, the exit code, the mails and the quarantine need of a cycle's results,
    taken in one pass over them (so that no caller goes through every result again)."""

    counts: dict[str, dict[str, int]]  # by 'kind Action', then by status
    failures: tuple[Result, ...]
    held: tuple[Result, ...]  # held adoptions (AdoptionHeld): they need an admin
    warnings: int
    interrupted: int  # not started: snsync was stopped
    writes: int  # results of items that send a write
    failed_writes: int


def summarise(results: Iterable[Result]) -> Summary:
    counts: dict[str, dict[str, int]] = {}
    failures: list[Result] = []
    held: list[Result] = []
    warnings = interrupted = writes = failed_writes = 0
    for r in results:
        count_result(counts, r)
        if r.status is Status.FAILURE:
            failures.append(r)
        elif r.status is Status.WARNING:
            warnings += 1
        if r.reason == Reason.ADOPTION_HELD:
            held.append(r)
        elif r.reason == Reason.INTERRUPTED:
            interrupted += 1
        if r.item.writes:
            writes += 1
            failed_writes += r.status is Status.FAILURE
    return Summary(
        counts, tuple(failures), tuple(held), warnings, interrupted, writes, failed_writes
    )


@dataclass(frozen=True)
class CycleReport:
    """What one cycle did. `results` holds every result in the plan's order (after a real
    cycle compactly, engine/written.py: each is made when asked for); `summary` is what the
    summary, exit code, mails and quarantine read."""

    cycle_id: int | None
    dry_run: bool
    duration_s: float
    planned: CyclePlan
    results: Sequence[Result]
    requests: dict[str, int] = field(default_factory=dict)
    mode: str = ""  # full | incremental ("" on demand, which reads one object)
    mode_reason: str = ""  # why a full cycle was full
    summary: Summary = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "summary", summarise(outcomes_of(self.results)))

    def counts(self) -> dict[str, dict[str, int]]:
        """Results by object type and action, then by status (keys like 'user Create')."""
        return {action: dict(row) for action, row in self.summary.counts.items()}

    def failures(self) -> list[Result]:
        return list(self.summary.failures)

    @property
    def exit_code(self) -> ExitCode:
        held_adoption = bool(self.summary.held)
        if self.planned.held or self.planned.target_incomplete or held_adoption:
            return ExitCode.HELD
        return ExitCode.OBJECT_FAILURES if self.summary.failures else ExitCode.OK


def read_and_plan(
    config: Config,
    conns: Connections,
    state: State,
    progress: Progress | None = None,
    allow_disables: bool = False,
    force_full: bool = False,
) -> CyclePlan:
    """Read both sides (fully or incrementally), then plan and guard: what `snsync plan` shows."""
    ports = ports_for(config, conns, state)
    reading = read_picture(config, ports, progress, force_full)
    return plan_reading(config, ports, reading, allow_disables)


def masker_for(state: StateStore) -> Masker:
    """The state file's Redact() key, or a new one (kept when the cycle is recorded)."""
    return Masker(state.redaction_key() or new_key())


def plan_reading(
    config: Config,
    ports: Ports,
    reading: Reading,
    allow_disables: bool = False,
    masker: Masker | None = None,
) -> CyclePlan:
    """The cycle's plan over what was read, the stored links and the escrow (pure, given them).
    When an adoption waits on roles, the role tables are read and the plan made again, before
    anything is written (so a cycle that adopts nothing reads no role table)."""
    narrowed = reading.narrowing
    links = {kind: narrowed.links[kind] if narrowed else ports.state.links(kind) for kind in KINDS}
    escrow = ports.state.escrow()
    now = ports.clock()
    masker = masker or masker_for(ports.state)

    def plan(trust: Trust) -> CyclePlan:
        options = cycle_options(
            config, now=now, allow_disables=allow_disables, trust=trust, masker=masker
        )
        return plan_cycle(
            reading.picture, links, escrow, options, narrowed.focus if narrowed else None
        )

    planned = plan_trusted(config, ports, plan)
    for note in planned.target_incomplete:
        log.warning(
            "TargetIncomplete: %s. This cycle disables nothing, removes no membership and "
            "creates nothing that snsync has a link for",
            note,
        )
    return planned


def plan_trusted(config: Config, ports: Ports, plan: Callable[[Trust], CyclePlan]) -> CyclePlan:
    """`plan` with the trust facts known from the config and the state; again with the roles
    read from ServiceNow when an adoption waits on them."""
    planned = plan(trust_from_config(config, ports.state))
    if any(i.reason == Reason.ADOPTION_HELD for i in planned.items()):
        planned = plan(read_trust(config, ports.target, ports.state))
    return planned


def run_cycle(
    config: Config,
    conns: Connections,
    state: State,
    *,
    dry_run: bool = False,
    progress: Progress | None = None,
    on_result: OnResult | None = None,
    allow_disables: bool = False,
    force_full: bool = False,
) -> CycleReport:
    """Run one cycle through a command's connections and state file."""
    return cycle(
        config,
        ports_for(config, conns, state),
        dry_run=dry_run,
        progress=progress,
        on_result=on_result,
        allow_disables=allow_disables,
        force_full=force_full,
    )


def cycle(
    config: Config,
    ports: Ports,
    *,
    dry_run: bool = False,
    progress: Progress | None = None,
    on_result: OnResult | None = None,
    allow_disables: bool = False,
    force_full: bool = False,
) -> CycleReport:
    """Read, plan, guard, execute, record; in a dry run nothing is written anywhere.

    A cycle makes millions of objects that live until it ends (the picture, the plan, the
    results), so the garbage collector's young collections run a hundred times less often
    during it, and the picture and the plan are moved out of its reach once made (gc.freeze):
    at 100,000 users its collections took 15% of a first sync's CPU. Both are undone at the end.
    """
    threshold = gc.get_threshold()
    gc.set_threshold(YOUNG_COLLECTION_EVERY, *threshold[1:])
    try:
        return _cycle(
            config,
            ports,
            dry_run=dry_run,
            progress=progress,
            on_result=on_result,
            allow_disables=allow_disables,
            force_full=force_full,
        )
    finally:
        gc.unfreeze()
        gc.set_threshold(*threshold)


def _cycle(
    config: Config,
    ports: Ports,
    *,
    dry_run: bool,
    progress: Progress | None,
    on_result: OnResult | None,
    allow_disables: bool,
    force_full: bool,
) -> CycleReport:
    started = time.monotonic()
    state = ports.state
    cycle_id = None if dry_run else state.start_cycle("starting")
    masker = masker_for(state)
    try:
        reading = read_picture(config, ports, progress, force_full)
        gc.freeze()
        if cycle_id is not None:
            state.set_cycle_kind(cycle_id, reading.mode)
        planned = plan_reading(config, ports, reading, allow_disables, masker)
        gc.freeze()
    except Exception as exc:
        if cycle_id is not None:
            state.end_cycle(cycle_id, f"error: {exc}", {}, ports.requests())
        raise
    if progress:
        progress(TO_APPLY, sum(1 for item in planned.items() if item.writes))
    if cycle_id is not None:
        # Until this cycle records what it saw and wrote, the next one reads everything: a
        # killed cycle's writes are invisible to an incremental read (they are snsync's own).
        state.require_full_next()
        on_result = journaling(state, on_result)
    results = execute_waves(
        planned.waves,
        ports.target,
        concurrency=config.servicenow.max_concurrency,
        dry_run=dry_run,
        on_result=on_result,
        batching=batching_for(config),
    )
    duration = time.monotonic() - started
    report = CycleReport(
        cycle_id, dry_run, duration, planned, results, ports.requests(),
        reading.mode, reading.reason,
    )  # fmt: skip
    if cycle_id is not None:
        outcome = Outcome(
            cycle_id, duration, report.results, report.requests, ports.clock(),
            report.summary.counts,
        )  # fmt: skip
        state.record_cycle(cycle_record(config, planned, reading, outcome, masker))
    return report
