"""The hash chain of a consent log: the canonical encoding and the digest.

An event's digest covers its canonical encoding (below) with the contact
added, so an event cannot be moved to another contact's log, and with the
previous event's digest (``prev``), so no event can be edited, removed,
inserted or reordered without breaking every digest after it. With a host
key the digest is an HMAC-SHA-256: rewriting a whole chain then needs the
key, not only the skill to run SHA-256.

The canonical encoding is JSON, so another language can check a log:

* the object of :meth:`AuditEvent.body` (every field but ``digest``) plus
  ``"contact"``; nested objects (``reply``, each message of ``sent``) as
  written by their ``to_dict``; ``level`` and ``category`` only where they
  differ from what the event implies (its ``to_state``'s level, the default
  category of a text), as ``body`` writes them;
* every **personal value** replaced by its commitment
  (:func:`optin_core._personal.commit`: ``"sha256:"`` + the hex SHA-256 of
  its UTF-8 bytes, or ``"hmac-sha256:"`` + the HMAC under the log's key):
  ``contact``, ``evidence``, ``reason``, ``reply.text``, and ``contact`` and
  ``text`` of each message of ``sent``. A value an erasure removed is
  written ``{"redacted": "<commitment>"}`` in records, and its commitment
  is used as is: a redacted event keeps its digest;
* keys sorted by code point, at every level; no whitespace at all;
* strings with ``"`` and ``\\`` escaped, ``\\b \\f \\n \\r \\t`` for those
  controls, and every other character outside U+0020..U+007E as ``\\uXXXX``
  (lowercase hex; characters above U+FFFF as a UTF-16 surrogate pair, lone
  surrogates as themselves): the bytes are pure ASCII;
* integers in decimal, ``null`` for a missing value; no floats, no booleans.

The digest is ``"sha256:"`` + the hex SHA-256 of those bytes, or
``"hmac-sha256:"`` + the hex HMAC-SHA-256 under the host's key.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from datetime import datetime
from typing import Any

from ._enums import ConsentState, Intent, MatchRule, MessageKind, Trigger
from ._levels import DEFAULT_CATEGORY, STATE_LEVELS
from ._personal import Redacted, commit, contact_commitment
from ._records import AuditEvent

__all__ = ["canonical_bytes", "digest_of", "event_canonical", "event_digest"]

_encode = json.JSONEncoder(
    ensure_ascii=True, sort_keys=True, separators=(",", ":"), allow_nan=False
).encode

#: The C string encoder ``json`` uses with ``ensure_ascii``.
_q = json.encoder.encode_basestring_ascii

# Enum values, quoted once: ``member.value`` is a Python-level descriptor.
_QUOTED: dict[object, str] = {
    m: _q(m.value) for e in (ConsentState, Intent, MatchRule, MessageKind) for m in e
}

_LEVELS = dict(STATE_LEVELS)
_TEXT = Trigger.TEXT
_TEXT_CATEGORY = DEFAULT_CATEGORY

#: The personal values of an event body, by where they sit in it.
_PERSONAL = ("evidence", "reason")
_PERSONAL_REPLY = ("text",)
_PERSONAL_SENT = ("contact", "text")


def _committed(value: object, log_key: bytes | None) -> object:
    """A personal value of a body as the canonical encoding writes it: its
    commitment (a redacted one's as recorded), ``None`` as it is."""
    if value is None:
        return None
    if isinstance(value, dict):
        # {"redacted": "<commitment>"}, as to_dict writes a Redacted value.
        return value["redacted"]
    return commit(str(value), log_key)


def canonical_bytes(
    contact: str, body: dict[str, Any], *, log_key: bytes | None = None
) -> bytes:
    """The canonical encoding of an event ``body`` (its fields but
    ``digest``) in ``contact``'s log: the definition, by way of ``json``.
    Personal values are committed with ``log_key`` when given.

    .. versionadded:: 0.2.0
    """
    out = dict(body)
    for name in _PERSONAL:
        out[name] = _committed(out.get(name), log_key)
    reply = out.get("reply")
    if reply is not None:
        out["reply"] = {
            **reply,
            **{n: _committed(reply.get(n), log_key) for n in _PERSONAL_REPLY},
        }
    out["sent"] = [
        {**m, **{n: _committed(m.get(n), log_key) for n in _PERSONAL_SENT}}
        for m in out.get("sent", [])
    ]
    out["contact"] = contact_commitment(contact, log_key)
    return _encode(out).encode("ascii")


def _deadline(value: datetime | None) -> str:
    return "" if value is None else f'"deadline":{_q(value.isoformat())},'


def _opt(value: str | None) -> str:
    return "null" if value is None else _q(value)


def _c(value: str, log_key: bytes | None) -> str:
    """A personal value, committed and quoted."""
    if value.__class__ is Redacted:
        return _q(value)
    return f'"{commit(value, log_key)}"'


def _cached(value: str, log_key: bytes | None) -> str:
    """A message's text, committed and quoted: automatic messages repeat
    (the policy renders each once), so their commitments are cached."""
    if value.__class__ is Redacted:
        return _q(value)
    return f'"{contact_commitment(value, log_key)}"'


def _same(a: str, b: str) -> bool:
    return a.__class__ is b.__class__ and a == b


def _opt_c(value: str | None, log_key: bytes | None) -> str:
    return "null" if value is None else _c(value, log_key)


def event_canonical(
    contact: str, event: AuditEvent, log_key: bytes | None = None
) -> bytes:
    """``canonical_bytes(contact, event.body(), log_key=log_key)``, written
    out field by field (several times faster: every decision hashes its
    event). The tests check that both give the same bytes for any event."""
    reply = event.reply
    if reply is None:
        replied = "null"
    else:
        full = (
            ""
            if reply.full_length is None
            else f'"full_length":{reply.full_length:d},'
            f'"full_sha256":{_opt(reply.full_sha256)},'
        )
        # "quoted" only when set, as ParsedReply.to_dict writes it.
        quoted = "" if reply.quoted is None else f'"quoted":{_QUOTED[reply.quoted]},'
        replied = (
            f'{{{full}"intent":{_QUOTED[reply.intent]},'
            f'"keyword":{_opt(reply.keyword)},"locale":{_opt(reply.locale)},'
            f'{quoted}"rule":{_QUOTED[reply.rule]},'
            f'"text":{_c(reply.text, log_key)}}}'
        )
    who = _q(contact_commitment(contact, log_key))
    sent = ",".join(
        [
            f'{{"contact":'
            f"{who if _same(m.contact, contact) else _c(m.contact, log_key)},"
            f"{_deadline(m.deadline)}"
            f'"key":{_q(m.key)},'
            f'"kind":{_QUOTED[m.kind]},"locale":{_q(m.locale)},'
            f'"text":{_cached(m.text, log_key)}}}'
            for m in event.sent
        ]
    )
    cancelled = ",".join([_q(key) for key in event.cancelled])
    input_at = event.input_at
    # "level" and "category" only where they differ from what the event
    # implies, as AuditEvent.body writes them.
    level = event.level
    leveled = "" if level == _LEVELS[event.to_state] else f'"level":{_opt(level)},'
    category = event.category
    categorized = (
        ""
        if category == (_TEXT_CATEGORY if event.trigger is _TEXT else None)
        else f'"category":{_opt(category)},'
    )
    return (
        f'{{"actor":{_opt(event.actor)},"at":{_q(event.at.isoformat())},'
        f'"cancelled":[{cancelled}],{categorized}"contact":{who},'
        f'"evidence":{_opt_c(event.evidence, log_key)},'
        f'"from_state":{_QUOTED[event.from_state]},"input":{_q(event.input)},'
        f'"input_at":{"null" if input_at is None else _q(input_at.isoformat())},'
        f'{leveled}"locale":{_opt(event.locale)},"message_id":{_opt(event.message_id)},'
        f'"method":{_opt(event.method)},"policy_id":{_q(event.policy_id)},'
        f'"policy_version":{_q(event.policy_version)},"prev":{_q(event.prev)},'
        f'"reason":{_opt_c(event.reason, log_key)},"reply":{replied},'
        f'"sent":[{sent}],'
        f'"to_state":{_QUOTED[event.to_state]},"trigger":{_q(event.trigger)},'
        f'"version":{event.version:d}}}'
    ).encode("ascii")


def digest_of(data: bytes, log_key: bytes | None) -> str:
    """The digest of canonical bytes, keyed when ``log_key`` is given."""
    if log_key is None:
        return "sha256:" + hashlib.sha256(data).hexdigest()
    return "hmac-sha256:" + hmac.digest(log_key, data, "sha256").hex()


def event_digest(
    contact: str, event: AuditEvent, *, log_key: bytes | None = None
) -> str:
    """The digest ``event`` must carry in ``contact``'s log.

    .. versionadded:: 0.2.0
    """
    return digest_of(event_canonical(contact, event, log_key), log_key)
