"""Consent levels and message categories (docs/rules.md, "Consent levels").

Every (level, category) pair, on the default ladder and on a custom one
with an extra level and custom categories, in both modes, through
``decide``, ``may_text``, ``sendable`` and ``ConsentService.can_send`` /
``send_text``; raising, keeping and losing a level; the log's replay of
levels and forged levels refused; properties over random conversations; the
seed's French organisation; bad input; the receipt.
"""

from __future__ import annotations

import itertools
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path

import attrs
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from optin_core import (
    Attest,
    AuditEvent,
    Consent,
    ConsentService,
    ConsentState,
    ContactStopped,
    Decision,
    Import,
    Inbound,
    InvalidInput,
    MessageKind,
    Mode,
    OptinError,
    Policy,
    PolicyError,
    ProviderOptOut,
    RecordError,
    RequestOptIn,
    ResendNotAllowed,
    Revoke,
    SendBlocked,
    SendText,
    Trigger,
    decide,
    may_text,
    sendable,
    verify,
)
from optin_core.testing import FakeClock, RecordingSender, memory_service
from optin_core.testing.strategies import conversations, policies

from .flows import rechained

T0 = datetime(2026, 12, 1, 9, 0, tzinfo=UTC)
CONTACT = "+15550100123"
METHODS = {"email": "written", "app": "written", "phone_call": "express"}

# Hand-written oracles: the ladders and what each category needs, as the
# rules state them (not read back from the policy under test).
DEFAULT_LADDER = ("none", "disclosed", "express", "written")
CUSTOM_LADDER = ("none", "disclosed", "express", "verified", "written")
CUSTOM_METHODS = {"phone_call": "express", "id_check": "verified", "email": "written"}
CUSTOM_CATEGORIES = {
    "account": "verified",
    "transactional": "express",
    "notices": "disclosed",
}


@attrs.frozen
class Setup:
    policy: Policy
    ladder: tuple[str, ...]
    needs: Mapping[str, str]

    def rank(self, level: str) -> int:
        return self.ladder.index(level)

    def methods_reaching(self, level: str) -> tuple[str, ...]:
        return tuple(
            sorted(
                m
                for m, lv in self.policy.attestation_methods.items()
                if self.rank(lv) >= self.rank(level)
            )
        )


SETUPS = {
    "default": Setup(
        Policy(org_name="Acme", attestation_methods=METHODS),
        DEFAULT_LADDER,
        {"informational": "express", "marketing": "written"},
    ),
    "default-disclaimer": Setup(
        Policy(org_name="Acme", mode=Mode.DISCLAIMER, attestation_methods=METHODS),
        DEFAULT_LADDER,
        {"informational": "disclosed", "marketing": "written"},
    ),
    "custom": Setup(
        Policy(
            org_name="Acme",
            levels=CUSTOM_LADDER,
            attestation_methods=CUSTOM_METHODS,
            categories=CUSTOM_CATEGORIES,
        ),
        CUSTOM_LADDER,
        {"informational": "express", "marketing": "written"} | CUSTOM_CATEGORIES,
    ),
    "custom-disclaimer": Setup(
        Policy(
            org_name="Acme",
            mode=Mode.DISCLAIMER,
            levels=CUSTOM_LADDER,
            attestation_methods=CUSTOM_METHODS,
            categories=CUSTOM_CATEGORIES,
        ),
        CUSTOM_LADDER,
        {"informational": "disclosed", "marketing": "written"} | CUSTOM_CATEGORIES,
    ),
}
DEFAULT = SETUPS["default"].policy
CUSTOM = SETUPS["custom"].policy


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

    def apply(self, input: object, policy: Policy | None = None) -> Decision:
        decision = decide(self.consent, input, policy or self.policy)  # type: ignore[arg-type]
        self.consent = decision.consent
        self.events.extend(decision.events)
        return decision

    def request(self, policy: Policy | None = None) -> Decision:
        return self.apply(RequestOptIn(at=self.at()), policy)

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
# Every (level, category) pair, everywhere


@attrs.frozen
class Situation:
    """Steps that put a contact somewhere, the level a text would go out at
    (``disclosed`` when the disclaimer goes first) and, when the state
    itself refuses texting, the reason."""

    steps: tuple[tuple[str, str], ...]
    at_send: str
    refused: str | None = None


_STOPPED = (("request", ""), ("reply", "Yes"), ("attest", "email"), ("reply", "STOP"))
SITUATIONS: dict[Mode, dict[str, Situation]] = {
    Mode.ATTESTATION: {
        "new": Situation((), "none", "opt_in_required"),
        "pending": Situation((("request", ""),), "none", "awaiting_reply"),
        # Disclosed under an earlier disclaimer policy: no texts until YES.
        "disclosed": Situation(
            (("request", "disclaimer"),), "disclosed", "opt_in_required"
        ),
        "express": Situation((("request", ""), ("reply", "Yes")), "express"),
        "verified": Situation(
            (("request", ""), ("reply", "Yes"), ("attest", "id_check")), "verified"
        ),
        "written": Situation(
            (("request", ""), ("reply", "Yes"), ("attest", "email")), "written"
        ),
        "stopped": Situation(_STOPPED, "none", "stopped"),
    },
    Mode.DISCLAIMER: {
        # The disclaimer goes first: the text goes out at ``disclosed``.
        "new": Situation((), "disclosed"),
        # Pending under an earlier attestation policy: disclosed first too.
        "pending": Situation((("request", "attestation"),), "disclosed"),
        "disclosed": Situation((("request", ""),), "disclosed"),
        "express": Situation((("request", ""), ("reply", "Yes")), "express"),
        "verified": Situation(
            (("request", ""), ("reply", "Yes"), ("attest", "id_check")), "verified"
        ),
        "written": Situation(
            (("request", ""), ("reply", "Yes"), ("attest", "email")), "written"
        ),
        "stopped": Situation(_STOPPED, "none", "stopped"),
    },
}


def _pairs() -> list[tuple[str, str, str]]:
    out = []
    for name, setup in SETUPS.items():
        for where in SITUATIONS[setup.policy.mode]:
            if where == "verified" and "verified" not in setup.ladder:
                continue
            out.extend((name, where, category) for category in setup.needs)
    return out


def _other_mode(policy: Policy, how: str) -> Policy:
    if how == "disclaimer":
        return attrs.evolve(policy, mode=Mode.DISCLAIMER)
    if how == "attestation":
        return attrs.evolve(policy, mode=Mode.ATTESTATION)
    return policy


def _drive_talk(policy: Policy, steps: Sequence[tuple[str, str]]) -> Talk:
    talk = Talk(policy)
    for kind, arg in steps:
        if kind == "request":
            talk.request(_other_mode(policy, arg))
        elif kind == "reply":
            talk.reply(arg)
        else:
            talk.attest(arg)
    return talk


def _drive_service(
    policy: Policy, steps: Sequence[tuple[str, str]]
) -> tuple[ConsentService, RecordingSender]:
    clock, sender = FakeClock(T0), RecordingSender()
    service = memory_service(policy, sender=sender, clock=clock)
    for number, (kind, arg) in enumerate(steps):
        clock.advance(minutes=1)
        if kind == "request":
            # Another policy over the same store: what a change of policy is.
            other = ConsentService(
                _other_mode(policy, arg), service.store, sender, clock=clock
            )
            other.request_opt_in(CONTACT)
        elif kind == "reply":
            service.receive(CONTACT, arg, message_id=f"m{number}")
        else:
            service.attest(CONTACT, method=arg, evidence=f"{arg}-proof", by="agent")
    clock.advance(minutes=1)
    return service, sender


@pytest.mark.parametrize(("setup", "where", "category"), _pairs())
def test_every_level_and_category_pair(setup: str, where: str, category: str) -> None:
    s = SETUPS[setup]
    policy = s.policy
    situation = SITUATIONS[policy.mode][where]
    assert dict(policy.category_levels) == s.needs
    needed = s.needs[category]
    allowed = situation.refused is None and s.rank(situation.at_send) >= s.rank(needed)
    reason = situation.refused or "level_too_low"

    # decide, may_text, sendable
    talk = _drive_talk(policy, situation.steps)
    consent = talk.consent
    if situation.at_send != "disclosed" or where == "disclosed":
        assert consent.level == situation.at_send
    assert may_text(consent, policy, category=category) is allowed
    assert list(sendable([consent], policy, category)) == ([consent] if allowed else [])
    logged = len(talk.events)
    if allowed:
        decision = talk.text(category)
        event = decision.events[-1]
        assert event.trigger is Trigger.TEXT
        assert (event.category, event.level) == (category, situation.at_send)
        assert decision.outgoing[-1].kind is MessageKind.TEXT
        assert verify(CONTACT, talk.events, talk.consent) == talk.consent
    else:
        with pytest.raises(SendBlocked) as raised:
            talk.text(category)
        error = raised.value
        assert error.reason == reason
        assert talk.consent is consent
        assert len(talk.events) == logged
        if reason == "level_too_low":
            assert (error.category, error.required, error.current) == (
                category,
                needed,
                situation.at_send,
            )
            assert error.methods == s.methods_reaching(needed)
            assert error.methods  # every level here has a method reaching it
            for method in error.methods:
                assert method in str(error)
            assert needed in str(error)

    # ConsentService.can_send and send_text agree
    service, sender = _drive_service(policy, situation.steps)
    head = service.get(CONTACT)
    assert (head.state, head.level) == (consent.state, consent.level)
    assert service.can_send(CONTACT, category=category) is allowed
    sent_before = list(sender.kinds(CONTACT))
    if allowed:
        service.send_text(CONTACT, "Hello", category=category)
        assert sender.kinds(CONTACT)[-1] is MessageKind.TEXT
        assert sender.texts(CONTACT)[-1] == "Hello"
        assert service.history(CONTACT).events[-1].category == category
    else:
        with pytest.raises(SendBlocked) as refused:
            service.send_text(CONTACT, "Hello", category=category)
        assert refused.value.reason == reason
        assert sender.kinds(CONTACT) == sent_before
        assert service.get(CONTACT) == head


def test_the_table_covers_every_level_and_category() -> None:
    # Every level of each ladder is met by some situation (none, disclosed,
    # the OPTED_IN levels) and every category of each policy is tried.
    pairs = _pairs()
    for name, s in SETUPS.items():
        mode = s.policy.mode
        met = {SITUATIONS[mode][where].at_send for (n, where, _) in pairs if n == name}
        assert met == set(s.ladder)
        assert {c for (n, _, c) in pairs if n == name} == set(s.policy.category_levels)


# ---------------------------------------------------------------------------
# Raising, keeping and losing a level


def test_an_attestation_raises_and_a_weaker_one_never_lowers() -> None:
    talk = _opted_in_at("express", DEFAULT)
    (raised,) = talk.attest("email").events
    assert (raised.trigger, raised.method, raised.evidence, raised.actor) == (
        Trigger.ATTEST,
        "email",
        "email-proof",
        "agent",
    )
    assert raised.level == "written"
    assert raised.to_dict()["level"] == "written"  # recorded in the log
    (kept,) = talk.attest("phone_call").events
    assert (kept.method, kept.evidence) == ("phone_call", "phone_call-proof")
    assert kept.level == "written"
    assert talk.consent.level == "written"
    assert verify(CONTACT, talk.events, talk.consent).level == "written"


def test_a_custom_ladder_raises_step_by_step_and_never_lowers() -> None:
    talk = _opted_in_at("express", CUSTOM)
    levels = []
    for method in ("phone_call", "id_check", "phone_call", "email", "id_check"):
        (event,) = talk.attest(method).events
        levels.append(event.level)
    assert levels == ["express", "verified", "verified", "written", "written"]
    assert verify(CONTACT, talk.events, talk.consent).level == "written"


def test_an_attestation_before_any_consent_gives_its_methods_level() -> None:
    talk = Talk(DEFAULT)
    talk.request()
    talk.attest("phone_call")
    assert (talk.consent.state, talk.consent.level) == (
        ConsentState.OPTED_IN,
        "express",
    )
    talk = Talk(DEFAULT)
    talk.attest("app")
    assert (talk.consent.state, talk.consent.level) == (
        ConsentState.OPTED_IN,
        "written",
    )
    # A disclosed contact (disclaimer mode) is raised above disclosed.
    disclaimer = SETUPS["default-disclaimer"].policy
    talk = Talk(disclaimer)
    talk.request()
    assert talk.consent.level == "disclosed"
    talk.attest("email")
    assert (talk.consent.state, talk.consent.level) == (
        ConsentState.OPTED_IN,
        "written",
    )
    assert verify(CONTACT, talk.events, talk.consent) == talk.consent


@pytest.mark.parametrize("level", ["express", "verified", "written"])
@pytest.mark.parametrize("how", ["stop", "arret", "provider", "import", "revoke"])
def test_every_stop_loses_every_level(how: str, level: str) -> None:
    talk = _opted_in_at(level, CUSTOM)
    if how in ("stop", "arret"):
        decision = talk.reply("STOP" if how == "stop" else "ARRÊT")
    elif how == "provider":
        decision = talk.apply(
            ProviderOptOut(at=talk.at(), provider="twilio", code="21610")
        )
    elif how == "revoke":
        decision = talk.apply(Revoke(at=talk.at(), by="agent", reason="asked"))
    else:
        decision = talk.apply(
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
    assert decision.events[0].level == "none"
    assert not may_text(talk.consent, CUSTOM, category="notices")
    assert verify(CONTACT, talk.events, talk.consent) == talk.consent


@pytest.mark.parametrize(
    ("restart", "yes_restarts"),
    [("START", False), ("Yes", True), ("UNSTOP", False)],
)
@pytest.mark.parametrize("setup", ["default", "custom"])
def test_a_restart_gives_express_never_written(
    restart: str, yes_restarts: bool, setup: str
) -> None:
    policy = attrs.evolve(SETUPS[setup].policy, yes_restarts=yes_restarts)
    talk = _opted_in_at("written", policy)
    talk.reply("STOP")
    (event,) = talk.reply(restart).events
    assert event.trigger is Trigger.RESTART
    assert event.level == "express"
    assert talk.consent.state is ConsentState.OPTED_IN
    assert talk.consent.level == "express"
    with pytest.raises(SendBlocked) as raised:
        talk.text("marketing")
    assert (raised.value.required, raised.value.current) == ("written", "express")
    assert talk.text("informational").events[0].level == "express"
    talk.attest("email")  # written consent collected again
    assert talk.text("marketing").events[0].level == "written"
    assert verify(CONTACT, talk.events, talk.consent).level == "written"


def test_a_yes_to_a_stopped_contact_restarts_only_when_the_policy_says() -> None:
    talk = _opted_in_at("written", DEFAULT)  # yes_restarts=False
    talk.reply("STOP")
    decision = talk.reply("Yes")
    assert decision.events == ()
    assert (talk.consent.state, talk.consent.level) == (ConsentState.STOPPED, "none")


def test_a_new_yes_after_a_new_request_gives_express() -> None:
    # Written consent under a disclaimer policy, lost by a stop; the contact
    # restarts (express), and a YES to anything gives no more than express.
    disclaimer = SETUPS["default-disclaimer"].policy
    talk = Talk(disclaimer)
    talk.request()
    talk.attest("email")
    assert talk.consent.level == "written"
    talk.reply("STOP")
    talk.reply("START")
    assert talk.reply("Yes").events == ()  # already opted in: unchanged
    assert talk.consent.level == "express"
    # A contact disclosed under the disclaimer policy, asked again under
    # the attestation policy: none while pending, express after YES.
    talk = Talk(disclaimer)
    talk.request()
    assert talk.consent.level == "disclosed"
    (request,) = talk.request(DEFAULT).events
    assert (request.to_state, request.level) == (ConsentState.PENDING, "none")
    (consent,) = talk.reply("Oui").events
    assert (consent.trigger, consent.level) == (Trigger.CONSENT, "express")
    assert verify(CONTACT, talk.events, talk.consent) == talk.consent


def test_an_imported_opt_in_gives_express() -> None:
    talk = Talk(DEFAULT)
    talk.request()
    (event,) = talk.apply(
        Import(
            at=talk.at(),
            state=ConsentState.OPTED_IN,
            source="crm",
            by="ops",
            import_id="row-1",
            evidence="crm row 1",
        )
    ).events
    assert event.level == "express"
    assert talk.consent.level == "express"
    with pytest.raises(SendBlocked, match="level_too_low"):
        talk.text("marketing")


# ---------------------------------------------------------------------------
# The log: levels recorded, replayed, forged ones refused


def _full_log() -> Talk:
    """request, YES, email, marketing text, phone call, STOP, START, text."""
    talk = _opted_in_at("written", DEFAULT)  # 0 request, 1 consent, 2 attest
    talk.text("marketing")  # 3
    talk.attest("phone_call")  # 4
    talk.reply("STOP")  # 5
    talk.reply("START")  # 6
    talk.text("informational")  # 7
    assert [e.trigger.value for e in talk.events] == [
        "request",
        "consent",
        "attest",
        "text",
        "attest",
        "stop",
        "restart",
        "text",
    ]
    return talk


def test_the_level_is_replayed_from_the_log() -> None:
    talk = _full_log()
    assert [e.level for e in talk.events] == [
        "none",
        "express",
        "written",
        "written",
        "written",
        "none",
        "express",
        "express",
    ]
    # Through the log's serialised form too.
    events = [AuditEvent.from_dict(e.to_dict()) for e in talk.events]
    assert verify(CONTACT, events) == talk.consent
    for upto in range(1, len(events) + 1):
        assert verify(CONTACT, events[:upto]).level == talk.events[upto - 1].level
    # A head whose level was edited is not the replay.
    with pytest.raises(RecordError, match="level"):
        verify(CONTACT, events, attrs.evolve(talk.consent, level="written"))


def test_a_rechained_log_verifies_and_a_forged_event_breaks_its_digest() -> None:
    talk = _full_log()
    assert verify(CONTACT, rechained(CONTACT, talk.events)) == talk.consent
    forged = list(talk.events)
    forged[6] = attrs.evolve(forged[6], level="written")
    with pytest.raises(RecordError) as refused:
        verify(CONTACT, forged)
    assert refused.value.field == "log[6].digest"


@pytest.mark.parametrize(
    ("index", "change", "field"),
    [
        (1, {"level": "written"}, "level"),  # a YES never gives written
        (2, {"level": "none"}, "level"),  # an attestation gives consent
        (2, {"level": "disclosed"}, "level"),
        (3, {"level": "express"}, "level"),  # a text keeps the level
        (4, {"level": "express"}, "level"),  # an attestation never lowers it
        (5, {"level": "written"}, "level"),  # a stop loses every level
        (6, {"level": "written"}, "level"),  # a restart never gives written
        (7, {"level": "written"}, "level"),
        (7, {"category": None}, "category"),  # a text has a category
        (1, {"category": "marketing"}, "category"),  # only a text has one
    ],
)
def test_a_forged_level_is_refused_by_the_rules(
    index: int, change: dict[str, object], field: str
) -> None:
    talk = _full_log()
    events = list(talk.events)
    events[index] = attrs.evolve(events[index], **change)  # type: ignore[misc]
    # Re-chained: every digest holds, so only the rules can tell.
    forged = rechained(CONTACT, events)
    with pytest.raises(RecordError) as refused:
        verify(CONTACT, forged)
    assert refused.value.field == f"log[{index}].{field}"
    assert refused.value.index == index


def test_a_text_event_records_its_category_and_an_event_its_level() -> None:
    talk = _opted_in_at("written", DEFAULT)
    (event,) = talk.text("marketing").events
    assert event.to_dict()["category"] == "marketing"
    assert event.to_dict()["level"] == "written"
    assert AuditEvent.from_dict(event.to_dict()) == event
    # Defaults are not written, so 0.2.0 logs keep their encoding.
    talk2 = _opted_in_at("express", DEFAULT)
    (plain,) = talk2.text().events
    assert (plain.category, plain.level) == ("informational", "express")
    assert "category" not in plain.to_dict()
    assert "level" not in plain.to_dict()
    assert AuditEvent.from_dict(plain.to_dict()) == plain


# ---------------------------------------------------------------------------
# Properties over random conversations

#: Triggers that give express by entering OPTED_IN some way other than an
#: attestation, and those that lose every level.
_TO_EXPRESS = {Trigger.CONSENT, Trigger.UPGRADE, Trigger.RESTART, Trigger.SIGNUP}
_TO_EXPRESS |= {Trigger.IMPORT_OPT_IN}
_TO_NONE = {Trigger.STOP, Trigger.DECLINE, Trigger.REVOKE, Trigger.IMPORT_STOP}
_TO_NONE |= {Trigger.REQUEST}


def _model_level(s: Setup, level: str, event: AuditEvent) -> str:
    """The level after ``event`` by the rules of docs/rules.md, from the
    level before it: the test's own model, not the library's table."""
    trigger = event.trigger
    if trigger in _TO_EXPRESS:
        return "express"
    if trigger in _TO_NONE:
        return "none"
    if trigger is Trigger.DISCLOSE:
        return "disclosed"
    if trigger is Trigger.ATTEST:
        assert event.method is not None
        given = s.policy.attestation_methods[event.method]
        if event.from_state is ConsentState.OPTED_IN:
            return max(level, given, key=s.rank)
        return given
    return level


def _at_send(s: Setup, consent: Consent, model: str) -> str:
    """The level a text would go out at: ``disclosed`` when the disclaimer
    goes first (disclaimer mode, a contact never disclosed)."""
    if s.policy.mode is Mode.DISCLAIMER and consent.state in (
        ConsentState.NEW,
        ConsentState.PENDING,
    ):
        return "disclosed"
    return model


_REPLIES = ["Yes", "Oui", "STOP", "START", "No", "hm?", "HELP"]
STEPS = st.lists(
    st.one_of(
        st.tuples(st.just("reply"), st.sampled_from(_REPLIES)),
        st.tuples(
            st.just("attest"), st.sampled_from(["email", "phone_call", "id_check"])
        ),
        st.tuples(
            st.just("text"),
            st.sampled_from(["informational", "marketing", "account", "notices"]),
        ),
        st.tuples(
            st.just("other"),
            st.sampled_from(["request", "provider", "import_stop", "import_opt_in"]),
        ),
    ),
    max_size=30,
)


def _input(kind: str, arg: str, at: datetime, number: int, setup: Setup) -> object:
    if kind == "reply":
        return Inbound(text=arg, at=at, message_id=f"in-{number}")
    if kind == "attest":
        return Attest(method=arg, at=at, by="agent", evidence=f"{arg}-{number}")
    if kind == "text":
        return SendText(body="Hello", at=at, category=arg)
    if arg == "request":
        return RequestOptIn(at=at)
    if arg == "provider":
        return ProviderOptOut(at=at, provider="twilio", code="21610")
    state = ConsentState.STOPPED if arg == "import_stop" else ConsentState.OPTED_IN
    return Import(at=at, state=state, source="crm", by="ops", import_id=f"row-{number}")


@settings(max_examples=150, deadline=None)
@given(
    setup=st.sampled_from(sorted(SETUPS)),
    steps=STEPS,
    yes_restarts=st.booleans(),
    gap=st.sampled_from([1, 60 * 25]),
)
def test_no_text_ever_goes_above_the_contacts_level(
    setup: str, steps: list[tuple[str, str]], yes_restarts: bool, gap: int
) -> None:
    base = SETUPS[setup]
    s = attrs.evolve(base, policy=attrs.evolve(base.policy, yes_restarts=yes_restarts))
    policy = s.policy
    consent = Consent.new(CONTACT)
    log: list[AuditEvent] = []
    model = "none"
    # Written consent is possible only after a written attestation that no
    # stop has followed.
    written_ok = False
    for number, (kind, arg) in enumerate(steps):
        at = T0 + timedelta(minutes=gap * (number + 1))
        if kind == "text" and arg not in policy.category_levels:
            with pytest.raises(InvalidInput):
                decide(consent, _input(kind, arg, at, number, s), policy)  # type: ignore[arg-type]
            continue
        if kind == "attest" and arg not in policy.attestation_methods:
            continue
        before = consent
        blocked: SendBlocked | None = None
        try:
            decision = decide(consent, _input(kind, arg, at, number, s), policy)  # type: ignore[arg-type]
        except SendBlocked as refused:
            blocked = refused
        except (ContactStopped, ResendNotAllowed):
            assert kind in ("attest", "other")
            continue
        if blocked is not None:
            assert kind == "text"
            needed = policy.category_levels[arg]
            level = _at_send(s, before, model)
            if blocked.reason == "level_too_low":
                # Refused for its level: the category needs more than it has.
                assert s.rank(level) < s.rank(needed)
                assert (blocked.required, blocked.current) == (needed, level)
            else:
                # Refused for the state: one that never allows a text.
                textable = {ConsentState.OPTED_IN}
                if policy.mode is Mode.DISCLAIMER:
                    textable |= {
                        ConsentState.NEW,
                        ConsentState.PENDING,
                        ConsentState.DISCLOSED,
                    }
                assert before.state not in textable
                assert blocked.reason in (
                    "stopped",
                    "awaiting_reply",
                    "opt_in_required",
                )
            continue
        for event in decision.events:
            model = _model_level(s, model, event)
            assert event.level == model, (event.trigger, event.level, model)
            if event.trigger is Trigger.TEXT:
                # Accepted: its category's level is within the contact's.
                assert kind == "text"
                assert event.category == arg
                assert s.rank(event.level) >= s.rank(policy.category_levels[arg])
            if event.trigger is Trigger.ATTEST and event.level == "written":
                written_ok = True
            if event.to_state is ConsentState.STOPPED:
                written_ok = False
            if event.trigger is Trigger.RESTART:
                assert event.level == "express"
        if kind == "text":
            assert decision.events[-1].trigger is Trigger.TEXT
        consent = decision.consent
        log.extend(decision.events)
        assert consent.level == model
        if consent.level == "written":
            assert written_ok
        if consent.state is not ConsentState.OPTED_IN:
            assert s.rank(consent.level) < s.rank("express")
    assert verify(CONTACT, log, consent) == consent


_SERVICE_STEPS = st.lists(
    st.one_of(
        st.tuples(st.just("reply"), st.sampled_from(["Yes", "STOP", "START", "hm?"])),
        st.tuples(st.just("attest"), st.sampled_from(sorted(METHODS))),
        st.tuples(st.just("text"), st.sampled_from(["informational", "marketing"])),
        st.tuples(st.just("request"), st.just("")),
    ),
    max_size=20,
)


@settings(max_examples=40, deadline=None)
@given(steps=_SERVICE_STEPS, yes_restarts=st.booleans())
def test_the_service_never_sends_a_text_above_the_contacts_level(
    steps: list[tuple[str, str]], yes_restarts: bool
) -> None:
    policy = attrs.evolve(DEFAULT, yes_restarts=yes_restarts)
    rank = DEFAULT_LADDER.index
    clock, sender = FakeClock(T0), RecordingSender()
    service = memory_service(policy, sender=sender, clock=clock)
    texts = 0
    written_ok = False
    for number, (kind, arg) in enumerate(steps):
        clock.advance(minutes=30)
        head = service.get(CONTACT)
        blocked: SendBlocked | None = None
        try:
            if kind == "reply":
                decision = service.receive(CONTACT, arg, message_id=f"m{number}")
            elif kind == "attest":
                decision = service.attest(
                    CONTACT, method=arg, evidence="proof", by="agent"
                )
            elif kind == "request":
                decision = service.request_opt_in(CONTACT)
            else:
                allowed = service.can_send(CONTACT, category=arg)
                assert allowed is (
                    head.state is ConsentState.OPTED_IN
                    and rank(head.level) >= rank(policy.category_levels[arg])
                )
                decision = service.send_text(CONTACT, "Hello", category=arg)
                assert allowed
                texts += 1
        except SendBlocked as refused:
            blocked = refused
        except OptinError:
            assert kind in ("attest", "request")
            assert service.get(CONTACT) == head
            continue
        if blocked is not None:
            assert kind == "text"
            assert not allowed
            if blocked.reason == "level_too_low":
                # Refused for its level: the category needs more than it has.
                assert blocked.current == head.level
                assert blocked.required == policy.category_levels[arg]
                assert rank(blocked.required) > rank(blocked.current)
            else:
                assert head.state is not ConsentState.OPTED_IN
        else:
            for event in decision.events:
                if event.trigger is Trigger.ATTEST and event.level == "written":
                    written_ok = True
                if event.to_state is ConsentState.STOPPED:
                    written_ok = False
        now = service.get(CONTACT)
        if now.level == "written":
            assert written_ok
        assert sender.kinds(CONTACT).count(MessageKind.TEXT) == texts
    history = service.history(CONTACT)  # verified on read
    for event in history.events:
        if event.trigger is Trigger.TEXT:
            assert event.category is not None
            needed = policy.category_levels[event.category]
            assert rank(event.level) >= rank(needed)


@settings(max_examples=60, deadline=None)
@given(
    conversation=conversations(
        policy=policies(
            attestation_methods=st.sampled_from(
                [{"email": "express"}, METHODS, {"email": "written"}]
            )
        )
    )
)
def test_no_logged_text_is_above_the_level_in_generated_conversations(
    conversation: object,
) -> None:
    policy, head, log = conversation  # type: ignore[misc]
    assert verify(head.contact, log, head) == head
    written_ok = False
    for event in log:
        if event.trigger is Trigger.TEXT:
            assert policy.reaches(event.level, policy.category_level(event.category))
        if event.trigger is Trigger.ATTEST and event.level == "written":
            written_ok = True
        if event.to_state is ConsentState.STOPPED:
            written_ok = False
        if event.level == "written":
            assert written_ok


# ---------------------------------------------------------------------------
# The seed's French organisation


@pytest.mark.parametrize("restart", ["START", "Recommencer"])
def test_french_org_informational_after_oui_marketing_after_email(
    restart: str,
) -> None:
    policy = Policy(
        org_name="Agence Dupont",
        default_locale="fr",
        attestation_methods={"email": "written"},
    )
    clock, sender = FakeClock(T0), RecordingSender()
    service = memory_service(policy, sender=sender, clock=clock)
    service.request_opt_in(CONTACT)
    clock.advance(minutes=1)
    service.receive(CONTACT, "Oui", message_id="m1")
    assert service.get(CONTACT).level == "express"
    clock.advance(minutes=1)
    service.send_text(CONTACT, "Votre dossier est prêt")
    assert sender.texts(CONTACT)[-1] == "Votre dossier est prêt"
    assert not service.can_send(CONTACT, category="marketing")
    with pytest.raises(SendBlocked) as raised:
        service.send_text(CONTACT, "Promo -20 %", category="marketing")
    error = raised.value
    assert (error.reason, error.required, error.current) == (
        "level_too_low",
        "written",
        "express",
    )
    assert error.methods == ("email",)
    assert "email" in str(error)
    assert "Promo -20 %" not in sender.texts(CONTACT)

    clock.advance(minutes=1)
    service.attest(CONTACT, method="email", evidence="mail du 1/12", by="agent")
    assert service.can_send(CONTACT, category="marketing")
    service.send_text(CONTACT, "Promo -20 %", category="marketing")
    assert sender.texts(CONTACT)[-1] == "Promo -20 %"

    clock.advance(minutes=1)
    service.receive(CONTACT, "STOP", message_id="m2")
    assert sender.kinds(CONTACT)[-1] is MessageKind.STOP_CONFIRMATION
    sent = len(sender.kinds(CONTACT))
    for category in ("informational", "marketing"):
        assert not service.can_send(CONTACT, category=category)
        with pytest.raises(SendBlocked) as stopped:
            service.send_text(CONTACT, "Encore", category=category)
        assert stopped.value.reason == "stopped"
    assert len(sender.kinds(CONTACT)) == sent  # nothing goes out

    clock.advance(minutes=1)
    service.receive(CONTACT, restart, message_id="m3")
    head = service.get(CONTACT)
    assert (head.state, head.level) == (ConsentState.OPTED_IN, "express")
    service.send_text(CONTACT, "Bon retour")
    assert sender.texts(CONTACT)[-1] == "Bon retour"
    with pytest.raises(SendBlocked) as again:
        service.send_text(CONTACT, "Promo -30 %", category="marketing")
    assert (again.value.reason, again.value.methods) == ("level_too_low", ("email",))
    assert "Promo -30 %" not in sender.texts(CONTACT)
    assert service.history(CONTACT).head.level == "express"


# ---------------------------------------------------------------------------
# Bad input


def test_an_unknown_category_is_invalid_input_everywhere() -> None:
    talk = _opted_in_at("written", DEFAULT)
    with pytest.raises(InvalidInput, match="unknown message category 'promo'"):
        talk.text("promo")
    with pytest.raises(InvalidInput, match=r"Policy\.categories"):
        may_text(talk.consent, DEFAULT, category="promo")
    with pytest.raises(InvalidInput):
        sendable([talk.consent], DEFAULT, "promo")
    with pytest.raises(InvalidInput):
        sendable([], DEFAULT, "promo")  # at once, not on iteration
    # A category of another policy is unknown to this one.
    with pytest.raises(InvalidInput, match="account"):
        may_text(talk.consent, DEFAULT, category="account")
    clock, sender = FakeClock(T0), RecordingSender()
    service = memory_service(DEFAULT, sender=sender, clock=clock)
    service.request_opt_in(CONTACT)
    service.receive(CONTACT, "Yes", message_id="m1")
    head = service.get(CONTACT)
    sent = list(sender.kinds(CONTACT))
    with pytest.raises(InvalidInput):
        service.can_send(CONTACT, category="promo")
    with pytest.raises(InvalidInput):
        service.send_text(CONTACT, "Hello", category="promo")
    assert service.get(CONTACT) == head
    assert sender.kinds(CONTACT) == sent


@pytest.mark.parametrize("name", ["Promo Offers", "", "1promo", "promo!", "é"])
def test_a_malformed_category_name_is_invalid_input(name: str) -> None:
    with pytest.raises(InvalidInput):
        SendText(body="x", at=T0, category=name)
    with pytest.raises(TypeError, match="category must be str"):
        SendText(body="x", at=T0, category=3)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("settings_", "field", "message"),
    [
        ({"categories": {"promo": "gold"}}, "categories", "not a level"),
        ({"categories": {"marketing": "platinum"}}, "categories", "platinum"),
        ({"categories": {"Promo!": "express"}}, "categories", "category name"),
        ({"categories": {"x" * 65: "express"}}, "categories", "category name"),
        ({"categories": ["promo"]}, "categories", "category: minimum level"),
        ({"attestation_methods": {"email": "gold"}}, "attestation_methods", "gold"),
        (
            {"attestation_methods": {"fax": "disclosed"}},
            "attestation_methods",
            "express",
        ),
        ({"attestation_methods": {"fax": "none"}}, "attestation_methods", "express"),
        ({"attestation_methods": {"": "written"}}, "attestation_methods", "non-empty"),
        ({"attestation_methods": "email"}, "attestation_methods", "not one str"),
        ({"levels": ("none", "disclosed", "express", "express")}, "levels", "twice"),
        (
            {"levels": ("none", "disclosed", "written", "express", "written")},
            "levels",
            "twice",
        ),
        ({"levels": ("disclosed", "none", "express")}, "levels", "start with"),
        ({"levels": ("none", "express", "disclosed")}, "levels", "below"),
        ({"levels": ("none", "disclosed")}, "levels", "express"),
        ({"levels": ()}, "levels", "start with"),
        ({"levels": ("none", "disclosed", "express", "Top")}, "levels", "level name"),
        ({"levels": ("none", "disclosed", "express", 4)}, "levels", "level name"),
        ({"levels": "none"}, "levels", "sequence"),
        ({"levels": 4}, "levels", "sequence"),
        (
            {
                "levels": ("none", "disclosed", "express", "gold"),
                "attestation_methods": {"email": "written"},
            },
            "attestation_methods",
            "written",
        ),
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
    talk = _opted_in_at("express", policy)
    with pytest.raises(SendBlocked) as raised:
        talk.text("marketing")
    assert (raised.value.required, raised.value.methods) == ("signed", ("paper",))
    talk.attest("paper")
    assert talk.text("marketing").events[0].level == "signed"
    # No method reaching the level: the advice says to map one.
    bare = Policy(org_name="Acme")
    talk = _opted_in_at("express", bare)
    with pytest.raises(SendBlocked) as none:
        talk.text("marketing")
    assert none.value.methods == ()
    assert "attestation_methods" in str(none.value)


def test_a_subclass_method_off_the_ladder_is_a_policy_error_at_attest() -> None:
    class Lax(Policy):
        def accepts_attestation(self, method: str) -> bool:
            return True

    class Broken(Policy):
        def attestation_level(self, method: str) -> str:
            return "gold"

    lax = Lax(org_name="Acme")
    talk = Talk(lax)
    talk.request()
    talk.attest("fax")  # accepted without a mapping: express
    assert talk.consent.level == "express"
    broken = Broken(org_name="Acme", attestation_methods={"email": "written"})
    talk = Talk(broken)
    talk.request()
    before = talk.consent
    with pytest.raises(PolicyError, match="gold"):
        talk.attest("email")
    assert talk.consent is before
    assert len(talk.events) == 1


@pytest.mark.parametrize(
    ("toml", "field", "message"),
    [
        ("[categories]\npromo = 'platinum'\n", "categories", "platinum"),
        ("[categories]\n'Promo!' = 'express'\n", "categories", "category name"),
        ("[attestation_methods]\nemail = 'gold'\n", "attestation_methods", "gold"),
        (
            "[attestation_methods]\nfax = 'disclosed'\n",
            "attestation_methods",
            "express",
        ),
        (
            "levels = ['none', 'disclosed', 'express', 'express']\n",
            "levels",
            "twice",
        ),
        ("levels = ['none', 'express', 'disclosed']\n", "levels", "below"),
    ],
)
def test_bad_levels_and_categories_from_toml(
    toml: str, field: str, message: str
) -> None:
    with pytest.raises(PolicyError, match=message) as raised:
        Policy.from_toml('org_name = "Acme"\n' + toml)
    assert field in str(raised.value)


def test_levels_and_categories_load_from_toml(tmp_path: Path) -> None:
    path = tmp_path / "policy.toml"
    path.write_text(
        'org_name = "Acme"\n'
        'levels = ["none", "disclosed", "express", "verified", "written"]\n'
        "[attestation_methods]\n"
        'email = "written"\n'
        'id_check = "verified"\n'
        'phone_call = "express"\n'
        "[categories]\n"
        'account = "verified"\n'
        'transactional = "express"\n'
        'notices = "disclosed"\n',
        encoding="utf-8",
    )
    policy = Policy.from_toml(path)
    assert policy == CUSTOM
    assert dict(policy.category_levels) == dict(CUSTOM.category_levels)
    assert policy.attestation_level("id_check") == "verified"
    assert policy.methods_reaching("verified") == ("email", "id_check")


# ---------------------------------------------------------------------------
# The receipt


def test_the_receipt_names_the_level_and_what_gave_it() -> None:
    clock = FakeClock(T0)
    service = memory_service(DEFAULT, clock=clock)
    service.request_opt_in(CONTACT)
    clock.advance(minutes=1)
    service.receive(CONTACT, "Yes", message_id="m1")
    clock.advance(minutes=5)
    service.attest(CONTACT, method="email", evidence="signed form 42", by="agent")
    clock.advance(minutes=5)
    # A weaker attestation later keeps written: it did not give the level.
    service.attest(CONTACT, method="phone_call", evidence="call 7", by="agent")
    service.send_text(CONTACT, "Sale!", category="marketing")
    receipt = service.receipt(CONTACT, format="text")
    lines = receipt.splitlines()
    assert "Consent level: Express written consent" in lines
    (reached,) = [line for line in lines if line.startswith("Level reached:")]
    assert "9:06:00\u202fAM" in reached
    assert "(email)" in reached
    assert "phone_call" not in reached
    assert "   Consent level: Express consent → Express written consent" in lines
    assert "   Message category: marketing" in lines
    assert "signed form 42" in receipt

    # After a stop and a restart: express, given by the restart.
    clock.advance(minutes=5)
    service.receive(CONTACT, "STOP", message_id="m2")
    clock.advance(minutes=5)
    service.receive(CONTACT, "START", message_id="m3")
    lines = service.receipt(CONTACT, format="text").splitlines()
    assert "Consent level: Express consent" in lines
    (reached,) = [line for line in lines if line.startswith("Level reached:")]
    assert "9:21:00\u202fAM" in reached
    assert "(email)" not in reached
    assert "   Consent level: Express written consent → None" in lines
    assert "   Consent level: None → Express consent" in lines


# ---------------------------------------------------------------------------
# What keeps a level, the async service, and exports


def test_replies_and_requests_to_a_written_contact_keep_written() -> None:
    clock, sender = FakeClock(T0), RecordingSender()
    service = memory_service(DEFAULT, sender=sender, clock=clock)
    service.request_opt_in(CONTACT)
    clock.advance(minutes=1)
    service.receive(CONTACT, "Yes", message_id="m0")
    clock.advance(minutes=1)
    service.attest(CONTACT, method="email", evidence="form", by="agent")
    # A repeat YES (any language), HELP, anything else, a new request: the
    # contact keeps written consent (only a stop loses it).
    for number, text in enumerate(["Yes", "Oui", "HELP", "hm?", "Sí"], start=1):
        clock.advance(minutes=1)
        decision = service.receive(CONTACT, text, message_id=f"m{number}")
        assert all(e.level == "written" for e in decision.events)
        assert service.get(CONTACT).level == "written"
    clock.advance(minutes=1)
    service.request_opt_in(CONTACT)
    assert service.get(CONTACT).level == "written"
    assert service.can_send(CONTACT, category="marketing")
    history = service.history(CONTACT)
    assert history.events[-1].trigger is Trigger.HELP
    assert history.events[-1].level == "written"


def test_the_async_service_takes_a_category() -> None:
    import asyncio

    from optin_core import AsyncConsentService, MemoryStore

    sender = RecordingSender()
    clock = FakeClock(T0)

    async def main() -> None:
        service = AsyncConsentService(DEFAULT, MemoryStore(), sender, clock=clock)
        await service.request_opt_in(CONTACT)
        await service.receive(CONTACT, "Yes", message_id="m1")
        assert await service.can_send(CONTACT)
        assert not await service.can_send(CONTACT, category="marketing")
        with pytest.raises(SendBlocked) as raised:
            await service.send_text(CONTACT, "Sale!", category="marketing")
        assert (raised.value.reason, raised.value.required) == (
            "level_too_low",
            "written",
        )
        with pytest.raises(InvalidInput):
            await service.can_send(CONTACT, category="promo")
        with pytest.raises(InvalidInput):
            await service.send_text(CONTACT, "Sale!", category="promo")
        await service.attest(CONTACT, method="app", evidence="e-sign", by="agent")
        assert await service.can_send(CONTACT, category="marketing")
        await service.send_text(CONTACT, "Sale!", category="marketing")
        assert (await service.get(CONTACT)).level == "written"

    asyncio.run(main())
    assert sender.texts(CONTACT).count("Sale!") == 1


def _written_service() -> ConsentService:
    clock = FakeClock(T0)
    service = memory_service(DEFAULT, clock=clock)
    service.request_opt_in(CONTACT)
    clock.advance(minutes=1)
    service.receive(CONTACT, "Yes", message_id="m1")
    clock.advance(minutes=1)
    service.attest(CONTACT, method="email", evidence="form 42", by="agent")
    clock.advance(minutes=1)
    service.send_text(CONTACT, "Sale!", category="marketing")
    return service


def test_a_jsonl_export_moves_written_consent_and_refuses_a_forged_level() -> None:
    import io
    import json

    from optin_core import ImportRefused

    service = _written_service()
    out = io.StringIO()
    service.export(out)
    (line,) = out.getvalue().splitlines()
    data = json.loads(line)
    assert data["head"]["level"] == "written"
    assert [e.get("level") for e in data["log"]] == [None, None, "written", "written"]
    assert data["log"][3]["category"] == "marketing"

    moved = memory_service(DEFAULT, clock=FakeClock(T0 + timedelta(hours=1)))
    report = moved.import_records(io.StringIO(line), source="old")
    assert report.applied == 1
    assert moved.get(CONTACT).level == "written"
    assert moved.can_send(CONTACT, category="marketing")

    # The YES forged to have given written consent, its log re-chained and
    # the head to match: the replay's rules refuse the line.
    log = list(service.history(CONTACT).events)
    log[1] = attrs.evolve(log[1], level="written")
    forged_log = rechained(CONTACT, log)
    forged = dict(data, log=[e.to_dict() for e in forged_log])
    forged["head"] = dict(data["head"], digest=forged_log[-1].digest)
    fresh = memory_service(DEFAULT, clock=FakeClock(T0 + timedelta(hours=1)))
    with pytest.raises(ImportRefused, match=r"log\[1\]\.level") as refused:
        fresh.import_records(io.StringIO(json.dumps(forged)), source="old")
    assert "digest" not in str(refused.value)
    assert fresh.get(CONTACT).state is ConsentState.NEW  # nothing written
    # The genuine line still goes in: only the forgery was refused.
    assert fresh.import_records(io.StringIO(line), source="old").applied == 1


def test_a_csv_export_shows_the_level_and_a_csv_import_never_gives_written() -> None:
    import csv
    import io

    service = _written_service()
    out = io.StringIO()
    service.export(out, format="csv")
    (row,) = list(csv.DictReader(io.StringIO(out.getvalue())))
    assert (row["level"], row["level_source"]) == ("written", "attest:email")
    assert row["level_since"] == (T0 + timedelta(minutes=2)).isoformat()
    assert row["source"] == "sms:consent"  # the YES put it in OPTED_IN

    # A summary row is no evidence of written consent: express.
    moved = memory_service(DEFAULT, clock=FakeClock(T0 + timedelta(hours=1)))
    moved.import_records(io.StringIO(out.getvalue()), format="csv", source="old")
    assert moved.get(CONTACT).level == "express"
    assert not moved.can_send(CONTACT, category="marketing")


@pytest.mark.parametrize(
    ("settings_", "field"),
    [
        ({"categories": {"promo": ["express"]}}, "categories"),
        ({"categories": {"promo": {"level": "express"}}}, "categories"),
        ({"attestation_methods": {"email": ["written"]}}, "attestation_methods"),
        ({"attestation_methods": {"email": 3}}, "attestation_methods"),
    ],
)
def test_a_level_that_is_not_a_str_is_a_policy_error(
    settings_: dict[str, object], field: str
) -> None:
    # Not a TypeError from a dict lookup: the policy names what is wrong.
    with pytest.raises(PolicyError, match="not a level") as raised:
        Policy(org_name="Acme", **settings_)  # type: ignore[arg-type]
    assert field in str(raised.value)
