"""What happens around a cycle: refuse to run while quarantined, count auth failures, decide
quarantine from the cycle's failures, send notifications and write the metrics file."""

from __future__ import annotations

import hashlib
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from snsync.config import Config, QuarantineConfig
from snsync.connections import Connections
from snsync.engine.cycle import CycleReport, cycle
from snsync.engine.executor import OnResult
from snsync.engine.ports import Ports, StateStore, ports_for
from snsync.errors import (
    ExitCode,
    NotificationError,
    QuarantinedError,
    SnsyncError,
    UnauthorizedError,
)
from snsync.metrics import CycleMetrics, write_metrics
from snsync.model import Progress, Quarantine
from snsync.notify import (
    CycleFacts,
    FailedObject,
    Notifier,
    Problem,
    failures_problem,
    held_disables_problem,
    quarantine_problem,
    recovery_problem,
)
from snsync.state import State

log = logging.getLogger("snsync.supervisor")


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


@dataclass(frozen=True)
class RunOptions:
    """How `run` and `approve` run a supervised cycle."""

    dry_run: bool = False
    allow_disables: bool = False
    force_full: bool = False
    progress: Progress | None = None
    on_result: OnResult | None = None
    metrics_file: Path | None = None


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
    """One cycle with everything around it, through a command's connections and state file."""
    ports = replace(ports_for(config, conns, state), clock=clock)
    options = RunOptions(dry_run, allow_disables, force_full, progress, on_result, metrics_file)
    return supervise(config, ports, options)


def supervise(config: Config, ports: Ports, options: RunOptions) -> CycleReport:
    """One cycle with everything around it; raises QuarantinedError while quarantined."""
    state, clock, dry_run = ports.state, ports.clock, options.dry_run
    if not dry_run:
        new_credentials(config, state)
    quarantine = state.quarantine()
    if quarantine and not dry_run and clock() < quarantine.until:
        raise QuarantinedError(_held_message(quarantine, config))
    notifier = Notifier(config.notifications, state, clock)
    started = clock()
    try:
        report = cycle(
            config,
            ports,
            dry_run=dry_run,
            progress=options.progress,
            on_result=options.on_result,
            allow_disables=options.allow_disables,
            force_full=options.force_full,
        )
    except UnauthorizedError as exc:
        if not dry_run:
            _auth_failed(config, state, notifier, quarantine, str(exc), clock())
            _metrics(options.metrics_file, state, None, started, clock(), quarantined=True)
        raise
    except SnsyncError:
        if not dry_run:
            _metrics(options.metrics_file, state, None, started, clock(), quarantined=False)
        raise
    if not dry_run:
        _after_report(config, ports, notifier, quarantine, report, started, options.metrics_file)
    return report


def _after_report(
    config: Config,
    ports: Ports,
    notifier: Notifier,
    quarantine: Quarantine | None,
    report: CycleReport,
    started: float,
    metrics_file: Path | None,
) -> None:
    """Quarantine, notifications, the last success and the metrics, after a finished cycle."""
    state, clock = ports.state, ports.clock
    state.save_auth_failures(0)
    facts = cycle_facts(report, config, started)
    summary = report.summary  # not every result again: a first sync has hundreds of thousands
    reason = quarantine_reason(summary.writes, summary.failed_writes, config.safety.quarantine)
    if reason:
        quarantine = next_quarantine(quarantine, reason, clock(), config.safety.quarantine)
        state.save_quarantine(quarantine)
        _send(notifier, quarantine_problem(reason, quarantine.until, facts.config_path))
    else:
        _after_cycle(state, notifier, quarantine, report, facts)
    if report.exit_code is ExitCode.OK:
        state.save_last_success(clock())
    _metrics(metrics_file, state, report, started, clock(), quarantined=bool(reason))


def cycle_facts(report: CycleReport, config: Config, started: float) -> CycleFacts:
    """What a notification says about a cycle."""
    failures = [
        FailedObject(r.item.display_name, r.item.directory_id, r.reason, r.message)
        for r in [*report.summary.failures, *report.summary.held]  # held: need an admin
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
    state: StateStore,
    notifier: Notifier,
    quarantine: Quarantine | None,
    report: CycleReport,
    facts: CycleFacts,
) -> None:
    if quarantine:
        state.save_quarantine(None)
        log.warning("quarantine lifted: the cycle after the back-off was healthy")
    problem = failures_problem(facts)
    if problem:
        _send(notifier, problem)
    for held in report.planned.held:
        _send(notifier, held_disables_problem(facts, f"{held.limit_text} {held.object_type}s"))
    if not problem and not report.planned.held:
        _send(notifier, recovery_problem("quarantine" if quarantine else "failures", facts))


AUTH_REASON = "authentication failed"


def auth_identity(config: Config) -> str:
    """A digest of the credentials and endpoints (tenant, app, secret or certificate, instance,
    account): the auth-failure count and an auth quarantine belong to one of them. Secrets enter
    only through a slow salted hash, never as themselves."""
    graph, sn = config.graph, config.servicenow
    secrets = [graph.client_secret, sn.auth.password, getattr(sn.auth, "client_secret", None)]
    parts = [
        graph.tenant_id, graph.client_id, str(graph.authority_host), str(graph.graph_url),
        str(graph.certificate.model_dump(mode="json") if graph.certificate else ""),
        str(sn.instance), sn.auth.type, sn.auth.username,
        *(s.get_secret_value() if s is not None else "" for s in secrets),
    ]  # fmt: skip
    text = "\0".join(parts).encode()
    return hashlib.pbkdf2_hmac("sha256", text, b"snsync auth identity", 20_000).hex()


def new_credentials(config: Config, state: StateStore) -> None:
    """After a change of credentials or endpoints, earlier auth failures say nothing: the count
    starts again and an auth quarantine is lifted (with a log line)."""
    identity = auth_identity(config)
    known = state.auth_identity()
    if known == identity:
        return
    state.save_auth_identity(identity)
    if known is None:
        return
    if state.auth_failures():
        state.save_auth_failures(0)
    quarantine = state.quarantine()
    if quarantine is not None and quarantine.reason.startswith(AUTH_REASON):
        state.save_quarantine(None)
        log.warning(
            "auth quarantine lifted: the credentials or endpoints changed since it began (%s); "
            "this cycle tries them",
            quarantine.reason,
        )


def _auth_failed(
    config: Config,
    state: StateStore,
    notifier: Notifier,
    quarantine: Quarantine | None,
    reason: str,
    now: float,
) -> None:
    count = state.auth_failures() + 1
    state.save_auth_failures(count)
    if count >= config.safety.quarantine.auth_failures:
        text = f"{AUTH_REASON} {count} cycles in a row: {reason}"
        entered = next_quarantine(quarantine, text, now, config.safety.quarantine)
        state.save_quarantine(entered)
        _send(notifier, quarantine_problem(text, entered.until, str(config.source_path)))


def _send(notifier: Notifier, problem: Problem) -> None:
    try:
        notifier.notify(problem)
    except NotificationError as exc:
        log.warning("notification not sent: %s", exc)


def _metrics(
    path: Path | None,
    state: StateStore,
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
        full=report is not None and report.mode == "full",
        counts=counts,
        failures=len(report.failures()) if report else 0,
        held_disables=sum(h.count for h in report.planned.held) if report else 0,
        success=report is not None and report.exit_code is ExitCode.OK,
        finished_at=finished,
        quarantined=quarantined,
    )
    write_metrics(path, metrics, state.last_success())


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
