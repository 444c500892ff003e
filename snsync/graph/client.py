"""A thin Microsoft Graph v1.0 client: authenticated GETs, `@odata.nextLink` paging, delta rounds
and `$batch`, with Graph's error body turned into the error vocabulary."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from snsync.bounds import PageGuard, check_link, same_origin
from snsync.errors import (
    ApiError,
    BadRequestError,
    DeltaExpired,
    ForbiddenError,
    NotFoundError,
    error_for_status,
)
from snsync.graph.auth import GraphTokenProvider
from snsync.http import HttpClient, JsonAnswer, retry_after_value
from snsync.limiter import QUEUE_STATUSES
from snsync.redact import redact
from snsync.stop import STOP

# Which application permission a 403 on a path most likely lacks.
PERMISSION_HINTS = (
    ("/servicePrincipals", "Application.Read.All"),
    ("/members", "GroupMember.Read.All"),
    ("/transitiveMembers", "GroupMember.Read.All"),
    ("/groups", "GroupMember.Read.All"),
    ("/users", "User.Read.All"),
)
BATCH_LIMIT = 20
PREFER_LARGE_PAGES = "odata.maxpagesize=999"  # delta rounds take no $top
SYNC_STATE_GONE = "syncStateNotFound"


@dataclass(frozen=True)
class DeltaRound:
    """The objects of one delta round and the link to ask for the next changes."""

    items: list[dict[str, Any]]
    delta_link: str


class GraphClient:
    """Read Microsoft Graph with an app-only token."""

    def __init__(self, base_url: str, http: HttpClient, tokens: GraphTokenProvider) -> None:
        self.home = base_url.rstrip("/")
        self.base = f"{self.home}/v1.0"
        self.http = http
        self.tokens = tokens

    def get(self, path: str, params: Mapping[str, Any] | None = None) -> dict[str, Any]:
        """GET one resource (a path under /v1.0 or an absolute link) as JSON."""
        return self._send("GET", self._url(path), params=params)

    def iter_pages(
        self,
        path: str,
        params: Mapping[str, Any] | None = None,
        *,
        first: Mapping[str, Any] | None = None,
    ) -> Iterator[list[dict[str, Any]]]:
        """Yield each page's `value`, following `@odata.nextLink` until there is none. `first`:
        the first page's answer, already read (inside a `$batch`): it is not asked for again."""
        url: str | None = self._url(path)
        query = params
        guard = PageGuard("graph", path.split("?")[0], self.http.limits.max_pages)
        while url:
            guard.next_page(url if query is None else f"{url}?{sorted(query.items())}")
            STOP.check(f"reading {path.split('?')[0]} from Graph")
            page = dict(first) if first is not None else self._send("GET", url, params=query)
            first = None
            yield _values(page)
            url, query = self._next_link(page, "@odata.nextLink"), None

    def list_all(self, path: str, params: Mapping[str, Any] | None = None) -> list[dict[str, Any]]:
        """Every item of a paged collection."""
        return [item for page in self.iter_pages(path, params) for item in page]

    def delta(
        self,
        path_or_link: str,
        params: Mapping[str, Any] | None = None,
        *,
        first: Mapping[str, Any] | None = None,
    ) -> DeltaRound:
        """Run one delta round: follow nextLinks until the deltaLink, gathering every item.
        `first`: the first page's answer, already read (inside a `$batch`)."""
        url: str | None = self._url(path_or_link)
        what = "delta" if "://" in path_or_link else path_or_link.split("?")[0]
        query = params
        items: list[dict[str, Any]] = []
        guard = PageGuard("graph", what, self.http.limits.max_pages)
        while url:
            guard.next_page(url if query is None else f"{url}?{sorted(query.items())}")
            STOP.check(f"reading {what} from Graph")
            if first is not None:
                page, first = dict(first), None
            else:
                page = self._send("GET", url, params=query, prefer=PREFER_LARGE_PAGES)
            items.extend(_values(page))
            delta_link = self._next_link(page, "@odata.deltaLink")
            if delta_link:
                return DeltaRound(items, delta_link)
            url, query = self._next_link(page, "@odata.nextLink"), None
        raise BadRequestError(
            "Graph delta round ended without an @odata.deltaLink", service="graph", url=what
        )

    def batch(self, requests_: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """Send up to 20 read requests in one `$batch`; returns the responses in request order
        (status 0 for a request answered not once). A 429 or 503 sub-response tells the limiter
        (halve, pause for its Retry-After) before anything is sent again."""
        if len(requests_) > BATCH_LIMIT:
            raise ValueError(f"a Graph batch holds at most {BATCH_LIMIT} requests")
        body = self._send("POST", f"{self.base}/$batch", json={"requests": requests_}, is_read=True)
        answers = [r for r in body.get("responses", []) if isinstance(r, dict)]
        waits: list[float | None] = []
        for answer in answers:  # each item is charged against the budget on its own
            headers = answer.get("headers")
            status = answer.get("status")
            if isinstance(headers, dict):
                self.http.limiter.observe(
                    {str(k): str(v) for k, v in headers.items()},
                    status if isinstance(status, int) else None,
                )
            if status in QUEUE_STATUSES:
                waits.append(sub_retry_after(headers))
        if waits:  # a throttled item halves and pauses, as a throttled request does
            self.http.limiter.throttled(max((w for w in waits if w is not None), default=None))
        ids = Counter(str(r.get("id")) for r in answers)
        by_id = {str(r.get("id")): r for r in answers if ids[str(r.get("id"))] == 1}
        # A request answered twice (or not at all) has no answer to trust: status 0.
        return [by_id.get(str(r["id"]), {"id": r["id"], "status": 0}) for r in requests_]

    def get_many(
        self, paths: list[str], params: Mapping[str, str] | None = None
    ) -> dict[str, dict[str, Any] | None]:
        """GET many resources through `$batch` (20 a request); an item the batch could not serve
        (throttled, unavailable) is fetched on its own with the usual retries. Missing -> None."""
        query = "&".join(f"{k}={v}" for k, v in (params or {}).items())
        results: dict[str, dict[str, Any] | None] = {}
        for start in range(0, len(paths), BATCH_LIMIT):
            chunk = paths[start : start + BATCH_LIMIT]
            batch = [
                {"id": str(i), "method": "GET", "url": f"/{p}" + (f"?{query}" if query else "")}
                for i, p in enumerate(chunk)
            ]
            for path, answer in zip(chunk, self.batch(batch), strict=True):
                status = int(answer.get("status") or 0)
                if status == 200 and isinstance(answer.get("body"), dict):
                    results[path] = answer["body"]
                elif status == 404:
                    results[path] = None
                else:
                    results[path] = self._get_or_none(path, params)
        return results

    def _get_or_none(self, path: str, params: Mapping[str, str] | None) -> dict[str, Any] | None:
        try:
            return self.get(path, params)
        except NotFoundError:
            return None

    def _url(self, path: str) -> str:
        """An absolute URL; a link (fresh or stored) only when it stays at Graph's origin."""
        if "://" in path:
            return check_link(path, self.home, service="graph", what="a stored or given link")
        return f"{self.base}/{path.lstrip('/')}"

    def batch_url(self, link: str) -> str | None:
        """`link` as a `$batch` sub-request url (relative to /v1.0); None when it is not at this
        Graph's origin under /v1.0/ (the single path refuses or reads it on its own)."""
        prefix = f"{self.base}/"
        if not same_origin(link, self.home) or not link.startswith(prefix):
            return None
        return "/" + link[len(prefix) :]

    def _next_link(self, page: Mapping[str, Any], key: str) -> str | None:
        link = page.get(key)
        if link is None:
            return None
        if not isinstance(link, str) or not link:
            raise BadRequestError(f"Graph answered a {key} that is not a URL", service="graph")
        return check_link(link, self.home, service="graph", what=key)

    def _send(
        self,
        method: str,
        url: str,
        *,
        params: Mapping[str, Any] | None = None,
        json: Any = None,
        is_read: bool = False,
        prefer: str | None = None,
    ) -> dict[str, Any]:
        headers = {"Authorization": f"Bearer {self.tokens.token()}", "Accept": "application/json"}
        if prefer:
            headers["Prefer"] = prefer
        answer = self.http.fetch_json(
            method,
            url,
            params=params,
            json=json,
            headers=headers,
            is_read=is_read,
            safe_to_repeat=True if is_read else None,
        )
        if answer.status >= 400:
            raise graph_error(answer, method, url)
        body = answer.body
        if not isinstance(body, dict):
            raise BadRequestError(
                f"Graph answered {method} {redact(url)} with JSON that is not an object",
                service="graph",
                status=answer.status,
            )
        return body


def graph_error(answer: JsonAnswer, method: str, url: str) -> ApiError:
    """The vocabulary error for a Graph error response, with a fix where one is known."""
    return graph_error_of(answer.status, answer.body, answer.response.reason, method, url)


def graph_error_of(status: int, body: Any, reason: str | None, method: str, url: str) -> ApiError:
    """The vocabulary error for a Graph error status and body (a response's, or a `$batch`
    sub-response's: the same words for the same answer)."""
    code, message = _error_body(body, reason)
    text = f"Graph {status} {code}: {message}"
    if status == 410 or (status == 400 and code == SYNC_STATE_GONE):
        return DeltaExpired(
            redact(f"{text} (the delta link expired or is unknown)"),
            service="graph",
            status=status,
            code=code,
            method=method,
            url=redact(url),
        )
    if status == 403:
        permission = next((p for frag, p in PERMISSION_HINTS if frag in url), None)
        if permission:
            text += (
                f" Grant the application permission {permission} to the snsync app "
                "registration and give admin consent."
            )
            return ForbiddenError(
                redact(text),
                service="graph",
                status=status,
                code=code,
                method=method,
                url=redact(url),
            )
    if status == 401:
        text += " The token was refused; check the app registration and graph.tenant_id."
    kind = error_for_status(status)
    return kind(
        redact(text), service="graph", status=status, code=code, method=method, url=redact(url)
    )


def _error_body(body: Any, reason: str | None) -> tuple[str, str]:
    error = body.get("error") if isinstance(body, dict) else None
    if isinstance(error, dict):
        return str(error.get("code", "Unknown"))[:100], str(error.get("message", "")).strip()[:300]
    return "Unknown", (reason or "").strip()[:200]


def sub_retry_after(headers: Any) -> float | None:
    """A `$batch` sub-response's Retry-After in seconds (headers as the batch answer gave them)."""
    if not isinstance(headers, dict):
        return None
    for name, value in headers.items():
        if str(name).lower() == "retry-after":
            return retry_after_value(str(value))
    return None


def _values(page: Mapping[str, Any]) -> list[dict[str, Any]]:
    values = page.get("value", [])
    if not isinstance(values, list) or not all(isinstance(v, dict) for v in values):
        raise BadRequestError(
            "Graph answered a page whose value is not a list of objects", service="graph"
        )
    return values


def page_values(body: Any) -> list[dict[str, Any]] | None:
    """The `value` of a `$batch` sub-response's page when it is what a page must be (an object
    whose value is a list of objects); None: it is not, read the page on its own."""
    values = body.get("value") if isinstance(body, dict) else None
    if not isinstance(values, list) or not all(isinstance(v, dict) for v in values):
        return None
    return values
