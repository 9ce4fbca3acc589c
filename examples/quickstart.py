"""A first look at optin_core: one client's opt-in conversation, in French.

Martha, an advisor at Hearsay (a French firm), wants to text a client. Before
she may write in her own words, the client must agree, so optin_core:

1. sends the opt-in request: Martha's greeting, then the fixed wording;
2. answers "C'est pour quoi ?" ("what is this for?", not an answer) with a
   reminder to reply OUI or STOP;
3. records "Oui" as consent, and confirms it;
4. lets Martha text;
5. records "STOP", confirms it once, and refuses Martha's next text.

Each step is one call to ``decide(consent, input, policy)``, which returns
a decision: the client's new state and the messages to send. Nothing is
sent here: the script prints what a host would hand its SMS provider.

Run: ``python examples/quickstart.py``
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from optin_core import (
    AuditEvent,
    Consent,
    Inbound,
    Input,
    Intent,
    Policy,
    RequestOptIn,
    SendBlocked,
    SendText,
    decide,
    verify,
)

#: How each kind of reply reads, in plain words.
READ_AS = {
    Intent.CONSENT: "consent",
    Intent.STOP: "an opt-out",
    Intent.START: "a re-subscribe",
    Intent.HELP: "a request for help",
    Intent.DECLINE: "a refusal",
    Intent.REACTION: "a phone reaction, not an answer",
    Intent.UNRECOGNIZED: "not an answer",
}


def main() -> None:
    policy = Policy(org_name="Hearsay", program_name="Hearsay Conseil")
    consent = Consent.new("+33612345678")  # the client, never contacted yet
    log: list[AuditEvent] = []  # the proof, which a store keeps beside the state
    start = datetime(2026, 3, 2, 9, 30, tzinfo=UTC)

    def at(minutes: int) -> datetime:
        return start + timedelta(minutes=minutes)

    def step(label: str, inp: Input) -> None:
        nonlocal consent
        decision = decide(consent, inp, policy)
        consent = decision.consent
        log.extend(decision.events)
        print(f"\n{inp.at:%H:%M}  {label}")
        if decision.reply is not None:
            reply = decision.reply
            word = f' (the word "{reply.keyword}")' if reply.keyword else ""
            print(f"       read as: {READ_AS[reply.intent]}{word}")
        for message in decision.outgoing:
            print(f"       to send ({message.kind.value}):")
            for line in message.text.splitlines():
                print(f"         {line}")
        print(f"       state: {consent.state.value}")

    step(
        "Martha sends the opt-in request",
        RequestOptIn(
            at=at(0), greeting="Je suis Martha de Hearsay", by="martha", locale="fr"
        ),
    )
    step(
        "The client replies « C'est pour quoi ? »",
        Inbound(text="C'est pour quoi ?", at=at(3), message_id="sm1"),
    )
    step("The client replies « Oui »", Inbound(text="Oui", at=at(5), message_id="sm2"))
    step(
        "Martha texts in her own words",
        SendText(
            body="Merci ! Votre bilan est prêt, quand pouvons-nous en parler ?",
            at=at(9),
            by="martha",
        ),
    )
    step(
        "The client replies « STOP »", Inbound(text="STOP", at=at(30), message_id="sm3")
    )
    try:
        decide(consent, SendText(body="Une dernière chose…", at=at(31)), policy)
    except SendBlocked as blocked:
        print(
            f"\n{at(31):%H:%M}  Martha tries to text again: refused.\n       {blocked}"
        )
    verify(consent.contact, log, consent)  # raises RecordError if anything was edited
    print(
        f"\nThe log holds {len(log)} events, each chained to the one before by "
        "its hash, and it verifies.\n"
        "\nNothing was sent: this script only printed what a host would send. "
        "A host hands\neach message to its SMS provider, saves the new state "
        "and the events, and keeps\nthe log as proof of consent. "
        "ConsentService does all three with the host's own\nsend and store "
        "functions (docs/service.md)."
    )


if __name__ == "__main__":
    main()
