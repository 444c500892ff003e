"""The click group behind `snsync`: global options accepted before or after the command name."""

from __future__ import annotations

import re
import sys
from collections.abc import Sequence
from typing import Any

import click

# Global options, accepted before or after the command (`snsync run --once -q` as cron lines have).
GLOBAL_FLAGS = re.compile(r"-q|--quiet|-v+|--verbose")
GLOBAL_VALUED = ("--config", "--log-format", "--log-file")


class SnsyncGroup(click.Group):
    """A click group whose global options may also follow the command name."""

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        return super().parse_args(ctx, hoist_global_options(self, ctx, args))

    def main(
        self,
        args: Sequence[str] | None = None,
        prog_name: str | None = None,
        complete_var: str | None = None,
        standalone_mode: bool = True,
        **extra: Any,
    ) -> Any:
        """As click's, but with `--log-format json` a usage error is a JSON line too."""
        argv = list(sys.argv[1:] if args is None else args)
        if not (standalone_mode and _json_logs(argv)):
            return super().main(argv, prog_name, complete_var, standalone_mode, **extra)
        from snsync.logsetup import Console

        try:
            code = super().main(argv, prog_name, complete_var, False, **extra)
        except click.ClickException as exc:
            context = getattr(exc, "ctx", None)
            hint = f" (see: {context.command_path} --help)" if context else ""
            Console(json=True).error(f"usage: {exc.format_message()}{hint}")
            sys.exit(exc.exit_code)
        except click.Abort:
            Console(json=True).error("aborted")
            sys.exit(1)
        sys.exit(code if isinstance(code, int) else 0)


def hoist_global_options(group: click.Group, ctx: click.Context, args: list[str]) -> list[str]:
    """`args` with the global options that follow the command name moved in front of it (after
    any given before it, so that the later value still wins)."""
    start = _command_index(args)
    command = group.get_command(ctx, args[start]) if start < len(args) else None
    if command is None:
        return list(args)
    takes_value = {
        opt
        for param in command.params
        if isinstance(param, click.Option) and not (param.is_flag or param.count)
        for opt in param.opts
    }
    moved: list[str] = []
    rest: list[str] = []
    i = start + 1
    while i < len(args):
        arg = args[i]
        if arg == "--":
            rest += args[i:]
            break
        width = _global_width(arg)
        if width:
            moved += args[i : i + width]
        elif arg in takes_value:
            width = 2
            rest += args[i : i + 2]
        else:
            width = 1
            rest.append(arg)
        i += width
    return [*args[:start], *moved, args[start], *rest]


def _json_logs(args: list[str]) -> bool:
    pairs = zip(args, [*args[1:], ""], strict=True)
    return "--log-format=json" in args or ("--log-format", "json") in pairs


def _command_index(args: list[str]) -> int:
    i = 0
    while i < len(args) and (width := _global_width(args[i])):
        i += width
    return i


def _global_width(arg: str) -> int:
    """How many words a global option takes (0: not a global option)."""
    if GLOBAL_FLAGS.fullmatch(arg) or arg.startswith(tuple(f"{o}=" for o in GLOBAL_VALUED)):
        return 1
    return 2 if arg in GLOBAL_VALUED else 0


class NamedChoice(click.Choice[str]):
    """A case-insensitive choice whose error lists the values as they are spelled."""

    def __init__(self, choices: Sequence[str]) -> None:
        super().__init__(choices, case_sensitive=False)

    def get_metavar(self, param: click.Parameter, ctx: click.Context) -> str:
        return f"[{'|'.join(map(str, self.choices))}]"

    def get_invalid_choice_message(self, value: Any, ctx: click.Context | None) -> str:
        return f"'{value}' is not one of: {', '.join(map(str, self.choices))}"
