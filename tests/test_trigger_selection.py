"""Trigger selection, exhaustively, without reply text.

Every (state, intent, policy switch, staleness, reminder budget) goes through
the core's selection seam with a hand-made :class:`ParsedReply`, so editing
a keyword pack can never break these tests, and every rule of
``docs/rules.md`` for inbound replies is pinned in both positions of every
switch. The expected answer is written from the rules, then checked against
the machine's table: a selected trigger must be a declared transition.
"""

from __future__ import annotations

import itertools
from datetime import UTC, datetime, timedelta

import attrs
import pytest

from optin_core import (
    Consent,
    ConsentState,
    Inbound,
    Intent,
    MatchRule,
    Mode,
    Outcome,
    ParsedReply,
    Policy,
    Trigger,
)
from optin_core._core import _inbound_trigger
from optin_core._machine import TRANSITIONS

S = ConsentState
NOW = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)
SWITCHES = (
    "confirm_stop",
    "answer_help",
    "yes_restarts",
    "allow_restart",
    "confirm_restart",
    "confirm_opt_in",
    "decline_stops",
    "provider_answers_keywords",
)
STALENESS = ("fresh", "older than the stop", "older than the request")


def expected(
    state: ConsentState,
    intent: Intent,
    policy: Policy,
    staleness: str,
    reminders_left: bool,
) -> tuple[Trigger | Outcome, bool]:
    answers = not policy.provider_answers_keywords
    stale_stop = staleness == "older than the stop"
    stale_request = staleness == "older than the request"
    if intent is Intent.STOP:
        if state is S.STOPPED:
            return Outcome.UNCHANGED, False
        return Trigger.STOP, policy.confirm_stop and answers
    if intent is Intent.HELP:
        if not policy.answer_help:
            return Outcome.POLICY, False
        return Trigger.HELP, answers
    if state is S.STOPPED:
        if not (
            intent is Intent.START or (intent is Intent.CONSENT and policy.yes_restarts)
        ):
            return Outcome.CONVERSATION, False
        if stale_stop:
            return Outcome.STALE, False
        if not policy.allow_restart:
            return Outcome.POLICY, False
        return Trigger.RESTART, policy.confirm_restart and answers
    if intent in (Intent.CONSENT, Intent.START):
        if state is S.PENDING:
            if stale_request:
                return Outcome.STALE, False
            return Trigger.CONSENT, policy.confirm_opt_in
        if state is S.DISCLOSED:
            return Trigger.UPGRADE, False
        if state is S.NEW:
            if policy.keyword_opt_in == "single":
                return Trigger.SIGNUP, policy.confirm_opt_in
            if policy.keyword_opt_in == "double":
                if policy.mode is Mode.DISCLAIMER:
                    return Trigger.DISCLOSE, True
                return Trigger.REQUEST, True
            return Outcome.CONVERSATION, False
        return Outcome.UNCHANGED, False
    # Decline, reactions and unrecognised replies.
    if state is not S.PENDING:
        return Outcome.CONVERSATION, False
    if stale_request:
        return Outcome.STALE, False
    if intent is Intent.DECLINE and policy.decline_stops:
        return Trigger.DECLINE, policy.confirm_stop and answers
    if reminders_left:
        return Trigger.REMIND, True
    return Outcome.POLICY, False


def _head(state: ConsentState, staleness: str, reminders: int) -> Consent:
    # The reply is written two hours ago when stale, now when fresh; the
    # stop or the request it is stale for happened an hour ago, the other
    # three hours ago (a delayed or replayed webhook is stale for one only).
    hour_ago, long_ago = NOW - timedelta(hours=1), NOW - timedelta(hours=3)
    stop_first = staleness == "older than the request"
    return attrs.evolve(
        Consent.new("+15550100123"),
        state=state,
        stopped_at=long_ago if stop_first else hour_ago,
        requested_at=hour_ago if stop_first else long_ago,
        reminders=reminders,
    )


def _policies() -> list[Policy]:
    out = []
    for values in itertools.product((False, True), repeat=len(SWITCHES)):
        for signup, mode in itertools.product(
            ("off", "single", "double"), (Mode.ATTESTATION, Mode.DISCLAIMER)
        ):
            out.append(
                Policy(
                    org_name="Acme",
                    mode=mode,
                    keyword_opt_in=signup,
                    max_reminders=1,
                    **dict(zip(SWITCHES, values, strict=True)),
                )
            )
    return out


POLICIES = _policies()


@pytest.mark.parametrize("state", list(S))
def test_trigger_selection_every_state_intent_and_switch(state: ConsentState) -> None:
    checked = 0
    for intent, staleness, reminders in itertools.product(Intent, STALENESS, (0, 1)):
        stale = staleness != "fresh"
        msg = Inbound(
            text="(not read)",
            at=NOW - timedelta(hours=2) if stale else NOW,
            message_id="m-1",
        )
        reply = ParsedReply(
            intent=intent,
            keyword=None,
            rule=MatchRule.EXACT,
            locale="en",
            text="(not read)",
        )
        head = _head(state, staleness, reminders)
        for policy in POLICIES:
            got = _inbound_trigger(head, msg, reply, policy)
            want = expected(state, intent, policy, staleness, reminders < 1)
            assert got == want, (state, intent, staleness, reminders, policy)
            trigger = got[0]
            if isinstance(trigger, Trigger):
                # The selection never picks a transition the machine lacks.
                assert (state, trigger) in TRANSITIONS
            checked += 1
    assert checked == len(Intent) * len(STALENESS) * 2 * len(POLICIES)
