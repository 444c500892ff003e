"""OAuth clients and the access and refresh tokens handed out by /oauth_token.do."""

from __future__ import annotations

import secrets
import threading
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

ACCESS_TOKEN_SECONDS = 1799
REFRESH_TOKEN_SECONDS = 100 * 24 * 3600


@dataclass(frozen=True)
class OAuthClient:
    client_id: str
    client_secret: str
    user_name: str = ""  # the account a client_credentials grant acts as; "" disables it


@dataclass(frozen=True)
class Grant:
    user_name: str
    client_id: str
    expires: datetime


@dataclass
class Tokens:
    """OAuth access and refresh tokens handed out by /oauth_token.do."""

    access: dict[str, Grant] = field(default_factory=dict)
    refresh: dict[str, Grant] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def issue(
        self, user_name: str, client_id: str, now: datetime, *, refresh: bool
    ) -> dict[str, Any]:
        access_token = secrets.token_urlsafe(64)[:86]  # the platform's tokens are 86 characters
        body: dict[str, Any] = {"access_token": access_token, "scope": "useraccount"}
        with self.lock:
            expires = now + timedelta(seconds=ACCESS_TOKEN_SECONDS)
            self.access[access_token] = Grant(user_name, client_id, expires)
            if refresh:
                refresh_token = secrets.token_urlsafe(64)[:86]
                expires = now + timedelta(seconds=REFRESH_TOKEN_SECONDS)
                self.refresh[refresh_token] = Grant(user_name, client_id, expires)
                body["refresh_token"] = refresh_token
        return {**body, "token_type": "Bearer", "expires_in": ACCESS_TOKEN_SECONDS}

    def user_for(self, access_token: str, now: datetime) -> str | None:
        with self.lock:
            grant = self.access.get(access_token)
        return grant.user_name if grant and grant.expires > now else None

    def refresh_user(
        self, refresh_token: str, client: OAuthClient | None, now: datetime
    ) -> str | None:
        with self.lock:
            grant = self.refresh.get(refresh_token)
        if grant is None or client is None or grant.client_id != client.client_id:
            return None
        return grant.user_name if grant.expires > now else None
