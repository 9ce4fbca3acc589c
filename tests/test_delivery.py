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
