"""Narrow unit tests of the HTTP layer and the two clients (HTTP answers faked by `responses`);
the clients are tested for real against the sandbox in tests/integration."""

from __future__ import annotations

from typing import Any

import pytest
import requests
import responses

from snsync.config import ServiceNowConfig
from snsync.errors import (
    BadRequestError,
    ForbiddenError,
    NotFoundError,
    TransientError,
    UnauthorizedError,
    UnreadableAnswerError,
    WriteBlockedError,
)
from snsync.graph.client import GraphClient
from snsync.http import HttpClient, RetryPolicy
from snsync.redact import redact, register
from snsync.servicenow.client import TableClient

SN = "https://acme.service-now.com"
GRAPH = "https://graph.example"


def http(read_only: bool = False, sleeps: list[float] | None = None) -> HttpClient:
    record = sleeps if sleeps is not None else []
    return HttpClient(
        service="test",
        read_only=read_only,
        policy=RetryPolicy(attempts=3, base_s=0.01),
        sleep=record.append,
    )


class FakeTokens:
    def token(self) -> str:
        return "tok"


def sn_client(client: HttpClient, page_size: int = 2) -> TableClient:
    config = ServiceNowConfig.model_validate(
        {"instance": "acme", "auth": {"username": "u", "password": "p"}, "page_size": page_size}
    )
    return TableClient(config, client)


@responses.activate
def test_429_is_retried_after_the_time_asked() -> None:
    sleeps: list[float] = []
    responses.get(f"{SN}/x", status=429, headers={"Retry-After": "7"})
    responses.get(f"{SN}/x", json={"ok": True})
    response = http(sleeps=sleeps).request("GET", f"{SN}/x")
    assert response.status_code == 200 and sleeps == [7.0]


@responses.activate
def test_post_is_not_repeated_after_503_but_429_is() -> None:
    responses.post(f"{SN}/p", status=503)
    assert http().request("POST", f"{SN}/p").status_code == 503
    assert len(responses.calls) == 1
    responses.post(f"{SN}/q", status=429, headers={"Retry-After": "0"})
    responses.post(f"{SN}/q", status=201, json={})
    assert http().request("POST", f"{SN}/q").status_code == 201


@responses.activate
def test_connection_errors_retry_reads_then_give_up_as_transient() -> None:
    responses.get(f"{SN}/down", body=requests.ConnectionError("Connection refused"))
    with pytest.raises(TransientError, match="connection refused \\(after 3 attempts\\)"):
        http().request("GET", f"{SN}/down")
    assert len(responses.calls) == 3


def test_read_only_client_refuses_writes_before_sending() -> None:
    with pytest.raises(WriteBlockedError, match="read-only"):
        http(read_only=True).request("PATCH", f"{SN}/api/now/table/sys_user/x")


def test_plain_http_is_refused() -> None:
    with pytest.raises(TransientError, match="non-https"):
        http().request("GET", "http://acme.service-now.com/")


@responses.activate
def test_ca_bundle_is_passed_on_every_request(tmp_path: Any) -> None:
    seen: list[Any] = []
    client = HttpClient(service="t", ca_bundle=tmp_path / "ca.pem")
    original = client.session.request

    def spy(method: str, url: str, **kwargs: Any) -> requests.Response:
        seen.append(kwargs["verify"])
        return original(method, url, **kwargs)

    client.session.request = spy  # type: ignore[method-assign]
    responses.get(f"{SN}/v", json={})
    client.request("GET", f"{SN}/v")
    assert seen == [str(tmp_path / "ca.pem")]


@responses.activate
def test_servicenow_keyset_paging_reads_past_short_pages_until_an_empty_one() -> None:
    # Read rules apply after sysparm_limit: a short (or empty-looking) page is not the end.
    pages = [[{"sys_id": "a"}, {"sys_id": "b"}], [{"sys_id": "c"}], [{"sys_id": "d"}], []]
    for page in pages:
        responses.get(f"{SN}/api/now/table/sys_user", json={"result": page})
    rows = sn_client(http()).read_all("sys_user", ["user_name"])
    assert [r["sys_id"] for r in rows] == ["a", "b", "c", "d"]
    second = responses.calls[1].request.url or ""
    assert "sys_id%3Eb%5EORDERBYsys_id" in second and "sysparm_limit=2" in second
    assert "sys_id%3Ed%5EORDERBYsys_id" in (responses.calls[3].request.url or "")
    assert len(responses.calls) == 4


@responses.activate
def test_servicenow_keyset_steps_with_offset_past_a_page_the_read_rules_hide() -> None:
    url = f"{SN}/api/now/table/sys_user"
    answers = [
        ([{"sys_id": "a"}, {"sys_id": "b"}], 9),  # rows past no cursor: 9, before read rules
        ([], 7),  # all of c..d hidden, 7 rows past b: step on within the same keyset query
        ([], 7),  # e..f hidden as well
        ([{"sys_id": "h"}], 7),  # g hidden, h readable: the keyset goes on from h
        ([], 1),  # i hidden, and nothing past this window
    ]
    for page, count in answers:
        responses.get(url, json={"result": page}, headers={"X-Total-Count": str(count)})
    rows = sn_client(http()).read_all("sys_user", ["user_name"])
    assert [r["sys_id"] for r in rows] == ["a", "b", "h"]
    sent = [call.request.url or "" for call in responses.calls]
    assert "sys_id%3Eb" in sent[1] and "sysparm_offset" not in sent[1]
    assert "sys_id%3Eb" in sent[2] and "sysparm_offset=2" in sent[2]
    assert "sys_id%3Eb" in sent[3] and "sysparm_offset=4" in sent[3]
    assert "sys_id%3Eh" in sent[4] and "sysparm_offset" not in sent[4]
    assert len(sent) == 5


@responses.activate
def test_servicenow_an_empty_page_without_a_row_count_ends_the_read() -> None:
    url = f"{SN}/api/now/table/sys_user"
    responses.get(url, json={"result": [{"sys_id": "a"}, {"sys_id": "b"}]})
    responses.get(url, json={"result": []}, headers={"X-Total-Count": "many"})
    assert [r["sys_id"] for r in sn_client(http()).read_all("sys_user", [])] == ["a", "b"]
    assert len(responses.calls) == 2


@pytest.mark.parametrize(
    ("status", "error", "fragment"),
    [
        (401, UnauthorizedError, "check servicenow.auth"),
        (403, ForbiddenError, "lacks a role"),
        (404, NotFoundError, "No Record found"),
    ],
)
@responses.activate
def test_servicenow_errors(status: int, error: type[Exception], fragment: str) -> None:
    body = {
        "error": {"message": "No Record found" if status == 404 else "x", "detail": "d"},
        "status": "failure",
    }
    responses.get(f"{SN}/api/now/table/sys_user/abc", status=status, json=body)
    with pytest.raises(error, match=fragment):
        sn_client(http()).get("sys_user", "abc")


@responses.activate
def test_graph_follows_next_links_and_explains_missing_permission() -> None:
    responses.get(
        f"{GRAPH}/v1.0/users",
        json={"value": [{"id": "1"}], "@odata.nextLink": f"{GRAPH}/v1.0/users?p=2"},
    )
    responses.get(f"{GRAPH}/v1.0/users?p=2", json={"value": [{"id": "2"}]})
    graph = GraphClient(GRAPH, http(), FakeTokens())  # type: ignore[arg-type]
    assert [u["id"] for u in graph.list_all("users")] == ["1", "2"]
    responses.get(
        f"{GRAPH}/v1.0/servicePrincipals/x",
        status=403,
        json={
            "error": {
                "code": "Authorization_RequestDenied",
                "message": "Insufficient privileges to complete the operation.",
            }
        },
    )
    with pytest.raises(ForbiddenError, match=r"Application\.Read\.All"):
        graph.get("servicePrincipals/x")


def test_redaction_masks_registered_secrets_and_tokens() -> None:
    register("hunter2-secret")
    text = redact("pw hunter2-secret; Authorization: Bearer eyJabc.def; client_secret=zz&x=1")
    assert "hunter2" not in text and "eyJabc" not in text and "zz" not in text


@responses.activate
def test_servicenow_row_without_sys_id_is_a_clear_error() -> None:
    responses.get(f"{SN}/api/now/table/sys_user", json={"result": [{"user_name": "x"}]})
    with pytest.raises(BadRequestError, match="without a sys_id"):
        sn_client(http()).read_all("sys_user", ["user_name"])


@responses.activate
def test_servicenow_html_answer_is_retried_then_a_clear_error() -> None:
    responses.get(
        f"{SN}/api/now/table/sys_user", body="<html>login</html>", content_type="text/html"
    )
    with pytest.raises(UnreadableAnswerError, match=r"HTML page .*after 3 attempts"):
        sn_client(http()).read_all("sys_user", ["user_name"])
    assert len(responses.calls) == 3


@responses.activate
def test_a_create_whose_answer_was_lost_is_found_not_sent_twice() -> None:
    url = f"{SN}/api/now/table/sys_user"
    responses.post(url, body=requests.ConnectionError("Connection aborted"))
    landed = {"sys_id": "a" * 32, "user_name": "x", "source": "entra:1"}
    responses.get(url, json={"result": [landed]})
    responses.get(url, json={"result": []})
    record = sn_client(http()).create("sys_user", {"user_name": "x", "source": "entra:1"})
    assert record["sys_id"] == "a" * 32
    posts = [c for c in responses.calls if c.request.method == "POST"]
    assert len(posts) == 1, "found by its identity fields: not created again"
    probe = responses.calls[1].request.url or ""
    assert "source%3Dentra%3A1" in probe and "sys_created_by%3Du" in probe


@responses.activate
def test_a_create_that_did_not_land_is_sent_again() -> None:
    url = f"{SN}/api/now/table/sys_user"
    responses.post(url, body=requests.ConnectionError("Connection aborted"))
    responses.post(url, json={"result": {"sys_id": "b" * 32, "user_name": "x"}}, status=201)
    responses.get(url, json={"result": []})
    record = sn_client(http()).create("sys_user", {"user_name": "x", "source": "entra:1"})
    assert record["sys_id"] == "b" * 32


@responses.activate
def test_delete_answered_404_after_a_lost_answer_counts_as_done() -> None:
    url = f"{SN}/api/now/table/sys_user_grmember/{'c' * 32}"
    responses.delete(url, body=requests.ConnectionError("Connection aborted"))
    responses.delete(url, status=404, json={"error": {"message": "No Record found"}})
    sn_client(http()).delete("sys_user_grmember", "c" * 32)  # no error
    responses.reset()
    responses.delete(url, status=404, json={"error": {"message": "No Record found"}})
    with pytest.raises(NotFoundError):
        sn_client(http()).delete("sys_user_grmember", "c" * 32)
