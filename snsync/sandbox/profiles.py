"""Named latency profiles for the sandbox (`snsync sandbox --profile lan|cloud`): where the time
of a real sync goes, so that figures measured on the sandbox mean something.

Each request pays a network round trip outside the service (it holds no server thread), then,
on ServiceNow, a fixed server time per request plus server time per row read and per record
written, inside its session and its node's thread; on Graph, a round trip and a server time per
page. The figures are planning estimates (docs/sandbox.md gives them with their sources); none
is a measurement of a particular tenant or instance.
"""

from __future__ import annotations

from dataclasses import dataclass

from snsync.sandbox.servicenow.costs import ServerCosts


@dataclass(frozen=True)
class SandboxProfile:
    """The latency model of both services."""

    name: str
    servicenow_network_ms: float  # round trip client <-> instance, outside the server's slot
    servicenow_request_ms: float  # fixed server time per request (auth, session, transaction)
    servicenow_costs: ServerCosts  # per row read, per record written
    graph_network_ms: float  # round trip client <-> Graph
    graph_page_ms: float  # Graph's server time per request (a page, a token, a batch)


PROFILES: dict[str, SandboxProfile] = {
    profile.name: profile
    for profile in (
        # snsync next to the instance (same region, a private link): milliseconds of network.
        SandboxProfile(
            "lan",
            servicenow_network_ms=1.0,
            servicenow_request_ms=15.0,
            servicenow_costs=ServerCosts(
                row_read_ms=0.05,
                user_insert_ms=80.0,
                insert_ms=15.0,
                user_update_ms=40.0,
                update_ms=10.0,
                delete_ms=10.0,
            ),
            graph_network_ms=2.0,
            graph_page_ms=60.0,
        ),
        # snsync in a customer's cloud or data centre, the instance in ServiceNow's, over the
        # internet: the setting of most installations and what `make bench` should measure.
        SandboxProfile(
            "cloud",
            servicenow_network_ms=40.0,
            servicenow_request_ms=30.0,
            servicenow_costs=ServerCosts(
                row_read_ms=0.15,
                user_insert_ms=200.0,
                insert_ms=40.0,
                user_update_ms=100.0,
                update_ms=30.0,
                delete_ms=30.0,
            ),
            graph_network_ms=30.0,
            graph_page_ms=120.0,
        ),
    )
}
