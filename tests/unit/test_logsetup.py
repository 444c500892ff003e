"""Logging setup: text and JSON lines, -v/-q levels, a private log file, secrets masked in every
output, and calling it twice changes the setup instead of doubling every line."""

from __future__ import annotations

import io
import json
import logging
import re
from collections.abc import Iterator
from pathlib import Path

import pytest

from snsync import logsetup
from snsync.errors import LocalFileError
from snsync.logsetup import configure_logging
from snsync.redact import register

SECRET = "Sup3r-secret-token-value"
register(SECRET)
log = logging.getLogger("snsync.engine.cycle")


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


@pytest.fixture(autouse=True)
def restore_logging() -> Iterator[None]:
    """Leave the root and snsync loggers as this test found them."""
    root, snsync = logging.getLogger(), logging.getLogger("snsync")
    levels = root.level, snsync.level
    yield
    logsetup._install([])
    root.setLevel(levels[0])
    snsync.setLevel(levels[1])


def lines(stream: io.StringIO) -> list[str]:
    return stream.getvalue().splitlines()


def test_text_on_a_terminal_is_short() -> None:
    stream = Terminal()
    configure_logging(0, False, stream=stream)
    log.warning("user %s not found", "ada", extra={"snsync": {"cycle": 42}})
    assert lines(stream) == ["WARNING snsync.engine.cycle: user ada not found"]


def test_text_elsewhere_has_a_utc_time_and_the_extras() -> None:
    stream = io.StringIO()
    configure_logging(0, False, stream=stream)
    log.warning("user %s not found", "ada", extra={"snsync": {"cycle": 42, "object": "id-1"}})
    [line] = lines(stream)
    assert re.fullmatch(
        r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z WARNING snsync\.engine\.cycle: "
        r"user ada not found \[cycle=42 object=id-1\]",
        line,
    )


def test_json_lines_carry_time_level_logger_message_and_extras() -> None:
    stream = io.StringIO()
    configure_logging(1, False, fmt="json", stream=stream)
    log.info("created %d users", 3, extra={"snsync": {"cycle": 42, "level": "x", "ids": ["a"]}})
    [line] = lines(stream)
    entry = json.loads(line)
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", entry.pop("time"))
    assert entry == {
        "level": "INFO",
        "logger": "snsync.engine.cycle",
        "message": "created 3 users",
        "cycle": 42,
        "ids": ["a"],
        "snsync_level": "x",  # an extra never overwrites a core field
    }


@pytest.mark.parametrize(
    ("verbosity", "quiet", "shown"),
    [
        (0, False, ["WARNING", "ERROR"]),
        (1, False, ["INFO", "WARNING", "ERROR"]),
        (2, False, ["DEBUG", "INFO", "WARNING", "ERROR"]),
        (5, False, ["DEBUG", "INFO", "WARNING", "ERROR"]),
        (2, True, ["ERROR"]),
    ],
)
def test_levels(verbosity: int, quiet: bool, shown: list[str]) -> None:
    stream = Terminal()
    configure_logging(verbosity, quiet, stream=stream)
    for level in (logging.DEBUG, logging.INFO, logging.WARNING, logging.ERROR):
        log.log(level, "m")
    assert [line.split()[0] for line in lines(stream)] == shown


def test_libraries_stay_at_warning_and_are_redacted_too() -> None:
    stream = Terminal()
    configure_logging(2, False, stream=stream)
    library = logging.getLogger("urllib3.connectionpool")
    library.debug("GET /token?client_secret=abc")
    library.warning("retrying with Bearer %s", SECRET)
    assert lines(stream) == ["WARNING urllib3.connectionpool: retrying with Bearer ***"]


def test_secrets_are_masked_in_message_args_extras_and_tracebacks(tmp_path: Path) -> None:
    stream = io.StringIO()
    log_file = tmp_path / "snsync.log"
    configure_logging(0, False, fmt="json", log_file=log_file, stream=stream)
    log.warning(f"literal {SECRET}")
    log.warning("arg %s", SECRET)
    log.warning("extra", extra={"snsync": {"header": f"Bearer {SECRET}", "nested": {"k": SECRET}}})
    try:
        raise RuntimeError(f"failed with {SECRET}")
    except RuntimeError:
        log.exception("boom")
    for output in (stream.getvalue(), log_file.read_text()):
        assert SECRET not in output
        entries = [json.loads(line) for line in output.splitlines()]
        assert [e["message"] for e in entries] == ["literal ***", "arg ***", "extra", "boom"]
        assert entries[2]["header"] == "Bearer ***" and entries[2]["nested"] == {"k": "***"}
        assert "RuntimeError: failed with ***" in entries[3]["exception"]


def test_text_tracebacks_are_masked() -> None:
    stream = Terminal()
    configure_logging(0, False, stream=stream)
    try:
        raise RuntimeError(f"failed with {SECRET}")
    except RuntimeError:
        log.exception("boom")
    assert SECRET not in stream.getvalue()
    assert "RuntimeError: failed with ***" in stream.getvalue()


def test_log_file_is_private_timestamped_and_reopened_after_rotation(tmp_path: Path) -> None:
    log_file = tmp_path / "snsync.log"
    configure_logging(0, False, log_file=log_file, stream=Terminal())
    log.warning("first")
    assert log_file.stat().st_mode & 0o777 == 0o600
    [line] = log_file.read_text().splitlines()
    assert re.fullmatch(r"\S+Z WARNING snsync\.engine\.cycle: first", line)
    log_file.rename(tmp_path / "snsync.log.1")  # what logrotate does
    log.warning("second")
    assert log_file.read_text().endswith("second\n")
    assert log_file.stat().st_mode & 0o777 == 0o600


def test_calling_twice_replaces_the_handlers(tmp_path: Path) -> None:
    first, second = io.StringIO(), io.StringIO()
    configure_logging(0, False, log_file=tmp_path / "a.log", stream=first)
    configure_logging(0, False, log_file=tmp_path / "a.log", stream=second)
    log.warning("once")
    assert first.getvalue() == ""
    assert len(lines(second)) == 1
    assert len((tmp_path / "a.log").read_text().splitlines()) == 1
    ours = [h for h in logging.getLogger().handlers if h in logsetup._installed]
    assert len(ours) == 2


def test_an_unwritable_log_file_is_one_line_and_keeps_the_old_setup(tmp_path: Path) -> None:
    stream = Terminal()
    configure_logging(0, False, stream=stream)
    path = tmp_path / "missing" / "snsync.log"
    with pytest.raises(LocalFileError) as caught:
        configure_logging(0, False, log_file=path, stream=io.StringIO())
    assert str(caught.value) == (
        f"--log-file: cannot open '{path}': No such file or directory; create the folder "
        f"'{path.parent}' first"
    )
    assert caught.value.exit_code == 73
    log.warning("still here")
    assert lines(stream) == ["WARNING snsync.engine.cycle: still here"]


def test_log_file_refuses_a_symlink_and_writes_nothing_through_it(tmp_path: Path) -> None:
    victim = tmp_path / "victim"
    victim.write_text("precious\n")
    link = tmp_path / "snsync.log"
    link.symlink_to(victim)
    with pytest.raises(LocalFileError, match="is a symbolic link"):
        configure_logging(0, False, log_file=link, stream=io.StringIO())
    assert victim.read_text() == "precious\n"


def test_log_file_refuses_a_dangling_symlink_too(tmp_path: Path) -> None:
    link = tmp_path / "snsync.log"
    link.symlink_to(tmp_path / "created-by-the-attacker")
    with pytest.raises(LocalFileError):
        configure_logging(0, False, log_file=link, stream=io.StringIO())
    assert not (tmp_path / "created-by-the-attacker").exists()


def test_an_existing_log_file_readable_by_others_is_made_private(tmp_path: Path) -> None:
    path = tmp_path / "snsync.log"
    path.write_text("")
    path.chmod(0o644)
    configure_logging(0, False, log_file=path, stream=io.StringIO())
    assert path.stat().st_mode & 0o777 == 0o600


FORGED = "Eve\n2026-12-01T00:00:00.000Z ERROR snsync: all users deleted\x1b[2J\x1b]0;pwned\x07\x9b"


@pytest.mark.parametrize("terminal", [True, False])
def test_text_log_lines_escape_control_characters(terminal: bool) -> None:
    stream = Terminal() if terminal else io.StringIO()
    configure_logging(0, False, stream=stream)
    log.warning("updated %s", FORGED, extra={"snsync": {"name": FORGED}})
    [line] = lines(stream)
    assert "\x1b" not in line and "\x9b" not in line and "\x07" not in line
    assert "Eve\\n2026-12-01" in line and "\\x1b]0;pwned\\x07" in line


def test_json_log_lines_stay_json_and_escape_c1_controls() -> None:
    stream = io.StringIO()
    configure_logging(0, False, fmt="json", stream=stream)
    log.warning("updated %s", FORGED + "\u2028")
    [line] = lines(stream)
    assert json.loads(line)["message"] == "updated " + FORGED + "\u2028"
    assert all(ord(c) >= 0x20 and not 0x7F <= ord(c) <= 0x9F for c in line)
    assert "\u2028" not in line


def test_console_text_errors_on_stderr_and_in_the_file(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "snsync.log"
    configure_logging(0, False, log_file=path, stream=io.StringIO())
    console = logsetup.Console()
    console.error(f"cannot reach {FORGED} with {SECRET}")
    console.summary("Cycle 1 finished.\n  user Create 1 Success", ok=True, fields={"cycle_id": 1})
    err = capsys.readouterr()
    assert err.err.startswith("error: cannot reach Eve\\n") and SECRET not in err.err
    assert err.out == "Cycle 1 finished.\n  user Create 1 Success\n"
    logged = path.read_text().splitlines()
    assert len(logged) == 3 and "ERROR snsync: cannot reach" in logged[0]
    assert "Cycle 1 finished." in logged[1] and SECRET not in path.read_text()


def test_console_quiet_shows_errors_and_failed_summaries_only(
    capsys: pytest.CaptureFixture[str],
) -> None:
    configure_logging(0, True, stream=io.StringIO())
    console = logsetup.Console(quiet=True)
    console.note("Running a cycle every 2400s")
    console.warning("a literal secret")
    console.summary("Cycle 1 finished.", ok=True, fields={})
    assert capsys.readouterr() == ("", "")
    console.summary("Cycle 2 finished.\n1 object(s) failed:", ok=False, fields={})
    console.error("boom")
    out, err = capsys.readouterr()
    assert out.startswith("Cycle 2 finished.") and err == "error: boom\n"


def test_console_json_puts_every_message_on_stderr_as_json(
    capsys: pytest.CaptureFixture[str],
) -> None:
    stream = io.StringIO()
    configure_logging(0, False, fmt="json", stream=stream)
    console = logsetup.Console(json=True)
    console.note("Running")
    console.error("boom")
    console.summary("Cycle 1 finished.\n  more", ok=True, fields={"cycle_id": 1})
    assert capsys.readouterr() == ("", "")
    records = [json.loads(line) for line in lines(stream)]
    assert [r["level"] for r in records] == ["INFO", "ERROR", "INFO"]
    assert records[2]["message"] == "Cycle 1 finished." and records[2]["cycle_id"] == 1
