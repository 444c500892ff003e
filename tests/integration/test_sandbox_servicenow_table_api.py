"""The Table API's finer points as a real instance has them (issue 14 item 4): inserts keeping
their own sys_id, POST without a body, the web tier's header-size limit, masked passwords, dates
shown in the reader's time zone and format, and RLQUERY / JOIN evaluated."""

from __future__ import annotations

from typing import Any

import pytest

from snsync.sandbox.demo_instance import DEMO_PASSWORD, demo_instance, demo_sys_id
from tests.integration.sn_harness import ADMIN, Instance, Launch, listener_fixtures

pytestmark = pytest.mark.integration
server, start = listener_fixtures()
USERS = "/api/now/table/sys_user"
SERVICE_DESK = demo_sys_id("sys_user_group", "Service Desk")
CAB = demo_sys_id("sys_user_group", "CAB Approval")


def names(rows: list[dict[str, Any]]) -> list[str]:
    return sorted(row["user_name"] for row in rows)


def query(sn: Instance, text: str, table: str = "sys_user") -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = sn.result(
        f"/api/now/table/{table}", params={"sysparm_query": text}
    )
    return rows


def test_an_insert_keeps_its_own_sys_id_of_any_32_characters(start: Launch) -> None:
    sn: Instance = start()
    own = "ABCDEF0123456789abcdef-_X.Y~Z!!1"
    created = sn.call("POST", USERS, json={"sys_id": own, "user_name": "own.id"})
    assert created.status_code == 201, created.text
    assert created.json()["result"]["sys_id"] == own
    assert sn.result(f"{USERS}/{own}")["user_name"] == "own.id"
    assert [r["user_name"] for r in query(sn, f"sys_id={own}")] == ["own.id"]
    again = sn.call("POST", USERS, json={"sys_id": own.lower(), "user_name": "twin"})
    assert again.status_code == 403  # sys_ids compare without case, as the database does
    short = sn.call("POST", USERS, json={"sys_id": "short", "user_name": "short.id"})
    assert (
        len(short.json()["result"]["sys_id"]) == 32 and short.json()["result"]["sys_id"] != "short"
    )


def test_keyset_paging_sees_upper_case_ids_in_order(start: Launch) -> None:
    sn: Instance = start()
    for index, prefix in enumerate(("0" * 31 + "A", "0" * 31 + "b", "0" * 31 + "C")):
        sn.call("POST", USERS, json={"sys_id": prefix, "user_name": f"k{index}"})
    rows = query(sn, f"sys_id>{'0' * 31}a^ORDERBYsys_id")
    assert [r["user_name"] for r in rows[:2]] == ["k1", "k2"]


@pytest.mark.parametrize("condition", ["", "user_nameSTARTSWITHk^"])
def test_keyset_pages_stay_stable_when_rows_change_between_pages(
    start: Launch, condition: str
) -> None:
    # Each page starts after the cursor as the table is then: a row inserted before the cursor
    # or deleted after it shifts nothing; X-Total-Count counts the rows matching the page's
    # query (after the cursor). With and without a condition beside the keyset one.
    sn: Instance = start()
    for n in range(10):
        sn.call("POST", USERS, json={"sys_id": f"{3 * n + 3:032x}", "user_name": f"k{n}"})

    def matching(after: str) -> list[str]:
        rows = sn.app.records("sys_user")
        shown = [r for r in rows if not condition or r["user_name"].startswith("k")]
        return sorted(r["sys_id"].lower() for r in shown if r["sys_id"].lower() > after)

    last, served, rounds = "", [], 0
    while True:
        cursor = f"sys_id>{last}^" if last else ""
        params = {"sysparm_query": f"{condition}{cursor}ORDERBYsys_id", "sysparm_limit": "3"}
        expected = matching(last)
        response = sn.get(USERS, params=params)
        page = [row["sys_id"] for row in response.json()["result"]]
        assert page == expected[:3]
        assert response.headers["X-Total-Count"] == str(len(expected))
        if not page:
            break
        served += page
        last, rounds = page[-1], rounds + 1
        before = f"{int(last, 16) - 1:032x}" if all(c in "0123456789abcdef" for c in last) else ""
        if before and before not in served:
            sn.call("POST", USERS, json={"sys_id": before, "user_name": f"kb{rounds}"})
        after = matching(last)
        if after:
            gone = sn.call("DELETE", f"{USERS}/{after[0]}", auth=ADMIN)
            assert gone.status_code == 204, gone.text
    assert rounds >= 2 and served == sorted(set(served))
    backwards = query(sn, f"{condition}ORDERBYDESCsys_id")
    assert [r["sys_id"].lower() for r in backwards] == matching("")[::-1]


def test_post_without_a_body_creates_a_record_of_defaults(start: Launch) -> None:
    sn: Instance = start()
    created = sn.call("POST", "/api/now/table/sys_user_group")
    assert created.status_code == 201, created.text
    group = created.json()["result"]
    assert (group["name"], group["active"], group["sys_created_by"]) == ("", "true", "snsync")
    empty_patch = sn.call("PATCH", f"/api/now/table/sys_user_group/{group['sys_id']}")
    assert empty_patch.status_code == 400


def test_past_the_header_size_limit_the_web_tier_answers_its_html_page(start: Launch) -> None:
    sn: Instance = start()
    ids = ",".join(f"{n:032x}" for n in range(300))  # ~10 KB of sys_ids in one IN query
    refused = sn.call("GET", USERS, params={"sysparm_query": f"sys_idIN{ids}"})
    assert refused.status_code == 400
    assert refused.headers["Content-Type"].startswith("text/html")
    assert "Request header is too large" in refused.text
    assert "Set-Cookie" not in refused.headers
    roomy: Instance = start(url_limit_bytes=23552)
    assert roomy.call("GET", USERS, params={"sysparm_query": f"sys_idIN{ids}"}).status_code == 200
    with pytest.raises(ValueError, match="between 8192 and 23552"):
        start(url_limit_bytes=4096)


def test_a_batch_carries_a_long_query_past_the_limit(start: Launch) -> None:
    import base64

    sn: Instance = start()
    ids = ",".join(f"{n:032x}" for n in range(300))
    item = {"id": "1", "method": "GET", "url": f"{USERS}?sysparm_query=sys_idIN{ids}"}
    body = sn.call("POST", "/api/now/v1/batch", json={"rest_requests": [item]}).json()
    (served,) = body["serviced_requests"]
    assert served["status_code"] == 200
    assert base64.b64decode(served["body"]).startswith(b'{"result"')


def test_user_password_is_stored_hashed_and_shown_masked(start: Launch) -> None:
    sn: Instance = start()
    created = sn.call(
        "POST",
        USERS,
        json={"user_name": "pw.user", "user_password": "S3cret!"},
        params={"sysparm_display_value": "all"},
    )
    shown = created.json()["result"]["user_password"]
    assert shown["display_value"] == "********"
    assert "S3cret!" not in created.text
    assert "S3cret!" not in str(sn.app.records("sys_user"))
    (plain,) = query(sn, "user_name=admin")
    assert plain["user_password"] == ""


def test_date_display_values_follow_the_readers_time_zone_and_format(start: Launch) -> None:
    fixture = demo_instance()
    for user in fixture["tables"]["sys_user"]:
        if user["user_name"] == "snsync":
            user.update(time_zone="Europe/Berlin", date_format="dd.MM.yyyy")
    sn: Instance = start(fixture)
    adele = demo_sys_id("sys_user", "adele.vance@contoso.example")
    params = {"sysparm_display_value": "all", "sysparm_fields": "sys_created_on"}
    mine = sn.result(f"{USERS}/{adele}", params=params)["sys_created_on"]
    assert mine == {"display_value": "15.01.2024 10:00:00", "value": "2024-01-15 09:00:00"}
    admins = sn.result(f"{USERS}/{adele}", params=params, auth=ADMIN)["sys_created_on"]
    assert admins["display_value"] == "2024-01-15 09:00:00"  # the system's: UTC, yyyy-MM-dd


def test_rlquery_keeps_records_by_their_related_rows(start: Launch) -> None:
    sn: Instance = start()
    members = query(
        sn, f"RLQUERYsys_user_grmember.user,>=1^group={SERVICE_DESK}^ENDRLQUERY^active=true"
    )
    assert names(members) == ["alex.wilber@contoso.example", "legacy.user@contoso.example"]
    outsiders = query(sn, "RLQUERYsys_user_grmember.user,=0^ENDRLQUERY")
    assert "adele.vance@contoso.example" in names(outsiders)
    assert "alex.wilber@contoso.example" not in names(outsiders)
    admins = query(sn, "RLQUERYsys_user_has_role.user,>0^role.name=admin^ENDRLQUERY")
    assert names(admins) == ["admin"]


def test_join_keeps_records_with_a_matching_row_in_the_other_table(start: Launch) -> None:
    sn: Instance = start()
    cab = query(sn, f"JOINsys_user.sys_id=sys_user_grmember.user!group={CAB}")
    assert names(cab) == ["admin", "megan.bowen@contoso.example"]
    groups = query(
        sn,
        "JOINsys_user_group.sys_id=sys_group_has_role.group!role.name=itil",
        table="sys_user_group",
    )
    assert [g["name"] for g in groups] == ["Service Desk"]
    unknown = query(sn, "JOINsys_user.sys_id=no_table.user!x=y")
    assert len(unknown) == len(query(sn, ""))  # a join to nothing is dropped, as a typo is


def test_the_auditor_reads_dates_in_the_system_style(start: Launch) -> None:
    sn: Instance = start()
    rows = sn.result(
        USERS,
        params={"sysparm_display_value": "true", "sysparm_limit": "1"},
        auth=("auditor", DEMO_PASSWORD),
    )
    assert rows[0]["sys_created_on"] == "2024-01-15 09:00:00"
