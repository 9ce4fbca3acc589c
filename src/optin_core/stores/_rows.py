"""Row encoding and decoding, in one place for every SQL store.

Heads, events and messages are stored as ASCII JSON: a contact's reply may
hold lone surrogates or NULs, which UTF-8 cannot carry but JSON escapes can,
so every reply is storable. Every decoding error is a
:class:`~optin_core.RecordError` naming the contact.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

from .._errors import RecordError
from .._records import AuditEvent, Consent, Outgoing

if TYPE_CHECKING:
    from .._erase import Erasure

__all__ = [
    "decode_erasure",
    "decode_event",
    "decode_head",
    "decode_outgoing",
    "encode",
]

_dumps = json.JSONEncoder(ensure_ascii=True, separators=(",", ":")).encode


def encode(record: Consent | AuditEvent | Outgoing | Erasure) -> str:
    """The JSON text a row stores for ``record``."""
    return _dumps(record.to_dict())


def _load(contact: str, data: object, what: str) -> Any:
    try:
        return json.loads(data)  # type: ignore[arg-type]
    except (TypeError, ValueError) as e:
        raise RecordError(
            what, f"stored data is not JSON ({e})", contact=contact
        ) from None


def _named(contact: str, e: RecordError) -> RecordError:
    if e.contact:
        return e
    return RecordError(e.field, e.problem, contact=contact, index=e.index)


def decode_head(contact: str, data: object, version: int, digest: str) -> Consent:
    """A head row: its JSON must be a head of ``contact`` at the row's
    ``version`` and ``digest`` columns."""
    try:
        head = Consent.from_dict(_load(contact, data, "record"))
    except RecordError as e:
        raise _named(contact, e) from None
    if head.contact != contact:
        raise RecordError(
            "contact", f"the row holds the head of {head.contact!r}", contact=contact
        )
    if head.version != version or head.digest != digest:
        raise RecordError(
            "version",
            f"the row says version {version} but the head says {head.version} "
            "(or their digests differ)",
            contact=contact,
        )
    return head


def decode_event(contact: str, data: object, index: int) -> AuditEvent:
    """An event row (``index``: its position in what is being read)."""
    try:
        return AuditEvent.from_dict(
            _load(contact, data, f"log[{index}]"), field=f"log[{index}]"
        )
    except RecordError as e:
        raise RecordError(e.field, e.problem, contact=contact, index=index) from None


def decode_outgoing(contact: str, data: object) -> Outgoing:
    """An outbox row."""
    try:
        return Outgoing.from_dict(_load(contact, data, "outgoing"))
    except RecordError as e:
        raise _named(contact, e) from None


def decode_erasure(key: str, data: object) -> Erasure:
    """An erasure row (decoded, not verified: the service verifies it with
    the policy's key)."""
    # Imported here: the erasure module builds on the stores' base.
    from .._erase import Erasure  # noqa: PLC0415

    try:
        return Erasure.from_dict(_load(key, data, "erasure"))
    except RecordError as e:
        raise _named(key, e) from None
