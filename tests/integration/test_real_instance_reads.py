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
from snsync.sandbox.server import Request, Response

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


# Nine rows the integration account may not read, sorted between auditor (85a7...) and
# legacy.user (a5d8...): with pages of 4, the second keyset page and the one after it come back
# completely empty while alex.wilber and adele.vance (b27b..., d907...) follow.
MIDDLE = [f"9{n:031x}" for n in range(1, 10)]


def hide_a_middle_stretch(instance: dict[str, Any]) -> dict[str, Any]:
    for n, sys_id in enumerate(MIDDLE):
        instance["tables"]["sys_user"].append(
            {"sys_id": sys_id, "user_name": f"hidden.middle{n}", "first_name": "Hidden"}
        )
    instance["read_rules"] = [{"table": "sys_user", "condition": "first_name!=Hidden"}]
    return instance


def test_pages_the_read_rules_hide_completely_do_not_end_the_read(
    start: Callable[..., RunningSandbox],
) -> None:
    sandbox = start(hide_a_middle_stretch(demo_instance()))
    configure(sandbox, page_size=4)
    sn = ServiceNowAdmin(sandbox)
    before = {r["user_name"]: r for r in sn.rows("sys_user")}
    later = ["alex.wilber@contoso.example", "adele.vance@contoso.example"]
    assert all(before[name]["sys_id"] > MIDDLE[-1] for name in later)
    result = run(sandbox, "run", "--once")
    assert result.exit_code == 0, result.output
    after = sn.rows("sys_user")
    names = [r["user_name"] for r in after]
    assert len(names) == len(set(names)), "no record was created twice"
    for name in later:
        (record,) = [r for r in after if r["user_name"] == name]
        assert record["sys_id"] == before[name]["sys_id"]
        # Read and adopted: the cycle wrote the mapped values onto the record on a later page.
        assert record["source"].startswith("entra:"), record
        assert record["sys_updated_by"] == "snsync", record
    hidden = [r for r in after if r["sys_id"] in MIDDLE]
    assert hidden == [before[r["user_name"]] for r in hidden], "hidden rows were not written"


def lie_about_the_row_count(sandbox: RunningSandbox, count: Callable[[int], int]) -> None:
    """Make every sys_user page after the first come back empty with X-Total-Count saying
    `count(offset)` rows match: a count that never ends."""
    app = sandbox.servicenow_app
    original = app.handle

    def handle(request: Request) -> Response:
        query = request.query.get("sysparm_query", "")
        if request.path.endswith("/table/sys_user") and "sys_id>" in query:
            offset = int(request.query.get("sysparm_offset") or 0)
            return Response(200, {"result": []}, {"X-Total-Count": str(count(offset))})
        return original(request)

    app.handle = handle  # type: ignore[method-assign]


@pytest.mark.parametrize(
    ("count", "why"),
    [
        (lambda offset: offset + 9, "row count (X-Total-Count) grew"),
        (lambda offset: 10**9, "more than limits.max_pages (40)"),
    ],
    ids=["growing", "constant"],
)
def test_a_row_count_that_never_ends_stops_the_read_and_writes_nothing(
    start: Callable[..., RunningSandbox], count: Callable[[int], int], why: str
) -> None:
    sandbox = start(demo_instance())
    configure(sandbox, page_size=4)
    data = yaml.safe_load(sandbox.config_path.read_text())
    data["limits"] = {**data.get("limits", {}), "max_pages": 40}
    sandbox.config_path.write_text(yaml.safe_dump(data))
    lie_about_the_row_count(sandbox, count)
    writes = sandbox.servicenow_app.write_count()
    result = run(sandbox, "run", "--once")
    assert result.exit_code == 3, result.output  # an unsafe answer: exit 3, as documented
    assert "Traceback" not in result.output
    lines = [line for line in result.output.splitlines() if "reading sys_user stopped" in line]
    assert len(lines) == 1 and why in lines[0], result.output
    assert sandbox.servicenow_app.write_count() == writes, "nothing was written"
