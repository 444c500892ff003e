"""Third-party ServiceNow clients, pinned and unchanged, against the sandbox (issue 14 item 5):
pysnow (requests) and aiosnow (aiohttp). pysnc's tests are in test_sandbox_servicenow.py."""

from __future__ import annotations

import asyncio
import ssl
from collections.abc import Iterator
from typing import Any

import aiohttp
import pysnow
import pytest
import requests
from aiosnow import Client, Pluck, TableModel, fields

from snsync.sandbox.demo_instance import DEMO_PASSWORD, demo_instance, demo_sys_id
from snsync.sandbox.server import SandboxServer
from snsync.sandbox.servicenow import ServiceNowApp
from snsync.sandbox.tls import SandboxTls

pytestmark = pytest.mark.integration
ADELE = "adele.vance@contoso.example"
SERVICE_DESK = demo_sys_id("sys_user_group", "Service Desk")


@pytest.fixture
def instance(sandbox_tls: SandboxTls) -> Iterator[SandboxServer]:
    """A fresh demo instance with the sandbox's default limits (sessions serialised, 2 x 4)."""
    running = SandboxServer(ServiceNowApp(demo_instance()), sandbox_tls).start()
    yield running
    running.stop()


# --- pysnow ----------------------------------------------------------------------------------


class VerifyingSession(requests.Session):
    """verify= on every request: REQUESTS_CA_BUNDLE would override a session's verify."""

    def __init__(self, ca: str) -> None:
        super().__init__()
        self._ca = ca

    def request(self, method: str, url: str, *args: Any, **kwargs: Any) -> requests.Response:  # type: ignore[override]
        kwargs["verify"] = self._ca
        return super().request(method, url, *args, **kwargs)


def pysnow_client(server: SandboxServer, ca: str) -> pysnow.Client:
    session = VerifyingSession(ca)
    session.auth = ("snsync", DEMO_PASSWORD)
    client = pysnow.Client(host=f"{server.host}:{server.port}", session=session)
    client.parameters.exclude_reference_link = True
    return client


def test_pysnow_query_paginate_get_insert_update_delete(
    instance: SandboxServer, sandbox_tls: SandboxTls
) -> None:
    client = pysnow_client(instance, str(sandbox_tls.ca_pem))
    users = client.resource(api_path="/table/sys_user")
    everyone = list(users.get(query={}, stream=True).all())
    assert ADELE in {u["user_name"] for u in everyone}
    assert len(everyone) == len(instance.app.records("sys_user"))  # type: ignore[attr-defined]
    paged = users.get(query={"active": "true"}, limit=3, stream=True)
    assert len(list(paged.all())) == 3
    adele = users.get(query={"user_name": ADELE}).one()
    assert adele["department"] == demo_sys_id("cmn_department", "Sales")
    built = (
        pysnow.QueryBuilder()
        .field("user_name")
        .starts_with("alex")
        .AND()
        .field("active")
        .equals("true")
    )
    assert [u["user_name"] for u in users.get(query=built).all()] == ["alex.wilber@contoso.example"]
    created = users.create(
        payload={"user_name": "pysnow.user", "first_name": "Py", "last_name": "Snow"}
    )
    assert created["name"] == "Py Snow"
    updated = users.update(query={"user_name": "pysnow.user"}, payload={"title": "Tester"})
    assert updated["title"] == "Tester"
    members = client.resource(api_path="/table/sys_user_grmember")
    row = members.create(payload={"user": created["sys_id"], "group": SERVICE_DESK})
    assert row["group"] == SERVICE_DESK
    deleted = users.delete(query={"user_name": "pysnow.user"})
    assert deleted == {"status": "record deleted"}
    assert not list(members.get(query={"user": created["sys_id"]}).all())  # cascade
    with pytest.raises(pysnow.exceptions.NoResults):
        users.get(query={"user_name": "pysnow.user"}).one()


def test_pysnow_sees_the_instances_errors(instance: SandboxServer, sandbox_tls: SandboxTls) -> None:
    client = pysnow_client(instance, str(sandbox_tls.ca_pem))
    client.session.auth = ("auditor", DEMO_PASSWORD)  # itil: may read, may not write
    with pytest.raises(requests.HTTPError) as refused:
        client.resource(api_path="/table/sys_user").create(payload={"user_name": "x"}).one()
    answer = refused.value.response
    assert answer is not None and answer.status_code == 403
    assert "ACL Exception Insert Failed" in answer.json()["error"]["detail"]
    client.session.auth = ("snsync", "wrong")
    with pytest.raises(requests.HTTPError, match="401"):
        client.resource(api_path="/table/sys_user").get(query={}).all()


# --- aiosnow ---------------------------------------------------------------------------------


class User(TableModel):
    sys_id = fields.String(is_primary=True)
    user_name = fields.String()
    first_name = fields.String()
    last_name = fields.String()
    title = fields.String()
    active = fields.Boolean()
    department = fields.String(pluck=Pluck.VALUE)
    manager = fields.String(pluck=Pluck.DISPLAY_VALUE)


def aiosnow_client(server: SandboxServer, ca: str) -> Client:
    context = ssl.create_default_context(cafile=ca)

    class VerifyingSession(aiohttp.ClientSession):
        """aiohttp with the sandbox's CA (aiosnow's own option only switches checks on or off)."""

        def __init__(self, *args: Any, **kwargs: Any) -> None:
            kwargs["connector"] = aiohttp.TCPConnector(ssl=context)
            super().__init__(*args, **kwargs)

    return Client(
        f"{server.host}:{server.port}",
        basic_auth=("snsync", DEMO_PASSWORD),
        session_cls=VerifyingSession,
    )


def test_aiosnow_stream_get_create_update_delete(
    instance: SandboxServer, sandbox_tls: SandboxTls
) -> None:
    client = aiosnow_client(instance, str(sandbox_tls.ca_pem))

    async def scenario() -> dict[str, Any]:
        seen: dict[str, Any] = {}
        async with User(client, table_name="sys_user") as users:
            names = [
                r["user_name"] async for _, r in users.stream(User.active.is_true(), page_size=2)
            ]
            seen["active"] = names
            adele = await users.get_one(User.user_name == ADELE)
            seen["adele"] = dict(adele.data)
            created = await users.create({"user_name": "aio.user", "first_name": "Aio"})
            seen["created"] = dict(created.data)
            updated = await users.update(User.user_name == "aio.user", {"title": "Async"})
            seen["updated"] = dict(updated.data)
            await users.delete(User.user_name == "aio.user")
            seen["after"] = len(await users.get(User.user_name == "aio.user"))
        return seen

    seen = asyncio.run(scenario())
    records = instance.app.records("sys_user")  # type: ignore[attr-defined]
    active = sorted(r["user_name"] for r in records if r["active"] == "true")
    assert sorted(seen["active"]) == active
    assert seen["adele"]["department"] == demo_sys_id("cmn_department", "Sales")
    alex = next(r for r in records if r["user_name"].startswith("alex"))
    assert alex["manager"] == demo_sys_id("sys_user", "megan.bowen@contoso.example")
    assert seen["created"]["user_name"] == "aio.user"
    assert seen["updated"]["title"] == "Async"
    assert seen["after"] == 0
