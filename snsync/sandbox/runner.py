"""Start the whole sandbox (token service + Graph on one port, ServiceNow on another) and write
what a client needs to reach it: the CA file, a ready config.yaml and sandbox.json."""

from __future__ import annotations

import json
import signal
import tempfile
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from snsync.sandbox.demo_instance import demo_instance
from snsync.sandbox.demo_tenant import demo_tenant
from snsync.sandbox.graph import GraphApp, GraphOptions, load_tenant_file
from snsync.sandbox.graph_settings import DEFAULT_DELTA_LINK_LIFETIME_S, DEFAULT_RESOURCE_UNITS
from snsync.sandbox.options import DEFAULT_CONCURRENCY, DEFAULT_QUEUE, DEFAULT_URL_LIMIT
from snsync.sandbox.profiles import PROFILES
from snsync.sandbox.server import FaultPlan, SandboxServer
from snsync.sandbox.servicenow import ServiceNowApp, load_instance_file
from snsync.sandbox.servicenow.costs import ServerCosts
from snsync.sandbox.tls import create_tls

SN_ACCOUNT = "snsync"


@dataclass(frozen=True)
class SandboxOptions:
    """What `snsync sandbox` was asked for."""

    tenant: Path | None = None
    instance: Path | None = None
    directory: Path | None = None
    host: str = "127.0.0.1"
    graph_port: int = 0
    servicenow_port: int = 0
    latency_ms: float = 0.0
    fault_rate: float = 0.0
    seed: int = 0
    retry_after: int = 1
    servicenow_rate_limit: int | None = None
    servicenow_max_concurrent: int | None = DEFAULT_CONCURRENCY
    servicenow_latency_ms: float = 0.0
    # Graph side (docs/sandbox-graph.md, "Realism"): delta link lifetime, the status of an
    # expired link (400 or 410), resource units per app and tenant per 10 s (0 = off).
    delta_link_lifetime_s: int = DEFAULT_DELTA_LINK_LIFETIME_S
    delta_expired_status: int = 400
    graph_resource_units: int = DEFAULT_RESOURCE_UNITS
    graph_resource_window_s: float = 10.0  # Graph's window; shorter only for fast tests
    servicenow_queue: int | None = DEFAULT_QUEUE
    serialize_sessions: bool = True
    servicenow_url_limit: int = DEFAULT_URL_LIMIT
    profile: str | None = None  # a latency profile of snsync.sandbox.profiles (lan, cloud)


@dataclass
class RunningSandbox:
    """A started sandbox: its servers, apps and the files written for clients."""

    graph: SandboxServer
    servicenow: SandboxServer
    graph_app: GraphApp
    servicenow_app: ServiceNowApp
    directory: Path
    info: dict[str, Any]
    options: SandboxOptions = field(default_factory=SandboxOptions)
    _stopped: threading.Event = field(default_factory=threading.Event)

    def set_profile(self, name: str | None) -> None:
        """Apply a latency profile (on top of the options' own latencies); None: those only."""
        chosen = PROFILES[name] if name else None
        base = self.options
        self.graph.latency_ms = base.latency_ms + (chosen.graph_network_ms if chosen else 0.0)
        self.graph.service_ms = chosen.graph_page_ms if chosen else 0.0
        network = chosen.servicenow_network_ms if chosen else 0.0
        self.servicenow.latency_ms = base.latency_ms + network
        request = chosen.servicenow_request_ms if chosen else 0.0
        self.servicenow_app.set_concurrency_latency(base.servicenow_latency_ms + request)
        self.servicenow_app.set_costs(chosen.servicenow_costs if chosen else ServerCosts())

    @property
    def config_path(self) -> Path:
        return self.directory / "config.yaml"

    def wait(self) -> None:
        """Block until SIGINT/SIGTERM or stop()."""
        for sig in (signal.SIGINT, signal.SIGTERM):
            signal.signal(sig, lambda *_: self._stopped.set())
        while not self._stopped.wait(0.5):
            pass

    def stop(self) -> None:
        self._stopped.set()
        self.graph.stop()
        self.servicenow.stop()


def start_sandbox(options: SandboxOptions) -> RunningSandbox:
    """Start both services over HTTPS and write ca.pem, config.yaml and sandbox.json."""
    tenant = load_tenant_file(options.tenant) if options.tenant else demo_tenant()
    instance = load_instance_file(options.instance) if options.instance else demo_instance()
    directory = options.directory or Path(tempfile.mkdtemp(prefix="snsync-sandbox-"))
    directory.mkdir(parents=True, exist_ok=True)
    directory = directory.resolve()
    tls = create_tls(directory / "tls", hosts=(options.host,))
    graph_app = GraphApp(tenant, options=graph_options(options))
    sn_app = ServiceNowApp(
        instance,
        rate_limit_per_hour=options.servicenow_rate_limit,
        max_concurrent=options.servicenow_max_concurrent,
        queue=options.servicenow_queue,
        serialize_sessions=options.serialize_sessions,
        url_limit_bytes=options.servicenow_url_limit,
    )

    def faults(offset: int) -> FaultPlan:
        return FaultPlan(options.fault_rate, options.seed + offset, options.retry_after)

    graph = SandboxServer(
        graph_app,
        tls,
        host=options.host,
        port=options.graph_port,
        faults=faults(0),
    ).start()
    servicenow = SandboxServer(
        sn_app,
        tls,
        host=options.host,
        port=options.servicenow_port,
        faults=faults(1),
    ).start()
    ca = directory / "ca.pem"
    ca.write_bytes(tls.ca_pem.read_bytes())
    info = _info(tenant, instance, graph.base_url, servicenow.base_url, ca)
    _write_files(directory, info)
    running = RunningSandbox(graph, servicenow, graph_app, sn_app, directory, info, options)
    running.set_profile(options.profile)
    return running


def graph_options(options: SandboxOptions) -> GraphOptions:
    """The Graph behaviours a `SandboxOptions` asks for."""
    return GraphOptions(
        delta_token_ttl_s=options.delta_link_lifetime_s,
        delta_expired_status=options.delta_expired_status,
        resource_units=options.graph_resource_units or None,
        resource_window_s=options.graph_resource_window_s,
    )


def _info(
    tenant: dict[str, Any], instance: dict[str, Any], graph_url: str, sn_url: str, ca: Path
) -> dict[str, Any]:
    client = tenant["clients"][0]
    account = next(
        (a for a in instance["accounts"] if a["user_name"] == SN_ACCOUNT), instance["accounts"][0]
    )
    return {
        "graph_url": graph_url,
        "authority_host": graph_url,
        "tenant_id": tenant["tenant_id"],
        "client_id": client["client_id"],
        "client_secret": client.get("client_secret", ""),
        "app_id": tenant["service_principal"]["appId"],
        "service_principal_id": tenant["service_principal"]["id"],
        "servicenow_url": sn_url,
        "servicenow_username": account["user_name"],
        "servicenow_password": account["password"],
        "ca_pem": str(ca),
    }


def _write_files(directory: Path, info: dict[str, Any]) -> None:
    secret_file = directory / "graph-client-secret.txt"
    password_file = directory / "servicenow-password.txt"
    for path, value in (
        (secret_file, info["client_secret"]),
        (password_file, info["servicenow_password"]),
    ):
        path.write_text(value + "\n", encoding="utf-8")
        path.chmod(0o600)
    sandbox_json = directory / "sandbox.json"
    sandbox_json.write_text(json.dumps(info, indent=2) + "\n", encoding="utf-8")
    sandbox_json.chmod(0o600)
    config = f"""# Written by `snsync sandbox`: points snsync at the local sandbox.
graph:
  tenant_id: "{info["tenant_id"]}"
  client_id: "{info["client_id"]}"
  client_secret_file: "{secret_file}"
  app_id: "{info["app_id"]}"
  authority_host: "{info["authority_host"]}"
  graph_url: "{info["graph_url"]}"
  ca_bundle: "{info["ca_pem"]}"
servicenow:
  instance: "{info["servicenow_url"]}"
  auth:
    type: basic
    username: "{info["servicenow_username"]}"
    password_file: "{password_file}"
  ca_bundle: "{info["ca_pem"]}"
state:
  path: "{directory / "state.db"}"
"""
    (directory / "config.yaml").write_text(config, encoding="utf-8")
