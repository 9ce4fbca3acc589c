"""The keyword index, pinned: what the shipped packs and a policy's words mean.

Rules pinned here:

- every keyword of every shipped pack, typed as contacts type it (its case
  variants, a closing mark), is that pack's intent, under its normalised
  form, as an exact match attributed to the contact's own pack;
- with ``languages=()`` a consent or re-subscribe word counts only for the
  contacts whose chain lists it, every one of them;
- a yes shared by two languages is attributed by its accents ("Sì" Italian,
  "Sí" Spanish) when neither is the contact's; a served language's yes that
  the contact's own packs use otherwise is not consent ("Ja" to a Portuguese
  contact), and a policy word of the contact's own language wins over it;
- a policy's extra words are indexed (stop words weak, others exact, source
  ``policy``) and refused with exact errors when they cannot be keywords;
- the word rules read the index's phrase tables: stop words next to a word
  that makes them ordinary ("stop by", "bus stop"), weak stop words beside
  polite or consent words, the longest phrase first, phrases that count
  anywhere, HELP among polite words, lenient consent;
- phone reactions, with the emoji in place of a lead's star;
- :func:`lint_keywords` reports every collision, once, at the first locale
  whose chain sees it;
- a pack needs only its locale: every section is optional, and a stop word
  without a strength (or any word of another intent) is ``"exact"``;
- the packs are read as UTF-8 whatever the process's locale.

Indexes are built inside the tests (``build_keyword_index`` caches them per
setting): a module-level index would be built before a mutant is active.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

import optin_core
from optin_core import (
    Intent,
    KeywordCollision,
    KeywordIndex,
    MatchRule,
    ParsedReply,
    Policy,
    build_keyword_index,
    keyword_language,
    parse_reply,
)
from optin_core._keywords import PACK_ORDER, Keyword
from optin_core._normalize import canonical

_INTENTS = {
    "consent": Intent.CONSENT,
    "stop": Intent.STOP,
    "start": Intent.START,
    "help": Intent.HELP,
    "decline": Intent.DECLINE,
}
_KEYWORDS = Path(optin_core.__file__).parent / "keywords"


def _pack(locale: str) -> dict[str, Any]:
    """A shipped pack as its JSON file says (read here, not by the library)."""
    data: dict[str, Any] = json.loads(
        (_KEYWORDS / f"{locale}.json").read_text(encoding="utf-8")
    )
    return data


def _exact(intent: Intent, keyword: str, locale: str, text: str) -> ParsedReply:
    return ParsedReply(
        intent=intent, keyword=keyword, rule=MatchRule.EXACT, locale=locale, text=text
    )


def _typed(written: str) -> list[str]:
    # As typed, shouted, capitalised with a closing mark (the prebuilt
    # replies), and with a mark no table lists (the full parse).
    return [written, written.upper(), written.capitalize() + "!", written + "!!"]


# -- the shipped packs -----------------------------------------------------------


@pytest.mark.parametrize("locale", PACK_ORDER)
def test_every_pack_keyword_is_its_intent_for_the_packs_contacts(locale: str) -> None:
    pack = _pack(locale)
    count = 0
    for key, intent in _INTENTS.items():
        for item in pack[key]:
            keyword = canonical(item["keyword"])
            for text in _typed(item["keyword"]):
                got = parse_reply(text, locale)
                assert got == _exact(intent, keyword, locale, text), text
            count += 1
    # fr-CA lists its own stop and help words only; the others list all.
    assert count >= 16


def test_a_keyword_with_an_elision_typed_as_written_is_an_exact_match() -> None:
    # A policy's French yes with an elision was unrecognised as typed
    # (found by mutation testing, fixed in 0.3.0).
    index = build_keyword_index({Intent.CONSENT: {"fr": ["d'accord"]}})
    assert parse_reply("D'accord", "fr", keywords=index) == _exact(
        Intent.CONSENT, "d accord", "fr", "D'accord"
    )


def test_a_pack_phrase_with_an_elision_typed_as_written_is_an_exact_match() -> None:
    text = "Ne m'écrivez plus"
    assert parse_reply(text, "fr") == _exact(
        Intent.STOP, "ne m ecrivez plus", "fr", text
    )


def _chain_words(locales: tuple[str, ...]) -> set[str]:
    return {
        canonical(item["keyword"])
        for loc in locales
        for key in ("consent", "start")
        for item in _pack(loc)[key]
    }


#: A consent and a stop word for English and for French contacts, so that
#: lint sees one collision per chain; the packs alone collide nowhere.
_FOO_BAR = {
    Intent.CONSENT: {"en": ["foo"], "fr": ["bar"]},
    Intent.STOP: {"en": ["foo"], "fr": ["bar"]},
}


@pytest.mark.parametrize("locale", PACK_ORDER)
def test_without_served_languages_a_yes_counts_only_in_its_chain(locale: str) -> None:
    index = Policy(org_name="Acme", extra_keywords=_FOO_BAR, languages=()).keywords
    assert index.languages == ()
    english = _chain_words(("en",))
    for key in ("consent", "start"):
        intent = _INTENTS[key]
        for item in _pack(locale)[key]:
            keyword = canonical(item["keyword"])
            for text in _typed(item["keyword"]):
                # Every word of the contact's own pack counts...
                got = parse_reply(text, locale, keywords=index)
                assert got == _exact(intent, keyword, locale, text), text
                # ... and no other chain's, unless it lists the word too.
                if keyword not in english:
                    other = parse_reply(text, "en", keywords=index)
                    assert other.intent is Intent.UNRECOGNIZED, text


@pytest.mark.parametrize(
    ("text", "locale"),
    [("Sì", "it"), ("Sí", "es"), ("Si", "es"), ("sì!!", "it"), ("SÍ!!", "es")],
)
def test_the_accents_of_a_shared_yes_name_its_language(text: str, locale: str) -> None:
    # A German contact's chain lists neither: Spanish and Italian are served,
    # and "si" without accents goes to the first in pack order.
    assert parse_reply(text, "de") == _exact(Intent.CONSENT, "si", locale, text)


def test_a_served_yes_is_not_consent_where_the_contacts_packs_use_it() -> None:
    # "ja" is a Portuguese polite word ("já"): not a yes for Portuguese contacts.
    assert parse_reply("Ja", "pt").intent is Intent.UNRECOGNIZED
    assert parse_reply("Ja", "en") == _exact(Intent.CONSENT, "ja", "de", "Ja")
    # A policy's Dutch decline word that is the French yes: the Dutch contact's
    # own meaning wins; an English contact gets the served French yes (the
    # fixed priority puts consent before decline).
    index = build_keyword_index({Intent.DECLINE: {"nl": ["oui"]}})
    assert parse_reply("oui", "nl", keywords=index) == _exact(
        Intent.DECLINE, "oui", "nl", "oui"
    )
    assert parse_reply("oui", "en", keywords=index) == _exact(
        Intent.CONSENT, "oui", "fr", "oui"
    )


@pytest.mark.parametrize(
    ("text", "language"),
    [("Oui", "fr"), ("ARRET", "fr"), ("Bitte keine SMS mehr", "de"), ("STOP", None)],
)
def test_a_keyword_of_one_language_is_answered_in_it(
    text: str, language: str | None
) -> None:
    assert keyword_language(parse_reply(text)) == language


@pytest.mark.parametrize(
    ("text", "locale", "default", "expected"),
    [
        ("STOP", None, "en", _exact(Intent.STOP, "stop", "en", "STOP")),
        ("Yes", "en-US", "en", _exact(Intent.CONSENT, "yes", "en", "Yes")),
        ("Oui", "fr_CA", "fr", _exact(Intent.CONSENT, "oui", "fr", "Oui")),
        ("Ja!", "de", "de", _exact(Intent.CONSENT, "ja", "de", "Ja!")),
    ],
)
def test_the_spellings_typed_most_get_the_indexs_ready_made_reply(
    text: str, locale: str | None, default: str, expected: ParsedReply
) -> None:
    # The index keeps one reply per common spelling and locale, built once
    # and shared by every parse: two parses return that very object.
    first = parse_reply(text, locale, default_locale=default)
    assert first == expected
    assert parse_reply(text, locale, default_locale=default) is first


# -- a policy's extra words ------------------------------------------------------


def test_policy_words_are_indexed_weak_for_stop_and_exact_otherwise() -> None:
    index = build_keyword_index(
        {Intent.STOP: {"fr_CA": ["Fini"]}, Intent.CONSENT: {"en": ["Sure thing"]}}
    )
    policy = sorted(
        (e for e in index.entries if e.sources == ("policy",)), key=lambda e: e.keyword
    )
    assert policy == [
        Keyword(
            keyword="fini",
            written="Fini",
            intent=Intent.STOP,
            locale="fr-CA",
            strength="weak",
            sources=("policy",),
        ),
        Keyword(
            keyword="sure thing",
            written="Sure thing",
            intent=Intent.CONSENT,
            locale="en",
            strength="exact",
            sources=("policy",),
        ),
    ]
    # Weak: alone or among polite words, not inside a sentence.
    got = parse_reply("Fini merci", "en", keywords=index)
    assert (got.intent, got.keyword, got.rule, got.locale) == (
        Intent.STOP,
        "fini",
        MatchRule.FIRST_WORD,
        "fr-CA",
    )
    assert parse_reply("fini le travail", keywords=index).intent is Intent.UNRECOGNIZED
    assert parse_reply("Sure thing", "de", keywords=index) == _exact(
        Intent.CONSENT, "sure thing", "en", "Sure thing"
    )


def test_a_policy_word_that_collides_does_not_hide_the_next_ones() -> None:
    # YES stays consent (the fixed priority); the word after it is indexed.
    index = build_keyword_index({Intent.START: {"en": ["yes", "gogo"]}})
    assert parse_reply("gogo", keywords=index) == _exact(
        Intent.START, "gogo", "en", "gogo"
    )
    assert parse_reply("YES", keywords=index) == _exact(
        Intent.CONSENT, "yes", "en", "YES"
    )


@pytest.mark.parametrize(
    ("extra", "error", "message"),
    [
        (
            {Intent.REACTION: {"en": ["liked"]}},
            ValueError,
            "extra keywords: <Intent.REACTION: 'reaction'> takes no keywords",
        ),
        (
            {Intent.STOP: {"en": "stop"}},
            TypeError,
            "extra keywords stop/en: expected a list",
        ),
        (
            {Intent.STOP: {"en": ["fin", "!!!"]}},
            ValueError,
            "extra keywords stop/en: '!!!' has no letters",
        ),
    ],
)
def test_extra_words_that_cannot_be_keywords_are_refused(
    extra: Any, error: type[Exception], message: str
) -> None:
    with pytest.raises(error) as raised:
        build_keyword_index(extra)
    assert str(raised.value) == message


def test_a_policy_word_without_letters_is_refused_by_the_policy() -> None:
    # The policy's own check lets punctuation through; the index refuses it.
    with pytest.raises(ValueError, match=re.escape("stop/en: '!!!' has no letters")):
        Policy(org_name="Acme", extra_keywords={Intent.STOP: {"en": ["!!!"]}})


# -- the word rules' tables ------------------------------------------------------


def _word_rule(intent: Intent, keyword: str, rule: MatchRule, text: str) -> ParsedReply:
    return ParsedReply(
        intent=intent, keyword=keyword, rule=rule, locale="en", text=text
    )


@pytest.mark.parametrize(
    ("text", "intent", "keyword", "rule"),
    [
        # A weak stop word among polite words, or beside a yes: stop wins.
        ("Cancel please", Intent.STOP, "cancel", MatchRule.FIRST_WORD),
        ("Yes cancel", Intent.STOP, "cancel", MatchRule.SHORT_MESSAGE),
        # HELP among polite words.
        ("help please", Intent.HELP, "help", MatchRule.FIRST_WORD),
        # The longest phrase is tried first.
        ("please stop texting", Intent.STOP, "stop texting", MatchRule.SHORT_MESSAGE),
        # A phrase that can only mean our texts counts anywhere in a long one.
        (
            "Hi there I got your message yesterday but please stop texting me "
            "about this offer thanks",
            Intent.STOP,
            "stop texting",
            MatchRule.PHRASE,
        ),
    ],
)
def test_word_rules_read_the_phrase_tables(
    text: str, intent: Intent, keyword: str, rule: MatchRule
) -> None:
    assert parse_reply(text) == _word_rule(intent, keyword, rule, text)


@pytest.mark.parametrize(
    "text",
    [
        "Stop by the office tomorrow",  # not_after: "stop by"
        "Meet me at the bus stop",  # not_before: "bus stop"
        "yes info",  # not lenient: "info" is no polite word
    ],
)
def test_a_neighbour_makes_a_keyword_an_ordinary_word(text: str) -> None:
    got = parse_reply(text, lenient_consent=True)
    assert got == ParsedReply(
        intent=Intent.UNRECOGNIZED,
        keyword=None,
        rule=MatchRule.NONE,
        locale=None,
        text=text,
    )


@pytest.mark.parametrize(
    "text",
    [
        "Yes please",  # polite (and affirmative)
        "Yes sure",  # affirmative only
        "Yes asap",  # polite only
        "Yes right away",
    ],
)
def test_lenient_consent_takes_polite_and_affirmative_words(text: str) -> None:
    assert parse_reply(text, lenient_consent=True) == _word_rule(
        Intent.CONSENT, "yes", MatchRule.LENIENT, text
    )
    # Off by default.
    assert parse_reply(text).intent is Intent.UNRECOGNIZED


@pytest.mark.parametrize(
    ("text", "locale", "keyword", "attributed"),
    [
        ("Laughed at “Reply YES to join”", None, "laughed at", "en"),
        ("Reacted 👍 to “Reply YES to join”", None, "reacted * to", "en"),
        # "‼️" folds to "!!", and the space before "!" goes with French spacing.
        ("Reacted ‼️ to “Reply YES to join”", None, "reacted * to", "en"),
        ("Reacted‼️ to “Reply YES to join”", None, "reacted * to", "en"),
        ("‼️ to “Reply YES to join”", None, "* to", "en"),
        ("A réagi avec‼️ à « Répondez OUI »", "fr", "a reagi avec * a", "fr"),
    ],
)
def test_a_reaction_lead_takes_any_emoji_for_its_star(
    text: str, locale: str | None, keyword: str, attributed: str
) -> None:
    assert parse_reply(text, locale) == ParsedReply(
        intent=Intent.REACTION,
        keyword=keyword,
        rule=MatchRule.REACTION,
        locale=attributed,
        text=text,
    )


# -- lint --------------------------------------------------------------------------


def test_lint_reports_every_collision_once_at_its_first_chain() -> None:
    found = Policy(org_name="Acme", extra_keywords=_FOO_BAR, languages=()).lint()
    both = (Intent.STOP, Intent.CONSENT)
    # English contacts' chain sees foo; French ones' sees foo again (English
    # is in their chain) and bar: a repeat does not end the search.
    assert found == (
        KeywordCollision(
            keyword="foo",
            locale="en",
            intents=both,
            sources=("policy",),
            locales=("en",),
        ),
        KeywordCollision(
            keyword="bar",
            locale="fr",
            intents=both,
            sources=("policy",),
            locales=("fr",),
        ),
    )


# -- the pack format ---------------------------------------------------------------


def test_a_pack_needs_only_its_locale_and_words() -> None:
    packs = [
        {
            "locale": "en",
            # A strength is for stop words: a yes is exact whatever it says.
            "consent": [{"keyword": "Aye", "sources": ["native"], "strength": "weak"}],
            # A stop word without a strength is exact.
            "stop": [{"keyword": "Halt", "sources": ["native"]}],
        },
        {"locale": "fr", "polite": {"sources": ["native"]}},
    ]
    index = KeywordIndex(packs, [])
    assert index.entries == (
        Keyword(
            keyword="aye",
            written="Aye",
            intent=Intent.CONSENT,
            locale="en",
            strength="exact",
            sources=("native",),
        ),
        Keyword(
            keyword="halt",
            written="Halt",
            intent=Intent.STOP,
            locale="en",
            strength="exact",
            sources=("native",),
        ),
    )
    assert parse_reply("HALT", keywords=index) == _exact(
        Intent.STOP, "halt", "en", "HALT"
    )
    assert parse_reply("aye", "fr", keywords=index) == _exact(
        Intent.CONSENT, "aye", "en", "aye"
    )
    # Only the pack's words: the shipped ones are not there.
    assert parse_reply("STOP", keywords=index).intent is Intent.UNRECOGNIZED


def test_an_index_of_no_pack_recognises_nothing() -> None:
    index = KeywordIndex([], [])
    assert index.entries == ()
    for text in ("STOP", "yes", ""):
        assert parse_reply(text, keywords=index).intent is Intent.UNRECOGNIZED


def test_the_packs_are_read_as_utf8_whatever_the_locale() -> None:
    # A process whose locale encoding is ASCII (Windows hosts have cp1252):
    # the packs' accented words must still load. The child imports the same
    # optin_core as this process.
    env = {
        **os.environ,
        "LC_ALL": "C",
        "LANG": "C",
        "PYTHONUTF8": "0",
        "PYTHONCOERCECLOCALE": "0",
        "PYTHONPATH": os.pathsep.join(p for p in sys.path if p),
    }
    # (Where the C locale reads UTF-8 anyway, as on macOS, this still
    # checks the packs load; on Linux it reads ASCII.)
    code = (
        "from optin_core import parse_reply\n"
        "r = parse_reply('Arr\\u00eat', 'fr')\n"
        "print(r.intent.value, r.keyword, r.locale)\n"
    )
    run = subprocess.run(
        [sys.executable, "-c", code],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert (run.returncode, run.stdout) == (0, "stop arret fr\n"), run.stderr
