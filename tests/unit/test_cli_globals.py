"""Global options are accepted before or after the command name."""

from __future__ import annotations

import click
import pytest

from snsync.cli import cli
from snsync.clickgroup import hoist_global_options


def hoisted(*args: str) -> list[str]:
    with click.Context(cli) as ctx:
        return hoist_global_options(cli, ctx, list(args))


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (
            ["--config", "c.yaml", "run", "--once", "-q"],
            ["--config", "c.yaml", "-q", "run", "--once"],
        ),
        (
            ["run", "--once", "--config", "c.yaml", "-vv"],
            ["--config", "c.yaml", "-vv", "run", "--once"],
        ),
        (
            ["logs", "--log-format=json", "--since", "2h"],
            ["--log-format=json", "logs", "--since", "2h"],
        ),
        (["run", "--log-file", "x.log", "--once"], ["--log-file", "x.log", "run", "--once"]),
        # A value of the command's own option is left alone, even when it looks like a global one.
        (["logs", "--user", "-q"], ["logs", "--user", "-q"]),
        # Before and after: the later one still comes last (and wins).
        (
            ["--config", "a", "status", "--config", "b"],
            ["--config", "a", "--config", "b", "status"],
        ),
        (["status", "--", "-q"], ["status", "--", "-q"]),
        (["nosuchcommand", "-q"], ["nosuchcommand", "-q"]),
        (["-q"], ["-q"]),
    ],
)
def test_global_options_move_before_the_command(args: list[str], expected: list[str]) -> None:
    assert hoisted(*args) == expected
