"""Languages of the organisation (issue 10).

Consent words of every language a policy serves count for every contact
(``Policy.languages``, every shipped pack by default), consent stays the
whole message, and a keyword of one language is answered in it (ARRET ->
the French stop confirmation) and gives a contact without a locale theirs.
"""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from optin_core import (
    Consent,
    ConsentState,
    Inbound,
    Intent,
    KeywordCollision,
    MatchRule,
    MessageKind,
    Policy,
    PolicyError,
    build_keyword_index,
    decide,
    keyword_language,
    parse_reply,
)
from optin_core._keywords import PACK_ORDER, default_keyword_index, lint_keywords
from optin_core._locale import available_locales

from .flows import CONTACT, Flow, at

YESES = ["Oui", "Sí", "Sim", "Ja", "Sì"]


def _pending(pol: Policy, locale: str | None = None) -> Flow:
    flow = Flow(pol)
    flow.request(0, locale=locale)
    assert flow.consent.state is ConsentState.PENDING
    return flow


# -- Done when: the five yeses, by default and restricted ----------------------


@pytest.mark.parametrize("text", YESES)
def test_every_shipped_yes_opts_in_a_contact_without_locale(text: str) -> None:
    pol = Policy(org_name="Acme")
    assert pol.languages == PACK_ORDER
    flow = _pending(pol)
    decision = flow.reply(text, 1)
    assert flow.consent.state is ConsentState.OPTED_IN
    assert decision.reply is not None
    assert (decision.reply.intent, decision.reply.rule) == (
        Intent.CONSENT,
        MatchRule.EXACT,
    )
    # And at the parser, for a contact with no locale at all.
    assert parse_reply(text, None).intent is Intent.CONSENT
    assert parse_reply(text.upper() + " !", None).intent is Intent.CONSENT


@pytest.mark.parametrize("text", YESES)
def test_a_policy_restricted_to_english_does_not_accept_them(text: str) -> None:
    pol = Policy(org_name="Acme", languages=("en",))
    assert pol.languages == ("en",)
    flow = _pending(pol)
    decision = flow.reply(text, 1)
    assert flow.consent.state is ConsentState.PENDING
    assert [m.kind for m in decision.outgoing] == [MessageKind.REMINDER]
    assert parse_reply(text, None, keywords=pol.keywords).intent is Intent.UNRECOGNIZED
    # YES still is, and stop words of every pack still stop.
    assert parse_reply("Yes", None, keywords=pol.keywords).intent is Intent.CONSENT
    assert parse_reply("ARRET", None, keywords=pol.keywords).intent is Intent.STOP


def test_the_contacts_own_chain_always_counts() -> None:
    pol = Policy(org_name="Acme", languages=())
    assert pol.languages == ()
    assert parse_reply("Oui", "fr", keywords=pol.keywords).intent is Intent.CONSENT
    assert parse_reply("Oui", "fr-CA", keywords=pol.keywords).intent is Intent.CONSENT
    assert parse_reply("Oui", "en", keywords=pol.keywords).intent is Intent.UNRECOGNIZED
    # fr-CA serves French's words too.
    canadian = Policy(org_name="Acme", languages=("fr-CA",))
    assert canadian.languages == ("fr-CA",)
    assert parse_reply("Oui", "en", keywords=canadian.keywords).intent is Intent.CONSENT


def test_consent_stays_strict_in_every_language() -> None:
    for text in ("Oui merci", "Sí, gracias", "ja bitte", "sim obrigado", "oui oui"):
        assert parse_reply(text, None).intent is Intent.UNRECOGNIZED, text


def test_re_subscribe_words_follow_the_served_languages() -> None:
    assert parse_reply("INICIAR", "en").intent is Intent.START
    english = build_keyword_index(languages=("en",))
    assert parse_reply("INICIAR", "en", keywords=english).intent is Intent.UNRECOGNIZED
    assert parse_reply("INICIAR", "es", keywords=english).intent is Intent.START


# -- the contact's own language wins ---------------------------------------------


def test_a_served_yes_that_is_another_word_for_the_contact_is_not_consent() -> None:
    # "Já" is "already" in Portuguese (a polite word of the pt pack), and
    # "ja" the German and Dutch yes.
    assert parse_reply("Já", "pt").intent is Intent.UNRECOGNIZED
    assert parse_reply("ja", "pt-BR").intent is Intent.UNRECOGNIZED
    assert parse_reply("Já", None).intent is Intent.CONSENT
    assert parse_reply("Ja", "de").intent is Intent.CONSENT
    lenient = parse_reply("Já obrigado", "pt", lenient_consent=True)
    assert lenient.intent is not Intent.CONSENT
    assert parse_reply("Ja danke", "de", lenient_consent=True).intent is Intent.CONSENT


# -- the language of the keyword ---------------------------------------------------


@pytest.mark.parametrize(
    ("text", "locale", "pack", "language"),
    [
        ("Oui", None, "fr", "fr"),
        ("Sí", None, "es", "es"),
        ("Sì", None, "it", "it"),
        ("SÌ !", None, "it", "it"),
        ("« sì »", None, "it", "it"),
        ("Si", None, "es", None),  # Spanish or Italian: the accent is missing
        ("Sim", None, "pt", "pt"),
        ("Ja", None, "de", None),  # German or Dutch
        ("Ja", "nl", "nl", None),  # shared: the contact's locale answers
        ("Sì", "es", "es", None),  # the contact's chain lists "si": es first
        ("ARRET", "en", "fr", "fr"),
        ("ARRET", "fr-CA", "fr-CA", "fr-CA"),
        ("AIDE", "en", "fr", "fr"),
        ("STOP", "en", "en", None),  # English and French (and more)
        ("STOP", "fr", "fr", None),
        ("Arrêtez de m'écrire", "en", "fr", "fr"),
        ("Bitte keine SMS mehr", None, "de", "de"),
        ("please stop", "fr", "fr", None),
        ("Liked “Reply YES”", "en", "en", None),  # a reaction is no answer
    ],
)
def test_keyword_language(
    text: str, locale: str | None, pack: str, language: str | None
) -> None:
    reply = parse_reply(text, locale)
    assert reply.locale == pack
    assert keyword_language(reply) == language
    assert keyword_language(reply, default_keyword_index()) == language


def test_an_unrecognized_or_reclassified_reply_has_no_keyword_language() -> None:
    assert keyword_language(parse_reply("who is this?")) is None
    reply = parse_reply("Oui")
    import attrs

    assert keyword_language(attrs.evolve(reply, keyword="ouais")) is None
    assert keyword_language(attrs.evolve(reply, locale="de")) is None


def test_arret_from_an_english_contact_gets_the_french_stop_confirmation() -> None:
    pol = Policy(org_name="Acme")
    flow = _pending(pol, locale="en")
    decision = flow.reply("ARRET", 1)
    assert flow.consent.state is ConsentState.STOPPED
    (message,) = decision.outgoing
    assert message.kind is MessageKind.STOP_CONFIRMATION
    assert message.locale == "fr"
    assert message.text == pol.message(MessageKind.STOP_CONFIRMATION, "fr")[0]
    assert message.text != pol.message(MessageKind.STOP_CONFIRMATION, "en")[0]
    # The contact's own locale is kept: only the answer follows the keyword.
    assert flow.consent.locale == "en"


def test_aide_gets_the_french_help_and_stop_the_contacts_language() -> None:
    pol = Policy(org_name="Acme")
    flow = _pending(pol, locale="en")
    (help_answer,) = flow.reply("AIDE", 1).outgoing
    assert (help_answer.kind, help_answer.locale) == (MessageKind.HELP, "fr")
    # STOP is English and French: a French contact is answered in French,
    # an English one in English.
    french = _pending(pol, locale="fr")
    (confirmation,) = french.reply("STOP", 1).outgoing
    assert confirmation.locale == "fr"
    english = _pending(pol, locale="en")
    (confirmation,) = english.reply("STOP", 1).outgoing
    assert confirmation.locale == "en"


def test_a_keywords_language_becomes_the_locale_of_a_contact_without_one() -> None:
    pol = Policy(org_name="Acme")
    consent = Consent.new(CONTACT)
    assert consent.locale is None
    decision = decide(consent, Inbound(text="AIDE", at=at(0), message_id="m1"), pol)
    assert decision.consent.locale == "fr"
    assert decision.outgoing[0].locale == "fr"
    # A shared keyword leaves it unknown, and is answered in the default.
    decision = decide(consent, Inbound(text="HELP", at=at(0), message_id="m1"), pol)
    assert decision.consent.locale is None
    assert decision.outgoing[0].locale == "en"
    decision = decide(consent, Inbound(text="Stopp", at=at(0), message_id="m1"), pol)
    assert decision.consent.locale == "de"
    assert decision.outgoing[0].locale == "de"


@pytest.mark.parametrize(
    ("text", "language"),
    [("Oui", "fr"), ("Sí", "es"), ("Sim", "pt"), ("Sì", "it"), ("Ja", "en")],
)
def test_the_opt_in_confirmation_is_in_the_language_of_the_yes(
    text: str, language: str
) -> None:
    # A request sent without a locale is in the policy's default (English),
    # and records it; the yes is then answered in its own language ("Ja":
    # German or Dutch, so the contact's).
    pol = Policy(org_name="Acme")
    flow = _pending(pol)
    (confirmation,) = flow.reply(text, 1).outgoing
    assert confirmation.kind is MessageKind.OPT_IN_CONFIRMATION
    assert confirmation.locale == language


def test_the_policy_default_locale_settles_a_shared_yes() -> None:
    dutch = Policy(org_name="Acme", default_locale="nl")
    reply = parse_reply("Ja", None, default_locale="nl", keywords=dutch.keywords)
    assert (reply.locale, keyword_language(reply, dutch.keywords)) == ("nl", None)
    flow = _pending(dutch)
    (confirmation,) = flow.reply("Ja", 1).outgoing
    assert confirmation.locale == "nl"


# -- the setting -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("given", "expected"),
    [
        (None, PACK_ORDER),
        (("fr", "en"), ("en", "fr")),
        (["fr_FR", "FR", "pt-BR"], ("fr", "pt")),
        (("fr-ca",), ("fr-CA",)),
        ((), ()),
        (frozenset({"de", "nl"}), ("de", "nl")),
    ],
)
def test_languages_are_canonical(given: object, expected: tuple[str, ...]) -> None:
    pol = Policy(org_name="Acme", languages=given)  # type: ignore[arg-type]
    assert pol.languages == expected
    assert pol.keywords.languages == expected


@pytest.mark.parametrize("bad", [("xx",), ("en", "klingon"), "en", (1,), 3])
def test_an_unknown_language_is_a_policy_error_listing_the_available(
    bad: object,
) -> None:
    with pytest.raises(PolicyError) as info:
        Policy(org_name="Acme", languages=bad)  # type: ignore[arg-type]
    assert info.value.setting == "languages"
    for locale in available_locales():
        assert locale in str(info.value)


def test_indexes_without_extra_words_are_shared_per_languages() -> None:
    assert build_keyword_index(languages=None) is default_keyword_index()
    assert build_keyword_index(languages=reversed(PACK_ORDER)) is (
        default_keyword_index()
    )
    english = build_keyword_index(languages=("en",))
    assert build_keyword_index(languages=["EN"]) is english
    assert Policy(org_name="A", languages=("en",)).keywords is english
    assert english is not default_keyword_index()


# -- lint: consent in one served language, something else in another -------------


def test_default_policy_lints_clean() -> None:
    assert Policy(org_name="Acme").lint() == ()
    assert lint_keywords(build_keyword_index(languages=("en",))) == ()


def test_a_yes_that_is_another_languages_start_word_is_reported() -> None:
    # "ja" is the German and Dutch yes; a policy makes it a Spanish START.
    extra = {Intent.START: {"es": ["ja"]}}
    found = Policy(org_name="Acme", extra_keywords=extra).lint()
    assert found == (
        KeywordCollision(
            keyword="ja",
            locale="en",
            intents=(Intent.CONSENT, Intent.START),
            sources=("native", "policy"),
            locales=("es", "de", "nl"),
        ),
    )
    # Serving Spanish only, German and Dutch contacts still see both.
    only_es = Policy(org_name="Acme", extra_keywords=extra, languages=("es",))
    assert [(c.locale, c.locales) for c in only_es.lint()] == [("de", ("es", "de"))]
    # Serving no language beyond each contact's chain, no chain sees both.
    chains_only = Policy(org_name="Acme", extra_keywords=extra, languages=())
    assert chains_only.lint() == ()


def test_a_yes_that_is_another_languages_stop_word_is_reported() -> None:
    found = Policy(
        org_name="Acme", extra_keywords={Intent.STOP: {"it": ["sim"]}}
    ).lint()
    assert [(c.keyword, c.intents, c.locales) for c in found] == [
        ("sim", (Intent.STOP, Intent.CONSENT), ("pt", "it"))
    ]


@given(st.sampled_from(YESES), st.sampled_from([None, *available_locales()]))
def test_a_served_yes_is_consent_for_every_locale_but_its_false_friend(
    text: str, locale: str | None
) -> None:
    reply = parse_reply(text, locale)
    if locale == "pt" and text == "Ja":
        assert reply.intent is Intent.UNRECOGNIZED
    else:
        assert reply.intent is Intent.CONSENT
