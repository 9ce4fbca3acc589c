"""The docs site: generated pages up to date, every page in the navigation,
links out of docs/ rewritten, docstrings read as Markdown, and the testing
guide's example passing as a host's test suite.

CI also builds the site (``mkdocs build --strict`` in ``.ci/run``).
"""

from __future__ import annotations

import importlib.util
import os
import re
import subprocess
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

import attrs
import pytest

from optin_core import Policy

ROOT = Path(__file__).parent.parent
DOCS = ROOT / "docs"


def _load(path: Path, name: str) -> ModuleType:
    spec = importlib.util.spec_from_file_location(name, path)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


GENERATE = _load(DOCS / "generate.py", "docs_generate_site")
HOOKS = _load(DOCS / "_ext" / "hooks.py", "docs_hooks")
REST = _load(DOCS / "_ext" / "griffe_rest.py", "docs_griffe_rest")


# -- generated pages -----------------------------------------------------------


def test_settings_page_is_generated_from_the_policy() -> None:
    page = (DOCS / "settings.md").read_text(encoding="utf-8")
    assert page == GENERATE.render_settings(), "run: python docs/generate.py"
    for field in attrs.fields(Policy):
        if field.init:
            assert f"| `{field.name}` |" in page


def test_settings_rows_carry_name_type_default_and_meaning() -> None:
    page = GENERATE.render_settings()
    assert (
        "| `max_attempts` | `int` | `3` | How many opt-in requests a contact may "
        "get in all, the first one included. |"
    ) in page
    assert "| `org_name` | `str` | required |" in page
    assert "| `resend_after` | `timedelta` | `timedelta(days=1)` |" in page
    assert "| `stop_confirmation_window` | `timedelta \\| None` | " in page
    assert "| `mode` | `Mode` | `Mode.ATTESTATION` |" in page
    assert "| `extra_keywords` | " in page
    assert "| `attestation_methods` | `Mapping[str, str]` | `{}` |" in page
    assert "| `levels` | `tuple[str, ...]` | `('none', 'disclosed', 'express'," in page


def test_a_setting_without_a_meaning_stops_the_generator(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    meanings = dict(GENERATE.MEANINGS)
    del meanings["max_attempts"]
    meanings["max_attempt"] = "gone"
    monkeypatch.setattr(GENERATE, "MEANINGS", meanings)
    with pytest.raises(SystemExit) as stopped:
        GENERATE.render_settings()
    assert "no meaning for max_attempts" in str(stopped.value)
    assert "no such setting max_attempt" in str(stopped.value)


def test_a_field_can_carry_its_own_meaning(monkeypatch: pytest.MonkeyPatch) -> None:
    @attrs.frozen(kw_only=True)
    class Documented(Policy):
        branch: str = attrs.field(default="main", metadata={"doc": "The branch."})

    monkeypatch.setattr(GENERATE, "Policy", Documented)
    assert "| `branch` | `str` | `'main'` | The branch. |" in GENERATE.render_settings()


def test_quickstart_page_shows_what_the_demo_prints() -> None:
    page = (DOCS / "quickstart.md").read_text(encoding="utf-8")
    assert GENERATE.update_quickstart(page) == page, "run: python docs/generate.py"
    block = GENERATE.render_quickstart()
    assert 'read as: consent (the word "oui")' in block
    assert "Nothing was sent" in block
    stale = page.replace("read as: consent", "read as: consnet", 1)
    assert stale != page
    assert GENERATE.update_quickstart(stale) == page


def test_quickstart_reads_well_to_a_newcomer() -> None:
    done = subprocess.run(
        [sys.executable, str(ROOT / "examples" / "quickstart.py")],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    out = done.stdout
    assert "rule none" not in out
    assert "keyword None" not in out
    assert "seed" not in out
    assert "state: opted_in" in out
    assert out.rstrip().endswith("send and store functions (docs/service.md).")
    assert "Nothing was sent" in out


# -- the site's navigation and links -------------------------------------------------


def _nav() -> list[str]:
    config = (ROOT / "mkdocs.yml").read_text(encoding="utf-8")
    nav = config[config.index("\nnav:") :]
    return re.findall(r":\s+(\S+\.md)\s*$", nav, re.MULTILINE)


def test_every_page_is_in_the_navigation_and_exists() -> None:
    nav = _nav()
    assert len(nav) == len(set(nav))
    for page in nav:
        assert (DOCS / page).is_file(), page
    pages = {
        str(p.relative_to(DOCS)) for p in DOCS.rglob("*.md") if "_ext" not in p.parts
    }
    assert pages - set(nav) == set(), "add the page to mkdocs.yml's nav"


def test_the_api_page_documents_every_public_name() -> None:
    import optin_core

    page = (DOCS / "api.md").read_text(encoding="utf-8")
    documented = set(re.findall(r"^::: optin_core\.(\w+)", page, re.MULTILINE))
    missing = set(optin_core.__all__) - documented - {"__version__"}
    assert not missing, f"add '::: optin_core.NAME' to docs/api.md for {missing}"
    assert documented - set(optin_core.__all__) == {"providers"}


def test_included_pages_name_their_source() -> None:
    for page, source in HOOKS.INCLUDED.items():
        assert (ROOT / source).is_file()
        assert source in (DOCS / page).read_text(encoding="utf-8")


class _Page:
    def __init__(self, uri: str) -> None:
        self.file = type("F", (), {"src_uri": uri})()


@pytest.mark.parametrize(
    ("uri", "text", "repo_url", "expected"),
    [
        ("scaling.md", "[b](../bench/README.md#x)", "", "[b](benchmarks.md#x)"),
        ("guides/x.md", "[s](../scaling.md)", "", "[s](../scaling.md)"),
        ("guides/x.md", "[b](../../bench/README.md)", "", "[b](../benchmarks.md)"),
        ("scaling.md", "[c](../CHANGELOG.md)", "", "[c](changelog.md)"),
        ("scaling.md", "[w](https://x.org/a.md)", "", "[w](https://x.org/a.md)"),
        ("scaling.md", "[a](#figures)", "", "[a](#figures)"),
        ("scaling.md", "[l](../LICENSE)", "", "`LICENSE`"),
        ("scaling.md", "[`LICENSE`](../LICENSE)", "", "`LICENSE`"),
        (
            "scaling.md",
            "[l](../LICENSE)",
            "https://r.org/",
            "[l](https://r.org/blob/main/LICENSE)",
        ),
        ("scaling.md", "[m](../missing.md)", "", "[m](../missing.md)"),
    ],
)
def test_links_out_of_docs_are_rewritten(
    uri: str, text: str, repo_url: str, expected: str
) -> None:
    assert HOOKS._rewrite(text, f"docs/{uri}", uri, repo_url) == expected


def test_included_files_are_read_and_their_links_rewritten() -> None:
    config: dict[str, Any] = {"repo_url": ""}
    home = HOOKS.on_page_markdown("stub", page=_Page("index.md"), config=config)
    assert home.startswith("# optin_core")
    assert "](machine.md)" in home  # README's docs/machine.md
    assert "](docs/" not in home
    bench = HOOKS.on_page_markdown("stub", page=_Page("benchmarks.md"), config=config)
    assert "](scaling.md)" in bench  # bench/README.md's ../docs/scaling.md
    page = HOOKS.on_page_markdown(
        "[b](../bench/README.md)", page=_Page("scaling.md"), config=config
    )
    assert page == "[b](benchmarks.md)"


# -- docstrings as Markdown ------------------------------------------------------


@pytest.mark.parametrize(
    ("rest", "markdown"),
    [
        (":class:`~optin_core.PolicyError`", "[`PolicyError`][optin_core.PolicyError]"),
        (":func:`decide`", "[`decide`][optin_core.decide]"),
        (":meth:`Policy.allows_texting`", "`Policy.allows_texting`"),
        (":data:`optin_core._keywords.PACK_ORDER`", "`_keywords.PACK_ORDER`"),
        (":class:`~optin_core._records.Consent`", "`Consent`"),
        (".. versionadded:: 0.1.0", "*Added in version 0.1.0.*"),
        (
            "    .. versionchanged:: 0.2.0 ``a``,\n       ``b``.\n    Next.",
            "    *Changed in version 0.2.0:* ``a``, ``b``.\n    Next.",
        ),
        ("a retry)::\n\n    code", "a retry):\n\n    code"),
        ("no change", "no change"),
    ],
)
def test_rest_docstrings_become_markdown(rest: str, markdown: str) -> None:
    assert REST.to_markdown(rest) == markdown


def test_the_extension_rewrites_each_docstring() -> None:
    docstring = type("D", (), {"value": ":func:`decide`"})()
    obj = type("O", (), {"docstring": docstring})()
    REST.ReSTToMarkdown().on_instance(obj=obj)
    assert docstring.value == "[`decide`][optin_core.decide]"
    REST.ReSTToMarkdown().on_instance(obj=type("O", (), {"docstring": None})())


# -- the testing guide runs ------------------------------------------------------


def test_the_testing_guide_is_a_passing_host_test_suite(tmp_path: Path) -> None:
    """The guide's conftest.py and test_webhook.py, run by pytest in a
    project of their own against examples/webhook.py: the plugin comes from
    the entry point, the strategies from the kit."""
    guide = (DOCS / "guides" / "testing.md").read_text(encoding="utf-8")
    files = re.findall(r'```python title="([^"]+)"\n(.*?)```', guide, re.DOTALL)
    assert [name for name, _ in files] == ["conftest.py", "test_webhook.py"]
    for name, body in files:
        (tmp_path / name).write_text(body, encoding="utf-8")
    env = {**os.environ, "PYTHONPATH": str(ROOT / "examples")}
    done = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "."],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "7 passed" in done.stdout
