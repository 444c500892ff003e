"""The engine against a real instance's read behaviour (issue 14), through the sandbox: row read
rules make keyset pages short while more rows follow, and a per-hour request quota ends the
cycle cleanly instead of sleeping workers."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from click.testing import CliRunner, Result

from snsync.cli import cli
from snsync.sandbox.demo_instance import demo_instance
from snsync.sandbox.runner import RunningSandbox, SandboxOptions, start_sandbox

from .conftest import ServiceNowAdmin

HIDDEN = [f"{n:032x}" for n in range(1, 4)]  # sort before every demo sys_id: on page one


def run(sandbox: RunningSandbox, *args: str) -> Result:
    return CliRunner().invoke(cli, ["--config", str(sandbox.config_path), *args])


@pytest.fixture
def start(tmp_path: Path) -> Iterator[Callable[..., RunningSandbox]]:
    started: list[RunningSandbox] = []

    def launch(instance: dict[str, Any], **options: Any) -> RunningSandbox:
        path = tmp_path / "instance.json"
        path.write_text(json.dumps(instance))
        sandbox = start_sandbox(
            SandboxOptions(directory=tmp_path / "sandbox", instance=path, **options)
        )
        started.append(sandbox)
        return sandbox

    yield launch
    for sandbox in started:
        sandbox.stop()


def configure(sandbox: RunningSandbox, **servicenow: Any) -> None:
    data = yaml.safe_load(sandbox.config_path.read_text())
    data["servicenow"] = {**data.get("servicenow", {}), **servicenow}
    sandbox.config_path.write_text(yaml.safe_dump(data))


def test_a_short_first_page_does_not_end_the_read(
    start: Callable[..., RunningSandbox],
) -> None:
    instance = demo_instance()
    for n, sys_id in enumerate(HIDDEN):
        instance["tables"]["sys_user"].append(
            {"sys_id": sys_id, "user_name": f"hidden{n}", "first_name": "Hidden"}
        )
    # The integration account may not read the hidden rows: applied after sysparm_limit, as on
    # a real instance, so the first page of 4 comes back with one row while more follow.
    instance["read_rules"] = [{"table": "sys_user", "condition": f"sys_idNOT IN{','.join(HIDDEN)}"}]
    sandbox = start(instance)
    configure(sandbox, page_size=4)
    sn = ServiceNowAdmin(sandbox)
    before = {r["user_name"]: r["sys_id"] for r in sn.rows("sys_user")}
    result = run(sandbox, "run", "--once")
    assert result.exit_code == 0, result.output
    after = sn.rows("sys_user")
    names = [r["user_name"] for r in after]
    assert len(names) == len(set(names)), "no record was created twice"
    for name, sys_id in before.items():
        if name.endswith("@contoso.example"):
            # Existing records on later pages were read and adopted, not duplicated.
            assert {r["sys_id"] for r in after if r["user_name"] == name} == {sys_id}


def test_a_spent_hourly_quota_ends_the_cycle_cleanly(
    start: Callable[..., RunningSandbox],
) -> None:
    sandbox = start(demo_instance(), servicenow_rate_limit=6)
    result = run(sandbox, "run", "--once")
    assert result.exit_code == 7, result.output
    lines = [line for line in result.output.splitlines() if "quota" in line.lower()]
    assert lines, result.output
    assert "Traceback" not in result.output
    status = run(sandbox, "status")
    assert status.exit_code == 0, status.output
