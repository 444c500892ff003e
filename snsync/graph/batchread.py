"""Many Graph collections (the members of every assigned group) read through `$batch`: 20
listings a request, several requests in flight, each listing's `@odata.nextLink` followed in the
next round until it has none.

Every answer is treated as hostile: a sub-response is used only when it is a 200 whose body holds
a list of objects; a next link only when it stays at Graph's origin and under its `/v1.0/`; each
listing is bounded by its own PageGuard. A listing the batch does not serve that way (throttled
429 or 503, another error, a malformed or missing answer, an odd link) comes back as None, and
the caller reads it again on its own through the ordinary paging path, with its retries,
permission hints and "incomplete" notes. A 429 or 503 sub-response also tells the Graph limiter
(GraphClient.batch: halve, pause for its Retry-After) before anything is sent again."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from snsync.background import parallel_map
from snsync.bounds import PageGuard, check_link
from snsync.errors import ApiError, BadRequestError
from snsync.graph.client import BATCH_LIMIT, GraphClient, page_values

BATCH_WORKERS = 4  # $batch requests in flight (each holds up to 20 listings)
Items = list[dict[str, Any]]


@dataclass
class _Listing:
    """One collection being read: where its next page is, what it holds so far."""

    path: str
    url: str  # relative to /v1.0, with its query: what the next sub-request asks for
    guard: PageGuard
    items: Items = field(default_factory=list)
    failed: bool = False


def list_many(
    graph: GraphClient,
    paths: Sequence[str],
    params: Mapping[str, str],
    *,
    workers: int = BATCH_WORKERS,
) -> dict[str, Items | None]:
    """Every item of each collection `paths` (relative to /v1.0), by path; None for a listing
    the batch could not serve (read it on its own)."""
    query = "&".join(f"{k}={v}" for k, v in params.items())  # as GraphClient.get_many sends it
    listings = [
        _Listing(p, f"/{p.lstrip('/')}" + (f"?{query}" if query else ""), _guard(graph, p))
        for p in dict.fromkeys(paths)
    ]
    for listing in listings:
        listing.guard.next_page(listing.url)
    open_ = list(listings)
    while open_:
        chunks = [open_[i : i + BATCH_LIMIT] for i in range(0, len(open_), BATCH_LIMIT)]
        parallel_map(
            lambda chunk: _send(graph, chunk),
            chunks,
            workers=workers,
            doing="reading group members from Graph",
            name="snsync-graph-batch",
        )
        open_ = [item for item in open_ if item.url and not item.failed]
    return {item.path: None if item.failed else item.items for item in listings}


def _guard(graph: GraphClient, path: str) -> PageGuard:
    return PageGuard("graph", path.split("?")[0], graph.http.limits.max_pages)


def _send(graph: GraphClient, chunk: Sequence[_Listing]) -> None:
    """One `$batch` of the chunk's next pages; each listing advanced, finished or failed."""
    requests_ = [{"id": str(i), "method": "GET", "url": item.url} for i, item in enumerate(chunk)]
    try:
        answers = graph.batch(requests_)
    except ApiError:
        for item in chunk:
            item.failed = True  # the whole batch failed: each listing is read on its own
        return
    for item, answer in zip(chunk, answers, strict=True):
        if not _advance(graph, item, answer):
            item.failed = True


def _advance(graph: GraphClient, item: _Listing, answer: Mapping[str, Any]) -> bool:
    """Take one page from a sub-response; False when the listing must be read on its own."""
    body: Any = answer.get("body")
    values = page_values(body) if answer.get("status") == 200 else None
    if values is None:
        return False
    link = body.get("@odata.nextLink")  # body is a page (page_values): an object
    if link is None:
        item.items.extend(values)
        item.url = ""
        return True
    try:
        if not isinstance(link, str):
            return False
        check_link(link, graph.home, service="graph", what="@odata.nextLink")
        url = graph.batch_url(link)
        if url is None:
            return False
        item.guard.next_page(link)
    except BadRequestError:  # another origin, a loop, too many pages: the single path says so
        return False
    item.items.extend(values)
    item.url = url
    return True
