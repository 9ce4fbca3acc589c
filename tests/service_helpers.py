"""Shared helpers of the service and store tests (not a test module)."""

from __future__ import annotations

import json
import os
import random
import time
from collections.abc import Callable, Collection, Iterator, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from optin_core import (
    AuditEvent,
    Consent,
    ConsentState,
    ContactStopped,
    MessageKind,
    Outgoing,
    Policy,
    ResendNotAllowed,
    SendBlocked,
    StaleVersion,
)
from optin_core._service import ConsentService
from optin_core.stores import Lease, MemoryStore, SQLiteStore
from optin_core.testing import FakeClock, RecordingSender

from .postgres_server import async_postgres_store, postgres_store

T0 = datetime(2025, 4, 11, 9, 0, tzinfo=UTC)

#: Kinds a later stop makes undeliverable (the service's rule, restated).
CANCELLED_BY_STOP = frozenset(MessageKind) - {
    MessageKind.STOP_CONFIRMATION,
    MessageKind.HELP,
}

#: "postgres": PostgresStore on the session's throw-away server (a schema
#: per store, see postgres_server.py); "postgres-async": AsyncPostgresStore,
#: driven through a blocking facade.
STORE_KINDS = ("memory", "sqlite", "postgres", "postgres-async")
#: The stores the service tests run on (every shipped store).
SERVICE_STORE_KINDS = STORE_KINDS


def make_store(kind: str, tmp_path: Path) -> Any:
    if kind == "memory":
        return MemoryStore()
    if kind == "postgres":
        return postgres_store()
    if kind == "postgres-async":
        return async_postgres_store()
    return SQLiteStore(tmp_path / "consent.db", synchronous="NORMAL")


@pytest.fixture(name="store", params=("memory", "sqlite"))
def local_store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Any]:
    """A MemoryStore, then a SQLiteStore: the stores a mutation run can build
    per test (a test file imports it to replace the every-kind ``store``)."""
    s = make_store(request.param, tmp_path)
    yield s
    close = getattr(s, "close", None)
    if close is not None:
        close()


def open_store(target: str) -> Any:
    """What a worker process opens: a PostgreSQL DSN, or a SQLite file."""
    if "=" in target or target.startswith("postgres"):
        from optin_core.stores.postgres import PostgresStore

        return PostgresStore(target, max_size=2)
    return SQLiteStore(target, synchronous="NORMAL")


def inner_store(store: Any) -> Any:
    """The shipped store under any test wrappers."""
    while hasattr(store, "inner") and not isinstance(store, (MemoryStore, SQLiteStore)):
        store = store.inner
    return store


class Clock(FakeClock):
    """optin_core.testing's ``FakeClock``, starting at this module's T0."""

    def __init__(self, now: datetime = T0) -> None:
        super().__init__(now)


#: A ``send`` that records messages and fails when told to.
Sender = RecordingSender


class Interceptor:
    """Wraps a store; runs ``before_put`` once, just before the next put."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner
        self.before_put: Callable[[], None] | None = None
        self.puts = 0

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)

    def put(
        self,
        consent: Consent,
        events: Sequence[AuditEvent],
        *,
        expected_version: int,
        lease: Lease | None = None,
    ) -> Outgoing | None:
        self.puts += 1
        hook, self.before_put = self.before_put, None
        if hook is not None:
            hook()
        result: Outgoing | None = self.inner.put(
            consent, events, expected_version=expected_version, lease=lease
        )
        return result


class AsyncStoreAdapter:
    """An :class:`AsyncStore` over a blocking store (for the async tests)."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner

    async def namespace(self) -> str:
        result: str = self.inner.namespace()
        return result

    async def get(self, contact: str) -> Consent | None:
        result: Consent | None = self.inner.get(contact)
        return result

    async def log(self, contact: str, *, after: int = 0) -> list[AuditEvent]:
        result: list[AuditEvent] = self.inner.log(contact, after=after)
        return result

    async def put(
        self,
        consent: Consent,
        events: Sequence[AuditEvent],
        *,
        expected_version: int,
        lease: Lease | None = None,
    ) -> Outgoing | None:
        result: Outgoing | None = self.inner.put(
            consent, events, expected_version=expected_version, lease=lease
        )
        return result

    async def pending(
        self, *, contact: str | None = None, limit: int | None = None
    ) -> list[Outgoing]:
        result: list[Outgoing] = self.inner.pending(contact=contact, limit=limit)
        return result

    async def claim(self, key: str, *, until: datetime, now: datetime) -> bool:
        result: bool = self.inner.claim(key, until=until, now=now)
        return result

    async def release(self, key: str, **kw: Any) -> int:
        result: int = self.inner.release(key, **kw)
        return result

    async def mark_sent(self, key: str, **kw: Any) -> Outgoing | None:
        result: Outgoing | None = self.inner.mark_sent(key, **kw)
        return result

    async def due(self, **kw: Any) -> list[Outgoing]:
        result: list[Outgoing] = self.inner.due(**kw)
        return result

    async def delivery(self, key: str, status: str, **kw: Any) -> Outgoing | None:
        result: Outgoing | None = self.inner.delivery(key, status, **kw)
        return result

    async def messages(self, contact: str) -> Any:
        return self.inner.messages(contact)

    async def dead_letters(self, **kw: Any) -> Any:
        return self.inner.dead_letters(**kw)


class ConflictCounter(Interceptor):
    """Counts the write conflicts a store reports."""

    conflicts = 0

    def put(
        self,
        consent: Consent,
        events: Sequence[AuditEvent],
        *,
        expected_version: int,
        lease: Lease | None = None,
    ) -> Outgoing | None:
        try:
            return super().put(
                consent, events, expected_version=expected_version, lease=lease
            )
        except StaleVersion:
            self.conflicts += 1
            raise


def snapshot(store: Any, contacts: Collection[str]) -> tuple[Any, ...]:
    """Everything observable in a store about ``contacts``."""
    records = []
    for contact in contacts:
        head = store.get(contact)
        records.append(None if head is None else head.to_dict())
        records.append([e.to_dict() for e in store.log(contact)])
    return tuple(records), tuple(m.key for m in store.pending())


def stop_versions(log: Sequence[AuditEvent]) -> list[int]:
    """Versions of the events that stopped the contact."""
    return [
        e.version
        for e in log
        if e.to_state is ConsentState.STOPPED
        and e.from_state is not ConsentState.STOPPED
    ]


def decided(log: Sequence[AuditEvent]) -> Iterator[tuple[int, int, Outgoing]]:
    """``(version, position, message)`` for every message in a log."""
    for event in log:
        for position, message in enumerate(event.sent):
            yield event.version, position, message


def cancelled_keys(log: Sequence[AuditEvent]) -> set[str]:
    """Keys a log's ``cancel`` events list."""
    return {key for e in log for key in e.cancelled}


def given_up(log: Sequence[AuditEvent]) -> dict[str, str]:
    """Keys the log gives up on: ``{key: "expired" | "failed"}``."""
    closed = {"expire": "expired", "dead_letter": "failed"}
    return {
        key: closed[e.trigger.value]
        for e in log
        if e.trigger.value in closed
        for key in e.cancelled
    }


def in_send_order(keys: Sequence[str], kinds: dict[str, MessageKind]) -> list[str]:
    """``keys`` in decision order as a contact may receive them: a stop
    confirmation may overtake HELP answers waiting for a retry, nothing
    else; so compare without the HELP answers, and those among themselves."""
    return [k for k in keys if kinds[k] is not MessageKind.HELP] + [
        k for k in keys if kinds[k] is MessageKind.HELP
    ]


def cancellable(log: Sequence[AuditEvent], version: int, kind: MessageKind) -> bool:
    """Whether a message decided at ``version`` may be cancelled by a later stop."""
    return kind in CANCELLED_BY_STOP and any(v > version for v in stop_versions(log))


# ---------------------------------------------------------------------------
# The multi-process workload


MP_CHUNK = 10
MP_REPLIES = ("STOP", "yes", "Yes!", "maybe later", "help", "start", "stop please")


def mp_policy() -> Policy:
    return Policy(
        org_name="Acme",
        resend_after=timedelta(0),
        max_attempts=1000,
        loop_max_auto_replies=1000,
    )


def mp_worker(  # noqa: PLR0917 (a multiprocessing target)
    path: str,
    log_dir: str,
    worker: int,
    contacts: int,
    rounds: int,
    seed: int,
    sync: Any,
) -> None:
    """One process: random interleavings of requests, replies and texts.

    The processes meet at ``sync`` (a barrier) before each chunk of
    :data:`MP_CHUNK` contacts, then act on them in random order, so that they
    collide on the same records all the time.
    """
    rng = random.Random(seed)
    counter = ConflictCounter(open_store(path))
    store: Any = counter
    log: list[tuple[int, int, str, str, str]] = []

    def send(message: Outgoing) -> None:
        if rng.random() < 0.1:
            raise ConnectionError("flaky provider")
        log.append(
            (
                time.monotonic_ns(),
                worker,
                message.key,
                message.contact,
                message.kind.value,
            )
        )

    service = ConsentService(
        mp_policy(), store, send, on_send_error=lambda _m, _e: None
    )
    for round_ in range(rounds):
        for first in range(0, contacts, MP_CHUNK):
            sync.wait(timeout=120)
            chunk = range(first, min(first + MP_CHUNK, contacts))
            for _ in range(len(chunk) * 3 // 2):
                n = rng.choice(chunk)
                contact = f"+1555{n:07d}"
                op = rng.random()
                try:
                    if op < 0.2:
                        service.request_opt_in(contact, by=f"agent{worker}")
                    elif op < 0.6:
                        text = rng.choice(MP_REPLIES)
                        # Small id space per contact: duplicates and
                        # concurrent redeliveries across processes.
                        mid = f"SM{n}-{round_}-{rng.randint(0, 3)}"
                        service.receive(contact, text, message_id=mid)
                    elif op < 0.95:
                        service.send_text(contact, f"hello from {worker}")
                    else:
                        service.flush(limit=20)
                except (SendBlocked, ContactStopped, ResendNotAllowed):
                    pass
                except StaleVersion:  # pragma: no cover - bounded retries lost
                    pass
    counter.inner.close()
    with open(os.path.join(log_dir, f"conflicts-{worker}"), "w") as f:
        f.write(str(counter.conflicts))
    with open(os.path.join(log_dir, f"send-{worker}.jsonl"), "w") as f:
        for entry in log:
            f.write(json.dumps(entry) + "\n")
