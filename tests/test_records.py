"""Records: the head and its log as dicts, malformed input, schema-1 exports."""

from __future__ import annotations

import hashlib
import itertools
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import attrs
import pytest
from hypothesis import given

from optin_core import (
    SCHEMA_VERSION,
    AuditEvent,
    Consent,
    ConsentLog,
    ConsentState,
    Decision,
    InvalidInput,
    RecordError,
    Trigger,
    replay,
    verify,
)
from optin_core._records import (
    idempotency_key,
    make_consent,
    make_decision,
    make_event,
    make_outgoing,
)

from .flows import Flow
from .strategies import consents, conversations

Conversation = tuple[Any, Consent, tuple[AuditEvent, ...]]

SCHEMA1 = Path(__file__).parent / "data" / "schema1_record.json"
SCHEMA1_SHA256 = hashlib.sha256(SCHEMA1.read_bytes()).hexdigest()
KEY = bytes(range(32))


def schema1() -> dict[str, Any]:
    """A fresh copy of the 0.1.0 export (the file itself is never written)."""
    data: dict[str, Any] = json.loads(SCHEMA1.read_text(encoding="utf-8"))
    return data


def sample_flow() -> Flow:
    flow = Flow()
    flow.request(0, greeting="Hi")
    flow.reply("what?", 1)
    flow.reply("yes", 2)
    return flow


def sample_export() -> dict[str, Any]:
    """A ``ConsentLog.to_dict()`` of a request, an unclear reply and a YES."""
    flow = sample_flow()
    export: dict[str, Any] = json.loads(
        json.dumps(ConsentLog(head=flow.consent, events=flow.log).to_dict())
    )
    return export


def _set(data: Any, path: tuple[Any, ...], value: object) -> None:
    target = data
    for key in path[:-1]:
        target = target[key]
    target[path[-1]] = value


# ---------------------------------------------------------------------------
# Heads and events round trip


@given(consents())
def test_head_round_trips_through_json(consent: Consent) -> None:
    data = json.loads(json.dumps(consent.to_dict()))
    assert Consent.from_dict(data) == consent


@given(conversations())
def test_head_of_a_conversation_round_trips_and_carries_no_history(
    conv: Conversation,
) -> None:
    _, head, _ = conv
    data = json.loads(json.dumps(head.to_dict()))
    assert "history" not in data
    assert "log" not in data
    assert Consent.from_dict(data) == head


@given(conversations())
def test_log_versions_count_up_and_states_follow(conv: Conversation) -> None:
    _, head, log = conv
    assert [e.version for e in log] == list(range(1, head.version + 1))
    for before, after in itertools.pairwise(log):
        assert after.from_state is before.to_state
    if log:
        assert head.state is log[-1].to_state
        assert head.last_at == log[-1].at
        assert head.last_trigger is log[-1].trigger


def test_schema_version_is_written() -> None:
    export = sample_export()
    assert SCHEMA_VERSION == 2
    assert export["schema"] == SCHEMA_VERSION
    assert export["head"]["schema"] == SCHEMA_VERSION
    assert sample_flow().consent.to_dict()["schema"] == SCHEMA_VERSION


# ---------------------------------------------------------------------------
# Malformed heads and logs name the field


@pytest.mark.parametrize(
    ("key", "value", "field"),
    [
        ("schema", 99, "schema"),
        ("schema", None, "schema"),
        ("schema", "2", "schema"),
        ("state", "maybe", "state"),
        ("version", -1, "version"),
        ("version", True, "version"),
        ("version", 0, "version"),
        ("attempts", "1", "attempts"),
        ("contact", "", "contact"),
        ("contact", 5, "contact"),
        ("contact", "+1\n555", "contact"),
        ("locale", 5, "locale"),
        ("requested_at", "yesterday", "requested_at"),
        ("requested_at", "2026-01-01T00:00:00", "requested_at"),
        ("requested_at", "2030-01-01T00:00:00+00:00", "requested_at"),
        ("opted_in_at", None, "opted_in_at"),
        ("last_at", None, "last_at"),
        ("last_trigger", "teleport", "last_trigger"),
        ("recent_message_ids", "m1", "recent_message_ids"),
        ("recent_message_ids", ["m"] * 33, "recent_message_ids"),
        ("recent_message_ids", [""], "recent_message_ids"),
        ("auto_replies", "x", "auto_replies"),
        ("auto_replies", [5], "auto_replies[0]"),
        ("reminded_reply", "xyz", "reminded_reply"),
        ("digest", "", "digest"),
        ("digest", "sha256:zz", "digest"),
        ("digest", "md5:" + "0" * 64, "digest"),
        ("digest", "sha256:" + "A" * 64, "digest"),
    ],
)
def test_malformed_heads_name_the_field(key: str, value: object, field: str) -> None:
    data = sample_export()["head"]
    data[key] = value
    with pytest.raises(RecordError) as info:
        Consent.from_dict(data)
    assert info.value.field.startswith(field)
    assert field in str(info.value)


@pytest.mark.parametrize(
    ("path", "value", "field", "index"),
    [
        (("schema",), 3, "schema", None),
        (("schema",), None, "schema", None),
        (("head", "schema"), 3, "schema", None),
        (("log",), {}, "log", None),
        (("log", 0, "trigger"), "teleport", "log[0].trigger", 0),
        (("log", 1, "at"), None, "log[1].at", 1),
        (("log", 1, "input"), "fax", "log[1].input", 1),
        (("log", 0, "sent", 0, "kind"), "telegram", "log[0].sent[0].kind", 0),
        (("log", 0, "sent"), "x", "log[0].sent", 0),
        (("log", 1, "reply", "intent"), "love", "log[1].reply.intent", 1),
        (("log", 1, "cancelled"), "k", "log[1].cancelled", 1),
        (("log", 2, "to_state"), "pending", "log[2].digest", 2),
        (("log", 2, "version"), 9, "log[2].version", 2),
        (("log", 2, "digest"), "sha256:" + "G" * 64, "log[2].digest", 2),
        (("log", 2, "digest"), "sha256:" + "0" * 64, "log[2].digest", 2),
        (("log", 1, "prev"), "md5:00", "log[1].prev", 1),
        (("log", 0, "sent", 0, "text"), "Other words", "log[0].digest", 0),
        (("head", "version"), 7, "version", None),
        (("head", "digest"), "sha256:" + "0" * 64, "digest", None),
    ],
)
def test_malformed_logs_name_the_field_and_event(
    path: tuple[Any, ...], value: object, field: str, index: int | None
) -> None:
    data = sample_export()
    _set(data, path, value)
    with pytest.raises(RecordError) as info:
        ConsentLog.from_dict(data)
    assert info.value.field == field
    assert info.value.index == index
    assert field in str(info.value)


def test_a_reply_that_is_not_an_object_is_named_once() -> None:
    data = sample_export()
    data["log"][1]["reply"] = "what?"
    with pytest.raises(RecordError) as info:
        ConsentLog.from_dict(data)
    assert info.value.index == 1
    assert info.value.field == "log[1].reply"


def test_not_a_mapping() -> None:
    with pytest.raises(RecordError, match="record"):
        Consent.from_dict([1, 2])
    with pytest.raises(RecordError, match="record"):
        ConsentLog.from_dict([1, 2])
    with pytest.raises(RecordError, match="event"):
        AuditEvent.from_dict("an event")


def test_error_names_the_contact() -> None:
    data = sample_export()
    data["head"]["state"] = "???"
    with pytest.raises(RecordError) as info:
        Consent.from_dict(data["head"])
    assert info.value.contact == data["contact"]
    assert str(data["contact"]) in str(info.value)
    data = sample_export()
    data["log"][1]["trigger"] = "???"
    with pytest.raises(RecordError) as info:
        ConsentLog.from_dict(data)
    assert info.value.contact == data["contact"]


def test_a_head_from_another_contact_fails_against_the_log() -> None:
    other = sample_export()
    other["head"]["contact"] = "+15555550199"
    with pytest.raises(RecordError) as info:
        ConsentLog.from_dict(other)
    assert info.value.field == "contact"


@pytest.mark.parametrize("contact", ["", "   ", "+1" * 200, "+1\x00"])
def test_new_refuses_unusable_contact_ids(contact: str) -> None:
    with pytest.raises(InvalidInput):
        Consent.new(contact)


def test_new_refuses_a_contact_that_is_not_a_str() -> None:
    with pytest.raises(TypeError):
        Consent.new(15555550100)  # type: ignore[arg-type]


# ---------------------------------------------------------------------------
# Message keys


def test_idempotency_keys_are_stable_and_distinct() -> None:
    assert idempotency_key("+1", 3, 0) == idempotency_key("+1", 3, 0)
    keys = {
        idempotency_key(c, v, p)
        for c in ("+1", "+2")
        for v in range(5)
        for p in range(3)
    }
    assert len(keys) == 30
    assert all(len(k) == 32 for k in keys)


def test_outgoing_keys_depend_on_contact_version_and_position() -> None:
    log = ConsentLog.from_dict(sample_export())
    keys = [m.key for e in log.events for m in e.sent]
    assert len(keys) == len(set(keys)) == 3
    first = log.events[0].sent[0]
    assert first.key == idempotency_key(log.contact, 1, 0)


# ---------------------------------------------------------------------------
# Replay


def test_replay_refuses_a_gap() -> None:
    flow = sample_flow()
    with pytest.raises(RecordError) as info:
        replay(flow.consent.contact, flow.log[1:])
    assert info.value.index == 0
    assert info.value.field == "log[0].version"


def test_replay_refuses_something_that_is_not_an_event() -> None:
    flow = sample_flow()
    with pytest.raises(RecordError) as info:
        replay(flow.consent.contact, (*flow.log, flow.log[-1].to_dict()))  # type: ignore[arg-type]
    assert info.value.index == 3


def test_replay_of_the_sample_is_its_head() -> None:
    flow = sample_flow()
    assert replay(flow.consent.contact, flow.log) == flow.consent
    assert flow.consent.state is ConsentState.OPTED_IN
    assert flow.consent.version == 3


def test_trusted_constructors_equal_the_attrs_ones() -> None:
    # The machine builds records through these; a field added to a class
    # without them would be caught here.
    log = ConsentLog.from_dict(sample_export())
    consent = log.head
    event = log.events[-1]
    message = log.events[0].sent[0]
    for built, original in (
        (make_consent(*attrs.astuple(consent, recurse=False)), consent),
        (make_event(*attrs.astuple(event, recurse=False)), event),
        (make_outgoing(*attrs.astuple(message, recurse=False)), message),
        (
            make_decision(consent, (message,), (event,), None),
            Decision(consent=consent, outgoing=(message,), events=(event,), reply=None),
        ),
    ):
        assert built == original
        assert type(built) is type(original)
        assert attrs.fields(type(built))  # frozen attrs class all the same
    with pytest.raises(AttributeError):
        event.version = 9  # type: ignore[misc]


# ---------------------------------------------------------------------------
# Schema 1: the 0.1.0 export, whose record carried its whole history


def test_schema1_export_is_read_as_a_head_and_a_chained_log() -> None:
    data = schema1()
    head = Consent.from_dict(data)
    log = ConsentLog.from_dict(schema1())
    assert log.head == head
    assert head.contact == data["contact"] == "+15550000002"
    assert head.state is ConsentState.OPTED_IN
    assert head.version == data["version"] == len(log.events) == 6
    # 0.1.0 saved the HELP answer's time (09:27) as the stop's; the head
    # read carries the stop's own (09:24, the fourth event).
    assert data["stopped_at"] == "2025-04-11T09:27:00+00:00"
    assert head.stopped_at == log.events[3].at
    assert head.stopped_at.isoformat() == "2025-04-11T09:24:00+00:00"
    assert head.opted_in_at is not None
    assert head.opted_in_at.isoformat() == data["opted_in_at"]
    assert head.recent_message_ids == tuple(data["recent_message_ids"])
    assert [e.trigger for e in log.events] == [
        Trigger.REQUEST,
        Trigger.CONSENT,
        Trigger.TEXT,
        Trigger.STOP,
        Trigger.HELP,
        Trigger.RESTART,
    ]
    assert verify(head.contact, log.events, head) == head
    prev = ""
    for event, old in zip(log.events, data["history"], strict=True):
        assert event.prev == prev
        assert event.digest.startswith("sha256:")
        prev = event.digest
        # Nothing of the 0.1.0 event is lost: only the chain fields are new.
        written = event.to_dict()
        for new in ("prev", "digest", "input_at", "cancelled"):
            written.pop(new)
        assert written == old
    assert head.digest == prev


def test_schema1_export_is_never_modified() -> None:
    ConsentLog.from_dict(schema1())
    Consent.from_dict(schema1())
    assert hashlib.sha256(SCHEMA1.read_bytes()).hexdigest() == SCHEMA1_SHA256


def test_schema1_export_becomes_a_schema2_export_that_round_trips() -> None:
    log = ConsentLog.from_dict(schema1())
    export = json.loads(json.dumps(log.to_dict()))
    assert export["schema"] == 2
    assert ConsentLog.from_dict(export) == log


def test_schema1_export_is_chained_under_a_log_key() -> None:
    log = ConsentLog.from_dict(schema1(), log_key=KEY)
    assert all(e.digest.startswith("hmac-sha256:") for e in log.events)
    assert log.verify(log_key=KEY) == log.head
    assert Consent.from_dict(schema1(), log_key=KEY) == log.head
    with pytest.raises(RecordError):
        log.verify()


def _top(key: str, value: object) -> Callable[[dict[str, Any]], None]:
    def edit(d: dict[str, Any]) -> None:
        d[key] = value

    return edit


def _event(i: int, *path: Any, value: object) -> Callable[[dict[str, Any]], None]:
    def edit(d: dict[str, Any]) -> None:
        _set(d["history"][i], path, value)

    return edit


def _drop(i: int) -> Callable[[dict[str, Any]], None]:
    def edit(d: dict[str, Any]) -> None:
        del d["history"][i]

    return edit


SCHEMA1_FORGERIES: dict[
    str, tuple[Callable[[dict[str, Any]], None], str, int | None]
] = {
    "stopped_at_nulled": (_top("stopped_at", None), "stopped_at", None),
    "stopped_at_moved_to_1970": (
        _top("stopped_at", "1970-01-01T00:00:00+00:00"),
        "stopped_at",
        None,
    ),
    "opted_in_at_moved": (
        _top("opted_in_at", "2025-04-11T09:19:00+00:00"),
        "opted_in_at",
        None,
    ),
    "state_edited": (_top("state", "stopped"), "state", None),
    "locale_edited": (_top("locale", "en"), "locale", None),
    "attempts_edited": (_top("attempts", 2), "attempts", None),
    "version_one_more": (_top("version", 7), "version", None),
    "version_one_less": (_top("version", 5), "version", None),
    "history_to_state_edited": (
        _event(3, "to_state", value="opted_in"),
        "log[3].trigger",
        3,
    ),
    "history_from_state_edited": (
        _event(4, "from_state", value="opted_in"),
        "log[4].from_state",
        4,
    ),
    "restart_with_input_revoke": (
        _event(5, "input", value="revoke"),
        "log[5].input",
        5,
    ),
    "restart_by_a_help_reply": (
        _event(5, "reply", "intent", value="help"),
        "log[5].reply.intent",
        5,
    ),
    "restart_dated_before_the_stop": (
        _event(5, "at", value="2025-04-11T09:20:00+00:00"),
        "log[5].at",
        5,
    ),
    "request_without_its_wording": (_event(0, "sent", value=[]), "log[0].sent", 0),
    "event_removed": (_drop(1), "log[1].version", 1),
    "last_event_removed": (_drop(5), "version", None),
    "history_digest_malformed": (
        _event(2, "digest", value="sha256:xyz"),
        "history[2].digest",
        2,
    ),
    "history_prev_malformed": (
        _event(2, "prev", value="nope"),
        "history[2].prev",
        2,
    ),
    "history_not_a_list": (_top("history", {}), "history", None),
}


@pytest.mark.parametrize(
    "reader", [Consent.from_dict, ConsentLog.from_dict], ids=["Consent", "ConsentLog"]
)
@pytest.mark.parametrize("forgery", list(SCHEMA1_FORGERIES))
def test_forged_schema1_exports_name_the_field(
    forgery: str, reader: Callable[[object], object]
) -> None:
    edit, field, index = SCHEMA1_FORGERIES[forgery]
    data = schema1()
    edit(data)
    with pytest.raises(RecordError) as info:
        reader(data)
    assert info.value.field == field
    assert info.value.index == index
    assert info.value.contact == "+15550000002"
    assert field in str(info.value)


@pytest.mark.parametrize("schema", [0, 3, "1", "2", None, 1.0 + 1e-9, [1]])
@pytest.mark.parametrize(
    "reader", [Consent.from_dict, ConsentLog.from_dict], ids=["Consent", "ConsentLog"]
)
def test_an_unknown_schema_is_a_record_error(
    schema: object, reader: Callable[[object], object]
) -> None:
    data = schema1()
    data["schema"] = schema
    with pytest.raises(RecordError) as info:
        reader(data)
    assert info.value.field == "schema"


def test_a_missing_schema_is_a_record_error() -> None:
    data = schema1()
    del data["schema"]
    with pytest.raises(RecordError) as info:
        Consent.from_dict(data)
    assert info.value.field == "schema"
