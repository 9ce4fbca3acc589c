"""The rules of SPEC that need more than one step: limits, ordering, guards."""

from __future__ import annotations

from datetime import timedelta

import pytest

from optin_core import (
    Attest,
    Consent,
    ConsentState,
    Inbound,
    InvalidGreeting,
    InvalidInput,
    MessageKind,
    MethodNotAccepted,
    Mode,
    RequestOptIn,
    ResendNotAllowed,
    Revoke,
    SendBlocked,
    SendText,
    UnknownLocale,
    decide,
    may_text,
    sendable,
)

from .flows import CONTACT, Flow, at, policy, record_in

DAY = 24 * 60


def kinds(flow: Flow) -> list[MessageKind]:
    assert flow.last is not None
    return [m.kind for m in flow.last.outgoing]


# -- resends -------------------------------------------------------------


def test_resend_waits_for_resend_after_and_says_when() -> None:
    flow = Flow()
    flow.request(0)
    with pytest.raises(ResendNotAllowed) as info:
        flow.request(60)
    assert info.value.attempts_left == 2
    assert info.value.next_allowed_at == at(DAY)
    assert "try again" in str(info.value)
    flow.request(DAY)
    assert flow.consent.attempts == 2
    assert kinds(flow) == [MessageKind.OPT_IN_REQUEST]


def test_resend_stops_after_max_attempts() -> None:
    flow = Flow()
    for day in range(3):
        flow.request(day * DAY)
    with pytest.raises(ResendNotAllowed) as info:
        flow.request(10 * DAY)
    assert info.value.attempts_left == 0
    assert info.value.next_allowed_at is None


def test_resend_forbidden_by_policy() -> None:
    flow = Flow(policy(allow_resend=False))
    flow.request(0)
    with pytest.raises(ResendNotAllowed) as info:
        flow.request(10 * DAY)
    assert info.value.attempts_left == 0


def test_resend_resets_the_reminders_of_the_attempt() -> None:
    flow = Flow(policy(max_reminders=1))
    flow.request(0)
    flow.reply("what?", 1)
    assert kinds(flow) == [MessageKind.REMINDER]
    flow.reply("huh", 2)
    assert kinds(flow) == []
    flow.request(DAY)
    assert flow.consent.reminders == 0
    flow.reply("what now?", DAY + 1)
    assert kinds(flow) == [MessageKind.REMINDER]


# -- reminders and the loop guard ----------------------------------------------


def test_reminders_are_capped_per_attempt() -> None:
    flow = Flow()
    flow.request(0)
    sent = []
    for i in range(6):
        flow.reply(f"question {i}", 1 + i)
        sent.extend(kinds(flow))
    assert sent == [MessageKind.REMINDER] * 3
    assert flow.consent.reminders == 3


def test_repeated_identical_reply_pauses_automatic_replies() -> None:
    flow = Flow()
    flow.request(0)
    flow.reply("I'm driving, I'll answer later", 1)
    assert kinds(flow) == [MessageKind.REMINDER]
    flow.reply("I'm driving, I'll answer later", 2)
    assert kinds(flow) == []
    assert flow.last is not None
    assert flow.last.events[0].trigger == "pause"
    assert "repeated" in (flow.last.events[0].reason or "")
    version = flow.consent.version
    flow.reply("I'm driving, I'll answer later", 3)
    assert flow.consent.version == version  # the pause is recorded once
    flow.reply("STOP", 4)
    assert kinds(flow) == [MessageKind.STOP_CONFIRMATION]  # never suppressed


def test_help_flood_is_paused_within_the_window() -> None:
    flow = Flow(policy(loop_max_auto_replies=2, loop_window=timedelta(minutes=30)))
    flow.request(0)
    flow.reply("yes", 1)
    sent = []
    for i in range(5):
        flow.reply("HELP", 2 + i)
        sent.extend(kinds(flow))
    assert sent == [MessageKind.HELP, MessageKind.HELP]
    flow.reply("HELP", 120)  # after the window, answers resume
    assert kinds(flow) == [MessageKind.HELP]


# -- STOP and friends ------------------------------------------------------


def test_stop_confirmation_only_once_per_stop() -> None:
    flow = Flow()
    flow.request(0)
    flow.reply("stop", 1)
    assert kinds(flow) == [MessageKind.STOP_CONFIRMATION]
    for i in range(3):
        flow.reply("STOP", 2 + i)
        assert kinds(flow) == []
    flow.reply("START", 10)
    flow.reply("stop", 11)
    assert kinds(flow) == [MessageKind.STOP_CONFIRMATION]


def test_stop_confirmation_can_be_switched_off() -> None:
    flow = Flow(policy(confirm_stop=False))
    flow.request(0)
    flow.reply("stop", 1)
    assert flow.consent.state is ConsentState.STOPPED
    assert kinds(flow) == []


def test_decline_may_be_ordinary_conversation_by_policy() -> None:
    flow = Flow(policy(decline_stops=False))
    flow.request(0)
    flow.reply("non", 1)
    assert flow.consent.state is ConsentState.PENDING
    assert kinds(flow) == [MessageKind.REMINDER]


def test_yes_restarts_only_when_the_policy_says_so() -> None:
    for yes_restarts, expected in (
        (False, ConsentState.STOPPED),
        (True, ConsentState.OPTED_IN),
    ):
        flow = Flow(policy(yes_restarts=yes_restarts))
        flow.request(0)
        flow.reply("stop", 1)
        flow.reply("yes", 2)
        assert flow.consent.state is expected


def test_restarts_can_be_forbidden() -> None:
    flow = Flow(policy(allow_restart=False))
    flow.request(0)
    flow.reply("stop", 1)
    flow.reply("START", 2)
    assert flow.consent.state is ConsentState.STOPPED


def test_help_is_answered_even_when_stopped_but_can_be_switched_off() -> None:
    flow = Flow()
    flow.request(0)
    flow.reply("stop", 1)
    flow.reply("help", 2)
    assert kinds(flow) == [MessageKind.HELP]
    quiet = Flow(policy(answer_help=False))
    quiet.reply("help", 2)
    assert kinds(quiet) == []


# -- ordering and duplicates ---------------------------------------------------


def test_a_delayed_yes_cannot_undo_a_stop() -> None:
    flow = Flow(policy(yes_restarts=True))
    flow.request(0)
    flow.reply("stop", 10)
    flow.reply("yes", 5)  # sent before the stop, delivered after it
    assert flow.consent.state is ConsentState.STOPPED
    flow.reply("start", 7)
    assert flow.consent.state is ConsentState.STOPPED
    flow.reply("start", 11)
    assert flow.consent.state is ConsentState.OPTED_IN


def test_a_reply_older_than_the_request_does_not_answer_it() -> None:
    flow = Flow()
    flow.reply("yes", 0, message_id="early")
    flow.request(5)
    flow.reply("yes", 1, message_id="early-replayed")
    assert flow.consent.state is ConsentState.PENDING
    flow.reply("yes", 6)
    assert flow.consent.state is ConsentState.OPTED_IN


def test_duplicate_message_id_changes_nothing() -> None:
    flow = Flow()
    flow.request(0)
    flow.reply("what?", 1, message_id="dup")
    before = flow.consent
    decision = flow.reply("what?", 1, message_id="dup")
    assert decision.consent is before
    assert decision.outgoing == ()
    assert decision.reply is not None  # still parsed, for the host's logs


def test_message_ids_are_remembered_boundedly() -> None:
    flow = Flow(policy(loop_max_auto_replies=10_000))
    flow.request(0)
    flow.reply("yes", 1)
    for i in range(100):
        flow.reply("help", 2 + i)
    assert len(flow.consent.recent_message_ids) == 32
    assert flow.consent.recent_message_ids[-1] == flow.events[-1].message_id


# -- requests and greetings -----------------------------------------------------


def test_greeting_comes_first_and_the_wording_is_locked() -> None:
    pol = policy()
    plain = decide(Consent.new(CONTACT), RequestOptIn(at=at(0)), pol).outgoing[0].text
    greeted = (
        decide(
            Consent.new(CONTACT),
            RequestOptIn(at=at(0), greeting="I'm Martha from Hearsay"),
            pol,
        )
        .outgoing[0]
        .text
    )
    assert greeted == "I'm Martha from Hearsay\n" + plain


@pytest.mark.parametrize(
    "greeting", ["{org_name}", "{0.__class__}", "%(x)s", "${x}", "{{}}"]
)
def test_greeting_is_data_never_a_format_string(greeting: str) -> None:
    d = decide(
        Consent.new(CONTACT), RequestOptIn(at=at(0), greeting=greeting), policy()
    )
    assert d.outgoing[0].text.startswith(greeting + "\n")
    assert d.events[0].sent[0].text == d.outgoing[0].text


@pytest.mark.parametrize(
    "greeting", ["Hi\x00", "Hi\nthere", "Hi\u202eereht", "\x1b[31mHi", "Hi\ud800"]
)
def test_greeting_with_control_characters_is_refused(greeting: str) -> None:
    with pytest.raises(InvalidGreeting, match="U\\+"):
        decide(
            Consent.new(CONTACT), RequestOptIn(at=at(0), greeting=greeting), policy()
        )


def test_greeting_length_limits() -> None:
    with pytest.raises(InvalidGreeting, match="shorten"):
        decide(
            Consent.new(CONTACT), RequestOptIn(at=at(0), greeting="x" * 161), policy()
        )
    with pytest.raises(InvalidGreeting, match="opt-in request would be"):
        decide(
            Consent.new(CONTACT),
            RequestOptIn(at=at(0), greeting="x" * 150),
            policy(max_request_length=160),
        )


def test_emoji_greeting_is_fine() -> None:
    d = decide(
        Consent.new(CONTACT), RequestOptIn(at=at(0), greeting="Hi 👨‍👩‍👧 !"), policy()
    )
    assert d.outgoing[0].text.startswith("Hi 👨‍👩‍👧 !\n")


def test_request_sets_and_validates_the_locale() -> None:
    d = decide(Consent.new(CONTACT), RequestOptIn(at=at(0), locale="fr_FR"), policy())
    assert d.consent.locale == "fr"
    assert d.outgoing[0].locale == "fr"
    with pytest.raises(UnknownLocale):
        decide(Consent.new(CONTACT), RequestOptIn(at=at(0), locale="tlh"), policy())


def test_request_when_already_allowed_changes_nothing() -> None:
    record = record_in(ConsentState.OPTED_IN)
    assert decide(record, RequestOptIn(at=at(DAY)), policy()).consent is record


# -- texts, attestations, revocations ------------------------------------------


def test_switching_to_attestation_blocks_disclosed_contacts() -> None:
    record = record_in(ConsentState.DISCLOSED)
    assert may_text(record, policy(Mode.DISCLAIMER))
    assert not may_text(record, policy(Mode.ATTESTATION))
    with pytest.raises(SendBlocked) as info:
        decide(record, SendText(body="hi", at=at(5)), policy(Mode.ATTESTATION))
    assert info.value.reason == "opt_in_required"


def test_disclaimer_goes_first_and_only_once() -> None:
    flow = Flow(policy(Mode.DISCLAIMER))
    flow.apply(SendText(body="hello", at=at(0)))
    assert kinds(flow) == [MessageKind.DISCLAIMER, MessageKind.TEXT]
    assert flow.consent.version == 2
    flow.apply(SendText(body="again", at=at(1)))
    assert kinds(flow) == [MessageKind.TEXT]


def test_too_long_text_is_refused() -> None:
    record = record_in(ConsentState.OPTED_IN)
    with pytest.raises(SendBlocked) as info:
        decide(record, SendText(body="x" * 1601, at=at(5)), policy())
    assert info.value.reason == "too_long"


def test_attestation_method_must_be_accepted() -> None:
    with pytest.raises(MethodNotAccepted, match="email"):
        decide(
            Consent.new(CONTACT),
            Attest(method="email", at=at(0), by="a", evidence="e"),
            policy(),
        )
    d = decide(
        Consent.new(CONTACT),
        Attest(method="email", at=at(0), by="agent-7", evidence="mail-42"),
        policy(attestation_methods=["email"]),
    )
    event = d.events[0]
    assert (event.method, event.evidence, event.actor) == (
        "email",
        "mail-42",
        "agent-7",
    )
    assert d.consent.opted_in_at == at(0)


def test_revoke_records_actor_and_reason_even_when_already_stopped() -> None:
    record = record_in(ConsentState.STOPPED)
    d = decide(record, Revoke(at=at(9), by="compliance", reason="call"), policy())
    assert d.consent.state is ConsentState.STOPPED
    assert (d.events[0].actor, d.events[0].reason) == ("compliance", "call")
    assert d.consent.stopped_at == at(9)


def test_inputs_refuse_naive_datetimes_and_bad_types() -> None:
    from datetime import datetime

    with pytest.raises(InvalidInput, match="naive"):
        Inbound(text="yes", at=datetime(2026, 1, 1), message_id="m")
    with pytest.raises(TypeError):
        Inbound(text=b"yes", at=at(0), message_id="m")  # type: ignore[arg-type]
    with pytest.raises(InvalidInput):
        Inbound(text="yes", at=at(0), message_id=" ")
    with pytest.raises(TypeError):
        decide(Consent.new(CONTACT), "yes", policy())  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        decide({"contact": CONTACT}, RequestOptIn(at=at(0)), policy())  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        decide(Consent.new(CONTACT), RequestOptIn(at=at(0)), object())  # type: ignore[arg-type]


def test_sendable_filters_an_audience() -> None:
    records = [record_in(s) for s in ConsentState]
    states = [c.state for c in sendable(records, policy())]
    assert states == [ConsentState.OPTED_IN]
    states = {c.state for c in sendable(records, policy(Mode.DISCLAIMER))}
    assert states == {
        ConsentState.NEW,
        ConsentState.PENDING,
        ConsentState.OPTED_IN,
        ConsentState.DISCLOSED,
    }


def test_a_decision_says_what_it_withdraws() -> None:
    # A host writing its own shell reads it off the decision.
    from optin_core import Inbound, MessageKind, cancelled_by_stop

    pol = policy()
    consent = record_in(ConsentState.OPTED_IN)
    stop = decide(consent, Inbound(text="STOP", at=at(90), message_id="w1"), pol)
    assert stop.withdraws == cancelled_by_stop(stop)
    assert MessageKind.TEXT in stop.withdraws
    assert MessageKind.STOP_CONFIRMATION not in stop.withdraws
    assert MessageKind.HELP not in stop.withdraws
    chat = decide(consent, Inbound(text="thanks", at=at(91), message_id="w2"), pol)
    assert chat.withdraws == frozenset()
