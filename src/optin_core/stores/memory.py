"""``MemoryStore``: the store protocol in one process's memory."""

from __future__ import annotations

import threading
from collections.abc import Sequence
from datetime import datetime

import attrs

from .._errors import DuplicateMessage, StaleVersion
from .._log import check_extension
from .._records import AuditEvent, Consent, Outgoing
from ._base import (
    Lease,
    MessageStatus,
    cancellation_refused,
    check_after,
    check_lease,
    check_limit,
    prepare_write,
    reused_key,
    stale_fork,
    uncancelled,
)

__all__ = ["MemoryStore"]


@attrs.define(slots=True)
class _Entry:
    seq: int
    message: Outgoing
    status: MessageStatus = "pending"
    leased_until: datetime | None = None
    claimed_version: int | None = None


class MemoryStore:
    """A thread-safe in-memory :class:`~optin_core.Store`: tests and
    single-process hosts.

    Heads and events are kept as the immutable objects themselves; each
    contact's inbound message ids are a set (duplicates of any age are
    refused). Nothing survives the process.

    .. versionadded:: 0.1.0
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._heads: dict[str, Consent] = {}
        self._logs: dict[str, list[AuditEvent]] = {}
        self._ids: dict[str, set[str]] = {}
        self._entries: dict[str, _Entry] = {}
        # Messages that still hold up their contact's queue, in order:
        # pending ones, and cancelled ones still leased to a sender.
        self._open: dict[str, list[_Entry]] = {}
        self._pending: dict[str, _Entry] = {}
        self._seq = 0

    def get(self, contact: str) -> Consent | None:
        with self._lock:
            return self._heads.get(contact)

    def log(self, contact: str, *, after: int = 0) -> list[AuditEvent]:
        check_after(after)
        with self._lock:
            return self._logs.get(contact, [])[after:]

    def put(
        self,
        consent: Consent,
        events: Sequence[AuditEvent],
        *,
        expected_version: int,
        lease: Lease | None = None,
    ) -> Outgoing | None:
        write = prepare_write(consent, events, expected_version)
        leased = check_lease(lease)
        contact = consent.contact
        with self._lock:
            current = self._heads.get(contact)
            found = None if current is None else current.version
            if (found or 0) != expected_version:
                raise StaleVersion(contact, expected=expected_version, found=found)
            stored = Consent(contact=contact) if current is None else current
            if stored.digest != write.prev:
                raise stale_fork(contact, expected_version)
            check_extension(stored, consent, events)
            seen = self._ids.get(contact, set())
            for message_id in write.message_ids:
                if message_id in seen:
                    raise DuplicateMessage(contact, message_id)
            queue = self._open.setdefault(contact, [])
            pending = {e.message.key: e for e in queue if e.status == "pending"}
            for key in write.cancelled:
                listed = pending.get(key)
                if listed is None or listed.message.kind not in write.withdraws:
                    entry = self._entries.get(key)
                    raise cancellation_refused(
                        contact,
                        key,
                        sent=entry is not None
                        and entry.message.contact == contact
                        and entry.status == "sent"
                        and entry.message.kind in write.withdraws,
                        version=expected_version,
                    )
            if write.stops:
                cancelled = set(write.cancelled)
                for key, entry in pending.items():
                    if entry.message.kind in write.withdraws and key not in cancelled:
                        raise uncancelled(contact, key)
            for _version, _position, message in write.messages:
                if message.key in self._entries:
                    raise reused_key(contact)
            # Checked: now write, all of it.
            self._heads[contact] = consent
            self._logs.setdefault(contact, []).extend(events)
            self._ids.setdefault(contact, set()).update(write.message_ids)
            for key in write.cancelled:
                entry = pending[key]
                entry.status = "cancelled"
                del self._pending[key]
                if entry.leased_until is None:
                    queue.remove(entry)
            for _version, _position, message in write.messages:
                self._seq += 1
                entry = _Entry(self._seq, message)
                self._entries[message.key] = entry
                self._pending[message.key] = entry
                queue.append(entry)
            return None if leased is None else self._claim_next(contact, leased)

    def pending(
        self, *, contact: str | None = None, limit: int | None = None
    ) -> list[Outgoing]:
        check_limit(limit)
        with self._lock:
            if contact is None:
                entries = list(self._pending.values())
            else:
                entries = [
                    e for e in self._open.get(contact, ()) if e.status == "pending"
                ]
        found = [e.message for e in entries]
        return found if limit is None else found[:limit]

    def claim(self, key: str, *, until: datetime, now: datetime) -> bool:
        with self._lock:
            entry = self._pending.get(key)
            return entry is not None and self._claim(entry, until, now)

    def _claim(self, entry: _Entry, until: datetime, now: datetime) -> bool:
        """Lease ``entry`` (a pending one) if :meth:`claim` allows it."""
        if entry.leased_until is not None and entry.leased_until > now:
            return False
        queue = self._open[entry.message.contact]
        for earlier in list(queue):
            if earlier is entry:
                break
            if earlier.status == "pending":
                return False
            # A cancelled message still being sent holds the queue until
            # its sender reports or its lease runs out.
            if earlier.leased_until is not None and earlier.leased_until > now:
                return False
            queue.remove(earlier)
        entry.leased_until = until
        head = self._heads.get(entry.message.contact)
        entry.claimed_version = None if head is None else head.version
        return True

    def _claim_next(self, contact: str, lease: Lease) -> Outgoing | None:
        """Claim ``contact``'s oldest pending message, if it can be claimed."""
        head = next(
            (e for e in self._open.get(contact, ()) if e.status == "pending"), None
        )
        if head is None or not self._claim(head, lease.until, lease.now):
            return None
        return head.message

    def release(self, key: str) -> None:
        with self._lock:
            entry = self._entries.get(key)
            if entry is None or entry.status == "sent":
                return
            entry.leased_until = None
            if entry.status == "cancelled":
                self._close(entry)

    def mark_sent(self, key: str, *, lease: Lease | None = None) -> Outgoing | None:
        leased = check_lease(lease)
        with self._lock:
            entry = self._entries.get(key)
            if entry is None:
                return None
            if entry.status != "sent":
                entry.status = "sent"
                entry.leased_until = None
                self._pending.pop(key, None)
                self._close(entry)
            if leased is None:
                return None
            return self._claim_next(entry.message.contact, leased)

    def _close(self, entry: _Entry) -> None:
        queue = self._open.get(entry.message.contact, [])
        if entry in queue:
            queue.remove(entry)

    def message_status(self, key: str) -> MessageStatus | None:
        """``"pending"``, ``"sent"`` or ``"cancelled"``; ``None`` if unknown."""
        with self._lock:
            entry = self._entries.get(key)
            return None if entry is None else entry.status

    def claimed_version(self, key: str) -> int | None:
        """The head version stored when ``key`` was last claimed: proof that
        a message went out before a later event (a stop) was recorded."""
        with self._lock:
            entry = self._entries.get(key)
            return None if entry is None else entry.claimed_version

    def contacts(self) -> list[str]:
        """Every contact with a stored head."""
        with self._lock:
            return list(self._heads)
