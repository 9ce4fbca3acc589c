"""Frozen records: inputs to the core, its outputs, and the consent record.

Inputs are validated when they are built, at the host's boundary, so that the
hot path (:func:`optin_core.decide`) can trust them. Records read back from a
store are validated by :meth:`Consent.from_dict`.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from datetime import datetime
from typing import Any, ClassVar, TypeAlias

import attrs

from ._enums import ConsentState, MessageKind, Trigger
from ._errors import InvalidInput, RecordError
from ._parser import ParsedReply

__all__ = [
    "SCHEMA_VERSION",
    "Attest",
    "AuditEvent",
    "Consent",
    "Decision",
    "Inbound",
    "Input",
    "Outgoing",
    "RequestOptIn",
    "Revoke",
    "SendText",
]

#: Version of the serialised form written by :meth:`Consent.to_dict`.
SCHEMA_VERSION = 1

#: How many inbound message ids a record remembers for duplicate detection.
#: Providers redeliver webhooks within minutes, so a short memory suffices.
RECENT_IDS = 64


def _aware(instance: object, attribute: attrs.Attribute[Any], value: object) -> None:
    if not isinstance(value, datetime):
        raise TypeError(
            f"{type(instance).__name__}.{attribute.name} must be a datetime, "
            f"got {type(value).__name__}"
        )
    if value.tzinfo is None or value.utcoffset() is None:
        raise InvalidInput(
            f"{type(instance).__name__}.{attribute.name} is a naive datetime; "
            "pass a timezone-aware one, e.g. datetime.now(timezone.utc)"
        )


def _text(instance: object, attribute: attrs.Attribute[Any], value: object) -> None:
    if not isinstance(value, str):
        raise TypeError(
            f"{type(instance).__name__}.{attribute.name} must be str, "
            f"got {type(value).__name__}"
        )


def _nonempty(instance: object, attribute: attrs.Attribute[Any], value: object) -> None:
    _text(instance, attribute, value)
    if not str(value).strip():
        raise InvalidInput(
            f"{type(instance).__name__}.{attribute.name} must not be empty"
        )


def _opt_text(instance: object, attribute: attrs.Attribute[Any], value: object) -> None:
    if value is not None:
        _text(instance, attribute, value)


# ---------------------------------------------------------------------------
# Inputs


@attrs.frozen(kw_only=True, slots=True)
class RequestOptIn:
    """The agent starts, or resends, the opt-in request.

    ``greeting`` is the agent's optional personal line shown above the locked
    wording ("I'm Martha from Hearsay"). ``locale`` sets the contact's language
    when given.

    .. versionadded:: 0.1.0
    """

    kind: ClassVar[str] = "request_opt_in"
    at: datetime = attrs.field(validator=_aware)
    greeting: str | None = attrs.field(default=None, validator=_opt_text)
    by: str | None = attrs.field(default=None, validator=_opt_text)
    locale: str | None = attrs.field(default=None, validator=_opt_text)


@attrs.frozen(kw_only=True, slots=True)
class Inbound:
    """The contact texted us. ``message_id`` is the provider's id (dedupe key).

    .. versionadded:: 0.1.0
    """

    kind: ClassVar[str] = "inbound"
    text: str = attrs.field(validator=_text)
    at: datetime = attrs.field(validator=_aware)
    message_id: str = attrs.field(validator=_nonempty)


@attrs.frozen(kw_only=True, slots=True)
class SendText:
    """The agent wants to send ``body``, in its own words.

    .. versionadded:: 0.1.0
    """

    kind: ClassVar[str] = "send_text"
    body: str = attrs.field(validator=_nonempty)
    at: datetime = attrs.field(validator=_aware)
    by: str | None = attrs.field(default=None, validator=_opt_text)


@attrs.frozen(kw_only=True, slots=True)
class Attest:
    """Consent gathered outside SMS (e-mail, app, web form, paper).

    ``evidence`` references the proof (document id, e-mail message id, form
    submission URL); it is recorded verbatim on the audit event.

    .. versionadded:: 0.1.0
    """

    kind: ClassVar[str] = "attest"
    method: str = attrs.field(validator=_nonempty)
    at: datetime = attrs.field(validator=_aware)
    by: str = attrs.field(validator=_nonempty)
    evidence: str = attrs.field(validator=_nonempty)


@attrs.frozen(kw_only=True, slots=True)
class Revoke:
    """An opt-out received by another channel, or a compliance action.

    .. versionadded:: 0.1.0
    """

    kind: ClassVar[str] = "revoke"
    at: datetime = attrs.field(validator=_aware)
    by: str = attrs.field(validator=_nonempty)
    reason: str = attrs.field(validator=_nonempty)


Input: TypeAlias = RequestOptIn | Inbound | SendText | Attest | Revoke
INPUT_KINDS = {c.kind: c for c in (RequestOptIn, Inbound, SendText, Attest, Revoke)}


# ---------------------------------------------------------------------------
# Outputs


def idempotency_key(contact: str, version: int, position: int) -> str:
    """The stable key of the ``position``-th message decided at ``version``.

    Hashed so that it fits provider idempotency headers whatever the contact
    id looks like, and carries no phone number in clear.
    """
    raw = f"{contact}\x1f{version}\x1f{position}".encode("utf-8", "surrogatepass")
    return hashlib.sha256(raw).hexdigest()[:32]


@attrs.frozen(kw_only=True, slots=True)
class Outgoing:
    """A message the host must send.

    ``key`` is stable for this message whatever happens later: pass it to the
    provider's idempotency header, or dedupe on it, so that a retry after a
    crash never reaches the contact twice.

    .. versionadded:: 0.1.0
    """

    contact: str
    kind: MessageKind
    text: str
    locale: str
    key: str

    def to_dict(self) -> dict[str, Any]:
        return {
            "contact": self.contact,
            "kind": self.kind.value,
            "text": self.text,
            "locale": self.locale,
            "key": self.key,
        }

    @classmethod
    def from_dict(cls, data: object, *, field: str = "outgoing") -> Outgoing:
        d = _mapping(data, field)
        return cls(
            contact=_str(d, "contact", field),
            kind=_enum(MessageKind, d, "kind", field),
            text=_str(d, "text", field),
            locale=_str(d, "locale", field),
            key=_str(d, "key", field),
        )


@attrs.frozen(kw_only=True, slots=True)
class AuditEvent:
    """One entry of a record's append-only history: the proof of a change.

    ``trigger`` names the machine transition that fired (``"consent"``,
    ``"stop"``, ``"remind"``...) or a non-transition outcome (``"loop_guard"``).
    ``sent`` holds the exact messages decided, an opt-in request with its full
    rendered wording. ``reply`` holds the raw reply and the rule and keyword
    the parser matched.

    .. versionadded:: 0.1.0
    """

    version: int
    at: datetime
    input: str
    trigger: Trigger
    from_state: ConsentState
    to_state: ConsentState
    actor: str | None = None
    message_id: str | None = None
    reply: ParsedReply | None = None
    sent: tuple[Outgoing, ...] = ()
    method: str | None = None
    evidence: str | None = None
    reason: str | None = None
    locale: str | None = None
    policy_id: str = ""
    policy_version: str = ""

    def to_dict(self) -> dict[str, Any]:
        return {
            "version": self.version,
            "at": self.at.isoformat(),
            "input": self.input,
            "trigger": self.trigger.value,
            "from_state": self.from_state.value,
            "to_state": self.to_state.value,
            "actor": self.actor,
            "message_id": self.message_id,
            "reply": None if self.reply is None else self.reply.to_dict(),
            "sent": [m.to_dict() for m in self.sent],
            "method": self.method,
            "evidence": self.evidence,
            "reason": self.reason,
            "locale": self.locale,
            "policy_id": self.policy_id,
            "policy_version": self.policy_version,
        }

    @classmethod
    def from_dict(cls, data: object, *, field: str = "event") -> AuditEvent:
        d = _mapping(data, field)
        reply = d.get("reply")
        if reply is not None:
            try:
                reply = ParsedReply.from_dict(_mapping(reply, f"{field}.reply"))
            except RecordError as e:
                raise RecordError(f"{field}.reply.{e.field}", str(e)) from None
        sent = d.get("sent", [])
        if not isinstance(sent, list):
            raise RecordError(f"{field}.sent", "expected a list")
        if d.get("input") not in INPUT_KINDS:
            raise RecordError(f"{field}.input", f"unknown input {d.get('input')!r}")
        return cls(
            version=_int(d, "version", field),
            at=_dt(d, "at", field),
            input=_str(d, "input", field),
            trigger=_enum(Trigger, d, "trigger", field),
            from_state=_enum(ConsentState, d, "from_state", field),
            to_state=_enum(ConsentState, d, "to_state", field),
            actor=_opt_str(d, "actor", field),
            message_id=_opt_str(d, "message_id", field),
            reply=reply,
            sent=tuple(
                Outgoing.from_dict(m, field=f"{field}.sent[{i}]")
                for i, m in enumerate(sent)
            ),
            method=_opt_str(d, "method", field),
            evidence=_opt_str(d, "evidence", field),
            reason=_opt_str(d, "reason", field),
            locale=_opt_str(d, "locale", field),
            policy_id=_str(d, "policy_id", field),
            policy_version=_str(d, "policy_version", field),
        )


@attrs.frozen(kw_only=True, slots=True)
class Consent:
    """A contact's consent record. Never mutated: every change is a new record.

    ``version`` grows by one with every event appended to ``history``, so
    ``version == len(history)`` always holds; stores use it for
    compare-and-set. ``requested_at`` is when the current opt-in cycle began
    (a reply older than it cannot answer it); ``last_requested_at`` drives
    ``Policy.resend_after``.

    .. versionadded:: 0.1.0
    """

    contact: str
    state: ConsentState = ConsentState.NEW
    locale: str | None = None
    version: int = 0
    attempts: int = 0
    reminders: int = 0
    requested_at: datetime | None = None
    last_requested_at: datetime | None = None
    opted_in_at: datetime | None = None
    disclosed_at: datetime | None = None
    stopped_at: datetime | None = None
    recent_message_ids: tuple[str, ...] = ()
    history: tuple[AuditEvent, ...] = ()

    @classmethod
    def new(cls, contact: str) -> Consent:
        """The record of a contact never seen before.

        Raises :class:`InvalidInput` for an empty or non-str contact id.
        """
        if not isinstance(contact, str):
            raise TypeError(f"contact must be str, got {type(contact).__name__}")
        if not contact.strip():
            raise InvalidInput("contact must be a non-empty id (e.g. an E.164 number)")
        if not contact.isprintable() or not _utf8(contact):
            raise InvalidInput(
                f"contact {contact!r} holds control characters or lone "
                "surrogates; pass the host's clean key (see normalize_phone)"
            )
        return cls(contact=contact)

    def to_dict(self) -> dict[str, Any]:
        """A JSON-safe dict with ``schema`` = :data:`SCHEMA_VERSION`."""
        return {
            "schema": SCHEMA_VERSION,
            "contact": self.contact,
            "state": self.state.value,
            "locale": self.locale,
            "version": self.version,
            "attempts": self.attempts,
            "reminders": self.reminders,
            "requested_at": _iso(self.requested_at),
            "last_requested_at": _iso(self.last_requested_at),
            "opted_in_at": _iso(self.opted_in_at),
            "disclosed_at": _iso(self.disclosed_at),
            "stopped_at": _iso(self.stopped_at),
            "recent_message_ids": list(self.recent_message_ids),
            "history": [e.to_dict() for e in self.history],
        }

    @classmethod
    def from_dict(cls, data: object) -> Consent:
        """Rebuild a record written by :meth:`to_dict`.

        Raises :class:`RecordError` naming the field for a malformed record or
        an unknown schema version.
        """
        d = _mapping(data, "record")
        contact = d.get("contact")
        who = contact if isinstance(contact, str) else ""
        try:
            return cls._from_dict(d)
        except RecordError as e:
            if who and not e.contact:
                raise RecordError(e.field, _problem(e), contact=who) from None
            raise

    @classmethod
    def _from_dict(cls, d: Mapping[str, Any]) -> Consent:
        schema = d.get("schema")
        if schema != SCHEMA_VERSION:
            raise RecordError(
                "schema",
                f"unknown schema version {schema!r} (this library reads "
                f"{SCHEMA_VERSION})",
            )
        ids = d.get("recent_message_ids")
        if not isinstance(ids, list) or not all(isinstance(i, str) for i in ids):
            raise RecordError("recent_message_ids", "expected a list of str")
        history = d.get("history")
        if not isinstance(history, list):
            raise RecordError("history", "expected a list")
        contact = _str(d, "contact", "")
        if not contact.strip():
            raise RecordError("contact", "must be a non-empty str")
        record = cls(
            contact=contact,
            state=_enum(ConsentState, d, "state", ""),
            locale=_opt_str(d, "locale", ""),
            version=_int(d, "version", ""),
            attempts=_int(d, "attempts", ""),
            reminders=_int(d, "reminders", ""),
            requested_at=_opt_dt(d, "requested_at", ""),
            last_requested_at=_opt_dt(d, "last_requested_at", ""),
            opted_in_at=_opt_dt(d, "opted_in_at", ""),
            disclosed_at=_opt_dt(d, "disclosed_at", ""),
            stopped_at=_opt_dt(d, "stopped_at", ""),
            recent_message_ids=tuple(ids),
            history=tuple(
                AuditEvent.from_dict(e, field=f"history[{i}]")
                for i, e in enumerate(history)
            ),
        )
        _check_chain(record.history)
        if record.version != len(record.history):
            raise RecordError(
                "version",
                f"{record.version} does not match the {len(record.history)} "
                "history events (a lost or forged update)",
            )
        if record.history and record.history[-1].to_state is not record.state:
            raise RecordError("state", "differs from the last history event")
        return record


@attrs.frozen(kw_only=True, slots=True)
class Decision:
    """What :func:`optin_core.decide` concluded.

    ``consent`` is the new record (the same object when nothing changed),
    ``outgoing`` the messages to send in order, ``events`` the audit events
    appended, ``reply`` the parsed reply when the input was text.

    .. versionadded:: 0.1.0
    """

    consent: Consent
    outgoing: tuple[Outgoing, ...] = ()
    events: tuple[AuditEvent, ...] = ()
    reply: ParsedReply | None = None

    @property
    def changed(self) -> bool:
        """Whether the record changed (and so must be saved)."""
        return bool(self.events)


# ---------------------------------------------------------------------------
# Trusted constructors for the hot path.
#
# attrs' frozen __init__ goes through object.__setattr__ by name for every
# field; writing the slots through their descriptors halves the cost, and a
# decision builds three of these records. Only the machine calls them, with
# values it produced itself; tests check they equal the attrs constructors.

_new = object.__new__


def _slot(cls: type, name: str) -> Any:
    return cls.__dict__[name].__set__


_out = [_slot(Outgoing, f.name) for f in attrs.fields(Outgoing)]
_ev = [_slot(AuditEvent, f.name) for f in attrs.fields(AuditEvent)]
_co = [_slot(Consent, f.name) for f in attrs.fields(Consent)]
_de = [_slot(Decision, f.name) for f in attrs.fields(Decision)]


def make_decision(
    consent: Consent,
    outgoing: tuple[Outgoing, ...],
    events: tuple[AuditEvent, ...],
    reply: ParsedReply | None,
) -> Decision:
    """``Decision(...)`` with the fields in declaration order, unchecked."""
    decision: Decision = _new(Decision)
    s = _de
    s[0](decision, consent)
    s[1](decision, outgoing)
    s[2](decision, events)
    s[3](decision, reply)
    return decision


def make_outgoing(
    contact: str, kind: MessageKind, text: str, locale: str, key: str
) -> Outgoing:
    """``Outgoing(...)`` with the fields in declaration order, unchecked."""
    message: Outgoing = _new(Outgoing)
    s = _out
    s[0](message, contact)
    s[1](message, kind)
    s[2](message, text)
    s[3](message, locale)
    s[4](message, key)
    return message


def make_event(  # noqa: PLR0917 - one argument per field, in order
    version: int,
    at: datetime,
    input: str,
    trigger: Trigger,
    from_state: ConsentState,
    to_state: ConsentState,
    actor: str | None,
    message_id: str | None,
    reply: ParsedReply | None,
    sent: tuple[Outgoing, ...],
    method: str | None,
    evidence: str | None,
    reason: str | None,
    locale: str | None,
    policy_id: str,
    policy_version: str,
) -> AuditEvent:
    """``AuditEvent(...)`` with the fields in declaration order, unchecked."""
    event: AuditEvent = _new(AuditEvent)
    s = _ev
    s[0](event, version)
    s[1](event, at)
    s[2](event, input)
    s[3](event, trigger)
    s[4](event, from_state)
    s[5](event, to_state)
    s[6](event, actor)
    s[7](event, message_id)
    s[8](event, reply)
    s[9](event, sent)
    s[10](event, method)
    s[11](event, evidence)
    s[12](event, reason)
    s[13](event, locale)
    s[14](event, policy_id)
    s[15](event, policy_version)
    return event


def make_consent(  # noqa: PLR0917 - one argument per field, in order
    contact: str,
    state: ConsentState,
    locale: str | None,
    version: int,
    attempts: int,
    reminders: int,
    requested_at: datetime | None,
    last_requested_at: datetime | None,
    opted_in_at: datetime | None,
    disclosed_at: datetime | None,
    stopped_at: datetime | None,
    recent_message_ids: tuple[str, ...],
    history: tuple[AuditEvent, ...],
) -> Consent:
    """``Consent(...)`` with the fields in declaration order, unchecked."""
    consent: Consent = _new(Consent)
    s = _co
    s[0](consent, contact)
    s[1](consent, state)
    s[2](consent, locale)
    s[3](consent, version)
    s[4](consent, attempts)
    s[5](consent, reminders)
    s[6](consent, requested_at)
    s[7](consent, last_requested_at)
    s[8](consent, opted_in_at)
    s[9](consent, disclosed_at)
    s[10](consent, stopped_at)
    s[11](consent, recent_message_ids)
    s[12](consent, history)
    return consent


# ---------------------------------------------------------------------------
# Reading untrusted dicts: every helper names the field it rejects.


def _check_chain(history: tuple[AuditEvent, ...]) -> None:
    """Each event must follow from the one before it through the machine."""
    # Imported here because the machine imports this module.
    from ._machine import check_event  # noqa: PLC0415

    state = ConsentState.NEW
    for version, event in enumerate(history):
        check_event(state, version, event)
        state = event.to_state


def _utf8(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _problem(e: RecordError) -> str:
    text = str(e)
    start = text.find(": ") + 2
    end = text.rfind("; restore it")
    return text[start:end] if end > start else text


def _path(prefix: str, key: str) -> str:
    return f"{prefix}.{key}" if prefix else key


def _mapping(data: object, field: str) -> Mapping[str, Any]:
    if not isinstance(data, Mapping):
        raise RecordError(field, f"expected an object, got {type(data).__name__}")
    return data


def _str(d: Mapping[str, Any], key: str, prefix: str) -> str:
    value = d.get(key)
    if not isinstance(value, str):
        raise RecordError(_path(prefix, key), f"expected str, got {value!r:.40}")
    return value


def _opt_str(d: Mapping[str, Any], key: str, prefix: str) -> str | None:
    return None if d.get(key) is None else _str(d, key, prefix)


def _int(d: Mapping[str, Any], key: str, prefix: str) -> int:
    value = d.get(key)
    if not isinstance(value, int) or isinstance(value, bool) or value < 0:
        raise RecordError(
            _path(prefix, key), f"expected a non-negative int, got {value!r:.40}"
        )
    return value


def _dt(d: Mapping[str, Any], key: str, prefix: str) -> datetime:
    value = _str(d, key, prefix)
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        raise RecordError(
            _path(prefix, key), f"not an ISO 8601 datetime: {value!r:.40}"
        ) from None
    if parsed.tzinfo is None:
        raise RecordError(_path(prefix, key), "datetime without a timezone")
    return parsed


def _opt_dt(d: Mapping[str, Any], key: str, prefix: str) -> datetime | None:
    return None if d.get(key) is None else _dt(d, key, prefix)


def _enum(enum_type: Any, d: Mapping[str, Any], key: str, prefix: str) -> Any:
    value = d.get(key)
    try:
        return enum_type(value)
    except ValueError:
        allowed = ", ".join(m.value for m in enum_type)
        raise RecordError(
            _path(prefix, key), f"{value!r:.40} is not one of {allowed}"
        ) from None


def _iso(value: datetime | None) -> str | None:
    return None if value is None else value.isoformat()
