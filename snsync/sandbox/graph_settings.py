"""The Graph sandbox settings `snsync sandbox` takes on its command line, and their defaults
(the real service's). Kept free of the sandbox's own imports so the CLI stays quick to load."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import click

# Microsoft: delta links of identity resources live 7 days (Microsoft 365 dev blog, July 2020).
DEFAULT_DELTA_LINK_LIFETIME_S = 7 * 24 * 3600
# Microsoft Learn, throttling-limits: identity and access, a large tenant (more than 500 users).
DEFAULT_RESOURCE_UNITS = 8000


def graph_cli_options(command: Callable[..., Any]) -> Callable[..., Any]:
    """The Graph side's `snsync sandbox` options; the command passes them on as keywords of
    `SandboxOptions` (delta_link_lifetime_s, delta_expired_status, graph_resource_units)."""
    decorators = [
        click.option(
            "--delta-link-lifetime",
            "delta_link_lifetime_s",
            type=click.IntRange(min=1),
            default=DEFAULT_DELTA_LINK_LIFETIME_S,
            show_default=True,
            help="Seconds a Graph delta link lives; older ones answer syncStateNotFound.",
        ),
        click.option(
            "--delta-expired-status",
            type=click.Choice(["400", "410"]),
            default="400",
            show_default=True,
            callback=lambda _ctx, _param, value: int(value),
            help="How Graph answers an expired delta link: 400, or 410 with a Location.",
        ),
        click.option(
            "--graph-resource-units",
            type=click.IntRange(min=0),
            default=DEFAULT_RESOURCE_UNITS,
            show_default=True,
            help="Graph throttling budget per app and tenant per 10 s (0: no throttling).",
        ),
    ]
    for decorator in reversed(decorators):
        command = decorator(command)
    return command
