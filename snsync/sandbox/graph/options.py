"""The behaviours of the Graph sandbox that a test or benchmark may tune; the defaults are what
the real service does (docs/sandbox-graph.md, "Realism")."""

from __future__ import annotations

from dataclasses import dataclass

from snsync.sandbox.graph_settings import DEFAULT_DELTA_LINK_LIFETIME_S, DEFAULT_RESOURCE_UNITS


@dataclass(frozen=True)
class GraphOptions:
    """Tunable Graph behaviours (frozen; one per GraphApp)."""

    # Every N-th operation answered 429 (an old, deterministic fault; None = off).
    throttle_every: int | None = None
    # Delta links (and delta paging links) older than this answer syncStateNotFound.
    delta_token_ttl_s: int = DEFAULT_DELTA_LINK_LIFETIME_S
    # 400 (what Graph sends for identity resources) or 410 with a Location to restart.
    delta_expired_status: int = 400
    # The page size users/delta and groups/delta choose for themselves ($top is ignored).
    delta_page_size: int = 200
    # Members per group item in groups/delta; a larger group is repeated across items and pages.
    delta_member_chunk: int = 100
    # A list with $expand holds at most this many objects a page, whatever $top asks for.
    expand_page_cap: int = 100
    # Resource units per app and tenant per window (None = no resource-unit throttling).
    resource_units: int | None = DEFAULT_RESOURCE_UNITS
    resource_window_s: float = 10.0

    def __post_init__(self) -> None:
        if self.delta_expired_status not in (400, 410):
            raise ValueError("delta_expired_status must be 400 or 410")
        for name in ("delta_page_size", "delta_member_chunk", "expand_page_cap"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be at least 1")
        if self.resource_units is not None and self.resource_units < 1:
            raise ValueError("resource_units must be at least 1 (or None for no throttling)")
