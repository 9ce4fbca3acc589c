"""The refusals every store shares (``optin_core.stores._base``), pinned
exactly, on MemoryStore and SQLiteStore.

A host tells a stale copy from a forged record, and a misuse from a bad
write, by the error's type and fields, and reads its message in its logs:

* ``put``'s argument checks (``prepare_write``): misuse is a ``TypeError``
  naming what was passed; events that do not chain to the head are a
  :class:`RecordError` naming the field, the index of the first bad event
  and the contact; one inbound message logged twice in a write is refused;
* a fork written on the right version, and a ``cancel`` of a message sent
  meanwhile, are :class:`StaleVersion` (decide again); a ``cancel`` of a
  message that is not pending, or a write reusing a message key, is a
  :class:`RecordError` (never retried);
* ``restore`` (``prepare_restore``): a whole log, records of its messages
  only, written as the rows ``put`` would have written;
* ``erase`` (``check_erasure``): a non-empty contact, a version ``>= 1``
  (a bool is not one), the erasure's log ending at that version;
* leases, timestamps and pages (``check_lease``, ``timestamp``,
  ``check_page``): aware datetimes only, each named in the error;
* ``release``'s retry schedule (``retry_time``): at once after two failures,
  then the backoff doubling per failure up to ``2**20`` times, a zero
  backoff allowed, a negative one refused.

Everything the rules depend on is built inside the tests (never at import
time), so that a mutated rule is the one that runs.
"""

from __future__ import annotations

import sqlite3
from datetime import datetime, timedelta, tzinfo
from pathlib import Path
from typing import Any

import attrs
import pytest

from optin_core import (
    Consent,
    ConsentLog,
    RecordError,
    RequestOptIn,
    StaleVersion,
    cancel_queued,
    decide,
)
from optin_core._erase import Erasure, erase_log, suppression_key
from optin_core._records import MessageFailed
from optin_core.stores import Lease, SQLiteStore
from optin_core.stores._base import MessageRecord

from .flows import at, rechained
from .service_helpers import (
    decided,
    local_store,  # noqa: F401 (the `store` fixture)
    snapshot,
)
from .test_stores import (
    CONTACT,
    LEASE,
    NOW,
    OTHER,
    POLICY,
    inbound,
    opted_in,
    put,
    put_decision,
    requested,
    status,
    step,
    steps,
    stop_decision,
    texting,
    with_text,
)

#: The last words of every RecordError's message.
ADVICE = "; restore it from its history or a backup, never by guessing"


def assert_record_error(
    err: RecordError,
    field: str,
    problem: str,
    *,
    contact: str = "",
    index: int | None = None,
) -> None:
    """Every field of ``err``, and its message built from them."""
    assert (err.field, err.problem, err.contact, err.index) == (
        field,
        problem,
        contact,
        index,
    )
    who = f" of {contact!r}" if contact else ""
    assert str(err) == f"consent record{who} is invalid at {field!r}: {problem}{ADVICE}"


def assert_stale(err: StaleVersion, contact: str, version: int, why: str) -> None:
    """A stale write whose version matched: expected == found, and why."""
    assert (err.contact, err.expected, err.found) == (contact, version, version)
    assert str(err) == (
        f"record of {contact!r} changed concurrently (expected version "
        f"{version}, found {version}; {why}); reload it and decide again"
    )


class NoOffset(tzinfo):
    """A tzinfo that does not know its offset: the datetime is naive."""

    def utcoffset(self, dt: datetime | None) -> timedelta | None:
        return None

    def dst(self, dt: datetime | None) -> timedelta | None:
        return None

    def tzname(self, dt: datetime | None) -> str | None:
        return None


# ---------------------------------------------------------------------------
# put: the arguments (prepare_write)


def test_put_names_what_it_was_given_instead_of_a_consent(store: Any) -> None:
    head, events = opted_in()
    with pytest.raises(TypeError) as info:
        store.put("a head", events, expected_version=0)
    assert str(info.value) == "consent must be a Consent, got str"
    with pytest.raises(TypeError) as info:
        store.put(head, "events", expected_version=0)
    # The message tells the host where the events come from.
    assert str(info.value) == (
        "events must be a sequence of AuditEvent (decision.events)"
    )
    with pytest.raises(TypeError) as info:
        store.put(head, [events[0], "not an event"], expected_version=0)
    assert str(info.value) == "events[1] is a str"
    assert store.get(CONTACT) is None


def test_put_refuses_a_head_that_is_not_its_events_count_ahead(store: Any) -> None:
    head, events = opted_in()
    assert head.version == 2
    with pytest.raises(RecordError) as info:
        store.put(head, events[:1], expected_version=0)
    assert_record_error(
        info.value,
        "version",
        "2 is not 0 plus the 1 events written",
        contact=CONTACT,
    )
    assert store.get(CONTACT) is None


@pytest.mark.parametrize("fault", ["prev", "version"])
def test_put_refuses_events_that_do_not_follow_each_other(
    store: Any, fault: str
) -> None:
    """The second event breaks the chain (its link, or its version) while
    keeping its digest: the head still names it, so only the chain check can
    tell, and it names the event's index."""
    head, (first, second) = opted_in()
    if fault == "prev":
        broken = attrs.evolve(second, prev=first.prev)
    else:
        broken = attrs.evolve(second, version=3)
    with pytest.raises(RecordError) as info:
        store.put(head, (first, broken), expected_version=0)
    assert_record_error(
        info.value,
        "log[1]",
        "the events do not follow each other (version and prev)",
        contact=CONTACT,
        index=1,
    )
    assert store.get(CONTACT) is None
    assert store.log(CONTACT) == []


def test_put_refuses_a_head_that_is_not_the_last_events(store: Any) -> None:
    head, events = opted_in()
    other = attrs.evolve(head, digest="sha256:" + "0" * 64)
    with pytest.raises(RecordError) as info:
        store.put(other, events, expected_version=0)
    assert_record_error(
        info.value, "digest", "the head is not the last event's", contact=CONTACT
    )
    assert store.get(CONTACT) is None


def test_put_refuses_one_inbound_message_logged_twice(store: Any) -> None:
    """The same inbound message id twice in one write (decide would call the
    second a duplicate: here forged, its chain recomputed) is refused before
    the store's index, which sees only the events stored before."""
    head, events = steps(
        Consent.new(CONTACT),
        RequestOptIn(at=NOW),
        inbound("yes", "m1"),
        inbound("help", "m2", 1),
    )
    forged = rechained(CONTACT, (*events[:2], attrs.evolve(events[2], message_id="m1")))
    with pytest.raises(RecordError) as info:
        put(store, (attrs.evolve(head, digest=forged[-1].digest), tuple(forged)))
    assert_record_error(
        info.value,
        "message_id",
        "one inbound message logged twice",
        contact=CONTACT,
    )
    assert store.get(CONTACT) is None


# ---------------------------------------------------------------------------
# put: forks, cancellations, reused keys


def test_a_fork_on_the_stored_version_is_stale_and_says_why(store: Any) -> None:
    base, _ = written = opted_in()
    put(store, written)
    mine = step(base, texting("mine"))
    theirs = step(base, texting("theirs"))
    put(store, mine)
    before = snapshot(store, [CONTACT])
    theirs_next = step(theirs[0], texting("and more"))
    with pytest.raises(StaleVersion) as info:
        put(store, theirs_next)
    assert_stale(
        info.value,
        CONTACT,
        3,
        "the write does not extend the stored log (a stale or forked copy)",
    )
    assert snapshot(store, [CONTACT]) == before


def test_a_cancel_of_a_message_sent_meanwhile_is_stale_and_names_it(
    store: Any,
) -> None:
    texted, key = with_text(store)
    decision = stop_decision(store, texted)
    assert store.claim(key, until=NOW + LEASE, now=NOW)
    store.mark_sent(key)
    with pytest.raises(StaleVersion) as info:
        put_decision(store, decision, texted.version)
    assert_stale(
        info.value,
        CONTACT,
        texted.version,
        f"message {key} was sent before the stop was saved",
    )
    assert store.get(CONTACT) == texted


def test_a_cancel_of_a_message_never_queued_is_a_record_error(store: Any) -> None:
    texted, key = with_text(store)
    (mine,) = store.pending(contact=CONTACT)
    stopped = decide(texted, inbound("STOP", "s1", 1), POLICY)
    forged = cancel_queued(
        stopped, [mine, attrs.evolve(mine, key="no-such-message")], POLICY
    )
    with pytest.raises(RecordError) as info:
        put_decision(store, forged, texted.version)
    assert_record_error(
        info.value,
        "cancelled",
        "'no-such-message' is not a pending message of this contact",
        contact=CONTACT,
    )
    assert status(store, key) == "pending"


@pytest.mark.parametrize("whose", ["unknown", "another contact's, sent"])
def test_a_give_up_of_a_message_not_the_contacts_is_a_record_error(
    store: Any, whose: str
) -> None:
    # decide() gives up any key the host names; the store knows whose it is.
    put(store, requested())
    (mine,) = store.pending()
    key = "no-such-message"
    if whose != "unknown":
        put(store, requested(OTHER))
        (theirs,) = store.pending(contact=OTHER)
        assert store.claim(theirs.key, until=NOW + LEASE, now=NOW)
        store.mark_sent(theirs.key)
        key = theirs.key
    head = store.get(CONTACT)
    failed = MessageFailed(at=at(1), key=key, attempts=3, error="boom")
    with pytest.raises(RecordError) as info:
        put_decision(store, decide(head, failed, POLICY), head.version)
    assert_record_error(
        info.value,
        "cancelled",
        f"{key!r} is not a pending message of this contact",
        contact=CONTACT,
    )
    assert store.get(CONTACT) == head
    assert status(store, mine.key) == "pending"


def test_a_restore_reusing_a_message_key_names_the_contact(store: Any) -> None:
    head, events = opted_in()
    put(store, (head, events))
    keys = iter([m.key for e in events for m in e.sent])
    other_head, other_events = opted_in(OTHER)
    forged = tuple(
        attrs.evolve(e, sent=tuple(attrs.evolve(m, key=next(keys)) for m in e.sent))
        for e in other_events
    )
    records = [MessageRecord(message=m, status="sent") for e in forged for m in e.sent]
    with pytest.raises(RecordError) as info:
        store.restore(other_head, forged, records)
    assert_record_error(
        info.value,
        "sent",
        "a message key of the write is already in the outbox (a replayed or "
        "forged write)",
        contact=OTHER,
    )
    assert store.get(OTHER) is None


# ---------------------------------------------------------------------------
# restore (prepare_restore)


def test_a_restore_of_no_events_is_refused(store: Any) -> None:
    head, _ = opted_in()
    with pytest.raises(RecordError) as info:
        store.restore(head, ())
    # No contact named: the refusal is of the call, before any record.
    assert_record_error(info.value, "log", "a restore writes a whole, non-empty log")
    assert store.get(CONTACT) is None


def test_a_restore_names_the_record_it_refuses(store: Any) -> None:
    head, events = opted_in()
    with pytest.raises(TypeError) as misuse:
        store.restore(head, events, ["not a record"])
    assert str(misuse.value) == "messages[0] is a str"
    request = events[0].sent[0]
    stranger = MessageRecord(message=attrs.evolve(request, key="f" * 32), status="sent")
    with pytest.raises(RecordError) as info:
        store.restore(head, events, [stranger])
    assert_record_error(
        info.value,
        "messages[0]",
        f"{'f' * 32!r} is not a message of the log (or is listed twice)",
        contact=CONTACT,
    )
    twice = MessageRecord(message=request, status="sent")
    with pytest.raises(RecordError) as info:
        store.restore(head, events, [twice, twice])
    assert_record_error(
        info.value,
        "messages[1]",
        f"{request.key!r} is not a message of the log (or is listed twice)",
        contact=CONTACT,
    )
    assert store.get(CONTACT) is None


def test_a_sqlite_restore_writes_the_outbox_rows_put_writes(tmp_path: Path) -> None:
    """A restored outbox row keeps the version and position of the event
    that decided its message, as the put that wrote it first did."""
    head, events = opted_in()
    written, restored = tmp_path / "written.db", tmp_path / "restored.db"
    with SQLiteStore(written) as s:
        put(s, (head, events))
        records = s.messages(CONTACT)
    with SQLiteStore(restored) as s:
        s.restore(head, events, records)
    rows = (
        "SELECT key, contact, version, position, kind, status FROM outbox ORDER BY seq"
    )
    expected = [
        (m.key, CONTACT, version, position, m.kind.value, "pending")
        for version, position, m in decided(events)
    ]
    # The request (event 1) and the confirmation (event 2), each first.
    assert [(r[2], r[3]) for r in expected] == [(1, 0), (2, 0)]
    for path in (written, restored):
        conn = sqlite3.connect(path)
        try:
            assert conn.execute(rows).fetchall() == expected
        finally:
            conn.close()


# ---------------------------------------------------------------------------
# erase (check_erasure)


def erasure_of(store: Any, contact: str = CONTACT) -> Erasure:
    head = store.get(contact)
    log = ConsentLog(head=head, events=tuple(store.log(contact)))
    erased = erase_log(
        log, store.messages(contact), erased_at=NOW, by="dpo", reason="art. 17"
    )
    return Erasure(key=suppression_key(contact), logs=(erased,))


def test_an_erase_at_version_one_is_allowed(store: Any) -> None:
    put(store, requested())
    assert store.get(CONTACT).version == 1
    erasure = erasure_of(store)
    store.erase(CONTACT, erasure, expected_version=1)
    assert store.get(CONTACT) is None
    assert store.erasure(erasure.key) == erasure


def test_an_erase_checks_its_arguments(store: Any) -> None:
    put(store, requested())
    erasure = erasure_of(store)
    before = snapshot(store, [CONTACT])
    with pytest.raises(TypeError) as info:
        store.erase("", erasure, expected_version=1)
    assert str(info.value) == "contact must be a non-empty str"
    # True == 1, but a bool is not a version.
    with pytest.raises(ValueError) as value:
        store.erase(CONTACT, erasure, expected_version=True)
    assert str(value.value) == "expected_version must be an int >= 1, got True"
    with pytest.raises(ValueError) as value:
        store.erase(CONTACT, erasure, expected_version=0)
    assert str(value.value) == "expected_version must be an int >= 1, got 0"
    with pytest.raises(RecordError) as refused:
        store.erase(CONTACT, erasure, expected_version=2)
    assert_record_error(
        refused.value,
        "version",
        "the erasure's log ends at version 1, not 2",
        contact=CONTACT,
    )
    assert snapshot(store, [CONTACT]) == before
    assert store.erasure(erasure.key) is None


# ---------------------------------------------------------------------------
# Leases, timestamps, pages


def test_a_lease_names_its_naive_end(store: Any) -> None:
    written = opted_in()
    naive = NOW.replace(tzinfo=None)
    with pytest.raises(ValueError) as info:
        put(store, written, lease=Lease(naive + LEASE, NOW))
    assert str(info.value) == "lease.until must be timezone-aware"
    with pytest.raises(ValueError) as info:
        put(store, written, lease=Lease(NOW + LEASE, naive))
    assert str(info.value) == "lease.now must be timezone-aware"
    assert store.get(CONTACT) is None


def test_a_timestamp_must_be_an_aware_datetime(store: Any) -> None:
    put(store, requested())
    (request,) = store.pending()
    with pytest.raises(TypeError) as info:
        store.claim(request.key, until="soon", now=NOW)
    assert str(info.value) == "until must be a datetime, got str"
    # A tzinfo that gives no offset does not make a datetime aware.
    unknown = datetime(2026, 3, 2, 9, 32, tzinfo=NoOffset())
    with pytest.raises(ValueError) as value:
        store.claim(request.key, until=unknown, now=NOW)
    assert str(value.value) == "until must be timezone-aware"
    assert store.claim(request.key, until=NOW + LEASE, now=NOW)


def test_a_page_names_what_it_was_given_after(store: Any) -> None:
    for listing in (store.contacts, store.erasures):
        with pytest.raises(TypeError) as info:
            listing(after=5)
        assert str(info.value) == "after must be a str or None, got int"


# ---------------------------------------------------------------------------
# release: the retry schedule (retry_time)


def failed_text(store: Any) -> str:
    """The key of a pending message (a request, never sent)."""
    put(store, requested())
    (request,) = store.pending()
    return str(request.key)


def next_attempt(store: Any, key: str) -> datetime | None:
    (record,) = [r for r in store.messages(CONTACT) if r.message.key == key]
    result: datetime | None = record.next_attempt_at
    return result


def test_a_release_without_both_now_and_backoff_retries_at_once(store: Any) -> None:
    key = failed_text(store)
    for attempt in range(1, 5):
        assert store.release(key, error="down", now=NOW) == attempt * 2 - 1
        assert store.release(key, error="down", backoff=LEASE) == attempt * 2
        assert next_attempt(store, key) is None


def test_a_release_checks_now_and_backoff(store: Any) -> None:
    key = failed_text(store)
    with pytest.raises(ValueError) as info:
        store.release(key, now=NOW.replace(tzinfo=None), backoff=LEASE)
    assert str(info.value) == "now must be timezone-aware"
    negative = timedelta(seconds=-1)
    with pytest.raises(ValueError) as info:
        store.release(key, now=NOW, backoff=negative)
    assert str(info.value) == f"backoff must be a timedelta >= 0, got {negative!r}"
    with pytest.raises(ValueError) as info:
        store.release(key, now=NOW, backoff=5)
    assert str(info.value) == "backoff must be a timedelta >= 0, got 5"
    # Nothing was counted by the refusals.
    assert store.release(key, now=NOW, backoff=timedelta(0)) == 1


def test_a_zero_backoff_retries_at_once_after_every_failure(store: Any) -> None:
    key = failed_text(store)
    for attempt in range(1, 5):
        assert store.release(key, now=NOW, backoff=timedelta(0)) == attempt
        assert next_attempt(store, key) == (NOW if attempt >= 3 else None)


def test_the_backoff_doubles_up_to_two_to_the_twentieth(store: Any) -> None:
    """A millisecond backoff stays under MAX_RETRY_WAIT (6 h) however many
    failures: the doubling itself stops after 2**20 (about 17.5 minutes)."""
    key = failed_text(store)
    backoff = timedelta(milliseconds=1)
    waits = []
    for attempt in range(1, 26):
        assert store.release(key, now=NOW, backoff=backoff) == attempt
        found = next_attempt(store, key)
        waits.append(None if found is None else found - NOW)
    assert waits[:2] == [None, None]
    assert waits[2:] == [backoff * 2 ** min(n, 20) for n in range(23)]
    assert waits[-1] == timedelta(milliseconds=2**20)
