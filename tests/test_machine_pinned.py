"""The machine pinned pair by pair, and replay pinned rule by rule (issue 17).

Every ``(state, trigger)`` pair of the machine, self-transitions included,
is fired through ``decide`` from a record reached through ``decide``, and
the log it leaves must replay (``verify``) to the head. Then a known log is
forged one field at a time, every digest recomputed, so that only replay's
own rules can tell, and ``verify`` must name the forged field.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import attrs
import pytest

from optin_core import (
    Attest,
    AuditEvent,
    Consent,
    ConsentMachine,
    ConsentState,
    Decision,
    Import,
    Inbound,
    Input,
    Intent,
    MessageKind,
    Mode,
    Outgoing,
    Policy,
    RecordError,
    RequestOptIn,
    Revoke,
    SendText,
    Trigger,
    cancel_queued,
    decide,
    verify,
)

# The two delivery inputs are not exported: the service builds them.
from optin_core._records import MessageExpired, MessageFailed

from .flows import rechained

T0 = datetime(2026, 12, 1, 9, 0, tzinfo=UTC)
CONTACT = "+15550100123"
#: After the default resend_after (a day), so a resend is allowed.
LATER = 24 * 60 + 10

NEW, PENDING, OPTED_IN, DISCLOSED, STOPPED = (
    ConsentState.NEW,
    ConsentState.PENDING,
    ConsentState.OPTED_IN,
    ConsentState.DISCLOSED,
    ConsentState.STOPPED,
)
T = Trigger

ATTESTATION = Policy(org_name="Acme", attestation_methods={"email": "written"})
DISCLAIMER = Policy(
    org_name="Acme", mode=Mode.DISCLAIMER, attestation_methods={"email": "written"}
)
SIGNUP = Policy(org_name="Acme", keyword_opt_in="single")

#: The machine, written out: ``(state, trigger) -> state``. A change to the
#: declaration shows here as a diff to review (docs/machine.md draws it).
MACHINE: dict[tuple[ConsentState, Trigger], ConsentState] = {
    # Triggers that keep every state they apply to.
    **{
        (state, trigger): state
        for trigger in (T.HELP, T.PAUSE, T.EXPIRE, T.DEAD_LETTER)
        for state in ConsentState
    },
    (OPTED_IN, T.TEXT): OPTED_IN,
    (DISCLOSED, T.TEXT): DISCLOSED,
    (PENDING, T.RESEND): PENDING,
    (PENDING, T.REMIND): PENDING,
    (OPTED_IN, T.ATTEST): OPTED_IN,
    (STOPPED, T.REVOKE): STOPPED,
    (STOPPED, T.CANCEL): STOPPED,
    # Requests and the disclaimer.
    (NEW, T.REQUEST): PENDING,
    (DISCLOSED, T.REQUEST): PENDING,
    (NEW, T.DISCLOSE): DISCLOSED,
    (PENDING, T.DISCLOSE): DISCLOSED,
    # Ways in.
    (PENDING, T.CONSENT): OPTED_IN,
    (DISCLOSED, T.UPGRADE): OPTED_IN,
    (STOPPED, T.RESTART): OPTED_IN,
    (NEW, T.SIGNUP): OPTED_IN,
    **{(state, T.ATTEST): OPTED_IN for state in (NEW, PENDING, DISCLOSED)},
    **{(state, T.IMPORT_OPT_IN): OPTED_IN for state in (NEW, PENDING, DISCLOSED)},
    # Ways out.
    (PENDING, T.DECLINE): STOPPED,
    **{
        (state, trigger): STOPPED
        for trigger in (T.STOP, T.REVOKE, T.IMPORT_STOP)
        for state in (NEW, PENDING, OPTED_IN, DISCLOSED)
    },
}


def _at(minutes: float) -> datetime:
    return T0 + timedelta(minutes=minutes)


class Log:
    """A contact's head, log and messages, kept between ``decide`` calls."""

    def __init__(self, policy: Policy) -> None:
        self.policy = policy
        self.consent = Consent.new(CONTACT)
        self.events: list[AuditEvent] = []
        self.sent: list[Outgoing] = []
        self.last: Decision | None = None
        self.n = 0

    def take(self, decision: Decision) -> Decision:
        self.consent = decision.consent
        self.events.extend(decision.events)
        self.sent.extend(decision.outgoing)
        self.last = decision
        return decision

    def apply(self, input: Input, policy: Policy | None = None) -> Decision:
        return self.take(decide(self.consent, input, policy or self.policy))

    def inbound(self, text: str, minutes: float) -> Inbound:
        self.n += 1
        return Inbound(text=text, at=_at(minutes), message_id=f"m{self.n}")

    def say(self, text: str, minutes: float, policy: Policy | None = None) -> Decision:
        return self.apply(self.inbound(text, minutes), policy)

    def key(self, kind: MessageKind) -> str:
        return next(m.key for m in reversed(self.sent) if m.kind is kind)


def reach(state: ConsentState) -> Log:
    """A record in ``state``, reached through ``decide`` by minute 1."""
    if state is DISCLOSED:
        log = Log(DISCLAIMER)
        log.apply(RequestOptIn(at=_at(0)))
        return log
    log = Log(ATTESTATION)
    if state is not NEW:
        log.apply(RequestOptIn(at=_at(0)))
    if state is OPTED_IN:
        log.say("Yes", 1)
    elif state is STOPPED:
        log.say("STOP", 1)
    assert log.consent.state is state
    return log


def _pause(log: Log, m: float) -> None:
    # One HELP more than the loop guard answers within its window.
    for i in range(log.policy.loop_max_auto_replies + 1):
        log.say("HELP", m + i)


def _cancel(log: Log, m: float) -> None:
    # A stop while a text the stop withdraws is still queued.
    log.say("START", m)
    log.apply(SendText(body="Your order shipped.", at=_at(m + 1)))
    assert log.last is not None
    queued = log.last.outgoing
    stop = decide(log.consent, log.inbound("STOP", m + 2), log.policy)
    log.take(cancel_queued(stop, queued, log.policy))


def _expire(log: Log, m: float) -> None:
    # Only a stop confirmation has a deadline: the one of the stop that
    # reached STOPPED, or of a stop before a restart (OPTED_IN). The other
    # states are given a HELP answer's key, which replay refuses below.
    if log.consent.state is OPTED_IN:
        log.say("STOP", m)
        log.say("START", m + 1)
    if log.consent.state in (STOPPED, OPTED_IN):
        key = log.key(MessageKind.STOP_CONFIRMATION)
    else:
        log.say("HELP", m)
        key = log.key(MessageKind.HELP)
    log.apply(MessageExpired(at=_at(m + 30), key=key))


def _dead_letter(log: Log, m: float) -> None:
    log.say("HELP", m)
    key = log.key(MessageKind.HELP)
    log.apply(MessageFailed(at=_at(m + 30), key=key, attempts=3, error="503"))


def _import(state: ConsentState) -> Callable[[Log, float], object]:
    return lambda log, m: log.apply(
        Import(
            at=_at(m),
            state=state,
            source="crm",
            by="ops",
            import_id="row-1",
            evidence="signed form",
        )
    )


#: How each trigger is fired, from whichever state it applies to.
FIRE: dict[Trigger, Callable[[Log, float], object]] = {
    T.REQUEST: lambda log, m: log.apply(RequestOptIn(at=_at(m)), ATTESTATION),
    T.RESEND: lambda log, m: log.apply(RequestOptIn(at=_at(m))),
    T.DISCLOSE: lambda log, m: log.apply(RequestOptIn(at=_at(m)), DISCLAIMER),
    T.CONSENT: lambda log, m: log.say("Yes", m),
    T.UPGRADE: lambda log, m: log.say("Yes", m),
    T.RESTART: lambda log, m: log.say("START", m),
    T.STOP: lambda log, m: log.say("STOP", m),
    T.DECLINE: lambda log, m: log.say("No", m),
    T.REVOKE: lambda log, m: log.apply(
        Revoke(at=_at(m), by="agent", reason="asked by phone")
    ),
    T.ATTEST: lambda log, m: log.apply(
        Attest(method="email", at=_at(m), by="agent", evidence="form 7")
    ),
    T.REMIND: lambda log, m: log.say("who is this?", m),
    T.HELP: lambda log, m: log.say("HELP", m),
    T.TEXT: lambda log, m: log.apply(SendText(body="Your order shipped.", at=_at(m))),
    T.PAUSE: _pause,
    T.CANCEL: _cancel,
    T.EXPIRE: _expire,
    T.DEAD_LETTER: _dead_letter,
    T.SIGNUP: lambda log, m: log.say("START", m, SIGNUP),
    T.IMPORT_STOP: _import(STOPPED),
    T.IMPORT_OPT_IN: _import(OPTED_IN),
}

#: decide logs these, but no log reaches them through decide's messages: an
#: expiry needs a stop confirmation, and these states have none open.
UNVERIFIABLE = {(NEW, T.EXPIRE), (PENDING, T.EXPIRE), (DISCLOSED, T.EXPIRE)}


def _declared() -> dict[tuple[ConsentState, Trigger], ConsentState]:
    table = {}
    for state in ConsentMachine.states:
        for transition in state.transitions:
            for event in transition.events:
                key = (ConsentState(transition.source.value), Trigger(str(event)))
                table[key] = ConsentState(transition.target.value)
    return table


def test_the_machine_is_the_declared_one() -> None:
    assert _declared() == MACHINE
    # Every trigger has a way to be fired below.
    assert set(FIRE) == set(Trigger)


def _pair_id(pair: tuple[ConsentState, Trigger]) -> str:
    return f"{pair[0].value}-{pair[1].value}"


@pytest.mark.parametrize("pair", sorted(MACHINE, key=_pair_id), ids=_pair_id)
def test_every_pair_fires_through_decide_and_replays(
    pair: tuple[ConsentState, Trigger],
) -> None:
    state, trigger = pair
    log = reach(state)
    before = len(log.events)
    FIRE[trigger](log, LATER)
    fired = [
        e for e in log.events[before:] if e.trigger is trigger and e.from_state is state
    ]
    assert fired, [(e.trigger, e.from_state) for e in log.events[before:]]
    assert fired[-1].to_state is MACHINE[pair]
    if pair in UNVERIFIABLE:
        with pytest.raises(RecordError, match="deadline"):
            verify(CONTACT, log.events, log.consent)
    else:
        assert verify(CONTACT, log.events, log.consent) == log.consent


@pytest.mark.parametrize(
    "state", [NEW, PENDING, OPTED_IN, DISCLOSED, STOPPED], ids=lambda s: s.value
)
def test_a_contact_asking_help_again_and_again_pauses_in_every_state(
    state: ConsentState,
) -> None:
    log = reach(state)
    _pause(log, LATER)
    (pause,) = [e for e in log.events if e.trigger is T.PAUSE]
    assert (pause.from_state, pause.to_state) == (state, state)
    assert pause.reason
    answered = [m for m in log.sent if m.kind is MessageKind.HELP]
    assert len(answered) == log.policy.loop_max_auto_replies
    assert log.consent.state is state
    assert verify(CONTACT, log.events, log.consent) == log.consent


@pytest.mark.parametrize("inside", [True, False])
def test_the_loop_window_on_both_sides(inside: bool) -> None:
    policy = Policy(org_name="Acme")
    window = policy.loop_window.total_seconds() / 60
    log = reach(OPTED_IN)
    for i in range(policy.loop_max_auto_replies):
        log.say("HELP", LATER + i)
    # The next HELP exactly one window after the first answer still counts
    # it (the window is closed); a moment later the first has left it.
    log.say("HELP", LATER + window + (0 if inside else 0.01))
    assert log.last is not None
    if inside:
        assert not log.last.outgoing
        assert log.events[-1].trigger is T.PAUSE
    else:
        assert [m.kind for m in log.last.outgoing] == [MessageKind.HELP]


# -- replay, one forged field at a time ---------------------------------------


def _known_log() -> list[AuditEvent]:
    log = reach(PENDING)  # 0 request
    log.say("who is this?", 1)  # 1 remind
    log.say("Yes", 2)  # 2 consent
    log.apply(SendText(body="Your order shipped.", at=_at(3)))  # 3 text
    log.apply(Attest(method="email", at=_at(4), by="agent", evidence="form"))  # 4
    log.say("HELP", 5)  # 5 help
    log.apply(Revoke(at=_at(6), by="agent", reason="asked by phone"))  # 6 revoke
    log.say("START", 7)  # 7 restart
    assert [e.trigger for e in log.events] == [
        T.REQUEST,
        T.REMIND,
        T.CONSENT,
        T.TEXT,
        T.ATTEST,
        T.HELP,
        T.REVOKE,
        T.RESTART,
    ]
    assert verify(CONTACT, log.events, log.consent) == log.consent
    return log.events


KNOWN = _known_log()
OTHER_CONTACT = "+15550100999"

#: name: (event index, the forged fields, the field verify must name).
FORGERIES: dict[str, tuple[int, dict[str, Any], str]] = {
    "version": (2, {"version": 9}, "version"),
    "from_state": (2, {"from_state": NEW}, "from_state"),
    "to_state": (2, {"to_state": STOPPED}, "trigger"),
    "trigger": (2, {"trigger": T.HELP}, "trigger"),
    "trigger from another input": (2, {"trigger": T.ATTEST}, "input"),
    "at before the event before": (2, {"at": _at(0.5)}, "at"),
    "input_at on a timely input": (2, {"input_at": _at(1.5)}, "input_at"),
    "input": (2, {"input": "revoke"}, "input"),
    "inbound without reply": (2, {"reply": None}, "reply"),
    "inbound without message id": (2, {"message_id": None}, "reply"),
    "request with a reply": (
        0,
        {"reply": KNOWN[2].reply, "message_id": "x"},
        "reply",
    ),
    "reply intent": (
        2,
        {"reply": attrs.evolve(KNOWN[2].reply, intent=Intent.STOP)},  # type: ignore[misc]
        "reply.intent",
    ),
    "consent older than the request": (
        2,
        {"at": KNOWN[1].at, "input_at": _at(-1)},
        "at",
    ),
    "restart older than the stop": (
        7,
        {"at": KNOWN[6].at, "input_at": _at(5.5)},
        "at",
    ),
    "attestation without evidence": (4, {"evidence": None}, "evidence"),
    "attestation without method": (4, {"method": None}, "evidence"),
    "attestation without actor": (4, {"actor": None}, "evidence"),
    "revocation without reason": (6, {"reason": None}, "reason"),
    "revocation without actor": (6, {"actor": None}, "reason"),
    "level of a consent": (2, {"level": "written"}, "level"),
    "level of a revocation": (6, {"level": "written"}, "level"),
    "level of a restart": (7, {"level": "written"}, "level"),
    "text without category": (3, {"category": None}, "category"),
    "category on a consent": (2, {"category": "marketing"}, "category"),
    "request sends nothing": (0, {"sent": ()}, "sent"),
    "confirmation of another kind": (
        2,
        {"sent": (attrs.evolve(KNOWN[2].sent[0], kind=MessageKind.REMINDER),)},
        "sent",
    ),
    "two confirmations": (
        2,
        {"sent": (KNOWN[2].sent[0], attrs.evolve(KNOWN[2].sent[0], key="k2"))},
        "sent",
    ),
    "another contact's message": (
        2,
        {"sent": (attrs.evolve(KNOWN[2].sent[0], contact=OTHER_CONTACT),)},
        "sent[0].contact",
    ),
    "a message key used twice": (
        2,
        {"sent": (attrs.evolve(KNOWN[2].sent[0], key=KNOWN[0].sent[0].key),)},
        "sent[0].key",
    ),
    "a help that cancels": (5, {"cancelled": ("k",)}, "cancelled"),
}


@pytest.mark.parametrize(
    ("index", "changes", "field"), FORGERIES.values(), ids=FORGERIES
)
def test_replay_names_each_single_field_inconsistency(
    index: int, changes: dict[str, Any], field: str
) -> None:
    forged = list(KNOWN)
    forged[index] = attrs.evolve(KNOWN[index], **changes)
    with pytest.raises(RecordError) as refused:
        verify(CONTACT, rechained(CONTACT, forged))
    assert refused.value.field == f"log[{index}].{field}"
    assert refused.value.index == index
