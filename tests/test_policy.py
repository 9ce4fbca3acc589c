"""Policy: validation at construction, hooks, lint."""

from __future__ import annotations

from datetime import timedelta

import pytest

from optin_core import (
    Consent,
    ConsentState,
    Inbound,
    Intent,
    InvalidGreeting,
    MessageKind,
    Mode,
    ParsedReply,
    Policy,
    PolicyError,
    RequestOptIn,
    decide,
)

from .flows import CONTACT, Flow, at


def test_defaults_follow_the_seed_and_carriers() -> None:
    p = Policy(org_name="Acme")
    assert p.mode is Mode.ATTESTATION
    assert (p.allow_resend, p.max_attempts, p.resend_after) == (
        True,
        3,
        timedelta(hours=24),
    )
    assert p.max_reminders == 3
    assert p.confirm_opt_in
    assert p.confirm_stop
    assert p.confirm_restart
    assert p.answer_help
    assert p.allow_restart
    assert p.decline_stops
    assert not p.yes_restarts
    assert dict(p.attestation_methods) == {}
    assert p.levels == ("none", "disclosed", "express", "written")
    assert p.categories is None
    assert dict(p.category_levels) == {
        "informational": "express",
        "marketing": "written",
    }
    assert p.program_name == "Acme"


@pytest.mark.parametrize(
    ("changes", "setting"),
    [
        ({"org_name": ""}, "org_name"),
        ({"org_name": 3}, "org_name"),
        ({"max_attempts": 0}, "max_attempts"),
        ({"max_attempts": True}, "max_attempts"),
        ({"max_reminders": -1}, "max_reminders"),
        ({"resend_after": 3600}, "resend_after"),
        ({"resend_after": timedelta(hours=-1)}, "resend_after"),
        ({"loop_window": None}, "loop_window"),
        ({"confirm_stop": "yes"}, "confirm_stop"),
        ({"default_locale": "xx-nowhere"}, "default_locale"),
        ({"default_locale": None}, "default_locale"),
        ({"mode": "sometimes"}, "mode"),
        ({"attestation_methods": "email"}, "attestation_methods"),
        ({"attestation_methods": 5}, "attestation_methods"),
        ({"attestation_methods": [""]}, "attestation_methods"),
        ({"extra_keywords": {"love": {"en": ["xoxo"]}}}, "extra_keywords"),
        ({"extra_keywords": {Intent.STOP: {"en": "halt"}}}, "extra_keywords"),
        ({"extra_keywords": {Intent.REACTION: {"en": ["x"]}}}, "extra_keywords"),
        ({"extra_keywords": ["stop"]}, "extra_keywords"),
        ({"extra_keywords": {Intent.STOP: {"en": 5}}}, "extra_keywords"),
        ({"templates": {"en": {"poem": "x"}}}, "templates"),
        ({"templates": {"en": {"text": "x"}}}, "templates"),
        ({"templates": {"en": {"reminder": " "}}}, "templates"),
        ({"templates": {"tlh": {"reminder": "x"}}}, "templates"),
        ({"templates": {"en": "x"}}, "templates"),
        ({"org_name": "Acme\x07"}, "org_name"),
        ({"policy_id": ""}, "policy_id"),
        ({"max_request_length": 0}, "max_request_length"),
    ],
)
def test_invalid_settings_name_the_setting(
    changes: dict[str, object], setting: str
) -> None:
    kwargs: dict[str, object] = {"org_name": "Acme", **changes}
    with pytest.raises(PolicyError) as info:
        Policy(**kwargs)  # type: ignore[arg-type]
    assert info.value.setting == setting
    assert f"Policy.{setting}" in str(info.value)


def test_policy_is_frozen() -> None:
    p = Policy(org_name="Acme")
    with pytest.raises(AttributeError):
        p.max_attempts = 9  # type: ignore[misc]


def test_mode_accepts_its_value() -> None:
    assert Policy(org_name="Acme", mode="disclaimer").mode is Mode.DISCLAIMER  # type: ignore[arg-type]


def test_template_overrides_are_literal_safe_and_per_locale() -> None:
    p = Policy(
        org_name="{0.__class__}",
        templates={"fr": {MessageKind.REMINDER: "{org_name} : répondez OUI ou STOP."}},
    )
    text, locale = p.message(MessageKind.REMINDER, "fr-CA")
    assert (text, locale) == ("{0.__class__} : répondez OUI ou STOP.", "fr")


def test_extra_keywords_reach_the_parser() -> None:
    p = Policy(org_name="Acme", extra_keywords={Intent.STOP: {"en": ["halt"]}})
    flow = Flow(p)
    flow.request(0)
    flow.reply("halt", 1)
    assert flow.consent.state is ConsentState.STOPPED


def test_extra_keywords_in_an_iterator_are_kept() -> None:
    # An iterator was used up by the check and its words dropped (0.3.0).
    p = Policy(org_name="Acme", extra_keywords={Intent.STOP: {"en": iter(["halt"])}})
    assert p.extra_keywords[Intent.STOP]["en"] == ("halt",)
    with pytest.raises(PolicyError) as refused:
        Policy(org_name="Acme", extra_keywords={Intent.STOP: {"en": iter(["ok", 7])}})
    assert refused.value.setting == "extra_keywords"
    flow = Flow(p)
    flow.request(0)
    flow.reply("halt", 1)
    assert flow.consent.state is ConsentState.STOPPED


def test_lint_reports_keyword_collisions() -> None:
    assert Policy(org_name="Acme").lint() == ()
    p = Policy(org_name="Acme", extra_keywords={Intent.START: {"en": ["yes"]}})
    found = p.lint()
    assert any(
        c.keyword == "yes" and set(c.intents) >= {Intent.CONSENT, Intent.START}
        for c in found
    )
    assert any(
        set(c.intents) == {Intent.CONSENT, Intent.START}
        for c in Policy(org_name="A", yes_restarts=True).lint()
    )


class Strict(Policy):
    """A host's policy: texting only after explicit consent, and e-mail counts."""

    def allows_texting(self, state: ConsentState) -> bool:
        return state is ConsentState.OPTED_IN

    def accepts_attestation(self, method: str) -> bool:
        return method.startswith("email")


class Lenient(Policy):
    """Reads "yes please" as consent (the host's explicit choice)."""

    def classify(self, reply: ParsedReply) -> ParsedReply:
        if reply.intent is Intent.UNRECOGNIZED and reply.text.lower().startswith("yes"):
            return ParsedReply(
                intent=Intent.CONSENT,
                keyword="yes",
                rule=reply.rule,
                locale="en",
                text=reply.text,
            )
        return reply


def test_hooks_can_be_overridden() -> None:
    strict = Strict(org_name="Acme", mode=Mode.DISCLAIMER)
    assert not strict.allows_texting(ConsentState.DISCLOSED)
    assert strict.accepts_attestation("email-double-opt-in")
    flow = Flow(Lenient(org_name="Acme"))
    flow.request(0)
    flow.reply("yes please!", 1)
    assert flow.consent.state is ConsentState.OPTED_IN
    assert flow.events[-1].reply is not None
    assert flow.events[-1].reply.intent is Intent.CONSENT


def test_policy_id_and_version_are_on_every_event() -> None:
    p = Policy(org_name="Acme", policy_id="acme-sms", policy_version="2026-03")
    first = decide(Consent.new(CONTACT), RequestOptIn(at=at(0)), p)
    d = decide(first.consent, Inbound(text="yes", at=at(1), message_id="1"), p)
    assert {(e.policy_id, e.policy_version) for e in (*first.events, *d.events)} == {
        ("acme-sms", "2026-03")
    }


def test_policies_with_the_same_extra_keywords_share_one_index() -> None:
    # Hosts that build a policy per request must not rebuild the index.
    from optin_core import Intent, build_keyword_index, parse_reply

    extra = {Intent.STOP: {"en": ["unsub"]}, Intent.CONSENT: {"fr": ["d'accord"]}}
    first = Policy(org_name="A", extra_keywords=extra)
    again = Policy(org_name="B", extra_keywords={k: dict(v) for k, v in extra.items()})
    assert again.keywords is first.keywords
    assert build_keyword_index(extra) is first.keywords
    # Different words or languages: a different index.
    other = Policy(org_name="A", extra_keywords={Intent.STOP: {"en": ["unsubscribe!"]}})
    assert other.keywords is not first.keywords
    narrow = Policy(org_name="A", extra_keywords=extra, languages=("en",))
    assert narrow.keywords is not first.keywords
    assert parse_reply("unsub", keywords=first.keywords).intent is Intent.STOP
    # A single str is still refused, not read as letters.
    with pytest.raises(PolicyError):
        Policy(org_name="A", extra_keywords={Intent.STOP: {"en": "unsub"}})


def test_a_request_limit_below_the_default_wording_is_refused_when_built() -> None:
    wording, _ = Policy(org_name="Acme").message(MessageKind.OPT_IN_REQUEST, None)
    Policy(org_name="Acme", max_request_length=len(wording))
    with pytest.raises(PolicyError) as info:
        Policy(org_name="Acme", max_request_length=len(wording) - 1)
    assert info.value.setting == "max_request_length"
    assert f"below the {len(wording)} characters" in str(info.value)


def test_a_locale_whose_wording_alone_is_too_long_is_not_blamed_on_a_greeting() -> None:
    # The German wording is longer than the English (the default's).
    en, _ = Policy(org_name="Acme").message(MessageKind.OPT_IN_REQUEST, "en")
    de, _ = Policy(org_name="Acme").message(MessageKind.OPT_IN_REQUEST, "de")
    assert len(de) > len(en)
    policy = Policy(org_name="Acme", max_request_length=len(en))
    with pytest.raises(InvalidGreeting) as info:
        decide(Consent.new(CONTACT), RequestOptIn(at=at(0), locale="de"), policy)
    assert str(info.value) == (
        f"the opt-in request's wording alone is {len(de)} characters; the policy "
        f"allows {len(en)}: raise max_request_length or shorten the wording "
        "(templates)"
    )


def test_a_wording_exactly_at_the_request_limit_goes_out() -> None:
    de, _ = Policy(org_name="Acme").message(MessageKind.OPT_IN_REQUEST, "de")
    policy = Policy(org_name="Acme", max_request_length=len(de))
    decision = decide(Consent.new(CONTACT), RequestOptIn(at=at(0), locale="de"), policy)
    assert [m.text for m in decision.outgoing] == [de]
