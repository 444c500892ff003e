"""Build the Graph and ServiceNow clients a command needs from the config, one HTTP layer each."""

from __future__ import annotations

from dataclasses import dataclass

from snsync.bounds import Limits
from snsync.budget import GRAPH_WINDOW_S, UnitBudget
from snsync.config import BasicAuth, Config
from snsync.graph.auth import GraphTokenProvider
from snsync.graph.client import GraphClient
from snsync.http import HttpClient, RetryPolicy
from snsync.limiter import AdaptiveLimiter
from snsync.redact import register
from snsync.servicenow.client import TableClient


@dataclass
class Connections:
    """The clients of one command run, and their HTTP layers (for request counts)."""

    graph: GraphClient
    servicenow: TableClient
    graph_http: HttpClient
    servicenow_http: HttpClient

    def close(self) -> None:
        self.graph_http.close()
        self.servicenow_http.close()


def register_secrets(config: Config) -> None:
    """Tell the redactor every secret in the config, before anything can log."""
    if config.graph.client_secret is not None:
        register(config.graph.client_secret.get_secret_value())
    auth = config.servicenow.auth
    register(auth.password.get_secret_value())
    if not isinstance(auth, BasicAuth):
        register(auth.client_secret.get_secret_value())


def connect(config: Config, *, read_only: bool, policy: RetryPolicy | None = None) -> Connections:
    """Clients for Graph (always read-only) and ServiceNow (read-only for plan and dry runs)."""
    register_secrets(config)
    limits = Limits(**config.limits.model_dump())
    graph_http = HttpClient(
        service="graph",
        ca_bundle=config.graph.ca_bundle,
        timeout_s=config.graph.timeout_s,
        read_only=True,
        policy=policy,
        origins=(config.graph.graph_url, config.graph.authority_host),
        limits=limits,
        # Graph's resource-unit headers are a queue signal and pace the reads within the
        # budget per app and tenant per 10 s (snsync.budget).
        limiter=AdaptiveLimiter("graph", max_concurrency=16, budget=UnitBudget(GRAPH_WINDOW_S)),
    )
    workers = config.servicenow.max_concurrency
    sn_http = HttpClient(
        service="servicenow",
        ca_bundle=config.servicenow.ca_bundle,
        timeout_s=config.servicenow.timeout_s,
        read_only=read_only,
        policy=policy,
        pool_size=max(16, workers * 2),
        origins=(config.servicenow.instance,),
        limits=limits,
        # Start at the configured concurrency: it is the admin's statement of what the instance
        # serves. The limiter halves on 429/503 and grows back while latency holds. (Starting
        # at 4 and growing by latency never got past 4 once writes went in batches, whose
        # latency is many times a read's: a first sync ran at 2.5x its bound.)
        limiter=AdaptiveLimiter("servicenow", max_concurrency=workers, start=workers),
    )
    tokens = GraphTokenProvider(config.graph, graph_http)
    return Connections(
        GraphClient(config.graph.graph_url, graph_http, tokens),
        TableClient(config.servicenow, sn_http),
        graph_http,
        sn_http,
    )
