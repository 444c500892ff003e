"""The benchmark's scenario generator, bound arithmetic, endpoint counting, and a smoke run of the
runner (snsync measured in a child process)."""

from __future__ import annotations

import dataclasses
import json
import math
from collections import Counter
from pathlib import Path

import pytest

from benchmarks import run, steps
from benchmarks.bound import (
    PROFILES,
    LatencyProfile,
    Needed,
    Rows,
    Writes,
    bound_seconds,
    graph_reads_needed,
    needed,
    needed_incremental,
    parallel_bound_seconds,
    serial_bound_seconds,
)
from benchmarks.endpoints import BATCH_PREFIX, EndpointCounter, difference, endpoint
from benchmarks.scenarios import STALE_TITLE, ScenarioSpec, depths, generate, user_changes
from snsync.sandbox.demo_instance import demo_instance
from snsync.sandbox.graph import GraphApp
from snsync.sandbox.server import Request
from snsync.sandbox.servicenow import ServiceNowApp

DEMO_ROWS = len(demo_instance()["tables"]["sys_user"])


def test_counts_follow_the_spec() -> None:
    scenario = generate(ScenarioSpec(users=500, groups=10, share_present=0.5))
    assert len(scenario.tenant["users"]) == 500
    assert len(scenario.tenant["groups"]) == 10
    assert len(scenario.assigned_group_sizes) == 8  # four groups in five are assigned
    assert len(scenario.present) == 250
    assert scenario.sys_user_rows() == DEMO_ROWS + 250
    assert scenario.disabled and len(scenario.disabled) == 5
    assert scenario.creates_needed() + scenario.updates_needed() == 500 - len(
        scenario.disabled - scenario.present
    )


def test_same_spec_same_fixtures_other_seed_other_fixtures() -> None:
    spec = ScenarioSpec(users=300, groups=6, share_present=0.3)
    first, again = generate(spec), generate(spec)
    assert first.tenant == again.tenant and first.instance == again.instance
    other = generate(ScenarioSpec(users=300, groups=6, share_present=0.3, seed=8))
    assert other.tenant["users"] != first.tenant["users"]


def test_manager_tree_has_no_loop_and_a_realistic_shape() -> None:
    scenario = generate(ScenarioSpec(users=3000, groups=10))
    levels = depths(scenario.managers)
    assert len(levels) == 3000 - 1  # everyone but the top has a manager
    assert 4 <= max(levels.values()) <= 6
    spans = Counter(scenario.managers.values())
    assert all(n <= 10 for n in spans.values())
    assert sorted(spans.values())[1] >= 5  # only the last manager filled may have fewer


def test_depths_refuses_a_reporting_loop() -> None:
    with pytest.raises(ValueError, match="loop"):
        depths({"a": "b", "b": "c", "c": "a"})


def test_every_user_is_assigned_directly_or_through_an_assigned_group() -> None:
    scenario = generate(ScenarioSpec(users=400, groups=10))
    principals = {a["principalId"] for a in scenario.tenant["assignments"]}
    in_groups = {
        member
        for group in scenario.tenant["groups"]
        if group["id"] in principals
        for member in group["members"]
    }
    assert {u["id"] for u in scenario.tenant["users"]} <= in_groups | principals
    assert principals - {g["id"] for g in scenario.tenant["groups"]}, "some direct assignments"


def test_present_users_exist_with_stale_values_and_the_fixtures_load() -> None:
    scenario = generate(ScenarioSpec(users=200, groups=5, share_present=0.25))
    upns = {u["id"]: u["userPrincipalName"] for u in scenario.tenant["users"]}
    records = {r["user_name"]: r for r in scenario.instance["tables"]["sys_user"]}
    for user_id in scenario.present:
        assert records[upns[user_id]]["title"] == STALE_TITLE
    GraphApp(scenario.tenant)
    app = ServiceNowApp(scenario.instance)
    assert len(app.records("sys_user")) == DEMO_ROWS + 50


def test_user_changes_touch_one_percent_of_enabled_users() -> None:
    scenario = generate(ScenarioSpec(users=1000, groups=10))
    changes = user_changes(scenario, 0.01)
    users = {u["id"]: u for u in scenario.tenant["users"]}
    assert len(changes) == 10
    for user_id, body in changes.items():
        assert users[user_id]["accountEnabled"]
        assert body["jobTitle"] != users[user_id]["jobTitle"]


def test_memberships_needed_counts_enabled_members_of_assigned_groups() -> None:
    scenario = generate(ScenarioSpec(users=400, groups=10))
    expected = sum(
        1
        for members in scenario.assigned_groups.values()
        for user_id in members
        if user_id not in scenario.disabled
    )
    assert scenario.memberships_needed() == expected > 400 * 0.8


def test_graph_reads_needed_counts_pages() -> None:
    scenario = generate(ScenarioSpec(users=2500, groups=10))
    groups = len(scenario.assigned_groups)
    # users, assignments, one members page per assigned group, one page of all groups, token+app
    assert graph_reads_needed(scenario) == math.ceil(2500 / 100) + 1 + groups + 1 + 2


def test_older_bound_runs_servicenow_in_rounds_of_the_cap_and_graph_in_sequence() -> None:
    profile = LatencyProfile(servicenow_ms=50, graph_ms=20, cap=16)
    need = Needed(graph_reads=174, servicenow_reads=2, writes=Writes(users=10_000))
    assert serial_bound_seconds(need, profile) == pytest.approx(626 * 0.05 + 174 * 0.02)
    nothing = Needed(graph_reads=10, servicenow_reads=11, writes=Writes())
    assert serial_bound_seconds(nothing, profile) == pytest.approx(0.05 + 0.2)


def test_today_bound_overlaps_the_read_chains_then_writes_in_rounds_of_the_cap() -> None:
    today = PROFILES["today"]
    writes = Writes(users=9_900, groups=160, memberships=11_656)
    need = Needed(264, 6, writes, graph_chain=102, read_chain_rows=(1000, 10))
    # Graph's chain 102 x 20 ms beats ServiceNow's 2 keyset pages x 50 ms; 1,358 rounds of 16
    assert bound_seconds(need, today) == pytest.approx(2.04 + 67.90)
    assert parallel_bound_seconds(need, today) == bound_seconds(need, today)
    assert serial_bound_seconds(need, today) > bound_seconds(need, today)
    long_reads = Needed(12, 30, Writes(users=17), graph_chain=12, read_chain_rows=(1000,) * 25)
    assert bound_seconds(long_reads, today) == pytest.approx(25 * 0.05 + 2 * 0.05)
    # the pipe helper's 1,000-user figure: chain of 12 Graph requests, 1,082 writes
    scenario = generate(ScenarioSpec(users=1000, groups=20))
    first = needed(scenario, Rows(sys_user=DEMO_ROWS), run.first_sync(scenario))
    assert first.graph_chain == 12
    rounds = math.ceil(first.servicenow_writes / 16)
    assert bound_seconds(first, today) == pytest.approx(0.24 + rounds * 0.05)


def test_users_only_scenario_assigns_every_user_directly_and_needs_user_writes_only() -> None:
    options = run.parse_args(["--quick", "--users-only"])
    assert (options.users, options.groups, options.users_only) == (1000, 0, True)
    with pytest.raises(SystemExit):
        run.parse_args(["--users-only", "--groups=5"])
    scenario = generate(ScenarioSpec(users=1000, groups=0))
    assert scenario.assigned_groups == {} and scenario.tenant["groups"] == []
    principals = [a["principalId"] for a in scenario.tenant["assignments"]]
    assert sorted(principals) == sorted(u["id"] for u in scenario.users)
    writes = run.first_sync(scenario)
    assert (writes.groups, writes.memberships) == (0, 0)
    assert writes.users == 1000 - len(scenario.disabled)
    need = needed(scenario, Rows(sys_user=DEMO_ROWS), writes)
    # users with managers, the 1,000 direct assignments (2 pages), no members, no groups
    assert need.graph_reads == 10 + 2 + 2
    today = PROFILES["today"]
    assert bound_seconds(need, today) == pytest.approx(0.24 + math.ceil(writes.users / 16) * 0.05)


def test_needed_reads_pages_of_users_groups_memberships_and_departments() -> None:
    scenario = generate(ScenarioSpec(users=50, groups=2))
    first = needed(scenario, Rows(sys_user=10_008, sys_user_group=2), Writes(users=7))
    assert first.servicenow_reads == 11 + 1 + 1  # no membership rows to read yet
    again = needed(scenario, Rows(sys_user=1000, sys_user_group=200, memberships=12_345), Writes())
    assert again.servicenow_reads == 1 + 1 + 1 + 13
    assert again.servicenow_writes == 0


def test_incremental_bound_reads_the_opening_batches_then_the_pages_that_follow() -> None:
    scenario = generate(ScenarioSpec(users=2000, groups=10))
    need = needed_incremental(scenario, 20, Writes(users=20, user_updates=20))
    assert need.graph_reads == 2  # the token and one $batch of the four opening reads
    assert need.servicenow_reads == 1  # one Batch API request of 4 GETs
    profile = LatencyProfile(servicenow_ms=50, graph_ms=20, cap=16)
    # the batch holds its slot 50 ms per GET (200 ms), longer than Graph's 2 x 20 ms; then the
    # 20 updates in 2 rounds of 16
    assert bound_seconds(need, profile) == pytest.approx(4 * 0.05 + 2 * 0.05)
    # cloud: Graph's 2 x (30 + 120) ms beats the batch: one round trip of 40 ms, 30 ms per GET,
    # 0.15 ms per changed row (not 4 round trips); then 20 updates over 8 threads
    cloud = PROFILES["cloud"]
    writes = 20 * (30 + 100) / 8 + 40
    assert bound_seconds(need, cloud) == pytest.approx((2 * 150 + writes) / 1000)
    batch_only = dataclasses.replace(need, graph_chain=0, writes=Writes())
    assert bound_seconds(batch_only, cloud) == pytest.approx((40 + 4 * 30 + 20 * 0.15) / 1000)
    many = dataclasses.replace(scenario, assignments=4600)  # 5 pages, as at 100,000 users
    big = needed_incremental(many, 1500, Writes())
    assert (big.graph_reads, big.graph_chain) == (2 + 4 + 1, 2 + 4)


def test_model_bound_overlaps_the_read_chains_and_spreads_write_server_time() -> None:
    cloud = run.PROFILES["cloud"]
    assert (cloud.cap, cloud.serialize_sessions, cloud.sandbox_profile) == (8, True, "cloud")
    writes = Writes(users=10, user_updates=4, groups=1, memberships=5)
    need = Needed(9, 2, writes, graph_chain=3, read_chain_rows=(1000, 10))
    # Graph 3 x (30 + 120) = 450 ms beats the reads (40 + 30 + 150) + (40 + 30 + 1.5) = 291.5;
    # writes: (6 x (30 + 200) + 4 x (30 + 100) + 6 x (30 + 40)) / 8 + one round trip of 40
    assert bound_seconds(need, cloud) == pytest.approx((450 + 2320 / 8 + 40) / 1000)
    reads_only = Needed(9, 2, Writes(), graph_chain=1, read_chain_rows=(1000, 1000, 1000))
    assert bound_seconds(reads_only, cloud) == pytest.approx(3 * 220 / 1000)


def test_needed_knows_the_chains_that_cannot_overlap() -> None:
    scenario = generate(ScenarioSpec(users=250, groups=5))
    need = needed(scenario, Rows(sys_user=2500, sys_user_group=3), Writes())
    assert need.graph_chain == 2 + 3  # token, app, three pages of 100 users with managers
    assert need.read_chain_rows == (1000, 1000, 500)


def test_endpoints_name_paths_with_ids_replaced() -> None:
    sys_id = "a" * 32
    guid = "0f8fad5b-d9cb-469f-a165-70867728950e"
    assert endpoint("get", f"/api/now/table/sys_user/{sys_id}?x=1") == (
        "GET /api/now/table/sys_user/{id}"
    )
    assert endpoint("GET", f"/v1.0/groups/{guid}/members") == "GET /v1.0/groups/{id}/members"
    assert endpoint("GET", "/v1.0/users/adele@contoso.example") == "GET /v1.0/users/{id}"
    assert endpoint("POST", "/api/now/v1/batch") == "POST /api/now/v1/batch"


def test_endpoint_counter_counts_batch_sub_requests_and_passes_requests_on() -> None:
    app = ServiceNowApp(demo_instance())
    counter = EndpointCounter(app)
    body = {
        "batch_request_id": "1",
        "rest_requests": [
            {"id": "1", "method": "PATCH", "url": f"/api/now/table/sys_user/{'b' * 32}"},
            {"id": "2", "method": "POST", "url": "/api/now/table/sys_user_grmember?a=b"},
            {"id": "3", "method": "POST", "url": "/api/now/table/sys_user_grmember"},
        ],
    }
    request = Request(
        "POST",
        "/api/now/v1/batch",
        "/api/now/v1/batch",
        {},
        {"content-type": "application/json"},
        json.dumps(body).encode(),
        "https://x",
    )
    answer = counter.handle(request)
    assert answer.status == 401  # no credentials: the app itself answered
    assert counter.counts() == {
        "POST /api/now/v1/batch": 1,
        f"{BATCH_PREFIX}PATCH /api/now/table/sys_user/{{id}}": 1,
        f"{BATCH_PREFIX}POST /api/now/table/sys_user_grmember": 2,
    }
    assert difference({"a": 3, "b": 1}, {"a": 1, "b": 1}) == {"a": 2}


def test_workload_and_profile_options() -> None:
    default = run.parse_args([])
    assert (default.users, default.groups, default.profile.name) == (10_000, 200, "today")
    assert default.scenarios == ("changed", "empty", "half", "nochange")
    big = run.parse_args(["--workload=w100k"])
    assert (big.users, big.groups, big.scenarios) == (100_000, 2_000, ("empty", "nochange"))
    cloud = run.parse_args(["--profile=cloud", "--no-serialize-sessions"])
    assert cloud.profile.sandbox_profile == "cloud" and not cloud.profile.serialize_sessions
    custom = run.parse_args(["--sn-latency-ms=5", "--cap=4"])
    assert (custom.profile.servicenow_ms, custom.profile.cap) == (5.0, 4)
    assert custom.profile.graph_ms == 20.0 and "overridden" in custom.profile.name
    assert default.baseline and not run.parse_args(["--no-baseline"]).baseline
    with pytest.raises(SystemExit):
        run.parse_args(["--workload=w100k", "--scenario=half"])


def test_runner_smoke(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    argv = [
        "--users=60",
        "--groups=3",
        "--sn-latency-ms=0",
        "--graph-latency-ms=0",
        "--baseline-sample=10",
        "--sandbox=thread",
        f"--workdir={tmp_path}",
    ]
    assert run.main(argv) == 0
    out = capsys.readouterr().out
    for scenario in ("empty", "half", "nochange", "changed"):
        assert f"== {scenario}:" in out
    summary = out.split("== summary ==")[1].splitlines()[1]
    for column in ("users", "Graph req", "SN writes", "wall s", "bound s", "wall/bound"):
        assert column in summary
    for column in ("CPU s", "RSS MiB", "naive s", "speed-up"):
        assert column in summary
    rows = {
        line.split()[0]: line.split() for line in out.split("== summary ==")[1].splitlines()[2:6]
    }
    cpu, rss = float(rows["empty"][8]), float(rows["empty"][9].replace(",", ""))
    assert cpu > 0 and 20 < rss < 2000  # a real snsync process: interpreter, imports, the cycle
    for line in (
        "GET /v1.0/users",
        "inside batches: GET /v1.0/groups/{id}",
        "GET /api/now/table/sys_user",
    ):
        assert line in out
    assert "measured on 10 users, extrapolated" in out

    def row(scenario: str, label: str) -> str:
        table = out.split(f"== {scenario}:")[1].split("\n\n")[0]
        return next(line for line in table.splitlines() if line.startswith(label)).split()[-1]

    assert float(row("empty", "client CPU per object (ms)")) > 0
    assert row("nochange", "client CPU per object (ms)") == "n/a"  # nothing written
    assert 0 < int(row("nochange", "requests in all")) < int(row("empty", "requests in all"))
    assert "FAILURES" not in out


def test_step_check_flags_a_step_that_grows_faster_than_n() -> None:
    sizes = [1000, 2000, 4000]
    linear = ("/x/snsync/engine/a.py", 1, "linear")
    square = ("/x/snsync/engine/b.py", 2, "square")
    tiny = ("/x/snsync/engine/c.py", 3, "tiny")
    runs = [{linear: 1.0 * k, square: 0.1 * k * k, tiny: 0.001 * k * k} for k in (1, 2, 4)]
    rows = steps.growth(sizes, runs)
    by_name = {row.name: row for row in rows}
    assert by_name["snsync/engine/a.py:1(linear)"].exponent == pytest.approx(1.0)
    assert by_name["snsync/engine/b.py:2(square)"].exponent == pytest.approx(2.0)
    assert "snsync/engine/c.py:3(tiny)" not in by_name  # under 2% of the largest run
    text = steps.report(sizes, rows)
    assert text.splitlines()[-1].endswith("snsync/engine/b.py:2(square)")
    assert steps.exponent([1000, 2000], [0.01, 0.04]) is None  # too small to tell
    calm = steps.report(sizes, [row for row in rows if not row.faster_than_n])
    assert calm.splitlines()[-1].startswith("no step grows faster than N")


def test_a_setup_step_runs_without_latency_and_only_the_asked_scenario_is_shown(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    argv = [
        "--users=30",
        "--groups=2",
        "--scenario=nochange",
        "--sn-latency-ms=40",
        "--graph-latency-ms=5",
        "--no-baseline",
        "--sandbox=thread",
        f"--workdir={tmp_path}",
    ]
    assert run.main(argv) == 0
    captured = capsys.readouterr()
    assert "== nochange:" in captured.out and "== empty:" not in captured.out
    assert "== half:" not in captured.out
    assert "[half] done as setup, without latency (not reported)" in captured.err
    assert "[nochange] snsync cycle over 30 users (bound on today (overridden): " in captured.err


def test_runner_users_only_prints_the_like_for_like_comparison(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    argv = [
        "--users=40",
        "--users-only",
        "--scenario=empty",
        "--sn-latency-ms=1",
        "--graph-latency-ms=1",
        "--baseline-sample=10",
        "--sandbox=thread",
        f"--workdir={tmp_path}",
    ]
    assert run.main(argv) == 0
    out = capsys.readouterr().out
    assert "users only (--users-only" in out and "(users only: all assigned directly" in out
    assert "needed writes: users 40, groups 0, memberships 0" in out
    assert "inside batches: GET /v1.0/groups/{id}" not in out
    assert "groups 0.00 s for 0 of 0; memberships 0.00 s for 0 of 0" in out
    assert "users only, like for like: snsync " in out and "a client at the bound" in out
    assert "older bound (Graph after ServiceNow" in out
    assert "FAILURES" not in out
