"""What every snsync command shares: the console (errors, notes, -q), the one-line error
wrapper, the config of this run, the clients, the state file and the progress callback."""

from __future__ import annotations

import functools
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import click
import requests

from snsync.config import Config, find_config, load_config
from snsync.errors import ConfigError, ExitCode, SnsyncError
from snsync.logsetup import Console
from snsync.preflight import request_error
from snsync.printable import printable

if TYPE_CHECKING:
    from snsync.connections import Connections

F = TypeVar("F", bound=Callable[..., Any])


def _console() -> Console:
    ctx = click.get_current_context(silent=True)
    console = (ctx.find_root().obj or {}).get("console") if ctx else None
    return console if isinstance(console, Console) else Console()


def _done(text: str) -> None:
    """What a command that changes or checks something says when it worked (not with -q)."""
    if not _console().quiet:
        click.echo(printable(text))


def _show_warning(message: Any, category: Any, *_: Any, **__: Any) -> None:
    _console().warning(str(message))


def handled(func: F) -> F:
    """Turn snsync errors into one line on stderr and their exit code; never a traceback."""

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return func(*args, **kwargs)
        except SnsyncError as exc:
            _console().error(str(exc))
            sys.exit(int(exc.exit_code))
        except requests.RequestException as exc:  # TLS, DNS, sockets below the HTTP layer
            error = request_error(exc, _loaded_config())
            _console().error(str(error))
            sys.exit(int(error.exit_code))
        except KeyboardInterrupt:
            _console().error("interrupted")
            sys.exit(130)
        except (click.exceptions.Exit, click.ClickException, click.exceptions.Abort):
            raise
        except Exception as exc:  # the last resort, also under CliRunner
            sys.exit(int(internal_error(exc)))

    return wrapper  # type: ignore[return-value]


def internal_error(exc: BaseException) -> ExitCode:
    """Print one line for an unexpected exception (and the traceback with -vv); exit code 70."""
    import logging
    import traceback

    from snsync.redact import redact

    if logging.getLogger("snsync").isEnabledFor(logging.DEBUG):
        click.echo(redact("".join(traceback.format_exception(exc))), err=True)
    text = str(exc).splitlines()[0] if str(exc) else ""
    click.echo(
        printable(
            redact(f"internal error: {type(exc).__name__}: {text}; run with -vv for the traceback")
        ),
        err=True,
    )
    return ExitCode.INTERNAL


def _config(ctx: click.Context) -> Config:
    path = find_config(ctx.obj.get("config_path"))
    config = load_config(path)
    ctx.obj["config"] = config
    return config


def _loaded_config() -> Config | None:
    ctx = click.get_current_context(silent=True)
    config = (ctx.find_root().obj or {}).get("config") if ctx else None
    return config if isinstance(config, Config) else None


output_option = click.option(
    "--output",
    "output",
    type=click.Choice(["text", "json"]),
    default="text",
    show_default=True,
    help="Text for people, JSON for scripts.",
)


def _check_services(config: Config, conns: Connections, state: Any, *, remember: bool) -> None:
    """On the first read after a config change: excluded roles, reference tables and mapped
    fields exist in the services, else exit 2 naming the key."""
    from snsync.checks import checked_mark, service_problems

    mark = checked_mark(config)
    if state.service_check_mark() == mark:
        return
    problems, complete = service_problems(config, conns)
    if problems:
        more = len(problems) - 1
        also = f" (and {more} more: snsync test-connection lists them)" if more else ""
        raise ConfigError(problems[0] + also)
    if complete and remember:
        state.save_service_check_mark(mark)


def _connect(config: Config, *, read_only: bool) -> Connections:
    """The clients a command needs; with -vv every request they make is logged."""
    from snsync.connections import connect
    from snsync.preflight import check_ca_files
    from snsync.progress import trace_requests

    check_ca_files(config)
    conns = connect(config, read_only=read_only)
    trace_requests(conns.graph_http.session, "graph")
    trace_requests(conns.servicenow_http.session, "servicenow")
    return conns


@contextmanager
def _state(config: Config, *, lock: bool) -> Iterator[Any]:
    from snsync.preflight import local_file_error, prepare_state_folder
    from snsync.state import RunLock, State

    prepare_state_folder(config.state.path)
    try:
        run_lock = RunLock(config.state.path).acquire() if lock else None
    except OSError as exc:
        raise local_file_error(exc, "state.path (its lock file)") from None
    try:
        state = State(config.state.path)
    except BaseException:
        if run_lock:
            run_lock.release()
        raise
    try:
        yield state
    finally:
        state.close()
        if run_lock:
            run_lock.release()


@contextmanager
def _progress(
    output: str, state_path: Path | None = None
) -> Iterator[Callable[[str, int], None] | None]:
    """Progress while a cycle reads and applies: a terminal line for text output (not with
    -q or JSON logs), the -v phase lines, and (for a cycle that holds the lock) the activity
    file beside `state_path` that `snsync status` shows."""
    from snsync.progress import cycle_progress

    console = _console()
    terminal = output == "text" and not (console.quiet or console.json)
    with cycle_progress(terminal, state_path) as progress:
        yield progress
