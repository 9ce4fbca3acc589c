"""The generated docs match their sources (``python docs/generate.py``).

CI regenerates them and runs ``git diff --exit-code``; these tests say the
same thing earlier, and say what to run.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path
from types import ModuleType

from optin_core._keywords import load_packs

DOCS = Path(__file__).parent.parent / "docs"


def _generator() -> ModuleType:
    spec = importlib.util.spec_from_file_location("docs_generate", DOCS / "generate.py")
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


GENERATE = _generator()


def test_table_module_is_generated() -> None:
    table = DOCS.parent / "src" / "optin_core" / "_table.py"
    assert table.read_text(encoding="utf-8") == GENERATE.render_table(), (
        "run: python docs/generate.py"
    )


def test_machine_page_is_generated() -> None:
    page = (DOCS / "machine.md").read_text(encoding="utf-8")
    assert page == GENERATE.render(), "run: python docs/generate.py"


def test_parsing_page_tables_are_generated_from_the_packs() -> None:
    page = (DOCS / "parsing.md").read_text(encoding="utf-8")
    assert GENERATE.update_parsing(page) == page, "run: python docs/generate.py"
    block = GENERATE.render_keywords()
    assert page.count(GENERATE.BEGIN) == page.count(GENERATE.END) == 1
    # Every keyword of every pack is in the tables, under its locale.
    for pack in load_packs():
        section = block.split(f"### `{pack['locale']}`")[1].split("### `")[0]
        for key in ("consent", "start", "stop", "help", "decline"):
            for item in pack.get(key, ()):
                assert f"`{item['keyword']}`" in section, (pack["locale"], item)


def test_a_changed_pack_changes_the_tables() -> None:
    page = (DOCS / "parsing.md").read_text(encoding="utf-8")
    start = page.index(GENERATE.BEGIN)
    generated = page[start:].replace("`ne m'écrivez plus`", "`ne m'écrivez pas`", 1)
    stale = page[:start] + generated
    assert stale != page
    assert GENERATE.update_parsing(stale) == page
