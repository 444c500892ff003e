"""`snsync plan --output json` lists exactly the writes `snsync run --once` then makes on the
same picture: same objects, tables, actions and attribute values, in the same order. Records
created during the cycle appear in the plan under placeholders; the run's results name the
sys_ids they became. The scenario has new users, managers created in the same cycle, new groups,
their memberships and a missing department created with references.create_missing."""

from __future__ import annotations

from typing import Any

from snsync.model import placeholder

from .conftest import ServiceNowAdmin, Snsync

WRITES_NOTHING = ("Skip", "StagedDisable")


def created_ids(results: list[dict[str, Any]]) -> dict[str, str]:
    """Placeholder -> the sys_id the run gave the record (created, or adopted)."""
    return {
        placeholder(r["object_type"], r["directory_id"]): r["sys_id"]
        for r in results
        if r["sys_id"] and (r["action"] == "Create" or r["adopt"])
    }


def resolved(item: dict[str, Any], ids: dict[str, str]) -> dict[str, Any]:
    """A plan item as it reads once every placeholder is replaced by its sys_id (a create's own
    sys_id included)."""
    sys_id = item["sys_id"]
    if item["action"] == "Create":
        sys_id = ids.get(placeholder(item["object_type"], item["directory_id"]), sys_id)
    return {
        "object_type": item["object_type"],
        "directory_id": item["directory_id"],
        "action": item["action"],
        "sys_id": ids.get(sys_id, sys_id),
        "changes": [(c["field"], c["old"], ids.get(c["new"], c["new"])) for c in item["changes"]],
    }


def writes(items: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [i for i in items if i["action"] not in WRITES_NOTHING and i["status"] != "Failure"]


def test_plan_lists_exactly_what_run_writes(snsync: Snsync, sn_admin: ServiceNowAdmin) -> None:
    admin = {
        "type": "basic",
        "username": "admin",  # creating departments needs write access to cmn_department
        "password_file": str(snsync.sandbox.directory / "servicenow-password.txt"),
    }
    snsync.reconfigure(references={"create_missing": True}, servicenow={"auth": admin})
    plan = snsync.json("plan")
    run = snsync.json("run", "--once")
    assert run["counts"] and all(
        r["status"] in ("Success", "Warning") for r in writes(run["results"])
    )
    ids = created_ids(run["results"])
    planned = [resolved(i, ids) for i in writes(plan["items"])]
    done = [resolved(r, {}) for r in writes(run["results"])]
    assert planned == done
    assert [i["status"] for i in plan["items"]] == [r["status"] for r in run["results"]]

    # The scenario has what the test is about, and the placeholders became real records.
    placeholders = {c["new"] for i in plan["items"] for c in i["changes"] if c["new"] in ids}
    kinds = {p.split(" ")[1] for p in placeholders}
    assert kinds == {"user", "group", "cmn_department"}
    research = sn_admin.one("cmn_department", "name=Research")
    nora = sn_admin.one("sys_user", "user_name=nora.okafor@contoso.example")
    patti = sn_admin.one("sys_user", "user_name=patti.fernandez@contoso.example")
    debra = sn_admin.one("sys_user", "user_name=debra.berger@contoso.example")
    assert nora["department"] == research["sys_id"]
    assert debra["manager"] == patti["sys_id"]  # a manager created in the same cycle
    agents = sn_admin.one("sys_user_group", "name=ServiceNow Agents")
    rows = sn_admin.rows("sys_user_grmember", f"group={agents['sys_id']}")
    planned_rows = [
        i
        for i in plan["items"]
        if i["object_type"] == "membership" and i["display_name"].startswith("ServiceNow Agents /")
    ]
    assert planned_rows and len(rows) == len(planned_rows)

    # Nothing is left to do: the plan of the next cycle is empty.
    again = snsync.json("plan")
    assert writes(again["items"]) == []
