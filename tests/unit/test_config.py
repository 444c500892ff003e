"""Config: every mistake is one line naming the file, the key path and the problem."""

from __future__ import annotations

import warnings
from pathlib import Path

import pytest

from snsync.config import LiteralSecretWarning, find_config, instance_url, load_config
from snsync.errors import ConfigError

GOOD = """
graph:
  tenant_id: contoso.example
  client_id: 11111111-1111-1111-1111-111111111111
  client_secret: ${GRAPH_SECRET}
  app_id: 22222222-2222-2222-2222-222222222222
servicenow:
  instance: acme
  auth:
    type: basic
    username: snsync
    password_file: sn-password.txt
state:
  path: state.db
"""
ENV = {"GRAPH_SECRET": "s3cret-value"}


def write(tmp_path: Path, text: str, mode: int = 0o600) -> Path:
    (tmp_path / "sn-password.txt").write_text("pw-from-file\n")
    path = tmp_path / "config.yaml"
    path.write_text(text)
    path.chmod(mode)
    return path


def error_of(tmp_path: Path, text: str, env: dict[str, str] | None = None) -> str:
    with pytest.raises(ConfigError) as caught:
        load_config(write(tmp_path, text), ENV if env is None else env)
    message = str(caught.value)
    assert "\n" not in message
    return message


def test_good_config_loads_secrets_from_env_and_file(tmp_path: Path) -> None:
    config = load_config(write(tmp_path, GOOD), ENV)
    assert config.graph.client_secret is not None
    assert config.graph.client_secret.get_secret_value() == "s3cret-value"
    assert config.servicenow.auth.password.get_secret_value() == "pw-from-file"
    assert config.servicenow.instance == "https://acme.service-now.com"
    assert config.graph.authority_host == "https://login.microsoftonline.com"
    assert [m.target for m in config.mappings.users][:2] == ["user_name", "active"]
    assert "s3cret" not in repr(config)


@pytest.mark.parametrize(
    ("old", "new", "expected"),
    [
        (
            "  tenant_id: contoso.example\n",
            "  tenant_id: contoso.example\n  tenant: x\n",
            "graph.tenant: unknown key",
        ),
        ("  instance: acme", "  instance: Acme_Corp!", "servicenow.instance: 'Acme_Corp!' is not"),
        ("  instance: acme", "  instance: http://acme.example", "must be an https:// URL"),
        ("  client_secret: ${GRAPH_SECRET}\n", "", "graph: set exactly one of client_secret"),
        (
            "state:\n  path: state.db",
            "state:\n  path: state.db\nschedule:\n  interval: soon",
            "schedule.interval: 'soon' is not a duration",
        ),
        ("    username: snsync\n", "", "servicenow.auth.username: required key is missing"),
        (
            "state:",
            "mappings:\n  users:\n    - target: user_name\n      source: upn\n"
            "      matching: true\n    - target: title\n      expression: Left([jobTitle], 3\n"
            "state:",
            "mappings.users[1].expression: col",
        ),
        (
            "state:",
            "mappings:\n  users:\n    - target: title\n      source: jobTitle\nstate:",
            "mappings.users: no mapping has 'matching: true'",
        ),
        (
            "state:",
            "scope:\n  filters:\n    - - attribute: x\n        operator: LIKE\n"
            "        value: y\nstate:",
            "scope.filters[0][0].operator",
        ),
    ],
)
def test_mistakes_name_the_key(tmp_path: Path, old: str, new: str, expected: str) -> None:
    assert old in GOOD
    message = error_of(tmp_path, GOOD.replace(old, new))
    assert message.startswith(str(tmp_path / "config.yaml") + ": ")
    assert expected in message


def test_missing_env_variable_is_named(tmp_path: Path) -> None:
    message = error_of(tmp_path, GOOD, env={})
    assert "graph.client_secret: environment variable ${GRAPH_SECRET} is not set" in message


def test_missing_secret_file_is_named(tmp_path: Path) -> None:
    message = error_of(tmp_path, GOOD.replace("sn-password.txt", "nope.txt"))
    assert "servicenow.auth.password_file: cannot read secret file" in message


def test_bad_yaml_points_at_the_line(tmp_path: Path) -> None:
    assert "line " in error_of(tmp_path, "graph: [unclosed\n")


def test_literal_secret_in_readable_file_warns(tmp_path: Path) -> None:
    text = GOOD.replace("${GRAPH_SECRET}", "literal-secret")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        load_config(write(tmp_path, text, 0o644), ENV)
        load_config(write(tmp_path, text, 0o600), ENV)
    messages = [str(w.message) for w in caught if w.category is LiteralSecretWarning]
    assert len(messages) == 1 and "graph.client_secret" in messages[0]
    assert "literal-secret" not in messages[0]


def test_search_order(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    assert find_config("x.yaml", {"SNSYNC_CONFIG": "y.yaml"}) == Path("x.yaml")
    assert find_config(None, {"SNSYNC_CONFIG": "y.yaml"}) == Path("y.yaml")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    with pytest.raises(ConfigError, match="no config file"):
        find_config(None, {})
    (tmp_path / "config.yaml").write_text("")
    assert find_config(None, {}) == Path("config.yaml")


@pytest.mark.parametrize(
    ("given", "url"),
    [("acme", "https://acme.service-now.com"), ("https://x.example/", "https://x.example")],
)
def test_instance_url(given: str, url: str) -> None:
    assert instance_url(given) == url


def test_relative_paths_are_relative_to_the_config_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "ca.pem").write_text("pem")
    text = GOOD.replace("  instance: acme", "  instance: acme\n  ca_bundle: ca.pem")
    path = write(tmp_path, text)
    monkeypatch.chdir("/")
    config = load_config(path, ENV)
    assert config.servicenow.ca_bundle == tmp_path / "ca.pem"
    assert config.state.path == tmp_path / "state.db"
