"""The table-driven reply corpus: tests/data/replies.tsv.

Each row is ``intent, locale, text, note``; the rows were written from the
rules in SPEC.md ("Reply parsing") and docs/parsing.md, and from what people
really type (case, punctuation, emoji, full-width letters, zero-width
characters, French spacing, phone reactions), in all eight locales.
"""

from __future__ import annotations

import collections
import re
from pathlib import Path

import pytest

from optin_core._enums import Intent
from optin_core._parser import parse_reply

_DATA = Path(__file__).parent / "data" / "replies.tsv"
_ESCAPE_RE = re.compile(r"\\(u[0-9a-fA-F]{4}|U[0-9a-fA-F]{8}|t|n|\\)")


def _unescape(text: str) -> str:
    def replace(m: re.Match[str]) -> str:
        code = m.group(1)
        if code in ("t", "n", "\\"):
            return {"t": "\t", "n": "\n", "\\": "\\"}[code]
        return chr(int(code[1:], 16))

    return _ESCAPE_RE.sub(replace, text)


def _rows() -> list[tuple[Intent, str | None, str, str]]:
    rows = []
    for line in _DATA.read_text(encoding="utf-8").splitlines():
        if not line or line.startswith("#"):
            continue
        intent, locale, text, note = line.split("\t")
        rows.append(
            (Intent(intent), None if locale == "-" else locale, _unescape(text), note)
        )
    return rows


ROWS = _rows()


def test_corpus_is_large_and_covers_every_locale() -> None:
    assert len(ROWS) >= 300
    locales = collections.Counter(locale for _, locale, _, _ in ROWS)
    for locale in ("en", "fr", "fr-CA", "es", "pt", "de", "it", "nl"):
        assert locales[locale] >= 20, locale
    intents = {intent for intent, _, _, _ in ROWS}
    assert intents == set(Intent)


@pytest.mark.parametrize(
    ("intent", "locale", "text", "note"),
    ROWS,
    ids=[f"{i}-{loc}-{text[:30]!r}" for i, (_, loc, text, _) in enumerate(ROWS)],
)
def test_reply(intent: Intent, locale: str | None, text: str, note: str) -> None:
    reply = parse_reply(text, locale)
    assert reply.intent is intent, (note, reply)
    assert reply.text == text
    if intent in (Intent.UNRECOGNIZED,):
        assert reply.keyword is None
        assert reply.locale is None
    else:
        assert reply.keyword
        assert reply.locale
