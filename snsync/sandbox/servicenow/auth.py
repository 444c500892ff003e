"""Who is calling: HTTP Basic against the fixture's accounts, bearer tokens, and the OAuth token
endpoint `/oauth_token.do` (password, refresh_token and client_credentials grants)."""

from __future__ import annotations

import base64
import binascii
import hmac
import threading
from collections.abc import Callable, Mapping
from datetime import datetime
from urllib.parse import parse_qs

from snsync.sandbox.encoded_query import is_true
from snsync.sandbox.server import Request, Response
from snsync.sandbox.servicenow.acl import Account
from snsync.sandbox.servicenow.failure import Failure
from snsync.sandbox.servicenow.store import Store
from snsync.sandbox.servicenow.tokens import OAuthClient, Tokens


class Logins:
    """The instance's accounts, OAuth clients and issued tokens."""

    def __init__(
        self,
        accounts: Mapping[str, Account],
        clients: Mapping[str, OAuthClient],
        store: Store,
        lock: threading.RLock,
        clock: Callable[[], datetime],
    ) -> None:
        self.accounts = accounts
        self._clients = clients
        self._store = store
        self._lock = lock
        self._clock = clock
        self._tokens = Tokens()

    def authenticate(self, request: Request) -> Account:
        """The account an API request acts as, or the 401 an instance answers."""
        scheme, _, credentials = request.header("Authorization").partition(" ")
        account: Account | None = None
        if scheme.lower() == "basic":
            account = self._basic_account(credentials.strip())
        elif scheme.lower() == "bearer":
            user_name = self._tokens.user_for(credentials.strip(), self._clock())
            account = self.accounts.get(user_name or "")
        if account is None or self._locked_out(account.user_name):
            raise Failure(
                401,
                "User Not Authenticated",
                "Required to provide Auth information",
                {"WWW-Authenticate": 'BASIC realm="Service-now"'},
            )
        return account

    def token_endpoint(self, request: Request) -> Response:
        """POST /oauth_token.do."""
        if request.method != "POST":
            raise Failure(405, "Method not Supported", f"{request.method} method not supported")
        form = {k: v[-1] for k, v in parse_qs(request.body.decode(errors="replace")).items()}
        client = self._oauth_client(form, request)
        grant = form.get("grant_type", "")
        now = self._clock()
        user_name = ""
        refresh = True
        if grant == "password":
            account = self._check_password(form.get("username", ""), form.get("password", ""))
            user_name = account.user_name if account else ""
        elif grant == "refresh_token":
            user_name = self._tokens.refresh_user(form.get("refresh_token", ""), client, now) or ""
        elif grant == "client_credentials" and client and client.user_name:
            user_name, refresh = client.user_name, False
        if client is None or not user_name or self._locked_out(user_name):
            return Response(401, {"error_description": "access_denied", "error": "server_error"})
        body = self._tokens.issue(user_name, client.client_id, now, refresh=refresh)
        return Response(200, body, {"Cache-Control": "no-store", "Pragma": "no-cache"})

    def _basic_account(self, credentials: str) -> Account | None:
        try:
            decoded = base64.b64decode(credentials, validate=True).decode()
        except (binascii.Error, UnicodeDecodeError):
            return None
        user_name, _, password = decoded.partition(":")
        return self._check_password(user_name, password)

    def _check_password(self, user_name: str, password: str) -> Account | None:
        account = self.accounts.get(user_name)
        if account is None or not hmac.compare_digest(account.password, password):
            return None
        return account

    def _locked_out(self, user_name: str) -> bool:
        # An account whose sys_user row is inactive or locked cannot log in, as on an instance.
        with self._lock:
            user = self._store.find_user(user_name)
        return user is not None and (not is_true(user["active"]) or is_true(user["locked_out"]))

    def _oauth_client(self, form: Mapping[str, str], request: Request) -> OAuthClient | None:
        client_id, client_secret = form.get("client_id", ""), form.get("client_secret", "")
        scheme, _, credentials = request.header("Authorization").partition(" ")
        if not client_id and scheme.lower() == "basic":
            try:
                decoded = base64.b64decode(credentials.strip(), validate=True).decode()
            except (binascii.Error, UnicodeDecodeError):
                return None
            client_id, _, client_secret = decoded.partition(":")
        client = self._clients.get(client_id)
        if client is None or not hmac.compare_digest(client.client_secret, client_secret):
            return None
        return client
