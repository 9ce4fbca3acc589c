"""How the keyword index reads the packaged tables, pinned (issue 17).

A mutation run showed that no test would notice the index dropping or
misreading whole sections of the packs: the tests that read them share one
index, built once per process. Each test here builds its own index and walks
the packaged data, so every entry of a section is checked against the rule
``docs/parsing.md`` states for it:

* reactions (``reactions`` of every pack): each lead, as the pack writes it
  (``*`` any emoji or word; ``* to`` after an emoji that opens the text),
  followed by a quote and optionally one of its format's tails, is a
  reaction, keyword the folded lead, attributed to the contact's pack; the
  same when the quote is our own message left unclosed; an English lead and
  a listed medium without a quote ("Loved an image") too; ``to "..."``
  without the emoji and a lead without a quote or medium are not;
* stopping someone else (``third_party`` of en and fr): each strong stop
  word with a yes and a subject before it, or a determiner and a noun after
  it, is no stop; the same with a noun that names our texts, or a polite
  word, stays a stop; without the yes, all are stops;
* accents name a shared keyword's language ("Sì" Italian, "Sí" Spanish),
  not a regional pack of one language; ``keyword_language`` answers for a
  keyword of one language;
* ``build_keyword_index``: its errors for a bad ``languages`` or bad extra
  words, and one shared index for equal extra words written in any order.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from typing import Any

import pytest

from optin_core import (
    Intent,
    KeywordIndex,
    MatchRule,
    MessageKind,
    Policy,
    _keywords,
    build_keyword_index,
    keyword_language,
    parse_reply,
)
from optin_core._keywords import PACK_ORDER, load_packs
from optin_core._normalize import fold

QUOTED = "“Hello there”"


def _fresh_index(**kwargs: Any) -> KeywordIndex:
    """An index built by this test: the library shares its indexes, so one
    built earlier (by another test, or before a mutant was switched on)
    would hide how this one is built."""
    for cached in (
        _keywords.default_keyword_index,
        _keywords._shared_index,
        _keywords._cached_index,
    ):
        cached.cache_clear()
    return build_keyword_index(**kwargs)


def _formats() -> Iterator[tuple[str, str, tuple[str, ...]]]:
    """(pack locale, lead as written, tails or ("",)) of every shipped
    reaction format."""
    for pack in load_packs():
        for fmt in pack["reactions"]["formats"]:
            tails = tuple(fmt.get("tails", ())) or ("",)
            for lead in fmt["leads"]:
                yield pack["locale"], lead, tails


def _head(lead: str) -> str:
    """The words a phone writes before the quote for ``lead``: the emoji
    first for a ``* to`` lead, else the lead with an emoji for its ``*``."""
    if lead.startswith("* "):
        return f"👍 {lead[2:]}"
    return lead.replace("*", "😂").capitalize()


def _keyword(lead: str) -> str:
    """The keyword a reaction reports: the lead as the pack writes it,
    folded (``* to``, ``a reagi avec * a``)."""
    if lead.startswith("* "):
        return "* " + fold(lead[2:])
    return fold(lead)


def _said(policy: Policy, kind: MessageKind) -> str:
    return policy.message(kind, "en")[0]


# -- reactions -----------------------------------------------------------------


def test_every_packaged_lead_and_tail_is_a_reaction_in_its_pack() -> None:
    index = _fresh_index()
    seen = 0
    for locale, lead, tails in _formats():
        for tail in tails:
            text = f"{_head(lead)} {QUOTED}" + (f" {tail}" if tail else "")
            reply = parse_reply(text, locale, keywords=index)
            got = (reply.intent, reply.rule, reply.keyword, reply.locale)
            assert got == (
                Intent.REACTION,
                MatchRule.REACTION,
                _keyword(lead),
                locale,
            ), text
            seen += 1
    # The walk covered the shipped data (a format lost would shrink it).
    assert seen > 100


def test_a_lead_no_chain_lists_goes_to_the_first_pack_in_pack_order() -> None:
    index = _fresh_index()
    # "* a" is Spanish, Portuguese and Italian, "* à" French: folded, the
    # same lead, listed by every pack of the four languages.
    for locale in (None, "en", "de", "nl"):
        reply = parse_reply("👍 a “Hola”", locale, keywords=index)
        assert (reply.intent, reply.keyword, reply.locale) == (
            Intent.REACTION,
            "* a",
            "fr",
        )
    for locale in ("fr-CA", "es", "pt", "it"):
        reply = parse_reply("👍 a “Hola”", locale, keywords=index)
        assert reply.locale == locale


def test_every_packaged_lead_before_our_unclosed_quote_is_a_reaction() -> None:
    # The quote is ours and left open (a phone cut it, or lost the closing
    # mark): the words before it being a lead make it a reaction.
    policy = Policy(org_name="Acme")
    request = _said(policy, MessageKind.OPT_IN_REQUEST)
    index = _fresh_index()
    for locale, lead, tails in _formats():
        for tail in tails:
            text = f"{_head(lead)} “{request}" + (f" {tail}" if tail else "")
            reply = parse_reply(text, locale, keywords=index, ours=policy.own_words)
            got = (reply.intent, reply.rule, reply.keyword, reply.locale)
            assert got == (
                Intent.REACTION,
                MatchRule.REACTION,
                _keyword(lead),
                locale,
            ), text
            assert reply.quoted is MessageKind.OPT_IN_REQUEST, text


def test_every_english_lead_with_every_packaged_medium_is_a_reaction() -> None:
    index = _fresh_index()
    en = next(pack for pack in load_packs() if pack["locale"] == "en")
    media = en["reactions"]["media"]
    leads = [
        lead
        for fmt in en["reactions"]["formats"]
        for lead in fmt["leads"]
        if not lead.startswith("* ")
    ]
    assert len(media) > 1
    assert any(" " in lead for lead in leads)
    for lead in leads:
        for medium in media:
            text = f"{_head(lead)} {medium}"
            reply = parse_reply(text, "en", keywords=index)
            got = (reply.intent, reply.rule, reply.keyword, reply.locale)
            assert got == (Intent.REACTION, MatchRule.REACTION, fold(lead), "en")


def test_what_is_not_a_reaction() -> None:
    index = _fresh_index()
    for text, intent in [
        # A lead without a quote or a medium: the contact's own words.
        ("Liked it", Intent.UNRECOGNIZED),
        ("Laughed at my own joke", Intent.UNRECOGNIZED),
        ("Loved an image. Stop texting me", Intent.STOP),
        # The Google shape needs the emoji that opens the text.
        ("to “Hello there”", Intent.UNRECOGNIZED),
        ("a “Hola”", Intent.UNRECOGNIZED),
        # After the quote, only a listed tail: "lekker" is not one.
        ("Vond „Hallo“ lekker", Intent.UNRECOGNIZED),
        ("Hat „Hallo“ gelesen", Intent.UNRECOGNIZED),
    ]:
        assert parse_reply(text, "en", keywords=index).intent is intent, text


# -- stopping someone else -------------------------------------------------------


def _third_party_packs() -> list[Mapping[str, Any]]:
    return [pack for pack in load_packs() if "third_party" in pack]


def _strong_stops(pack: Mapping[str, Any]) -> list[str]:
    """The pack's third-party stop words that are strong stop words (a weak
    one is no stop beside these sentences' other words anyway)."""
    strong = {
        item["keyword"]
        for item in pack["stop"]
        if item.get("strength") in ("strong", "anywhere")
    }
    words = [w for w in pack["third_party"]["stop"] if w in strong]
    assert words, pack["locale"]
    return words


def _yes_of(pack: Mapping[str, Any]) -> str:
    return pack["third_party"]["yes"][0].capitalize()


def test_packaged_third_party_sections_are_en_and_fr() -> None:
    assert [p["locale"] for p in _third_party_packs()] == ["en", "fr"]


def test_a_yes_and_a_subject_before_each_stop_word_is_no_stop() -> None:
    index = _fresh_index()
    for pack in _third_party_packs():
        tp = pack["third_party"]
        loc = pack["locale"]
        make = "make " if loc == "en" else ""
        for stop in _strong_stops(pack):
            for subject in tp["subjects"]:
                said = f"{make}{subject} {stop}"
                alone = parse_reply(f"{said.capitalize()}!", loc, keywords=index)
                assert alone.intent is Intent.STOP, said
                for yes in tp["yes"]:
                    text = f"{yes.capitalize()}, {said}!"
                    reply = parse_reply(text, loc, keywords=index)
                    assert reply.intent is Intent.UNRECOGNIZED, text


def test_a_yes_and_a_determiner_and_noun_after_each_stop_word_is_no_stop() -> None:
    index = _fresh_index()
    nouns = {"en": "bill", "fr": "projet"}
    for pack in _third_party_packs():
        loc = pack["locale"]
        yes = _yes_of(pack)
        for stop in _strong_stops(pack):
            for det in pack["third_party"]["determiners"]:
                said = f"{stop} {det} {nouns[loc]}"
                alone = parse_reply(said.capitalize(), loc, keywords=index)
                assert alone.intent is Intent.STOP, said
                reply = parse_reply(f"{yes}, {said}", loc, keywords=index)
                assert reply.intent is Intent.UNRECOGNIZED, said


def test_a_noun_that_names_our_texts_keeps_the_stop() -> None:
    index = _fresh_index()
    for pack in _third_party_packs():
        loc = pack["locale"]
        tp = pack["third_party"]
        yes = _yes_of(pack)
        det = tp["determiners"][0]
        subject = tp["subjects"][0]
        for stop in _strong_stops(pack):
            for noun in tp["ours"]:
                for said in (f"{stop} {det} {noun}", f"{subject} {stop} {noun}"):
                    text = f"{yes}, {said}"
                    reply = parse_reply(text, loc, keywords=index)
                    assert reply.intent is Intent.STOP, text


def test_other_objects_keep_the_stop() -> None:
    index = _fresh_index()
    for text in ("Yes stop this please", "Yes, stop the texts", "Yes stop them"):
        reply = parse_reply(text, "en", keywords=index)
        assert (reply.intent, reply.keyword) == (Intent.STOP, "stop"), text


# -- accents and languages -------------------------------------------------------


def test_accents_name_a_shared_keywords_language() -> None:
    # For a contact whose chain lists neither pack (English): "si" is
    # consent in Spanish and Italian, the accents say which; without
    # accents, the first pack in PACK_ORDER, and no language of its own.
    index = _fresh_index()
    for text, locale, language in [
        ("Sì", "it", "it"),
        ("Sí", "es", "es"),
        ("SÌ!", "it", "it"),
        ("Si", "es", None),
    ]:
        reply = parse_reply(text, "en", keywords=index)
        assert (reply.intent, reply.keyword, reply.locale) == (
            Intent.CONSENT,
            "si",
            locale,
        ), text
        assert keyword_language(reply, index) == language, text


def test_keyword_language_answers_for_a_keyword_of_one_language() -> None:
    index = _fresh_index()
    reply = parse_reply("Aide", "fr", keywords=index)
    assert (reply.intent, reply.locale) == (Intent.HELP, "fr")
    assert keyword_language(reply, index) == "fr"
    arret = parse_reply("Arrêter", "en", keywords=index)
    assert keyword_language(arret, index) == "fr"
    # "stop" is in many packs: no language of its own.
    assert keyword_language(parse_reply("STOP", "fr", keywords=index), index) is None


def test_accents_do_not_choose_between_regional_packs_of_one_language() -> None:
    # The same French word in fr and, accented differently, in fr-CA: one
    # language, so the reply is attributed as any keyword is (the first
    # pack of the contact's chain, else of PACK_ORDER), whatever its accents.
    extra = {Intent.CONSENT: {"fr": ["certes"], "fr-CA": ["cèrtes"]}}
    index = _fresh_index(extra=extra)
    for text in ("Certes", "Cèrtes"):
        assert parse_reply(text, "en", keywords=index).locale == "fr", text
        assert parse_reply(text, "de", keywords=index).locale == "fr", text
        assert parse_reply(text, "fr-CA", keywords=index).locale == "fr-CA", text


# -- build_keyword_index ---------------------------------------------------------


def test_languages_as_a_single_str_is_refused_with_the_fix() -> None:
    with pytest.raises(TypeError) as err:
        build_keyword_index(languages="fr")
    assert str(err.value) == (
        "languages must be a collection of locales, not the str 'fr' (write ('fr',))"
    )


@pytest.mark.parametrize("languages", [["fr", 3], 3, [None]])
def test_languages_that_are_not_locale_strs_are_refused(languages: Any) -> None:
    with pytest.raises(TypeError) as err:
        build_keyword_index(languages=languages)
    assert str(err.value) == "languages must be a collection of locale str"


def test_bad_extra_words_are_reported_by_the_index_build() -> None:
    # Extra words that cannot be a cache key are built (not cached), and
    # the build says what is wrong.
    with pytest.raises(
        TypeError, match=re.escape("extra keywords consent/en: expected a list")
    ):
        build_keyword_index({Intent.CONSENT: {"en": "yeah"}})
    with pytest.raises(TypeError, match=re.escape("text must be a str, not int")):
        build_keyword_index({Intent.CONSENT: {"en": ["yeah", 7]}})
    with pytest.raises(TypeError, match=re.escape("locale must be a str, not int")):
        build_keyword_index({Intent.CONSENT: {5: ["yeah"]}})


def test_bad_extra_words_in_an_iterator_are_reported_too() -> None:
    # Found by mutation testing: the cache key used the iterator up, so the
    # bad word went unreported and the good ones were dropped (fixed 0.3.0).
    with pytest.raises(TypeError, match=re.escape("text must be a str, not int")):
        build_keyword_index({Intent.CONSENT: {"en": iter(["yeah", 7])}})


def test_extra_words_in_an_iterator_are_kept() -> None:
    index = build_keyword_index({Intent.CONSENT: {"en": iter(["yeah mate"])}})
    assert parse_reply("Yeah mate", "en", keywords=index).intent is Intent.CONSENT
    assert parse_reply("Yeah mate", "en").intent is Intent.UNRECOGNIZED


def test_equal_extra_words_in_any_order_share_one_index() -> None:
    one = {
        Intent.CONSENT: {"en": ["yeah"], "fr": ["yeah"]},
        Intent.START: {"en": ["go"]},
    }
    other = {
        Intent.START: {"en": ["go"]},
        Intent.CONSENT: {"fr": ["yeah"], "en": ["yeah"]},
    }
    for languages in (None, ("en",)):
        first = build_keyword_index(one, languages=languages)
        assert build_keyword_index(other, languages=languages) is first
        assert build_keyword_index(dict(one), languages=languages) is first
        assert first.languages == (PACK_ORDER if languages is None else languages)
    # Different words are a different index.
    assert build_keyword_index({Intent.START: {"en": ["go"]}}) is not (
        build_keyword_index(one)
    )
