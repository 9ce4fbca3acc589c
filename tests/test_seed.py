"""The seed scenario end to end, in French (as written) and in English."""

from __future__ import annotations

import json

import pytest

from optin_core import (
    Consent,
    ConsentLog,
    ConsentState,
    Intent,
    MessageKind,
    Policy,
    SendBlocked,
    SendText,
    replay,
)

from .flows import Flow, at

SCENARIOS = {
    "fr": ("Je suis Martha de Hearsay", "C'est pour quoi ?", "Oui", "STOP", "OUI"),
    "en": ("I'm Martha from Hearsay", "What is this about?", "Yes", "STOP", "YES"),
}


@pytest.mark.parametrize("locale", sorted(SCENARIOS))
def test_seed_conversation(locale: str) -> None:
    greeting, unclear, yes, stop, yes_word = SCENARIOS[locale]
    flow = Flow(Policy(org_name="Hearsay", program_name="Hearsay Conseil"))

    d = flow.request(0, greeting=greeting, by="martha", locale=locale)
    assert flow.consent.state is ConsentState.PENDING
    [request] = d.outgoing
    assert request.kind is MessageKind.OPT_IN_REQUEST
    assert request.text.startswith(greeting + "\n")
    assert "Hearsay" in request.text
    assert yes_word in request.text
    assert "STOP" in request.text
    assert request.locale == locale

    d = flow.reply(unclear, 3)
    assert d.reply is not None
    assert d.reply.intent is Intent.UNRECOGNIZED
    assert [m.kind for m in d.outgoing] == [MessageKind.REMINDER]
    assert yes_word in d.outgoing[0].text
    assert "STOP" in d.outgoing[0].text
    assert flow.consent.state is ConsentState.PENDING

    d = flow.reply(yes, 5)
    assert d.reply is not None
    assert d.reply.intent is Intent.CONSENT
    assert flow.consent.state is ConsentState.OPTED_IN
    assert [m.kind for m in d.outgoing] == [MessageKind.OPT_IN_CONFIRMATION]

    d = flow.apply(SendText(body="Votre bilan est prêt.", at=at(9), by="martha"))
    assert [m.kind for m in d.outgoing] == [MessageKind.TEXT]
    assert d.outgoing[0].text == "Votre bilan est prêt."

    d = flow.reply(stop, 30)
    assert flow.consent.state is ConsentState.STOPPED
    assert [m.kind for m in d.outgoing] == [MessageKind.STOP_CONFIRMATION]

    with pytest.raises(SendBlocked) as info:
        flow.apply(SendText(body="Encore un mot", at=at(31)))
    assert info.value.reason == "stopped"

    consent = flow.consent
    log = flow.log
    # The proof: who, when, the exact wording, the raw replies, how they matched.
    assert [e.trigger for e in log] == [
        "request",
        "remind",
        "consent",
        "text",
        "stop",
    ]
    assert log[0].sent[0].text == request.text
    assert log[0].actor == "martha"
    assert log[2].reply is not None
    assert log[2].reply.text == yes
    assert consent.opted_in_at == at(5)
    assert consent.stopped_at == at(30)
    restored = Consent.from_dict(json.loads(json.dumps(consent.to_dict())))
    assert restored == consent == replay(consent.contact, log)
    exported = ConsentLog(head=consent, events=log).to_dict()
    assert ConsentLog.from_dict(json.loads(json.dumps(exported))).events == log
