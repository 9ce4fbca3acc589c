"""The canonical encoding: the fast writer and the definition agree."""

from __future__ import annotations

from typing import Any

import attrs
from hypothesis import given
from hypothesis import strategies as st

from optin_core import ParsedReply, canonical_bytes
from optin_core._chain import event_canonical, event_digest

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
