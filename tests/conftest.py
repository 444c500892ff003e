"""Fixtures shared by every test module."""

from __future__ import annotations

from pathlib import Path

import pytest

from snsync.sandbox.tls import SandboxTls, create_tls


@pytest.fixture(scope="session")
def sandbox_tls(tmp_path_factory: pytest.TempPathFactory) -> SandboxTls:
    """One CA and server certificate for every sandbox started in this test session."""
    return create_tls(Path(tmp_path_factory.mktemp("tls")))
