"""Stores: where the shell keeps consent records and their outbox.

A store keeps two things, written together:

* the consent records, each replaced only by compare-and-set on its
  ``version`` (:meth:`Store.put` raises :class:`~optin_core.StaleVersion`
  when another writer got there first);
* the outbox: every message decided by the core, indexed as *pending* in the
  same write that saves the record carrying it (the messages already live in
  the record's history, so saving one saves the other), then *claimed* by one
  sender at a time under a lease, and finally marked *sent*, or *cancelled*
  when a later stop makes it undeliverable.

Any database with a conditional write can back the :class:`Store` protocol;
:class:`MemoryStore` (tests, single process) and :class:`SQLiteStore` (the
embedded default: one file, several threads and processes) ship here.
"""

from __future__ import annotations

import json
import os
import sqlite3
import threading
import time
from collections import OrderedDict
from collections.abc import Collection, Iterator
from datetime import datetime
from typing import (
    Any,
    Literal,
    NamedTuple,
    Protocol,
    TypeAlias,
    cast,
    runtime_checkable,
)

import attrs

from ._enums import MessageKind
from ._errors import RecordError, StaleVersion
from ._records import Consent, Outgoing

__all__ = [
    "AsyncStore",
    "Lease",
    "MemoryStore",
    "MessageStatus",
    "SQLiteStore",
    "Store",
]

#: Where a message of the outbox stands.
MessageStatus: TypeAlias = Literal["pending", "sent", "cancelled"]


class Lease(NamedTuple):
    """The ``lease`` a service may pass to :meth:`Store.put` and
    :meth:`Store.mark_sent` (the optional extension of the protocol): claim the
    contact's next message in the same transaction, exactly as
    ``claim(key, until=until, now=now)`` would.

    .. versionadded:: 0.1.0
    """

    until: datetime
    now: datetime


@runtime_checkable
class Store(Protocol):
    """What :class:`~optin_core.ConsentService` needs from a database.

    Every method must be atomic (one transaction, or one lock); the service
    relies on it for "nothing lost, nothing sent twice". The messages of the
    outbox are keyed by :attr:`Outgoing.key`, unique across contacts, and
    ordered per contact by the order of the writes that created them.

    **Optional: leasing in the same write.** A store may also accept a
    keyword-only ``lease`` argument (a :class:`Lease`, ``(until, now)``,
    default ``None``) on :meth:`put` and/or :meth:`mark_sent`. When given,
    the method, in the same transaction and after its own work, claims the
    contact's next message exactly as ``claim(key, until=until, now=now)``
    would for the oldest pending message of that contact, and returns that
    :class:`Outgoing`, or ``None`` when no message of the contact can be
    claimed (nothing pending, or the head of its queue is being sent by
    someone else). A ``put`` that raises :class:`~optin_core.StaleVersion`
    claims nothing. This saves the service one commit per operation (and a
    query per message). The service uses it only on a method whose signature
    names a ``lease`` parameter, and otherwise calls :meth:`claim` and
    :meth:`pending` as before: stores without it keep working unchanged.
    ``MemoryStore`` and ``SQLiteStore`` implement it.

    .. versionadded:: 0.1.0
    """

    def get(self, contact: str) -> Consent | None:
        """The stored record of ``contact``, or ``None`` when there is none.

        Raises :class:`~optin_core.RecordError` naming the contact when the
        stored data cannot be read back.
        """
        ...

    def put(
        self,
        consent: Consent,
        *,
        expected_version: int,
        cancel_pending: Collection[MessageKind] = (),
    ) -> Outgoing | None:
        """Compare-and-set: save ``consent`` if the stored version is still
        ``expected_version`` (``0``: no record may exist yet).

        In the same transaction:

        1. mark every still-pending message of this contact whose kind is in
           ``cancel_pending`` as cancelled (the service passes the kinds a
           stop makes undeliverable, so a text queued before a STOP can never
           be claimed after it);
        2. index the messages of the new events,
           ``consent.history[expected_version:]``, as pending, in order.

        Raises :class:`~optin_core.StaleVersion` (``found`` = the stored
        version, ``None`` when absent) and writes nothing when the stored
        version differs. Returns ``None`` (or, for a store implementing the
        optional ``lease`` argument and given one, the message it claimed:
        see the class docstring).
        """
        ...

    def pending(
        self, *, contact: str | None = None, limit: int | None = None
    ) -> list[Outgoing]:
        """Pending messages, oldest first; only ``contact``'s when given.

        Includes messages claimed by a sender whose lease has not expired.
        """
        ...

    def claim(self, key: str, *, until: datetime, now: datetime) -> bool:
        """Lease the pending message ``key`` to the caller until ``until``.

        True only if the message is pending, not leased to another sender at
        ``now``, and no earlier message of the same contact is still pending
        or being sent (per-contact order). The caller then sends it and calls
        :meth:`mark_sent` or :meth:`release`.
        """
        ...

    def release(self, key: str) -> None:
        """Drop the caller's lease after a failed send: the message may be
        claimed again at once. Idempotent."""
        ...

    def mark_sent(self, key: str) -> Outgoing | None:
        """Record that ``key`` was handed to the provider. Idempotent.

        Also applies to a message cancelled while it was being sent: it did
        go, and the outbox says so. Returns ``None`` (or, with the optional
        ``lease``, the contact's next message, claimed in the same
        transaction: see the class docstring).
        """
        ...


@runtime_checkable
class AsyncStore(Protocol):
    """:class:`Store` with coroutine methods, for
    :class:`~optin_core.AsyncConsentService` over an async database driver.

    Same contract as :class:`Store`, method by method, including the
    optional ``lease`` argument of ``put`` and ``mark_sent``.

    .. versionadded:: 0.1.0
    """

    async def get(self, contact: str) -> Consent | None: ...

    async def put(
        self,
        consent: Consent,
        *,
        expected_version: int,
        cancel_pending: Collection[MessageKind] = (),
    ) -> Outgoing | None: ...

    async def pending(
        self, *, contact: str | None = None, limit: int | None = None
    ) -> list[Outgoing]: ...

    async def claim(self, key: str, *, until: datetime, now: datetime) -> bool: ...

    async def release(self, key: str) -> None: ...

    async def mark_sent(self, key: str) -> Outgoing | None: ...


def new_messages(
    consent: Consent, expected_version: int
) -> Iterator[tuple[int, int, Outgoing]]:
    """``(version, position, message)`` for the messages a put adds.

    Validates the put's arguments: a store must never index messages of a
    write that does not extend the stored history.
    """
    if not isinstance(consent, Consent):
        raise TypeError(f"consent must be a Consent, got {type(consent).__name__}")
    if (
        not isinstance(expected_version, int)
        or isinstance(expected_version, bool)
        or not 0 <= expected_version < consent.version
    ):
        raise ValueError(
            f"expected_version must be an int in [0, {consent.version}) for a "
            f"record at version {consent.version}, got {expected_version!r}"
        )
    if consent.version != len(consent.history):
        raise RecordError(
            "version",
            f"{consent.version} does not match the {len(consent.history)} "
            "history events",
            contact=consent.contact,
        )
    for event in consent.history[expected_version:]:
        for position, message in enumerate(event.sent):
            yield event.version, position, message


def _check_limit(limit: int | None) -> None:
    if limit is not None and (
        not isinstance(limit, int) or isinstance(limit, bool) or limit < 0
    ):
        raise ValueError(f"limit must be None or an int >= 0, got {limit!r}")


def _kinds(cancel_pending: Collection[MessageKind]) -> frozenset[MessageKind]:
    kinds = frozenset(cancel_pending)
    for kind in kinds:
        if not isinstance(kind, MessageKind):
            raise TypeError(f"cancel_pending holds MessageKind, got {kind!r}")
    return kinds


def _lease(lease: tuple[datetime, datetime] | None) -> Lease | None:
    """``lease`` checked (two aware datetimes), before anything is written."""
    if lease is None:
        return None
    if not isinstance(lease, tuple) or len(lease) != 2:
        raise TypeError(f"lease must be a Lease(until, now) or None, got {lease!r}")
    until, now = lease
    _ts(until, "lease.until")
    _ts(now, "lease.now")
    return Lease(until, now)


# ---------------------------------------------------------------------------
# MemoryStore


@attrs.define(slots=True)
class _Entry:
    seq: int
    message: Outgoing
    status: MessageStatus = "pending"
    leased_until: datetime | None = None
    claimed_version: int | None = None


class MemoryStore:
    """A thread-safe in-memory :class:`Store`: tests and single-process hosts.

    Records are kept as the immutable :class:`Consent` objects themselves.
    Nothing survives the process.

    .. versionadded:: 0.1.0
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._records: dict[str, Consent] = {}
        self._entries: dict[str, _Entry] = {}
        # Messages that still hold up their contact's queue, in order:
        # pending ones, and cancelled ones still leased to a sender.
        self._open: dict[str, list[_Entry]] = {}
        self._pending: dict[str, _Entry] = {}
        self._seq = 0

    def get(self, contact: str) -> Consent | None:
        with self._lock:
            return self._records.get(contact)

    def put(
        self,
        consent: Consent,
        *,
        expected_version: int,
        cancel_pending: Collection[MessageKind] = (),
        lease: tuple[datetime, datetime] | None = None,
    ) -> Outgoing | None:
        added = list(new_messages(consent, expected_version))
        kinds = _kinds(cancel_pending)
        leased = _lease(lease)
        contact = consent.contact
        with self._lock:
            current = self._records.get(contact)
            found = None if current is None else current.version
            if (found or 0) != expected_version:
                raise StaleVersion(contact, expected=expected_version, found=found)
            self._records[contact] = consent
            queue = self._open.setdefault(contact, [])
            if kinds:
                for entry in list(queue):
                    if entry.status == "pending" and entry.message.kind in kinds:
                        entry.status = "cancelled"
                        del self._pending[entry.message.key]
                        if entry.leased_until is None:
                            queue.remove(entry)
            for _version, _position, message in added:
                if message.key in self._entries:
                    continue
                self._seq += 1
                entry = _Entry(self._seq, message)
                self._entries[message.key] = entry
                self._pending[message.key] = entry
                queue.append(entry)
            return None if leased is None else self._claim_next(contact, leased)

    def pending(
        self, *, contact: str | None = None, limit: int | None = None
    ) -> list[Outgoing]:
        _check_limit(limit)
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
        record = self._records.get(entry.message.contact)
        entry.claimed_version = None if record is None else record.version
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

    def mark_sent(
        self, key: str, *, lease: tuple[datetime, datetime] | None = None
    ) -> Outgoing | None:
        leased = _lease(lease)
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
        """The record version stored when ``key`` was last claimed: proof that
        a message went out before a later event (a stop) was recorded."""
        with self._lock:
            entry = self._entries.get(key)
            return None if entry is None else entry.claimed_version

    def contacts(self) -> list[str]:
        """Every contact with a stored record."""
        with self._lock:
            return list(self._records)


# ---------------------------------------------------------------------------
# SQLiteStore

_SCHEMA_VERSION = 1

_SCHEMA = """
CREATE TABLE IF NOT EXISTS consents (
    contact TEXT PRIMARY KEY,
    version INTEGER NOT NULL,
    state TEXT NOT NULL,
    data TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS outbox (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    key TEXT NOT NULL UNIQUE,
    contact TEXT NOT NULL,
    version INTEGER NOT NULL,
    position INTEGER NOT NULL,
    kind TEXT NOT NULL,
    data TEXT NOT NULL,
    status TEXT NOT NULL DEFAULT 'pending',
    leased_until REAL,
    claimed_version INTEGER
);
CREATE INDEX IF NOT EXISTS outbox_contact ON outbox (contact, seq);
CREATE INDEX IF NOT EXISTS outbox_pending ON outbox (seq)
    WHERE status = 'pending';
"""

_CLAIM = """
UPDATE outbox
SET leased_until = :until,
    claimed_version = (SELECT c.version FROM consents AS c
                       WHERE c.contact = outbox.contact)
WHERE key = :key
  AND status = 'pending'
  AND (leased_until IS NULL OR leased_until <= :now)
  AND NOT EXISTS (
      SELECT 1 FROM outbox AS o
      WHERE o.contact = outbox.contact
        AND o.seq < outbox.seq
        AND (o.status = 'pending'
             OR (o.status = 'cancelled' AND o.leased_until > :now))
  )
"""


_GET = """
SELECT version, CASE version WHEN :cached THEN NULL ELSE data END
FROM consents WHERE contact = :contact
"""

_MARK_SENT = (
    "UPDATE outbox SET status = 'sent', leased_until = NULL "
    "WHERE key = ? AND status != 'sent'"
)

_HEAD = """
SELECT key, data FROM outbox
WHERE contact = ? AND status = 'pending' ORDER BY seq LIMIT 1
"""

#: The oldest pending message of the contact of :key, other than :key.
_NEXT = """
SELECT contact, key, data FROM outbox
WHERE contact = (SELECT contact FROM outbox WHERE key = :key)
  AND status = 'pending' AND key != :key
ORDER BY seq LIMIT 1
"""

#: Whether a message of the contact holds its queue (see _CLAIM).
_HELD = """
SELECT 1 FROM outbox
WHERE contact = :contact
  AND (status = 'pending' OR (status = 'cancelled' AND leased_until > :now))
LIMIT 1
"""

_INSERT = (
    "INSERT OR IGNORE INTO outbox "
    "(key, contact, version, position, kind, data, leased_until, claimed_version) "
    "VALUES (?, ?, ?, ?, ?, ?, ?, ?)"
)


class _RecordCache:
    """A bounded LRU ``contact -> Consent`` of the records a store read or
    wrote, shared by the threads of one process.

    Records are immutable and a ``(contact, version)`` pair is written once
    (compare-and-set), so a cached record is served only when the version
    column of the row, read in the same query, still names it: the database
    stays the truth, across threads and processes.
    """

    __slots__ = ("_lock", "_records", "pid", "size")

    def __init__(self, size: int, pid: int) -> None:
        self.size = size
        self.pid = pid
        self._lock = threading.Lock()
        self._records: OrderedDict[str, Consent] = OrderedDict()

    def get(self, contact: str) -> Consent | None:
        with self._lock:
            record = self._records.get(contact)
            if record is not None:
                self._records.move_to_end(contact)
            return record

    def add(self, record: Consent) -> None:
        if not self.size:
            return
        contact = record.contact
        with self._lock:
            held = self._records.get(contact)
            if held is None or held.version <= record.version:
                self._records[contact] = record
            self._records.move_to_end(contact)
            if len(self._records) > self.size:
                self._records.popitem(last=False)

    def drop(self, contact: str) -> None:
        with self._lock:
            self._records.pop(contact, None)


def _ts(value: datetime, name: str) -> float:
    if not isinstance(value, datetime):
        raise TypeError(f"{name} must be a datetime, got {type(value).__name__}")
    if value.tzinfo is None or value.utcoffset() is None:
        raise ValueError(f"{name} must be timezone-aware")
    return value.timestamp()


class SQLiteStore:
    """The embedded default :class:`Store`: one SQLite file, stdlib ``sqlite3``.

    * WAL journal, a ``busy_timeout`` (``timeout`` seconds), and writes that
      take the write lock up front (``BEGIN IMMEDIATE``), so several threads
      and processes on one machine can share the file;
    * compare-and-set in one SQL statement
      (``UPDATE ... WHERE contact = ? AND version = ?``, or ``INSERT`` for a
      first write), the outbox rows in the same transaction;
    * records stored as the JSON of :meth:`Consent.to_dict`, read back with
      :meth:`Consent.from_dict`; an unreadable row raises
      :class:`~optin_core.RecordError` naming the contact;
    * one connection per thread and process, opened lazily: a store object
      survives ``fork`` (the child opens its own connections and never
      touches the parent's) and pickles to its path for ``spawn``;
    * the optional ``lease`` of :meth:`put` and :meth:`mark_sent` (see
      :class:`Store`), so that a service operation commits twice (the record
      with its first message already claimed, then "sent"), not three times.

    ``synchronous`` is SQLite's durability setting: ``"FULL"`` (default)
    survives power loss; ``"NORMAL"`` survives a crash of the process and is
    faster. The schema is created on first use. Use as a context manager, or
    call :meth:`close`.

    ``cache_size`` bounds a per-process LRU cache of records (``0``: none).
    :meth:`get` reads the row's version first (in the same query) and serves
    the cached record only when that version is the cached one, which skips
    the JSON parsing and validation of an unchanged record; a row changed by
    any writer, in any process, is read afresh. This relies on a
    ``(contact, version)`` pair never being rewritten, which compare-and-set
    guarantees; after editing rows by hand (or restoring a backup) use a new
    store object.

    .. versionadded:: 0.1.0
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        timeout: float = 30.0,
        synchronous: Literal["FULL", "NORMAL", "EXTRA"] = "FULL",
        cache_size: int = 1024,
    ) -> None:
        if str(path) in ("", ":memory:") or str(path).startswith("file:"):
            raise ValueError(
                "SQLiteStore needs a file path (each connection must see the "
                "same database); use MemoryStore for an in-memory store"
            )
        if synchronous not in ("FULL", "NORMAL", "EXTRA"):
            raise ValueError(
                f"synchronous must be FULL, NORMAL or EXTRA, got {synchronous!r}"
            )
        if not isinstance(timeout, (int, float)) or timeout < 0:
            raise ValueError(
                f"timeout must be a number of seconds >= 0, got {timeout!r}"
            )
        if (
            not isinstance(cache_size, int)
            or isinstance(cache_size, bool)
            or cache_size < 0
        ):
            raise ValueError(f"cache_size must be an int >= 0, got {cache_size!r}")
        self.path = os.fspath(path)
        self.timeout = float(timeout)
        self.synchronous = synchronous
        self.cache_size = cache_size
        self._setup()

    def _setup(self) -> None:
        self._local = threading.local()
        self._lock = threading.Lock()
        self._connections: list[tuple[int, sqlite3.Connection]] = []
        # Connections inherited through fork: kept referenced and never
        # closed here, as closing them could disturb the parent's database.
        self._inherited: list[sqlite3.Connection] = []
        self._closed = False
        self._cache = _RecordCache(self.cache_size, os.getpid())

    def __getstate__(self) -> dict[str, Any]:
        return {
            "path": self.path,
            "timeout": self.timeout,
            "synchronous": self.synchronous,
            "cache_size": self.cache_size,
        }

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.path = state["path"]
        self.timeout = state["timeout"]
        self.synchronous = state["synchronous"]
        self.cache_size = state.get("cache_size", 1024)
        self._setup()

    def __repr__(self) -> str:
        return f"SQLiteStore({self.path!r})"

    def __enter__(self) -> SQLiteStore:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def close(self) -> None:
        """Close this process's connections. The store can't be used after."""
        pid = os.getpid()
        with self._lock:
            self._closed = True
            mine = [c for p, c in self._connections if p == pid]
            self._connections = [(p, c) for p, c in self._connections if p != pid]
        for conn in mine:
            conn.close()

    # -- connections --

    def _conn(self) -> sqlite3.Connection:
        if self._closed:
            raise RuntimeError(f"{self!r} is closed")
        pid = os.getpid()
        held: tuple[int, sqlite3.Connection] | None = getattr(self._local, "conn", None)
        if held is not None and held[0] == pid:
            return held[1]
        if held is not None:
            self._inherited.append(held[1])
        conn = sqlite3.connect(
            self.path,
            timeout=self.timeout,
            isolation_level=None,
            check_same_thread=False,
        )
        try:
            conn.execute(f"PRAGMA busy_timeout = {int(self.timeout * 1000)}")
            conn.execute(f"PRAGMA synchronous = {self.synchronous}")
            self._enable_wal(conn)
            self._create_schema(conn)
        except BaseException:
            conn.close()
            raise
        self._local.conn = (pid, conn)
        with self._lock:
            self._connections.append((pid, conn))
        return conn

    def _records(self) -> _RecordCache:
        """This process's record cache (a forked child starts its own, so it
        never waits on a lock held by a thread of the parent)."""
        cache = self._cache
        if cache.pid != os.getpid():
            cache = self._cache = _RecordCache(self.cache_size, os.getpid())
        return cache

    def _enable_wal(self, conn: sqlite3.Connection) -> None:
        # Switching a new file to WAL ignores the busy timeout when another
        # connection is doing the same: retry until the timeout.
        deadline = time.monotonic() + self.timeout
        while True:
            try:
                mode = conn.execute("PRAGMA journal_mode = WAL").fetchone()[0]
                break
            except sqlite3.OperationalError as e:
                if "locked" not in str(e) or time.monotonic() > deadline:
                    raise
                time.sleep(0.005)
        if str(mode).lower() != "wal":
            raise sqlite3.OperationalError(f"could not enable WAL (got {mode!r})")

    def _create_schema(self, conn: sqlite3.Connection) -> None:
        found = conn.execute("PRAGMA user_version").fetchone()[0]
        if found == _SCHEMA_VERSION:
            return
        if found > _SCHEMA_VERSION:
            raise RecordError(
                "schema",
                f"{self.path} was written by a newer optin_core (store schema "
                f"{found}; this one knows {_SCHEMA_VERSION}); upgrade the library",
            )
        conn.execute("BEGIN IMMEDIATE")
        try:
            for statement in _SCHEMA.split(";"):
                if statement.strip():
                    conn.execute(statement)
            conn.execute(f"PRAGMA user_version = {_SCHEMA_VERSION}")
            conn.execute("COMMIT")
        except BaseException:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            raise

    # -- the protocol --

    def get(self, contact: str) -> Consent | None:
        conn = self._conn()
        cache = self._records()
        cached = cache.get(contact)
        # The data comes back only when the version is not the cached one.
        row = conn.execute(
            _GET,
            {"cached": -1 if cached is None else cached.version, "contact": contact},
        ).fetchone()
        if row is None:
            if cached is not None:
                cache.drop(contact)
            return None
        version, data = row
        if data is None and cached is not None:
            return cached
        try:
            raw = json.loads(data)
        except (TypeError, ValueError) as e:
            raise RecordError(
                "record", f"stored data is not JSON ({e})", contact=contact
            ) from None
        try:
            record = Consent.from_dict(raw)
        except RecordError as e:
            if e.contact:
                raise
            raise RecordError(e.field, _reason(e), contact=contact) from None
        if record.version != version:
            raise RecordError(
                "version",
                f"the row says {version} but the record says {record.version}",
                contact=contact,
            )
        cache.add(record)
        return record

    def put(
        self,
        consent: Consent,
        *,
        expected_version: int,
        cancel_pending: Collection[MessageKind] = (),
        lease: tuple[datetime, datetime] | None = None,
    ) -> Outgoing | None:
        messages = [
            (version, position, message)
            for version, position, message in new_messages(consent, expected_version)
        ]
        added: list[list[Any]] = [
            [
                message.key,
                message.contact,
                version,
                position,
                message.kind.value,
                json.dumps(message.to_dict()),
                None,
                None,
            ]
            for version, position, message in messages
        ]
        kinds = sorted(k.value for k in _kinds(cancel_pending))
        leased = _lease(lease)
        # ASCII JSON: a contact's reply may hold lone surrogates or NULs, which
        # UTF-8 cannot carry but JSON escapes can, so every reply is storable.
        data = json.dumps(consent.to_dict(), separators=(",", ":"))
        contact = consent.contact
        conn = self._conn()
        conn.execute("BEGIN IMMEDIATE")
        try:
            if expected_version == 0:
                cursor = conn.execute(
                    "INSERT INTO consents (contact, version, state, data) "
                    "VALUES (?, ?, ?, ?) ON CONFLICT (contact) DO NOTHING",
                    (contact, consent.version, consent.state.value, data),
                )
            else:
                cursor = conn.execute(
                    "UPDATE consents SET version = ?, state = ?, data = ? "
                    "WHERE contact = ? AND version = ?",
                    (
                        consent.version,
                        consent.state.value,
                        data,
                        contact,
                        expected_version,
                    ),
                )
            if cursor.rowcount != 1:
                row = conn.execute(
                    "SELECT version FROM consents WHERE contact = ?", (contact,)
                ).fetchone()
                raise StaleVersion(
                    contact,
                    expected=expected_version,
                    found=None if row is None else row[0],
                )
            if kinds:
                marks = ", ".join("?" * len(kinds))
                conn.execute(
                    "UPDATE outbox SET status = 'cancelled' "
                    f"WHERE contact = ? AND status = 'pending' AND kind IN ({marks})",
                    (contact, *kinds),
                )
            claimed: Outgoing | None = None
            if (
                leased is not None
                and added
                and conn.execute(
                    _HELD, {"contact": contact, "now": leased.now.timestamp()}
                ).fetchone()
                is None
            ):
                # Nothing holds the contact's queue: its first new message is
                # the head, inserted already claimed (what claim would do).
                head = added[0]
                head[6], head[7] = leased.until.timestamp(), consent.version
                if conn.execute(_INSERT, head).rowcount == 1:
                    claimed = messages[0][2]
                added = added[1:]
                leased = None if claimed is not None else leased
            if added:
                conn.executemany(_INSERT, added)
            if leased is not None and claimed is None:
                claimed = self._claim_next(conn, contact, leased)
            conn.execute("COMMIT")
        except BaseException:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            raise
        self._records().add(consent)
        return claimed

    @staticmethod
    def _claim_next(
        conn: sqlite3.Connection,
        contact: str,
        lease: Lease,
        head: tuple[str, str] | None = None,
    ) -> Outgoing | None:
        """Claim ``contact``'s oldest pending message (``head``, ``(key,
        data)``, when the caller just read it) if :meth:`claim` allows it;
        the message, or ``None``."""
        if head is None:
            head = conn.execute(_HEAD, (contact,)).fetchone()
            if head is None:
                return None
        key, data = head
        args = {
            "key": key,
            "until": lease.until.timestamp(),
            "now": lease.now.timestamp(),
        }
        if conn.execute(_CLAIM, args).rowcount != 1:
            return None
        return _outgoing(contact, data)

    def pending(
        self, *, contact: str | None = None, limit: int | None = None
    ) -> list[Outgoing]:
        _check_limit(limit)
        sql = "SELECT contact, data FROM outbox WHERE status = 'pending'"
        args: list[Any] = []
        if contact is not None:
            sql += " AND contact = ?"
            args.append(contact)
        sql += " ORDER BY seq"
        if limit is not None:
            sql += " LIMIT ?"
            args.append(limit)
        rows = self._conn().execute(sql, args).fetchall()
        return [_outgoing(who, data) for who, data in rows]

    def claim(self, key: str, *, until: datetime, now: datetime) -> bool:
        cursor = self._conn().execute(
            _CLAIM,
            {"key": key, "until": _ts(until, "until"), "now": _ts(now, "now")},
        )
        return cursor.rowcount == 1

    def release(self, key: str) -> None:
        self._conn().execute(
            "UPDATE outbox SET leased_until = NULL WHERE key = ? AND status != 'sent'",
            (key,),
        )

    def mark_sent(
        self, key: str, *, lease: tuple[datetime, datetime] | None = None
    ) -> Outgoing | None:
        leased = _lease(lease)
        conn = self._conn()
        if leased is None:
            conn.execute(_MARK_SENT, (key,))
            return None
        row = conn.execute(_NEXT, {"key": key}).fetchone()
        if row is None:
            # The usual case, the contact's last message: one statement, then
            # a look for a message added since (its writer could not claim
            # it while this one was being sent, and left it to this caller).
            conn.execute(_MARK_SENT, (key,))
            row = conn.execute(_NEXT, {"key": key}).fetchone()
            if row is None:
                return None
            return self._claim_next(conn, row[0], leased, row[1:])
        # A next message: mark and claim in one transaction (one commit).
        conn.execute("BEGIN IMMEDIATE")
        try:
            conn.execute(_MARK_SENT, (key,))
            claimed = self._claim_next(conn, row[0], leased)
            conn.execute("COMMIT")
        except BaseException:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            raise
        return claimed

    # -- inspection --

    def message_status(self, key: str) -> MessageStatus | None:
        """``"pending"``, ``"sent"`` or ``"cancelled"``; ``None`` if unknown."""
        row = (
            self._conn()
            .execute("SELECT status FROM outbox WHERE key = ?", (key,))
            .fetchone()
        )
        return None if row is None else cast(MessageStatus, row[0])

    def claimed_version(self, key: str) -> int | None:
        """The record version stored when ``key`` was last claimed: proof that
        a message went out before a later event (a stop) was recorded."""
        row = (
            self._conn()
            .execute("SELECT claimed_version FROM outbox WHERE key = ?", (key,))
            .fetchone()
        )
        return None if row is None else cast(int | None, row[0])

    def contacts(self) -> list[str]:
        """Every contact with a stored record."""
        rows = self._conn().execute("SELECT contact FROM consents ORDER BY contact")
        return [row[0] for row in rows]


def _reason(e: RecordError) -> str:
    text = str(e)
    start = text.find(": ") + 2
    end = text.rfind("; restore it")
    return text[start:end] if end > start else text


def _outgoing(contact: str, data: str) -> Outgoing:
    try:
        return Outgoing.from_dict(json.loads(data))
    except (TypeError, ValueError) as e:
        if isinstance(e, RecordError):
            raise RecordError(e.field, _reason(e), contact=contact) from None
        raise RecordError(
            "outgoing", f"stored message is not JSON ({e})", contact=contact
        ) from None
