"""kill -9: worker processes killed at random moments, restarted, and nothing
lost, nothing sent twice beyond what a crash between "sent" and its record
allows, every log intact.

Three worker processes drive the service (requests, replies, texts,
flushes) on one database, SQLite or PostgreSQL, with a provider that fails
10 % of sends. The test kills a random worker with SIGKILL at a random
moment, many times, and starts a fresh one in its place; at the end it kills
the survivors too, then runs a final ``flush()`` an hour later (every lease
a killed worker held has expired).

Each ``send`` appends ``sent <key>`` to its incarnation's file and fsyncs
before it returns (that is the provider accepting the message); a store
wrapper appends ``marked <key>`` once ``mark_sent`` has returned. A message
may be sent again only if a kill hit between the two: a ``sent`` line not
followed by its ``marked`` line in the same file, the documented window
that the provider's idempotency key closes.

Checked afterwards: nothing is pending; every message a log holds was sent
(at least once), or was closed unsent and is listed in its log (a stop's
cancellation...), never after a recorded mark; the sends of a key exceed
one by at most the number of its unmarked sends; every log verifies and
replays to its head.
"""

from __future__ import annotations

import multiprocessing
import os
import random
import signal
import time
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from optin_core import (
    ContactStopped,
    Outgoing,
    ResendNotAllowed,
    SendBlocked,
    StaleVersion,
    verify,
)
from optin_core._service import ConsentService

from .postgres_server import postgres_dsn
from .service_helpers import Interceptor, decided, mp_policy, open_store

WORKERS = 3
CONTACTS = 24
KILLS = 30
REPLIES = ("yes", "STOP", "start", "help", "maybe", "Oui", "stop please")
#: Long enough that no live sender ever loses its lease during the run.
LEASE = timedelta(seconds=60)

pytestmark = pytest.mark.skipif(
    not hasattr(signal, "SIGKILL")
    or "fork" not in multiprocessing.get_all_start_methods(),
    reason="needs SIGKILL and fork (POSIX)",
)


class _Recorder:
    """Appends lines to a file, each fsynced before the call returns."""

    def __init__(self, path: Path) -> None:
        self.fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)

    def __call__(self, what: str, key: str, at: float | None = None) -> None:
        when = time.time() if at is None else at
        os.write(self.fd, f"{what} {key} {when!r}\n".encode())
        os.fsync(self.fd)


class _Marking(Interceptor):
    """Records ``marked <key>`` once the store's ``mark_sent`` returned."""

    def __init__(self, inner: Any, record: _Recorder) -> None:
        super().__init__(inner)
        self.record = record

    def mark_sent(self, key: str, **kwargs: Any) -> Any:
        result = self.inner.mark_sent(key, **kwargs)
        self.record("marked", key)
        return result


def _worker(target: str, log_dir: str, worker: int, incarnation: int) -> None:
    """One worker's life: random operations until it is killed."""
    rng = random.Random(worker * 1000 + incarnation)
    record = _Recorder(Path(log_dir) / f"w{worker}-{incarnation}.log")
    store = open_store(target)

    def send(message: Outgoing) -> None:
        if rng.random() < 0.1:
            raise ConnectionError("flaky provider")
        record("sent", message.key)

    service = ConsentService(
        mp_policy(),
        _Marking(store, record),
        send,
        lease=LEASE,
        on_send_error=lambda _m, _e: None,
    )
    for step in range(100_000):
        n = rng.randrange(CONTACTS)
        contact = f"+1555{n:07d}"
        op = rng.random()
        try:
            if op < 0.2:
                service.request_opt_in(contact, by=f"agent{worker}")
            elif op < 0.6:
                text = rng.choice(REPLIES)
                mid = f"SM{n}-{worker}-{incarnation}-{step % 7}"
                service.receive(contact, text, message_id=mid)
            elif op < 0.9:
                service.send_text(contact, f"hello from {worker}")
            else:
                service.flush(limit=10)
        except (SendBlocked, ContactStopped, ResendNotAllowed, StaleVersion):
            pass


def _sends(
    log_dir: Path, last_sent: dict[str, float] | None = None
) -> tuple[Counter[str], Counter[str], Counter[str]]:
    """Per key: recorded sends, sends whose mark was recorded after them in
    the same file, and marks; ``last_sent`` gets each key's latest send
    time."""
    sent: Counter[str] = Counter()
    unmarked: Counter[str] = Counter()
    marked: Counter[str] = Counter()
    times = {} if last_sent is None else last_sent

    def seen(key: str, when: str) -> None:
        sent[key] += 1
        times[key] = max(times.get(key, 0.0), float(when))

    for path in sorted(log_dir.glob("w*.log")):
        waiting: Counter[str] = Counter()
        text = path.read_text()
        lines = text.split("\n")[:-1]  # a last line cut by the kill is not one
        for line in lines:
            what, key, when = line.split(" ")
            if what == "sent":
                seen(key, when)
                waiting[key] += 1
            else:
                marked[key] += 1
                waiting[key] = 0
        unmarked.update(+waiting)
    final = log_dir / "final.log"
    if final.exists():
        for line in final.read_text().split("\n")[:-1]:
            _what, key, when = line.split(" ")
            seen(key, when)
    return sent, unmarked, marked


@pytest.mark.slow
@pytest.mark.parametrize("kind", ["sqlite", "postgres"])
def test_kill_9_loses_nothing_and_sends_nothing_twice(
    tmp_path: Path, kind: str
) -> None:
    if kind == "sqlite":
        target = str(tmp_path / "consent.db")
        open_store(target).close()
    else:
        target = postgres_dsn()
        with open_store(target) as store:
            store.migrate()
    log_dir = tmp_path / "sends"
    log_dir.mkdir()
    ctx = multiprocessing.get_context("fork")
    rng = random.Random(11)
    incarnations = [0] * WORKERS

    def start(worker: int) -> Any:
        process = ctx.Process(
            target=_worker,
            args=(target, str(log_dir), worker, incarnations[worker]),
            daemon=True,
        )
        process.start()
        return process

    workers = [start(w) for w in range(WORKERS)]
    kills = 0
    try:
        for _ in range(KILLS):
            time.sleep(rng.uniform(0.05, 0.4))
            w = rng.randrange(WORKERS)
            assert workers[w].is_alive(), f"worker {w} died on its own"
            os.kill(workers[w].pid, signal.SIGKILL)
            workers[w].join(timeout=30)
            kills += 1
            incarnations[w] += 1
            workers[w] = start(w)
        time.sleep(0.3)
    finally:
        for process in workers:
            if process.is_alive():
                os.kill(process.pid, signal.SIGKILL)
            process.join(timeout=30)
    assert kills == KILLS

    # An hour later every lease a killed worker held has expired.
    later = datetime.now(UTC) + timedelta(days=1)
    record = _Recorder(log_dir / "final.log")
    with open_store(target) as store:
        service = ConsentService(
            mp_policy(),
            store,
            # Recorded at the service's time: a day after every deadline.
            lambda m: record("sent", m.key, later.timestamp()),
            clock=lambda: later,
            lease=LEASE,
        )
        service.flush()
        assert service.flush() == 0
        assert store.pending() == []
        last_sent: dict[str, float] = {}
        sent, unmarked, marked = _sends(log_dir, last_sent)
        assert sent, "the workers sent nothing: the test tested nothing"
        statuses: Counter[str] = Counter()
        past_deadline = 0
        for contact in store.contacts():
            head = store.get(contact)
            log = store.log(contact)
            assert head is not None
            assert verify(contact, log, head) == head
            closed = {key for event in log for key in event.cancelled}
            for _version, _position, message in decided(log):
                key = message.key
                status = store.message_status(key)
                statuses[str(status)] += 1
                if status == "sent":
                    assert sent[key] >= 1, f"{key} marked sent, never sent"
                else:
                    # Closed unsent (a stop...): logged, and never marked.
                    assert key in closed, (key, status)
                    assert marked[key] == 0, (key, status)
                assert sent[key] - 1 <= unmarked[key], (
                    f"{key} sent {sent[key]} times with {unmarked[key]} unmarked sends"
                )
                if message.deadline is not None and key in last_sent:
                    # Never sent past its deadline (a second of slack for
                    # the time between the check and the record).
                    late = last_sent[key] - message.deadline.timestamp()
                    assert late <= 1.0, f"{key} sent {late:.1f} s past its deadline"
                    past_deadline += late > 0
    duplicates = sum(n - 1 for n in sent.values() if n > 1)
    print(
        f"\n{kind}: {KILLS} kills, outbox {dict(statuses)}, {len(sent)} keys "
        f"sent, {duplicates} duplicate sends (each after a kill between the "
        f"send and its mark: {sum(unmarked.values())} such sends), "
        f"{past_deadline} sent past a deadline"
    )
    assert statuses["sent"] > 0
