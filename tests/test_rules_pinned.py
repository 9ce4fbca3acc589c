"""Rules a mutation run showed no test would notice breaking (issue 17).

Each test pins one rule of ``docs/rules.md`` through the public API, on
both sides of its switch or limit, so that a change to the rule, not only
a crash, fails a test.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import attrs
import pytest

from optin_core import (
    Consent,
    ConsentState,
    Intent,
    InvalidGreeting,
    MatchRule,
    MessageKind,
    Outcome,
    Policy,
    RecordError,
    RequestOptIn,
    ResendNotAllowed,
    Revoke,
    SendBlocked,
    SendText,
    Trigger,
    decide,
    event_digest,
    parse_reply,
    verify,
)
from optin_core._parser import SHORT_MESSAGE_WORDS

from .flows import CONTACT, T0, Flow, at, rechained


def test_the_request_carries_the_locked_opt_in_wording_not_the_reminders() -> None:
    policy = Policy(org_name="Acme")
    decision = decide(Consent.new(CONTACT), RequestOptIn(at=T0), policy)
    (message,) = decision.outgoing
    request, _ = policy.message(MessageKind.OPT_IN_REQUEST, "en")
    reminder, _ = policy.message(MessageKind.REMINDER, "en")
    assert message.kind is MessageKind.OPT_IN_REQUEST
    assert message.text == request
    assert message.text != reminder
    # A greeting goes above the wording, which stays whole.
    greeted = decide(
        Consent.new(CONTACT), RequestOptIn(at=T0, greeting="Hi Ana!"), policy
    )
    assert greeted.outgoing[0].text == "Hi Ana!\n" + request


@pytest.mark.parametrize(
    ("lenient", "state", "sent"),
    [
        (False, ConsentState.PENDING, MessageKind.REMINDER),
        (True, ConsentState.OPTED_IN, MessageKind.OPT_IN_CONFIRMATION),
    ],
)
def test_yes_please_is_consent_only_under_lenient_consent(
    lenient: bool, state: ConsentState, sent: MessageKind
) -> None:
    log = Flow(Policy(org_name="Acme", lenient_consent=lenient))
    log.apply(RequestOptIn(at=T0))
    decision = log.reply("Yes please", 1)
    assert log.consent.state is state
    assert [m.kind for m in decision.outgoing] == [sent]  # type: ignore[attr-defined]


def test_a_stop_word_anywhere_counts_up_to_six_words_and_not_beyond() -> None:
    assert SHORT_MESSAGE_WORDS == 6
    inside = "one two stop three four five"  # 6 words, stop in the middle
    beyond = "one two stop three four five six"  # 7 words
    assert parse_reply(inside).intent is Intent.STOP
    assert parse_reply(inside).rule is MatchRule.SHORT_MESSAGE
    assert parse_reply(beyond).intent is Intent.UNRECOGNIZED
    # First and last words still count in longer messages.
    assert parse_reply("stop one two three four five six").intent is Intent.STOP
    assert parse_reply("one two three four five six stop").intent is Intent.STOP


@pytest.mark.parametrize("apostrophe", ["'", "’", "‘", "´", "`", "′"])
def test_a_negated_stop_is_not_a_stop_whatever_the_apostrophe(apostrophe: str) -> None:
    for text in (f"don{apostrophe}t stop", f"please don{apostrophe}t stop texting me"):
        assert parse_reply(text).intent is not Intent.STOP, text


def test_unrecognised_replies_record_no_match_rule() -> None:
    reply = parse_reply("who is this?")
    assert (reply.intent, reply.rule, reply.keyword) == (
        Intent.UNRECOGNIZED,
        MatchRule.NONE,
        None,
    )


def test_a_stopped_contact_asking_help_again_and_again_pauses_without_raising() -> None:
    policy = Policy(org_name="Acme")
    log = Flow(policy)
    log.apply(RequestOptIn(at=T0))
    log.reply("STOP", 1)
    outcomes = [log.reply("HELP", 2 + i) for i in range(7)]
    answered = [d for d in outcomes if d.outgoing]  # type: ignore[attr-defined]
    assert len(answered) == policy.loop_max_auto_replies
    pause = outcomes[policy.loop_max_auto_replies]
    (event,) = pause.events  # type: ignore[attr-defined]
    assert (event.trigger, event.from_state, event.to_state) == (
        Trigger.PAUSE,
        ConsentState.STOPPED,
        ConsentState.STOPPED,
    )
    assert outcomes[-1].outcome is Outcome.PAUSED  # type: ignore[attr-defined]
    assert log.consent.state is ConsentState.STOPPED
    assert verify(CONTACT, log.events, log.consent) == log.consent


def test_a_start_written_before_a_later_revoke_does_not_resubscribe() -> None:
    log = Flow(Policy(org_name="Acme"))
    log.apply(RequestOptIn(at=T0))
    log.reply("Yes", 1)
    log.reply("STOP", 2)
    log.apply(Revoke(at=at(10), by="agent", reason="complaint"))
    assert log.consent.stopped_at == at(10)
    # A START written between the stop and the revoke, delivered late.
    late = log.reply("START", 5)
    assert late.outcome is Outcome.STALE  # type: ignore[attr-defined]
    assert log.consent.state is ConsentState.STOPPED
    # One written after the revoke restarts.
    log.reply("START", 11)
    assert log.consent.state is ConsentState.OPTED_IN


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("from_state", ConsentState.NEW),
        ("to_state", ConsentState.STOPPED),
        ("trigger", Trigger.HELP),
        ("version", 7),
        ("level", "written"),
    ],
)
def test_replay_refuses_each_single_field_inconsistency(
    field: str, value: object
) -> None:
    log = Flow(Policy(org_name="Acme"))
    log.apply(RequestOptIn(at=T0))
    log.reply("Yes", 1)
    assert verify(CONTACT, log.events) == log.consent
    # Change one field of the consent event and re-chain every digest, so
    # that only the replay's rules can tell.
    changes: dict[str, Any] = {field: value}
    forged = rechained(
        CONTACT,
        [
            attrs.evolve(e, **changes) if e.trigger is Trigger.CONSENT else e
            for e in log.events
        ],
    )
    with pytest.raises(RecordError):
        verify(CONTACT, forged)


def test_replay_refuses_time_going_backwards() -> None:
    log = Flow(Policy(org_name="Acme"))
    log.apply(RequestOptIn(at=at(5)))
    log.reply("Yes", 6)
    first, second = log.events
    early = attrs.evolve(second, at=at(1), prev=first.digest, digest="")
    early = attrs.evolve(early, digest=event_digest(CONTACT, early))
    with pytest.raises(RecordError):
        verify(CONTACT, [first, early])


@pytest.mark.parametrize("extra", [0, 1])
def test_the_greeting_limit_on_both_sides(extra: int) -> None:
    policy = Policy(org_name="Acme")
    greeting = "g" * (policy.max_greeting_length + extra)
    request = RequestOptIn(at=T0, greeting=greeting)
    if extra:
        with pytest.raises(InvalidGreeting):
            decide(Consent.new(CONTACT), request, policy)
    else:
        (message,) = decide(Consent.new(CONTACT), request, policy).outgoing
        assert message.text.startswith(greeting + "\n")


@pytest.mark.parametrize("character", ["\ue000", "\U000f0000", "\u202e"])
def test_a_greeting_with_private_use_or_format_characters_is_refused(
    character: str,
) -> None:
    request = RequestOptIn(at=T0, greeting=f"Hi {character}Ana")
    with pytest.raises(InvalidGreeting):
        decide(Consent.new(CONTACT), request, Policy(org_name="Acme"))


@pytest.mark.parametrize("extra", [0, 1])
def test_the_text_limit_on_both_sides(extra: int) -> None:
    policy = Policy(org_name="Acme")
    log = Flow(policy)
    log.apply(RequestOptIn(at=T0))
    log.reply("Yes", 1)
    body = "t" * (policy.max_text_length + extra)
    text = SendText(body=body, at=at(2))
    if extra:
        with pytest.raises(SendBlocked) as blocked:
            log.apply(text)
        assert blocked.value.reason == "too_long"
    else:
        (message,) = log.apply(text).outgoing  # type: ignore[attr-defined]
        assert message.text == body


def test_replay_refuses_an_attestation_that_lowers_the_level() -> None:
    from optin_core import Attest

    policy = Policy(
        org_name="Acme",
        attestation_methods={"email": "written", "phone_call": "express"},
    )
    log = Flow(policy)
    log.apply(RequestOptIn(at=T0))
    log.reply("Yes", 1)
    log.apply(Attest(method="email", at=at(2), by="agent", evidence="form"))
    log.apply(Attest(method="phone_call", at=at(3), by="agent", evidence="call"))
    assert log.events[-1].level == "written"  # kept, never lowered
    assert verify(CONTACT, log.events, log.consent).level == "written"
    lowered = [*log.events[:-1], attrs.evolve(log.events[-1], level="express")]
    with pytest.raises(RecordError, match="level"):
        verify(CONTACT, rechained(CONTACT, lowered))


def test_replay_leaves_the_order_of_a_policys_own_levels_to_the_policy() -> None:
    # "verified" is not on the default ladder: verify cannot order it, so it
    # neither refuses nor fails on it (the policy that wrote it orders it).
    from optin_core import Attest

    policy = Policy(
        org_name="Acme",
        levels=("none", "disclosed", "express", "verified", "written"),
        attestation_methods={"id_check": "verified", "phone_call": "express"},
    )
    log = Flow(policy)
    log.apply(RequestOptIn(at=T0))
    log.reply("Yes", 1)
    log.apply(Attest(method="id_check", at=at(2), by="agent", evidence="id"))
    assert verify(CONTACT, log.events, log.consent).level == "verified"
    log.apply(Attest(method="phone_call", at=at(3), by="agent", evidence="call"))
    assert log.events[-1].level == "verified"
    # An attestation at express after "verified": not judged by replay.
    relabelled = [*log.events[:-1], attrs.evolve(log.events[-1], level="express")]
    assert verify(CONTACT, rechained(CONTACT, relabelled)).level == "express"


# -- the parser's limits, on both sides ---------------------------------------
#
# The limits are written as numbers here, not read from the module that
# defines them: a test that reads the constant moves with it.


def _prose(n: int) -> str:
    """``n`` characters of words no pack knows, single-spaced, ending in a
    full stop (so what follows starts a sentence)."""
    text = ""
    while len(text) < n - 12:
        text += "blah "
    return text + "x" * (n - len(text) - 1) + "."


@pytest.mark.parametrize(("length", "intent"), [(512, Intent.STOP), (513, None)])
def test_a_short_message_is_read_whole_up_to_512_characters(
    length: int, intent: Intent | None
) -> None:
    # Three words, the stop in the middle: a stop anywhere counts only in a
    # message of at most six words that is not long.
    text = "x" * 250 + " stop " + "y" * (length - 256)
    assert len(text) == length
    reply = parse_reply(text)
    if intent is None:
        assert (reply.intent, reply.rule) == (Intent.UNRECOGNIZED, MatchRule.NONE)
    else:
        assert (reply.intent, reply.rule) == (intent, MatchRule.SHORT_MESSAGE)


@pytest.mark.parametrize(("end", "read"), [(511, True), (512, True), (513, False)])
def test_the_head_window_is_512_characters(end: int, read: bool) -> None:
    # "Stop" starts a sentence and ends at character ``end`` of a long text
    # whose tail holds no stop: read while the head holds it whole.
    head = _prose(end - 5) + " "
    text = head + "Stop and " + _prose(400)
    assert text.index("Stop") + 4 == end
    reply = parse_reply(text)
    if read:
        assert (reply.intent, reply.rule) == (Intent.STOP, MatchRule.SENTENCE_START)
    else:
        assert reply.intent is Intent.UNRECOGNIZED


@pytest.mark.parametrize(("size", "read"), [(159, True), (160, True), (161, False)])
def test_the_tail_window_is_160_characters(size: int, read: bool) -> None:
    # The tail's first word may be cut in half, so it never starts a
    # sentence: "y. Stop" counts only while the tail reaches back to "y".
    ending = "y. Stop" + (" " + _prose(200))[: size - 7]
    assert len(ending) == size
    text = _prose(700) + " " + ending
    reply = parse_reply(text)
    if read:
        assert (reply.intent, reply.rule) == (Intent.STOP, MatchRule.SENTENCE_START)
    else:
        assert reply.intent is Intent.UNRECOGNIZED


@pytest.mark.parametrize(
    ("six", "seven", "intent"),
    [
        ("help please thank you ok now", "help please thank you ok now sir", "help"),
        (
            "no thanks please thank you ok",
            "no thanks please thank you ok now",
            "decline",
        ),
        (
            "please stop the texts thank you",
            "please stop the texts thank you now",
            "stop",
        ),
    ],
)
def test_keywords_among_polite_words_count_up_to_six_words(
    six: str, seven: str, intent: str
) -> None:
    assert parse_reply(six).intent is Intent(intent)
    assert parse_reply(seven).intent is Intent.UNRECOGNIZED


@pytest.mark.parametrize(
    ("text", "lenient", "intent"),
    [
        ("yes please thank you ok sure", False, Intent.UNRECOGNIZED),
        ("yes please thank you ok sure", True, Intent.CONSENT),
        ("yes please thank you ok sure great", True, Intent.UNRECOGNIZED),
        ("Yes please", False, Intent.UNRECOGNIZED),
        ("Yes please", True, Intent.CONSENT),
        ("yes? please", True, Intent.UNRECOGNIZED),
        ("Yes please!", True, Intent.CONSENT),
        ("Yes please.", True, Intent.CONSENT),
    ],
)
def test_lenient_consent_both_ways_and_up_to_six_words(
    text: str, lenient: bool, intent: Intent
) -> None:
    reply = parse_reply(text, "en", lenient_consent=lenient)
    assert reply.intent is intent
    if intent is Intent.CONSENT:
        assert reply.rule is MatchRule.LENIENT


@pytest.mark.parametrize(
    "text",
    [
        "Yes please?",
        "Oui merci ?",
        "yes please ?!",
        "Sí, por favor？",
        "¿Sí, por favor",
    ],
)
def test_lenient_consent_refuses_a_closing_question_mark(text: str) -> None:
    assert parse_reply(text, "fr", lenient_consent=True).intent is not Intent.CONSENT


# -- the request's limits, on both sides --------------------------------------


def test_the_greeting_is_stripped_before_its_limit_is_counted() -> None:
    policy = Policy(org_name="Acme")
    greeting = "g" * policy.max_greeting_length
    request = RequestOptIn(at=T0, greeting=f"  {greeting}  ")
    (message,) = decide(Consent.new(CONTACT), request, policy).outgoing
    assert message.text.startswith(greeting + "\n")


@pytest.mark.parametrize(("spare", "fits"), [(0, True), (-1, False)])
def test_the_request_limit_on_both_sides(spare: int, fits: bool) -> None:
    wording, _ = Policy(org_name="Acme").message(MessageKind.OPT_IN_REQUEST, "en")
    greeting = "Hi Ana!"
    # The greeting, a line break, the wording: exactly the limit, or one over.
    policy = Policy(
        org_name="Acme", max_request_length=len(greeting) + 1 + len(wording) + spare
    )
    request = RequestOptIn(at=T0, greeting=greeting)
    if fits:
        (message,) = decide(Consent.new(CONTACT), request, policy).outgoing
        assert message.text == f"{greeting}\n{wording}"
    else:
        with pytest.raises(InvalidGreeting):
            decide(Consent.new(CONTACT), request, policy)


@pytest.mark.parametrize("character", ["\n", "\t", "\u200b", "\u2066", "\x7f"])
def test_a_greeting_with_a_control_or_invisible_character_is_refused(
    character: str,
) -> None:
    request = RequestOptIn(at=T0, greeting=f"Hi{character}Ana")
    with pytest.raises(InvalidGreeting):
        decide(Consent.new(CONTACT), request, Policy(org_name="Acme"))


def test_the_zero_width_joiner_of_an_emoji_sequence_is_allowed() -> None:
    family = "\U0001f469\u200d\U0001f469\u200d\U0001f467"
    request = RequestOptIn(at=T0, greeting=f"Hi {family}")
    (message,) = decide(Consent.new(CONTACT), request, Policy(org_name="Acme")).outgoing
    assert message.text.startswith(f"Hi {family}\n")


# -- each policy switch, in both positions, at decide level -------------------


def _kinds(decision: object) -> list[MessageKind]:
    return [m.kind for m in decision.outgoing]  # type: ignore[attr-defined]


@pytest.mark.parametrize("on", [True, False])
def test_confirm_opt_in(on: bool) -> None:
    log = Flow(Policy(org_name="Acme", confirm_opt_in=on))
    log.apply(RequestOptIn(at=T0))
    decision = log.reply("Yes", 1)
    assert log.consent.state is ConsentState.OPTED_IN
    assert _kinds(decision) == ([MessageKind.OPT_IN_CONFIRMATION] if on else [])


@pytest.mark.parametrize("on", [True, False])
def test_confirm_stop(on: bool) -> None:
    log = Flow(Policy(org_name="Acme", confirm_stop=on))
    log.apply(RequestOptIn(at=T0))
    decision = log.reply("STOP", 1)
    assert log.consent.state is ConsentState.STOPPED
    assert _kinds(decision) == ([MessageKind.STOP_CONFIRMATION] if on else [])


@pytest.mark.parametrize("on", [True, False])
def test_confirm_restart(on: bool) -> None:
    log = Flow(Policy(org_name="Acme", confirm_restart=on))
    log.apply(RequestOptIn(at=T0))
    log.reply("STOP", 1)
    decision = log.reply("START", 2)
    assert log.consent.state is ConsentState.OPTED_IN
    assert _kinds(decision) == ([MessageKind.START_CONFIRMATION] if on else [])


@pytest.mark.parametrize("on", [True, False])
def test_answer_help(on: bool) -> None:
    log = Flow(Policy(org_name="Acme", answer_help=on))
    log.apply(RequestOptIn(at=T0))
    decision = log.reply("HELP", 1)
    assert log.consent.state is ConsentState.PENDING
    assert _kinds(decision) == ([MessageKind.HELP] if on else [])
    assert decision.outcome is (Outcome.CHANGED if on else Outcome.POLICY)  # type: ignore[attr-defined]


@pytest.mark.parametrize("on", [True, False])
def test_allow_restart(on: bool) -> None:
    log = Flow(Policy(org_name="Acme", allow_restart=on))
    log.apply(RequestOptIn(at=T0))
    log.reply("STOP", 1)
    decision = log.reply("START", 2)
    assert log.consent.state is (ConsentState.OPTED_IN if on else ConsentState.STOPPED)
    assert decision.outcome is (Outcome.CHANGED if on else Outcome.POLICY)  # type: ignore[attr-defined]


@pytest.mark.parametrize("on", [True, False])
def test_yes_restarts(on: bool) -> None:
    log = Flow(Policy(org_name="Acme", yes_restarts=on))
    log.apply(RequestOptIn(at=T0))
    log.reply("STOP", 1)
    decision = log.reply("Yes", 2)
    assert log.consent.state is (ConsentState.OPTED_IN if on else ConsentState.STOPPED)
    assert _kinds(decision) == ([MessageKind.START_CONFIRMATION] if on else [])
    if on:
        assert log.events[-1].trigger is Trigger.RESTART


@pytest.mark.parametrize("on", [True, False])
def test_decline_stops(on: bool) -> None:
    log = Flow(Policy(org_name="Acme", decline_stops=on))
    log.apply(RequestOptIn(at=T0))
    decision = log.reply("No", 1)
    assert log.consent.state is (ConsentState.STOPPED if on else ConsentState.PENDING)
    assert log.events[-1].trigger is (Trigger.DECLINE if on else Trigger.REMIND)
    assert _kinds(decision) == (
        [MessageKind.STOP_CONFIRMATION] if on else [MessageKind.REMINDER]
    )


@pytest.mark.parametrize("on", [True, False])
def test_provider_answers_keywords(on: bool) -> None:
    log = Flow(Policy(org_name="Acme", provider_answers_keywords=on))
    log.apply(RequestOptIn(at=T0))
    answers = [
        _kinds(log.reply(word, 1 + i))
        for i, word in enumerate(("HELP", "STOP", "START"))
    ]
    assert [e.trigger for e in log.events[1:]] == [
        Trigger.HELP,
        Trigger.STOP,
        Trigger.RESTART,
    ]
    if on:
        assert answers == [[], [], []]
    else:
        assert answers == [
            [MessageKind.HELP],
            [MessageKind.STOP_CONFIRMATION],
            [MessageKind.START_CONFIRMATION],
        ]


@pytest.mark.parametrize(
    ("setting", "state", "sent"),
    [
        ("off", ConsentState.NEW, []),
        ("double", ConsentState.PENDING, [MessageKind.OPT_IN_REQUEST]),
        ("single", ConsentState.OPTED_IN, [MessageKind.OPT_IN_CONFIRMATION]),
    ],
)
@pytest.mark.parametrize("word", ["START", "Yes"])
def test_keyword_opt_in(
    setting: str, state: ConsentState, sent: list[MessageKind], word: str
) -> None:
    log = Flow(Policy(org_name="Acme", keyword_opt_in=setting))
    decision = log.reply(word, 0)
    assert log.consent.state is state
    assert _kinds(decision) == sent


# -- the request's counters, on both sides ------------------------------------


@pytest.mark.parametrize(("wait", "allowed"), [(0, True), (-1, False)])
def test_resend_after_on_both_sides(wait: int, allowed: bool) -> None:
    policy = Policy(org_name="Acme")
    log = Flow(policy)
    log.apply(RequestOptIn(at=T0))
    again = RequestOptIn(at=T0 + policy.resend_after + timedelta(seconds=wait))
    if allowed:
        assert _kinds(log.apply(again)) == [MessageKind.OPT_IN_REQUEST]
        assert log.events[-1].trigger is Trigger.RESEND
    else:
        with pytest.raises(ResendNotAllowed):
            log.apply(again)


@pytest.mark.parametrize("on", [True, False])
def test_allow_resend(on: bool) -> None:
    policy = Policy(org_name="Acme", allow_resend=on)
    log = Flow(policy)
    log.apply(RequestOptIn(at=T0))
    again = RequestOptIn(at=T0 + policy.resend_after)
    if on:
        assert _kinds(log.apply(again)) == [MessageKind.OPT_IN_REQUEST]
    else:
        with pytest.raises(ResendNotAllowed):
            log.apply(again)


def test_max_attempts_counts_the_first_request() -> None:
    policy = Policy(org_name="Acme", max_attempts=2)
    log = Flow(policy)
    log.apply(RequestOptIn(at=T0))
    log.apply(RequestOptIn(at=T0 + policy.resend_after))  # the second: allowed
    with pytest.raises(ResendNotAllowed):
        log.apply(RequestOptIn(at=T0 + 2 * policy.resend_after))


def test_max_reminders_per_request_then_silence() -> None:
    policy = Policy(org_name="Acme", max_reminders=2)
    log = Flow(policy)
    log.apply(RequestOptIn(at=T0))
    sent = [_kinds(log.reply(f"who is this {i}?", 1 + i)) for i in range(3)]
    assert sent == [[MessageKind.REMINDER], [MessageKind.REMINDER], []]
    assert log.consent.state is ConsentState.PENDING
    # A resend starts the reminders over.
    log.apply(RequestOptIn(at=T0 + policy.resend_after))
    assert _kinds(log.reply("and who are you?", 24 * 60 + 5)) == [MessageKind.REMINDER]
