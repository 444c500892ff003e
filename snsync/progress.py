"""What a command shows while a cycle runs: a progress line on a terminal, one log line per phase
with -v, and one per request and per write with -vv (redacted, control characters escaped)."""

from __future__ import annotations

import logging
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import click
import requests

from snsync.activity import ActivityFile
from snsync.engine.cycle import TO_APPLY
from snsync.model import Progress, Result
from snsync.printable import printable
from snsync.redact import redact

APPLIED = "applied"
log = logging.getLogger("snsync.progress")
requests_log = logging.getLogger("snsync.requests")


def progress_line(seen: dict[str, int]) -> str:
    """`reading users: 999, ...` or `applying [#####.....] 120/2100`."""
    total = seen.get(TO_APPLY)
    if total is None:
        return "reading " + ", ".join(f"{k}: {v}" for k, v in seen.items())
    done = min(seen.get(APPLIED, 0), total)
    filled = int(30 * done / total) if total else 30
    return f"applying [{'#' * filled}{'.' * (30 - filled)}] {done}/{total}"


class PhaseLog:
    """-v: one INFO line per phase of a cycle (what was read, planned or applied, how many, how
    long), from the progress events the engine sends. A reading phase ends at its last event,
    so the time spent planning is the planned line's."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self.clock = clock
        self.phase: str | None = None
        self.count = 0
        self.started = self.last = clock()

    def __call__(self, what: str, count: int) -> None:
        now = self.clock()
        if what == TO_APPLY:
            self._end(self.last)
            self._line("planned", count, "writes", now - self.last)
            self.phase, self.count, self.started = "applying", 0, now
        else:
            phase = "applying" if what == APPLIED else f"reading {what}"
            if phase != self.phase:
                self._end(self.last)
                self.phase, self.started = phase, self.last
            self.count += count
        self.last = now

    def finish(self) -> None:
        """Log the phase under way, if any."""
        self._end(self.clock())

    def _end(self, at: float) -> None:
        if self.phase is not None:
            unit = "writes" if self.phase == "applying" else "items"
            self._line(self.phase, self.count, unit, at - self.started)
        self.phase, self.count = None, 0

    def _line(self, phase: str, count: int, unit: str, duration: float) -> None:
        fields = {"phase": phase, "count": count, "duration_s": round(duration, 3)}
        log.info("%s: %d %s in %.2fs", phase, count, unit, duration, extra={"snsync": fields})


@contextmanager
def cycle_progress(terminal: bool, state_path: Path | None = None) -> Iterator[Progress | None]:
    """The progress callback for a cycle: a line on a terminal (counts while reading, a bar while
    applying; never when piped or from cron), the -v phase lines, and with `state_path` the
    activity file `snsync status` reads from another process; None when none is on."""
    bar = _TerminalBar() if terminal and sys.stderr.isatty() else None
    phases = PhaseLog() if log.isEnabledFor(logging.INFO) else None
    activity = ActivityFile(state_path) if state_path is not None else None
    if bar is None and phases is None and activity is None:
        yield None
        return

    def progress(what: str, count: int) -> None:
        if phases:
            phases(what, count)
        if bar:
            bar(what, count)
        if activity:
            activity(what, count)

    try:
        yield progress
    finally:
        if bar:
            bar.close()
        if phases:
            phases.finish()
        if activity:
            activity.close()


def result_logger(progress: Progress | None) -> Callable[[Result], None] | None:
    """The executor's on_result: count writes for the progress line, and with -vv log each."""
    tracing = log.isEnabledFor(logging.DEBUG)
    if progress is None and not tracing:
        return None

    def on_result(result: Result) -> None:
        item = result.item
        if progress and item.writes:
            progress(APPLIED, 1)
        if tracing and item.writes:
            log.debug(
                "write %s %s '%s' (%s) -> %s: %s%s",
                item.object_type,
                item.action.value,
                item.display_name,
                item.directory_id,
                result.sys_id or "-",
                result.status.value,
                f" [{result.reason}] {result.message}" if result.reason else "",
            )

    return on_result


def trace_requests(session: requests.Session, service: str) -> None:
    """-vv: one DEBUG line per HTTP answer (method, URL without secrets, status, time)."""
    if not log.isEnabledFor(logging.DEBUG):
        return

    def hook(response: requests.Response, *_: Any, **__: Any) -> None:
        request = response.request
        requests_log.debug(
            "%s %s %s -> %d in %.3fs",
            service,
            request.method,
            redact(str(request.url)),
            response.status_code,
            response.elapsed.total_seconds(),
        )

    session.hooks["response"].append(hook)


class _TerminalBar:
    def __init__(self) -> None:
        self.seen: dict[str, int] = {}

    def __call__(self, what: str, count: int) -> None:
        self.seen[what] = self.seen.get(what, 0) + count
        click.echo(f"\r{printable(progress_line(self.seen))}\x1b[K", err=True, nl=False)

    def close(self) -> None:
        if self.seen:
            click.echo("", err=True)
