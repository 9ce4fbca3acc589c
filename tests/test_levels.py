"""Consent levels and message categories (docs/rules.md, "Consent levels").

Every (level, category) pair through ``decide``, ``may_text``, ``sendable``
and ``ConsentService.can_send``; raising, keeping and losing a level; the
log's replay of levels; a property over random conversations; the seed's
French organisation; bad input.
"""

from __future__ import annotations

import itertools
from datetime import UTC, datetime, timedelta

import attrs
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from optin_core import (
    Attest,
    AuditEvent,
    Consent,
    ConsentState,
    ContactStopped,
    Decision,
    Import,
    Inbound,
    InvalidInput,
    Mode,
    Policy,
    PolicyError,
    ProviderOptOut,
    RecordError,
    RequestOptIn,
    ResendNotAllowed,
    SendBlocked,
    SendText,
    decide,
    may_text,
    sendable,
    verify,
)
from optin_core.testing import FakeClock, RecordingSender, memory_service

from .flows import rechained

T0 = datetime(2026, 12, 1, 9, 0, tzinfo=UTC)
CONTACT = "+15550100123"
METHODS = {"email": "written", "app": "written", "phone_call": "express"}


class Talk:
    """One contact's conversation through ``decide``, one step a minute."""

    def __init__(self, policy: Policy, contact: str = CONTACT) -> None:
        self.policy = policy
        self.consent = Consent.new(contact)
        self.events: list[AuditEvent] = []
        self.minute = 0
        self.ids = itertools.count()

    def at(self) -> datetime:
        self.minute += 1
        return T0 + timedelta(minutes=self.minute)

    def apply(self, input: object) -> Decision:
        decision = decide(self.consent, input, self.policy)  # type: ignore[arg-type]
        self.consent = decision.consent
        self.events.extend(decision.events)
        return decision

    def request(self) -> Decision:
        return self.apply(RequestOptIn(at=self.at()))

    def reply(self, text: str) -> Decision:
        return self.apply(
            Inbound(text=text, at=self.at(), message_id=f"in-{next(self.ids)}")
        )

    def attest(self, method: str) -> Decision:
        return self.apply(
            Attest(method=method, at=self.at(), by="agent", evidence=f"{method}-proof")
        )

    def text(self, category: str = "informational") -> Decision:
        return self.apply(SendText(body="Hello", at=self.at(), category=category))


def _opted_in_at(level: str, policy: Policy) -> Talk:
    """A contact opted in at ``level`` (``express`` by YES, else by the
    method the policy maps to it)."""
    talk = Talk(policy)
    talk.request()
    talk.reply("Yes")
    if level != "express":
        method = next(m for m, lv in policy.attestation_methods.items() if lv == level)
        talk.attest(method)
    assert talk.consent.level == level
    return talk


# ---------------------------------------------------------------------------
# Every (level, category) pair

LADDER = ("none", "disclosed", "express", "verified", "written")
CUSTOM = Policy(
    org_name="Acme",
    levels=LADDER,
    attestation_methods={"phone_call": "express", "id_check": "verified"}
    | {"email": "written"},
    categories={"account": "verified", "transactional": "express"},
)
CUSTOM_NEEDS = {
    "informational": "express",
    "transactional": "express",
    "account": "verified",
    "marketing": "written",
}


def _contact_at(level: str, policy: Policy) -> Talk:
    if level == "none":
        talk = Talk(policy)
        talk.request()  # PENDING: no consent yet
        return talk
    return _opted_in_at(level, policy)


@pytest.mark.parametrize(
    ("level", "category"),
    list(itertools.product(("none", "express", "verified", "written"), CUSTOM_NEEDS)),
)
def test_every_level_and_category_pair(level: str, category: str) -> None:
    policy = CUSTOM
    assert policy.category_levels == CUSTOM_NEEDS
    talk = _contact_at(level, policy)
    consent = talk.consent
    allowed = LADDER.index(level) >= LADDER.index(CUSTOM_NEEDS[category])
    assert may_text(consent, policy, category=category) is allowed
    assert (list(sendable([consent], policy, category)) == [consent]) is allowed
    if allowed:
        decision = talk.text(category)
        (event,) = decision.events
        assert event.category == category
        assert event.level == level
        assert [o.kind.value for o in decision.outgoing] == ["text"]
        return
    with pytest.raises(SendBlocked) as raised:
        talk.text(category)
    if level == "none":
        assert raised.value.reason == "awaiting_reply"
        return
    error = raised.value
    assert error.reason == "level_too_low"
    assert (error.category, error.required, error.current) == (
        category,
        CUSTOM_NEEDS[category],
        level,
    )
    # The methods that would reach the level, named in the message too.
    expected = sorted(
        m
        for m, lv in policy.attestation_methods.items()
        if LADDER.index(lv) >= LADDER.index(CUSTOM_NEEDS[category])
    )
    assert list(error.methods) == expected
    for method in expected:
        assert method in str(error)


DEFAULT = Policy(org_name="Acme", attestation_methods=METHODS)
DEFAULT_PAIRS = {
    # (state reached, level) -> {category: allowed}
    "pending": {"informational": False, "marketing": False},
    "express": {"informational": True, "marketing": False},
    "written": {"informational": True, "marketing": True},
    "stopped": {"informational": False, "marketing": False},
}


@pytest.mark.parametrize(
    ("where", "category"),
    [(w, c) for w, cats in DEFAULT_PAIRS.items() for c in cats],
)
def test_default_ladder_pairs_agree_everywhere(where: str, category: str) -> None:
    clock = FakeClock(T0)
    service = memory_service(DEFAULT, sender=RecordingSender(), clock=clock)
    service.request_opt_in(CONTACT)
    if where != "pending":
        service.receive(CONTACT, "Yes", message_id="m1")
    if where == "written":
        service.attest(CONTACT, method="email", evidence="signed", by="agent")
    if where == "stopped":
        service.receive(CONTACT, "STOP", message_id="m2")
    consent = service.get(CONTACT)
    allowed = DEFAULT_PAIRS[where][category]
    assert service.can_send(CONTACT, category=category) is allowed
    assert may_text(consent, DEFAULT, category=category) is allowed
    assert bool(list(sendable([consent], DEFAULT, category))) is allowed
    if allowed:
        service.send_text(CONTACT, "Hello", category=category)
    else:
        with pytest.raises(SendBlocked):
            service.send_text(CONTACT, "Hello", category=category)


@pytest.mark.parametrize("category", ["informational", "marketing"])
def test_disclaimer_mode_discloses_informational_only(category: str) -> None:
    policy = Policy(org_name="Acme", mode=Mode.DISCLAIMER, attestation_methods=METHODS)
    assert policy.category_levels["informational"] == "disclosed"
    talk = Talk(policy)
    assert may_text(talk.consent, policy, category=category) is (
        category == "informational"
    )
    if category == "informational":
        decision = talk.text(category)
        assert [e.trigger.value for e in decision.events] == ["disclose", "text"]
        assert talk.consent.level == "disclosed"
        return
    # Refused before anything goes out: not even the disclaimer.
    with pytest.raises(SendBlocked) as raised:
        talk.text(category)
    assert raised.value.reason == "level_too_low"
    assert raised.value.current == "disclosed"
    assert talk.events == []
    assert talk.consent.state is ConsentState.NEW


# ---------------------------------------------------------------------------
# Raising, keeping and losing a level


def test_an_attestation_raises_and_a_weaker_one_never_lowers() -> None:
    talk = _opted_in_at("express", DEFAULT)
    (raised,) = talk.attest("email").events
    assert (raised.trigger.value, raised.method, raised.level) == (
        "attest",
        "email",
        "written",
    )
    assert raised.evidence is not None
    (kept,) = talk.attest("phone_call").events
    assert kept.method == "phone_call"  # logged, with its evidence
    assert kept.level == "written"
    assert talk.consent.level == "written"


def test_an_attestation_of_a_pending_contact_gives_its_methods_level() -> None:
    talk = Talk(DEFAULT)
    talk.request()
    talk.attest("phone_call")
    assert talk.consent.state is ConsentState.OPTED_IN
    assert talk.consent.level == "express"
    talk = Talk(DEFAULT)
    talk.attest("app")
    assert talk.consent.state is ConsentState.OPTED_IN
    assert talk.consent.level == "written"


@pytest.mark.parametrize("how", ["stop", "provider", "import"])
def test_every_stop_loses_every_level(how: str) -> None:
    talk = _opted_in_at("written", DEFAULT)
    if how == "stop":
        talk.reply("STOP")
    elif how == "provider":
        talk.apply(ProviderOptOut(at=talk.at(), provider="twilio", code="21610"))
    else:
        talk.apply(
            Import(
                at=talk.at(),
                state=ConsentState.STOPPED,
                source="crm",
                by="ops",
                import_id="batch-1",
            )
        )
    assert talk.consent.state is ConsentState.STOPPED
    assert talk.consent.level == "none"
    assert verify(CONTACT, talk.events, talk.consent) == talk.consent


@pytest.mark.parametrize(
    ("restart", "policy"),
    [
        ("START", DEFAULT),
        ("Yes", attrs.evolve(DEFAULT, yes_restarts=True)),
    ],
)
def test_a_restart_gives_express_never_written(restart: str, policy: Policy) -> None:
    talk = _opted_in_at("written", policy)
    talk.reply("STOP")
    talk.reply(restart)
    assert talk.consent.state is ConsentState.OPTED_IN
    assert talk.consent.level == "express"
    with pytest.raises(SendBlocked) as raised:
        talk.text("marketing")
    assert (raised.value.required, raised.value.current) == ("written", "express")
    talk.attest("email")  # written consent collected again
    assert talk.text("marketing").events[0].category == "marketing"
    assert verify(CONTACT, talk.events, talk.consent).level == "written"


def test_the_level_is_replayed_from_the_log_and_a_forged_one_is_refused() -> None:
    talk = _opted_in_at("written", DEFAULT)
    talk.text("marketing")
    assert verify(CONTACT, talk.events, talk.consent) == talk.consent
    # Forge the YES to have given written consent, and re-chain every digest
    # after it, so that only the rules can tell.
    forged = rechained(
        CONTACT,
        [
            attrs.evolve(e, level="written") if e.trigger.value == "consent" else e
            for e in talk.events
        ],
    )
    with pytest.raises(RecordError) as refused:
        verify(CONTACT, forged)
    assert "level" in str(refused.value)


def test_a_text_event_records_its_category_and_an_event_its_level() -> None:
    talk = _opted_in_at("written", DEFAULT)
    (event,) = talk.text("marketing").events
    assert event.to_dict()["category"] == "marketing"
    assert event.to_dict()["level"] == "written"
    # Defaults are not written, so 0.2.0 logs keep their encoding.
    talk2 = _opted_in_at("express", DEFAULT)
    (plain,) = talk2.text().events
    assert "category" not in plain.to_dict()
    assert "level" not in plain.to_dict()
    assert AuditEvent.from_dict(event.to_dict()) == event


# ---------------------------------------------------------------------------
# A property over random conversations

STEPS = st.lists(
    st.one_of(
        st.tuples(st.just("reply"), st.sampled_from(["Yes", "STOP", "START", "hm?"])),
        st.tuples(st.just("attest"), st.sampled_from(sorted(METHODS))),
        st.tuples(st.just("text"), st.sampled_from(["informational", "marketing"])),
        st.tuples(st.just("request"), st.just("")),
    ),
    max_size=25,
)
RANK = {"none": 0, "disclosed": 1, "express": 2, "written": 3}


@settings(max_examples=150, deadline=None)
@given(steps=STEPS, yes_restarts=st.booleans())
def test_no_text_ever_goes_above_the_contacts_level(
    steps: list[tuple[str, str]], yes_restarts: bool
) -> None:
    policy = attrs.evolve(DEFAULT, yes_restarts=yes_restarts)
    talk = Talk(policy)
    written_since_restart = False
    for kind, arg in steps:
        before = talk.consent
        try:
            if kind == "reply":
                decision = talk.reply(arg)
            elif kind == "attest":
                decision = talk.attest(arg)
            elif kind == "text":
                decision = talk.text(arg)
            else:
                decision = talk.request()
        except (SendBlocked, PolicyError, InvalidInput) as refused:
            if kind == "text" and isinstance(refused, SendBlocked):
                # Refused: either not texting at all, or the level too low.
                assert (
                    before.state is not ConsentState.OPTED_IN
                    or RANK[before.level] < RANK[policy.category_levels[arg]]
                )
            continue
        except (ContactStopped, ResendNotAllowed):
            # Attestations of stopped contacts, requests past the policy's
            # resend limits: refused, and nothing is recorded.
            assert kind in ("attest", "request")
            assert talk.consent is before
            continue
        if kind == "text":
            (event,) = decision.events
            needed = policy.category_levels[arg]
            assert RANK[before.level] >= RANK[needed], (before.level, arg)
            assert event.category == arg
        for event in decision.events:
            if event.trigger.value == "attest" and event.level == "written":
                written_since_restart = True
            if event.trigger.value == "restart":
                written_since_restart = False
                assert event.level == "express"
        if talk.consent.level == "written":
            assert written_since_restart
        if talk.consent.state is ConsentState.STOPPED:
            assert talk.consent.level == "none"
    assert verify(CONTACT, talk.events, talk.consent) == talk.consent


# ---------------------------------------------------------------------------
# The seed's French organisation


def test_french_org_informational_after_oui_marketing_after_email() -> None:
    policy = Policy(
        org_name="Agence Dupont",
        default_locale="fr",
        attestation_methods={"email": "written"},
    )
    talk = Talk(policy)
    talk.request()
    assert talk.reply("Oui").consent.state is ConsentState.OPTED_IN
    assert talk.text("informational").outgoing[0].text == "Hello"
    with pytest.raises(SendBlocked) as raised:
        talk.text("marketing")
    assert raised.value.reason == "level_too_low"
    assert raised.value.methods == ("email",)
    assert "email" in str(raised.value)
    talk.attest("email")
    assert talk.text("marketing").events[0].level == "written"
    stop = talk.reply("STOP")
    assert [o.kind.value for o in stop.outgoing] == ["stop_confirmation"]
    for category in ("informational", "marketing"):
        with pytest.raises(SendBlocked) as stopped:
            talk.text(category)
        assert stopped.value.reason == "stopped"
    talk.reply("START")
    assert talk.consent.level == "express"
    talk.text("informational")
    with pytest.raises(SendBlocked) as again:
        talk.text("marketing")
    assert again.value.reason == "level_too_low"


# ---------------------------------------------------------------------------
# Bad input


def test_an_unknown_category_is_invalid_input_everywhere() -> None:
    talk = _opted_in_at("express", DEFAULT)
    with pytest.raises(InvalidInput, match="unknown message category 'promo'"):
        talk.text("promo")
    with pytest.raises(InvalidInput, match=r"Policy\.categories"):
        may_text(talk.consent, DEFAULT, category="promo")
    with pytest.raises(InvalidInput):
        sendable([talk.consent], DEFAULT, "promo")
    service = memory_service(DEFAULT)
    with pytest.raises(InvalidInput):
        service.can_send(CONTACT, category="promo")
    with pytest.raises(InvalidInput, match="category name"):
        SendText(body="x", at=T0, category="Promo Offers")


@pytest.mark.parametrize(
    ("settings_", "field", "message"),
    [
        ({"categories": {"promo": "gold"}}, "categories", "not a level"),
        ({"categories": {"Promo!": "express"}}, "categories", "category name"),
        ({"attestation_methods": {"email": "gold"}}, "attestation_methods", "gold"),
        (
            {"attestation_methods": {"fax": "disclosed"}},
            "attestation_methods",
            "express",
        ),
        ({"levels": ("none", "disclosed", "express", "express")}, "levels", "twice"),
        ({"levels": ("disclosed", "none", "express")}, "levels", "start with"),
        ({"levels": ("none", "express", "disclosed")}, "levels", "below"),
        ({"levels": ("none", "disclosed", "express", "Top")}, "levels", "level name"),
        ({"levels": "none"}, "levels", "sequence"),
    ],
)
def test_bad_levels_and_categories_are_policy_errors(
    settings_: dict[str, object], field: str, message: str
) -> None:
    with pytest.raises(PolicyError, match=message) as raised:
        Policy(org_name="Acme", **settings_)  # type: ignore[arg-type]
    assert field in str(raised.value)


def test_a_ladder_without_written_sends_marketing_at_its_top() -> None:
    policy = Policy(
        org_name="Acme",
        levels=("none", "disclosed", "express", "signed"),
        attestation_methods={"paper": "signed"},
    )
    assert policy.category_levels["marketing"] == "signed"
    talk = _opted_in_at("signed", policy)
    assert talk.text("marketing").events[0].level == "signed"


def test_levels_and_categories_load_from_toml(tmp_path: object) -> None:
    from pathlib import Path

    path = Path(str(tmp_path)) / "policy.toml"
    path.write_text(
        'org_name = "Acme"\n'
        'attestation_methods = { email = "written", phone_call = "express" }\n'
        "[categories]\n"
        'transactional = "express"\n',
        encoding="utf-8",
    )
    policy = Policy.from_toml(path)
    assert policy.attestation_level("email") == "written"
    assert policy.category_levels["transactional"] == "express"
    path.write_text(
        'org_name = "Acme"\n[categories]\ntransactional = "platinum"\n',
        encoding="utf-8",
    )
    with pytest.raises(PolicyError, match="platinum"):
        Policy.from_toml(path)


def test_the_receipt_names_the_level_and_what_gave_it() -> None:
    clock = FakeClock(T0)
    service = memory_service(DEFAULT, clock=clock)
    service.request_opt_in(CONTACT)
    service.receive(CONTACT, "Yes", message_id="m1")
    clock.advance(minutes=5)
    service.attest(CONTACT, method="email", evidence="signed form 42", by="agent")
    receipt = service.receipt(CONTACT, format="text")
    assert "written" in receipt.casefold()
    assert "email" in receipt
