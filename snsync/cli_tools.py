"""The commands that read and try without running a cycle: `logs` and `expression`."""

from __future__ import annotations

import time
from typing import Any

import click

from snsync.cli_support import _config, _connect, _state, handled, output_option
from snsync.clickgroup import NamedChoice
from snsync.config import parse_duration
from snsync.model import Action, Status
from snsync.printable import printable_lines


@click.command()
@click.option("--user", help="UPN, display name or object id.")
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
@click.option("--since", help="Only entries newer than this, e.g. 2h, 30m, 1d.")
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
    limit: int,
    output: str,
) -> None:
    """Read the provisioning log: one row per object per action."""
    from snsync.render import dumps, log_csv, log_json, log_text
    from snsync.state import LogFilter

    config = _config(ctx)
    try:
        since_ts = time.time() - parse_duration(since) if since else None
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="--since") from None
    query = LogFilter(user, action, status, cycle, since_ts, limit)
    with _state(config, lock=False) as state:
        entries = state.log_entries(query)
    if output == "json":
        click.echo(dumps(log_json(entries)))
    elif output == "csv":
        click.echo(log_csv(entries), nl=False)
    else:
        click.echo(log_text(entries))


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
