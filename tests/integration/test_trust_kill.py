"""kill -9 at any point loses nothing for good (issue 9.6): snsync runs as a real process and is
killed by the sandbox itself at a seeded ServiceNow write (just before it lands, or just after it
landed with the answer lost), with seeded directory changes between cycles. After the campaign
one clean cycle must leave ServiceNow exactly as a twin sandbox that saw the same changes and
cycles without kills (every user is brought into scope before that last cycle: one that left
the scope keeps what the last cycle that saw it wrote, which depends on history). About one
cycle in four is left to finish, so killed cycles follow full and incremental ones alike. The
suite runs a short campaign; `make kill-test` the long one (SNSYNC_KILL_POINTS, SNSYNC_KILL_SEEDS).
"""

from __future__ import annotations

import base64
import os
import random
import signal
import socket
import ssl
import subprocess
import sys
import threading
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest

from snsync.sandbox.demo_instance import DEMO_PASSWORD
from snsync.sandbox.demo_tenant import demo_group_id, demo_user_id
from snsync.sandbox.runner import RunningSandbox, SandboxOptions, start_sandbox
from snsync.sandbox.server import Request, Response

from .conftest import GraphAdmin, ServiceNowAdmin, Snsync

POINTS = int(os.environ.get("SNSYNC_KILL_POINTS", "8"))
SEEDS = [int(s) for s in os.environ.get("SNSYNC_KILL_SEEDS", "3").split(",")]
WRITES = ("POST", "PUT", "PATCH", "DELETE")
GROUPS = ("ServiceNow Agents", "ServiceNow Approvers")
PEOPLE = (
    "isaiah.langer",
    "grady.archie",
    "pradeep.gupta",
    "christie.cline",
    "kai.carter",
    "joni.sherman",
    "emily.braun",
    "adele.vance",
    "debra.berger",
    "lee.gu",
)
SYSTEM = {"sys_id", "sys_created_on", "sys_updated_on", "sys_updated_by", "sys_mod_count"}


@dataclass
class Killer:
    """Kills the snsync process at its n-th ServiceNow write, before or after it is applied."""

    sandbox: RunningSandbox
    pid: int | None = None
    at: int = 0
    after: bool = True
    seen: int = 0
    killed: bool = False
    lock: threading.Lock = field(default_factory=threading.Lock)

    def __post_init__(self) -> None:
        app = self.sandbox.servicenow_app
        self.original = app.handle
        app.handle = self.handle  # type: ignore[method-assign]

    def arm(self, pid: int, at: int, after: bool) -> None:
        with self.lock:
            self.pid, self.at, self.after, self.seen, self.killed = pid, at, after, 0, False

    def handle(self, request: Request) -> Response:
        if request.method not in WRITES or not request.path.startswith("/api/now/"):
            return self.original(request)
        with self.lock:
            self.seen += 1
            hit = self.pid is not None and self.seen == self.at and not self.killed
            if hit:
                self.killed = True
        if not hit:
            return self.original(request)
        if not self.after:
            self._kill()
            return Response(503, {"error": {"message": "killed", "detail": None}})
        response = self.original(request)
        self._kill()
        return response

    def _kill(self) -> None:
        assert self.pid is not None
        os.kill(self.pid, signal.SIGKILL)


@dataclass
class Tenant:
    """The directory changes of a campaign, applied alike to both twins."""

    members: dict[str, set[str]]
    assigned: set[str]

    @classmethod
    def demo(cls) -> Tenant:
        agents = {"nestor.wilke", "miriam.graham", "brian.johnson", "sanjay.shah"}
        agents |= {"emily.braun", "adele.vance"}
        approvers = {"debra.berger", "lidia.holloway", "diego.siciliani"}
        return cls({GROUPS[0]: agents, GROUPS[1]: approvers}, {"adele.vance", "lee.gu"})

    def change(self, rng: random.Random) -> tuple[str, str, str]:
        kind = rng.choice(("member", "member", "assign", "title"))
        person = rng.choice(PEOPLE)
        group = rng.choice(GROUPS)
        if kind == "member":
            self.members[group] ^= {person}
        elif kind == "assign":
            self.assigned ^= {person}
        return kind, person, group

    def apply(self, admin: GraphAdmin, change: tuple[str, str, str], step: int) -> None:
        kind, person, group = change
        user_id, group_id = demo_user_id(person), demo_group_id(group)
        if kind == "member" and person in self.members[group]:
            body = {"@odata.id": f"{admin.base}/directoryObjects/{user_id}"}
            admin.call("POST", f"groups/{group_id}/members/$ref", body)
        elif kind == "member":
            admin.call("DELETE", f"groups/{group_id}/members/{user_id}/$ref")
        elif kind == "assign" and person in self.assigned:
            admin.assign(user_id)
        elif kind == "assign":
            admin.unassign(user_id)
        else:
            admin.call("PATCH", f"users/{user_id}", {"jobTitle": f"Title {step}"})


@pytest.fixture
def twins(tmp_path: Path) -> Iterator[tuple[RunningSandbox, RunningSandbox]]:
    pair = tuple(
        start_sandbox(SandboxOptions(directory=tmp_path / name, retry_after=0))
        for name in ("killed", "clean")
    )
    yield pair  # type: ignore[misc]
    for sandbox in pair:
        sandbox.stop()


@pytest.mark.parametrize("seed", SEEDS)
def test_kill_points_then_one_clean_cycle_equal_a_run_without_kills(
    twins: tuple[RunningSandbox, RunningSandbox], seed: int
) -> None:
    killed, clean = twins
    rng = random.Random(seed)
    killer = Killer(killed)
    admins = GraphAdmin(killed), GraphAdmin(clean)
    twin = Snsync(clean, clean.config_path)
    tenant = Tenant.demo()
    kills = 0
    for step in range(POINTS):
        for _ in range(rng.randint(1, 3) if step else 0):
            change = tenant.change(rng)
            for admin in admins:
                tenant.apply(admin, change, step)
        before = clean.servicenow_app.write_count()
        assert twin("run", "--once").exit_code in (0, 1)
        writes = clean.servicenow_app.write_count() - before  # what this cycle has to write
        kills += _killed_cycle(killer, killed.config_path, rng, writes)
    # Everyone in scope at the end: a user who left the scope keeps whatever the last cycle
    # that saw them wrote, so only objects in scope have one right state, whatever the history.
    for person in sorted(set(PEOPLE) - tenant.assigned):
        for admin in admins:
            admin.assign(demo_user_id(person))
    assert twin("run", "--once").exit_code in (0, 1)
    final = Snsync(killed, killed.config_path)("run", "--once")
    assert final.exit_code in (0, 1), final.output
    assert kills >= POINTS // 3, f"only {kills} of {POINTS} cycles were killed"
    assert _differences(picture(killed, admins[0]), picture(clean, admins[1])) == []


def _differences(killed: dict[str, Any], clean: dict[str, Any]) -> list[tuple[str, Any, Any]]:
    """(table, killed twin's entry, clean twin's entry) for every entry that differs."""
    found = []
    for table in ("users", "groups", "members"):
        mine, theirs = dict(killed[table]), dict(clean[table])
        for key in sorted(set(mine) | set(theirs), key=str):
            a, b = mine.get(key), theirs.get(key)
            if a != b:
                if isinstance(a, list) and isinstance(b, list):
                    a, b = sorted(set(a) - set(b)), sorted(set(b) - set(a))
                found.append((f"{table} {key}", a, b))
    return found


def _killed_cycle(killer: Killer, config: Path, rng: random.Random, writes: int) -> int:
    process = subprocess.Popen(
        [sys.executable, "-m", "snsync", "--config", str(config), "-q", "run", "--once"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    spared = rng.random() < 0.25
    killer.arm(process.pid, 0 if spared else rng.randint(1, max(writes, 1)), rng.random() < 0.5)
    _, err = process.communicate(timeout=120)
    if process.returncode == -signal.SIGKILL:
        return 1
    assert process.returncode in (0, 1), err
    return 0


def picture(sandbox: RunningSandbox, admin: GraphAdmin) -> dict[str, Any]:
    """ServiceNow's content with sys_ids replaced by names, comparable across twins."""
    app = sandbox.servicenow_app
    directory = {u["id"]: u["userPrincipalName"] for u in admin.call("GET", "users")["value"]}
    directory |= {g["id"]: g["displayName"] for g in admin.call("GET", "groups")["value"]}
    users = {r["sys_id"]: r for r in app.records("sys_user")}
    groups = {r["sys_id"]: r for r in app.records("sys_user_group")}
    names = {s: r["user_name"] for s, r in users.items()} | {
        s: r["name"] for s, r in groups.items()
    }

    def plain(record: dict[str, str]) -> dict[str, str]:
        out = {k: names.get(v, v) for k, v in record.items() if k not in SYSTEM}
        source = out.get("source", "")
        if source.startswith("entra:"):
            out["source"] = "entra:" + directory.get(source[6:], source[6:])
        return out

    rows = Counter(
        (names.get(r["group"], r["group"]), names.get(r["user"], r["user"]))
        for r in app.records("sys_user_grmember")
    )
    return {
        "users": sorted((r["user_name"], sorted(plain(r).items())) for r in users.values()),
        "groups": sorted((r["name"], sorted(plain(r).items())) for r in groups.values()),
        "members": sorted(rows.items()),
    }


def test_a_write_cut_off_mid_body_is_not_applied(sandbox: RunningSandbox) -> None:
    """The kill points rely on it: a process killed while sending a body writes nothing (as a
    real instance, which waits for the whole body and drops the request when it never comes)."""
    url = urlsplit(sandbox.info["servicenow_url"])
    context = ssl.create_default_context(cafile=sandbox.info["ca_pem"])
    before = sandbox.servicenow_app.write_count()
    auth = base64.b64encode(f"admin:{DEMO_PASSWORD}".encode()).decode()
    head = (
        "POST /api/now/table/sys_user_grmember HTTP/1.1\r\n"
        f"Host: {url.hostname}:{url.port}\r\nAuthorization: Basic {auth}\r\n"
        "Content-Type: application/json\r\nContent-Length: 200\r\n\r\n"
    )
    with (
        socket.create_connection((url.hostname, url.port)) as raw,
        context.wrap_socket(raw, server_hostname=url.hostname) as tls,
    ):
        tls.sendall(head.encode())  # and no body: the process died here
    admin = ServiceNowAdmin(sandbox)
    for _ in range(5):  # round trips after the cut-off request, which is served meanwhile
        admin.rows("sys_user_grmember")
    assert sandbox.servicenow_app.write_count() == before
    assert all(r["group"] and r["user"] for r in admin.rows("sys_user_grmember"))
