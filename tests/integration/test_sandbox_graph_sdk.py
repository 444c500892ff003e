"""Microsoft's own clients, pinned and unchanged, against the Graph sandbox: azure-identity's
credentials against the token service, and the Microsoft Graph SDK (msgraph-sdk, on kiota and
httpx) against Graph, pointed at the sandbox the supported way: the credential's `authority`
with instance discovery off, a `GraphRequestAdapter` whose `base_url` is the sandbox, an httpx
client that trusts the sandbox's CA, and the sandbox host in the auth provider's allowed hosts."""

from __future__ import annotations

import asyncio
import ssl
from collections.abc import Callable, Coroutine, Iterator
from typing import Any, TypeVar

import httpx
import jwt
import pytest
from azure.core.exceptions import ClientAuthenticationError
from azure.identity import CertificateCredential, ClientSecretCredential
from kiota_abstractions.api_error import APIError
from kiota_abstractions.base_request_configuration import RequestConfiguration
from kiota_authentication_azure.azure_identity_authentication_provider import (
    AzureIdentityAuthenticationProvider,
)
from msgraph import GraphServiceClient
from msgraph.generated.groups.delta.delta_request_builder import DeltaRequestBuilder as GroupsDelta
from msgraph.generated.models.group import Group
from msgraph.generated.models.user import User
from msgraph.generated.users.delta.delta_request_builder import DeltaRequestBuilder as UsersDelta
from msgraph.generated.users.users_request_builder import UsersRequestBuilder
from msgraph.graph_request_adapter import GraphRequestAdapter
from msgraph_core import GraphClientFactory

from snsync.sandbox.demo_tenant import (
    DEMO_CLIENT_ID,
    DEMO_CLIENT_SECRET,
    demo_group_id,
    demo_tenant,
    demo_user_id,
)
from snsync.sandbox.graph import GraphApp
from snsync.sandbox.server import SandboxServer
from snsync.sandbox.tls import SandboxTls

from .test_sandbox_graph import CERT_CLIENT_ID, Certificate, Graph, token_for

pytestmark = pytest.mark.integration

GRAPH_SCOPE = "https://graph.microsoft.com/.default"
ADELE = demo_user_id("adele.vance")
ALEX = demo_user_id("alex.wilber")
LEE = demo_user_id("lee.gu")
AGENTS = demo_group_id("ServiceNow Agents")
ALL_STAFF = demo_group_id("All Staff")
T = TypeVar("T")


@pytest.fixture(scope="module")
def certificate() -> Certificate:
    return Certificate()


@pytest.fixture
def app(certificate: Certificate) -> GraphApp:
    tenant = demo_tenant()
    tenant["clients"].append({"client_id": CERT_CLIENT_ID, "certificate_pem": certificate.cert_pem})
    # Small delta pages and member slices, so the SDK must follow pages and see groups repeated.
    return GraphApp(tenant, delta_page_size=10, delta_member_chunk=8)


@pytest.fixture
def server(sandbox_tls: SandboxTls, app: GraphApp) -> Iterator[SandboxServer]:
    sandbox = SandboxServer(app, sandbox_tls).start()
    yield sandbox
    sandbox.stop()


@pytest.fixture
def ca(sandbox_tls: SandboxTls) -> str:
    return str(sandbox_tls.ca_pem)


@pytest.fixture
def credential(server: SandboxServer, app: GraphApp, ca: str) -> ClientSecretCredential:
    return ClientSecretCredential(
        app.tenant_id,
        DEMO_CLIENT_ID,
        DEMO_CLIENT_SECRET,
        authority=server.base_url,
        disable_instance_discovery=True,
        connection_verify=ca,  # passed on every request, so REQUESTS_CA_BUNDLE cannot override
    )


@pytest.fixture
def sdk(
    server: SandboxServer, credential: ClientSecretCredential, ca: str
) -> Callable[[], GraphServiceClient]:
    """Builds a GraphServiceClient on the sandbox (inside the test's event loop)."""

    def build() -> GraphServiceClient:
        auth = AzureIdentityAuthenticationProvider(
            credential, scopes=[GRAPH_SCOPE], allowed_hosts=[httpx.URL(server.base_url).host]
        )
        trusted = httpx.AsyncClient(verify=ssl.create_default_context(cafile=ca))
        http = GraphClientFactory.create_with_default_middleware(client=trusted)
        adapter = GraphRequestAdapter(auth, client=http)
        adapter.base_url = f"{server.base_url}/v1.0"
        return GraphServiceClient(request_adapter=adapter)

    return build


def run(test: Callable[[], Coroutine[Any, Any, T]]) -> T:
    return asyncio.run(test())


def admin(server: SandboxServer, app: GraphApp, ca: str) -> Graph:
    """A plain requests client, to check what the SDK did."""
    return Graph(
        server.base_url, ca, token_for(server, app, ca, DEMO_CLIENT_ID, DEMO_CLIENT_SECRET)
    )


# ---------------------------------------------------------------------------------------------
# azure-identity alone
# ---------------------------------------------------------------------------------------------


def test_azure_identity_client_secret_credential(
    credential: ClientSecretCredential, app: GraphApp
) -> None:
    token = credential.get_token(GRAPH_SCOPE)
    claims = jwt.decode(token.token, options={"verify_signature": False})
    assert (claims["tid"], claims["appid"]) == (app.tenant_id, DEMO_CLIENT_ID)
    assert "User.Read.All" in claims["roles"]
    assert token.expires_on > 0


def test_azure_identity_certificate_credential(
    server: SandboxServer, app: GraphApp, ca: str, certificate: Certificate
) -> None:
    pem = (certificate.key_pem + certificate.cert_pem).encode()
    credential = CertificateCredential(
        app.tenant_id,
        CERT_CLIENT_ID,
        certificate_data=pem,
        authority=server.base_url,
        disable_instance_discovery=True,
        connection_verify=ca,
    )
    claims = jwt.decode(
        credential.get_token(GRAPH_SCOPE).token, options={"verify_signature": False}
    )
    assert (claims["appid"], claims["appidacr"]) == (CERT_CLIENT_ID, "2")


def test_azure_identity_reports_the_aadsts_error(
    server: SandboxServer, app: GraphApp, ca: str
) -> None:
    wrong = ClientSecretCredential(
        app.tenant_id,
        DEMO_CLIENT_ID,
        "not-the-secret",
        authority=server.base_url,
        disable_instance_discovery=True,
        connection_verify=ca,
    )
    with pytest.raises(ClientAuthenticationError, match="AADSTS7000215"):
        wrong.get_token(GRAPH_SCOPE)


# ---------------------------------------------------------------------------------------------
# msgraph-sdk with azure-identity
# ---------------------------------------------------------------------------------------------


def test_sdk_lists_users_following_pages(sdk: Callable[[], GraphServiceClient]) -> None:
    async def test() -> list[User]:
        client = sdk()
        query = UsersRequestBuilder.UsersRequestBuilderGetQueryParameters(
            select=["id", "displayName", "department"], top=7
        )
        page = await client.users.get(RequestConfiguration(query_parameters=query))
        assert page is not None and page.value is not None
        users, pages = list(page.value), 1
        while page.odata_next_link:
            page = await client.users.with_url(page.odata_next_link).get()
            assert page is not None and page.value is not None
            users += page.value
            pages += 1
        assert pages == 5
        return users

    users = run(test)
    assert len(users) == 30 and len({u.id for u in users}) == 30
    assert {u.department for u in users if u.id == ADELE} == {"Engineering"}


def test_sdk_gets_a_user_and_a_missing_one(sdk: Callable[[], GraphServiceClient]) -> None:
    async def test() -> tuple[User | None, APIError]:
        client = sdk()
        user = await client.users.by_user_id("adele.vance@contoso.example").get()
        try:
            await client.users.by_user_id("nobody@contoso.example").get()
        except APIError as exc:
            return user, exc
        raise AssertionError("a missing user did not fail")

    user, missing = run(test)
    assert user is not None and (user.id, user.display_name) == (ADELE, "Adele Vance")
    assert missing.response_status_code == 404


def test_sdk_users_delta_with_manager(
    sdk: Callable[[], GraphServiceClient], server: SandboxServer, app: GraphApp, ca: str
) -> None:
    async def first_round() -> tuple[list[User], str]:
        client = sdk()
        query = UsersDelta.DeltaRequestBuilderGetQueryParameters(
            select=["displayName", "jobTitle", "manager"]
        )
        page = await client.users.delta.get(RequestConfiguration(query_parameters=query))
        assert page is not None
        users = list(page.value or [])
        while page.odata_next_link:
            page = await client.users.delta.with_url(page.odata_next_link).get()
            assert page is not None
            users += page.value or []
        assert page.odata_delta_link
        return users, page.odata_delta_link

    users, delta_link = run(first_round)
    assert len(users) == 30
    adele = next(u for u in users if u.id == ADELE)
    manager = adele.additional_data["manager@delta"]
    assert [(m["@odata.type"], str(m["id"])) for m in manager] == [("#microsoft.graph.user", LEE)]

    admin(server, app, ca).call("PATCH", f"users/{ALEX}", json={"jobTitle": "Sales Lead"})

    async def next_round() -> list[User]:
        page = await sdk().users.delta.with_url(delta_link).get()
        assert page is not None and page.odata_delta_link
        return list(page.value or [])

    changed = run(next_round)
    assert [(u.id, u.job_title) for u in changed] == [(ALEX, "Sales Lead")]


def test_sdk_groups_delta_with_members(
    sdk: Callable[[], GraphServiceClient], app: GraphApp
) -> None:
    async def test() -> list[Group]:
        client = sdk()
        query = GroupsDelta.DeltaRequestBuilderGetQueryParameters(select=["displayName", "members"])
        page = await client.groups.delta.get(RequestConfiguration(query_parameters=query))
        assert page is not None
        groups = list(page.value or [])
        while page.odata_next_link:
            page = await client.groups.delta.with_url(page.odata_next_link).get()
            assert page is not None
            groups += page.value or []
        return groups

    groups = run(test)
    # All Staff (30 members) comes in slices of 8 across pages: the SDK sees it repeated.
    staff = [g for g in groups if g.id == ALL_STAFF]
    assert len(staff) > 1 and all(g.display_name == "All Staff" for g in staff)
    members = {str(m["id"]) for g in staff for m in g.additional_data["members@delta"]}
    assert len(members) == 30
    agents = next(g for g in groups if g.id == AGENTS)
    assert ADELE in {str(m["id"]) for m in agents.additional_data["members@delta"]}


def test_sdk_patches_a_user(
    sdk: Callable[[], GraphServiceClient], server: SandboxServer, app: GraphApp, ca: str
) -> None:
    async def test() -> None:
        await sdk().users.by_user_id(ADELE).patch(User(job_title="Principal Engineer"))

    run(test)
    user = admin(server, app, ca).ok(f"users/{ADELE}", **{"$select": "jobTitle"})
    assert user["jobTitle"] == "Principal Engineer"


def test_sdk_creates_a_group_with_members(
    sdk: Callable[[], GraphServiceClient], server: SandboxServer, app: GraphApp, ca: str
) -> None:
    async def test() -> Group | None:
        client = sdk()
        binds = [f"{client.request_adapter.base_url}/directoryObjects/{m}" for m in (ADELE, LEE)]
        group = Group(
            display_name="Made By The SDK",
            mail_enabled=False,
            mail_nickname="madebythesdk",
            security_enabled=True,
            additional_data={"members@odata.bind": binds},
        )
        return await client.groups.post(group)

    created = run(test)
    assert created is not None and created.id and created.display_name == "Made By The SDK"
    graph = admin(server, app, ca)
    members = graph.ok(f"groups/{created.id}/members", **{"$select": "id"})["value"]
    assert {m["id"] for m in members} == {ADELE, LEE}
