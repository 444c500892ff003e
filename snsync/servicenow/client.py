"""A thin ServiceNow Table API client: keyset-paged reads, create / update / delete, the stats
API, basic or OAuth authentication, and ServiceNow's error body turned into the error vocabulary."""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Iterator, Mapping, Sequence
from typing import Any
from urllib.parse import quote

import requests
from requests.auth import HTTPBasicAuth

from snsync.bounds import PageGuard
from snsync.config import BasicAuth, ServiceNowConfig
from snsync.errors import (
    ApiError,
    BadRequestError,
    TransientError,
    UnauthorizedError,
    error_for_status,
)
from snsync.http import HttpClient, JsonAnswer
from snsync.model import Record
from snsync.redact import redact, register
from snsync.stop import STOP


class TableClient:
    """Read and write ServiceNow tables as plain string-valued records."""

    def __init__(self, config: ServiceNowConfig, http: HttpClient) -> None:
        self.base = config.instance
        self.http = http
        self.page_size = config.page_size
        self.account = config.auth.username
        self._auth = _auth_for(config, http)

    def iter_pages(
        self, table: str, fields: Sequence[str], query: str = "", page_size: int | None = None
    ) -> Iterator[list[Record]]:
        """Yield pages of `table` in sys_id order, paging by key so that writes made meanwhile
        cannot shift rows between pages. Read rules apply after `sysparm_limit`, so a short page
        does not mean the end, nor does an empty one while X-Total-Count (rows matching the
        keyset query, counted before read rules) says rows lie past it: then the same query
        steps on with `sysparm_offset` to the first page with a readable row, and the keyset
        goes on from that row. `query` must not use ^NQ."""
        return self.pages_of(self.keyset(table, fields, query, page_size))

    def keyset(
        self, table: str, fields: Sequence[str], query: str = "", page_size: int | None = None
    ) -> Keyset:
        """A keyset read of `table` not started yet (`pages_of` runs it; a Batch API request
        may answer its first page: servicenow/batchread.py)."""
        limit = page_size or self.page_size
        return Keyset(table, fields, query, limit, self.http.limits.max_pages)

    def pages_of(self, read: Keyset, *, resend: bool = False) -> Iterator[list[Record]]:
        """The rest of a keyset read, one request a page until it is done. `resend`: its current
        page was asked for (counted) already, inside a batch that did not answer it cleanly."""
        url = self._table_url(read.table)
        while not read.done:
            params = read.params() if resend else read.start()
            resend = False
            answer = self._send("GET", url, params=params)
            page = read.take(self._result_list(answer), total_count(answer))
            if page:
                yield page

    def read_all(self, table: str, fields: Sequence[str], query: str = "") -> list[Record]:
        """Every record of `table` matching `query`, with `fields` and sys_id."""
        return [row for page in self.iter_pages(table, fields, query) for row in page]

    def get(self, table: str, sys_id: str, fields: Sequence[str] = ()) -> Record:
        """One record by sys_id (NotFoundError when it does not exist)."""
        params = {"sysparm_exclude_reference_link": "true"}
        if fields:
            params["sysparm_fields"] = ",".join(dict.fromkeys(["sys_id", *fields]))
        return self._result_one(self._send("GET", f"{self._table_url(table)}/{sys_id}", params))

    def create(self, table: str, values: Mapping[str, str], fields: Sequence[str] = ()) -> Record:
        """Insert a record; returns it as stored (only sys_id and `fields` when given).

        A create is never repeated blindly. When its answer is lost or unreadable (it may or may
        not have landed), the table is asked for the record by its identity fields, created by
        snsync's own account: found once, that is the record; not found, it is sent again (at
        most twice more); anything else, the failure stands for the next cycle."""
        params = _write_params(fields)
        probe = _probe_query(values, self.account)
        for attempt in range(3):
            try:
                return self._result_one(
                    self._send("POST", self._table_url(table), params, dict(values))
                )
            except TransientError as error:
                if probe is None or attempt == 2 or error.status == 429 or STOP:
                    raise
                found = self.read_all(table, list(fields or values), probe)
                if len(found) == 1:
                    return found[0]
                if found:
                    raise
        raise AssertionError("unreachable")

    def update(
        self, table: str, sys_id: str, values: Mapping[str, str], fields: Sequence[str] = ()
    ) -> Record:
        """Change fields of a record; returns it as stored (only sys_id and `fields` when given)."""
        params = _write_params(fields)
        url = f"{self._table_url(table)}/{sys_id}"
        return self._result_one(self._send("PATCH", url, params, dict(values)))

    def delete(self, table: str, sys_id: str) -> None:
        """Delete a record. A 404 after a repeated DELETE means an earlier try was applied and
        only its answer was lost: done, not a failure."""
        self._send("DELETE", f"{self._table_url(table)}/{sys_id}", gone_ok=True)

    def count(self, table: str, query: str = "") -> int:
        """How many records of `table` match `query` (the stats API)."""
        params = {"sysparm_count": "true", "sysparm_query": query}
        body = self._json(self._send("GET", f"{self.base}/api/now/stats/{table}", params))
        try:
            return int(body["result"]["stats"]["count"])
        except (KeyError, TypeError, ValueError):
            raise BadRequestError(
                f"ServiceNow stats API for {table} answered without a count",
                service="servicenow",
            ) from None

    def post_batch(self, payload: Mapping[str, Any], *, reads: bool = False) -> dict[str, Any]:
        """Send one Batch API request (`POST /api/now/v1/batch`); its JSON answer. `reads`: its
        sub-requests are all GETs (allowed read-only, repeated when its answer is lost)."""
        url = f"{self.base}/api/now/v1/batch"
        return self._json(self._send("POST", url, body=dict(payload), is_read=reads))

    def _table_url(self, table: str) -> str:
        return f"{self.base}/api/now/table/{table}"

    def _send(
        self,
        method: str,
        url: str,
        params: Mapping[str, str] | None = None,
        body: Any = None,
        *,
        gone_ok: bool = False,
        is_read: bool = False,
    ) -> JsonAnswer:
        headers = {"Accept": "application/json"}
        auth: Any = None
        if isinstance(self._auth, HTTPBasicAuth):
            auth = self._auth
        else:
            headers["Authorization"] = f"Bearer {self._auth.token()}"
        answer = self.http.fetch_json(
            method,
            url,
            params=params,
            json=body,
            headers=headers,
            auth=auth,
            is_read=is_read,
            safe_to_repeat=True if is_read else None,
        )
        if gone_ok and answer.status == 404 and answer.attempts > 1:
            return answer  # an earlier attempt was applied; its answer was lost
        if answer.status >= 400:
            raise servicenow_error(answer, method, url)
        return answer

    def _json(self, answer: JsonAnswer) -> dict[str, Any]:
        body = answer.body
        if answer.status == 204 and body is None:
            return {}
        if not isinstance(body, dict):
            raise BadRequestError(
                "ServiceNow answered with a JSON that is not an object", service="servicenow"
            )
        return body

    def _result_list(self, answer: JsonAnswer) -> list[Record]:
        result = self._json(answer).get("result")
        if not isinstance(result, list):
            raise BadRequestError(
                f"ServiceNow answered {redact(answer.response.url)} without a result list",
                service="servicenow",
            )
        return [record_of(row) for row in result]

    def _result_one(self, answer: JsonAnswer) -> Record:
        result = self._json(answer).get("result")
        if not isinstance(result, dict):
            raise BadRequestError(
                f"ServiceNow answered {redact(answer.response.url)} without a result record",
                service="servicenow",
            )
        return record_of(result)


class Keyset:
    """Where one keyset read of a table stands: its cursor (the last sys_id read), the offset
    past windows the read rules hid completely, its PageGuard; done once a page comes back
    empty with nothing past it by X-Total-Count."""

    def __init__(
        self, table: str, fields: Sequence[str], query: str, limit: int, max_pages: int
    ) -> None:
        if "^NQ" in query:
            raise ValueError("keyset paging cannot combine with ^NQ queries")
        self.table, self.query, self.limit = table, query, limit
        self.columns = ",".join(dict.fromkeys(["sys_id", *fields]))
        self.guard = PageGuard("servicenow", table, max_pages)
        self.last, self.offset = "", 0
        self.done = False

    def start(self) -> dict[str, str]:
        """Count the next page (bounds and loops: the guard) and give its query parameters."""
        self.guard.next_page(f"{self.last}@{self.offset}" if self.offset else self.last)
        STOP.check(f"reading {self.table} from ServiceNow")
        return self.params()

    def params(self) -> dict[str, str]:
        """The current page's query parameters."""
        cursor = f"sys_id>{self.last}^" if self.last else ""
        params = {
            "sysparm_query": f"{self.query + '^' if self.query else ''}{cursor}ORDERBYsys_id",
            "sysparm_fields": self.columns,
            "sysparm_limit": str(self.limit),
            "sysparm_exclude_reference_link": "true",
            "sysparm_suppress_pagination_header": "true",
        }
        if self.offset:
            params["sysparm_offset"] = str(self.offset)
        return params

    def take(self, page: list[Record], count: int) -> list[Record]:
        """Take the current page's rows (`count`: its X-Total-Count) and move on: the rows to
        yield (none while stepping past a hidden window, or at the end)."""
        if not page:
            if count <= self.offset + self.limit:
                self.done = True  # nothing past this window: the end of the table
                return page
            self.guard.hidden_window(self.offset + self.limit, count, slack=self.limit)
            self.offset += self.limit  # a window the read rules hid completely: step past it
            return page
        self.guard.advancing(self.last, page[-1]["sys_id"])
        self.guard.hidden_window(0, 0, slack=0)
        self.last, self.offset = page[-1]["sys_id"], 0
        return page


class OAuthToken:
    """A ServiceNow OAuth bearer token from /oauth_token.do (password grant), renewed on expiry."""

    def __init__(
        self,
        base: str,
        client_id: str,
        client_secret: str,
        user: str,
        password: str,
        http: HttpClient,
    ) -> None:
        self._form = {
            "grant_type": "password",
            "client_id": client_id,
            "client_secret": client_secret,
            "username": user,
            "password": password,
        }
        self._url = f"{base}/oauth_token.do"
        self._http = http
        self._lock = threading.Lock()
        self._token = ""
        self._expires = 0.0

    def token(self) -> str:
        with self._lock:
            if self._token and time.monotonic() < self._expires - 60:
                return self._token
            response = self._http.request(
                "POST", self._url, data=self._form, is_read=True, safe_to_repeat=True
            )
            body: dict[str, Any] = {}
            with contextlib.suppress(ValueError):
                body = response.json()
            if response.status_code != 200 or "access_token" not in body:
                raise UnauthorizedError(
                    f"ServiceNow OAuth token refused ({response.status_code} "
                    f"{body.get('error_description') or body.get('error') or ''}); check "
                    "servicenow.auth client_id, client_secret, username and password",
                    service="servicenow",
                    status=response.status_code,
                )
            self._token = str(body["access_token"])
            register(self._token, str(body.get("refresh_token") or ""))
            self._expires = time.monotonic() + float(body.get("expires_in") or 1799)
            return self._token


IDENTITY_FIELDS = ("source", "user_name", "name", "group", "user")


def _probe_query(values: Mapping[str, str], account: str) -> str | None:
    """An encoded query finding a record created with `values` by `account`, or None when the
    values hold no usable identity field (or one a query cannot carry)."""
    terms = [
        f"{name}={values[name]}"
        for name in IDENTITY_FIELDS
        if values.get(name) and not set(values[name]) & set("^=\r\n")
    ]
    if not terms or set(account) & set("^=\r\n"):
        return None
    return "^".join([*terms, f"sys_created_by={account}"])


def _write_params(fields: Sequence[str]) -> dict[str, str]:
    params = {"sysparm_exclude_reference_link": "true"}
    if fields:
        params["sysparm_fields"] = ",".join(dict.fromkeys(["sys_id", *fields]))
    return params


def _auth_for(config: ServiceNowConfig, http: HttpClient) -> HTTPBasicAuth | OAuthToken:
    auth = config.auth
    if isinstance(auth, BasicAuth):
        return HTTPBasicAuth(auth.username, auth.password.get_secret_value())
    return OAuthToken(
        config.instance,
        auth.client_id,
        auth.client_secret.get_secret_value(),
        auth.username,
        auth.password.get_secret_value(),
        http,
    )


def servicenow_error(answer: JsonAnswer | requests.Response, method: str, url: str) -> ApiError:
    """The vocabulary error for a ServiceNow error response, with a fix where one is known."""
    if isinstance(answer, requests.Response):
        answer = JsonAnswer(answer, _lenient_json(answer))
    status = answer.status
    message, detail = _error_body(answer)
    text = f"ServiceNow {status}: {message}" + (f" ({detail})" if detail else "")
    if status == 401:
        text += "; check servicenow.auth (username and password, or OAuth client)"
    elif status == 403:
        text += (
            "; the integration account lacks a role or an ACL blocks it (give it user_admin, "
            "or admin for full access)"
        )
    kind = error_for_status(status)
    return kind(
        redact(text),
        service="servicenow",
        status=status,
        code=message,
        method=method,
        url=redact(url),
    )


def _error_body(answer: JsonAnswer) -> tuple[str, str]:
    error = answer.body.get("error") if isinstance(answer.body, dict) else None
    if isinstance(error, dict):
        return str(error.get("message") or "error")[:300], str(error.get("detail") or "")[:300]
    return (answer.response.reason or "error"), ""


def total_count(answer: JsonAnswer) -> int:
    """X-Total-Count of a list answer: how many rows match its query, counted before row read
    rules (0 when absent or not a number: without it an empty page has to end the read)."""
    return count_of(answer.response.headers.get("X-Total-Count", ""))


def table_path(table: str) -> str:
    """A table's Table API path, as a Batch API sub-request names it (relative to the instance)."""
    return f"/api/now/table/{quote(table, safe='')}"


def count_of(header: str) -> int:
    """An X-Total-Count header's value as a number (0 when it is not one)."""
    text = header.strip()
    return int(text) if text.isdigit() and len(text) <= 15 else 0


def _lenient_json(response: requests.Response) -> Any:
    try:
        return response.json()
    except (ValueError, RecursionError):
        return None


def record_of(row: Any) -> Record:
    """A Table API row as a record of strings (BadRequestError: not an object, no sys_id)."""
    if not isinstance(row, dict):
        raise BadRequestError(
            "ServiceNow returned a record that is not an object", service="servicenow"
        )
    if not row.get("sys_id"):
        raise BadRequestError(
            "ServiceNow returned a record without a sys_id (an ACL hiding the field, or not a "
            "Table API answer); check the account's read access",
            service="servicenow",
        )
    return {str(k): _value(v) for k, v in row.items()}


def _value(value: Any) -> str:
    if isinstance(value, dict):  # a reference when the link was not excluded
        return str(value.get("value", ""))
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)
