"""The Store protocol, checked against MemoryStore and SQLiteStore alike."""

from __future__ import annotations

import json
import multiprocessing
import os
import pickle
import sqlite3
import threading
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from optin_core import (
    Consent,
    Inbound,
    MessageKind,
    Policy,
    RecordError,
    RequestOptIn,
    Revoke,
    SendText,
    StaleVersion,
    cancelled_by_stop,
    decide,
)
from optin_core._stores import Lease, MemoryStore, SQLiteStore, Store

from .service_helpers import STORE_KINDS, T0, make_store

POLICY = Policy(org_name="Acme")
LEASE = timedelta(minutes=2)


@pytest.fixture(params=STORE_KINDS)
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Store:
    s = make_store(request.param, tmp_path)
    yield s
    if isinstance(s, SQLiteStore):
        s.close()


def step(consent: Consent, input: object) -> Consent:
    return decide(consent, input, POLICY).consent  # type: ignore[arg-type]


def opted_in(contact: str = "+15550001") -> Consent:
    c = step(Consent.new(contact), RequestOptIn(at=T0))
    return step(c, Inbound(text="yes", at=T0, message_id="m1"))


def save(store: Store, consent: Consent, expected: int) -> None:
    store.put(consent, expected_version=expected)


def test_protocols_are_runtime_checkable(tmp_path: Path) -> None:
    assert isinstance(MemoryStore(), Store)
    with SQLiteStore(tmp_path / "a.db") as s:
        assert isinstance(s, Store)


def test_get_unknown_is_none(store: Store) -> None:
    assert store.get("+15550001") is None
    assert store.pending() == []


def test_put_then_get_round_trips(store: Store) -> None:
    c = opted_in()
    save(store, c, 0)
    assert store.get(c.contact) == c
    assert [m.kind for m in store.pending()] == [
        MessageKind.OPT_IN_REQUEST,
        MessageKind.OPT_IN_CONFIRMATION,
    ]


def test_compare_and_set(store: Store) -> None:
    first = step(Consent.new("+15550001"), RequestOptIn(at=T0))
    save(store, first, 0)
    with pytest.raises(StaleVersion) as info:
        save(store, first, 0)
    assert (info.value.expected, info.value.found) == (0, 1)
    second = step(first, Inbound(text="yes", at=T0, message_id="m1"))
    save(store, second, 1)
    with pytest.raises(StaleVersion) as info:
        save(store, second, 1)
    assert (info.value.expected, info.value.found, info.value.contact) == (
        1,
        2,
        "+15550001",
    )
    # A stale write changes nothing, not even the outbox.
    assert store.get("+15550001") == second
    assert len(store.pending()) == 2


def test_update_of_missing_record_is_stale(store: Store) -> None:
    c = opted_in()
    with pytest.raises(StaleVersion) as info:
        save(store, c, 1)
    assert info.value.found is None
    assert store.get(c.contact) is None
    assert store.pending() == []


def test_put_validates_its_arguments(store: Store) -> None:
    c = opted_in()
    with pytest.raises(ValueError, match="expected_version"):
        save(store, c, 2)
    with pytest.raises(ValueError, match="expected_version"):
        save(store, c, -1)
    with pytest.raises(ValueError, match="expected_version"):
        store.put(c, expected_version=True)
    with pytest.raises(TypeError):
        store.put(c.to_dict(), expected_version=0)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="MessageKind"):
        store.put(c, expected_version=0, cancel_pending=["text"])  # type: ignore[list-item]
    forged = Consent(contact=c.contact, version=3, history=c.history)
    with pytest.raises(RecordError, match="history"):
        save(store, forged, 0)
    assert store.get(c.contact) is None


def test_pending_filters_and_limits(store: Store) -> None:
    a, b = opted_in("+15550001"), opted_in("+15550002")
    save(store, a, 0)
    save(store, b, 0)
    everything = store.pending()
    assert [m.contact for m in everything] == [a.contact] * 2 + [b.contact] * 2
    assert store.pending(limit=3) == everything[:3]
    assert store.pending(limit=0) == []
    assert store.pending(contact=b.contact) == everything[2:]
    assert store.pending(contact="+19999") == []
    with pytest.raises(ValueError, match="limit"):
        store.pending(limit=-1)


def test_claim_lease_release_and_mark(store: Store) -> None:
    c = step(Consent.new("+15550001"), RequestOptIn(at=T0))
    save(store, c, 0)
    (msg,) = store.pending()
    assert store.claim(msg.key, until=T0 + LEASE, now=T0)
    assert not store.claim(msg.key, until=T0 + LEASE, now=T0)  # leased
    assert store.claim(msg.key, until=T0 + 2 * LEASE, now=T0 + LEASE)  # expired
    store.release(msg.key)
    assert store.claim(msg.key, until=T0 + LEASE, now=T0)
    assert store.pending() == [msg]  # claimed messages are still pending
    store.mark_sent(msg.key)
    store.mark_sent(msg.key)  # idempotent
    store.release(msg.key)  # no effect on a sent message
    assert store.message_status(msg.key) == "sent"  # type: ignore[attr-defined]
    assert store.pending() == []
    assert not store.claim(msg.key, until=T0 + LEASE, now=T0)
    assert not store.claim("nope", until=T0 + LEASE, now=T0)
    assert store.message_status("nope") is None  # type: ignore[attr-defined]
    store.mark_sent("nope")
    store.release("nope")


def test_claim_keeps_per_contact_order(store: Store) -> None:
    a, b = opted_in("+15550001"), opted_in("+15550002")
    save(store, a, 0)
    save(store, b, 0)
    a1, a2, b1, _b2 = store.pending()
    assert not store.claim(a2.key, until=T0 + LEASE, now=T0)  # a1 first
    assert store.claim(b1.key, until=T0 + LEASE, now=T0)  # other contacts go on
    assert store.claim(a1.key, until=T0 + LEASE, now=T0)
    assert not store.claim(a2.key, until=T0 + LEASE, now=T0)  # a1 in flight
    store.mark_sent(a1.key)
    assert store.claim(a2.key, until=T0 + LEASE, now=T0)


def test_claim_records_the_version_it_saw(store: Store) -> None:
    c = opted_in()
    save(store, c, 0)
    first = store.pending()[0]
    assert store.claimed_version(first.key) is None  # type: ignore[attr-defined]
    assert store.claim(first.key, until=T0 + LEASE, now=T0)
    assert store.claimed_version(first.key) == 2  # type: ignore[attr-defined]


def _with_text(store: Store) -> tuple[Consent, str]:
    c = opted_in()
    save(store, c, 0)
    for m in store.pending():
        assert store.claim(m.key, until=T0 + LEASE, now=T0)
        store.mark_sent(m.key)
    texted = step(c, SendText(body="hello", at=T0))
    save(store, texted, c.version)
    (text,) = store.pending()
    assert text.kind is MessageKind.TEXT
    return texted, text.key


def _stop(store: Store, consent: Consent) -> Consent:
    decision = decide(consent, Inbound(text="STOP", at=T0, message_id="s1"), POLICY)
    store.put(
        decision.consent,
        expected_version=consent.version,
        cancel_pending=cancelled_by_stop(decision),
    )
    return decision.consent


def test_a_stop_cancels_queued_texts_in_the_same_write(store: Store) -> None:
    texted, key = _with_text(store)
    _stop(store, texted)
    assert store.message_status(key) == "cancelled"  # type: ignore[attr-defined]
    (conf,) = store.pending()
    assert conf.kind is MessageKind.STOP_CONFIRMATION
    assert not store.claim(key, until=T0 + LEASE, now=T0)
    assert store.claim(conf.key, until=T0 + LEASE, now=T0)


def test_a_text_in_flight_at_the_stop_holds_the_confirmation(store: Store) -> None:
    texted, key = _with_text(store)
    assert store.claim(key, until=T0 + LEASE, now=T0)  # being sent
    _stop(store, texted)
    (conf,) = store.pending()
    assert not store.claim(conf.key, until=T0 + LEASE, now=T0)
    store.mark_sent(key)  # it did go: the outbox says so
    assert store.message_status(key) == "sent"  # type: ignore[attr-defined]
    assert store.claim(conf.key, until=T0 + LEASE, now=T0)


def test_a_failed_cancelled_text_is_not_retried(store: Store) -> None:
    texted, key = _with_text(store)
    assert store.claim(key, until=T0 + LEASE, now=T0)
    _stop(store, texted)
    store.release(key)
    assert store.message_status(key) == "cancelled"  # type: ignore[attr-defined]
    assert not store.claim(key, until=T0 + LEASE, now=T0)
    (conf,) = store.pending()
    assert store.claim(conf.key, until=T0 + LEASE, now=T0)


def test_a_crashed_sender_of_a_cancelled_text_blocks_until_its_lease_ends(
    store: Store,
) -> None:
    texted, key = _with_text(store)
    assert store.claim(key, until=T0 + LEASE, now=T0)
    _stop(store, texted)
    (conf,) = store.pending()
    assert not store.claim(conf.key, until=T0 + 2 * LEASE, now=T0 + LEASE / 2)
    assert store.claim(conf.key, until=T0 + 2 * LEASE, now=T0 + LEASE)


def test_revoke_without_cancel_list_keeps_messages(store: Store) -> None:
    texted, key = _with_text(store)
    revoked = step(texted, Revoke(at=T0, by="compliance", reason="call"))
    save(store, revoked, texted.version)  # the store applies no rule itself
    assert store.message_status(key) == "pending"  # type: ignore[attr-defined]


def test_contacts_lists_records(store: Store) -> None:
    save(store, opted_in("+15550002"), 0)
    save(store, opted_in("+15550001"), 0)
    assert sorted(store.contacts()) == ["+15550001", "+15550002"]  # type: ignore[attr-defined]


def test_concurrent_first_writes_have_one_winner(store: Store) -> None:
    records = [
        step(Consent.new("+15550001"), RequestOptIn(at=T0, by=f"agent{i}"))
        for i in range(8)
    ]
    barrier = threading.Barrier(len(records))
    wins: list[int] = []
    losses: list[StaleVersion] = []

    def write(i: int) -> None:
        barrier.wait()
        try:
            save(store, records[i], 0)
            wins.append(i)
        except StaleVersion as e:
            losses.append(e)

    threads = [threading.Thread(target=write, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(wins) == 1
    assert len(losses) == 7
    assert all(e.found == 1 for e in losses)
    assert store.get("+15550001") == records[wins[0]]
    assert len(store.pending()) == 1


# ---------------------------------------------------------------------------
# SQLiteStore specifics


def _raw(path: Path, sql: str, *args: object) -> None:
    conn = sqlite3.connect(path)
    with conn:
        conn.execute(sql, args)
    conn.close()


def test_sqlite_persists_across_instances_and_uses_wal(tmp_path: Path) -> None:
    path = tmp_path / "c.db"
    c = opted_in()
    with SQLiteStore(path) as s:
        save(s, c, 0)
        assert repr(s) == f"SQLiteStore({str(path)!r})"
    with SQLiteStore(str(path)) as s:
        assert s.get(c.contact) == c
        assert len(s.pending()) == 2
    conn = sqlite3.connect(path)
    assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert conn.execute("PRAGMA user_version").fetchone()[0] == 1
    conn.close()


def test_sqlite_rejects_bad_settings(tmp_path: Path) -> None:
    for bad in ("", ":memory:", "file::memory:"):
        with pytest.raises(ValueError, match="MemoryStore"):
            SQLiteStore(bad)
    with pytest.raises(ValueError, match="synchronous"):
        SQLiteStore(tmp_path / "x.db", synchronous="OFF")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="timeout"):
        SQLiteStore(tmp_path / "x.db", timeout=-1)
    s = SQLiteStore(tmp_path / "x.db")
    with pytest.raises(TypeError, match="datetime"):
        s.claim("k", until="soon", now=T0)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="aware"):
        s.claim("k", until=T0.replace(tzinfo=None), now=T0)
    s.close()


def test_sqlite_closed_store_refuses_use(tmp_path: Path) -> None:
    s = SQLiteStore(tmp_path / "c.db")
    s.get("+1")
    s.close()
    s.close()
    with pytest.raises(RuntimeError, match="closed"):
        SQLiteStore.get(s, "+1")
    t = SQLiteStore(tmp_path / "d.db")
    t.close()  # closing before any use
    with pytest.raises(RuntimeError, match="closed"):
        t.get("+1")


@pytest.mark.parametrize(
    ("data", "field"),
    [
        ("{not json", "record"),
        (json.dumps({"schema": 99}), "schema"),
        (json.dumps({"schema": 1, "contact": 5}), "recent_message_ids"),
    ],
)
def test_sqlite_corrupted_row_names_the_contact(
    tmp_path: Path, data: str, field: str
) -> None:
    path = tmp_path / "c.db"
    with SQLiteStore(path) as s:
        save(s, opted_in(), 0)
    _raw(path, "UPDATE consents SET data = ? WHERE contact = ?", data, "+15550001")
    with SQLiteStore(path) as s, pytest.raises(RecordError) as info:
        s.get("+15550001")
    assert info.value.contact == "+15550001"
    assert info.value.field == field
    assert "+15550001" in str(info.value)


def test_sqlite_version_column_must_match(tmp_path: Path) -> None:
    path = tmp_path / "c.db"
    with SQLiteStore(path) as s:
        save(s, opted_in(), 0)
    _raw(path, "UPDATE consents SET version = 7")
    with SQLiteStore(path) as s, pytest.raises(RecordError, match="row says 7"):
        s.get("+15550001")


def test_sqlite_corrupted_outbox_row_names_the_contact(tmp_path: Path) -> None:
    path = tmp_path / "c.db"
    with SQLiteStore(path) as s:
        save(s, opted_in(), 0)
    _raw(path, "UPDATE outbox SET data = 'oops' WHERE seq = 1")
    with SQLiteStore(path) as s, pytest.raises(RecordError) as info:
        s.pending()
    assert info.value.contact == "+15550001"
    _raw(path, "UPDATE outbox SET data = '{}' WHERE seq = 1")
    with SQLiteStore(path) as s, pytest.raises(RecordError) as info:
        s.pending()
    assert (info.value.contact, info.value.field) == ("+15550001", "outgoing.contact")


def test_sqlite_refuses_a_newer_schema(tmp_path: Path) -> None:
    path = tmp_path / "c.db"
    _raw(path, "PRAGMA user_version = 9")
    with SQLiteStore(path) as s, pytest.raises(RecordError, match="newer"):
        s.get("+1")


def test_sqlite_store_pickles_to_its_settings(tmp_path: Path) -> None:
    with SQLiteStore(
        tmp_path / "c.db", timeout=5, synchronous="NORMAL", cache_size=7
    ) as s:
        save(s, opted_in(), 0)
        clone = pickle.loads(pickle.dumps(s))
        assert (clone.path, clone.timeout, clone.synchronous, clone.cache_size) == (
            s.path,
            5.0,
            "NORMAL",
            7,
        )
        assert clone.get("+15550001") == s.get("+15550001")
        clone.close()


def test_sqlite_threads_get_their_own_connections(tmp_path: Path) -> None:
    with SQLiteStore(tmp_path / "c.db") as s:
        s.get("+1")
        seen = []
        t = threading.Thread(target=lambda: seen.append(s._conn()))
        t.start()
        t.join()
        assert seen[0] is not s._conn()


def _child_uses_inherited_store(store: SQLiteStore, queue: Any) -> None:
    record = store.get("+15550001")
    store.put(
        step(record, SendText(body="from the child", at=T0)),  # type: ignore[arg-type]
        expected_version=2,
    )
    queue.put(len(store.pending()))
    store.close()


@pytest.mark.skipif(
    "fork" not in multiprocessing.get_all_start_methods(), reason="needs fork"
)
def test_sqlite_store_survives_fork(tmp_path: Path) -> None:
    with SQLiteStore(tmp_path / "c.db") as s:
        save(s, opted_in(), 0)  # the parent holds a connection now
        ctx = multiprocessing.get_context("fork")
        queue = ctx.Queue()
        child = ctx.Process(target=_child_uses_inherited_store, args=(s, queue))
        child.start()
        child.join(30)
        assert child.exitcode == 0
        assert queue.get(timeout=5) == 3
        assert s.get("+15550001").version == 3  # type: ignore[union-attr]


def _locked_new_file(path: Path) -> sqlite3.Connection:
    holder = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    holder.execute("CREATE TABLE other (x)")
    holder.execute("BEGIN EXCLUSIVE")  # blocks the switch to WAL
    return holder


def test_sqlite_waits_for_a_locked_new_file(tmp_path: Path) -> None:
    holder = _locked_new_file(tmp_path / "c.db")
    timer = threading.Timer(0.2, lambda: holder.execute("COMMIT"))
    timer.start()
    with SQLiteStore(tmp_path / "c.db", timeout=10) as s:
        assert s.get("+1") is None  # waited for the lock
    timer.join()
    holder.close()
    holder = _locked_new_file(tmp_path / "d.db")
    with pytest.raises(sqlite3.OperationalError, match="locked"):
        SQLiteStore(tmp_path / "d.db", timeout=0).get("+1")
    holder.execute("ROLLBACK")
    holder.close()


class _FlakyPragma:
    """A connection whose switch to WAL fails ``fails`` times first."""

    def __init__(self, fails: int, mode: str = "wal", error: str = "locked") -> None:
        self.fails = fails
        self.mode = mode
        self.error = error

    def execute(self, sql: str) -> Any:
        if self.fails:
            self.fails -= 1
            raise sqlite3.OperationalError(f"database is {self.error}")
        return self

    def fetchone(self) -> tuple[str]:
        return (self.mode,)


def test_sqlite_retries_the_switch_to_wal(tmp_path: Path) -> None:
    with SQLiteStore(tmp_path / "c.db", timeout=5) as s:
        s._enable_wal(_FlakyPragma(3))  # type: ignore[arg-type]
        with pytest.raises(sqlite3.OperationalError, match="could not enable WAL"):
            s._enable_wal(_FlakyPragma(0, mode="delete"))  # type: ignore[arg-type]
        with pytest.raises(sqlite3.OperationalError, match="malformed"):
            s._enable_wal(_FlakyPragma(1, error="malformed"))  # type: ignore[arg-type]
        s.timeout = 0
        with pytest.raises(sqlite3.OperationalError, match="locked"):
            s._enable_wal(_FlakyPragma(1000))  # type: ignore[arg-type]


# ---------------------------------------------------------------------------
# The optional lease of put and mark_sent

L = Lease(T0 + LEASE, T0)


def test_put_with_lease_claims_the_head_then_mark_sent_the_next(store: Any) -> None:
    c = opted_in()  # two new messages: the request, then the confirmation
    request, confirmation = (m for e in c.history for m in e.sent)
    assert store.put(c, expected_version=0, lease=L) == request
    assert store.claimed_version(request.key) == 2
    assert store.pending() == [request, confirmation]  # claimed: still pending
    assert not store.claim(request.key, until=T0 + LEASE, now=T0)  # leased
    assert not store.claim(confirmation.key, until=T0 + LEASE, now=T0)  # order
    assert store.mark_sent(request.key, lease=L) == confirmation
    assert store.message_status(request.key) == "sent"
    assert store.claimed_version(confirmation.key) == 2
    assert not store.claim(confirmation.key, until=T0 + LEASE, now=T0)  # leased
    assert store.mark_sent(confirmation.key, lease=L) is None
    assert store.pending() == []
    assert store.mark_sent(confirmation.key, lease=L) is None  # idempotent
    assert store.mark_sent("nope", lease=L) is None


def test_put_with_lease_leaves_a_held_queue_to_its_sender(store: Any) -> None:
    first = step(Consent.new("+15550001"), RequestOptIn(at=T0))
    (request,) = first.history[-1].sent
    save(store, first, 0)
    assert store.claim(request.key, until=T0 + LEASE, now=T0)  # another sender
    second = step(first, Inbound(text="yes", at=T0, message_id="m1"))
    (confirmation,) = second.history[-1].sent
    assert store.put(second, expected_version=1, lease=L) is None
    # Its sender, done, takes the next message in the same write.
    assert store.mark_sent(request.key, lease=L) == confirmation


def test_put_with_lease_claims_an_older_message_first(store: Any) -> None:
    first = step(Consent.new("+15550001"), RequestOptIn(at=T0))
    (request,) = first.history[-1].sent
    save(store, first, 0)
    assert store.claim(request.key, until=T0 + LEASE, now=T0)
    store.release(request.key)  # its send failed
    second = step(first, Inbound(text="yes", at=T0, message_id="m1"))
    (confirmation,) = second.history[-1].sent
    assert store.put(second, expected_version=1, lease=L) == request
    assert store.mark_sent(request.key, lease=L) == confirmation


def test_put_with_lease_reclaims_an_expired_lease(store: Any) -> None:
    first = step(Consent.new("+15550001"), RequestOptIn(at=T0))
    (request,) = first.history[-1].sent
    save(store, first, 0)
    assert store.claim(request.key, until=T0 + LEASE, now=T0)  # then crashed
    second = step(first, Inbound(text="yes", at=T0, message_id="m1"))
    later = Lease(T0 + 3 * LEASE, T0 + LEASE)
    assert store.put(second, expected_version=1, lease=later) == request


def test_put_with_lease_and_no_new_message(store: Any) -> None:
    texted, key = _with_text(store)
    revoked = step(texted, Revoke(at=T0, by="compliance", reason="call"))
    assert not any(e.sent for e in revoked.history[texted.version :])
    assert store.put(revoked, expected_version=texted.version, lease=L).key == key
    assert store.mark_sent(key, lease=L) is None


def test_a_stop_put_with_lease_cancels_then_claims_the_confirmation(
    store: Any,
) -> None:
    texted, key = _with_text(store)
    decision = decide(texted, Inbound(text="STOP", at=T0, message_id="s1"), POLICY)
    (conf,) = decision.outgoing
    claimed = store.put(
        decision.consent,
        expected_version=texted.version,
        cancel_pending=cancelled_by_stop(decision),
        lease=L,
    )
    assert claimed == conf
    assert store.message_status(key) == "cancelled"


def test_a_text_in_flight_holds_a_stop_put_with_lease(store: Any) -> None:
    texted, key = _with_text(store)
    assert store.claim(key, until=T0 + LEASE, now=T0)  # being sent
    decision = decide(texted, Inbound(text="STOP", at=T0, message_id="s1"), POLICY)
    (conf,) = decision.outgoing
    assert (
        store.put(
            decision.consent,
            expected_version=texted.version,
            cancel_pending=cancelled_by_stop(decision),
            lease=L,
        )
        is None
    )
    assert store.mark_sent(key, lease=L) == conf  # the text went; then the stop
    assert store.message_status(key) == "sent"
    assert store.claimed_version(conf.key) == texted.version + 1


def test_a_stale_put_with_lease_claims_nothing(store: Any) -> None:
    first = step(Consent.new("+15550001"), RequestOptIn(at=T0))
    (request,) = first.history[-1].sent
    save(store, first, 0)
    with pytest.raises(StaleVersion):
        store.put(first, expected_version=0, lease=L)
    assert store.claimed_version(request.key) is None
    assert store.claim(request.key, until=T0 + LEASE, now=T0)


@pytest.mark.parametrize(
    ("lease", "error"),
    [
        ((T0,), TypeError),
        ([T0 + LEASE, T0], TypeError),
        (("later", T0), TypeError),
        ((T0.replace(tzinfo=None), T0), ValueError),
        ((T0 + LEASE, T0.replace(tzinfo=None)), ValueError),
    ],
)
def test_the_lease_argument_is_checked_before_any_write(
    store: Any, lease: Any, error: type[Exception]
) -> None:
    c = opted_in()
    with pytest.raises(error, match="lease"):
        store.put(c, expected_version=0, lease=lease)
    assert store.get(c.contact) is None
    save(store, c, 0)
    (request, _conf) = store.pending()
    with pytest.raises(error, match="lease"):
        store.mark_sent(request.key, lease=lease)
    assert store.message_status(request.key) == "pending"


def test_sqlite_mark_sent_with_lease_sees_a_message_added_meanwhile(
    tmp_path: Path,
) -> None:
    """The writer of a message queued behind one being sent leaves it to that
    message's sender: mark_sent must look again after marking."""
    path = tmp_path / "c.db"
    with SQLiteStore(path) as s, SQLiteStore(path) as other:
        first = step(Consent.new("+15550001"), RequestOptIn(at=T0))
        (request,) = first.history[-1].sent
        assert s.put(first, expected_version=0, lease=L) == request
        second = step(first, Inbound(text="yes", at=T0, message_id="m1"))
        (confirmation,) = second.history[-1].sent
        conn = s._conn()

        class Racing:
            """Runs the other writer's put just before the mark."""

            def execute(self, sql: str, *args: Any) -> Any:
                if sql.startswith("UPDATE outbox SET status = 'sent'"):
                    assert other.put(second, expected_version=1, lease=L) is None
                return conn.execute(sql, *args)

        s._local.conn = (os.getpid(), Racing())
        assert s.mark_sent(request.key, lease=L) == confirmation
        s._local.conn = (os.getpid(), conn)
        assert s.message_status(request.key) == "sent"


def test_sqlite_put_with_lease_falls_back_when_the_key_exists(tmp_path: Path) -> None:
    """A message row already there (rows edited by hand) is not assumed
    claimed by an insert that was ignored."""
    path = tmp_path / "c.db"
    first = step(Consent.new("+15550001"), RequestOptIn(at=T0))
    (request,) = first.history[-1].sent
    with SQLiteStore(path) as s:
        save(s, first, 0)
        assert s.claim(request.key, until=T0 + LEASE, now=T0)
        s.mark_sent(request.key)
    _raw(path, "DELETE FROM consents")
    with SQLiteStore(path) as s:
        assert s.put(first, expected_version=0, lease=L) is None
        assert s.message_status(request.key) == "sent"


# ---------------------------------------------------------------------------
# SQLiteStore's record cache


def test_sqlite_cache_serves_a_record_only_at_its_stored_version(
    tmp_path: Path,
) -> None:
    path = tmp_path / "c.db"
    with SQLiteStore(path) as s, SQLiteStore(path) as other:
        first = step(Consent.new("+15550001"), RequestOptIn(at=T0))
        save(s, first, 0)
        assert s.get(first.contact) is first  # what it wrote
        read = other.get(first.contact)
        assert read == first
        assert read is not first
        assert other.get(first.contact) is read  # parsed once
        second = step(first, Inbound(text="yes", at=T0, message_id="m1"))
        save(other, second, 1)  # another writer (or process) moves on
        fresh = s.get(first.contact)
        assert fresh == second  # never the stale version 1
        assert fresh is not second
        assert s.get(first.contact) is fresh
        _raw(path, "DELETE FROM consents")
        assert s.get(first.contact) is None
        assert s.get(first.contact) is None


def test_sqlite_cache_is_a_bounded_lru(tmp_path: Path) -> None:
    with SQLiteStore(tmp_path / "c.db", cache_size=2) as s:
        a, b, c = (opted_in(f"+1555000{i}") for i in range(3))
        for record in (a, b, c):
            save(s, record, 0)
        assert s.get(c.contact) is c
        assert s.get(b.contact) is b
        read = s.get(a.contact)  # evicted: read back
        assert read == a
        assert read is not a
        assert s.get(c.contact) is not c  # least recently used: evicted
    with SQLiteStore(tmp_path / "c.db", cache_size=0) as s:
        assert s.get(a.contact) == a
        assert s.get(a.contact) is not s.get(a.contact)


def test_sqlite_cache_is_shared_by_threads(tmp_path: Path) -> None:
    with SQLiteStore(tmp_path / "c.db", cache_size=3) as s:
        records = [opted_in(f"+1555000{i}") for i in range(6)]
        for record in records:
            save(s, record, 0)
        errors: list[BaseException] = []

        def reader(n: int) -> None:
            try:
                for i in range(200):
                    record = records[(i + n) % len(records)]
                    assert s.get(record.contact) == record
            except BaseException as e:  # pragma: no cover - reported below
                errors.append(e)

        threads = [threading.Thread(target=reader, args=(n,)) for n in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert errors == []


def test_sqlite_rejects_a_bad_cache_size(tmp_path: Path) -> None:
    for bad in (-1, True, 1.5):
        with pytest.raises(ValueError, match="cache_size"):
            SQLiteStore(tmp_path / "c.db", cache_size=bad)  # type: ignore[arg-type]
