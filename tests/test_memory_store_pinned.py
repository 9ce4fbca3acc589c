"""Rules of the store contract pinned exactly (found by mutation testing of
``MemoryStore``), each checked on ``MemoryStore`` and ``SQLiteStore``.

Pins:

* argument checks: every datetime argument named in its error (``until``,
  ``now``, ``at``, ``older_than``), every ``limit`` and ``after`` checked,
  and ``release`` checking its retry arguments before anything changes
  (even for an unknown message);
* the outbox's order: ``due`` and ``dead_letters`` oldest write first
  (restored messages queue behind what the store already held), and
  their ``limit``;
* ``release``: ``0`` for an unknown or sent message, left alone; a late
  sender of a message cancelled meanwhile is still heard;
* ``mark_sent`` keeps the first mark (time and provider id);
* ``delivery`` clears an old error code;
* ``put``: a refused cancellation names the message and the version;
  a new contact is listed by ``contacts``;
* ``restore``: the refusal's attributes, every record field kept
  (attempts, last error, retry time, provider id);
* ``erase``: the refusal's attributes; afterwards the contact's message
  keys, provider ids, queue and inbound ids are gone from the store;
* ``purge_delivered``: a purged message is unknown by key and provider id;
  provider ids shared by several messages are handled.

Two divergences between the stores were found here and fixed in 0.3.0:
``test_due_with_limit_0_lists_nothing`` (SQLiteStore) and
``test_a_shared_provider_id_still_finds_the_remaining_message`` (MemoryStore).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import attrs
import pytest

from optin_core import (
    MemoryStore,
    MessageRecord,
    Outgoing,
    RecordError,
    StaleVersion,
    cancel_queued,
    decide,
)
from optin_core._records import MessageFailed

from .service_helpers import (
    local_store,  # noqa: F401 (the `store` fixture)
)
from .test_store_compliance import _erasure
from .test_stores import (
    CONTACT,
    LEASE,
    NOW,
    OTHER,
    POLICY,
    Step,
    inbound,
    messages,
    opted_in,
    put,
    put_decision,
    requested,
    step,
    stop_decision,
    texting,
    with_text,
)

THIRD = "+15550003"
LIMIT_ERROR = "limit must be None or an int >= 0, got -1"


def naive(moment: datetime) -> datetime:
    return moment.replace(tzinfo=None)


def sent(store: Any, key: str, **mark: Any) -> None:
    """Claim ``key`` and mark it sent (with ``mark``: provider_id, at)."""
    assert store.claim(key, until=NOW + LEASE, now=NOW)
    store.mark_sent(key, **mark)


def record(store: Any, contact: str, key: str) -> Any:
    (found,) = [r for r in store.messages(contact) if r.message.key == key]
    return found


def failed(store: Any, written: Step, key: str, minutes: float) -> Step:
    """Give up on ``key`` (a dead letter), written on ``written``'s head."""
    give_up = MessageFailed(
        at=NOW + timedelta(minutes=minutes), key=key, attempts=5, error="timeout"
    )
    given_up = step(written[0], give_up)
    put(store, given_up)
    return given_up


# ---------------------------------------------------------------------------
# Argument checks: each datetime named in its error


CALLS: dict[str, Callable[[Any, object], object]] = {
    "claim until": lambda s, v: s.claim("k", until=v, now=NOW),
    "claim now": lambda s, v: s.claim("k", until=NOW, now=v),
    "due now": lambda s, v: s.due(now=v),
    "mark_sent at": lambda s, v: s.mark_sent("k", at=v),
    "purge_delivered older_than": lambda s, v: s.purge_delivered(v),
}


@pytest.mark.parametrize("call", sorted(CALLS))
def test_each_datetime_argument_is_named_in_its_error(store: Any, call: str) -> None:
    name = call.split()[1]
    with pytest.raises(TypeError) as info:
        CALLS[call](store, "2026-03-02")
    assert str(info.value) == f"{name} must be a datetime, got str"
    with pytest.raises(ValueError) as info2:
        CALLS[call](store, naive(NOW))
    assert str(info2.value) == f"{name} must be timezone-aware"


def test_delivery_names_its_at_argument(store: Any) -> None:
    # A known message: SQLiteStore checks ``at`` once it found the row.
    put(store, requested())
    (request,) = store.pending()
    with pytest.raises(TypeError) as info:
        store.delivery(request.key, "delivered", at="2026-03-02")
    assert str(info.value) == "at must be a datetime, got str"
    with pytest.raises(ValueError) as info2:
        store.delivery(request.key, "delivered", at=naive(NOW))
    assert str(info2.value) == "at must be timezone-aware"
    assert record(store, CONTACT, request.key).delivery is None


def test_listing_limits_and_keys_are_checked(store: Any) -> None:
    put(store, requested())
    for listing in (store.due, store.dead_letters):
        kwargs = {"now": NOW} if listing == store.due else {}
        with pytest.raises(ValueError) as info:
            listing(limit=-1, **kwargs)
        assert str(info.value) == LIMIT_ERROR
    with pytest.raises(TypeError) as info2:
        store.erasures(after=5)
    assert str(info2.value) == "after must be a str or None, got int"


# ---------------------------------------------------------------------------
# The outbox's order and limits


def test_due_lists_the_oldest_write_first_and_honours_its_limit(store: Any) -> None:
    a = requested(CONTACT)
    (a1,) = messages(a[1])
    put(store, a)
    b = requested(OTHER)
    (b1,) = messages(b[1])
    put(store, b)
    sent(store, a1.key)
    # CONTACT's next message was written after OTHER's: it comes second,
    # though CONTACT was stored first.
    a2 = step(a[0], inbound("yes", "m1"))
    (confirmation,) = messages(a2[1])
    put(store, a2)
    assert store.due(now=NOW) == [b1, confirmation]
    assert store.due(now=NOW, limit=1) == [b1]


@pytest.mark.parametrize(
    "store",
    [
        "memory",
        "sqlite",
    ],
    indirect=True,
)
def test_due_with_limit_0_lists_nothing(store: Any) -> None:
    put(store, requested())
    assert store.due(now=NOW) != []
    assert store.due(now=NOW, limit=0) == []


def test_restored_messages_queue_behind_those_already_stored(
    store: Any, tmp_path: Path
) -> None:
    source = MemoryStore()
    restored = requested(THIRD)
    put(source, restored)
    for contact in (CONTACT, OTHER):
        put(store, requested(contact))
    first, second = store.pending()
    store.restore(restored[0], restored[1], source.messages(THIRD))
    (third,) = messages(restored[1])
    assert store.due(now=NOW) == [first, second, third]


def test_dead_letters_are_listed_oldest_message_first(store: Any) -> None:
    a, b = requested(CONTACT), requested(OTHER)
    (a1,), (b1,) = messages(a[1]), messages(b[1])
    put(store, a)
    put(store, b)
    # Given up in the other order: the messages' order still rules.
    failed(store, b, b1.key, 1)
    failed(store, a, a1.key, 2)
    letters = store.dead_letters()
    assert [r.message for r in letters] == [a1, b1]
    assert [r.status for r in letters] == ["failed", "failed"]
    assert store.dead_letters(limit=1) == letters[:1]
    assert store.dead_letters(limit=0) == []


def test_erasures_honour_their_limit(store: Any) -> None:
    keys = []
    for contact in (CONTACT, OTHER, THIRD):
        put(store, opted_in(contact))
        erasure = _erasure(store, contact)
        store.erase(contact, erasure, expected_version=2)
        keys.append(erasure.key)
    assert [e.key for e in store.erasures(limit=2)] == sorted(keys)[:2]
    assert store.erasures(limit=0) == []


def test_a_new_contact_is_listed_after_an_earlier_listing(store: Any) -> None:
    put(store, requested(OTHER))
    assert store.contacts() == [OTHER]
    put(store, requested(CONTACT))
    assert store.contacts() == [CONTACT, OTHER]


# ---------------------------------------------------------------------------
# release, mark_sent, delivery


def test_release_of_an_unknown_or_sent_message_returns_0_and_changes_nothing(
    store: Any,
) -> None:
    assert store.release("nope", error="boom") == 0
    put(store, requested())
    (request,) = store.pending()
    sent(store, request.key, at=NOW)
    before = store.messages(CONTACT)
    assert store.release(request.key, error="boom", now=NOW, backoff=LEASE) == 0
    assert store.messages(CONTACT) == before
    assert before[0].attempts == 0
    assert before[0].last_error is None


@pytest.mark.parametrize(
    ("now", "backoff", "error"),
    [
        (naive(NOW), LEASE, "now must be timezone-aware"),
        (
            NOW,
            -LEASE,
            "backoff must be a timedelta >= 0, got "
            "datetime.timedelta(days=-1, seconds=86280)",
        ),
    ],
)
def test_release_checks_its_retry_arguments_before_anything(
    store: Any, now: datetime, backoff: timedelta, error: str
) -> None:
    with pytest.raises(ValueError, match=re.escape(error)):
        store.release("nope", now=now, backoff=backoff)
    put(store, requested())
    (request,) = store.pending()
    assert store.claim(request.key, until=NOW + LEASE, now=NOW)
    before = store.messages(CONTACT)
    with pytest.raises(ValueError, match=re.escape(error)):
        store.release(request.key, error="boom", now=now, backoff=backoff)
    # Nothing changed: no attempt counted, the lease still held.
    assert store.messages(CONTACT) == before
    assert not store.claim(request.key, until=NOW + LEASE, now=NOW)


def _cancelled_while_its_sender_was_late(store: Any) -> tuple[str, Outgoing]:
    """A text claimed by a sender that went quiet past its lease; a STOP
    cancelled it, and the confirmation was claimed once the lease ended."""
    texted, key = with_text(store)
    assert store.claim(key, until=NOW + LEASE, now=NOW)
    decision = stop_decision(store, texted)
    put_decision(store, decision, texted.version)
    (conf,) = decision.outgoing
    assert store.claim(conf.key, until=NOW + 3 * LEASE, now=NOW + 2 * LEASE)
    return key, conf


def test_a_late_failure_of_a_cancelled_message_is_counted(store: Any) -> None:
    key, conf = _cancelled_while_its_sender_was_late(store)
    assert store.release(key, error="timeout") == 1
    assert store.message_status(key) == "cancelled"
    assert record(store, CONTACT, key).last_error == "timeout"
    assert store.mark_sent(conf.key) is None
    assert store.pending() == []


def test_a_late_success_of_a_cancelled_message_is_recorded(store: Any) -> None:
    key, conf = _cancelled_while_its_sender_was_late(store)
    store.mark_sent(key, provider_id="SM-late", at=NOW + 4 * LEASE)
    assert store.message_status(key) == "sent"
    assert record(store, CONTACT, key).provider_id == "SM-late"
    assert store.message_status(conf.key) == "pending"


def test_mark_sent_keeps_the_first_mark(store: Any) -> None:
    put(store, requested())
    (request,) = store.pending()
    sent(store, request.key, provider_id="SM-1", at=NOW)
    store.mark_sent(request.key, provider_id="SM-2", at=NOW + LEASE)
    kept = record(store, CONTACT, request.key)
    assert (kept.status, kept.provider_id, kept.sent_at) == ("sent", "SM-1", NOW)
    assert store.delivery("SM-2", "delivered", at=NOW) is None
    assert store.delivery("SM-1", "delivered", at=NOW) == request


def test_a_delivery_report_without_error_code_clears_the_old_one(store: Any) -> None:
    put(store, requested())
    (request,) = store.pending()
    sent(store, request.key, at=NOW)
    store.delivery(request.key, "undelivered", at=NOW, error_code="30003")
    assert record(store, CONTACT, request.key).error_code == "30003"
    later = NOW + LEASE
    assert store.delivery(request.key, "delivered", at=later) == request
    kept = record(store, CONTACT, request.key)
    assert (kept.delivery, kept.delivery_at, kept.error_code) == (
        "delivered",
        later,
        None,
    )


# ---------------------------------------------------------------------------
# put: refused cancellations


def test_a_cancellation_of_an_unknown_message_names_it(store: Any) -> None:
    texted, key = with_text(store)
    (mine,) = store.pending(contact=CONTACT)
    stopped = decide(texted, inbound("STOP", "s1", 1), POLICY)
    forged = attrs.evolve(mine, key="no-such-message")
    decision = cancel_queued(stopped, [mine, forged], POLICY)
    with pytest.raises(RecordError) as info:
        put_decision(store, decision, texted.version)
    err = info.value
    assert (err.contact, err.field) == (CONTACT, "cancelled")
    assert err.problem == "'no-such-message' is not a pending message of this contact"
    assert store.message_status(key) == "pending"


# ---------------------------------------------------------------------------
# restore


def test_a_restore_over_a_stored_head_is_stale(store: Any) -> None:
    put(store, opted_in())
    head, events = requested()
    with pytest.raises(StaleVersion) as info:
        store.restore(head, events)
    err = info.value
    assert (err.contact, err.expected, err.found) == (CONTACT, 0, 2)
    assert str(err) == (
        f"record of {CONTACT!r} changed concurrently (expected version 0, "
        "found 2); reload it and decide again"
    )


def test_a_restore_reusing_a_stored_key_names_its_contact(store: Any) -> None:
    head, events = requested()
    put(store, (head, events))
    (request,) = messages(events)
    other_head, other_events = requested(OTHER)
    # OTHER's log forged to reuse CONTACT's message key.
    forged = tuple(
        attrs.evolve(e, sent=tuple(attrs.evolve(m, key=request.key) for m in e.sent))
        for e in other_events
    )
    records = [MessageRecord(message=m, status="sent") for e in forged for m in e.sent]
    with pytest.raises(RecordError) as info:
        store.restore(other_head, forged, records)
    assert (info.value.contact, info.value.field) == (OTHER, "sent")
    assert store.get(OTHER) is None


def test_a_restore_keeps_every_field_of_a_record(store: Any) -> None:
    source = MemoryStore()
    written = opted_in()
    put(source, written)
    request, confirmation = messages(written[1])
    sent(source, request.key, provider_id="SM-1", at=NOW)
    # The confirmation failed three times: it waits for its retry time.
    for attempt in range(3):
        assert source.claim(confirmation.key, until=NOW + LEASE, now=NOW)
        assert (
            source.release(
                confirmation.key, error=f"e{attempt}", now=NOW, backoff=LEASE
            )
            == attempt + 1
        )
    records = source.messages(CONTACT)
    assert (records[1].attempts, records[1].last_error) == (3, "e2")
    assert records[1].next_attempt_at == NOW + LEASE
    store.restore(written[0], written[1], records)
    assert store.messages(CONTACT) == records
    assert store.due(now=NOW) == []
    assert store.due(now=NOW + LEASE) == [confirmation]
    # Found by its provider id.
    assert store.delivery("SM-1", "delivered", at=NOW) == request
    assert record(store, CONTACT, request.key).delivery == "delivered"


# ---------------------------------------------------------------------------
# erase


def test_an_erase_of_a_head_that_moved_on_is_stale(store: Any) -> None:
    written = opted_in()
    put(store, written)
    erasure = _erasure(store)
    put(store, step(written[0], texting()))
    with pytest.raises(StaleVersion) as info:
        store.erase(CONTACT, erasure, expected_version=2)
    err = info.value
    assert (err.contact, err.expected, err.found) == (CONTACT, 2, 3)
    assert str(err) == (
        f"record of {CONTACT!r} changed concurrently (expected version 2, "
        "found 3); reload it and decide again"
    )
    assert store.get(CONTACT) is not None


def test_an_erased_contact_leaves_no_message_id_or_queue_behind(store: Any) -> None:
    written = opted_in()
    request, confirmation = messages(written[1])
    put(store, written)
    sent(store, request.key, provider_id="SM-1", at=NOW)
    # The confirmation is still pending when the contact is erased.
    store.erase(CONTACT, _erasure(store), expected_version=2)
    for key in (request.key, confirmation.key):
        assert store.message_status(key) is None
        assert store.delivery(key, "delivered", at=NOW) is None
    assert store.delivery("SM-1", "delivered", at=NOW) is None
    assert store.due(now=NOW) == []
    assert store.pending(contact=CONTACT) == []
    # The number comes back: its inbound ids ("m1" again) and its queue
    # start afresh.
    again = opted_in()
    put(store, again)
    assert store.pending(contact=CONTACT) == messages(again[1])
    assert store.due(now=NOW) == messages(again[1])[:1]


# ---------------------------------------------------------------------------
# purge_delivered


def test_a_purged_message_is_unknown_by_key_and_provider_id(store: Any) -> None:
    written = opted_in()
    request, confirmation = messages(written[1])
    put(store, written)
    sent(store, request.key, provider_id="SM-1", at=NOW)
    assert store.purge_delivered(NOW + LEASE) == 1
    assert store.message_status(request.key) is None
    assert store.delivery(request.key, "delivered", at=NOW) is None
    assert store.delivery("SM-1", "delivered", at=NOW) is None
    assert store.message_status(confirmation.key) == "pending"


def test_a_provider_id_shared_by_messages_is_purged_and_erased(store: Any) -> None:
    """A host whose provider gives no ids may pass the same one for every
    message: purging and erasing such messages still work."""
    put(store, opted_in(CONTACT))
    for message in store.pending():
        sent(store, message.key, provider_id="queued", at=NOW)
    assert store.purge_delivered(NOW + LEASE) == 2
    assert store.messages(CONTACT) == []
    put(store, opted_in(OTHER))
    for message in store.pending():
        sent(store, message.key, provider_id="queued")
    store.erase(OTHER, _erasure(store, OTHER), expected_version=2)
    assert store.get(OTHER) is None
    assert store.messages(OTHER) == []


@pytest.mark.parametrize(
    "store",
    [
        "memory",
        "sqlite",
    ],
    indirect=True,
)
def test_a_shared_provider_id_still_finds_the_remaining_message(store: Any) -> None:
    put(store, opted_in(CONTACT))
    (mine, _confirmation) = store.pending()
    sent(store, mine.key, provider_id="queued")
    put(store, opted_in(OTHER))
    (theirs, _their_confirmation) = store.pending(contact=OTHER)
    sent(store, theirs.key, provider_id="queued")
    store.erase(OTHER, _erasure(store, OTHER), expected_version=2)
    assert store.delivery("queued", "delivered", at=NOW) == mine
