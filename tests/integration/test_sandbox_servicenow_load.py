"""The sandbox instance under load and limits, as real instances behave (issue 14 item 1):
session cookies and one request at a time per session, the nodes' thread pools and queues,
rate-limit rules and their headers, row read rules applied after sysparm_limit, the Batch API's
time limit, and /api/now/v1 answering 404 when no rows come back."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
import requests

from snsync.errors import FixtureError
from snsync.sandbox.demo_instance import DEMO_PASSWORD, demo_instance
from snsync.sandbox.servicenow import ServiceNowApp
from tests.integration.sn_harness import ADMIN, SNSYNC, Instance, Launch, listener_fixtures

pytestmark = pytest.mark.integration
server, start = listener_fixtures()
USERS = "/api/now/table/sys_user"


def parallel(count: int, call: Any) -> list[requests.Response]:
    """`count` calls started together (a barrier), their answers in order."""
    barrier = threading.Barrier(count)

    def one(index: int) -> requests.Response:
        barrier.wait()
        return call(index)

    with ThreadPoolExecutor(max_workers=count) as pool:
        return list(pool.map(one, range(count)))


def plain_get(sn: Instance, path: str = USERS, **kwargs: Any) -> requests.Response:
    """A request with no cookie jar: a session of its own."""
    return requests.get(sn.base_url + path, auth=SNSYNC, verify=sn.ca, timeout=30, **kwargs)


# --- sessions ------------------------------------------------------------------------------


def test_first_answer_sets_session_cookies_and_the_jar_keeps_one_session(start: Launch) -> None:
    sn: Instance = start()
    first = sn.call("GET", USERS, params={"sysparm_limit": "1"})
    cookies = first.headers["Set-Cookie"]
    assert "JSESSIONID=" in cookies and "glide_user_route=glide." in cookies
    assert "Secure" in cookies and "HttpOnly" in cookies
    again = sn.call("GET", USERS, params={"sysparm_limit": "1"})
    assert "Set-Cookie" not in again.headers
    assert sn.app.sessions_created() == 1
    plain_get(sn)
    plain_get(sn)
    assert sn.app.sessions_created() == 3  # no cookie sent: a new session each time


def test_requests_sharing_a_session_cookie_are_served_one_at_a_time(start: Launch) -> None:
    sn: Instance = start()
    sn.app.set_concurrency_latency(150)
    sn.call("GET", USERS, params={"sysparm_limit": "1"})  # the jar now holds the session
    cookie = {"JSESSIONID": sn.session.cookies["JSESSIONID"]}
    answers = parallel(4, lambda _: plain_get(sn, cookies=cookie))
    assert [a.status_code for a in answers] == [200] * 4
    assert sn.app.peak_concurrency() == 1
    assert sn.app.sessions_created() == 1


def test_without_serialisation_one_session_runs_in_parallel(start: Launch) -> None:
    sn: Instance = start(serialize_sessions=False)
    sn.app.set_concurrency_latency(150)
    sn.call("GET", USERS, params={"sysparm_limit": "1"})
    cookie = {"JSESSIONID": sn.session.cookies["JSESSIONID"]}
    answers = parallel(4, lambda _: plain_get(sn, cookies=cookie))
    assert [a.status_code for a in answers] == [200] * 4
    assert sn.app.peak_concurrency() > 1


def test_an_unknown_session_cookie_starts_a_new_session(start: Launch) -> None:
    sn: Instance = start()
    answer = plain_get(sn, cookies={"JSESSIONID": "FORGED"})
    assert "JSESSIONID=" in answer.headers["Set-Cookie"]
    assert "FORGED" not in answer.headers["Set-Cookie"]


# --- node pool ------------------------------------------------------------------------------


def test_past_a_nodes_queue_requests_get_429_with_retry_after(start: Launch) -> None:
    sn: Instance = start(max_concurrent=2, queue=1)  # 2 nodes x 1 thread, 1 queued each
    sn.app.set_concurrency_latency(500)
    answers = parallel(6, lambda _: plain_get(sn))
    statuses = sorted(a.status_code for a in answers)
    assert statuses == [200, 200, 200, 200, 429, 429]
    refused = next(a for a in answers if a.status_code == 429)
    assert refused.headers["Retry-After"] == "1"
    assert refused.json()["error"]["message"] == "Too Many Requests"
    assert sn.app.peak_concurrency() == 2


def test_the_default_pool_is_two_nodes_of_four(start: Launch) -> None:
    sn: Instance = start()
    sn.app.set_concurrency_latency(300)
    answers = parallel(12, lambda _: plain_get(sn))
    assert [a.status_code for a in answers] == [200] * 12
    assert sn.app.peak_concurrency() == 8


# --- rate-limit rules -------------------------------------------------------------------------


def test_rate_limit_headers_on_every_answer_and_429_past_the_budget(start: Launch) -> None:
    sn: Instance = start(rate_limit_per_hour=3)
    answers = [sn.call("GET", USERS) for _ in range(3)]
    for answer in answers:
        assert answer.status_code == 200
        assert answer.headers["X-RateLimit-Limit"] == "3"
        assert int(answer.headers["X-RateLimit-Reset"]) % 3600 == 0
        assert len(answer.headers["X-RateLimit-Rule"]) == 32
    over = sn.call("GET", USERS)
    assert over.status_code == 429
    assert int(over.headers["Retry-After"]) == 45 * 60  # the clock stands at 10:15
    assert over.headers["X-RateLimit-Rule"] == answers[0].headers["X-RateLimit-Rule"]
    assert "X-RateLimit-Limit" not in start().call("GET", USERS).headers  # no rule, no headers


# --- read rules ------------------------------------------------------------------------------


def read_rules_fixture(**extra: Any) -> dict[str, Any]:
    fixture = {"accounts": demo_instance()["accounts"]}  # admin, snsync, auditor: active users
    people = [
        {"sys_id": f"{n:032x}", "user_name": f"p{n:02}", "active": n % 3 == 0} for n in range(12)
    ]
    fixture["tables"] = {"sys_user": people}
    fixture["read_rules"] = [{"table": "sys_user", "condition": "active=true", **extra}]
    return fixture


def keyset_pages(sn: Instance, auth: Any, limit: int) -> list[list[str]]:
    """Keyset pages of user_names, read until a page comes back empty."""
    pages: list[list[str]] = []
    last = ""
    for _ in range(20):
        query = (f"sys_id>{last}^" if last else "") + "ORDERBYsys_id"
        params = {"sysparm_query": query, "sysparm_limit": str(limit)}
        rows = sn.result(USERS, params=params, auth=auth)
        if not rows:
            return pages
        pages.append([r["user_name"] for r in rows])
        last = rows[-1]["sys_id"]
    raise AssertionError("endless pages")


def test_read_rules_hide_rows_after_the_limit_so_pages_come_back_short(start: Launch) -> None:
    sn: Instance = start(read_rules_fixture())
    first = sn.call("GET", USERS, params={"sysparm_limit": "4", "sysparm_query": "ORDERBYsys_id"})
    assert [r["user_name"] for r in first.json()["result"]] == ["p00", "p03"]
    assert first.headers["X-Total-Count"] == "15"  # counts rows the account cannot see
    short = sn.result(USERS, params={"sysparm_limit": "2", "sysparm_offset": "1"})
    assert short == []  # empty while more follow
    pages = keyset_pages(sn, SNSYNC, 4)
    names = [name for page in pages for name in page]
    assert names[:4] == ["p00", "p03", "p06", "p09"]
    assert sorted(names[4:]) == ["admin", "auditor", "snsync"]
    assert pages[0] == ["p00", "p03"] and len(pages) > 2  # short pages, then more
    admin_pages = keyset_pages(sn, ADMIN, 4)
    assert sum(len(page) for page in admin_pages) == 15  # admin is not restricted


def test_a_hidden_record_answers_404_to_read_and_write(start: Launch) -> None:
    sn: Instance = start(read_rules_fixture())
    hidden = f"{1:032x}"
    assert sn.call("GET", f"{USERS}/{hidden}").status_code == 404
    assert sn.call("PATCH", f"{USERS}/{hidden}", json={"title": "x"}).status_code == 404
    assert sn.call("GET", f"{USERS}/{hidden}", auth=ADMIN).status_code == 200


def test_a_rule_can_name_the_accounts_it_restricts(start: Launch) -> None:
    sn: Instance = start(read_rules_fixture(accounts=["auditor"]))
    assert len(sn.result(USERS)) == 15
    auditor = ("auditor", DEMO_PASSWORD)
    assert len(sn.result(USERS, auth=auditor)) == 7


@pytest.mark.parametrize(
    ("rules", "message"),
    [
        ({}, "instance fixture: read_rules: must be a list of {table, condition}"),
        ([{"table": "nope", "condition": ""}], "instance fixture: read_rules[0].table: no table"),
        ([{"table": "sys_user"}], "instance fixture: read_rules[0].condition: must be an encoded"),
        (
            [{"table": "sys_user", "condition": "", "accounts": ["ghost"]}],
            "instance fixture: read_rules[0].accounts: must be a list of account user_names",
        ),
    ],
)
def test_bad_read_rules_are_one_line_errors(rules: Any, message: str) -> None:
    fixture = demo_instance()
    fixture["read_rules"] = rules
    with pytest.raises(FixtureError) as raised:
        ServiceNowApp(fixture)
    assert str(raised.value).startswith(message)


# --- batch time limit and v1 ------------------------------------------------------------------


def test_a_batch_past_its_time_limit_returns_the_rest_unserviced(start: Launch) -> None:
    import base64

    sn: Instance = start(batch_time_limit_s=0.3)
    sn.app.set_concurrency_latency(200)
    items = [
        {"id": str(n), "method": "GET", "url": f"{USERS}?sysparm_limit=1", "body": ""}
        for n in range(5)
    ]
    body = sn.call("POST", "/api/now/v1/batch", json={"rest_requests": items}).json()
    assert [s["id"] for s in body["serviced_requests"]] == ["0", "1"]
    assert body["unserviced_requests"] == ["2", "3", "4"]
    assert base64.b64decode(body["serviced_requests"][0]["body"])


def test_v1_answers_404_when_no_rows_come_back_unversioned_and_v2_answer_empty(
    start: Launch,
) -> None:
    sn: Instance = start()
    params = {"sysparm_query": "user_name=nobody"}
    v1 = sn.call("GET", "/api/now/v1/table/sys_user", params=params)
    assert v1.status_code == 404
    assert v1.json()["error"]["message"] == "No Record found"
    for path in ("/api/now/table/sys_user", "/api/now/v2/table/sys_user"):
        answer = sn.call("GET", path, params=params)
        assert (answer.status_code, answer.json()) == (200, {"result": []})
    assert sn.call("GET", "/api/now/v1/table/sys_user", params={"sysparm_limit": "1"}).ok
