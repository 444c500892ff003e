"""Client authentication details of the token service: private_key_jwt assertions (thumbprints,
signature, audience, lifetime), HTTP Basic credentials and the AADSTS errors they end in.
"""

from __future__ import annotations

import base64
import time
from collections.abc import Mapping
from typing import Any
from urllib.parse import unquote

import jwt
from cryptography import x509
from cryptography.hazmat.primitives import hashes

from snsync.sandbox.graph.catalog import NO_CLAIM_CHECKS
from snsync.sandbox.graph.directory import Client
from snsync.sandbox.graph.wire import iso


class TokenError(Exception):
    """An AADSTS error answer."""

    def __init__(self, status: int, error: str, code: int, description: str) -> None:
        super().__init__(description)
        self.status = status
        self.error = error
        self.code = code
        self.description = description


def check_assertion(client: Client, assertion: str, audiences: set[str], tenant_id: str) -> None:
    """Verify a private_key_jwt client assertion; raises the AADSTS error Azure AD would."""
    try:
        header = jwt.get_unverified_header(assertion)
    except jwt.PyJWTError as exc:
        raise _bad_assertion("Client assertion is not a valid JWT.") from exc
    thumbprint = _header_thumbprint(header)
    if thumbprint is None:
        raise _bad_assertion("No certificate thumbprint specified in token header.")
    cert = client.certificate
    if cert is None or thumbprint not in _thumbprints(cert):
        shown = thumbprint[1].hex().upper()
        raise _bad_assertion(
            "Client assertion contains an invalid signature. [Reason - The key was not found., "
            f"Thumbprint of key used by client: '{shown}', Please visit the Azure Portal, Graph "
            "Explorer or directly use MS Graph to see configured keys for app Id "
            f"'{client.client_id}'. Review the documentation at "
            "https://docs.microsoft.com/en-us/graph/deployments to determine the corresponding "
            "service endpoint and https://docs.microsoft.com/en-us/graph/api/application-get?"
            "view=graph-rest-1.0&tabs=http to build a query request URL, such as "
            f"'https://graph.microsoft.com/beta/applications/{client.client_id}']"
        )
    claims = _assertion_claims(assertion, cert, thumbprint[1].hex().upper())
    if claims.get("aud") not in audiences:
        raise _bad_assertion(
            f"Client assertion audience claim does not match Realm issuer (tenant {tenant_id}). "
            "Review the documentation at https://docs.microsoft.com/en-us/azure/"
            "active-directory/develop/active-directory-certificate-credentials ."
        )
    if claims.get("iss") != client.client_id or claims.get("sub") != client.client_id:
        raise TokenError(
            401,
            "invalid_client",
            700021,
            "Client assertion application identifier doesn't match 'client_id' parameter. "
            "Review the documentation at https://docs.microsoft.com/en-us/azure/active-directory/"
            "develop/active-directory-certificate-credentials .",
        )
    _check_assertion_lifetime(claims)


def _header_thumbprint(header: Mapping[str, Any]) -> tuple[str, bytes] | None:
    for name, algorithm in (("x5t#S256", "sha256"), ("x5t", "sha1")):
        value = header.get(name)
        if isinstance(value, str):
            try:
                return algorithm, base64.urlsafe_b64decode(value + "=" * (-len(value) % 4))
            except ValueError:
                return None
    return None


def _thumbprints(cert: x509.Certificate) -> set[tuple[str, bytes]]:
    return {
        ("sha1", cert.fingerprint(hashes.SHA1())),  # the x5t header is a SHA-1 thumbprint
        ("sha256", cert.fingerprint(hashes.SHA256())),
    }


def _assertion_claims(assertion: str, cert: x509.Certificate, shown: str) -> dict[str, Any]:
    try:
        claims: dict[str, Any] = jwt.decode(
            assertion,
            cert.public_key(),  # type: ignore[arg-type]
            algorithms=["RS256", "PS256"],
            options=NO_CLAIM_CHECKS,
        )
    except jwt.PyJWTError as exc:
        start = cert.not_valid_before_utc.strftime("%m/%d/%Y %H:%M:%S")
        end = cert.not_valid_after_utc.strftime("%m/%d/%Y %H:%M:%S")
        raise _bad_assertion(
            "Client assertion contains an invalid signature. [Reason - The provided signature "
            "value did not match the expected signature value., Thumbprint of key used by "
            f"client: '{shown}', Found key 'Start={start}, End={end}']"
        ) from exc
    return claims


def _check_assertion_lifetime(claims: Mapping[str, Any]) -> None:
    # The assertion comes from a client on the real clock, whatever clock the sandbox runs on.
    now = time.time()
    skew = 300
    expires = float(claims.get("exp", 0))
    not_before = float(claims.get("nbf", claims.get("iat", 0)))
    if now > expires + skew or now < not_before - skew:
        raise TokenError(
            401,
            "invalid_client",
            700024,
            f"Client assertion is not within its valid time range. Current time: {iso(now)}, "
            f"assertion valid from {iso(not_before)}, expiry time of assertion {iso(expires)}. "
            "Review the documentation at https://docs.microsoft.com/en-us/azure/active-directory/"
            "develop/active-directory-certificate-credentials .",
        )


def _bad_assertion(reason: str) -> TokenError:
    return TokenError(401, "invalid_client", 700027, reason)


def missing_parameter(name: str) -> TokenError:
    return TokenError(
        400,
        "invalid_request",
        900144,
        f"The request body must contain the following parameter: '{name}'.",
    )


def tenant_not_found(tenant: str) -> str:
    return (
        f"Tenant '{tenant}' not found. Check to make sure you have the correct tenant ID and are "
        "signing into the correct cloud. Check with your subscription administrator, this may "
        "happen if there are no active subscriptions for the tenant."
    )


def basic_credentials(header: str) -> tuple[str | None, str | None]:
    if not header.lower().startswith("basic "):
        return None, None
    try:
        decoded = base64.b64decode(header[6:].strip()).decode()
    except ValueError:
        return None, None
    client_id, _, secret = decoded.partition(":")
    # RFC 6749 2.3.1: both halves are form-urlencoded before they are joined.
    return unquote(client_id.replace("+", " ")), unquote(secret.replace("+", " "))
