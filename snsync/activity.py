"""A running cycle, visible from another process: while `run` or `approve` works, a small file
beside the state file says which process, since when, in which phase and how far (`snsync
status` reads it). The run lock tells whether its writer is still alive."""

from __future__ import annotations

import fcntl
import json
import os
import time
from collections.abc import Callable
from contextlib import suppress
from pathlib import Path
from typing import Any

from snsync.engine.cycle import TO_APPLY

MIN_INTERVAL_S = 0.5  # the file is rewritten at most this often (and at every phase change)


def activity_path(state_path: Path) -> Path:
    return state_path.with_name(state_path.name + ".running")


class ActivityFile:
    """Written by the process that runs a cycle; removed when the cycle ends."""

    def __init__(self, state_path: Path, clock: Callable[[], float] = time.time) -> None:
        self.path = activity_path(state_path)
        self.clock = clock
        self.data: dict[str, Any] = {
            "pid": os.getpid(),
            "started": clock(),
            "phase": "starting",
            "counts": {},
        }
        self._written = 0.0
        self._write()

    def __call__(self, what: str, count: int) -> None:
        phase = "applying" if what in (TO_APPLY, "applied") else "reading"
        counts = self.data["counts"]
        counts[what] = counts.get(what, 0) + count
        changed = phase != self.data["phase"]
        self.data["phase"] = phase
        if changed or self.clock() - self._written >= MIN_INTERVAL_S:
            self._write()

    def close(self) -> None:
        with suppress(OSError):
            self.path.unlink()

    def _write(self) -> None:
        self._written = self.clock()
        self.data["updated"] = self._written
        temporary = self.path.with_name(self.path.name + ".tmp")
        with suppress(OSError):  # progress is a courtesy: it never stops a cycle
            descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            with open(descriptor, "w", encoding="utf-8") as handle:
                json.dump(self.data, handle)
            os.replace(temporary, self.path)


def running_cycle(state_path: Path) -> dict[str, Any] | None:
    """What the running cycle's file says, if a live run holds the lock; else None."""
    try:
        data = json.loads(activity_path(state_path).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if not isinstance(data, dict) or not isinstance(data.get("pid"), int):
        return None
    return data if _lock_held(state_path) and _alive(data["pid"]) else None


def _lock_held(state_path: Path) -> bool:
    lock = state_path.with_name(state_path.name + ".lock")
    try:
        handle = open(lock, "rb")  # noqa: SIM115 - closed below
    except OSError:
        return False
    with handle:
        try:
            fcntl.flock(handle.fileno(), fcntl.LOCK_SH | fcntl.LOCK_NB)
        except BlockingIOError:
            return True
        fcntl.flock(handle.fileno(), fcntl.LOCK_UN)
        return False


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
