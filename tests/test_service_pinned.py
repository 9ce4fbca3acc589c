"""Rules of the service shell pinned exactly (found by mutation testing).

Pins, through the public API of :class:`ConsentService` and
:class:`AsyncConsentService` on a ``MemoryStore``:

* the constructor: each argument refused with its documented error and its
  exact message, the boundary values accepted, and the defaults;
* the clock, ``contact`` and ``contact_key`` checks: exact errors;
* what each public method passes on: ``by``, ``at``, ``time_zone``,
  ``locale``, ``greeting``, ``limit`` (sync and async alike);
* the key namespace: the store's id, then the service's tenant;
* delivery: a provider id kept only when it is a str, the deadline of a
  stop confirmation (sent at it, expired after it), a failed send's error
  (cut at 500 characters) and the handlers called with the real error, a
  provider's opt-out recorded with the message it refused;
* delivery status callbacks: the time, the error code, the log line for
  an unknown message, an opt-out code;
* a stop logs only its own contact's queue; a duplicate webhook's decision;
  an erased contact's history and suppression (keyed logs too);
* the log is verified against the head, with the policy's ``log_key``;
* an import from a file that cannot seek is spooled faithfully.
"""

from __future__ import annotations

import asyncio
import inspect
import io
import logging
from collections.abc import Coroutine
from datetime import datetime, timedelta, tzinfo
from typing import Any

import attrs
import pytest

from optin_core import (
    AsyncConsentService,
    Consent,
    ConsentService,
    ConsentState,
    ContactStopped,
    InvalidInput,
    MessageKind,
    Outcome,
    Outgoing,
    Policy,
    RecipientOptedOut,
    RecordError,
    SendBlocked,
    StaleVersion,
    decide,
)
from optin_core._records import RequestOptIn
from optin_core.stores import MemoryStore
from optin_core.testing import FakeClock, RecordingSender

from .service_helpers import T0, AsyncStoreAdapter, Interceptor

A = "+15550001"
B = "+15550002"
POLICY = Policy(org_name="Acme")
#: Quiet from 21:00 to 08:00, in UTC unless the contact's zone is given.
QUIET = Policy(org_name="Acme", quiet_hours=("21:00", "08:00"))
KEYED = Policy(org_name="Acme", log_key=b"k" * 32)
#: 09:00 UTC is day in UTC and 02:00 (night) in Los Angeles.
LA = "America/Los_Angeles"


def service(
    policy: Policy = POLICY, store: Any = None, **kw: Any
) -> tuple[ConsentService, Any, RecordingSender, FakeClock]:
    store = MemoryStore() if store is None else store
    sender = RecordingSender()
    clock = FakeClock(T0)
    kw.setdefault("on_send_error", lambda m, e: None)
    return (
        ConsentService(policy, store, sender, clock=clock, **kw),
        store,
        sender,
        clock,
    )


def async_service(
    policy: Policy = POLICY, **kw: Any
) -> tuple[AsyncConsentService, MemoryStore, RecordingSender]:
    store = MemoryStore()
    sender = RecordingSender()
    svc = AsyncConsentService(
        policy, AsyncStoreAdapter(store), sender, clock=FakeClock(T0), **kw
    )
    return svc, store, sender


def run(coro: Coroutine[Any, Any, Any]) -> Any:
    return asyncio.run(coro)


class NoOffset(tzinfo):
    """A tzinfo that does not know its offset: the datetime is naive."""

    def utcoffset(self, dt: datetime | None) -> timedelta | None:
        return None

    def dst(self, dt: datetime | None) -> timedelta | None:
        return None


NO_OFFSET = datetime(2025, 4, 11, 9, 0, tzinfo=NoOffset())


# ---------------------------------------------------------------------------
# The constructor


def refused(error: type[Exception], message: str, **kw: Any) -> None:
    """``ConsentService(POLICY, store, send, **kw)`` raises exactly this."""
    args = kw.pop("args", (POLICY, MemoryStore(), RecordingSender()))
    with pytest.raises(error) as info:
        ConsentService(*args, **kw)
    assert str(info.value) == message


def test_each_constructor_argument_is_refused_with_its_exact_message() -> None:
    send = RecordingSender()

    async def async_send(_m: Outgoing) -> None:
        return None

    refused(
        TypeError,
        "policy must be a Policy, got str",
        args=("acme", MemoryStore(), send),
    )
    refused(
        TypeError,
        "send must be callable: send(message: Outgoing)",
        args=(POLICY, MemoryStore(), None),
    )
    refused(
        TypeError,
        "send is a coroutine function: a blocking ConsentService would never "
        "await it; use AsyncConsentService, or a blocking send",
        args=(POLICY, MemoryStore(), async_send),
    )
    refused(
        TypeError,
        "store.get is a coroutine function: use AsyncConsentService with an "
        "async store",
        args=(POLICY, AsyncStoreAdapter(MemoryStore()), send),
    )
    refused(TypeError, "clock must be a callable returning an aware datetime", clock=5)
    refused(
        TypeError, "on_send_error must be callable(message, error)", on_send_error=1
    )
    refused(
        TypeError,
        "contact_key must be None or callable(contact) -> str",
        contact_key="e164",
    )
    # A bool is an int to Python, never a count to the service.
    refused(ValueError, "max_retries must be an int >= 1, got True", max_retries=True)
    refused(ValueError, "max_retries must be an int >= 1, got 0", max_retries=0)
    refused(
        ValueError,
        "retry_backoff must be a timedelta >= 0, got "
        "datetime.timedelta(days=-1, seconds=86399)",
        retry_backoff=timedelta(seconds=-1),
    )
    refused(
        ValueError,
        "namespace must be None or a printable str of 1 to 128 characters "
        "(a tenant id), got ' '",
        namespace=" ",
    )


def test_constructor_boundaries_are_accepted() -> None:
    # 1 is the documented minimum of both counts; no backoff is allowed;
    # a tenant id may be 128 characters long.
    store, send = MemoryStore(), RecordingSender()
    svc = ConsentService(
        POLICY,
        store,
        send,
        max_retries=1,
        max_send_attempts=1,
        retry_backoff=timedelta(0),
        namespace="t" * 128,
    )
    assert (svc.max_retries, svc.max_send_attempts) == (1, 1)
    assert svc.retry_backoff == timedelta(0)
    assert svc.namespace == "t" * 128


def test_constructor_defaults() -> None:
    # docs/service.md: 8 tries of the compare-and-set, 8 send attempts.
    svc = ConsentService(POLICY, MemoryStore(), RecordingSender())
    assert svc.max_retries == 8
    assert svc.max_send_attempts == 8
    assert repr(svc).startswith("ConsentService(policy='default', store=")


def test_the_default_dead_letter_handler_logs_instead_of_raising(
    caplog: pytest.LogCaptureFixture,
) -> None:
    # on_dead_letter=None means the default handler (a log line), not None.
    svc, store, sender, _clock = service(max_send_attempts=1)
    sender.fail_always()
    with caplog.at_level(logging.ERROR, logger="optin_core"):
        svc.request_opt_in(A)
    assert [r.message.kind for r in store.dead_letters()] == [
        MessageKind.OPT_IN_REQUEST
    ]
    assert "dead letter" in caplog.text


# ---------------------------------------------------------------------------
# The clock and the contact


def test_a_clock_must_return_an_aware_datetime() -> None:
    svc, _store, _sender, clock = service()
    clock.now = "noon"  # type: ignore[assignment]
    with pytest.raises(TypeError) as info:
        svc.flush()
    assert str(info.value) == "clock() must return a datetime, got str"
    # tzinfo set but no offset: still naive.
    clock.now = NO_OFFSET
    with pytest.raises(InvalidInput) as naive:
        svc.flush()
    assert str(naive.value).startswith(
        "clock() returned a naive datetime; return an aware one, e.g. "
        "datetime.now(timezone.utc)"
    )


def test_contact_and_contact_key_errors_are_exact() -> None:
    svc, _store, _sender, _clock = service()
    with pytest.raises(TypeError) as info:
        svc.get(15550001)  # type: ignore[arg-type]
    assert str(info.value) == "contact must be str, got int"

    def boom(_contact: str) -> str:
        raise LookupError("no such tenant")

    svc, _store, _sender, _clock = service(contact_key=boom)
    with pytest.raises(InvalidInput) as refused_key:
        svc.get(A)
    assert str(refused_key.value).startswith(
        f"contact_key refused {A!r}: LookupError: no such tenant"
    )
    svc, _store, _sender, _clock = service(contact_key=lambda _c: 42)
    with pytest.raises(TypeError) as not_str:
        svc.get(A)
    assert str(not_str.value) == f"contact_key must return a str, got int for {A!r}"


# ---------------------------------------------------------------------------
# can_send


def test_can_send_checks_its_at_exactly() -> None:
    svc, _store, _sender, _clock = service()
    with pytest.raises(TypeError) as info:
        svc.can_send(A, at="today")  # type: ignore[arg-type]
    assert str(info.value) == "at must be a datetime, got str"
    for naive in (datetime(2025, 4, 11, 9, 0), NO_OFFSET):
        with pytest.raises(InvalidInput) as bad:
            svc.can_send(A, at=naive)
        assert str(bad.value).startswith("at is a naive datetime; pass an aware one")


def opted_in(svc: Any) -> None:
    svc.request_opt_in(A)
    svc.receive(A, "Yes", message_id="yes")


def test_can_send_answers_for_the_given_at_and_zone() -> None:
    svc, _store, _sender, _clock = service(QUIET)
    opted_in(svc)
    # The clock says 09:00 UTC (day); the question is about 23:00 (night).
    assert svc.can_send(A)
    assert not svc.can_send(A, at=T0.replace(hour=23))
    assert not svc.can_send(A, time_zone=LA)


def test_async_can_send_answers_for_the_given_at_and_zone() -> None:
    svc, _store, _sender = async_service(QUIET)

    async def scenario() -> tuple[bool, bool, bool]:
        await svc.request_opt_in(A)
        await svc.receive(A, "Yes", message_id="yes")
        return (
            await svc.can_send(A),
            await svc.can_send(A, at=T0.replace(hour=23)),
            await svc.can_send(A, time_zone=LA),
        )

    assert run(scenario()) == (True, False, False)


# ---------------------------------------------------------------------------
# What the public methods pass on

AT = T0 + timedelta(minutes=7)  # an explicit time, not the clock's


def last_event(store: Any, contact: str = A) -> Any:
    return store.log(contact)[-1]


def test_request_opt_in_passes_on_who_when_and_the_zone() -> None:
    svc, store, _sender, _clock = service(QUIET)
    svc.request_opt_in(A, by="agent-7", at=AT)
    assert (last_event(store).actor, last_event(store).at) == ("agent-7", AT)
    # 02:00 in the contact's zone: quiet hours, whatever UTC says.
    with pytest.raises(SendBlocked):
        svc.request_opt_in(B, time_zone=LA)


def test_async_request_opt_in_passes_on_every_argument() -> None:
    svc, store, _sender = async_service(QUIET)

    async def scenario() -> None:
        await svc.request_opt_in(
            A, locale="es", greeting="Hola Ana", by="agent-7", at=AT
        )
        with pytest.raises(SendBlocked):
            await svc.request_opt_in(B, time_zone=LA)

    run(scenario())
    event = last_event(store)
    assert (event.actor, event.at, event.locale) == ("agent-7", AT, "es")
    assert event.sent[0].locale == "es"
    assert event.sent[0].text.startswith("Hola Ana\n")


def test_send_text_passes_on_who_when_and_the_zone() -> None:
    svc, store, sender, _clock = service(QUIET)
    opted_in(svc)
    svc.send_text(A, "hello", by="agent-7", at=AT)
    assert (last_event(store).actor, last_event(store).at) == ("agent-7", AT)
    with pytest.raises(SendBlocked):
        svc.send_text(A, "at night", time_zone=LA)
    assert [m.text for m in sender.sent][-1] == "hello"


def test_async_send_text_passes_on_who_when_and_the_zone() -> None:
    svc, store, sender = async_service(QUIET)

    async def scenario() -> None:
        await svc.request_opt_in(A)
        await svc.receive(A, "Yes", message_id="yes")
        await svc.send_text(A, "hello", by="agent-7", at=AT)
        with pytest.raises(SendBlocked):
            await svc.send_text(A, "at night", time_zone=LA)

    run(scenario())
    assert (last_event(store).actor, last_event(store).at) == ("agent-7", AT)
    assert [m.text for m in sender.sent][-1] == "hello"


def test_async_receive_attest_and_revoke_record_the_given_at() -> None:
    policy = Policy(org_name="Acme", attestation_methods=("web_form",))
    svc, store, _sender = async_service(policy)

    async def scenario() -> list[datetime]:
        ats = []
        await svc.request_opt_in(A)
        await svc.receive(A, "Yes", message_id="yes", at=AT)
        ats.append(last_event(store).at)
        await svc.revoke(A, by="agent", reason="asked by phone", at=AT + timedelta(1))
        ats.append(last_event(store).at)
        await svc.attest(
            B, method="web_form", evidence="form 12", by="agent", at=AT + timedelta(2)
        )
        ats.append(last_event(store, B).at)
        return ats

    assert run(scenario()) == [AT, AT + timedelta(1), AT + timedelta(2)]


# ---------------------------------------------------------------------------
# flush and dead letters


def two_failed_contacts() -> tuple[ConsentService, MemoryStore, RecordingSender, Any]:
    """A and B each have an opt-in request pending after a failed send."""
    svc, store, sender, clock = service(retry_backoff=timedelta(0))
    sender.fail_always()
    svc.request_opt_in(A)
    svc.request_opt_in(B)
    sender.recover()
    return svc, store, sender, clock


def test_flush_limit_bounds_the_contacts_served() -> None:
    svc, _store, sender, _clock = two_failed_contacts()
    assert svc.flush(limit=1) == 1
    assert len(sender.sent) == 1
    assert svc.flush() == 1


def test_async_flush_limit_bounds_the_contacts_served() -> None:
    svc, _store, sender = async_service(retry_backoff=timedelta(0))
    sender.fail_always()

    async def scenario() -> int:
        await svc.request_opt_in(A)
        await svc.request_opt_in(B)
        sender.recover()
        return await svc.flush(limit=1)

    assert run(scenario()) == 1
    assert len(sender.sent) == 1


def test_flush_limit_must_be_an_int_of_at_least_one() -> None:
    svc, _store, _sender, _clock = two_failed_contacts()
    with pytest.raises(ValueError) as info:
        svc.flush(limit=True)
    assert str(info.value) == "limit must be None or an int >= 1, got True"


def test_dead_letters_limit_is_passed_on() -> None:
    svc, _store, sender, _clock = service(max_send_attempts=1)
    sender.fail_always()
    svc.request_opt_in(A)
    svc.request_opt_in(B)
    assert len(svc.dead_letters()) == 2
    assert len(svc.dead_letters(limit=1)) == 1


# ---------------------------------------------------------------------------
# A failed send


def test_a_failed_send_records_its_error_cut_at_500_characters() -> None:
    long = "x" * 600
    sender = RecordingSender(error=lambda _m: ConnectionError(long))
    sender.fail_always()
    store = MemoryStore()
    dead: list[tuple[Outgoing, Exception]] = []
    svc = ConsentService(
        POLICY,
        store,
        sender,
        clock=FakeClock(T0),
        max_send_attempts=1,
        on_dead_letter=lambda m, e: dead.append((m, e)),
    )
    svc.request_opt_in(A)
    record = store.messages(A)[0]
    assert record.last_error == f"ConnectionError: {long}"[:500]
    # The dead letter's event says why, with the same 500 characters.
    assert last_event(store).reason == (
        f"given up after 1 failed attempts: {f'ConnectionError: {long}'[:500]}"
    )
    # The handler gets the message and the exception send raised.
    assert [(m.key, str(e)) for m, e in dead] == [(record.message.key, long)]


def test_the_default_send_error_handler_logs_the_message_and_error(
    caplog: pytest.LogCaptureFixture,
) -> None:
    sender = RecordingSender()
    sender.fail_first(1)
    svc = ConsentService(POLICY, MemoryStore(), sender, clock=FakeClock(T0))
    with caplog.at_level(logging.WARNING, logger="optin_core"):
        d = svc.request_opt_in(A)
    [record] = [r for r in caplog.records if r.name == "optin_core"]
    error = sender.error(d.outgoing[0])
    assert record.getMessage() == (
        f"send failed for opt_in_request message {d.outgoing[0].key} "
        f"({type(error).__name__}: {error}); it stays pending and flush() "
        "will retry it"
    )


def test_a_send_returning_an_awaitable_fails_and_the_coroutine_is_closed() -> None:
    made: list[Coroutine[Any, Any, None]] = []

    async def later() -> None:
        return None

    def send(_m: Outgoing) -> Any:
        made.append(later())
        return made[-1]

    errors: list[Exception] = []
    svc = ConsentService(
        POLICY, MemoryStore(), send, on_send_error=lambda m, e: errors.append(e)
    )
    svc.request_opt_in(A)
    assert [str(e) for e in errors] == [
        "send returned an awaitable, which a blocking ConsentService cannot "
        "await: the message stays pending; use AsyncConsentService or a "
        "blocking send"
    ]
    # Closed, never run: no "coroutine was never awaited" warning.
    assert inspect.getcoroutinestate(made[0]) == inspect.CORO_CLOSED


def test_a_provider_id_is_kept_only_when_send_returns_a_str() -> None:
    for returned, kept in (("SM123", "SM123"), (123, None)):
        store = MemoryStore()
        svc = ConsentService(POLICY, store, lambda _m, r=returned: r)
        svc.request_opt_in(A)
        assert store.messages(A)[0].provider_id == kept


def test_a_provider_opt_out_on_send_is_recorded_with_its_message() -> None:
    store = MemoryStore()

    def send(_m: Outgoing) -> None:
        raise RecipientOptedOut("21610", provider="twilio")

    svc = ConsentService(POLICY, store, send, clock=FakeClock(T0))
    d = svc.request_opt_in(A)
    key = d.outgoing[0].key
    assert svc.get(A).state is ConsentState.STOPPED
    # The stop, then what it cancels (the refused message among them).
    stop, cancel = store.log(A)[-2:]
    assert stop.reason == f"twilio opt-out 21610 (sending {key})"
    assert cancel.cancelled == (key,)
    record = store.messages(A)[0]
    assert record.last_error == str(RecipientOptedOut("21610", provider="twilio"))


# ---------------------------------------------------------------------------
# Delivery status callbacks


def sent_message() -> tuple[ConsentService, MemoryStore, Outgoing]:
    svc, store, _sender, _clock = service()
    d = svc.request_opt_in(A)
    return svc, store, d.outgoing[0]


def test_delivery_status_records_the_given_time_and_no_code() -> None:
    svc, store, message = sent_message()
    assert svc.delivery_status(message.key, "delivered", at=AT) == message
    record = store.messages(A)[0]
    assert (record.delivery, record.delivery_at) == ("delivered", AT)
    # No error code given: none recorded (not the text "None").
    assert record.error_code is None


def test_delivery_status_refuses_an_empty_key() -> None:
    svc, _store, _message = sent_message()
    with pytest.raises(ValueError) as info:
        svc.delivery_status("", "delivered")
    assert str(info.value) == "key_or_provider_id must be a non-empty str"


def test_delivery_status_of_an_unknown_message_is_logged(
    caplog: pytest.LogCaptureFixture,
) -> None:
    svc, _store, _message = sent_message()
    with caplog.at_level(logging.WARNING, logger="optin_core"):
        assert svc.delivery_status("SM-nope", "failed") is None
    assert [r.getMessage() for r in caplog.records] == [
        "delivery status 'failed' for an unknown message 'SM-nope' ignored"
    ]


def test_an_opt_out_code_in_a_status_callback_stops_the_contact() -> None:
    svc, store, message = sent_message()
    svc.delivery_status(message.key, "failed", error_code="9", provider="vonage")
    assert svc.get(A).state is ConsentState.STOPPED
    stop = last_event(store)
    assert stop.reason == f"vonage opt-out 9 (sending {message.key})"


# ---------------------------------------------------------------------------
# A stop confirmation's deadline


def test_a_stop_confirmation_is_still_sent_at_its_deadline() -> None:
    # Policy default: 5 minutes; "not handed to the provider within it"
    # means after it, so at the deadline itself it still goes.
    svc, _store, sender, clock = service(retry_backoff=timedelta(0))
    opted_in(svc)
    sender.fail_always()
    d = svc.receive(A, "STOP", message_id="stop")
    deadline = d.outgoing[0].deadline
    assert deadline == T0 + timedelta(minutes=5)
    sender.recover()
    clock.now = deadline
    assert svc.flush() == 1
    assert sender.sent[-1].kind is MessageKind.STOP_CONFIRMATION


# ---------------------------------------------------------------------------
# Keys: the store's id, then the tenant


def expected_key(contact: str, namespace: str) -> str:
    """The key the core gives the contact's first opt-in request."""
    request = RequestOptIn(at=T0)
    decision = decide(Consent.new(contact), request, POLICY, namespace=namespace)
    return decision.outgoing[0].key


def test_message_keys_are_in_the_store_and_tenant_namespace() -> None:
    store = MemoryStore()
    plain = ConsentService(POLICY, store, RecordingSender(), clock=FakeClock(T0))
    tenant = ConsentService(
        POLICY, store, RecordingSender(), clock=FakeClock(T0), namespace="acme-eu"
    )
    key = plain.request_opt_in(A).outgoing[0].key
    tenant_key = tenant.request_opt_in(B).outgoing[0].key
    # No tenant: the store's id alone (not "<id>/None"); a tenant: after it.
    assert key == expected_key(A, store.namespace())
    assert tenant_key == expected_key(B, f"{store.namespace()}/acme-eu")


def test_a_store_namespace_must_be_a_non_empty_str() -> None:
    class Blank(Interceptor):
        def namespace(self) -> str:
            return ""

    svc, _store, _sender, _clock = service(store=Blank(MemoryStore()))
    with pytest.raises(TypeError) as info:
        svc.request_opt_in(A)
    assert str(info.value) == "store.namespace() must return a non-empty str, got str"


# ---------------------------------------------------------------------------
# What _apply decides around the store


def test_an_old_redelivery_answers_duplicate_with_the_stored_head() -> None:
    # The head remembers the last 32 message ids; the store's log the rest:
    # its put refuses the redelivery, and the decision says so.
    policy = Policy(org_name="Acme", loop_max_auto_replies=1000)
    svc, _store, sender, _clock = service(policy)
    svc.request_opt_in(A)
    svc.receive(A, "STOP", message_id="SM-stop")
    svc.receive(A, "START", message_id="SM-start")
    for i in range(40):
        svc.receive(A, "help", message_id=f"SM-{i}")
    svc.receive(A, "STOP", message_id="SM-stop-2")
    head, sent = svc.get(A), len(sender.sent)
    decision = svc.receive(A, "START", message_id="SM-start")
    assert decision.outcome is Outcome.DUPLICATE
    assert decision.consent == head
    assert (decision.events, decision.outgoing) == ((), ())
    # The reply read from the text is kept: the host may log what it was.
    assert decision.reply is not None
    assert decision.reply.text == "START"
    assert len(sender.sent) == sent


def test_a_stop_logs_only_its_own_contacts_queue() -> None:
    # The queue is read as store.pending(contact=...): the contact's own.
    asked: list[str | None] = []

    class Spy(Interceptor):
        def pending(self, **kw: Any) -> Any:
            asked.append(kw.get("contact"))
            return self.inner.pending(**kw)

    store = MemoryStore()
    svc, _spy, sender, _clock = service(store=Spy(store))
    opted_in(svc)
    sender.fail_always()
    svc.request_opt_in(B)
    a_text = svc.send_text(A, "queued for A").outgoing[0].key
    b_queued = {m.key for m in store.pending(contact=B)}
    assert b_queued
    sender.recover()
    svc.receive(A, "STOP", message_id="a-stop")
    cancelled = {k for e in store.log(A) for k in e.cancelled}
    assert a_text in cancelled
    assert not cancelled & b_queued
    assert asked == [A]


def erased(policy: Policy = POLICY) -> tuple[ConsentService, MemoryStore]:
    svc, store, _sender, _clock = service(policy)
    opted_in(svc)
    svc.erase(A, by="dpo", reason="GDPR request")
    return svc, store


def test_an_erased_contact_is_changed_only_by_its_own_message() -> None:
    svc, store = erased()
    decision = svc.revoke(A, by="agent", reason="again")
    assert decision.outcome is Outcome.UNCHANGED
    assert decision.consent.state is ConsentState.STOPPED
    assert decision.consent.contact == A
    assert (decision.events, decision.outgoing, decision.reply) == ((), (), None)
    assert store.get(A) is None


def test_an_erased_contact_of_a_keyed_log_stays_suppressed() -> None:
    # The suppression key is keyed by Policy.log_key: looked up with it.
    svc, _store = erased(KEYED)
    with pytest.raises(ContactStopped):
        svc.request_opt_in(A)
    assert not svc.can_send(A)


def test_an_erased_contacts_history_is_its_suppression() -> None:
    svc, _store = erased()
    log = svc.history(A)
    assert log.head.state is ConsentState.STOPPED
    assert log.head.contact == A
    assert len(log.events) == 1
    assert log.events[0].actor == "optin_core:erasure"


def test_a_keyed_log_verifies_with_the_policy_key() -> None:
    svc, _store, _sender, _clock = service(KEYED)
    opted_in(svc)
    assert len(svc.history(A).events) == 2


def test_a_head_that_does_not_match_its_log_is_refused() -> None:
    class Forged(Interceptor):
        def get(self, contact: str) -> Any:
            head = self.inner.get(contact)
            return None if head is None else attrs.evolve(head, digest="sha256:0")

    store = MemoryStore()
    svc, _s, _sender, _clock = service(store=store)
    opted_in(svc)
    forged, _s, _sender, _clock = service(store=Forged(store))
    with pytest.raises(RecordError):
        forged.history(A)


# ---------------------------------------------------------------------------
# What a store returns for a contact


def test_a_store_returning_junk_is_refused_naming_the_field() -> None:
    class Junk(Interceptor):
        def get(self, contact: str) -> Any:
            return {"contact": contact}

    svc, _store, _sender, _clock = service(store=Junk(MemoryStore()))
    with pytest.raises(RecordError) as info:
        svc.get(A)
    assert (info.value.field, info.value.contact) == ("record", A)
    assert info.value.problem == "the store returned a dict, not a Consent"


def test_a_store_returning_another_contacts_record_names_the_field() -> None:
    store = MemoryStore()
    svc, _s, _sender, _clock = service(store=store)
    svc.request_opt_in(A)

    class Mixed(Interceptor):
        def get(self, contact: str) -> Any:
            return self.inner.get(A)

    mixed, _s, _sender, _clock = service(store=Mixed(store))
    with pytest.raises(RecordError) as info:
        mixed.get(B)
    assert (info.value.field, info.value.contact) == ("contact", B)


# ---------------------------------------------------------------------------
# An import from a file that cannot seek


class Pipe:
    """A text stream read once (a pipe, a socket): ``seekable`` raises."""

    def __init__(self, text: str) -> None:
        self._buffer = io.StringIO(text, newline="")

    def read(self, size: int = -1) -> str:
        return self._buffer.read(size)

    def seekable(self) -> bool:
        raise OSError("a pipe")


def test_an_import_from_a_pipe_reads_the_same_text_as_from_a_file() -> None:
    # The spooled copy keeps every character: a CRLF inside a quoted cell,
    # and a lone surrogate (a file opened with errors="surrogateescape").
    text = (
        "contact,state,since,evidence\r\n"
        '+15550001,opted_in,2025-01-01T00:00:00+00:00,"line1\r\nline2 \udcff"\r\n'
    )
    evidence = []
    for fp in (io.StringIO(text, newline=""), Pipe(text)):
        svc, store, _sender, _clock = service()
        report = svc.import_records(fp, format="csv", source="crm")  # type: ignore[arg-type]
        assert report.applied == 1
        evidence.append(last_event(store).evidence)
    assert evidence[0] == evidence[1]
    assert evidence[1].endswith("row 2; line1\r\nline2 \udcff")


def test_an_import_refuses_what_is_not_a_text_file_exactly() -> None:
    svc, _store, _sender, _clock = service()
    with pytest.raises(TypeError) as info:
        svc.import_records(object(), source="crm")  # type: ignore[arg-type]
    assert str(info.value) == "fp must be a text file open for reading"
    with pytest.raises(TypeError) as binary:
        svc.import_records(io.BytesIO(b""), source="crm")  # type: ignore[arg-type]
    assert str(binary.value) == "fp must be a text file (open(path, newline=''))"


# ---------------------------------------------------------------------------
# Giving a message up loses to a concurrent write


class LosesEveryPutAfter(Interceptor):
    """A store whose puts conflict once ``lose`` is set (another worker
    keeps writing the contact)."""

    lose = False

    def put(self, consent: Any, events: Any, **kw: Any) -> Any:
        if self.lose:
            raise StaleVersion(consent.contact, expected=0, found=1)
        return super().put(consent, events, **kw)


def test_a_dead_letter_that_loses_its_write_is_logged_not_raised(
    caplog: pytest.LogCaptureFixture,
) -> None:
    store = LosesEveryPutAfter(MemoryStore())
    errors: list[Outgoing] = []
    sender = RecordingSender()
    sender.fail_always()
    svc = ConsentService(
        POLICY,
        store,
        sender,
        clock=FakeClock(T0),
        max_retries=1,
        max_send_attempts=1,
        on_send_error=lambda m, e: errors.append(m),
    )
    store.before_put = lambda: setattr(store, "lose", True)  # after this put
    with caplog.at_level(logging.INFO, logger="optin_core"):
        d = svc.request_opt_in(A)
    key = d.outgoing[0].key
    # Not given up: a plain failed send, retried later.
    assert [m.key for m in errors] == [key]
    assert f"message {key} not given up: " in caplog.text


def test_an_expiry_that_loses_its_write_is_logged_not_raised(
    caplog: pytest.LogCaptureFixture,
) -> None:
    store = LosesEveryPutAfter(MemoryStore())
    svc, _store, sender, clock = service(
        store=store, max_retries=1, retry_backoff=timedelta(0)
    )
    opted_in(svc)
    sender.fail_always()
    key = svc.receive(A, "STOP", message_id="stop").outgoing[0].key
    clock.now = T0 + timedelta(minutes=6)  # past the confirmation's deadline
    store.lose = True
    with caplog.at_level(logging.INFO, logger="optin_core"):
        assert svc.flush() == 0
    assert f"message {key} not given up: " in caplog.text


def test_an_import_from_a_pipe_larger_than_the_memory_spool_is_read() -> None:
    # Past 8 MiB the spooled copy moves to disk; the import still reads it.
    text = (
        "contact,state,since\r\n"
        "+15550001,opted_in,2025-01-01T00:00:00+00:00\r\n" + "\r\n" * (9 << 19)
    )
    svc, _store, _sender, _clock = service()
    report = svc.import_records(Pipe(text), format="csv", source="crm")  # type: ignore[arg-type]
    assert report.applied == 1
    assert svc.get(A).state is ConsentState.OPTED_IN
