"""Builders for records in a given state, shared by the core's tests."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime, timedelta

import attrs

from optin_core import (
    AuditEvent,
    Consent,
    ConsentState,
    Decision,
    Inbound,
    Input,
    Mode,
    Policy,
    RequestOptIn,
    decide,
    event_digest,
)

T0 = datetime(2026, 3, 2, 9, 30, tzinfo=UTC)
CONTACT = "+15555550100"


def at(minutes: float = 0) -> datetime:
    """A moment ``minutes`` after T0."""
    return T0 + timedelta(minutes=minutes)


def policy(mode: Mode = Mode.ATTESTATION, **changes: object) -> Policy:
    return Policy(org_name="Hearsay", mode=mode, **changes)  # type: ignore[arg-type]


class Flow:
    """Drives one contact through ``decide``, keeping the head and its log
    between steps (as a store would)."""

    def __init__(self, pol: Policy | None = None, contact: str = CONTACT) -> None:
        self.policy = pol or policy()
        self.consent = Consent.new(contact)
        self.events: list[AuditEvent] = []
        self.last: Decision | None = None
        self._ids = 0

    def apply(self, inp: Input, pol: Policy | None = None) -> Decision:
        self.last = decide(self.consent, inp, pol or self.policy)
        self.consent = self.last.consent
        self.events.extend(self.last.events)
        return self.last

    @property
    def log(self) -> tuple[AuditEvent, ...]:
        """Every event logged so far."""
        return tuple(self.events)

    def reply(
        self, text: str, minutes: float, message_id: str | None = None
    ) -> Decision:
        self._ids += 1
        mid = message_id or f"m{self._ids}"
        return self.apply(Inbound(text=text, at=at(minutes), message_id=mid))

    def request(self, minutes: float = 0, **kw: object) -> Decision:
        return self.apply(RequestOptIn(at=at(minutes), **kw))  # type: ignore[arg-type]


def record_in(state: ConsentState) -> Consent:
    """A record in ``state``, reached through the public rules at T0..T0+2min."""
    if state is ConsentState.NEW:
        return Consent.new(CONTACT)
    if state is ConsentState.DISCLOSED:
        flow = Flow(policy(Mode.DISCLAIMER))
        flow.request(0)
        return flow.consent
    flow = Flow()
    flow.request(0)
    if state is ConsentState.OPTED_IN:
        flow.reply("yes", 1)
    elif state is ConsentState.STOPPED:
        flow.reply("stop", 1)
    assert flow.consent.state is state
    return flow.consent


def rechained(contact: str, events: Sequence[AuditEvent]) -> list[AuditEvent]:
    """``events`` with every ``prev`` and digest computed again: a forged
    log whose chain holds, so that only the replay's rules can tell."""
    out: list[AuditEvent] = []
    prev = ""
    for original in events:
        event = attrs.evolve(original, prev=prev, digest="")
        event = attrs.evolve(event, digest=event_digest(contact, event))
        out.append(event)
        prev = event.digest
    return out
