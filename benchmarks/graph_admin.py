"""Plain `requests` access to the sandbox's Graph: an app-only token and user changes through
Graph's own write API (as an Azure admin or HR feed would make them)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import requests

TIMEOUT_S = 60.0


def graph_session(info: Mapping[str, Any]) -> requests.Session:
    """A keep-alive session that trusts the sandbox CA and nothing from the environment."""
    session = requests.Session()
    session.trust_env = False
    session.verify = str(info["ca_pem"])
    return session


def graph_token(session: requests.Session, info: Mapping[str, Any]) -> str:
    """An app-only Graph token by the client-credentials grant (one POST)."""
    response = session.post(
        f"{info['authority_host']}/{info['tenant_id']}/oauth2/v2.0/token",
        data={
            "grant_type": "client_credentials",
            "client_id": info["client_id"],
            "client_secret": info["client_secret"],
            "scope": f"{info['graph_url']}/.default",
        },
        timeout=TIMEOUT_S,
    )
    response.raise_for_status()
    return str(response.json()["access_token"])


def patch_users(info: Mapping[str, Any], changes: Mapping[str, Mapping[str, Any]]) -> int:
    """PATCH each user's changes through Graph; returns how many users were changed."""
    session = graph_session(info)
    headers = {"Authorization": f"Bearer {graph_token(session, info)}"}
    with session:
        for user_id, body in changes.items():
            response = session.patch(
                f"{info['graph_url']}/v1.0/users/{user_id}",
                json=dict(body),
                headers=headers,
                timeout=TIMEOUT_S,
            )
            response.raise_for_status()
    return len(changes)
