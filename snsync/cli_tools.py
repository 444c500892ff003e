"""The commands that read and try without running a cycle: `logs` and `expression`."""

from __future__ import annotations

import datetime as dt
import time
from typing import Any

import click

from snsync.cli_support import _config, _connect, _state, handled, output_option
from snsync.clickgroup import NamedChoice
from snsync.config import parse_duration
from snsync.model import Action, Status
from snsync.printable import printable_lines


@click.command()
@click.option("--user", help="Part of a display name, UPN or mail, or an object id.")
@click.option(
    "--action",
    type=NamedChoice([a.value for a in Action]),
    help="Only this action.",
)
@click.option(
    "--status",
    type=NamedChoice([s.value for s in Status]),
    help="Only this status.",
)
@click.option("--cycle", type=int, help="Cycle number.")
@click.option("--since", help="Only entries newer than this: a duration (2h) or a UTC time.")
@click.option("--until", help="Only entries older than this: a duration (2h) or a UTC time.")
@click.option("--limit", type=int, default=200, show_default=True)
@click.option(
    "--output",
    "output",
    type=click.Choice(["text", "json", "csv"]),
    default="text",
    show_default=True,
    help="Text for people, JSON for scripts, CSV for a spreadsheet.",
)
@click.pass_context
@handled
def logs(
    ctx: click.Context,
    user: str | None,
    action: str | None,
    status: str | None,
    cycle: int | None,
    since: str | None,
    until: str | None,
    limit: int,
    output: str,
) -> None:
    """Read the provisioning log: one row per object per action."""
    from snsync.render import dumps, log_csv, log_json, log_text, reference_names
    from snsync.state import LogFilter

    config = _config(ctx)
    query = LogFilter(
        user, action, status, cycle, _when(since, "--since"), limit, _when(until, "--until")
    )
    with _state(config, lock=False) as state:
        entries = state.log_entries(query)
        names = reference_names(state.cached_picture().target) if state.has_cached_picture() else {}
    if output == "json":
        click.echo(dumps(log_json(entries)))
    elif output == "csv":
        click.echo(log_csv(entries, names), nl=False)
    else:
        click.echo(log_text(entries, names))


def _when(text: str | None, option: str) -> float | None:
    """A duration back from now (`2h`, `1d`) or a UTC time (`2026-12-01 10:00`)."""
    if not text:
        return None
    try:
        return time.time() - parse_duration(text)
    except ValueError:
        pass
    try:
        moment = dt.datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
    except ValueError:
        raise click.BadParameter(
            f"'{text}' is neither a duration (30m, 2h, 1d) nor a time (2026-12-01 10:00)",
            param_hint=option,
        ) from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=dt.UTC)
    return moment.timestamp()


@click.command()
@click.argument("expression_text", metavar="EXPR")
@click.option(
    "--user",
    "user_ref",
    metavar="UPN|ID",
    help="Evaluate against this directory user, read through Graph as a cycle reads it.",
)
@click.option(
    "--set",
    "assignments",
    multiple=True,
    metavar="NAME=VALUE",
    help="An attribute's value (true, false, null and JSON lists as such, else text); "
    "with --user it replaces the directory's. Repeatable.",
)
@output_option
@click.pass_context
@handled
def expression(
    ctx: click.Context,
    expression_text: str,
    user_ref: str | None,
    assignments: tuple[str, ...],
    output: str,
) -> None:
    """Evaluate one mapping expression EXPR against a directory user or given values (exit 2
    with the column on a syntax error); changes nothing."""
    from snsync import expression_builder as builder
    from snsync.mapping.expressions import parse, referenced_attributes
    from snsync.render import dumps

    text = builder.canonical(expression_text)
    values = builder.given_values(assignments)
    attributes: dict[str, Any] = {}
    who = None
    if user_ref:
        config = _config(ctx)
        conns = _connect(config, read_only=True)
        try:
            names = set(referenced_attributes(parse(text)))
            attributes, who = builder.directory_user(config, conns, user_ref, names)
        finally:
            conns.close()
    result = builder.evaluate_text(text, {**attributes, **values}, who)
    if output == "json":
        click.echo(dumps(builder.evaluation_json(result)))
    else:
        click.echo(printable_lines(builder.evaluation_text(result)))
