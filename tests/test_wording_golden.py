"""Golden wording: every automatic message, in every shipped locale, word for
word, and the message each step of ``decide`` sends (issue 17).

The expected texts are ``tests/data/wording/<locale>.json``, written once
from the catalogs. A wording change made on purpose (a catalog edited, a
locale added) is re-recorded with::

    python -m tests.test_wording_golden

and the diff of ``tests/data/wording/`` is then reviewed like the catalog
change itself: it is what contacts will read. A diff nobody meant is a
regression these tests caught.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from optin_core import (
    Consent,
    ConsentState,
    Decision,
    Inbound,
    Input,
    MessageKind,
    Mode,
    Policy,
    RequestOptIn,
    Revoke,
    available_locales,
    decide,
    render_message,
)

GOLDEN = Path(__file__).parent / "data" / "wording"
ORG, PROGRAM = "Acme", "Acme Alerts"
CONTACT = "+15550100123"
T0 = datetime(2026, 12, 1, 9, 0, tzinfo=UTC)
#: Every kind with a template (TEXT is the agent's own words).
KINDS = tuple(kind for kind in MessageKind if kind is not MessageKind.TEXT)
LOCALES = ("de", "en", "es", "fr", "fr-CA", "it", "nl", "pt")

#: Each locale's own keywords, as its wording tells the contact to type them.
YES = {
    "de": "JA",
    "en": "YES",
    "es": "SI",
    "fr": "OUI",
    "fr-CA": "OUI",
    "it": "SI",
    "nl": "JA",
    "pt": "SIM",
}
HELP = {
    "de": "HILFE",
    "en": "HELP",
    "es": "AYUDA",
    "fr": "AIDE",
    "fr-CA": "AIDE",
    "it": "AIUTO",
    "nl": "HULP",
    "pt": "AJUDA",
}
STOP = {
    "de": "STOP",
    "en": "STOP",
    "es": "ALTO",
    "fr": "STOP",
    "fr-CA": "ARRET",
    "it": "STOP",
    "nl": "STOP",
    "pt": "PARAR",
}


def _policy(**changes: object) -> Policy:
    return Policy(org_name=ORG, program_name=PROGRAM, **changes)  # type: ignore[arg-type]


def record() -> dict[str, dict[str, str]]:
    """The wording of every kind in every shipped locale, as the catalogs
    render it for ``ORG`` and ``PROGRAM``."""
    return {
        locale: {
            kind.value: render_message(
                kind, locale, org_name=ORG, program_name=PROGRAM
            )[0]
            for kind in KINDS
        }
        for locale in available_locales()
    }


def write() -> None:
    GOLDEN.mkdir(parents=True, exist_ok=True)
    for old in GOLDEN.glob("*.json"):
        old.unlink()
    for locale, texts in record().items():
        (GOLDEN / f"{locale}.json").write_text(
            json.dumps(texts, ensure_ascii=False, indent=2) + "\n", encoding="utf-8"
        )


def golden(locale: str) -> dict[str, str]:
    texts: dict[str, str] = json.loads(
        (GOLDEN / f"{locale}.json").read_text(encoding="utf-8")
    )
    return texts


def test_the_golden_files_cover_every_shipped_locale_and_kind() -> None:
    assert available_locales() == LOCALES
    assert sorted(p.stem for p in GOLDEN.glob("*.json")) == sorted(LOCALES)
    for locale in LOCALES:
        assert set(golden(locale)) == {kind.value for kind in KINDS}, locale


@pytest.mark.parametrize("locale", LOCALES)
@pytest.mark.parametrize("kind", KINDS, ids=lambda k: k.value)
def test_every_message_is_worded_as_recorded(locale: str, kind: MessageKind) -> None:
    text, used = _policy().message(kind, locale)
    assert used == locale
    assert text == golden(locale)[kind.value]


@pytest.mark.parametrize("kind", KINDS, ids=lambda k: k.value)
def test_the_names_are_filled_where_the_wording_needs_them(kind: MessageKind) -> None:
    # The org name opens every request and disclaimer, the program name
    # every confirmation and HELP answer, in every locale.
    needs = {
        MessageKind.OPT_IN_REQUEST: ORG,
        MessageKind.DISCLAIMER: ORG,
        MessageKind.OPT_IN_CONFIRMATION: PROGRAM,
        MessageKind.STOP_CONFIRMATION: PROGRAM,
        MessageKind.START_CONFIRMATION: PROGRAM,
        MessageKind.HELP: PROGRAM,
    }.get(kind)
    for locale in LOCALES:
        text = golden(locale)[kind.value]
        assert "{" not in text, (locale, text)
        if needs is not None:
            assert needs in text, (locale, kind)


def test_every_kind_reads_differently_in_every_locale() -> None:
    # Two kinds sharing a text would let one stand in for the other unseen
    # (the request sent with the reminder's wording).
    for locale in LOCALES:
        texts = golden(locale)
        assert len(set(texts.values())) == len(texts), locale


class Contact:
    def __init__(self, policy: Policy) -> None:
        self.policy = policy
        self.consent = Consent.new(CONTACT)
        self.sent: list[tuple[MessageKind, str, str]] = []
        self.minutes = 0

    def apply(self, make: type[Input], **fields: object) -> Decision:
        self.minutes += 1
        at = T0 + timedelta(minutes=self.minutes)
        if make is Inbound:
            fields["message_id"] = f"m{self.minutes}"
        decision = decide(self.consent, make(at=at, **fields), self.policy)  # type: ignore[call-arg]
        self.consent = decision.consent
        self.sent.extend((m.kind, m.locale, m.text) for m in decision.outgoing)
        return decision

    def says(self, text: str) -> Decision:
        return self.apply(Inbound, text=text)


def _expected(kind: MessageKind, locale: str) -> tuple[MessageKind, str, str]:
    return kind, locale, golden(locale)[kind.value]


@pytest.mark.parametrize("locale", LOCALES)
def test_each_step_sends_its_own_kind_and_wording(locale: str) -> None:
    contact = Contact(_policy())
    contact.apply(RequestOptIn, locale=locale)
    contact.says("hmm?")
    contact.says(HELP[locale])
    contact.says(STOP[locale])
    assert contact.consent.state is ConsentState.STOPPED
    assert contact.sent == [
        _expected(MessageKind.OPT_IN_REQUEST, locale),
        _expected(MessageKind.REMINDER, locale),
        _expected(MessageKind.HELP, locale),
        _expected(MessageKind.STOP_CONFIRMATION, locale),
    ]


#: A fr-CA contact's OUI (a word of the fr pack) is answered in fr-CA:
#: docs/parsing.md, "fr-CA for a Canadian contact". (Fixed in 0.3.0; found
#: by these tests.)
BY_OWN_YES = LOCALES


@pytest.mark.parametrize("locale", BY_OWN_YES)
def test_consent_in_the_contacts_own_word_is_confirmed_in_their_locale(
    locale: str,
) -> None:
    contact = Contact(_policy())
    contact.apply(RequestOptIn, locale=locale)
    contact.says(YES[locale])
    assert contact.consent.state is ConsentState.OPTED_IN
    assert contact.sent[1:] == [_expected(MessageKind.OPT_IN_CONFIRMATION, locale)]


@pytest.mark.parametrize("locale", BY_OWN_YES)
def test_a_restart_is_confirmed_with_the_restart_wording(locale: str) -> None:
    # With yes_restarts, the contact's consent word restarts them after a
    # stop. (START itself is an English keyword, answered in English:
    # docs/parsing.md.)
    contact = Contact(_policy(yes_restarts=True))
    contact.apply(RequestOptIn, locale=locale)
    contact.apply(Revoke, by="agent", reason="asked by phone")
    contact.says(YES[locale])
    assert contact.consent.state is ConsentState.OPTED_IN
    assert contact.sent[1:] == [_expected(MessageKind.START_CONFIRMATION, locale)]


def test_start_is_english_and_answered_in_english() -> None:
    contact = Contact(_policy())
    contact.apply(RequestOptIn, locale="de")
    contact.says("STOP")
    contact.says("START")
    assert contact.consent.state is ConsentState.OPTED_IN
    assert contact.sent[-1] == _expected(MessageKind.START_CONFIRMATION, "en")


@pytest.mark.parametrize("locale", LOCALES)
def test_disclaimer_mode_sends_the_disclaimers_wording(locale: str) -> None:
    contact = Contact(_policy(mode=Mode.DISCLAIMER))
    contact.apply(RequestOptIn, locale=locale)
    assert contact.consent.state is ConsentState.DISCLOSED
    assert contact.sent == [_expected(MessageKind.DISCLAIMER, locale)]


@pytest.mark.parametrize("locale", LOCALES)
def test_the_request_is_the_greeting_then_the_locked_wording(locale: str) -> None:
    # A policy that rewords its reminder still sends the request's wording.
    contact = Contact(
        _policy(templates={"en": {"reminder": "Reply YES or STOP, {org_name}."}})
    )
    contact.apply(RequestOptIn, locale=locale, greeting="Hi Ana!")
    ((kind, used, text),) = contact.sent
    assert (kind, used) == (MessageKind.OPT_IN_REQUEST, locale)
    assert text == "Hi Ana!\n" + golden(locale)[kind.value]


if __name__ == "__main__":
    write()
    print(f"wrote {GOLDEN}: review the diff before committing it")


@pytest.mark.parametrize(
    ("contact_locale", "reply", "answered_in"),
    [
        # The keyword's language, in the contact's own variant of it.
        ("fr-CA", "OUI", "fr-CA"),
        ("fr_CA", "Oui", "fr-CA"),
        ("fr-ca", "ARRET", "fr-CA"),
        ("fr-BE", "Oui", "fr"),
        ("fr", "Oui", "fr"),
        # Another language's keyword: that language, not the contact's.
        ("en", "Oui", "fr"),
        ("fr-CA", "Sí", "es"),
        ("de", "ARRET", "fr"),
    ],
)
def test_a_keyword_is_answered_in_its_language_in_the_contacts_variant(
    contact_locale: str, reply: str, answered_in: str
) -> None:
    contact = Contact(_policy())
    contact.apply(RequestOptIn, locale=contact_locale)
    contact.says(reply)
    (kind, used, text) = contact.sent[-1]
    assert used == answered_in
    assert text == golden(answered_in)[kind.value]
