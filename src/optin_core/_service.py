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

import inspect
import io
import logging
from collections.abc import Callable, Generator, Iterator, Mapping, Sequence
from datetime import UTC, datetime, timedelta
from typing import IO, Any, Generic, Literal, TypeAlias, TypeVar

import attrs

from ._core import cancel_queued, cancelled_by_stop, decide, may_text
from ._enums import ConsentState, Outcome
from ._erase import Erasure, erase_log, suppression_key
from ._errors import (
    ContactStopped,
    DuplicateMessage,
    ImportRefused,
    InvalidInput,
    RecipientOptedOut,
    RecordError,
    StaleVersion,
    UnknownContact,
)
from ._levels import DEFAULT_CATEGORY
from ._log import ConsentLog, verify
from ._phone import canonical_contact, zone_of_number
from ._policy import Policy
from ._quiet import zone
from ._receipt import (
    ReceiptFormat,
    check_receipt_format,
    receipt_zone,
    render_erased,
    render_receipt,
)
from ._records import (
    Attest,
    AuditEvent,
    Consent,
    Decision,
    Import,
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
from ._transfer import (
    CsvRow,
    ErasureRow,
    Format,
    ImportReport,
    LogRow,
    Row,
    Tally,
    check_format,
    csv_header,
    csv_line,
    csv_rows,
    erasure_line,
    import_id,
    jsonl_line,
    parse_csv_row,
    parse_jsonl_line,
    since,
)
from .providers import opt_out_error
from .stores import AsyncStore, Lease, Store
from .stores._base import DELIVERY_STATUSES, MessageRecord

__all__ = [
    "AsyncConsentService",
    "ConsentService",
    "Progress",
    "SendErrorHandler",
]

_log = logging.getLogger("optin_core")

_T = TypeVar("_T")

#: Called with the message and the exception when ``send`` raises.
SendErrorHandler: TypeAlias = Callable[[Outgoing, Exception], None]

#: Called by long operations (export, import) with the rows done so far and
#: the total when known (an import counts its rows first; an export cannot).
Progress: TypeAlias = Callable[[int, "int | None"], None]

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
        # Whether the store keeps erasures (the shipped ones do; a host's
        # store of the 0.2.0 protocol without them never has erased contacts).
        self._erasures = callable(getattr(store, "erasure", None))

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
        *,
        category: str = DEFAULT_CATEGORY,
    ) -> _Steps[Decision]:
        contact = self._contact(contact)
        text = SendText(
            body=body,
            at=self._at(at),
            by=by,
            time_zone=self._zone(contact, time_zone),
            category=category,
        )
        # An unknown category is the host's mistake: refused before the
        # store is read.
        self.policy.category_level(category)
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
        self,
        contact: str,
        at: datetime | None,
        time_zone: str | None = None,
        category: str = DEFAULT_CATEGORY,
    ) -> _Steps[bool]:
        contact = self._contact(contact)
        if not isinstance(category, str):
            raise TypeError(f"category must be a str, got {type(category).__name__}")
        self.policy.category_level(category)
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
        return self._allowed(
            contact, self._at(at), self._zone(contact, time_zone), category
        )

    def _allowed(
        self, contact: str, at: datetime, time_zone: str | None, category: str
    ) -> _Steps[bool]:
        consent = yield from self._load(contact)
        return may_text(
            consent, self.policy, at=at, time_zone=time_zone, category=category
        )

    def _get(self, contact: str) -> _Steps[Consent]:
        return self._load(self._contact(contact))

    def _history(self, contact: str) -> _Steps[ConsentLog]:
        return self._read_log(self._contact(contact))

    def _read_log(self, contact: str) -> _Steps[ConsentLog]:
        log, _erased = yield from self._read(contact)
        return log

    def _read(self, contact: str) -> _Steps[tuple[ConsentLog, bool]]:
        """The contact's verified log, and whether the contact is erased
        (the log is then its suppression's, see :meth:`_load_base`)."""
        # The log first: events are appended before their head is saved, so
        # a head read after it is never behind it; a head moved on meanwhile
        # is caught below and read again.
        events: list[AuditEvent] = []
        head = Consent(contact=contact)
        for _ in range(self.max_retries):
            events = yield _StoreCall("log", (contact,))
            head, base = yield from self._load_base(contact)
            if base:
                # Erased: the suppression is all there is of the contact.
                return ConsentLog(head=head, events=base), True
            if head.version <= len(events):
                events = events[: head.version]
                verify(contact, events, head, log_key=self.policy.log_key)
                return ConsentLog(head=head, events=tuple(events)), False
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
        head, _base = yield from self._load_base(contact)
        return head

    def _load_base(
        self, contact: str
    ) -> _Steps[tuple[Consent, tuple[AuditEvent, ...]]]:
        """The stored head and ``()``; for a contact without one, a new head,
        or, when the contact was erased, the STOPPED head of its suppression
        and the event that makes it (the first of a fresh log, should the
        contact come back by texting START)."""
        record = yield _StoreCall("get", (contact,))
        if record is None:
            if self._erasures:
                key = suppression_key(contact, self.policy.log_key)
                erasure = yield _StoreCall("erasure", (key,))
                if erasure is not None:
                    return self._suppressed(contact, erasure)
            return Consent.new(contact), ()
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
        return record, ()

    def _suppressed(
        self, contact: str, erasure: Erasure
    ) -> tuple[Consent, tuple[AuditEvent, ...]]:
        """An erased contact's suppression: a revocation dated at its last
        erasure (so that a START sent before it restarts nothing)."""
        when = erasure.erased_at
        decision = decide(
            Consent.new(contact),
            Revoke(
                at=when,
                by="optin_core:erasure",
                reason=f"suppressed: the contact's data was erased at "
                f"{when.isoformat()}",
            ),
            self.policy,
        )
        return decision.consent, decision.events

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
            loaded, base = yield from self._load_base(contact)
            decision = decide(loaded, input, self.policy, namespace=keys)
            if not decision.changed:
                return decision
            if base and not isinstance(input, Inbound):
                # An erased contact: only its own message (START, HELP) is
                # recorded, as a fresh log that begins with its suppression.
                return make_decision(loaded, (), (), None, Outcome.UNCHANGED)
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
                    (decision.consent, (*base, *decision.events)),
                    {
                        "expected_version": loaded.version - len(base),
                        "lease": self._lease(),
                    },
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

    # -- compliance: argument checks, then the steps --

    #: Contacts per page when an import looks for live records of numbers
    #: erased in its source.
    _page = 1000

    def _export(
        self, fp: IO[str], fmt: object, progress: Progress | None, page_size: int
    ) -> _Steps[int]:
        checked = check_format(fmt)
        _writable(fp)
        _check_progress(progress)
        if (
            not isinstance(page_size, int)
            or isinstance(page_size, bool)
            or page_size < 1
        ):
            raise ValueError(f"page_size must be an int >= 1, got {page_size!r}")
        return self._export_steps(fp, checked, progress, page_size)

    def _import(  # noqa: PLR0917 - the import's settings, in order
        self,
        fp: IO[str],
        fmt: object,
        source: str,
        by: str,
        dry_run: bool,
        continue_on_error: bool,
        progress: Progress | None,
    ) -> _Steps[ImportReport]:
        checked = check_format(fmt)
        for name, value in (("source", source), ("by", by)):
            if not isinstance(value, str) or not value.strip():
                raise InvalidInput(
                    f"{name} must be a non-empty str (it is recorded on every "
                    "imported event)"
                )
        _check_progress(progress)
        return self._import_steps(
            _rewindable(fp),
            checked,
            source,
            by,
            bool(dry_run),
            bool(continue_on_error),
            progress,
        )

    # -- compliance: export, import, erasure, receipts, retention --

    def _needs(self, what: str, *names: str) -> None:
        for name in names:
            if not callable(getattr(self.store, name, None)):
                raise TypeError(
                    f"store has no {name}() method, which {what} needs; see "
                    "optin_core.Store (0.2.0) for the protocol"
                )

    def _export_steps(
        self,
        fp: IO[str],
        fmt: Format,
        progress: Progress | None,
        page: int,
    ) -> _Steps[int]:
        self._needs("export", "contacts", "messages")
        written = 0
        if fmt == "csv":
            fp.write(csv_header())
        after: str | None = None
        while True:
            contacts: list[str] = yield _StoreCall(
                "contacts", (), {"after": after, "limit": page}
            )
            for contact in contacts:
                log, erased = yield from self._read(contact)
                if erased or log.head.version == 0:
                    continue  # erased (or gone) since it was listed
                if fmt == "jsonl":
                    records = yield _StoreCall("messages", (contact,))
                    fp.write(jsonl_line(log, records))
                else:
                    fp.write(csv_line(log))
                written += 1
                if progress is not None:
                    progress(written, None)
            if len(contacts) < page:
                break
            after = contacts[-1]
        if fmt == "jsonl" and callable(getattr(self.store, "erasures", None)):
            after = None
            while True:
                erasures: list[Erasure] = yield _StoreCall(
                    "erasures", (), {"after": after, "limit": page}
                )
                for erasure in erasures:
                    erasure.verify(log_key=self.policy.log_key)
                    fp.write(erasure_line(erasure))
                    written += 1
                    if progress is not None:
                        progress(written, None)
                if len(erasures) < page:
                    break
                after = erasures[-1].key
        return written

    def _import_steps(  # noqa: PLR0917 - the import's settings, in order
        self,
        fp: IO[str],
        fmt: Format,
        source: str,
        by: str,
        dry_run: bool,
        continue_on_error: bool,
        progress: Progress | None,
    ) -> _Steps[ImportReport]:
        self._needs("an import", "restore", "suppress", "erasure", "log", "contacts")
        tally = Tally(dry_run)
        # First pass: every line read and verified; nothing is written (a
        # bad line refuses the whole file, unless told to skip such lines).
        start = fp.tell()
        skipped: set[int] = set()
        erased: dict[str, tuple[int, datetime]] = {}
        total = 0
        for line, row, problem in self._read_rows(fp, fmt):
            total += 1
            if row is None:
                if not continue_on_error or (line == 1 and fmt == "csv"):
                    raise ImportRefused(line, problem)
                skipped.add(line)
                tally.add("refused", f"unreadable: {problem}", line, None)
            elif isinstance(row, ErasureRow):
                erased.setdefault(row.erasure.key, (line, row.erasure.erased_at))
        # Second pass: apply each row.
        fp.seek(start)
        live: set[str] = set()
        for done, (line, row, _problem) in enumerate(self._read_rows(fp, fmt), 1):
            if row is not None and line not in skipped:
                if isinstance(row, LogRow):
                    key = suppression_key(row.log.contact, self.policy.log_key)
                    if key in erased:
                        live.add(key)
                yield from self._import_row(row, source, by, dry_run, tally)
            if progress is not None:
                progress(done, total)
        # Live records here of contacts erased in the source: stopped.
        pending = {k: v for k, v in erased.items() if k not in live}
        if pending:
            yield from self._stop_erased(pending, source, by, dry_run, tally)
        return tally.report()

    def _read_rows(
        self, fp: IO[str], fmt: Format
    ) -> Iterator[tuple[int, Row | None, str]]:
        """``(line, row, problem)`` for each line or row of ``fp``; ``row``
        is ``None`` when it cannot be read, ``problem`` says why."""
        log_key = self.policy.log_key
        if fmt == "jsonl":
            for line, text in enumerate(fp, 1):
                if not text.strip():
                    continue
                try:
                    yield (
                        line,
                        parse_jsonl_line(
                            line, text, log_key=log_key, canonical=self._contact
                        ),
                        "",
                    )
                except ImportRefused as e:
                    yield line, None, e.problem
            return
        for line, cells, problem in csv_rows(fp):
            if cells is None:
                # The header: the import refuses the file, whatever it was
                # told (without the columns no row can be read).
                yield line, None, problem
                return
            try:
                yield line, parse_csv_row(line, cells, self._contact), ""
            except ImportRefused as e:
                yield line, None, e.problem

    def _import_row(
        self, row: Row, source: str, by: str, dry_run: bool, tally: Tally
    ) -> _Steps[None]:
        if isinstance(row, ErasureRow):
            key = row.erasure.key
            kept = yield _StoreCall("erasure", (key,))
            if kept is not None:
                tally.add("unchanged", "erased: suppressed already", row.line, None)
                return
            stored = dry_run or (yield _StoreCall("suppress", (row.erasure,)))
            outcome: Literal["applied", "unchanged"] = (
                "applied" if stored else "unchanged"
            )
            tally.add(outcome, "erased: suppression imported", row.line, None)
            return
        if isinstance(row, LogRow):
            contact, state = row.log.contact, row.log.head.state
        else:
            contact, state = row.contact, row.state
        head, base = yield from self._load_base(contact)
        if base:
            if state is ConsentState.STOPPED:
                reason = "erased here: suppressed already"
                tally.add("unchanged", reason, row.line, contact)
            else:
                reason = "erased here: only the contact can come back, by texting START"
                tally.add("refused", reason, row.line, contact)
            return
        if isinstance(row, CsvRow):
            evidence = f"row {row.line}"
            if row.source:
                evidence += f"; source: {row.source}"
            if row.evidence:
                evidence += f"; {row.evidence}"
            yield from self._import_state(
                contact,
                row.line,
                state,
                row.since,
                source,
                by,
                evidence,
                dry_run,
                tally,
            )
            return
        log = row.log
        if head.version == 0:
            if dry_run:
                tally.add(
                    "applied", "restored (its log as exported)", row.line, contact
                )
                return
            try:
                yield _StoreCall("restore", (log.head, log.events, row.messages))
            except StaleVersion:
                pass  # written meanwhile: merged below
            else:
                tally.add(
                    "applied", "restored (its log as exported)", row.line, contact
                )
                return
            head = yield from self._load(contact)
        if head.version >= log.head.version:
            found: list[AuditEvent] = yield _StoreCall(
                "log", (contact,), {"after": log.head.version - 1}
            )
            if found and found[0].digest == log.head.digest:
                tally.add("unchanged", "already in the store", row.line, contact)
                return
        yield from self._import_state(
            contact,
            row.line,
            state,
            since(log),
            source,
            by,
            f"line {row.line}; exported log head {log.head.digest}",
            dry_run,
            tally,
            ident=log.head.digest,
        )

    def _import_state(  # noqa: PLR0917 - one row's facts, in order
        self,
        contact: str,
        line: int,
        state: ConsentState,
        when: datetime | None,
        source: str,
        by: str,
        evidence: str,
        dry_run: bool,
        tally: Tally,
        *,
        ident: str = "",
        why: str = "",
    ) -> _Steps[None]:
        """Apply what a source says of a contact through the core: a stop
        always, an opt-in only where the contact never stopped."""
        if state is not ConsentState.STOPPED and state is not ConsentState.OPTED_IN:
            tally.add("unchanged", "no consent or stop to import", line, contact)
            return
        what = "stop" if state is ConsentState.STOPPED else "opt-in"
        given = Import(
            at=self._now(),
            state=state,
            source=source,
            by=by,
            import_id=import_id(
                source, contact, state.value, "" if when is None else when, ident
            ),
            since=when,
            evidence=evidence,
        )
        try:
            if dry_run:
                decision = yield from self._decide_only(contact, given)
            else:
                decision = yield from self._apply(contact, given)
        except ContactStopped:
            tally.add(
                "refused",
                "stopped: an imported opt-in never restarts a contact",
                line,
                contact,
            )
            return
        if decision.changed:
            tally.add("applied", f"{what} imported{why}", line, contact)
        elif decision.outcome is Outcome.DUPLICATE:
            tally.add("unchanged", "imported before", line, contact)
        else:
            done = "stopped" if what == "stop" else "opted in"
            tally.add("unchanged", f"{done} already", line, contact)

    def _decide_only(self, contact: str, input: Input) -> _Steps[Decision]:
        """What ``input`` would do now (a dry run): decided, not written."""
        keys = yield from self._key_namespace()
        # Imports reach it for contacts that are not erased (an erased one
        # is answered before), so the suppression's events play no part.
        loaded = yield from self._load(contact)
        return decide(loaded, input, self.policy, namespace=keys)

    def _stop_erased(
        self,
        erased: dict[str, tuple[int, datetime]],
        source: str,
        by: str,
        dry_run: bool,
        tally: Tally,
    ) -> _Steps[None]:
        """Stop the contacts of this store that the source erased (found by
        their suppression key, one pass over the store's contacts)."""
        after: str | None = None
        page = self._page
        while True:
            contacts: list[str] = yield _StoreCall(
                "contacts", (), {"after": after, "limit": page}
            )
            for contact in contacts:
                found = erased.get(suppression_key(contact, self.policy.log_key))
                if found is None:
                    continue
                line, when = found
                head = yield from self._load(contact)
                if head.opted_in_at is not None and head.opted_in_at > when:
                    # The contact opted in again after the erasure (texting
                    # START lifts a suppression): its consent is newer.
                    reason = "opted in after its erasure in the source"
                    tally.add("unchanged", reason, line, contact)
                else:
                    yield from self._import_state(
                        contact,
                        line,
                        ConsentState.STOPPED,
                        when,
                        source,
                        by,
                        f"line {line}; erased in the source",
                        dry_run,
                        tally,
                        ident="erased",
                        why=" (erased in the source)",
                    )
            if len(contacts) < page:
                return
            after = contacts[-1]

    def _erase_steps(self, contact: str, by: str, reason: str) -> _Steps[Erasure]:
        self._needs("erase", "erase", "erasure", "messages")
        for name, value in (("by", by), ("reason", reason)):
            if not isinstance(value, str) or not value.strip():
                raise InvalidInput(f"{name} must be a non-empty str")
        contact = self._contact(contact)
        log_key = self.policy.log_key
        key = suppression_key(contact, log_key)
        conflict: StaleVersion | None = None
        # The stop is a write of its own (with its own retries): the first
        # one does not use up a try of the erasure; a contact restarted
        # meanwhile, stopped again, does.
        tries, stopped = self.max_retries, False
        while tries > 0:
            head = yield _StoreCall("get", (contact,))
            earlier: Erasure | None = yield _StoreCall("erasure", (key,))
            if head is None:
                if earlier is None:
                    raise UnknownContact(contact, what="an erasure")
                return earlier  # erased before: nothing more to do
            if head.state is not ConsentState.STOPPED:
                # Stopped first, through the core: logged, and whatever is
                # queued for the contact withdrawn, in one write.
                yield from self._apply(
                    contact, Revoke(at=self._now(), by=by, reason=f"erasure: {reason}")
                )
                if stopped:
                    tries -= 1
                stopped = True
                continue
            log = yield from self._read_log(contact)
            records: list[MessageRecord] = yield _StoreCall("messages", (contact,))
            erased = erase_log(
                log,
                records,
                erased_at=self._now(),
                by=by,
                reason=reason,
                log_key=log_key,
            )
            erasure = Erasure(
                key=key, logs=(*(() if earlier is None else earlier.logs), erased)
            )
            try:
                yield _StoreCall(
                    "erase",
                    (contact, erasure),
                    {"expected_version": log.head.version},
                )
            except StaleVersion as e:
                conflict = e
                tries -= 1
                continue
            return erasure
        if conflict is None:  # a contact restarted after each stop
            conflict = StaleVersion(contact, expected=0, found=None)
        raise conflict

    def _erasure_steps(self, contact: str) -> _Steps[Erasure | None]:
        self._needs("erasure", "erasure")
        contact = self._contact(contact)
        key = suppression_key(contact, self.policy.log_key)
        erasure: Erasure | None = yield _StoreCall("erasure", (key,))
        if erasure is not None:
            erasure.verify(log_key=self.policy.log_key)
        return erasure

    def _receipt_steps(
        self, contact: str, locale: str | None, tz: str | None, fmt: ReceiptFormat
    ) -> _Steps[str]:
        self._needs("a receipt", "messages")
        check_receipt_format(fmt)
        where = receipt_zone(tz if tz is not None else self.policy.time_zone)
        contact = self._contact(contact)
        head, base = yield from self._load_base(contact)
        if base:
            erasure = yield from self._erasure_steps(contact)
            assert erasure is not None
            return render_erased(
                erasure, self.policy, locale=locale, zone=where, fmt=fmt
            )
        problem = None
        try:
            log = yield from self._read_log(contact)
        except RecordError as error:
            problem = str(error)
            events: list[AuditEvent] = yield _StoreCall("log", (contact,))
            log = ConsentLog(head=head, events=tuple(events))
        records: list[MessageRecord] = yield _StoreCall("messages", (contact,))
        return render_receipt(
            log,
            records,
            self.policy,
            locale=locale,
            zone=where,
            fmt=fmt,
            problem=problem,
        )

    def _purge_steps(self, older_than: datetime) -> _Steps[int]:
        self._needs("retention", "purge_delivered")
        if not isinstance(older_than, datetime):
            raise TypeError(
                f"older_than must be a datetime, got {type(older_than).__name__}"
            )
        if older_than.tzinfo is None or older_than.utcoffset() is None:
            raise InvalidInput("older_than is a naive datetime; pass an aware one")
        purged: int = yield _StoreCall("purge_delivered", (older_than,))
        return purged


def _check_progress(progress: object) -> None:
    if progress is not None and not callable(progress):
        raise TypeError("progress must be None or callable(done, total)")


def _writable(fp: object) -> None:
    if not callable(getattr(fp, "write", None)):
        raise TypeError("fp must be a text file open for writing")
    if isinstance(fp, (io.RawIOBase, io.BufferedIOBase)):
        raise TypeError("fp must be a text file (open(path, 'w', newline=''))")


def _rewindable(fp: IO[str]) -> IO[str]:
    """``fp`` if it can be read twice (the import verifies every line before
    it applies any), else a spooled copy (in memory up to 8 MiB, then on
    disk)."""
    if not callable(getattr(fp, "read", None)):
        raise TypeError("fp must be a text file open for reading")
    if isinstance(fp, (io.RawIOBase, io.BufferedIOBase)):
        raise TypeError("fp must be a text file (open(path, newline=''))")
    try:
        seekable = bool(fp.seekable())
    except (AttributeError, OSError, ValueError):
        seekable = False
    if seekable:
        return fp
    import tempfile  # noqa: PLC0415 (on use: exports only)

    spool = tempfile.SpooledTemporaryFile(  # noqa: SIM115 - returned open
        max_size=8 << 20,
        mode="w+",
        encoding="utf-8",
        errors="surrogatepass",
        newline="",
    )
    while chunk := fp.read(1 << 16):
        spool.write(chunk)
    spool.seek(0)
    return spool


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
        category: str = DEFAULT_CATEGORY,
    ) -> Decision:
        """Send the agent's own words, if the contact's stored state allows it.

        Decided against the record as stored now: a text composed before a
        STOP is refused with :class:`SendBlocked` after it. With the
        policy's quiet hours, ``time_zone`` is the contact's IANA zone (by
        default the one its number has, with the ``phone`` extra, else the
        policy's). ``category`` (``"informational"`` by default) needs the
        policy's level for it (``Policy.categories``): a contact below it
        is refused with ``SendBlocked("level_too_low")``, which says how to
        raise it; a category the policy does not name is an
        :class:`InvalidInput`.

        .. versionchanged:: 0.3.0 ``category``.
        """
        return self._run(
            self._send_text(contact, body, by, at, time_zone, category=category)
        )

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
        category: str = DEFAULT_CATEGORY,
    ) -> bool:
        """Whether :meth:`send_text` of ``category`` would be accepted at
        ``at`` (now by default): the stored state and consent level, and the
        policy's quiet hours.

        .. versionchanged:: 0.3.0 ``category``.
        """
        return self._run(self._can_send(contact, at, time_zone, category))

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

    def export(
        self,
        fp: IO[str],
        *,
        format: Format = "jsonl",
        progress: Progress | None = None,
        page_size: int = 500,
    ) -> int:
        """Write every contact to the text file ``fp``; the number of lines
        (contacts) written, header aside.

        ``format="jsonl"``: one contact per line, its head and verified log
        (``ConsentLog.to_dict()``) with ``messages``, the outbox's delivery
        evidence; then one line per erased contact (the suppression key and
        the redacted logs). ``format="csv"``: a summary, ``contact, state,
        since, source, last_change, level, level_since, level_source`` (the
        consent level and the event that gave it; erased contacts are not in
        it).
        Streams in constant memory: contacts are listed in keyset pages of
        ``page_size`` (``store.contacts(after=, limit=)``), one log at a
        time. ``progress(done, None)`` is called after each line.

        .. versionadded:: 0.2.0
        """
        return self._run(self._export(fp, format, progress, page_size))

    def import_records(
        self,
        fp: IO[str],
        *,
        format: Format = "jsonl",
        source: str,
        by: str = "import",
        dry_run: bool = False,
        continue_on_error: bool = False,
        progress: Progress | None = None,
    ) -> ImportReport:
        """Import consent records from the text file ``fp`` (a JSONL export
        of this library, or a CSV of ``contact, state, since``); ``source``
        names where they come from and ``by`` who imports them, both
        recorded on every event written.

        Every line is read and verified first: a line that is not JSON, has
        an unknown schema or fails verification, a CSV row with an unknown
        state, a naive timestamp or a missing cell, refuses the whole file
        with :class:`ImportRefused` naming the line, and nothing is written
        (``continue_on_error=True``: such lines are reported as refused and
        skipped). Then each row is applied:

        * a contact this store has no record of gets its exported log
          verbatim (JSONL: a migration between stores keeps its evidence);
        * otherwise through the core, as an ``Import`` input: a stop always
          applies; an opt-in only to a NEW, PENDING or DISCLOSED contact,
          never over a stop (only the contact can restart); nothing is
          sent. A row imported before changes nothing (its id is logged);
        * an erased contact is never imported back in; an erasure line
          keeps the number suppressed here too, and stops a live record of
          it.

        Returns an :class:`ImportReport` (applied, unchanged, refused, with
        reasons); ``dry_run=True`` writes nothing and reports what would be
        done. ``progress(done, total)`` is called after each row.

        .. versionadded:: 0.2.0
        """
        return self._run(
            self._import(fp, format, source, by, dry_run, continue_on_error, progress)
        )

    def erase(self, contact: str, *, by: str, reason: str) -> Erasure:
        """Erase the contact's personal data, keep it suppressed.

        The contact is stopped first if it is not (a revocation by ``by``,
        which withdraws whatever is queued for it); then its head, log and
        outbox are replaced by an :class:`Erasure`: the log redacted (message
        bodies, reply texts, evidence, reasons and the contact id replaced by
        their digests, so it still verifies) under a suppression key, the
        keyed hash of the contact id (``Policy.log_key``). Afterwards the
        contact cannot be texted, attested or imported; it comes back only
        by texting START (a fresh log). Raises :class:`UnknownContact` for a
        contact the store has no record of; erasing twice returns the
        erasure already made.

        .. versionadded:: 0.2.0
        """
        return self._run(self._erase_steps(contact, by, reason))

    def erasure(self, contact: str) -> Erasure | None:
        """The contact's erasure (verified), or ``None`` if it was never
        erased.

        .. versionadded:: 0.2.0
        """
        return self._run(self._erasure_steps(contact))

    def receipt(
        self,
        contact: str,
        *,
        locale: str | None = None,
        tz: str | None = None,
        format: ReceiptFormat = "text",
    ) -> str:
        """A readable account of the contact's consent: each request with
        its exact wording and greeting, each reply verbatim with the rule and
        keyword that matched, who acted and by which input, every message
        with its delivery status and provider id, the policy of each event,
        stops and restarts, and the log's head digest and whether it
        verifies. ``format`` is ``"text"``, ``"markdown"`` or ``"html"``
        (escaped: a reply's ``<script>`` shows as text); ``locale`` (the
        contact's, else the policy's default) and ``tz`` (an IANA zone, the
        policy's ``time_zone`` by default) set the language and the dates.
        A log that does not verify is still shown, under a warning.

        .. versionadded:: 0.2.0
        """
        return self._run(self._receipt_steps(contact, locale, tz, format))

    def purge_delivered(self, *, older_than: datetime) -> int:
        """Retention: delete outbox rows of messages sent before
        ``older_than`` (``store.purge_delivered``); the log keeps every
        message. The number deleted.

        .. versionadded:: 0.2.0
        """
        return self._run(self._purge_steps(older_than))


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
        import asyncio  # noqa: PLC0415 (on use: only the async service needs it)

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
        category: str = DEFAULT_CATEGORY,
    ) -> Decision:
        """See :meth:`ConsentService.send_text`."""
        return await self._run(
            self._send_text(contact, body, by, at, time_zone, category=category)
        )

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
        category: str = DEFAULT_CATEGORY,
    ) -> bool:
        """See :meth:`ConsentService.can_send`."""
        return await self._run(self._can_send(contact, at, time_zone, category))

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

    async def export(
        self,
        fp: IO[str],
        *,
        format: Format = "jsonl",
        progress: Progress | None = None,
        page_size: int = 500,
    ) -> int:
        """See :meth:`ConsentService.export`."""
        return await self._run(self._export(fp, format, progress, page_size))

    async def import_records(
        self,
        fp: IO[str],
        *,
        format: Format = "jsonl",
        source: str,
        by: str = "import",
        dry_run: bool = False,
        continue_on_error: bool = False,
        progress: Progress | None = None,
    ) -> ImportReport:
        """See :meth:`ConsentService.import_records`."""
        return await self._run(
            self._import(fp, format, source, by, dry_run, continue_on_error, progress)
        )

    async def erase(self, contact: str, *, by: str, reason: str) -> Erasure:
        """See :meth:`ConsentService.erase`."""
        return await self._run(self._erase_steps(contact, by, reason))

    async def erasure(self, contact: str) -> Erasure | None:
        """See :meth:`ConsentService.erasure`."""
        return await self._run(self._erasure_steps(contact))

    async def receipt(
        self,
        contact: str,
        *,
        locale: str | None = None,
        tz: str | None = None,
        format: ReceiptFormat = "text",
    ) -> str:
        """See :meth:`ConsentService.receipt`."""
        return await self._run(self._receipt_steps(contact, locale, tz, format))

    async def purge_delivered(self, *, older_than: datetime) -> int:
        """See :meth:`ConsentService.purge_delivered`."""
        return await self._run(self._purge_steps(older_than))
