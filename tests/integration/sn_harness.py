"""A small harness for sandbox ServiceNow tests: one HTTPS listener per module, a fresh app per
test, a settable clock, and calls that pass `verify=` every time."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import pytest
import requests

from snsync.sandbox.demo_instance import DEMO_PASSWORD, demo_instance
from snsync.sandbox.server import SandboxServer
from snsync.sandbox.servicenow import ServiceNowApp
from snsync.sandbox.tls import SandboxTls

SNSYNC = ("snsync", DEMO_PASSWORD)
ADMIN = ("admin", DEMO_PASSWORD)
START = datetime(2025, 3, 4, 10, 15, 0, tzinfo=UTC)


@dataclass
class Clock:
    """A settable clock for the app."""

    now: datetime = START

    def __call__(self) -> datetime:
        return self.now


@dataclass
class Instance:
    """A running sandbox instance and a way to call it."""

    app: ServiceNowApp
    server: SandboxServer
    ca: str
    clock: Clock
    session: requests.Session = field(default_factory=requests.Session)

    @property
    def base_url(self) -> str:
        return self.server.base_url

    def call(
        self, method: str, path: str, *, auth: Any = SNSYNC, **kwargs: Any
    ) -> requests.Response:
        """One request; verify= on every call (REQUESTS_CA_BUNDLE would win otherwise)."""
        return self.session.request(
            method, self.base_url + path, auth=auth, verify=self.ca, timeout=30, **kwargs
        )

    def get(self, path: str, **kwargs: Any) -> requests.Response:
        return self.call("GET", path, **kwargs)

    def result(self, path: str, **kwargs: Any) -> Any:
        response = self.get(path, **kwargs)
        assert response.status_code == 200, response.text
        return response.json()["result"]


Launch = Callable[..., Instance]


def serve(sandbox_tls: SandboxTls) -> Iterator[SandboxServer]:
    """The body of a module-scoped listener fixture."""
    running = SandboxServer(ServiceNowApp(demo_instance()), sandbox_tls).start()
    yield running
    running.stop()


def launcher(server: SandboxServer, sandbox_tls: SandboxTls) -> Iterator[Launch]:
    """The body of a per-test fixture that plugs a fresh app into the listener."""
    sessions: list[requests.Session] = []

    def launch(fixture: dict[str, Any] | None = None, **options: Any) -> Instance:
        clock = Clock()
        app = ServiceNowApp(fixture or demo_instance(), clock=clock, **options)
        server.app = app
        server.stats.reset()
        instance = Instance(app, server, str(sandbox_tls.ca_pem), clock)
        sessions.append(instance.session)
        return instance

    yield launch
    for session in sessions:
        session.close()


def listener_fixtures() -> tuple[Any, Any]:
    """A module's `server` and `start` fixtures."""

    @pytest.fixture(scope="module")
    def server(sandbox_tls: SandboxTls) -> Iterator[SandboxServer]:
        yield from serve(sandbox_tls)

    @pytest.fixture
    def start(server: SandboxServer, sandbox_tls: SandboxTls) -> Iterator[Launch]:
        yield from launcher(server, sandbox_tls)

    return server, start
