"""Model-based test of the shell: flaky sends, random write conflicts.

Whatever the interleaving of requests, replies (duplicates included), texts,
revocations, attestations, clock jumps and flushes, with a ``send`` that fails
at random and a store that reports spurious conflicts, after a final
``flush()`` every message ever decided was sent exactly once, except the ones
a later stop cancelled, which were never sent and are listed in the log; each
contact received its messages in the order they were decided; and every log
verifies and replays to its head.
"""

from __future__ import annotations

import contextlib
import random
import tempfile
from collections import Counter
from datetime import timedelta
from pathlib import Path
from typing import Any

import hypothesis.strategies as st
from hypothesis import HealthCheck, settings
from hypothesis.stateful import RuleBasedStateMachine, initialize, rule

from optin_core import (
    AuditEvent,
    ContactStopped,
    MessageKind,
    Outgoing,
    Policy,
    ResendNotAllowed,
    SendBlocked,
    StaleVersion,
    verify,
)
from optin_core._service import ConsentService

from .service_helpers import (
    Clock,
    Interceptor,
    Sender,
    cancellable,
    cancelled_keys,
    decided,
    given_up,
    in_send_order,
    make_store,
    stop_versions,
)

CONTACTS = ("+15550001", "+15550002", "+15550003")
REPLIES = ("yes", "STOP", "start", "help", "no", "what?", "Oui", "stop please")
POLICY = Policy(
    org_name="Acme",
    resend_after=timedelta(hours=1),
    attestation_methods={"email"},
)
REFUSED = (SendBlocked, ContactStopped, ResendNotAllowed, StaleVersion)


class FlakyStore(Interceptor):
    """Reports a conflict at random before writing (nothing is written)."""

    def __init__(self, inner: Any, rng: random.Random) -> None:
        super().__init__(inner)
        self.rng = rng
        self.flaky = True

    def put(self, consent: Any, events: Any, **kw: Any) -> Any:
        if self.flaky and self.rng.random() < 0.3:
            raise StaleVersion(
                consent.contact, expected=kw["expected_version"], found=None
            )
        return self.inner.put(consent, events, **kw)


class ShellMachine(RuleBasedStateMachine):
    backend = "memory"

    def __init__(self) -> None:
        super().__init__()
        self.tmp = tempfile.TemporaryDirectory()
        self.inner: Any = make_store(self.backend, Path(self.tmp.name))
        self.clock = Clock()
        self.sender = Sender()
        self.flaky_send = True

    @initialize(seed=st.integers(0, 2**32 - 1))
    def setup(self, seed: int) -> None:
        rng = random.Random(seed)
        self.store = FlakyStore(self.inner, rng)
        self.sender.fail = lambda _m: self.flaky_send and rng.random() < 0.3
        self.service = ConsentService(
            POLICY,
            self.store,
            self.sender,
            clock=self.clock,
            on_send_error=lambda _m, _e: None,
        )

    @rule(contact=st.sampled_from(CONTACTS), greeting=st.sampled_from([None, "Hi"]))
    def request(self, contact: str, greeting: str | None) -> None:
        with contextlib.suppress(REFUSED):
            self.service.request_opt_in(contact, greeting=greeting, by="agent")

    @rule(
        contact=st.sampled_from(CONTACTS),
        text=st.sampled_from(REPLIES),
        message_id=st.integers(0, 5),
    )
    def receive(self, contact: str, text: str, message_id: int) -> None:
        with contextlib.suppress(StaleVersion):
            self.service.receive(contact, text, message_id=f"SM{message_id}")

    @rule(contact=st.sampled_from(CONTACTS))
    def send_text(self, contact: str) -> None:
        with contextlib.suppress(REFUSED):
            self.service.send_text(contact, "a word from the agent", by="agent")

    @rule(contact=st.sampled_from(CONTACTS))
    def revoke(self, contact: str) -> None:
        with contextlib.suppress(StaleVersion):
            self.service.revoke(contact, by="compliance", reason="phone call")

    @rule(contact=st.sampled_from(CONTACTS))
    def attest(self, contact: str) -> None:
        with contextlib.suppress(REFUSED):
            self.service.attest(contact, method="email", evidence="e-1", by="agent")

    @rule(minutes=st.sampled_from([1, 30, 61, 24 * 60]))
    def advance(self, minutes: int) -> None:
        self.clock.advance(minutes=minutes)

    @rule()
    def flush(self) -> None:
        self.service.flush()

    def teardown(self) -> None:
        try:
            if hasattr(self, "service"):
                self.check()
        finally:
            close = getattr(self.inner, "close", None)
            if close is not None:
                close()
            self.tmp.cleanup()

    def check(self) -> None:
        self.flaky_send = False
        self.store.flaky = False
        # Hours later, every retry is due; stop confirmations held back
        # past their deadline expire instead of going out.
        self.clock.advance(hours=7)
        self.service.flush()
        assert self.service.flush() == 0
        assert self.inner.pending() == []
        sent = Counter(m.key for m in self.sender.sent)
        assert max(sent.values(), default=1) == 1, "a message was sent twice"
        for contact in CONTACTS:
            record = self.service.get(contact)
            log = self.service.history(contact).events
            assert record.version == len(log)
            assert verify(contact, log, record) == record
            withdrawn = cancelled_keys(log)
            closed = given_up(log)
            kinds = {m.key: m.kind for _v, _p, m in decided(log)}
            order: list[str] = []
            for version, _pos, message in decided(log):
                status = self.inner.message_status(message.key)
                if status in ("expired", "failed"):
                    assert closed.get(message.key) == status, message
                    assert message.key not in sent
                    if status == "expired":
                        assert message.kind is MessageKind.STOP_CONFIRMATION
                elif status == "cancelled":
                    assert cancellable(log, version, message.kind), message
                    assert message.key not in sent
                    assert message.key in withdrawn
                else:
                    assert status == "sent", (message, status)
                    assert sent[message.key] == 1, message
                    order.append(message.key)
                    self._sent_before_any_later_stop(log, version, message)
            mine = [m.key for m in self.sender.sent if m.contact == contact]
            assert in_send_order(mine, kinds) == in_send_order(order, kinds), (
                "messages left out of order"
            )

    def _sent_before_any_later_stop(
        self, log: tuple[AuditEvent, ...], version: int, message: Outgoing
    ) -> None:
        if message.kind in (MessageKind.STOP_CONFIRMATION, MessageKind.HELP):
            return
        later = [v for v in stop_versions(log) if v > version]
        if later:
            claimed = self.inner.claimed_version(message.key)
            assert claimed is not None
            assert claimed < min(later), (
                f"{message.kind} decided at {version} was released at record "
                f"version {claimed}, after the stop at {min(later)}"
            )


class SQLiteShellMachine(ShellMachine):
    backend = "sqlite"


class PostgresShellMachine(ShellMachine):
    backend = "postgres"


def _settings(examples: int, steps: int) -> settings:
    return settings(
        max_examples=examples,
        stateful_step_count=steps,
        deadline=None,
        suppress_health_check=[HealthCheck.too_slow],
    )


TestShellMemory = ShellMachine.TestCase
TestShellMemory.settings = _settings(200, 40)
TestShellSQLite = SQLiteShellMachine.TestCase
TestShellSQLite.settings = _settings(60, 30)
TestShellPostgres = PostgresShellMachine.TestCase
TestShellPostgres.settings = _settings(40, 30)
