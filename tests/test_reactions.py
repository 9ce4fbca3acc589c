"""Reactions and quotes of our own words (issue 16): a 👍 on the opt-in
request must never opt the contact out, nor opt them in.

Three things are tested here: the reaction formats of the packs (iOS
Messages, Google Messages, Samsung Messages, in every shipped locale, each
with its source), the removal of our own wording quoted back
(``parse_reply(..., ours=...)``, which ``decide`` passes), and the rule for
sentences about stopping something else ("Yes, let's make them stop!").
"""

from __future__ import annotations

import json
import re
import time
from pathlib import Path

import attrs
import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

from optin_core import (
    AuditEvent,
    Consent,
    ConsentState,
    Inbound,
    MessageKind,
    ParsedReply,
    Policy,
    RecordError,
    RequestOptIn,
    canonical_bytes,
    decide,
    parse_reply,
    verify,
)
from optin_core._chain import event_canonical, event_digest
from optin_core._enums import Intent, MatchRule, Trigger
from optin_core._keywords import default_keyword_index, load_packs, load_sources
from optin_core._locale import available_locales
from optin_core._normalize import normalize
from optin_core._normalize import words as _words
from optin_core._parser import (
    MIN_QUOTE_WORDS,
    OwnWords,
    own_words,
)

from .flows import CONTACT, T0, at
from .strategies import (
    REACTION_SHAPES,
    any_text,
    automatic_kinds,
    cut_quotes,
    message_locales,
    reaction_emoji,
    reactions_to,
    wording_policies,
)

ACME = Policy(org_name="Acme")
DOCS = Path(__file__).parent.parent / "docs" / "parsing.md"
_KINDS = [k for k in MessageKind if k is not MessageKind.TEXT]


def _said(kind: MessageKind, locale: str | None = "en", p: Policy = ACME) -> str:
    return p.message(kind, locale)[0]


REQUEST = _said(MessageKind.OPT_IN_REQUEST)


# -- the formats, as data ------------------------------------------------------


def test_every_locale_has_ios_google_and_samsung_formats_with_sources() -> None:
    sources = load_sources()
    for pack in load_packs():
        formats = pack["reactions"]["formats"]
        clients = {f["client"] for f in formats}
        assert {"iOS Messages", "Google Messages", "Samsung Messages"} <= clients, pack[
            "locale"
        ]
        for f in formats:
            assert f["leads"], f
            assert f["what"], f
            assert f["sources"], f
            assert all(s in sources for s in f["sources"]), f
        # Google's shape, an emoji then a preposition, in every language.
        assert any(
            lead.startswith("* ")
            for f in formats
            if f["client"] == "Google Messages"
            for lead in f["leads"]
        ), pack["locale"]
    assert sources["observed"]["url"] == ""
    assert "unverified" in sources["observed"]["note"]


def test_docs_list_every_reaction_format() -> None:
    docs = DOCS.read_text(encoding="utf-8")
    for _client, lead, tails in REACTION_SHAPES:
        assert f"`{lead}`" in docs, lead
        for tail in tails:
            assert not tail or f"`{tail}`" in docs, tail


def test_third_party_data_cites_sources() -> None:
    sources = load_sources()
    sections = [p["third_party"] for p in load_packs() if "third_party" in p]
    assert {"en", "fr"} <= {p["locale"] for p in load_packs() if "third_party" in p}
    for section in sections:
        assert section["sources"]
        assert all(s in sources for s in section["sources"])
        for key in ("stop", "yes", "subjects", "determiners", "ours"):
            assert section[key], key


# -- reactions, by client and locale -------------------------------------------


@pytest.mark.parametrize(
    ("text", "locale", "keyword", "pack"),
    [
        # Google Messages: the issue's own example, and its localized forms.
        (f"👍 to “{REQUEST}”", "en", "* to", "en"),
        ('❤️ to "Reply YES or STOP"', "en", "* to", "en"),
        ("👍 a “Responda SI o ALTO”", "es", "* a", "es"),
        ("👍 a “Rispondi SI o STOP”", "it", "* a", "it"),
        ("😂 a “Responda SIM ou PARAR”", "pt", "* a", "pt"),
        ("👍 à « Répondez OUI ou STOP »", "fr", "* a", "fr"),
        ("👍 à « Répondez OUI ou ARRET »", "fr-CA", "* a", "fr-CA"),
        ("👍 zu „Antworten Sie JA oder STOP“", "de", "* zu", "de"),
        ("👍 auf „Antworten Sie JA oder STOP“", "de", "* auf", "de"),
        ("👍 op „Antwoord JA of STOP“", "nl", "* op", "nl"),
        ("👍🏽 to 'Reply STOP to opt out'", "en", "* to", "en"),
        ("\u200b👨‍👩‍👧 to “STOP”", "en", "* to", "en"),
        # iOS 18 emoji tapbacks.
        ("Reacted 😂 to “Reply YES or STOP”", "en", "reacted * to", "en"),
        ("A réagi avec 😂 à « STOP »", "fr", "a reagi avec * a", "fr"),
        ("Reaccionó con 🙏 a “ALTO”", "es", "reacciono con * a", "es"),
        ("Hat mit 😂 auf „STOP“ reagiert", "de", "hat mit * auf", "de"),
        ("Reageerde met ❤️ op „STOP“", "nl", "reageerde met * op", "nl"),
        # The German "Hat „…“ geliked".
        ("Hat „Antworten Sie JA oder STOP“ geliked", "de", "hat", "de"),
    ],
)
def test_reaction_formats(text: str, locale: str, keyword: str, pack: str) -> None:
    for ours in (None, ACME.own_words):
        reply = parse_reply(text, locale, ours=ours)
        assert (reply.intent, reply.rule, reply.keyword, reply.locale) == (
            Intent.REACTION,
            MatchRule.REACTION,
            keyword,
            pack,
        )


@pytest.mark.parametrize(
    ("text", "intent"),
    [
        # The emoji must open the text: "to" + quote is no reaction.
        ('to "Reply YES or STOP"', Intent.STOP),
        ('Ⓢ to "Reply YES or STOP"', Intent.STOP),
        # Text after the quote is the contact's own.
        ("👍 to “Reply YES” STOP", Intent.STOP),
        ("👍 to “Reply YES” stop texting me", Intent.STOP),
        ("👍 to “hello” who is this?", Intent.UNRECOGNIZED),
        ("👍 to", Intent.UNRECOGNIZED),
        ("👍 to “", Intent.UNRECOGNIZED),
        ("👍 stop", Intent.STOP),
    ],
)
def test_what_is_not_a_google_reaction(text: str, intent: Intent) -> None:
    assert parse_reply(text, "en").intent is intent


def test_the_reaction_is_attributed_to_the_contacts_language() -> None:
    text = "👍 a “Responda SI o ALTO”"
    assert parse_reply(text, "pt").locale == "pt"
    assert parse_reply(text, "it").locale == "it"
    # A lead no chain lists goes to the first pack in PACK_ORDER.
    assert parse_reply(text, "en").locale == "fr"


# -- the property: a reaction to what we sent is never STOP or CONSENT ---------


@given(wording_policies, automatic_kinds, message_locales, st.data())
def test_a_reaction_quoting_our_message_is_never_stop_or_consent(
    policy: Policy, kind: MessageKind, locale: str | None, data: st.DataObject
) -> None:
    said = _said(kind, locale, policy)
    reaction = data.draw(reactions_to(said))
    for ours in (None, policy.own_words):
        reply = parse_reply(reaction, locale, keywords=policy.keywords, ours=ours)
        assert reply.intent is Intent.REACTION, reply
    reply = parse_reply(
        reaction, locale, keywords=policy.keywords, ours=policy.own_words
    )
    assert reply.quoted is not None
    # Through decide, while the request is pending: a reminder, never a change.
    pending = decide(Consent.new(CONTACT), RequestOptIn(at=T0, locale=locale), policy)
    d = decide(
        pending.consent, Inbound(text=reaction, at=at(1), message_id="r"), policy
    )
    assert d.consent.state is ConsentState.PENDING
    assert [e.trigger for e in d.events] == [Trigger.REMIND]
    assert d.reply is not None
    assert d.reply.quoted is not None


@given(wording_policies, automatic_kinds, message_locales, st.data())
def test_a_cut_or_unbalanced_reaction_to_our_message_is_never_stop_or_consent(
    policy: Policy, kind: MessageKind, locale: str | None, data: st.DataObject
) -> None:
    said = _said(kind, locale, policy)
    text = data.draw(cut_quotes(data.draw(reactions_to(said))))
    reply = parse_reply(text, locale, keywords=policy.keywords, ours=policy.own_words)
    assert reply.intent not in (Intent.STOP, Intent.CONSENT), (text, reply)
    assert reply.text == text


@given(reaction_emoji, st.sampled_from(_KINDS), st.sampled_from(available_locales()))
def test_our_message_pasted_back_with_an_emoji_is_never_stop_or_consent(
    emoji: str, kind: MessageKind, locale: str
) -> None:
    said = _said(kind, locale)
    for text in (said, f"{emoji} {said}", f"{said} {emoji}", f"> {said}"):
        reply = parse_reply(text, locale, ours=ACME.own_words)
        assert reply.intent is Intent.UNRECOGNIZED, (text, reply)
        assert reply.quoted is kind


@given(any_text, st.sampled_from(_KINDS), st.data())
def test_quotes_inside_anything_never_raise(
    junk: str, kind: MessageKind, data: st.DataObject
) -> None:
    said = _said(kind, "fr")
    cut = data.draw(st.integers(0, len(said)))
    text = data.draw(
        st.sampled_from(
            [junk + said[:cut], said[cut:] + junk, junk + "“" + said + junk]
        )
    )
    reply = parse_reply(text, "fr", ours=ACME.own_words)
    assert reply.text == text
    assert ParsedReply.from_dict(json.loads(json.dumps(reply.to_dict()))) == reply


# -- quotes of our own words: what remains decides -----------------------------


@pytest.mark.parametrize("locale", available_locales())
@pytest.mark.parametrize("kind", _KINDS)
def test_each_kind_pasted_back_is_recorded_as_quoted(
    kind: MessageKind, locale: str
) -> None:
    said = _said(kind, locale)
    reply = parse_reply(said, locale, ours=ACME.own_words)
    assert (reply.intent, reply.quoted) == (Intent.UNRECOGNIZED, kind)
    assert (reply.keyword, reply.locale, reply.rule) == (None, None, MatchRule.NONE)


@pytest.mark.parametrize(
    ("text", "intent", "keyword", "rule"),
    [
        (f"STOP {REQUEST}", Intent.STOP, "stop", MatchRule.EXACT),
        (f"“{REQUEST}” STOP", Intent.STOP, "stop", MatchRule.EXACT),
        (
            f"{REQUEST}\nStop texting me",
            Intent.STOP,
            "stop texting",
            MatchRule.FIRST_WORD,
        ),
        (
            f"Who is this? “{REQUEST}” stop",
            Intent.STOP,
            "stop",
            MatchRule.SENTENCE_START,
        ),
        (f"{REQUEST} Yes", Intent.CONSENT, "yes", MatchRule.EXACT),
        (f"Yes!\n\n> {REQUEST}", Intent.CONSENT, "yes", MatchRule.EXACT),
        (f"{REQUEST} help", Intent.HELP, "help", MatchRule.EXACT),
        (f"No thanks. “{REQUEST}”", Intent.DECLINE, "no", MatchRule.FIRST_WORD),
        (f"Who is this? “{REQUEST}”", Intent.UNRECOGNIZED, None, MatchRule.NONE),
        (f"I'm Martha from Acme\n{REQUEST}", Intent.UNRECOGNIZED, None, MatchRule.NONE),
        (f"Liked “{REQUEST}", Intent.REACTION, "liked", MatchRule.REACTION),
        (f"👍 to “{REQUEST[:100]}", Intent.REACTION, "* to", MatchRule.REACTION),
        (f"👍 to “{REQUEST}’", Intent.REACTION, "* to", MatchRule.REACTION),
        (f"👍 to «{REQUEST}“", Intent.REACTION, "* to", MatchRule.REACTION),
        (f"👍 “{REQUEST}”", Intent.UNRECOGNIZED, None, MatchRule.NONE),
    ],
)
def test_what_remains_after_the_quote_decides(
    text: str, intent: Intent, keyword: str | None, rule: MatchRule
) -> None:
    reply = parse_reply(text, "en", ours=ACME.own_words)
    assert (reply.intent, reply.keyword, reply.rule) == (intent, keyword, rule)
    assert reply.quoted is MessageKind.OPT_IN_REQUEST
    assert reply.text == text


def test_without_our_texts_the_wording_decides() -> None:
    # What the default parser did before: our STOP read as the contact's.
    # ``decide`` always passes the policy's texts.
    assert parse_reply(REQUEST, "en").intent is Intent.STOP
    assert parse_reply(REQUEST, "en").quoted is None
    assert parse_reply(REQUEST, "en", ours=ACME.own_words).intent is Intent.UNRECOGNIZED


@pytest.mark.parametrize(
    ("cut", "kind"),
    [
        # A cut mid-word, with or without an ellipsis, at the segment boundary.
        (REQUEST[:97], MessageKind.OPT_IN_REQUEST),
        (REQUEST[:97] + "…", MessageKind.OPT_IN_REQUEST),
        ("…" + REQUEST[40:], MessageKind.OPT_IN_REQUEST),
        (_said(MessageKind.REMINDER)[:70] + "...", MessageKind.REMINDER),
    ],
)
def test_a_quote_cut_short_is_still_ours(cut: str, kind: MessageKind) -> None:
    reply = parse_reply(f"Liked “{cut}", "en", ours=ACME.own_words)
    assert (reply.intent, reply.quoted) == (Intent.REACTION, kind)


@pytest.mark.parametrize(
    "text",
    [
        # Fewer than MIN_QUOTE_WORDS words of ours, or too few characters:
        # the contact's own sentence, and a stop.
        "Reply STOP to opt out",
        "To opt out, reply STOP.",
        "I will receive no more messages? Good. STOP",
        "reply stop to opt out start",
        "Stop. Messages are monitored and retained?? by whom",
    ],
)
def test_short_overlaps_with_our_words_are_the_contacts(text: str) -> None:
    reply = parse_reply(text, "en", ours=ACME.own_words)
    assert reply.intent is Intent.STOP
    assert reply.quoted is None


def test_a_quote_in_a_megabyte_and_a_stop_at_its_end() -> None:
    body = (REQUEST + " ") * 9000
    assert parse_reply(body, "en", ours=ACME.own_words).intent is Intent.UNRECOGNIZED
    assert parse_reply(body, "en").intent is Intent.STOP
    for ending, intent in (
        ("STOP", Intent.STOP),
        ("Stop texting me.", Intent.STOP),
        ("thanks", Intent.UNRECOGNIZED),
    ):
        for text in (
            body + ending,
            f"Liked “{body}” {ending}",
            f"👍 to “{body}{ending}",
        ):
            reply = parse_reply(text, "en", ours=ACME.own_words)
            assert reply.intent is intent or (
                intent is Intent.UNRECOGNIZED and reply.intent is Intent.REACTION
            ), (ending, text[:20], reply.intent)
            assert reply.quoted is MessageKind.OPT_IN_REQUEST
    tail_reply = parse_reply(body + "Stop texting me.", "en", ours=ACME.own_words)
    assert tail_reply.rule is MatchRule.SENTENCE_START


@pytest.mark.parametrize(
    "text",
    [
        (REQUEST + " ") * 9000,
        "Liked “" + (REQUEST + " ") * 9000,
        "👍 to “" + REQUEST * 9000 + "”",
        "“" * 1_000_000,
        "reply yes to agree or stop " * 40_000,
        ("Reply YES to agree " * 60_000)[:1_000_000],
    ],
)
def test_megabyte_with_our_texts_is_cheap(text: str) -> None:
    parse_reply(text, "en", ours=ACME.own_words)
    start = time.perf_counter()
    parse_reply(text, "en", ours=ACME.own_words)
    # Generous bound for shared CI machines; typical is well under 1 ms.
    assert time.perf_counter() - start < 0.05


# -- the index of our words ----------------------------------------------------


def test_a_policy_indexes_every_message_it_sends_once() -> None:
    assert isinstance(ACME.own_words, OwnWords)
    assert ACME.own_words.kinds == frozenset(_KINDS)
    # Eight locales and seven kinds; a few renderings coincide.
    assert 40 <= len(ACME.own_words) <= len(_KINDS) * len(available_locales())
    assert "OwnWords" in repr(ACME.own_words)
    with pytest.raises(AttributeError):
        ACME.own_words._grams = {}  # type: ignore[misc]
    assert ACME.own_words is ACME.own_words


def test_template_overrides_and_message_hooks_are_our_words() -> None:
    custom = "From {org_name}: answer YES to accept; to end these texts, reply STOP"
    p = Policy(org_name="Acme", templates={"en": {"reminder": custom}})
    said = custom.replace("{org_name}", "Acme")
    assert parse_reply(said, "en", ours=p.own_words).quoted is MessageKind.REMINDER
    assert parse_reply(said, "en", ours=ACME.own_words).intent is Intent.STOP

    @attrs.frozen(kw_only=True)
    class Hooked(Policy):
        def message(self, kind: MessageKind, locale: str | None) -> tuple[str, str]:
            if kind is MessageKind.HELP:
                return "Acme help desk: call us any day, or reply STOP to end it.", "en"
            return super().message(kind, locale)

    hooked = Hooked(org_name="Acme")
    text = "👍 “Acme help desk: call us any day, or reply STOP to end it.”"
    assert parse_reply(text, "en", ours=hooked.own_words).quoted is MessageKind.HELP
    # Through decide: the hook's wording is not the contact's stop.
    pending = decide(Consent.new(CONTACT), RequestOptIn(at=T0), hooked)
    d = decide(pending.consent, Inbound(text=text, at=at(1), message_id="h"), hooked)
    assert d.consent.state is ConsentState.PENDING


def test_own_words_accepts_mappings_and_pairs_and_refuses_the_rest() -> None:
    said = _said(MessageKind.HELP)
    by_map = own_words({MessageKind.HELP: said})
    by_list = own_words({MessageKind.HELP: [said, "short"]})
    by_pairs = own_words([(MessageKind.HELP, said)])
    assert own_words(by_map) is by_map
    for index in (by_map, by_list, by_pairs):
        assert len(index) == 1  # "short" is too short to be quoted at length
        assert parse_reply(said, ours=index).quoted is MessageKind.HELP
    # parse_reply builds the index itself from a mapping (once per call).
    assert parse_reply(said, ours={MessageKind.HELP: said}).quoted is MessageKind.HELP
    assert parse_reply("yes", ours={MessageKind.HELP: said}).intent is Intent.CONSENT
    with pytest.raises(TypeError):
        own_words("Reply STOP")  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        own_words({"help": said})  # type: ignore[dict-item]
    with pytest.raises(TypeError):
        own_words([(MessageKind.HELP, b"bytes")])  # type: ignore[list-item]
    with pytest.raises(TypeError):
        parse_reply("yes", ours=3)  # type: ignore[arg-type]
    assert MIN_QUOTE_WORDS == 6
    assert len(own_words(())) == 0


# -- the evidence: ParsedReply.quoted, in dicts and in the chain ---------------


def test_quoted_is_written_only_when_set() -> None:
    plain = parse_reply("who is this?", ours=ACME.own_words)
    assert "quoted" not in plain.to_dict()
    reply = parse_reply(f"👍 to “{REQUEST}”", "en", ours=ACME.own_words)
    data = reply.to_dict()
    assert data["quoted"] == "opt_in_request"
    assert ParsedReply.from_dict(data) == reply
    assert ParsedReply.from_dict(json.loads(json.dumps(data))).quoted is (
        MessageKind.OPT_IN_REQUEST
    )
    bounded = attrs.evolve(reply, text=reply.text * 20).bounded(64)
    assert bounded.quoted is MessageKind.OPT_IN_REQUEST
    assert bounded.full_length == len(reply.text) * 20
    assert ParsedReply.from_dict(bounded.to_dict()) == bounded


@pytest.mark.parametrize("bad", ["opt-in", 3, "", ["help"], True])
def test_a_bad_quoted_names_the_field(bad: object) -> None:
    data = {**parse_reply("yes").to_dict(), "quoted": bad}
    with pytest.raises(RecordError) as info:
        ParsedReply.from_dict(data)
    assert info.value.field == "quoted"


def _quoted_event() -> tuple[AuditEvent, Consent, tuple[AuditEvent, ...]]:
    first = decide(Consent.new(CONTACT), RequestOptIn(at=T0), ACME)
    text = f"❤️ to “{REQUEST}”"
    d = decide(first.consent, Inbound(text=text, at=at(1), message_id="m1"), ACME)
    (event,) = d.events
    return event, d.consent, (*first.events, event)


def test_a_quoted_reply_is_hashed_into_the_chain() -> None:
    event, head, log = _quoted_event()
    assert event.reply is not None
    assert event.reply.quoted is MessageKind.OPT_IN_REQUEST
    assert event.trigger is Trigger.REMIND
    fast = event_canonical(CONTACT, event)
    assert fast == canonical_bytes(CONTACT, event.body())
    assert b'"locale":"en","quoted":"opt_in_request","rule":"reaction"' in fast
    # The quote is evidence: dropping it changes the digest.
    unquoted = attrs.evolve(event, reply=attrs.evolve(event.reply, quoted=None))
    assert event_digest(CONTACT, unquoted) != event.digest
    assert b"quoted" not in event_canonical(CONTACT, unquoted)
    assert event_canonical(CONTACT, unquoted) == canonical_bytes(
        CONTACT, unquoted.body()
    )
    # And it survives a round trip and verification.
    again = AuditEvent.from_dict(json.loads(json.dumps(event.to_dict())))
    assert again == event
    verify(CONTACT, log, head)


@given(st.sampled_from(_KINDS), any_text)
def test_any_quoted_reply_encodes_the_same_both_ways(
    kind: MessageKind, text: str
) -> None:
    event, _, _ = _quoted_event()
    assert event.reply is not None
    reply = attrs.evolve(event.reply, text=text, quoted=kind).bounded(16)
    odd = attrs.evolve(event, reply=reply)
    assert event_canonical(CONTACT, odd) == canonical_bytes(CONTACT, odd.body())


# -- sentences about stopping something else -----------------------------------


@pytest.mark.parametrize(
    ("text", "locale"),
    [
        ("Yes, let's make them stop!", "en"),
        ("Yes stop the bill", "en"),
        ("YES! Stop this bill now", "en"),
        ("Yes. Stop the war.", "en"),
        ("yeah make him stop", "en"),
        ("Yes!! Make them stop now", "en"),
        ("yep, stop these cuts", "en"),
        ("Oui, arrêtez ce projet de loi", "fr"),
        ("Oui stop la réforme", "fr"),
        ("Oui, faites-les arrêter !", "fr"),
        ("Oui arrêtez l'expulsion", "fr"),
    ],
)
def test_stopping_someone_else_with_a_yes_is_not_an_opt_out(
    text: str, locale: str
) -> None:
    reply = parse_reply(text, locale)
    assert reply.intent is Intent.UNRECOGNIZED, reply
    # Not consent either: consent stays the exact word.
    assert parse_reply(text, locale, lenient_consent=True).intent is not Intent.CONSENT


@pytest.mark.parametrize(
    "text",
    [
        "Stop texting me",
        "stop, thanks",
        "Yes stop",
        "Yes stop texting me",
        "Yes, stop the texts",
        "yes stop the messages please",
        "Yes stop it",
        "Yes stop this",
        "Yes stop this please",
        "Yes stop this nonsense",
        "Yes stop them",
        "Yes make it stop",
        "Yes make them stop texting me",
        "Yes, make them stop sending these",
        "stop the bill",
        "STOP this terrible bill",
        "Make them stop",
        "Yes, stop the bill. Stop texting me",
        "Yes stop the bill. STOP",
        "Yes stop the, bill",
        "Oui, arrêtez les SMS",
        "Oui arrêtez l'envoi",
        "Oui stop",
        "Arrêtez ce projet de loi",
    ],
)
def test_the_third_party_rule_keeps_real_stops(text: str) -> None:
    assert parse_reply(text, "en").intent is Intent.STOP, text
    assert parse_reply(text, "fr").intent is Intent.STOP, text


@given(st.sampled_from(["the", "this", "that", "these", "those"]), any_text)
def test_without_a_yes_a_stop_of_anything_is_a_stop(det: str, noun: str) -> None:
    # Generous stop: the exception needs the yes; "stop <det> ..." is a stop.
    text = f"stop {det} {noun}"
    assume(default_keyword_index()._tp_yes.isdisjoint(_words(normalize(text))[0]))
    assert parse_reply(text, "en").intent is Intent.STOP


def test_megabyte_about_stopping_a_bill_is_cheap() -> None:
    text = "Yes stop the bill " * 60_000
    parse_reply(text)
    start = time.perf_counter()
    reply = parse_reply(text, ours=ACME.own_words)
    assert time.perf_counter() - start < 0.05
    # A long text's tail ends on "stop the bill": still the same rule.
    assert reply.intent is Intent.UNRECOGNIZED


def test_docs_state_the_third_party_rule() -> None:
    docs = DOCS.read_text(encoding="utf-8")
    assert "make them stop" in docs
    assert re.search(r"stop the bill", docs)


# -- edges of the machinery ----------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("👍 to", True),
        ("  \u200b 👍 to", True),
        ("‼️ to", True),
        ("#\ufe0f to", True),
        ("x to", False),
        ("« to", False),
        ("", False),
        (" " * 40 + "👍", False),  # only the first characters are looked at
    ],
)
def test_emoji_start(text: str, expected: bool) -> None:
    from optin_core._parser import _emoji_start

    assert _emoji_start(text) is expected


def test_an_index_without_reaction_formats_reads_no_reaction() -> None:
    from optin_core._keywords import KeywordIndex

    packs = [{k: v for k, v in p.items() if k != "reactions"} for p in load_packs()]
    index = KeywordIndex(packs, [])
    assert parse_reply("Liked “hello”", keywords=index).intent is Intent.UNRECOGNIZED
    assert parse_reply("👍 to “Reply STOP”", keywords=index).intent is Intent.STOP
    reply = parse_reply(f"👍 to “{REQUEST}”", keywords=index, ours=ACME.own_words)
    assert (reply.intent, reply.quoted) == (
        Intent.UNRECOGNIZED,
        MessageKind.OPT_IN_REQUEST,
    )


@pytest.mark.parametrize(
    ("text", "intent", "quoted"),
    [
        # The quote only in a long text's tail.
        ("Call me back. " * 50 + REQUEST, Intent.UNRECOGNIZED, True),
        ("Call me back. " * 50 + REQUEST + " STOP", Intent.STOP, True),
        # The quote in a long text's head, the contact's words around it.
        ("Hello, " + REQUEST + " who? " * 100, Intent.UNRECOGNIZED, True),
        ("STOP " + REQUEST + " who? " * 100, Intent.STOP, True),
        # Padding is collapsed before the windows apply (issue 10): our
        # request and the contact's "Yes", whatever spaces follow.
        (REQUEST + " Yes" + " " * 600, Intent.CONSENT, True),
        (REQUEST + " Yes" + "\u200b" * 600 + "?", Intent.CONSENT, True),
        ("\n" * 600 + REQUEST + " STOP" + " " * 600, Intent.STOP, True),
        # A cut word inside the text is not absorbed into the quote.
        (REQUEST[:70] + " retai stop", Intent.STOP, True),
        ("etained. " + REQUEST[66:], Intent.UNRECOGNIZED, True),
        ("Hello etained. " + REQUEST[66:], Intent.UNRECOGNIZED, True),
        # "to" and our words, without the emoji that opens Google's format.
        (f"to “{REQUEST}”", Intent.UNRECOGNIZED, True),
    ],
)
def test_quotes_in_long_texts_and_cut_words(
    text: str, intent: Intent, quoted: bool
) -> None:
    reply = parse_reply(text, "en", ours=ACME.own_words)
    assert reply.intent is intent, reply
    assert (reply.quoted is not None) is quoted
