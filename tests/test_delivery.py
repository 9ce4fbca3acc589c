"""Delivery as providers behave: send types, provider opt-outs, outcomes."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest

from optin_core import (
    ConsentState,
    MessageKind,
    Outcome,
    Outgoing,
    Policy,
    RecipientOptedOut,
    verify,
)
from optin_core._service import AsyncConsentService, ConsentService
from optin_core.providers import opt_out_error, twilio_inbound

from .service_helpers import STORE_KINDS, Clock, Sender, make_store

A = "+15550001"
POLICY = Policy(org_name="Acme")


@pytest.fixture(params=STORE_KINDS)
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Any:
    s = make_store(request.param, tmp_path)
    yield s
    close = getattr(s, "close", None)
    if close is not None:
        close()


def service(store: Any, send: Any, policy: Policy = POLICY, **kw: Any) -> Any:
    return ConsentService(policy, store, send, clock=Clock(), **kw)


# -- send must match the service -------------------------------------------


async def _async_send(message: Outgoing) -> None:
    return None


class _AsyncCallable:
    async def __call__(self, message: Outgoing) -> None:
        return None


@pytest.mark.parametrize("send", [_async_send, _AsyncCallable()])
def test_a_blocking_service_refuses_an_async_send(store: Any, send: Any) -> None:
    with pytest.raises(TypeError, match="AsyncConsentService"):
        ConsentService(POLICY, store, send)


def test_a_send_that_returns_an_awaitable_is_a_failed_send(store: Any) -> None:
    errors: list[tuple[Outgoing, Exception]] = []

    def sneaky(message: Outgoing) -> Any:
        return _async_send(message)  # a coroutine, never awaited

    svc = service(store, sneaky, on_send_error=lambda m, e: errors.append((m, e)))
    with warnings_as_errors():
        decision = svc.request_opt_in(A)
    (message,) = decision.outgoing
    assert store.message_status(message.key) == "pending"
    assert [type(e) for _m, e in errors] == [TypeError]
    assert "awaitable" in str(errors[0][1])
    sender = Sender()
    assert service(store, sender).flush() == 1
    assert sender.kinds() == [MessageKind.OPT_IN_REQUEST]


def test_the_async_service_takes_both_kinds_of_send(store: Any) -> None:
    seen: list[str] = []

    async def async_send(message: Outgoing) -> None:
        seen.append(f"async {message.kind.value}")

    def sync_send(message: Outgoing) -> None:
        seen.append(f"sync {message.kind.value}")

    async def main() -> None:
        first = AsyncConsentService(POLICY, store, async_send, clock=Clock())
        await first.request_opt_in(A)
        second = AsyncConsentService(POLICY, store, sync_send, clock=Clock())
        await second.receive(A, "yes", message_id="y")

    asyncio.run(main())
    assert seen == ["async opt_in_request", "sync opt_in_confirmation"]


class warnings_as_errors:
    """No "coroutine was never awaited" warning may escape."""

    def __enter__(self) -> None:
        import warnings

        self._catch = warnings.catch_warnings()
        self._catch.__enter__()
        warnings.simplefilter("error")

    def __exit__(self, *exc: object) -> None:
        import gc

        gc.collect()
        self._catch.__exit__(*exc)


# -- provider opt-outs -----------------------------------------------------


def test_a_provider_opt_out_from_send_stops_the_contact(store: Any) -> None:
    sender = Sender()
    svc = service(store, sender)
    svc.request_opt_in(A)
    svc.receive(A, "yes", message_id="y")
    sender.fail = lambda m: m.kind is MessageKind.TEXT
    queued = svc.send_text(A, "first").outgoing[0]  # fails: stays pending

    def refuses(message: Outgoing) -> None:
        raise opt_out_error("twilio", 21610) or AssertionError("not an opt-out")

    provider_says_no = service(store, refuses)
    provider_says_no.flush()
    head = svc.get(A)
    assert head.state is ConsentState.STOPPED
    log = svc.history(A).events
    assert [e.trigger for e in log[-2:]] == ["revoke", "cancel"]
    revoke = log[-2]
    assert revoke.actor == "provider:twilio"
    assert revoke.input == "provider_opt_out"
    assert "21610" in (revoke.reason or "")
    assert revoke.sent == ()  # no confirmation: the provider answered
    assert log[-1].cancelled == (queued.key,)
    assert store.message_status(queued.key) == "cancelled"
    assert store.pending() == []
    assert verify(A, log, head) == head


def test_a_provider_opt_out_withdraws_even_a_help_answer(store: Any) -> None:
    sender = Sender()
    svc = service(store, sender)
    svc.request_opt_in(A)
    svc.receive(A, "STOP", message_id="s")
    sender.fail = lambda m: True
    help_answer = svc.receive(A, "HELP", message_id="h").outgoing[0]
    assert store.message_status(help_answer.key) == "pending"

    def refuses(message: Outgoing) -> None:
        raise RecipientOptedOut("40300", provider="telnyx")

    service(store, refuses).flush()
    assert store.message_status(help_answer.key) == "cancelled"
    log = svc.history(A).events
    assert [e.trigger for e in log[-2:]] == ["revoke", "cancel"]
    assert log[-2].from_state is ConsentState.STOPPED
    assert service(store, refuses).flush() == 0  # nothing left to refuse


def test_provider_answered_keywords_are_recorded_without_a_second_answer(
    store: Any,
) -> None:
    sender = Sender()
    policy = Policy(org_name="Acme", provider_answers_keywords=True)
    svc = service(store, sender, policy)
    svc.request_opt_in(A)
    form = {"From": A, "Body": "STOP", "MessageSid": "SM1", "OptOutType": "STOP"}
    decision = twilio_inbound(form).receive(svc)
    assert decision.outcome is Outcome.CHANGED
    assert decision.consent.state is ConsentState.STOPPED
    assert decision.outgoing == ()
    help_decision = svc.receive(A, "HELP", message_id="SM2")
    assert [e.trigger for e in help_decision.events] == ["help"]
    assert help_decision.outgoing == ()
    restart = svc.receive(A, "START", message_id="SM3")
    assert restart.consent.state is ConsentState.OPTED_IN
    assert restart.outgoing == ()
    assert sender.kinds() == [MessageKind.OPT_IN_REQUEST]
    assert verify(A, svc.history(A).events, svc.get(A)) == svc.get(A)


# -- why nothing happened ----------------------------------------------------


def test_every_decision_says_why(store: Any) -> None:
    sender = Sender()
    policy = Policy(org_name="Acme", max_reminders=1, allow_restart=False)
    svc = service(store, sender, policy)
    assert svc.receive(A, "hello", message_id="1").outcome is Outcome.CONVERSATION
    assert svc.receive(A, "yes", message_id="2").outcome is Outcome.CONVERSATION
    assert svc.request_opt_in(A).outcome is Outcome.CHANGED
    assert svc.receive(A, "what?", message_id="3").outcome is Outcome.CHANGED
    assert svc.receive(A, "what?", message_id="3").outcome is Outcome.DUPLICATE
    assert svc.receive(A, "huh", message_id="4").outcome is Outcome.POLICY
    assert svc.receive(A, "yes", message_id="5").outcome is Outcome.CHANGED
    assert svc.receive(A, "yes", message_id="6").outcome is Outcome.UNCHANGED
    assert svc.request_opt_in(A).outcome is Outcome.UNCHANGED
    assert svc.receive(A, "STOP", message_id="7").outcome is Outcome.CHANGED
    assert svc.receive(A, "STOP", message_id="8").outcome is Outcome.UNCHANGED
    assert svc.receive(A, "START", message_id="9").outcome is Outcome.POLICY
    assert svc.receive(A, "lol", message_id="10").outcome is Outcome.CONVERSATION


def test_a_stale_reply_and_a_paused_loop_say_so(store: Any) -> None:
    clock = Clock()
    svc = ConsentService(
        Policy(org_name="Acme", loop_max_auto_replies=2), store, Sender(), clock=clock
    )
    svc.request_opt_in(A)
    earlier = clock.now.replace(year=clock.now.year - 1)
    late_yes = svc.receive(A, "yes", message_id="old", at=earlier)
    assert late_yes.outcome is Outcome.STALE
    assert svc.receive(A, "help", message_id="h1").outcome is Outcome.CHANGED
    assert svc.receive(A, "help", message_id="h2").outcome is Outcome.CHANGED
    assert svc.receive(A, "help", message_id="h3").outcome is Outcome.CHANGED  # pause
    assert svc.receive(A, "help", message_id="h4").outcome is Outcome.PAUSED


def test_an_old_redelivery_through_the_store_is_a_duplicate(store: Any) -> None:
    policy = Policy(org_name="Acme", loop_max_auto_replies=1000)
    svc = service(store, Sender(), policy)
    svc.request_opt_in(A)
    svc.receive(A, "help", message_id="first")
    for i in range(40):
        svc.receive(A, "help", message_id=f"m{i}")
    again = svc.receive(A, "help", message_id="first")
    assert again.outcome is Outcome.DUPLICATE
    assert not again.changed


# -- keys unique per store and tenant ----------------------------------------


def _request_key(store: Any, **kw: Any) -> str:
    decision = service(store, Sender(), **kw).request_opt_in(A)
    return str(decision.outgoing[0].key)


@pytest.mark.parametrize("kind", ["memory", "sqlite"])
def test_two_stores_never_share_keys(tmp_path: Path, kind: str) -> None:
    (tmp_path / "one").mkdir()
    (tmp_path / "two").mkdir()
    first = make_store(kind, tmp_path / "one")
    second = make_store(kind, tmp_path / "two")
    try:
        assert first.namespace() != second.namespace()
        assert _request_key(first) != _request_key(second)
    finally:
        for s in (first, second):
            if hasattr(s, "close"):
                s.close()


def test_tenants_of_one_store_never_share_keys(store: Any) -> None:
    acme = service(store, Sender(), namespace="acme")
    globex = service(store, Sender(), namespace="globex")
    acme.request_opt_in(A)
    first = acme.get(A)
    key = acme.history(A).events[0].sent[0].key
    # The same decision under another tenant would carry another key.
    from optin_core import Consent, RequestOptIn, decide

    at = acme.history(A).events[0].at
    ours = decide(Consent.new(A), RequestOptIn(at=at), POLICY, namespace="x/acme")
    theirs = decide(Consent.new(A), RequestOptIn(at=at), POLICY, namespace="x/globex")
    assert ours.outgoing[0].key != theirs.outgoing[0].key
    assert first.version == 1
    assert key != _plain_key()
    assert globex.namespace == "globex"


def _plain_key() -> str:
    from optin_core import Consent, RequestOptIn, decide

    return str(
        decide(Consent.new(A), RequestOptIn(at=Clock()()), POLICY).outgoing[0].key
    )


def test_a_reopened_sqlite_store_keeps_its_keys(tmp_path: Path) -> None:
    from optin_core import SQLiteStore

    path = tmp_path / "c.db"
    with SQLiteStore(path) as first:
        namespace = first.namespace()
        key = _request_key(first)
    with SQLiteStore(path) as again:
        assert again.namespace() == namespace
        # The same decision on the reopened store gets the same key: a
        # retry after a restart dedupes at the provider.
        from optin_core import Consent, RequestOptIn, decide

        redo = decide(
            Consent.new("+15550009"),
            RequestOptIn(at=Clock()()),
            POLICY,
            namespace=again.namespace(),
        )
        first_redo = decide(
            Consent.new("+15550009"),
            RequestOptIn(at=Clock()()),
            POLICY,
            namespace=namespace,
        )
        assert redo.outgoing[0].key == first_redo.outgoing[0].key
        assert again.message_status(key) == "sent"


@pytest.mark.parametrize("bad", ["", " ", "a\nb", "x" * 129, 5])
def test_a_bad_tenant_namespace_is_refused(store: Any, bad: Any) -> None:
    with pytest.raises(ValueError, match="namespace"):
        ConsentService(POLICY, store, Sender(), namespace=bad)


def test_decide_refuses_a_non_str_namespace() -> None:
    from optin_core import Consent, RequestOptIn, decide

    with pytest.raises(TypeError, match="namespace"):
        decide(Consent.new(A), RequestOptIn(at=Clock()()), POLICY, namespace=5)  # type: ignore[arg-type]


# -- the delivery lifecycle: retries, dead letters, deadlines, fairness ------


def test_failures_back_off_then_give_up_as_a_logged_dead_letter(store: Any) -> None:
    clock = Clock()
    sender = Sender(fail=lambda m: True)
    dead: list[tuple[Outgoing, Exception]] = []
    svc = ConsentService(
        POLICY,
        store,
        sender,
        clock=clock,
        max_send_attempts=5,
        on_send_error=lambda m, e: None,
        on_dead_letter=lambda m, e: dead.append((m, e)),
    )
    (request,) = svc.request_opt_in(A).outgoing  # attempt 1
    waits = []
    while store.message_status(request.key) == "pending":
        before = len(sender.attempts)
        svc.flush()
        if len(sender.attempts) == before:
            # Not due yet: wait until it is.
            (record,) = store.messages(A)
            assert record.next_attempt_at is not None
            waits.append(record.next_attempt_at - clock.now)
            clock.now = record.next_attempt_at
    assert len(sender.attempts) == 5
    # At once twice, then 30 s, 60 s: exponential.
    assert [w.total_seconds() for w in waits] == [30.0, 60.0]
    assert store.message_status(request.key) == "failed"
    assert [m.key for m, _e in dead] == [request.key]
    (letter,) = svc.dead_letters()
    assert letter.message.key == request.key
    assert letter.attempts == 5
    assert "ConnectionError" in (letter.last_error or "")
    log = svc.history(A).events
    assert log[-1].trigger == "dead_letter"
    assert log[-1].cancelled == (request.key,)
    assert "5 failed attempts" in (log[-1].reason or "")
    assert svc.flush() == 0
    assert verify(A, log, svc.get(A)) == svc.get(A)


def test_a_stop_confirmation_past_its_deadline_expires_unsent(store: Any) -> None:
    clock = Clock()
    sender = Sender()
    svc = ConsentService(
        POLICY, store, sender, clock=clock, on_send_error=lambda m, e: None
    )
    svc.request_opt_in(A)
    svc.receive(A, "yes", message_id="y")
    sender.fail = lambda m: True  # the provider is down
    (confirmation,) = svc.receive(A, "STOP", message_id="s").outgoing
    assert confirmation.deadline == clock.now + POLICY.stop_confirmation_window
    clock.advance(hours=3)  # the outage lasts
    sender.fail = None
    assert svc.flush() == 0
    assert MessageKind.STOP_CONFIRMATION not in sender.kinds()
    assert store.message_status(confirmation.key) == "expired"
    log = svc.history(A).events
    assert log[-1].trigger == "expire"
    assert log[-1].cancelled == (confirmation.key,)
    assert verify(A, log, svc.get(A)) == svc.get(A)


def test_a_stop_confirmation_within_its_window_goes_out(store: Any) -> None:
    clock = Clock()
    sender = Sender(fail=lambda m: True)
    svc = ConsentService(
        POLICY, store, sender, clock=clock, on_send_error=lambda m, e: None
    )
    svc.request_opt_in(A)
    sender.fail = lambda m: m.kind is MessageKind.STOP_CONFIRMATION
    svc.receive(A, "STOP", message_id="s")
    clock.advance(minutes=4, seconds=59)
    sender.fail = None
    assert svc.flush() == 1
    assert sender.kinds()[-1] is MessageKind.STOP_CONFIRMATION


def test_a_stop_confirmation_is_not_stuck_behind_a_failing_help(store: Any) -> None:
    clock = Clock()
    sender = Sender()
    svc = ConsentService(
        POLICY, store, sender, clock=clock, on_send_error=lambda m, e: None
    )
    svc.request_opt_in(A)
    sender.fail = lambda m: m.kind is MessageKind.HELP
    (help_answer,) = svc.receive(A, "HELP", message_id="h").outgoing
    svc.flush()
    svc.flush()  # three failures: the HELP waits for its retry
    decision = svc.receive(A, "STOP", message_id="s")
    (confirmation,) = decision.outgoing
    assert store.message_status(confirmation.key) == "sent"
    assert sender.kinds()[-1] is MessageKind.STOP_CONFIRMATION
    assert store.message_status(help_answer.key) == "pending"


def test_flush_serves_other_contacts_past_one_that_keeps_failing(store: Any) -> None:
    clock = Clock()
    sender = Sender()
    policy = Policy(org_name="Acme", loop_max_auto_replies=1000)
    svc = ConsentService(
        policy, store, sender, clock=clock, on_send_error=lambda m, e: None
    )
    svc.request_opt_in(A)
    sender.fail = lambda m: m.contact == A
    for i in range(60):
        svc.receive(A, "help", message_id=f"h{i}")
    others = [f"+1555010{i:04d}" for i in range(100)]
    sender.fail = lambda m: True
    for other in others:
        svc.request_opt_in(other)
    sender.fail = lambda m: m.contact == A
    already = len(sender.sent)
    served = 0
    for _ in range(3):
        served += svc.flush(limit=50)
    assert served == 100
    assert {m.contact for m in sender.sent[already:]} == set(others)


def test_a_garbage_outbox_row_is_quarantined_not_raised(tmp_path: Path) -> None:
    import sqlite3

    from optin_core import SQLiteStore

    path = tmp_path / "c.db"
    sender = Sender(fail=lambda m: True)
    with SQLiteStore(path) as store:
        svc = ConsentService(
            POLICY, store, sender, clock=Clock(), on_send_error=lambda m, e: None
        )
        (broken,) = svc.request_opt_in(A).outgoing
        svc.request_opt_in("+15550002")
    with sqlite3.connect(path) as raw:
        raw.execute("UPDATE outbox SET data = '{garbage' WHERE key = ?", (broken.key,))
    sender.fail = None
    with SQLiteStore(path) as store:
        svc = ConsentService(POLICY, store, sender, clock=Clock())
        assert svc.flush() == 1
        assert sender.sent[-1].contact == "+15550002"
        assert store.message_status(broken.key) == "quarantined"
        assert svc.flush() == 0


def test_provider_ids_and_delivery_callbacks_are_evidence(store: Any) -> None:
    clock = Clock()

    def send(message: Outgoing) -> str:
        return f"SM-{message.key[:8]}"

    svc = ConsentService(POLICY, store, send, clock=clock)
    (request,) = svc.request_opt_in(A).outgoing
    (record,) = store.messages(A)
    assert record.provider_id == f"SM-{request.key[:8]}"
    assert record.sent_at == clock.now
    assert svc.delivery_status(f"SM-{request.key[:8]}", "delivered") == request
    (record,) = store.messages(A)
    assert (record.status, record.delivery) == ("sent", "delivered")
    assert record.delivery_at == clock.now
    assert svc.delivery_status(request.key, "undelivered", error_code="30003")
    (record,) = store.messages(A)
    assert (record.delivery, record.error_code) == ("undelivered", "30003")
    assert svc.get(A).state is ConsentState.PENDING  # not an opt-out code
    assert svc.delivery_status("SM-nobody", "delivered") is None
    with pytest.raises(ValueError, match="status"):
        svc.delivery_status(request.key, "read")


def test_a_delivery_callback_with_an_opt_out_code_stops_the_contact(store: Any) -> None:
    svc = service(store, lambda m: "4ab7c3de-0001")
    svc.request_opt_in(A)
    svc.delivery_status("4ab7c3de-0001", "failed", error_code="9", provider="vonage")
    assert svc.get(A).state is ConsentState.STOPPED
    revoke = svc.history(A).events[-1]
    assert (revoke.trigger, revoke.actor) == ("revoke", "provider:vonage")


@pytest.mark.parametrize("bad", [0, -1, 1.5, True])
def test_max_send_attempts_must_be_a_positive_int(store: Any, bad: Any) -> None:
    with pytest.raises(ValueError, match="max_send_attempts"):
        ConsentService(POLICY, store, Sender(), max_send_attempts=bad)


def test_postgres_keys_differ_by_database_and_survive_a_reopen() -> None:
    from .postgres_server import postgres_dsn, postgres_store

    dsn = postgres_dsn()
    first, second = postgres_store(dsn), postgres_store()
    assert first.namespace() != second.namespace()
    assert _request_key(first) != _request_key(second)
    again = postgres_store(dsn)  # another process, or after a restart
    assert again.namespace() == first.namespace()
