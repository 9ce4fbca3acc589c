"""One contact per number: the service's contact key, phone numbers and zones."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from optin_core import (
    ConsentState,
    InvalidInput,
    MessageKind,
    Policy,
    canonical_contact,
    normalize_phone,
    phone_key,
)
from optin_core._phone import zone_of_number
from optin_core._service import ConsentService

from .service_helpers import STORE_KINDS, Clock, Sender, make_store

SPELLINGS = ("+1 415 555 0101", "+1-415-555-0101", "+1 (415) 555.0101", "+14155550101")


@pytest.fixture(params=STORE_KINDS)
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Any:
    s = make_store(request.param, tmp_path)
    yield s
    if hasattr(s, "close"):
        s.close()


def test_every_spelling_of_a_number_is_one_record(store: Any) -> None:
    sender = Sender()
    svc = ConsentService(Policy(org_name="Acme"), store, sender, clock=Clock())
    svc.request_opt_in(SPELLINGS[0])
    svc.receive(SPELLINGS[1], "Yes", message_id="SM1")
    assert svc.can_send(SPELLINGS[2])
    svc.receive(SPELLINGS[2], "STOP", message_id="SM2")
    for spelling in SPELLINGS:
        assert svc.get(spelling).state is ConsentState.STOPPED
        assert not svc.can_send(spelling)
    assert {m.contact for m in sender.sent} == {"+14155550101"}
    assert [e.trigger for e in svc.history(SPELLINGS[3]).events] == [
        "request",
        "consent",
        "stop",
    ]
    assert sender.kinds()[-1] is MessageKind.STOP_CONFIRMATION


@pytest.mark.parametrize(
    ("given", "expected"),
    [
        (" +33 6 12 34 56 78 ", "+33612345678"),
        ("+44 (20) 7946-0958", "+442079460958"),
        ("martha@example.com", "martha@example.com"),
        ("0612345678", "0612345678"),  # national: needs phone_key
        ("+1 415 CALL NOW", "+1 415 CALL NOW"),
        ("+0 123 456 789", "+0 123 456 789"),  # no country code starts with 0
        ("+12", "+12"),
        ("whatsapp:+14155550101", "whatsapp:+14155550101"),
    ],
)
def test_the_default_contact_key(given: str, expected: str) -> None:
    assert canonical_contact(given) == expected


def test_phone_key_reads_national_numbers(store: Any) -> None:
    svc = ConsentService(
        Policy(org_name="Acme"),
        store,
        Sender(),
        clock=Clock(),
        contact_key=phone_key("FR"),
    )
    svc.request_opt_in("06 12 34 56 78")
    assert svc.get("+33 6 12 34 56 78").state is ConsentState.PENDING
    assert svc.get("+33612345678").version == 1
    assert phone_key("FR")("martha@example.com") == "martha@example.com"
    with pytest.raises(InvalidInput):
        svc.request_opt_in("06 12")


def test_invalid_numbers_are_never_guessed() -> None:
    with pytest.raises(InvalidInput, match="not a valid phone number"):
        normalize_phone("0612345678", "US")
    with pytest.raises(InvalidInput):
        phone_key("US")("0612345678")


def test_a_contact_key_that_misbehaves_is_refused_and_stores_nothing(
    store: Any,
) -> None:
    def boom(contact: str) -> str:
        raise RuntimeError("directory down")

    def number(contact: str) -> Any:
        return 42

    for key, error in ((boom, InvalidInput), (number, TypeError)):
        svc = ConsentService(
            Policy(org_name="Acme"), store, Sender(), clock=Clock(), contact_key=key
        )
        with pytest.raises(error):
            svc.request_opt_in("+14155550101")
    assert store.get("+14155550101") is None
    with pytest.raises(TypeError, match="contact_key"):
        ConsentService(Policy(org_name="Acme"), store, Sender(), contact_key=5)  # type: ignore[arg-type]


def test_no_contact_key_keeps_ids_as_given(store: Any) -> None:
    svc = ConsentService(
        Policy(org_name="Acme"), store, Sender(), clock=Clock(), contact_key=None
    )
    svc.request_opt_in("+1 415 555 0101")
    assert store.get("+1 415 555 0101") is not None
    assert store.get("+14155550101") is None


def test_a_numbers_zone_when_it_has_one() -> None:
    assert zone_of_number("+33612345678") == "Europe/Paris"
    assert zone_of_number("+14155550101") == "America/Los_Angeles"
    assert zone_of_number("+1800") is None
    assert zone_of_number("martha@example.com") is None


def test_quiet_hours_use_the_numbers_zone_by_default(store: Any) -> None:
    from datetime import UTC, datetime

    from optin_core import SendBlocked

    policy = Policy(org_name="Acme", quiet_hours=("21:00", "08:00"))
    clock = Clock(datetime(2025, 3, 3, 12, tzinfo=UTC))  # 13:00 in Paris
    svc = ConsentService(policy, store, Sender(), clock=clock)
    svc.request_opt_in("+33612345678")
    svc.receive("+33612345678", "yes", message_id="y")
    clock.now = datetime(2025, 3, 3, 21, 30, tzinfo=UTC)  # 22:30 in Paris
    with pytest.raises(SendBlocked) as info:
        svc.send_text("+33612345678", "Bonsoir")
    assert info.value.next_allowed_at == datetime(2025, 3, 4, 7, tzinfo=UTC)
    # The policy's own zone (UTC) would have allowed it until 21:00 UTC.
    clock.now = datetime(2025, 3, 3, 20, 30, tzinfo=UTC)  # 21:30 in Paris
    assert not svc.can_send("+33612345678")
    assert svc.can_send("+33612345678", time_zone="UTC")
