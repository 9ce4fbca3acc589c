"""Reading logs and records back, pinned rule by rule (docs/rules.md,
"Verification"; ``optin_core._log``).

- ``ConsentLog.from_dict`` refuses what is not a schema-2 export word for
  word: not a mapping (``record``), an unknown schema, a contact that is not
  a str, a log that is not a list, each naming the field and the contact;
  a valid export reads back exactly (``to_dict`` / ``from_dict``);
- ``ConsentLog.verify`` checks the log against its own head;
- a schema-1 record (0.1.0) has its history chained as ``decide`` would have
  logged it (an input older than the event before it is logged at that
  event's time, its own time kept as ``input_at``; equal times are in
  order), and every stored field that differs from the replay is refused
  naming that field, times compared as times;
- each event's sent messages: at most one, of its trigger's kind; the
  request, disclaimer, reminder, HELP answer and text always send theirs;
  each message is the contact's, under a fresh key;
- a cancellation follows the stop that made it (same time, same input, a
  stop that withdraws something, in the same write for a store), lists
  distinct keys, each an earlier open message of a kind a stop cancels;
- an expiry or a dead letter names exactly one earlier open message and
  why; only a message past its deadline expires; a message cancelled or
  given up is closed for good.

Every refusal is compared whole (field, problem, index and contact), not
searched for: a reworded, emptied or misplaced error is a failure.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from datetime import timedelta, timezone
from typing import Any, NamedTuple

import attrs
import pytest

from optin_core import (
    AuditEvent,
    Consent,
    ConsentLog,
    ConsentState,
    Inbound,
    MessageKind,
    Outgoing,
    RecordError,
    Revoke,
    SendText,
    Trigger,
    cancel_queued,
    decide,
    verify,
)
from optin_core._log import check_extension
from optin_core._records import MessageExpired, MessageFailed

from .flows import CONTACT, Flow, at, rechained
from .test_records import schema1

Log = tuple[AuditEvent, ...]
Reader = Callable[[object], object]

OTHER = "+15555550199"
#: The contact of tests/data/schema1_record.json.
SCHEMA1_CONTACT = "+15550000002"
READERS = pytest.mark.parametrize(
    "reader", [Consent.from_dict, ConsentLog.from_dict], ids=["Consent", "ConsentLog"]
)


# ---------------------------------------------------------------------------
# Helpers


def refused(call: Callable[[], object]) -> RecordError:
    """The ``RecordError`` that ``call`` raises (any other outcome fails)."""
    with pytest.raises(RecordError) as info:
        call()
    return info.value


def assert_error(
    error: RecordError,
    field: str,
    problem: str,
    *,
    index: int | None,
    contact: str = CONTACT,
) -> None:
    """The whole error, compared with equality: a mutant that rewords,
    empties or misplaces any part of it fails."""
    assert (error.field, error.problem, error.index, error.contact) == (
        field,
        problem,
        index,
        contact,
    )


def forged(log: Sequence[AuditEvent], index: int, **changes: Any) -> list[AuditEvent]:
    """``log`` with event ``index`` edited and the chain recomputed, so that
    only the rule under test can tell."""
    events = list(log)
    events[index] = attrs.evolve(events[index], **changes)
    return rechained(CONTACT, events)


def through_json(log: ConsentLog) -> ConsentLog:
    """``log`` exported, written as JSON text and read back."""
    return ConsentLog.from_dict(json.loads(json.dumps(log.to_dict())))


def opted_in() -> Flow:
    flow = Flow()
    flow.request(0)
    flow.reply("yes", 1)
    return flow


def stop(flow: Flow, minutes: float, queued: Sequence[Outgoing] = ()) -> Consent:
    """The contact's STOP, with the cancellation of ``queued`` that
    ``cancel_queued`` appends (as the service does); the head right after
    the stop, before its cancellation."""
    stopped = decide(
        flow.consent,
        Inbound(text="STOP", at=at(minutes), message_id="m-stop"),
        flow.policy,
    )
    done = cancel_queued(stopped, queued, flow.policy)
    flow.consent = done.consent
    flow.events.extend(done.events)
    return stopped.consent


def give_up(flow: Flow, key: str, minutes: float) -> None:
    flow.apply(MessageFailed(at=at(minutes), key=key, attempts=5, error="timeout"))


class Stopped(NamedTuple):
    """An opted-in contact who was sent a text and a HELP answer (both
    still queued), then said STOP: the stop and its cancellation of the
    text (the HELP answer still goes, docs/service.md)."""

    before: Consent  # the head before the stop
    after_stop: Consent  # the head after the stop, before its cancellation
    log: Log  # request, consent, text, help, stop, cancel
    head: Consent
    text: Outgoing
    help_answer: Outgoing
    confirmation: Outgoing


def stopped() -> Stopped:
    flow = opted_in()
    text = flow.apply(SendText(body="Your visit is at 3pm", at=at(2))).outgoing[0]
    help_answer = flow.reply("HELP", 3).outgoing[0]
    before = flow.consent
    after_stop = stop(flow, 4, [text, help_answer])
    stop_event, cancel = flow.log[-2:]
    assert (stop_event.trigger, cancel.trigger) == (Trigger.STOP, Trigger.CANCEL)
    assert cancel.cancelled == (text.key,)
    return Stopped(
        before=before,
        after_stop=after_stop,
        log=flow.log,
        head=flow.consent,
        text=text,
        help_answer=help_answer,
        confirmation=stop_event.sent[0],
    )


def as_schema1(head: Consent, log: Sequence[AuditEvent]) -> dict[str, Any]:
    """The 0.1.0 record of ``head`` and ``log``: the head's fields and the
    unchained history, each event at its input's own time."""
    history = []
    for event in log:
        old = event.to_dict()
        for new in ("prev", "digest", "input_at", "cancelled"):
            del old[new]
        old["at"] = event.input_time.isoformat()
        history.append(old)

    def time(name: str) -> str | None:
        value = getattr(head, name)
        return None if value is None else str(value.isoformat())

    record: dict[str, Any] = {
        "schema": 1,
        "contact": head.contact,
        "state": head.state.value,
        "locale": head.locale,
        "version": head.version,
        "attempts": head.attempts,
        "reminders": head.reminders,
        "recent_message_ids": list(head.recent_message_ids),
        "history": history,
    }
    for name in (
        "requested_at",
        "last_requested_at",
        "opted_in_at",
        "disclosed_at",
        "stopped_at",
    ):
        record[name] = time(name)
    return json.loads(json.dumps(record))  # type: ignore[no-any-return]


# ---------------------------------------------------------------------------
# ConsentLog.from_dict: what is not a schema-2 export


@pytest.mark.parametrize(
    ("data", "kind"), [([1, 2], "list"), ("log", "str"), (None, "NoneType")]
)
def test_an_export_that_is_not_a_mapping_is_refused_as_the_record(
    data: object, kind: str
) -> None:
    error = refused(lambda: ConsentLog.from_dict(data))
    # Nothing to read a contact from: the whole record is named.
    assert_error(
        error, "record", f"expected an object, got {kind}", index=None, contact=""
    )


@pytest.mark.parametrize(
    ("schema", "shown"), [(3, "3"), ("2", "'2'"), (None, "None"), ([2], "[2]")]
)
def test_an_unknown_schema_is_refused_showing_the_version_found(
    schema: object, shown: str
) -> None:
    flow = opted_in()
    data = ConsentLog(head=flow.consent, events=flow.log).to_dict()
    data["schema"] = schema
    error = refused(lambda: ConsentLog.from_dict(data))
    # The version found, then the ones this library reads.
    assert_error(
        error,
        "schema",
        f"unknown schema version {shown} (this library reads 1 and 2)",
        index=None,
        contact="",
    )


def test_an_export_whose_contact_is_not_a_str_is_refused_at_contact() -> None:
    flow = opted_in()
    data = ConsentLog(head=flow.consent, events=flow.log).to_dict()
    data["contact"] = 5
    error = refused(lambda: ConsentLog.from_dict(data))
    # The field itself, not a dotted path under some prefix.
    assert_error(error, "contact", "expected str, got 5", index=None, contact="")


def test_an_export_whose_log_is_not_a_list_is_refused_naming_the_contact() -> None:
    flow = opted_in()
    data = ConsentLog(head=flow.consent, events=flow.log).to_dict()
    data["log"] = {"0": data["log"][0]}
    error = refused(lambda: ConsentLog.from_dict(data))
    assert_error(error, "log", "expected a list", index=None)
    # What the host sees, word for word.
    assert str(error) == (
        "consent record of '+15555550100' is invalid at 'log': expected a list; "
        "restore it from its history or a backup, never by guessing"
    )


# ---------------------------------------------------------------------------
# ConsentLog.verify: the log against its own head


def test_consent_log_verify_refuses_a_head_that_is_not_the_replay() -> None:
    flow = opted_in()
    # The log is sound; only the head it travels with was edited.
    edited = attrs.evolve(flow.consent, attempts=5)
    log = ConsentLog(head=edited, events=flow.log)
    error = refused(log.verify)
    assert_error(
        error,
        "attempts",
        "5 differs from the replay of the log (1): the head was edited, or "
        "belongs to another log",
        index=None,
    )
    assert ConsentLog(head=flow.consent, events=flow.log).verify() == flow.consent


# ---------------------------------------------------------------------------
# Schema 1: the history chained as decide would have logged it


def test_a_schema1_history_with_equal_times_reads_back_as_decides_log() -> None:
    # A YES in the same minute as the request: equal times are in order, so
    # no event gets an input_at (it would say the input came late).
    flow = Flow()
    flow.request(0)
    flow.reply("yes", 0)
    flow.apply(SendText(body="Welcome", at=at(0)))
    assert all(e.input_at is None for e in flow.log)
    log = ConsentLog.from_dict(as_schema1(flow.consent, flow.log))
    assert log == ConsentLog(head=flow.consent, events=flow.log)
    assert Consent.from_dict(as_schema1(flow.consent, flow.log)) == flow.consent


def test_a_schema1_history_out_of_order_is_logged_at_the_event_before() -> None:
    # 0.1.0 logged a delayed webhook at its own time, so its history can go
    # back in time. Chained, such an event is logged at the time of the
    # event before it (the time already moved forward, for a second late
    # input) with its own time as input_at: exactly what decide logs now.
    flow = Flow()
    flow.request(0)
    flow.reply("what?", 5)  # a reminder at 5
    flow.reply("yes", 3)  # a YES sent at 3, delivered after the reminder
    flow.reply("HELP", 4)  # a HELP sent at 4, delivered later still
    assert [(e.at, e.input_at) for e in flow.log[2:]] == [
        (at(5), at(3)),
        (at(5), at(4)),
    ]
    record = as_schema1(flow.consent, flow.log)
    assert [e["at"] for e in record["history"]] == [
        at(m).isoformat() for m in (0, 5, 3, 4)
    ]
    log = ConsentLog.from_dict(record)
    assert log == ConsentLog(head=flow.consent, events=flow.log)
    assert through_json(log) == log


@READERS
def test_a_schema1_record_whose_contact_is_not_a_str_is_refused(reader: Reader) -> None:
    data = schema1()
    data["contact"] = 5
    error = refused(lambda: reader(data))
    assert_error(error, "contact", "expected str, got 5", index=None, contact="")


@READERS
def test_a_schema1_history_that_is_not_a_list_is_refused(reader: Reader) -> None:
    data = schema1()
    data["history"] = {"0": data["history"][0]}
    error = refused(lambda: reader(data))
    assert_error(
        error, "history", "expected a list", index=None, contact=SCHEMA1_CONTACT
    )
    assert str(error) == (
        "consent record of '+15550000002' is invalid at 'history': expected a "
        "list; restore it from its history or a backup, never by guessing"
    )


@READERS
@pytest.mark.parametrize("version", [7, 5, 0])
def test_a_schema1_version_that_is_not_the_number_of_events_is_refused(
    reader: Reader, version: int
) -> None:
    data = schema1()
    data["version"] = version
    error = refused(lambda: reader(data))
    assert_error(
        error,
        "version",
        f"{version} does not match the 6 history events",
        index=None,
        contact=SCHEMA1_CONTACT,
    )


@READERS
@pytest.mark.parametrize(
    ("version", "shown"), [("6", "'6'"), (-1, "-1"), (None, "None"), (True, "True")]
)
def test_a_schema1_version_that_is_not_a_count_is_refused(
    reader: Reader, version: object, shown: str
) -> None:
    data = schema1()
    data["version"] = version
    error = refused(lambda: reader(data))
    assert_error(
        error,
        "version",
        f"expected a non-negative int, got {shown}",
        index=None,
        contact=SCHEMA1_CONTACT,
    )


#: A stored field of the schema-1 fixture, a value that is not its replay,
#: and what the error shows of both (times as ISO 8601 text).
SCHEMA1_EDITS = {
    "state": ("stopped", "'stopped'", "'opted_in'"),
    "locale": ("en", "'en'", "'fr'"),
    "locale_missing": (None, "None", "'fr'"),
    "attempts": (2, "2", "1"),
    "attempts_as_text": ("1", "'1'", "1"),
    "reminders": (1, "1", "0"),
    "requested_at": (
        "2025-04-11T09:17:00+00:00",
        "'2025-04-11T09:17:00+00:00'",
        "'2025-04-11T09:16:00+00:00'",
    ),
    "last_requested_at": (
        "2025-04-11T09:16:01+00:00",
        "'2025-04-11T09:16:01+00:00'",
        "'2025-04-11T09:16:00+00:00'",
    ),
    "opted_in_at": (
        "2025-04-11T09:30:00+01:00",
        "'2025-04-11T09:30:00+01:00'",
        "'2025-04-11T09:30:00+00:00'",
    ),
    "disclosed_at": (
        "2025-04-11T09:16:00+00:00",
        "'2025-04-11T09:16:00+00:00'",
        "None",
    ),
    # The replay's stop time is the stop's (09:24); 0.1.0 wrote the later
    # HELP answer's (09:27), which is read, but no other time is.
    "stopped_at": (None, "None", "'2025-04-11T09:24:00+00:00'"),
    "stopped_at_not_a_time": (
        "yesterday",
        "'yesterday'",
        "'2025-04-11T09:24:00+00:00'",
    ),
    "stopped_at_at_the_restart": (
        "2025-04-11T09:30:00+00:00",
        "'2025-04-11T09:30:00+00:00'",
        "'2025-04-11T09:24:00+00:00'",
    ),
}


@READERS
@pytest.mark.parametrize("edit", list(SCHEMA1_EDITS))
def test_each_schema1_field_that_differs_from_the_replay_is_refused_by_name(
    reader: Reader, edit: str
) -> None:
    value, stored, replayed = SCHEMA1_EDITS[edit]
    name = edit.removesuffix("_missing").removesuffix("_as_text")
    name = name.removesuffix("_not_a_time").removesuffix("_at_the_restart")
    data = schema1()
    data[name] = value
    error = refused(lambda: reader(data))
    assert_error(
        error,
        name,
        f"{stored} differs from the replay of the history ({replayed})",
        index=None,
        contact=SCHEMA1_CONTACT,
    )


@READERS
@pytest.mark.parametrize(
    "name", ["requested_at", "last_requested_at", "opted_in_at", "stopped_at"]
)
@pytest.mark.parametrize("spelling", ["Z", "+02:00"])
def test_a_schema1_time_written_another_way_is_the_same_time(
    reader: Reader, name: str, spelling: str
) -> None:
    # Times are compared as times: 09:16Z and 11:16+02:00 are the replay's
    # 09:16+00:00, whatever text 0.1.0 (or a hand edit) wrote.
    data = schema1()
    replayed = ConsentLog.from_dict(schema1()).head
    value = getattr(replayed, name)
    if spelling == "Z":
        data[name] = value.isoformat().replace("+00:00", "Z")
    else:
        data[name] = value.astimezone(timezone(timedelta(hours=2))).isoformat()
    assert data[name] != value.isoformat()
    read = reader(data)
    head = read.head if isinstance(read, ConsentLog) else read
    assert head == replayed


# ---------------------------------------------------------------------------
# Sent messages


def _revoked() -> Log:
    flow = opted_in()
    flow.apply(Revoke(at=at(2), by="agent-1", reason="asked by phone"))
    return flow.log


def _texted() -> Flow:
    flow = opted_in()
    flow.apply(SendText(body="Your visit is at 3pm", at=at(2)))
    return flow


def test_a_trigger_that_sends_nothing_is_refused_with_a_message() -> None:
    log = _revoked()
    text = _texted().log[2].sent[0]
    error = refused(lambda: verify(CONTACT, forged(log, 2, sent=(text,))))
    assert_error(error, "log[2].sent", "revoke sends at most one nothing", index=2)


@pytest.mark.parametrize("wrong", ["two texts", "a help answer"])
def test_a_text_sends_exactly_one_text(wrong: str) -> None:
    log = _texted().log
    text = log[2].sent[0]
    sent: tuple[Outgoing, ...]
    if wrong == "two texts":
        sent = (text, attrs.evolve(text, key="another-key"))
    else:
        sent = (attrs.evolve(text, kind=MessageKind.HELP),)
    error = refused(lambda: verify(CONTACT, forged(log, 2, sent=sent)))
    assert_error(error, "log[2].sent", "text sends at most one text", index=2)


@pytest.mark.parametrize(("index", "trigger"), [(0, "request"), (2, "text")])
def test_a_request_or_a_text_without_its_message_is_refused(
    index: int, trigger: str
) -> None:
    log = _texted().log
    error = refused(lambda: verify(CONTACT, forged(log, index, sent=())))
    assert_error(
        error, f"log[{index}].sent", f"{trigger} sends its message", index=index
    )


def test_a_message_to_another_contact_is_refused() -> None:
    log = _texted().log
    theirs = attrs.evolve(log[2].sent[0], contact=OTHER)
    error = refused(lambda: verify(CONTACT, forged(log, 2, sent=(theirs,))))
    assert_error(error, "log[2].sent[0].contact", "another contact's message", index=2)


@pytest.mark.parametrize("key", ["", "the request's"])
def test_a_message_key_is_never_empty_nor_reused(key: str) -> None:
    log = _texted().log
    reused = log[0].sent[0].key if key else ""
    message = attrs.evolve(log[2].sent[0], key=reused)
    error = refused(lambda: verify(CONTACT, forged(log, 2, sent=(message,))))
    assert_error(
        error, "log[2].sent[0].key", "empty or used by another message", index=2
    )


# ---------------------------------------------------------------------------
# Cancellations


def test_a_stop_and_its_cancellation_verify_and_read_back_exactly() -> None:
    s = stopped()
    assert verify(CONTACT, s.log, s.head) == s.head
    log = ConsentLog(head=s.head, events=s.log)
    assert log.verify() == s.head
    assert through_json(log) == log
    # A store appends the stop and its cancel in one write.
    check_extension(s.before, s.head, s.log[4:])


@pytest.mark.parametrize(
    "change",
    [{"at": at(5)}, {"input": "revoke", "actor": "agent-1"}],
    ids=["later", "another_input"],
)
def test_a_cancellation_is_at_its_stops_time_with_its_input(
    change: dict[str, Any],
) -> None:
    s = stopped()
    error = refused(lambda: verify(CONTACT, forged(s.log, 5, **change)))
    assert_error(
        error, "log[5].trigger", "a cancellation follows the stop that made it", index=5
    )


def test_a_cancellation_after_a_revocation_that_withdraws_nothing_is_refused() -> None:
    # A revocation of a contact already stopped is a stop trigger, but it
    # makes nothing undeliverable (the first stop did): no cancel follows it,
    # even one dated and sourced like it, naming a message still open.
    flow = opted_in()
    text = flow.apply(SendText(body="Your visit is at 3pm", at=at(2))).outgoing[0]
    stop(flow, 4)  # nothing listed as queued: no cancel
    flow.apply(Revoke(at=at(5), by="agent-1", reason="asked by phone"))
    revoke = flow.log[-1]
    assert (revoke.trigger, revoke.from_state) == (Trigger.REVOKE, ConsentState.STOPPED)
    cancel = attrs.evolve(
        stopped().log[5],
        version=revoke.version + 1,
        at=revoke.at,
        input=revoke.input,
        actor=revoke.actor,
        cancelled=(text.key,),
    )
    log = rechained(CONTACT, [*flow.log, cancel])
    error = refused(lambda: verify(CONTACT, log))
    assert_error(
        error,
        f"log[{cancel.version - 1}].trigger",
        "a cancellation follows the stop that made it",
        index=cancel.version - 1,
    )


def test_a_cancellation_after_a_help_answer_is_refused() -> None:
    s = stopped()
    flow = Flow()
    flow.consent, flow.events = s.head, list(s.log)
    flow.reply("HELP", 6, message_id="m-help")
    assert flow.log[-1].trigger is Trigger.HELP
    cancel = attrs.evolve(s.log[5], version=8, at=at(6))
    error = refused(lambda: verify(CONTACT, rechained(CONTACT, [*flow.log, cancel])))
    assert_error(
        error, "log[7].trigger", "a cancellation follows the stop that made it", index=7
    )


def test_a_store_refuses_a_cancellation_appended_without_its_stop() -> None:
    # The stop was saved by an earlier write: the cancel must come in the
    # stop's own write (index counts from the first new event).
    s = stopped()
    error = refused(lambda: check_extension(s.after_stop, s.head, s.log[5:]))
    assert_error(
        error, "log[0].trigger", "a cancellation follows the stop that made it", index=0
    )


@pytest.mark.parametrize("keys", ["none", "twice"])
@pytest.mark.parametrize("reader", ["verify", "store"])
def test_a_cancellation_lists_distinct_keys(keys: str, reader: str) -> None:
    s = stopped()
    cancelled = () if keys == "none" else (s.text.key, s.text.key)
    log = forged(s.log, 5, cancelled=cancelled)
    if reader == "verify":
        error = refused(lambda: verify(CONTACT, log))
        index = 5
    else:
        error = refused(lambda: check_extension(s.before, s.head, log[4:]))
        index = 1
    assert_error(
        error, f"log[{index}].cancelled", "expected distinct message keys", index=index
    )


@pytest.mark.parametrize("which", ["unknown", "stop confirmation", "help answer"])
def test_a_cancellation_names_only_earlier_messages_a_stop_cancels(which: str) -> None:
    s = stopped()
    key = {
        "unknown": "nope",
        "stop confirmation": s.confirmation.key,
        "help answer": s.help_answer.key,
    }[which]
    error = refused(lambda: verify(CONTACT, forged(s.log, 5, cancelled=(key,))))
    assert_error(
        error,
        "log[5].cancelled",
        f"{key!r} is no earlier message that a stop cancels",
        index=5,
    )


def test_a_message_given_up_cannot_be_cancelled() -> None:
    flow = opted_in()
    text = flow.apply(SendText(body="Your visit is at 3pm", at=at(2))).outgoing[0]
    give_up(flow, text.key, 3)
    stop(flow, 4, [text])  # cancel_queued trusts the queue it is given
    error = refused(lambda: verify(CONTACT, flow.log))
    assert_error(
        error,
        "log[5].cancelled",
        f"{text.key!r} is no earlier message that a stop cancels",
        index=5,
    )


# ---------------------------------------------------------------------------
# Expiries and dead letters


def _delivery_failures() -> tuple[Flow, Outgoing, Outgoing]:
    """An opted-in contact's text given up at 3, then STOP at 4: its
    confirmation's deadline is 4 + 5 minutes."""
    flow = opted_in()
    text = flow.apply(SendText(body="Your visit is at 3pm", at=at(2))).outgoing[0]
    give_up(flow, text.key, 3)
    stop(flow, 4)
    confirmation = flow.log[-1].sent[0]
    assert confirmation.deadline == at(9)
    return flow, text, confirmation


def test_an_expiry_past_the_deadline_and_a_dead_letter_verify_and_read_back() -> None:
    flow, _, confirmation = _delivery_failures()
    flow.apply(MessageExpired(at=at(9.5), key=confirmation.key))
    assert verify(CONTACT, flow.log, flow.consent) == flow.consent
    log = ConsentLog(head=flow.consent, events=flow.log)
    assert through_json(log) == log


@pytest.mark.parametrize(
    ("which", "minutes"),
    [("confirmation", 9), ("confirmation", 8), ("text", 30)],
    ids=["at_the_deadline", "before_it", "no_deadline"],
)
def test_only_a_message_past_its_deadline_expires(which: str, minutes: float) -> None:
    # decide logs what the delivery layer reports; the log only accepts an
    # expiry after the deadline (the service expires when now > deadline).
    flow = opted_in()
    text = flow.apply(SendText(body="Your visit is at 3pm", at=at(2))).outgoing[0]
    stop(flow, 4)
    key = flow.log[-1].sent[0].key if which == "confirmation" else text.key
    flow.apply(MessageExpired(at=at(minutes), key=key))
    error = refused(lambda: verify(CONTACT, flow.log))
    assert_error(
        error, "log[4].at", "only a message past its deadline expires", index=4
    )


@pytest.mark.parametrize(
    "change",
    [{"reason": None}, {"reason": ""}, {"cancelled": ()}, {"cancelled": ("a", "b")}],
    ids=["no_reason", "empty_reason", "no_key", "two_keys"],
)
def test_a_give_up_names_one_message_and_why(change: dict[str, Any]) -> None:
    flow, _, _ = _delivery_failures()
    dead_letter = flow.log[3]
    assert dead_letter.trigger is Trigger.DEAD_LETTER
    error = refused(lambda: verify(CONTACT, forged(flow.log, 3, **change)))
    assert_error(
        error, "log[3].cancelled", "names the one message given up, and why", index=3
    )


def test_a_give_up_names_an_earlier_message() -> None:
    flow = opted_in()
    give_up(flow, "k-2", 3)
    error = refused(lambda: verify(CONTACT, flow.log))
    assert_error(error, "log[2].cancelled", "'k-2' is no earlier open message", index=2)


@pytest.mark.parametrize("first", ["dead letter", "expiry", "cancellation"])
def test_a_message_closed_once_cannot_be_given_up_again(first: str) -> None:
    flow = opted_in()
    text = flow.apply(SendText(body="Your visit is at 3pm", at=at(2))).outgoing[0]
    if first == "dead letter":
        give_up(flow, text.key, 3)
        key = text.key
    elif first == "expiry":
        stop(flow, 4)
        key = flow.log[-1].sent[0].key
        flow.apply(MessageExpired(at=at(10), key=key))
    else:
        stop(flow, 4, [text])
        key = text.key
    give_up(flow, key, 11)
    index = len(flow.log) - 1
    error = refused(lambda: verify(CONTACT, flow.log))
    assert_error(
        error,
        f"log[{index}].cancelled",
        f"{key!r} is no earlier open message",
        index=index,
    )
