"""Rules a mutation run showed no test would notice breaking (issue 17).

Each test pins one rule of ``docs/rules.md`` through the public API, on
both sides of its switch or limit, so that a change to the rule, not only
a crash, fails a test.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import attrs
import pytest

from optin_core import (
    AuditEvent,
    Consent,
    ConsentState,
    Inbound,
    Intent,
    InvalidGreeting,
    MatchRule,
    MessageKind,
    Outcome,
    Policy,
    RecordError,
    RequestOptIn,
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

from .flows import rechained

T0 = datetime(2026, 12, 1, 9, 0, tzinfo=UTC)
CONTACT = "+15550100123"


def _at(minutes: float) -> datetime:
    return T0 + timedelta(minutes=minutes)


class Log:
    """A contact's head and log through ``decide``."""

    def __init__(self, policy: Policy) -> None:
        self.policy = policy
        self.consent = Consent.new(CONTACT)
        self.events: list[AuditEvent] = []
        self.n = 0

    def apply(self, input: object) -> object:
        decision = decide(self.consent, input, self.policy)  # type: ignore[arg-type]
        self.consent = decision.consent
        self.events.extend(decision.events)
        return decision

    def reply(self, text: str, minutes: float) -> object:
        self.n += 1
        return self.apply(Inbound(text=text, at=_at(minutes), message_id=f"m{self.n}"))


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
    log = Log(Policy(org_name="Acme", lenient_consent=lenient))
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
    log = Log(policy)
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
    log = Log(Policy(org_name="Acme"))
    log.apply(RequestOptIn(at=T0))
    log.reply("Yes", 1)
    log.reply("STOP", 2)
    log.apply(Revoke(at=_at(10), by="agent", reason="complaint"))
    assert log.consent.stopped_at == _at(10)
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
    log = Log(Policy(org_name="Acme"))
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
    log = Log(Policy(org_name="Acme"))
    log.apply(RequestOptIn(at=_at(5)))
    log.reply("Yes", 6)
    first, second = log.events
    early = attrs.evolve(second, at=_at(1), prev=first.digest, digest="")
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
    log = Log(policy)
    log.apply(RequestOptIn(at=T0))
    log.reply("Yes", 1)
    body = "t" * (policy.max_text_length + extra)
    text = SendText(body=body, at=_at(2))
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
    log = Log(policy)
    log.apply(RequestOptIn(at=T0))
    log.reply("Yes", 1)
    log.apply(Attest(method="email", at=_at(2), by="agent", evidence="form"))
    log.apply(Attest(method="phone_call", at=_at(3), by="agent", evidence="call"))
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
    log = Log(policy)
    log.apply(RequestOptIn(at=T0))
    log.reply("Yes", 1)
    log.apply(Attest(method="id_check", at=_at(2), by="agent", evidence="id"))
    assert verify(CONTACT, log.events, log.consent).level == "verified"
    log.apply(Attest(method="phone_call", at=_at(3), by="agent", evidence="call"))
    assert log.events[-1].level == "verified"
    # An attestation at express after "verified": not judged by replay.
    relabelled = [*log.events[:-1], attrs.evolve(log.events[-1], level="express")]
    assert verify(CONTACT, rechained(CONTACT, relabelled)).level == "express"
