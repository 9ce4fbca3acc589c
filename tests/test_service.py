"""ConsentService: idempotent, race-safe, crash-safe; against every store.

Split by concern: ``test_service_async.py`` (the async service),
``test_phone.py`` (phone numbers), ``test_examples.py`` (the webhook
example), ``test_delivery.py`` (the delivery lifecycle)."""

from __future__ import annotations

import inspect
import logging
import threading
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

import optin_core
from optin_core import (
    Consent,
    ConsentState,
    ContactStopped,
    InvalidInput,
    MessageKind,
    MethodNotAccepted,
    Mode,
    Outgoing,
    Policy,
    RecordError,
    ResendNotAllowed,
    SendBlocked,
    StaleVersion,
    UnknownLocale,
)
from optin_core._service import ConsentService
from optin_core.stores import MemoryStore, SQLiteStore

from .service_env import POLICY, A, B, Env
from .service_helpers import (
    STORE_KINDS,
    T0,
    AsyncStoreAdapter,
    Clock,
    Interceptor,
    Sender,
    make_store,
    snapshot,
)

# ---------------------------------------------------------------------------
# The happy path


def test_opt_in_flow(env: Env) -> None:
    svc = env.service
    assert svc.get(A) == Consent.new(A)
    assert not svc.can_send(A)
    d = svc.request_opt_in(A, greeting="I'm Martha from Acme", by="martha")
    assert d.consent.state is ConsentState.PENDING
    assert env.sender.kinds() == [MessageKind.OPT_IN_REQUEST]
    assert env.sender.sent[0].text.startswith("I'm Martha from Acme\n")
    svc.receive(A, "Yes", message_id="SM1")
    assert svc.can_send(A, at=T0)
    d = svc.send_text(A, "Hello!", by="martha")
    assert d.outgoing[0].text == "Hello!"
    assert env.sender.kinds() == [
        MessageKind.OPT_IN_REQUEST,
        MessageKind.OPT_IN_CONFIRMATION,
        MessageKind.TEXT,
    ]
    assert svc.get(A) == d.consent == env.store.get(A)
    assert env.store.pending() == []
    assert svc.flush() == 0
    assert env.errors == []


@pytest.mark.parametrize(
    "text",
    ["\ud800STOP", "yes\x00", "\x1b[31mstop", "\U0010ffff" * 3, "é" * 5000, ""],
)
def test_odd_replies_never_raise_and_are_stored_verbatim(env: Env, text: str) -> None:
    env.service.request_opt_in(A)
    decision = env.service.receive(A, text, message_id="odd")
    stored = env.store.get(A)
    assert stored == decision.consent
    last = env.store.log(A)[-1]
    assert last.reply is not None
    if len(text) <= optin_core.MAX_REPLY_CHARS:
        assert last.reply.text == text
    else:  # bounded: a prefix, the length and the SHA-256 of the whole
        assert last.reply.text == text[: optin_core.MAX_REPLY_CHARS]
        assert last.reply.full_length == len(text)
    assert env.service.history(A).head == stored


def test_contact_ids_that_no_store_can_key_are_refused(env: Env) -> None:
    for bad in ("+1\ud800", "+1\n555", ""):
        with pytest.raises(InvalidInput):
            env.service.receive(bad, "STOP", message_id="x")


def test_default_clock_is_aware_utc_now(store: Any) -> None:
    sender = Sender()
    svc = ConsentService(POLICY, store, sender)
    before = datetime.now(T0.tzinfo)
    d = svc.request_opt_in(A)
    assert before <= d.events[0].at <= datetime.now(T0.tzinfo)
    assert d.events[0].at.utcoffset() == timedelta(0)


def test_unchanged_decision_writes_nothing(env: Env) -> None:
    inner = env.store
    spy = Interceptor(inner)
    svc = ConsentService(POLICY, spy, env.sender, clock=env.clock)
    svc.receive(A, "how are you?", message_id="x")  # NEW: conversation
    assert spy.puts == 0
    assert inner.get(A) is None


def test_attest_and_revoke(store: Any) -> None:
    e = Env(store, Policy(org_name="Acme", attestation_methods={"email"}))
    svc = e.service
    with pytest.raises(MethodNotAccepted):
        svc.attest(A, method="paper", evidence="doc-1", by="martha")
    d = svc.attest(A, method="email", evidence="msg-77", by="martha")
    assert d.consent.state is ConsentState.OPTED_IN
    d = svc.revoke(A, by="compliance", reason="phone call")
    assert d.consent.state is ConsentState.STOPPED
    with pytest.raises(ContactStopped):
        svc.request_opt_in(A)
    with pytest.raises(SendBlocked) as info:
        svc.send_text(A, "hi")
    assert info.value.reason == "stopped"
    assert e.sender.sent == []


def test_disclaimer_mode_sends_disclaimer_then_text(store: Any) -> None:
    e = Env(store, Policy(org_name="Acme", mode=Mode.DISCLAIMER))
    assert e.service.can_send(A)
    e.service.send_text(A, "Hello")
    assert e.sender.kinds() == [MessageKind.DISCLAIMER, MessageKind.TEXT]
    assert e.service.get(A).state is ConsentState.DISCLOSED


def test_refusals_raise_and_store_nothing(env: Env) -> None:
    svc = env.service
    with pytest.raises(SendBlocked) as info:
        svc.send_text(A, "hi")
    assert info.value.reason == "opt_in_required"
    svc.request_opt_in(A)
    before = snapshot(env.store, [A])
    with pytest.raises(ResendNotAllowed):
        svc.request_opt_in(A)
    with pytest.raises(SendBlocked):
        svc.send_text(A, "hi")
    assert snapshot(env.store, [A]) == before


# ---------------------------------------------------------------------------
# Idempotency and races


def test_duplicate_webhook_changes_state_once(env: Env) -> None:
    svc = env.service
    svc.request_opt_in(A)
    first = svc.receive(A, "yes", message_id="SM1")
    again = svc.receive(A, "yes", message_id="SM1")
    assert first.changed
    assert not again.changed
    assert env.sender.kinds(A).count(MessageKind.OPT_IN_CONFIRMATION) == 1
    stop1 = svc.receive(A, "STOP", message_id="SM2")
    stop2 = svc.receive(A, "STOP", message_id="SM2")
    assert stop1.changed
    assert not stop2.changed
    assert env.sender.kinds(A).count(MessageKind.STOP_CONFIRMATION) == 1


def _race(n: int, target: Any) -> list[Any]:
    barrier = threading.Barrier(n)
    results: list[Any] = [None] * n

    def run(i: int) -> None:
        barrier.wait()
        try:
            results[i] = target(i)
        except Exception as e:  # collected for the assertions
            results[i] = e

    threads = [threading.Thread(target=run, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return results


def test_concurrent_duplicate_webhooks_change_state_once(env: Env) -> None:
    svc = env.service
    svc.request_opt_in(A)
    results = _race(8, lambda _i: svc.receive(A, "STOP", message_id="SM9"))
    assert not [r for r in results if isinstance(r, Exception)]
    assert sum(r.changed for r in results) == 1
    record = svc.get(A)
    assert record.version == 2
    assert record.state is ConsentState.STOPPED
    assert env.sender.kinds(A).count(MessageKind.STOP_CONFIRMATION) == 1


def test_concurrent_first_contact_requests_one_opt_in(env: Env) -> None:
    results = _race(6, lambda i: env.service.request_opt_in(A, by=f"agent{i}"))
    wins = [r for r in results if not isinstance(r, Exception)]
    assert len(wins) == 6 - sum(isinstance(r, ResendNotAllowed) for r in results)
    assert env.sender.kinds(A) == [MessageKind.OPT_IN_REQUEST]
    assert env.service.get(A).version == 1


def test_send_text_decided_after_a_concurrent_stop_is_refused(env: Env) -> None:
    env.opt_in()
    spy = Interceptor(env.store)
    agent = ConsentService(POLICY, spy, env.sender, clock=env.clock)
    # The STOP lands between the agent's load and its write.
    spy.before_put = lambda: env.service.receive(A, "stop", message_id="SM-stop")
    with pytest.raises(SendBlocked) as info:
        agent.send_text(A, "composed before the stop")
    assert info.value.reason == "stopped"
    assert MessageKind.TEXT not in env.sender.kinds(A)
    assert env.store.get(A).state is ConsentState.STOPPED


def test_texts_racing_a_stop_never_follow_its_confirmation(env: Env) -> None:
    env.opt_in()
    svc = env.service

    def act(i: int) -> Any:
        if i == 3:
            return svc.receive(A, "STOP", message_id="SM-stop")
        return svc.send_text(A, f"text {i}")

    results = _race(8, act)
    errors = [r for r in results if isinstance(r, Exception)]
    assert all(isinstance(e, SendBlocked) for e in errors)
    kinds = env.sender.kinds(A)
    assert kinds.count(MessageKind.STOP_CONFIRMATION) == 1
    assert MessageKind.TEXT not in kinds[kinds.index(MessageKind.STOP_CONFIRMATION) :]
    log = svc.history(A).events
    stop_at = next(e.version for e in log if e.trigger == "stop")
    texts = [e for e in log if e.trigger == "text"]
    assert len(texts) + len(errors) == 7
    assert all(e.version < stop_at for e in texts)  # none decided after the stop
    status = [env.store.message_status(e.sent[0].key) for e in texts]
    assert status.count("sent") == kinds.count(MessageKind.TEXT)
    assert set(status) <= {"sent", "cancelled"}
    # Every text the stop cancelled is listed in the log, on its cancel event.
    cancelled = {key for e in log for key in e.cancelled}
    assert {
        e.sent[0].key for e, st in zip(texts, status, strict=True) if st == "cancelled"
    } <= cancelled
    assert svc.flush() == 0


def test_conflicts_are_retried_then_reported(env: Env) -> None:
    class AlwaysStale(Interceptor):
        def put(self, consent: Consent, events: Any, **kw: Any) -> None:
            self.puts += 1
            raise StaleVersion(
                consent.contact, expected=kw["expected_version"], found=9
            )

    spy = AlwaysStale(env.store)
    svc = ConsentService(POLICY, spy, env.sender, clock=env.clock, max_retries=3)
    with pytest.raises(StaleVersion) as info:
        svc.request_opt_in(A)
    assert info.value.found == 9
    assert spy.puts == 3
    assert env.store.get(A) is None
    assert env.sender.sent == []


# ---------------------------------------------------------------------------
# Send failures and the outbox


def test_failed_send_leaves_message_pending_then_flush_delivers_once(env: Env) -> None:
    env.sender.fail_first(1)
    d = env.service.request_opt_in(A)
    (msg,) = d.outgoing
    assert env.store.get(A) == d.consent  # the decision is saved
    assert env.store.pending() == [msg]
    assert env.sender.sent == []
    assert [(m.key, type(e)) for m, e in env.errors] == [(msg.key, ConnectionError)]
    assert env.service.flush() == 1
    assert env.sender.keys() == [msg.key]
    assert env.service.flush() == 0
    assert env.sender.keys() == [msg.key]
    assert env.store.message_status(msg.key) == "sent"


def test_later_messages_wait_behind_a_failed_one(env: Env) -> None:
    env.sender.fail = lambda m: m.contact == A
    env.service.request_opt_in(A)
    env.service.receive(A, "help", message_id="h1")  # HELP queued behind
    env.service.request_opt_in(B)  # other contacts are not held up
    assert env.sender.kinds() == [MessageKind.OPT_IN_REQUEST]
    assert env.sender.sent[0].contact == B
    # The HELP was never tried while the request ahead of it failed.
    assert {m.kind for m in env.sender.attempts if m.contact == A} == {
        MessageKind.OPT_IN_REQUEST
    }
    assert len(env.store.pending()) == 2
    assert env.service.flush() == 0
    env.sender.fail = None
    # Three failures: the request now waits for its retry time (backoff),
    # and the HELP behind it.
    assert env.service.flush() == 0
    env.clock.advance(seconds=30)
    assert env.service.flush() == 2
    assert env.sender.kinds(A) == [MessageKind.OPT_IN_REQUEST, MessageKind.HELP]


def test_next_operation_drains_the_contacts_queue(env: Env) -> None:
    env.sender.fail_first(1)
    env.service.request_opt_in(A)
    env.service.receive(A, "help", message_id="h1")
    assert env.sender.kinds(A) == [MessageKind.OPT_IN_REQUEST, MessageKind.HELP]


def test_a_queued_text_is_cancelled_by_a_stop(env: Env) -> None:
    env.opt_in()
    env.sender.fail_first(1)
    text = env.service.send_text(A, "queued").outgoing[0]
    assert env.store.message_status(text.key) == "pending"
    env.service.receive(A, "STOP", message_id="SM-stop")
    assert env.store.message_status(text.key) == "cancelled"
    assert env.sender.kinds(A)[-1] is MessageKind.STOP_CONFIRMATION
    assert env.service.flush() == 0
    assert text.key not in set(env.sender.keys())


def test_a_restart_does_not_revive_a_cancelled_text(env: Env) -> None:
    env.opt_in()
    env.sender.fail_first(1)
    text = env.service.send_text(A, "queued").outgoing[0]
    env.service.receive(A, "STOP", message_id="s")
    env.service.receive(A, "START", message_id="r")
    assert env.service.flush() == 0
    assert text.key not in set(env.sender.keys())
    assert env.sender.kinds(A)[-2:] == [
        MessageKind.STOP_CONFIRMATION,
        MessageKind.START_CONFIRMATION,
    ]


def test_help_and_stop_confirmation_survive_a_stop(env: Env) -> None:
    env.service.request_opt_in(A)
    env.sender.fail = lambda m: True
    env.service.receive(A, "help", message_id="h")
    env.service.receive(A, "stop", message_id="s")
    env.sender.fail = None
    assert env.service.flush() == 2
    kinds = env.sender.kinds(A)
    assert kinds == [
        MessageKind.OPT_IN_REQUEST,
        MessageKind.HELP,
        MessageKind.STOP_CONFIRMATION,
    ]


def test_text_in_flight_at_a_stop_goes_before_the_confirmation(env: Env) -> None:
    env.opt_in()
    entered, proceed = threading.Event(), threading.Event()
    base = env.sender

    def slow_send(message: Outgoing) -> None:
        if message.kind is MessageKind.TEXT:
            entered.set()
            assert proceed.wait(10)
        base(message)

    agent = ConsentService(POLICY, env.store, slow_send, clock=env.clock)
    t = threading.Thread(target=agent.send_text, args=(A, "in flight"))
    t.start()
    assert entered.wait(10)
    env.service.receive(A, "STOP", message_id="s")
    assert MessageKind.STOP_CONFIRMATION not in base.kinds(A)  # waits its turn
    proceed.set()
    t.join(10)
    assert base.kinds(A)[-2:] == [MessageKind.TEXT, MessageKind.STOP_CONFIRMATION]
    assert env.service.flush() == 0


def test_a_reply_waits_for_the_message_in_flight_ahead_of_it(env: Env) -> None:
    entered, proceed = threading.Event(), threading.Event()
    base = env.sender

    def slow_send(message: Outgoing) -> None:
        if message.kind is MessageKind.OPT_IN_REQUEST:
            entered.set()
            assert proceed.wait(10)
        base(message)

    agent = ConsentService(POLICY, env.store, slow_send, clock=env.clock)
    t = threading.Thread(target=agent.request_opt_in, args=(A,))
    t.start()
    assert entered.wait(10)
    env.service.receive(A, "help", message_id="h")  # HELP decided meanwhile
    assert base.sent == []  # not sent ahead of the request
    proceed.set()
    t.join(10)  # the request's sender drains the HELP after it
    assert base.kinds(A) == [MessageKind.OPT_IN_REQUEST, MessageKind.HELP]
    assert env.service.flush() == 0


def test_crashed_sender_is_recovered_after_its_lease(env: Env) -> None:
    d = env.service  # a worker "crashes" between claim and send:
    env.sender.fail = lambda m: True
    msg = d.request_opt_in(A).outgoing[0]
    env.sender.fail = None
    assert env.store.claim(msg.key, until=env.clock() + d.lease, now=env.clock())
    assert d.flush() == 0  # leased to the crashed worker
    env.clock.advance(seconds=d.lease.total_seconds())
    assert d.flush() == 1
    assert d.flush() == 0
    assert env.sender.keys() == [msg.key]


def test_flush_keeps_going_past_a_failing_contact(env: Env) -> None:
    env.sender.fail = lambda m: True
    env.service.request_opt_in(A)
    env.service.request_opt_in(B)
    env.sender.fail = lambda m: m.contact == A
    assert env.service.flush() == 1
    assert env.service.flush() == 0
    env.sender.fail = None
    assert env.service.flush() == 0  # A failed thrice: it waits 30 s now
    env.clock.advance(seconds=29)
    assert env.service.flush() == 0
    env.clock.advance(seconds=1)
    assert env.service.flush() == 1
    assert env.service.flush(limit=5) == 0
    with pytest.raises(ValueError, match="limit"):
        env.service.flush(limit=0)


def test_default_send_error_handler_logs(
    store: Any, caplog: pytest.LogCaptureFixture
) -> None:
    sender = Sender()
    sender.fail_first(1)
    svc = ConsentService(POLICY, store, sender, clock=Clock())
    with caplog.at_level(logging.WARNING, logger="optin_core"):
        d = svc.request_opt_in(A)
    assert d.outgoing[0].key in caplog.text
    assert "flush()" in caplog.text
    assert A not in caplog.text  # no phone number in logs


def test_a_raising_error_handler_propagates_after_the_save(store: Any) -> None:
    sender = Sender()
    sender.fail_first(1)

    def boom(_m: Outgoing, e: Exception) -> None:
        raise RuntimeError("page the on-call") from e

    svc = ConsentService(POLICY, store, sender, clock=Clock(), on_send_error=boom)
    with pytest.raises(RuntimeError, match="on-call"):
        svc.request_opt_in(A)
    assert store.get(A).state is ConsentState.PENDING
    assert svc.flush() == 1


# ---------------------------------------------------------------------------
# The boundary: specific errors, stored data unchanged


def _setup_boundary(env: Env) -> tuple[Any, ...]:
    env.opt_in()
    env.sender.fail = lambda m: True
    env.service.send_text(A, "pending one")
    env.sender.fail = None
    return snapshot(env.store, [A, B])


NAIVE = datetime(2025, 4, 11, 9, 0)


@pytest.mark.parametrize(
    ("call", "error"),
    [
        (lambda s: s.receive(A, "yes", message_id="n", at=NAIVE), InvalidInput),
        (lambda s: s.request_opt_in(B, at=NAIVE), InvalidInput),
        (lambda s: s.send_text(A, "x", at=NAIVE), InvalidInput),
        (lambda s: s.revoke(A, by="c", reason="r", at=NAIVE), InvalidInput),
        (
            lambda s: s.attest(A, method="email", evidence="e", by="b", at=NAIVE),
            InvalidInput,
        ),
        (lambda s: s.can_send(A, at=NAIVE), InvalidInput),
        (lambda s: s.can_send(A, at="today"), TypeError),
        (lambda s: s.receive(A, b"STOP", message_id="n"), TypeError),
        (lambda s: s.receive(A, None, message_id="n"), TypeError),
        (lambda s: s.receive(A, "STOP", message_id=""), InvalidInput),
        (lambda s: s.receive("", "STOP", message_id="n"), InvalidInput),
        (lambda s: s.receive("  ", "STOP", message_id="n"), InvalidInput),
        (lambda s: s.receive(None, "STOP", message_id="n"), TypeError),
        (lambda s: s.request_opt_in("", by="x"), InvalidInput),
        (lambda s: s.get(""), InvalidInput),
        (lambda s: s.send_text(A, ""), InvalidInput),
        (lambda s: s.send_text(A, 42), TypeError),
        (lambda s: s.request_opt_in(B, locale="xx-Nope"), UnknownLocale),
        (lambda s: s.revoke(A, by="", reason="r"), InvalidInput),
    ],
)
def test_bad_input_raises_and_changes_nothing(env: Env, call: Any, error: Any) -> None:
    before = _setup_boundary(env)
    sent = list(env.sender.sent)
    with pytest.raises(error):
        call(env.service)
    assert snapshot(env.store, [A, B]) == before
    assert env.sender.sent == sent


def test_a_naive_clock_is_refused(env: Env) -> None:
    before = _setup_boundary(env)
    env.clock.now = NAIVE
    with pytest.raises(InvalidInput, match="naive"):
        env.service.receive(A, "STOP", message_id="n")
    with pytest.raises(InvalidInput, match="naive"):
        env.service.flush()
    env.clock.now = "noon"  # type: ignore[assignment]
    with pytest.raises(TypeError, match="datetime"):
        env.service.flush()
    assert snapshot(env.store, [A, B]) == before


def test_a_store_returning_another_contacts_record_is_refused(env: Env) -> None:
    before = _setup_boundary(env)

    class Mixed(Interceptor):
        def get(self, contact: str) -> Any:
            return self.inner.get(A)

    svc = ConsentService(POLICY, Mixed(env.store), env.sender, clock=env.clock)
    for call in (
        lambda: svc.receive(B, "STOP", message_id="x"),
        lambda: svc.get(B),
        lambda: svc.can_send(B),
    ):
        with pytest.raises(RecordError) as info:
            call()
        assert info.value.contact == B
        assert repr(B) in str(info.value)
        assert A in str(info.value)
    assert snapshot(env.store, [A, B]) == before


def test_a_store_returning_junk_is_refused(env: Env) -> None:
    class Junk(Interceptor):
        def get(self, contact: str) -> Any:
            return {"contact": contact}

    svc = ConsentService(POLICY, Junk(env.store), env.sender, clock=env.clock)
    with pytest.raises(RecordError, match="dict"):
        svc.get(A)


def test_constructor_validates(store: Any) -> None:
    send = Sender()
    with pytest.raises(TypeError, match="Policy"):
        ConsentService("acme", store, send)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="get"):
        ConsentService(POLICY, object(), send)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="send"):
        ConsentService(POLICY, store, None)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="clock"):
        ConsentService(POLICY, store, send, clock=5)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="max_retries"):
        ConsentService(POLICY, store, send, max_retries=0)
    with pytest.raises(ValueError, match="lease"):
        ConsentService(POLICY, store, send, lease=timedelta(0))
    with pytest.raises(TypeError, match="on_send_error"):
        ConsentService(POLICY, store, send, on_send_error=1)  # type: ignore[arg-type]
    assert "default" in repr(ConsentService(POLICY, store, send))


# ---------------------------------------------------------------------------
# The optional lease of put / mark_sent


class Recorder:
    """Records the store methods the service calls, and their keywords."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner
        self.calls: list[tuple[str, tuple[str, ...]]] = []

    def __getattr__(self, name: str) -> Any:
        method = getattr(self.inner, name)

        def call(*args: Any, **kwargs: Any) -> Any:
            self.calls.append((name, tuple(sorted(kwargs))))
            return method(*args, **kwargs)

        call.__signature__ = inspect.signature(method)  # type: ignore[attr-defined]
        return call

    def names(self) -> list[str]:
        return [name for name, _kw in self.calls]


@pytest.mark.parametrize("kind", STORE_KINDS)
def test_a_store_commits_twice_per_message(kind: str, tmp_path: Path) -> None:
    inner = make_store(kind, tmp_path)
    env = Env(inner)
    env.service.request_opt_in(A)
    spy = Recorder(inner)
    svc = ConsentService(POLICY, spy, env.sender, clock=env.clock)
    svc.receive(A, "Yes", message_id="SM1")
    # The store's key namespace is read once per service; the confirmation
    # is claimed by the put, then marked sent: no claim, no listing of the
    # pending messages.
    assert spy.names() == ["namespace", "get", "put", "mark_sent"]
    assert [kw for _n, kw in spy.calls][2:] == [
        ("expected_version", "lease"),
        ("at", "lease", "provider_id"),
    ]
    assert env.sender.kinds(A)[-1] is MessageKind.OPT_IN_CONFIRMATION
    assert inner.message_status(env.sender.sent[-1].key) == "sent"
    assert inner.claimed_version(env.sender.sent[-1].key) == 2
    assert svc.flush() == 0
    if isinstance(inner, SQLiteStore):
        inner.close()


@pytest.mark.parametrize("kind", STORE_KINDS)
def test_a_stop_reads_the_queue_and_logs_what_it_cancels(
    kind: str, tmp_path: Path
) -> None:
    inner = make_store(kind, tmp_path)
    env = Env(inner)
    env.opt_in()
    env.sender.fail = lambda m: m.kind is MessageKind.TEXT
    queued = env.service.send_text(A, "queued").outgoing[0]
    env.sender.fail = None
    spy = Recorder(inner)
    svc = ConsentService(POLICY, spy, env.sender, clock=env.clock)
    decision = svc.receive(A, "STOP", message_id="SM-stop")
    assert spy.names() == ["namespace", "get", "pending", "put", "mark_sent"]
    assert [e.trigger for e in decision.events] == ["stop", "cancel"]
    assert decision.events[-1].cancelled == (queued.key,)
    assert inner.message_status(queued.key) == "cancelled"
    assert env.sender.kinds(A)[-1] is MessageKind.STOP_CONFIRMATION
    assert MessageKind.TEXT not in env.sender.kinds(A)
    assert svc.history(A).events[-1] == decision.events[-1]
    if isinstance(inner, SQLiteStore):
        inner.close()


def test_a_stop_racing_a_flush_of_its_queue_decides_again(store: Any) -> None:
    env = Env(store)
    env.opt_in()
    env.sender.fail = lambda m: m.kind is MessageKind.TEXT
    queued = env.service.send_text(A, "queued").outgoing[0]
    env.sender.fail = None
    spy = Interceptor(store)
    svc = ConsentService(POLICY, spy, env.sender, clock=env.clock)
    # Between the stop's reading of the queue and its write, a flush sends
    # the queued text: the write is refused and the stop decided again,
    # now with nothing left to cancel.
    spy.before_put = env.service.flush
    decision = svc.receive(A, "STOP", message_id="SM-stop")
    assert [e.trigger for e in decision.events] == ["stop"]
    assert store.message_status(queued.key) == "sent"
    assert env.sender.kinds(A)[-2:] == [
        MessageKind.TEXT,
        MessageKind.STOP_CONFIRMATION,
    ]
    assert spy.puts == 2


def test_a_leasing_store_sends_several_messages_in_order(store: Any) -> None:
    # Disclaimer mode: one decision sends the disclaimer, then the text.
    env = Env(store, Policy(org_name="Acme", mode=Mode.DISCLAIMER))
    env.sender.fail = lambda m: m.kind is MessageKind.TEXT
    first = env.service.send_text(A, "hello").outgoing
    assert env.sender.kinds(A) == [first[0].kind]  # the text waits, pending
    env.sender.fail = None
    second = env.service.send_text(A, "again").outgoing
    # The failed text goes first, then the new one, in decision order.
    assert env.sender.keys() == [m.key for m in (*first, *second)]
    assert env.service.flush() == 0


def test_a_store_without_the_log_is_refused() -> None:
    class Headless:
        def __init__(self) -> None:
            self.inner = MemoryStore()

        def __getattr__(self, name: str) -> Any:
            if name == "log":
                raise AttributeError(name)
            return getattr(self.inner, name)

    with pytest.raises(TypeError, match=r"log\(\)"):
        ConsentService(POLICY, Headless(), Sender())
    adapter = AsyncStoreAdapter(MemoryStore())
    with pytest.raises(TypeError, match="AsyncConsentService"):
        ConsentService(POLICY, adapter, Sender())


def test_a_redelivery_of_any_age_changes_nothing(store: Any) -> None:
    env = Env(store, Policy(org_name="Acme", loop_max_auto_replies=1000))
    svc = env.service
    svc.request_opt_in(A)
    svc.receive(A, "STOP", message_id="SM-stop")
    svc.receive(A, "START", message_id="SM-start")
    for i in range(100):
        svc.receive(A, "help", message_id=f"SM-{i}")
    svc.receive(A, "STOP", message_id="SM-stop-2")
    assert svc.get(A).version == 104
    sent = len(env.sender.sent)
    # The provider redelivers the old START, without a timestamp (now).
    decision = svc.receive(A, "START", message_id="SM-start")
    assert not decision.changed
    assert svc.get(A).state is ConsentState.STOPPED
    assert len(env.sender.sent) == sent
    # The head alone no longer remembers it: the store's log did.
    assert "SM-start" not in svc.get(A).recent_message_ids
