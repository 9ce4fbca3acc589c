"""The store protocol, and the checks every store shares.

A store keeps, per contact, three things written together:

* the **head** (:class:`~optin_core.Consent`), replaced only by
  compare-and-set on its ``version`` *and* ``digest``;
* the **log**: the contact's :class:`~optin_core.AuditEvent` s, append-only;
  a write must extend it (its first new event links to the stored head's
  digest), and an inbound ``message_id`` appears in it at most once;
* the **outbox**: every message decided, indexed as *pending* in the write
  that logs it, then *claimed* by one sender at a time under a lease, then
  *sent*, or *cancelled* by a later stop.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import (
    TYPE_CHECKING,
    Literal,
    NamedTuple,
    Protocol,
    TypeAlias,
    runtime_checkable,
)

import attrs

from .._enums import MessageKind, Trigger
from .._errors import RecordError, StaleVersion, show
from .._machine import withdrawn_by
from .._records import AuditEvent, Consent, Outgoing

if TYPE_CHECKING:
    from .._erase import Erasure

__all__ = [
    "DELIVERY_STATUSES",
    "AsyncStore",
    "DeliveryStatus",
    "Lease",
    "MessageRecord",
    "MessageStatus",
    "Store",
    "Write",
    "cancellation_refused",
    "check_after",
    "check_delivery",
    "check_erasure",
    "check_lease",
    "check_limit",
    "check_page",
    "prepare_restore",
    "prepare_write",
    "retry_time",
    "reused_key",
    "stale_fork",
    "timestamp",
    "uncancelled",
]

#: Where a message of the outbox stands: waiting (``pending``, perhaps
#: claimed or waiting for a retry), handed to the provider (``sent``), or
#: closed unsent: withdrawn by a stop (``cancelled``), past its deadline
#: (``expired``), given up after failed sends (``failed``, the dead letter),
#: or unreadable and set aside (``quarantined``).
MessageStatus: TypeAlias = Literal[
    "pending", "sent", "cancelled", "expired", "failed", "quarantined"
]

#: What the provider later says of a sent message (status callbacks).
DeliveryStatus: TypeAlias = Literal["delivered", "undelivered", "failed"]

DELIVERY_STATUSES: frozenset[str] = frozenset({"delivered", "undelivered", "failed"})


@attrs.frozen(kw_only=True, slots=True)
class MessageRecord:
    """Everything the outbox knows of one message: the evidence of its
    delivery (export and receipts read it).

    .. versionadded:: 0.2.0
    """

    message: Outgoing
    status: MessageStatus
    attempts: int = 0
    last_error: str | None = None
    next_attempt_at: datetime | None = None
    provider_id: str | None = None
    sent_at: datetime | None = None
    delivery: DeliveryStatus | None = None
    delivery_at: datetime | None = None
    error_code: str | None = None


class Lease(NamedTuple):
    """The ``lease`` the service passes to :meth:`Store.put` and
    :meth:`Store.mark_sent`: claim the contact's next message in the same
    transaction, exactly as ``claim(key, until=until, now=now)`` would.

    .. versionadded:: 0.1.0
    """

    until: datetime
    now: datetime


@runtime_checkable
class Store(Protocol):
    """What :class:`~optin_core.ConsentService` needs from a database.

    Every method is atomic (one transaction, or one lock): the service relies
    on it for "nothing lost, nothing sent twice, never un-stopped". Messages
    of the outbox are keyed by :attr:`Outgoing.key`, unique across contacts,
    and ordered per contact by the order of the writes that created them.
    ``tests/test_stores.py`` is the contract suite a store joins with one
    parameter.

    .. versionadded:: 0.1.0
    .. versionchanged:: 0.2.0 The head and its log; ``put`` takes the new
       events, ``log`` reads them; leasing in the same write is required.
    """

    def namespace(self) -> str:
        """This store's key namespace: a random id the store creates once
        and keeps (per database, per ``MemoryStore``), so the same store
        gives the same message keys across restarts and processes, and two
        stores never share keys. The service puts it into every key."""
        ...

    def get(self, contact: str) -> Consent | None:
        """The stored head of ``contact``, or ``None`` when there is none.

        Cost independent of the log's length. Raises
        :class:`~optin_core.RecordError` naming the contact when the stored
        data cannot be read back, or the head does not match its log's last
        event.
        """
        ...

    def log(self, contact: str, *, after: int = 0) -> list[AuditEvent]:
        """``contact``'s logged events of version above ``after``, in order
        (``[]`` for an unknown contact). The caller verifies them."""
        ...

    def put(
        self,
        consent: Consent,
        events: Sequence[AuditEvent],
        *,
        expected_version: int,
        lease: Lease | None = None,
    ) -> Outgoing | None:
        """Append ``events`` to the log and save ``consent`` as the head, if
        the stored head is still the one they extend.

        In one transaction:

        1. **Extend only.** The stored head's version must be
           ``expected_version`` (``0``: no head yet) *and* its digest
           ``events[0].prev`` (``""`` for none). Otherwise raise
           :class:`~optin_core.StaleVersion` and write nothing: a stale,
           forked or replayed copy can never replace a newer head (it would
           un-stop a contact), whatever its version number says.
        2. **Only what decide could produce.** :func:`prepare_write` checks
           the arguments (links, versions, the head is the last event's) and
           ``check_extension(stored, consent, events)`` that the events follow
           the stored head with the evidence their triggers need
           (:class:`~optin_core.RecordError`).
        3. **Duplicates of any age.** An inbound ``message_id`` already in the
           contact's log raises :class:`~optin_core.DuplicateMessage` (a
           unique ``(contact, message_id)`` index).
        4. **Cancellations.** Mark cancelled exactly the messages listed by
           the ``cancel`` events; each must be a pending message of this
           contact of a kind the write withdraws (``Write.withdraws``: those
           a stop cancels, or all after a provider's opt-out;
           ``StaleVersion`` if it was sent meanwhile: decide again; else
           ``RecordError``), and no other pending message of those kinds may
           remain (else ``RecordError``: the decision was not passed through
           :func:`~optin_core.cancel_queued`).
        5. Index the messages of ``events`` as pending, in order; a key
           already in the outbox is a ``RecordError`` (a replayed write).
        6. With a ``lease``, claim the contact's oldest pending message as
           :meth:`claim` would, and return it (``None`` when none can be
           claimed: nothing pending, or the head of the queue is being sent
           by someone else).
        """
        ...

    def pending(
        self, *, contact: str | None = None, limit: int | None = None
    ) -> list[Outgoing]:
        """Pending messages, oldest first; only ``contact``'s when given.

        Includes messages claimed by a sender whose lease has not expired.
        """
        ...

    def due(self, *, now: datetime, limit: int | None = None) -> list[Outgoing]:
        """The messages that could be claimed at ``now``, oldest first: at
        most one per contact (the head of its queue, or a stop confirmation
        waiting behind merely pending messages), none waiting for a retry
        (``next_attempt_at`` later than ``now``) or leased to a live sender.
        ``flush`` reads it, so that a contact whose messages keep failing
        never keeps the others waiting. A row that cannot be read back is
        set aside as ``quarantined`` (and logged), never raised.
        """
        ...

    def claim(self, key: str, *, until: datetime, now: datetime) -> bool:
        """Lease the pending message ``key`` to the caller until ``until``.

        True only if the message is pending, due (no retry time later than
        ``now``), not leased to another sender at ``now``, and no earlier
        message of the same contact is still pending or being sent
        (per-contact order). A stop confirmation waits only for earlier
        messages being sent, never for merely pending ones: it is never
        stuck behind a failing message.
        """
        ...

    def release(
        self,
        key: str,
        *,
        error: str | None = None,
        now: datetime | None = None,
        backoff: timedelta | None = None,
    ) -> int:
        """Drop the caller's lease after a failed send. Counts the failed
        attempt, keeps ``error`` (the last one), and, given ``now`` and
        ``backoff``, lets the message be claimed again only from
        :func:`retry_time` ``(now, backoff, attempts)`` (at once after the
        first two failures, then exponential; at once without them).
        Returns the number of failed attempts so far (``0`` for an unknown
        or sent message, which is left alone)."""
        ...

    def mark_sent(
        self,
        key: str,
        *,
        lease: Lease | None = None,
        provider_id: str | None = None,
        at: datetime | None = None,
    ) -> Outgoing | None:
        """Record that ``key`` was handed to the provider, with its
        ``provider_id`` (the provider's message id, when ``send`` returned
        one) at ``at``. Idempotent.

        Also applies to a message cancelled while it was being sent: it did
        go, and the outbox says so. With a ``lease``, then claim the next
        message of its contact (atomically with the mark, or right after it:
        never before it) and return it, or ``None``.
        """
        ...

    def delivery(
        self,
        key_or_provider_id: str,
        status: DeliveryStatus,
        *,
        at: datetime,
        error_code: str | None = None,
    ) -> Outgoing | None:
        """Record what the provider says of a sent message (a status
        callback), found by its key or its provider id; the message, or
        ``None`` when no message has that key or id."""
        ...

    def messages(self, contact: str) -> list[MessageRecord]:
        """Every outbox message of ``contact``, in order, with its delivery
        evidence."""
        ...

    def dead_letters(self, *, limit: int | None = None) -> list[MessageRecord]:
        """Messages given up after failed sends (status ``failed``), oldest
        first."""
        ...

    # -- compliance (0.2.0): listing, restoring, erasing, retention --

    def contacts(
        self, *, after: str | None = None, limit: int | None = None
    ) -> list[str]:
        """Contacts with a stored head, in the store's order of contact ids
        (code points; PostgreSQL: the column's collation), keyset-paginated:
        those after ``after``, at most ``limit``. An export reads every
        contact in pages of constant size, however many there are."""
        ...

    def restore(
        self,
        consent: Consent,
        events: Sequence[AuditEvent],
        messages: Sequence[MessageRecord] = (),
    ) -> None:
        """Write a contact's whole log, head and outbox records as they are
        (a verified export moved between stores), if the store has no head
        for the contact (else :class:`~optin_core.StaleVersion`).

        The events must be a log from a new contact that replays to
        ``consent`` (checked as :meth:`put` checks a write); each record must
        be one of the log's messages, and keeps its status and delivery
        evidence (a pending one is delivered by the next ``flush``).
        Messages of the log without a record (purged by retention) get no
        outbox row."""
        ...

    def erase(self, contact: str, erasure: Erasure, *, expected_version: int) -> None:
        """Replace ``contact``'s head, log and outbox rows by ``erasure``
        (whose last log is the redaction of the stored one), in one
        transaction, if the stored head is still at ``expected_version``
        with the digest the erasure's last log ends with (else
        :class:`~optin_core.StaleVersion`). An erasure already stored under
        the same key is replaced (the new one carries the earlier logs).
        Afterwards the contact id is nowhere in the store."""
        ...

    def suppress(self, erasure: Erasure) -> bool:
        """Store ``erasure`` (an imported suppression) unless one with its
        key is stored already; whether it was stored."""
        ...

    def erasure(self, key: str) -> Erasure | None:
        """The erasure stored under suppression ``key``, or ``None``."""
        ...

    def erasures(
        self, *, after: str | None = None, limit: int | None = None
    ) -> list[Erasure]:
        """Stored erasures in order of key, keyset-paginated as
        :meth:`contacts`."""
        ...

    def purge_delivered(self, older_than: datetime) -> int:
        """Retention: delete the outbox rows of messages handed to the
        provider (status ``sent``) before ``older_than``; never a log event
        (the log keeps every message's text). The number deleted."""
        ...


@runtime_checkable
class AsyncStore(Protocol):
    """:class:`Store` with coroutine methods, for
    :class:`~optin_core.AsyncConsentService` over an async database driver.

    Same contract as :class:`Store`, method by method.

    .. versionadded:: 0.1.0
    """

    async def namespace(self) -> str: ...

    async def get(self, contact: str) -> Consent | None: ...

    async def log(self, contact: str, *, after: int = 0) -> list[AuditEvent]: ...

    async def put(
        self,
        consent: Consent,
        events: Sequence[AuditEvent],
        *,
        expected_version: int,
        lease: Lease | None = None,
    ) -> Outgoing | None: ...

    async def pending(
        self, *, contact: str | None = None, limit: int | None = None
    ) -> list[Outgoing]: ...

    async def due(
        self, *, now: datetime, limit: int | None = None
    ) -> list[Outgoing]: ...

    async def claim(self, key: str, *, until: datetime, now: datetime) -> bool: ...

    async def release(
        self,
        key: str,
        *,
        error: str | None = None,
        now: datetime | None = None,
        backoff: timedelta | None = None,
    ) -> int: ...

    async def mark_sent(
        self,
        key: str,
        *,
        lease: Lease | None = None,
        provider_id: str | None = None,
        at: datetime | None = None,
    ) -> Outgoing | None: ...

    async def delivery(
        self,
        key_or_provider_id: str,
        status: DeliveryStatus,
        *,
        at: datetime,
        error_code: str | None = None,
    ) -> Outgoing | None: ...

    async def messages(self, contact: str) -> list[MessageRecord]: ...

    async def dead_letters(
        self, *, limit: int | None = None
    ) -> list[MessageRecord]: ...

    async def contacts(
        self, *, after: str | None = None, limit: int | None = None
    ) -> list[str]: ...

    async def restore(
        self,
        consent: Consent,
        events: Sequence[AuditEvent],
        messages: Sequence[MessageRecord] = (),
    ) -> None: ...

    async def erase(
        self, contact: str, erasure: Erasure, *, expected_version: int
    ) -> None: ...

    async def suppress(self, erasure: Erasure) -> bool: ...

    async def erasure(self, key: str) -> Erasure | None: ...

    async def erasures(
        self, *, after: str | None = None, limit: int | None = None
    ) -> list[Erasure]: ...

    async def purge_delivered(self, older_than: datetime) -> int: ...


@attrs.frozen(slots=True)
class Write:
    """A checked :meth:`Store.put`: what the store must write."""

    #: The stored head's digest the write extends ("" for a first write).
    prev: str
    #: ``(version, position, message)`` of every message to index, in order.
    messages: tuple[tuple[int, int, Outgoing], ...]
    #: Keys the write's ``cancel`` events cancel.
    cancelled: tuple[str, ...]
    #: Keys the write gives up: ``(key, "expired" | "failed")``.
    closed: tuple[tuple[str, MessageStatus], ...]
    #: The kinds of queued message the write withdraws (a stop's, or every
    #: kind after a provider's opt-out): each pending one must be listed.
    withdraws: frozenset[MessageKind]
    #: Inbound message ids the write logs.
    message_ids: tuple[str, ...]

    @property
    def stops(self) -> bool:
        """Whether the write withdraws queued messages (a stop)."""
        return bool(self.withdraws)


def prepare_write(
    consent: Consent, events: Sequence[AuditEvent], expected_version: int
) -> Write:
    """Check a put's arguments, before any I/O; what it must write.

    ``TypeError`` / ``ValueError`` for misuse, :class:`RecordError` for events
    that do not chain to ``consent``.
    """
    if not isinstance(consent, Consent):
        raise TypeError(f"consent must be a Consent, got {type(consent).__name__}")
    if isinstance(events, (str, bytes)) or not isinstance(events, Sequence):
        raise TypeError("events must be a sequence of AuditEvent (decision.events)")
    if (
        not isinstance(expected_version, int)
        or isinstance(expected_version, bool)
        or not 0 <= expected_version < consent.version
    ):
        raise ValueError(
            f"expected_version must be an int in [0, {consent.version}) for a "
            f"head at version {consent.version}, got {expected_version!r}"
        )
    contact = consent.contact
    if len(events) != consent.version - expected_version:
        raise RecordError(
            "version",
            f"{consent.version} is not {expected_version} plus the "
            f"{len(events)} events written",
            contact=contact,
        )
    messages: list[tuple[int, int, Outgoing]] = []
    cancelled: list[str] = []
    closed: list[tuple[str, MessageStatus]] = []
    ids: list[str] = []
    prev = events[0].prev if events else ""
    link = prev
    for index, event in enumerate(events):
        if not isinstance(event, AuditEvent):
            raise TypeError(f"events[{index}] is a {type(event).__name__}")
        if event.version != expected_version + index + 1 or event.prev != link:
            raise RecordError(
                f"log[{index}]",
                "the events do not follow each other (version and prev)",
                contact=contact,
                index=index,
            )
        link = event.digest
        for position, message in enumerate(event.sent):
            messages.append((event.version, position, message))
        if event.trigger is Trigger.CANCEL:
            cancelled.extend(event.cancelled)
        elif event.trigger is Trigger.EXPIRE:
            closed.extend((key, "expired") for key in event.cancelled)
        elif event.trigger is Trigger.DEAD_LETTER:
            closed.extend((key, "failed") for key in event.cancelled)
        if event.message_id is not None:
            ids.append(event.message_id)
    if link != consent.digest:
        raise RecordError("digest", "the head is not the last event's", contact=contact)
    if len(set(ids)) != len(ids):
        raise RecordError(
            "message_id", "one inbound message logged twice", contact=contact
        )
    return Write(
        prev,
        tuple(messages),
        tuple(cancelled),
        tuple(closed),
        withdrawn_by(events),
        tuple(ids),
    )


def stale_fork(contact: str, expected: int) -> StaleVersion:
    """The refusal of a write whose version matches but whose first event
    does not link to the stored head: a stale or forked copy."""
    return StaleVersion(
        contact,
        expected=expected,
        found=expected,
        why="the write does not extend the stored log (a stale or forked copy)",
    )


def cancellation_refused(
    contact: str, key: str, *, sent: bool, version: int
) -> Exception:
    """The refusal of a ``cancel`` naming a message that is not pending."""
    if sent:
        return StaleVersion(
            contact,
            expected=version,
            found=version,
            why=f"message {key} was sent before the stop was saved",
        )
    return RecordError(
        "cancelled",
        f"{show(key)} is not a pending message of this contact",
        contact=contact,
    )


def reused_key(contact: str) -> RecordError:
    """The refusal of a write whose message key is already in the outbox: a
    replayed or forged write (keys are unique per version and position)."""
    return RecordError(
        "sent",
        "a message key of the write is already in the outbox (a replayed or "
        "forged write)",
        contact=contact,
    )


def uncancelled(contact: str, key: str) -> RecordError:
    """The refusal of a stop that leaves a message it withdraws pending."""
    return RecordError(
        "cancelled",
        f"the write stops the contact but leaves message {key} pending; pass "
        "the decision through cancel_queued(decision, store.pending("
        "contact=...), policy) first",
        contact=contact,
    )


def check_limit(limit: int | None) -> None:
    if limit is not None and (
        not isinstance(limit, int) or isinstance(limit, bool) or limit < 0
    ):
        raise ValueError(f"limit must be None or an int >= 0, got {limit!r}")


#: The longest wait between two attempts at a failing message.
MAX_RETRY_WAIT = timedelta(hours=6)


def retry_time(
    now: datetime | None, backoff: timedelta | None, attempts: int
) -> datetime | None:
    """When a message that failed ``attempts`` times may be tried again: at
    once after its first two failures (``None``: a blip is retried by the
    next flush), then ``now + backoff * 2 ** (attempts - 3)``, at most
    :data:`MAX_RETRY_WAIT` later; ``None`` without ``now`` and ``backoff``."""
    if now is None or backoff is None:
        return None
    timestamp(now, "now")
    if not isinstance(backoff, timedelta) or backoff < timedelta(0):
        raise ValueError(f"backoff must be a timedelta >= 0, got {backoff!r}")
    if attempts < 3:
        return None
    wait = backoff * (1 << min(attempts - 3, 20))
    return now + min(wait, MAX_RETRY_WAIT)


def check_delivery(status: object) -> DeliveryStatus:
    if status not in DELIVERY_STATUSES:
        raise ValueError(
            f"delivery status must be one of {sorted(DELIVERY_STATUSES)}, "
            f"got {show(status)}"
        )
    return status  # type: ignore[return-value]


def check_after(after: int) -> None:
    if not isinstance(after, int) or isinstance(after, bool) or after < 0:
        raise ValueError(f"after must be an int >= 0, got {after!r}")


def check_lease(lease: tuple[datetime, datetime] | None) -> Lease | None:
    """``lease`` checked (two aware datetimes), before anything is written."""
    if lease is None:
        return None
    if not isinstance(lease, tuple) or len(lease) != 2:
        raise TypeError(f"lease must be a Lease(until, now) or None, got {lease!r}")
    until, now = lease
    timestamp(until, "lease.until")
    timestamp(now, "lease.now")
    return Lease(until, now)


def timestamp(value: datetime, name: str) -> float:
    """``value`` as a POSIX timestamp; it must be an aware datetime."""
    if not isinstance(value, datetime):
        raise TypeError(f"{name} must be a datetime, got {type(value).__name__}")
    if value.tzinfo is None or value.utcoffset() is None:
        raise ValueError(f"{name} must be timezone-aware")
    return value.timestamp()


def check_page(after: str | None, limit: int | None) -> None:
    """The arguments of a keyset-paginated listing."""
    if after is not None and not isinstance(after, str):
        raise TypeError(f"after must be a str or None, got {type(after).__name__}")
    check_limit(limit)


def prepare_restore(
    consent: Consent,
    events: Sequence[AuditEvent],
    messages: Sequence[MessageRecord],
) -> tuple[Write, list[tuple[int, int, MessageRecord]]]:
    """Check a restore's arguments before any I/O: the events are a whole
    log (from version 1) chained to ``consent``, following the machine with
    their evidence, and every record is one of its messages. The write, and
    ``(version, position, record)`` for each outbox row to insert, in the
    records' order."""
    if not events:
        raise RecordError("log", "a restore writes a whole, non-empty log")
    write = prepare_write(consent, events, 0)
    # Imported here: the log module builds on the machine, as this one does.
    from .._log import check_extension  # noqa: PLC0415

    check_extension(Consent(contact=consent.contact), consent, events)
    where = {m.key: (version, position, m) for version, position, m in write.messages}
    rows: list[tuple[int, int, MessageRecord]] = []
    seen: set[str] = set()
    for index, record in enumerate(messages):
        if not isinstance(record, MessageRecord):
            raise TypeError(f"messages[{index}] is a {type(record).__name__}")
        key = record.message.key
        found = where.get(key)
        if found is None or found[2] != record.message or key in seen:
            raise RecordError(
                f"messages[{index}]",
                f"{show(key)} is not a message of the log (or is listed twice)",
                contact=consent.contact,
            )
        seen.add(key)
        rows.append((found[0], found[1], record))
    return write, rows


def check_erasure(contact: str, erasure: Erasure, expected_version: int) -> str:
    """Check an erase's arguments before any I/O; the digest the stored
    head must have (the erased log's last)."""
    if not isinstance(contact, str) or not contact:
        raise TypeError("contact must be a non-empty str")
    if (
        not isinstance(expected_version, int)
        or isinstance(expected_version, bool)
        or expected_version < 1
    ):
        raise ValueError(
            f"expected_version must be an int >= 1, got {expected_version!r}"
        )
    head = erasure.logs[-1].log.head
    if head.version != expected_version:
        raise RecordError(
            "version",
            f"the erasure's log ends at version {head.version}, not {expected_version}",
            contact=contact,
        )
    return head.digest
