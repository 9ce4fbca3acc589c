"""Personal values in a consent log, and their commitments.

A log commits to the personal values it holds (the contact id, message
bodies, reply texts, evidence references, free-text reasons) by digest: the
canonical encoding (:mod:`optin_core._chain`) writes the *commitment* of each
such value, never the value itself. An erasure can then drop the values and
keep their commitments, and the redacted log still verifies.

The commitment of a value is ``"sha256:"`` + the hex SHA-256 of its UTF-8
bytes (lone surrogates encoded as themselves, as everywhere in a log), or,
for a keyed log (``Policy(log_key=...)``), ``"hmac-sha256:"`` + the hex
HMAC-SHA-256 of those bytes under the log's key: without the key, nobody can
test a guessed phone number or reply against an erased log.

A value removed by an erasure is a :class:`Redacted`: a ``str`` whose text is
the commitment, written ``{"redacted": "<commitment>"}`` in records.
"""

from __future__ import annotations

import hashlib
import hmac

__all__ = ["Redacted", "commit", "contact_commitment"]


class Redacted(str):
    """A personal value an erasure removed: the ``str`` is its commitment.

    Records write it as ``{"redacted": "<commitment>"}`` (never as a plain
    string, which a contact could have typed), and the canonical encoding
    writes the commitment where the value's own would be, so an event keeps
    its digest once redacted.

    .. versionadded:: 0.2.0
    """

    __slots__ = ()

    def __repr__(self) -> str:
        return f"Redacted({str.__repr__(self)})"


def commit(value: str, log_key: bytes | None = None) -> str:
    """The commitment of a personal ``value`` (itself when already
    :class:`Redacted`): keyed with ``log_key`` when given.

    .. versionadded:: 0.2.0
    """
    if value.__class__ is Redacted:
        return value
    data = value.encode("utf-8", "surrogatepass")
    if log_key is None:
        return "sha256:" + hashlib.sha256(data).hexdigest()
    return "hmac-sha256:" + hmac.digest(log_key, data, "sha256").hex()


# The commitments of recent contact ids: every event commits to its log's
# contact, once at the top and once per message, and a process serves the
# same contacts again and again. Bounded by clearing (a commitment is cheap
# to compute again).
_CONTACTS: dict[str, str] = {}
_KEYED: dict[tuple[bytes, str], str] = {}
_CACHED = 4096


#: Longest value whose commitment is cached (contact ids, automatic
#: messages: the policy renders each once, and they repeat).
_CACHED_LENGTH = 320


def contact_commitment(contact: str, log_key: bytes | None = None) -> str:
    """:func:`commit` of a contact id (or of another value that repeats, an
    automatic message), cached per process."""
    if contact.__class__ is Redacted:
        return contact
    if len(contact) > _CACHED_LENGTH:
        return commit(contact, log_key)
    if log_key is None:
        found = _CONTACTS.get(contact)
        if found is None:
            if len(_CONTACTS) >= _CACHED:
                _CONTACTS.clear()
            found = _CONTACTS[contact] = commit(contact)
        return found
    pair = (log_key, contact)
    found = _KEYED.get(pair)
    if found is None:
        if len(_KEYED) >= _CACHED:
            _KEYED.clear()
        found = _KEYED[pair] = commit(contact, log_key)
    return found
