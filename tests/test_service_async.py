"""AsyncConsentService: the same service, as coroutines."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from optin_core import (
    ConsentState,
    ContactStopped,
    MessageKind,
    Outgoing,
    Policy,
    SendBlocked,
)
from optin_core._service import AsyncConsentService
from optin_core.stores import MemoryStore

from .service_env import POLICY, A
from .service_helpers import (
    AsyncStoreAdapter,
    Clock,
    Sender,
)

# ---------------------------------------------------------------------------
# Async


def test_async_service_with_blocking_store(store: Any) -> None:
    sent: list[Outgoing] = []
    fail = [True]

    async def send(message: Outgoing) -> None:
        await asyncio.sleep(0)
        if fail[0]:
            fail[0] = False
            raise ConnectionError("down")
        sent.append(message)

    async def main() -> None:
        svc = AsyncConsentService(
            POLICY, store, send, clock=Clock(), on_send_error=lambda m, e: None
        )
        await svc.request_opt_in(A)
        assert sent == []
        assert await svc.flush() == 1
        assert await svc.flush() == 0
        await svc.receive(A, "yes", message_id="1")
        assert await svc.can_send(A)
        await svc.send_text(A, "hi")
        await svc.receive(A, "stop", message_id="2")
        with pytest.raises(SendBlocked):
            await svc.send_text(A, "again")
        assert (await svc.get(A)).state is ConsentState.STOPPED

    asyncio.run(main())
    assert [m.kind for m in sent] == [
        MessageKind.OPT_IN_REQUEST,
        MessageKind.OPT_IN_CONFIRMATION,
        MessageKind.TEXT,
        MessageKind.STOP_CONFIRMATION,
    ]


def test_async_service_with_async_store_and_sync_send() -> None:
    inner = MemoryStore()
    sender = Sender()
    policy = Policy(org_name="Acme", attestation_methods={"email"})

    async def main() -> None:
        svc = AsyncConsentService(
            policy, AsyncStoreAdapter(inner), sender, clock=Clock()
        )
        await svc.attest(A, method="email", evidence="e-1", by="martha")
        await svc.send_text(A, "hi")
        results = await asyncio.gather(
            *(svc.receive(A, "stop", message_id="dup") for _ in range(5))
        )
        assert sum(d.changed for d in results) == 1
        await svc.revoke(A, by="c", reason="r")
        with pytest.raises(ContactStopped):
            await svc.request_opt_in(A)

    asyncio.run(main())
    assert sender.kinds() == [MessageKind.TEXT, MessageKind.STOP_CONFIRMATION]
    assert inner.get(A).version == 4  # type: ignore[union-attr]


def test_async_service_keeps_the_queue_order_and_reads_history() -> None:
    inner = MemoryStore()
    sender = Sender()
    sender.fail_first(1)

    async def main() -> None:
        svc = AsyncConsentService(
            POLICY,
            AsyncStoreAdapter(inner),
            sender,
            clock=Clock(),
            on_send_error=lambda m, e: None,
        )
        await svc.request_opt_in(A)  # fails, stays pending
        await svc.receive(A, "help", message_id="h")  # request, then HELP
        await svc.receive(A, "yes", message_id="y")
        assert await svc.flush() == 0
        history = await svc.history(A)
        assert [e.trigger for e in history.events] == ["request", "help", "consent"]
        assert history.head == await svc.get(A)

    asyncio.run(main())
    assert sender.kinds() == [
        MessageKind.OPT_IN_REQUEST,
        MessageKind.HELP,
        MessageKind.OPT_IN_CONFIRMATION,
    ]
