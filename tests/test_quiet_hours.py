"""Quiet hours: an agent's own messages wait for the end of the contact's night."""

from __future__ import annotations

from datetime import UTC, datetime, time, timedelta
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given
from hypothesis import strategies as st

from optin_core import (
    Consent,
    ConsentState,
    Inbound,
    InvalidInput,
    MemoryStore,
    MessageKind,
    Policy,
    PolicyError,
    RequestOptIn,
    SendBlocked,
    SendText,
    decide,
    may_text,
)
from optin_core._quiet import quiet_until
from optin_core._service import ConsentService

from .service_helpers import Clock, Sender

NY = "America/New_York"
NIGHT = ("21:00", "08:00")
POLICY = Policy(org_name="Acme", quiet_hours=NIGHT, time_zone=NY)


def opted_in(policy: Policy = POLICY, at: datetime | None = None) -> Consent:
    at = at or datetime(2025, 3, 3, 16, tzinfo=UTC)  # 11:00 in New York
    head = decide(Consent.new("+12125550100"), RequestOptIn(at=at), policy).consent
    reply = Inbound(text="yes", at=at + timedelta(minutes=1), message_id="y")
    return decide(head, reply, policy).consent


def test_a_text_at_night_waits_for_the_morning() -> None:
    head = opted_in()
    late = datetime(2025, 3, 4, 3, tzinfo=UTC)  # 22:00 in New York
    with pytest.raises(SendBlocked) as info:
        decide(head, SendText(body="hi", at=late), POLICY)
    assert info.value.reason == "quiet_hours"
    # 08:00 the next morning, New York time (EST, UTC-5).
    assert info.value.next_allowed_at == datetime(2025, 3, 4, 13, tzinfo=UTC)
    assert "quiet_hours" in str(info.value)
    morning = info.value.next_allowed_at
    assert decide(head, SendText(body="hi", at=morning), POLICY).changed
    assert not may_text(head, POLICY, at=late)
    assert may_text(head, POLICY, at=morning)
    assert may_text(head, POLICY)  # no time given: the state alone


def test_across_a_change_to_daylight_saving_time() -> None:
    head = opted_in()
    # 2025-03-09: New York springs forward at 02:00 local.
    night = datetime(2025, 3, 9, 6, 30, tzinfo=UTC)  # 01:30 EST
    with pytest.raises(SendBlocked) as info:
        decide(head, SendText(body="hi", at=night), POLICY)
    # 08:00 EDT (UTC-4), not 08:00 EST.
    assert info.value.next_allowed_at == datetime(2025, 3, 9, 12, tzinfo=UTC)


def test_the_contacts_own_zone_wins() -> None:
    head = opted_in()
    at = datetime(2025, 3, 4, 3, tzinfo=UTC)  # 22:00 in NY, 04:00 in Paris
    with pytest.raises(SendBlocked):
        decide(head, SendText(body="hi", at=at, time_zone="Europe/Paris"), POLICY)
    noon_paris = datetime(2025, 3, 4, 11, tzinfo=UTC)  # 06:00 in New York
    text = SendText(body="hi", at=noon_paris, time_zone="Europe/Paris")
    assert decide(head, text, POLICY).changed
    assert may_text(head, POLICY, at=noon_paris, time_zone="Europe/Paris")


def test_answers_to_the_contact_are_never_held_back() -> None:
    head = opted_in()
    night = datetime(2025, 3, 4, 3, tzinfo=UTC)
    stop = decide(head, Inbound(text="STOP", at=night, message_id="s"), POLICY)
    assert [m.kind for m in stop.outgoing] == [MessageKind.STOP_CONFIRMATION]
    helped = decide(head, Inbound(text="HELP", at=night, message_id="h"), POLICY)
    assert [m.kind for m in helped.outgoing] == [MessageKind.HELP]


def test_an_opt_in_request_waits_too() -> None:
    night = datetime(2025, 3, 4, 3, tzinfo=UTC)
    with pytest.raises(SendBlocked) as info:
        decide(Consent.new("+12125550100"), RequestOptIn(at=night), POLICY)
    assert info.value.reason == "quiet_hours"


def test_the_service_blocks_and_reports_too() -> None:
    clock = Clock(datetime(2025, 3, 3, 16, tzinfo=UTC))
    svc = ConsentService(POLICY, MemoryStore(), Sender(), clock=clock)
    svc.request_opt_in("+12125550100")
    svc.receive("+12125550100", "yes", message_id="y")
    clock.now = datetime(2025, 3, 4, 3, tzinfo=UTC)
    assert not svc.can_send("+12125550100")
    with pytest.raises(SendBlocked) as info:
        svc.send_text("+12125550100", "hi")
    assert info.value.next_allowed_at == datetime(2025, 3, 4, 13, tzinfo=UTC)
    assert svc.can_send("+12125550100", time_zone="Asia/Tokyo")  # noon there
    assert svc.send_text("+12125550100", "hi", time_zone="Asia/Tokyo").changed
    assert svc.get("+12125550100").state is ConsentState.OPTED_IN


@pytest.mark.parametrize(
    ("hours", "field"),
    [
        (("21:00", "21:00"), "same time"),
        (("25:00", "08:00"), "not a time"),
        (("21:00",), "expected"),
        ((time(21, tzinfo=UTC), time(8)), "without a zone"),
        ("21:00-08:00", "expected"),
    ],
)
def test_impossible_quiet_hours_are_refused(hours: object, field: str) -> None:
    with pytest.raises(PolicyError, match=field):
        Policy(org_name="Acme", quiet_hours=hours)  # type: ignore[arg-type]


def test_an_unknown_zone_is_refused() -> None:
    with pytest.raises(PolicyError, match="time_zone"):
        Policy(org_name="Acme", time_zone="Mars/Olympus")
    with pytest.raises(InvalidInput, match="time_zone"):
        SendText(body="hi", at=datetime(2025, 1, 1, tzinfo=UTC), time_zone="Nowhere")


def test_daytime_quiet_hours_work_too() -> None:
    siesta = Policy(org_name="Acme", quiet_hours=("13:00", "15:00"), time_zone="UTC")
    head = opted_in(siesta)
    with pytest.raises(SendBlocked) as info:
        decide(
            head, SendText(body="hi", at=datetime(2025, 3, 4, 14, tzinfo=UTC)), siesta
        )
    assert info.value.next_allowed_at == datetime(2025, 3, 4, 15, tzinfo=UTC)


ZONES = ["America/New_York", "Europe/Paris", "Australia/Sydney", "UTC", "Asia/Kolkata"]


@given(
    st.datetimes(
        min_value=datetime(2024, 1, 1),
        max_value=datetime(2027, 1, 1),
        timezones=st.just(UTC),
    ),
    st.sampled_from(ZONES),
    st.tuples(st.integers(0, 23), st.integers(0, 23)).filter(lambda h: h[0] != h[1]),
)
def test_quiet_hours_end_at_the_next_local_end_time(
    at: datetime, name: str, hours: tuple[int, int]
) -> None:
    where = ZoneInfo(name)
    start, end = time(hours[0]), time(hours[1])
    until = quiet_until(at, where, (start, end))
    local = at.astimezone(where)
    clock = local.time()
    inside = start <= clock < end if start < end else clock >= start or clock < end
    assert (until is not None) == inside
    if until is None:
        return
    assert until > at
    woken = until.astimezone(where)
    # The night ends at the end's wall-clock time, at most a day later (a
    # day and an hour across a change of time)...
    assert woken.time().hour in (end.hour, (end.hour + 1) % 24)
    assert until - at <= timedelta(hours=25)
    # ...and every moment before it is still quiet.
    just_before = until - timedelta(minutes=1)
    assert quiet_until(just_before, where, (start, end)) is not None
