"""The shell: apply the core's decisions through the host's ``send`` and store.

:class:`ConsentService` (blocking) and :class:`AsyncConsentService` (asyncio)
share one implementation: the steps of every operation are written once, as
generators that *yield* the I/O they need (a store call, a ``send``) and
receive its result. Each service is only a driver that performs those
requests, directly or with ``await``. No business rule lives here: every
decision is :func:`optin_core.decide`'s.

An operation is: load the head (or a new one), decide, and if it changed
append the new events and save the head by compare-and-set, retrying on
:class:`~optin_core.StaleVersion` with a fresh load (a
:class:`~optin_core.DuplicateMessage` means the webhook was processed
before: nothing changes); then deliver the contact's pending messages, in
order, each claimed under a lease (in the same write as the head, then as
each "sent" mark), sent, then marked sent. See ``docs/service.md`` for the
guarantees.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
from collections.abc import Callable, Generator, Mapping, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any, Generic, TypeAlias, TypeVar

import attrs

from ._core import cancel_queued, cancelled_by_stop, decide, may_text
from ._enums import Outcome
from ._errors import (
    DuplicateMessage,
    InvalidInput,
    RecipientOptedOut,
    RecordError,
    StaleVersion,
)
from ._log import ConsentLog, verify
from ._phone import canonical_contact, zone_of_number
from ._policy import Policy
from ._quiet import zone
from ._records import (
    Attest,
    AuditEvent,
    Consent,
    Decision,
    Inbound,
    Input,
    MessageExpired,
    MessageFailed,
    Outgoing,
    ProviderOptOut,
    RequestOptIn,
    Revoke,
    SendText,
    check_contact,
    make_decision,
)
from .providers import opt_out_error
from .stores import AsyncStore, Lease, Store
from .stores._base import DELIVERY_STATUSES, MessageRecord

__all__ = [
    "AsyncConsentService",
    "ConsentService",
    "SendErrorHandler",
]

_log = logging.getLogger("optin_core")

_T = TypeVar("_T")

#: Called with the message and the exception when ``send`` raises.
SendErrorHandler: TypeAlias = Callable[[Outgoing, Exception], None]

# ---------------------------------------------------------------------------
# The requests an operation yields to its driver.


@attrs.frozen(slots=True)
class _StoreCall:
    method: str
    args: tuple[Any, ...] = ()
    kwargs: Mapping[str, Any] = attrs.field(factory=dict)


@attrs.frozen(slots=True)
class _SendCall:
    message: Outgoing


_Request: TypeAlias = _StoreCall | _SendCall
_Steps: TypeAlias = Generator[_Request, Any, _T]
#: What the last request gave back: its result, or the exception it raised.
_Outcome: TypeAlias = tuple[Any, Exception | None]


@attrs.frozen(slots=True)
class _Done(Generic[_T]):
    value: _T


def _advance(steps: _Steps[_T], outcome: _Outcome) -> _Request | _Done[_T]:
    """Resume ``steps`` with ``outcome``: its next request, or its result."""
    value, error = outcome
    try:
        return steps.send(value) if error is None else steps.throw(error)
    except StopIteration as done:
        return _Done(done.value)


def _utc_now() -> datetime:
    return datetime.now(UTC)


def _is_async(function: object) -> bool:
    """Whether calling ``function`` returns a coroutine (an ``async def``, or
    an object whose ``__call__`` is one)."""
    return inspect.iscoroutinefunction(function) or inspect.iscoroutinefunction(
        getattr(function, "__call__", None)  # noqa: B004 - the bound method
    )


def _default_dead_letter(message: Outgoing, error: Exception) -> None:
    _log.error(
        "gave up on %s message %s after repeated failures (%s: %s); it is "
        "logged as a dead letter and will not be retried",
        message.kind.value,
        message.key,
        type(error).__name__,
        error,
    )


def _default_send_error(message: Outgoing, error: Exception) -> None:
    _log.warning(
        "send failed for %s message %s (%s: %s); it stays pending and "
        "flush() will retry it",
        message.kind.value,
        message.key,
        type(error).__name__,
        error,
    )


class _Shell:
    """What both services share: validation, and every operation's steps."""

    _takes_async_store = False

    def __init__(
        self,
        policy: Policy,
        store: Store | AsyncStore,
        send: Callable[[Outgoing], Any],
        *,
        clock: Callable[[], datetime] | None = None,
        max_retries: int = 8,
        lease: timedelta = timedelta(minutes=2),
        on_send_error: SendErrorHandler | None = None,
        namespace: str | None = None,
        max_send_attempts: int = 8,
        retry_backoff: timedelta = timedelta(seconds=30),
        on_dead_letter: SendErrorHandler | None = None,
        contact_key: Callable[[str], str] | None = canonical_contact,
    ) -> None:
        if not isinstance(policy, Policy):
            raise TypeError(f"policy must be a Policy, got {type(policy).__name__}")
        for name in (
            "get",
            "log",
            "put",
            "pending",
            "claim",
            "release",
            "mark_sent",
            "namespace",
            "due",
            "delivery",
        ):
            if not callable(getattr(store, name, None)):
                raise TypeError(
                    f"store has no {name}() method; see optin_core.Store for the "
                    "protocol a store implements"
                )
        if not callable(send):
            raise TypeError("send must be callable: send(message: Outgoing)")
        if not self._takes_async_store and _is_async(send):
            raise TypeError(
                "send is a coroutine function: a blocking ConsentService would "
                "never await it; use AsyncConsentService, or a blocking send"
            )
        if clock is not None and not callable(clock):
            raise TypeError("clock must be a callable returning an aware datetime")
        if (
            not isinstance(max_retries, int)
            or isinstance(max_retries, bool)
            or max_retries < 1
        ):
            raise ValueError(f"max_retries must be an int >= 1, got {max_retries!r}")
        if not isinstance(lease, timedelta) or lease <= timedelta(0):
            raise ValueError(f"lease must be a positive timedelta, got {lease!r}")
        if on_send_error is not None and not callable(on_send_error):
            raise TypeError("on_send_error must be callable(message, error)")
        if contact_key is not None and not callable(contact_key):
            raise TypeError("contact_key must be None or callable(contact) -> str")
        if on_dead_letter is not None and not callable(on_dead_letter):
            raise TypeError("on_dead_letter must be callable(message, error)")
        if (
            not isinstance(max_send_attempts, int)
            or isinstance(max_send_attempts, bool)
            or max_send_attempts < 1
        ):
            raise ValueError(
                f"max_send_attempts must be an int >= 1, got {max_send_attempts!r}"
            )
        if not isinstance(retry_backoff, timedelta) or retry_backoff < timedelta(0):
            raise ValueError(
                f"retry_backoff must be a timedelta >= 0, got {retry_backoff!r}"
            )
        if namespace is not None and (
            not isinstance(namespace, str)
            or not namespace.strip()
            or not namespace.isprintable()
            or len(namespace) > 128
        ):
            raise ValueError(
                "namespace must be None or a printable str of 1 to 128 "
                f"characters (a tenant id), got {namespace!r:.40}"
            )
        self._async_store = inspect.iscoroutinefunction(store.get)
        if self._async_store and not self._takes_async_store:
            raise TypeError(
                "store.get is a coroutine function: use AsyncConsentService "
                "with an async store"
            )
        self.policy = policy
        self.store = store
        self._send = send
        self._clock = _utc_now if clock is None else clock
        self.max_retries = max_retries
        self.lease = lease
        self._on_send_error = (
            _default_send_error if on_send_error is None else on_send_error
        )
        self.namespace = namespace
        self.contact_key = contact_key
        self.max_send_attempts = max_send_attempts
        self.retry_backoff = retry_backoff
        self._on_dead_letter = (
            _default_dead_letter if on_dead_letter is None else on_dead_letter
        )
        # The keys' namespace: the store's id, then this service's tenant;
        # read from the store on the first operation.
        self._keys: str | None = None

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(policy={self.policy.policy_id!r}, "
            f"store={self.store!r})"
        )

    # -- boundary checks --

    def _now(self) -> datetime:
        now = self._clock()
        if not isinstance(now, datetime):
            raise TypeError(f"clock() must return a datetime, got {type(now).__name__}")
        if now.tzinfo is None or now.utcoffset() is None:
            raise InvalidInput(
                "clock() returned a naive datetime; return an aware one, e.g. "
                "datetime.now(timezone.utc)"
            )
        return now

    def _at(self, at: datetime | None) -> datetime:
        return self._now() if at is None else at

    def _contact(self, contact: str) -> str:
        """The canonical id of ``contact``: ``contact_key``'s, then checked
        (``TypeError`` / :class:`InvalidInput`), before anything is read."""
        if not isinstance(contact, str):
            raise TypeError(f"contact must be str, got {type(contact).__name__}")
        if self.contact_key is not None:
            try:
                keyed = self.contact_key(contact)
            except (InvalidInput, TypeError):
                raise
            except Exception as error:
                raise InvalidInput(
                    f"contact_key refused {contact!r:.40}: "
                    f"{type(error).__name__}: {error}"
                ) from error
            if not isinstance(keyed, str):
                raise TypeError(
                    f"contact_key must return a str, got {type(keyed).__name__} "
                    f"for {contact!r:.40}"
                )
            contact = keyed
        return check_contact(contact)

    # -- operations: each returns the steps for a driver to run --

    def _request_opt_in(
        self,
        contact: str,
        locale: str | None,
        greeting: str | None,
        by: str | None,
        at: datetime | None,
        *,
        time_zone: str | None = None,
    ) -> _Steps[Decision]:
        contact = self._contact(contact)
        request = RequestOptIn(
            at=self._at(at),
            greeting=greeting,
            by=by,
            locale=locale,
            time_zone=self._zone(contact, time_zone),
        )
        return self._apply(contact, request)

    def _zone(self, contact: str, time_zone: str | None) -> str | None:
        """The contact's zone for quiet hours: the host's, else the one its
        number has (phonenumbers, when a number has exactly one), else
        ``None`` (the policy's default)."""
        if time_zone is not None or self.policy.quiet_hours is None:
            return time_zone
        return zone_of_number(contact)

    def _receive(
        self, contact: str, text: str, message_id: str, at: datetime | None
    ) -> _Steps[Decision]:
        contact = self._contact(contact)
        return self._apply(
            contact, Inbound(text=text, at=self._at(at), message_id=message_id)
        )

    def _send_text(
        self,
        contact: str,
        body: str,
        by: str | None,
        at: datetime | None,
        time_zone: str | None = None,
    ) -> _Steps[Decision]:
        contact = self._contact(contact)
        text = SendText(
            body=body, at=self._at(at), by=by, time_zone=self._zone(contact, time_zone)
        )
        return self._apply(contact, text)

    def _attest(
        self, contact: str, method: str, evidence: str, by: str, at: datetime | None
    ) -> _Steps[Decision]:
        contact = self._contact(contact)
        attest = Attest(method=method, at=self._at(at), by=by, evidence=evidence)
        return self._apply(contact, attest)

    def _revoke(
        self, contact: str, by: str, reason: str, at: datetime | None
    ) -> _Steps[Decision]:
        contact = self._contact(contact)
        return self._apply(contact, Revoke(at=self._at(at), by=by, reason=reason))

    def _can_send(
        self, contact: str, at: datetime | None, time_zone: str | None = None
    ) -> _Steps[bool]:
        contact = self._contact(contact)
        if at is not None:
            # Checked like an input's ``at``.
            if not isinstance(at, datetime):
                raise TypeError(f"at must be a datetime, got {type(at).__name__}")
            if at.tzinfo is None or at.utcoffset() is None:
                raise InvalidInput("at is a naive datetime; pass an aware one")
        if time_zone is not None:
            try:
                zone(time_zone)
            except ValueError as e:
                raise InvalidInput(f"time_zone: {e}") from None
        return self._allowed(contact, self._at(at), self._zone(contact, time_zone))

    def _allowed(
        self, contact: str, at: datetime, time_zone: str | None
    ) -> _Steps[bool]:
        consent = yield from self._load(contact)
        return may_text(consent, self.policy, at=at, time_zone=time_zone)

    def _get(self, contact: str) -> _Steps[Consent]:
        return self._load(self._contact(contact))

    def _history(self, contact: str) -> _Steps[ConsentLog]:
        return self._read_log(self._contact(contact))

    def _read_log(self, contact: str) -> _Steps[ConsentLog]:
        # The log first: events are appended before their head is saved, so
        # a head read after it is never behind it; a head moved on meanwhile
        # is caught below and read again.
        events: list[AuditEvent] = []
        head = Consent(contact=contact)
        for _ in range(self.max_retries):
            events = yield _StoreCall("log", (contact,))
            head = yield from self._load(contact)
            if head.version <= len(events):
                events = events[: head.version]
                verify(contact, events, head, log_key=self.policy.log_key)
                return ConsentLog(head=head, events=tuple(events))
        raise StaleVersion(
            contact,
            expected=len(events),
            found=head.version,
            why="the log kept growing while it was read",
        )

    def _flush(self, limit: int | None) -> _Steps[int]:
        if limit is not None and (
            not isinstance(limit, int) or isinstance(limit, bool) or limit < 1
        ):
            raise ValueError(f"limit must be None or an int >= 1, got {limit!r}")
        return self._flush_steps(limit)

    # -- the steps --

    def _load(self, contact: str) -> _Steps[Consent]:
        record = yield _StoreCall("get", (contact,))
        if record is None:
            return Consent.new(contact)
        if not isinstance(record, Consent):
            raise RecordError(
                "record",
                f"the store returned a {type(record).__name__}, not a Consent",
                contact=contact,
            )
        if record.contact != contact:
            raise RecordError(
                "contact",
                f"the store returned the record of {record.contact!r}",
                contact=contact,
            )
        return record

    def _lease(self) -> Lease:
        now = self._now()
        return Lease(now + self.lease, now)

    def _key_namespace(self) -> _Steps[str]:
        if self._keys is None:
            store_id = yield _StoreCall("namespace")
            if not isinstance(store_id, str) or not store_id:
                raise TypeError(
                    "store.namespace() must return a non-empty str, got "
                    f"{type(store_id).__name__}"
                )
            self._keys = (
                store_id if self.namespace is None else f"{store_id}/{self.namespace}"
            )
        return self._keys

    def _apply(self, contact: str, input: Input) -> _Steps[Decision]:
        conflict: StaleVersion | None = None
        keys = yield from self._key_namespace()
        for _ in range(self.max_retries):
            loaded = yield from self._load(contact)
            decision = decide(loaded, input, self.policy, namespace=keys)
            if not decision.changed:
                return decision
            if cancelled_by_stop(decision):
                # What the stop cancels is logged with it: the queue as
                # stored now (the put refuses it if it moved meanwhile).
                queued: Sequence[Outgoing] = yield _StoreCall(
                    "pending", (), {"contact": contact}
                )
                decision = cancel_queued(decision, queued, self.policy)
            try:
                # The store claims the contact's next message in this write.
                claimed = yield _StoreCall(
                    "put",
                    (decision.consent, decision.events),
                    {"expected_version": loaded.version, "lease": self._lease()},
                )
            except StaleVersion as e:
                conflict = e
                continue
            except DuplicateMessage:
                # Processed before, however long ago: nothing changes.
                return make_decision(loaded, (), (), decision.reply, Outcome.DUPLICATE)
            yield from self._drain(contact, claimed)
            return decision
        assert conflict is not None
        raise conflict

    def _drain(self, contact: str, claimed: Outgoing | None = None) -> _Steps[int]:
        """Deliver ``contact``'s messages in order, from ``claimed`` (leased
        to this caller by ``put``, ``claim`` or ``mark_sent``, which claims
        the next one in its write); the number sent.

        A message past its deadline is logged as expired, not sent. Stops at
        the first failed send: the message waits for its retry (backoff)
        and the later ones behind it (but a stop confirmation); after
        ``max_send_attempts`` it is given up and logged (the dead letter).
        Stops too when the head of the queue is being sent by someone else,
        who drains the rest when done.
        """
        sent = 0
        while claimed is not None:
            now = self._now()
            if claimed.deadline is not None and now > claimed.deadline:
                yield from self._give_up(
                    contact, MessageExpired(at=now, key=claimed.key), claimed
                )
                return sent
            try:
                provider_id = yield _SendCall(claimed)
            except RecipientOptedOut as opted_out:
                yield _StoreCall("release", (claimed.key,), {"error": str(opted_out)})
                # The provider's word is a stop: logged, and every queued
                # message (this one too) withdrawn in the same write.
                yield from self._apply(
                    contact,
                    ProviderOptOut(
                        at=self._now(),
                        provider=opted_out.provider,
                        code=opted_out.code,
                        key=claimed.key,
                    ),
                )
                return sent
            except Exception as error:
                yield from self._failed(contact, claimed, error)
                return sent
            sent += 1
            claimed = yield _StoreCall(
                "mark_sent",
                (claimed.key,),
                {
                    "lease": self._lease(),
                    "provider_id": provider_id
                    if isinstance(provider_id, str)
                    else None,
                    "at": self._now(),
                },
            )
        return sent

    def _failed(
        self, contact: str, message: Outgoing, error: Exception
    ) -> _Steps[None]:
        """A failed send: back off, or give up after ``max_send_attempts``."""
        text = f"{type(error).__name__}: {error}"
        attempts: int = yield _StoreCall(
            "release",
            (message.key,),
            {"error": text[:500], "now": self._now(), "backoff": self.retry_backoff},
        )
        if attempts >= self.max_send_attempts:
            failed = MessageFailed(
                at=self._now(), key=message.key, attempts=attempts, error=text[:500]
            )
            if (yield from self._give_up(contact, failed, message)):
                self._on_dead_letter(message, error)
                return
        self._on_send_error(message, error)

    def _give_up(
        self, contact: str, input: MessageExpired | MessageFailed, message: Outgoing
    ) -> _Steps[bool]:
        """Log that ``message`` will never go; False when it went meanwhile
        (sent by another worker) and there is nothing to give up."""
        try:
            yield from self._apply(contact, input)
        except (StaleVersion, RecordError) as error:
            _log.info("message %s not given up: %s", message.key, error)
            return False
        return True

    def _flush_steps(self, limit: int | None) -> _Steps[int]:
        now = self._now()
        due: list[Outgoing] = yield _StoreCall("due", (), {"now": now, "limit": limit})
        sent = 0
        for message in due:
            lease = self._lease()
            claimed = yield _StoreCall(
                "claim", (message.key,), {"until": lease.until, "now": lease.now}
            )
            if claimed:
                sent += yield from self._drain(message.contact, message)
        return sent

    def _dead_letters(self, limit: int | None) -> _Steps[list[MessageRecord]]:
        records: list[MessageRecord] = yield _StoreCall(
            "dead_letters", (), {"limit": limit}
        )
        return records

    def _delivery_status(
        self,
        key_or_provider_id: str,
        status: str,
        at: datetime | None,
        error_code: str | None,
        provider: str | None,
    ) -> _Steps[Outgoing | None]:
        if not isinstance(key_or_provider_id, str) or not key_or_provider_id:
            raise ValueError("key_or_provider_id must be a non-empty str")
        if status not in DELIVERY_STATUSES:
            raise ValueError(
                f"status must be one of {sorted(DELIVERY_STATUSES)}, got {status!r}"
            )
        when = self._at(at)
        code = None if error_code is None else str(error_code)
        message: Outgoing | None = yield _StoreCall(
            "delivery",
            (key_or_provider_id, status),
            {"at": when, "error_code": code},
        )
        if message is None:
            _log.warning(
                "delivery status %r for an unknown message %r ignored",
                status,
                key_or_provider_id,
            )
            return None
        refusal = (
            None if provider is None or code is None else opt_out_error(provider, code)
        )
        if refusal is not None:
            yield from self._apply(
                message.contact,
                ProviderOptOut(
                    at=when,
                    provider=refusal.provider,
                    code=refusal.code,
                    key=message.key,
                ),
            )
        return message


class ConsentService(_Shell):
    """The thin shell: decide, save by compare-and-set, then send.

    ``store`` implements :class:`~optin_core.Store` (``MemoryStore``,
    ``SQLiteStore`` or the host's own); ``send(message)`` hands one
    :class:`~optin_core.Outgoing` to the SMS provider and raises on failure
    (pass ``message.key`` as the provider's idempotency key). ``clock()``
    returns an aware datetime, UTC now by default.

    Every method returns once the decision is saved: a ``send`` that raises
    does not make the call fail. The message stays pending, the error goes to
    ``on_send_error(message, error)`` (default: a warning on the
    ``optin_core`` logger; a handler that raises propagates), and
    :meth:`flush` delivers it later. Errors before the save (a bad input, a
    refused action, a store failure, ``max_retries`` conflicts) raise and
    leave the store unchanged.

    .. versionadded:: 0.1.0
    """

    def _call(self, request: _Request) -> Any:
        if isinstance(request, _SendCall):
            result = self._send(request.message)
            if inspect.isawaitable(result):
                if inspect.iscoroutine(result):
                    result.close()  # never run: no "never awaited" warning
                raise TypeError(
                    "send returned an awaitable, which a blocking "
                    "ConsentService cannot await: the message stays pending; "
                    "use AsyncConsentService or a blocking send"
                )
            return result
        method = getattr(self.store, request.method)
        return method(*request.args, **request.kwargs)

    def _run(self, steps: _Steps[_T]) -> _T:
        outcome: _Outcome = (None, None)
        while not isinstance(request := _advance(steps, outcome), _Done):
            try:
                outcome = (self._call(request), None)
            except Exception as e:
                outcome = (None, e)
        return request.value

    def request_opt_in(
        self,
        contact: str,
        *,
        locale: str | None = None,
        greeting: str | None = None,
        by: str | None = None,
        at: datetime | None = None,
        time_zone: str | None = None,
    ) -> Decision:
        """Send (or resend) the opt-in request, or the disclaimer.

        Raises :class:`ResendNotAllowed`, :class:`ContactStopped`,
        :class:`InvalidGreeting`, :class:`UnknownLocale` (an explicit
        ``locale`` the library cannot serve), :class:`SendBlocked` during
        the policy's quiet hours in the contact's ``time_zone``.
        """
        return self._run(
            self._request_opt_in(contact, locale, greeting, by, at, time_zone=time_zone)
        )

    def receive(
        self, contact: str, text: str, *, message_id: str, at: datetime | None = None
    ) -> Decision:
        """Apply an inbound SMS; ``message_id`` is the provider's id.

        A redelivered webhook (same ``message_id``) changes nothing and sends
        nothing, even when both deliveries race. A contact's text never
        raises; a non-str ``text`` is a ``TypeError``.
        """
        return self._run(self._receive(contact, text, message_id, at))

    def send_text(
        self,
        contact: str,
        body: str,
        *,
        by: str | None = None,
        at: datetime | None = None,
        time_zone: str | None = None,
    ) -> Decision:
        """Send the agent's own words, if the contact's stored state allows it.

        Decided against the record as stored now: a text composed before a
        STOP is refused with :class:`SendBlocked` after it. With the
        policy's quiet hours, ``time_zone`` is the contact's IANA zone (by
        default the one its number has, with the ``phone`` extra, else the
        policy's).
        """
        return self._run(self._send_text(contact, body, by, at, time_zone))

    def attest(
        self,
        contact: str,
        *,
        method: str,
        evidence: str,
        by: str,
        at: datetime | None = None,
    ) -> Decision:
        """Record consent gathered outside SMS (:class:`MethodNotAccepted`,
        :class:`ContactStopped` when refused)."""
        return self._run(self._attest(contact, method, evidence, by, at))

    def revoke(
        self, contact: str, *, by: str, reason: str, at: datetime | None = None
    ) -> Decision:
        """Record an opt-out received by another channel."""
        return self._run(self._revoke(contact, by, reason, at))

    def can_send(
        self,
        contact: str,
        *,
        at: datetime | None = None,
        time_zone: str | None = None,
    ) -> bool:
        """Whether :meth:`send_text` would be accepted at ``at`` (now by
        default): the stored state, and the policy's quiet hours."""
        return self._run(self._can_send(contact, at, time_zone))

    def get(self, contact: str) -> Consent:
        """The stored head, or a new one (``NEW``) for an unknown contact."""
        return self._run(self._get(contact))

    def history(self, contact: str) -> ConsentLog:
        """The contact's head and whole log, verified (the policy's
        ``log_key`` for a keyed log): the evidence.

        Reads the log, so its cost grows with it; the decision methods never
        read it. Raises :class:`RecordError` naming the first event that
        fails verification.

        .. versionadded:: 0.2.0
        """
        return self._run(self._history(contact))

    def flush(self, *, limit: int | None = None) -> int:
        """Deliver pending messages; returns how many were sent.

        Retries messages whose ``send`` failed (once their backoff is over)
        and those whose sender crashed (once their lease expires), each
        contact's in order. Run it periodically (every few seconds) and at
        start-up. ``limit`` bounds how many contacts are served per call
        (each one's queue is drained): a contact whose messages keep failing
        waits for its retry time and never holds up the others, and an
        unreadable outbox row is quarantined, never raised.
        """
        return self._run(self._flush(limit))

    def delivery_status(
        self,
        key_or_provider_id: str,
        status: str,
        *,
        at: datetime | None = None,
        error_code: str | None = None,
        provider: str | None = None,
    ) -> Outgoing | None:
        """Record a provider's status callback for a sent message, found by
        its key or provider id: ``"delivered"``, ``"undelivered"`` or
        ``"failed"``, with the provider's ``error_code``. With ``provider``
        named, an error code that means an opt-out (see
        :mod:`optin_core.providers`: Vonage's 9...) records the stop. An
        unknown message is logged and ``None`` returned, never raised: a
        webhook handler can pass every callback through.

        .. versionadded:: 0.2.0
        """
        return self._run(
            self._delivery_status(key_or_provider_id, status, at, error_code, provider)
        )

    def dead_letters(self, *, limit: int | None = None) -> list[MessageRecord]:
        """Messages given up after ``max_send_attempts`` failed sends.

        .. versionadded:: 0.2.0
        """
        return self._run(self._dead_letters(limit))


class AsyncConsentService(_Shell):
    """:class:`ConsentService` for asyncio: the same methods, as coroutines.

    ``send`` may be a coroutine function (awaited) or a plain function.
    ``store`` is an :class:`~optin_core.AsyncStore` (its coroutine methods are
    awaited) or a blocking :class:`~optin_core.Store`, whose calls then run in
    a worker thread (``asyncio.to_thread``), so ``SQLiteStore`` works as is.
    Semantics are exactly those of :class:`ConsentService`.

    .. versionadded:: 0.1.0
    """

    _takes_async_store = True

    async def _call(self, request: _Request) -> Any:
        if isinstance(request, _SendCall):
            result = self._send(request.message)
            if inspect.isawaitable(result):
                result = await result
            return result
        method = getattr(self.store, request.method)
        if self._async_store:
            return await method(*request.args, **request.kwargs)
        return await asyncio.to_thread(method, *request.args, **request.kwargs)

    async def _run(self, steps: _Steps[_T]) -> _T:
        outcome: _Outcome = (None, None)
        while not isinstance(request := _advance(steps, outcome), _Done):
            try:
                outcome = (await self._call(request), None)
            except Exception as e:
                outcome = (None, e)
        return request.value

    async def request_opt_in(
        self,
        contact: str,
        *,
        locale: str | None = None,
        greeting: str | None = None,
        by: str | None = None,
        at: datetime | None = None,
        time_zone: str | None = None,
    ) -> Decision:
        """See :meth:`ConsentService.request_opt_in`."""
        return await self._run(
            self._request_opt_in(contact, locale, greeting, by, at, time_zone=time_zone)
        )

    async def receive(
        self, contact: str, text: str, *, message_id: str, at: datetime | None = None
    ) -> Decision:
        """See :meth:`ConsentService.receive`."""
        return await self._run(self._receive(contact, text, message_id, at))

    async def send_text(
        self,
        contact: str,
        body: str,
        *,
        by: str | None = None,
        at: datetime | None = None,
        time_zone: str | None = None,
    ) -> Decision:
        """See :meth:`ConsentService.send_text`."""
        return await self._run(self._send_text(contact, body, by, at, time_zone))

    async def attest(
        self,
        contact: str,
        *,
        method: str,
        evidence: str,
        by: str,
        at: datetime | None = None,
    ) -> Decision:
        """See :meth:`ConsentService.attest`."""
        return await self._run(self._attest(contact, method, evidence, by, at))

    async def revoke(
        self, contact: str, *, by: str, reason: str, at: datetime | None = None
    ) -> Decision:
        """See :meth:`ConsentService.revoke`."""
        return await self._run(self._revoke(contact, by, reason, at))

    async def can_send(
        self,
        contact: str,
        *,
        at: datetime | None = None,
        time_zone: str | None = None,
    ) -> bool:
        """See :meth:`ConsentService.can_send`."""
        return await self._run(self._can_send(contact, at, time_zone))

    async def get(self, contact: str) -> Consent:
        """See :meth:`ConsentService.get`."""
        return await self._run(self._get(contact))

    async def history(self, contact: str) -> ConsentLog:
        """See :meth:`ConsentService.history`."""
        return await self._run(self._history(contact))

    async def flush(self, *, limit: int | None = None) -> int:
        """See :meth:`ConsentService.flush`."""
        return await self._run(self._flush(limit))

    async def delivery_status(
        self,
        key_or_provider_id: str,
        status: str,
        *,
        at: datetime | None = None,
        error_code: str | None = None,
        provider: str | None = None,
    ) -> Outgoing | None:
        """See :meth:`ConsentService.delivery_status`."""
        return await self._run(
            self._delivery_status(key_or_provider_id, status, at, error_code, provider)
        )

    async def dead_letters(self, *, limit: int | None = None) -> list[MessageRecord]:
        """See :meth:`ConsentService.dead_letters`."""
        return await self._run(self._dead_letters(limit))
