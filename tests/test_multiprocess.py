"""Several processes, one database: the store's guarantees under real races.

Four processes on one SQLite file, or eight on one PostgreSQL database,
drive the same 1,000 contacts, in the same order so that they
collide, through random requests, replies (STOP, yes, unclear, HELP, START,
duplicated and concurrently redelivered webhooks), texts and flushes, with a
provider that fails 10 % of sends. Each process logs the messages its ``send``
actually accepted, with a system-wide monotonic timestamp. Afterwards a final
flush runs and the send logs are checked against the stored consent logs,
which must verify, replay to their heads and list every cancellation.
"""

from __future__ import annotations

import json
import multiprocessing
import time
from collections import Counter, defaultdict
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from optin_core import MessageKind, Outgoing, verify
from optin_core._service import ConsentService
from optin_core.stores import SQLiteStore

from .postgres_server import postgres_dsn
from .service_helpers import (
    cancellable,
    cancelled_keys,
    decided,
    given_up,
    in_send_order,
    mp_policy,
    mp_worker,
    open_store,
    stop_versions,
)

CONTACTS = 1000
ROUNDS = 2
LATER = timedelta(hours=7)


@pytest.mark.slow
@pytest.mark.parametrize(
    ("kind", "processes"), [("sqlite", 4), ("postgres", 8)], ids=["sqlite", "postgres"]
)
def test_processes_sharing_one_database(
    tmp_path: Path, kind: str, processes: int
) -> None:
    if kind == "sqlite":
        path = str(tmp_path / "consent.db")
        SQLiteStore(path).close()  # create the schema once, up front
    else:
        path = postgres_dsn()
        with open_store(path) as store:
            store.migrate()
    ctx = multiprocessing.get_context("spawn")
    sync = ctx.Barrier(processes)
    workers = [
        ctx.Process(
            target=mp_worker,
            args=(path, str(tmp_path), w, CONTACTS, ROUNDS, 1000 + w, sync),
        )
        for w in range(processes)
    ]
    began = time.monotonic()
    for p in workers:
        p.start()
    for p in workers:
        p.join(timeout=300)
    assert [p.exitcode for p in workers] == [0] * processes
    elapsed = time.monotonic() - began

    # Deliver what the flaky provider left pending, logging like the workers.
    log: list[tuple[int, int, str, str, str]] = []

    def send(message: Outgoing) -> None:
        log.append(
            (time.monotonic_ns(), -1, message.key, message.contact, message.kind.value)
        )

    with open_store(path) as store:
        # Hours later: every retry is due (and late stop confirmations are
        # past their deadline: they expire instead of going out).
        service = ConsentService(
            mp_policy(), store, send, clock=lambda: datetime.now(UTC) + LATER
        )
        service.flush()
        assert service.flush() == 0
        assert store.pending() == []
        for w in range(processes):
            with open(tmp_path / f"send-{w}.jsonl") as f:
                log.extend(tuple(json.loads(line)) for line in f)  # type: ignore[misc]
        log.sort()
        sends = Counter(key for _t, _w, key, _c, _k in log)
        assert max(sends.values()) == 1, "a message was sent twice"
        by_contact: dict[str, list[str]] = defaultdict(list)
        for _t, _w, key, contact, _kind in log:
            by_contact[contact].append(key)

        contacts = store.contacts()
        assert len(contacts) > CONTACTS * 0.9  # some never got past NEW
        totals: Counter[str] = Counter()
        for contact in contacts:
            record = store.get(contact)
            assert record is not None
            log = store.log(contact)
            assert record.version == len(log)
            assert verify(contact, log, record) == record
            expected: list[str] = []
            stops = stop_versions(log)
            logged_cancellations = cancelled_keys(log)
            closed = given_up(log)
            kinds = {m.key: m.kind for _v, _p, m in decided(log)}
            confirmations = Counter()
            for version, _pos, message in decided(log):
                status = store.message_status(message.key)
                totals[status or "missing"] += 1
                if status in ("expired", "failed"):
                    # Given up (its deadline passed, or it failed too often):
                    # the log says so, and it never went out.
                    assert closed.get(message.key) == status
                    assert message.key not in sends
                    if status == "expired":
                        assert message.kind is MessageKind.STOP_CONFIRMATION
                    continue
                if status == "cancelled":
                    assert cancellable(log, version, message.kind)
                    assert message.key not in sends
                    assert message.key in logged_cancellations
                    continue
                if message.key in logged_cancellations:
                    # Withdrawn by a stop while a sender held it: it went out,
                    # claimed before the stop was saved.
                    claimed = store.claimed_version(message.key)
                    assert claimed is not None
                    assert any(claimed < v for v in stops if v > version)
                assert status == "sent"
                assert sends[message.key] == 1
                expected.append(message.key)
                if message.kind is MessageKind.STOP_CONFIRMATION:
                    confirmations[version] += 1
                later = [v for v in stops if v > version]
                if later and message.kind is MessageKind.TEXT:
                    # A text goes after a stop only if it was already being
                    # sent when the stop was recorded.
                    claimed = store.claimed_version(message.key)
                    assert claimed is not None
                    assert claimed < min(later)
            # One confirmation per stop at most, none for anything else.
            assert all(n == 1 for n in confirmations.values())
            assert set(confirmations) <= set(stops)
            # Each contact received its messages in decision order (a stop
            # confirmation may overtake a HELP answer waiting for a retry),
            # so no text reached a contact after its stop confirmation.
            assert in_send_order(by_contact[contact], kinds) == in_send_order(
                expected, kinds
            )
    conflicts = sum(
        int((tmp_path / f"conflicts-{w}").read_text()) for w in range(processes)
    )
    print(
        f"\n{processes} {kind} processes x {CONTACTS} contacts: {elapsed:.1f}s, "
        f"{conflicts} write conflicts retried, outbox {dict(totals)}"
    )
    assert totals["sent"] > CONTACTS
    assert totals["cancelled"] > 0  # the race the cancellation exists for happened
