"""Writes to ServiceNow through the Batch API (`POST /api/now/v1/batch`): creates, updates and
deletes in batches of a configurable size, each sub-result handled as its own write.

A batch saves round trips, authentication and session set-up, not server time per record
(reference.md section 7). What comes back unserviced, or with no answer, is sent again one request
at a time; so is everything in a batch the instance refused as a whole. A create is never sent a
second time when the first attempt may have landed (a dropped connection, a 5xx, a missing
answer): it fails as transient, and the next cycle, being full, adopts the record if it exists.
"""

from __future__ import annotations

import base64
import binascii
import itertools
import json
import math
import sys
import threading
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any
from urllib.parse import quote, urlencode

from snsync.errors import (
    ApiError,
    BadRequestError,
    TransientError,
    UnauthorizedError,
    error_for_status,
)
from snsync.redact import redact
from snsync.servicenow.client import TableClient, table_path

DEFAULT_BATCH_SIZE = 50
MAX_BATCH_SIZE = 1000
# A batch refused with one of these was not applied at all: every item can be sent on its own.
# Values of fields a write did not send that are interned when kept (longer ones are unique).
MAX_INTERNED = 64
NOT_APPLIED = frozenset({400, 403, 404, 405, 413, 414, 415, 501})


class WriteKind(StrEnum):
    """The three writes snsync makes, by HTTP method."""

    CREATE = "POST"
    UPDATE = "PATCH"
    DELETE = "DELETE"


@dataclass(frozen=True)
class WriteRequest:
    """One record write: a create, or an update or delete of the record `sys_id`."""

    kind: WriteKind
    table: str
    values: Mapping[str, str] = field(default_factory=dict)
    sys_id: str | None = None
    fields: tuple[str, ...] = ()  # what the caller needs back besides sys_id

    def __post_init__(self) -> None:
        if self.kind is not WriteKind.CREATE and not self.sys_id:
            raise ValueError(f"{self.kind.name} of a {self.table} record needs its sys_id")

    @property
    def repeatable(self) -> bool:
        """Whether sending it twice is harmless (an update or delete, not a create)."""
        return self.kind is not WriteKind.CREATE


@dataclass(frozen=True)
class WriteResult:
    """How one write ended. `record` holds only sys_id and the request's `fields`."""

    request: WriteRequest
    sys_id: str | None
    record: Mapping[str, str] | None = None
    error: ApiError | None = None
    started: bool = True  # False: stopped before it was sent
    batched: bool = True  # answered inside a batch (False: sent as a single request)

    @property
    def ok(self) -> bool:
        return self.started and self.error is None


OnWrite = Callable[[WriteResult], None]
Stop = Callable[[], bool]


def write_batched(
    client: TableClient,
    requests: Sequence[WriteRequest],
    *,
    batch_size: int = DEFAULT_BATCH_SIZE,
    concurrency: int = 1,
    on_result: OnWrite | None = None,
    stop: Stop | None = None,
) -> list[WriteResult]:
    """Send `requests` in batches (`concurrency` batches at a time); one result each, in order.

    `batch_size` 1 sends single Table API requests. A batch not yet sent when `stop()` turns true
    comes back unstarted. Raises only WriteBlockedError (a read-only client).
    """
    if not 1 <= batch_size <= MAX_BATCH_SIZE:
        raise ValueError(f"batch_size must be between 1 and {MAX_BATCH_SIZE}")
    sender = _Sender(client, on_result, stop)
    chunks = even_chunks(len(requests), batch_size, max(concurrency, 1))
    results: list[WriteResult | None] = [None] * len(requests)

    def run(chunk: range) -> None:
        for index, result in zip(chunk, sender.send([requests[i] for i in chunk]), strict=True):
            results[index] = result

    if concurrency <= 1 or len(chunks) <= 1:
        for chunk in chunks:
            run(chunk)
    else:
        with ThreadPoolExecutor(max_workers=concurrency, thread_name_prefix="snsync-batch") as pool:
            list(pool.map(run, chunks))
    return [r for r in results if r is not None]


def even_chunks(count: int, batch_size: int, concurrency: int) -> list[range]:
    """Index ranges of at most `batch_size`, as even as possible, in a number of batches that is
    a multiple of `concurrency` (when there are enough items), so that the last round of batches
    does not leave workers idle while one long batch finishes: a batch's sub-requests run one
    after another on the instance."""
    if count <= 0:
        return []
    batches = math.ceil(count / batch_size)
    if concurrency > 1:
        batches = min(count, math.ceil(batches / concurrency) * concurrency)
    size, extra = divmod(count, batches)
    chunks, start = [], 0
    for i in range(batches):
        end = start + size + (1 if i < extra else 0)
        chunks.append(range(start, end))
        start = end
    return chunks


class _Sender:
    """Sends one chunk: as a batch, then whatever needs it one request at a time."""

    def __init__(self, client: TableClient, on_result: OnWrite | None, stop: Stop | None) -> None:
        self.client = client
        self.on_result = on_result
        self.stop = stop
        self._ids = itertools.count(1)
        self._lock = threading.Lock()

    def send(self, chunk: Sequence[WriteRequest]) -> list[WriteResult]:
        if self.stop and self.stop():
            return [self._emit(WriteResult(r, r.sys_id, started=False)) for r in chunk]
        if len(chunk) == 1:
            return [self._emit(self.single(chunk[0]))]
        answers = self._batch(chunk)
        results = []
        for request, answer in zip(chunk, answers, strict=True):
            if answer is None:
                answer = self.single(request)
            results.append(self._emit(answer))
        return results

    def single(self, request: WriteRequest) -> WriteResult:
        """One Table API request for `request`; errors become the result's error."""
        try:
            if request.kind is WriteKind.CREATE:
                record = self.client.create(request.table, request.values, request.fields)
                return _success(request, record, batched=False)
            assert request.sys_id is not None
            if request.kind is WriteKind.DELETE:
                self.client.delete(request.table, request.sys_id)
                return WriteResult(request, request.sys_id, batched=False)
            record = self.client.update(
                request.table, request.sys_id, request.values, request.fields
            )
            return _checked_update(request, record, batched=False)
        except ApiError as exc:
            return WriteResult(request, request.sys_id, error=exc, batched=False)

    def _batch(self, chunk: Sequence[WriteRequest]) -> list[WriteResult | None]:
        """Results of one batch; None where the item must be sent again on its own."""
        with self._lock:
            batch_id = f"snsync-{next(self._ids)}"
        payload = {
            "batch_request_id": batch_id,
            "rest_requests": [_sub_request(str(i), r) for i, r in enumerate(chunk)],
        }
        try:
            answer = self.client.post_batch(payload)
        except ApiError as exc:
            return [_whole_batch_failed(r, exc) for r in chunk]
        if str(answer.get("batch_request_id", batch_id)) != batch_id:
            mixed = BadRequestError(
                "ServiceNow answered a batch with another batch's id", service="servicenow"
            )
            return [_whole_batch_failed(r, mixed) for r in chunk]
        serviced = _serviced(answer)
        results: list[WriteResult | None] = []
        for i, request in enumerate(chunk):
            item = serviced.get(str(i))
            if item is None:
                results.append(_unanswered(request, str(i), answer))
            else:
                results.append(_sub_result(request, item))
        return results

    def _emit(self, result: WriteResult) -> WriteResult:
        if self.on_result:
            self.on_result(result)
        return result


def _sub_request(item_id: str, request: WriteRequest) -> dict[str, Any]:
    url = table_path(request.table)
    if request.sys_id:
        url += f"/{quote(request.sys_id, safe='')}"
    headers = [{"name": "Accept", "value": "application/json"}]
    sub: dict[str, Any] = {
        "id": item_id,
        "method": request.kind.value,
        "exclude_response_headers": True,
    }
    if request.kind is not WriteKind.DELETE:
        params = {"sysparm_exclude_reference_link": "true"}
        params["sysparm_fields"] = ",".join(dict.fromkeys(["sys_id", *request.fields]))
        url += "?" + urlencode(params)
        headers.append({"name": "Content-Type", "value": "application/json"})
        body = json.dumps(dict(request.values)).encode()
        sub["body"] = base64.b64encode(body).decode()
    sub["url"] = url
    sub["headers"] = headers
    return sub


def _serviced(answer: Mapping[str, Any]) -> dict[str, Mapping[str, Any]]:
    """Serviced sub-results by id; the first answer for an id wins, malformed ones are dropped."""
    items = answer.get("serviced_requests")
    found: dict[str, Mapping[str, Any]] = {}
    for item in items if isinstance(items, list) else ():
        if isinstance(item, dict) and isinstance(item.get("id"), str):
            found.setdefault(item["id"], item)
    return found


def _unanswered(
    request: WriteRequest, item_id: str, answer: Mapping[str, Any]
) -> WriteResult | None:
    """An item the batch did not answer: unserviced (never run) or simply missing."""
    unserviced = answer.get("unserviced_requests")
    if isinstance(unserviced, list) and item_id in unserviced:
        return None  # the instance says it did not run it: safe to send on its own
    if request.repeatable:
        return None
    return _in_doubt(request, "the batch answer did not mention it")


def _whole_batch_failed(request: WriteRequest, exc: ApiError) -> WriteResult | None:
    """After the batch request itself failed: send again on its own, or fail in doubt."""
    if isinstance(exc, UnauthorizedError):
        return WriteResult(request, request.sys_id, error=exc)
    if exc.status in NOT_APPLIED or exc.status == 429 or request.repeatable:
        return None
    return _in_doubt(request, f"the batch failed ({exc})")


def _in_doubt(request: WriteRequest, why: str) -> WriteResult:
    error = TransientError(
        f"ServiceNow: create in {request.table} may or may not have been applied: {why}; not "
        "sent again (the next cycle reads ServiceNow in full and adopts it if it landed)",
        service="servicenow",
        method="POST",
    )
    return WriteResult(request, None, error=error)


def _sub_result(request: WriteRequest, item: Mapping[str, Any]) -> WriteResult | None:
    """One serviced sub-result as a write result (None: throttled, send it on its own)."""
    status = item.get("status_code")
    if not isinstance(status, int) or isinstance(status, bool):
        return (
            _in_doubt(request, "its batch answer had no status") if not request.repeatable else None
        )
    if status == 429:
        return None
    body = _decoded_body(item.get("body"))
    if status >= 400:
        return WriteResult(request, request.sys_id, error=_sub_error(request, status, body))
    if request.kind is WriteKind.DELETE:
        return WriteResult(request, request.sys_id)
    record = body.get("result") if isinstance(body, dict) else None
    if not isinstance(record, dict):
        if request.repeatable:
            return None
        return _in_doubt(request, f"its batch answer ({status}) held no record")
    try:
        if request.kind is WriteKind.CREATE:
            return _success(request, record, batched=True)
        return _checked_update(request, record, batched=True)
    except BadRequestError as exc:
        if request.repeatable:
            return WriteResult(request, request.sys_id, error=exc)
        return _in_doubt(request, str(exc))


def _success(request: WriteRequest, record: Mapping[str, Any], *, batched: bool) -> WriteResult:
    kept = _kept(record, request.fields, request.values)
    return WriteResult(request, kept["sys_id"], kept, batched=batched)


def _checked_update(
    request: WriteRequest, record: Mapping[str, Any], *, batched: bool
) -> WriteResult:
    kept = _kept(record, request.fields, request.values)
    if kept["sys_id"] != request.sys_id:
        error = BadRequestError(
            f"ServiceNow answered an update of {request.table} {request.sys_id} with another "
            "record; the answer was ignored",
            service="servicenow",
        )
        return WriteResult(request, request.sys_id, error=error, batched=batched)
    return WriteResult(request, request.sys_id, kept, batched=batched)


def _kept(
    record: Mapping[str, Any], fields: Sequence[str], sent: Mapping[str, str]
) -> dict[str, str]:
    """sys_id and `fields` of a record as strings; raises when sys_id is missing.

    Many thousands of answers stay in memory until the cycle is recorded, so a value equal to
    the one the write sent is that same string object, and the values of fields the write did
    not send (creator, timestamps, defaults), which repeat from record to record, are interned."""
    sys_id = record.get("sys_id")
    if not isinstance(sys_id, str) or not sys_id:
        raise BadRequestError("ServiceNow answered a write without a sys_id", service="servicenow")
    kept = {"sys_id": sys_id}
    for name in fields:
        if name in record:
            text = _text(record[name])
            ours = sent.get(name)
            if ours is not None and ours == text:
                kept[name] = ours
            elif name in sent or len(text) > MAX_INTERNED:
                kept[name] = text
            else:
                kept[name] = sys.intern(text)
    return kept


def _text(value: Any) -> str:
    if isinstance(value, dict):  # a reference when the link was not excluded
        return str(value.get("value", ""))
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def _decoded_body(raw: Any) -> Any:
    if not isinstance(raw, str) or not raw:
        return None
    try:
        return json.loads(base64.b64decode(raw, validate=True))
    except (binascii.Error, ValueError):
        return None


def _sub_error(request: WriteRequest, status: int, body: Any) -> ApiError:
    error = body.get("error") if isinstance(body, dict) else None
    message = detail = ""
    if isinstance(error, dict):
        message = _printable(error.get("message"))
        detail = _printable(error.get("detail"))
    target = f"{request.table} {request.sys_id}" if request.sys_id else request.table
    text = f"ServiceNow {status} on {request.kind.name.lower()} of {target}: {message or 'error'}"
    if detail:
        text += f" ({detail})"
    if status == 403:
        text += "; the integration account lacks a role or an ACL blocks it"
    return error_for_status(status)(
        redact(text),
        service="servicenow",
        status=status,
        code=message or None,
        method=request.kind.value,
    )


def _printable(value: Any, limit: int = 300) -> str:
    """An instance's error text, safe for a terminal and a log line (it may be crafted)."""
    text = "" if value is None else str(value)
    return "".join(c if c.isprintable() else " " for c in text[:limit])
