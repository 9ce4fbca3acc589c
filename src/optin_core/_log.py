"""Reading a consent log back: verification, replay and the log's export.

A log is accepted only if ``decide`` could have produced it: every event is
chained to the one before it (:mod:`optin_core._chain`), follows it through
the declared machine, carries the input and evidence its trigger needs (a
restart needs a reply that restarts, dated at or after the stop; a stop needs
a stop reply or a revocation; an attestation its method and evidence...), and
the head equals the replay of the log. Anything else is a
:class:`~optin_core.RecordError` naming the first event that fails and why.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime
from typing import Any

import attrs

from ._chain import event_digest
from ._enums import ConsentState, Intent, MessageKind, Trigger
from ._errors import InvalidInput, RecordError, show
from ._levels import DISCLOSED, NONE, lower_on_default_ladder
from ._machine import (
    EFFECTS,
    KEEP,
    LEVEL_EFFECTS,
    PROVIDER_OPT_OUT,
    RAISE,
    STOPS,
    TRANSITIONS,
    advance,
    note_stop_time_before_0_3,
    withdrawn_by,
)
from ._records import (
    SCHEMA_VERSION,
    AuditEvent,
    Consent,
    _int,
    _mapping,
    _pstr,
    _str,
    check_contact,
    check_head,
    is_digest,
    personal,
)

__all__ = ["ConsentLog", "check_extension", "read_schema1", "replay", "verify"]

_INBOUND = "inbound"
#: An import's input (``Import.kind``): its message id is the source row's.
_IMPORT = "import"

#: The input each trigger can come from (``CANCEL``: its stop's).
_INPUTS: Mapping[Trigger, frozenset[str]] = {
    Trigger.REQUEST: frozenset({"request_opt_in", _INBOUND}),
    Trigger.RESEND: frozenset({"request_opt_in"}),
    Trigger.DISCLOSE: frozenset({"request_opt_in", "send_text", _INBOUND}),
    Trigger.CONSENT: frozenset({_INBOUND}),
    Trigger.UPGRADE: frozenset({_INBOUND}),
    Trigger.RESTART: frozenset({_INBOUND}),
    Trigger.STOP: frozenset({_INBOUND}),
    Trigger.DECLINE: frozenset({_INBOUND}),
    Trigger.REVOKE: frozenset({"revoke", PROVIDER_OPT_OUT}),
    Trigger.ATTEST: frozenset({"attest"}),
    Trigger.REMIND: frozenset({_INBOUND}),
    Trigger.HELP: frozenset({_INBOUND}),
    Trigger.TEXT: frozenset({"send_text"}),
    Trigger.PAUSE: frozenset({_INBOUND}),
    Trigger.CANCEL: frozenset({_INBOUND, "revoke", PROVIDER_OPT_OUT, _IMPORT}),
    Trigger.EXPIRE: frozenset({"message_expired"}),
    Trigger.SIGNUP: frozenset({_INBOUND}),
    Trigger.DEAD_LETTER: frozenset({"message_failed"}),
    Trigger.IMPORT_STOP: frozenset({_IMPORT}),
    Trigger.IMPORT_OPT_IN: frozenset({_IMPORT}),
}

_UNCLEAR = frozenset({Intent.UNRECOGNIZED, Intent.REACTION, Intent.DECLINE})

#: The reply intents that can fire each inbound trigger.
_INTENTS: Mapping[Trigger, frozenset[Intent]] = {
    Trigger.CONSENT: frozenset({Intent.CONSENT, Intent.START}),
    Trigger.UPGRADE: frozenset({Intent.CONSENT, Intent.START}),
    Trigger.RESTART: frozenset({Intent.START, Intent.CONSENT}),
    Trigger.STOP: frozenset({Intent.STOP}),
    Trigger.DECLINE: frozenset({Intent.DECLINE}),
    Trigger.REMIND: _UNCLEAR,
    Trigger.HELP: frozenset({Intent.HELP}),
    Trigger.PAUSE: _UNCLEAR | {Intent.HELP},
    # A new contact's sign-up keyword (keyword opt-in): double or single.
    Trigger.REQUEST: frozenset({Intent.START, Intent.CONSENT}),
    Trigger.DISCLOSE: frozenset({Intent.START, Intent.CONSENT}),
    Trigger.SIGNUP: frozenset({Intent.START, Intent.CONSENT}),
}

#: Triggers whose message always goes (the others' depends on the policy's
#: confirmation switches, or they send nothing).
_ALWAYS_SENDS = frozenset(
    {
        Trigger.REQUEST,
        Trigger.RESEND,
        Trigger.DISCLOSE,
        Trigger.REMIND,
        Trigger.TEXT,
    }
)


def verify(
    contact: str,
    events: Iterable[AuditEvent],
    head: Consent | None = None,
    *,
    log_key: bytes | None = None,
) -> Consent:
    """Check ``contact``'s log and return the head it replays to.

    Checks every event's chain link and digest (HMAC-SHA-256 under
    ``log_key`` for a keyed log), that it follows from the one before it
    through the declared machine and carries what its trigger needs, that
    the log's times never decrease, and, when ``head`` is given, that every
    field of ``head`` equals the replay. Raises :class:`RecordError` naming
    the first event that fails (``index``, and ``field`` as ``log[i].name``)
    and why.

    .. versionadded:: 0.2.0
    """
    try:
        check_contact(contact)
    except (TypeError, InvalidInput) as e:
        raise RecordError("contact", str(e)) from None
    if log_key is not None and not isinstance(log_key, bytes):
        raise TypeError(f"log_key must be bytes or None, got {type(log_key).__name__}")
    checker = _Checker(contact, log_key)
    consent = Consent(contact=contact)
    stop_times: list[datetime] = []
    for index, event in enumerate(events):
        checker.check(consent, event, index)
        note_stop_time_before_0_3(stop_times, event)
        consent = advance(consent, event)
    if head is not None:
        compare_heads(head, _as_saved(consent, head.stopped_at, stop_times))
    return consent


def _as_saved(
    replayed: Consent, saved: datetime | None, before_0_3: list[datetime]
) -> Consent:
    """``replayed`` with the later stop time a head saved before 0.3.0 may
    carry instead of its own
    (:func:`~optin_core._machine.note_stop_time_before_0_3`)."""
    stopped_at = replayed.stopped_at
    if (
        saved is not None
        and stopped_at is not None
        and saved > stopped_at
        and saved in before_0_3
    ):
        return attrs.evolve(replayed, stopped_at=saved)
    return replayed


def replay(
    contact: str, events: Iterable[AuditEvent], *, log_key: bytes | None = None
) -> Consent:
    """Rebuild a head from its log; :func:`verify` without a head to compare.

    Raises :class:`RecordError` when the log is not one ``decide`` could have
    produced (a gap, a forged state or restart, a broken chain).

    .. versionadded:: 0.1.0
    .. versionchanged:: 0.2.0 Verifies the chain and what each trigger needs.
    """
    return verify(contact, events, log_key=log_key)


def check_extension(
    stored: Consent, consent: Consent, events: Sequence[AuditEvent]
) -> None:
    """What a store checks before it appends ``events`` after its ``stored``
    head and saves ``consent`` as the new head: each event links to the one
    before it (the first to ``stored.digest``), follows it through the
    machine with the evidence its trigger needs, and ``consent`` is the
    replay. Digests are not recomputed (a store has no key): links are.

    Raises :class:`RecordError` naming the event (``index`` counts from the
    first new one).
    """
    checker = _Checker(stored.contact, None, digests=False)
    head = stored
    for index, event in enumerate(events):
        checker.check(head, event, index)
        head = advance(head, event)
    compare_heads(consent, head)


def compare_heads(head: Consent, replayed: Consent) -> None:
    """Raise :class:`RecordError` naming the first field of ``head`` that
    differs from ``replayed``."""
    if not isinstance(head, Consent):
        raise TypeError(f"head must be a Consent, got {type(head).__name__}")
    if head == replayed:
        return
    for field in attrs.fields(Consent):
        if getattr(head, field.name) != getattr(replayed, field.name):
            raise RecordError(
                field.name,
                f"{show(getattr(head, field.name))} differs from the replay of "
                f"the log ({show(getattr(replayed, field.name))}): the head "
                "was edited, or belongs to another log",
                contact=replayed.contact,
            )


class _Checker:
    """The checks of one log, event by event (with what earlier events
    decided: message keys, for cancellations)."""

    def __init__(
        self, contact: str, log_key: bytes | None, *, digests: bool = True
    ) -> None:
        self.contact = contact
        self.log_key = log_key
        # Off for a store's append: it has no key, and checks the messages a
        # cancellation names against its outbox instead of the whole log.
        self.digests = digests
        self.kinds: dict[str, tuple[MessageKind, bool]] = {}
        self.deadlines: dict[str, datetime] = {}
        self.previous: AuditEvent | None = None

    def fail(self, index: int, field: str, problem: str) -> RecordError:
        return RecordError(
            f"log[{index}].{field}", problem, contact=self.contact, index=index
        )

    def check(self, consent: Consent, event: object, index: int) -> None:
        if not isinstance(event, AuditEvent):
            raise self.fail(index, "event", f"not an AuditEvent: {show(event)}")
        self._chain(consent, event, index)
        self._transition(consent, event, index)
        self._evidence(consent, event, index)
        self._level(consent, event, index)
        self._messages(event, index)
        self.previous = event

    def _chain(self, consent: Consent, event: AuditEvent, index: int) -> None:
        if event.version != consent.version + 1:
            raise self.fail(
                index, "version", f"{event.version}, expected {consent.version + 1}"
            )
        if event.prev != consent.digest:
            raise self.fail(
                index,
                "prev",
                "does not link to the event before it (an event was removed, "
                "inserted or reordered)",
            )
        digest = event.digest
        if not is_digest(digest):
            raise self.fail(index, "digest", f"malformed: {show(digest)}")
        if not self.digests:
            return
        keyed = digest.startswith("hmac-")
        if keyed and self.log_key is None:
            raise self.fail(
                index, "digest", "the log is keyed (HMAC): pass its log_key"
            )
        if not keyed and self.log_key is not None:
            raise self.fail(
                index, "digest", "not keyed, but a log_key was given (a rewrite?)"
            )
        if digest != event_digest(self.contact, event, log_key=self.log_key):
            raise self.fail(
                index,
                "digest",
                "does not match the event's content (edited), or the key is not "
                "the log's",
            )

    def _transition(self, consent: Consent, event: AuditEvent, index: int) -> None:
        if event.from_state is not consent.state:
            raise self.fail(
                index,
                "from_state",
                f"{event.from_state.value}, but the contact was {consent.state.value}",
            )
        if TRANSITIONS.get((consent.state, event.trigger)) is not event.to_state:
            raise self.fail(
                index,
                "trigger",
                f"{event.trigger.value} does not lead from "
                f"{consent.state.value} to {event.to_state.value}",
            )
        last_at = consent.last_at
        if last_at is not None and event.at < last_at:
            raise self.fail(index, "at", "earlier than the event before it")
        if event.input_at is not None and not (
            event.input_at < event.at and event.at == last_at
        ):
            raise self.fail(
                index,
                "input_at",
                "set only when the input is older than the event before it",
            )

    def _evidence(self, consent: Consent, event: AuditEvent, index: int) -> None:
        trigger = event.trigger
        if event.input not in _INPUTS[trigger]:
            raise self.fail(
                index, "input", f"{trigger.value} cannot come from {event.input}"
            )
        if trigger is Trigger.CANCEL:
            if event.reply is not None or event.message_id is not None:
                raise self.fail(
                    index, "reply", "a cancellation repeats no reply (its stop has it)"
                )
        elif event.input == _INBOUND:
            if event.reply is None or not event.message_id:
                raise self.fail(
                    index, "reply", "an inbound event needs its reply and message id"
                )
        elif event.input == _IMPORT:
            # The source row's id, so that a row is imported once.
            if event.reply is not None or not event.message_id:
                raise self.fail(
                    index, "reply", "an import carries its row's id and no reply"
                )
            if not (event.method and event.evidence and event.actor):
                raise self.fail(
                    index, "evidence", "an import needs its source, evidence and actor"
                )
        elif event.reply is not None or event.message_id is not None:
            raise self.fail(index, "reply", f"a {event.input} carries no reply")
        intents = _INTENTS.get(trigger)
        if (
            intents is not None
            and event.reply is not None
            and event.reply.intent not in intents
        ):
            raise self.fail(
                index,
                "reply.intent",
                f"a {event.reply.intent.value} reply cannot fire {trigger.value}",
            )
        when = event.input_time
        if (
            trigger in (Trigger.CONSENT, Trigger.REMIND)
            and consent.requested_at is not None
            and when < consent.requested_at
        ):
            raise self.fail(
                index, "at", "a reply older than the opt-in request cannot answer it"
            )
        if (
            trigger is Trigger.RESTART
            and consent.stopped_at is not None
            and when < consent.stopped_at
        ):
            raise self.fail(index, "at", "a restart older than the stop")
        if trigger is Trigger.ATTEST and not (
            event.method and event.evidence and event.actor
        ):
            raise self.fail(
                index, "evidence", "an attestation needs its method, evidence and actor"
            )
        if trigger is Trigger.REVOKE and not (event.reason and event.actor):
            raise self.fail(index, "reason", "a revocation needs its actor and reason")
        if trigger is Trigger.PAUSE and not event.reason:
            raise self.fail(index, "reason", "a pause records why")
        if trigger is Trigger.CANCEL:
            self._cancel(event, index)
        elif trigger is Trigger.EXPIRE or trigger is Trigger.DEAD_LETTER:
            self._give_up(event, index)
        elif event.cancelled:
            raise self.fail(index, "cancelled", f"{trigger.value} cancels nothing")

    def _level(self, consent: Consent, event: AuditEvent, index: int) -> None:
        """The consent level follows the rules (``LEVEL_EFFECTS``): entering
        a state gives its level, moving within one keeps it, and an
        attestation gives its method's level, at least express and never
        lower than before (as far as the default ladder orders them: a
        policy's own levels are the policy's to order). Only a text has a
        category."""
        effect = LEVEL_EFFECTS[consent.state, event.trigger]
        level = event.level
        if effect is RAISE:
            if level in (NONE, DISCLOSED) or (
                consent.state is event.to_state
                and lower_on_default_ladder(level, consent.level)
            ):
                raise self.fail(
                    index,
                    "level",
                    f"an attestation gives express consent or more and never "
                    f"lowers the level ({consent.level}), not {level}",
                )
        else:
            expected = consent.level if effect is KEEP else effect
            if level != expected:
                raise self.fail(
                    index,
                    "level",
                    f"{event.trigger.value} from {consent.state.value} gives "
                    f"the level {expected}, not {level}",
                )
        if (event.category is None) is (event.trigger is Trigger.TEXT):
            raise self.fail(
                index, "category", "a text has a category, and only a text has one"
            )

    def _cancel(self, event: AuditEvent, index: int) -> None:
        stop = self.previous
        kinds = withdrawn_by(() if stop is None else (stop,))
        if (
            stop is None
            or stop.trigger not in STOPS
            or not kinds
            or stop.at != event.at
            or stop.input != event.input
        ):
            raise self.fail(
                index, "trigger", "a cancellation follows the stop that made it"
            )
        if not event.cancelled or len(set(event.cancelled)) != len(event.cancelled):
            raise self.fail(index, "cancelled", "expected distinct message keys")
        if not self.digests:
            return
        for key in event.cancelled:
            found = self.kinds.get(key)
            if found is None or found[1] or found[0] not in kinds:
                raise self.fail(
                    index,
                    "cancelled",
                    f"{show(key)} is no earlier message that a stop cancels",
                )
            self.kinds[key] = (found[0], True)

    def _give_up(self, event: AuditEvent, index: int) -> None:
        """An expired message or a dead letter: one earlier message, still
        open; an expired one is a stop confirmation past its deadline."""
        if len(event.cancelled) != 1 or not event.reason:
            raise self.fail(
                index, "cancelled", "names the one message given up, and why"
            )
        if not self.digests:
            return
        (key,) = event.cancelled
        found = self.kinds.get(key)
        if found is None or found[1]:
            raise self.fail(
                index, "cancelled", f"{show(key)} is no earlier open message"
            )
        if event.trigger is Trigger.EXPIRE:
            deadline = self.deadlines.get(key)
            if deadline is None or event.input_time <= deadline:
                raise self.fail(index, "at", "only a message past its deadline expires")
        self.kinds[key] = (found[0], True)

    def _messages(self, event: AuditEvent, index: int) -> None:
        expected = EFFECTS[event.trigger]
        sent = event.sent
        if len(sent) > 1 or any(m.kind is not expected for m in sent):
            raise self.fail(
                index,
                "sent",
                f"{event.trigger.value} sends at most one "
                f"{'nothing' if expected is None else expected.value}",
            )
        if event.trigger in _ALWAYS_SENDS and not sent:
            raise self.fail(index, "sent", f"{event.trigger.value} sends its message")
        for position, message in enumerate(sent):
            if message.contact != self.contact:
                raise self.fail(
                    index, f"sent[{position}].contact", "another contact's message"
                )
            if not message.key or (self.digests and message.key in self.kinds):
                raise self.fail(
                    index, f"sent[{position}].key", "empty or used by another message"
                )
            self.kinds[message.key] = (message.kind, False)
            if message.deadline is not None:
                self.deadlines[message.key] = message.deadline


@attrs.frozen(kw_only=True, slots=True)
class ConsentLog:
    """A contact's head and its whole log, read together: the evidence.

    Returned by ``ConsentService.history`` (verified); :meth:`to_dict` and
    :meth:`from_dict` export and import it as JSON.

    .. versionadded:: 0.2.0
    """

    head: Consent
    events: tuple[AuditEvent, ...]

    @property
    def contact(self) -> str:
        """Whose log this is."""
        return self.head.contact

    def verify(self, *, log_key: bytes | None = None) -> Consent:
        """:func:`verify` this log against its head; the head."""
        return verify(self.contact, self.events, self.head, log_key=log_key)

    def to_dict(self) -> dict[str, Any]:
        """``{"schema": 2, "contact", "head", "log"}``, JSON-safe."""
        return {
            "schema": SCHEMA_VERSION,
            "contact": personal(self.contact),
            "head": self.head.to_dict(),
            "log": [event.to_dict() for event in self.events],
        }

    @classmethod
    def from_dict(cls, data: object, *, log_key: bytes | None = None) -> ConsentLog:
        """Read and verify an export of :meth:`to_dict`, or a schema-1 record
        (0.1.0) whose history becomes the log. Raises :class:`RecordError`."""
        d = _mapping(data, "record")
        if d.get("schema") == 1:
            head, events = read_schema1(d, log_key=log_key)
            return cls(head=head, events=events)
        if d.get("schema") != SCHEMA_VERSION:
            raise RecordError(
                "schema",
                f"unknown schema version {show(d.get('schema'))} (this library reads "
                f"1 and {SCHEMA_VERSION})",
            )
        contact = _pstr(d, "contact", "")
        raw = d.get("log")
        if not isinstance(raw, list):
            raise RecordError("log", "expected a list", contact=contact)
        head = Consent.from_dict(d.get("head"))
        events = _events(raw, contact, "log")
        verify(contact, events, head, log_key=log_key)
        return cls(head=head, events=events)


def _events(raw: Sequence[object], contact: str, name: str) -> tuple[AuditEvent, ...]:
    events = []
    for i, item in enumerate(raw):
        try:
            events.append(AuditEvent.from_dict(item, field=f"{name}[{i}]"))
        except RecordError as e:
            raise RecordError(e.field, e.problem, contact=contact, index=i) from None
    return tuple(events)


def read_schema1(
    d: Mapping[str, Any], *, log_key: bytes | None = None
) -> tuple[Consent, tuple[AuditEvent, ...]]:
    """The head and chained log of a schema-1 record (0.1.0 carried its whole
    history, unchained): the history is chained, verified like a log, and the
    record's own fields must equal the replay (a forged ``stopped_at`` or
    state is a :class:`RecordError`)."""
    contact = _str(d, "contact", "")
    history = d.get("history")
    if not isinstance(history, list):
        raise RecordError("history", "expected a list", contact=contact)
    old = _events(history, contact, "history")
    events: list[AuditEvent] = []
    digest = ""
    last_at = None
    for event in old:
        at, input_at = event.at, None
        if last_at is not None and at < last_at:
            at, input_at = last_at, at
        chained = attrs.evolve(event, at=at, input_at=input_at, prev=digest, digest="")
        digest = event_digest(contact, chained, log_key=log_key)
        events.append(attrs.evolve(chained, digest=digest))
        last_at = at
    head = verify(contact, events, log_key=log_key)
    check_head(head)
    try:
        version = _int(d, "version", "")
    except RecordError as e:
        # Named like every other refusal of the record: with its contact.
        raise RecordError(e.field, e.problem, contact=contact) from None
    if version != head.version:
        raise RecordError(
            "version",
            f"{show(d.get('version'))} does not match the {head.version} "
            "history events",
            contact=contact,
        )
    # 0.1.0 moved the stop time on every event into STOPPED: its records
    # keep that time, and are read with today's (the replay's).
    stop_times: list[datetime] = []
    for event in events:
        note_stop_time_before_0_3(stop_times, event)
    compared = head
    saved = d.get("stopped_at")
    for time in stop_times:
        if _same_time(saved, time):
            compared = _as_saved(head, time, stop_times)
    for name in (
        "state",
        "locale",
        "attempts",
        "reminders",
        "requested_at",
        "last_requested_at",
        "opted_in_at",
        "disclosed_at",
        "stopped_at",
    ):
        value = getattr(compared, name)
        if isinstance(value, ConsentState):
            value = value.value
        elif value is not None and not isinstance(value, (str, int)):
            value = value.isoformat()
        stored = d.get(name)
        if stored != value and not _same_time(stored, getattr(compared, name)):
            raise RecordError(
                name,
                f"{show(stored)} differs from the replay of the history "
                f"({show(value)})",
                contact=contact,
            )
    return head, tuple(events)


def _same_time(stored: object, value: object) -> bool:
    if not isinstance(stored, str) or not isinstance(value, datetime):
        return False
    try:
        return datetime.fromisoformat(stored) == value
    except ValueError:
        return False
