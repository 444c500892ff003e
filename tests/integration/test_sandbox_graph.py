"""The Graph sandbox over real HTTPS: MSAL against its token service, `requests` against Graph."""

from __future__ import annotations

import datetime as dt
import json
import re
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import msal
import pytest
import requests
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import NameOID

from snsync.errors import FixtureError
from snsync.sandbox.demo_tenant import (
    DEFAULT_ACCESS_ROLE_ID,
    DEMO_CLIENT_ID,
    DEMO_CLIENT_SECRET,
    ROLE_ADMIN_ID,
    ROLE_USER_ID,
    SERVICENOW_APP_ID,
    SERVICENOW_SP_ID,
    demo_group_id,
    demo_tenant,
    demo_user_id,
)
from snsync.sandbox.graph import USER_DEFAULT_SELECT, GraphApp, load_tenant_file
from snsync.sandbox.server import FaultPlan, SandboxServer
from snsync.sandbox.tls import SandboxTls

pytestmark = pytest.mark.integration

GRAPH_SCOPE = ["https://graph.microsoft.com/.default"]
LIMITED_CLIENT_ID = "0b8a4c6e-2d1f-4e3a-9b5c-7d6e5f4a3b2c"
CERT_CLIENT_ID = "1c9b5d7f-3e2a-4f4b-8c6d-8e7f6a5b4c3d"
EXPIRED_CLIENT_ID = "2d0c6e8a-4f3b-4a5c-9d7e-9f8a7b6c5d4e"
ADELE = demo_user_id("adele.vance")
ALEX = demo_user_id("alex.wilber")
MEGAN = demo_user_id("megan.bowen")
LEE = demo_user_id("lee.gu")
PATTI = demo_user_id("patti.fernandez")
IRVIN = demo_user_id("irvin.sayers")
AGENTS = demo_group_id("ServiceNow Agents")
APPROVERS = demo_group_id("ServiceNow Approvers")
EMEA = demo_group_id("Approvers EMEA")
ALL_STAFF = demo_group_id("All Staff")


# ---------------------------------------------------------------------------------------------
# Fixtures and helpers
# ---------------------------------------------------------------------------------------------


class Clock:
    """A clock the tests move forward by hand (starts at real time: MSAL runs on real time)."""

    def __init__(self) -> None:
        self.now = time.time()

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


class CaSession(requests.Session):
    """A Session passing verify= on every request (REQUESTS_CA_BUNDLE overrides Session.verify)."""

    def __init__(self, ca_pem: str) -> None:
        super().__init__()
        self.ca_pem = ca_pem

    def request(self, method: str | bytes, url: str | bytes, *args: Any, **kwargs: Any) -> Any:
        kwargs["verify"] = self.ca_pem
        return super().request(method, url, *args, **kwargs)


class Certificate:
    """An RSA key and self-signed certificate, as an admin would upload to an app registration."""

    def __init__(self) -> None:
        self.key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "snsync test")])
        now = dt.datetime.now(dt.UTC)
        self.cert = (
            x509.CertificateBuilder()
            .subject_name(name)
            .issuer_name(name)
            .public_key(self.key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(days=1))
            .not_valid_after(now + dt.timedelta(days=30))
            .sign(self.key, hashes.SHA256())
        )

    @property
    def key_pem(self) -> str:
        return self.key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        ).decode()

    @property
    def cert_pem(self) -> str:
        return self.cert.public_bytes(serialization.Encoding.PEM).decode()

    @property
    def sha1_hex(self) -> str:
        return self.cert.fingerprint(hashes.SHA1()).hex()


@pytest.fixture(scope="module")
def certificate() -> Certificate:
    return Certificate()


@pytest.fixture(scope="module")
def server(sandbox_tls: SandboxTls) -> Iterator[SandboxServer]:
    """One listener for the module; each test plugs a fresh GraphApp into it."""
    sandbox = SandboxServer(GraphApp(demo_tenant()), sandbox_tls).start()
    yield sandbox
    sandbox.stop()


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def tenant(certificate: Certificate) -> dict[str, Any]:
    """The demo tenant plus a limited client, a certificate client and an expired-secret client."""
    data = demo_tenant()
    data["clients"] += [
        {
            "client_id": LIMITED_CLIENT_ID,
            "client_secret": "limited-secret",
            "permissions": ["GroupMember.Read.All"],
        },
        {"client_id": CERT_CLIENT_ID, "certificate_pem": certificate.cert_pem},
        {
            "client_id": EXPIRED_CLIENT_ID,
            "client_secret": "old-secret",
            "client_secret_expires": "2020-01-01T00:00:00Z",
        },
    ]
    return data


@pytest.fixture
def make_app(
    server: SandboxServer, tenant: dict[str, Any], clock: Clock
) -> Callable[..., GraphApp]:
    """Build a GraphApp from the test tenant (options as keywords) and serve it."""

    def make(**options: Any) -> GraphApp:
        app = GraphApp(tenant, clock=clock, **options)
        server.app = app
        return app

    return make


@pytest.fixture
def app(make_app: Callable[..., GraphApp]) -> GraphApp:
    return make_app()


@pytest.fixture
def ca(sandbox_tls: SandboxTls) -> str:
    return str(sandbox_tls.ca_pem)


def msal_app(
    server: SandboxServer, app: GraphApp, ca: str, client_id: str, credential: Any
) -> msal.ConfidentialClientApplication:
    return msal.ConfidentialClientApplication(
        client_id,
        client_credential=credential,
        authority=f"{server.base_url}/{app.tenant_id}",
        instance_discovery=False,
        http_client=CaSession(ca),
    )


class Graph:
    """A bare requests client for Graph v1.0 on the sandbox."""

    def __init__(self, base_url: str, ca: str, token: str) -> None:
        self.base = f"{base_url}/v1.0"
        self.ca = ca
        self.token = token

    def call(self, method: str, path: str, **kwargs: Any) -> requests.Response:
        url = path if path.startswith("https://") else f"{self.base}/{path.lstrip('/')}"
        headers = {"Authorization": f"Bearer {self.token}", **kwargs.pop("headers", {})}
        return requests.request(method, url, headers=headers, verify=self.ca, timeout=10, **kwargs)

    def get(self, path: str, **params: Any) -> requests.Response:
        return self.call("GET", path, params=params or None)

    def ok(self, path: str, **params: Any) -> dict[str, Any]:
        response = self.get(path, **params)
        assert response.status_code == 200, response.text
        body: dict[str, Any] = response.json()
        return body

    def all_pages(self, path: str, **params: Any) -> tuple[list[dict[str, Any]], int, str]:
        """Every item by following nextLink; also the page count and the final deltaLink."""
        body = self.ok(path, **params)
        items, pages = list(body["value"]), 1
        while "@odata.nextLink" in body:
            body = self.ok(body["@odata.nextLink"])
            items += body["value"]
            pages += 1
        return items, pages, body.get("@odata.deltaLink", "")


def token_for(server: SandboxServer, app: GraphApp, ca: str, client_id: str, secret: str) -> str:
    result = msal_app(server, app, ca, client_id, secret).acquire_token_for_client(GRAPH_SCOPE)
    assert "access_token" in result, result
    return str(result["access_token"])


@pytest.fixture
def graph(server: SandboxServer, app: GraphApp, ca: str) -> Graph:
    return Graph(
        server.base_url, ca, token_for(server, app, ca, DEMO_CLIENT_ID, DEMO_CLIENT_SECRET)
    )


def error_of(response: requests.Response) -> dict[str, Any]:
    """The Graph error object, after checking its shape."""
    body = response.json()
    error: dict[str, Any] = body["error"]
    assert set(error) == {"code", "message", "innerError"}
    assert set(error["innerError"]) == {"date", "request-id", "client-request-id"}
    return error


def post_token(server: SandboxServer, tenant_id: str, ca: str, **form: str) -> requests.Response:
    return requests.post(
        f"{server.base_url}/{tenant_id}/oauth2/v2.0/token", data=form, verify=ca, timeout=10
    )


def by_id(items: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {item["id"]: item for item in items}


# ---------------------------------------------------------------------------------------------
# Token service
# ---------------------------------------------------------------------------------------------


def test_openid_configuration_v2(server: SandboxServer, app: GraphApp, ca: str) -> None:
    url = f"{server.base_url}/{app.tenant_id}/v2.0/.well-known/openid-configuration"
    config = requests.get(url, verify=ca, timeout=10).json()
    assert config["token_endpoint"] == f"{server.base_url}/{app.tenant_id}/oauth2/v2.0/token"
    assert config["issuer"] == f"{server.base_url}/{app.tenant_id}/v2.0"
    assert config["authorization_endpoint"].endswith("/oauth2/v2.0/authorize")
    keys = requests.get(config["jwks_uri"], verify=ca, timeout=10).json()["keys"]
    assert keys[0]["kty"] == "RSA"


def test_openid_configuration_v1(server: SandboxServer, app: GraphApp, ca: str) -> None:
    url = f"{server.base_url}/{app.tenant_id}/.well-known/openid-configuration"
    config = requests.get(url, verify=ca, timeout=10).json()
    assert config["token_endpoint"] == f"{server.base_url}/{app.tenant_id}/oauth2/token"


def test_openid_configuration_unknown_tenant(server: SandboxServer, app: GraphApp, ca: str) -> None:
    url = f"{server.base_url}/contoso-nope/v2.0/.well-known/openid-configuration"
    response = requests.get(url, verify=ca, timeout=10)
    assert response.status_code == 400
    body = response.json()
    assert body["error"] == "invalid_tenant"
    assert body["error_codes"] == [90002]
    assert body["error_description"].startswith("AADSTS90002: Tenant 'contoso-nope' not found.")


def test_msal_secret_gets_a_token(server: SandboxServer, app: GraphApp, ca: str) -> None:
    client = msal_app(server, app, ca, DEMO_CLIENT_ID, DEMO_CLIENT_SECRET)
    result = client.acquire_token_for_client(scopes=GRAPH_SCOPE)
    assert result["token_type"] == "Bearer"
    assert result["expires_in"] == 3599
    assert result["access_token"].count(".") == 2  # a JWT, as Azure AD issues for Graph


@pytest.mark.parametrize("style", ["sha1-thumbprint", "public-certificate"])
def test_msal_certificate_gets_a_token(
    server: SandboxServer, app: GraphApp, ca: str, certificate: Certificate, style: str
) -> None:
    # A thumbprint makes MSAL sign RS256 with x5t; a public certificate makes it PS256 + x5t#S256.
    credential: dict[str, str] = {"private_key": certificate.key_pem}
    if style == "sha1-thumbprint":
        credential["thumbprint"] = certificate.sha1_hex
    else:
        credential["public_certificate"] = certificate.cert_pem
    result = msal_app(server, app, ca, CERT_CLIENT_ID, credential).acquire_token_for_client(
        scopes=GRAPH_SCOPE
    )
    assert "access_token" in result, result
    graph = Graph(server.base_url, ca, result["access_token"])
    assert graph.get("users/" + ADELE).status_code == 200


def test_msal_wrong_certificate_is_aadsts700027(
    server: SandboxServer, app: GraphApp, ca: str
) -> None:
    other = Certificate()
    credential = {"private_key": other.key_pem, "thumbprint": other.sha1_hex}
    result = msal_app(server, app, ca, CERT_CLIENT_ID, credential).acquire_token_for_client(
        scopes=GRAPH_SCOPE
    )
    assert result["error"] == "invalid_client"
    assert result["error_codes"] == [700027]
    assert "The key was not found." in result["error_description"]
    assert other.sha1_hex.upper() in result["error_description"]


def test_forged_certificate_signature_is_aadsts700027(
    server: SandboxServer, app: GraphApp, ca: str, certificate: Certificate
) -> None:
    # Right thumbprint in the header, but signed with another key.
    other = Certificate()
    assertion = msal.oauth2cli.assertion.JwtAssertionCreator(
        other.key_pem, "RS256", sha1_thumbprint=certificate.sha1_hex
    ).create_normal_assertion(
        audience=f"{server.base_url}/{app.tenant_id}/oauth2/v2.0/token", issuer=CERT_CLIENT_ID
    )
    response = post_token(
        server,
        app.tenant_id,
        ca,
        grant_type="client_credentials",
        client_id=CERT_CLIENT_ID,
        scope=GRAPH_SCOPE[0],
        client_assertion_type="urn:ietf:params:oauth:client-assertion-type:jwt-bearer",
        client_assertion=assertion.decode(),
    )
    assert response.status_code == 401
    assert response.json()["error_codes"] == [700027]
    assert "did not match the expected signature" in response.json()["error_description"]


@pytest.mark.parametrize(
    ("client_id", "secret", "error", "code"),
    [
        (DEMO_CLIENT_ID, "wrong", "invalid_client", 7000215),
        ("99999999-9999-4999-8999-999999999999", "x", "unauthorized_client", 700016),
        (EXPIRED_CLIENT_ID, "old-secret", "invalid_client", 7000222),
    ],
)
def test_msal_token_errors(
    server: SandboxServer,
    app: GraphApp,
    ca: str,
    client_id: str,
    secret: str,
    error: str,
    code: int,
) -> None:
    result = msal_app(server, app, ca, client_id, secret).acquire_token_for_client(GRAPH_SCOPE)
    assert "access_token" not in result
    assert result["error"] == error
    assert result["error_codes"] == [code]
    assert result["error_description"].startswith(f"AADSTS{code}: ")
    assert "\r\nTrace ID: " in result["error_description"]
    assert "\r\nCorrelation ID: " in result["error_description"]


def test_msal_unknown_tenant_fails_discovery(server: SandboxServer, app: GraphApp, ca: str) -> None:
    with pytest.raises(ValueError, match="Unable to get authority configuration") as caught:
        msal.ConfidentialClientApplication(
            DEMO_CLIENT_ID,
            client_credential=DEMO_CLIENT_SECRET,
            authority=f"{server.base_url}/11111111-2222-4333-8444-555555555555",
            instance_discovery=False,
            http_client=CaSession(ca),
        )
    assert "AADSTS90002" in str(caught.value.__context__)  # MSAL wraps the discovery answer


def test_token_endpoint_unknown_tenant(server: SandboxServer, app: GraphApp, ca: str) -> None:
    response = post_token(
        server,
        "11111111-2222-4333-8444-555555555555",
        ca,
        grant_type="client_credentials",
        client_id=DEMO_CLIENT_ID,
        client_secret=DEMO_CLIENT_SECRET,
        scope=GRAPH_SCOPE[0],
    )
    assert response.status_code == 400
    assert response.json()["error"] == "invalid_request"
    assert response.json()["error_codes"] == [90002]


@pytest.mark.parametrize(
    ("form", "status", "error", "code"),
    [
        ({"client_id": DEMO_CLIENT_ID, "scope": GRAPH_SCOPE[0]}, 401, "invalid_client", 7000218),
        (
            {
                "client_id": DEMO_CLIENT_ID,
                "client_secret": DEMO_CLIENT_SECRET,
                "scope": "User.Read",
            },
            400,
            "invalid_scope",
            1002012,
        ),
        (
            {
                "client_id": DEMO_CLIENT_ID,
                "client_secret": DEMO_CLIENT_SECRET,
                "scope": "https://management.azure.com/.default",
            },
            400,
            "invalid_resource",
            500011,
        ),
        (
            {"client_id": DEMO_CLIENT_ID, "client_secret": DEMO_CLIENT_SECRET},
            400,
            "invalid_request",
            900144,
        ),
    ],
)
def test_token_request_errors(
    server: SandboxServer,
    app: GraphApp,
    ca: str,
    form: dict[str, str],
    status: int,
    error: str,
    code: int,
) -> None:
    response = post_token(server, app.tenant_id, ca, grant_type="client_credentials", **form)
    assert (response.status_code, response.json()["error"]) == (status, error)
    assert response.json()["error_codes"] == [code]


def test_token_basic_auth_and_v1_endpoint(server: SandboxServer, app: GraphApp, ca: str) -> None:
    basic = requests.post(
        f"{server.base_url}/{app.tenant_id}/oauth2/v2.0/token",
        data={"grant_type": "client_credentials", "scope": GRAPH_SCOPE[0]},
        auth=(DEMO_CLIENT_ID, DEMO_CLIENT_SECRET),
        verify=ca,
        timeout=10,
    )
    assert basic.status_code == 200, basic.text
    v1 = requests.post(
        f"{server.base_url}/{app.tenant_id}/oauth2/token",
        data={
            "grant_type": "client_credentials",
            "client_id": DEMO_CLIENT_ID,
            "client_secret": DEMO_CLIENT_SECRET,
            "resource": "https://graph.microsoft.com",
        },
        verify=ca,
        timeout=10,
    ).json()
    assert v1["expires_in"] == "3599"
    assert v1["resource"] == "https://graph.microsoft.com"


# ---------------------------------------------------------------------------------------------
# Graph: authentication, permissions, response shape
# ---------------------------------------------------------------------------------------------


def test_graph_without_token_is_401(server: SandboxServer, app: GraphApp, ca: str) -> None:
    response = requests.get(f"{server.base_url}/v1.0/users", verify=ca, timeout=10)
    assert response.status_code == 401
    assert error_of(response)["code"] == "InvalidAuthenticationToken"
    assert error_of(response)["message"] == "Access token is empty."
    assert response.headers["WWW-Authenticate"].startswith("Bearer")


def test_graph_bad_tokens_are_401(server: SandboxServer, app: GraphApp, ca: str) -> None:
    other = GraphApp(demo_tenant())  # same tenant, different signing key
    server.app = other
    foreign = token_for(server, other, ca, DEMO_CLIENT_ID, DEMO_CLIENT_SECRET)
    server.app = app
    for token, message in [
        ("not-a-jwt", "CompactToken parsing failed with error code: 80049217"),
        (foreign, "Access token validation failure."),
    ]:
        response = Graph(server.base_url, ca, token).get("users")
        assert response.status_code == 401
        assert error_of(response)["message"] == message


def test_graph_expired_token_is_401(graph: Graph, clock: Clock) -> None:
    assert graph.get("users").status_code == 200
    clock.advance(3600)
    response = graph.get("users")
    assert response.status_code == 401
    assert error_of(response)["message"] == "Lifetime validation failed, the token is expired."


def test_missing_permission_is_403(server: SandboxServer, app: GraphApp, ca: str) -> None:
    limited = Graph(
        server.base_url, ca, token_for(server, app, ca, LIMITED_CLIENT_ID, "limited-secret")
    )
    for path in ("users", f"servicePrincipals/{SERVICENOW_SP_ID}/appRoleAssignedTo", "users/delta"):
        response = limited.get(path)
        assert response.status_code == 403, path
        error = error_of(response)
        assert error["code"] == "Authorization_RequestDenied"
        assert error["message"] == "Insufficient privileges to complete the operation."
    # GroupMember.Read.All alone reads memberships, but user members come back as ids only.
    members = limited.ok(f"groups/{AGENTS}/members", **{"$select": "id,displayName"})["value"]
    assert {"@odata.type": "#microsoft.graph.user", "id": ADELE, "displayName": None} in members


def test_graph_response_headers(graph: Graph) -> None:
    response = graph.call("GET", "users", headers={"client-request-id": "abc-123"})
    assert response.headers["client-request-id"] == "abc-123"
    assert response.headers["request-id"]
    assert response.headers["Content-Type"].startswith("application/json;odata.metadata=minimal")
    missing = graph.call("GET", "users/nobody@contoso.example", headers={"client-request-id": "x"})
    assert error_of(missing)["innerError"]["client-request-id"] == "x"


def test_unknown_segment_is_400(graph: Graph) -> None:
    response = graph.get("widgets")
    assert response.status_code == 400
    assert error_of(response)["message"] == "Resource not found for the segment 'widgets'."


# ---------------------------------------------------------------------------------------------
# Graph: service principal and assignments
# ---------------------------------------------------------------------------------------------


def test_service_principal_by_filter_and_id(graph: Graph) -> None:
    listed = graph.ok("servicePrincipals", **{"$filter": f"appId eq '{SERVICENOW_APP_ID}'"})
    assert [sp["id"] for sp in listed["value"]] == [SERVICENOW_SP_ID]
    sp = graph.ok(f"servicePrincipals/{SERVICENOW_SP_ID}")
    assert sp["displayName"] == "ServiceNow"
    assert sp["appId"] == SERVICENOW_APP_ID
    values = {role["value"] for role in sp["appRoles"]}
    assert values == {"User", "msiam_access", "Admin"}
    assert DEFAULT_ACCESS_ROLE_ID not in {role["id"] for role in sp["appRoles"]}
    role = sp["appRoles"][0]
    assert {"id", "value", "displayName", "description", "isEnabled", "allowedMemberTypes"} <= set(
        role
    )
    alternate = graph.ok(f"servicePrincipals(appId='{SERVICENOW_APP_ID}')", **{"$select": "id"})
    assert alternate["id"] == SERVICENOW_SP_ID
    none = graph.ok(
        "servicePrincipals", **{"$filter": "appId eq '00000000-1111-2222-3333-444444444444'"}
    )
    assert none["value"] == []
    assert graph.get("servicePrincipals/00000000-1111-2222-3333-444444444444").status_code == 404


def test_app_role_assigned_to_pages(graph: Graph) -> None:
    items, pages, _ = graph.all_pages(
        f"servicePrincipals/{SERVICENOW_SP_ID}/appRoleAssignedTo", **{"$top": "2"}
    )
    assert pages == 5  # 9 assignments, 2 a page
    principals = {item["principalId"]: item for item in items}
    assert set(principals) == {
        ADELE,
        LEE,
        MEGAN,
        ALEX,
        PATTI,
        IRVIN,
        demo_user_id("nora.okafor"),
        AGENTS,
        APPROVERS,
    }
    assert principals[AGENTS]["principalType"] == "Group"
    assert principals[AGENTS]["principalDisplayName"] == "ServiceNow Agents"
    assert principals[MEGAN]["appRoleId"] == DEFAULT_ACCESS_ROLE_ID
    assert principals[ADELE]["resourceId"] == SERVICENOW_SP_ID
    assert principals[ADELE]["deletedDateTime"] is None
    # Assignment ids are opaque 43-character base64url strings, not GUIDs.
    assert all(re.fullmatch(r"[A-Za-z0-9_-]{43}", item["id"]) for item in items)


def test_app_role_assignment_create_and_delete(graph: Graph) -> None:
    path = f"servicePrincipals/{SERVICENOW_SP_ID}/appRoleAssignedTo"
    grady = demo_user_id("grady.archie")
    body = {"principalId": grady, "resourceId": SERVICENOW_SP_ID, "appRoleId": ROLE_ADMIN_ID}
    created = graph.call("POST", path, json=body)
    assert created.status_code == 201, created.text
    assignment = created.json()
    assert assignment["principalDisplayName"] == "Grady Archie"
    assert assignment["principalType"] == "User"
    duplicate = graph.call("POST", path, json=body)
    assert duplicate.status_code == 400
    bad_role = graph.call(
        "POST", path, json={**body, "appRoleId": "12345678-1234-4234-8234-123456789012"}
    )
    assert bad_role.status_code == 400
    assert "was not found on application" in error_of(bad_role)["message"]
    assert graph.call("DELETE", f"{path}/{assignment['id']}").status_code == 204
    assert graph.call("DELETE", f"{path}/{assignment['id']}").status_code == 404
    remaining, _, _ = graph.all_pages(path)
    assert grady not in {item["principalId"] for item in remaining}


def test_soft_deleted_users_assignments_disappear(graph: Graph) -> None:
    path = f"servicePrincipals/{SERVICENOW_SP_ID}/appRoleAssignedTo"
    assert graph.call("DELETE", f"users/{ADELE}").status_code == 204
    items, _, _ = graph.all_pages(path)
    assert ADELE not in {item["principalId"] for item in items}
    members = graph.ok(f"groups/{AGENTS}/members")["value"]
    assert ADELE not in {m["id"] for m in members}


# ---------------------------------------------------------------------------------------------
# Graph: users
# ---------------------------------------------------------------------------------------------


def test_users_paging_with_select(graph: Graph, server: SandboxServer) -> None:
    first = graph.ok("users", **{"$select": "id,displayName", "$top": "7"})
    assert first["@odata.context"].endswith("/v1.0/$metadata#users(id,displayName)")
    next_link = first["@odata.nextLink"]
    assert next_link.startswith(f"{server.base_url}/v1.0/users?")
    assert "$skiptoken=" in next_link and "$select=id,displayName" in next_link
    items, pages, _ = graph.all_pages("users", **{"$select": "id,displayName", "$top": "7"})
    assert pages == 5
    assert len(items) == 30 and len(by_id(items)) == 30
    assert all(set(item) == {"id", "displayName"} for item in items)


def test_users_pages_stay_stable_when_users_change_between_pages(
    graph: Graph, app: GraphApp
) -> None:
    # Pages follow the id order from the skiptoken's key on: a user added or removed between
    # two pages shifts nothing. A new user shows up later only if its (random) id sorts after
    # the last id already served; a removed one only if it was served before it went.
    body = graph.ok("users", **{"$select": "id,displayName", "$top": "5"})
    served = [user["id"] for user in body["value"]]
    before = [user["id"] for user in graph.all_pages("users", **{"$select": "id"})[0]]
    expected = list(served)
    rounds = 0
    while "@odata.nextLink" in body:
        rounds += 1
        cursor = served[-1]
        new = graph.call(
            "POST",
            "users",
            json={
                "accountEnabled": True,
                "displayName": f"Between Pages {rounds}",
                "mailNickname": f"between.{rounds}",
                "userPrincipalName": f"between.{rounds}@contoso.example",
                "passwordProfile": {"password": "Sandbox-1234!"},
            },
        )
        assert new.status_code == 201, new.text
        pending = [uid for uid in before if uid > cursor]
        gone = {pending[0]} if rounds % 2 and pending else set()  # soft-deleted: hidden
        purged = {pending[-1]} if rounds % 3 == 0 and len(pending) > 1 else set()
        for uid in gone:
            assert graph.call("DELETE", f"users/{uid}").status_code == 204
        for uid in purged:
            app.hard_delete_user(uid)
        before = sorted({*before, new.json()["id"]} - gone - purged)
        body = graph.ok(body["@odata.nextLink"])
        page = [user["id"] for user in body["value"]]
        remaining = [uid for uid in before if uid > cursor]
        assert len(page) == min(5, len(remaining))
        assert ("@odata.nextLink" in body) == (len(remaining) > 5)
        expected += remaining[:5]
        served += page
    assert rounds >= 3
    assert served == expected, "each page starts after the last id served, as it is now"
    assert served == sorted(set(served)), "no user twice, none out of order"


def test_users_default_property_set(graph: Graph) -> None:
    users = graph.ok("users")["value"]
    assert len(users) == 30  # default page size 100
    assert all(set(user) == set(USER_DEFAULT_SELECT) for user in users)
    kai = next(u for u in users if u["displayName"] == "Kai Carter")
    assert kai["businessPhones"] == [] and kai["mobilePhone"] is None


def test_select_without_id_has_no_id(graph: Graph) -> None:
    # Real Graph returns only what was selected; clients must ask for id.
    users = graph.ok("users", **{"$select": "displayName", "$top": "3"})["value"]
    assert all(set(user) == {"displayName"} for user in users)


@pytest.mark.parametrize("top", ["0", "1000", "ten", "-1"])
def test_top_out_of_bounds_is_400(graph: Graph, top: str) -> None:
    response = graph.get("users", **{"$top": top})
    assert response.status_code == 400
    assert error_of(response)["code"] in ("Request_BadRequest", "BadRequest")


def test_unknown_select_property_is_400(graph: Graph) -> None:
    response = graph.get("users", **{"$select": "id,displayNam"})
    assert response.status_code == 400
    assert "displayNam" in error_of(response)["message"]


def test_user_by_upn_and_id(graph: Graph) -> None:
    by_upn = graph.ok("users/Adele.Vance@contoso.example", **{"$select": "id,department"})
    assert by_upn == {
        "@odata.context": by_upn["@odata.context"],
        "id": ADELE,
        "department": "Engineering",
    }
    by_guid = graph.ok(f"users/{ADELE.upper()}")
    assert by_guid["userPrincipalName"] == "adele.vance@contoso.example"
    missing = graph.get("users/nobody@contoso.example")
    assert missing.status_code == 404
    error = error_of(missing)
    assert error["code"] == "Request_ResourceNotFound"
    assert error["message"] == (
        "Resource 'nobody@contoso.example' does not exist or one of its queried "
        "reference-property objects are not present."
    )


def test_manager_and_expand(graph: Graph) -> None:
    manager = graph.ok(f"users/{ADELE}/manager", **{"$select": "id,displayName"})
    assert (manager["id"], manager["displayName"]) == (LEE, "Lee Gu")
    assert manager["@odata.type"] == "#microsoft.graph.user"
    assert graph.get(f"users/{PATTI}/manager").status_code == 404
    expanded = graph.ok(
        f"users/{ADELE}", **{"$select": "id", "$expand": "manager($select=id,displayName)"}
    )
    assert expanded["manager"]["id"] == LEE
    listed = graph.ok("users", **{"$select": "id", "$expand": "manager($select=id)"})["value"]
    managers = {user["id"]: user.get("manager", {}).get("id") for user in listed}
    assert managers[ADELE] == LEE
    assert managers[PATTI] is None  # no manager: the property is absent


def test_create_patch_and_delete_user(graph: Graph) -> None:
    body = {
        "accountEnabled": True,
        "displayName": "Test Person",
        "mailNickname": "test.person",
        "userPrincipalName": "test.person@contoso.example",
        "passwordProfile": {"password": "Sandbox-1234!", "forceChangePasswordNextSignIn": True},
        "department": "Sales",
    }
    created = graph.call("POST", "users", json=body)
    assert created.status_code == 201, created.text
    user_id = created.json()["id"]
    assert graph.call("POST", "users", json=body).status_code == 400  # same UPN again
    patched = graph.call("PATCH", f"users/{user_id}", json={"jobTitle": "Tester"})
    assert patched.status_code == 204 and patched.content == b""
    assert graph.ok(f"users/{user_id}", **{"$select": "jobTitle"})["jobTitle"] == "Tester"
    assert graph.call("DELETE", f"users/{user_id}").status_code == 204
    assert graph.get(f"users/{user_id}").status_code == 404
    everyone, _, _ = graph.all_pages("users", **{"$select": "id"})
    assert user_id not in by_id(everyone)


@pytest.mark.parametrize(
    ("change", "fragment"),
    [
        ({"passwordProfile": None}, "passwordProfile"),
        ({"userPrincipalName": "x@fabrikam.example"}, "verified domain"),
        ({"favouriteColour": "blue"}, "favouriteColour"),
        ({"id": "11111111-2222-4333-8444-555555555555"}, "read-only"),
    ],
)
def test_create_user_rejections(graph: Graph, change: dict[str, Any], fragment: str) -> None:
    body = {
        "accountEnabled": True,
        "displayName": "Bad Person",
        "mailNickname": "bad.person",
        "userPrincipalName": "bad.person@contoso.example",
        "passwordProfile": {"password": "Sandbox-1234!"},
        **change,
    }
    response = graph.call("POST", "users", json=body)
    assert response.status_code == 400
    assert fragment in error_of(response)["message"]


def test_user_filters(graph: Graph) -> None:
    disabled = graph.ok("users", **{"$filter": "accountEnabled eq false", "$select": "id"})
    assert {u["id"] for u in disabled["value"]} == {IRVIN, demo_user_id("delia.dennis")}
    starts = graph.ok(
        "users", **{"$filter": "startswith(displayName,'a')", "$select": "displayName"}
    )
    assert sorted(u["displayName"] for u in starts["value"]) == [
        "Adele Vance",
        "Alex Wilber",
        "Allan Deyoung",
    ]
    chosen = graph.ok("users", **{"$filter": f"id in ('{ADELE}','{ALEX}')", "$select": "id"})
    assert {u["id"] for u in chosen["value"]} == {ADELE, ALEX}
    both = graph.ok(
        "users", **{"$filter": "department eq 'IT' and accountEnabled eq true", "$select": "id"}
    )
    assert len(both["value"]) == 5


@pytest.mark.parametrize(
    ("clause", "code"),
    [
        ("assignedLicenses/any(x:x/skuId eq 1)", "Request_UnsupportedQuery"),
        ("favouriteColour eq 'blue'", "Request_UnsupportedQuery"),
        ("displayName eq", "BadRequest"),
        ("department ne 'IT'", "Request_UnsupportedQuery"),
    ],
)
def test_unsupported_filters_are_400(graph: Graph, clause: str, code: str) -> None:
    response = graph.get("users", **{"$filter": clause})
    assert response.status_code == 400
    assert error_of(response)["code"] == code


def test_advanced_query_needs_consistency_level(graph: Graph) -> None:
    response = graph.call(
        "GET",
        "users",
        params={"$filter": "department ne 'IT'", "$count": "true", "$select": "id"},
        headers={"ConsistencyLevel": "eventual"},
    )
    assert response.status_code == 200
    assert response.json()["@odata.count"] == 25


# ---------------------------------------------------------------------------------------------
# Graph: groups and members
# ---------------------------------------------------------------------------------------------


def test_groups_list_and_get(graph: Graph) -> None:
    groups, pages, _ = graph.all_pages("groups", **{"$select": "id,displayName", "$top": "3"})
    assert pages == 2
    assert {g["displayName"] for g in groups} == {
        "ServiceNow Agents",
        "ServiceNow Approvers",
        "Approvers EMEA",
        "All Staff",
    }
    group = graph.ok(f"groups/{APPROVERS}")
    assert group["displayName"] == "ServiceNow Approvers"
    assert group["securityEnabled"] is True
    assert graph.get("groups/11111111-2222-4333-8444-555555555555").status_code == 404


def test_members_show_nested_group_and_types(graph: Graph) -> None:
    members = by_id(
        graph.ok(f"groups/{APPROVERS}/members", **{"$select": "id,displayName"})["value"]
    )
    assert members[EMEA] == {
        "@odata.type": "#microsoft.graph.group",
        "id": EMEA,
        "displayName": "Approvers EMEA",
    }
    assert members[demo_user_id("debra.berger")]["@odata.type"] == "#microsoft.graph.user"
    assert demo_user_id("johanna.lorenz") not in members
    transitive = by_id(graph.ok(f"groups/{APPROVERS}/transitiveMembers")["value"])
    assert EMEA in transitive
    assert demo_user_id("johanna.lorenz") in transitive
    assert len(transitive) == 8  # 3 direct users + the nested group + its 4 users
    users_only = graph.ok(f"groups/{APPROVERS}/members/microsoft.graph.user")["value"]
    assert EMEA not in by_id(users_only) and len(users_only) == 3


def test_member_paging(graph: Graph) -> None:
    items, pages, _ = graph.all_pages(
        f"groups/{ALL_STAFF}/members", **{"$top": "8", "$select": "id"}
    )
    assert (len(items), pages) == (30, 4)


def test_member_ref_add_and_remove(graph: Graph, server: SandboxServer) -> None:
    ref = {"@odata.id": f"https://graph.microsoft.com/v1.0/directoryObjects/{ALEX}"}
    path = f"groups/{AGENTS}/members"
    assert graph.call("POST", f"{path}/$ref", json=ref).status_code == 204
    duplicate = graph.call("POST", f"{path}/$ref", json=ref)
    assert duplicate.status_code == 400
    assert error_of(duplicate)["message"] == (
        "One or more added object references already exist for the following modified "
        "properties: 'members'."
    )
    assert ALEX in by_id(graph.ok(path)["value"])
    assert graph.call("DELETE", f"{path}/{ALEX}/$ref").status_code == 204
    assert graph.call("DELETE", f"{path}/{ALEX}/$ref").status_code == 404
    assert ALEX not in by_id(graph.ok(path)["value"])


def test_member_of_and_directory_objects(graph: Graph) -> None:
    johanna = demo_user_id("johanna.lorenz")
    direct = by_id(graph.ok(f"users/{johanna}/memberOf", **{"$select": "id"})["value"])
    assert set(direct) == {EMEA, ALL_STAFF}
    nested = by_id(graph.ok(f"users/{johanna}/transitiveMemberOf")["value"])
    assert set(nested) == {EMEA, ALL_STAFF, APPROVERS}
    group = graph.ok(f"directoryObjects/{EMEA}", **{"$select": "id,displayName"})
    assert group["@odata.type"] == "#microsoft.graph.group"
    user = graph.ok(f"directoryObjects/{johanna}")
    assert user["@odata.type"] == "#microsoft.graph.user"
    assigned = graph.ok(f"users/{MEGAN}/appRoleAssignments")["value"]
    assert [a["appRoleId"] for a in assigned] == [DEFAULT_ACCESS_ROLE_ID]


def test_group_create_patch_delete(graph: Graph) -> None:
    _, _, delta_link = graph.all_pages("groups/delta", **{"$select": "displayName"})
    body = {
        "displayName": "ServiceNow Readers",
        "mailEnabled": False,
        "mailNickname": "snow-readers",
        "securityEnabled": True,
    }
    created = graph.call("POST", "groups", json=body)
    assert created.status_code == 201, created.text
    group_id = created.json()["id"]
    patched = graph.call("PATCH", f"groups/{group_id}", json={"description": "Read only"})
    assert patched.status_code == 204
    assert graph.ok(f"groups/{group_id}")["description"] == "Read only"
    assert graph.call("DELETE", f"groups/{AGENTS}").status_code == 204
    assignments, _, _ = graph.all_pages(f"servicePrincipals/{SERVICENOW_SP_ID}/appRoleAssignedTo")
    assert AGENTS not in {a["principalId"] for a in assignments}
    changes = by_id(graph.ok(delta_link)["value"])
    assert changes[group_id]["displayName"] == "ServiceNow Readers"
    assert changes[AGENTS] == {"id": AGENTS, "@removed": {"reason": "deleted"}}
    missing_field = graph.call("POST", "groups", json={"displayName": "x"})
    assert missing_field.status_code == 400


def test_manager_ref(graph: Graph) -> None:
    _, _, delta_link = graph.all_pages("users/delta", **{"$select": "displayName,manager"})
    ref = {"@odata.id": f"https://graph.microsoft.com/v1.0/users/{ALEX}"}
    assert graph.call("PUT", f"users/{PATTI}/manager/$ref", json=ref).status_code == 204
    assert graph.ok(f"users/{PATTI}/manager", **{"$select": "id"})["id"] == ALEX
    changes = by_id(graph.ok(delta_link)["value"])
    assert changes[PATTI]["manager@delta"] == [{"@odata.type": "#microsoft.graph.user", "id": ALEX}]
    missing = {
        "@odata.id": "https://graph.microsoft.com/v1.0/users/11111111-2222-4333-8444-555555555555"
    }
    assert graph.call("PUT", f"users/{PATTI}/manager/$ref", json=missing).status_code == 404


def test_soft_delete_shows_in_groups_delta(graph: Graph) -> None:
    _, _, delta_link = graph.all_pages("groups/delta", **{"$select": "displayName,members"})
    assert graph.call("DELETE", f"users/{ADELE}").status_code == 204
    changes = by_id(graph.ok(delta_link)["value"])
    assert set(changes) == {AGENTS, ALL_STAFF}  # the groups Adele was a direct member of
    removed = {
        "@odata.type": "#microsoft.graph.user",
        "id": ADELE,
        "@removed": {"reason": "deleted"},
    }
    assert changes[AGENTS]["members@delta"] == [removed]


# ---------------------------------------------------------------------------------------------
# Graph: delta
# ---------------------------------------------------------------------------------------------


def graph_of(server: SandboxServer, app: GraphApp, ca: str) -> Graph:
    """A Graph client with a token from `app` (for tests that build their own app)."""
    return Graph(
        server.base_url, ca, token_for(server, app, ca, DEMO_CLIENT_ID, DEMO_CLIENT_SECRET)
    )


def test_users_delta_rounds(
    server: SandboxServer, make_app: Callable[..., GraphApp], ca: str
) -> None:
    app = make_app(delta_page_size=10)  # the service's page size; the client's $top is ignored
    graph = graph_of(server, app, ca)
    select = {"$select": "displayName,jobTitle,accountEnabled,manager", "$top": "5"}
    items, pages, delta_link = graph.all_pages("users/delta", **select)
    assert (len(items), pages) == (30, 3)
    assert "$deltatoken=" in delta_link
    adele = by_id(items)[ADELE]
    assert adele["manager@delta"] == [{"@odata.type": "#microsoft.graph.user", "id": LEE}]
    assert set(adele) == {"id", "displayName", "jobTitle", "accountEnabled", "manager@delta"}

    quiet = graph.ok(delta_link)
    assert quiet["value"] == [] and "@odata.deltaLink" in quiet

    graph.call("PATCH", f"users/{ALEX}", json={"jobTitle": "Sales Lead"})
    graph.call("DELETE", f"users/{MEGAN}")
    created = graph.call(
        "POST",
        "users",
        json={
            "accountEnabled": True,
            "displayName": "New Starter",
            "mailNickname": "new.starter",
            "userPrincipalName": "new.starter@contoso.example",
            "passwordProfile": {"password": "Sandbox-1234!"},
        },
    ).json()
    graph.call("DELETE", f"users/{ADELE}/manager/$ref")
    changes, _, next_delta = graph.all_pages(quiet["@odata.deltaLink"])
    changed = by_id(changes)
    assert changed[ALEX]["jobTitle"] == "Sales Lead"
    assert changed[MEGAN] == {"id": MEGAN, "@removed": {"reason": "changed"}}
    assert changed[created["id"]]["displayName"] == "New Starter"
    assert changed[ADELE]["manager@delta"] == [
        {"@odata.type": "#microsoft.graph.user", "id": LEE, "@removed": {"reason": "deleted"}}
    ]
    assert len(changed) == 4

    # After 30 days Azure AD purges the user: "deleted", and its reports lose their manager.
    app.hard_delete_user(MEGAN)
    purged = by_id(graph.ok(next_delta)["value"])
    assert purged.pop(MEGAN) == {"id": MEGAN, "@removed": {"reason": "deleted"}}
    assert {u["displayName"] for u in purged.values()} == {
        "Lynne Robbins",
        "Delia Dennis",
        "Gerhart Möller",
    }
    gone = {"@odata.type": "#microsoft.graph.user", "id": MEGAN, "@removed": {"reason": "deleted"}}
    assert all(u["manager@delta"] == [gone] for u in purged.values())


def test_groups_delta_members(graph: Graph) -> None:
    select = {"$select": "displayName,description,members"}
    groups, _, delta_link = graph.all_pages("groups/delta", **select)
    approvers = by_id(groups)[APPROVERS]
    assert {"@odata.type": "#microsoft.graph.group", "id": EMEA} in approvers["members@delta"]
    assert len(by_id(groups)[ALL_STAFF]["members@delta"]) == 30

    ref = {"@odata.id": f"https://graph.microsoft.com/v1.0/directoryObjects/{ALEX}"}
    graph.call("POST", f"groups/{AGENTS}/members/$ref", json=ref)
    graph.call("DELETE", f"groups/{AGENTS}/members/{ADELE}/$ref")
    changes = by_id(graph.ok(delta_link)["value"])
    assert list(changes) == [AGENTS]
    agents = changes[AGENTS]
    assert agents["displayName"] == "ServiceNow Agents"
    expected = [
        {"@odata.type": "#microsoft.graph.user", "id": ALEX},
        {"@odata.type": "#microsoft.graph.user", "id": ADELE, "@removed": {"reason": "deleted"}},
    ]
    assert agents["members@delta"] == sorted(expected, key=lambda m: m["id"])


def test_expired_delta_tokens_are_400_sync_state_not_found(
    server: SandboxServer, make_app: Callable[..., GraphApp], ca: str
) -> None:
    graph = graph_of(server, app := make_app(delta_page_size=5), ca)
    _, _, delta_link = graph.all_pages("users/delta", **{"$select": "displayName"})
    first_page = graph.ok("users/delta")
    app.expire_delta_tokens()
    for stale in (delta_link, first_page["@odata.nextLink"]):
        gone = graph.get(stale)
        assert gone.status_code == 400
        assert error_of(gone)["code"] == "syncStateNotFound"
        assert "must be synchronized again" in error_of(gone)["message"]
    _, _, fresh_link = graph.all_pages("users/delta", **{"$select": "displayName"})
    assert graph.get(fresh_link).status_code == 200


def test_expired_delta_tokens_can_be_410_with_a_location(
    server: SandboxServer, make_app: Callable[..., GraphApp], ca: str
) -> None:
    graph = graph_of(server, app := make_app(delta_expired_status=410), ca)
    _, _, delta_link = graph.all_pages("users/delta", **{"$select": "displayName,jobTitle"})
    app.expire_delta_tokens()
    gone = graph.get(delta_link)
    assert (gone.status_code, error_of(gone)["code"]) == (410, "syncStateNotFound")
    restart = gone.headers["Location"]
    assert "token" not in restart and restart.startswith(f"{server.base_url}/v1.0/users/delta")
    items, _, _ = graph.all_pages(restart)
    assert len(items) == 30 and set(items[0]) == {"id", "displayName", "jobTitle"}


def test_delta_tokens_expire_after_ttl(
    server: SandboxServer, make_app: Callable[..., GraphApp], ca: str, clock: Clock
) -> None:
    app = make_app(token_lifetime_s=30 * 24 * 3600)  # keep the access token alive past 7 days
    token = token_for(server, app, ca, DEMO_CLIENT_ID, DEMO_CLIENT_SECRET)
    graph = Graph(server.base_url, ca, token)
    _, _, delta_link = graph.all_pages("groups/delta", **{"$select": "displayName"})
    clock.advance(6 * 24 * 3600)
    assert graph.get(delta_link).status_code == 200
    clock.advance(2 * 24 * 3600)
    gone = graph.get(delta_link)
    assert gone.status_code == 400
    assert error_of(gone)["code"] == "syncStateNotFound"


def test_tampered_delta_token_is_400(graph: Graph) -> None:
    _, _, delta_link = graph.all_pages("users/delta")
    assert graph.get(delta_link[:-3] + "xyz").status_code == 400


# ---------------------------------------------------------------------------------------------
# Graph: $batch and throttling
# ---------------------------------------------------------------------------------------------


def test_batch_mixed_results(graph: Graph) -> None:
    payload = {
        "requests": [
            {"id": "1", "method": "GET", "url": f"/users/{ADELE}?$select=id,displayName"},
            {"id": "2", "method": "GET", "url": "users/11111111-2222-4333-8444-555555555555"},
            {
                "id": "3",
                "method": "PATCH",
                "url": f"/users/{ALEX}",
                "headers": {"Content-Type": "application/json"},
                "body": {"jobTitle": "Batch Title"},
            },
            {"id": "4", "method": "GET", "url": "/users/nobody", "dependsOn": ["2"]},
        ]
    }
    response = graph.call("POST", "$batch", json=payload)
    assert response.status_code == 200
    answers = {item["id"]: item for item in response.json()["responses"]}
    assert answers["1"]["status"] == 200
    assert answers["1"]["body"]["displayName"] == "Adele Vance"
    assert answers["2"]["status"] == 404
    assert answers["2"]["body"]["error"]["code"] == "Request_ResourceNotFound"
    assert answers["3"]["status"] == 204 and "body" not in answers["3"]
    assert answers["4"]["status"] == 424
    assert graph.ok(f"users/{ALEX}", **{"$select": "jobTitle"})["jobTitle"] == "Batch Title"


def test_batch_limits(graph: Graph) -> None:
    too_many = {"requests": [{"id": str(i), "method": "GET", "url": "/users"} for i in range(21)]}
    response = graph.call("POST", "$batch", json=too_many)
    assert response.status_code == 400
    assert error_of(response)["code"] == "BadRequest"
    no_type = {"requests": [{"id": "1", "method": "PATCH", "url": f"/users/{ALEX}", "body": {}}]}
    item = graph.call("POST", "$batch", json=no_type).json()["responses"][0]
    assert item["status"] == 400


def test_batch_items_are_throttled_one_by_one(
    server: SandboxServer, make_app: Callable[..., GraphApp], ca: str
) -> None:
    app = make_app(throttle_every=3)
    graph = Graph(
        server.base_url, ca, token_for(server, app, ca, DEMO_CLIENT_ID, DEMO_CLIENT_SECRET)
    )
    payload = {
        "requests": [
            {"id": str(i), "method": "GET", "url": f"/users/{ADELE}?$select=id"} for i in range(6)
        ]
    }
    answers = graph.call("POST", "$batch", json=payload).json()["responses"]
    statuses = [item["status"] for item in answers]
    assert statuses == [200, 200, 429, 200, 200, 429]
    throttled = answers[2]
    assert throttled["headers"]["Retry-After"] == "1"
    assert throttled["body"]["error"]["code"] == "TooManyRequests"
    assert app.request_count() == 6


def test_top_level_throttling(
    server: SandboxServer, make_app: Callable[..., GraphApp], ca: str
) -> None:
    app = make_app(throttle_every=2)
    graph = Graph(
        server.base_url, ca, token_for(server, app, ca, DEMO_CLIENT_ID, DEMO_CLIENT_SECRET)
    )
    assert graph.get(f"users/{ADELE}").status_code == 200
    throttled = graph.get(f"users/{ADELE}")
    assert throttled.status_code == 429
    assert throttled.headers["Retry-After"] == "1"
    assert error_of(throttled)["code"] == "TooManyRequests"
    assert app.request_count() == 2  # token requests are not counted


def test_fault_response_shapes(app: GraphApp) -> None:
    throttled = app.fault_response(429, 7)
    assert throttled.status == 429 and throttled.headers["Retry-After"] == "7"
    assert json.loads(throttled.body)["error"]["code"] == "TooManyRequests"
    unavailable = app.fault_response(503, 3)
    assert unavailable.status == 503 and unavailable.headers["Retry-After"] == "3"
    assert json.loads(unavailable.body)["error"]["code"] == "serviceNotAvailable"


def test_injected_faults_reach_clients(graph: Graph, server: SandboxServer) -> None:
    server.faults = FaultPlan(rate=1.0, kinds=("503",), retry_after=2)
    try:
        response = graph.get("users")
    finally:
        server.faults = FaultPlan()
    assert response.status_code == 503
    assert response.headers["Retry-After"] == "2"
    assert error_of(response)["code"] == "serviceNotAvailable"


def test_concurrent_clients(graph: Graph) -> None:
    failures: list[str] = []

    def worker(index: int) -> None:
        for _ in range(10):
            response = graph.get("users", **{"$select": "id", "$top": "5"})
            if response.status_code != 200:
                failures.append(response.text)
            patch = graph.call("PATCH", f"users/{ADELE}", json={"officeLocation": f"desk {index}"})
            if patch.status_code != 204:
                failures.append(patch.text)

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert failures == []


# ---------------------------------------------------------------------------------------------
# Fixture validation
# ---------------------------------------------------------------------------------------------


def _broken(change: Callable[[dict[str, Any]], None]) -> dict[str, Any]:
    data = demo_tenant()
    change(data)
    return data


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (
            lambda t: t["users"][4].update(id=t["users"][3]["id"]),
            "tenant fixture: users[4].id: duplicate id '",
        ),
        (lambda t: t.update(tenant_id="contoso"), "tenant fixture: tenant_id: expected a GUID"),
        (
            lambda t: t["users"][0].update(favouriteColour="blue"),
            "tenant fixture: users[0].favouriteColour: unknown property",
        ),
        (
            lambda t: t["users"][1].update(manager="11111111-2222-4333-8444-555555555555"),
            "tenant fixture: users[1].manager: ",
        ),
        (
            lambda t: t["users"][2].update(userPrincipalName=t["users"][3]["userPrincipalName"]),
            "tenant fixture: users[3].userPrincipalName: duplicate",
        ),
        (
            lambda t: t["groups"][0]["members"].append("11111111-2222-4333-8444-555555555555"),
            "tenant fixture: groups[0].members[6]: no user or group",
        ),
        (
            lambda t: t["assignments"][0].update(appRoleId="11111111-2222-4333-8444-555555555555"),
            "tenant fixture: assignments[0].appRoleId: ",
        ),
        (
            lambda t: t["clients"][0].update(permissions=["User.Read.Al"]),
            "tenant fixture: clients[0].permissions[0]: unknown permission 'User.Read.Al'",
        ),
        (
            lambda t: t["clients"][0].pop("client_secret"),
            "tenant fixture: clients[0]: needs client_secret or certificate_pem",
        ),
        (lambda t: t.pop("service_principal"), "tenant fixture: service_principal: expected an"),
    ],
)
def test_fixture_validation(change: Callable[[dict[str, Any]], None], message: str) -> None:
    with pytest.raises(FixtureError) as caught:
        GraphApp(_broken(change))
    text = str(caught.value)
    assert text.startswith(message), text
    assert "\n" not in text


def test_load_tenant_file(tmp_path: Path) -> None:
    good = tmp_path / "tenant.json"
    good.write_text(json.dumps(demo_tenant()), encoding="utf-8")
    assert GraphApp(load_tenant_file(good)).tenant_id == demo_tenant()["tenant_id"]
    bad = tmp_path / "bad.json"
    bad.write_text('{\n  "tenant_id": "x",\n  oops\n}', encoding="utf-8")
    with pytest.raises(FixtureError, match=r"bad\.json: invalid JSON at line 3 column 3"):
        load_tenant_file(bad)
    with pytest.raises(FixtureError, match="cannot read"):
        load_tenant_file(tmp_path / "missing.json")


def test_demo_tenant_shape() -> None:
    data = demo_tenant()
    assert len(data["users"]) == 30
    assert sum(not user["accountEnabled"] for user in data["users"]) == 2
    assert {u["department"] for u in data["users"]} == {
        "Engineering",
        "Sales",
        "Finance",
        "HR",
        "IT",
        "Marketing",
        "Research",
    }
    assigned = {a["principalId"] for a in data["assignments"]}
    assert EMEA not in assigned and AGENTS in assigned and IRVIN in assigned
    roles = {a["principalId"]: a["appRoleId"] for a in data["assignments"]}
    assert roles[MEGAN] == DEFAULT_ACCESS_ROLE_ID and roles[ADELE] == ROLE_USER_ID
    assert demo_tenant() == data  # fixed ids: the same on every call


def test_delta_latest_token_skips_the_initial_round(graph: Graph) -> None:
    first = graph.ok("users/delta", **{"$deltatoken": "latest", "$select": "jobTitle"})
    assert first["value"] == [] and "@odata.nextLink" not in first
    graph.call("PATCH", f"users/{ALEX}", json={"jobTitle": "Sales Lead"})
    changed = graph.ok(first["@odata.deltaLink"])
    assert [(u["id"], u["jobTitle"]) for u in changed["value"]] == [(ALEX, "Sales Lead")]
