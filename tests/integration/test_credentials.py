"""The other credentials end to end: ServiceNow OAuth (password grant) and a Graph certificate."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import NameOID

from snsync.sandbox.demo_instance import DEMO_CLIENT_ID, DEMO_CLIENT_SECRET
from snsync.sandbox.demo_tenant import demo_tenant
from snsync.sandbox.runner import SandboxOptions, start_sandbox

from .conftest import ServiceNowAdmin, Snsync

CERT_CLIENT = "0b5c7d2e-1111-4222-8333-944455556666"


def test_servicenow_oauth_password_grant(snsync: Snsync, tmp_path: Path) -> None:
    secret = tmp_path / "oauth-secret"
    secret.write_text(DEMO_CLIENT_SECRET)
    secret.chmod(0o600)
    snsync.reconfigure(
        servicenow={
            "auth": {
                "type": "oauth",
                "client_id": DEMO_CLIENT_ID,
                "client_secret_file": str(secret),
                "username": "snsync",
                "password_file": str(snsync.sandbox.directory / "servicenow-password.txt"),
            }
        }
    )
    assert snsync("test-connection").exit_code == 0
    assert snsync("run", "--once").exit_code == 0
    assert ServiceNowAdmin(snsync.sandbox).rows("sys_user", "user_name=lee.gu@contoso.example")
    secret.write_text("not-the-secret")
    refused = snsync("run", "--once")
    assert refused.exit_code == 3 and "ServiceNow OAuth token refused" in refused.stderr


def test_graph_certificate_credential(tmp_path: Path) -> None:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "snsync")])
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=1))
        .sign(key, hashes.SHA256())
    )
    cert_pem = cert.public_bytes(serialization.Encoding.PEM).decode()
    tenant = demo_tenant()
    tenant["clients"].append({"client_id": CERT_CLIENT, "certificate_pem": cert_pem})
    fixture = tmp_path / "tenant.json"
    fixture.write_text(json.dumps(tenant))
    key_file = tmp_path / "snsync-key.pem"
    key_file.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    running = start_sandbox(SandboxOptions(tenant=fixture, directory=tmp_path / "sbx"))
    try:
        snsync = Snsync(running, running.config_path)
        thumbprint = cert.fingerprint(hashes.SHA1()).hex()
        config = snsync.config_path.read_text().replace(
            f'  client_id: "{tenant["clients"][0]["client_id"]}"', f'  client_id: "{CERT_CLIENT}"'
        )
        config = "\n".join(line for line in config.splitlines() if "client_secret_file" not in line)
        config = config.replace(
            "graph:\n",
            f'graph:\n  certificate:\n    path: "{key_file}"\n    thumbprint: "{thumbprint}"\n',
            1,
        )
        snsync.config_path.write_text(config)
        result = snsync("test-connection")
        assert result.exit_code == 0, result.output
    finally:
        running.stop()
