"""The documentation covers what the code can do: every ops alert has its runbook entry
in docs/operations.md, every chat command its row in docs/commands.md, and the index
lists every page."""

from __future__ import annotations

import ast
import re
from pathlib import Path

from bridge.core.commands import COMMANDS

REPO = Path(__file__).resolve().parents[2]
DOCS = REPO / "docs"
OPS_MODULE = REPO / "bridge" / "core" / "ops.py"
OPS_TEXTS = REPO / "bridge" / "core" / "ops_texts.py"


def alert_writers(source: str, texts_source: str) -> set[str]:
    """The ``*_text`` functions of ``bridge/core/ops_texts.py`` that the notifier in
    ``bridge/core/ops.py`` calls: each writes one kind of message for the ops channel
    (or the control room's topic)."""
    tree = ast.parse(source)
    texts = {
        node.name
        for node in ast.parse(texts_source).body
        if isinstance(node, ast.FunctionDef) and node.name.endswith("_text")
    }
    (notifier,) = (n for n in tree.body if isinstance(n, ast.ClassDef) and n.name == "OpsNotifier")
    return {
        node.func.id
        for node in ast.walk(notifier)
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id in texts
    }


def runbook_rows(markdown: str) -> set[str]:
    """The functions named in the first column of the runbook table."""
    return set(re.findall(r"(?m)^\| `(\w+_text)` \|", markdown))


def test_every_ops_alert_has_a_runbook_entry() -> None:
    writers = alert_writers(
        OPS_MODULE.read_text(encoding="utf-8"), OPS_TEXTS.read_text(encoding="utf-8")
    )
    assert {"dead_letter_text", "quarantined_text", "permanent_text"} <= writers  # it finds them
    documented = runbook_rows((DOCS / "operations.md").read_text(encoding="utf-8"))
    documented.add("topic_text")  # the control room's topic, described above the table
    assert writers - documented == set(), "alerts without a runbook entry in docs/operations.md"
    assert documented - writers == set(), "runbook entries for alerts the code no longer sends"


def test_the_alert_check_sees_a_new_alert() -> None:
    source = OPS_MODULE.read_text(encoding="utf-8")
    texts = OPS_TEXTS.read_text(encoding="utf-8")
    extra = source.replace(
        "class OpsNotifier:",
        "class OpsNotifier:\n    def _new(self) -> str:\n        return brand_new_text()\n",
        1,
    )
    more_texts = texts + "\n\ndef brand_new_text() -> str:\n    return ''\n"
    assert "brand_new_text" in alert_writers(extra, more_texts) - alert_writers(source, texts)


def test_every_command_is_in_the_commands_doc() -> None:
    text = (DOCS / "commands.md").read_text(encoding="utf-8")
    rows = set(re.findall(r"(?m)^\| `!(\w+)", text))
    assert rows == {command.name for command in COMMANDS}


def test_the_docs_index_lists_every_page() -> None:
    index = (DOCS / "README.md").read_text(encoding="utf-8")
    pages = {p.name for p in DOCS.glob("*.md")} - {"README.md"}
    assert {page for page in pages if f"({page})" not in index} == set()
