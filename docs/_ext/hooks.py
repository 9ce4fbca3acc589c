"""MkDocs hooks of the docs site (mkdocs.yml, ``hooks:``).

* Some pages are files of the repository outside ``docs/``, read at build
  time so that each has one source: the home page is README.md, the
  benchmarks page bench/README.md, the changelog CHANGELOG.md. Their stubs
  in ``docs/`` only name them.
* A link that leaves ``docs/`` (``../bench/README.md`` from a page,
  ``docs/rules.md`` from README.md) is rewritten to the page that shows the
  file, or, for any other file of the repository, to its address in the
  source repository (``repo_url``), or to its name as code while the site
  has no ``repo_url``.
"""

from __future__ import annotations

import posixpath
import re
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]

#: Pages whose content is a file of the repository: page -> file.
INCLUDED = {
    "index.md": "README.md",
    "benchmarks.md": "bench/README.md",
    "changelog.md": "CHANGELOG.md",
}
#: The page showing each included file: file -> page.
SHOWN = {file: page for page, file in INCLUDED.items()}

_LINK = re.compile(r"(\]\()(?P<target>[^)\s#]*)(?P<anchor>#[^)\s]*)?(?P<rest>[^)]*\))")


def _rewrite(markdown: str, source: str, page: str, repo_url: str) -> str:
    """The links of ``markdown`` (the text of repository file ``source``,
    shown as docs page ``page``) that leave ``docs/``, made site links."""
    base = posixpath.dirname(source)
    page_dir = posixpath.dirname(page)

    def one(match: re.Match[str]) -> str:
        target = match.group("target")
        if not target or "://" in target or target.startswith(("mailto:", "/")):
            return match.group(0)
        path = posixpath.normpath(posixpath.join(base, target))
        if path.startswith("docs/") and source.startswith("docs/"):
            return match.group(0)  # a page linking a page: MkDocs checks it
        if path.startswith("docs/"):
            new = posixpath.relpath(path.removeprefix("docs/"), page_dir or ".")
        elif path in SHOWN:
            new = posixpath.relpath(SHOWN[path], page_dir or ".")
        elif (ROOT / path).exists() and repo_url:
            new = f"{repo_url.rstrip('/')}/blob/main/{path}"
        elif (ROOT / path).exists():
            return f"{match.group(1)}{_UNLINKED}{path}{match.group('rest')}"
        else:
            return match.group(0)  # left for MkDocs to report
        anchor = match.group("anchor") or ""
        return f"{match.group(1)}{new}{anchor}{match.group('rest')}"

    linked = _LINK.sub(one, markdown)
    # A file of the repository with no address yet: its name, as code.
    return re.sub(
        r"\[([^\]]*)\]\(" + re.escape(_UNLINKED) + r"([^)\s]*)\)",
        lambda m: m.group(1) if m.group(1).startswith("`") else f"`{m.group(2)}`",
        linked,
    )


_UNLINKED = "repository-file:"


def on_page_markdown(markdown: str, *, page: Any, config: Any, **_: Any) -> str:
    uri = page.file.src_uri
    source = INCLUDED.get(uri)
    if source is not None:
        markdown = (ROOT / source).read_text(encoding="utf-8")
    else:
        source = f"docs/{uri}"
    return _rewrite(markdown, source, uri, config.get("repo_url") or "")
