"""The seed's French conversation, driven through the pure core.

Martha (Hearsay) sends the opt-in request with a greeting; the contact answers
something unclear and gets the reminder, then "Oui"; Martha texts; the contact
sends "STOP". Run: ``python examples/quickstart.py``.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from optin_core import (
    AuditEvent,
    Consent,
    Decision,
    Inbound,
    Input,
    Policy,
    RequestOptIn,
    SendBlocked,
    SendText,
    decide,
    verify,
)


def main() -> None:
    policy = Policy(org_name="Hearsay", program_name="Hearsay Conseil")
    consent = Consent.new("+33612345678")
    log: list[AuditEvent] = []  # what a store keeps beside the head
    start = datetime(2026, 3, 2, 9, 30, tzinfo=UTC)

    def step(minutes: int, label: str, inp: Input) -> None:
        nonlocal consent
        decision: Decision = decide(consent, inp, policy)
        consent = decision.consent
        log.extend(decision.events)
        print(f"\n[{(start + timedelta(minutes=minutes)):%H:%M}] {label}")
        if decision.reply is not None:
            r = decision.reply
            print(
                f"    parsed: {r.intent.value} "
                f"(rule {r.rule.value}, keyword {r.keyword!r})"
            )
        for message in decision.outgoing:
            print(f"  -> {message.kind.value}:")
            for line in message.text.splitlines():
                print(f"       | {line}")
        print(f"    state: {consent.state.value} (version {consent.version})")

    def at(minutes: int) -> datetime:
        return start + timedelta(minutes=minutes)

    step(
        0,
        "Martha sends the opt-in request",
        RequestOptIn(
            at=at(0), greeting="Je suis Martha de Hearsay", by="martha", locale="fr"
        ),
    )
    step(
        3,
        "Contact: « C'est pour quoi ? »",
        Inbound(text="C'est pour quoi ?", at=at(3), message_id="sm1"),
    )
    step(5, "Contact: « Oui »", Inbound(text="Oui", at=at(5), message_id="sm2"))
    step(
        9,
        "Martha texts in her own words",
        SendText(
            body="Merci ! Votre bilan est prêt, quand pouvons-nous en parler ?",
            at=at(9),
            by="martha",
        ),
    )
    step(30, "Contact: « STOP »", Inbound(text="STOP", at=at(30), message_id="sm3"))
    try:
        decide(
            consent,
            SendText(body="Une dernière chose…", at=at(31), by="martha"),
            policy,
        )
    except SendBlocked as blocked:
        print(f"\n[{at(31):%H:%M}] Martha tries again: refused: {blocked}")
    verify(consent.contact, log, consent)  # raises RecordError if tampered
    print(
        f"\nConsent log: {len(log)} events, "
        f"{sum(len(e.sent) for e in log)} messages decided; the chain verifies "
        f"(head digest {consent.digest[:19]}…)."
    )


if __name__ == "__main__":
    main()
