"""Control characters from either service are shown escaped, never sent to the terminal."""

from __future__ import annotations

import pytest

from snsync.printable import printable, printable_lines
from snsync.progress import PhaseLog


@pytest.mark.parametrize(
    ("raw", "shown"),
    [
        ("Ada Lovelace", "Ada Lovelace"),
        ("Zoë Ångström 山田", "Zoë Ångström 山田"),
        ("a\nb", "a\\nb"),
        ("a\r\n", "a\\r\\n"),
        ("\x1b[2J\x1b]0;title\x07", "\\x1b[2J\\x1b]0;title\\x07"),
        ("\x9b31m", "\\x9b31m"),
        ("tab\there", "tab\\there"),
        ("del\x7f", "del\\x7f"),
        ("\u202eevil\u2028x", "\\u202eevil\\u2028x"),
    ],
)
def test_printable(raw: str, shown: str) -> None:
    assert printable(raw) == shown


def test_only_the_joins_are_line_breaks() -> None:
    assert printable_lines(["one\ntwo", "three"]).splitlines() == ["one\\ntwo", "three"]


def test_phase_log_one_line_per_phase(caplog: pytest.LogCaptureFixture) -> None:
    # start, users at 1 and 1.2, servicenow users at 1.5, to apply at 2.5, applied 3 and 4, end 5
    ticks = iter([0.0, 1.0, 1.2, 1.5, 2.5, 3.0, 4.0, 5.0])
    phases = PhaseLog(clock=lambda: next(ticks))
    caplog.set_level("INFO", logger="snsync.progress")
    for what, count in [("users", 999), ("users", 1), ("servicenow users", 10), ("to apply", 3)]:
        phases(what, count)
    phases("applied", 1)
    phases("applied", 2)
    phases.finish()
    assert [r.getMessage() for r in caplog.records] == [
        "reading users: 1000 items in 1.20s",
        "reading servicenow users: 10 items in 0.30s",
        "planned: 3 writes in 1.00s",
        "applying: 3 writes in 2.50s",
    ]
