"""Pinned rules of the store operations around the outbox, the listings and
retention, on MemoryStore and SQLiteStore alike where the rule is the
store contract, and SQLiteStore's own where only it can meet the case
(rows edited by hand, two handles on one file, its fsync protocol).

The rules pinned, exactly (values, order, limits on both sides, messages):

* every time argument is checked, and a bad one named in the error
  (``claim``'s ``until``/``now``, ``due``'s ``now``, ``mark_sent``'s and
  ``delivery``'s ``at``, ``purge_delivered``'s ``older_than``, ``release``'s
  ``now``/``backoff`` before anything is looked up);
* ``due``, ``dead_letters`` and ``erasures`` return at most ``limit`` items,
  oldest (or lowest key) first, and refuse a bad ``limit`` or ``after``;
* ``release`` counts the failed attempts of a message not sent (``0`` for an
  unknown or a sent message, left alone);
* ``delivery`` stores the report as given (no error code is ``None``);
* a refused cancellation or give-up names the message, and a message sent
  meanwhile is a ``StaleVersion`` at the write's expected version;
* a stop confirmation is claimed in the stop's own write past earlier
  messages that wait for a retry;
* a write is ``StaleVersion`` with the stored version whenever the stored
  head is not the one its events extend, whatever the writer's cache holds;
* the namespace is a kept, random 128-bit hex id;
* SQLiteStore: an unreadable row is a ``RecordError`` naming its contact
  (its key for an erasure), or, met by a claim, is quarantined; a reused key
  names the contact; the reference protocol (``_one_fsync = False``) fsyncs
  the sent mark.

Each store is built inside its test (the rules must meet the code under
test, never objects built at import time).
"""

from __future__ import annotations

import re
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import attrs
import pytest

from optin_core import (
    Attest,
    Consent,
    MessageKind,
    Outgoing,
    RecordError,
    RequestOptIn,
    StaleVersion,
    decide,
    event_digest,
)
from optin_core._records import MessageFailed
from optin_core.stores import SQLiteStore
from optin_core.stores._base import MessageRecord

from .flows import at
from .service_helpers import (
    local_store,  # noqa: F401 (the `store` fixture)
    make_store,
    snapshot,
)
from .test_store_compliance import _erasure, _stopped
from .test_stores import (
    CONTACT,
    LEASE,
    NOW,
    OTHER,
    POLICY,
    L,
    _raw,
    deliver_all,
    inbound,
    messages,
    opted_in,
    put,
    put_decision,
    requested,
    step,
    steps,
    stop_decision,
    synchronous_while_marking,
    texting,
    with_text,
)

THIRD = "+15550003"
#: A wall-clock time without a zone: every store refuses it, by name.
NAIVE = datetime(2026, 3, 2, 9, 30)


def _sent(store: Any, key: str) -> None:
    assert store.claim(key, until=NOW + LEASE, now=NOW)
    store.mark_sent(key)


def _record(store: Any, contact: str, key: str) -> MessageRecord:
    (found,) = [r for r in store.messages(contact) if r.message.key == key]
    assert isinstance(found, MessageRecord)
    return found


def _dead_letter(store: Any, contact: str) -> Outgoing:
    """Give up on ``contact``'s only pending message (a dead letter)."""
    (message,) = store.pending(contact=contact)
    head = store.get(contact)
    failed = MessageFailed(at=at(1), key=message.key, attempts=3, error="boom")
    decision = decide(head, failed, POLICY)
    put_decision(store, decision, head.version)
    return message


# ---------------------------------------------------------------------------
# Time arguments: checked, and named in the error


def test_claim_names_its_bad_time_argument(store: Any) -> None:
    put(store, requested())
    (message,) = store.pending()
    key = message.key
    # until first, then now: the error names the one at fault.
    with pytest.raises(ValueError, match=r"^until must be timezone-aware$"):
        store.claim(key, until=NAIVE, now=NOW)
    with pytest.raises(TypeError, match=r"^until must be a datetime, got str$"):
        store.claim(key, until="soon", now=NOW)
    with pytest.raises(ValueError, match=r"^now must be timezone-aware$"):
        store.claim(key, until=NOW + LEASE, now=NAIVE)
    with pytest.raises(TypeError, match=r"^now must be a datetime, got NoneType$"):
        store.claim(key, until=NOW + LEASE, now=None)
    # Nothing was leased by the refused calls.
    assert store.claim(key, until=NOW + LEASE, now=NOW)


def test_due_checks_limit_and_names_a_bad_now(store: Any) -> None:
    put(store, requested())
    for bad in (-1, True, 1.5):
        with pytest.raises(
            ValueError,
            match=re.escape(f"limit must be None or an int >= 0, got {bad!r}"),
        ):
            store.due(now=NOW, limit=bad)
    with pytest.raises(ValueError, match=r"^now must be timezone-aware$"):
        store.due(now=NAIVE)
    with pytest.raises(TypeError, match=r"^now must be a datetime, got str$"):
        store.due(now="now")


def test_mark_sent_names_a_bad_at_and_marks_nothing(store: Any) -> None:
    put(store, requested())
    (message,) = store.pending()
    assert store.claim(message.key, until=NOW + LEASE, now=NOW)
    with pytest.raises(ValueError, match=r"^at must be timezone-aware$"):
        store.mark_sent(message.key, at=NAIVE)
    with pytest.raises(TypeError, match=r"^at must be a datetime, got str$"):
        store.mark_sent(message.key, at="today")
    assert store.message_status(message.key) == "pending"
    store.mark_sent(message.key, at=at(3))
    assert _record(store, CONTACT, message.key).sent_at == at(3)


def test_purge_delivered_names_a_bad_cutoff(store: Any) -> None:
    put(store, requested())
    (message,) = store.pending()
    assert store.claim(message.key, until=NOW + LEASE, now=NOW)
    store.mark_sent(message.key, at=NOW)
    with pytest.raises(ValueError, match=r"^older_than must be timezone-aware$"):
        store.purge_delivered(NAIVE)
    with pytest.raises(TypeError, match=r"^older_than must be a datetime, got str$"):
        store.purge_delivered("yesterday")
    assert store.message_status(message.key) == "sent"


# ---------------------------------------------------------------------------
# release: the count of failed attempts


def test_release_counts_failures_of_unsent_messages_only(store: Any) -> None:
    assert store.release("nope") == 0  # unknown: nothing to count
    put(store, requested())
    (message,) = store.pending()
    key = message.key
    assert store.claim(key, until=NOW + LEASE, now=NOW)
    assert store.release(key, error="e1") == 1
    assert store.release(key, error="e2") == 2
    backoff = timedelta(minutes=1)
    # The third failure waits backoff * 2 ** 0 from now.
    assert store.release(key, error="e3", now=NOW, backoff=backoff) == 3
    record = _record(store, CONTACT, key)
    assert (record.attempts, record.last_error) == (3, "e3")
    assert record.next_attempt_at == NOW + backoff
    assert store.claim(key, until=at(3), now=NOW + backoff)
    store.mark_sent(key, at=at(2))
    # A sent message is left alone: no attempt counted, nothing changed.
    assert store.release(key, error="late", now=NOW, backoff=backoff) == 0
    record = _record(store, CONTACT, key)
    assert (record.status, record.attempts, record.last_error) == ("sent", 3, "e3")
    assert record.next_attempt_at == NOW + backoff


@pytest.mark.parametrize("known", [False, True])
def test_release_checks_now_and_backoff_before_anything(
    store: Any, known: bool
) -> None:
    """The retry arguments are refused before the message is looked up:
    an unknown key is no excuse for a bad argument."""
    put(store, requested())
    (message,) = store.pending()
    key = message.key if known else "nope"
    minute = timedelta(minutes=1)
    with pytest.raises(ValueError, match=r"^now must be timezone-aware$"):
        store.release(key, now=NAIVE, backoff=minute)
    negative = timedelta(seconds=-1)
    with pytest.raises(
        ValueError,
        match=re.escape(f"backoff must be a timedelta >= 0, got {negative!r}"),
    ):
        store.release(key, now=NOW, backoff=negative)
    assert _record(store, CONTACT, message.key).attempts == 0


# ---------------------------------------------------------------------------
# delivery reports


def test_delivery_stores_the_report_as_given(store: Any) -> None:
    put(store, requested())
    (message,) = store.pending()
    assert store.claim(message.key, until=NOW + LEASE, now=NOW)
    store.mark_sent(message.key, provider_id="SM1", at=NOW)
    assert store.delivery("SM1", "delivered", at=at(1)) == message
    record = _record(store, CONTACT, message.key)
    # No error code given: none stored (not the text "None").
    assert (record.delivery, record.delivery_at, record.error_code) == (
        "delivered",
        at(1),
        None,
    )
    assert store.delivery(message.key, "undelivered", at=at(2), error_code=30003)
    record = _record(store, CONTACT, message.key)
    assert (record.delivery, record.delivery_at, record.error_code) == (
        "undelivered",
        at(2),
        "30003",
    )
    with pytest.raises(ValueError, match=r"^at must be timezone-aware$"):
        store.delivery(message.key, "failed", at=NAIVE)
    with pytest.raises(TypeError, match=r"^at must be a datetime, got str$"):
        store.delivery(message.key, "failed", at="later")
    assert _record(store, CONTACT, message.key).delivery == "undelivered"
    assert store.delivery("SM-nobody", "delivered", at=at(3)) is None


def test_delivery_checks_at_before_looking_the_message_up(store: Any) -> None:
    with pytest.raises(ValueError, match=r"^at must be timezone-aware$"):
        store.delivery("SM-nobody", "delivered", at=NAIVE)


# ---------------------------------------------------------------------------
# Listings: at most `limit`, oldest first


def test_due_returns_at_most_limit_heads_oldest_first(store: Any) -> None:
    for contact in (CONTACT, OTHER, THIRD):
        put(store, requested(contact))
    first, second, third = store.pending()
    assert store.due(now=NOW) == [first, second, third]
    assert store.due(now=NOW, limit=1) == [first]
    assert store.due(now=NOW, limit=2) == [first, second]
    assert store.due(now=NOW, limit=3) == [first, second, third]
    assert store.due(now=NOW, limit=4) == [first, second, third]


def test_dead_letters_are_listed_oldest_first_up_to_limit(store: Any) -> None:
    for contact in (CONTACT, OTHER, THIRD):
        put(store, requested(contact))
    letters = [_dead_letter(store, contact) for contact in (OTHER, CONTACT)]
    expected = [MessageRecord(message=m, status="failed") for m in letters]
    # Oldest message first (OTHER's was queued after CONTACT's).
    expected.reverse()
    assert store.dead_letters() == expected
    assert store.dead_letters(limit=1) == expected[:1]
    assert store.dead_letters(limit=2) == expected
    assert store.dead_letters(limit=3) == expected
    assert store.dead_letters(limit=0) == []
    for bad in (-1, True):
        with pytest.raises(
            ValueError,
            match=re.escape(f"limit must be None or an int >= 0, got {bad!r}"),
        ):
            store.dead_letters(limit=bad)


def test_erasures_are_pages_of_at_most_limit_in_key_order(store: Any) -> None:
    erasures = []
    for contact in (CONTACT, OTHER, THIRD):
        _stopped(store, contact)
        erasures.append(_erasure(store, contact))
        assert store.suppress(erasures[-1]) is True
    erasures.sort(key=lambda e: e.key)
    assert store.erasures() == erasures
    assert store.erasures(limit=2) == erasures[:2]
    assert store.erasures(limit=1) == erasures[:1]
    assert store.erasures(limit=0) == []
    assert store.erasures(after=erasures[0].key, limit=1) == erasures[1:2]
    assert store.erasures(after=erasures[0].key) == erasures[1:]
    with pytest.raises(TypeError, match=r"^after must be a str or None, got int$"):
        store.erasures(after=5)
    with pytest.raises(ValueError, match=re.escape("got -1")):
        store.erasures(limit=-1)


# ---------------------------------------------------------------------------
# Cancellations and give-ups refused: the message named, the version kept


def test_a_dead_letter_of_a_message_sent_meanwhile_is_stale_at_the_version(
    store: Any,
) -> None:
    put(store, requested())
    (message,) = store.pending()
    head = store.get(CONTACT)
    failed = MessageFailed(at=at(1), key=message.key, attempts=3, error="boom")
    decision = decide(head, failed, POLICY)
    _sent(store, message.key)  # another worker's send went through
    before = snapshot(store, [CONTACT])
    with pytest.raises(StaleVersion) as info:
        put_decision(store, decision, head.version)
    assert (info.value.expected, info.value.found) == (head.version, head.version)
    assert f"message {message.key} was sent" in str(info.value)
    assert snapshot(store, [CONTACT]) == before
    assert store.dead_letters() == []


# ---------------------------------------------------------------------------
# Claims in the write


def test_a_stop_claims_its_confirmation_past_answers_waiting_for_a_retry(
    store: Any,
) -> None:
    """Two HELP answers (kept by a stop) both wait for a retry: the stop's
    write with a lease claims its confirmation, queued behind them."""
    written = opted_in()
    put(store, written)
    deliver_all(store)
    helped = step(written[0], inbound("help", "h1", 1))
    put(store, helped)
    helped = step(helped[0], inbound("help", "h2", 1))
    put(store, helped)
    answers = store.pending(contact=CONTACT)
    assert [m.kind for m in answers] == [MessageKind.HELP] * 2
    for answer in answers:
        for _ in range(3):
            store.release(answer.key, now=NOW, backoff=timedelta(hours=1))
    decision = stop_decision(store, helped[0])
    (confirmation,) = decision.outgoing
    assert confirmation.kind is MessageKind.STOP_CONFIRMATION
    assert put_decision(store, decision, helped[0].version, lease=L) == confirmation
    assert store.claimed_version(confirmation.key) == decision.consent.version


# ---------------------------------------------------------------------------
# Extend only: the stored head decides, never a cached one


def _forged_at_an_older_version(head: Consent) -> tuple[Consent, Any]:
    """A write claiming to extend ``head``'s digest at version
    ``head.version - 1``: its one event carries ``head``'s digest as
    ``prev`` but a version number one lower (chain and head resealed)."""
    new, (event,) = step(head, texting("forged", 5))
    event = attrs.evolve(event, version=head.version, digest="")
    event = attrs.evolve(event, digest=event_digest(head.contact, event))
    return attrs.evolve(new, version=head.version, digest=event.digest), (event,)


def test_a_write_at_an_older_version_is_stale_even_with_the_right_prev(
    store: Any,
) -> None:
    head, _key = with_text(store)  # version 3, just written (SQLite caches it)
    forged, events = _forged_at_an_older_version(head)
    assert events[0].prev == head.digest
    before = snapshot(store, [CONTACT])
    with pytest.raises(StaleVersion) as info:
        store.put(forged, events, expected_version=head.version - 1)
    assert (info.value.contact, info.value.expected, info.value.found) == (
        CONTACT,
        head.version - 1,
        head.version,
    )
    assert snapshot(store, [CONTACT]) == before


def test_sqlite_a_fork_from_a_handle_behind_reports_the_stored_version(
    tmp_path: Path,
) -> None:
    """A handle caches the head at version 2; another moves it to 3; the
    first then writes a fork of version 2 (another chain): the refusal
    reports the version stored, 3."""
    path = tmp_path / "c.db"
    with SQLiteStore(path) as s, SQLiteStore(path) as other:
        base = opted_in()
        put(s, base)
        assert s.get(CONTACT) is base[0]  # cached at version 2
        put(other, step(base[0], texting("theirs")))
        # Another chain to version 2 (a request and YES at other times).
        fork_base = steps(
            Consent.new(CONTACT), RequestOptIn(at=at(5)), inbound("yes", "n1", 5)
        )[0]
        assert fork_base.version == 2
        assert fork_base.digest != base[0].digest
        fork = step(fork_base, texting("mine", 3))
        before = snapshot(other, [CONTACT])
        with pytest.raises(StaleVersion) as info:
            put(s, fork)
        assert (info.value.expected, info.value.found) == (2, 3)
        assert snapshot(other, [CONTACT]) == before


# ---------------------------------------------------------------------------
# The namespace


def test_namespace_is_a_kept_random_128_bit_hex_id(store: Any, tmp_path: Path) -> None:
    namespace = store.namespace()
    assert re.fullmatch(r"[0-9a-f]{32}", namespace)
    assert store.namespace() == namespace
    other = make_store("memory", tmp_path)
    assert other.namespace() != namespace


def test_sqlite_namespace_is_kept_by_the_file(tmp_path: Path) -> None:
    with SQLiteStore(tmp_path / "a.db") as s:
        namespace = s.namespace()
    assert re.fullmatch(r"[0-9a-f]{32}", namespace)
    with SQLiteStore(tmp_path / "a.db") as s:
        assert s.namespace() == namespace
    with SQLiteStore(tmp_path / "b.db") as s:
        assert s.namespace() != namespace


# ---------------------------------------------------------------------------
# SQLiteStore: rows that cannot be read back


def test_sqlite_an_unreadable_outbox_row_names_its_contact(tmp_path: Path) -> None:
    path = tmp_path / "c.db"
    with SQLiteStore(path) as s:
        put(s, requested())
        put(s, requested(OTHER))
        (sent, waiting) = s.pending()
        _sent(s, sent.key)
        _dead_letter(s, OTHER)
    _raw(path, "UPDATE outbox SET data = 'oops'")
    with SQLiteStore(path) as s:
        with pytest.raises(RecordError) as info:
            s.messages(CONTACT)
        assert (info.value.contact, info.value.field) == (CONTACT, "outgoing")
        with pytest.raises(RecordError) as info:
            s.dead_letters()
        assert (info.value.contact, info.value.field) == (OTHER, "outgoing")
        with pytest.raises(RecordError) as info:
            s.delivery(sent.key, "delivered", at=at(1))
        assert (info.value.contact, info.value.field) == (CONTACT, "outgoing")
    assert waiting.contact == OTHER


def test_sqlite_an_unreadable_erasure_row_names_its_key(tmp_path: Path) -> None:
    path = tmp_path / "c.db"
    with SQLiteStore(path) as s:
        _stopped(s)
        erasure = _erasure(s)
        assert s.suppress(erasure) is True
    _raw(path, "UPDATE erasures SET data = 'oops'")
    with SQLiteStore(path) as s:
        with pytest.raises(RecordError) as info:
            s.erasures()
        assert (info.value.contact, info.value.field) == (erasure.key, "erasure")
        with pytest.raises(RecordError) as info:
            s.erasure(erasure.key)
        assert (info.value.contact, info.value.field) == (erasure.key, "erasure")


def _texted_with_garbage(path: Path) -> tuple[Consent, str]:
    """An opted-in contact whose one queued text cannot be read back."""
    with SQLiteStore(path) as s:
        head, key = with_text(s)
    _raw(path, "UPDATE outbox SET data = '{garbage' WHERE key = ?", key)
    return head, key


def test_sqlite_a_put_with_lease_quarantines_an_unreadable_head(
    tmp_path: Path,
) -> None:
    """Met by the claim of a write, the unreadable message is set aside
    (status ``quarantined``, out of the queue) and the write commits."""
    path = tmp_path / "c.db"
    head, key = _texted_with_garbage(path)
    attested = step(
        head, Attest(method="signed_form", at=at(1), by="agent", evidence="#42")
    )
    assert messages(attested[1]) == []
    with SQLiteStore(path) as s:
        assert put(s, attested, lease=L) is None
        assert s.message_status(key) == "quarantined"
        assert s.pending() == []
        assert s.due(now=NOW) == []
        assert s.get(CONTACT) == attested[0]


def test_sqlite_after_quarantining_the_head_the_write_claims_the_next(
    tmp_path: Path,
) -> None:
    path = tmp_path / "c.db"
    head, key = _texted_with_garbage(path)
    helped = step(head, inbound("help", "h1", 1))
    (answer,) = messages(helped[1])
    with SQLiteStore(path) as s:
        claimed = put(s, helped, lease=L)
        assert s.message_status(key) == "quarantined"
        assert claimed == answer


def test_sqlite_a_reused_message_key_names_the_contact(tmp_path: Path) -> None:
    path = tmp_path / "c.db"
    first = requested()
    (request,) = messages(first[1])
    with SQLiteStore(path) as s:
        put(s, first)
        _sent(s, request.key)
    # The head and log gone by hand, the outbox row kept: a replay of the
    # first write meets its own message key.
    _raw(path, "DELETE FROM consents")
    _raw(path, "DELETE FROM events")
    with SQLiteStore(path) as s:
        with pytest.raises(RecordError) as info:
            put(s, first, lease=L)
        assert (info.value.contact, info.value.field) == (CONTACT, "sent")
        assert s.get(CONTACT) is None


# ---------------------------------------------------------------------------
# SQLiteStore: the reference store's durable mark (no "protocol" in the
# test names: mutmut deselects those, pyproject.toml)


class _ReferenceStore(SQLiteStore):
    """The 0.2.0 protocol (bench/cases.py's reference): the mark fsynced."""

    _one_fsync = False


def test_sqlite_the_reference_store_commits_the_mark_at_full(
    tmp_path: Path,
) -> None:
    with _ReferenceStore(tmp_path / "c.db", synchronous="FULL") as s:
        first = requested()
        (request,) = messages(first[1])
        put(s, first)
        assert s.claim(request.key, until=NOW + LEASE, now=NOW)
        marked, seen = synchronous_while_marking(s, lambda: s.mark_sent(request.key))
        assert marked is None
        assert seen == [2]  # FULL: the mark has its own fsync
        assert s.message_status(request.key) == "sent"
