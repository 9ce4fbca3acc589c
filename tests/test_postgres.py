"""PostgresStore and AsyncPostgresStore: what only a server can show.

The store protocol itself is checked by the contract suite
(``test_stores.py``, kinds "postgres" and "postgres-async") and the service
tests; here: connection strings and unreachable servers, schema migrations,
tables edited by hand, lost connections and deadlocks, ``SKIP LOCKED``
claims, the pool, pickling and ``fork``, the async store under the async
service, and the optional import.
"""

from __future__ import annotations

import asyncio
import json
import multiprocessing
import os
import pickle
import subprocess
import sys
import threading
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from optin_core import (
    AsyncConsentService,
    ConsentService,
    ConsentState,
    InvalidInput,
    MessageKind,
    OptinError,
    Outgoing,
    Policy,
    RecordError,
    StaleVersion,
    StoreUnavailable,
    verify,
)

from .flows import at
from .postgres_server import postgres_dsn, postgres_store
from .service_helpers import Clock, Sender

if os.environ.get("CI"):
    import psycopg  # CI installs it: a missing driver fails, never skips
else:
    psycopg = pytest.importorskip("psycopg")

from optin_core.stores.postgres import (
    STORE_SCHEMA,
    AsyncPostgresStore,
    PostgresStore,
    _Sql,
)

POLICY = Policy(org_name="Acme")
A = "+15550001"
B = "+15550002"


def sql(dsn: str, statement: str, *args: object) -> list[tuple[Any, ...]]:
    """Run ``statement`` on the store's schema, by hand (autocommit)."""
    with psycopg.connect(dsn, autocommit=True) as conn:
        cur = conn.execute(statement, args or None)
        return cur.fetchall() if cur.description else []


@pytest.fixture
def dsn() -> str:
    return postgres_dsn()


@pytest.fixture
def store(dsn: str) -> Iterator[PostgresStore]:
    s = postgres_store(dsn)
    yield s
    s.close()


def service(store: Any, sender: Sender | None = None) -> ConsentService:
    return ConsentService(
        POLICY,
        store,
        sender or Sender(),
        clock=Clock(),
        on_send_error=lambda _m, _e: None,
    )


def opted_in(store: Any, contact: str = A) -> ConsentService:
    svc = service(store)
    svc.request_opt_in(contact)
    svc.receive(contact, "Yes", message_id=f"yes-{contact}")
    return svc


# ---------------------------------------------------------------------------
# Connection strings and unreachable servers


def test_an_unreachable_server_names_host_and_port_never_the_password() -> None:
    s = PostgresStore("postgresql://consent:s3cr3t-pw@127.0.0.1:1/consent", timeout=2)
    assert "s3cr3t" not in repr(s)
    assert "port=1" in repr(s)
    with pytest.raises(StoreUnavailable) as info:
        s.get(A)
    error = info.value
    assert isinstance(error, OptinError)
    assert isinstance(error, ConnectionError)
    assert error.server == "127.0.0.1:1"
    assert "127.0.0.1:1" in str(error)
    assert "unreachable" in str(error)
    assert "s3cr3t" not in str(error)
    assert not error.outcome_unknown
    with pytest.raises(StoreUnavailable):
        service(s).receive(A, "yes", message_id="m1")
    s.close()


def test_a_password_echoed_by_the_server_is_scrubbed(dsn: str) -> None:
    # A database that does not exist: the server answers, and refuses.
    bad = dsn.replace("dbname=postgres", "dbname=no_such_db_s3cr3t") + (
        " password=s3cr3t"
    )
    s = PostgresStore(bad, timeout=5)
    with pytest.raises(StoreUnavailable) as info:
        s.get(A)
    assert "s3cr3t" not in str(info.value)
    assert "***" in str(info.value)
    s.close()


def test_async_unreachable_server() -> None:
    async def main() -> None:
        s = AsyncPostgresStore("host=127.0.0.1 port=1 password=pw-xyz", timeout=2)
        with pytest.raises(StoreUnavailable) as info:
            await s.get(A)
        assert "pw-xyz" not in str(info.value)
        assert info.value.server == "127.0.0.1:1"
        await s.close()

    asyncio.run(main())


@pytest.mark.parametrize(
    ("kwargs", "error"),
    [
        ({"conninfo": "host=x port"}, ValueError),
        ({"conninfo": 5}, TypeError),
        ({"conninfo": "", "min_size": -1}, ValueError),
        ({"conninfo": "", "max_size": 0}, ValueError),
        ({"conninfo": "", "min_size": 3, "max_size": 2}, ValueError),
        ({"conninfo": "", "timeout": 0}, ValueError),
        ({"conninfo": "", "timeout": True}, ValueError),
        ({"conninfo": "", "cache_size": -1}, ValueError),
    ],
)
def test_bad_settings_are_refused(kwargs: dict[str, Any], error: type) -> None:
    for cls in (PostgresStore, AsyncPostgresStore):
        with pytest.raises(error):
            cls(**kwargs)


def test_a_closed_store_refuses_use(store: PostgresStore) -> None:
    store.get(A)
    store.close()
    store.close()
    with pytest.raises(RuntimeError, match="closed"):
        store.get(A)
    with pytest.raises(RuntimeError, match="closed"):
        store.migrate()


def test_the_pool_timeout_is_a_store_unavailable(dsn: str) -> None:
    s = postgres_store(dsn, max_size=1, timeout=0.5)
    s.get(A)
    pool = s._ready()
    # The only connection, held: the next operation waits, then gives up.
    with (
        pool.connection(),
        pytest.raises(StoreUnavailable, match="no connection within"),
    ):
        s.get(A)
    assert s.get(A) is None


# ---------------------------------------------------------------------------
# Schema and migrations


def test_the_schema_is_created_on_first_use_and_recorded(
    store: PostgresStore, dsn: str
) -> None:
    opted_in(store)
    tables = {
        row[0]
        for row in sql(
            dsn,
            "SELECT table_name FROM information_schema.tables "
            "WHERE table_schema = current_schema()",
        )
    }
    assert {"consents", "events", "outbox", "meta", "optin_core_schema"} <= tables
    assert sql(dsn, "SELECT version FROM optin_core_schema") == [(STORE_SCHEMA,)]
    assert store.migrate() == STORE_SCHEMA  # idempotent
    assert sql(dsn, "SELECT count(*) FROM optin_core_schema") == [(1,)]


def test_concurrent_first_uses_migrate_once(dsn: str) -> None:
    stores = [postgres_store(dsn) for _ in range(6)]
    barrier = threading.Barrier(len(stores))
    errors: list[BaseException] = []

    def first_use(s: PostgresStore) -> None:
        barrier.wait()
        try:
            assert s.get(A) is None
        except BaseException as e:  # collected below
            errors.append(e)

    threads = [threading.Thread(target=first_use, args=(s,)) for s in stores]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert sql(dsn, "SELECT version FROM optin_core_schema") == [(STORE_SCHEMA,)]


def test_without_migrate_the_store_asks_for_a_migration(dsn: str) -> None:
    s = postgres_store(dsn, migrate=False)
    with pytest.raises(RecordError, match=r"store schema 0 .* needs 2") as info:
        s.get(A)
    assert "migrate()" in str(info.value)
    assert sql(dsn, "SELECT to_regclass('consents')") == [(None,)]  # no DDL
    assert s.migrate() == STORE_SCHEMA
    opted_in(s)
    assert s.get(A) is not None


def test_a_newer_schema_is_refused_with_both_versions(dsn: str) -> None:
    postgres_store(dsn).migrate()
    sql(dsn, "INSERT INTO optin_core_schema (version, library) VALUES (3, 'later')")
    for s in (postgres_store(dsn), postgres_store(dsn, migrate=False)):
        with pytest.raises(RecordError, match="newer") as info:
            s.get(A)
        assert "store schema 3" in str(info.value)
        assert "knows 2" in str(info.value)
        with pytest.raises(RecordError, match="newer"):
            s.migrate()

    async def main() -> None:
        a = AsyncPostgresStore(dsn, timeout=5)
        with pytest.raises(RecordError, match="newer"):
            await a.get(A)
        with pytest.raises(RecordError, match="newer"):
            await a.migrate()
        await a.close()

    asyncio.run(main())


# ---------------------------------------------------------------------------
# Tables edited by hand


def _stopped(store: PostgresStore) -> ConsentService:
    svc = opted_in(store)
    svc.receive(A, "STOP", message_id="stop-1")
    return svc


def _roll_back_head(dsn: str) -> None:
    """Put back an earlier head of the same log (to un-stop the contact)."""
    from optin_core import AuditEvent
    from optin_core.stores._rows import encode

    rows = sql(dsn, "SELECT data FROM events ORDER BY version")
    log = [AuditEvent.from_dict(json.loads(r[0])) for r in rows]
    earlier = verify(A, log[:2])
    assert earlier.state is ConsentState.OPTED_IN
    sql(
        dsn,
        "UPDATE consents SET version = %s, state = %s, digest = %s, data = %s",
        earlier.version,
        earlier.state.value,
        earlier.digest,
        encode(earlier),
    )


EDITS = {
    "digest": lambda dsn: sql(
        dsn, "UPDATE consents SET digest = %s", "sha256:" + "0" * 64
    ),
    "version": lambda dsn: sql(dsn, "UPDATE consents SET version = 7"),
    "last_event": lambda dsn: sql(
        dsn, "DELETE FROM events WHERE version = (SELECT max(version) FROM events)"
    ),
    "log": lambda dsn: sql(dsn, "DELETE FROM events"),
    "roll_back": _roll_back_head,
    "data": lambda dsn: sql(dsn, "UPDATE consents SET data = '{not json'"),
    "head_deleted": lambda dsn: sql(dsn, "DELETE FROM consents"),
}


@pytest.mark.parametrize(
    ("edit", "cached"),
    [
        (edit, cached)
        for edit in sorted(EDITS)
        for cached in (False, True)
        # A cached head is served while the row names its version and digest.
        if not (edit == "data" and cached)
    ],
)
def test_a_table_edited_by_hand_is_a_record_error_naming_the_contact(
    dsn: str, edit: str, cached: bool
) -> None:
    writer = postgres_store(dsn)
    _stopped(writer)
    assert writer.get(A).state is ConsentState.STOPPED
    reader = writer if cached else postgres_store(dsn)
    EDITS[edit](dsn)
    with pytest.raises(RecordError) as info:
        reader.get(A)
    assert info.value.contact == A
    assert A in str(info.value)
    with pytest.raises(RecordError):
        service(reader).send_text(A, "never after a stop")


def test_a_contact_deleted_whole_is_unknown_again(
    store: PostgresStore, dsn: str
) -> None:
    opted_in(store)
    assert store.get(A) is not None  # cached
    sql(dsn, "DELETE FROM events")
    sql(dsn, "DELETE FROM consents")
    assert store.get(A) is None
    assert store.log(A) == []


def test_a_head_edited_at_its_own_version_refuses_the_write(
    store: PostgresStore, dsn: str
) -> None:
    """The cached head names version 2; the row says 2 with another digest
    (edited by hand): the compare-and-set refuses it as a fork."""
    svc = opted_in(store)
    consent, events, expected = _next_text(store)
    sql(dsn, "UPDATE consents SET digest = %s", "sha256:" + "1" * 64)
    with pytest.raises(StaleVersion, match="stale or forked"):
        store.put(consent, events, expected_version=expected)
    with pytest.raises(RecordError):
        svc.get(A)


def test_a_forged_first_write_is_refused(store: PostgresStore) -> None:
    import attrs

    from optin_core import Consent, RequestOptIn, decide

    d = decide(Consent.new(A), RequestOptIn(at=at(0)), POLICY, namespace="n")
    (event,) = d.events
    forged = attrs.evolve(event, prev="sha256:" + "2" * 64)
    with pytest.raises(StaleVersion, match="stale or forked"):
        store.put(d.consent, [forged], expected_version=0)
    assert store.get(A) is None


@pytest.mark.parametrize("cache_size", [1024, 0])
def test_a_message_key_already_in_the_outbox_refuses_the_write(
    dsn: str, cache_size: int
) -> None:
    s = postgres_store(dsn, cache_size=cache_size)
    svc = opted_in(s)
    consent, events, expected = _next_text(s)
    (text,) = events[0].sent
    # A row with the key already there (a replayed write, or rows edited by
    # hand): nothing is half-written.
    sql(
        dsn,
        "INSERT INTO outbox (key, contact, version, position, kind, data, status)"
        " SELECT %s, contact, version, 9, kind, data, 'sent' FROM outbox LIMIT 1",
        text.key,
    )
    before = _snapshot(s, dsn)
    with pytest.raises(RecordError, match="already in the outbox"):
        s.put(consent, events, expected_version=expected)
    assert _snapshot(s, dsn) == before
    assert svc.get(A).version == expected


def test_an_unreadable_outbox_row_is_quarantined(dsn: str) -> None:
    sender = Sender(fail=lambda m: True)
    s = postgres_store(dsn)
    svc = service(s, sender)
    (broken,) = svc.request_opt_in(A).outgoing
    svc.request_opt_in(B)
    sql(dsn, "UPDATE outbox SET data = '{garbage' WHERE key = %s", broken.key)
    sender.fail = None
    assert svc.flush() == 1
    assert sender.sent[-1].contact == B
    assert s.message_status(broken.key) == "quarantined"
    assert svc.flush() == 0
    # Met as the next message of its contact, it is set aside too.
    (again,) = svc.receive(B, "help", message_id="h").outgoing
    assert s.message_status(again.key) == "sent"


def test_quarantined_while_claiming_the_next_message(dsn: str) -> None:
    sender = Sender(fail=lambda m: m.kind is MessageKind.OPT_IN_REQUEST)
    s = postgres_store(dsn)
    svc = service(s, sender)
    (request,) = svc.request_opt_in(A).outgoing  # its send fails: pending
    sql(dsn, "UPDATE outbox SET data = '{garbage' WHERE key = %s", request.key)
    sender.fail = None
    decision = svc.receive(A, "help", message_id="h")  # claims the old head
    assert s.message_status(request.key) == "quarantined"
    (answer,) = decision.outgoing
    assert s.message_status(answer.key) == "sent"


def test_dead_letters_and_provider_ids(dsn: str) -> None:
    s = postgres_store(dsn)
    svc = ConsentService(
        POLICY,
        s,
        Sender(fail=lambda m: True),
        clock=Clock(),
        max_send_attempts=1,
        on_send_error=lambda _m, _e: None,
        on_dead_letter=lambda _m, _e: None,
    )
    svc.request_opt_in(A)
    svc.request_opt_in(B)
    assert [r.message.contact for r in s.dead_letters()] == [A, B]
    assert [r.message.contact for r in s.dead_letters(limit=1)] == [A]
    with pytest.raises(TypeError, match="provider_id"):
        s.mark_sent("k", provider_id=5)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="aware"):
        s.mark_sent("k", at=Clock()().replace(tzinfo=None))
    with pytest.raises(ValueError, match="status"):
        s.delivery("k", "read", at=Clock()())  # type: ignore[arg-type]
    # Errors and ids with NULs are stored (PostgreSQL text holds none).
    assert s.release("nope", error="x\x00y") == 0


def test_conflict_backoff_grows_then_is_forgotten(store: PostgresStore) -> None:
    waits = [store._backoff(A) for _ in range(12)]
    assert all(0 <= w <= 0.05 for w in waits)
    assert store._conflicts[A][0] == 12
    store._conflicts[A] = (12, store._conflicts[A][1] - 5)  # a quiet while ago
    assert store._backoff(A) <= 0.002
    store._conflicts.update({f"+1{i}": (1, 0.0) for i in range(10_001)})
    store._backoff(B)
    assert list(store._conflicts) == [B]


def test_a_lasting_deadlock_outside_put_is_raised(store: PostgresStore) -> None:
    def always(*_args: Any) -> Any:
        yield _Sql("DO $$ BEGIN RAISE EXCEPTION 'x' USING ERRCODE = '40P01'; END $$")
        return []

    store._contacts_steps = always  # type: ignore[method-assign]
    with pytest.raises(psycopg.errors.DeadlockDetected):
        store.contacts()


def _die_on(dsn: str, table: str) -> None:
    """A trigger that ends the session mid-statement, as a crash would."""
    sql(
        dsn,
        "CREATE OR REPLACE FUNCTION die() RETURNS trigger AS $$ BEGIN "
        "PERFORM pg_terminate_backend(pg_backend_pid()); RETURN NEW; END "
        "$$ LANGUAGE plpgsql",
    )
    sql(
        dsn,
        f"CREATE TRIGGER die BEFORE INSERT ON {table} "
        "FOR EACH ROW EXECUTE FUNCTION die()",
    )


def test_a_connection_lost_during_a_one_statement_write_is_unknown(
    dsn: str,
) -> None:
    s = postgres_store(dsn)
    svc = opted_in(s)
    before = _snapshot(s, dsn)
    _die_on(dsn, "events")
    with pytest.raises(StoreUnavailable) as info:
        svc.send_text(A, "lost mid-write")
    assert info.value.outcome_unknown
    assert "may or may not" in str(info.value)
    sql(dsn, "DROP TRIGGER die ON events")
    assert _snapshot(s, dsn) == before  # here, it was not saved


def test_async_lost_connections_and_conflicts(dsn: str) -> None:
    async def main() -> None:
        async with AsyncPostgresStore(dsn, timeout=10) as store:
            svc = AsyncConsentService(POLICY, store, Sender(), clock=Clock())
            await svc.request_opt_in(A)
            _die_on(dsn, "events")
            with pytest.raises(StoreUnavailable) as info:
                await svc.receive(A, "yes", message_id="y")
            assert info.value.outcome_unknown
            sql(dsn, "DROP TRIGGER die ON events")
            # A deadlock in a write: the service decides again.
            sql(dsn, "CREATE SEQUENCE once_seq")  # outlives the rollback
            sql(
                dsn,
                "CREATE OR REPLACE FUNCTION once() RETURNS trigger AS $$ BEGIN "
                "IF nextval('once_seq') = 1 THEN "
                "RAISE EXCEPTION 'x' USING ERRCODE = '40P01'; END IF; "
                "RETURN NEW; END $$ LANGUAGE plpgsql",
            )
            sql(
                dsn,
                "CREATE TRIGGER once BEFORE INSERT ON events "
                "FOR EACH ROW EXECUTE FUNCTION once()",
            )
            decision = await svc.receive(A, "yes", message_id="y2")
            assert (await store.get(A)) == decision.consent
            # Reused keys and closed stores.
            consent, events, expected = await _next_text_async(store)
            (text,) = events[0].sent
            sql(
                dsn,
                "INSERT INTO outbox (key, contact, version, position, kind, "
                "data, status) SELECT %s, contact, version, 9, kind, data, "
                "'sent' FROM outbox LIMIT 1",
                text.key,
            )
            with pytest.raises(RecordError, match="already in the outbox"):
                await store.put(consent, events, expected_version=expected)
            assert len(await store.messages(A)) == 3
            assert await store.dead_letters(limit=1) == []
            assert await store.due(now=Clock()(), limit=5) == []

    asyncio.run(main())


async def _next_text_async(store: AsyncPostgresStore) -> tuple[Any, ...]:
    from optin_core import SendText, decide

    head = await store.get(A)
    assert head is not None
    d = decide(head, SendText(body="x", at=at(5), by="agent"), POLICY, namespace="n")
    return d.consent, d.events, head.version


def test_an_edited_event_row_fails_verification(store: PostgresStore, dsn: str) -> None:
    svc = opted_in(store)
    (data,) = sql(dsn, "SELECT data FROM events WHERE version = 1")[0]
    edited = json.loads(data)
    edited["actor"] = "someone else"
    sql(dsn, "UPDATE events SET data = %s WHERE version = 1", json.dumps(edited))
    with pytest.raises(RecordError) as info:
        svc.history(A)
    assert info.value.index == 0
    sql(dsn, "UPDATE events SET data = 'oops' WHERE version = 2")
    with pytest.raises(RecordError) as info:
        store.log(A)
    assert (info.value.contact, info.value.index) == (A, 1)


# ---------------------------------------------------------------------------
# Message ids any webhook may carry


@pytest.mark.parametrize("message_id", ["m\x00id", "é" * 64, "SM" * 100])
def test_any_message_id_is_a_key(store: PostgresStore, message_id: str) -> None:
    svc = opted_in(store)
    assert svc.receive(A, "help", message_id=message_id).changed
    assert not svc.receive(A, "help", message_id=message_id).changed  # duplicate
    assert store.log(A)[-1].message_id == message_id
    svc.receive(B, "help", message_id=message_id)  # another contact's: fine
    assert store.log(B)[-1].message_id == message_id


def test_a_message_id_with_lone_surrogates_is_refused(store: PostgresStore) -> None:
    svc = opted_in(store)
    with pytest.raises(InvalidInput, match="surrogates"):
        svc.receive(A, "help", message_id="m\ud800id")
    assert store.log(A)[-1].message_id != "m\ud800id"


# ---------------------------------------------------------------------------
# Failures mid-operation


class Injecting(PostgresStore):
    """A PostgresStore whose ``put`` runs an extra statement after its
    ``after``-th statement, ``times`` times."""

    inject: str = ""
    after = 2
    times = 1

    def _put_steps(self, *args: Any) -> Any:  # type: ignore[override]
        steps = super()._put_steps(*args)
        sent = 0
        result: Any = None
        try:
            while True:
                request = steps.send(result)
                result = yield request
                sent += 1
                if sent == self.after and self.times > 0:
                    self.times -= 1
                    yield _Sql(self.inject)
        except StopIteration as done:
            return done.value


def _snapshot(store: PostgresStore, dsn: str) -> Any:
    return (
        sql(dsn, "SELECT contact, version, digest FROM consents ORDER BY contact"),
        sql(dsn, "SELECT contact, version FROM events ORDER BY contact, version"),
        sql(dsn, "SELECT key, status, leased_until FROM outbox ORDER BY seq"),
    )


KILL_MYSELF = "SELECT pg_terminate_backend(pg_backend_pid())"


@pytest.mark.parametrize("after", [1, 2])  # the head read; the head and log
def test_a_connection_lost_mid_transaction_is_retried_on_a_fresh_one(
    dsn: str, after: int
) -> None:
    # Without a cached head a write is a transaction: lost before its
    # commit, it wrote nothing, and is run again on a fresh connection.
    s = Injecting(dsn, timeout=10, cache_size=0)
    s.inject, s.after, s.times = KILL_MYSELF, after, 0
    svc = opted_in(s)
    s.times = 1
    svc.send_text(A, "after the reconnection")
    assert s.times == 0  # the connection was killed once...
    log = s.log(A)
    assert [e.trigger.value for e in log][-1] == "text"  # ...and written once
    assert [e.trigger.value for e in log].count("text") == 1
    assert verify(A, log, s.get(A)) == s.get(A)
    assert s.pending() == []
    s.close()


def test_a_connection_lost_after_the_write_keeps_it(dsn: str) -> None:
    # The usual write is one statement: lost after it, the write is saved
    # and only the claim of its message is lost (flush delivers it).
    s = Injecting(dsn, timeout=10)
    s.inject, s.after, s.times = KILL_MYSELF, 1, 0
    sender = Sender()
    clock = Clock()
    svc = ConsentService(POLICY, s, sender, clock=clock)
    svc.request_opt_in(A)
    s.times = 1
    decision = svc.receive(A, "yes", message_id="y")
    assert s.times == 0
    assert s.get(A) == decision.consent
    (confirmation,) = decision.outgoing
    assert s.pending() == [confirmation]
    assert confirmation.key not in [m.key for m in sender.sent]
    # Claimed in the write, whose answer was lost: delivered once the
    # lease runs out, like a message whose sender crashed.
    clock.advance(minutes=3)
    assert svc.flush() == 1
    assert sender.keys()[-1] == confirmation.key
    s.close()


def test_a_connection_lost_for_good_writes_nothing(dsn: str) -> None:
    s = Injecting(dsn, timeout=10, cache_size=0)
    s.inject, s.after, s.times = KILL_MYSELF, 2, 0
    svc = opted_in(s)
    before = _snapshot(s, dsn)
    s.times = 2  # the retry's connection is killed too
    with pytest.raises(StoreUnavailable) as info:
        svc.send_text(A, "lost")
    assert not info.value.outcome_unknown
    assert "nothing was written" in str(info.value)
    assert _snapshot(s, dsn) == before
    s.close()


def test_a_deadlock_in_put_is_a_conflict_the_service_retries(dsn: str) -> None:
    s = Injecting(dsn, timeout=10, cache_size=0)
    s.inject = "DO $$ BEGIN RAISE EXCEPTION 'injected' USING ERRCODE = '40P01'; END $$"
    svc = opted_in(s)
    before = _snapshot(s, dsn)
    s.times = 1
    consent, events, expected = _next_text(s)
    with pytest.raises(StaleVersion, match="DeadlockDetected"):
        s.put(consent, events, expected_version=expected)
    assert _snapshot(s, dsn) == before
    s.times, s.after = 1, 1
    s.inject = "DO $$ BEGIN RAISE EXCEPTION 'injected' USING ERRCODE = '40001'; END $$"
    decision = svc.send_text(A, "decided again")  # the service retries
    assert s.times == 0
    assert s.get(A) == decision.consent
    s.close()


def _next_text(s: PostgresStore) -> tuple[Any, ...]:
    from optin_core import SendText, decide

    head = s.get(A)
    assert head is not None
    d = decide(head, SendText(body="x", at=at(5), by="agent"), POLICY, namespace="n")
    return d.consent, d.events, head.version


def test_other_operations_retry_deadlocks(store: PostgresStore, dsn: str) -> None:
    opted_in(store)
    calls = [0]
    steps = store._contacts_steps

    def flaky(*args: Any) -> Any:
        calls[0] += 1
        if calls[0] == 1:
            yield _Sql(
                "DO $$ BEGIN RAISE EXCEPTION 'x' USING ERRCODE = '40P01'; END $$"
            )
        return (yield from steps(*args))

    store._contacts_steps = flaky  # type: ignore[method-assign]
    assert store.contacts() == [A]
    assert calls[0] == 2


def test_a_server_restart_is_survived_by_reads(store: PostgresStore, dsn: str) -> None:
    opted_in(store)
    # Every pooled connection dies (as after a restart of the server).
    sql(
        dsn,
        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
        "WHERE application_name = 'optin_core' AND pid != pg_backend_pid()",
    )
    assert store.get(A).state is ConsentState.OPTED_IN


# ---------------------------------------------------------------------------
# SKIP LOCKED


def test_claim_skips_a_message_another_worker_is_claiming(
    store: PostgresStore, dsn: str
) -> None:
    sender = Sender(fail=lambda _m: True)
    svc = service(store, sender)
    svc.request_opt_in(A)  # its send fails: pending, unclaimed
    (message,) = store.pending()
    now = Clock()()
    with psycopg.connect(dsn) as other:  # another machine, mid-claim
        other.execute("SELECT 1 FROM outbox WHERE key = %s FOR UPDATE", (message.key,))
        # Not waited for: passed over at once.
        assert not store.claim(message.key, until=now + timedelta(minutes=2), now=now)
    assert store.claim(message.key, until=now + timedelta(minutes=2), now=now)


def test_flushing_workers_never_send_a_message_twice(dsn: str) -> None:
    stores = [postgres_store(dsn) for _ in range(4)]
    setup = service(stores[0], Sender(fail=lambda _m: True))
    contacts = [f"+1555{i:04d}" for i in range(40)]
    for contact in contacts:
        setup.request_opt_in(contact)
    assert len(stores[0].pending()) == 40
    senders = [Sender() for _ in stores]
    flushers = [service(s, snd) for s, snd in zip(stores, senders, strict=True)]
    barrier = threading.Barrier(len(flushers))

    def flush(svc: ConsentService) -> None:
        barrier.wait()
        svc.flush()

    threads = [threading.Thread(target=flush, args=(f,)) for f in flushers]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    keys = [m.key for snd in senders for m in snd.sent]
    assert len(keys) == len(set(keys)) == 40
    assert stores[0].pending() == []


# ---------------------------------------------------------------------------
# Processes: pickling and fork


def test_the_store_pickles_to_its_settings(dsn: str) -> None:
    s = postgres_store(dsn, min_size=0, max_size=3, cache_size=7, migrate=False)
    copy = pickle.loads(pickle.dumps(s))
    assert (copy.conninfo, copy.min_size, copy.max_size, copy.cache_size) == (
        dsn,
        0,
        3,
        7,
    )
    assert not copy.migrate_on_first_use
    copy.migrate()
    opted_in(copy)
    assert s.get(A) is not None
    copy.close()


def _child(store: PostgresStore, queue: Any) -> None:
    try:
        svc = service(store)
        svc.receive(B, "help", message_id="child")
        queue.put(store.get(B).version)
    except BaseException as e:  # reported to the parent
        queue.put(repr(e))


def test_a_forked_child_opens_its_own_pool(store: PostgresStore) -> None:
    opted_in(store)  # the parent's pool is open
    ctx = multiprocessing.get_context("fork")
    queue = ctx.Queue()
    child = ctx.Process(target=_child, args=(store, queue))
    child.start()
    assert queue.get(timeout=60) == 1
    child.join(timeout=60)
    assert child.exitcode == 0
    # The parent's connections were never touched by the child.
    assert store.get(A).state is ConsentState.OPTED_IN
    assert store.get(B).version == 1


# ---------------------------------------------------------------------------
# The async store under the async service


def test_the_async_service_on_the_async_store(dsn: str) -> None:
    sent: list[Outgoing] = []

    async def send(message: Outgoing) -> None:
        await asyncio.sleep(0)
        sent.append(message)

    async def main() -> None:
        async with AsyncPostgresStore(dsn, timeout=10) as store:
            svc = AsyncConsentService(POLICY, store, send, clock=Clock())
            await svc.request_opt_in(A)
            results = await asyncio.gather(
                *(svc.receive(A, "Yes", message_id="dup") for _ in range(6))
            )
            assert sum(d.changed for d in results) == 1
            assert await svc.can_send(A)
            await asyncio.gather(*(svc.send_text(A, f"t{i}") for i in range(4)))
            await svc.receive(A, "STOP", message_id="stop")
            assert await svc.flush() == 0
            history = await svc.history(A)
            assert history.head.state is ConsentState.STOPPED
            assert history.head == await store.get(A)
            assert await store.pending() == []
            assert await store.contacts() == [A]
            assert await store.message_status(sent[0].key) == "sent"
            assert await store.claimed_version(sent[0].key) == 1

    asyncio.run(main())
    kinds = [m.kind for m in sent]
    assert kinds[:2] == [MessageKind.OPT_IN_REQUEST, MessageKind.OPT_IN_CONFIRMATION]
    assert kinds.count(MessageKind.TEXT) == 4
    assert kinds[-1] is MessageKind.STOP_CONFIRMATION


def test_the_async_service_keeps_the_queue_order_on_the_async_store(
    dsn: str,
) -> None:
    sender = Sender()
    sender.fail_first(1)

    async def main() -> None:
        async with AsyncPostgresStore(dsn, timeout=10) as store:
            svc = AsyncConsentService(
                POLICY, store, sender, clock=Clock(), on_send_error=lambda m, e: None
            )
            await svc.request_opt_in(A)  # fails, stays pending
            await svc.receive(A, "help", message_id="h")  # request, then HELP
            await svc.receive(A, "yes", message_id="y")
            assert await svc.flush() == 0
            history = await svc.history(A)
            assert [e.trigger for e in history.events] == ["request", "help", "consent"]
            assert history.head == await svc.get(A)
            records = await store.messages(A)
            assert [r.status for r in records] == ["sent"] * 3
            assert records[0].attempts == 1

    asyncio.run(main())
    assert sender.kinds() == [
        MessageKind.OPT_IN_REQUEST,
        MessageKind.HELP,
        MessageKind.OPT_IN_CONFIRMATION,
    ]


def test_the_async_store_is_bound_to_its_loop(dsn: str) -> None:
    async def main() -> None:
        store = AsyncPostgresStore(dsn, timeout=10)
        assert await store.get(A) is None

        def from_another_loop() -> None:
            with pytest.raises(RuntimeError, match="event loop"):
                asyncio.run(store.get(A))

        await asyncio.to_thread(from_another_loop)
        await store.close()

    asyncio.run(main())


def test_the_async_store_without_migrate(dsn: str) -> None:
    async def main() -> None:
        store = AsyncPostgresStore(dsn, timeout=10, migrate=False)
        with pytest.raises(RecordError, match="migrate"):
            await store.get(A)
        assert await store.migrate() == STORE_SCHEMA
        assert await store.get(A) is None
        await store.close()
        with pytest.raises(RuntimeError, match="closed"):
            await store.get(A)
        with pytest.raises(RuntimeError, match="closed"):
            await store.migrate()

    asyncio.run(main())


def test_the_async_store_retries_a_lost_connection(dsn: str) -> None:
    async def main() -> None:
        async with AsyncPostgresStore(dsn, timeout=10) as store:
            svc = AsyncConsentService(POLICY, store, Sender(), clock=Clock())
            await svc.request_opt_in(A)
            sql(
                dsn,
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                "WHERE application_name = 'optin_core' AND pid != pg_backend_pid()",
            )
            assert (await svc.get(A)).state is ConsentState.PENDING
            await svc.receive(A, "yes", message_id="y")
            assert (await store.get(A)).state is ConsentState.OPTED_IN

    asyncio.run(main())


# ---------------------------------------------------------------------------
# Installed without psycopg


def test_the_names_import_without_psycopg_and_refuse_use(tmp_path: Path) -> None:
    code = """
import sys
sys.modules["psycopg"] = None
sys.modules["psycopg_pool"] = None
import optin_core
from optin_core import *
from optin_core import PostgresStore, AsyncPostgresStore
from optin_core.stores import PostgresStore as P2
assert "PostgresStore" in optin_core.__all__
for cls in (PostgresStore, AsyncPostgresStore, P2):
    try:
        cls("host=x")
    except ImportError as e:
        assert "optin-core[postgres]" in str(e), e
    else:
        raise SystemExit("no ImportError")
svc = optin_core.ConsentService(optin_core.Policy(org_name="A"),
                                optin_core.MemoryStore(), lambda m: None)
svc.request_opt_in("+1555")
print("ok")
"""
    done = subprocess.run(
        [sys.executable, "-c", code],
        check=False,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "ok"


def test_a_missing_module_that_is_not_psycopg_is_not_hidden() -> None:
    import optin_core
    from optin_core import stores

    with pytest.raises(AttributeError):
        stores.NoSuchStore  # noqa: B018
    with pytest.raises(AttributeError):
        optin_core.NoSuchStore  # noqa: B018
    assert optin_core.PostgresStore is PostgresStore
    assert stores.AsyncPostgresStore is AsyncPostgresStore


def test_the_stand_in_names_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    from optin_core import stores

    def missing(name: str) -> Any:
        raise ModuleNotFoundError("No module named 'psycopg'", name="psycopg")

    monkeypatch.delitem(vars(stores), "PostgresStore", raising=False)
    monkeypatch.setattr(stores, "import_module", missing)
    stand_in = stores.__getattr__("PostgresStore")
    with pytest.raises(ImportError, match=r"optin-core\[postgres\]"):
        stand_in("host=x")

    def broken(name: str) -> Any:
        raise ImportError("something else", name="attrs")

    monkeypatch.setattr(stores, "import_module", broken)
    with pytest.raises(ImportError, match="something else"):
        stores.__getattr__("PostgresStore")
