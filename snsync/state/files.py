"""Private files: the state folder 0700, and every file snsync keeps there 0600 from the moment
it exists (the umask is set before SQLite or the lock creates a file, not fixed up afterwards)."""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from pathlib import Path

FOLDER_MODE = 0o700
FILE_MODE = 0o600


def private_folder(path: Path) -> None:
    """Create `path` (and missing parents) readable by this account only. An existing folder is
    left as it is: it may be shared on purpose (a home directory, /var/lib)."""
    if path.is_dir():
        return
    with private_umask():
        path.mkdir(parents=True, exist_ok=True)
    with suppress(OSError):
        path.chmod(FOLDER_MODE)


@contextmanager
def private_umask() -> Iterator[None]:
    """Files and folders created inside get no group or other permissions."""
    previous = os.umask(0o077)
    try:
        yield
    finally:
        os.umask(previous)


def tighten(*paths: Path) -> None:
    """Files made by an older snsync (or copied in): make them 0600 too."""
    for path in paths:
        with suppress(OSError):
            if path.exists() and path.stat().st_mode & 0o077:
                path.chmod(FILE_MODE)
