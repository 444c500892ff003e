"""Checks of the local machine before a command starts (CA files, the state folder, the sandbox's
host, port and folder), and failures of the environment (TLS, sockets, files) turned into one line
that names the key or option and says what to do."""

from __future__ import annotations

import errno
import ipaddress
import os
import pwd
import socket
import ssl
from collections.abc import Iterable
from pathlib import Path
from urllib.parse import urlsplit

import requests

from snsync.config import Config
from snsync.errors import ApiError, ConfigError, LocalFileError, SnsyncError
from snsync.http import describe_failure

LOOPBACK_NAMES = frozenset({"localhost", "localhost.localdomain"})


def check_ca_files(config: Config) -> None:
    """Every configured CA file holds at least one PEM certificate (else exit 2 naming the key)."""
    for key, path in _ca_files(config):
        try:
            ssl.create_default_context(cafile=str(path))
        except ssl.SSLError as exc:
            raise ConfigError(
                f"{key}: '{path}' holds no usable PEM certificate ({exc.reason or exc}); point it "
                "at the CA certificate in PEM form (a text file starting with "
                "'-----BEGIN CERTIFICATE-----')"
            ) from None
        except OSError as exc:
            raise ConfigError(f"{key}: cannot read '{path}': {exc.strerror}") from None


def prepare_state_folder(path: Path) -> None:
    """The folder of state.path exists (created 0700 if not) and this account can write there."""
    folder = path.parent
    blocker = next((p for p in (folder, *folder.parents) if p.exists() and not p.is_dir()), None)
    if blocker is not None:
        raise LocalFileError(
            f"state.path: '{blocker}' is a file, not a folder, so '{path}' cannot be created; "
            "choose another state.path"
        )
    if not folder.is_dir():
        try:
            folder.mkdir(parents=True, mode=0o700)
        except OSError as exc:
            raise LocalFileError(
                f"state.path: cannot create the folder '{folder}' ({exc.strerror}); create it for "
                f"the account that runs snsync (install -d -m 700 -o {_user()} '{folder}') or "
                "choose another state.path"
            ) from None
    for target in (folder, path, path.with_name(path.name + ".lock")):
        # A file that is not there (or just went, as SQLite's -wal does) is the folder's case.
        if not os.access(target, os.W_OK) and target.exists():
            raise LocalFileError(
                f"state.path: '{target}' is not writable by {_user()}; give that account write "
                f"access (chown {_user()} '{target}') or choose another state.path"
            )


def local_file_error(exc: OSError, what: str) -> LocalFileError:
    """An OSError on a local file as one line: `what` names the key or option."""
    name = f" '{exc.filename}'" if exc.filename else ""
    return LocalFileError(
        f"{what}: cannot write{name}: {exc.strerror or exc}; check the folder exists and the "
        f"account that runs snsync ({_user()}) may write there"
    )


def check_sandbox_options(host: str, directory: Path | None) -> None:
    """The sandbox serves loopback only (its credentials are public) into a folder it can write."""
    if not _is_loopback(host):
        raise ConfigError(
            f"--host {host}: the sandbox serves only loopback addresses (127.0.0.1, ::1, "
            "localhost): its credentials and CA key are public test data; use --host 127.0.0.1"
        )
    if directory is None:
        return
    existing = next((p for p in (directory, *directory.parents) if p.exists()), Path("/"))
    if not existing.is_dir():
        raise LocalFileError(f"--dir: '{existing}' is a file, not a folder; choose another --dir")
    if not os.access(existing, os.W_OK):
        raise LocalFileError(
            f"--dir: '{existing}' is not writable by {_user()}; choose a folder you can write"
        )


def sandbox_start_error(exc: OSError, host: str, ports: dict[str, int]) -> SnsyncError:
    """Why `snsync sandbox` could not start, naming the option."""
    if exc.errno == errno.EADDRINUSE:
        busy = [f"{option} {port}" for option, port in ports.items() if _port_busy(host, port)]
        named = " and ".join(busy) or " / ".join(ports)
        return ConfigError(
            f"{named}: the port is in use by another program on {host}; choose another port, "
            "or 0 for any free one"
        )
    if exc.errno == errno.EADDRNOTAVAIL:
        return ConfigError(f"--host {host}: no such address on this machine; use 127.0.0.1")
    return local_file_error(exc, "--dir")


def request_error(exc: requests.RequestException, config: Config | None) -> ApiError:
    """A request that failed below HTTP (TLS, DNS, connection), as one line naming the endpoint's
    key and, for TLS, the CA file to fix. Exit 3."""
    url = exc.request.url if exc.request is not None and exc.request.url else ""
    origin = _origin(str(url))
    service, ca_key, ca_file = _endpoint(origin, config)
    if isinstance(exc, requests.exceptions.SSLError):
        trusted = f"the CAs in {ca_key} ('{ca_file}')" if ca_file else "the system's CAs"
        return ApiError(
            f"TLS to {origin or 'the server'} failed ({_tls_reason(exc)}): its certificate is not "
            f"signed by {trusted}; set {ca_key} to the PEM file of the CA that signed it (for a "
            "TLS-inspecting proxy, the proxy's CA)",
            service=service,
        )
    return ApiError(
        f"cannot connect to {origin or 'the server'}: {describe_failure(exc)}; run snsync "
        "test-connection for the check that fails",
        service=service,
    )


def _ca_files(config: Config) -> Iterable[tuple[str, Path]]:
    for key, path in (
        ("graph.ca_bundle", config.graph.ca_bundle),
        ("servicenow.ca_bundle", config.servicenow.ca_bundle),
    ):
        if path is not None:
            yield key, Path(path)


def _endpoint(origin: str, config: Config | None) -> tuple[str, str, Path | None]:
    if config is not None:
        sn = config.servicenow
        if origin and origin == _origin(str(sn.instance)):
            return "servicenow", "servicenow.ca_bundle", _path(sn.ca_bundle)
        graph = config.graph
        return "graph", "graph.ca_bundle", _path(graph.ca_bundle)
    return "graph", "the ca_bundle of that service", None


def _path(value: object) -> Path | None:
    return Path(str(value)) if value is not None else None


def _origin(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}" if parts.scheme and parts.netloc else ""


def _tls_reason(exc: Exception) -> str:
    text = str(exc)
    for marker in ("certificate verify failed: ", "[X509: ", "[SSL: "):
        if marker in text:
            tail = text.split(marker, 1)[1]
            return (marker.strip("[: ") + ": " + tail.split(" (_ssl")[0].split("'")[0]).strip()
    return text.splitlines()[0][:160] if text else type(exc).__name__


def _is_loopback(host: str) -> bool:
    if host.lower() in LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def _port_busy(host: str, port: int) -> bool:
    if not port:
        return False
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as probe:
        try:
            probe.bind((host, port))
        except OSError:
            return True
    return False


def _user() -> str:
    try:
        return pwd.getpwuid(os.geteuid()).pw_name
    except KeyError:
        return str(os.geteuid())
