"""The command line: parse, call, render, exit with a documented code. No logic lives here."""

from __future__ import annotations

import functools
import logging
import sys
import time
import warnings
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TypeVar

import click

from snsync import __version__
from snsync.config import Config, LiteralSecretWarning, find_config, load_config, parse_duration
from snsync.errors import ExitCode, SnsyncError
from snsync.redact import RedactingFilter, redact

F = TypeVar("F", bound=Callable[..., Any])
log = logging.getLogger("snsync")


def main() -> None:
    """Entry point of the `snsync` console script."""
    cli(prog_name="snsync")


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="snsync")
@click.option(
    "--config",
    "config_path",
    metavar="PATH",
    help="Config file (default: $SNSYNC_CONFIG, ./config.yaml, ~/.config/snsync/config.yaml).",
)
@click.option("-v", "--verbose", count=True, help="More log output (-vv for debug).")
@click.option("-q", "--quiet", is_flag=True, help="Only errors.")
@click.pass_context
def cli(ctx: click.Context, config_path: str | None, verbose: int, quiet: bool) -> None:
    """Keep ServiceNow users in step with the Azure AD (Entra ID) app assignment."""
    ctx.obj = {"config_path": config_path}
    level = (
        logging.ERROR if quiet else (logging.WARNING, logging.INFO, logging.DEBUG)[min(verbose, 2)]
    )
    handler = logging.StreamHandler(sys.stderr)
    handler.addFilter(RedactingFilter())
    handler.setFormatter(logging.Formatter("%(levelname)s %(name)s: %(message)s"))
    logging.basicConfig(level=level, handlers=[handler], force=True)
    logging.captureWarnings(False)
    warnings.simplefilter("default", LiteralSecretWarning)
    warnings.showwarning = _show_warning


def _show_warning(message: Any, category: Any, *_: Any, **__: Any) -> None:
    click.echo(f"warning: {redact(str(message))}", err=True)


def handled(func: F) -> F:
    """Turn snsync errors into one line on stderr and their exit code; never a traceback."""

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return func(*args, **kwargs)
        except SnsyncError as exc:
            click.echo(f"error: {redact(str(exc))}", err=True)
            sys.exit(int(exc.exit_code))
        except KeyboardInterrupt:
            click.echo("interrupted", err=True)
            sys.exit(130)

    return wrapper  # type: ignore[return-value]


def _config(ctx: click.Context) -> Config:
    path = find_config(ctx.obj.get("config_path"))
    return load_config(path)


output_option = click.option(
    "--output",
    "output",
    type=click.Choice(["text", "json"]),
    default="text",
    show_default=True,
    help="Text for people, JSON for scripts.",
)


@cli.command()
@click.pass_context
@handled
def validate(ctx: click.Context) -> None:
    """Check the config file (keys, types, secrets, expressions) without connecting anywhere."""
    config = _config(ctx)
    users, groups = len(config.mappings.users), len(config.mappings.groups)
    click.echo(f"{config.source_path}: valid ({users} user mappings, {groups} group mappings)")


@cli.command("test-connection")
@output_option
@click.pass_context
@handled
def test_connection(ctx: click.Context, output: str) -> None:
    """Check Graph and ServiceNow access step by step, changing nothing."""
    from snsync.checks import run_checks
    from snsync.connections import connect
    from snsync.render import dumps

    config = _config(ctx)
    conns = connect(config, read_only=True)
    results = []
    for check in run_checks(config, conns):
        results.append(check)
        if output == "text":
            mark = "ok  " if check.ok else "FAIL"
            click.echo(f"[{mark}] {check.name}: {check.detail}")
    conns.close()
    failed = [c for c in results if not c.ok]
    if output == "json":
        click.echo(dumps({"ok": not failed, "checks": [c.__dict__ for c in results]}))
    elif not failed:
        click.echo("All checks passed.")
    sys.exit(int(ExitCode.CONNECTION if failed else ExitCode.OK))


@cli.command()
@output_option
@click.pass_context
@handled
def plan(ctx: click.Context, output: str) -> None:
    """Show what a cycle would change, object by object; sends no write request."""
    from snsync.connections import connect
    from snsync.engine.cycle import read_and_plan
    from snsync.render import dumps, plan_json, plan_text

    config = _config(ctx)
    conns = connect(config, read_only=True)
    with _state(config, lock=False) as state, _progress(output == "text") as progress:
        planned = read_and_plan(config, conns, state, progress)
    click.echo(dumps(plan_json(planned)) if output == "json" else plan_text(planned))


@cli.command()
@click.option("--once", is_flag=True, help="Run one cycle and exit (for cron).")
@click.option("--dry-run", is_flag=True, help="Plan and report as a run would; write nothing.")
@output_option
@click.pass_context
@handled
def run(ctx: click.Context, once: bool, dry_run: bool, output: str) -> None:
    """Run sync cycles: one with --once, else every schedule.interval until stopped."""
    config = _config(ctx)
    if once:
        sys.exit(int(_one_cycle(config, dry_run, output)))
    interval = config.schedule.interval
    click.echo(f"Running a cycle every {interval}s; Ctrl-C or SIGTERM to stop.", err=True)
    while True:
        _one_cycle(config, dry_run, output)
        time.sleep(interval)


def _one_cycle(config: Config, dry_run: bool, output: str) -> ExitCode:
    from snsync.connections import connect
    from snsync.engine.cycle import run_cycle
    from snsync.render import dumps, report_json, report_text

    conns = connect(config, read_only=dry_run)
    with _state(config, lock=not dry_run) as state, _progress(output == "text") as progress:
        report = run_cycle(config, conns, state, dry_run=dry_run, progress=progress)
    conns.close()
    click.echo(dumps(report_json(report)) if output == "json" else report_text(report))
    return report.exit_code


@cli.command()
@click.argument("user")
@click.option("--dry-run", is_flag=True, help="Show every step; write nothing.")
@click.pass_context
@handled
def provision(ctx: click.Context, user: str, dry_run: bool) -> None:
    """Provision one USER (userPrincipalName or object id) now, step by step."""
    from snsync.connections import connect
    from snsync.engine.ondemand import provision_user

    config = _config(ctx)
    conns = connect(config, read_only=dry_run)

    def say(step: str, detail: str) -> None:
        click.echo(f"{step:>9}: {detail}")

    with _state(config, lock=not dry_run) as state:
        outcome = provision_user(config, conns, state, user, dry_run=dry_run, say=say)
    conns.close()
    sys.exit(int(outcome.report.exit_code))


@cli.command()
@click.option("--user", help="UPN, display name or object id.")
@click.option("--action", help="Create, Update, Disable, Enable or Skip.")
@click.option("--status", help="Success, Failure, Skipped or Warning.")
@click.option("--cycle", type=int, help="Cycle number.")
@click.option("--since", help="Only entries newer than this, e.g. 2h, 30m, 1d.")
@click.option("--limit", type=int, default=200, show_default=True)
@output_option
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
    from snsync.render import dumps, log_json, log_text
    from snsync.state import LogFilter

    config = _config(ctx)
    try:
        since_ts = time.time() - parse_duration(since) if since else None
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="--since") from None
    query = LogFilter(user, action, status, cycle, since_ts, limit)
    with _state(config, lock=False) as state:
        entries = state.log_entries(query)
    click.echo(dumps(log_json(entries)) if output == "json" else log_text(entries))


@cli.command()
@click.option(
    "--tenant",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Tenant fixture JSON (default: the built-in demo tenant).",
)
@click.option(
    "--instance",
    type=click.Path(dir_okay=False, path_type=Path),
    help="ServiceNow instance fixture JSON (default: the built-in demo instance).",
)
@click.option(
    "--dir",
    "directory",
    type=click.Path(file_okay=False, path_type=Path),
    help="Write ca.pem, config.yaml and sandbox.json here.",
)
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--graph-port", type=int, default=0, show_default=True)
@click.option("--servicenow-port", type=int, default=0, show_default=True)
@click.option("--latency-ms", type=float, default=0.0, show_default=True)
@click.option("--fault-rate", type=click.FloatRange(0, 1), default=0.0, show_default=True)
@click.option("--seed", type=int, default=0, show_default=True)
@handled
def sandbox(
    tenant: Path | None,
    instance: Path | None,
    directory: Path | None,
    host: str,
    graph_port: int,
    servicenow_port: int,
    latency_ms: float,
    fault_rate: float,
    seed: int,
) -> None:
    """Serve a local HTTPS Graph + token service + ServiceNow for tests and demos."""
    from snsync.sandbox.runner import SandboxOptions, start_sandbox

    options = SandboxOptions(
        tenant, instance, directory, host, graph_port, servicenow_port, latency_ms, fault_rate, seed
    )
    running = start_sandbox(options)
    info = running.info
    click.echo(f"Graph and token service: {info['graph_url']} (tenant {info['tenant_id']})")
    click.echo(f"ServiceNow:              {info['servicenow_url']}")
    if running.directory:
        click.echo(f"CA, config and details:  {running.directory}")
    click.echo("Serving until interrupted (Ctrl-C).", err=True)
    try:
        running.wait()
    finally:
        running.stop()


@contextmanager
def _state(config: Config, *, lock: bool) -> Iterator[Any]:
    from snsync.state import RunLock, State

    run_lock = RunLock(config.state.path).acquire() if lock else None
    state = State(config.state.path)
    try:
        yield state
    finally:
        state.close()
        if run_lock:
            run_lock.release()


@contextmanager
def _progress(enabled: bool) -> Iterator[Callable[[str, int], None] | None]:
    """A one-line progress counter on a terminal; nothing when output is piped or in cron."""
    if not (enabled and sys.stderr.isatty()):
        yield None
        return
    seen: dict[str, int] = {}

    def progress(what: str, count: int) -> None:
        seen[what] = seen.get(what, 0) + count
        text = ", ".join(f"{k}: {v}" for k, v in seen.items())
        click.echo(f"\rreading {text}", err=True, nl=False)

    try:
        yield progress
    finally:
        if seen:
            click.echo("", err=True)
