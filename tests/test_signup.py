"""Keyword sign-up: a new contact texting START or YES, per the policy."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from optin_core import (
    Consent,
    ConsentState,
    Inbound,
    MessageKind,
    Mode,
    Outcome,
    Policy,
    PolicyError,
    decide,
    verify,
)

T0 = datetime(2026, 3, 2, 9, 30, tzinfo=UTC)
A = "+15550001"


def reply(text: str, minutes: int = 0, mid: str = "m1") -> Inbound:
    return Inbound(text=text, at=T0 + timedelta(minutes=minutes), message_id=mid)


@pytest.mark.parametrize("word", ["START", "yes", "Oui"])
def test_off_by_default_a_new_contacts_keyword_is_conversation(word: str) -> None:
    d = decide(Consent.new(A), reply(word), Policy(org_name="Acme"))
    assert not d.changed
    assert d.outcome is Outcome.CONVERSATION


def test_double_opt_in_sends_the_request_then_waits_for_yes() -> None:
    policy = Policy(org_name="Acme", keyword_opt_in="double")
    first = decide(Consent.new(A), reply("START"), policy)
    assert first.consent.state is ConsentState.PENDING
    assert [m.kind for m in first.outgoing] == [MessageKind.OPT_IN_REQUEST]
    (event,) = first.events
    assert (event.trigger, event.input) == ("request", "inbound")
    assert event.reply is not None
    assert event.reply.keyword == "start"  # the keyword is the evidence
    second = decide(first.consent, reply("YES", 1, "m2"), policy)
    assert second.consent.state is ConsentState.OPTED_IN
    log = (*first.events, *second.events)
    assert verify(A, log, second.consent) == second.consent


def test_single_opt_in_opts_in_at_once_with_the_confirmation() -> None:
    policy = Policy(org_name="Acme", keyword_opt_in="single")
    d = decide(Consent.new(A), reply("START"), policy)
    assert d.consent.state is ConsentState.OPTED_IN
    assert [m.kind for m in d.outgoing] == [MessageKind.OPT_IN_CONFIRMATION]
    assert d.events[0].trigger == "signup"
    assert verify(A, d.events, d.consent) == d.consent
    quiet = Policy(org_name="Acme", keyword_opt_in="single", confirm_opt_in=False)
    assert decide(Consent.new(A), reply("START"), quiet).outgoing == ()


def test_double_opt_in_in_disclaimer_mode_sends_the_disclaimer() -> None:
    policy = Policy(org_name="Acme", keyword_opt_in="double", mode=Mode.DISCLAIMER)
    d = decide(Consent.new(A), reply("START"), policy)
    assert d.consent.state is ConsentState.DISCLOSED
    assert [m.kind for m in d.outgoing] == [MessageKind.DISCLAIMER]
    assert verify(A, d.events, d.consent) == d.consent


def test_only_new_contacts_sign_up_by_keyword() -> None:
    policy = Policy(org_name="Acme", keyword_opt_in="single")
    stopped = decide(Consent.new(A), reply("STOP"), policy).consent
    assert stopped.state is ConsentState.STOPPED
    # A stopped contact's START is a restart, as ever (not a sign-up).
    d = decide(stopped, reply("START", 1, "m2"), policy)
    assert [e.trigger for e in d.events] == ["restart"]
    # Unclear text from a new contact signs nobody up.
    assert not decide(Consent.new(A), reply("maybe"), policy).changed


def test_a_forged_signup_without_its_keyword_is_refused() -> None:
    import attrs

    from optin_core import Intent, RecordError

    policy = Policy(org_name="Acme", keyword_opt_in="single")
    d = decide(Consent.new(A), reply("START"), policy)
    (event,) = d.events
    assert event.reply is not None
    forged = attrs.evolve(event, reply=attrs.evolve(event.reply, intent=Intent.HELP))
    with pytest.raises(RecordError):
        verify(A, [forged])


def test_an_unknown_mode_is_refused() -> None:
    with pytest.raises(PolicyError, match="keyword_opt_in"):
        Policy(org_name="Acme", keyword_opt_in="triple")


def test_a_french_sign_up_keyword_gets_the_french_request() -> None:
    policy = Policy(org_name="Acme", keyword_opt_in="double")
    d = decide(Consent.new("+33612345678"), reply("OUI"), policy)
    assert d.consent.locale == "fr"
    (request,) = d.outgoing
    assert request.locale == "fr"
    assert request.text == policy.message(MessageKind.OPT_IN_REQUEST, "fr")[0]
