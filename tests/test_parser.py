"""Unit and property tests of the reply parser and the keyword index."""

from __future__ import annotations

import json
import time
from collections.abc import Mapping

import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from optin_core._enums import Intent, MatchRule
from optin_core._errors import RecordError, UnknownLocale
from optin_core._keywords import (
    KeywordCollision,
    build_keyword_index,
    default_keyword_index,
    lint_keywords,
    load_packs,
    load_sources,
)
from optin_core._locale import available_locales
from optin_core._normalize import fold, normalize
from optin_core._parser import parse_reply
from optin_core._records import ParsedReply

from .strategies import (
    any_text,
    decorations,
    keyword_texts,
    locales_any,
    stop_keywords,
    strong_stop_keywords,
)

# -- normalisation -------------------------------------------------------------


@pytest.mark.parametrize(
    "text",
    ["Oui", "OUI", " oui. ", "Oui !", "ＯＵＩ", "« Oui »", "o\u200bui", "Oui\u00a0!"],
)
def test_same_answer_however_typed(text: str) -> None:
    assert normalize(text) == "oui"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("Arrêt", "arret"),
        ("ARRET", "arret"),
        ("Sí", "si"),
        ("NÃO", "nao"),
        ("opt-out", "opt out"),
        ("OPTOUT", "opt out"),
        ("opt  out!", "opt out"),
        ("Opt_In", "opt in"),
        ("Stop ! Merci", "stop! merci"),
        ("« stop »", "stop"),
        ("N’a pas aimé", "n'a pas aime"),
        ("🛑 STOP 🛑", "stop"),
        ("", ""),
        ("\ud800", ""),
    ],
)
def test_normalize(text: str, expected: str) -> None:
    assert normalize(text) == expected


@given(any_text)
@example("İ")
@example("ǅ")
@example("ﬀ")
@example("x «")
@example("a « » b")
@example("optout_")
def test_normalize_is_idempotent(text: str) -> None:
    once = normalize(text)
    assert normalize(once) == once
    # The parser folds once; that single pass must already be the fixed point.
    assert fold(text) == once


def test_normalize_refuses_non_str() -> None:
    with pytest.raises(TypeError):
        normalize(b"stop")  # type: ignore[arg-type]


# -- parse_reply: properties ---------------------------------------------------


@given(any_text, locales_any)
def test_every_str_parses(text: str, locale: str | None) -> None:
    reply = parse_reply(text, locale)
    assert isinstance(reply.intent, Intent)
    assert reply.text == text
    assert ParsedReply.from_dict(json.loads(json.dumps(reply.to_dict()))) == reply


@given(any_text, locales_any, st.booleans())
def test_parse_is_deterministic(text: str, locale: str | None, lenient: bool) -> None:
    assert parse_reply(text, locale, lenient_consent=lenient) == parse_reply(
        text, locale, lenient_consent=lenient
    )


@given(stop_keywords, decorations, decorations, locales_any)
@example("optout", "", "_", None)
def test_decorations_never_change_a_stop(
    word: str, before: str, after: str, locale: str | None
) -> None:
    assert parse_reply(word, locale).intent is Intent.STOP
    assert parse_reply(before + word + after, locale).intent is Intent.STOP


@given(
    strong_stop_keywords,
    st.lists(
        st.sampled_from(["yes", "oui", "sí", "ja", "please", "me", "now"]), max_size=8
    ),
    locales_any,
)
def test_first_word_stop_is_never_consent(
    word: str, rest: list[str], locale: str | None
) -> None:
    text = " ".join([word, *rest])
    for lenient in (False, True):
        assert parse_reply(text, locale, lenient_consent=lenient).intent is Intent.STOP


@given(strong_stop_keywords, any_text, locales_any)
def test_text_starting_with_stop_word_is_never_consent(
    word: str, rest: str, locale: str | None
) -> None:
    reply = parse_reply(f"{word} {rest}", locale, lenient_consent=True)
    assert reply.intent is not Intent.CONSENT


@given(keyword_texts(Intent.CONSENT))
def test_decorated_consent_word_is_consent_in_its_chain(text: str) -> None:
    # Each consent word is consent for some shipped locale.
    assert any(
        parse_reply(text, loc).intent is Intent.CONSENT for loc in available_locales()
    )


@given(keyword_texts(Intent.HELP), locales_any)
def test_help_words_apply_to_everyone(text: str, locale: str | None) -> None:
    assert parse_reply(text, locale).intent is Intent.HELP


# -- parse_reply: examples -----------------------------------------------------


@pytest.mark.parametrize(
    ("text", "locale", "intent", "rule", "keyword", "pack"),
    [
        ("Yes", None, Intent.CONSENT, MatchRule.EXACT, "yes", "en"),
        ("Oui !", "fr", Intent.CONSENT, MatchRule.EXACT, "oui", "fr"),
        ("Oui", "fr-CA", Intent.CONSENT, MatchRule.EXACT, "oui", "fr"),
        ("STOP", "fr", Intent.STOP, MatchRule.EXACT, "stop", "fr"),
        ("STOP", "fr-CA", Intent.STOP, MatchRule.EXACT, "stop", "fr-CA"),
        ("Arrêt", "en", Intent.STOP, MatchRule.EXACT, "arret", "fr"),
        ("STOP please", "en", Intent.STOP, MatchRule.FIRST_WORD, "stop", "en"),
        (
            "stop texting me",
            "en",
            Intent.STOP,
            MatchRule.FIRST_WORD,
            "stop texting",
            "en",
        ),
        ("please stop", "en", Intent.STOP, MatchRule.SHORT_MESSAGE, "stop", "en"),
        ("yes stop", "en", Intent.STOP, MatchRule.SHORT_MESSAGE, "stop", "en"),
        (
            "Who is this? Stop texting me",
            "en",
            Intent.STOP,
            MatchRule.SENTENCE_START,
            "stop texting",
            "en",
        ),
        ("optout", "en", Intent.STOP, MatchRule.EXACT, "opt out", "en"),
        ("Liked “Reply YES”", "en", Intent.REACTION, MatchRule.REACTION, "liked", "en"),
        ("no thanks", "en", Intent.DECLINE, MatchRule.FIRST_WORD, "no", "en"),
        ("AIDE", "en", Intent.HELP, MatchRule.EXACT, "aide", "fr"),
        ("UNSTOP", "en", Intent.START, MatchRule.EXACT, "unstop", "en"),
    ],
)
def test_evidence(  # noqa: PLR0917 (one parametrized row)
    text: str,
    locale: str | None,
    intent: Intent,
    rule: MatchRule,
    keyword: str,
    pack: str,
) -> None:
    reply = parse_reply(text, locale)
    assert (reply.intent, reply.rule, reply.keyword, reply.locale) == (
        intent,
        rule,
        keyword,
        pack,
    )


def test_unrecognized_carries_no_keyword() -> None:
    reply = parse_reply("who is this?")
    assert reply == ParsedReply(
        intent=Intent.UNRECOGNIZED,
        keyword=None,
        rule=MatchRule.NONE,
        locale=None,
        text="who is this?",
    )


@pytest.mark.parametrize(
    ("text", "locale", "keyword"),
    [
        ("Yes please", "en", "yes"),
        ("yes, thank you", "en", "yes"),
        ("Yes I agree", "en", "yes"),
        ("Oui merci", "fr", "oui"),
        ("Ben oui", "fr-CA", "oui"),
        ("Sí, gracias", "es", "si"),
        ("ja hoor", "nl", "ja"),
        ("Ja bitte", "de", "ja"),
    ],
)
def test_lenient_consent(text: str, locale: str, keyword: str) -> None:
    assert parse_reply(text, locale).intent is Intent.UNRECOGNIZED
    reply = parse_reply(text, locale, lenient_consent=True)
    assert (reply.intent, reply.rule, reply.keyword) == (
        Intent.CONSENT,
        MatchRule.LENIENT,
        keyword,
    )


@pytest.mark.parametrize(
    "text",
    ["yes but who is this?", "Yes, wrong number", "yes stop", "Yes? Who?", "no"],
)
def test_lenient_consent_stays_careful(text: str) -> None:
    assert parse_reply(text, "en", lenient_consent=True).intent is not Intent.CONSENT


def test_served_languages_and_the_chain_decide_consent_not_stop() -> None:
    # Every shipped language is served by default (issue 10).
    assert parse_reply("Oui", "en").intent is Intent.CONSENT
    assert parse_reply("oui", "en", lenient_consent=True).intent is Intent.CONSENT
    english = build_keyword_index(languages=("en",))
    assert parse_reply("Oui", "en", keywords=english).intent is Intent.UNRECOGNIZED
    assert (
        parse_reply("oui merci", "en", keywords=english, lenient_consent=True).intent
        is Intent.UNRECOGNIZED
    )
    assert parse_reply("Oui", "fr", keywords=english).intent is Intent.CONSENT
    assert (
        parse_reply("Oui", None, default_locale="fr", keywords=english).intent
        is Intent.CONSENT
    )
    assert parse_reply("Baja", "en", keywords=english).intent is Intent.STOP
    assert (
        parse_reply("Oui", "garbage\x00", default_locale="fr", keywords=english).intent
        is Intent.CONSENT
    )


@pytest.mark.parametrize("locale", [1, b"fr", ["fr"], object()])
def test_non_str_locale_is_a_type_error(locale: object) -> None:
    with pytest.raises(TypeError):
        parse_reply("yes", locale)  # type: ignore[arg-type]


@pytest.mark.parametrize("text", [None, b"STOP", 1, ["stop"]])
def test_non_str_text_is_a_type_error(text: object) -> None:
    with pytest.raises(TypeError):
        parse_reply(text)  # type: ignore[arg-type]


def test_str_subclass_is_accepted() -> None:
    class Text(str):
        pass

    assert parse_reply(Text("STOP")).intent is Intent.STOP


@pytest.mark.parametrize(
    ("text", "intent"),
    [
        ("a" * 1_000_000, Intent.UNRECOGNIZED),
        ("STOP " + "please call me back " * 60_000, Intent.STOP),
        ("Please call me back. " * 50_000 + "Stop texting me.", Intent.STOP),
        ("😀 \u200b" * 400_000, Intent.UNRECOGNIZED),
        ("\ud800" * 1_000_000, Intent.UNRECOGNIZED),
        # Padding is collapsed before the windows apply (issue 10).
        (" " * 1_000_000 + "yes", Intent.CONSENT),
        ("yes" + " " * 1_000_000, Intent.CONSENT),
        ("\u200b" * 1_000_000 + "STOP", Intent.STOP),
        ("Please call me back " + "\n" * 1_000_000 + "stop texting me", Intent.STOP),
        ("a" + " " * 1_000_000 + "b" * 600, Intent.UNRECOGNIZED),
    ],
)
def test_megabyte_is_cheap(text: str, intent: Intent) -> None:
    parse_reply(text)
    start = time.perf_counter()
    reply = parse_reply(text)
    elapsed = time.perf_counter() - start
    assert reply.intent is intent
    # Generous bound for shared CI machines; typical is well under 1 ms.
    assert elapsed < 0.05


def test_prebuilt_replies_match_the_full_parse() -> None:
    from optin_core._parser import _parse

    for index in (default_keyword_index(), build_keyword_index(languages=("en",))):
        for chain, table in index._prebuilt.items():
            for raw, reply in table.items():
                assert _parse(raw, chain, index, False) == reply, raw


def test_the_fast_path_serves_each_locale_spelling_its_own_chain() -> None:
    # parse_reply's fast path looks a table up by (default, locale as sent):
    # each must be the table of the chain that negotiation gives.
    from optin_core import locale_chain

    index = default_keyword_index()
    assert index._fast["en"]
    for default, by_locale in index._fast.items():
        for locale, table in by_locale.items():
            chain = locale_chain(locale, default)
            assert table is index._prebuilt[chain], (default, locale)
    # And through the public function, a non-English default too.
    assert parse_reply("Oui", None, default_locale="fr").locale == "fr"
    assert parse_reply("ARRET", "fr_CA", default_locale="fr").intent is Intent.STOP


# -- ParsedReply serialisation -------------------------------------------------


def test_round_trip() -> None:
    reply = parse_reply("STOP please", "fr")
    data = reply.to_dict()
    assert data == {
        "intent": "stop",
        "keyword": "stop",
        "rule": "first_word",
        "locale": "fr",
        "text": "STOP please",
    }
    assert ParsedReply.from_dict(data) == reply


@pytest.mark.parametrize(
    ("data", "field"),
    [
        ({"intent": "maybe"}, "intent"),
        ({"rule": "magic"}, "rule"),
        ({"keyword": 3}, "keyword"),
        ({"locale": ["fr"]}, "locale"),
        ({"text": None}, "text"),
        ({"extra": 1}, "extra"),
    ],
)
def test_from_dict_names_the_field(data: Mapping[str, object], field: str) -> None:
    good = parse_reply("yes").to_dict()
    bad = {**good, **data}
    with pytest.raises(RecordError) as info:
        ParsedReply.from_dict(bad)
    assert info.value.field == field


def test_from_dict_missing_field_and_non_mapping() -> None:
    good = parse_reply("yes").to_dict()
    del good["rule"]
    with pytest.raises(RecordError) as info:
        ParsedReply.from_dict(good)
    assert info.value.field == "rule"
    with pytest.raises(RecordError):
        ParsedReply.from_dict([1, 2])  # type: ignore[arg-type]


# -- keyword packs and index ---------------------------------------------------


def test_packs_cover_every_locale_and_cite_sources() -> None:
    packs = load_packs()
    sources = load_sources()
    assert sorted(p["locale"] for p in packs) == sorted(available_locales())
    for entry in default_keyword_index().entries:
        assert entry.sources, entry
        for source in entry.sources:
            assert source in sources, (entry, source)
    for pack in packs:
        for item in pack.get("not_used", ()):
            assert item["why"]
            assert all(s in sources for s in item["sources"])


def test_every_locale_has_a_stop_word_and_help_word() -> None:
    index = default_keyword_index()
    for locale in available_locales():
        chain_words = {e.intent for e in index.entries if e.locale == locale}
        assert Intent.STOP in chain_words, locale


def test_regulatory_words_are_stop_words() -> None:
    # FCC per se words, Twilio's defaults, Canada's and France's.
    for word in [
        "stop", "quit", "end", "revoke", "opt out", "cancel", "unsubscribe",
        "stopall", "optout", "arret", "alto",
    ]:  # fmt: skip
        assert parse_reply(word).intent is Intent.STOP, word


def test_default_index_is_shared_and_immutable() -> None:
    index = default_keyword_index()
    assert build_keyword_index() is index
    assert build_keyword_index({}) is index
    with pytest.raises(AttributeError):
        index._stop = {}  # type: ignore[misc]
    assert "KeywordIndex" in repr(index)


def test_default_packs_have_no_collision() -> None:
    assert lint_keywords(default_keyword_index()) == ()


def test_policy_yes_as_start_is_reported() -> None:
    index = build_keyword_index({Intent.START: {"en": ["YES"]}})
    found = lint_keywords(index)
    assert len(found) == 1
    collision = found[0]
    assert isinstance(collision, KeywordCollision)
    assert collision.keyword == "yes"
    assert collision.intents == (Intent.CONSENT, Intent.START)
    assert "policy" in collision.sources
    # The fixed priority still reads YES as consent; the core decides.
    assert parse_reply("YES", keywords=index).intent is Intent.CONSENT


def test_policy_keywords() -> None:
    index = build_keyword_index(
        {
            Intent.CONSENT: {"en": ["ok", "Sure"]},
            Intent.STOP: {"fr_CA": ["fini"]},
            Intent.HELP: {"de": ["Hallo?"]},
        }
    )
    assert parse_reply("OK!", keywords=index).intent is Intent.CONSENT
    assert parse_reply("ok").intent is Intent.UNRECOGNIZED
    assert parse_reply("sure", "fr", keywords=index).intent is Intent.CONSENT
    reply = parse_reply("Fini merci", "en", keywords=index)
    assert (reply.intent, reply.locale) == (Intent.STOP, "fr-CA")
    assert parse_reply("fini le travail", keywords=index).intent is Intent.UNRECOGNIZED
    assert parse_reply("hallo", keywords=index).intent is Intent.HELP
    # Policy stop words collide visibly with the packs' other intents.
    clash = build_keyword_index({Intent.STOP: {"en": ["no"]}})
    assert [c.keyword for c in lint_keywords(clash)] == ["no"]
    assert parse_reply("no", keywords=clash).intent is Intent.STOP


@pytest.mark.parametrize(
    ("extra", "error"),
    [
        ({Intent.STOP: {"xx": ["fin"]}}, UnknownLocale),
        ({Intent.STOP: {"en": ["!!!"]}}, ValueError),
        ({Intent.REACTION: {"en": ["lol"]}}, ValueError),
        ({Intent.STOP: {"en": "fin"}}, TypeError),
    ],
)
def test_bad_policy_keywords(extra: object, error: type[Exception]) -> None:
    with pytest.raises(error):
        build_keyword_index(extra)  # type: ignore[arg-type]
