"""The run-time dependency list holds exactly what the code imports: every third-party
package a module of ``bridge/`` imports is declared, and every declared one is
imported (issue: ``commonmark`` was declared for a module the bridge never loads).
tests/e2e/test_wheel.py checks the same from a clean install."""

from __future__ import annotations

import ast
import importlib.metadata
import re
import sys
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
# Imported only by the demo's local Synapse, which the `demo` extra installs.
DEMO_ONLY = {"signedjson"}


def _declared() -> set[str]:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    return {
        _normal(re.split(r"[<>=!~;\[ ]", spec, maxsplit=1)[0]) for spec in project["dependencies"]
    }


def _normal(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def _imported_top_levels() -> set[str]:
    names: set[str] = set()
    for path in (ROOT / "bridge").rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Import):
                names.update(alias.name.split(".")[0] for alias in node.names)
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                names.add(node.module.split(".")[0])
    return {n for n in names if n != "bridge" and n not in sys.stdlib_module_names}


def test_every_imported_package_is_declared_and_every_declared_one_imported() -> None:
    owners = importlib.metadata.packages_distributions()
    imported = _imported_top_levels() - DEMO_ONLY
    needed = {_normal(owners[name][0]) for name in imported}
    assert needed == _declared(), (
        f"imported but not declared: {sorted(needed - _declared())}; "
        f"declared but not imported: {sorted(_declared() - needed)}"
    )


def test_every_package_of_bridge_is_listed_for_the_wheel() -> None:
    """pyproject.toml lists the packages by hand (the migrations are mapped in from the
    top-level migrations/): a new subpackage missing there would be left out of the
    wheel and the Docker image."""
    setuptools = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]
    found = {
        ".".join(init.parent.relative_to(ROOT).parts)
        for init in (ROOT / "bridge").rglob("__init__.py")
    }
    assert set(setuptools["packages"]) == found | {"bridge.migrations"}
