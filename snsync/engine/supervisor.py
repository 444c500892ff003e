"""What happens around a cycle: refuse to run while quarantined, count auth failures, decide
quarantine from the cycle's failures, send notifications and write the metrics file."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from snsync.config import Config, QuarantineConfig
from snsync.connections import Connections
from snsync.engine.approvals import held_results
from snsync.engine.cycle import CycleReport, Progress, run_cycle
from snsync.engine.executor import OnResult
from snsync.errors import ExitCode, SnsyncError, UnauthorizedError
from snsync.metrics import CycleMetrics, write_metrics
from snsync.notify import (
    CycleFacts,
    FailedObject,
    NotificationError,
    Notifier,
    Problem,
    failures_problem,
    held_disables_problem,
    quarantine_problem,
    recovery_problem,
)
from snsync.state import State

log = logging.getLogger("snsync.supervisor")
QUARANTINE_KEY = "quarantine"
AUTH_FAILURES_KEY = "auth_failures"
LAST_SUCCESS_KEY = "last_success_at"


class QuarantinedError(SnsyncError):
    """The job is quarantined: cycles wait, or it has stopped until an admin clears it."""

    exit_code = ExitCode.HELD


@dataclass(frozen=True)
class Quarantine:
    """Why and until when cycles are held back."""

    since: float
    until: float
    level: int
    reason: str

    @property
    def stopped(self) -> bool:
        return self.until == float("inf")


def quarantine_reason(writes: int, failures: int, config: QuarantineConfig) -> str | None:
    """Why this cycle's failures quarantine the job, or None (pure)."""
    if writes >= config.min_writes and failures / writes > config.failure_ratio:
        return (
            f"{failures} of {writes} writes failed ({failures / writes:.0%}, more than "
            f"{config.failure_ratio:.0%})"
        )
    return None


def next_quarantine(
    current: Quarantine | None, reason: str, now: float, config: QuarantineConfig
) -> Quarantine:
    """Quarantine one level deeper: back-off 6 h, 12 h, 24 h, then daily; stop after 4 weeks."""
    since = current.since if current else now
    level = current.level + 1 if current else 1
    if now - since >= config.stop_after:
        return Quarantine(since, float("inf"), level, reason)
    wait = config.backoff[min(level - 1, len(config.backoff) - 1)]
    return Quarantine(since, now + wait, level, reason)


def load_quarantine(state: State) -> Quarantine | None:
    value = state.get(QUARANTINE_KEY)
    if not value:
        return None
    until = float("inf") if value["until"] is None else float(value["until"])
    return Quarantine(float(value["since"]), until, int(value["level"]), str(value["reason"]))


def save_quarantine(state: State, quarantine: Quarantine | None) -> None:
    if quarantine is None:
        state.put(QUARANTINE_KEY, None)
        return
    data = asdict(quarantine)
    data["until"] = None if quarantine.stopped else quarantine.until
    state.put(QUARANTINE_KEY, data)


def supervised_cycle(
    config: Config,
    conns: Connections,
    state: State,
    *,
    dry_run: bool = False,
    allow_disables: bool = False,
    force_full: bool = False,
    progress: Progress | None = None,
    on_result: OnResult | None = None,
    metrics_file: Path | None = None,
    clock: Callable[[], float] = time.time,
) -> CycleReport:
    """One cycle with everything around it; raises QuarantinedError while quarantined."""
    quarantine = load_quarantine(state)
    now = clock()
    if quarantine and not dry_run and now < quarantine.until:
        raise QuarantinedError(_held_message(quarantine, config))
    notifier = Notifier(config.notifications, state, clock)
    started = clock()
    try:
        report = run_cycle(
            config,
            conns,
            state,
            dry_run=dry_run,
            progress=progress,
            on_result=on_result,
            allow_disables=allow_disables,
            force_full=force_full,
        )
    except UnauthorizedError as exc:
        if not dry_run:
            _auth_failed(config, state, notifier, quarantine, str(exc), clock())
            _metrics(metrics_file, state, None, started, clock(), quarantined=True)
        raise
    except SnsyncError:
        if not dry_run:
            _metrics(metrics_file, state, None, started, clock(), quarantined=False)
        raise
    if dry_run:
        return report
    state.put(AUTH_FAILURES_KEY, 0)
    facts = cycle_facts(report, config, started)
    writes = [r for r in report.results if r.item.writes]
    failed = [r for r in writes if r.status.value == "Failure"]
    reason = quarantine_reason(len(writes), len(failed), config.safety.quarantine)
    if reason:
        quarantine = next_quarantine(quarantine, reason, clock(), config.safety.quarantine)
        save_quarantine(state, quarantine)
        _send(notifier, quarantine_problem(reason, quarantine.until, facts.config_path))
    else:
        _after_cycle(state, notifier, quarantine, report, facts)
    if report.exit_code is ExitCode.OK:
        state.put(LAST_SUCCESS_KEY, clock())
    _metrics(metrics_file, state, report, started, clock(), quarantined=bool(reason))
    return report


def cycle_facts(report: CycleReport, config: Config, started: float) -> CycleFacts:
    """What a notification says about a cycle."""
    failures = [
        FailedObject(r.item.display_name, r.item.directory_id, r.reason, r.message)
        for r in [*report.failures(), *held_results(report.results)]  # held: need an admin
    ]
    held = sum(h.count for h in report.planned.held)
    return CycleFacts(
        report.cycle_id,
        started,
        report.duration_s,
        report.counts(),
        failures,
        held,
        config.servicenow.instance,
        str(config.source_path or "config.yaml"),
    )


def _after_cycle(
    state: State,
    notifier: Notifier,
    quarantine: Quarantine | None,
    report: CycleReport,
    facts: CycleFacts,
) -> None:
    if quarantine:
        save_quarantine(state, None)
        log.warning("quarantine lifted: the cycle after the back-off was healthy")
    problem = failures_problem(facts)
    if problem:
        _send(notifier, problem)
    for held in report.planned.held:
        _send(notifier, held_disables_problem(facts, f"{held.limit_text} {held.object_type}s"))
    if not problem and not report.planned.held:
        _send(notifier, recovery_problem("quarantine" if quarantine else "failures", facts))


def _auth_failed(
    config: Config,
    state: State,
    notifier: Notifier,
    quarantine: Quarantine | None,
    reason: str,
    now: float,
) -> None:
    count = int(state.get(AUTH_FAILURES_KEY) or 0) + 1
    state.put(AUTH_FAILURES_KEY, count)
    if count >= config.safety.quarantine.auth_failures:
        text = f"authentication failed {count} cycles in a row: {reason}"
        entered = next_quarantine(quarantine, text, now, config.safety.quarantine)
        save_quarantine(state, entered)
        _send(notifier, quarantine_problem(text, entered.until, str(config.source_path)))


def _send(notifier: Notifier, problem: Problem) -> None:
    try:
        notifier.notify(problem)
    except NotificationError as exc:
        log.warning("notification not sent: %s", exc)


def _metrics(
    path: Path | None,
    state: State,
    report: CycleReport | None,
    started: float,
    finished: float,
    *,
    quarantined: bool,
) -> None:
    if path is None:
        return
    counts: dict[str, Any] = report.counts() if report else {}
    metrics = CycleMetrics(
        duration_s=finished - started,
        full=True,
        counts=counts,
        failures=len(report.failures()) if report else 0,
        held_disables=sum(h.count for h in report.planned.held) if report else 0,
        success=report is not None and report.exit_code is ExitCode.OK,
        finished_at=finished,
        quarantined=quarantined,
    )
    last = state.get(LAST_SUCCESS_KEY)
    write_metrics(path, metrics, float(last) if last is not None else None)


def _held_message(quarantine: Quarantine, config: Config) -> str:
    clear = f"snsync --config {config.source_path} reset --quarantine"
    if quarantine.stopped:
        return (
            f"quarantined since {_utc(quarantine.since)} and stopped after 4 weeks: "
            f"{quarantine.reason}. Fix the cause, then: {clear}"
        )
    return (
        f"quarantined (level {quarantine.level}) until {_utc(quarantine.until)}: "
        f"{quarantine.reason}. Nothing was done. Fix the cause, then: {clear}"
    )


def _utc(timestamp: float) -> str:
    return time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime(timestamp))
