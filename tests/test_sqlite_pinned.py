"""Rules of ``SQLiteStore`` pinned exactly (found by mutation testing).

Pins, on a ``SQLiteStore`` file read back with the ``sqlite3`` module where
the rule is about what is stored:

* the constructor: each refused path and setting with its exact message,
  every ``synchronous`` level accepted and applied, the defaults (30 s of
  ``busy_timeout``, a 1,024-head cache), and the default cache size of a
  pickle written before ``cache_size`` existed;
* a database of a newer store schema: the exact ``RecordError``;
* ``get``: a head that is not its log's last is a ``RecordError`` on
  ``digest`` with its exact message; with nothing cached the row's data is
  always read and checked; a head that vanished leaves the cache;
* ``put``: the exact ``StaleVersion`` of a first write on a stored contact,
  of a fork on a cached head, of a head that vanished under the cache; a
  dead letter or expiry may only close a pending message of its contact;
* ``restore``: the exact refusals (a stored contact, a reused key), the
  ``open`` column and retry time of restored rows;
* ``erase``: the exact ``StaleVersion``; the contact leaves the file, its
  WAL and the process's head cache;
* the quarantine of an unreadable outbox row: stored error and log line;
* writers: the ``flock`` on ``<path>-writer`` (mode 0600) held for the whole
  transaction, also when a second store of the file in the same thread
  fails inside it; a lock held by another program (or "busy") is waited
  out, any other error is not; ``busy_timeout`` is back after each write;
  a failed commit raises its own error and frees the queue;
* ``close`` closes this process's connections (the WAL goes away);
* the migration of a 0.1.0 database: the exact ``RecordError`` of a record
  that cannot migrate, and the migrated tables are those of a new file.
"""

from __future__ import annotations

import fcntl
import json
import logging
import os
import pickle
import re
import sqlite3
import stat
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import attrs
import pytest

from optin_core import (
    Consent,
    RecordError,
    RequestOptIn,
    StaleVersion,
    decide,
)
from optin_core._records import MessageExpired, MessageFailed
from optin_core.stores import SQLiteStore
from optin_core.stores._base import MessageRecord

from .flows import at
from .test_store_compliance import _erasure, _source_with_history, _stopped
from .test_stores import (
    CONTACT,
    LEASE,
    NOW,
    OTHER,
    POLICY,
    SCHEMA1,
    check_log,
    inbound,
    opted_in,
    put,
    put_decision,
    requested,
    step,
    steps,
    texting,
)
from .test_stores import _query as query
from .test_stores import _raw as raw
from .test_stores import _user_version as user_version

# ---------------------------------------------------------------------------
# The constructor


@pytest.mark.parametrize("bad", ["", ":memory:", "file:c.db?mode=memory"])
def test_a_path_that_is_not_one_file_is_refused_word_for_word(bad: str) -> None:
    with pytest.raises(ValueError) as info:
        SQLiteStore(bad)
    assert str(info.value) == (
        "SQLiteStore needs a file path (each connection must see the same "
        "database); use MemoryStore for an in-memory store"
    )


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        (
            {"synchronous": "OFF"},
            "synchronous must be FULL, NORMAL or EXTRA, got 'OFF'",
        ),
        # The levels are SQLite's words, upper case only.
        (
            {"synchronous": "extra"},
            "synchronous must be FULL, NORMAL or EXTRA, got 'extra'",
        ),
        ({"timeout": -1}, "timeout must be a number of seconds >= 0, got -1"),
        ({"timeout": "5"}, "timeout must be a number of seconds >= 0, got '5'"),
        ({"cache_size": -1}, "cache_size must be an int >= 0, got -1"),
    ],
)
def test_a_bad_setting_is_refused_word_for_word(
    tmp_path: Path, settings: dict[str, Any], message: str
) -> None:
    with pytest.raises(ValueError, match=f"^{re.escape(message)}$"):
        SQLiteStore(tmp_path / "c.db", **settings)


@pytest.mark.parametrize(
    ("level", "pragma"), [("FULL", 2), ("NORMAL", 1), ("EXTRA", 3)]
)
def test_every_synchronous_level_is_accepted_and_applied(
    tmp_path: Path, level: Any, pragma: int
) -> None:
    with SQLiteStore(tmp_path / "c.db", synchronous=level) as s:
        put(s, requested())
        assert s.synchronous == level
        # SQLite's own number for the level, on the store's connection.
        assert s._conn().execute("PRAGMA synchronous").fetchone() == (pragma,)


def test_the_defaults_are_30_seconds_full_and_1024_heads(tmp_path: Path) -> None:
    with SQLiteStore(tmp_path / "c.db") as s:
        assert (s.timeout, s.synchronous, s.cache_size) == (30.0, "FULL", 1024)
        assert isinstance(s.timeout, float)
        assert s.get(CONTACT) is None
        # The timeout is SQLite's busy_timeout, in milliseconds.
        assert s._conn().execute("PRAGMA busy_timeout").fetchone() == (30000,)


def test_the_busy_timeout_is_the_timeout_and_is_back_after_each_write(
    tmp_path: Path,
) -> None:
    """A write takes SQLite's lock by polling with busy_timeout 0, then puts
    the store's timeout back: the statements outside a write transaction
    (delivery, suppress, purge_delivered) wait for a lock that long."""
    with SQLiteStore(tmp_path / "c.db", timeout=2.5) as s:
        conn = s._conn()
        assert conn.execute("PRAGMA busy_timeout").fetchone() == (2500,)
        put(s, requested())
        assert conn.execute("PRAGMA busy_timeout").fetchone() == (2500,)
        s.namespace()
        assert conn.execute("PRAGMA busy_timeout").fetchone() == (2500,)


def test_a_pickle_without_a_cache_size_gets_the_default(tmp_path: Path) -> None:
    """A store pickled before ``cache_size`` existed (its state has path,
    timeout and synchronous only) unpickles with the default 1,024."""
    path = tmp_path / "c.db"
    written = opted_in()
    with SQLiteStore(path, timeout=5, synchronous="NORMAL") as s:
        put(s, written)
        state = s.__getstate__()
    assert state == {
        "path": str(path),
        "timeout": 5.0,
        "synchronous": "NORMAL",
        "cache_size": 1024,
    }
    del state["cache_size"]
    old = SQLiteStore.__new__(SQLiteStore)
    old.__setstate__(state)  # what pickle.loads does with the old state
    try:
        assert (old.path, old.timeout, old.synchronous, old.cache_size) == (
            str(path),
            5.0,
            "NORMAL",
            1024,
        )
        read = old.get(CONTACT)
        assert read == written[0]
        assert old.get(CONTACT) is read  # its cache works
        clone = pickle.loads(pickle.dumps(old))
        assert clone.cache_size == 1024
        clone.close()
    finally:
        old.close()


def test_a_newer_store_schema_is_refused_word_for_word(tmp_path: Path) -> None:
    path = tmp_path / "c.db"
    raw(path, "PRAGMA user_version = 3")
    with SQLiteStore(path) as s, pytest.raises(RecordError) as info:
        s.get(CONTACT)
    error = info.value
    assert (error.field, error.contact, error.index) == ("schema", "", None)
    assert error.problem == (
        f"{path} was written by a newer optin_core (store schema 3; this one "
        "knows 2); upgrade the library"
    )
    assert user_version(path) == 3  # left as it was


# ---------------------------------------------------------------------------
# get


def _edit_version(path: Path) -> None:
    """The head row names another version; its digest is still the log's."""
    raw(path, "UPDATE consents SET version = 7")


def _edit_digest(path: Path) -> None:
    """The head row names another digest; its version is still the log's."""
    raw(path, "UPDATE consents SET digest = ?", "sha256:" + "0" * 64)


@pytest.mark.parametrize("edit", [_edit_version, _edit_digest])
@pytest.mark.parametrize("cache_size", [0, 1024])
def test_a_head_that_is_not_its_logs_last_is_refused_word_for_word(
    tmp_path: Path, edit: Any, cache_size: int
) -> None:
    """Either column differing from the log's last event is enough."""
    path = tmp_path / "c.db"
    with SQLiteStore(path) as s:
        put(s, opted_in())
    edit(path)
    with SQLiteStore(path, cache_size=cache_size) as s:
        with pytest.raises(RecordError) as info:
            s.get(CONTACT)
        error = info.value
        assert (error.field, error.contact) == ("digest", CONTACT)
        assert error.problem == (
            "the head does not match its log's last event (a table edited by "
            "hand, or a truncated log)"
        )
        assert str(error) == (
            f"consent record of {CONTACT!r} is invalid at 'digest': "
            f"{error.problem}; restore it from its history or a backup, never "
            "by guessing"
        )


def test_with_nothing_cached_the_row_data_is_always_checked(tmp_path: Path) -> None:
    """A head row and its log's last event both edited to an empty digest
    (the value that means "nothing cached"): the row's data is still read
    and refused for not being a head at that digest."""
    path = tmp_path / "c.db"
    with SQLiteStore(path) as s:
        put(s, requested())  # version 1
    raw(path, "UPDATE consents SET digest = ''")
    raw(path, "UPDATE events SET digest = ''")
    with SQLiteStore(path) as s, pytest.raises(RecordError) as info:
        s.get(CONTACT)
    assert (info.value.field, info.value.contact) == ("version", CONTACT)
    assert info.value.problem == (
        "the row says version 1 but the head says 1 (or their digests differ)"
    )


def test_a_head_that_vanished_leaves_the_cache(tmp_path: Path) -> None:
    """Another store erases the contact; this one reads None, and the head
    it then writes anew is the one it caches (not the old, higher one)."""
    path = tmp_path / "c.db"
    with SQLiteStore(path) as s, SQLiteStore(path) as other:
        _stopped(s)
        assert s.get(CONTACT) is s.get(CONTACT)  # cached
        version = check_log(other).version
        other.erase(CONTACT, _erasure(other), expected_version=version)
        assert s.get(CONTACT) is None
        again = requested()
        put(s, again)
        assert s.get(CONTACT) is again[0]  # what it wrote, from the cache


# ---------------------------------------------------------------------------
# put: the compare-and-set refusals


def test_a_first_write_on_a_stored_contact_is_stale_word_for_word(
    tmp_path: Path,
) -> None:
    with SQLiteStore(tmp_path / "c.db") as s:
        put(s, opted_in())
        with pytest.raises(StaleVersion) as info:
            put(s, requested())
    error = info.value
    assert (error.contact, error.expected, error.found) == (CONTACT, 0, 2)
    assert str(error) == (
        f"record of {CONTACT!r} changed concurrently (expected version 0, found "
        "2); reload it and decide again"
    )


def test_a_write_on_a_cached_head_of_another_chain_is_a_fork_word_for_word(
    tmp_path: Path,
) -> None:
    """The contact was erased and written again (same version, another
    chain) while this store cached its old head: refused as a fork."""
    path = tmp_path / "c.db"
    with SQLiteStore(path) as s, SQLiteStore(path) as other:
        old = requested()
        put(s, old)
        assert s.get(CONTACT) is old[0]  # cached at version 1
        other.erase(CONTACT, _erasure(other), expected_version=1)
        new = steps(Consent.new(CONTACT), RequestOptIn(at=at(5)))
        put(other, new)
        assert new[0].version == 1
        assert new[0].digest != old[0].digest
        with pytest.raises(StaleVersion) as info:
            put(s, step(old[0], inbound("yes", "m1", 6)))
        assert check_log(other) == new[0]
    error = info.value
    assert (error.contact, error.expected, error.found) == (CONTACT, 1, 1)
    assert str(error) == (
        f"record of {CONTACT!r} changed concurrently (expected version 1, found "
        "1; the write does not extend the stored log (a stale or forked copy)); "
        "reload it and decide again"
    )


def test_a_write_on_a_cached_head_that_vanished_is_stale(tmp_path: Path) -> None:
    path = tmp_path / "c.db"
    with SQLiteStore(path) as s, SQLiteStore(path) as other:
        first = requested()
        put(s, first)
        assert s.get(CONTACT) is first[0]  # cached at version 1
        other.erase(CONTACT, _erasure(other), expected_version=1)
        with pytest.raises(StaleVersion) as info:
            put(s, step(first[0], inbound("yes", "m1", 1)))
        assert other.get(CONTACT) is None
    error = info.value
    assert (error.contact, error.expected, error.found) == (CONTACT, 1, None)
    assert str(error) == (
        f"record of {CONTACT!r} changed concurrently (expected version 1, found "
        "None); reload it and decide again"
    )


# ---------------------------------------------------------------------------
# put: closing messages (expired, dead letters)


def _pending_request(s: SQLiteStore, contact: str) -> tuple[Consent, str]:
    written = requested(contact)
    put(s, written)
    (message,) = s.pending(contact=contact)
    return written[0], message.key


def test_a_dead_letter_of_an_unknown_key_is_refused(tmp_path: Path) -> None:
    with SQLiteStore(tmp_path / "c.db") as s:
        head, _key = _pending_request(s, CONTACT)
        decision = decide(
            head,
            MessageFailed(at=at(1), key="nosuchkey", attempts=5, error="503"),
            POLICY,
        )
        with pytest.raises(RecordError) as info:
            put_decision(s, decision, head.version)
        error = info.value
        assert (error.field, error.contact) == ("cancelled", CONTACT)
        assert error.problem == "'nosuchkey' is not a pending message of this contact"
        assert s.get(CONTACT) == head  # nothing written


def test_a_dead_letter_may_not_close_another_contacts_message(
    tmp_path: Path,
) -> None:
    with SQLiteStore(tmp_path / "c.db") as s:
        head, _mine = _pending_request(s, CONTACT)
        _other_head, theirs = _pending_request(s, OTHER)
        decision = decide(
            head,
            MessageFailed(at=at(1), key=theirs, attempts=5, error="503"),
            POLICY,
        )
        with pytest.raises(RecordError) as info:
            put_decision(s, decision, head.version)
        assert (info.value.field, info.value.contact) == ("cancelled", CONTACT)
        assert info.value.problem == (
            f"{theirs!r} is not a pending message of this contact"
        )
        assert s.message_status(theirs) == "pending"
        assert [m.key for m in s.pending(contact=OTHER)] == [theirs]


def test_an_expiry_of_a_message_already_sent_is_stale(tmp_path: Path) -> None:
    with SQLiteStore(tmp_path / "c.db") as s:
        head, key = _pending_request(s, CONTACT)
        assert s.claim(key, until=NOW + LEASE, now=NOW)
        s.mark_sent(key)
        decision = decide(head, MessageExpired(at=at(1), key=key), POLICY)
        with pytest.raises(StaleVersion) as info:
            put_decision(s, decision, head.version)
        error = info.value
        assert (error.contact, error.expected, error.found) == (CONTACT, 1, 1)
        assert f"message {key} was sent before the stop was saved" in str(error)
        assert s.message_status(key) == "sent"


# ---------------------------------------------------------------------------
# restore


def test_a_restore_over_a_stored_contact_is_stale_word_for_word(
    tmp_path: Path,
) -> None:
    with SQLiteStore(tmp_path / "c.db") as s:
        stored = opted_in()
        put(s, stored)
        put(s, step(stored[0], texting()))  # version 3
        head, events = opted_in()
        with pytest.raises(StaleVersion) as info:
            s.restore(head, events)
    error = info.value
    assert (error.contact, error.expected, error.found) == (CONTACT, 0, 3)
    assert str(error) == (
        f"record of {CONTACT!r} changed concurrently (expected version 0, found "
        "3); reload it and decide again"
    )


def test_a_restore_reusing_a_message_key_names_its_contact(tmp_path: Path) -> None:
    with SQLiteStore(tmp_path / "c.db") as s:
        head, events = opted_in()
        put(s, (head, events))
        keys = iter([m.key for e in events for m in e.sent])
        other_head, other_events = opted_in(OTHER)
        forged = tuple(
            attrs.evolve(e, sent=tuple(attrs.evolve(m, key=next(keys)) for m in e.sent))
            for e in other_events
        )
        records = [
            MessageRecord(message=m, status="sent") for e in forged for m in e.sent
        ]
        with pytest.raises(RecordError) as info:
            s.restore(other_head, forged, records)
        assert s.get(OTHER) is None
    error = info.value
    assert (error.field, error.contact) == ("sent", OTHER)
    assert error.problem == (
        "a message key of the write is already in the outbox (a replayed or "
        "forged write)"
    )


def test_restored_rows_are_open_only_while_pending(tmp_path: Path) -> None:
    """The ``open`` column of a restored row is 1 for a pending message and
    0 for the others (sent, cancelled): only pending rows may hold their
    contact's queue; a retry time is kept."""
    path = tmp_path / "c.db"
    with SQLiteStore(tmp_path / "source.db") as source:
        log, records = _source_with_history(source)
    assert [r.status for r in records] == ["sent", "sent", "cancelled", "pending"]
    retry = NOW + timedelta(minutes=7)
    records[3] = attrs.evolve(
        records[3], attempts=2, last_error="503", next_attempt_at=retry
    )
    with SQLiteStore(path) as s:
        s.restore(log.head, log.events, records)
        assert s.messages(CONTACT) == records
        assert s.messages(CONTACT)[3].next_attempt_at == retry
        # Waiting for its retry: not due before it, due at it.
        assert s.due(now=retry - timedelta(seconds=1)) == []
        assert [m.key for m in s.due(now=retry)] == [records[3].message.key]
    rows = query(path, "SELECT key, status, open, next_attempt_at FROM outbox")
    assert rows == [
        (r.message.key, r.status, 1 if r.status == "pending" else 0, None)
        for r in records[:3]
    ] + [(records[3].message.key, "pending", 1, retry.timestamp())]


# ---------------------------------------------------------------------------
# erase


def test_a_stale_erase_is_refused_word_for_word(tmp_path: Path) -> None:
    with SQLiteStore(tmp_path / "c.db") as s:
        _stopped(s)
        erasure = _erasure(s)
        version = check_log(s).version
        # The contact moves on after the erasure was prepared.
        moved = check_log(s)
        put(s, step(moved, inbound("START", "again", 9)))
        with pytest.raises(StaleVersion) as info:
            s.erase(CONTACT, erasure, expected_version=version)
        assert check_log(s).version == version + 1
    error = info.value
    assert (error.contact, error.expected, error.found) == (
        CONTACT,
        version,
        version + 1,
    )
    assert str(error) == (
        f"record of {CONTACT!r} changed concurrently (expected version "
        f"{version}, found {version + 1}); reload it and decide again"
    )


def test_an_erase_of_an_unknown_contact_finds_no_version(tmp_path: Path) -> None:
    with SQLiteStore(tmp_path / "c.db") as s:
        _stopped(s)
        erasure = _erasure(s)
        version = check_log(s).version
        with pytest.raises(StaleVersion) as info:
            s.erase(OTHER, erasure, expected_version=version)
    error = info.value
    assert (error.contact, error.expected, error.found) == (OTHER, version, None)


def test_an_erased_contact_leaves_the_file_its_wal_and_the_cache(
    tmp_path: Path,
) -> None:
    """Deleted rows are zeroed (secure_delete) and the WAL is truncated:
    the contact id is nowhere in the files; the process's head cache lets
    it go too (a head written anew is the one cached)."""
    path = tmp_path / "c.db"
    wal = tmp_path / "c.db-wal"
    with SQLiteStore(path) as s:
        _stopped(s)
        _stopped(s, OTHER)
        assert s.get(CONTACT) is s.get(CONTACT)  # cached
        erasure = _erasure(s)
        s.erase(CONTACT, erasure, expected_version=check_log(s).version)
        assert wal.stat().st_size == 0
        assert CONTACT.encode() not in path.read_bytes()
        assert OTHER.encode() in path.read_bytes()
        again = requested()
        put(s, again)
        assert s.get(CONTACT) is again[0]


# ---------------------------------------------------------------------------
# An unreadable outbox row


def test_an_unreadable_outbox_row_is_quarantined_and_logged(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / "c.db"
    with SQLiteStore(path) as s:
        _head, key = _pending_request(s, CONTACT)
    raw(path, "UPDATE outbox SET data = 'oops' WHERE key = ?", key)
    problem = "stored data is not JSON (Expecting value: line 1 column 1 (char 0))"
    with SQLiteStore(path) as s, caplog.at_level(logging.WARNING, "optin_core"):
        assert s.due(now=NOW) == []
        assert s.message_status(key) == "quarantined"
    assert query(path, "SELECT open, leased_until, last_error FROM outbox") == [
        (0, None, problem)
    ]
    (record,) = [r for r in caplog.records if r.name == "optin_core"]
    assert record.levelno == logging.WARNING
    # The key and the problem; never the contact id.
    assert record.getMessage() == (
        f"outbox message {key} of a contact is unreadable and was quarantined: "
        f"{problem}"
    )


# ---------------------------------------------------------------------------
# Writers: the flock on <path>-writer, SQLite's lock, commits


def _flock_is_free(path: Path) -> bool:
    """Whether another open file (of this process, as of another) could
    take the writers' flock now."""
    fd = os.open(path, os.O_RDWR)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return False
    else:
        fcntl.flock(fd, fcntl.LOCK_UN)
        return True
    finally:
        os.close(fd)


@pytest.fixture
def umask_022() -> Iterator[None]:
    """A known umask, so that the writer file's mode is the store's own."""
    old = os.umask(0o022)
    yield
    os.umask(old)


def test_a_write_holds_the_writer_flock_for_its_transaction(
    tmp_path: Path, umask_022: None
) -> None:
    path = tmp_path / "c.db"
    writer = tmp_path / "c.db-writer"
    with SQLiteStore(path) as s:
        assert s.get(CONTACT) is None
        conn = s._transaction()
        try:
            # Created on the first write, readable by its owner only.
            assert stat.S_IMODE(writer.stat().st_mode) == 0o600
            assert not _flock_is_free(writer)
        finally:
            s._end(conn, "ROLLBACK")
        assert _flock_is_free(writer)
        put(s, requested())
        assert _flock_is_free(writer)


def test_a_second_store_failing_inside_a_transaction_keeps_the_flock(
    tmp_path: Path,
) -> None:
    """Two stores of one file in one thread: the second one's write fails
    on SQLite's lock while the first holds a transaction; the first still
    holds the writers' flock until it ends, and the next writes take it."""
    path = tmp_path / "c.db"
    writer = tmp_path / "c.db-writer"
    with SQLiteStore(path) as s, SQLiteStore(path, timeout=0) as other:
        s.namespace()
        other.namespace()
        conn = s._transaction()
        try:
            with pytest.raises(sqlite3.OperationalError, match="locked"):
                put(other, requested())
            assert not _flock_is_free(writer)
        finally:
            s._end(conn, "ROLLBACK")
        assert _flock_is_free(writer)
        for store in (s, other):
            conn = store._transaction()
            try:
                assert not _flock_is_free(writer)
            finally:
                store._end(conn, "ROLLBACK")
            assert _flock_is_free(writer)


class _Begins:
    """The store's connection, seeing its ``BEGIN IMMEDIATE`` attempts.

    ``fail``: errors to raise instead of the first attempts (a fault of
    another program's making); ``refused``: the attempts SQLite refused,
    ``holder``'s transaction committed at the ``release_at``-th of them.
    """

    def __init__(
        self,
        conn: sqlite3.Connection,
        *,
        fail: list[str] | None = None,
        holder: sqlite3.Connection | None = None,
        release_at: int = 0,
    ) -> None:
        self.conn = conn
        self.fail = fail or []
        self.holder = holder
        self.release_at = release_at
        self.refused = 0

    def execute(self, sql: str, *args: Any) -> Any:
        if sql.upper() != "BEGIN IMMEDIATE":
            return self.conn.execute(sql, *args)
        if self.fail:
            raise sqlite3.OperationalError(self.fail.pop(0))
        try:
            return self.conn.execute(sql, *args)
        except sqlite3.OperationalError:
            self.refused += 1
            if self.refused == self.release_at and self.holder is not None:
                self.holder.execute("COMMIT")
            raise

    def __getattr__(self, name: str) -> Any:
        return getattr(self.conn, name)


def _watched(s: SQLiteStore, **kw: Any) -> _Begins:
    watched = _Begins(s._conn(), **kw)
    s._local.conn = (os.getpid(), watched)
    return watched


def test_a_write_waits_out_a_lock_held_by_another_program(tmp_path: Path) -> None:
    """Another program (not a store: no flock) holds SQLite's write lock;
    the store polls, and its write goes through once the lock is free,
    however many times it was refused before its timeout."""
    path = tmp_path / "c.db"
    with SQLiteStore(path, timeout=10) as s:
        s.namespace()
        holder = sqlite3.connect(path, isolation_level=None)
        holder.execute("BEGIN IMMEDIATE")
        watched = _watched(s, holder=holder, release_at=3)
        try:
            written = requested()
            put(s, written)
        finally:
            holder.close()
        assert watched.refused == 3
        assert s.get(CONTACT) == written[0]


@pytest.mark.parametrize("error", ["database is locked", "database is busy"])
def test_a_locked_or_busy_database_is_waited_out(tmp_path: Path, error: str) -> None:
    with SQLiteStore(tmp_path / "c.db", timeout=10) as s:
        s.namespace()
        _watched(s, fail=[error, error])
        written = requested()
        put(s, written)
        assert s.get(CONTACT) == written[0]


def test_any_other_error_of_the_lock_is_raised_at_once(tmp_path: Path) -> None:
    with SQLiteStore(tmp_path / "c.db", timeout=10) as s:
        s.namespace()
        _watched(s, fail=["disk I/O error"])
        with pytest.raises(sqlite3.OperationalError) as info:
            put(s, requested())
        assert str(info.value) == "disk I/O error"
        assert s.get(CONTACT) is None
        written = requested()
        put(s, written)  # the writers' queue was left
        assert s.get(CONTACT) == written[0]


class _FailingCommit:
    """The store's connection, whose next ``COMMIT`` fails (a full disk)."""

    def __init__(self, conn: sqlite3.Connection) -> None:
        self.conn = conn
        self.armed = True

    def execute(self, sql: str, *args: Any) -> Any:
        if self.armed and sql.upper() == "COMMIT":
            self.armed = False
            raise sqlite3.OperationalError("database or disk is full")
        return self.conn.execute(sql, *args)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.conn, name)


def test_a_failed_commit_raises_its_error_and_frees_the_writers(
    tmp_path: Path,
) -> None:
    path = tmp_path / "c.db"
    with SQLiteStore(path) as s:
        s.namespace()
        s._local.conn = (os.getpid(), _FailingCommit(s._conn()))
        with pytest.raises(sqlite3.OperationalError) as info:
            put(s, requested())
        # Its own error, not one of leaving the writers' queue twice.
        assert str(info.value) == "database or disk is full"
        assert s.get(CONTACT) is None  # rolled back
        assert _flock_is_free(tmp_path / "c.db-writer")
        written = requested()
        put(s, written)
        assert s.get(CONTACT) == written[0]


# ---------------------------------------------------------------------------
# close


def test_close_closes_this_process_connections(tmp_path: Path) -> None:
    """With its connections closed, SQLite checkpoints and removes the WAL
    and shared-memory files of the last one."""
    path = tmp_path / "c.db"
    s = SQLiteStore(path)
    put(s, opted_in())
    conn = s._conn()
    assert (tmp_path / "c.db-wal").exists()
    s.close()
    assert not (tmp_path / "c.db-wal").exists()
    assert not (tmp_path / "c.db-shm").exists()
    with pytest.raises(sqlite3.ProgrammingError):
        conn.execute("SELECT 1")
    with pytest.raises(RuntimeError, match=re.escape(f"{s!r} is closed")):
        s.get(CONTACT)


# ---------------------------------------------------------------------------
# Migrating a 0.1.0 database (store schema 1)


@pytest.fixture
def schema1(tmp_path: Path) -> Path:
    """A copy of the committed 0.1.0 database (never the file itself)."""
    path = tmp_path / "schema1.sqlite"
    path.write_bytes(SCHEMA1.read_bytes())
    assert user_version(path) == 1
    return path


def _forge(path: Path, contact: str, data: str) -> None:
    raw(path, "UPDATE consents SET data = ? WHERE contact = ?", data, contact)


def test_a_record_that_is_not_json_cannot_migrate_word_for_word(
    schema1: Path,
) -> None:
    _forge(schema1, "+15550000003", "{not json")
    try:
        json.loads("{not json")
    except ValueError as e:
        parser = str(e)  # the problem is the JSON parser's own message
    with SQLiteStore(schema1) as s, pytest.raises(RecordError) as info:
        s.get("+15550000006")
    error = info.value
    assert (error.field, error.contact) == ("record", "+15550000003")
    assert error.problem == f"cannot migrate to store schema 2: {parser}"
    assert parser.startswith("Expecting property name enclosed in double quotes")
    assert user_version(schema1) == 1


def test_a_record_that_does_not_verify_cannot_migrate_word_for_word(
    schema1: Path,
) -> None:
    contact = "+15550000004"
    ((data,),) = query(schema1, "SELECT data FROM consents WHERE contact = ?", contact)
    record = json.loads(data)
    record["stopped_at"] = "2025-04-11T09:30:00+00:00"
    _forge(schema1, contact, json.dumps(record))
    with SQLiteStore(schema1) as s, pytest.raises(RecordError) as info:
        s.get("+15550000006")
    error = info.value
    assert (error.field, error.contact) == ("stopped_at", contact)
    # The record error's problem (not its whole message), behind the
    # migration's words.
    assert str(error) == (
        f"consent record of {contact!r} is invalid at 'stopped_at': cannot "
        "migrate to store schema 2: '2025-04-11T09:30:00+00:00' differs from the "
        "replay of the history ('2025-04-11T09:43:00+00:00'); restore it from "
        "its history or a backup, never by guessing"
    )
    assert user_version(schema1) == 1


def _tables(path: Path) -> dict[str, list[tuple[Any, ...]]]:
    """Every table's columns (name, declared type, not null, default, key)
    and every index's name, as ``PRAGMA table_info`` and ``index_list``
    report them."""
    conn = sqlite3.connect(path)
    try:
        names = [
            name
            for (name,) in conn.execute(
                "SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name"
            )
        ]
        tables: dict[str, list[tuple[Any, ...]]] = {}
        for name in names:
            columns = conn.execute(f"PRAGMA table_info({name})").fetchall()
            indexes = sorted(
                row[1] for row in conn.execute(f"PRAGMA index_list({name})")
            )
            tables[name] = [tuple(c[1:]) for c in columns] + [tuple(indexes)]
        return tables
    finally:
        conn.close()


def test_a_migrated_database_has_the_tables_of_a_new_one(
    schema1: Path, tmp_path: Path
) -> None:
    """Column for column (name, type, NOT NULL, default) and index for
    index, the 0.1.0 database migrated is the schema a new file gets."""
    fresh = tmp_path / "fresh.db"
    with SQLiteStore(fresh) as s:
        assert s.get(CONTACT) is None
    with SQLiteStore(schema1) as s:
        assert s.contacts()[0] == "+15550000001"
        s.namespace()
        _stopped(s, CONTACT)  # writes on the migrated outbox
        assert check_log(s).version == 3
    assert user_version(schema1) == 2
    assert _tables(schema1) == _tables(fresh)
