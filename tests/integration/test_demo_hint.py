"""The demo's closing hint works as printed: its two commands, run from the folder the demo ran
in, start a sandbox and provision a user there."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from pathlib import Path

import pytest

from snsync import demo


def test_closing_hint_commands_work_as_printed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    sandbox_cmd, provision_cmd = demo.closing_hint()
    env = {"PATH": "/usr/bin:/bin", "LANG": "C.UTF-8"}  # the hint must not rely on PATH
    server = subprocess.Popen(
        sandbox_cmd,
        shell=True,
        cwd=tmp_path,
        env=env,
        start_new_session=True,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        config = tmp_path / ".demo" / "try" / "config.yaml"
        deadline = time.monotonic() + 30
        while not (config.is_file() and (config.parent / "sandbox.json").is_file()):
            assert server.poll() is None, server.stderr.read() if server.stderr else ""
            assert time.monotonic() < deadline, "the sandbox did not start"
            time.sleep(0.1)
        done = subprocess.run(
            provision_cmd,
            shell=True,
            cwd=tmp_path,
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
        )
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        server.wait(timeout=10)
    assert done.returncode == 0, (provision_cmd, done.stdout, done.stderr)
    assert "adele.vance@contoso.example" in done.stdout
