"""Former tracebacks, as real processes: each is one line naming the file, key or option and what to
do, with an exit code from the documented table (3 TLS, 2 config or usage, 73 local files)."""

from __future__ import annotations

import shutil
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from snsync.sandbox.runner import RunningSandbox
from snsync.sandbox.tls import create_tls

from .conftest import ServiceNowAdmin

SNSYNC = [sys.executable, "-m", "snsync"]


def run(*argv: str, prefix: tuple[str, ...] = ()) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*prefix, *SNSYNC, *argv],
        capture_output=True,
        text=True,
        timeout=60,
        stdin=subprocess.DEVNULL,
    )


def one_line(done: subprocess.CompletedProcess[str], code: int, *fragments: str) -> str:
    assert "Traceback" not in done.stderr, done.stderr
    lines = done.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), done.stderr
    assert done.returncode == code, (done.returncode, done.stderr)
    for fragment in fragments:
        assert fragment in lines[0], (fragment, lines[0])
    return lines[0]


def configured(sandbox: RunningSandbox, tmp_path: Path, **changes: dict[str, str]) -> Path:
    data = yaml.safe_load(sandbox.config_path.read_text())
    for section, values in changes.items():
        data[section].update(values)
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


def read_only_mount(folder: Path) -> tuple[str, ...]:
    """A prefix that runs the command with `folder` on a read-only file system (as root too)."""
    folder.mkdir(parents=True, exist_ok=True)
    if shutil.which("unshare") is None or subprocess.run(["unshare", "-m", "true"]).returncode:
        pytest.skip("no mount namespace here to make a folder read-only for root")
    script = f"mount -t tmpfs -o ro tmpfs '{folder}' && exec \"$@\""
    return ("unshare", "-m", "sh", "-c", script, "sh")


@pytest.mark.parametrize("key", ["graph", "servicenow"])
def test_ca_bundle_of_another_ca(
    key: str, sandbox: RunningSandbox, sn_admin: ServiceNowAdmin, tmp_path: Path
) -> None:
    other = create_tls(tmp_path / "other-ca")
    config = configured(sandbox, tmp_path, **{key: {"ca_bundle": str(other.ca_pem)}})
    line = one_line(run("--config", str(config), "run", "--once"), 3, f"{key}.ca_bundle", "TLS")
    assert "certificate verify failed" in line
    assert not sn_admin.rows("sys_user", "sourceSTARTSWITHentra:"), "nothing written"


@pytest.mark.parametrize("key", ["graph", "servicenow"])
def test_ca_bundle_that_is_not_pem(key: str, sandbox: RunningSandbox, tmp_path: Path) -> None:
    bad = tmp_path / "ca.der"
    bad.write_bytes(b"\x30\x82\x01\x0a not a PEM file")
    config = configured(sandbox, tmp_path, **{key: {"ca_bundle": str(bad)}})
    for command in (["run", "--once"], ["plan"]):
        one_line(run("--config", str(config), *command), 2, f"{key}.ca_bundle", str(bad), "PEM")


def test_state_folder_below_a_file(sandbox: RunningSandbox, tmp_path: Path) -> None:
    (tmp_path / "afile").write_text("")
    config = configured(sandbox, tmp_path, state={"path": str(tmp_path / "afile" / "s.db")})
    for command in (["run", "--once"], ["status"], ["plan"]):
        one_line(run("--config", str(config), *command), 73, "state.path", "is a file")


def test_state_folder_missing_is_created_private(sandbox: RunningSandbox, tmp_path: Path) -> None:
    state = tmp_path / "new" / "deeper" / "state.db"
    config = configured(sandbox, tmp_path, state={"path": str(state)})
    done = run("--config", str(config), "run", "--once", "-q")
    assert done.returncode == 0, done.stderr
    assert state.parent.stat().st_mode & 0o777 == 0o700


@pytest.mark.parametrize("below", [False, True])
def test_state_folder_not_writable(below: bool, sandbox: RunningSandbox, tmp_path: Path) -> None:
    folder = tmp_path / "ro"
    state = folder / "sub" / "s.db" if below else folder / "s.db"
    config = configured(sandbox, tmp_path, state={"path": str(state)})
    done = run("--config", str(config), "run", "--once", prefix=read_only_mount(folder))
    one_line(done, 73, "state.path", str(folder), "or choose another state.path")


def test_sandbox_port_in_use(tmp_path: Path) -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = str(busy.getsockname()[1])
        done = run("sandbox", "--dir", str(tmp_path / "s"), "--servicenow-port", port)
    one_line(done, 2, f"--servicenow-port {port}", "in use")


def test_sandbox_dir_unusable(tmp_path: Path) -> None:
    (tmp_path / "afile").write_text("")
    one_line(run("sandbox", "--dir", str(tmp_path / "afile" / "s")), 73, "--dir", "is a file")
    folder = tmp_path / "ro"
    done = run("sandbox", "--dir", str(folder / "s"), prefix=read_only_mount(folder))
    one_line(done, 73, "--dir", "not writable")


@pytest.mark.parametrize("host", ["0.0.0.0", "192.0.2.10", "example.org", "::"])
def test_sandbox_refuses_a_non_loopback_host(host: str, tmp_path: Path) -> None:
    done = run("sandbox", "--dir", str(tmp_path / "s"), "--host", host)
    one_line(done, 2, f"--host {host}", "loopback")
    assert not (tmp_path / "s").exists(), "nothing started, nothing written"
