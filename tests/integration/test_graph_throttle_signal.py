"""Graph's resource-unit budget (issue 14), through the sandbox: snsync reads
`x-ms-throttle-limit-percentage` as a queue signal and paces its reads within the budget, so a
tight budget that throttles a client ignoring the signal gives snsync's reads no 429 at all."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml
from click.testing import CliRunner

from snsync import connections
from snsync.cli import cli
from snsync.sandbox.runner import SandboxOptions, start_sandbox

# A budget the demo tenant's first cycle (about 40 Graph requests with pages of one user) spends
# several times over. The window is Graph's 10 s scaled down to 1 s on both sides, so that the
# test waits for about 3 s instead of 30.
UNITS, WINDOW_S = 20, 1.0


def first_cycle(tmp_path: Path) -> tuple[int, int, list[str]]:
    """Exit code, 429s the sandbox answered, and the users in ServiceNow afterwards."""
    sandbox = start_sandbox(
        SandboxOptions(
            directory=tmp_path, graph_resource_units=UNITS, graph_resource_window_s=WINDOW_S
        )
    )
    try:
        data: dict[str, Any] = yaml.safe_load(sandbox.config_path.read_text())
        data["graph"]["page_size"] = 1
        sandbox.config_path.write_text(yaml.safe_dump(data))
        result = CliRunner().invoke(cli, ["--config", str(sandbox.config_path), "run", "--once"])
        assert "Traceback" not in result.output
        users = sorted(r["user_name"] for r in sandbox.servicenow_app.records("sys_user"))
        return result.exit_code, sandbox.graph_app.throttled_count(), users
    finally:
        sandbox.stop()


def test_the_throttle_share_paces_graph_reads_within_the_budget(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(connections, "GRAPH_WINDOW_S", WINDOW_S)
    code, throttled, users = first_cycle(tmp_path / "signal")
    # The control: the same cycle with a limiter that has no budget (429 + Retry-After only).
    monkeypatch.setattr(connections, "UnitBudget", lambda window_s: None)
    control_code, control_throttled, control_users = first_cycle(tmp_path / "control")
    assert code == control_code == 0
    assert control_throttled > 0, "the budget is tight enough to throttle a client without it"
    assert throttled == 0, f"{throttled} requests were throttled although the share was read"
    assert users == control_users, "the same cycle, the same result"
