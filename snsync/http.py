"""The one HTTP layer: a requests session per worker thread with TLS verification pinned per
request, credentials only to the configured origins, a total deadline per request (connect plus
the whole body), a body size cap, one retry policy (tenacity, honouring Retry-After, repeating
unreadable answers where that is safe), the shared adaptive limiter, the stop token, and a
read-only switch that makes `snsync plan` unable to write, enforced here rather than by convention.

Every exception of requests, urllib3, ssl and socket is turned into the error vocabulary here."""

from __future__ import annotations

import contextlib
import random
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field, replace
from email.utils import parsedate_to_datetime
from http.cookiejar import DefaultCookiePolicy
from pathlib import Path
from typing import Any

import requests
from requests.adapters import HTTPAdapter
from tenacity import RetryCallState, Retrying, retry_if_exception_type, stop_after_attempt

from snsync import __version__
from snsync.bounds import Limits, origin_text, parse_json, same_origin
from snsync.errors import (
    ApiError,
    CycleStopped,
    ExitCode,
    RequestDeadlineError,
    TransientError,
    UnreadableAnswerError,
    UnsafeAnswerError,
    WriteBlockedError,
    describe_connection_failure,
    from_requests_error,
    meaning,
)
from snsync.limiter import AdaptiveLimiter
from snsync.redact import redact
from snsync.stop import STOP, Interrupted

USER_AGENT = f"snsync/{__version__}"
RETRY_STATUSES = frozenset({429, 502, 503, 504})
IDEMPOTENT = frozenset({"GET", "HEAD", "OPTIONS", "PUT", "PATCH", "DELETE"})
READS = frozenset({"GET", "HEAD", "OPTIONS"})
CHUNK = 64 * 1024


@dataclass(frozen=True)
class RetryPolicy:
    """How hard to try one request: attempts, back-off base and cap (seconds)."""

    attempts: int = 6
    base_s: float = 0.5
    cap_s: float = 30.0
    retry_after_cap_s: float = 120.0


@dataclass
class RequestCounter:
    """Requests made, by kind; read by the run summary and the benchmark."""

    reads: int = 0
    writes: int = 0
    retries: int = 0
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def count(self, method: str, *, read: bool = False) -> None:
        """One request; `read`: a POST that only reads (a token, a batch of GETs) counts as one."""
        with self._lock:
            if read or method in READS:
                self.reads += 1
            else:
                self.writes += 1

    def count_retry(self) -> None:
        with self._lock:
            self.retries += 1

    @property
    def total(self) -> int:
        return self.reads + self.writes


@dataclass(frozen=True)
class JsonAnswer:
    """A response whose body was read within the bounds, and its JSON (None on an error status
    whose body is not JSON)."""

    response: requests.Response
    body: Any
    attempts: int = 1  # how many times the request was sent

    @property
    def status(self) -> int:
        return self.response.status_code


class _Retry(Exception):
    """Internal: this attempt should be repeated."""

    def __init__(self, response: requests.Response | None, cause: ApiError | None) -> None:
        super().__init__("retry")
        self.response = response
        self.cause = cause


class _NoCookies(DefaultCookiePolicy):
    def set_ok(self, cookie: Any, request: Any) -> bool:
        return False


class HttpClient:
    """Pooled HTTPS sessions for one service, with the project's TLS, retry and safety rules."""

    def __init__(
        self,
        *,
        service: str,
        ca_bundle: Path | None = None,
        timeout_s: float = 30.0,
        read_only: bool = False,
        policy: RetryPolicy | None = None,
        pool_size: int = 16,
        counter: RequestCounter | None = None,
        sleep: Callable[[float], None] | None = None,
        origins: tuple[str, ...] = (),
        limits: Limits | None = None,
        limiter: AdaptiveLimiter | None = None,
        cookies: str = "per-worker",
        ca_key: str | None = None,
    ) -> None:
        self.service = service
        # requests lets REQUESTS_CA_BUNDLE/CURL_CA_BUNDLE override Session.verify, so the CA file
        # is passed as verify= on every single request instead (psf/requests#3829).
        self.verify: str | bool = str(ca_bundle) if ca_bundle else True
        self.timeout_s = timeout_s
        self.read_only = read_only
        self.policy = policy or RetryPolicy()
        self.counter = counter or RequestCounter()
        self.origins = origins  # empty: any https origin (tests); else only these get requests
        self.limits = limits or Limits()
        self.limiter = limiter or AdaptiveLimiter(service, max_concurrency=pool_size)
        self.cookies = cookies  # per-worker: one cookie jar per thread; none: no cookie jar
        self.ca_key = ca_key or f"{service.split()[0]}.ca_bundle"
        self._sleep = sleep or STOP.wait
        self._pool_size = pool_size
        self._local = threading.local()
        self._sessions: list[requests.Session] = []
        self._sessions_lock = threading.Lock()

    @property
    def session(self) -> requests.Session:
        """This thread's session: parallel workers never share a session cookie, so a
        ServiceNow instance serves them in parallel instead of one after another."""
        session: requests.Session | None = getattr(self._local, "session", None)
        if session is None:
            session = self._new_session()
            self._local.session = session
            with self._sessions_lock:
                self._sessions.append(session)
        return session

    def _new_session(self) -> requests.Session:
        session = requests.Session()
        session.trust_env = False  # no proxy or netrc surprises from the environment
        adapter = HTTPAdapter(pool_connections=4, pool_maxsize=max(2, self._pool_size // 4))
        session.mount("https://", adapter)
        session.headers["User-Agent"] = USER_AGENT
        with self._sessions_lock:
            if self._sessions:  # response hooks (request tracing) hold for every worker's session
                session.hooks["response"] = self._sessions[0].hooks["response"]
        if self.cookies == "none":
            session.cookies.set_policy(_NoCookies())
        return session

    def request(
        self,
        method: str,
        url: str,
        *,
        params: Mapping[str, Any] | None = None,
        json: Any = None,
        data: Any = None,
        headers: Mapping[str, str] | None = None,
        auth: Any = None,
        safe_to_repeat: bool | None = None,
        is_read: bool = False,
    ) -> requests.Response:
        """Send one request, retrying throttling and transient failures where that is safe.

        `is_read` marks a POST that reads (a token request, a Graph read batch) so that a
        read-only client allows it; `safe_to_repeat` overrides the idempotency rule for retries.
        """
        sent = self._send(method, url, params, json, data, headers, auth, safe_to_repeat, is_read)
        return sent.response

    def fetch_json(
        self,
        method: str,
        url: str,
        *,
        params: Mapping[str, Any] | None = None,
        json: Any = None,
        headers: Mapping[str, str] | None = None,
        auth: Any = None,
        safe_to_repeat: bool | None = None,
        is_read: bool = False,
    ) -> JsonAnswer:
        """As `request`, and parse the body as JSON within the nesting limit. A success answer
        that is not JSON (truncated, an HTML page) is UnreadableAnswerError, retried like a 503
        where repeating is safe; an error status keeps whatever JSON its body has."""
        return self._send(
            method, url, params, json, None, headers, auth, safe_to_repeat, is_read, parse=True
        )

    def _send(
        self,
        method: str,
        url: str,
        params: Mapping[str, Any] | None,
        json: Any,
        data: Any,
        headers: Mapping[str, str] | None,
        auth: Any,
        safe_to_repeat: bool | None,
        is_read: bool,
        *,
        parse: bool = False,
    ) -> JsonAnswer:
        method = method.upper()
        self._check_target(method, url, is_read)
        reading = method in READS or is_read
        repeatable = safe_to_repeat if safe_to_repeat is not None else method in IDEMPOTENT
        kwargs: dict[str, Any] = {
            "params": params,
            "json": json,
            "data": data,
            "headers": headers,
            "auth": auth,
            "verify": self.verify,
            "allow_redirects": False,  # a redirect could lead credentials elsewhere
            "stream": True,
        }
        retrying = Retrying(
            stop=stop_after_attempt(self.policy.attempts),
            wait=self._wait,
            retry=retry_if_exception_type(_Retry),
            sleep=self._sleep,
            before_sleep=lambda _state: self.counter.count_retry(),
            reraise=True,
        )
        attempt = _Attempt(self, method, url, repeatable, reading, parse, kwargs)
        try:
            answer = retrying(attempt.run)
        except _Retry as final:
            if final.response is not None:
                return JsonAnswer(
                    final.response, _lenient_json(final.response), self.policy.attempts
                )
            assert final.cause is not None
            raise _after_attempts(final.cause, self.policy.attempts) from None
        return replace(answer, attempts=int(retrying.statistics.get("attempt_number", 1)))

    def _check_target(self, method: str, url: str, is_read: bool) -> None:
        if not url.lower().startswith("https://"):
            raise TransientError(
                f"refusing to send {method} to a non-https URL", service=self.service, url=url
            )
        if self.origins and not any(same_origin(url, home) for home in self.origins):
            raise UnsafeAnswerError(
                f"{self.service}: refused to send {method} to {origin_text(url)}: not a "
                f"configured origin ({', '.join(origin_text(o) for o in self.origins)}); no "
                "credential was sent",
                service=self.service,
                method=method,
                url=origin_text(url),
            )
        if self.read_only and method not in READS and not is_read:
            raise WriteBlockedError(
                f"{self.service}: {method} {redact(url)} blocked: this run is read-only "
                "(plan or dry run)"
            )

    def _wait(self, state: RetryCallState) -> float:
        outcome = state.outcome
        error = outcome.exception() if outcome else None
        hinted = retry_after_seconds(error.response) if isinstance(error, _Retry) else None
        if hinted is not None:
            return min(hinted, self.policy.retry_after_cap_s)
        backoff: float = self.policy.base_s * (2.0 ** (state.attempt_number - 1))
        return min(self.policy.cap_s, backoff) * random.uniform(0.5, 1.0)

    def close(self) -> None:
        with self._sessions_lock:
            for session in self._sessions:
                session.close()
            self._sessions.clear()
        self._local = threading.local()


@dataclass
class _Attempt:
    """One try of a request: admission, the stop token, the deadline, the body, the verdict."""

    http: HttpClient
    method: str
    url: str
    repeatable: bool
    reading: bool
    parse: bool
    kwargs: dict[str, Any]

    def run(self) -> JsonAnswer:
        http = self.http
        if self.reading:
            STOP.check(f"reading from {http.service}")
        http.limiter.acquire()
        started = time.monotonic()
        status: int | None = None
        retry_after: float | None = None
        busy = False
        try:
            http.counter.count(self.method, read=self.reading)
            response = self._exchange(started + http.timeout_s)
            status = response.status_code
            retry_after = retry_after_seconds(response)
            busy = http.limiter.observe(response.headers, status)
            return self._verdict(response, retry_after)
        finally:
            # A queue signal already halved the limit: no growth from this answer.
            http.limiter.release(time.monotonic() - started, None if busy else status, retry_after)

    def _exchange(self, deadline: float) -> requests.Response:
        """Send and read the whole body before `deadline`, mapping every failure."""
        http = self.http
        where = redact(self.url)
        guard = STOP.interruptible() if self.reading else contextlib.nullcontext()
        try:
            with guard:
                response = http.session.request(
                    self.method, self.url, timeout=_timeout(deadline), **self.kwargs
                )
                _read_body(response, deadline, http.limits.max_body_bytes, http.service, where)
                return response
        except Interrupted as stop:
            raise CycleStopped(
                f"stopped ({stop}) while reading from {http.service}; the next cycle starts over",
                code=ExitCode.INTERRUPTED,
            ) from None
        except (requests.RequestException, OSError) as exc:
            error: ApiError = from_requests_error(
                exc, service=http.service, method=self.method, url=where, ca_key=http.ca_key
            )
            if isinstance(exc, requests.Timeout) and time.monotonic() >= deadline - 0.05:
                error = _deadline_error(http, self.method, where)
            raise self._maybe_retry(error) from None
        except ApiError as error:
            raise self._maybe_retry(error) from None

    def _verdict(self, response: requests.Response, retry_after: float | None) -> JsonAnswer:
        http = self.http
        status = response.status_code
        if status == 429 and http.limiter.quota_spent(response.headers, retry_after):
            return JsonAnswer(response, _lenient_json(response))  # no wait: the cycle stops
        if status == 429 or (self.repeatable and status in RETRY_STATUSES):
            raise _Retry(response, None)
        if 300 <= status < 400:
            location = response.headers.get("Location", "")
            raise UnsafeAnswerError(
                f"{http.service}: {self.method} {redact(self.url)} was redirected "
                f"({status}) to {origin_text(location)}; redirects are not followed",
                service=http.service,
                status=status,
                method=self.method,
                url=redact(self.url),
            )
        if not self.parse or status >= 400:
            return JsonAnswer(response, _lenient_json(response) if self.parse else None)
        try:
            return JsonAnswer(response, self._json(response))
        except ApiError as error:
            raise self._maybe_retry(error) from None

    def _json(self, response: requests.Response) -> Any:
        http = self.http
        where = f"{self.method} {redact(self.url)}"
        kind = response.headers.get("Content-Type", "").lower()
        if "html" in kind:
            raise UnreadableAnswerError(
                f"{http.service}: {where} answered an HTML page (status {response.status_code}), "
                "not JSON (a login page, a proxy, or a hibernating instance?)",
                service=http.service,
                status=response.status_code,
                method=self.method,
                url=redact(self.url),
            )
        try:
            return parse_json(response.content, http.limits, service=http.service, where=where)
        except ValueError:
            raise UnreadableAnswerError(
                f"{http.service}: {where} answered something that is not valid JSON "
                f"({len(response.content):,} bytes; truncated?)",
                service=http.service,
                status=response.status_code,
                method=self.method,
                url=redact(self.url),
            ) from None

    def _maybe_retry(self, error: ApiError) -> Exception:
        """`error` as a retry when its class says so and repeating the request is safe."""
        if meaning(error).retry and self.repeatable:
            return _Retry(None, error)
        if isinstance(error, TransientError) and not self.repeatable:
            return type(error)(
                f"{error}; not repeated because it may have been applied (it is retried in "
                "a later cycle)",
                service=error.service,
                status=error.status,
                method=error.method,
                url=error.url,
            )
        return error


def _read_body(
    response: requests.Response, deadline: float, max_bytes: int, service: str, where: str
) -> None:
    """Read the whole body into the response before the deadline and within the size cap."""
    declared = response.headers.get("Content-Length", "")
    if declared.isdigit() and int(declared) > max_bytes:
        response.close()
        raise _too_big(service, where, int(declared), max_bytes)
    sock = _socket_of(response)
    parts: list[bytes] = []
    size = 0
    try:
        for chunk in _chunks(response, deadline, sock):
            size += len(chunk)
            if size > max_bytes:
                raise _too_big(service, where, size, max_bytes)
            parts.append(chunk)
    except BaseException:
        response.close()  # the connection is in an unknown state: never reuse it
        raise
    # The documented way to hand requests a body read by hand.
    response._content = b"".join(parts)
    response.__dict__["_content_consumed"] = True
    response.raw.release_conn()


def _chunks(response: requests.Response, deadline: float, sock: Any) -> Iterator[bytes]:
    raw = response.raw
    read = getattr(raw, "read1", None) or raw.read
    while True:
        left = deadline - time.monotonic()
        if left <= 0:
            raise requests.exceptions.ReadTimeout("request deadline passed while reading")
        if sock is not None:
            with contextlib.suppress(OSError):
                sock.settimeout(max(0.05, left))
        try:
            chunk = read(CHUNK, decode_content=True)
        except Exception as exc:  # urllib3 errors; requests wraps them the same way
            raise _as_requests_error(exc) from exc
        if not chunk:
            return
        yield chunk


def _as_requests_error(exc: Exception) -> Exception:
    from urllib3.exceptions import ProtocolError, ReadTimeoutError, SSLError

    if isinstance(exc, ReadTimeoutError | TimeoutError):
        return requests.exceptions.ReadTimeout(str(exc))
    if isinstance(exc, SSLError):
        return requests.exceptions.SSLError(str(exc))
    if isinstance(exc, ProtocolError):
        return requests.exceptions.ChunkedEncodingError(str(exc))
    if isinstance(exc, OSError | requests.RequestException):
        return exc
    return requests.exceptions.ChunkedEncodingError(str(exc))


def _socket_of(response: requests.Response) -> Any:
    connection = getattr(response.raw, "connection", None) or getattr(
        response.raw, "_connection", None
    )
    return getattr(connection, "sock", None)


def _timeout(deadline: float) -> tuple[float, float]:
    left = max(0.05, deadline - time.monotonic())
    return (min(left, 30.0), left)


def _too_big(service: str, where: str, size: int, cap: int) -> UnsafeAnswerError:
    return UnsafeAnswerError(
        f"{service}: {where} answered more than limits.max_body_bytes ({cap:,} bytes; "
        f"{size:,} so far); refused",
        service=service,
    )


def _deadline_error(http: HttpClient, method: str, where: str) -> RequestDeadlineError:
    return RequestDeadlineError(
        f"{http.service}: {method} {where} took longer than its {http.timeout_s:g}s deadline "
        f"(connect and whole answer; {http.ca_key.split('.')[0]}.timeout_s); cut off",
        service=http.service,
        method=method,
        url=where,
    )


def _after_attempts(cause: ApiError, attempts: int) -> ApiError:
    error = type(cause)(
        f"{cause} (after {attempts} attempts)",
        service=cause.service,
        status=cause.status,
        code=cause.code,
        method=cause.method,
        url=cause.url,
    )
    return error


def _lenient_json(response: requests.Response) -> Any:
    try:
        return response.json()
    except (ValueError, RecursionError):
        return None


def retry_after_seconds(response: requests.Response | None) -> float | None:
    """Seconds asked for by a Retry-After header (delta-seconds or HTTP date), if any."""
    return None if response is None else retry_after_value(response.headers.get("Retry-After"))


def retry_after_value(value: str | None) -> float | None:
    """Seconds a Retry-After value asks for (delta-seconds or HTTP date), if it is one."""
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        return max(0.0, parsedate_to_datetime(value).timestamp() - time.time())
    except (TypeError, ValueError):
        return None


def describe_failure(exc: Exception | None) -> str:
    """A short phrase for a failed request: DNS, refused, dropped, timed out."""
    return redact(describe_connection_failure(exc))
