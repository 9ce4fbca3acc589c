"""``SQLiteStore``: the embedded default, one file, stdlib ``sqlite3``."""

from __future__ import annotations

import json
import logging
import os
import secrets
import sqlite3
import sys
import threading
import time
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any, Literal, cast

from .._erase import Erasure
from .._errors import DuplicateMessage, RecordError, StaleVersion
from .._log import check_extension, read_schema1
from .._records import AuditEvent, Consent, Outgoing
from ._base import (
    DeliveryStatus,
    Lease,
    MessageRecord,
    MessageStatus,
    Write,
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
from ._cache import HeadCache
from ._rows import (
    decode_erasure,
    decode_event,
    decode_head,
    decode_outgoing,
    encode,
)

__all__ = ["SQLiteStore"]

_log = logging.getLogger("optin_core")

#: The store schema this module writes (``PRAGMA user_version``); 1 is the
#: 0.1.0 schema (whole records as JSON), migrated on open.
STORE_SCHEMA = 2

with open(
    os.path.join(os.path.dirname(os.path.abspath(__file__)), "schema.sql"),
    encoding="utf-8",
) as _f:
    _SCHEMA = _f.read()

#: The polling of :meth:`SQLiteStore._lock_database`: the first pause, doubled up to
#: the last (a commit with its fsync takes about a millisecond).
_FIRST_PAUSE = 0.0002
_LAST_PAUSE = 0.0005


if sys.platform != "win32":
    import fcntl

    def _flock(fd: int) -> None:
        fcntl.flock(fd, fcntl.LOCK_EX)

    def _funlock(fd: int) -> None:
        fcntl.flock(fd, fcntl.LOCK_UN)

else:  # pragma: no cover - no flock: SQLite's lock and the polling alone

    def _flock(fd: int) -> None:
        return None

    def _funlock(fd: int) -> None:
        return None


class _WriterQueue:
    """The turn of this process's writers of one database file.

    Threads take turns on a re-entrant lock (with the store's timeout);
    the thread holding it holds, once, an ``flock`` on ``<path>-writer``
    that processes take turns on: the kernel wakes the next writer as soon
    as the holder commits, and releases the lock of a killed process. A
    thread already holding the turn (two stores of one file used in one
    thread) enters again without a second ``flock``, and meets SQLite's own
    lock, which times out, rather than waiting on itself for ever.
    """

    def __init__(self, path: str) -> None:
        self.path = path
        self.lock = threading.RLock()
        self.depth = 0
        self.fd: int | None = None

    def enter(self, timeout: float) -> None:
        if not self.lock.acquire(timeout=timeout):
            raise sqlite3.OperationalError("database is locked (writer queue)")
        try:
            if self.depth == 0:
                if self.fd is None:
                    self.fd = os.open(
                        self.path,
                        os.O_RDWR | os.O_CREAT | getattr(os, "O_CLOEXEC", 0),
                        0o600,
                    )
                _flock(self.fd)
            self.depth += 1
        except BaseException:
            self.lock.release()
            raise

    def leave(self) -> None:
        self.depth -= 1
        try:
            if self.depth == 0 and self.fd is not None:
                _funlock(self.fd)
        finally:
            self.lock.release()


#: ``(process, writer file) -> queue``: one per file in each process, shared
#: by every store object on it (a forked child makes its own).
_QUEUES: dict[tuple[int, str], _WriterQueue] = {}
_QUEUES_LOCK = threading.Lock()


def _writer_queue(path: str) -> _WriterQueue:
    key = (os.getpid(), path)
    queue = _QUEUES.get(key)
    if queue is None:
        with _QUEUES_LOCK:
            queue = _QUEUES.setdefault(key, _WriterQueue(path))
    return queue


def _is_busy(error: sqlite3.OperationalError) -> bool:
    text = str(error)
    return "locked" in text or "busy" in text


#: The head row, its data only when it is not the cached head, and the
#: version and digest of the log's last event (which the head's must equal:
#: a head rolled back to an earlier one of its log is refused too).
_GET = """
SELECT c.version, c.digest,
       CASE WHEN c.version = :version AND c.digest = :digest THEN NULL
            ELSE c.data END,
       e.version, e.digest
FROM consents AS c
LEFT JOIN events AS e ON e.contact = c.contact
     AND e.version = (SELECT max(version) FROM events WHERE contact = c.contact)
WHERE c.contact = :contact
"""

#: Whether an earlier open message ``o`` holds back the row ``outbox``: it is
#: being sent, or it is pending and the row is not a stop confirmation (a
#: stop confirmation skips messages waiting for a retry, never the others).
_HOLDS = """
o.contact = outbox.contact
AND o.open = 1
AND o.seq < outbox.seq
AND (o.leased_until > :now
     OR (o.status = 'pending'
         AND (outbox.kind != 'stop_confirmation'
              OR o.next_attempt_at IS NULL
              OR o.next_attempt_at <= :now)))
"""

#: The rows ``claim`` may lease at :now.
_CLAIMABLE = f"""
outbox.status = 'pending'
AND outbox.open = 1
AND (outbox.leased_until IS NULL OR outbox.leased_until <= :now)
AND (outbox.next_attempt_at IS NULL OR outbox.next_attempt_at <= :now)
AND NOT EXISTS (SELECT 1 FROM outbox AS o WHERE {_HOLDS})
"""

_CLAIM = f"""
UPDATE outbox
SET leased_until = :until,
    claimed_version = (SELECT c.version FROM consents AS c
                       WHERE c.contact = outbox.contact)
WHERE key = :key AND {_CLAIMABLE}
"""

_DUE = f"""
SELECT outbox.key, outbox.contact, outbox.data FROM outbox
WHERE {_CLAIMABLE}
ORDER BY outbox.seq
"""

_MARK_SENT = (
    "UPDATE outbox SET status = 'sent', leased_until = NULL, open = 0, "
    "provider_id = coalesce(:provider_id, provider_id), sent_at = :at "
    "WHERE key = :key AND status != 'sent'"
)

_RELEASE = """
UPDATE outbox SET leased_until = NULL,
                  attempts = attempts + 1,
                  last_error = :error,
                  next_attempt_at = :retry_at,
                  open = CASE status WHEN 'pending' THEN open ELSE 0 END
WHERE key = :key AND status != 'sent'
"""

#: The contact's pending messages, in order: the head first, then the rest
#: (of which only a stop confirmation can be claimed past a waiting head).
_CANDIDATES = """
SELECT key, data, kind FROM outbox INDEXED BY outbox_open
WHERE contact = ? AND open = 1 AND status = 'pending' ORDER BY seq
"""

#: Whether the contact has an open message (pending, or leased): when it
#: has none, a new message heads its queue and is claimable at once.
#: (``INDEXED BY``: without statistics the planner prefers
#: ``outbox_contact``, which walks every message the contact ever had.)
_OPEN = "SELECT 1 FROM outbox INDEXED BY outbox_open WHERE contact = ? AND open = 1"

_RECORD = """
SELECT key, contact, data, status, attempts, last_error, next_attempt_at,
       provider_id, sent_at, delivery, delivery_at, error_code
FROM outbox
"""

#: The oldest pending message of the contact of :key, other than :key.
_NEXT = """
SELECT contact, key, data FROM outbox INDEXED BY outbox_open
WHERE contact = (SELECT contact FROM outbox WHERE key = :key)
  AND open = 1 AND status = 'pending' AND key != :key
ORDER BY seq LIMIT 1
"""

_INSERT = (
    "INSERT INTO outbox "
    "(key, contact, version, position, kind, data, leased_until, claimed_version) "
    "VALUES (?, ?, ?, ?, ?, ?, ?, ?)"
)

_INSERT_EVENT = (
    "INSERT INTO events (contact, version, message_id, digest, data) "
    "VALUES (?, ?, ?, ?, ?)"
)


class SQLiteStore:
    """The embedded default :class:`~optin_core.Store`: one SQLite file.

    * WAL journal, a ``busy_timeout`` (``timeout`` seconds), and writes that
      take the write lock up front (``BEGIN IMMEDIATE``), so several threads
      and processes on one machine can share the file;
    * three tables (``schema.sql`` beside this module): ``consents``, one
      bounded head per contact, replaced by compare-and-set on version *and*
      digest; ``events``, the append-only log with a unique
      ``(contact, message_id)`` index; ``outbox``. An operation's cost does
      not depend on how long the contact's log is;
    * :meth:`get` also reads the digest of the log's last event, which must
      be the head's (a head or log edited by hand is a
      :class:`~optin_core.RecordError` naming the contact); :meth:`log`
      reads the log;
    * one connection per thread and process, opened lazily: a store object
      survives ``fork`` (the child opens its own connections and never
      touches the parent's) and pickles to its path for ``spawn``;
    * ``put`` with a ``lease`` inserts the contact's first new message
      already claimed when nothing holds its queue, so a service operation
      commits twice (the head and log with its message claimed, then
      "sent") and fsyncs once: the "sent" commit skips its fsync (see
      :meth:`mark_sent`); the next durable commit carries it to disk.

    ``synchronous`` is SQLite's durability setting: ``"FULL"`` (default)
    survives power loss; ``"NORMAL"`` survives a crash of the process and is
    faster. The schema is created on first use; a 0.1.0 database (store
    schema 1) is migrated on open, in one transaction: every record's
    history is chained and verified into a log, and its head checked.

    ``cache_size`` bounds a per-process LRU cache of heads (``0``: none),
    served only when the row still names the cached version and digest.

    .. versionadded:: 0.1.0
    """

    #: The sent mark commits at ``synchronous=NORMAL`` (no fsync of its
    #: own), and a message that heads an empty queue is inserted claimed.
    #: ``False``: the 0.2.0 protocol (the mark fsynced, the claim a second
    #: statement), which only ``bench/cases.py`` sets, as its reference.
    _one_fsync = True

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
        self._writer_path = os.path.abspath(self.path) + "-writer"
        # Connections inherited through fork: kept referenced and never
        # closed here, as closing them could disturb the parent's database.
        self._inherited: list[sqlite3.Connection] = []
        self._closed = False
        self._cache = HeadCache(self.cache_size, os.getpid())
        self._namespace: str | None = None

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
            # Deleted rows are overwritten with zeros, so an erased contact's
            # id leaves no trace in free pages (see erase()).
            conn.execute("PRAGMA secure_delete = ON")
            self._enable_wal(conn)
            self._create_schema(conn)
        except BaseException:
            conn.close()
            raise
        self._local.conn = (pid, conn)
        with self._lock:
            self._connections.append((pid, conn))
        return conn

    def _heads(self) -> HeadCache:
        """This process's head cache (a forked child starts its own, so it
        never waits on a lock held by a thread of the parent)."""
        cache = self._cache
        if cache.pid != os.getpid():
            cache = self._cache = HeadCache(self.cache_size, os.getpid())
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
        if found == STORE_SCHEMA:
            return
        if found > STORE_SCHEMA:
            raise RecordError(
                "schema",
                f"{self.path} was written by a newer optin_core (store schema "
                f"{found}; this one knows {STORE_SCHEMA}); upgrade the library",
            )
        conn.execute("BEGIN IMMEDIATE")
        try:
            # Another connection may have done it while this one waited.
            found = conn.execute("PRAGMA user_version").fetchone()[0]
            if found == 1:
                _migrate_from_1(conn)
            elif found == 0:
                _run_script(conn, _SCHEMA)
            conn.execute(f"PRAGMA user_version = {STORE_SCHEMA}")
            self._end(conn, "COMMIT")
        except BaseException:
            self._abort(conn)
            raise

    def _transaction(self) -> sqlite3.Connection:
        conn = self._conn()
        self._begin(conn)
        return conn

    def _begin(self, conn: sqlite3.Connection) -> None:
        """``BEGIN IMMEDIATE``, the writers of this file taking turns.

        SQLite's own busy handler sleeps 1, 2, 5, 10, 15, 20, 25... ms
        between tries: with several processes writing, a writer that misses
        the lock a few times sleeps some 80 ms while each holder keeps it
        about a millisecond (the p99 of several workers). So the store's
        writers first queue on an OS file lock (``flock`` on
        ``<path>-writer``), which wakes the next one as soon as the holder
        commits, and a process killed mid-transaction releases. Then the
        SQLite lock is taken by polling at a fraction of a commit, up to the
        store's ``timeout``, in case another program writes the file.
        :meth:`_end` commits or rolls back and leaves the queue.
        """
        queue = _writer_queue(self._writer_path)
        queue.enter(self.timeout)
        self._local.queued = queue
        try:
            self._lock_database(conn)
        except BaseException:
            self._leave_queue()
            raise

    def _end(self, conn: sqlite3.Connection, statement: str) -> None:
        """``COMMIT`` or ``ROLLBACK``, and leave the writers' queue."""
        try:
            conn.execute(statement)
        finally:
            self._leave_queue()

    def _abort(self, conn: sqlite3.Connection) -> None:
        """Roll back what is left of a failed transaction (SQLite may have
        rolled it back already), and leave the writers' queue whatever
        happened: a writer that fails must never hold the others up."""
        try:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
        finally:
            self._leave_queue()

    def _leave_queue(self) -> None:
        queue: _WriterQueue | None = getattr(self._local, "queued", None)
        if queue is not None:
            self._local.queued = None
            queue.leave()

    def _lock_database(self, conn: sqlite3.Connection) -> None:
        conn.execute("PRAGMA busy_timeout = 0")
        try:
            deadline = 0.0
            pause = _FIRST_PAUSE
            while True:
                try:
                    conn.execute("BEGIN IMMEDIATE")
                    return
                except sqlite3.OperationalError as e:
                    if not _is_busy(e):
                        raise
                    now = time.monotonic()
                    if not deadline:
                        deadline = now + self.timeout
                    elif now >= deadline:
                        raise
                time.sleep(pause)
                pause = min(pause * 2, _LAST_PAUSE)
        finally:
            conn.execute(f"PRAGMA busy_timeout = {int(self.timeout * 1000)}")

    # -- the protocol --

    def namespace(self) -> str:
        if self._namespace is None:
            conn = self._transaction()
            try:
                conn.execute(
                    "INSERT OR IGNORE INTO meta (name, value) VALUES ('namespace', ?)",
                    (secrets.token_hex(16),),
                )
                (value,) = conn.execute(
                    "SELECT value FROM meta WHERE name = 'namespace'"
                ).fetchone()
                self._end(conn, "COMMIT")
            except BaseException:
                self._abort(conn)
                raise
            self._namespace = str(value)
        return self._namespace

    def get(self, contact: str) -> Consent | None:
        conn = self._conn()
        cache = self._heads()
        cached = cache.get(contact)
        row = conn.execute(
            _GET,
            {
                "version": -1 if cached is None else cached.version,
                "digest": "" if cached is None else cached.digest,
                "contact": contact,
            },
        ).fetchone()
        if row is None:
            if cached is not None:
                cache.drop(contact)
            return None
        version, digest, data, last_version, last = row
        if last != digest or last_version != version:
            raise RecordError(
                "digest",
                "the head does not match its log's last event (a table edited "
                "by hand, or a truncated log)",
                contact=contact,
            )
        if data is None and cached is not None:
            return cached
        head = decode_head(contact, data, version, digest)
        cache.add(head)
        return head

    def log(self, contact: str, *, after: int = 0) -> list[AuditEvent]:
        check_after(after)
        rows = self._conn().execute(
            "SELECT data FROM events WHERE contact = ? AND version > ? "
            "ORDER BY version",
            (contact, after),
        )
        return [decode_event(contact, data, i) for i, (data,) in enumerate(rows)]

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
        # The head the events extend: checked before taking the write lock
        # when this process knows it (the row must still name it: the CAS
        # below), else read under the lock.
        cached = self._heads().get(contact)
        known: Consent | None = None
        if expected_version == 0:
            known = Consent(contact=contact)
        elif (
            cached is not None
            and cached.version == expected_version
            and cached.digest == write.prev
        ):
            known = cached
        if known is not None:
            if known.digest != write.prev:
                raise stale_fork(contact, expected_version)
            check_extension(known, consent, events)
        outbox = [
            [
                message.key,
                contact,
                version,
                position,
                message.kind.value,
                encode(message),
                None,
                None,
            ]
            for version, position, message in write.messages
        ]
        logged = [
            (contact, e.version, e.message_id, e.digest, encode(e)) for e in events
        ]
        head_data = encode(consent)
        conn = self._transaction()
        try:
            if known is None:
                self._check_stored(conn, consent, events, write, expected_version)
            self._save_head(conn, consent, head_data, expected_version, write.prev)
            try:
                conn.executemany(_INSERT_EVENT, logged)
            except sqlite3.IntegrityError:
                raise self._duplicate(conn, contact, write, expected_version) from None
            if write.cancelled or write.stops:
                self._cancel(conn, contact, write, expected_version)
            if write.closed:
                self._close(conn, contact, write, expected_version)
            try:
                claimed = self._index(conn, consent, outbox, write, leased)
            except sqlite3.IntegrityError:
                raise reused_key(contact) from None
            self._end(conn, "COMMIT")
        except BaseException:
            self._abort(conn)
            raise
        self._heads().add(consent)
        return claimed

    def _check_stored(
        self,
        conn: sqlite3.Connection,
        consent: Consent,
        events: Sequence[AuditEvent],
        write: Write,
        expected_version: int,
    ) -> None:
        """Read the stored head under the write lock and check the events
        extend it (the path of a head this process has not cached)."""
        contact = consent.contact
        row = conn.execute(
            "SELECT version, digest, data FROM consents WHERE contact = ?", (contact,)
        ).fetchone()
        if row is None or row[0] != expected_version:
            raise StaleVersion(
                contact,
                expected=expected_version,
                found=None if row is None else row[0],
            )
        if row[1] != write.prev:
            raise stale_fork(contact, expected_version)
        stored = decode_head(contact, row[2], row[0], row[1])
        check_extension(stored, consent, events)

    @staticmethod
    def _save_head(
        conn: sqlite3.Connection,
        consent: Consent,
        data: str,
        expected_version: int,
        prev: str,
    ) -> None:
        contact = consent.contact
        if expected_version == 0:
            cursor = conn.execute(
                "INSERT INTO consents (contact, version, state, digest, data) "
                "VALUES (?, ?, ?, ?, ?) ON CONFLICT (contact) DO NOTHING",
                (contact, consent.version, consent.state.value, consent.digest, data),
            )
        else:
            cursor = conn.execute(
                "UPDATE consents SET version = ?, state = ?, digest = ?, data = ? "
                "WHERE contact = ? AND version = ? AND digest = ?",
                (
                    consent.version,
                    consent.state.value,
                    consent.digest,
                    data,
                    contact,
                    expected_version,
                    prev,
                ),
            )
        if cursor.rowcount == 1:
            return
        row = conn.execute(
            "SELECT version FROM consents WHERE contact = ?", (contact,)
        ).fetchone()
        if row is not None and row[0] == expected_version:
            raise stale_fork(contact, expected_version)
        raise StaleVersion(
            contact, expected=expected_version, found=None if row is None else row[0]
        )

    @staticmethod
    def _duplicate(
        conn: sqlite3.Connection, contact: str, write: Write, expected_version: int
    ) -> Exception:
        """Why the log refused an event row: a message id logged before."""
        for message_id in write.message_ids:
            if conn.execute(
                "SELECT 1 FROM events WHERE contact = ? AND message_id = ? "
                "AND version <= ?",
                (contact, message_id, expected_version),
            ).fetchone():
                return DuplicateMessage(contact, message_id)
        return StaleVersion(  # pragma: no cover - the head's CAS comes first
            contact, expected=expected_version, found=None, why="the log moved on"
        )

    @staticmethod
    def _cancel(
        conn: sqlite3.Connection, contact: str, write: Write, expected_version: int
    ) -> None:
        """Cancel exactly the messages the write's ``cancel`` events list."""
        cancelled = set(write.cancelled)
        kinds = sorted(k.value for k in write.withdraws)
        for key in write.cancelled:
            row = conn.execute(
                "SELECT contact, status, kind FROM outbox WHERE key = ?", (key,)
            ).fetchone()
            if (
                row is None
                or row[0] != contact
                or row[1] != "pending"
                or row[2] not in kinds
            ):
                raise cancellation_refused(
                    contact,
                    key,
                    sent=row is not None
                    and row[0] == contact
                    and row[1] == "sent"
                    and row[2] in kinds,
                    version=expected_version,
                )
            conn.execute(
                "UPDATE outbox SET status = 'cancelled', "
                "open = CASE WHEN leased_until IS NULL THEN 0 ELSE 1 END "
                "WHERE key = ?",
                (key,),
            )
        if kinds:
            marks = ", ".join("?" * len(kinds))
            for (key,) in conn.execute(
                "SELECT key FROM outbox WHERE contact = ? AND open = 1 "
                f"AND status = 'pending' AND kind IN ({marks})",
                (contact, *kinds),
            ).fetchall():
                if key not in cancelled:
                    raise uncancelled(contact, key)

    @staticmethod
    def _close(
        conn: sqlite3.Connection, contact: str, write: Write, expected_version: int
    ) -> None:
        """Close the messages the write gives up (expired, dead letters)."""
        for key, status in write.closed:
            row = conn.execute(
                "SELECT contact, status FROM outbox WHERE key = ?", (key,)
            ).fetchone()
            if row is None or row[0] != contact or row[1] != "pending":
                raise cancellation_refused(
                    contact,
                    key,
                    sent=row is not None and row[0] == contact and row[1] == "sent",
                    version=expected_version,
                )
            conn.execute(
                "UPDATE outbox SET status = ?, open = 0, leased_until = NULL "
                "WHERE key = ?",
                (status, key),
            )

    def _index(
        self,
        conn: sqlite3.Connection,
        consent: Consent,
        outbox: list[list[Any]],
        write: Write,
        leased: Lease | None,
    ) -> Outgoing | None:
        """Add the write's messages as pending; with a lease, claim the
        contact's next claimable message in the same transaction.

        The common path: nothing of the contact's is open (its last message
        was sent), so the write's first message heads the queue and is
        inserted already claimed, as :meth:`_claim_next` would claim it,
        without reading it back."""
        if (
            leased is not None
            and outbox
            and self._one_fsync
            and conn.execute(_OPEN, (consent.contact,)).fetchone() is None
        ):
            first = outbox[0]
            first[6] = leased.until.timestamp()
            first[7] = consent.version
            conn.executemany(_INSERT, outbox)
            return write.messages[0][2]
        if outbox:
            conn.executemany(_INSERT, outbox)
        if leased is None:
            return None
        return self._claim_next(conn, consent.contact, leased)

    def _claim_next(
        self, conn: sqlite3.Connection, contact: str, lease: Lease
    ) -> Outgoing | None:
        """Claim ``contact``'s next claimable message, if :meth:`claim`
        allows one; the message, or ``None``. A row that cannot be read
        back is quarantined and the next one tried."""
        args = {"until": lease.until.timestamp(), "now": lease.now.timestamp()}
        first = True
        for key, data, kind in conn.execute(_CANDIDATES, (contact,)).fetchall():
            # Past the head, only a stop confirmation can be claimed.
            if not first and kind != "stop_confirmation":
                continue
            head, first = first, False
            if conn.execute(_CLAIM, {**args, "key": key}).rowcount != 1:
                continue
            message = self._readable(conn, key, contact, data)
            if message is not None:
                return message
            # A quarantined head no longer holds up the queue: the next
            # message heads it.
            first = head
        return None

    @staticmethod
    def _readable(
        conn: sqlite3.Connection, key: str, contact: str, data: object
    ) -> Outgoing | None:
        """The message of an outbox row, or ``None`` after quarantining a
        row that cannot be read back (it would block its contact forever)."""
        try:
            return decode_outgoing(contact, data)
        except RecordError as error:
            conn.execute(
                "UPDATE outbox SET status = 'quarantined', open = 0, "
                "leased_until = NULL, last_error = ? WHERE key = ?",
                (error.problem, key),
            )
            _log.warning(
                "outbox message %s of a contact is unreadable and was quarantined: %s",
                key,
                error.problem,
            )
            return None

    def pending(
        self, *, contact: str | None = None, limit: int | None = None
    ) -> list[Outgoing]:
        check_limit(limit)
        sql = "SELECT contact, data FROM outbox WHERE status = 'pending'"
        args: list[Any] = []
        if contact is not None:
            sql += " AND contact = ? AND open = 1"
            args.append(contact)
        sql += " ORDER BY seq"
        if limit is not None:
            sql += " LIMIT ?"
            args.append(limit)
        rows = self._conn().execute(sql, args).fetchall()
        return [decode_outgoing(who, data) for who, data in rows]

    def due(self, *, now: datetime, limit: int | None = None) -> list[Outgoing]:
        check_limit(limit)
        if limit == 0:
            return []
        conn = self._conn()
        found: list[Outgoing] = []
        seen: set[str] = set()
        rows = conn.execute(_DUE, {"now": timestamp(now, "now")}).fetchall()
        for key, contact, data in rows:
            if contact in seen:
                continue
            message = self._readable(conn, key, contact, data)
            if message is None:
                continue
            seen.add(contact)
            found.append(message)
            if limit is not None and len(found) >= limit:
                break
        return found

    def claim(self, key: str, *, until: datetime, now: datetime) -> bool:
        cursor = self._conn().execute(
            _CLAIM,
            {
                "key": key,
                "until": timestamp(until, "until"),
                "now": timestamp(now, "now"),
            },
        )
        return cursor.rowcount == 1

    def release(
        self,
        key: str,
        *,
        error: str | None = None,
        now: datetime | None = None,
        backoff: timedelta | None = None,
    ) -> int:
        retry_time(now, backoff, 1)  # the arguments, checked before any write
        conn = self._transaction()
        try:
            row = conn.execute(
                "SELECT attempts FROM outbox WHERE key = ? AND status != 'sent'",
                (key,),
            ).fetchone()
            attempts = 0 if row is None else int(row[0]) + 1
            if row is not None:
                retry = retry_time(now, backoff, attempts)
                conn.execute(
                    _RELEASE,
                    {
                        "key": key,
                        "error": error,
                        "retry_at": None if retry is None else retry.timestamp(),
                    },
                )
            self._end(conn, "COMMIT")
        except BaseException:
            self._abort(conn)
            raise
        return attempts

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
        mark = {
            "key": key,
            "provider_id": provider_id or None,
            "at": None if at is None else timestamp(at, "at"),
        }
        # One transaction: the mark, and the claim of a message queued
        # behind this one (its writer could not claim it while this one was
        # being sent, and left it to this caller). Committed without an
        # fsync of its own (WAL with synchronous=NORMAL for this commit): a
        # crash of the process never loses it, and the next durable commit
        # (the next put) carries it to disk; only a power cut in between can
        # lose the mark, and then the message is sent again under the same
        # idempotency key, the window the keys exist for. One fsync per
        # operation instead of two.
        conn = self._conn()
        light = self._one_fsync and self.synchronous != "NORMAL"
        if light:
            conn.execute("PRAGMA synchronous = NORMAL")
        try:
            self._begin(conn)
            try:
                conn.execute(_MARK_SENT, mark)
                claimed = None
                if leased is not None:
                    row = conn.execute(_NEXT, {"key": key}).fetchone()
                    if row is not None:
                        claimed = self._claim_next(conn, row[0], leased)
                self._end(conn, "COMMIT")
            except BaseException:
                self._abort(conn)
                raise
        finally:
            if light:
                conn.execute(f"PRAGMA synchronous = {self.synchronous}")
        return claimed

    def delivery(
        self,
        key_or_provider_id: str,
        status: DeliveryStatus,
        *,
        at: datetime,
        error_code: str | None = None,
    ) -> Outgoing | None:
        checked = check_delivery(status)
        # The host's arguments are checked whether or not the message is
        # known, so a bad call fails the same way every time.
        when = timestamp(at, "at")
        conn = self._conn()
        row = conn.execute(
            "SELECT key, contact, data FROM outbox WHERE key = ? "
            "UNION ALL SELECT key, contact, data FROM outbox WHERE provider_id = ? "
            "LIMIT 1",
            (key_or_provider_id, key_or_provider_id),
        ).fetchone()
        if row is None:
            return None
        message = decode_outgoing(row[1], row[2])
        conn.execute(
            "UPDATE outbox SET delivery = ?, delivery_at = ?, error_code = ? "
            "WHERE key = ?",
            (
                checked,
                when,
                None if error_code is None else str(error_code),
                row[0],
            ),
        )
        return message

    def messages(self, contact: str) -> list[MessageRecord]:
        rows = self._conn().execute(
            _RECORD + " WHERE contact = ? ORDER BY seq", (contact,)
        )
        return [_record(row) for row in rows.fetchall()]

    def dead_letters(self, *, limit: int | None = None) -> list[MessageRecord]:
        check_limit(limit)
        sql = _RECORD + " WHERE status = 'failed' ORDER BY seq"
        args: tuple[Any, ...] = ()
        if limit is not None:
            sql += " LIMIT ?"
            args = (limit,)
        rows = self._conn().execute(sql, args)
        return [_record(row) for row in rows.fetchall()]

    # -- inspection --

    def message_status(self, key: str) -> MessageStatus | None:
        """The message's :data:`MessageStatus`; ``None`` if unknown."""
        row = (
            self._conn()
            .execute("SELECT status FROM outbox WHERE key = ?", (key,))
            .fetchone()
        )
        return None if row is None else cast(MessageStatus, row[0])

    def claimed_version(self, key: str) -> int | None:
        """The head version stored when ``key`` was last claimed: proof that
        a message went out before a later event (a stop) was recorded."""
        row = (
            self._conn()
            .execute("SELECT claimed_version FROM outbox WHERE key = ?", (key,))
            .fetchone()
        )
        return None if row is None else cast(int | None, row[0])

    def contacts(
        self, *, after: str | None = None, limit: int | None = None
    ) -> list[str]:
        """Contacts with a stored head, in code point order: those after
        ``after``, at most ``limit`` (every one by default). Keyset: each
        page is an index range scan, however far the listing has gone."""
        check_page(after, limit)
        rows = self._conn().execute(
            "SELECT contact FROM consents WHERE ? IS NULL OR contact > ? "
            "ORDER BY contact LIMIT ?",
            (after, after, -1 if limit is None else limit),
        )
        return [row[0] for row in rows]

    # -- compliance --

    def restore(
        self,
        consent: Consent,
        events: Sequence[AuditEvent],
        messages: Sequence[MessageRecord] = (),
    ) -> None:
        _write, rows = prepare_restore(consent, events, messages)
        contact = consent.contact
        conn = self._transaction()
        try:
            cursor = conn.execute(
                "INSERT INTO consents (contact, version, state, digest, data) "
                "VALUES (?, ?, ?, ?, ?) ON CONFLICT (contact) DO NOTHING",
                (
                    contact,
                    consent.version,
                    consent.state.value,
                    consent.digest,
                    encode(consent),
                ),
            )
            if cursor.rowcount != 1:
                (found,) = conn.execute(
                    "SELECT version FROM consents WHERE contact = ?", (contact,)
                ).fetchone()
                raise StaleVersion(contact, expected=0, found=found)
            conn.executemany(
                _INSERT_EVENT,
                [
                    (contact, e.version, e.message_id, e.digest, encode(e))
                    for e in events
                ],
            )
            try:
                conn.executemany(
                    _RESTORE_ROW,
                    [_restored(contact, v, p, record) for v, p, record in rows],
                )
            except sqlite3.IntegrityError:
                raise reused_key(contact) from None
            self._end(conn, "COMMIT")
        except BaseException:
            self._abort(conn)
            raise

    def erase(self, contact: str, erasure: Erasure, *, expected_version: int) -> None:
        """See :meth:`Store.erase`. Deleted rows are overwritten with zeros
        (``secure_delete``), and the WAL is checkpointed and truncated
        after the commit, so the contact id leaves the database file and
        its WAL (unless a reader still holds an older snapshot: then at
        the next checkpoint)."""
        digest = check_erasure(contact, erasure, expected_version)
        data = encode(erasure)
        conn = self._transaction()
        try:
            cursor = conn.execute(
                "DELETE FROM consents WHERE contact = ? AND version = ? AND digest = ?",
                (contact, expected_version, digest),
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
            conn.execute("DELETE FROM events WHERE contact = ?", (contact,))
            conn.execute("DELETE FROM outbox WHERE contact = ?", (contact,))
            conn.execute(
                "INSERT INTO erasures (key, erased_at, data) VALUES (?, ?, ?) "
                "ON CONFLICT (key) DO UPDATE SET erased_at = excluded.erased_at, "
                "data = excluded.data",
                (erasure.key, erasure.erased_at.timestamp(), data),
            )
            self._end(conn, "COMMIT")
        except BaseException:
            self._abort(conn)
            raise
        self._heads().drop(contact)
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchall()

    def suppress(self, erasure: Erasure) -> bool:
        data = encode(erasure)
        cursor = self._conn().execute(
            "INSERT INTO erasures (key, erased_at, data) VALUES (?, ?, ?) "
            "ON CONFLICT (key) DO NOTHING",
            (erasure.key, erasure.erased_at.timestamp(), data),
        )
        return cursor.rowcount == 1

    def erasure(self, key: str) -> Erasure | None:
        row = (
            self._conn()
            .execute("SELECT data FROM erasures WHERE key = ?", (key,))
            .fetchone()
        )
        return None if row is None else decode_erasure(key, row[0])

    def erasures(
        self, *, after: str | None = None, limit: int | None = None
    ) -> list[Erasure]:
        check_page(after, limit)
        rows = self._conn().execute(
            "SELECT key, data FROM erasures WHERE ? IS NULL OR key > ? "
            "ORDER BY key LIMIT ?",
            (after, after, -1 if limit is None else limit),
        )
        return [decode_erasure(key, data) for key, data in rows.fetchall()]

    def purge_delivered(self, older_than: datetime) -> int:
        cutoff = timestamp(older_than, "older_than")
        cursor = self._conn().execute(
            "DELETE FROM outbox WHERE status = 'sent' AND sent_at < ?", (cutoff,)
        )
        return cursor.rowcount


_RESTORE_ROW = """
INSERT INTO outbox (key, contact, version, position, kind, data, status, open,
                    attempts, last_error, next_attempt_at, provider_id, sent_at,
                    delivery, delivery_at, error_code)
VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
"""


def _stamp(value: datetime | None) -> float | None:
    return None if value is None else value.timestamp()


def _restored(
    contact: str, version: int, position: int, record: MessageRecord
) -> tuple[Any, ...]:
    """The outbox row of a restored message record."""
    message = record.message
    return (
        message.key,
        contact,
        version,
        position,
        message.kind.value,
        encode(message),
        record.status,
        1 if record.status == "pending" else 0,
        record.attempts,
        record.last_error,
        _stamp(record.next_attempt_at),
        record.provider_id,
        _stamp(record.sent_at),
        record.delivery,
        _stamp(record.delivery_at),
        record.error_code,
    )


def _when(value: float | None) -> datetime | None:
    return None if value is None else datetime.fromtimestamp(value, UTC)


def _record(row: tuple[Any, ...]) -> MessageRecord:
    _key, contact, data, status, attempts, error, retry, pid, sent, got, at, code = row
    return MessageRecord(
        message=decode_outgoing(contact, data),
        status=status,
        attempts=attempts,
        last_error=error,
        next_attempt_at=_when(retry),
        provider_id=pid,
        sent_at=_when(sent),
        delivery=got,
        delivery_at=_when(at),
        error_code=code,
    )


def _run_script(conn: sqlite3.Connection, script: str) -> None:
    """Run ``script``'s statements inside the caller's transaction
    (``executescript`` would commit it). Comments are whole lines."""
    code = "\n".join(
        line for line in script.splitlines() if not line.lstrip().startswith("--")
    )
    for statement in code.split(";"):
        if statement.strip():
            conn.execute(statement)


def _migrate_from_1(conn: sqlite3.Connection) -> None:
    """Store schema 1 (0.1.0: whole records as JSON) to 2, in the caller's
    transaction: every record's history is chained and verified into a log
    and its head checked; the outbox keeps its rows. A record that does not
    verify aborts the migration (the file stays at schema 1) with a
    :class:`~optin_core.RecordError` naming the contact."""
    conn.execute("ALTER TABLE consents RENAME TO consents_v1")
    conn.execute("ALTER TABLE outbox ADD COLUMN open INTEGER NOT NULL DEFAULT 1")
    for column in (
        "attempts INTEGER NOT NULL DEFAULT 0",
        "last_error TEXT",
        "next_attempt_at REAL",
        "provider_id TEXT",
        "sent_at REAL",
        "delivery TEXT",
        "delivery_at REAL",
        "error_code TEXT",
    ):
        conn.execute(f"ALTER TABLE outbox ADD COLUMN {column}")
    conn.execute(
        "UPDATE outbox SET open = 0 "
        "WHERE status = 'sent' OR (status = 'cancelled' AND leased_until IS NULL)"
    )
    _run_script(conn, _SCHEMA)
    rows = conn.execute("SELECT contact, data FROM consents_v1 ORDER BY contact")
    for contact, data in rows.fetchall():
        try:
            head, events = read_schema1(json.loads(data))
        except (TypeError, ValueError) as e:
            problem = e.problem if isinstance(e, RecordError) else str(e)
            field = e.field if isinstance(e, RecordError) else "record"
            raise RecordError(
                field, f"cannot migrate to store schema 2: {problem}", contact=contact
            ) from None
        conn.execute(
            "INSERT INTO consents (contact, version, state, digest, data) "
            "VALUES (?, ?, ?, ?, ?)",
            (contact, head.version, head.state.value, head.digest, encode(head)),
        )
        conn.executemany(
            _INSERT_EVENT,
            [(contact, e.version, e.message_id, e.digest, encode(e)) for e in events],
        )
    conn.execute("DROP TABLE consents_v1")
