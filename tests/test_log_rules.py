"""Replay's refusals pinned word for word: the log's rules, one by one.

``verify`` (and a store's ``check_extension``) must refuse every forged,
edited or inconsistent log by naming the first event that fails, the field
(``log[i].name``) and the problem, with the exact message: a host shows it to
an operator, who restores the record from it. These tests pin the whole
``RecordError`` (field, problem, index, contact and its text), which the
tests that only look at the field cannot tell from a wrong or empty message.

Pinned here:

- each single-field forgery of ``test_machine_pinned.FORGERIES`` (every digest
  recomputed, so only replay's own rules can tell) with its exact problem;
- the chain: a wrong ``prev``, a malformed digest, an edited event, a keyed
  log read without its key and an unkeyed log read with one;
- what an event's input allows: a request, a cancellation and an import
  carry no reply, an import its row's id, source, evidence and actor;
- times: a restart dated exactly at its stop is accepted ("at or after the
  stop"), an ``input_at`` equal to the event's time is refused;
- an attestation never lowers the level; a cancellation or a given-up
  message that fails is named at its own index;
- ``verify``'s own arguments (contact, ``log_key``), the head against the
  replay, ``replay`` with a key, an export's malformed event;
- ``check_extension``: indexes count from the first new event, a keyed log
  extends without its key, a cancellation comes with its stop;
- a schema-1 record's times compare as instants, not strings.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import attrs
import pytest

from optin_core import (
    AuditEvent,
    ConsentLog,
    RecordError,
    Revoke,
    Trigger,
    replay,
    verify,
)
from optin_core._log import check_extension
from optin_core._records import MessageExpired

from .flows import CONTACT as FLOW_CONTACT
from .flows import Flow, at, policy, rechained
from .test_machine_pinned import (
    ATTESTATION,
    CONTACT,
    FORGERIES,
    KNOWN,
    LATER,
    OPTED_IN,
    Log,
    _cancel,
    _dead_letter,
    _import,
    reach,
)

KEY = bytes(range(32))
SUFFIX = "; restore it from its history or a backup, never by guessing"


def refusal(
    contact: str, events: list[AuditEvent] | tuple[AuditEvent, ...]
) -> RecordError:
    """The ``RecordError`` ``verify`` raises for ``events``."""
    with pytest.raises(RecordError) as refused:
        verify(contact, events)
    return refused.value


def assert_refused(
    error: RecordError, field: str, problem: str, index: int | None
) -> None:
    """``error`` is exactly the one a host shows: every attribute, and the
    text built from them (so a wrong contact or problem shows twice)."""
    assert (error.field, error.problem, error.index, error.contact) == (
        field,
        problem,
        index,
        CONTACT,
    )
    assert str(error) == (
        f"consent record of {CONTACT!r} is invalid at {field!r}: {problem}{SUFFIX}"
    )


def forged(index: int, **changes: Any) -> list[AuditEvent]:
    """The known log with event ``index`` changed and every digest
    recomputed: only replay's rules can tell."""
    events = list(KNOWN)
    events[index] = attrs.evolve(KNOWN[index], **changes)
    return rechained(CONTACT, events)


# ---------------------------------------------------------------------------
# Each single-field forgery of test_machine_pinned, with its exact problem

PROBLEMS: dict[str, str] = {
    "version": "9, expected 3",
    "from_state": "new, but the contact was pending",
    "to_state": "consent does not lead from pending to stopped",
    "trigger": "help does not lead from pending to opted_in",
    "trigger from another input": "attest cannot come from inbound",
    "at before the event before": "earlier than the event before it",
    "input_at on a timely input": (
        "set only when the input is older than the event before it"
    ),
    "input": "consent cannot come from revoke",
    "inbound without reply": "an inbound event needs its reply and message id",
    "inbound without message id": "an inbound event needs its reply and message id",
    "request with a reply": "a request_opt_in carries no reply",
    "reply intent": "a stop reply cannot fire consent",
    "consent older than the request": (
        "a reply older than the opt-in request cannot answer it"
    ),
    "restart older than the stop": "a restart older than the stop",
    "attestation without evidence": (
        "an attestation needs its method, evidence and actor"
    ),
    "attestation without method": "an attestation needs its method, evidence and actor",
    "attestation without actor": "an attestation needs its method, evidence and actor",
    "revocation without reason": "a revocation needs its actor and reason",
    "revocation without actor": "a revocation needs its actor and reason",
    "level of a consent": "consent from pending gives the level express, not written",
    "level of a revocation": "revoke from opted_in gives the level none, not written",
    "level of a restart": "restart from stopped gives the level express, not written",
    "text without category": "a text has a category, and only a text has one",
    "category on a consent": "a text has a category, and only a text has one",
    "request sends nothing": "request sends its message",
    "confirmation of another kind": "consent sends at most one opt_in_confirmation",
    "two confirmations": "consent sends at most one opt_in_confirmation",
    "another contact's message": "another contact's message",
    "a message key used twice": "empty or used by another message",
    "a help that cancels": "help cancels nothing",
}


def test_every_pinned_forgery_has_its_problem_here() -> None:
    # A forgery added to test_machine_pinned gets its message pinned too.
    assert set(PROBLEMS) == set(FORGERIES)


@pytest.mark.parametrize("name", list(PROBLEMS))
def test_each_forged_field_is_refused_with_its_exact_problem(name: str) -> None:
    index, changes, field = FORGERIES[name]
    error = refusal(CONTACT, forged(index, **changes))
    assert_refused(error, f"log[{index}].{field}", PROBLEMS[name], index)


# ---------------------------------------------------------------------------
# The chain


def test_an_event_that_does_not_link_to_the_one_before_is_refused() -> None:
    # Its own digest still matches (prev is checked first): the message says
    # what a broken link means.
    events = [*KNOWN[:2], attrs.evolve(KNOWN[2], prev=KNOWN[0].digest)]
    assert_refused(
        refusal(CONTACT, events),
        "log[2].prev",
        "does not link to the event before it (an event was removed, "
        "inserted or reordered)",
        2,
    )


def test_a_malformed_digest_is_refused_and_shown() -> None:
    events = [*KNOWN[:7], attrs.evolve(KNOWN[7], digest="sha256:xyz")]
    assert_refused(
        refusal(CONTACT, events), "log[7].digest", "malformed: 'sha256:xyz'", 7
    )


def test_an_edited_event_no_longer_matches_its_digest() -> None:
    # Not rechained: the edit alone breaks the event's own digest.
    events = [*KNOWN[:3], attrs.evolve(KNOWN[3], reason="edited"), *KNOWN[4:]]
    assert_refused(
        refusal(CONTACT, events),
        "log[3].digest",
        "does not match the event's content (edited), or the key is not the log's",
        3,
    )


def keyed_flow() -> Flow:
    flow = Flow(policy(log_key=KEY), contact=CONTACT)
    flow.request(0)
    flow.reply("what?", 1)
    flow.reply("yes", 2)
    return flow


def test_a_keyed_log_read_without_its_key_asks_for_it() -> None:
    error = refusal(CONTACT, keyed_flow().log)
    assert_refused(
        error, "log[0].digest", "the log is keyed (HMAC): pass its log_key", 0
    )


def test_an_unkeyed_log_read_with_a_key_is_refused_as_a_rewrite() -> None:
    # Else a keyed log could be swapped for an unkeyed rewrite of it.
    with pytest.raises(RecordError) as refused:
        verify(CONTACT, KNOWN, log_key=KEY)
    assert_refused(
        refused.value,
        "log[0].digest",
        "not keyed, but a log_key was given (a rewrite?)",
        0,
    )


def test_something_that_is_not_an_event_is_refused_and_shown() -> None:
    not_an_event: Any = "not an event"
    assert_refused(
        refusal(CONTACT, [KNOWN[0], not_an_event]),
        "log[1].event",
        "not an AuditEvent: 'not an event'",
        1,
    )


# ---------------------------------------------------------------------------
# What an event's input allows


@pytest.mark.parametrize(
    "changes",
    [{"message_id": "x"}, {"reply": KNOWN[2].reply}],
    ids=["message_id_only", "reply_only"],
)
def test_a_request_carries_neither_a_reply_nor_a_message_id(
    changes: dict[str, Any],
) -> None:
    # Either one alone is a forgery: a request comes from the host, not
    # from a message of the contact.
    assert_refused(
        refusal(CONTACT, forged(0, **changes)),
        "log[0].reply",
        "a request_opt_in carries no reply",
        0,
    )


def cancelled_log() -> list[AuditEvent]:
    """request, consent, text, stop, and the cancellation of the text."""
    log = reach(OPTED_IN)
    _cancel(log, LATER)
    assert [e.trigger for e in log.events][-2:] == [Trigger.STOP, Trigger.CANCEL]
    return log.events


@pytest.mark.parametrize(
    "changes",
    [{"message_id": "m9"}, {"reply": KNOWN[2].reply}],
    ids=["message_id_only", "reply_only"],
)
def test_a_cancellation_repeats_neither_reply_nor_message_id(
    changes: dict[str, Any],
) -> None:
    events = cancelled_log()
    last = len(events) - 1
    events[last] = attrs.evolve(events[last], **changes)
    assert_refused(
        refusal(CONTACT, rechained(CONTACT, events)),
        f"log[{last}].reply",
        "a cancellation repeats no reply (its stop has it)",
        last,
    )


def test_a_failing_cancellation_is_named_at_its_own_index() -> None:
    events = cancelled_log()
    last = len(events) - 1
    twice = events[last].cancelled * 2
    events[last] = attrs.evolve(events[last], cancelled=twice)
    assert_refused(
        refusal(CONTACT, rechained(CONTACT, events)),
        f"log[{last}].cancelled",
        "expected distinct message keys",
        last,
    )


def test_a_failing_dead_letter_is_named_at_its_own_index() -> None:
    log = reach(OPTED_IN)
    _dead_letter(log, LATER)
    events = log.events
    last = len(events) - 1
    assert events[last].trigger is Trigger.DEAD_LETTER
    events[last] = attrs.evolve(events[last], reason=None)
    assert_refused(
        refusal(CONTACT, rechained(CONTACT, events)),
        f"log[{last}].cancelled",
        "names the one message given up, and why",
        last,
    )


def imported() -> AuditEvent:
    log = Log(ATTESTATION)
    _import(OPTED_IN)(log, 0)
    (event,) = log.events
    assert event.trigger is Trigger.IMPORT_OPT_IN
    return event


def test_an_import_carries_its_rows_id() -> None:
    # The row's id is what makes a row imported once.
    event = attrs.evolve(imported(), message_id=None)
    assert_refused(
        refusal(CONTACT, rechained(CONTACT, [event])),
        "log[0].reply",
        "an import carries its row's id and no reply",
        0,
    )


@pytest.mark.parametrize("missing", ["method", "evidence", "actor"])
def test_an_import_needs_each_of_its_source_evidence_and_actor(missing: str) -> None:
    # Each one alone missing is refused, whatever the other two hold.
    changes: dict[str, Any] = {missing: None}
    event = attrs.evolve(imported(), **changes)
    assert_refused(
        refusal(CONTACT, rechained(CONTACT, [event])),
        "log[0].evidence",
        "an import needs its source, evidence and actor",
        0,
    )


# ---------------------------------------------------------------------------
# Times and levels


def test_a_restart_dated_exactly_at_its_stop_is_accepted() -> None:
    # The rule is "dated at or after the stop": the same minute is not older.
    flow = Flow()
    flow.request(0)
    flow.reply("yes", 1)
    flow.reply("STOP", 2)
    (restart,) = flow.reply("START", 2).events
    assert restart.trigger is Trigger.RESTART
    assert restart.input_time == flow.consent.stopped_at
    assert verify(FLOW_CONTACT, flow.log, flow.consent) == flow.consent


def test_an_input_at_equal_to_the_events_time_is_refused() -> None:
    # input_at is only for an input older than the event before it: equal
    # to the event's own time, it says nothing and is a forgery.
    at = KNOWN[1].at
    assert_refused(
        refusal(CONTACT, forged(2, at=at, input_at=at)),
        "log[2].input_at",
        "set only when the input is older than the event before it",
        2,
    )


def test_an_attestation_that_lowers_the_level_is_refused() -> None:
    assert_refused(
        refusal(CONTACT, forged(4, level="none")),
        "log[4].level",
        "an attestation gives express consent or more and never lowers the "
        "level (express), not none",
        4,
    )


# ---------------------------------------------------------------------------
# verify's arguments, the head, replay and the export


@pytest.mark.parametrize(
    ("contact", "problem"),
    [
        ("", "contact must be a non-empty id (e.g. an E.164 number)"),
        (123, "contact must be str, got int"),
    ],
)
def test_verify_names_why_a_contact_is_unusable(contact: Any, problem: str) -> None:
    with pytest.raises(RecordError) as refused:
        verify(contact, ())
    error = refused.value
    assert (error.field, error.problem, error.index, error.contact) == (
        "contact",
        problem,
        None,
        "",
    )


def test_verify_says_what_a_wrong_log_key_is() -> None:
    with pytest.raises(TypeError) as refused:
        verify(CONTACT, (), log_key="secret")  # type: ignore[arg-type]
    assert str(refused.value) == "log_key must be bytes or None, got str"


def test_a_head_that_differs_from_the_replay_shows_both_values() -> None:
    head = verify(CONTACT, KNOWN)
    with pytest.raises(RecordError) as refused:
        verify(CONTACT, KNOWN, attrs.evolve(head, version=9))
    assert_refused(
        refused.value,
        "version",
        "9 differs from the replay of the log (8): the head was edited, or "
        "belongs to another log",
        None,
    )


def test_replay_reads_a_keyed_log_with_its_key() -> None:
    flow = keyed_flow()
    assert replay(CONTACT, flow.log, log_key=KEY) == flow.consent


def test_an_exports_malformed_event_keeps_its_own_problem() -> None:
    data = ConsentLog(head=verify(CONTACT, KNOWN), events=tuple(KNOWN)).to_dict()
    data["log"][1]["trigger"] = "teleport"
    with pytest.raises(RecordError) as refused:
        ConsentLog.from_dict(data)
    assert_refused(
        refused.value,
        "log[1].trigger",
        "'teleport' is not one of request, resend, disclose, consent, upgrade, "
        "restart, stop, decline, revoke, attest, remind, help, text, pause, "
        "cancel, expire, dead_letter, signup, import_stop, import_opt_in",
        1,
    )


# ---------------------------------------------------------------------------
# A store's append: check_extension


def test_check_extension_counts_indexes_from_the_first_new_event() -> None:
    # The second new event's from_state is edited and not re-hashed: a store
    # checks links, not digests, so the transition rule is what names it.
    stored = verify(CONTACT, KNOWN[:2])
    new = [KNOWN[2], attrs.evolve(KNOWN[3], from_state=KNOWN[0].from_state)]
    with pytest.raises(RecordError) as refused:
        check_extension(stored, verify(CONTACT, KNOWN[:4]), new)
    assert_refused(
        refused.value, "log[1].from_state", "new, but the contact was opted_in", 1
    )


def test_check_extension_accepts_a_keyed_log_without_its_key() -> None:
    # A store has no key: it checks the links, not the digests.
    flow = keyed_flow()
    stored = verify(CONTACT, flow.log[:1], log_key=KEY)
    check_extension(stored, flow.consent, flow.log[1:])


def test_check_extension_accepts_cancelling_a_message_sent_before_it() -> None:
    # The text was appended earlier: the store checks the keys against its
    # outbox, not against the events of this append.
    events = cancelled_log()
    stored = verify(CONTACT, events[:-2])
    check_extension(stored, verify(CONTACT, events), events[-2:])


def test_check_extension_refuses_a_cancellation_without_its_stop() -> None:
    # The cancellation is appended with the stop that made it, never alone.
    events = cancelled_log()
    stored = verify(CONTACT, events[:-1])
    with pytest.raises(RecordError) as refused:
        check_extension(stored, verify(CONTACT, events), events[-1:])
    assert_refused(
        refused.value,
        "log[0].trigger",
        "a cancellation follows the stop that made it",
        0,
    )


# ---------------------------------------------------------------------------
# Schema 1: times are instants

SCHEMA1 = Path(__file__).parent / "data" / "schema1_record.json"


@pytest.mark.parametrize(
    "written", ["2025-04-11T11:27:00+02:00", "2025-04-11T09:27:00Z"]
)
def test_a_schema1_time_written_in_another_offset_is_the_same_instant(
    written: str,
) -> None:
    record = json.loads(SCHEMA1.read_text(encoding="utf-8"))
    assert record["stopped_at"] == "2025-04-11T09:27:00+00:00"
    record["stopped_at"] = written
    log = ConsentLog.from_dict(record)
    # 0.1.0 moved the stop time to the HELP answer at 09:27; the record is
    # read with the stop's own time, 09:24.
    assert log.head.stopped_at is not None
    assert log.head.stopped_at.isoformat() == "2025-04-11T09:24:00+00:00"


# ---------------------------------------------------------------------------
# A head saved before 0.3.0 may carry a later stop time, and only that one


def _stopped_then_help() -> Flow:
    flow = Flow(policy())
    flow.request(0)
    flow.reply("STOP", 1)
    flow.reply("HELP", 3)
    return flow


def test_verify_accepts_the_stop_time_0_2_0_saved_and_returns_the_replay() -> None:
    flow = _stopped_then_help()
    assert flow.consent.stopped_at == at(1)
    saved = attrs.evolve(flow.consent, stopped_at=at(3))
    assert verify(FLOW_CONTACT, flow.log, saved) == flow.consent


def test_a_stop_time_before_the_last_revoke_is_refused() -> None:
    # 0.2.0 moved the stop time on a revoke too: STOP at 1, HELP at 3 and a
    # revoke at 5 leave 5, so a head saying 1 or 3 was edited.
    flow = _stopped_then_help()
    flow.apply(Revoke(at=at(5), by="agent:7", reason="asked by phone"))
    assert flow.consent.stopped_at == at(5)
    assert verify(FLOW_CONTACT, flow.log, flow.consent) == flow.consent
    for minutes in (1, 3):
        edited = attrs.evolve(flow.consent, stopped_at=at(minutes))
        with pytest.raises(RecordError) as refused:
            verify(FLOW_CONTACT, flow.log, edited)
        assert refused.value.field == "stopped_at"


def test_a_stop_time_at_an_expiry_while_stopped_verifies() -> None:
    # 0.1.0 and 0.2.0 moved the stop time to the stop confirmation expiring
    # in an outage (an event into STOPPED that is not a cancellation).
    flow = Flow(policy())
    flow.request(0)
    key = flow.reply("STOP", 1).outgoing[0].key
    flow.apply(MessageExpired(at=at(30), key=key))
    assert flow.log[-1].trigger is Trigger.EXPIRE
    saved = attrs.evolve(flow.consent, stopped_at=at(30))
    assert verify(FLOW_CONTACT, flow.log, saved) == flow.consent
