"""Turn plans, cycle reports and log entries into text for an admin, or JSON for scripts. Text
is made printable line by line: a value from either service never starts a line of its own or
reaches the terminal as a control sequence."""

from __future__ import annotations

import csv
import datetime as dt
import io
import json
from collections.abc import Mapping, Sequence
from dataclasses import asdict
from typing import Any

from snsync.activity import running_cycle
from snsync.config import Config
from snsync.engine.cycle import CycleReport
from snsync.engine.plan import CyclePlan
from snsync.errors import ExitCode
from snsync.model import Change, PlanItem, Reason, Result, Status, TargetSnapshot
from snsync.printable import printable_lines
from snsync.progress import progress_line
from snsync.redact import redact
from snsync.state import LogEntry, LogFilter, State

MAX_VALUE = 60


def plan_text(planned: CyclePlan) -> str:
    """The plan as the admin reads it: one block per object, attribute diffs under it."""
    names = planned.names
    known = reference_names(planned.target)
    users, groups = planned.users, planned.groups
    lines = [
        f"Scope: {planned.in_scope} users in scope of {len(planned.snapshot.users)} in the "
        f"directory, {len(planned.snapshot.groups)} assigned groups; {len(users.links)} users "
        f"and {len(groups.links)} groups linked to ServiceNow records."
    ]
    for item in planned.items():
        lines.append(_item_line(item))
        lines += [f"      {_change(c, known)}" for c in item.changes]
        lines += [
            f"      {name}: set once '{names.get(who, who)}' is created"
            for name, who in item.deferred.items()
        ]
    for title, plan in (
        ("Users", users.plan),
        ("Groups", groups.plan),
        ("Memberships", planned.memberships.plan),
    ):
        counts = ", ".join(f"{n} {a}" for a, n in sorted(plan.counts().items())) or "no changes"
        lines.append(f"{title}: {counts}; {plan.unchanged} unchanged.")
    return printable_lines(lines)


def plan_json(planned: CyclePlan) -> dict[str, Any]:
    return {
        "in_scope": planned.in_scope,
        "source_users": len(planned.snapshot.users),
        "assigned_groups": len(planned.snapshot.groups),
        "linked": {"users": len(planned.users.links), "groups": len(planned.groups.links)},
        "unchanged": planned.unchanged,
        "counts": {
            "users": planned.users.plan.counts(),
            "groups": planned.groups.plan.counts(),
            "memberships": planned.memberships.plan.counts(),
        },
        "items": [item_json(i) for i in planned.items()],
    }


def item_json(item: PlanItem) -> dict[str, Any]:
    return {
        "action": item.action.value,
        "status": item.status.value,
        "directory_id": item.directory_id,
        "display_name": item.display_name,
        "sys_id": item.sys_id,
        "reason": item.reason,
        "message": redact(item.message),
        "adopt": item.adopt,
        "object_type": item.kind,
        "changes": [
            {"field": c.field, "old": c.shown_old, "new": c.shown_new, "label": c.shown_label}
            for c in item.changes
        ],
        "deferred": dict(item.deferred),
    }


def report_text(report: CycleReport) -> str:
    """The summary printed after `run --once`."""
    title = "Dry run" if report.dry_run else f"Cycle {report.cycle_id}"
    mode = cycle_mode(report)
    reason = report.mode_reason
    kind = f" ({mode}: {reason})" if mode == "full" and reason else f" ({mode})" if mode else ""
    lines = [f"{title}{kind} finished in {report.duration_s:.1f}s: {cycle_outcome(report)}."]
    counts = report.counts()
    for action in sorted(counts):
        row = ", ".join(f"{n} {s}" for s, n in sorted(counts[action].items()))
        lines.append(f"  {action:<18} {row}")
    lines.append(f"  unchanged: {report.planned.unchanged} users and groups")
    req = report.requests
    lines.append(
        f"  Requests: Graph {req.get('graph_reads', 0)}, ServiceNow "
        f"{req.get('servicenow_reads', 0)} reads + {req.get('servicenow_writes', 0)} writes, "
        f"{req.get('retries', 0)} retries"
    )
    failures = report.failures()
    if failures:
        lines.append(f"{len(failures)} object(s) failed:")
        lines += [f"  - {_result_line(r)}" for r in failures[:20]]
        if len(failures) > 20:
            lines.append(f"  ... and {len(failures) - 20} more: snsync logs --status Failure")
    warnings = report.summary.warnings
    if warnings:
        lines.append(f"{warnings} warning(s); see: snsync logs --status Warning")
    lines += _next_steps(report)
    return printable_lines(lines)


def cycle_mode(report: CycleReport) -> str | None:
    """full | incremental (None when the cycle did not read, e.g. on demand)."""
    return report.mode or None


def cycle_outcome(report: CycleReport) -> str:
    """success, held, interrupted or failed: what the cycle's exit code and results say."""
    if report.summary.interrupted:
        return "interrupted"
    if report.exit_code is ExitCode.HELD:
        return "held"
    return "failed" if report.failures() else "success"


def _next_steps(report: CycleReport) -> list[str]:
    lines = []
    for held in report.planned.held:
        lines.append(
            f"HELD: {held.count} {held.object_type} disables exceed safety.max_disables "
            f"({held.limit_text}); nothing was disabled. If they are right: snsync approve; "
            "if not, fix the assignment in Azure AD (snsync logs --action StagedDisable)"
        )
    if report.exit_code is ExitCode.HELD and not report.planned.held:
        lines.append("HELD: see snsync status for what is held and how to release it")
    stopped = report.summary.interrupted
    if stopped:
        lines.append(
            f"INTERRUPTED: {stopped} object(s) were not started; what finished is recorded. "
            "The next cycle carries on: snsync run --once"
        )
    return lines


def summary_fields(report: CycleReport) -> dict[str, Any]:
    """The summary as the fields of one JSON log record (no per-object results)."""
    return {
        "cycle_id": report.cycle_id,
        "dry_run": report.dry_run,
        "duration_s": round(report.duration_s, 3),
        "exit_code": int(report.exit_code),
        "mode": cycle_mode(report),
        "outcome": cycle_outcome(report),
        "counts": report.counts(),
        "unchanged": report.planned.unchanged,
        "requests": report.requests,
        "failures": len(report.summary.failures),
    }


def report_json(report: CycleReport) -> dict[str, Any]:
    return {
        "cycle_id": report.cycle_id,
        "dry_run": report.dry_run,
        "mode": cycle_mode(report),
        "outcome": cycle_outcome(report),
        "duration_s": round(report.duration_s, 3),
        "counts": report.counts(),
        "unchanged": report.planned.unchanged,
        "requests": report.requests,
        "results": [result_json(r) for r in report.results],
    }


def result_json(result: Result) -> dict[str, Any]:
    data = item_json(result.item)
    data.update(
        status=result.status.value,
        sys_id=result.sys_id,
        reason=result.reason,
        message=redact(result.message),
    )
    return data


def log_text(entries: Sequence[LogEntry], names: Mapping[str, str] | None = None) -> str:
    if not entries:
        return "No provisioning log entries match."
    lines = []
    for e in entries:
        when = dt.datetime.fromtimestamp(e.time, dt.UTC).strftime("%Y-%m-%d %H:%M:%SZ")
        reason = f" [{e.reason}]" if e.reason else ""
        lines.append(
            f"{when} cycle {e.cycle_id} {e.action:<7} {e.status:<8} {e.display_name} "
            f"({e.directory_id}){reason} {e.message}".rstrip()
        )
        lines += [f"      {_change(Change(**c), names)}" for c in e.changes]
    return printable_lines(lines)


LOG_CSV_COLUMNS = (
    "time", "cycle_id", "object_type", "directory_id", "display_name", "sys_id", "action",
    "status", "reason", "message", "changes",
)  # fmt: skip


def log_csv(entries: Sequence[LogEntry], names: Mapping[str, str] | None = None) -> str:
    """The log as CSV (RFC 4180, a header row; changes as `field: old -> new` joined by '; ').
    A cell that a spreadsheet would run as a formula is prefixed with a quote."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\r\n")
    writer.writerow(LOG_CSV_COLUMNS)
    for e in entries:
        when = dt.datetime.fromtimestamp(e.time, dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        changes = "; ".join(_change(Change(**c), names) for c in e.changes)
        row = [when, e.cycle_id, e.object_type, e.directory_id, e.display_name, e.sys_id,
               e.action, e.status, e.reason, e.message, changes]  # fmt: skip
        writer.writerow(["" if v is None else _cell(str(v)) for v in row])
    return buffer.getvalue()


def _cell(text: str) -> str:
    return "'" + text if text[:1] in ("=", "+", "-", "@", "\t", "\r") else text


def log_json(entries: Sequence[LogEntry]) -> list[dict[str, Any]]:
    return [e.__dict__ for e in entries]


def dumps(data: Any) -> str:
    return json.dumps(data, indent=2, sort_keys=False, default=str)


def _item_line(item: PlanItem) -> str:
    target = f" -> {item.sys_id}" if item.sys_id else ""
    kind = "" if item.kind == "user" else f"{item.kind} "
    note = f" [{item.reason}]" if item.reason else ""
    message = f" {item.message}" if item.message else ""
    status = "" if item.status is Status.SUCCESS else f" ({item.status.value})"
    return f"  {item.action.value:<7}{status} {kind}{item.display_name}{target}{note}{message}"


def _result_line(result: Result) -> str:
    reason = f"[{result.reason}] " if result.reason else ""
    return f"{result.item.display_name} ({result.item.directory_id}): {reason}{result.message}"


def _change(change: Change, names: Mapping[str, str] | None = None) -> str:
    """`field: old -> new` as it may be shown (a Redact() value masked), a reference shown by
    its name with the sys_id after it."""
    new = _short(change.shown_new)
    if change.shown_label:
        new = f"{_short(change.shown_label)} ({change.shown_new})"
    old = _short(change.shown_old)
    unmasked = change.shown_old == change.old
    if names and unmasked and change.old is not None and change.old in names:
        old = f"{_short(names[change.old])} ({change.old})"
    return f"{change.field}: {old} -> {new}"


def reference_names(target: TargetSnapshot | None) -> dict[str, str]:
    """sys_id -> name of the records a reference may point at (users, groups and reference
    tables as last read), so that an old reference value reads as a name."""
    if target is None:
        return {}
    names = {sys_id: name for table in target.references.values() for name, sys_id in table.items()}
    names.update({s: r.get("name", "") for s, r in target.groups.items() if r.get("name")})
    names.update({s: r.get("user_name", "") for s, r in target.users.items() if r.get("user_name")})
    return names


def _short(value: str | None) -> str:
    if value is None:
        return "(none)"
    text = repr(value)
    return text if len(text) <= MAX_VALUE else text[: MAX_VALUE - 3] + "...'"


def status_json(state: State, config: Config) -> dict[str, Any]:
    """What `snsync status` shows, as plain data."""
    from snsync.engine.approvals import held_adoptions

    cycles = state.cycles(10)
    last_start = cycles[0]["started_at"] if cycles else None
    quarantine = state.quarantine()
    running = running_cycle(config.state.path)
    return {
        "running": None
        if running is None
        else {
            "pid": running["pid"],
            "since": _iso(float(running["started"])),
            "phase": running.get("phase"),
            "progress": progress_line(running.get("counts") or {}),
            "updated": _iso(float(running.get("updated", running["started"]))),
        },
        "cycles": [
            {
                "id": c["id"],
                "started": _iso(c["started_at"]),
                "duration_s": round(c["ended_at"] - c["started_at"], 1) if c["ended_at"] else None,
                "kind": c["kind"],
                "outcome": _stored_outcome(state, c, running is not None and i == 0),
                "detail": c["outcome"] or "",
                "counts": c["counts"].get("by_action", {}),
            }
            for i, c in enumerate(cycles)
        ],
        "next_cycle_due": _iso(last_start + config.schedule.interval) if last_start else "now",
        "quarantine": None
        if quarantine is None
        else {
            "since": _iso(quarantine.since),
            "until": "stopped" if quarantine.stopped else _iso(quarantine.until),
            "level": quarantine.level,
            "reason": quarantine.reason,
            "clear_with": f"snsync --config {config.source_path} reset --quarantine",
        },
        "held_disables": [asdict(h) for h in state.held_disables()],
        "held_adoptions": held_adoptions(state),
        "retrying": [
            {
                "object_type": e.object_type,
                "directory_id": e.directory_id,
                "display_name": e.display_name,
                "failures": e.failures,
                "next_attempt": _iso(e.next_attempt),
                "reason": e.reason,
                "message": redact(e.message),
            }
            for e in state.escrow()
        ],
        "links": state.link_counts(),
        "delta_links": {name: _iso(at) for name, at in state.watermark_ages().items()},
    }


def _stored_outcome(state: State, cycle: dict[str, Any], running: bool) -> str:
    """success, held, interrupted, failed or running, from what the state file recorded."""
    if cycle["ended_at"] is None:
        return "running" if running else "interrupted"
    recorded = str(cycle["outcome"] or "")
    if recorded == "failures" or recorded.startswith("error"):
        return "failed"
    if any(key.endswith(" StagedDisable") for key in cycle["counts"].get("by_action", {})):
        return "held"
    skipped = state.log_entries(LogFilter(cycle=cycle["id"], status="Skipped", limit=5000))
    if any(e.reason == Reason.INTERRUPTED for e in skipped):
        return "interrupted"
    return "success"


def status_text(data: dict[str, Any]) -> str:
    """`snsync status` for people."""
    lines = []
    running = data.get("running")
    if running:
        lines.append(
            f"RUNNING: a cycle in process {running['pid']} since {running['since']}, "
            f"{running['progress']} (as of {running['updated']}); stop it with: "
            f"kill -TERM {running['pid']}"
        )
    lines += ["Recent cycles:"] if data["cycles"] else ["No cycle has run yet."]
    for c in data["cycles"]:
        counts = (
            "; ".join(
                f"{action}: " + ", ".join(f"{n} {s}" for s, n in sorted(by.items()))
                for action, by in sorted(c["counts"].items())
            )
            or "nothing to do"
        )
        duration = f"{c['duration_s']}s" if c["duration_s"] is not None else "-"
        detail = c["detail"][len("error: ") :] if c["detail"].startswith("error: ") else ""
        outcome = c["outcome"] + (f" ({detail})" if detail else "")
        lines.append(f"  #{c['id']} {c['started']} {c['kind']} {duration} {outcome}: {counts}")
    lines.append(f"Next cycle due: {data['next_cycle_due']}")
    q = data["quarantine"]
    if q:
        lines.append(
            f"QUARANTINED since {q['since']} until {q['until']} (level {q['level']}): "
            f"{q['reason']}. Clear with: {q['clear_with']}"
        )
    else:
        lines.append("Quarantine: no")
    for held in data["held_disables"]:
        lines.append(
            f"HELD: {held['count']} {held['object_type']} disables (limit "
            f"{held['limit_text']}); release with: snsync run --once --allow-disables"
        )
    for held in data.get("held_adoptions", []):
        approved = "approved, adopted next cycle" if held["approved"] else "approve with: snsync "
        approved += "" if held["approved"] else f"approve --adoption {held['directory_id']}"
        lines.append(
            f"HELD ADOPTION: {held['object_type']} {held['display_name']} "
            f"({held['directory_id']}) -> {held['sys_id']}: {approved}"
        )
    lines.append(f"Objects retrying with back-off: {len(data['retrying'])}")
    for e in data["retrying"][:20]:
        lines.append(
            f"  {e['object_type']} {e['display_name']} ({e['directory_id']}): "
            f"{e['failures']} failures, next attempt {e['next_attempt']} "
            f"[{e['reason']}] {e['message']}"
        )
    links = ", ".join(f"{n} {kind}s" for kind, n in sorted(data["links"].items())) or "none"
    lines.append(f"Links: {links}")
    if data["delta_links"]:
        ages = ", ".join(f"{k} saved {v}" for k, v in sorted(data["delta_links"].items()))
        lines.append(f"Delta links: {ages}")
    return printable_lines(lines)


def _iso(timestamp: float) -> str:
    return dt.datetime.fromtimestamp(timestamp, dt.UTC).strftime("%Y-%m-%d %H:%M:%SZ")
