"""A settable clock, a ``send`` that records and fails on demand, and
ready services: what a host's tests hand to :class:`~optin_core.ConsentService`."""

from __future__ import annotations

import os
import threading
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

from .._enums import MessageKind
from .._policy import Policy
from .._records import Outgoing
from .._service import ConsentService
from ..stores import MemoryStore, SQLiteStore

__all__ = [
    "T0",
    "FakeClock",
    "RecordingSender",
    "memory_service",
    "sqlite_service",
]

#: The moment every fake starts at unless told otherwise: Monday
#: 2 March 2026, 09:30 UTC (office hours, so quiet hours never get in the way).
T0 = datetime(2026, 3, 2, 9, 30, tzinfo=UTC)


class FakeClock:
    """A settable, aware clock: pass it as ``ConsentService(clock=...)``.

    It never moves on its own: ``clock()`` returns :attr:`now` until the
    test moves it with :meth:`advance` or :meth:`set` (or assigns ``now``).
    Safe to share between threads.

    ```python
    clock = FakeClock()
    service = ConsentService(policy, MemoryStore(), send, clock=clock)
    clock.advance(hours=24)  # the resend delay has passed
    ```

    .. versionadded:: 0.2.0
    """

    def __init__(self, now: datetime = T0) -> None:
        _check_aware(now)
        self.now = now
        self._lock = threading.Lock()

    def __call__(self) -> datetime:
        with self._lock:
            return self.now

    def __repr__(self) -> str:
        return f"FakeClock({self.now.isoformat()})"

    def advance(self, **delta: float) -> datetime:
        """Move forward by ``timedelta(**delta)`` (``minutes=5``,
        ``hours=24``...); returns the new time."""
        with self._lock:
            self.now += timedelta(**delta)
            return self.now

    def set(self, now: datetime) -> datetime:
        """Jump to ``now`` (an aware datetime, earlier or later)."""
        _check_aware(now)
        with self._lock:
            self.now = now
            return now


def _check_aware(now: object) -> None:
    if not isinstance(now, datetime) or now.utcoffset() is None:
        raise ValueError(f"a FakeClock needs an aware datetime, got {now!r}")


class RecordingSender:
    """A ``send`` that records every message, and fails when told to.

    ``sent`` lists the messages handed over successfully, in order;
    ``attempts`` every call, failed ones included. ``fail`` is a predicate
    on the message (``None``: never fail): while it returns true, the call
    raises ``error(message)``, a ``ConnectionError`` by default, which is
    what the service retries (:meth:`ConsentService.flush`). Set ``fail``
    at any time, or use :meth:`fail_first`, :meth:`fail_always` and
    :meth:`recover`. Safe to share between threads.

    ```python
    sender = RecordingSender()
    sender.fail_always()  # the provider is down
    service.receive(contact, "Oui", message_id="SM1")  # saved; nothing sent
    sender.recover()
    assert service.flush() == 1
    ```

    .. versionadded:: 0.2.0
    """

    def __init__(
        self,
        fail: Callable[[Outgoing], bool] | None = None,
        *,
        error: Callable[[Outgoing], Exception] | None = None,
    ) -> None:
        self.sent: list[Outgoing] = []
        self.attempts: list[Outgoing] = []
        self.fail = fail
        self.error = _provider_down if error is None else error
        self._lock = threading.Lock()

    def __call__(self, message: Outgoing) -> None:
        with self._lock:
            self.attempts.append(message)
            if self.fail is not None and self.fail(message):
                raise self.error(message)
            self.sent.append(message)

    def __repr__(self) -> str:
        return f"<RecordingSender {len(self.sent)} sent, {len(self.attempts)} tried>"

    def fail_first(self, n: int = 1) -> None:
        """Fail the next ``n`` calls, whatever the message, then succeed."""
        count = iter(range(n))
        self.fail = lambda _m: next(count, None) is not None

    def fail_always(self) -> None:
        """Fail every call until :meth:`recover`."""
        self.fail = lambda _m: True

    def recover(self) -> None:
        """Stop failing."""
        self.fail = None

    def kinds(self, contact: str | None = None) -> list[MessageKind]:
        """The kinds of the messages sent (to ``contact``, or to anyone)."""
        return [m.kind for m in self.sent if contact is None or m.contact == contact]

    def texts(self, contact: str | None = None) -> list[str]:
        """The texts of the messages sent (to ``contact``, or to anyone)."""
        return [m.text for m in self.sent if contact is None or m.contact == contact]

    def keys(self) -> list[str]:
        """The idempotency keys of the messages sent, in order."""
        return [m.key for m in self.sent]

    def clear(self) -> None:
        """Forget what was sent and tried (the failure rule stays)."""
        with self._lock:
            self.sent.clear()
            self.attempts.clear()


def _provider_down(message: Outgoing) -> Exception:
    return ConnectionError(f"provider down for {message.key}")


def _policy(policy: Policy | None) -> Policy:
    return Policy(org_name="Acme") if policy is None else policy


def memory_service(
    policy: Policy | None = None,
    *,
    sender: Callable[[Outgoing], object] | None = None,
    clock: Callable[[], datetime] | None = None,
) -> ConsentService:
    """A :class:`ConsentService` on a new :class:`MemoryStore`.

    ``policy`` defaults to ``Policy(org_name="Acme")``, ``sender`` to a new
    :class:`RecordingSender` and ``clock`` to a new :class:`FakeClock`: pass
    your own to keep a handle on them (``service.policy`` and
    ``service.store`` are public). Cheap enough to build one per Hypothesis
    example.

    .. versionadded:: 0.2.0
    """
    return ConsentService(
        _policy(policy),
        MemoryStore(),
        RecordingSender() if sender is None else sender,
        clock=FakeClock() if clock is None else clock,
    )


def sqlite_service(
    path: str | os.PathLike[str],
    policy: Policy | None = None,
    *,
    sender: Callable[[Outgoing], object] | None = None,
    clock: Callable[[], datetime] | None = None,
) -> ConsentService:
    """A :class:`ConsentService` on a :class:`SQLiteStore` at ``path``
    (created when missing, with ``synchronous="NORMAL"``: a test needs no
    power-cut safety). Close ``service.store`` when done.

    .. versionadded:: 0.2.0
    """
    return ConsentService(
        _policy(policy),
        SQLiteStore(path, synchronous="NORMAL"),
        RecordingSender() if sender is None else sender,
        clock=FakeClock() if clock is None else clock,
    )
