"""The node_exporter textfile: every metric parses back with its value and labels, the file is
replaced atomically, and a path that cannot be written is one clear error."""

from __future__ import annotations

from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

from snsync.errors import ConfigError
from snsync.metrics import CycleMetrics, write_metrics

METRICS = CycleMetrics(
    duration_s=12.5,
    full=True,
    counts={"user Create": {"Success": 10, "Failure": 2}, "group Update": {"Success": 3}},
    failures=2,
    held_disables=0,
    success=False,
    finished_at=1714532475.0,
)


def samples(path: Path) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    text = path.read_text()
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def test_every_metric_parses_back(tmp_path: Path) -> None:
    path = tmp_path / "snsync.prom"
    write_metrics(path, METRICS, last_success_at=1714500000.0)
    values = samples(path)
    assert values == {
        ("snsync_cycle_duration_seconds", ()): 12.5,
        ("snsync_cycle_full", ()): 1.0,
        ("snsync_cycle_failures", ()): 2.0,
        ("snsync_held_disables", ()): 0.0,
        ("snsync_last_cycle_success", ()): 0.0,
        ("snsync_last_cycle_timestamp_seconds", ()): 1714532475.0,
        ("snsync_last_success_timestamp_seconds", ()): 1714500000.0,
        ("snsync_quarantined", ()): 0.0,
        (
            "snsync_objects",
            (("action", "Create"), ("object_type", "user"), ("status", "Success")),
        ): 10.0,
        (
            "snsync_objects",
            (("action", "Create"), ("object_type", "user"), ("status", "Failure")),
        ): 2.0,
        (
            "snsync_objects",
            (("action", "Update"), ("object_type", "group"), ("status", "Success")),
        ): 3.0,
    }
    text = path.read_text()
    for family in text_string_to_metric_families(text):
        assert family.type == "gauge"
        assert family.documentation, family.name
    assert path.stat().st_mode & 0o777 == 0o644


def test_a_successful_cycle_is_the_last_success(tmp_path: Path) -> None:
    path = tmp_path / "snsync.prom"
    ok = CycleMetrics(1.0, False, {}, 0, 0, True, 1714532475.0, quarantined=True)
    write_metrics(path, ok, last_success_at=None)
    values = samples(path)
    assert values[("snsync_last_cycle_success", ())] == 1.0
    assert values[("snsync_last_success_timestamp_seconds", ())] == 1714532475.0
    assert values[("snsync_cycle_full", ())] == 0.0
    assert values[("snsync_quarantined", ())] == 1.0
    assert not any(name == "snsync_objects" for name, _ in values)


def test_never_succeeded_is_zero_not_missing(tmp_path: Path) -> None:
    path = tmp_path / "snsync.prom"
    write_metrics(path, METRICS, last_success_at=None)
    assert samples(path)[("snsync_last_success_timestamp_seconds", ())] == 0.0


def test_an_existing_file_is_replaced_and_no_temp_file_is_left(tmp_path: Path) -> None:
    path = tmp_path / "snsync.prom"
    path.write_text("stale_metric 1\n")
    before = path.stat().st_ino
    write_metrics(path, METRICS, last_success_at=None)
    assert "stale_metric" not in path.read_text()
    # A rename, not a rewrite in place: a reader never sees a half-written file.
    assert path.stat().st_ino != before
    assert [p.name for p in tmp_path.iterdir()] == ["snsync.prom"]


def test_a_failed_write_leaves_no_temp_file(tmp_path: Path) -> None:
    path = tmp_path / "snsync.prom"
    path.mkdir()  # the rename onto a directory fails after the temp file was written
    with pytest.raises(ConfigError, match=r"^--metrics-file: cannot write '.*snsync\.prom': "):
        write_metrics(path, METRICS, last_success_at=None)
    assert [p.name for p in tmp_path.iterdir()] == ["snsync.prom"]


@pytest.mark.parametrize("parent", ["missing-dir", "a-file"])
def test_an_unwritable_path_is_a_config_error(tmp_path: Path, parent: str) -> None:
    (tmp_path / "a-file").write_text("")
    path = tmp_path / parent / "snsync.prom"
    with pytest.raises(ConfigError) as caught:
        write_metrics(path, METRICS, last_success_at=None)
    message = str(caught.value)
    assert message.startswith(f"--metrics-file: cannot write '{path}': ")
    assert message.endswith(("No such file or directory", "Not a directory"))
