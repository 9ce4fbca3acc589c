"""Rule 1: this module owns every transition of a consent record.

The machine is declared once, as a python-statemachine ``StateMachine``
(:class:`~optin_core._declaration.ConsentMachine`). ``docs/generate.py``
validates and compiles the declaration into the generated module
``_table.py`` (a test checks the two agree), read here into
:data:`TRANSITIONS`, an immutable ``(state, trigger) -> state`` table, next to
:data:`EFFECTS`, the message each trigger may send; importing this module
imports neither python-statemachine nor asyncio. The hot path uses the
tables; no python-statemachine instance is created per message (a whole
``decide``, audit event included, costs a fortieth of creating one and
sending it an event; see ``bench/``). The declaration also draws the docs' diagram and
is the oracle of the model-based tests.

:func:`fire` is the only code that moves a record: it builds the audit event
for a trigger, chains it to the head's digest, and folds it into a new head
with :func:`advance`, the same function :func:`optin_core.replay` uses, so a
head always equals the replay of its log.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping
from datetime import datetime
from types import MappingProxyType

from ._chain import event_digest
from ._enums import ConsentState, MessageKind, Trigger
from ._levels import EXPRESS, STATE_LEVELS
from ._records import (
    AUTO_REPLY_MEMORY,
    MAX_REPLY_CHARS,
    RECENT_IDS,
    AuditEvent,
    Consent,
    ParsedReply,
    idempotency_key,
    make_consent,
    make_event,
    make_outgoing,
)
from ._table import TRANSITION_ROWS

__all__ = [
    "ALL_KINDS",
    "AUTO_REPLIES",
    "CANCELLED_BY_STOP",
    "EFFECTS",
    "KEEP",
    "LEVEL_EFFECTS",
    "PROVIDER_OPT_OUT",
    "RAISE",
    "SENDABLE_WHEN_STOPPED",
    "STOPS",
    "TRANSITIONS",
    "Trigger",
    "advance",
    "fire",
    "note_stop_time_before_0_3",
    "repeat_key",
    "withdrawn_by",
]


#: The message each trigger sends, before the policy's confirmation switches.
EFFECTS: Mapping[Trigger, MessageKind | None] = MappingProxyType(
    {
        Trigger.REQUEST: MessageKind.OPT_IN_REQUEST,
        Trigger.RESEND: MessageKind.OPT_IN_REQUEST,
        Trigger.DISCLOSE: MessageKind.DISCLAIMER,
        Trigger.CONSENT: MessageKind.OPT_IN_CONFIRMATION,
        Trigger.UPGRADE: None,
        Trigger.RESTART: MessageKind.START_CONFIRMATION,
        Trigger.STOP: MessageKind.STOP_CONFIRMATION,
        Trigger.DECLINE: MessageKind.STOP_CONFIRMATION,
        Trigger.REVOKE: None,
        Trigger.ATTEST: None,
        Trigger.REMIND: MessageKind.REMINDER,
        Trigger.HELP: MessageKind.HELP,
        Trigger.TEXT: MessageKind.TEXT,
        Trigger.PAUSE: None,
        Trigger.CANCEL: None,
        Trigger.EXPIRE: None,
        Trigger.DEAD_LETTER: None,
        Trigger.SIGNUP: MessageKind.OPT_IN_CONFIRMATION,
        Trigger.IMPORT_STOP: None,
        Trigger.IMPORT_OPT_IN: None,
    }
)


#: ``(state, trigger) -> state``: the declaration
#: (:class:`~optin_core._declaration.ConsentMachine`) compiled into the
#: generated module ``_table.py`` by ``docs/generate.py``; a test checks that
#: the two agree.
TRANSITIONS: Mapping[tuple[ConsentState, Trigger], ConsentState] = MappingProxyType(
    {(source, trigger): target for source, trigger, target in TRANSITION_ROWS}
)

#: The triggers that stop a contact, read off the declaration: those that
#: enter STOPPED from another state. Only they move a head's ``stopped_at``
#: (a HELP answer or an expiry while stopped is not a new stop).
STOPS: frozenset[Trigger] = frozenset(
    trigger
    for (source, trigger), target in TRANSITIONS.items()
    if target is ConsentState.STOPPED and source is not ConsentState.STOPPED
)

#: A transition that keeps the consent level (:data:`LEVEL_EFFECTS`).
KEEP = "keep"
#: An attestation: the level becomes the higher of the contact's and the
#: one the policy gives the method (never lower; :func:`optin_core.decide`
#: computes it, so the policy's ladder orders it).
RAISE = "raise"


def _level_effects(
    table: Mapping[tuple[ConsentState, Trigger], ConsentState],
) -> Mapping[tuple[ConsentState, Trigger], str]:
    effects: dict[tuple[ConsentState, Trigger], str] = {}
    for (source, trigger), target in table.items():
        if trigger is Trigger.ATTEST:
            effects[source, trigger] = RAISE
        elif target is source:
            effects[source, trigger] = KEEP
        else:
            # Entering a state gives its level: none for PENDING and STOPPED
            # (a stop loses every level), disclosed for DISCLOSED, and
            # express for OPTED_IN by any other way in (a YES, a restart: a
            # restart never brings written consent back).
            effects[source, trigger] = STATE_LEVELS[target]
    return MappingProxyType(effects)


#: What each transition does to the contact's consent level: the level it
#: sets, :data:`KEEP` or :data:`RAISE`. Read off :data:`TRANSITIONS`:
#: entering a state gives the state's level (``express`` for OPTED_IN),
#: moving within one keeps it, and only an attestation raises it.
LEVEL_EFFECTS = _level_effects(TRANSITIONS)

#: The only kinds of message a stopped contact may receive, read off the
#: declaration: the one stop confirmation and answers to HELP.
SENDABLE_WHEN_STOPPED: frozenset[MessageKind] = frozenset(
    kind
    for (_, trigger), target in TRANSITIONS.items()
    if target is ConsentState.STOPPED and (kind := EFFECTS[trigger]) is not None
)

#: The kinds of still-unsent message a stop cancels: everything a stopped
#: contact may not receive.
CANCELLED_BY_STOP: frozenset[MessageKind] = frozenset(MessageKind) - (
    SENDABLE_WHEN_STOPPED
)

#: What a provider's opt-out withdraws: everything still queued.
ALL_KINDS: frozenset[MessageKind] = frozenset(MessageKind)

#: The input of a provider's opt-out (``ProviderOptOut.kind``).
PROVIDER_OPT_OUT = "provider_opt_out"


def withdrawn_by(events: Iterable[AuditEvent]) -> frozenset[MessageKind]:
    """The kinds of still-queued message that ``events`` make undeliverable:
    all of them after a provider's opt-out, those a stopped contact may not
    receive after a stop, none otherwise."""
    kinds: frozenset[MessageKind] = frozenset()
    for event in events:
        if event.input == PROVIDER_OPT_OUT and event.trigger is Trigger.REVOKE:
            return ALL_KINDS
        if (
            event.to_state is ConsentState.STOPPED
            and event.from_state is not ConsentState.STOPPED
        ):
            kinds = CANCELLED_BY_STOP
    return kinds


#: The automatic replies the loop guard counts; confirmations follow a change
#: of state and so cannot ping-pong, and the stop confirmation is never held
#: back.
AUTO_REPLIES: frozenset[MessageKind] = frozenset(
    {MessageKind.REMINDER, MessageKind.HELP}
)


def fire(
    consent: Consent,
    trigger: Trigger,
    *,
    at: datetime,
    input: str,
    messages: Iterable[tuple[MessageKind, str, str, datetime | None]] = (),
    actor: str | None = None,
    message_id: str | None = None,
    reply: ParsedReply | None = None,
    method: str | None = None,
    evidence: str | None = None,
    reason: str | None = None,
    locale: str | None = None,
    policy_id: str = "",
    policy_version: str = "",
    cancelled: tuple[str, ...] = (),
    log_key: bytes | None = None,
    namespace: str = "",
    level: str | None = None,
    category: str | None = None,
) -> tuple[Consent, AuditEvent]:
    """Move ``consent`` by ``trigger`` and return the new head and its event.

    ``at`` is the input's time; the event is logged at the same time, or at
    the previous event's when the input's is earlier (the log's times never
    decrease; the input's own time is kept as ``input_at``). ``messages``
    are ``(kind, text, locale, deadline)``; each becomes an :class:`Outgoing`
    with a key stable for this version and position. ``locale`` is the
    contact's locale after the event (``None`` keeps it); ``namespace``
    goes into the keys (see :func:`optin_core.decide`). ``reply`` is
    logged bounded (:data:`MAX_REPLY_CHARS`). The event is chained to the
    head's digest, keyed with ``log_key`` when given. ``level`` is the
    consent level after an attestation (the caller's guard computes it from
    the policy); every other transition's is :data:`LEVEL_EFFECTS`'.
    ``category`` is a text's. Raises ``KeyError``
    when the table has no such transition: a bug in the caller's guards,
    never a contact's doing.
    """
    source = consent.state
    target, effect = _STEPS[source, trigger]
    if effect is KEEP:
        level = consent.level
    elif effect is RAISE:
        if level is None:
            level = consent.level if source is target else EXPRESS
    else:
        level = effect
    version = consent.version + 1
    contact = consent.contact
    sent = tuple(
        [
            make_outgoing(
                contact,
                kind,
                text,
                msg_locale,
                idempotency_key(contact, version, i, namespace),
                deadline,
            )
            for i, (kind, text, msg_locale, deadline) in enumerate(messages)
        ]
    )
    last_at = consent.last_at
    input_at = None
    if last_at is not None and at < last_at:
        at, input_at = last_at, at
    if reply is not None and len(reply.text) > MAX_REPLY_CHARS:
        reply = reply.bounded(MAX_REPLY_CHARS)
    event = make_event(
        version,
        at,
        input,
        trigger,
        source,
        target,
        actor,
        message_id,
        reply,
        sent,
        method,
        evidence,
        reason,
        consent.locale if locale is None else locale,
        policy_id,
        policy_version,
        input_at,
        cancelled,
        consent.digest,
        "",
        level,
        category,
    )
    _set_digest(event, event_digest(contact, event, log_key=log_key))
    return advance(consent, event), event


_set_digest = AuditEvent.__dict__["digest"].__set__
#: ``(state, trigger) -> (target, level effect)``: one lookup per event.
_STEPS = {key: (target, LEVEL_EFFECTS[key]) for key, target in TRANSITIONS.items()}


def repeat_key(reply: ParsedReply) -> str:
    """What identifies a reply for the loop guard's "same reply again" rule:
    its text, stripped and casefolded (the whole text's SHA-256 when the log
    keeps only a prefix), hashed to a bounded size."""
    if reply.full_sha256 is not None:
        basis = reply.full_sha256
    else:
        basis = reply.text.strip().casefold()
    return hashlib.sha256(basis.encode("utf-8", "surrogatepass")).hexdigest()


def stop_time(stopped_at: datetime | None, event: AuditEvent, t: datetime) -> datetime:
    """The stop time after ``event`` (at input time ``t``) enters STOPPED:
    a stop of a contact already stopped keeps the later of the two, so a
    START sent between them stays stale."""
    if event.from_state is not ConsentState.STOPPED or stopped_at is None:
        return t
    return max(stopped_at, t)


def note_stop_time_before_0_3(times: list[datetime], event: AuditEvent) -> None:
    """Add to ``times`` the stop time ``event`` gave a head before 0.3.0.

    0.1.0 and 0.2.0 moved ``stopped_at`` on every event into STOPPED but a
    cancel (a HELP answer, an expiry...), and a head they saved goes on
    under today's rule after an upgrade. So a saved stop time may be the
    input time of any event of the contact's last stop, from the stop on:
    ``times`` keeps those. It only ever made more STARTs stale, so no
    message went out because of it.
    """
    if event.to_state is not ConsentState.STOPPED or event.trigger is Trigger.CANCEL:
        return
    if event.from_state is not ConsentState.STOPPED:
        times.clear()
    times.append(event.input_time)


def advance(consent: Consent, event: AuditEvent) -> Consent:
    """The only place a head's fields change: fold ``event`` into ``consent``.

    ``event`` is trusted here; :func:`optin_core.verify` checks a log's
    events before folding them.
    """
    trigger = event.trigger
    t = event.input_time
    attempts = consent.attempts
    reminders = consent.reminders
    requested_at = consent.requested_at
    last_requested_at = consent.last_requested_at
    opted_in_at = consent.opted_in_at
    disclosed_at = consent.disclosed_at
    stopped_at = consent.stopped_at
    if trigger is Trigger.REQUEST:
        attempts, reminders = 1, 0
        requested_at = last_requested_at = t
    elif trigger is Trigger.RESEND:
        attempts, reminders = attempts + 1, 0
        last_requested_at = t
    elif trigger is Trigger.REMIND:
        reminders += 1
    elif trigger is Trigger.DISCLOSE:
        disclosed_at = t
    elif event.to_state is ConsentState.OPTED_IN:
        if event.from_state is not ConsentState.OPTED_IN:
            opted_in_at = t
    elif trigger in STOPS:
        stopped_at = stop_time(stopped_at, event, t)
    autos = consent.auto_replies
    for message in event.sent:
        if message.kind in AUTO_REPLIES:
            autos = (*autos[-(AUTO_REPLY_MEMORY - 1) :], event.at)
    ids = consent.recent_message_ids
    if event.message_id is not None:
        ids = (*ids[-(RECENT_IDS - 1) :], event.message_id)
    reminded = None
    if trigger is Trigger.REMIND and event.reply is not None:
        reminded = repeat_key(event.reply)
    return make_consent(
        consent.contact,
        event.to_state,
        event.locale,
        event.version,
        attempts,
        reminders,
        requested_at,
        last_requested_at,
        opted_in_at,
        disclosed_at,
        stopped_at,
        event.at,
        trigger,
        reminded,
        autos,
        ids,
        event.digest,
        event.level,
    )
