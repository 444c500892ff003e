"""The Batch API writer against the sandbox instance: batches, per-item results, unserviced
items, whole-batch failures and crafted batch answers (which must never cause a double create)."""

from __future__ import annotations

import base64
import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from snsync.config import ServiceNowConfig
from snsync.errors import NotFoundError, TransientError, WriteBlockedError
from snsync.http import HttpClient, RetryPolicy
from snsync.sandbox.demo_instance import DEMO_PASSWORD, demo_instance, demo_sys_id
from snsync.sandbox.server import Request, Response, SandboxServer
from snsync.sandbox.servicenow import ServiceNowApp
from snsync.sandbox.tls import SandboxTls
from snsync.servicenow.batch import WriteKind, WriteRequest, WriteResult, write_batched
from snsync.servicenow.client import TableClient

pytestmark = pytest.mark.integration

ADELE = demo_sys_id("sys_user", "adele.vance@contoso.example")
SERVICE_DESK = demo_sys_id("sys_user_group", "Service Desk")
MISSING = "0" * 32
USER_FIELDS = ("user_name", "sys_updated_on")


@dataclass
class Clock:
    now: datetime = datetime(2025, 3, 4, 10, 15, tzinfo=UTC)

    def __call__(self) -> datetime:
        return self.now


Forward = Callable[[Request], Response]
BatchHook = Callable[[Request, Forward], Response]


@dataclass
class Instance:
    """The sandbox ServiceNow app behind a listener that can tamper with batch answers."""

    app: ServiceNowApp
    hook: BatchHook | None = None
    batches: int = 0
    singles: list[str] = field(default_factory=list)

    def handle(self, request: Request) -> Response:
        if request.path.rstrip("/").endswith("/batch"):
            self.batches += 1
            return self.hook(request, self.app.handle) if self.hook else self.app.handle(request)
        self.singles.append(request.method)
        return self.app.handle(request)

    def fault_response(self, status: int, retry_after: int) -> Response:
        return self.app.fault_response(status, retry_after)

    def users(self) -> list[dict[str, str]]:
        return self.app.records("sys_user")


@dataclass
class Rig:
    instance: Instance
    client: TableClient
    clock: Clock


@pytest.fixture(scope="module")
def server(sandbox_tls: SandboxTls) -> Iterator[SandboxServer]:
    """One listener for the module; each test plugs a fresh instance into it."""
    running = SandboxServer(Instance(ServiceNowApp(demo_instance())), sandbox_tls).start()
    yield running
    running.stop()


@pytest.fixture
def rig(server: SandboxServer, sandbox_tls: SandboxTls) -> Iterator[Callable[..., Rig]]:
    clients: list[HttpClient] = []

    def make(read_only: bool = False, **options: Any) -> Rig:
        clock = Clock()
        instance = Instance(ServiceNowApp(demo_instance(), clock=clock, **options))
        server.app = instance

        def sleep(seconds: float) -> None:  # waiting out a rate limit moves the clock on
            clock.now += timedelta(seconds=max(seconds, 3600))

        http = HttpClient(
            service="servicenow",
            ca_bundle=sandbox_tls.ca_pem,
            read_only=read_only,
            policy=RetryPolicy(attempts=3, base_s=0.0),
            sleep=sleep,
        )
        clients.append(http)
        config = ServiceNowConfig.model_validate(
            {
                "instance": server.base_url,
                "auth": {"username": "snsync", "password": DEMO_PASSWORD},
                "ca_bundle": str(sandbox_tls.ca_pem),
            }
        )
        return Rig(instance, TableClient(config, http), clock)

    yield make
    for http in clients:
        http.close()


def create(name: str) -> WriteRequest:
    values = {"user_name": name, "first_name": name.title(), "source": f"entra:{name}"}
    return WriteRequest(WriteKind.CREATE, "sys_user", values, fields=USER_FIELDS)


def names(instance: Instance) -> list[str]:
    return [u["user_name"] for u in instance.users()]


def test_creates_updates_and_membership_rows_go_in_batches_with_per_item_results(
    rig: Callable[..., Rig],
) -> None:
    r = rig()
    requests = [create(f"user{i}") for i in range(5)]
    requests.append(
        WriteRequest(WriteKind.UPDATE, "sys_user", {"title": "Chief"}, ADELE, ("title",))
    )
    requests.append(
        WriteRequest(
            WriteKind.CREATE,
            "sys_user_group",
            {"name": "Batch Group"},
            fields=("name",),
        )
    )
    seen: list[WriteResult] = []
    results = write_batched(r.client, requests, batch_size=3, on_result=seen.append)

    assert r.instance.batches == 3 and r.instance.singles == []  # 3 + 2 + 2, evened out
    assert [res.request for res in results] == requests
    assert len(seen) == len(requests) and all(res.ok and res.batched for res in results)
    created = {u["user_name"]: u["sys_id"] for u in r.instance.users()}
    for res in results[:5]:
        assert res.record is not None and set(res.record) == {"sys_id", *USER_FIELDS}
        assert created[res.record["user_name"]] == res.sys_id
    assert results[5].record == {"sys_id": ADELE, "title": "Chief"}
    group = results[6]
    assert group.record is not None and group.record["name"] == "Batch Group"

    # membership rows: two adds and the removal of one of them, then a group delete
    assert group.sys_id is not None
    add = [
        WriteRequest(
            WriteKind.CREATE,
            "sys_user_grmember",
            {"user": res.sys_id or "", "group": group.sys_id},
            fields=("user", "group"),
        )
        for res in results[:2]
    ]
    rows = write_batched(r.client, add, batch_size=10)
    assert all(res.ok for res in rows)
    assert rows[0].record is not None and rows[0].record["group"] == group.sys_id
    members = [m for m in r.instance.app.records("sys_user_grmember") if m["group"] == group.sys_id]
    assert len(members) == 2
    removal = [WriteRequest(WriteKind.DELETE, "sys_user_grmember", sys_id=rows[0].sys_id)]
    removal.append(WriteRequest(WriteKind.DELETE, "sys_user_grmember", sys_id=rows[1].sys_id))
    gone = write_batched(r.client, removal, batch_size=10)
    assert all(res.ok and res.record is None for res in gone)
    assert not [
        m for m in r.instance.app.records("sys_user_grmember") if m["group"] == group.sys_id
    ]
    assert r.instance.batches == 5 and r.instance.singles == []


def test_one_failing_sub_request_fails_alone_and_is_not_sent_again(
    rig: Callable[..., Rig],
) -> None:
    r = rig()
    requests = [
        create("first"),
        WriteRequest(WriteKind.UPDATE, "sys_user", {"title": "x"}, MISSING),
        create("second"),
        WriteRequest(WriteKind.CREATE, "sys_user", {"user_name": "auditor-twin"}, fields=()),
    ]
    results = write_batched(r.client, requests, batch_size=10)

    assert r.instance.batches == 1 and r.instance.singles == []
    assert results[0].ok and results[2].ok and results[3].ok
    failed = results[1]
    assert isinstance(failed.error, NotFoundError)
    assert failed.sys_id == MISSING and "No Record found" in str(failed.error)
    assert names(r.instance).count("first") == 1 and names(r.instance).count("second") == 1


def test_unserviced_requests_are_sent_again_one_by_one_and_a_spent_quota_is_not_slept_on(
    rig: Callable[..., Rig],
) -> None:
    r = rig(rate_limit_per_hour=3)
    requests = [create(f"quota{i}") for i in range(5)]
    results = write_batched(r.client, requests, batch_size=5)

    assert r.instance.batches == 1
    assert [res.batched for res in results] == [True, True, True, False, False]
    assert all(res.ok for res in results[:3])
    # each unserviced create went alone once: refused (429 until the hour's window moves on),
    # which is a spent quota: not slept on (issue 14), failed for the next cycle
    assert r.instance.singles == ["POST"] * 2
    assert all(isinstance(res.error, TransientError) for res in results[3:])
    assert r.clock.now == Clock().now, "no worker slept out the quota"
    assert sorted(n for n in names(r.instance) if n.startswith("quota")) == [
        f"quota{i}" for i in range(3)
    ]


def test_a_batch_refused_as_a_whole_falls_back_to_single_requests(
    rig: Callable[..., Rig],
) -> None:
    r = rig()

    def refuse(request: Request, forward: Forward) -> Response:
        return Response(400, {"error": {"message": "Batch API disabled"}, "status": "failure"})

    r.instance.hook = refuse
    requests = [create("alpha"), create("beta")]
    requests.append(
        WriteRequest(WriteKind.UPDATE, "sys_user", {"title": "Lead"}, ADELE, ("title",))
    )
    results = write_batched(r.client, requests, batch_size=10)

    assert all(res.ok and not res.batched for res in results)
    assert r.instance.singles == ["POST", "POST", "PATCH"]
    assert names(r.instance).count("alpha") == 1
    assert results[0].record is not None and set(results[0].record) == {"sys_id", *USER_FIELDS}


def test_a_batch_lost_after_it_was_applied_never_creates_twice(rig: Callable[..., Rig]) -> None:
    r = rig()

    def lose(request: Request, forward: Forward) -> Response:  # applied, then a proxy fails
        forward(request)
        return Response(502, "<html>Bad Gateway</html>", {"Content-Type": "text/html"})

    r.instance.hook = lose
    requests = [
        create("gamma"),
        WriteRequest(WriteKind.UPDATE, "sys_user", {"title": "Again"}, ADELE, ("title",)),
    ]
    results = write_batched(r.client, requests, batch_size=10)

    assert names(r.instance).count("gamma") == 1  # landed once, not sent again
    assert isinstance(results[0].error, TransientError) and results[0].sys_id is None
    assert "not sent again" in str(results[0].error)
    assert results[1].ok and not results[1].batched  # an update is safe to repeat
    assert r.instance.singles == ["PATCH"]


def _rewrite(change: Callable[[dict[str, Any]], None]) -> BatchHook:
    def hook(request: Request, forward: Forward) -> Response:
        response = forward(request)
        body = dict(response.body)
        change(body)
        return Response(response.status, body, response.headers)

    return hook


def _sub_body(item: dict[str, Any], value: Any) -> None:
    item["body"] = base64.b64encode(json.dumps(value).encode()).decode()


def test_crafted_batch_answers_cannot_cause_a_double_create_or_a_wrong_link(
    rig: Callable[..., Rig],
) -> None:
    r = rig()

    def craft(body: dict[str, Any]) -> None:
        items = body["serviced_requests"]
        _sub_body(items[1], {"result": {"sys_id": SERVICE_DESK, "title": "x"}})  # other record
        _sub_body(items[2], {"result": {"user_name": "no id"}})  # a create without sys_id
        items[4]["body"] = "%%% not base64"  # an update with garbage
        forged = {"id": "99", "status_code": 201, "body": items[0]["body"]}
        body["serviced_requests"] = [items[0], items[1], items[2], items[4], forged]
        # item 3 (a create) is answered nowhere

    r.instance.hook = _rewrite(craft)
    requests = [
        create("delta"),
        WriteRequest(WriteKind.UPDATE, "sys_user", {"title": "x"}, ADELE, ("title",)),
        create("epsilon"),
        create("zeta"),
        WriteRequest(WriteKind.UPDATE, "sys_user", {"title": "y"}, ADELE, ("title",)),
    ]
    results = write_batched(r.client, requests, batch_size=10)

    assert results[0].ok and results[0].record is not None
    assert results[0].record["user_name"] == "delta"
    assert results[1].error is not None and "another record" in str(results[1].error)
    assert results[1].sys_id == ADELE
    for lost in (results[2], results[3]):
        assert isinstance(lost.error, TransientError) and lost.sys_id is None
    assert results[4].ok and not results[4].batched  # garbage answer to an update: sent again
    assert r.instance.singles == ["PATCH"]
    for name in ("delta", "epsilon", "zeta"):
        assert names(r.instance).count(name) == 1


def test_error_text_from_the_instance_is_made_printable(rig: Callable[..., Rig]) -> None:
    r = rig()

    def craft(body: dict[str, Any]) -> None:
        item = body["serviced_requests"][0]
        item["status_code"] = 400
        _sub_body(item, {"error": {"message": "bad\x1b[31m\nline", "detail": "x" * 5000}})

    r.instance.hook = _rewrite(craft)
    results = write_batched(r.client, [create("eta"), create("theta")], batch_size=10)
    text = str(results[0].error)
    assert "\x1b" not in text and "\n" not in text and len(text) < 800
    assert results[1].ok


def test_a_stopped_run_sends_no_further_batch(rig: Callable[..., Rig]) -> None:
    r = rig()
    sent: list[WriteResult] = []
    results = write_batched(
        r.client,
        [create(f"stop{i}") for i in range(4)],
        batch_size=2,
        on_result=sent.append,
        stop=lambda: len(sent) >= 2,
    )
    assert [res.started for res in results] == [True, True, False, False]
    assert r.instance.batches == 1
    assert not [n for n in names(r.instance) if n in ("stop2", "stop3")]


def test_a_read_only_client_writes_nothing(rig: Callable[..., Rig]) -> None:
    r = rig(read_only=True)
    before = len(r.instance.users())
    with pytest.raises(WriteBlockedError):
        write_batched(r.client, [create("iota"), create("kappa")], batch_size=10)
    assert r.instance.batches == 0 and len(r.instance.users()) == before


def test_batch_size_one_sends_single_requests_with_minimal_fields(
    rig: Callable[..., Rig],
) -> None:
    r = rig()
    results = write_batched(r.client, [create("lambda"), create("mu")], batch_size=1)
    assert r.instance.batches == 0 and r.instance.singles == ["POST", "POST"]
    assert all(
        res.record is not None and set(res.record) == {"sys_id", *USER_FIELDS} for res in results
    )
    with pytest.raises(ValueError, match="batch_size"):
        write_batched(r.client, [], batch_size=0)


def test_batches_run_concurrently_and_results_keep_the_requests_order(
    rig: Callable[..., Rig],
) -> None:
    r = rig(max_concurrent=4)
    r.instance.app.set_concurrency_latency(150)  # long enough to overlap on a loaded machine
    requests = [create(f"par{i}") for i in range(16)]
    results = write_batched(r.client, requests, batch_size=2, concurrency=4)
    assert [res.record["user_name"] if res.record else "" for res in results] == [
        f"par{i}" for i in range(16)
    ]
    assert r.instance.batches == 8 and r.instance.app.peak_concurrency() >= 2  # 16 in 4 x 2
