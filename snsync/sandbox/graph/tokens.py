"""The Microsoft identity platform token service (login.microsoftonline.com): OpenID discovery,
JWKS, the client-credentials token endpoint (v2 and v1), and verification of the Graph access
tokens it issued.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import uuid
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from typing import Any
from urllib.parse import parse_qs, urlsplit

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from snsync.sandbox.graph.assertions import (
    TokenError,
    basic_credentials,
    check_assertion,
    missing_parameter,
    tenant_not_found,
)
from snsync.sandbox.graph.catalog import (
    GRAPH_APP_ID,
    GRAPH_RESOURCE,
    JWT_BEARER,
    NO_CLAIM_CHECKS,
    name_list,
)
from snsync.sandbox.graph.directory import Client, Directory, Principal
from snsync.sandbox.graph.wire import GraphError, b64url, json_reply, plain_not_found
from snsync.sandbox.server import Request, Response


class TokenService:
    """OpenID discovery, JWKS and the OAuth2 client-credentials token endpoint (v2 and v1)."""

    def __init__(self, directory: Directory, lifetime_s: int, clock: Callable[[], float]) -> None:
        self._directory = directory
        self._lifetime_s = lifetime_s
        self._clock = clock
        self._key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        public_der = self._key.public_key().public_bytes(
            serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
        )
        self._kid = b64url(hashlib.sha1(public_der).digest())

    def handle(self, request: Request) -> Response:
        """Answer a request to the authority host."""
        trace_id = str(uuid.uuid4())
        try:
            return self._route(request, trace_id)
        except TokenError as exc:
            return self._error(request, exc, trace_id)
        except Exception as exc:  # a sandbox bug: answer 500 rather than drop the connection
            bug = TokenError(500, "server_error", 90033, f"snsync sandbox: {exc!r}")
            return self._error(request, bug, trace_id)

    def verify(self, token: str, base_url: str) -> Principal:
        """The principal of a Graph access token; raises GraphError 401 when it is not valid."""
        if not token:
            raise GraphError(401, "InvalidAuthenticationToken", "Access token is empty.")
        if token.count(".") != 2:
            raise GraphError(
                401,
                "InvalidAuthenticationToken",
                "CompactToken parsing failed with error code: 80049217",
            )
        try:
            claims = jwt.decode(
                token,
                self._key.public_key(),
                algorithms=["RS256"],
                options=NO_CLAIM_CHECKS,
            )
        except jwt.PyJWTError as exc:
            raise GraphError(
                401, "InvalidAuthenticationToken", "Access token validation failure."
            ) from exc
        if claims.get("aud") not in (GRAPH_RESOURCE, f"{GRAPH_RESOURCE}/", GRAPH_APP_ID, base_url):
            raise GraphError(
                401,
                "InvalidAuthenticationToken",
                "Access token validation failure. Invalid audience.",
            )
        if claims.get("tid") != self._directory.tenant_id:
            raise GraphError(401, "InvalidAuthenticationToken", "Access token validation failure.")
        if self._clock() >= float(claims.get("exp", 0)):
            raise GraphError(
                401,
                "InvalidAuthenticationToken",
                "Lifetime validation failed, the token is expired.",
            )
        return Principal(str(claims.get("appid")), frozenset(claims.get("roles", [])))

    def _route(self, request: Request, trace_id: str) -> Response:
        parts = [p for p in request.path.split("/") if p]
        method = "GET" if request.method == "HEAD" else request.method
        if len(parts) >= 2 and parts[0].lower() == "common" and method == "GET":
            return self._common(request, parts[1:])
        if not parts:
            return plain_not_found()
        tenant = parts[0]
        rest = "/".join(parts[1:]).lower()
        known = {
            ("GET", "v2.0/.well-known/openid-configuration"),
            ("GET", ".well-known/openid-configuration"),
            ("GET", "discovery/v2.0/keys"),
            ("GET", "discovery/keys"),
            ("POST", "oauth2/v2.0/token"),
            ("POST", "oauth2/token"),
        }
        if (method, rest) not in known:
            return plain_not_found()
        if tenant.lower() != self._directory.tenant_id:
            error = "invalid_tenant" if method == "GET" else "invalid_request"
            raise TokenError(400, error, 90002, tenant_not_found(tenant))
        if rest == "v2.0/.well-known/openid-configuration":
            return json_reply(self._openid_configuration(request.base_url, v2=True))
        if rest == ".well-known/openid-configuration":
            return json_reply(self._openid_configuration(request.base_url, v2=False))
        if rest.startswith("discovery/"):
            return json_reply(self._jwks())
        return self._token(request, v2=rest == "oauth2/v2.0/token")

    def _common(self, request: Request, rest: list[str]) -> Response:
        path = "/".join(rest).lower()
        if path in ("discovery/keys", "discovery/v2.0/keys"):
            return json_reply(self._jwks())
        if path == "discovery/instance":
            tenant = self._directory.tenant_id
            return json_reply(
                {
                    "tenant_discovery_endpoint": (
                        f"{request.base_url}/{tenant}/v2.0/.well-known/openid-configuration"
                    ),
                    "api-version": "1.1",
                    "metadata": [],
                }
            )
        return plain_not_found()

    def _openid_configuration(self, base: str, *, v2: bool) -> dict[str, Any]:
        tenant = self._directory.tenant_id
        host = urlsplit(base).netloc
        oauth = f"{base}/{tenant}/oauth2/v2.0" if v2 else f"{base}/{tenant}/oauth2"
        return {
            "token_endpoint": f"{oauth}/token",
            "token_endpoint_auth_methods_supported": [
                "client_secret_post",
                "private_key_jwt",
                "client_secret_basic",
            ],
            "jwks_uri": f"{base}/{tenant}/discovery/v2.0/keys"
            if v2
            else f"{base}/common/discovery/keys",
            "response_modes_supported": ["query", "fragment", "form_post"],
            "subject_types_supported": ["pairwise"],
            "id_token_signing_alg_values_supported": ["RS256"],
            "response_types_supported": ["code", "id_token", "code id_token", "id_token token"],
            "scopes_supported": ["openid", "profile", "email", "offline_access"],
            "issuer": f"{base}/{tenant}/v2.0" if v2 else f"https://sts.windows.net/{tenant}/",
            "request_uri_parameter_supported": False,
            "userinfo_endpoint": f"{base}/oidc/userinfo",
            "authorization_endpoint": f"{oauth}/authorize",
            "device_authorization_endpoint": f"{oauth}/devicecode",
            "http_logout_supported": True,
            "frontchannel_logout_supported": True,
            "end_session_endpoint": f"{oauth}/logout",
            "claims_supported": name_list(
                "sub iss cloud_instance_name cloud_instance_host_name cloud_graph_host_name "
                "msgraph_host aud exp iat auth_time acr nonce preferred_username name tid ver "
                "at_hash c_hash email"
            ),
            "kerberos_endpoint": f"{base}/{tenant}/kerberos",
            "tenant_region_scope": "NA",
            "cloud_instance_name": "microsoftonline.com",
            "cloud_graph_host_name": "graph.windows.net",
            "msgraph_host": host,
            "rbac_url": "https://pas.windows.net",
        }

    def _jwks(self) -> dict[str, Any]:
        jwk: dict[str, Any] = dict(
            jwt.algorithms.RSAAlgorithm.to_jwk(self._key.public_key(), as_dict=True)
        )
        jwk.update({"kid": self._kid, "x5t": self._kid, "use": "sig"})
        jwk["issuer"] = f"https://login.microsoftonline.com/{self._directory.tenant_id}/v2.0"
        return {"keys": [jwk]}

    def _token(self, request: Request, *, v2: bool) -> Response:
        form = {k: v[-1] for k, v in parse_qs(request.body.decode(errors="replace")).items()}
        basic_id, basic_secret = basic_credentials(request.header("authorization"))
        grant_type = form.get("grant_type")
        if not grant_type:
            raise missing_parameter("grant_type")
        if grant_type != "client_credentials":
            raise TokenError(
                400,
                "unsupported_grant_type",
                70003,
                f"The app requested an unsupported grant type '{grant_type}'.",
            )
        client_id = form.get("client_id") or basic_id
        if not client_id:
            raise missing_parameter("client_id")
        client = self._directory.clients.get(client_id.lower())
        if client is None:
            raise TokenError(400, "unauthorized_client", 700016, self._app_not_found(client_id))
        self._authenticate(client, form, basic_secret, request.base_url)
        resource = self._resource(form, request.base_url, v2=v2)
        return self._issue(client, resource, form, v2=v2)

    def _authenticate(
        self, client: Client, form: Mapping[str, str], basic_secret: str | None, base: str
    ) -> None:
        assertion = form.get("client_assertion")
        secret = form.get("client_secret") or basic_secret
        if assertion:
            if form.get("client_assertion_type") != JWT_BEARER:
                raise TokenError(
                    400,
                    "invalid_request",
                    50027,
                    f"Invalid JWT token. The client_assertion_type must be '{JWT_BEARER}'.",
                )
            check_assertion(client, assertion, self._audiences(base), self._directory.tenant_id)
            return
        if not secret:
            raise TokenError(
                401,
                "invalid_client",
                7000218,
                "The request body must contain the following parameter: 'client_assertion' or "
                "'client_secret'.",
            )
        if client.secret is None or not hmac.compare_digest(secret, client.secret):
            raise TokenError(
                401,
                "invalid_client",
                7000215,
                "Invalid client secret provided. Ensure the secret being sent in the request is "
                "the client secret value, not the client secret ID, for a secret added to app "
                f"'{client.client_id}'.",
            )
        if client.secret_expires_at is not None and self._clock() >= client.secret_expires_at:
            raise TokenError(
                401,
                "invalid_client",
                7000222,
                f"The provided client secret keys for app '{client.client_id}' are expired. "
                "Visit the Azure portal to create new keys for your app: "
                "https://aka.ms/NewClientSecret, or consider using certificate credentials for "
                "added security: https://aka.ms/certCreds.",
            )

    def _audiences(self, base: str) -> set[str]:
        tenant = self._directory.tenant_id
        hosts = {base, "https://login.microsoftonline.com"}
        return {
            f"{host}/{tenant}/{suffix}"
            for host in hosts
            for suffix in ("oauth2/v2.0/token", "oauth2/token", "v2.0")
        }

    def _resource(self, form: Mapping[str, str], base: str, *, v2: bool) -> str:
        accepted = {GRAPH_RESOURCE, GRAPH_APP_ID, base}
        if not v2:
            resource = form.get("resource")
            if not resource:
                raise missing_parameter("resource")
            if resource.rstrip("/") not in accepted:
                raise self._resource_not_found(resource)
            return resource.rstrip("/")
        scope = form.get("scope")
        if not scope:
            raise missing_parameter("scope")
        scopes = scope.split()
        for item in scopes:
            if not item.endswith("/.default"):
                raise TokenError(
                    400,
                    "invalid_scope",
                    1002012,
                    f"The provided value for scope {item} is not valid. Client credential flows "
                    "must have a scope value with /.default suffixed to the resource identifier "
                    "(application ID URI).",
                )
        resource = scopes[0].removesuffix("/.default")
        if len(scopes) > 1 or resource not in accepted:
            raise self._resource_not_found(resource)
        return resource

    def _issue(
        self, client: Client, resource: str, form: Mapping[str, str], *, v2: bool
    ) -> Response:
        now = int(self._clock())
        tenant = self._directory.tenant_id
        claims = {
            "aud": resource,
            "iss": f"https://sts.windows.net/{tenant}/",
            "iat": now,
            "nbf": now,
            "exp": now + self._lifetime_s,
            "app_displayname": client.display_name,
            "appid": client.client_id,
            "appidacr": "2" if form.get("client_assertion") else "1",
            "idp": f"https://sts.windows.net/{tenant}/",
            "idtyp": "app",
            "oid": str(uuid.uuid5(uuid.NAMESPACE_URL, f"sp:{client.client_id}")),
            "roles": sorted(client.permissions),
            "sub": str(uuid.uuid5(uuid.NAMESPACE_URL, f"sp:{client.client_id}")),
            "tid": tenant,
            "uti": b64url(secrets.token_bytes(16)),
            "ver": "1.0",
        }
        token = jwt.encode(
            claims, self._key, algorithm="RS256", headers={"kid": self._kid, "x5t": self._kid}
        )
        if v2:
            body: dict[str, Any] = {
                "token_type": "Bearer",
                "expires_in": self._lifetime_s,
                "ext_expires_in": self._lifetime_s,
                "access_token": token,
            }
        else:  # the v1 endpoint answers numbers as strings and names the resource
            body = {
                "token_type": "Bearer",
                "expires_in": str(self._lifetime_s),
                "ext_expires_in": str(self._lifetime_s),
                "expires_on": str(now + self._lifetime_s),
                "not_before": str(now),
                "resource": resource,
                "access_token": token,
            }
        return json_reply(body)

    def _error(self, request: Request, exc: TokenError, trace_id: str) -> Response:
        correlation_id = request.header("client-request-id") or str(uuid.uuid4())
        stamp = datetime.fromtimestamp(self._clock(), UTC).strftime("%Y-%m-%d %H:%M:%SZ")
        description = (
            f"AADSTS{exc.code}: {exc.description}\r\nTrace ID: {trace_id}\r\n"
            f"Correlation ID: {correlation_id}\r\nTimestamp: {stamp}"
        )
        body = {
            "error": exc.error,
            "error_description": description,
            "error_codes": [exc.code],
            "timestamp": stamp,
            "trace_id": trace_id,
            "correlation_id": correlation_id,
            "error_uri": f"{request.base_url}/error?code={exc.code}",
        }
        return json_reply(body, status=exc.status, headers={"x-ms-request-id": trace_id})

    def _app_not_found(self, client_id: str) -> str:
        return (
            f"Application with identifier '{client_id}' was not found in the directory "
            f"'{self._directory.tenant_name}'. This can happen if the application has not been "
            "installed by the administrator of the tenant or consented to by any user in the "
            "tenant. You may have sent your authentication request to the wrong tenant."
        )

    def _resource_not_found(self, resource: str) -> TokenError:
        return TokenError(
            400,
            "invalid_resource",
            500011,
            f"The resource principal named {resource} was not found in the tenant named "
            f"{self._directory.tenant_name}. This can happen if the application has not been "
            "installed by the administrator of the tenant or consented to by any user in the "
            "tenant. You might have sent your authentication request to the wrong tenant.",
        )
