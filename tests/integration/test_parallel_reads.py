"""Group members read through parallel `$batch` requests, through the sandbox: paging inside a
batch is followed, a throttled sub-response is read again on its own, and a crafted batch answer
(a next link to another origin, a value that is not a list) sends nothing elsewhere and leaves no
membership out."""

from __future__ import annotations

import json
import threading
from collections.abc import Callable
from dataclasses import replace
from typing import Any

from snsync.sandbox.runner import RunningSandbox
from snsync.sandbox.server import Request, Response, SandboxServer

from .conftest import ServiceNowAdmin, Snsync
from .test_bounds import Recorder, elsewhere  # noqa: F401 (the fixture)
from .test_sync_groups import AGENTS, members

AGENTS_MEMBERS = 6  # the demo tenant's ServiceNow Agents group (test_sync_groups)
BatchEdit = Callable[[list[dict[str, Any]]], None]


class GraphLog:
    """What the sandbox's Graph app was asked (method and path), wrapped around it."""

    def __init__(self, sandbox: RunningSandbox, small_pages: bool, edit: BatchEdit | None) -> None:
        self.seen: list[tuple[str, str]] = []
        self.lock = threading.Lock()
        app = sandbox.graph_app
        original = app.handle

        def handle(request: Request) -> Response:
            with self.lock:
                self.seen.append((request.method, request.path))
            batch = request.path.endswith("/$batch")
            if batch and small_pages:  # members two a page, so that paging shows
                request = replace(request, body=request.body.replace(b"$top=999", b"$top=2"))
            response = original(request)
            if not batch or edit is None or response.status != 200:
                return response
            body = json.loads(response.body) if isinstance(response.body, bytes) else response.body
            edit(body["responses"])
            return Response(200, body, response.headers)

        app.handle = handle  # type: ignore[method-assign]

    def member_gets(self) -> int:
        return sum(1 for m, p in self.seen if m == "GET" and p.endswith("/members"))

    def batches(self) -> int:
        return sum(1 for _, p in self.seen if p.endswith("/$batch"))


def member_answers(responses: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The sub-responses that list members (a `value` list, where a group's read has none)."""
    return [r for r in responses if isinstance(r.get("body"), dict) and "value" in r["body"]]


def test_members_come_through_batches_and_their_pages_are_followed(
    snsync: Snsync, sandbox: RunningSandbox, sn_admin: ServiceNowAdmin
) -> None:
    log = GraphLog(sandbox, small_pages=True, edit=None)
    assert snsync("run", "--once").exit_code == 0
    assert len(members(sn_admin, AGENTS)) == AGENTS_MEMBERS
    assert log.member_gets() == 0, "every member page came inside a batch"
    assert log.batches() >= 1 + AGENTS_MEMBERS // 2  # one more round per page of the group


def test_a_throttled_sub_response_is_read_again_on_its_own(
    snsync: Snsync, sandbox: RunningSandbox, sn_admin: ServiceNowAdmin
) -> None:
    throttled: list[str] = []

    def throttle_first(responses: list[dict[str, Any]]) -> None:
        found = member_answers(responses)
        if found and not throttled:
            found[0].update(status=429, headers={"Retry-After": "0"}, body={"error": {}})
            throttled.append(found[0]["id"])

    log = GraphLog(sandbox, small_pages=False, edit=throttle_first)
    result = snsync("run", "--once", "--output", "json")
    assert result.exit_code == 0, result.output
    assert throttled and log.member_gets() == 1, "the throttled listing, read on its own"
    assert len(members(sn_admin, AGENTS)) == AGENTS_MEMBERS
    assert sn_admin.rows("sys_user_grmember")  # nothing was left out for the throttled group


def test_a_crafted_batch_answer_sends_nothing_elsewhere_and_loses_no_member(
    snsync: Snsync,
    sandbox: RunningSandbox,
    sn_admin: ServiceNowAdmin,
    elsewhere: tuple[SandboxServer, Recorder],  # noqa: F811
) -> None:
    server, recorder = elsewhere

    def craft(responses: list[dict[str, Any]]) -> None:
        for number, answer in enumerate(member_answers(responses)):
            if number % 2:
                answer["body"]["value"] = {"not": "a list"}
            else:
                link = f"{server.base_url}/v1.0/groups/x/members?$skiptoken=steal"
                answer["body"]["@odata.nextLink"] = link

    log = GraphLog(sandbox, small_pages=False, edit=craft)
    result = snsync("run", "--once", "--output", "json")
    assert result.exit_code == 0, result.output
    assert not recorder.requests, "nothing may be sent to another origin"
    assert log.member_gets() >= 1, "the crafted listings were read again on their own"
    assert len(members(sn_admin, AGENTS)) == AGENTS_MEMBERS
