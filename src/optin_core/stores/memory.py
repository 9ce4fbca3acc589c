"""``MemoryStore``: the store protocol in one process's memory."""

from __future__ import annotations

import bisect
import threading
import uuid
from collections.abc import Sequence
from datetime import datetime, timedelta

import attrs

from .._enums import MessageKind
from .._erase import Erasure
from .._errors import DuplicateMessage, StaleVersion
from .._log import check_extension
from .._records import AuditEvent, Consent, Outgoing
from ._base import (
    DeliveryStatus,
    Lease,
    MessageRecord,
    MessageStatus,
    cancellation_refused,
    check_after,
    check_delivery,
    check_erasure,
    check_lease,
    check_limit,
    check_page,
    prepare_restore,
    prepare_write,
    retry_time,
    reused_key,
    stale_fork,
    timestamp,
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
    attempts: int = 0
    last_error: str | None = None
    next_attempt_at: datetime | None = None
    provider_id: str | None = None
    sent_at: datetime | None = None
    delivery: DeliveryStatus | None = None
    delivery_at: datetime | None = None
    error_code: str | None = None

    def record(self) -> MessageRecord:
        return MessageRecord(
            message=self.message,
            status=self.status,
            attempts=self.attempts,
            last_error=self.last_error,
            next_attempt_at=self.next_attempt_at,
            provider_id=self.provider_id,
            sent_at=self.sent_at,
            delivery=self.delivery,
            delivery_at=self.delivery_at,
            error_code=self.error_code,
        )

    def leased(self, now: datetime) -> bool:
        return self.leased_until is not None and self.leased_until > now


_STOP_CONFIRMATION = MessageKind.STOP_CONFIRMATION


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
        # Every message of a contact, in order, and by provider id.
        self._all: dict[str, list[_Entry]] = {}
        # A provider may give two messages the same id: each keeps its
        # place, so forgetting one still finds the other.
        self._by_provider_id: dict[str, list[_Entry]] = {}
        self._seq = 0
        self._namespace = uuid.uuid4().hex
        # Suppression key -> erasure; the contacts in order, for keyset
        # listings (rebuilt when a contact appears or goes).
        self._erasures: dict[str, Erasure] = {}
        self._sorted: list[str] | None = None

    def namespace(self) -> str:
        return self._namespace

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
            for key, _status in write.closed:
                if key not in pending:
                    entry = self._entries.get(key)
                    raise cancellation_refused(
                        contact,
                        key,
                        sent=entry is not None
                        and entry.message.contact == contact
                        and entry.status == "sent",
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
            if current is None:
                self._sorted = None
            self._heads[contact] = consent
            self._logs.setdefault(contact, []).extend(events)
            self._ids.setdefault(contact, set()).update(write.message_ids)
            for key in write.cancelled:
                entry = pending[key]
                entry.status = "cancelled"
                del self._pending[key]
                if entry.leased_until is None:
                    queue.remove(entry)
            for key, status in write.closed:
                entry = pending[key]
                entry.status = status
                entry.leased_until = None
                del self._pending[key]
                queue.remove(entry)
            every = self._all.setdefault(contact, [])
            for _version, _position, message in write.messages:
                self._seq += 1
                entry = _Entry(self._seq, message)
                self._entries[message.key] = entry
                self._pending[message.key] = entry
                queue.append(entry)
                every.append(entry)
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

    def due(self, *, now: datetime, limit: int | None = None) -> list[Outgoing]:
        check_limit(limit)
        timestamp(now, "now")
        with self._lock:
            heads = []
            for queue in self._open.values():
                head = next((e for e in queue if self._claimable(e, now)), None)
                if head is not None:
                    heads.append(head)
        heads.sort(key=lambda e: e.seq)
        found = [e.message for e in heads]
        return found if limit is None else found[:limit]

    def claim(self, key: str, *, until: datetime, now: datetime) -> bool:
        timestamp(until, "until")
        timestamp(now, "now")
        with self._lock:
            entry = self._pending.get(key)
            return entry is not None and self._claim(entry, until, now)

    def _claimable(self, entry: _Entry, now: datetime) -> bool:
        """Whether :meth:`claim` would lease ``entry`` at ``now``."""
        if entry.status != "pending" or entry.leased(now):
            return False
        if entry.next_attempt_at is not None and entry.next_attempt_at > now:
            return False
        # A stop confirmation waits only for what is being sent.
        patient = entry.message.kind is not _STOP_CONFIRMATION
        for earlier in self._open[entry.message.contact]:
            if earlier is entry:
                return True
            if earlier.leased(now) or (patient and earlier.status == "pending"):
                return False
        return False

    def _claim(self, entry: _Entry, until: datetime, now: datetime) -> bool:
        """Lease ``entry`` (a pending one) if :meth:`claim` allows it."""
        if not self._claimable(entry, now):
            return False
        # Closed messages whose sender is gone hold nothing any more.
        queue = self._open[entry.message.contact]
        queue[:] = [e for e in queue if e.status == "pending" or e.leased(now)]
        entry.leased_until = until
        head = self._heads.get(entry.message.contact)
        entry.claimed_version = None if head is None else head.version
        return True

    def _claim_next(self, contact: str, lease: Lease) -> Outgoing | None:
        """Claim ``contact``'s next claimable message, if any."""
        for entry in self._open.get(contact, ()):
            if self._claim(entry, lease.until, lease.now):
                return entry.message
        return None

    def release(
        self,
        key: str,
        *,
        error: str | None = None,
        now: datetime | None = None,
        backoff: timedelta | None = None,
    ) -> int:
        retry_time(now, backoff, 1)  # the arguments, checked before the lock
        with self._lock:
            entry = self._entries.get(key)
            if entry is None or entry.status == "sent":
                return 0
            entry.leased_until = None
            entry.attempts += 1
            entry.last_error = error
            entry.next_attempt_at = retry_time(now, backoff, entry.attempts)
            if entry.status != "pending":
                self._close(entry)
            return entry.attempts

    def mark_sent(
        self,
        key: str,
        *,
        lease: Lease | None = None,
        provider_id: str | None = None,
        at: datetime | None = None,
    ) -> Outgoing | None:
        leased = check_lease(lease)
        if provider_id is not None and not isinstance(provider_id, str):
            raise TypeError(f"provider_id must be a str, got {provider_id!r:.40}")
        if at is not None:
            timestamp(at, "at")
        with self._lock:
            entry = self._entries.get(key)
            if entry is None:
                return None
            if entry.status != "sent":
                entry.status = "sent"
                entry.leased_until = None
                entry.sent_at = at
                if provider_id:
                    entry.provider_id = provider_id
                    self._by_provider_id.setdefault(provider_id, []).append(entry)
                self._pending.pop(key, None)
                self._close(entry)
            if leased is None:
                return None
            return self._claim_next(entry.message.contact, leased)

    def delivery(
        self,
        key_or_provider_id: str,
        status: DeliveryStatus,
        *,
        at: datetime,
        error_code: str | None = None,
    ) -> Outgoing | None:
        checked = check_delivery(status)
        timestamp(at, "at")
        with self._lock:
            entry = self._entries.get(key_or_provider_id)
            if entry is None:
                shared = self._by_provider_id.get(key_or_provider_id)
                if not shared:
                    return None
                entry = shared[-1]
            entry.delivery = checked
            entry.delivery_at = at
            entry.error_code = None if error_code is None else str(error_code)
            return entry.message

    def messages(self, contact: str) -> list[MessageRecord]:
        with self._lock:
            return [e.record() for e in self._all.get(contact, ())]

    def dead_letters(self, *, limit: int | None = None) -> list[MessageRecord]:
        check_limit(limit)
        with self._lock:
            found = sorted(
                (e for e in self._entries.values() if e.status == "failed"),
                key=lambda e: e.seq,
            )
            records = [e.record() for e in found]
        return records if limit is None else records[:limit]

    def _close(self, entry: _Entry) -> None:
        queue = self._open.get(entry.message.contact, [])
        if entry in queue:
            queue.remove(entry)

    def message_status(self, key: str) -> MessageStatus | None:
        """The message's :data:`MessageStatus`; ``None`` if unknown."""
        with self._lock:
            entry = self._entries.get(key)
            return None if entry is None else entry.status

    def claimed_version(self, key: str) -> int | None:
        """The head version stored when ``key`` was last claimed: proof that
        a message went out before a later event (a stop) was recorded."""
        with self._lock:
            entry = self._entries.get(key)
            return None if entry is None else entry.claimed_version

    def contacts(
        self, *, after: str | None = None, limit: int | None = None
    ) -> list[str]:
        """Contacts with a stored head, in code point order: those after
        ``after``, at most ``limit`` (every one by default)."""
        check_page(after, limit)
        with self._lock:
            if self._sorted is None:
                self._sorted = sorted(self._heads)
            ordered = self._sorted
            start = 0 if after is None else bisect.bisect_right(ordered, after)
            end = len(ordered) if limit is None else start + limit
            return ordered[start:end]

    def restore(
        self,
        consent: Consent,
        events: Sequence[AuditEvent],
        messages: Sequence[MessageRecord] = (),
    ) -> None:
        write, rows = prepare_restore(consent, events, messages)
        contact = consent.contact
        with self._lock:
            current = self._heads.get(contact)
            if current is not None:
                raise StaleVersion(contact, expected=0, found=current.version)
            for _version, _position, record in rows:
                if record.message.key in self._entries:
                    raise reused_key(contact)
            self._heads[contact] = consent
            self._sorted = None
            self._logs[contact] = list(events)
            self._ids[contact] = set(write.message_ids)
            queue = self._open.setdefault(contact, [])
            every = self._all.setdefault(contact, [])
            for _version, _position, record in rows:
                self._seq += 1
                entry = _Entry(
                    self._seq,
                    record.message,
                    status=record.status,
                    attempts=record.attempts,
                    last_error=record.last_error,
                    next_attempt_at=record.next_attempt_at,
                    provider_id=record.provider_id,
                    sent_at=record.sent_at,
                    delivery=record.delivery,
                    delivery_at=record.delivery_at,
                    error_code=record.error_code,
                )
                self._entries[record.message.key] = entry
                every.append(entry)
                if record.provider_id:
                    self._by_provider_id.setdefault(record.provider_id, []).append(
                        entry
                    )
                if record.status == "pending":
                    self._pending[record.message.key] = entry
                    queue.append(entry)

    def erase(self, contact: str, erasure: Erasure, *, expected_version: int) -> None:
        digest = check_erasure(contact, erasure, expected_version)
        with self._lock:
            current = self._heads.get(contact)
            if (
                current is None
                or current.version != expected_version
                or current.digest != digest
            ):
                raise StaleVersion(
                    contact,
                    expected=expected_version,
                    found=None if current is None else current.version,
                )
            del self._heads[contact]
            self._sorted = None
            self._logs.pop(contact, None)
            self._ids.pop(contact, None)
            self._open.pop(contact, None)
            for entry in self._all.pop(contact, ()):
                key = entry.message.key
                self._entries.pop(key, None)
                self._pending.pop(key, None)
                self._forget_provider_id(entry)
            self._erasures[erasure.key] = erasure

    def suppress(self, erasure: Erasure) -> bool:
        with self._lock:
            if erasure.key in self._erasures:
                return False
            self._erasures[erasure.key] = erasure
            return True

    def erasure(self, key: str) -> Erasure | None:
        with self._lock:
            return self._erasures.get(key)

    def erasures(
        self, *, after: str | None = None, limit: int | None = None
    ) -> list[Erasure]:
        check_page(after, limit)
        with self._lock:
            keys = sorted(k for k in self._erasures if after is None or k > after)
            if limit is not None:
                keys = keys[:limit]
            return [self._erasures[k] for k in keys]

    def _forget_provider_id(self, entry: _Entry) -> None:
        if entry.provider_id is None:
            return
        shared = self._by_provider_id.get(entry.provider_id, [])
        kept = [other for other in shared if other is not entry]
        if kept:
            self._by_provider_id[entry.provider_id] = kept
        else:
            self._by_provider_id.pop(entry.provider_id, None)

    def purge_delivered(self, older_than: datetime) -> int:
        timestamp(older_than, "older_than")
        purged = 0
        with self._lock:
            for contact, every in self._all.items():
                kept = []
                for entry in every:
                    if (
                        entry.status == "sent"
                        and entry.sent_at is not None
                        and entry.sent_at < older_than
                    ):
                        purged += 1
                        self._entries.pop(entry.message.key, None)
                        self._forget_provider_id(entry)
                    else:
                        kept.append(entry)
                self._all[contact] = kept
        return purged
