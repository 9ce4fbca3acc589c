"""The pytest plugin of optin_core: fixtures for a ready ``ConsentService``.

Registered through the ``pytest11`` entry point (name ``optin_core``), so
pytest loads it in any project where optin_core is installed; ``-p
no:optin_core`` turns it off. Every fixture is function-scoped and named
``optin_*``, so none shadows a host's own:

* ``optin_policy``: ``Policy(org_name="Acme")``; override it in your
  ``conftest.py`` to test with your organisation's policy;
* ``optin_clock``: a :class:`FakeClock` at ``T0`` (Monday 2 March 2026,
  09:30 UTC);
* ``optin_sender``: a :class:`RecordingSender`;
* ``optin_store``: a new ``MemoryStore``;
* ``optin_service``: a ``ConsentService`` on ``optin_store``, with the
  policy, sender and clock above;
* ``optin_sqlite_store``: a ``SQLiteStore`` in ``tmp_path``, closed after
  the test;
* ``optin_sqlite_service``: a ``ConsentService`` on ``optin_sqlite_store``.

Hypothesis refuses function-scoped fixtures in ``@given`` tests (they
would be shared by every example): build one service per example with
:func:`optin_core.testing.memory_service` there.

.. versionadded:: 0.2.0
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from .._policy import Policy
from .._service import ConsentService
from ..stores import MemoryStore, SQLiteStore
from ._fakes import FakeClock, RecordingSender


@pytest.fixture
def optin_policy() -> Policy:
    """The policy of the ``optin_*`` services: ``Policy(org_name="Acme")``."""
    return Policy(org_name="Acme")


@pytest.fixture
def optin_clock() -> FakeClock:
    """The services' clock, at ``optin_core.testing.T0``."""
    return FakeClock()


@pytest.fixture
def optin_sender() -> RecordingSender:
    """The services' ``send``: records every message, fails on demand."""
    return RecordingSender()


@pytest.fixture
def optin_store() -> MemoryStore:
    """The store of ``optin_service``."""
    return MemoryStore()


@pytest.fixture
def optin_service(
    optin_policy: Policy,
    optin_store: MemoryStore,
    optin_sender: RecordingSender,
    optin_clock: FakeClock,
) -> ConsentService:
    """A ``ConsentService`` on a ``MemoryStore``."""
    return ConsentService(optin_policy, optin_store, optin_sender, clock=optin_clock)


@pytest.fixture
def optin_sqlite_store(tmp_path: Path) -> Iterator[SQLiteStore]:
    """A ``SQLiteStore`` on a new file in ``tmp_path``, closed after the test."""
    store = SQLiteStore(tmp_path / "optin-consent.db", synchronous="NORMAL")
    yield store
    store.close()


@pytest.fixture
def optin_sqlite_service(
    optin_policy: Policy,
    optin_sqlite_store: SQLiteStore,
    optin_sender: RecordingSender,
    optin_clock: FakeClock,
) -> ConsentService:
    """A ``ConsentService`` on a ``SQLiteStore`` in ``tmp_path``."""
    return ConsentService(
        optin_policy, optin_sqlite_store, optin_sender, clock=optin_clock
    )
