"""Graph access tokens through MSAL (client secret or certificate), cached until they expire."""

from __future__ import annotations

import threading
from typing import Any

import msal
import requests

from snsync.config import GraphConfig
from snsync.errors import ConfigError, TransientError, UnauthorizedError
from snsync.http import HttpClient
from snsync.redact import redact, register

AADSTS_ADVICE = {
    "AADSTS7000215": "the client secret is wrong: use the secret's Value (not its Secret ID) from "
    "the app registration's 'Certificates & secrets' in graph.client_secret",
    "AADSTS7000222": "the client secret has expired: create a new one in the app registration and "
    "update graph.client_secret",
    "AADSTS700016": "no application with graph.client_id exists in this tenant: check "
    "graph.client_id and graph.tenant_id",
    "AADSTS90002": "the tenant was not found: check graph.tenant_id (and graph.authority_host for "
    "a national cloud)",
    "AADSTS700027": "the certificate assertion was refused: check graph.certificate.path and "
    "thumbprint, and that the certificate is uploaded to the app registration",
}


class MsalHttpClient:
    """The `http_client` MSAL is given: every token call goes through snsync's HTTP layer, so the
    configured CA file, timeouts and retry policy apply to it too."""

    def __init__(self, http: HttpClient) -> None:
        self._http = http

    def get(self, url: str, params: Any = None, headers: Any = None, **_: Any) -> requests.Response:
        return self._http.request("GET", url, params=params, headers=headers)

    def post(
        self, url: str, params: Any = None, data: Any = None, headers: Any = None, **_: Any
    ) -> requests.Response:
        return self._http.request(
            "POST",
            url,
            params=params,
            data=data,
            headers=headers,
            is_read=True,
            safe_to_repeat=True,
        )

    def close(self) -> None:
        """MSAL may call this; the session belongs to snsync and outlives MSAL's use of it."""


class GraphTokenProvider:
    """Acquire app-only tokens for Microsoft Graph with the client-credentials flow."""

    def __init__(self, config: GraphConfig, http: HttpClient) -> None:
        self._config = config
        self._http = http
        self._lock = threading.Lock()
        self._app: msal.ConfidentialClientApplication | None = None
        self.scope = f"{config.graph_url}/.default"

    def token(self) -> str:
        """A valid access token (MSAL serves it from its cache until it is about to expire)."""
        with self._lock:
            app = self._app or self._build()
            try:
                result = app.acquire_token_for_client(scopes=[self.scope])
            except requests.RequestException as exc:
                raise TransientError(
                    f"Graph token service: {redact(str(exc))}", service="graph token"
                ) from None
        if "access_token" not in result:
            raise token_error(result)
        token = str(result["access_token"])
        register(token)
        return token

    def _build(self) -> msal.ConfidentialClientApplication:
        config = self._config
        credential: Any
        if config.client_secret is not None:
            credential = config.client_secret.get_secret_value()
        else:
            assert config.certificate is not None
            try:
                pem = config.certificate.path.read_text(encoding="utf-8")
            except OSError as exc:
                raise ConfigError(
                    f"graph.certificate.path: cannot read '{config.certificate.path}': "
                    f"{exc.strerror}"
                ) from None
            credential = {"private_key": pem, "thumbprint": config.certificate.thumbprint}
        authority = f"{config.authority_host}/{config.tenant_id}"
        try:
            self._app = msal.ConfidentialClientApplication(
                config.client_id,
                client_credential=credential,
                authority=authority,
                instance_discovery=False,
                http_client=MsalHttpClient(self._http),
                token_cache=msal.TokenCache(),
            )
        except ValueError as exc:
            raise UnauthorizedError(
                f"Graph token service at {authority}: {redact(str(exc).splitlines()[0])}; "
                "check graph.tenant_id and graph.authority_host",
                service="graph token",
                code="AADSTS90002",
            ) from None
        return self._app


def token_error(result: dict[str, Any]) -> UnauthorizedError:
    """An UnauthorizedError with advice from an MSAL error result."""
    description = str(result.get("error_description") or result.get("error") or "no token")
    first = description.splitlines()[0]
    code = first.split(":", 1)[0] if first.startswith("AADSTS") else str(result.get("error"))
    advice = AADSTS_ADVICE.get(code)
    text = f"Graph token refused ({code})" + (f": {advice}" if advice else f": {first}")
    return UnauthorizedError(redact(text), service="graph token", code=code)
