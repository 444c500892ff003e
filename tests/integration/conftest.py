"""Integration fixtures: a fresh sandbox per test, snsync's CLI run against it, and admin helpers
that change the tenant and the instance through the services' own HTTP APIs."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import msal
import pytest
import requests
import yaml
from click.testing import CliRunner, Result

from snsync.cli import cli
from snsync.sandbox.demo_instance import DEMO_PASSWORD
from snsync.sandbox.runner import RunningSandbox, SandboxOptions, start_sandbox


@pytest.fixture
def sandbox(tmp_path: Path) -> Iterator[RunningSandbox]:
    """The demo tenant and instance, served over HTTPS on loopback for one test."""
    running = start_sandbox(SandboxOptions(directory=tmp_path / "sandbox", retry_after=0))
    yield running
    running.stop()


@dataclass
class Snsync:
    """Runs snsync commands against a sandbox, in-process, through real sockets."""

    sandbox: RunningSandbox
    config_path: Path

    def __call__(self, *args: str) -> Result:
        runner = CliRunner()
        return runner.invoke(
            cli, ["--config", str(self.config_path), *args], catch_exceptions=False
        )

    def json(self, *args: str) -> Any:
        result = self(*args, "--output", "json")
        return json.loads(result.stdout)

    def reconfigure(self, **sections: Any) -> None:
        """Merge sections into the config file (e.g. mappings=..., safety=...)."""
        data = yaml.safe_load(self.config_path.read_text())
        for key, value in sections.items():
            data[key] = {**data.get(key, {}), **value} if isinstance(value, dict) else value
        self.config_path.write_text(yaml.safe_dump(data))


@pytest.fixture
def snsync(sandbox: RunningSandbox) -> Snsync:
    return Snsync(sandbox, sandbox.config_path)


class GraphAdmin:
    """Changes the sandbox tenant the way an Azure admin would: through Graph's write API."""

    def __init__(self, sandbox: RunningSandbox) -> None:
        info = sandbox.info
        self.base = f"{info['graph_url']}/v1.0"
        self.verify = info["ca_pem"]
        self.sp_id = info["service_principal_id"]
        session = _VerifyingSession(self.verify)
        app = msal.ConfidentialClientApplication(
            info["client_id"],
            client_credential=info["client_secret"],
            authority=f"{info['authority_host']}/{info['tenant_id']}",
            instance_discovery=False,
            http_client=session,
        )
        token = app.acquire_token_for_client(scopes=[f"{info['graph_url']}/.default"])
        self.headers = {"Authorization": f"Bearer {token['access_token']}"}

    def call(self, method: str, path: str, body: Any = None, ok: int = 200) -> Any:
        response = requests.request(
            method,
            f"{self.base}/{path}",
            json=body,
            headers=self.headers,
            verify=self.verify,
            timeout=10,
        )
        assert response.status_code < 300, (response.status_code, response.text)
        return response.json() if response.content else None

    def user(self, upn: str) -> dict[str, Any]:
        return dict(self.call("GET", f"users/{upn}"))

    def create_user(self, nickname: str, **extra: Any) -> dict[str, Any]:
        body = {
            "accountEnabled": True,
            "displayName": nickname.title(),
            "mailNickname": nickname,
            "userPrincipalName": f"{nickname}@contoso.example",
            "passwordProfile": {"password": "Pa55word!x"},
            **extra,
        }
        return dict(self.call("POST", "users", body))

    def assign(
        self, principal_id: str, role_id: str = "00000000-0000-0000-0000-000000000000"
    ) -> str:
        body = {"principalId": principal_id, "resourceId": self.sp_id, "appRoleId": role_id}
        return str(
            self.call("POST", f"servicePrincipals/{self.sp_id}/appRoleAssignedTo", body)["id"]
        )

    def assignments(self) -> list[dict[str, Any]]:
        return list(self.call("GET", f"servicePrincipals/{self.sp_id}/appRoleAssignedTo")["value"])

    def unassign(self, principal_id: str) -> None:
        for a in self.assignments():
            if a["principalId"] == principal_id:
                self.call("DELETE", f"servicePrincipals/{self.sp_id}/appRoleAssignedTo/{a['id']}")


class _VerifyingSession(requests.Session):
    def __init__(self, verify: str) -> None:
        super().__init__()
        self._verify = verify

    def request(self, method: str, url: str, *args: Any, **kwargs: Any) -> requests.Response:  # type: ignore[override]
        kwargs["verify"] = self._verify
        return super().request(method, url, *args, **kwargs)


class ServiceNowAdmin:
    """Reads and changes the sandbox instance as its admin, through the Table API."""

    def __init__(self, sandbox: RunningSandbox) -> None:
        self.base = sandbox.info["servicenow_url"]
        self.verify = sandbox.info["ca_pem"]
        self.auth = ("admin", DEMO_PASSWORD)

    def rows(self, table: str, query: str = "") -> list[dict[str, str]]:
        response = requests.get(
            f"{self.base}/api/now/table/{table}",
            params={"sysparm_query": query, "sysparm_exclude_reference_link": "true"},
            auth=self.auth,
            verify=self.verify,
            timeout=10,
        )
        assert response.status_code == 200, response.text
        return list(response.json()["result"])

    def one(self, table: str, query: str) -> dict[str, str]:
        rows = self.rows(table, query)
        assert len(rows) == 1, (query, rows)
        return rows[0]

    def insert(self, table: str, values: dict[str, str]) -> dict[str, str]:
        response = requests.post(
            f"{self.base}/api/now/table/{table}",
            json=values,
            auth=self.auth,
            verify=self.verify,
            timeout=10,
        )
        assert response.status_code == 201, response.text
        return dict(response.json()["result"])

    def update(self, table: str, sys_id: str, values: dict[str, str]) -> None:
        response = requests.patch(
            f"{self.base}/api/now/table/{table}/{sys_id}",
            json=values,
            auth=self.auth,
            verify=self.verify,
            timeout=10,
        )
        assert response.status_code == 200, response.text


@pytest.fixture
def graph_admin(sandbox: RunningSandbox) -> GraphAdmin:
    return GraphAdmin(sandbox)


@pytest.fixture
def sn_admin(sandbox: RunningSandbox) -> ServiceNowAdmin:
    return ServiceNowAdmin(sandbox)
