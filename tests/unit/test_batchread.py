"""Narrow unit tests of the ServiceNow batched reads (servicenow/batchread.py, answers faked by
`responses`): a batched page goes on from where it stands, a read-only client may send the
batch of GETs and counts it as a read. The attacks run through the sandbox
(tests/integration/test_opening_batches.py)."""

from __future__ import annotations

import base64
import json
from typing import Any
from urllib.parse import parse_qs, urlsplit

import responses

from snsync.servicenow.batchread import Changed, TableRead, read_together

from .test_http_clients import SN, http, sn_client

BATCH = f"{SN}/api/now/v1/batch"


def sub(item_id: str, rows: list[dict[str, str]], count: int) -> dict[str, Any]:
    body = base64.b64encode(json.dumps({"result": rows}).encode()).decode()
    headers = [{"name": "X-Total-Count", "value": str(count)}]
    return {"id": item_id, "status_code": 200, "headers": headers, "body": body}


def batch_answer(*items: dict[str, Any]) -> Any:
    def answer(request: Any) -> tuple[int, dict[str, str], str]:
        batch_id = json.loads(request.body)["batch_request_id"]
        payload = {"batch_request_id": batch_id, "serviced_requests": list(items)}
        return 200, {}, json.dumps(payload)

    return answer


@responses.activate
def test_a_batched_page_with_rows_goes_on_from_its_last_row_alone() -> None:
    row = {"sys_id": "a" * 32, "name": "x"}
    responses.add_callback(
        responses.POST, BATCH, callback=batch_answer(sub("0", [row], 1), sub("1", [], 0))
    )
    responses.get(f"{SN}/api/now/table/t1", json={"result": []}, headers={"X-Total-Count": "0"})
    client = http(read_only=True)
    reads = [TableRead("t1", ("name",)), TableRead("t2", ("name",))]
    assert read_together(sn_client(client), reads) == [[row], []]
    (batch, after) = responses.calls
    asked = json.loads(batch.request.body or "{}")["rest_requests"]
    assert [urlsplit(r["url"]).path for r in asked] == ["/api/now/table/t1", "/api/now/table/t2"]
    query = parse_qs(urlsplit(str(after.request.url)).query)["sysparm_query"][0]
    assert query == f"sys_id>{'a' * 32}^ORDERBYsys_id"
    assert (client.counter.reads, client.counter.writes) == (2, 0), "the batch of GETs: a read"


@responses.activate
def test_an_unanswered_part_is_read_alone_from_its_first_page() -> None:
    responses.add_callback(responses.POST, BATCH, callback=batch_answer(sub("1", [], 0)))
    responses.get(f"{SN}/api/now/table/t1", json={"result": []}, headers={"X-Total-Count": "0"})
    reads = [TableRead("t1", ("name",), "active=true"), TableRead("t2", ("name",))]
    assert read_together(sn_client(http()), reads) == [[], []]
    query = parse_qs(urlsplit(str(responses.calls[1].request.url)).query)["sysparm_query"][0]
    assert query == "active=true^ORDERBYsys_id"


def test_drift_queries_are_spelled_as_the_single_reads_spell_them() -> None:
    since = "2026-01-01 00:00:00"
    assert Changed("sys_user", (), "snsync").query(since) == (
        "sys_updated_on>=2026-01-01 00:00:00^sys_updated_by!=snsync"
    )
    assert Changed("cmn_department", ()).query(since) == "sys_updated_on>=2026-01-01 00:00:00"
    assert Changed("sys_user_grmember", (), "snsync", added=True).query(since) == (
        "sys_created_on>=2026-01-01 00:00:00^sys_created_by!=snsync"
    )
