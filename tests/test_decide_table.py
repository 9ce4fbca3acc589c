"""Exhaustive (state x input x mode) table, written from SPEC's rules."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from optin_core import (
    Attest,
    ConsentState,
    ContactStopped,
    Inbound,
    Input,
    MessageKind,
    Mode,
    RequestOptIn,
    Revoke,
    SendBlocked,
    SendText,
    decide,
)

from .flows import at, policy, record_in

NEW, PENDING, OPTED_IN, DISCLOSED, STOPPED = (
    ConsentState.NEW,
    ConsentState.PENDING,
    ConsentState.OPTED_IN,
    ConsentState.DISCLOSED,
    ConsentState.STOPPED,
)
REQ, REM, CONF, STOPC, STARTC, HELP, DISC, TEXT = (
    MessageKind.OPT_IN_REQUEST,
    MessageKind.REMINDER,
    MessageKind.OPT_IN_CONFIRMATION,
    MessageKind.STOP_CONFIRMATION,
    MessageKind.START_CONFIRMATION,
    MessageKind.HELP,
    MessageKind.DISCLAIMER,
    MessageKind.TEXT,
)

# Inputs arrive a day and a minute after the record was built, so a resend
# is within the default policy's limits.
LATER = 24 * 60 + 1

INPUTS: dict[str, Callable[[], Input]] = {
    "request": lambda: RequestOptIn(at=at(LATER)),
    "yes": lambda: Inbound(text="Yes", at=at(LATER), message_id="x-yes"),
    "stop": lambda: Inbound(text="STOP", at=at(LATER), message_id="x-stop"),
    "start": lambda: Inbound(text="start", at=at(LATER), message_id="x-start"),
    "help": lambda: Inbound(text="HELP", at=at(LATER), message_id="x-help"),
    "no": lambda: Inbound(text="No", at=at(LATER), message_id="x-no"),
    "unclear": lambda: Inbound(text="who is this?", at=at(LATER), message_id="x-q"),
    "text": lambda: SendText(body="Your statement is ready.", at=at(LATER)),
    "attest": lambda: Attest(
        method="email", at=at(LATER), by="agent-7", evidence="msg-1"
    ),
    "revoke": lambda: Revoke(at=at(LATER), by="compliance", reason="phone call"),
}

Outcome = (
    tuple[ConsentState, tuple[MessageKind, ...]]
    | type[Exception]
    | tuple[type[Exception], str]
)
UNCHANGED = "unchanged"

ATTESTATION: dict[ConsentState, dict[str, Outcome | str]] = {
    NEW: {
        "request": (PENDING, (REQ,)),
        "yes": UNCHANGED,
        "stop": (STOPPED, (STOPC,)),
        "start": UNCHANGED,
        "help": (NEW, (HELP,)),
        "no": UNCHANGED,
        "unclear": UNCHANGED,
        "text": (SendBlocked, "opt_in_required"),
        "attest": (OPTED_IN, ()),
        "revoke": (STOPPED, ()),
    },
    PENDING: {
        "request": (PENDING, (REQ,)),
        "yes": (OPTED_IN, (CONF,)),
        "stop": (STOPPED, (STOPC,)),
        "start": (OPTED_IN, (CONF,)),
        "help": (PENDING, (HELP,)),
        "no": (STOPPED, (STOPC,)),
        "unclear": (PENDING, (REM,)),
        "text": (SendBlocked, "awaiting_reply"),
        "attest": (OPTED_IN, ()),
        "revoke": (STOPPED, ()),
    },
    OPTED_IN: {
        "request": UNCHANGED,
        "yes": UNCHANGED,
        "stop": (STOPPED, (STOPC,)),
        "start": UNCHANGED,
        "help": (OPTED_IN, (HELP,)),
        "no": UNCHANGED,
        "unclear": UNCHANGED,
        "text": (OPTED_IN, (TEXT,)),
        "attest": (OPTED_IN, ()),
        "revoke": (STOPPED, ()),
    },
    DISCLOSED: {  # the organisation switched from disclaimer to attestation
        "request": (PENDING, (REQ,)),
        "yes": (OPTED_IN, ()),
        "stop": (STOPPED, (STOPC,)),
        "start": (OPTED_IN, ()),
        "help": (DISCLOSED, (HELP,)),
        "no": UNCHANGED,
        "unclear": UNCHANGED,
        "text": (SendBlocked, "opt_in_required"),
        "attest": (OPTED_IN, ()),
        "revoke": (STOPPED, ()),
    },
    STOPPED: {
        "request": ContactStopped,
        "yes": UNCHANGED,
        "stop": UNCHANGED,
        "start": (OPTED_IN, (STARTC,)),
        "help": (STOPPED, (HELP,)),
        "no": UNCHANGED,
        "unclear": UNCHANGED,
        "text": (SendBlocked, "stopped"),
        "attest": ContactStopped,
        "revoke": (STOPPED, ()),
    },
}

DISCLAIMER: dict[ConsentState, dict[str, Outcome | str]] = {
    state: dict(row) for state, row in ATTESTATION.items()
}
DISCLAIMER[NEW].update(request=(DISCLOSED, (DISC,)), text=(DISCLOSED, (DISC, TEXT)))
DISCLAIMER[PENDING].update(request=(DISCLOSED, (DISC,)), text=(DISCLOSED, (DISC, TEXT)))
DISCLAIMER[DISCLOSED].update(request=UNCHANGED, text=(DISCLOSED, (TEXT,)))

CASES = [
    (mode, state, name, table[state][name])
    for mode, table in ((Mode.ATTESTATION, ATTESTATION), (Mode.DISCLAIMER, DISCLAIMER))
    for state in ConsentState
    for name in INPUTS
]


def test_table_covers_every_state_input_and_mode() -> None:
    assert len(CASES) == 2 * len(ConsentState) * len(INPUTS)


@pytest.mark.parametrize(("mode", "state", "name", "expected"), CASES)
def test_rule(mode: Mode, state: ConsentState, name: str, expected: object) -> None:
    pol = policy(mode, attestation_methods={"email"})
    before = record_in(state)
    inp = INPUTS[name]()
    if isinstance(expected, type):
        with pytest.raises(expected):
            decide(before, inp, pol)
        return
    if isinstance(expected, tuple) and isinstance(expected[0], type):
        error, reason = expected
        with pytest.raises(error) as info:
            decide(before, inp, pol)
        assert getattr(info.value, "reason", None) == reason
        return
    decision = decide(before, inp, pol)
    if expected == UNCHANGED:
        assert decision.consent is before
        assert decision.outgoing == ()
        assert decision.events == ()
        return
    assert isinstance(expected, tuple)
    target, kinds = expected
    assert decision.consent.state is target
    assert tuple(m.kind for m in decision.outgoing) == kinds
    assert decision.consent.version == before.version + len(decision.events)
    assert decision.events[0].prev == before.digest
    assert decision.consent.digest == decision.events[-1].digest
    assert all(m.contact == before.contact for m in decision.outgoing)
    if decision.events:
        assert decision.events[-1].policy_id == pol.policy_id
