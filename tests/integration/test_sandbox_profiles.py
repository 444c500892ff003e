"""Latency profiles (issue 14 item 2): per-request round trip outside the server's slot, server
time per request, per row read and per record written (sys_user writes cost more than a
membership row), Graph round trip and per-page time. Checked by what is slept, not by clocks."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from snsync.sandbox import options as sandbox_options
from snsync.sandbox.demo_instance import demo_instance, demo_sys_id
from snsync.sandbox.profiles import PROFILES
from snsync.sandbox.runner import SandboxOptions, start_sandbox
from snsync.sandbox.servicenow import pool
from snsync.sandbox.servicenow.costs import ServerCosts
from tests.integration.sn_harness import Instance, Launch, listener_fixtures

pytestmark = pytest.mark.integration
server, start = listener_fixtures()


def test_the_cli_offers_every_profile() -> None:
    import click

    command = sandbox_options.servicenow_options(click.command()(lambda **kw: None))
    (profile,) = [p for p in command.params if p.name == "profile"]
    assert isinstance(profile.type, click.Choice)
    assert sorted(profile.type.choices) == sorted(PROFILES)


@pytest.mark.parametrize("name", sorted(PROFILES))
def test_costs_are_ordered_as_on_an_instance(name: str) -> None:
    costs = PROFILES[name].servicenow_costs
    assert costs.seconds("POST", "sys_user", 1) > costs.seconds("POST", "sys_user_grmember", 1)
    assert costs.seconds("PATCH", "sys_user", 1) > costs.seconds("PATCH", "sys_user_group", 1)
    page = costs.seconds("GET", "sys_user", 1000)
    assert page == pytest.approx(1000 * costs.seconds("GET", "sys_user", 1))
    assert page > costs.seconds("POST", "sys_user_grmember", 1)


def test_a_profile_sets_round_trips_outside_and_server_time_inside(tmp_path: Path) -> None:
    running = start_sandbox(SandboxOptions(directory=tmp_path, profile="cloud", latency_ms=5))
    try:
        cloud = PROFILES["cloud"]
        assert running.servicenow.latency_ms == 5 + cloud.servicenow_network_ms
        assert running.graph.latency_ms == 5 + cloud.graph_network_ms
        assert running.graph.service_ms == cloud.graph_page_ms
        running.set_profile(None)
        assert (running.servicenow.latency_ms, running.graph.service_ms) == (5, 0)
    finally:
        running.stop()


def slept(monkeypatch: pytest.MonkeyPatch) -> list[float]:
    """The server times the instance spends (its pool's sleeps), in order."""
    spent: list[float] = []
    monkeypatch.setattr(pool.time, "sleep", spent.append)
    return spent


def test_server_time_per_request_row_and_record(
    start: Launch, monkeypatch: pytest.MonkeyPatch
) -> None:
    sn: Instance = start()
    costs = ServerCosts(row_read_ms=1.0, user_insert_ms=200.0, insert_ms=40.0)
    sn.app.set_costs(costs)
    sn.app.set_concurrency_latency(30)
    spent = slept(monkeypatch)
    sn.result("/api/now/table/sys_user", params={"sysparm_limit": "5"})
    assert spent == [pytest.approx(0.03), pytest.approx(0.005)]
    spent.clear()
    sn.call("POST", "/api/now/table/sys_user", json={"user_name": "costly"})
    body: dict[str, Any] = {
        "group": demo_sys_id("sys_user_group", "CAB Approval"),
        "user": demo_sys_id("sys_user", "adele.vance@contoso.example"),
    }
    sn.call("POST", "/api/now/table/sys_user_grmember", json=body)
    assert spent == [
        pytest.approx(0.03),
        pytest.approx(0.2),
        pytest.approx(0.03),
        pytest.approx(0.04),
    ]


def test_a_batch_saves_round_trips_not_server_time_per_record(
    start: Launch, monkeypatch: pytest.MonkeyPatch
) -> None:
    import base64
    import json

    sn: Instance = start()
    sn.app.set_costs(ServerCosts(user_insert_ms=200.0))
    spent = slept(monkeypatch)
    items = [
        {
            "id": str(n),
            "method": "POST",
            "url": "/api/now/table/sys_user",
            "headers": [{"name": "Content-Type", "value": "application/json"}],
            "body": base64.b64encode(json.dumps({"user_name": f"b{n}"}).encode()).decode(),
        }
        for n in range(3)
    ]
    answer = sn.call("POST", "/api/now/v1/batch", json={"rest_requests": items}).json()
    assert [s["status_code"] for s in answer["serviced_requests"]] == [201, 201, 201]
    assert [s for s in spent if s] == [pytest.approx(0.2)] * 3


def test_the_benchmark_host_passes_a_sandbox_profile(tmp_path: Path) -> None:
    import json

    from benchmarks.bound import LatencyProfile
    from benchmarks.sandbox_host import Sandbox, SandboxSetup, ThreadHost
    from snsync.sandbox.demo_tenant import demo_tenant

    (tmp_path / "t.json").write_text(json.dumps(demo_tenant()))
    (tmp_path / "i.json").write_text(json.dumps(demo_instance()))
    host = ThreadHost()
    try:
        timed = LatencyProfile(50.0, 20.0, 16, "lan", sandbox_profile="lan")
        setup = SandboxSetup(tmp_path / "t.json", tmp_path / "i.json", tmp_path / "s", timed)
        sandbox = Sandbox(host, setup)
        running = host._registry._running[sandbox.key]
        assert running.graph.service_ms == PROFILES["lan"].graph_page_ms
        quiet = LatencyProfile(0.0, 0.0, 16, "quiet", sandbox_profile="")
        sandbox.set_latency(quiet)  # setup steps: no latency
        assert (running.graph.service_ms, running.servicenow.latency_ms) == (0.0, 0.0)
        sandbox.set_latency(timed)  # timed steps: the sandbox profile again
        assert running.servicenow.latency_ms == PROFILES["lan"].servicenow_network_ms
    finally:
        host.close()
