"""The state: one SQLite file, owned by `State` (store.py); the run lock beside it (lock.py)."""

from snsync.state.lock import RunLock
from snsync.state.log import LogEntry, LogFilter
from snsync.state.picture import PictureFacts
from snsync.state.rows import PictureChanges, PictureRows
from snsync.state.store import (
    CycleRecord,
    LinkChanges,
    State,
    SyncBasis,
    Watermarks,
    backoff_seconds,
)

__all__ = [
    "CycleRecord",
    "LinkChanges",
    "LogEntry",
    "LogFilter",
    "PictureChanges",
    "PictureFacts",
    "PictureRows",
    "RunLock",
    "State",
    "SyncBasis",
    "Watermarks",
    "backoff_seconds",
]
