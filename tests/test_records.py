"""Records: serialisation round trips, malformed input, replay."""

from __future__ import annotations

import json

import pytest
from hypothesis import given

from optin_core import SCHEMA_VERSION, Consent, Decision, RecordError, replay
from optin_core._records import idempotency_key

from .strategies import consents


@given(consents())
def test_round_trip_through_json(consent: Consent) -> None:
    data = json.loads(json.dumps(consent.to_dict()))
    assert Consent.from_dict(data) == consent


@given(consents())
def test_replay_rebuilds_the_record(consent: Consent) -> None:
    assert replay(consent.contact, consent.history) == consent
    assert consent.version == len(consent.history)


@given(consents())
def test_history_versions_count_up(consent: Consent) -> None:
    assert [e.version for e in consent.history] == list(range(1, consent.version + 1))
    for before, after in zip(consent.history, consent.history[1:], strict=False):
        assert after.from_state is before.to_state


def _sample() -> dict[str, object]:
    from .flows import Flow

    flow = Flow()
    flow.request(0, greeting="Hi")
    flow.reply("what?", 1)
    flow.reply("yes", 2)
    return flow.consent.to_dict()


@pytest.mark.parametrize(
    ("path", "value", "field"),
    [
        (("schema",), 99, "schema"),
        (("schema",), None, "schema"),
        (("state",), "maybe", "state"),
        (("version",), -1, "version"),
        (("version",), 7, "version"),
        (("version",), True, "version"),
        (("contact",), "", "contact"),
        (("contact",), 5, "contact"),
        (("requested_at",), "yesterday", "requested_at"),
        (("requested_at",), "2026-01-01T00:00:00", "requested_at"),
        (("recent_message_ids",), "m1", "recent_message_ids"),
        (("history",), {}, "history"),
        (("history", 0, "trigger"), "teleport", "history[0].trigger"),
        (("history", 1, "at"), None, "history[1].at"),
        (("history", 1, "input"), "fax", "history[1].input"),
        (("history", 0, "sent", 0, "kind"), "telegram", "history[0].sent[0].kind"),
        (("history", 0, "sent"), "x", "history[0].sent"),
        (("history", 1, "reply", "intent"), "love", "history[1].reply.intent"),
        (("history", 2, "to_state"), "pending", "history[2]"),
        (("history", 2, "version"), 9, "history[2].version"),
    ],
)
def test_malformed_records_name_the_field(
    path: tuple[object, ...], value: object, field: str
) -> None:
    data = _sample()
    target: object = data
    for key in path[:-1]:
        target = target[key]  # type: ignore[index]
    target[path[-1]] = value  # type: ignore[index]
    with pytest.raises(RecordError) as info:
        Consent.from_dict(data)
    assert info.value.field.startswith(field)
    assert field in str(info.value)


def test_not_a_mapping() -> None:
    with pytest.raises(RecordError, match="record"):
        Consent.from_dict([1, 2])


def test_error_names_the_contact() -> None:
    data = _sample()
    data["state"] = "???"
    with pytest.raises(RecordError) as info:
        Consent.from_dict(data)
    assert info.value.contact == data["contact"]
    assert str(data["contact"]) in str(info.value)


def test_schema_version_is_written() -> None:
    assert _sample()["schema"] == SCHEMA_VERSION


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
    data = Consent.from_dict(_sample())
    keys = [m.key for e in data.history for m in e.sent]
    assert len(keys) == len(set(keys))
    first = data.history[0].sent[0]
    assert first.key == idempotency_key(data.contact, 1, 0)


def test_replay_refuses_a_gap() -> None:
    consent = Consent.from_dict(_sample())
    with pytest.raises(RecordError, match="history"):
        replay(consent.contact, consent.history[1:])


def test_trusted_constructors_equal_the_attrs_ones() -> None:
    # The machine builds records through these; a field added to a class
    # without them would be caught here.
    import attrs

    from optin_core._records import (
        make_consent,
        make_decision,
        make_event,
        make_outgoing,
    )

    consent = Consent.from_dict(_sample())
    event = consent.history[-1]
    message = consent.history[0].sent[0]
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
