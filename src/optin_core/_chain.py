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
  written by their ``to_dict``;
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
from typing import Any

from ._records import AuditEvent

__all__ = ["canonical_bytes", "digest_of", "event_digest"]

_encode = json.JSONEncoder(
    ensure_ascii=True, sort_keys=True, separators=(",", ":"), allow_nan=False
).encode


def canonical_bytes(contact: str, body: dict[str, Any]) -> bytes:
    """The canonical encoding of an event ``body`` (its fields but
    ``digest``) in ``contact``'s log.

    .. versionadded:: 0.2.0
    """
    return _encode({**body, "contact": contact}).encode("ascii")


def digest_of(data: bytes, log_key: bytes | None) -> str:
    """The digest of canonical bytes, keyed when ``log_key`` is given."""
    if log_key is None:
        return "sha256:" + hashlib.sha256(data).hexdigest()
    return "hmac-sha256:" + hmac.new(log_key, data, hashlib.sha256).hexdigest()


def event_digest(
    contact: str, event: AuditEvent, *, log_key: bytes | None = None
) -> str:
    """The digest ``event`` must carry in ``contact``'s log.

    .. versionadded:: 0.2.0
    """
    return digest_of(canonical_bytes(contact, event.body()), log_key)
