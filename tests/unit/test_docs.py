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


# --- metrics -------------------------------------------------------------------------

METRICS_MODULE = REPO / "bridge" / "metrics.py"
METRIC_TYPES = {"Counter": "counter", "Gauge": "gauge", "Histogram": "histogram"}


def defined_metrics(source: str) -> dict[str, str]:
    """``served name -> type`` of every metric ``bridge/metrics.py`` builds; a counter
    is served with ``_total`` appended to the name it is given."""
    found: dict[str, str] = {}
    for node in ast.walk(ast.parse(source)):
        if not (isinstance(node, ast.Call) and isinstance(node.func, ast.Name)):
            continue
        kind = METRIC_TYPES.get(node.func.id)
        if kind is None or not node.args or not isinstance(node.args[0], ast.Constant):
            continue
        name = str(node.args[0].value)
        found[f"{name}_total" if kind == "counter" else name] = kind
    return found


def section(markdown: str, heading: str) -> str:
    """The text under ``## heading``, up to the next heading of the same level."""
    match = re.search(rf"(?ms)^## {re.escape(heading)}\n(.*?)(?=^## |\Z)", markdown)
    assert match, f"no section {heading!r}"
    return match.group(1)


def documented_metrics(markdown: str) -> dict[str, str]:
    """``name -> type`` of the rows of the Metrics table of docs/operations.md."""
    rows = re.findall(r"(?m)^\| `(zapbridge_\w+)` \| (\w+) \|", section(markdown, "Metrics"))
    return dict(rows)


def test_every_metric_is_in_the_operations_doc_and_only_those() -> None:
    defined = defined_metrics(METRICS_MODULE.read_text(encoding="utf-8"))
    assert {"zapbridge_messages_total", "zapbridge_outbox_pending"} <= set(defined)
    documented = documented_metrics((DOCS / "operations.md").read_text(encoding="utf-8"))
    assert documented == defined


def test_the_metrics_check_sees_a_new_metric() -> None:
    source = METRICS_MODULE.read_text(encoding="utf-8")
    extra = source + '\n\nEXTRA = Counter("zapbridge_brand_new", "new", registry=None)\n'
    assert set(defined_metrics(extra)) - set(defined_metrics(source)) == {
        "zapbridge_brand_new_total"
    }


# --- no outside documents ---------------------------------------------------------------


def test_nothing_cites_the_outside_design_document() -> None:
    """Comments and docs cite the files in docs/, never a design document kept
    elsewhere (this file is the one place its name may appear)."""
    places = [REPO / "bridge", REPO / "tests", REPO / "bench", DOCS]
    files = [p for place in places for p in place.rglob("*") if p.is_file()]
    files.append(REPO / "README.md")
    citing = sorted(
        str(path.relative_to(REPO))
        for path in files
        if path != Path(__file__).resolve()
        and path.suffix in {".py", ".md", ".yaml", ".yml", ".txt", ".sql", ""}
        and "DESIGN" in path.read_text(encoding="utf-8", errors="replace")
    )
    assert citing == []


# --- links ----------------------------------------------------------------------------

LINK = re.compile(r"(?<!!)\[[^\]]*\]\(([^)\s]+)\)")


def anchor_of(heading: str) -> str:
    """GitHub's anchor of a heading: lower case, punctuation dropped, spaces → ``-``."""
    text = re.sub(r"[`*_]", "", heading.strip().lower())
    text = re.sub(r"[^\w\- ]", "", text)
    return text.replace(" ", "-")


def anchors(markdown: str) -> set[str]:
    body = re.sub(r"(?ms)^```.*?^```", "", markdown)
    return {anchor_of(h) for h in re.findall(r"(?m)^#{1,6} (.+)$", body)}


def broken_links(page: Path) -> list[str]:
    """The relative links of ``page`` whose file, or heading, does not exist."""
    broken = []
    text = page.read_text(encoding="utf-8")
    for target in LINK.findall(text):
        if re.match(r"[a-z][a-z0-9+.-]*:", target):
            continue  # https:, mailto:: not ours to check
        path, _, fragment = target.partition("#")
        linked = (page.parent / path).resolve() if path else page
        if not linked.exists():
            broken.append(target)
        elif fragment and linked.suffix == ".md":
            if fragment not in anchors(linked.read_text(encoding="utf-8")):
                broken.append(target)
    return broken


def pages() -> list[Path]:
    return [REPO / "README.md", *sorted(DOCS.glob("*.md"))]


def test_every_relative_link_points_at_a_file_and_heading() -> None:
    found = {str(p.relative_to(REPO)): broken_links(p) for p in pages()}
    assert {page: links for page, links in found.items() if links} == {}


def test_the_link_check_sees_a_broken_link(tmp_path: Path) -> None:
    (tmp_path / "there.md").write_text("# A heading, with `code`\n", encoding="utf-8")
    page = tmp_path / "page.md"
    page.write_text(
        "[ok](there.md) [ok](there.md#a-heading-with-code) [web](https://example.org/x)\n"
        "[gone](missing.md) [no heading](there.md#nowhere) [self](#nor-here)\n",
        encoding="utf-8",
    )
    assert broken_links(page) == ["missing.md", "there.md#nowhere", "#nor-here"]


def test_every_page_is_linked_from_the_readme() -> None:
    readme = (REPO / "README.md").read_text(encoding="utf-8")
    assert {p.name for p in DOCS.glob("*.md") if f"(docs/{p.name}" not in readme} == set()


# --- the package tables ---------------------------------------------------------------

BRIDGE = REPO / "bridge"


def table_of(markdown: str, first_header: str) -> str:
    """The lines of the markdown table whose header row starts with ``first_header``."""
    match = re.search(rf"(?m)^\| {re.escape(first_header)} \|.*\n(?:\|.*\n?)*", markdown)
    assert match, f"no table headed {first_header!r}"
    return match.group(0)


def test_the_readme_table_names_every_package_and_top_module() -> None:
    table = table_of((REPO / "README.md").read_text(encoding="utf-8"), "package")
    wanted = [f"bridge/{p.name}/" for p in BRIDGE.iterdir() if (p / "__init__.py").is_file()]
    wanted += [f"bridge/{p.name}" for p in BRIDGE.glob("*.py") if p.name != "__init__.py"]
    assert [name for name in wanted if f"`{name}`" not in table] == []


def test_the_architecture_table_names_every_module() -> None:
    """Each module of a package by its file name in its package's row (a foundation
    module, in the foundation or top row)."""
    table = table_of((DOCS / "architecture.md").read_text(encoding="utf-8"), "package")
    rows = {row.split("|")[1].strip().strip("`"): row for row in table.splitlines()[2:]}
    missing = []
    for path in sorted(BRIDGE.rglob("*.py")):
        if path.name == "__init__.py" or "migrations" in path.parts:
            continue
        package = path.parent.relative_to(BRIDGE).as_posix()
        if package == ".":
            if not any(f"`{path.name}`" in row for row in rows.values()):
                missing.append(path.name)
        elif f"`{path.name}`" not in rows.get(f"bridge/{package}", ""):
            missing.append(f"{package}/{path.name}")
    assert missing == []
