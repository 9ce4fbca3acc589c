"""The service tests' environment: a service on each store kind, its
clock and sender, and the contacts they use."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from optin_core import (
    Outgoing,
    Policy,
)
from optin_core._service import ConsentService
from optin_core.stores import SQLiteStore

from .service_helpers import (
    SERVICE_STORE_KINDS,
    Clock,
    Sender,
    inner_store,
    make_store,
)

A = "+15550001"
B = "+15550002"
POLICY = Policy(org_name="Acme")


class Env:
    def __init__(self, store: Any, policy: Policy = POLICY) -> None:
        self.store = store
        self.clock = Clock()
        self.sender = Sender()
        self.errors: list[tuple[Outgoing, Exception]] = []
        self.service = ConsentService(
            policy,
            store,
            self.sender,
            clock=self.clock,
            on_send_error=lambda m, e: self.errors.append((m, e)),
        )

    def opt_in(self, contact: str = A) -> None:
        self.service.request_opt_in(contact)
        self.service.receive(contact, "Yes", message_id=f"yes-{contact}")


@pytest.fixture(params=SERVICE_STORE_KINDS)
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Any:
    s = make_store(request.param, tmp_path)
    yield s
    if isinstance(inner_store(s), SQLiteStore):
        inner_store(s).close()


@pytest.fixture
def env(store: Any) -> Env:
    return Env(store)
