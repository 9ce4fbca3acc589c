"""Erasure: a contact's personal data removed, the suppression kept.

``ConsentService.erase`` stops the contact (when it is not stopped yet),
then replaces the contact's head, log and outbox by an :class:`Erasure`: the
**redacted** log (each personal value replaced by its commitment, see
:mod:`optin_core._personal`, so every digest, and so the chain, still
verifies) and the redacted delivery evidence, stored under the
**suppression key**: the commitment of the canonical contact id. A
contact id whose commitment has an erasure is never texted, attested or
imported again; it comes back only by texting START (a fresh log).

The key is keyed (HMAC-SHA-256) with ``Policy.log_key`` when the policy
has one, else a plain SHA-256: see ``docs/compliance.md`` for the
trade-off.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

import attrs

from ._chain import event_digest
from ._errors import RecordError, show
from ._log import ConsentLog, verify
from ._personal import Redacted, commit, contact_commitment
from ._records import (
    AuditEvent,
    Consent,
    Outgoing,
    ParsedReply,
    _dt,
    _int,
    _mapping,
    _opt_dt,
    _opt_str,
    _str,
    is_digest,
)
from .stores._base import DELIVERY_STATUSES, MessageRecord

__all__ = [
    "ErasedLog",
    "Erasure",
    "erase_log",
    "record_from_dict",
    "record_to_dict",
    "redact_event",
    "redact_record",
    "suppression_key",
]

#: The statuses an outbox row can have (``MessageStatus``).
_STATUSES = frozenset(
    {"pending", "sent", "cancelled", "expired", "failed", "quarantined"}
)


def suppression_key(contact: str, log_key: bytes | None = None) -> str:
    """The suppression key of a (canonical) contact id: its commitment,
    ``"hmac-sha256:..."`` under ``log_key`` when given, else ``"sha256:..."``.

    .. versionadded:: 0.2.0
    """
    return contact_commitment(contact, log_key)


def _redacted(value: str, log_key: bytes | None) -> Redacted:
    return Redacted(commit(value, log_key))


def _opt_redacted(value: str | None, log_key: bytes | None) -> Redacted | None:
    return None if value is None else _redacted(value, log_key)


def _redact_message(message: Outgoing, log_key: bytes | None) -> Outgoing:
    return attrs.evolve(
        message,
        contact=_redacted(message.contact, log_key),
        text=_redacted(message.text, log_key),
    )


def redact_event(event: AuditEvent, log_key: bytes | None = None) -> AuditEvent:
    """``event`` without its personal values (each replaced by its
    commitment): the same digest, nothing a person could be found by.

    .. versionadded:: 0.2.0
    """
    reply: ParsedReply | None = event.reply
    if reply is not None:
        reply = attrs.evolve(reply, text=_redacted(reply.text, log_key))
    return attrs.evolve(
        event,
        reply=reply,
        sent=tuple(_redact_message(m, log_key) for m in event.sent),
        evidence=_opt_redacted(event.evidence, log_key),
        reason=_opt_redacted(event.reason, log_key),
    )


def redact_record(record: MessageRecord, log_key: bytes | None = None) -> MessageRecord:
    """An outbox record without its message's contact and text (committed)
    and without the provider's last error text (which may quote the number).

    .. versionadded:: 0.2.0
    """
    return attrs.evolve(
        record, message=_redact_message(record.message, log_key), last_error=None
    )


def record_to_dict(record: MessageRecord) -> dict[str, Any]:
    """An outbox record as JSON-safe data (exports, erasures)."""
    return {
        "message": record.message.to_dict(),
        "status": record.status,
        "attempts": record.attempts,
        "last_error": record.last_error,
        "next_attempt_at": _iso(record.next_attempt_at),
        "provider_id": record.provider_id,
        "sent_at": _iso(record.sent_at),
        "delivery": record.delivery,
        "delivery_at": _iso(record.delivery_at),
        "error_code": record.error_code,
    }


def record_from_dict(data: object, *, field: str = "message") -> MessageRecord:
    """Read :func:`record_to_dict`'s data back; :class:`RecordError` naming
    the field when it is malformed."""
    d = _mapping(data, field)
    status = d.get("status")
    if status not in _STATUSES:
        raise RecordError(f"{field}.status", f"unknown status {show(status)}")
    delivery = d.get("delivery")
    if delivery is not None and delivery not in DELIVERY_STATUSES:
        raise RecordError(f"{field}.delivery", f"unknown status {show(delivery)}")
    return MessageRecord(
        message=Outgoing.from_dict(d.get("message"), field=f"{field}.message"),
        status=status,
        attempts=_int(d, "attempts", field),
        last_error=_opt_str(d, "last_error", field),
        next_attempt_at=_opt_dt(d, "next_attempt_at", field),
        provider_id=_opt_str(d, "provider_id", field),
        sent_at=_opt_dt(d, "sent_at", field),
        delivery=delivery,
        delivery_at=_opt_dt(d, "delivery_at", field),
        error_code=_opt_str(d, "error_code", field),
    )


def _iso(value: datetime | None) -> str | None:
    return None if value is None else value.isoformat()


@attrs.frozen(kw_only=True, slots=True)
class ErasedLog:
    """One erasure of a contact: when, by whom and why, the redacted log
    (its contact a :class:`Redacted`: the suppression key) and the redacted
    delivery evidence of its messages.

    .. versionadded:: 0.2.0
    """

    erased_at: datetime
    by: str
    reason: str
    log: ConsentLog
    messages: tuple[MessageRecord, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        return {
            "erased_at": self.erased_at.isoformat(),
            "by": self.by,
            "reason": self.reason,
            "log": self.log.to_dict(),
            "messages": [record_to_dict(m) for m in self.messages],
        }


@attrs.frozen(kw_only=True, slots=True)
class Erasure:
    """What a store keeps of an erased contact: the suppression ``key``
    and each erasure's redacted log (oldest first: a contact who came back
    by texting START and was erased again has two).

    .. versionadded:: 0.2.0
    """

    key: str
    logs: tuple[ErasedLog, ...]

    @property
    def erased_at(self) -> datetime:
        """When the contact was last erased."""
        return self.logs[-1].erased_at

    def verify(self, *, log_key: bytes | None = None) -> None:
        """Check every redacted log (its chain, digests and rules), as
        :func:`~optin_core.verify` does; :class:`RecordError` naming the
        first event that fails."""
        contact = Redacted(self.key)
        for erased in self.logs:
            if erased.log.contact != self.key:
                raise RecordError(
                    "log.contact", "a redacted log of another contact", contact=self.key
                )
            verify(contact, erased.log.events, erased.log.head, log_key=log_key)

    def to_dict(self) -> dict[str, Any]:
        """``{"schema": 2, "key", "logs"}``, JSON-safe."""
        return {
            "schema": 2,
            "key": self.key,
            "logs": [erased.to_dict() for erased in self.logs],
        }

    @classmethod
    def from_dict(cls, data: object) -> Erasure:
        """Read :meth:`to_dict`'s data back (decoded, not verified: see
        :meth:`verify`). :class:`RecordError` naming the field."""
        d = _mapping(data, "erasure")
        if d.get("schema") != 2:
            raise RecordError(
                "schema", f"unknown schema version {show(d.get('schema'))}"
            )
        key = d.get("key")
        if not is_digest(key):
            raise RecordError("key", f"expected a digest, got {show(key)}")
        assert isinstance(key, str)
        raw = d.get("logs")
        if not isinstance(raw, list) or not raw:
            raise RecordError("logs", "expected a non-empty list", contact=key)
        logs = []
        for i, item in enumerate(raw):
            e = _mapping(item, f"logs[{i}]")
            name = f"logs[{i}]"
            messages = e.get("messages", [])
            if not isinstance(messages, list):
                raise RecordError(f"{name}.messages", "expected a list", contact=key)
            logs.append(
                ErasedLog(
                    erased_at=_dt(e, "erased_at", name),
                    by=_str(e, "by", name),
                    reason=_str(e, "reason", name),
                    log=read_log(e.get("log"), field=f"{name}.log"),
                    messages=tuple(
                        record_from_dict(m, field=f"{name}.messages[{j}]")
                        for j, m in enumerate(messages)
                    ),
                )
            )
        return cls(key=key, logs=tuple(logs))


def read_log(data: object, *, field: str = "log") -> ConsentLog:
    """A :class:`ConsentLog` read from :meth:`ConsentLog.to_dict`'s data,
    decoded but not verified (a store has no key)."""
    d = _mapping(data, field)
    head = Consent.from_dict(d.get("head"))
    raw = d.get("log")
    if not isinstance(raw, list):
        raise RecordError(f"{field}.log", "expected a list")
    events = tuple(
        AuditEvent.from_dict(item, field=f"{field}.log[{i}]")
        for i, item in enumerate(raw)
    )
    return ConsentLog(head=head, events=events)


def erase_log(
    log: ConsentLog,
    records: Sequence[MessageRecord],
    *,
    erased_at: datetime,
    by: str,
    reason: str,
    log_key: bytes | None = None,
) -> ErasedLog:
    """The erasure of a verified ``log`` and its outbox ``records``: every
    personal value replaced by its commitment, checked to keep every digest
    (so the redacted log verifies as the original did)."""
    key = suppression_key(log.contact, log_key)
    contact = Redacted(key)
    events = tuple(redact_event(e, log_key) for e in log.events)
    for original, redacted in zip(log.events, events, strict=True):
        if event_digest(contact, redacted, log_key=log_key) != original.digest:
            raise RecordError(  # pragma: no cover - the encoding's invariant
                f"log[{original.version - 1}]",
                "its redaction changes its digest",
                contact=key,
            )
    head = verify(contact, events, log_key=log_key)
    return ErasedLog(
        erased_at=erased_at,
        by=by,
        reason=reason,
        log=ConsentLog(head=head, events=events),
        messages=tuple(redact_record(r, log_key) for r in records),
    )
