"""One run at a time: an exclusive `flock` beside the state file, naming its holder."""

from __future__ import annotations

import fcntl
import os
import time
from pathlib import Path
from typing import TextIO

from snsync.errors import LockedError
from snsync.state.files import FILE_MODE, private_folder, tighten


class RunLock:
    """Held for the whole of a run; a killed run's lock dies with its process."""

    def __init__(self, state_path: Path) -> None:
        self.path = state_path.with_name(state_path.name + ".lock")
        self._file: TextIO | None = None

    def acquire(self) -> RunLock:
        private_folder(self.path.parent)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, FILE_MODE)
        tighten(self.path)
        handle = os.fdopen(fd, "r+", encoding="utf-8")
        try:
            fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.seek(0)
            holder = handle.read().strip() or "unknown holder"
            handle.close()
            raise LockedError(
                f"another snsync run holds {self.path} ({holder}); this run did nothing. "
                "If that process is gone the lock frees itself"
            ) from None
        # flock locks die with their process, so a killed run leaves nothing stale to clear.
        handle.seek(0)
        handle.truncate()
        handle.write(f"pid {os.getpid()} since {time.strftime('%Y-%m-%d %H:%M:%S %Z')}\n")
        handle.flush()
        self._file = handle
        return self

    def release(self) -> None:
        if self._file:
            self._file.seek(0)
            self._file.truncate()
            fcntl.flock(self._file.fileno(), fcntl.LOCK_UN)
            self._file.close()
            self._file = None

    def __enter__(self) -> RunLock:
        return self.acquire()

    def __exit__(self, *_: object) -> None:
        self.release()
