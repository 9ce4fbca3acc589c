"""What ``decide`` does with each input, pinned where a mutation run of the
decide path showed no test would notice a change (docs/rules.md).

The rules pinned here:

- host misuse says what it says: the ``TypeError`` of a wrong consent,
  policy or input names the expected and the given type, exactly; a
  refused request or text names the contact (``ContactStopped``,
  ``SendBlocked.contact`` for every reason) and a refused resend says why
  (``ResendNotAllowed.why``, ``attempts_left``, ``next_allowed_at``);
- ``namespace`` goes into the idempotency key of every message decided,
  whatever the input (a reply's answer, a request, a resend, a disclaimer,
  a text); without one the keys are the plain keys of ``""``;
- a decision that changes nothing says why (``outcome``) and keeps the
  parsed reply: a duplicate, ordinary conversation, a paused contact; a
  request to a contact who may already be texted is ``UNCHANGED``;
- the reply is read in the contact's locale chain (their locale, then the
  policy's default), without the quotes of our own messages, and answered
  in the language of a one-language keyword, the policy's own included;
  that language becomes the locale of a contact who has none, never
  replaces one; a request gives the contact the locale of its wording;
- the limits on both sides: a START at the very instant of the stop
  restarts, an earlier one is stale; a pause lasts ``loop_window``
  inclusive; only the automatic replies within ``loop_window`` count
  towards ``loop_max_auto_replies``, however many came before; the loop
  guard's reasons are logged word for word;
- a greeting refuses unassigned code points as well as controls;
- ``may_text`` and ``sendable`` agree with ``decide(SendText)`` for a host
  policy whose ``allows_texting`` also lets pending contacts be texted:
  the disclaimer only raises the level when it goes first.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta

import pytest

from optin_core import (
    Attest,
    Consent,
    ConsentState,
    ContactStopped,
    Decision,
    Inbound,
    Input,
    Intent,
    InvalidGreeting,
    MessageKind,
    Mode,
    Outcome,
    Policy,
    ProviderOptOut,
    RequestOptIn,
    ResendNotAllowed,
    Revoke,
    SendBlocked,
    SendText,
    Trigger,
    decide,
    may_text,
    sendable,
)
from optin_core._records import idempotency_key

from .flows import CONTACT, T0, Flow, at, policy, record_in

MICROSECOND = timedelta(microseconds=1)


def keys_of(decision: Decision, namespace: str) -> list[tuple[str, str]]:
    """Each message's key next to the key the rule gives it: the contact,
    the version of the event that sent it, its position in that event, and
    ``namespace``."""
    pairs = [
        (message.key, idempotency_key(CONTACT, event.version, i, namespace))
        for event in decision.events
        for i, message in enumerate(event.sent)
    ]
    assert [m.key for m in decision.outgoing] == [key for key, _ in pairs]
    return pairs


# -- host misuse: the TypeErrors say exactly what was expected and given ----


def test_a_consent_that_is_not_a_consent_is_named_with_its_type() -> None:
    with pytest.raises(TypeError) as raised:
        decide(7, RequestOptIn(at=T0), policy())  # type: ignore[arg-type]
    assert str(raised.value) == "consent must be a Consent, got int"


def test_a_policy_that_is_not_a_policy_is_named_with_its_type() -> None:
    with pytest.raises(TypeError) as raised:
        decide(Consent.new(CONTACT), RequestOptIn(at=T0), "strict")  # type: ignore[arg-type]
    assert str(raised.value) == "policy must be a Policy, got str"


def test_a_namespace_that_is_not_a_str_is_named_with_its_type() -> None:
    with pytest.raises(TypeError) as raised:
        decide(Consent.new(CONTACT), RequestOptIn(at=T0), policy(), namespace=5)  # type: ignore[arg-type]
    assert str(raised.value) == "namespace must be a str, got int"


def test_an_unknown_input_lists_every_input_kind_and_names_its_type() -> None:
    with pytest.raises(TypeError) as raised:
        decide(Consent.new(CONTACT), "yes", policy())  # type: ignore[arg-type]
    assert str(raised.value) == (
        "input must be RequestOptIn, Inbound, SendText, Attest, Revoke, "
        "ProviderOptOut, MessageExpired, MessageFailed or Import, got str"
    )


# -- namespace: in the key of every message decided -------------------------

#: ``(consent, input, policy)`` for each way a decision sends messages.
SENDING: dict[str, Callable[[], tuple[Consent, Input, Policy]]] = {
    "reply-answered": lambda: (
        record_in(ConsentState.PENDING),
        Inbound(text="hmm", at=at(5), message_id="n1"),
        policy(),
    ),
    "request": lambda: (Consent.new(CONTACT), RequestOptIn(at=T0), policy()),
    "resend": lambda: (
        record_in(ConsentState.PENDING),
        RequestOptIn(at=at(24 * 60)),
        policy(),
    ),
    "request-in-disclaimer-mode": lambda: (
        Consent.new(CONTACT),
        RequestOptIn(at=T0),
        policy(Mode.DISCLAIMER),
    ),
    "text": lambda: (
        record_in(ConsentState.OPTED_IN),
        SendText(body="Your table is ready", at=at(5)),
        policy(),
    ),
    "text-after-the-disclaimer": lambda: (
        Consent.new(CONTACT),
        SendText(body="Your table is ready", at=T0),
        policy(Mode.DISCLAIMER),
    ),
}


@pytest.mark.parametrize("case", sorted(SENDING))
def test_the_namespace_goes_into_the_key_of_every_message_decided(case: str) -> None:
    consent, inp, pol = SENDING[case]()
    decision = decide(consent, inp, pol, namespace="tenant-a")
    pairs = keys_of(decision, "tenant-a")
    assert pairs, "the case must send something"
    for key, expected in pairs:
        assert key == expected
    # So a second store texting the same number never shares a key.
    plain = keys_of(decide(consent, inp, pol, namespace=""), "")
    assert {key for key, _ in pairs}.isdisjoint(key for key, _ in plain)


@pytest.mark.parametrize("case", sorted(SENDING))
def test_without_a_namespace_the_keys_are_the_plain_keys(case: str) -> None:
    consent, inp, pol = SENDING[case]()
    decision = decide(consent, inp, pol)
    for key, expected in keys_of(decision, ""):
        assert key == expected


@pytest.mark.parametrize(
    "inp",
    [
        Attest(method="email", at=at(5), by="agent", evidence="form 12"),
        Revoke(at=at(5), by="agent", reason="asked by phone"),
        ProviderOptOut(at=at(5), provider="twilio", code="21610"),
    ],
    ids=["attest", "revoke", "provider-opt-out"],
)
def test_attestations_and_revocations_send_nothing_so_key_nothing(
    inp: Input,
) -> None:
    # Why a namespace cannot show on these inputs: no message, no key.
    pol = policy(attestation_methods={"email": "written"})
    decision = decide(record_in(ConsentState.PENDING), inp, pol, namespace="t")
    assert decision.events
    assert decision.outgoing == ()


# -- a decision that changes nothing says why and keeps the reply -----------


def test_a_redelivered_message_id_is_a_duplicate_that_keeps_its_reply() -> None:
    flow = Flow()
    flow.request(0)
    flow.reply("hmm", 1, message_id="sm-1")
    head = flow.consent
    again = decide(head, Inbound(text="hmm", at=at(2), message_id="sm-1"), flow.policy)
    assert again.outcome is Outcome.DUPLICATE
    assert again.consent is head
    assert again.events == ()
    assert again.outgoing == ()
    assert again.reply is not None
    assert again.reply.text == "hmm"
    assert again.reply.intent is Intent.UNRECOGNIZED


def test_ordinary_conversation_changes_nothing_and_keeps_its_reply() -> None:
    head = record_in(ConsentState.OPTED_IN)
    decision = decide(
        head, Inbound(text="see you at 8", at=at(5), message_id="c1"), policy()
    )
    assert decision.outcome is Outcome.CONVERSATION
    assert decision.consent is head
    assert decision.events == ()
    assert decision.reply is not None
    assert decision.reply.text == "see you at 8"


def test_a_request_to_a_contact_who_may_be_texted_is_unchanged() -> None:
    head = record_in(ConsentState.OPTED_IN)
    decision = decide(head, RequestOptIn(at=at(5)), policy())
    assert decision.outcome is Outcome.UNCHANGED
    assert decision.consent is head
    assert decision.events == ()
    assert decision.outgoing == ()
    assert decision.reply is None


def test_a_reply_logs_a_reason_only_when_it_pauses() -> None:
    # A reason is a pause's (the loop guard's words); every other event a
    # reply fires has none: absent, not empty.
    flow = Flow()
    flow.request(0)
    flow.reply("hmm", 1)
    flow.reply("HELP", 2)
    flow.reply("yes", 3)
    flow.reply("stop", 4)
    flow.reply("start", 5)
    triggers = [e.trigger for e in flow.log[1:]]
    assert triggers == [
        Trigger.REMIND,
        Trigger.HELP,
        Trigger.CONSENT,
        Trigger.STOP,
        Trigger.RESTART,
    ]
    assert [e.reason for e in flow.log[1:]] == [None] * 5


# -- the loop guard ----------------------------------------------------------


def test_the_same_unrecognised_reply_again_pauses_with_its_reason() -> None:
    flow = Flow()
    flow.request(0)
    flow.reply("hmm", 1)
    decision = flow.reply("HMM ", 2)
    (event,) = decision.events
    assert event.trigger is Trigger.PAUSE
    assert (
        event.reason == "loop guard: the contact repeated the same unrecognized reply"
    )
    assert decision.outgoing == ()


def help_flow() -> Flow:
    """A contact who asks HELP once, then three times in a row 30 minutes
    later, under a guard of 2 automatic replies per 10 minutes."""
    flow = Flow(policy(loop_window=timedelta(minutes=10), loop_max_auto_replies=2))
    for minute in (0, 30, 31):
        answered = flow.reply("HELP", minute)
        assert [m.kind for m in answered.outgoing] == [MessageKind.HELP]
    return flow


def test_only_the_automatic_replies_within_the_window_count() -> None:
    # The answer at minute 0 is outside the window at minute 32: it neither
    # counts nor hides the two inside, which reach the limit.
    flow = help_flow()
    decision = flow.reply("HELP", 32)
    (event,) = decision.events
    assert event.trigger is Trigger.PAUSE
    assert event.reason == (
        "loop guard: 2 automatic replies within 0:10:00; automatic replies paused"
    )
    assert decision.outgoing == ()


def test_a_pause_lasts_the_loop_window_inclusive_and_keeps_the_reply() -> None:
    flow = help_flow()
    flow.reply("HELP", 32)  # the pause, at minute 32
    head, pol = flow.consent, flow.policy
    last = at(32) + pol.loop_window
    paused = decide(head, Inbound(text="HELP", at=last, message_id="h1"), pol)
    assert paused.outcome is Outcome.PAUSED
    assert paused.consent is head
    assert paused.outgoing == ()
    assert paused.reply is not None
    assert paused.reply.intent is Intent.HELP
    after = decide(
        head, Inbound(text="HELP", at=last + MICROSECOND, message_id="h2"), pol
    )
    assert [m.kind for m in after.outgoing] == [MessageKind.HELP]


# -- stale replies: the instant of the stop is not before it ----------------


def test_a_start_at_the_instant_of_the_stop_restarts_and_an_earlier_one_is_stale() -> (
    None
):
    flow = Flow()
    flow.request(0)
    flow.reply("yes", 1)
    flow.reply("stop", 2)
    head, pol = flow.consent, flow.policy
    same = decide(head, Inbound(text="START", at=at(2), message_id="s1"), pol)
    assert same.consent.state is ConsentState.OPTED_IN
    assert [e.trigger for e in same.events] == [Trigger.RESTART]
    early = at(2) - MICROSECOND
    stale = decide(head, Inbound(text="START", at=early, message_id="s2"), pol)
    assert stale.outcome is Outcome.STALE
    assert stale.consent is head


# -- reading a reply: the contact's chain, our quotes, the keyword's language


def test_the_contacts_own_locale_counts_when_the_policy_serves_no_language() -> None:
    pol = policy(languages=())
    flow = Flow(pol)
    flow.request(0, locale="fr")
    decision = flow.reply("Oui", 1)
    assert decision.reply is not None
    assert decision.reply.intent is Intent.CONSENT
    assert flow.consent.state is ConsentState.OPTED_IN


def test_the_policys_default_locale_counts_for_a_contact_without_one() -> None:
    # A French programme that signs up on the keyword: "Oui" from a number
    # it never texted is read in French, its default.
    pol = policy(languages=(), default_locale="fr", keyword_opt_in="single")
    decision = decide(
        Consent.new(CONTACT), Inbound(text="Oui", at=T0, message_id="o1"), pol
    )
    assert decision.reply is not None
    assert decision.reply.intent is Intent.CONSENT
    assert decision.consent.state is ConsentState.OPTED_IN
    english = policy(languages=(), keyword_opt_in="single")
    ignored = decide(
        Consent.new(CONTACT), Inbound(text="Oui", at=T0, message_id="o1"), english
    )
    assert ignored.outcome is Outcome.CONVERSATION


def test_a_reply_quoting_our_request_is_not_the_contacts_stop() -> None:
    # The request says "Reply YES to agree or STOP to opt out": an
    # auto-forward of it is read without the quote, as an unclear answer.
    flow = Flow()
    request = flow.request(0)
    decision = flow.reply(request.outgoing[0].text, 1)
    assert decision.reply is not None
    assert decision.reply.quoted is MessageKind.OPT_IN_REQUEST
    assert decision.reply.intent is not Intent.STOP
    assert flow.consent.state is ConsentState.PENDING
    assert [m.kind for m in decision.outgoing] == [MessageKind.REMINDER]


def test_a_policy_keyword_of_one_language_is_answered_in_it() -> None:
    pol = policy(extra_keywords={Intent.HELP: {"fr": ["secours"]}})
    flow = Flow(pol)
    flow.request(0)
    assert flow.consent.locale == "en"
    decision = flow.reply("secours", 1)
    assert [(m.kind, m.locale) for m in decision.outgoing] == [(MessageKind.HELP, "fr")]
    assert flow.consent.locale == "en"


def test_a_keywords_language_becomes_a_locale_only_for_a_contact_without_one() -> None:
    pol = policy()
    known = decide(
        record_in(ConsentState.PENDING),
        Inbound(text="AIDE", at=at(5), message_id="a1"),
        pol,
    )
    assert [m.locale for m in known.outgoing] == ["fr"]
    assert known.events[0].locale == "en"
    assert known.consent.locale == "en"
    unknown = decide(
        Consent.new(CONTACT), Inbound(text="AIDE", at=at(5), message_id="a1"), pol
    )
    assert [m.locale for m in unknown.outgoing] == ["fr"]
    assert unknown.consent.locale == "fr"


def test_a_request_gives_the_contact_the_locale_of_its_wording() -> None:
    # The locale the request sets is the first of the chain later replies
    # are read in (docs/rules.md, Replies).
    for default in ("en", "fr"):
        decision = decide(
            Consent.new(CONTACT), RequestOptIn(at=T0), policy(default_locale=default)
        )
        assert decision.outgoing[0].locale == default
        assert decision.consent.locale == default
    asked = decide(Consent.new(CONTACT), RequestOptIn(at=T0, locale="es"), policy())
    assert asked.consent.locale == "es"


# -- refused requests -------------------------------------------------------


def test_a_request_to_a_stopped_contact_names_the_contact_and_the_request() -> None:
    with pytest.raises(ContactStopped) as raised:
        decide(record_in(ConsentState.STOPPED), RequestOptIn(at=at(5)), policy())
    assert raised.value.contact == CONTACT
    assert str(raised.value) == (
        f"contact {CONTACT!r} has opted out, so an opt-in request is refused; "
        "only the contact can restart messaging by texting START"
    )


def resend(pol: Policy, *minutes: float) -> Decision:
    """Request at minute 0, then resend at each of ``minutes``."""
    flow = Flow(pol)
    flow.request(0)
    for minute in minutes:
        flow.request(minute)
    assert flow.last is not None
    return flow.last


DAY = 24 * 60


def test_a_resend_the_policy_forbids_says_so_and_that_none_is_left() -> None:
    with pytest.raises(ResendNotAllowed) as raised:
        resend(policy(allow_resend=False), DAY)
    error = raised.value
    assert error.why == "the policy does not allow resending the opt-in request"
    assert (error.attempts_left, error.next_allowed_at) == (0, None)
    assert str(error) == (
        "opt-in request not resent (the policy does not allow resending the "
        "opt-in request; 0 attempt(s) left): no further request can be sent "
        "under this policy"
    )


def test_a_resend_past_max_attempts_says_how_many_were_used() -> None:
    pol = policy(max_attempts=2)
    resend(pol, DAY)  # the second and last attempt
    with pytest.raises(ResendNotAllowed) as raised:
        resend(pol, DAY, 2 * DAY)
    error = raised.value
    assert error.why == "all 2 attempts are used"
    assert (error.attempts_left, error.next_allowed_at) == (0, None)


def test_a_resend_too_soon_says_when_the_last_went_and_when_the_next_may() -> None:
    with pytest.raises(ResendNotAllowed) as raised:
        resend(policy(), DAY - 1)
    error = raised.value
    assert error.why == (
        f"the last request went at {T0.isoformat()} and the policy waits "
        "1 day, 0:00:00 between requests"
    )
    assert error.attempts_left == 2
    assert error.next_allowed_at == at(DAY)
    # At resend_after exactly, it goes.
    assert [e.trigger for e in resend(policy(), DAY).events] == [Trigger.RESEND]


def test_a_greeting_with_an_unassigned_code_point_is_refused() -> None:
    # U+FFFE is a noncharacter: category Cn, in every Unicode version.
    with pytest.raises(InvalidGreeting) as raised:
        decide(
            Consent.new(CONTACT), RequestOptIn(at=T0, greeting="Hi\ufffeAna"), policy()
        )
    assert str(raised.value) == (
        "greeting contains the control character U+FFFE; remove it (line "
        "breaks and invisible characters could disguise the locked opt-in "
        "wording)"
    )


# -- refused texts name the contact -----------------------------------------

NIGHT = policy(quiet_hours=("21:00", "08:00"))

#: ``reason -> (consent, text, policy)`` for each way a text is refused.
BLOCKED: dict[str, Callable[[], tuple[Consent, SendText, Policy]]] = {
    "too_long": lambda: (
        record_in(ConsentState.OPTED_IN),
        SendText(body="x" * 1601, at=at(5)),
        policy(),
    ),
    "quiet_hours": lambda: (
        record_in(ConsentState.OPTED_IN),
        SendText(body="hi", at=T0.replace(hour=23)),
        NIGHT,
    ),
    "stopped": lambda: (
        record_in(ConsentState.STOPPED),
        SendText(body="hi", at=at(5)),
        policy(),
    ),
    "awaiting_reply": lambda: (
        record_in(ConsentState.PENDING),
        SendText(body="hi", at=at(5)),
        policy(),
    ),
    "opt_in_required": lambda: (
        Consent.new(CONTACT),
        SendText(body="hi", at=at(5)),
        policy(),
    ),
    "level_too_low": lambda: (
        record_in(ConsentState.OPTED_IN),
        SendText(body="hi", at=at(5), category="marketing"),
        policy(),
    ),
}


@pytest.mark.parametrize("reason", sorted(BLOCKED))
def test_a_refused_text_names_its_contact(reason: str) -> None:
    consent, text, pol = BLOCKED[reason]()
    with pytest.raises(SendBlocked) as raised:
        decide(consent, text, pol)
    assert raised.value.reason == reason
    assert raised.value.contact == CONTACT
    assert str(raised.value).startswith(f"text to {CONTACT!r} blocked ({reason}): ")


# -- may_text and sendable agree with decide --------------------------------


class TextsPending(Policy):
    """A host's disclaimer policy that also lets pending contacts be texted:
    they get no disclaimer first, so they keep their own level."""

    def allows_texting(self, state: ConsentState) -> bool:
        return state is ConsentState.PENDING or super().allows_texting(state)


def test_the_disclaimer_raises_the_level_only_when_it_goes_first() -> None:
    pol = TextsPending(org_name="Acme", mode=Mode.DISCLAIMER)
    pending = record_in(ConsentState.PENDING)
    with pytest.raises(SendBlocked) as raised:
        decide(pending, SendText(body="hi", at=at(5)), pol)
    assert (raised.value.reason, raised.value.current) == ("level_too_low", "none")
    assert not may_text(pending, pol)
    assert list(sendable([pending], pol)) == []
    # A new contact, whom the policy does not let be texted, gets the
    # disclaimer first and so the level it gives.
    new = Consent.new(CONTACT)
    assert may_text(new, pol)
    assert list(sendable([new], pol)) == [new]
    sent = decide(new, SendText(body="hi", at=at(5)), pol)
    assert [m.kind for m in sent.outgoing] == [MessageKind.DISCLAIMER, MessageKind.TEXT]
