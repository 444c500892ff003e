"""The stop token: one process-wide flag that SIGTERM/SIGINT set, plus the cycle's own stops
(`schedule.max_cycle_time` passed, a request quota spent). Writes not yet started are skipped
(the executor), reads stop at their next page or request (the HTTP layer and the paging loops),
and a read blocked on a slow socket in the main thread is interrupted at once."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager

from snsync.errors import CycleStopped, ExitCode


class Interrupted(BaseException):
    """Raised by the signal handler inside an interruptible read of the main thread; the HTTP
    layer turns it into CycleStopped. A BaseException so no `except Exception` swallows it."""


class StopSignal:
    """Set by SIGTERM/SIGINT (for the process) or by the cycle's limits (for this cycle only)."""

    def __init__(self) -> None:
        self._event = threading.Event()
        self._reason = ""
        self._cycle_reason = ""
        self._cycle_code = ExitCode.OK
        self._deadline: float | None = None
        self._deadline_s = 0.0
        self._interruptible = 0  # depth of interruptible() in the main thread
        self._cycles = 0  # cycles in progress (a cycle stop outside one has nothing to stop)
        self._lock = threading.Lock()

    def set(self, reason: str) -> None:
        """Stop the process (a signal). Called from the signal handler: in the main thread,
        inside `interruptible()`, it also interrupts the blocking read."""
        self._reason = reason
        self._event.set()
        if self._interruptible and threading.current_thread() is threading.main_thread():
            raise Interrupted(reason)

    def stop_cycle(self, reason: str, code: ExitCode) -> None:
        """Stop this cycle only (a spent quota): nothing new starts, the loop carries on."""
        with self._lock:
            if self._cycles and not self._cycle_reason:
                self._cycle_reason, self._cycle_code = reason, code

    def __bool__(self) -> bool:
        return self._event.is_set() or bool(self.cycle_reason())

    @property
    def reason(self) -> str:
        """The signal's name, or why this cycle stops early."""
        return self._reason if self._event.is_set() else self.cycle_reason()

    @property
    def signalled(self) -> bool:
        return self._event.is_set()

    def cycle_reason(self) -> str:
        """Why this cycle stops early ('' while it may go on)."""
        if self._cycle_reason:
            return self._cycle_reason
        if self._deadline is not None and time.monotonic() >= self._deadline:
            self.stop_cycle(
                f"schedule.max_cycle_time ({self._deadline_s:g}s) has passed", ExitCode.DEADLINE
            )
            return self._cycle_reason
        return ""

    def exit_code(self) -> ExitCode:
        """The exit code a stop of this cycle ends with (OK when it was not stopped early)."""
        if self.cycle_reason():
            return self._cycle_code
        return ExitCode.OK

    def check(self, doing: str) -> None:
        """Raise CycleStopped if the process or this cycle is stopping (before starting `doing`)."""
        if self._event.is_set():
            raise CycleStopped(
                f"stopped ({self._reason}) while {doing}; the next cycle starts over",
                code=ExitCode.INTERRUPTED,
            )
        reason = self.cycle_reason()
        if reason:
            raise CycleStopped(
                f"cycle stopped while {doing}: {reason}; the next cycle goes on",
                code=self._cycle_code,
            )

    def wait(self, seconds: float) -> None:
        """Sleep up to `seconds`, waking as soon as a stop is signalled or the deadline passes."""
        end = time.monotonic() + max(0.0, seconds)
        while not self and (left := end - time.monotonic()) > 0:
            self._event.wait(min(left, 0.5))

    @contextmanager
    def cycle(self, max_seconds: float | None) -> Iterator[StopSignal]:
        """The scope of one cycle: its deadline, and its own stops cleared at the end."""
        with self._lock:
            self._cycle_reason, self._cycle_code = "", ExitCode.OK
            self._deadline_s = max_seconds or 0.0
            self._deadline = time.monotonic() + max_seconds if max_seconds else None
            self._cycles += 1
        try:
            yield self
        finally:
            with self._lock:
                self._cycles -= 1
                self._deadline = None
                self._cycle_reason, self._cycle_code = "", ExitCode.OK

    @contextmanager
    def interruptible(self) -> Iterator[None]:
        """Mark a blocking read in the main thread that a signal may interrupt at once."""
        if threading.current_thread() is not threading.main_thread():
            yield
            return
        self._interruptible += 1
        try:
            if self._event.is_set():
                raise Interrupted(self._reason)
            yield
        finally:
            self._interruptible -= 1

    def clear(self) -> None:
        """Forget every stop (tests; a fresh process starts cleared)."""
        self._event.clear()
        self._reason = ""
        with self._lock:
            self._cycle_reason, self._cycle_code, self._deadline = "", ExitCode.OK, None


STOP = StopSignal()
