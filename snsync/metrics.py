"""Write each cycle's outcome as a Prometheus textfile for node_exporter's textfile collector."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from prometheus_client import CollectorRegistry, Gauge, write_to_textfile

from snsync.errors import ConfigError

# node_exporter usually runs as another user: the file holds no secrets, so let it be read.
_FILE_MODE = 0o644


@dataclass(frozen=True)
class CycleMetrics:
    """What one finished cycle did, as the metrics file reports it."""

    duration_s: float
    full: bool
    counts: Mapping[str, Mapping[str, int]]  # "object_type Action" (or "Action") -> status -> n
    failures: int
    held_disables: int
    success: bool
    finished_at: float
    quarantined: bool = False


def write_metrics(path: Path, metrics: CycleMetrics, last_success_at: float | None) -> None:
    """Replace the textfile at `path` atomically (temp file + rename) with this cycle's metrics."""
    registry = CollectorRegistry()
    for name, help_text, value in _gauges(metrics, last_success_at):
        Gauge(name, help_text, registry=registry).set(value)
    objects = Gauge(
        "snsync_objects",
        "Objects the last cycle handled, by object type, action (Create, ...) and status",
        ["object_type", "action", "status"],
        registry=registry,
    )
    for key, by_status in metrics.counts.items():
        object_type, _, action = key.rpartition(" ")
        for status, count in by_status.items():
            objects.labels(object_type=object_type or "user", action=action, status=status).set(
                count
            )
    try:
        write_to_textfile(str(path), registry)
        os.chmod(path, _FILE_MODE)
    except OSError as exc:
        reason = exc.strerror or str(exc)
        raise ConfigError(f"--metrics-file: cannot write '{path}': {reason}") from None


def _gauges(metrics: CycleMetrics, last_success_at: float | None) -> list[tuple[str, str, float]]:
    return [
        ("snsync_cycle_duration_seconds", "How long the last cycle took", metrics.duration_s),
        ("snsync_cycle_full", "1 if the last cycle was a full cycle, 0 if a delta", metrics.full),
        ("snsync_cycle_failures", "Objects that failed in the last cycle", metrics.failures),
        (
            "snsync_held_disables",
            "Disables the last cycle held back because of the safety limit",
            metrics.held_disables,
        ),
        ("snsync_last_cycle_success", "1 if the last cycle succeeded, else 0", metrics.success),
        (
            "snsync_last_cycle_timestamp_seconds",
            "Unix time the last cycle finished",
            metrics.finished_at,
        ),
        (
            "snsync_last_success_timestamp_seconds",
            "Unix time the last successful cycle finished (0: none yet)",
            _last_success(metrics, last_success_at),
        ),
        ("snsync_quarantined", "1 while syncing is quarantined, else 0", metrics.quarantined),
    ]


def _last_success(metrics: CycleMetrics, last_success_at: float | None) -> float:
    """This cycle when it succeeded; 0 rather than no sample when there was never a success, so
    an alert on `time() - snsync_last_success_timestamp_seconds` fires instead of staying empty."""
    if metrics.success:
        return max(metrics.finished_at, last_success_at or 0.0)
    return last_success_at or 0.0
