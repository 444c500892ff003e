"""The import rule: plain data at the bottom, the engine on top. Lower layers (graph/,
servicenow/, mapping/, the state, notify, config, model) never import snsync.engine; the bottom
module imports nothing from snsync at all. Walks every module's imports with ast, including
imports inside functions."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2] / "snsync"
BELOW_ENGINE = (
    "graph",
    "servicenow",
    "mapping",
    "state",
    "notify",
    "config",
    "config_types",
    "model",
    "compact",
    "metrics",
)


def imports_of(path: Path) -> set[str]:
    """Every module `path` imports, at any depth of its code."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
            found |= {f"{node.module}.{alias.name}" for alias in node.names}
    return found


def modules_under(*names: str) -> list[Path]:
    paths: list[Path] = []
    for name in names:
        folder, module = ROOT / name, ROOT / f"{name}.py"
        paths += sorted(folder.rglob("*.py")) if folder.is_dir() else []
        paths += [module] if module.is_file() else []
    return paths


@pytest.mark.parametrize(
    "path", modules_under(*BELOW_ENGINE), ids=lambda p: str(p.relative_to(ROOT))
)
def test_lower_layers_do_not_import_the_engine(path: Path) -> None:
    offending = sorted(
        m for m in imports_of(path) if m == "snsync.engine" or m.startswith("snsync.engine.")
    )
    assert not offending, f"{path.relative_to(ROOT)} imports {offending}"


@pytest.mark.parametrize("name", ["model.py", "compact.py"])
def test_the_bottom_modules_import_nothing_from_snsync(name: str) -> None:
    offending = sorted(m for m in imports_of(ROOT / name) if m.startswith("snsync"))
    assert not offending


def test_the_rule_sees_an_import_inside_a_function(tmp_path: Path) -> None:
    sneaky = tmp_path / "sneaky.py"
    sneaky.write_text(
        "def f():\n    from snsync.engine.cycle import run_cycle\n    return run_cycle\n"
    )
    assert "snsync.engine.cycle" in imports_of(sneaky)


def test_every_lower_layer_exists() -> None:
    # A renamed folder must not make the rule pass by checking nothing.
    for name in BELOW_ENGINE:
        assert modules_under(name), name
