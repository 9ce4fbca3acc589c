"""The canonical encoding: the fast writer and the definition agree."""

from __future__ import annotations

import json
from typing import Any

import attrs
from hypothesis import given
from hypothesis import strategies as st

from optin_core import AuditEvent, ParsedReply, Redacted, canonical_bytes
from optin_core._chain import event_canonical, event_digest
from optin_core._erase import redact_event
from optin_core._personal import commit

from .strategies import any_text, conversations

Conversation = tuple[Any, Any, tuple[Any, ...]]


@given(conversations())
def test_the_fast_writer_is_the_canonical_encoding(conv: Conversation) -> None:
    _, head, log = conv
    for event in log:
        fast = event_canonical(head.contact, event)
        assert fast == canonical_bytes(head.contact, event.body())
        assert fast.isascii()


@given(conversations(max_steps=6), any_text, st.data())
def test_any_reply_text_encodes_the_same_both_ways(
    conv: Conversation, text: str, data: st.DataObject
) -> None:
    _, head, log = conv
    replied = [e for e in log if e.reply is not None]
    if not replied:
        return
    event = data.draw(st.sampled_from(replied))
    reply = ParsedReply(
        intent=event.reply.intent,
        keyword=data.draw(st.one_of(st.none(), any_text)),
        rule=event.reply.rule,
        locale=event.reply.locale,
        text=text,
    ).bounded(16)
    odd = attrs.evolve(event, reply=reply, actor=data.draw(any_text))
    contact = head.contact
    assert event_canonical(contact, odd) == canonical_bytes(contact, odd.body())
    assert event_digest(contact, odd) != event_digest(contact, event) or odd == event


KEY = b"k" * 32


@given(conversations(max_steps=8))
def test_the_fast_writer_agrees_with_the_definition_under_a_key(
    conv: Conversation,
) -> None:
    _, head, log = conv
    for event in log:
        fast = event_canonical(head.contact, event, KEY)
        assert fast == canonical_bytes(head.contact, event.body(), log_key=KEY)
        # Keyed commitments: neither the number nor its plain SHA-256.
        assert head.contact.encode() not in fast


@given(conversations(max_steps=10), st.booleans())
def test_a_redacted_event_keeps_its_digest(conv: Conversation, keyed: bool) -> None:
    _, head, log = conv
    key = KEY if keyed else None
    contact = Redacted(commit(head.contact, key))
    for event in log:
        redacted = redact_event(event, key)
        digest = event_digest(head.contact, event, log_key=key)
        assert event_digest(contact, redacted, log_key=key) == digest
        # The definition reads the records' {"redacted": ...} form the same.
        body = redacted.body()
        assert canonical_bytes(contact, body, log_key=key) == event_canonical(
            contact, redacted, key
        )
        # And no personal value is left in the record.
        data = json.dumps(redacted.to_dict())
        texts = [m.text for m in event.sent]
        if event.reply is not None:
            texts.append(event.reply.text)
        for text in texts:
            assert json.dumps({"text": text})[1:-1] not in data
        assert json.dumps({"contact": head.contact})[1:-1] not in data
        # Read back, it is the same redacted event.
        assert AuditEvent.from_dict(json.loads(data)) == redacted


def test_a_contact_that_looks_like_a_commitment_is_not_one() -> None:
    # A plain contact id spelled like a digest is committed like any other
    # value: only a Redacted value is taken as its own commitment.
    spelled = "sha256:" + "0" * 64
    assert commit(spelled) != spelled
    assert commit(Redacted(spelled)) == spelled
    assert repr(Redacted(spelled)).startswith("Redacted(")
