"""A whole cycle writing through the Batch API (servicenow.batch_size): records, links and the
cached picture as with single requests; one refused sub-request fails only its object; a batch
size of 1 sends single Table API requests."""

from __future__ import annotations

import base64
import json
from dataclasses import replace
from typing import Any

import pytest

from snsync.sandbox.runner import RunningSandbox
from snsync.sandbox.server import Request, Response

from .conftest import ServiceNowAdmin, Snsync

pytestmark = pytest.mark.integration

ADELE = "adele.vance@contoso.example"


class Refusing:
    """The sandbox instance, but a batched create of one user_name is refused (400) without
    being applied, as a business rule refusing it would."""

    def __init__(self, app: Any, user_name: str) -> None:
        self.app = app
        self.user_name = user_name
        self.batches = 0

    def handle(self, request: Request) -> Response:
        if not request.path.endswith("/batch"):
            return self.app.handle(request)
        self.batches += 1
        payload = json.loads(request.body)
        kept, refused = [], []
        for item in payload["rest_requests"]:
            body = json.loads(base64.b64decode(item.get("body") or "e30="))
            (refused if body.get("user_name") == self.user_name else kept).append(item)
        payload["rest_requests"] = kept
        response = self.app.handle(replace(request, body=json.dumps(payload).encode()))
        error = {"error": {"message": "Operation Failed", "detail": "refused"}, "status": "failure"}
        for item in refused:
            response.body["serviced_requests"].append(
                {
                    "id": item["id"],
                    "status_code": 400,
                    "body": base64.b64encode(json.dumps(error).encode()).decode(),
                }
            )
        return response

    def fault_response(self, status: int, retry_after: int) -> Response:
        return self.app.fault_response(status, retry_after)


def _methods(sandbox: RunningSandbox) -> dict[str, int]:
    return dict(sandbox.servicenow.stats.by_method)


def test_a_first_sync_in_batches_then_a_repeat_run_writes_nothing(
    snsync: Snsync, sandbox: RunningSandbox, sn_admin: ServiceNowAdmin
) -> None:
    snsync.reconfigure(servicenow={"batch_size": 50, "max_concurrency": 1})
    writes_before = sandbox.servicenow_app.write_count()
    first = snsync.json("run", "--once")
    assert not [r for r in first["results"] if r["status"] == "Failure"]
    written = sandbox.servicenow_app.write_count() - writes_before
    posts = _methods(sandbox).get("POST", 0)
    assert written > 10 and posts < written / 2, (written, posts)  # batched, not one by one
    adele = sn_admin.one("sys_user", f"user_name={ADELE}")
    lee = sn_admin.one("sys_user", "user_name=lee.gu@contoso.example")
    assert adele["manager"] == lee["sys_id"]  # a manager created in an earlier wave is set

    after = sandbox.servicenow_app.write_count()
    again = snsync.json("run", "--once")
    assert sandbox.servicenow_app.write_count() == after  # links and cached picture are right
    assert "Create" not in again["counts"] and "Update" not in again["counts"]


def test_one_refused_sub_request_fails_only_its_user(
    snsync: Snsync, sandbox: RunningSandbox, sn_admin: ServiceNowAdmin
) -> None:
    snsync.reconfigure(servicenow={"batch_size": 50, "max_concurrency": 1})
    refusing = Refusing(sandbox.servicenow.app, "lee.gu@contoso.example")
    sandbox.servicenow.app = refusing
    report = snsync.json("run", "--once")
    failed = [r for r in report["results"] if r["status"] == "Failure"]
    assert refusing.batches > 0
    assert [r["display_name"] for r in failed] == ["Lee Gu"], failed
    assert failed[0]["reason"] == "ServiceNowApiError" and "refused" in failed[0]["message"]
    assert not sn_admin.rows("sys_user", "user_name=lee.gu@contoso.example")
    created = [r for r in report["results"] if r["action"] == "Create" and r["status"] != "Failure"]
    assert created and all(r["sys_id"] for r in created)


def test_batch_size_one_sends_single_requests(snsync: Snsync, sandbox: RunningSandbox) -> None:
    snsync.reconfigure(servicenow={"batch_size": 1})
    writes_before = sandbox.servicenow_app.write_count()
    report = snsync.json("run", "--once")
    assert not [r for r in report["results"] if r["status"] == "Failure"]
    written = sandbox.servicenow_app.write_count() - writes_before
    methods = _methods(sandbox)
    assert written > 10
    assert methods.get("POST", 0) + methods.get("PATCH", 0) + methods.get("PUT", 0) == written
