"""The command line: parse, call, render, exit with a documented code. No logic lives here."""

from __future__ import annotations

import logging
import random
import signal
import sys
import time
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import click
import requests

from snsync import __version__
from snsync.cli_support import (
    _check_services,
    _config,
    _connect,
    _console,
    _done,
    _progress,
    _show_warning,
    _state,
    handled,
    internal_error,
    output_option,
)
from snsync.cli_tools import expression, logs
from snsync.clickgroup import SnsyncGroup
from snsync.config import Config, LiteralSecretWarning
from snsync.errors import CycleStopped, ExitCode, SnsyncError
from snsync.preflight import request_error
from snsync.printable import printable
from snsync.sandbox.graph_settings import graph_cli_options
from snsync.sandbox.options import servicenow_options
from snsync.stop import STOP

log = logging.getLogger("snsync")


def main() -> None:
    """Entry point of the `snsync` console script. Anything unexpected ends as one line and
    exit 70 (-vv shows the traceback), never a bare traceback."""
    try:
        cli(prog_name="snsync")
    except Exception as exc:  # the last resort: a bug or an exception outside the vocabulary
        sys.exit(int(internal_error(exc)))


@click.group(
    cls=SnsyncGroup,
    context_settings={"help_option_names": ["-h", "--help"]},
    epilog="Global options may come before or after the command: snsync run --once -q.",
)
@click.version_option(__version__, prog_name="snsync")
@click.option(
    "--config",
    "config_path",
    metavar="PATH",
    help="Config file (default: $SNSYNC_CONFIG, ./config.yaml, ~/.config/snsync/config.yaml).",
)
@click.option(
    "-v",
    "--verbose",
    count=True,
    help="One log line per phase of a cycle; -vv also one per request and per write.",
)
@click.option(
    "-q",
    "--quiet",
    is_flag=True,
    help="Nothing on stdout or stderr unless something is wrong (an error, a failed cycle).",
)
@click.option(
    "--log-format",
    type=click.Choice(["text", "json"]),
    default="text",
    show_default=True,
    help="Log lines for people (text) or for log collectors (json: every stderr line one "
    "JSON object, errors and the cycle summary included).",
)
@click.option(
    "--log-file",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Also write the log to this file (mode 600, never through a symbolic link).",
)
@click.pass_context
def cli(
    ctx: click.Context,
    config_path: str | None,
    verbose: int,
    quiet: bool,
    log_format: str,
    log_file: Path | None,
) -> None:
    """Keep ServiceNow users and groups in step with the Azure AD (Entra ID) app assignment."""
    from snsync.logsetup import Console, configure_logging

    console = Console(quiet=quiet, json=log_format == "json")
    ctx.obj = {"config_path": config_path, "console": console}
    try:
        configure_logging(verbose, quiet, "json" if log_format == "json" else "text", log_file)
    except SnsyncError as exc:
        console.error(str(exc))
        sys.exit(int(exc.exit_code))
    warnings.simplefilter("default", LiteralSecretWarning)
    warnings.showwarning = _show_warning


@cli.command()
@click.pass_context
@handled
def validate(ctx: click.Context) -> None:
    """Check the config (keys, types, secrets, expressions, directory attributes, reference
    tables) without connecting anywhere."""
    config = _config(ctx)
    users, groups = len(config.mappings.users), len(config.mappings.groups)
    _done(f"{config.source_path}: valid ({users} user mappings, {groups} group mappings)")


@cli.command("import-schema")
@click.argument("schema", type=click.Path(dir_okay=False, path_type=Path))
@click.option(
    "-o",
    "--output-file",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Write the config here (mode 600) instead of to stdout.",
)
@click.option(
    "--base",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Keep the connection settings (graph, servicenow, state, ...) of this config.",
)
@handled
def import_schema(schema: Path, output_file: Path | None, base: Path | None) -> None:
    """Write snsync's config from an exported Entra synchronization schema (JSON).

    Each construct the config cannot reproduce is one 'not carried' line with its path in the
    schema, and the exit code is 5; the config is written either way. Exit 0: everything was
    carried over. See docs/migration.md.
    """
    from snsync.migrate.command import import_schema as run_import
    from snsync.migrate.command import write_config

    result = run_import(schema, base)
    if output_file is None:
        click.echo(result.text, nl=False)
    else:
        write_config(output_file, result.text)
    console = _console()
    for problem in result.imported.not_carried:
        console.warning(f"not carried: {problem}")
    left = len(result.imported.not_carried)
    where = output_file or "stdout"
    if not left:
        console.note(f"wrote {where}; everything in {schema.name} was carried over")
        return
    console.error(
        f"wrote {where}, but {left} construct(s) of {schema.name} were not carried over "
        "(the 'not carried' lines, also '# NOT CARRIED' comments at the top of the config)"
    )
    sys.exit(int(ExitCode.NOT_CARRIED))


@cli.command("test-connection")
@output_option
@click.pass_context
@handled
def test_connection(ctx: click.Context, output: str) -> None:
    """Check Graph and ServiceNow access step by step, changing nothing."""
    from snsync.checks import run_checks
    from snsync.render import dumps

    config = _config(ctx)
    conns = _connect(config, read_only=True)
    results = []
    for check in run_checks(config, conns):
        results.append(check)
        if output == "text":
            mark = "ok  " if check.ok else "skip" if check.skipped else "FAIL"
            click.echo(printable(f"[{mark}] {check.name}: {check.detail}"))
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
    from snsync.engine.cycle import read_and_plan
    from snsync.render import dumps, plan_json, plan_text

    config = _config(ctx)
    conns = _connect(config, read_only=True)
    with _state(config, lock=False) as state, _progress(output) as progress:
        _check_services(config, conns, state, remember=False)
        planned = read_and_plan(config, conns, state, progress)
    click.echo(dumps(plan_json(planned)) if output == "json" else plan_text(planned))


metrics_option = click.option(
    "--metrics-file",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Write Prometheus metrics here after each cycle (node_exporter textfile, atomic).",
)


@dataclass(frozen=True)
class CycleOptions:
    """How `run` and `approve` run a cycle."""

    dry_run: bool = False
    allow_disables: bool = False
    full: bool = False
    metrics_file: Path | None = None


@cli.command()
@click.option("--once", is_flag=True, help="Run one cycle and exit (for cron).")
@click.option("--dry-run", is_flag=True, help="Plan and report as a run would; write nothing.")
@click.option(
    "--allow-disables",
    is_flag=True,
    help="Release disables held by safety.max_disables, for this run only.",
)
@click.option(
    "--full", is_flag=True, help="Read everything, not only what changed since the last cycle."
)
@metrics_option
@output_option
@click.pass_context
@handled
def run(
    ctx: click.Context,
    once: bool,
    dry_run: bool,
    allow_disables: bool,
    full: bool,
    metrics_file: Path | None,
    output: str,
) -> None:
    """Run sync cycles: one with --once, else every schedule.interval until stopped."""
    config = _config(ctx)
    _stop_on_signals()
    options = CycleOptions(dry_run, allow_disables, full, metrics_file)
    if once:
        sys.exit(int(_one_cycle(config, options, output)))
    interval = config.schedule.interval
    console = _console()
    console.note(f"Running a cycle every {interval}s; Ctrl-C or SIGTERM to stop.")
    while not STOP:
        try:
            _one_cycle(config, options, output)
        except SnsyncError as exc:  # one bad cycle must not end the loop; the next may work
            console.error(str(exc))
        options = CycleOptions(dry_run, metrics_file=metrics_file)  # flags hold for one cycle
        _sleep(interval + random.uniform(0, config.schedule.jitter))
    console.note(f"stopped ({STOP.reason}).")


@cli.command()
@click.option(
    "--adoption",
    "adoptions",
    multiple=True,
    metavar="OBJECT",
    help="Approve the held adoption of OBJECT (directory id, name or UPN, or the record's "
    "sys_id) instead of releasing held disables; repeatable.",
)
@metrics_option
@output_option
@click.pass_context
@handled
def approve(
    ctx: click.Context, adoptions: tuple[str, ...], metrics_file: Path | None, output: str
) -> None:
    """Run one cycle now that releases the disables held by safety.max_disables, or (with
    --adoption) the held adoptions named."""
    config = _config(ctx)
    _stop_on_signals()
    if adoptions:
        from snsync.engine.approvals import approve_adoptions

        with _state(config, lock=True) as state:
            for entry in approve_adoptions(state, adoptions):
                _console().note(
                    f"approved: {entry.object_type} {entry.display_name} ({entry.directory_id}) "
                    f"may adopt ServiceNow record {entry.sys_id}"
                )
    options = CycleOptions(allow_disables=not adoptions, metrics_file=metrics_file)
    sys.exit(int(_one_cycle(config, options, output)))


def _one_cycle(config: Config, options: CycleOptions, output: str) -> ExitCode:
    from snsync.engine.supervisor import supervised_cycle
    from snsync.progress import result_logger
    from snsync.render import dumps, report_json, report_text, summary_fields

    conns = _connect(config, read_only=options.dry_run)
    try:
        running = None if options.dry_run else config.state.path
        with (
            STOP.cycle(config.schedule.max_cycle_time) as stop,
            _state(config, lock=not options.dry_run) as state,
            _progress(output, running) as progress,
        ):
            try:
                _check_services(config, conns, state, remember=not options.dry_run)
                report = supervised_cycle(
                    config,
                    conns,
                    state,
                    dry_run=options.dry_run,
                    allow_disables=options.allow_disables,
                    force_full=options.full,
                    progress=progress,
                    on_result=result_logger(progress),
                    metrics_file=options.metrics_file,
                )
            except SnsyncError as exc:
                if stop.exit_code() is ExitCode.OK:
                    raise
                # A read refused because the cycle was stopped (a spent quota, max_cycle_time):
                # the stop is the news, with its own exit code, not "cannot connect".
                raise CycleStopped(
                    f"{stop.reason} (it stopped this cycle while reading: {exc})",
                    code=stop.exit_code(),
                ) from None
            stopped, why = stop.exit_code(), stop.reason  # max_cycle_time passed, a quota spent
            if not options.dry_run:
                _prune_log(config, state)
    except requests.RequestException as exc:  # a cycle of the loop must end in one line too
        raise request_error(exc, config) from None
    finally:
        conns.close()
    if output == "json":
        click.echo(dumps(report_json(report)))
    else:
        ok = report.exit_code is ExitCode.OK and stopped is ExitCode.OK
        _console().summary(report_text(report), ok=ok, fields=summary_fields(report))
    if stopped is not ExitCode.OK:
        _console().warning(why or "the cycle stopped early")
    return stopped if stopped is not ExitCode.OK else report.exit_code


def _prune_log(config: Config, state: Any) -> None:
    """Retention: provisioning-log rows older than state.keep_log go after each cycle."""
    pruned = state.prune_log(time.time() - config.state.keep_log)
    if pruned:
        log.info("pruned %d provisioning-log rows older than state.keep_log", pruned)


def _stop_on_signals() -> None:
    def stop(signum: int, _frame: Any) -> None:
        STOP.set(signal.Signals(signum).name)

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)


def _sleep(seconds: float) -> None:
    deadline = time.monotonic() + seconds
    while not STOP and time.monotonic() < deadline:
        time.sleep(min(1.0, deadline - time.monotonic()))


@cli.command()
@click.option(
    "--quarantine",
    "clear_quarantine",
    is_flag=True,
    help="Lift the quarantine (after fixing its cause).",
)
@click.option("--retries", is_flag=True, help="Forget the back-off of failing objects.")
@click.option(
    "--links",
    is_flag=True,
    help="Also forget every link (a full reset): the next cycle re-adopts by matching.",
)
@click.option("--yes", is_flag=True, help="Do not ask for confirmation.")
@click.pass_context
@handled
def reset(
    ctx: click.Context, clear_quarantine: bool, retries: bool, links: bool, yes: bool
) -> None:
    """Restart provisioning: clear watermarks, held disables and (with flags) more."""
    config = _config(ctx)
    if links and not yes:
        question = (
            "Forget every link between directory objects and ServiceNow records? The next cycle "
            "re-links by the source stamp and matching"
        )
        if not click.confirm(question):
            click.echo("Nothing changed.")
            return
    with _state(config, lock=True) as state:
        state.clear_watermarks()
        state.save_held_disables(())
        done = ["watermarks cleared (the next cycle is full)", "held disables cleared"]
        if clear_quarantine:
            state.save_quarantine(None)
            state.save_auth_failures(0)
            done.append("quarantine lifted")
        if retries:
            done.append(f"back-off of {state.clear_escrow()} failing objects cleared")
        if links:
            for kind, count in state.link_counts().items():
                state.drop_links(kind, state.links(kind))
                done.append(f"{count} {kind} links forgotten")
    _done("; ".join(done) + ".")


@cli.command()
@output_option
@click.pass_context
@handled
def status(ctx: click.Context, output: str) -> None:
    """Show recent cycles, quarantine, held disables, retrying objects and links."""
    from snsync.render import dumps, status_json, status_text

    config = _config(ctx)
    with _state(config, lock=False) as state:
        data = status_json(state, config)
    click.echo(dumps(data) if output == "json" else status_text(data))


@cli.command()
@click.argument("target", metavar="USER|GROUP")
@click.option(
    "--group",
    "as_group",
    is_flag=True,
    help="Look the argument up as a group only (display name or object id).",
)
@click.option(
    "--member",
    "members",
    multiple=True,
    metavar="UPN|ID",
    help="With a group: provision these members (repeatable, at most "
    "provision.max_group_members) instead of the first ones.",
)
@click.option("--dry-run", is_flag=True, help="Show every step; write nothing.")
@click.pass_context
@handled
def provision(
    ctx: click.Context, target: str, as_group: bool, members: tuple[str, ...], dry_run: bool
) -> None:
    """Provision one user or group now, step by step.

    A USER is a userPrincipalName or object id; a GROUP a display name (exactly one group of
    that name) or object id. A group brings up to provision.max_group_members of its members,
    as users, and their membership rows; the next cycle syncs the rest.
    """
    from snsync.engine.ondemand_group import provision_object

    config = _config(ctx)
    conns = _connect(config, read_only=dry_run)

    def say(step: str, detail: str) -> None:
        click.echo(printable(f"{step:>9}: {detail}"))

    with _state(config, lock=not dry_run) as state:
        outcome = provision_object(
            config,
            conns,
            state,
            target,
            group=as_group,
            members=members,
            dry_run=dry_run,
            say=say,
        )
    conns.close()
    sys.exit(int(outcome.report.exit_code))


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
@graph_cli_options
@servicenow_options
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
    **extra: Any,
) -> None:
    """Serve a local HTTPS Graph + token service + ServiceNow for tests and demos."""
    from snsync.preflight import check_sandbox_options, sandbox_start_error
    from snsync.sandbox.runner import SandboxOptions, start_sandbox

    check_sandbox_options(host, directory)
    options = SandboxOptions(
        tenant,
        instance,
        directory,
        host,
        graph_port,
        servicenow_port,
        latency_ms,
        fault_rate,
        seed,
        **extra,
    )
    try:
        running = start_sandbox(options)
    except OSError as exc:
        ports = {"--graph-port": graph_port, "--servicenow-port": servicenow_port}
        raise sandbox_start_error(exc, host, ports) from None
    info = running.info
    click.echo(f"Graph and token service: {info['graph_url']} (tenant {info['tenant_id']})")
    click.echo(f"ServiceNow:              {info['servicenow_url']}")
    if running.directory:
        click.echo(f"CA, config and details:  {running.directory}")
    _console().note("Serving until interrupted (Ctrl-C).")
    try:
        running.wait()
    finally:
        running.stop()


cli.add_command(logs)
cli.add_command(expression)
