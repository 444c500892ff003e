"""`snsync sandbox` options of the ServiceNow instance and their defaults, kept apart from the
sandbox itself so that the CLI can declare them without loading it."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

import click

DEFAULT_CONCURRENCY = 8  # REST threads in all: 2 nodes x 4 API_INT threads
DEFAULT_QUEUE = 50  # requests a node queues behind its busy threads
DEFAULT_URL_LIMIT = 8192  # request line + headers: Tomcat's default maxHttpHeaderSize
URL_LIMIT_RANGE = (8192, 23552)  # what instances are seen to run with (8 to 23 KB)

F = TypeVar("F", bound=Callable[..., Any])


_SERVICENOW_OPTIONS = (
    click.option(
        "--servicenow-latency-ms",
        "servicenow_latency_ms",
        type=click.FloatRange(min=0),
        default=0.0,
        show_default=True,
        help="Server time per ServiceNow request, spent inside its session and node thread.",
    ),
    click.option(
        "--serialize-sessions/--no-serialize-sessions",
        "serialize_sessions",
        default=True,
        show_default=True,
        help="Serve the requests of one session cookie one after another, as instances do.",
    ),
    click.option(
        "--servicenow-concurrency",
        "servicenow_max_concurrent",
        type=click.IntRange(min=1),
        default=DEFAULT_CONCURRENCY,
        show_default=True,
        help="REST threads in all, split over 2 nodes (a real node has 4).",
    ),
    click.option(
        "--servicenow-queue",
        "servicenow_queue",
        type=click.IntRange(min=0),
        default=DEFAULT_QUEUE,
        show_default=True,
        help="Requests each node queues when its threads are busy; past it: 429.",
    ),
    click.option(
        "--rate-limit",
        "servicenow_rate_limit",
        type=click.IntRange(min=1),
        default=None,
        help="ServiceNow requests per hour per account (a rate-limit rule); off by default.",
    ),
    click.option(
        "--servicenow-url-limit",
        "servicenow_url_limit",
        type=click.IntRange(*URL_LIMIT_RANGE),
        default=DEFAULT_URL_LIMIT,
        show_default=True,
        help="Bytes of request line and headers an instance takes; past it: HTML 400.",
    ),
    click.option(
        "--profile",
        "profile",
        type=click.Choice(["lan", "cloud"]),
        default=None,
        help="Latency model of both services (docs/sandbox.md); none by default.",
    ),
)


def servicenow_options(command: F) -> F:
    """The `snsync sandbox` options of the ServiceNow instance; the command receives them as
    keyword arguments named like the `SandboxOptions` fields."""
    for option in reversed(_SERVICENOW_OPTIONS):
        command = option(command)
    return command
