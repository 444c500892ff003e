"""The sandbox's HTTPS plumbing: a threaded HTTP/1.1 server over TLS that hands plain `Request`s
to an `App` and writes its `Response`, with injectable latency and faults.

Each service (token + Graph, ServiceNow) is an `App`; this module knows nothing of either.
"""

from __future__ import annotations

import json
import random
import socket
import ssl
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Protocol
from urllib.parse import parse_qs, unquote, urlsplit

from snsync.sandbox.tls import SandboxTls


@dataclass(frozen=True)
class Request:
    """One HTTP request as an app sees it."""

    method: str
    path: str  # percent-decoded path, no query string
    raw_path: str  # the path exactly as sent, with the query string
    query: Mapping[str, str]  # last value wins, as ServiceNow and Graph read them
    headers: Mapping[str, str]  # lower-cased names
    body: bytes
    base_url: str  # scheme://host:port of this listener

    def header(self, name: str, default: str = "") -> str:
        """A header value by case-insensitive name."""
        return self.headers.get(name.lower(), default)

    def json(self) -> Any:
        """The body parsed as JSON; raises ValueError when it is not JSON."""
        if not self.body:
            raise ValueError("empty body")
        return json.loads(self.body)


@dataclass
class Response:
    """One HTTP response from an app."""

    status: int
    body: Any = None  # dict/list -> JSON, bytes/str as is, None -> empty
    headers: dict[str, str] = field(default_factory=dict)
    cookies: tuple[str, ...] = ()  # Set-Cookie values, one header each

    def encoded(self) -> tuple[bytes, str]:
        """The body bytes and their content type."""
        if self.body is None:
            return b"", ""
        if isinstance(self.body, bytes):
            return self.body, self.headers.get("Content-Type", "application/octet-stream")
        if isinstance(self.body, str):
            return self.body.encode(), self.headers.get("Content-Type", "text/plain")
        return json.dumps(self.body).encode(), "application/json;charset=UTF-8"


class App(Protocol):
    """A sandboxed service."""

    def handle(self, request: Request) -> Response:
        """Answer one request."""
        ...

    def fault_response(self, status: int, retry_after: int) -> Response:
        """The service's own shape of a throttling (429) or unavailable (503) answer."""
        ...


# Every fault kind: throttled, unavailable, connection dropped before the request is served,
# answer lost after it was applied, truncated JSON, an HTML page with 200, a hang then a drop.
ALL_FAULTS = ("429", "503", "drop", "lost", "truncated", "html", "hang")


@dataclass
class FaultPlan:
    """Reproducible faults: a share of requests answered 429, 503 or a dropped connection."""

    rate: float = 0.0
    seed: int = 0
    retry_after: int = 1
    kinds: tuple[str, ...] = ("429", "503", "drop")
    hang_s: float = 3.0
    _rng: random.Random = field(init=False, repr=False)
    _lock: threading.Lock = field(init=False, repr=False, default_factory=threading.Lock)

    def __post_init__(self) -> None:
        self._rng = random.Random(self.seed)

    def draw(self) -> str | None:
        """The fault for the next request, or None."""
        if self.rate <= 0:
            return None
        with self._lock:
            if self._rng.random() >= self.rate:
                return None
            return self._rng.choice(self.kinds)


@dataclass
class ServerStats:
    """Counters a test or benchmark reads after a run."""

    requests: int = 0
    by_method: dict[str, int] = field(default_factory=dict)
    faults: int = 0
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def count(self, method: str) -> None:
        with self._lock:
            self.requests += 1
            self.by_method[method] = self.by_method.get(method, 0) + 1

    def count_fault(self) -> None:
        with self._lock:
            self.faults += 1

    def reset(self) -> None:
        with self._lock:
            self.requests = 0
            self.faults = 0
            self.by_method = {}


class SandboxServer:
    """Serve one `App` over HTTPS on loopback from a background thread."""

    def __init__(
        self,
        app: App,
        tls: SandboxTls,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        latency_ms: float = 0.0,
        faults: FaultPlan | None = None,
    ) -> None:
        self.app = app
        self.latency_ms = latency_ms  # the network round trip, before the app sees a request
        self.service_ms = 0.0  # time the service spends per request, for apps with no model of it
        self.faults = faults or FaultPlan()
        self.stats = ServerStats()
        handler = _handler_class(self)
        self._httpd = _TlsServer((host, port), handler, tls.server_context())
        self._thread: threading.Thread | None = None

    @property
    def port(self) -> int:
        return int(self._httpd.server_address[1])

    @property
    def host(self) -> str:
        return str(self._httpd.server_address[0])

    @property
    def base_url(self) -> str:
        return f"https://{self.host}:{self.port}"

    def start(self) -> SandboxServer:
        """Start serving in a daemon thread; returns self."""
        self._thread = threading.Thread(
            target=self._httpd.serve_forever, name=f"sandbox-{self.port}", daemon=True
        )
        self._thread.start()
        return self

    def respond(self, method: str, build: Callable[[], Request]) -> Response | None:
        """One request's answer: the network round trip (outside the app), an injected fault or
        the app's answer, then the service time; None for a dropped connection."""
        self.stats.count(method)
        if self.latency_ms:
            time.sleep(self.latency_ms / 1000.0)
        fault = self.faults.draw()
        if fault in ("drop", "hang"):
            self.stats.count_fault()
            if fault == "hang":
                time.sleep(self.faults.hang_s)
            return None
        if fault == "html":  # a hibernating instance or a proxy: not served, HTML with 200
            self.stats.count_fault()
            page = "<html><body>Instance is waking up</body></html>"
            return Response(200, page, {"Content-Type": "text/html;charset=UTF-8"})
        if fault in ("lost", "truncated"):  # applied, but the answer is lost or cut in half
            self.stats.count_fault()
            return _broken(fault, self.app.handle(build()))
        if fault is not None:
            self.stats.count_fault()
            return self.app.fault_response(int(fault), self.faults.retry_after)
        response = self.app.handle(build())
        if self.service_ms:
            time.sleep(self.service_ms / 1000.0)
        return response

    def stop(self) -> None:
        """Stop serving and close the listening socket."""
        self._httpd.shutdown()
        self._httpd.server_close()
        if self._thread:
            self._thread.join(timeout=5)


class _TlsServer(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 128

    def __init__(
        self, address: tuple[str, int], handler: type[BaseHTTPRequestHandler], ctx: ssl.SSLContext
    ) -> None:
        self._ssl_context = ctx
        super().__init__(address, handler)

    def get_request(self) -> tuple[socket.socket, Any]:
        sock, address = self.socket.accept()
        # Headers and body go out in separate sends: without TCP_NODELAY every response
        # waits ~40 ms for a delayed ACK, which would distort every latency figure.
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        tls_sock = self._ssl_context.wrap_socket(
            sock, server_side=True, do_handshake_on_connect=False
        )
        return tls_sock, address

    def handle_error(self, request: Any, client_address: Any) -> None:
        # A client hanging up mid-response is normal traffic for a test server, not an error.
        return


def _handler_class(server: SandboxServer) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        server_version = "snsync-sandbox"
        sys_version = ""

        def log_message(self, format: str, *args: Any) -> None:
            return

        def setup(self) -> None:
            super().setup()
            try:
                self.connection.do_handshake()
            except (ssl.SSLError, OSError):
                self.close_connection = True
                raise

        def handle_one_request(self) -> None:
            try:
                super().handle_one_request()
            except (ssl.SSLError, ConnectionError, TimeoutError):
                self.close_connection = True

        def _serve(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length) if length else b""
            if len(body) < length:  # the client went away mid-body: a real server drops it
                self.close_connection = True
                return
            response = server.respond(self.command, lambda: _request(self, server, body))
            if response is None:  # an injected dropped connection
                self.close_connection = True
                self.connection.close()
                return
            _write(self, response)

        do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = do_HEAD = _serve

    return Handler


def _broken(fault: str, response: Response) -> Response | None:
    if fault == "lost":
        return None
    payload, kind = response.encoded()
    if not payload:  # nothing to truncate (a 204)
        return response
    cut = payload[: max(1, len(payload) // 2)]
    headers = {**response.headers, "Content-Type": kind}
    return Response(response.status, cut, headers, cookies=response.cookies)


def _request(handler: BaseHTTPRequestHandler, server: SandboxServer, body: bytes) -> Request:
    parts = urlsplit(handler.path)
    query = {k: v[-1] for k, v in parse_qs(parts.query, keep_blank_values=True).items()}
    host = handler.headers.get("Host") or f"{server.host}:{server.port}"
    return Request(
        method=handler.command,
        path=unquote(parts.path),
        raw_path=handler.path,
        query=query,
        headers={k.lower(): v for k, v in handler.headers.items()},
        body=body,
        base_url=f"https://{host}",
    )


def _write(handler: BaseHTTPRequestHandler, response: Response) -> None:
    payload, content_type = response.encoded()
    if handler.command == "HEAD":
        payload = b""
    handler.send_response(response.status)
    for name, value in response.headers.items():
        if name.lower() != "content-type":
            handler.send_header(name, value)
    for cookie in response.cookies:
        handler.send_header("Set-Cookie", cookie)
    if content_type:
        handler.send_header("Content-Type", content_type)
    handler.send_header("Content-Length", str(len(payload)))
    handler.end_headers()
    if payload:
        handler.wfile.write(payload)
