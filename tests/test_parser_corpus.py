"""The table-driven reply corpus: tests/data/replies.tsv.

Each row is ``intent, locale, text, note``; the rows were written from the
rules in SPEC.md ("Reply parsing") and docs/parsing.md, and from what people
really type (case, punctuation, emoji, full-width letters, zero-width
characters, French spacing, phone reactions), in all eight locales.

A fifth column, when present, is the kind of our own message the reply
quotes: the row is parsed with the texts of ``Policy(org_name="Acme")``
(what ``decide`` does) and must record that kind as ``quoted``. Every other
row must read the same with those texts as without them.

Issue 10 added the free-form opt-outs of every locale, each citing its
source in brackets at the end of the note (``[native]``, ``[observed]``, a
key of ``keywords/sources.json``), with the look-alikes and the ordinary
conversation that must stay non-stop.
"""

from __future__ import annotations

import collections
import re
from pathlib import Path

import pytest

from optin_core import Policy, keyword_language
from optin_core._enums import Intent, MessageKind
from optin_core._keywords import load_sources
from optin_core._locale import available_locales, locale_chain
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


Row = tuple[Intent, str | None, str, str, MessageKind | None]
ACME = Policy(org_name="Acme")


def _rows() -> list[Row]:
    rows: list[Row] = []
    for line in _DATA.read_text(encoding="utf-8").splitlines():
        if not line or line.startswith("#"):
            continue
        intent, locale, text, note, *quoted = line.split("\t")
        assert len(quoted) <= 1, line
        rows.append(
            (
                Intent(intent),
                None if locale == "-" else locale,
                _unescape(text),
                note,
                MessageKind(quoted[0]) if quoted else None,
            )
        )
    return rows


ROWS = _rows()


_SOURCE_RE = re.compile(r"\[([a-z0-9_]+)\]$")
LOCALES = ("en", "fr", "fr-CA", "es", "pt", "de", "it", "nl")
FREE_FORM = [row for row in ROWS if row[3].startswith("free-form stop")]
NEGATIVE = [
    row
    for row in ROWS
    if row[3].startswith(("look-alike", "conversation"))
    or "not an opt-out" in row[3]
    or row[3].startswith("word boundary")
]


def test_corpus_is_large_and_covers_every_locale() -> None:
    assert len(ROWS) >= 1000
    locales = collections.Counter(row[1] for row in ROWS)
    for locale in ("en", "fr", "fr-CA", "es", "pt", "de", "it", "nl"):
        assert locales[locale] >= 20, locale
    intents = {row[0] for row in ROWS}
    assert intents == set(Intent)


def test_every_locale_has_free_form_stops_with_sources() -> None:
    # Issue 10: at least 15 natural phrasings per locale, each with a source.
    sources = load_sources()
    per_locale = collections.Counter(row[1] for row in FREE_FORM)
    for locale in LOCALES:
        assert per_locale[locale] >= 15, locale
    for intent, _, text, note, _ in FREE_FORM:
        assert intent is Intent.STOP, text
        m = _SOURCE_RE.search(note)
        assert m is not None, note
        assert m.group(1) in sources, note
    # The issue's own examples are in.
    texts = {row[2] for row in FREE_FORM}
    for text in (
        "Ne m'écrivez plus",
        "Retirez-moi de votre liste",
        "Mauvais numéro",
        "No me escriban más",
        "Bitte keine SMS mehr",
        "Non scrivetemi più",
        "Stuur me geen berichten meer",
    ):
        assert text in texts, text


def test_every_locale_has_look_alikes_and_conversation() -> None:
    for kind in ("look-alike", "conversation"):
        per_locale = collections.Counter(
            row[1] for row in ROWS if row[3].startswith(kind)
        )
        for locale in LOCALES:
            assert per_locale[locale] >= 4, (kind, locale)
    for _, _, text, note, _ in NEGATIVE:
        if note.startswith(("look-alike", "conversation")):
            m = _SOURCE_RE.search(note)
            assert m is not None, (text, note)
            assert m.group(1) in load_sources(), (text, note)


@pytest.mark.parametrize(
    ("locale", "text"), [(row[1], row[2]) for row in NEGATIVE], ids=str
)
def test_no_negative_is_a_stop_for_anyone(locale: str | None, text: str) -> None:
    # Stop words of every pack apply to every contact, so a look-alike must
    # stay non-stop whatever the contact's locale.
    for loc in (locale, None, *available_locales()):
        assert parse_reply(text, loc).intent is not Intent.STOP, (loc, text)


@pytest.mark.parametrize(
    ("locale", "text"), [(row[1], row[2]) for row in FREE_FORM], ids=str
)
def test_free_form_stops_are_attributed_to_the_contacts_language(
    locale: str, text: str
) -> None:
    # The stop confirmation then goes out in the language the contact wrote.
    reply = parse_reply(text, None)
    chain = locale_chain(locale)
    mine = parse_reply(text, locale)
    assert mine.locale in chain, mine
    language = keyword_language(reply)
    assert language is None or language.partition("-")[0] == locale[:2], reply


def test_corpus_covers_reactions_quotes_and_third_parties() -> None:
    # Issue 16: reactions in every locale, each of our kinds quoted back.
    reactions = collections.Counter(row[1] for row in ROWS if row[0] is Intent.REACTION)
    for locale in ("en", "fr", "fr-CA", "es", "pt", "de", "it", "nl"):
        assert reactions[locale] >= 3, locale
    notes = " ".join(row[3] for row in ROWS if row[0] is Intent.REACTION)
    for client in ("Google Messages", "iOS 18", "iOS tapback", "Samsung"):
        assert client in notes, client
    quoted = {row[4] for row in ROWS} - {None}
    assert quoted == {k for k in MessageKind if k is not MessageKind.TEXT}
    third = [row for row in ROWS if row[3].startswith(("third party", "still a stop"))]
    assert {row[0] for row in third} == {Intent.STOP, Intent.UNRECOGNIZED}


@pytest.mark.parametrize(
    ("intent", "locale", "text", "note", "quoted"),
    ROWS,
    ids=[f"{i}-{row[1]}-{row[2][:30]!r}" for i, row in enumerate(ROWS)],
)
def test_reply(
    intent: Intent,
    locale: str | None,
    text: str,
    note: str,
    quoted: MessageKind | None,
) -> None:
    ours = parse_reply(text, locale, ours=ACME.own_words)
    reply = ours if quoted is not None else parse_reply(text, locale)
    assert reply.intent is intent, (note, reply)
    assert reply.text == text
    assert ours.intent is intent, (note, ours)
    if quoted is not None:
        assert ours.quoted is quoted, (note, ours)
    elif reply.quoted is None and ours.quoted is not None:
        # A reaction to one of Acme's texts: the same answer, with evidence.
        assert intent is Intent.REACTION
    if intent in (Intent.UNRECOGNIZED,):
        assert reply.keyword is None
        assert reply.locale is None
    else:
        assert reply.keyword
        assert reply.locale
