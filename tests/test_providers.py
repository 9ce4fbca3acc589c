"""Providers as they behave: opt-out error codes, inbound payloads, signatures."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from optin_core import RecipientOptedOut
from optin_core.providers import (
    OPT_OUT_CODES,
    opt_out_error,
    telnyx_inbound,
    twilio_inbound,
    verify_twilio_signature,
    vonage_inbound,
)

DATA = Path(__file__).parent / "data" / "providers"


def sample(name: str) -> Any:
    return json.loads((DATA / name).read_text(encoding="utf-8"))


def test_every_opt_out_code_cites_a_public_page() -> None:
    assert {(c.provider, c.code) for c in OPT_OUT_CODES} >= {
        ("twilio", "21610"),
        ("telnyx", "40300"),
        ("vonage", "9"),
    }
    for code in OPT_OUT_CODES:
        assert code.source.startswith("https://")
        assert code.meaning


@pytest.mark.parametrize(
    ("provider", "code"), [("twilio", 21610), ("Twilio", "21610"), ("telnyx", "40300")]
)
def test_opt_out_codes_become_the_exception_send_raises(
    provider: str, code: object
) -> None:
    error = opt_out_error(provider, code)
    assert isinstance(error, RecipientOptedOut)
    assert error.provider == provider.lower()
    assert error.code == str(code)
    assert "opted out" in str(error)


@pytest.mark.parametrize(("provider", "code"), [("twilio", 30003), ("acme", 21610)])
def test_other_codes_are_not_opt_outs(provider: str, code: object) -> None:
    assert opt_out_error(provider, code) is None


def test_twilio_inbound() -> None:
    sms = twilio_inbound(sample("twilio_inbound.json"))
    assert (sms.provider, sms.contact, sms.text) == ("twilio", "+14155550101", "Yes")
    assert sms.message_id == "SMaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
    assert sms.at is None  # Twilio sends no timestamp
    assert sms.opt_out is None
    stop = twilio_inbound(sample("twilio_inbound_opt_out.json"))
    assert (stop.text, stop.opt_out) == ("STOP", "STOP")


def test_telnyx_inbound() -> None:
    sms = telnyx_inbound(sample("telnyx_message_received.json"))
    assert (sms.contact, sms.text) == ("+18665550001", "Hello, World!")
    assert sms.message_id == "7ee4241c-f127-47e5-9c34-3aac291f8058"
    assert sms.at == datetime(2019, 1, 23, 18, 10, 2, 574000, tzinfo=UTC)


def test_vonage_inbound_both_apis() -> None:
    old = vonage_inbound(sample("vonage_sms_inbound.json"))
    assert (old.contact, old.text, old.message_id) == (
        "+447700900001",
        "Hello world",
        "0A0000000123ABCD1",
    )
    assert old.at == datetime(2020, 1, 1, 12, 0, tzinfo=UTC)
    new = vonage_inbound(sample("vonage_messages_inbound.json"))
    assert (new.contact, new.message_id) == (
        "+447700900001",
        "aaaaaaaa-bbbb-cccc-dddd-0123456789ab",
    )
    assert new.at == datetime(2020, 1, 1, 14, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    ("parse", "name", "field"),
    [
        (twilio_inbound, "twilio_inbound.json", "From"),
        (twilio_inbound, "twilio_inbound.json", "MessageSid"),
        (twilio_inbound, "twilio_inbound.json", "Body"),
        (vonage_inbound, "vonage_sms_inbound.json", "messageId"),
        (vonage_inbound, "vonage_sms_inbound.json", "text"),
        (vonage_inbound, "vonage_messages_inbound.json", "message_uuid"),
        (vonage_inbound, "vonage_messages_inbound.json", "from"),
    ],
)
def test_a_payload_missing_a_field_names_it(parse: Any, name: str, field: str) -> None:
    payload = sample(name)
    del payload[field]
    with pytest.raises(ValueError, match=field):
        parse(payload)


@pytest.mark.parametrize("path", [("data",), ("payload", "id"), ("payload", "from")])
def test_a_telnyx_event_missing_a_field_names_it(path: tuple[str, ...]) -> None:
    event = sample("telnyx_message_received.json")
    keys = path if path == ("data",) else ("data", *path)
    target = event
    for key in keys[:-1]:
        target = target[key]
    del target[keys[-1]]
    with pytest.raises(ValueError, match=path[-1]):
        telnyx_inbound(event)


def test_a_telnyx_delivery_event_is_not_an_inbound_message() -> None:
    event = sample("telnyx_message_received.json")
    event["data"]["event_type"] = "message.finalized"
    with pytest.raises(ValueError, match=r"message\.finalized"):
        telnyx_inbound(event)


def test_twilio_signatures_are_checked_by_twilios_own_validator() -> None:
    from twilio.request_validator import RequestValidator as validator

    url = "https://example.com/sms"
    params = sample("twilio_inbound.json")
    token = "12345"
    signature = validator(token).compute_signature(url, params)
    assert verify_twilio_signature(url, params, signature, token)
    assert not verify_twilio_signature(url, params, signature, "other token")
    assert not verify_twilio_signature(
        url, {**params, "Body": "STOP"}, signature, token
    )


def test_twilio_signatures_without_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    import sys

    monkeypatch.setitem(sys.modules, "twilio.request_validator", None)
    with pytest.raises(ImportError, match=r"optin-core\[twilio\]"):
        verify_twilio_signature("https://x", {}, "sig", "token")
