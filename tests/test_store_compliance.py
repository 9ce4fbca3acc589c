"""The store contract, continued: keyset listings, restore, erasure and
retention (issue 12), on every store of ``STORE_KINDS``."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import attrs
import pytest

from optin_core import (
    ConsentLog,
    ConsentState,
    MessageKind,
    RecordError,
    StaleVersion,
    Store,
    decide,
    verify,
)
from optin_core._erase import Erasure, erase_log, suppression_key
from optin_core._personal import Redacted
from optin_core.stores._base import MessageRecord

from .service_helpers import STORE_KINDS, make_store
from .test_stores import (
    CONTACT,
    LEASE,
    NOW,
    OTHER,
    POLICY,
    check_log,
    deliver_all,
    inbound,
    opted_in,
    put,
    put_decision,
    step,
    stop_decision,
    texting,
    with_text,
)


@pytest.fixture(params=STORE_KINDS)
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Any]:
    s = make_store(request.param, tmp_path)
    yield s
    close = getattr(s, "close", None)
    if close is not None:
        close()


def test_the_protocol_names_the_new_methods(store: Any) -> None:
    assert isinstance(store, Store)
    for name in (
        "contacts",
        "restore",
        "erase",
        "suppress",
        "erasure",
        "erasures",
        "purge_delivered",
    ):
        assert callable(getattr(store, name))


# ---------------------------------------------------------------------------
# Keyset listings


def test_contacts_are_listed_in_keyset_pages(store: Any) -> None:
    contacts = [f"+1555000{n:04d}" for n in (7, 3, 11, 1, 5, 9, 2)]
    for contact in contacts:
        put(store, opted_in(contact))
    assert store.contacts() == sorted(contacts)
    pages, after = [], None
    while True:
        page = store.contacts(after=after, limit=3)
        pages.append(page)
        if len(page) < 3:
            break
        after = page[-1]
    assert [len(p) for p in pages] == [3, 3, 1]
    assert [c for p in pages for c in p] == sorted(contacts)
    # "after" need not be a stored contact, and a page past the end is empty.
    assert store.contacts(after="+15550000004", limit=2) == sorted(contacts)[3:5]
    assert store.contacts(after="+2", limit=5) == []
    assert store.contacts(limit=0) == []
    with pytest.raises(ValueError, match="limit"):
        store.contacts(limit=-1)
    with pytest.raises(TypeError, match="after"):
        store.contacts(after=5)


# ---------------------------------------------------------------------------
# Restore: a verified log moved between stores, verbatim


def _source_with_history(source: Any) -> tuple[ConsentLog, list[MessageRecord]]:
    """A contact with a text cancelled by a STOP, messages sent with provider
    ids and a delivery report, and the stop confirmation still pending."""
    texted, key = with_text(source)
    for message in source.pending(contact=CONTACT):
        assert message.key == key
    # The stop cancels the queued text; its confirmation stays pending.
    decision = stop_decision(source, texted)
    put_decision(source, decision, texted.version)
    head = source.get(CONTACT)
    events = source.log(CONTACT)
    first = events[0].sent[0].key
    source.delivery(first, "delivered", at=NOW + timedelta(minutes=1), error_code="0")
    return ConsentLog(head=head, events=tuple(events)), source.messages(CONTACT)


def test_a_restore_writes_the_log_head_and_outbox_verbatim(
    store: Any, tmp_path: Path
) -> None:
    source = make_store("memory", tmp_path)
    log, records = _source_with_history(source)
    statuses = [r.status for r in records]
    assert statuses == ["sent", "sent", "cancelled", "pending"]
    assert records[0].delivery == "delivered"
    store.restore(log.head, log.events, records)
    assert store.get(CONTACT) == log.head
    assert store.log(CONTACT) == list(log.events)
    assert check_log(store) == log.head
    assert store.messages(CONTACT) == records
    # The pending stop confirmation is delivered by the next flush...
    (pending,) = store.pending(contact=CONTACT)
    assert pending.kind is MessageKind.STOP_CONFIRMATION
    assert store.claim(pending.key, until=NOW + LEASE, now=NOW)
    # ...and the cancelled text never.
    assert store.message_status(records[2].message.key) == "cancelled"
    # The restored log takes new writes.
    decision = decide(log.head, inbound("START", "r9", 5), POLICY)
    put_decision(store, decision, log.head.version)
    assert check_log(store).state is ConsentState.OPTED_IN
    # A second restore of the contact is refused: it has a head now.
    with pytest.raises(StaleVersion):
        store.restore(log.head, log.events, records)


def test_a_restore_without_records_indexes_nothing(store: Any) -> None:
    head, events = opted_in()
    store.restore(head, events)
    assert store.get(CONTACT) == head
    assert store.messages(CONTACT) == []
    assert store.pending() == []


def test_a_restore_checks_its_log_and_records(store: Any, tmp_path: Path) -> None:
    head, events = opted_in()
    with pytest.raises(RecordError):
        store.restore(head, ())
    forged = attrs.evolve(events[1], to_state=ConsentState.STOPPED)
    with pytest.raises(RecordError):
        store.restore(head, (events[0], forged))
    stranger = MessageRecord(
        message=attrs.evolve(events[0].sent[0], key="f" * 32), status="sent"
    )
    with pytest.raises(RecordError, match="not a message of the log"):
        store.restore(head, events, [stranger])
    twice = MessageRecord(message=events[0].sent[0], status="sent")
    with pytest.raises(RecordError, match="listed twice"):
        store.restore(head, events, [twice, twice])
    with pytest.raises(TypeError):
        store.restore(head, events, ["not a record"])
    # Nothing was written by the refusals.
    assert store.get(CONTACT) is None
    assert store.log(CONTACT) == []


def test_a_restore_refuses_a_message_key_already_in_the_outbox(store: Any) -> None:
    head, events = opted_in()
    put(store, (head, events))
    keys = iter([m.key for e in events for m in e.sent])
    # Another contact's log, forged to reuse the first one's message keys
    # (a store checks links, not digests: it has no key).
    other_head, other_events = opted_in(OTHER)
    forged = tuple(
        attrs.evolve(e, sent=tuple(attrs.evolve(m, key=next(keys)) for m in e.sent))
        for e in other_events
    )
    records = [MessageRecord(message=m, status="sent") for e in forged for m in e.sent]
    with pytest.raises(RecordError, match="already in the outbox"):
        store.restore(other_head, forged, records)
    assert store.get(OTHER) is None
    assert store.log(OTHER) == []


# ---------------------------------------------------------------------------
# Erasure


def _erasure(store: Any, contact: str = CONTACT, **kw: Any) -> Erasure:
    head = store.get(contact)
    log = ConsentLog(head=head, events=tuple(store.log(contact)))
    erased = erase_log(
        log, store.messages(contact), erased_at=NOW, by="dpo", reason="art. 17"
    )
    return Erasure(key=suppression_key(contact), logs=(erased,), **kw)


def _stopped(store: Any, contact: str = CONTACT) -> None:
    written = opted_in(contact)
    put(store, written)
    deliver_all(store)
    decision = stop_decision(store, written[0])
    put_decision(store, decision, written[0].version)


def test_an_erase_removes_the_contact_and_keeps_the_redacted_log(store: Any) -> None:
    _stopped(store)
    _stopped(store, OTHER)
    erasure = _erasure(store)
    version = store.get(CONTACT).version
    store.erase(CONTACT, erasure, expected_version=version)
    assert store.get(CONTACT) is None
    assert store.log(CONTACT) == []
    assert store.messages(CONTACT) == []
    assert store.pending(contact=CONTACT) == []
    assert all(m.contact != CONTACT for m in store.pending())
    assert store.contacts() == [OTHER]
    found = store.erasure(erasure.key)
    assert found == erasure
    assert found.logs[0].log.contact == Redacted(erasure.key)
    # Decoded, the redacted log still verifies, digest for digest.
    found.verify()
    redacted = found.logs[0].log
    assert verify(Redacted(erasure.key), redacted.events) == redacted.head
    assert store.erasures() == [erasure]
    assert store.erasures(after=erasure.key) == []
    # The other contact is untouched.
    assert check_log(store, OTHER).state is ConsentState.STOPPED


def test_an_erase_is_compare_and_set(store: Any) -> None:
    _stopped(store)
    erasure = _erasure(store)
    version = store.get(CONTACT).version
    with pytest.raises(RecordError, match="version"):
        store.erase(CONTACT, erasure, expected_version=version - 1)
    # A head that moved on (the same version, another digest) is refused.
    moved = attrs.evolve(
        erasure,
        logs=(
            attrs.evolve(
                erasure.logs[0],
                log=attrs.evolve(
                    erasure.logs[0].log,
                    head=attrs.evolve(
                        erasure.logs[0].log.head, digest="sha256:" + "0" * 64
                    ),
                ),
            ),
        ),
    )
    with pytest.raises(StaleVersion):
        store.erase(CONTACT, moved, expected_version=version)
    with pytest.raises(StaleVersion):
        store.erase(OTHER, _erasure(store), expected_version=version)
    with pytest.raises(ValueError, match="expected_version"):
        store.erase(CONTACT, erasure, expected_version=0)
    assert check_log(store).state is ConsentState.STOPPED


def test_suppress_stores_an_erasure_once(store: Any) -> None:
    _stopped(store)
    erasure = _erasure(store)
    assert store.erasure(erasure.key) is None
    assert store.suppress(erasure) is True
    assert store.suppress(erasure) is False
    assert store.erasure(erasure.key) == erasure
    # Suppressing does not touch a live record of the same number.
    assert store.get(CONTACT) is not None


def test_erasures_are_listed_in_keyset_pages(store: Any) -> None:
    keys = []
    for n in range(5):
        contact = f"+1555111{n:04d}"
        _stopped(store, contact)
        erasure = _erasure(store, contact)
        store.erase(contact, erasure, expected_version=store.get(contact).version)
        keys.append(erasure.key)
    listed = [e.key for e in store.erasures()]
    assert listed == sorted(keys)
    first = store.erasures(limit=2)
    rest = store.erasures(after=first[-1].key, limit=10)
    assert [e.key for e in first + rest] == sorted(keys)
    with pytest.raises(ValueError, match="limit"):
        store.erasures(limit=-2)


# ---------------------------------------------------------------------------
# Retention


def test_purge_delivered_removes_old_sent_rows_never_events(store: Any) -> None:
    written = opted_in()
    put(store, written)
    sent = []
    for message in store.pending():
        assert store.claim(message.key, until=NOW + LEASE, now=NOW)
        store.mark_sent(message.key, at=NOW)
        sent.append(message.key)
    texted, events = step(written[0], texting())
    put(store, (texted, events))
    key = events[0].sent[0].key
    # The request and confirmation were sent at NOW; the text is pending.
    before = store.log(CONTACT)
    assert store.purge_delivered(NOW) == 0  # strictly older only
    assert store.purge_delivered(NOW + timedelta(seconds=1)) == len(sent) == 2
    assert [r.message.key for r in store.messages(CONTACT)] == [key]
    assert store.log(CONTACT) == before
    assert check_log(store) == texted
    # A pending message is never purged, nor a sent one without its time.
    assert store.purge_delivered(NOW + timedelta(days=999)) == 0
    assert store.pending(contact=CONTACT)[0].key == key
    assert store.claim(key, until=NOW + LEASE, now=NOW)
    store.mark_sent(key)
    assert store.purge_delivered(NOW + timedelta(days=999)) == 0
    with pytest.raises((TypeError, ValueError)):
        store.purge_delivered("yesterday")
