"""The shipped example config is valid and carries the default mappings."""

from __future__ import annotations

from pathlib import Path

from snsync.config import load_config
from snsync.mapping.defaults import DEFAULT_USER_MAPPINGS

ROOT = Path(__file__).resolve().parents[2]


def test_example_config_validates_with_its_env_variables() -> None:
    env = {"SNSYNC_GRAPH_CLIENT_SECRET": "x" * 8, "SNSYNC_SERVICENOW_PASSWORD": "y" * 8}
    config = load_config(ROOT / "config.example.yaml", env)
    shipped = [(m.target, m.source, m.expression) for m in config.mappings.users]
    defaults = [(m["target"], m.get("source"), m.get("expression")) for m in DEFAULT_USER_MAPPINGS]
    assert shipped == defaults
