"""The progress line shown on a terminal."""

from __future__ import annotations

from snsync.engine.cycle import TO_APPLY
from snsync.progress import progress_line as _progress_line


def test_reading_shows_counts_then_applying_shows_a_bar() -> None:
    assert _progress_line({"users": 999, "group members": 12}) == (
        "reading users: 999, group members: 12"
    )
    line = _progress_line({"users": 999, TO_APPLY: 200, "applied": 50})
    assert line == f"applying [{'#' * 7}{'.' * 23}] 50/200"
    assert _progress_line({TO_APPLY: 0}).endswith("0/0")
