"""Where the benchmark's sandboxes run: in a child process (the default, so that the servers do
not share the measured process's interpreter lock, CPU or memory figures) or in threads of the
benchmark process itself (quick, for tests). Either way a `Sandbox` handle drives one of them."""

from __future__ import annotations

import multiprocessing
import threading
from dataclasses import dataclass, field
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any, Protocol

from benchmarks.bound import LatencyProfile
from benchmarks.endpoints import EndpointCounter, difference
from snsync.sandbox.runner import RunningSandbox, SandboxOptions, start_sandbox


@dataclass(frozen=True)
class SandboxSetup:
    """The fixtures, folder and latency profile of one sandbox."""

    tenant: Path
    instance: Path
    directory: Path
    profile: LatencyProfile


@dataclass(frozen=True)
class ServerCounts:
    """What the sandbox's servers saw (cumulative since the sandbox started)."""

    graph_requests: int = 0
    servicenow_requests: int = 0
    servicenow_by_method: dict[str, int] = field(default_factory=dict)
    servicenow_writes: int = 0  # successful writes, as the instance counts them
    sys_user_rows: int = 0
    group_rows: int = 0
    membership_rows: int = 0
    graph_endpoints: dict[str, int] = field(default_factory=dict)
    servicenow_endpoints: dict[str, int] = field(default_factory=dict)

    def since(self, before: ServerCounts) -> ServerCounts:
        """The requests made between `before` and this count (rows as they are now)."""
        methods = {
            m: n - before.servicenow_by_method.get(m, 0)
            for m, n in self.servicenow_by_method.items()
            if n != before.servicenow_by_method.get(m, 0)
        }
        return ServerCounts(
            self.graph_requests - before.graph_requests,
            self.servicenow_requests - before.servicenow_requests,
            methods,
            self.servicenow_writes - before.servicenow_writes,
            self.sys_user_rows,
            self.group_rows,
            self.membership_rows,
            difference(self.graph_endpoints, before.graph_endpoints),
            difference(self.servicenow_endpoints, before.servicenow_endpoints),
        )


class _Registry:
    """The sandboxes of the process that serves them, by key."""

    def __init__(self) -> None:
        self._running: dict[int, RunningSandbox] = {}
        self._counters: dict[int, tuple[EndpointCounter, EndpointCounter]] = {}
        self._stopping: list[threading.Thread] = []

    def start(self, setup: SandboxSetup) -> tuple[int, dict[str, Any]]:
        options = SandboxOptions(
            tenant=setup.tenant,
            instance=setup.instance,
            directory=setup.directory,
            retry_after=1,
            servicenow_max_concurrent=setup.profile.cap,
            servicenow_queue=setup.profile.queue,
            serialize_sessions=setup.profile.serialize_sessions,
            graph_resource_units=setup.profile.graph_resource_units,
            profile=setup.profile.sandbox_profile or None,
        )
        running = start_sandbox(options)
        key = len(self._running) + 1
        while key in self._running:
            key += 1
        self._running[key] = running
        graph, servicenow = (
            EndpointCounter(running.graph.app),
            EndpointCounter(running.servicenow.app),
        )
        running.graph.app, running.servicenow.app = graph, servicenow
        self._counters[key] = (graph, servicenow)
        self.set_latency(key, setup.profile)
        return key, dict(running.info)

    def set_latency(self, key: int, profile: LatencyProfile) -> None:
        # ServiceNow's latency is spent holding a concurrency slot; Graph's before the app runs.
        running = self._running[key]
        if profile.sandbox_profile is not None:  # lan, cloud: a latency model of the sandbox's own
            running.set_profile(profile.sandbox_profile or None)  # "": quiet (setup steps)
            return
        running.servicenow_app.set_concurrency_latency(profile.servicenow_ms)
        running.graph.latency_ms = profile.graph_ms
        running.servicenow.latency_ms = 0.0

    def counts(self, key: int) -> ServerCounts:
        running = self._running[key]
        return ServerCounts(
            graph_requests=running.graph.stats.requests,
            servicenow_requests=running.servicenow.stats.requests,
            servicenow_by_method=dict(running.servicenow.stats.by_method),
            servicenow_writes=running.servicenow_app.write_count(),
            sys_user_rows=running.servicenow_app.row_count("sys_user"),
            group_rows=running.servicenow_app.row_count("sys_user_group"),
            membership_rows=running.servicenow_app.row_count("sys_user_grmember"),
            graph_endpoints=self._counters[key][0].counts(),
            servicenow_endpoints=self._counters[key][1].counts(),
        )

    def stop(self, key: int) -> None:
        # A server takes up to half a second to notice it should stop: let it, in the background.
        self._counters.pop(key, None)
        stopping = threading.Thread(target=self._running.pop(key).stop, daemon=True)
        stopping.start()
        self._stopping.append(stopping)

    def stop_all(self, wait: bool = True) -> None:
        for key in list(self._running):
            self.stop(key)
        for stopping in self._stopping if wait else ():
            stopping.join(timeout=10)
        self._stopping.clear()


class Host(Protocol):
    """Runs registry calls somewhere."""

    def call(self, name: str, *args: Any) -> Any:
        """Call a `_Registry` method by name."""
        ...

    def close(self) -> None:
        """Stop every sandbox (and the process serving them)."""
        ...


class ThreadHost:
    """Sandboxes served by threads of this process."""

    def __init__(self) -> None:
        self._registry = _Registry()

    def call(self, name: str, *args: Any) -> Any:
        """Call the registry directly."""
        return getattr(self._registry, name)(*args)

    def close(self) -> None:
        """Stop every sandbox (their listeners finish closing in the background)."""
        self._registry.stop_all(wait=False)


class ProcessHost:
    """Sandboxes served by one child process, driven over a pipe."""

    def __init__(self) -> None:
        context = multiprocessing.get_context("spawn")
        self._conn, child = context.Pipe()
        self._process = context.Process(
            target=_serve, args=(child,), name="bench-sandbox", daemon=True
        )
        self._process.start()
        child.close()

    def call(self, name: str, *args: Any) -> Any:
        """Send one call to the child and wait for its answer."""
        self._conn.send((name, args))
        status, value = self._conn.recv()
        if status != "ok":
            raise RuntimeError(f"sandbox process: {name} failed: {value}")
        return value

    def close(self) -> None:
        """Stop every sandbox and the child process."""
        if self._process.is_alive():
            self._conn.send(("close", ()))
            self._process.join(timeout=10)
        self._conn.close()


def _serve(conn: Connection) -> None:
    """The child process: answer registry calls until told to close."""
    registry = _Registry()
    try:
        while True:
            try:
                name, args = conn.recv()
            except EOFError:
                return
            if name == "close":
                return
            try:
                conn.send(("ok", getattr(registry, name)(*args)))
            except Exception as exc:
                conn.send(("error", f"{type(exc).__name__}: {exc}"))
    finally:
        registry.stop_all()


def make_host(mode: str) -> Host:
    """A host for `mode` ("process" or "thread")."""
    if mode == "thread":
        return ThreadHost()
    if mode == "process":
        return ProcessHost()
    raise ValueError(f"unknown sandbox mode {mode!r}")


class Sandbox:
    """A handle on one started sandbox."""

    def __init__(self, host: Host, setup: SandboxSetup) -> None:
        self._host = host
        self.key, self.info = host.call("start", setup)
        self.directory = setup.directory
        self.profile = setup.profile

    @property
    def config_path(self) -> Path:
        return self.directory / "config.yaml"

    def counts(self) -> ServerCounts:
        """The servers' counters now."""
        counts: ServerCounts = self._host.call("counts", self.key)
        return counts

    def set_latency(self, profile: LatencyProfile) -> None:
        """Change the latency profile (setup steps run without latency)."""
        self._host.call("set_latency", self.key, profile)

    def stop(self) -> None:
        """Stop both servers."""
        self._host.call("stop", self.key)
