"""The one HTTP layer: a requests session with TLS verification pinned per request, timeouts,
a User-Agent, one retry policy (tenacity, honouring Retry-After) and a read-only switch that makes
`snsync plan` unable to write, enforced here rather than by convention."""

from __future__ import annotations

import random
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from email.utils import parsedate_to_datetime
from pathlib import Path
from typing import Any

import requests
from requests.adapters import HTTPAdapter
from tenacity import RetryCallState, Retrying, retry_if_exception_type, stop_after_attempt

from snsync import __version__
from snsync.errors import TransientError, WriteBlockedError
from snsync.redact import redact

USER_AGENT = f"snsync/{__version__}"
RETRY_STATUSES = frozenset({429, 502, 503, 504})
IDEMPOTENT = frozenset({"GET", "HEAD", "OPTIONS", "PUT", "PATCH", "DELETE"})
READS = frozenset({"GET", "HEAD", "OPTIONS"})


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

    def count(self, method: str) -> None:
        with self._lock:
            if method in READS:
                self.reads += 1
            else:
                self.writes += 1

    def count_retry(self) -> None:
        with self._lock:
            self.retries += 1

    @property
    def total(self) -> int:
        return self.reads + self.writes


class _Retry(Exception):
    """Internal: this attempt should be repeated."""

    def __init__(self, response: requests.Response | None, cause: Exception | None) -> None:
        super().__init__("retry")
        self.response = response
        self.cause = cause


class HttpClient:
    """A pooled HTTPS session for one service, with the project's TLS, retry and safety rules."""

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
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.service = service
        # requests lets REQUESTS_CA_BUNDLE/CURL_CA_BUNDLE override Session.verify, so the CA file
        # is passed as verify= on every single request instead (psf/requests#3829).
        self.verify: str | bool = str(ca_bundle) if ca_bundle else True
        self.timeout_s = timeout_s
        self.read_only = read_only
        self.policy = policy or RetryPolicy()
        self.counter = counter or RequestCounter()
        self._sleep = sleep
        self.session = requests.Session()
        self.session.trust_env = False  # no proxy or netrc surprises from the environment
        adapter = HTTPAdapter(pool_connections=4, pool_maxsize=pool_size)
        self.session.mount("https://", adapter)
        self.session.headers["User-Agent"] = USER_AGENT

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
        method = method.upper()
        if not url.lower().startswith("https://"):
            raise TransientError(
                f"refusing to send {method} to a non-https URL", service=self.service, url=url
            )
        if self.read_only and method not in READS and not is_read:
            raise WriteBlockedError(
                f"{self.service}: {method} {redact(url)} blocked: this run is read-only "
                "(plan or dry run)"
            )
        repeatable = safe_to_repeat if safe_to_repeat is not None else method in IDEMPOTENT
        kwargs: dict[str, Any] = {
            "params": params,
            "json": json,
            "data": data,
            "headers": headers,
            "auth": auth,
            "timeout": self.timeout_s,
            "verify": self.verify,
        }
        retrying = Retrying(
            stop=stop_after_attempt(self.policy.attempts),
            wait=self._wait,
            retry=retry_if_exception_type(_Retry),
            sleep=self._sleep,
            before_sleep=lambda _state: self.counter.count_retry(),
            reraise=True,
        )
        try:
            return retrying(self._attempt, method, url, repeatable, kwargs)
        except _Retry as final:
            if final.response is not None:
                return final.response
            raise TransientError(
                f"{self.service}: {method} {redact(url)} failed after "
                f"{self.policy.attempts} attempts: {describe_failure(final.cause)}",
                service=self.service,
                method=method,
                url=redact(url),
            ) from None

    def _attempt(
        self, method: str, url: str, repeatable: bool, kwargs: dict[str, Any]
    ) -> requests.Response:
        self.counter.count(method)
        try:
            response = self.session.request(method, url, **kwargs)
        except requests.exceptions.SSLError:
            raise  # a TLS failure does not get better by asking again
        except (requests.ConnectionError, requests.Timeout) as exc:
            if repeatable:
                raise _Retry(None, exc) from exc
            raise TransientError(
                f"{self.service}: {method} {redact(url)}: {describe_failure(exc)}; not repeated "
                "because it may have been applied (it is retried in a later cycle)",
                service=self.service,
                method=method,
                url=redact(url),
            ) from None
        if response.status_code == 429 or (repeatable and response.status_code in RETRY_STATUSES):
            raise _Retry(response, None)
        return response

    def _wait(self, state: RetryCallState) -> float:
        outcome = state.outcome
        error = outcome.exception() if outcome else None
        hinted = retry_after_seconds(error.response) if isinstance(error, _Retry) else None
        if hinted is not None:
            return min(hinted, self.policy.retry_after_cap_s)
        backoff: float = self.policy.base_s * (2.0 ** (state.attempt_number - 1))
        return min(self.policy.cap_s, backoff) * random.uniform(0.5, 1.0)

    def close(self) -> None:
        self.session.close()


def retry_after_seconds(response: requests.Response | None) -> float | None:
    """Seconds asked for by a Retry-After header (delta-seconds or HTTP date), if any."""
    if response is None:
        return None
    value = response.headers.get("Retry-After")
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
    if exc is None:
        return "no answer"
    if isinstance(exc, requests.Timeout):
        return "timed out"
    text = str(exc)
    if "Name or service not known" in text or "nodename nor servname" in text:
        return "host name not found (DNS)"
    if "Connection refused" in text:
        return "connection refused"
    if "RemoteDisconnected" in text or "Connection aborted" in text:
        return "connection dropped by the server"
    return redact(text.splitlines()[0] if text else type(exc).__name__)
