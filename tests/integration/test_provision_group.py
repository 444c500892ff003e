"""`snsync provision GROUP`, run as a process against the sandbox: the group, its first members
(provision.max_group_members) as users and their membership rows; how one argument resolves;
dry run; the bound; a held disable stays held; and attacks on the group's ServiceNow record
(owned by another integration, stamped by someone else, holding a role): nothing written that
snsync does not own."""

from __future__ import annotations

import re
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from snsync.sandbox.demo_tenant import demo_group_id, demo_user_id
from snsync.sandbox.runner import RunningSandbox

from .conftest import GraphAdmin, ServiceNowAdmin, Snsync

AGENTS = "ServiceNow Agents"  # assigned; 6 direct members
APPROVERS = "ServiceNow Approvers"  # assigned; 3 user members and a nested group
ROOT = Path(__file__).resolve().parents[2]
AGENT_MEMBERS = (
    "nestor.wilke",
    "miriam.graham",
    "brian.johnson",
    "sanjay.shah",
    "emily.braun",
    "adele.vance",
)


@dataclass(frozen=True)
class Ran:
    code: int
    stdout: str
    stderr: str


def run(config: Path, *args: str) -> Ran:
    """snsync as a process, as an admin runs it."""
    done = subprocess.run(
        [sys.executable, "-m", "snsync", "--config", str(config), *args],
        capture_output=True,
        text=True,
        timeout=120,
    )
    return Ran(done.returncode, done.stdout, done.stderr)


def provision(sandbox: RunningSandbox, *args: str) -> Ran:
    return run(sandbox.config_path, "provision", *args)


def group_rows(sn_admin: ServiceNowAdmin, name: str) -> set[str]:
    """user_name of each member row of the group `name`."""
    group = sn_admin.one("sys_user_group", f"name={name}")
    users = {u["sys_id"]: u["user_name"] for u in sn_admin.rows("sys_user")}
    rows = sn_admin.rows("sys_user_grmember", f"group={group['sys_id']}")
    return {users[r["user"]].split("@")[0] for r in rows}


def writes(sandbox: RunningSandbox) -> int:
    return sandbox.servicenow_app.write_count()


def test_group_by_name_brings_its_first_members_and_their_rows(
    sandbox: RunningSandbox, sn_admin: ServiceNowAdmin, snsync: Snsync
) -> None:
    done = provision(sandbox, AGENTS.lower())
    assert done.code == 0, done.stderr
    assert f"import: group {AGENTS} id {demo_group_id(AGENTS)}, 6 user direct members" in (
        done.stdout
    )
    assert "scope: in scope: assigned (role User)" in done.stdout
    assert (
        "members: the first 5 of 6 provisioned now (provision.max_group_members is 5); the "
        "other one is synced by the next cycle (snsync run --once), or choose with --member"
    ) in done.stdout
    group = sn_admin.one("sys_user_group", f"name={AGENTS}")
    assert group["source"] == f"entra:{demo_group_id(AGENTS)}"
    first = set(AGENT_MEMBERS) - {"sanjay.shah"}  # the order Graph lists them in
    assert group_rows(sn_admin, AGENTS) == first
    assert sn_admin.rows("sys_user", "user_name=sanjay.shah@contoso.example") == []
    # The provisioning log has every write, as for a cycle.
    logged = run(sandbox.config_path, "logs", "--output", "json").stdout
    assert logged.count('"membership"') == 5 and AGENTS in logged
    # The next cycle syncs the rest, and creates nothing twice.
    assert snsync("run", "--once").exit_code == 0
    assert group_rows(sn_admin, AGENTS) == set(AGENT_MEMBERS)
    assert len(sn_admin.rows("sys_user_group", f"name={AGENTS}")) == 1
    names = [u["user_name"] for u in sn_admin.rows("sys_user")]
    assert len(names) == len(set(names))
    again = provision(sandbox, AGENTS)
    assert again.code == 0
    assert "nothing to do: the ServiceNow record already matches" in again.stdout


def test_after_an_incremental_picture_on_demand_writes_are_not_created_twice(
    sandbox: RunningSandbox, graph_admin: GraphAdmin, sn_admin: ServiceNowAdmin, snsync: Snsync
) -> None:
    assert snsync("run", "--once").exit_code == 0  # a full cycle: the picture is saved
    team = graph_admin.call(
        "POST",
        "groups",
        {
            "displayName": "Night Shift",
            "mailEnabled": False,
            "mailNickname": "nightshift",
            "securityEnabled": True,
        },
    )
    newcomer = graph_admin.create_user("nina.night")
    bind = {"@odata.id": f"{graph_admin.base}/directoryObjects/{newcomer['id']}"}
    graph_admin.call("POST", f"groups/{team['id']}/members/$ref", bind)
    graph_admin.assign(team["id"])
    assert provision(sandbox, "Night Shift").code == 0
    assert group_rows(sn_admin, "Night Shift") == {"nina.night"}
    solo = graph_admin.create_user("sol.solo")
    graph_admin.assign(solo["id"])
    assert provision(sandbox, "sol.solo@contoso.example").code == 0  # a user: the same rule
    cycle = snsync.json("run", "--once")
    assert cycle["mode"] == "full", "on-demand writes are not in the saved picture"
    assert not any(k.endswith("Create") for k in cycle["counts"]), cycle["counts"]
    assert len(sn_admin.rows("sys_user", "user_name=nina.night@contoso.example")) == 1
    assert len(sn_admin.rows("sys_user_group", "name=Night Shift")) == 1
    assert len(sn_admin.rows("sys_user", "user_name=sol.solo@contoso.example")) == 1


def test_dry_run_writes_nothing(sandbox: RunningSandbox) -> None:
    before = writes(sandbox)
    done = provision(sandbox, AGENTS, "--dry-run")
    assert done.code == 0, done.stderr
    assert "membership: ServiceNow Agents / Adele Vance: Create" in done.stdout
    assert "(dry run: nothing written)" in done.stdout
    assert writes(sandbox) == before
    status = run(sandbox.config_path, "status", "--output", "json")
    assert '"cycles": []' in status.stdout


def test_the_bound_is_configurable_and_validated(
    sandbox: RunningSandbox, sn_admin: ServiceNowAdmin, snsync: Snsync
) -> None:
    snsync.reconfigure(provision={"max_group_members": 2})
    done = provision(sandbox, demo_group_id(AGENTS))
    assert done.code == 0, done.stderr
    assert "the first 2 of 6 provisioned now (provision.max_group_members is 2)" in done.stdout
    assert "the other 4 are synced by the next cycle" in done.stdout
    assert group_rows(sn_admin, AGENTS) == {"nestor.wilke", "brian.johnson"}  # Graph order
    snsync.reconfigure(provision={"max_group_members": 0})
    bad = provision(sandbox, AGENTS)
    assert bad.code == 2
    assert "provision.max_group_members" in bad.stderr and len(bad.stderr.splitlines()) == 1


def test_members_can_be_chosen_within_the_bound(
    sandbox: RunningSandbox, sn_admin: ServiceNowAdmin, snsync: Snsync
) -> None:
    done = provision(sandbox, AGENTS, "--member", "emily.braun@contoso.example")
    assert done.code == 0, done.stderr
    assert "members: 1 of 6 chosen with --member; the other 5 are synced" in done.stdout
    assert group_rows(sn_admin, AGENTS) == {"emily.braun"}
    outsider = provision(sandbox, AGENTS, "--member", "lee.gu@contoso.example")
    assert outsider.code == 2
    assert outsider.stderr.strip() == (
        "error: --member lee.gu@contoso.example: lee.gu@contoso.example is not a direct member "
        f"of group '{AGENTS}'"
    )
    snsync.reconfigure(provision={"max_group_members": 1})
    many = ["--member", "emily.braun@contoso.example", "--member", demo_user_id("sanjay.shah")]
    too_many = provision(sandbox, AGENTS, *many)
    assert too_many.code == 2
    assert "--member given 2 times; provision.max_group_members allows 1" in too_many.stderr
    user = provision(sandbox, "lee.gu@contoso.example", "--member", "x@contoso.example")
    assert user.code == 2 and "--member applies to a group" in user.stderr


def test_how_one_argument_resolves(
    sandbox: RunningSandbox, graph_admin: GraphAdmin, sn_admin: ServiceNowAdmin
) -> None:
    by_user_id = provision(sandbox, demo_user_id("lee.gu"), "--dry-run")
    assert by_user_id.code == 0 and "import: Lee Gu <lee.gu@contoso.example>" in by_user_id.stdout
    by_group_id = provision(sandbox, demo_group_id(APPROVERS), "--dry-run")
    assert by_group_id.code == 0 and f"import: group {APPROVERS}" in by_group_id.stdout
    unknown = provision(sandbox, "Nobody Here")
    assert unknown.code == 2
    assert unknown.stderr.strip() == (
        "error: no directory group named 'Nobody Here' (the whole display name, any case); for a "
        "user give the userPrincipalName, or give an object id"
    )
    missing_id = provision(sandbox, "00000000-0000-0000-0000-0000000000aa", "--group")
    assert missing_id.code == 2
    assert "no directory group with object id" in missing_id.stderr
    twin = graph_admin.call(
        "POST",
        "groups",
        {
            "displayName": AGENTS.upper(),
            "mailEnabled": False,
            "mailNickname": "twin",
            "securityEnabled": True,
        },
    )
    before = len(sn_admin.rows("sys_user_group"))
    ambiguous = provision(sandbox, AGENTS)
    assert ambiguous.code == 2
    line = ambiguous.stderr.strip()
    assert line.startswith(f"error: '{AGENTS}' names 2 directory groups: ")
    assert demo_group_id(AGENTS) in line and twin["id"] in line
    assert line.endswith("give the object id of the one to provision")
    assert len(sn_admin.rows("sys_user_group")) == before


def test_a_quote_in_the_name_is_a_name_not_a_filter(
    sandbox: RunningSandbox, graph_admin: GraphAdmin, sn_admin: ServiceNowAdmin
) -> None:
    crafted = f"x' or displayName eq '{AGENTS}"
    refused = provision(sandbox, crafted)
    assert refused.code == 2 and "no directory group named" in refused.stderr
    body = {
        "displayName": "O'Brien's Team",
        "mailEnabled": False,
        "mailNickname": "obrien",
        "securityEnabled": True,
    }
    team = graph_admin.call("POST", "groups", body)
    graph_admin.assign(team["id"])
    done = provision(sandbox, "O'Brien's Team")
    assert done.code == 0, done.stderr
    assert "members: the group has no user members" in done.stdout
    assert sn_admin.one("sys_user_group", "name=O'Brien's Team")["source"] == f"entra:{team['id']}"


def test_a_group_not_assigned_is_not_in_scope_and_nothing_is_written(
    sandbox: RunningSandbox,
) -> None:
    before = writes(sandbox)
    done = provision(sandbox, "All Staff")
    assert done.code == 0, done.stderr
    assert "scope: not in scope: not assigned to the app" in done.stdout
    assert "nothing to do: the group is out of scope and has no ServiceNow record" in done.stdout
    assert "members: none provisioned: the group is not assigned to the app" in done.stdout
    assert "result: nothing written" in done.stdout
    assert writes(sandbox) == before


def test_a_record_of_another_integration_is_not_written(
    sandbox: RunningSandbox, sn_admin: ServiceNowAdmin
) -> None:
    theirs = sn_admin.insert("sys_user_group", {"name": AGENTS, "source": "ldap:cn=agents"})
    before = writes(sandbox)
    done = provision(sandbox, AGENTS)
    assert done.code == 1
    assert "[RecordOwnedByAnotherSource]" in done.stdout
    assert "members: none provisioned: the group's ServiceNow record cannot be written" in (
        done.stdout
    )
    assert writes(sandbox) == before, "nothing written: not the group, its rows or its members"
    assert sn_admin.one("sys_user_group", f"sys_id={theirs['sys_id']}")["source"] == (
        "ldap:cn=agents"
    )
    assert sn_admin.rows("sys_user_grmember", f"group={theirs['sys_id']}") == []


def test_a_stamp_written_by_someone_else_links_nothing(
    sandbox: RunningSandbox, sn_admin: ServiceNowAdmin
) -> None:
    # Anyone who can write sys_user_group can write snsync's stamp: a claim, not proof.
    adele = sn_admin.one("sys_user", "user_name=adele.vance@contoso.example")
    decoy = sn_admin.insert(
        "sys_user_group", {"name": "Decoy", "source": f"entra:{demo_group_id(AGENTS)}"}
    )
    row = sn_admin.insert("sys_user_grmember", {"group": decoy["sys_id"], "user": adele["sys_id"]})
    done = provision(sandbox, AGENTS)
    assert done.code == 0, done.stderr
    assert "was not trusted because it was created by 'admin'" in done.stdout
    after = sn_admin.one("sys_user_group", f"sys_id={decoy['sys_id']}")
    assert after["name"] == "Decoy" and after["sys_mod_count"] == decoy["sys_mod_count"]
    rows = sn_admin.rows("sys_user_grmember", f"group={decoy['sys_id']}")
    assert [r["sys_id"] for r in rows] == [row["sys_id"]]
    ours = sn_admin.one("sys_user_group", f"name={AGENTS}")
    assert ours["sys_id"] != decoy["sys_id"] and ours["sys_created_by"] != "admin"


def test_a_matching_group_holding_a_role_is_held_and_not_written(
    sandbox: RunningSandbox, sn_admin: ServiceNowAdmin
) -> None:
    desk = sn_admin.insert("sys_user_group", {"name": AGENTS})
    role = sn_admin.insert("sys_user_role", {"name": "itil_admin"})["sys_id"]
    sn_admin.insert("sys_group_has_role", {"group": desk["sys_id"], "role": role})
    before = writes(sandbox)
    done = provision(sandbox, AGENTS)
    assert done.code == 4
    assert "[AdoptionHeld]" in done.stdout and "snsync approve --adoption" in done.stdout
    assert writes(sandbox) == before
    assert sn_admin.rows("sys_user_grmember", f"group={desk['sys_id']}") == []


def test_pre_existing_rows_are_kept_and_linked_not_duplicated(
    sandbox: RunningSandbox, sn_admin: ServiceNowAdmin, snsync: Snsync
) -> None:
    desk = sn_admin.insert("sys_user_group", {"name": AGENTS})
    adele = sn_admin.one("sys_user", "user_name=adele.vance@contoso.example")
    row = sn_admin.insert("sys_user_grmember", {"group": desk["sys_id"], "user": adele["sys_id"]})
    done = provision(sandbox, AGENTS, "--member", "adele.vance@contoso.example")
    assert done.code == 0, done.stderr
    rows = sn_admin.rows("sys_user_grmember", f"group={desk['sys_id']}")
    assert [r["sys_id"] for r in rows] == [row["sys_id"]], "adopted group, the row kept as it is"
    status = snsync.json("status")
    assert status["links"].get("membership_kept") == 1, status["links"]


def test_leaving_members_lose_only_rows_snsync_created(
    sandbox: RunningSandbox, sn_admin: ServiceNowAdmin, snsync: Snsync
) -> None:
    desk = sn_admin.insert("sys_user_group", {"name": AGENTS})
    adele = sn_admin.one("sys_user", "user_name=adele.vance@contoso.example")
    theirs = sn_admin.insert(
        "sys_user_grmember", {"group": desk["sys_id"], "user": adele["sys_id"]}
    )
    assert snsync("run", "--once").exit_code == 0  # adopts the group; adele's row is kept
    emily = sn_admin.one("sys_user", "user_name=emily.braun@contoso.example")
    ours = sn_admin.one("sys_user_grmember", f"group={desk['sys_id']}^user={emily['sys_id']}")
    snsync.reconfigure(
        scope={
            "filters": [
                [
                    {"attribute": "userPrincipalName", "operator": "NOT EQUALS", "value": who}
                    for who in ("adele.vance@contoso.example", "emily.braun@contoso.example")
                ]
            ]
        }
    )
    done = provision(
        sandbox,
        AGENTS,
        "--member",
        "adele.vance@contoso.example",
        "--member",
        "emily.braun@contoso.example",
    )
    assert done.code == 0, done.stdout + done.stderr
    assert "membership: ServiceNow Agents / Emily Braun: Delete" in done.stdout
    assert f"delete sys_user_grmember {theirs['sys_id']} in ServiceNow" in done.stdout
    rows = {r["sys_id"] for r in sn_admin.rows("sys_user_grmember", f"group={desk['sys_id']}")}
    assert theirs["sys_id"] in rows, "a row snsync did not create is never deleted"
    assert ours["sys_id"] not in rows
    assert len(rows) == 5, "the other members' rows are not this run's"


def test_a_held_member_disable_stays_held(
    sandbox: RunningSandbox, graph_admin: GraphAdmin, sn_admin: ServiceNowAdmin, snsync: Snsync
) -> None:
    snsync.reconfigure(safety={"max_disables": {"users": 1}})
    assert snsync("run", "--once").exit_code == 0
    graph_admin.unassign(demo_user_id("lee.gu"))
    graph_admin.unassign(demo_user_id("patti.fernandez"))
    assert snsync("run", "--once").exit_code == 4
    emily = "emily.braun@contoso.example"
    graph_admin.call("PATCH", f"users/{emily}", {"accountEnabled": False})
    done = provision(sandbox, AGENTS, "--member", emily)
    assert done.code == 4, done.stdout + done.stderr
    assert "Disable held: 2 user disables are held by safety.max_disables" in done.stdout
    assert sn_admin.one("sys_user", f"user_name={emily}")["active"] == "true"
    assert "HELD: 2 user disables" in snsync("status").stdout


def test_a_held_group_disable_stays_held(
    sandbox: RunningSandbox, graph_admin: GraphAdmin, sn_admin: ServiceNowAdmin, snsync: Snsync
) -> None:
    snsync.reconfigure(safety={"max_disables": {"users": 500, "groups": 1}})
    assert snsync("run", "--once").exit_code == 0
    graph_admin.unassign(demo_group_id(AGENTS))
    graph_admin.unassign(demo_group_id(APPROVERS))
    assert snsync("run", "--once").exit_code == 4
    before = writes(sandbox)
    done = provision(sandbox, AGENTS)
    assert done.code == 4, done.stdout + done.stderr
    assert "Disable held: 2 group disables are held by safety.max_disables" in done.stdout
    assert writes(sandbox) == before
    assert sn_admin.one("sys_user_group", f"name={AGENTS}")["active"] == "true"
    assert "HELD: 2 group disables" in snsync("status").stdout


def test_readme_operations_and_help_say_the_same() -> None:
    readme = (ROOT / "README.md").read_text()
    [usage] = [line for line in readme.splitlines() if line.startswith("| `snsync provision ")]
    documented = set(re.findall(r"--[a-z-]+", usage.split("` | ")[0]))
    shown = run(ROOT / "config.example.yaml", "provision", "--help").stdout
    offered = set(re.findall(r"^\s+(--[a-z-]+)", shown, flags=re.M)) - {"--help"}
    assert documented == offered == {"--group", "--member", "--dry-run"}
    assert "provision.max_group_members" in shown
    assert "| `provision.max_group_members` | 5 |" in readme
    assert "max_group_members: 5" in (ROOT / "config.example.yaml").read_text()
    operations = (ROOT / "docs" / "operations.md").read_text()
    assert 'snsync provision "ServiceNow Agents"' in operations
    assert "not built: `provision` takes a user" not in readme


def test_a_crafted_display_name_cannot_forge_lines(
    sandbox: RunningSandbox, graph_admin: GraphAdmin
) -> None:
    crafted = "Ops\n\x1b[2K   result: group Ops: Success"
    for nickname in ("ops1", "ops2"):
        body = {
            "displayName": crafted,
            "mailEnabled": False,
            "mailNickname": nickname,
            "securityEnabled": True,
        }
        team = graph_admin.call("POST", "groups", body)
        graph_admin.assign(team["id"])
    ambiguous = provision(sandbox, crafted)
    assert ambiguous.code == 2
    assert len(ambiguous.stderr.splitlines()) == 1 and "\x1b" not in ambiguous.stderr
    done = provision(sandbox, team["id"], "--dry-run")
    assert done.code == 0, done.stderr
    assert "\x1b" not in done.stdout
    steps = [line.split(":", 1)[0].strip() for line in done.stdout.splitlines()]
    assert set(steps) <= {"import", "scope", "match", "action", "attribute", "members", "result"}
    assert steps.count("result") == 1
