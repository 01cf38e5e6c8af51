"""The dependency rules between the bridge's packages (docs/architecture.md).

The checker walks every module under ``bridge/`` with :mod:`ast` and looks at every
import: ``import x`` and ``from x import y``, absolute or relative, at module level,
inside functions and under ``if TYPE_CHECKING:``. Each module belongs to one layer;
a layer may import itself and the layers (or the single modules) listed for it in
``MAY_IMPORT``. Platform libraries stay in the package that wraps them.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import pytest

BRIDGE = Path(__file__).resolve().parents[2] / "bridge"

# bridge/*.py modules that wire everything together: they may import any module.
TOP = frozenset({"app", "app_cluster", "__main__", "demo", "web"})
PACKAGES = frozenset(
    {"cluster", "core", "db", "formatting", "journal", "whatsapp", "matrix", "slack"}
)
# Every other bridge/*.py module, and bridge/config/ if it becomes a package.
FOUNDATION = "foundation"

# What each layer may import besides itself. A dotted entry allows one module (and
# anything below it); a plain entry allows a whole layer. The top modules may import
# anything; no other layer may import them.
FRONTEND_MAY_IMPORT = frozenset(
    {
        FOUNDATION,
        "formatting",
        "bridge.core.frontend",
        "bridge.core.commands",
        "bridge.core.quarantine",
    }
)
MAY_IMPORT: dict[str, frozenset[str]] = {
    FOUNDATION: frozenset({FOUNDATION}),
    "db": frozenset({FOUNDATION}),
    "formatting": frozenset({FOUNDATION}),
    "journal": frozenset({FOUNDATION}),
    "cluster": frozenset({FOUNDATION, "db"}),
    "whatsapp": frozenset({FOUNDATION, "formatting", "journal", "bridge.cluster.view"}),
    "core": frozenset(
        {
            FOUNDATION,
            "db",
            "formatting",
            "journal",
            "bridge.whatsapp.engine",
            "bridge.whatsapp.status",
            "bridge.cluster.view",
        }
    ),
    "matrix": FRONTEND_MAY_IMPORT,
    "slack": FRONTEND_MAY_IMPORT,
}

# Each platform's library is used only by the package that wraps it (and the top).
PLATFORM_LIBRARIES: dict[str, str] = {
    "neonize": "whatsapp",
    "mautrix": "matrix",
    "slack_sdk": "slack",
    "slack_bolt": "slack",
    "asyncpg": "db",
}


def layer_of(module: str) -> str:
    parts = module.split(".")
    if len(parts) == 1:
        return FOUNDATION
    if parts[1] in TOP:
        return "top"
    if parts[1] in PACKAGES:
        return parts[1]
    return FOUNDATION


def module_name(root: Path, path: Path) -> str:
    parts = [root.name, *path.relative_to(root).with_suffix("").parts]
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _is_module(root: Path, dotted: str) -> bool:
    relative = Path(*dotted.split(".")[1:]) if "." in dotted else Path()
    base = root / relative
    return base.with_suffix(".py").is_file() or (base / "__init__.py").is_file()


def imported_modules(root: Path, path: Path) -> Iterator[tuple[str, int]]:
    """Every module ``path`` imports, resolved to the most precise module name.

    ``from bridge.whatsapp import engine`` names ``bridge.whatsapp.engine``;
    ``from bridge.db import Repositories`` names the package ``bridge.db``.
    """
    module = module_name(root, path)
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), filename=str(path))):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield alias.name, node.lineno
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - (node.level - 1)]
                source = ".".join([*base, *([node.module] if node.module else [])])
            else:
                source = node.module or ""
            for alias in node.names:
                candidate = f"{source}.{alias.name}"
                yield (candidate if _is_module(root, candidate) else source), node.lineno


def _allowed(importer: str, imported: str) -> bool:
    source, target = layer_of(importer), layer_of(imported)
    if source == "top" or source == target:
        return True
    if target == "top":
        return False
    return any(
        entry == target or imported == entry or imported.startswith(entry + ".")
        for entry in MAY_IMPORT[source]
    )


def violations(root: Path) -> dict[tuple[str, str], list[str]]:
    """``(importer, imported) -> ["file:line", ...]`` for every import the rules forbid."""
    found: dict[tuple[str, str], list[str]] = {}
    top_package = root.name
    for path in sorted(root.rglob("*.py")):
        importer = module_name(root, path)
        for imported, line in imported_modules(root, path):
            head = imported.split(".")[0]
            if head == top_package:
                ok = _allowed(importer, imported)
            elif head in PLATFORM_LIBRARIES:
                ok = layer_of(importer) in {"top", PLATFORM_LIBRARIES[head]}
            else:
                continue
            if not ok:
                where = f"{path.relative_to(root.parent)}:{line}"
                found.setdefault((importer, imported), []).append(where)
    return found


def test_the_bridge_follows_the_dependency_rules() -> None:
    found = violations(BRIDGE)
    assert not found, "imports that break the rules of docs/architecture.md: " + "; ".join(
        f"{a} imports {b} ({', '.join(where)})" for (a, b), where in sorted(found.items())
    )


def _tree(root: Path, files: dict[str, str]) -> Path:
    for name, text in files.items():
        path = root / "bridge" / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
    return root / "bridge"


def test_the_checker_finds_every_kind_of_forbidden_import(tmp_path: Path) -> None:
    root = _tree(
        tmp_path,
        {
            "__init__.py": "",
            "errors.py": "",
            "app.py": "import bridge.slack.frontend\nimport neonize\n",
            "core/__init__.py": "",
            "core/frontend.py": "from bridge.errors import X\n",
            "core/relay.py": (
                "from typing import TYPE_CHECKING\n"
                "from bridge.whatsapp import engine\n"
                "from bridge.db import Repositories\n"
                "if TYPE_CHECKING:\n"
                "    from bridge.whatsapp.sessions import SessionManager\n"
                "def build():\n"
                "    import bridge.matrix\n"
            ),
            "db/__init__.py": "Repositories = object\n",
            "matrix/__init__.py": "",
            "matrix/frontend.py": (
                "from ..core import frontend\n"
                "from . import rooms\n"
                "from ..slack.convert import x\n"
                "import neonize.proto\n"
            ),
            "matrix/rooms.py": "from bridge.app import main\n",
            "slack/__init__.py": "",
            "slack/convert.py": "from bridge.core.relay import Relay\nimport slack_sdk\n",
            "whatsapp/__init__.py": "",
            "whatsapp/engine.py": "from bridge import errors\n",
            "whatsapp/sessions.py": "from bridge.db import Repositories\n",
        },
    )
    assert set(violations(root)) == {
        ("bridge.core.relay", "bridge.whatsapp.sessions"),  # under TYPE_CHECKING
        ("bridge.core.relay", "bridge.matrix"),  # inside a function
        ("bridge.matrix.frontend", "bridge.slack.convert"),  # relative
        ("bridge.matrix.frontend", "neonize.proto"),  # another platform's library
        ("bridge.matrix.rooms", "bridge.app"),  # the top, from below
        ("bridge.slack.convert", "bridge.core.relay"),  # core's insides
        ("bridge.whatsapp.sessions", "bridge.db"),  # a package import
    }


@pytest.mark.parametrize(
    ("module", "layer"),
    [
        ("bridge", FOUNDATION),
        ("bridge.model", FOUNDATION),
        ("bridge.config.loader", FOUNDATION),
        ("bridge.app", "top"),
        ("bridge.__main__", "top"),
        ("bridge.core.relay", "core"),
        ("bridge.whatsapp", "whatsapp"),
    ],
)
def test_layer_of(module: str, layer: str) -> None:
    assert layer_of(module) == layer
