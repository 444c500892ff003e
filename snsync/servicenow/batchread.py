"""Several ServiceNow reads started in one Batch API request (`POST /api/now/v1/batch` with GET
sub-requests): the first page of each, in one round trip instead of one each. An incremental
cycle's drift reads (what others changed since the watermark: users, groups, membership rows,
reference tables) come back empty when nothing changed, so a no-change cycle reads ServiceNow in
one request.

A batched page is held to every rule of a page read on its own (TableClient.pages_of, the same
Keyset): it is complete only when it is empty with nothing past it by its X-Total-Count (a
short page, a page with rows, or an empty one with rows counted past it is followed by single
requests from where it stands, stepping past windows the read rules hid); limits.max_pages
counts it; the whole answer is bounded by limits.max_body_bytes and each sub-response's JSON by
limits.max_json_depth. A sub-request the batch did not answer cleanly (unserviced, as the
instance's 30 s batch limit leaves the rest; missing or answered twice; not a 200; a 429, which
also tells the limiter; a body that is not base64 JSON with a result list of records; an HTML
page) is sent again on its own, so that its answer, or its error, is exactly what a single read
gets. A batch refused as a whole is read request by request."""

from __future__ import annotations

import base64
import binascii
import itertools
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import unquote, urlencode, urlsplit

from snsync.bounds import parse_json
from snsync.errors import ApiError
from snsync.http import retry_after_value
from snsync.model import Record
from snsync.servicenow.client import Keyset, TableClient, count_of, record_of, table_path

_batch_ids = itertools.count(1)


@dataclass(frozen=True)
class Changed:
    """One drift read: rows of `table` updated at or after a time by anyone but `not_by`, or,
    `added`, rows created then (membership rows: a row is never updated, only added)."""

    table: str
    fields: tuple[str, ...]
    not_by: str | None = None
    added: bool = False

    def query(self, since: str) -> str:
        """The encoded query of this read since `since` (a ServiceNow UTC time)."""
        if self.added:
            return f"sys_created_on>={since}" + (
                f"^sys_created_by!={self.not_by}" if self.not_by else ""
            )
        return f"sys_updated_on>={since}" + (
            f"^sys_updated_by!={self.not_by}" if self.not_by else ""
        )


@dataclass(frozen=True)
class TableRead:
    """One keyset read: rows of `table` matching `query`, with `fields` and sys_id."""

    table: str
    fields: tuple[str, ...]
    query: str = ""


def read_together(client: TableClient, reads: Sequence[TableRead]) -> list[list[Record]]:
    """Every row of each read, in the reads' order: their first pages in one Batch API request,
    whatever follows (or was not answered cleanly) one request at a time."""
    keysets = [client.keyset(r.table, r.fields, r.query) for r in reads]
    if len(keysets) < 2:
        return [_rows(client.pages_of(k)) for k in keysets]
    first = [k.start() for k in keysets]  # counted by each read's guard, as a single page is
    answered = _batch(
        client,
        [_sub_request(str(i), k, p) for i, (k, p) in enumerate(zip(keysets, first, strict=True))],
    )
    results = []
    for i, keyset in enumerate(keysets):
        page = _page(client, answered.get(str(i)), keyset)
        rows = [] if page is None else list(keyset.take(*page))
        rows += _rows(client.pages_of(keyset, resend=page is None))
        results.append(rows)
    return results


def _rows(pages: Iterable[list[Record]]) -> list[Record]:
    return [row for page in pages for row in page]


def _sub_request(item_id: str, keyset: Keyset, params: Mapping[str, str]) -> dict[str, Any]:
    # With its pagination header (Link) the answer names its table: see _names_another.
    asked = {k: v for k, v in params.items() if k != "sysparm_suppress_pagination_header"}
    url = f"{table_path(keyset.table)}?{urlencode(asked)}"
    return {
        "id": item_id,
        "method": "GET",
        "url": url,
        "headers": [{"name": "Accept", "value": "application/json"}],
    }


def _batch(client: TableClient, subs: list[dict[str, Any]]) -> dict[str, Mapping[str, Any]]:
    """The serviced sub-responses by id (each answered once); {} when the batch failed."""
    batch_id = f"snsync-read-{next(_batch_ids)}"
    try:
        answer = client.post_batch(
            {"batch_request_id": batch_id, "rest_requests": subs}, reads=True
        )
    except ApiError:
        return {}  # refused as a whole (no Batch API, an ACL, throttled past retries): singly
    if str(answer.get("batch_request_id", batch_id)) != batch_id:
        return {}  # another batch's answer
    items = answer.get("serviced_requests")
    found: dict[str, list[Mapping[str, Any]]] = {}
    for item in items if isinstance(items, list) else ():
        if isinstance(item, dict) and isinstance(item.get("id"), str):
            found.setdefault(item["id"], []).append(item)
    serviced = {i: entries[0] for i, entries in found.items() if len(entries) == 1}
    throttled = [_headers(s).get("retry-after") for s in serviced.values() if _status(s) == 429]
    if throttled:  # as a 429 on a single request does: halve, pause for its Retry-After
        waits = [w for w in (retry_after_value(t) for t in throttled) if w is not None]
        client.http.limiter.throttled(max(waits, default=None))
    return serviced


def _page(
    client: TableClient, item: Mapping[str, Any] | None, keyset: Keyset
) -> tuple[list[Record], int] | None:
    """A serviced sub-response as a page and its X-Total-Count, or None when it is not the
    clean answer a single read would take (the page is then asked for on its own)."""
    if item is None or _status(item) != 200:
        return None
    headers = _headers(item)
    if "html" in headers.get("content-type", "").lower() or _names_another(headers, keyset):
        return None
    raw = item.get("body")
    if not isinstance(raw, str):
        return None
    try:
        body = parse_json(
            base64.b64decode(raw, validate=True),
            client.http.limits,
            service="servicenow",
            where="a Batch API sub-response",
        )
        result = body.get("result") if isinstance(body, dict) else None
        if not isinstance(result, list):
            return None
        rows = [record_of(row) for row in result]
    except (binascii.Error, ValueError, ApiError):
        return None
    columns = set(keyset.columns.split(","))
    if any(not columns.issuperset(row) for row in rows):
        return None  # fields the request did not ask for: another table's rows
    return rows, count_of(headers.get("x-total-count", ""))


def _names_another(headers: Mapping[str, str], keyset: Keyset) -> bool:
    """Whether the answer's Link header (when it has one) names another table than the read's:
    a sub-response's id is all else that ties it to its request."""
    first = headers.get("link", "").split(">", 1)[0].lstrip(" <")
    if not first:
        return False
    return unquote(urlsplit(first).path).rstrip("/").lower() != table_path(keyset.table).lower()


def _status(item: Mapping[str, Any]) -> int | None:
    status = item.get("status_code")
    return status if isinstance(status, int) and not isinstance(status, bool) else None


def _headers(item: Mapping[str, Any]) -> dict[str, str]:
    """A sub-response's headers (a list of name/value objects), names in lower case."""
    raw = item.get("headers")
    headers: dict[str, str] = {}
    for header in raw if isinstance(raw, list) else ():
        if isinstance(header, dict) and isinstance(header.get("name"), str):
            headers.setdefault(header["name"].lower(), str(header.get("value", "")))
    return headers
