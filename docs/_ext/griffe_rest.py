"""A Griffe extension: the reST of optin_core's docstrings, read as Markdown.

The docstrings use Sphinx roles (``:class:`~optin_core.Policy```) and
directives (``.. versionadded:: 0.2.0``), which ``help()`` shows as they are.
For the API reference, mkdocstrings renders Markdown, so this turns a role
into a code span, linked when it names a public object of ``optin_core``,
and a directive into a line of emphasis. Loaded by mkdocs.yml.
"""

from __future__ import annotations

import re
from typing import Any

import optin_core

try:
    from griffe import Extension, Object
except ImportError:  # without the docs extra: to_markdown alone, for the tests
    Extension = Object = object  # type: ignore[assignment,misc]

_ROLE = re.compile(r":(?:class|func|meth|attr|data|mod|exc|obj):`(~?)([^`]+)`")
_DIRECTIVE = re.compile(
    r"^(?P<indent>[ \t]*)\.\. (?P<kind>versionadded|versionchanged|deprecated)::"
    r"[ \t]*(?P<version>\S+)[ \t]*(?P<text>.*)$"
)
_WORDS = {
    "versionadded": "Added",
    "versionchanged": "Changed",
    "deprecated": "Deprecated",
}
_PUBLIC = frozenset(optin_core.__all__)


def _role(match: re.Match[str]) -> str:
    short, target = match.group(1) == "~", match.group(2).strip()
    target = target.removeprefix("optin_core.")
    shown = target.rsplit(".", 1)[-1] if short else target
    if target in _PUBLIC:
        return f"[`{shown}`][optin_core.{target}]"
    return f"`{shown}`"


def _directives(text: str) -> str:
    """``.. versionadded:: X`` and friends, with their indented continuation
    lines, as one line of emphasis each."""
    out: list[str] = []
    lines = text.splitlines()
    i = 0
    while i < len(lines):
        found = _DIRECTIVE.match(lines[i])
        if found is None:
            out.append(lines[i])
            i += 1
            continue
        indent = found.group("indent")
        words = [found.group("text")] if found.group("text") else []
        i += 1
        while i < len(lines) and lines[i].startswith(indent + " ") and lines[i].strip():
            words.append(lines[i].strip())
            i += 1
        label = f"{_WORDS[found.group('kind')]} in version {found.group('version')}"
        body = " ".join(words)
        out.append(f"{indent}*{label}:* {body}" if body else f"{indent}*{label}.*")
    return "\n".join(out)


def to_markdown(text: str) -> str:
    """A docstring's reST roles, directives and ``::`` as Markdown."""
    text = _ROLE.sub(_role, text)
    text = _directives(text)
    return re.sub(r"(\S)::$", r"\1:", text, flags=re.MULTILINE)


class ReSTToMarkdown(Extension):  # type: ignore[misc]
    """Rewrite every docstring of the loaded package as Markdown."""

    def on_instance(self, *, obj: Object, **kwargs: Any) -> None:
        if obj.docstring is not None:
            obj.docstring.value = to_markdown(obj.docstring.value)
