"""The message catalogs: complete, one segment, no NBSP, placeholders literal."""

from __future__ import annotations

import re

import pytest

from optin_core._catalog import check_catalogs, render_message
from optin_core._enums import MessageKind
from optin_core._locale import available_locales
from optin_core._parser import parse_reply
from optin_core._sms import sms_info

KINDS = [k for k in MessageKind if k is not MessageKind.TEXT]
ORG = "Acme Finance"  # 12 characters, as the segment budget assumes
PROGRAM = "Acme Alerts!"


def test_catalogs_are_complete() -> None:
    assert check_catalogs() == []


@pytest.mark.parametrize("locale", available_locales())
@pytest.mark.parametrize("kind", KINDS)
def test_each_message_renders_in_its_own_locale(kind: MessageKind, locale: str) -> None:
    text, used = render_message(kind, locale, org_name=ORG, program_name=PROGRAM)
    assert used == locale
    assert text.strip()
    assert "{" not in text
    assert "\u00a0" not in text
    assert "\u202f" not in text
    info = sms_info(text)
    assert info.segments == 1, (info, text)
    # Every default stays in GSM-7: a single non-GSM character would drop the
    # budget from 160 to 70 characters.
    assert info.encoding == "GSM-7", text


@pytest.mark.parametrize("locale", available_locales())
def test_wording_follows_practice(locale: str) -> None:
    def render(kind: MessageKind) -> str:
        return render_message(kind, locale, org_name=ORG, program_name=PROGRAM)[0]

    request = render(MessageKind.OPT_IN_REQUEST)
    assert ORG in request
    # The request names the answers, and they parse as such in that locale.
    reminder = render(MessageKind.REMINDER)
    for text in (request, reminder):
        words = [w.strip(".,()") for w in text.split()]
        answers = [w for w in words if w.isupper() and len(w) > 1 and w != "SMS"]
        intents = {parse_reply(w, locale).intent.value for w in answers}
        assert {"consent", "stop"} <= intents, (text, intents)
    stop = render(MessageKind.STOP_CONFIRMATION)
    assert PROGRAM in stop
    assert "START" in stop
    assert parse_reply("START", locale).intent.value == "start"
    for kind in (MessageKind.OPT_IN_CONFIRMATION, MessageKind.START_CONFIRMATION):
        assert PROGRAM in render(kind)
    assert ORG in render(MessageKind.DISCLAIMER)


def test_request_is_the_locked_wording_only() -> None:
    text, _ = render_message(
        MessageKind.OPT_IN_REQUEST, "en", org_name=ORG, program_name=PROGRAM
    )
    assert text.startswith(ORG)


@pytest.mark.parametrize(
    "name", ["{0.__class__}", "{x}", "{org_name}", "\\1 \\g<0>", "{{}}", "%s"]
)
def test_placeholder_values_are_literal(name: str) -> None:
    for kind in KINDS:
        text, _ = render_message(kind, "fr", org_name=name, program_name=name)
        assert name in text
        assert "<class" not in text


def test_text_has_no_template() -> None:
    with pytest.raises(ValueError):
        render_message(MessageKind.TEXT, "en", org_name=ORG, program_name=PROGRAM)
    with pytest.raises(TypeError):
        render_message("help", "en", org_name=ORG, program_name=PROGRAM)  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        render_message(MessageKind.HELP, "en", org_name=None, program_name="x")  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("locale", "default", "used"),
    [
        ("fr_CA", "en", "fr-CA"),
        ("fr-BE", "en", "fr"),
        ("pt-BR", "en", "pt"),
        ("zz", "de", "de"),
        (None, "es", "es"),
        ("\ud800", "en", "en"),
        ("", "nope", "en"),
    ],
)
def test_locale_fallback(locale: str | None, default: str, used: str) -> None:
    _, got = render_message(
        MessageKind.HELP,
        locale,
        default_locale=default,
        org_name=ORG,
        program_name=PROGRAM,
    )
    assert got == used


def test_overrides_come_first_at_each_step() -> None:
    overrides = {
        "en": {"help": "Call {org_name} at 555-0100. {unknown} stays."},
        "fr_CA": {"reminder": "Répondez OUI ou ARRET, {org_name}."},
    }
    text, used = render_message(
        MessageKind.HELP, "en", org_name=ORG, program_name=PROGRAM, overrides=overrides
    )
    assert (text, used) == (f"Call {ORG} at 555-0100. {{unknown}} stays.", "en")
    text, used = render_message(
        MessageKind.REMINDER,
        "fr-CA",
        org_name=ORG,
        program_name=PROGRAM,
        overrides=overrides,
    )
    assert (text, used) == (f"Répondez OUI ou ARRET, {ORG}.", "fr-CA")
    # An override of the language serves its regional variant first...
    text, used = render_message(
        MessageKind.HELP,
        "fr-CA",
        org_name=ORG,
        program_name=PROGRAM,
        overrides={"fr": {"help": "Aide {org_name}."}},
    )
    assert (text, used) == (f"Aide {ORG}.", "fr")
    # ...but a French contact gets the shipped French before an English override.
    text, used = render_message(
        MessageKind.HELP, "fr", org_name=ORG, program_name=PROGRAM, overrides=overrides
    )
    assert used == "fr"
    assert "555-0100" not in text


def test_sms_info() -> None:
    assert sms_info("").segments == 0
    assert sms_info("a" * 160) == sms_info("a" * 160)
    info = sms_info("a" * 160)
    assert (info.encoding, info.segments, info.units) == ("GSM-7", 1, 160)
    assert sms_info("a" * 161).segments == 2
    assert sms_info("a" * 306).segments == 2
    assert sms_info("a" * 307).segments == 3
    assert sms_info("€" * 80).units == 160
    assert sms_info("€" * 80).segments == 1
    assert sms_info("€" * 81).segments == 2
    # An escape pair is never split between parts: 152 + 2 does not fit 153.
    assert sms_info("a" * 152 + "€" + "a" * 10).segments == 2
    assert sms_info("é").encoding == "GSM-7"
    assert sms_info("ê").encoding == "UCS-2"
    assert sms_info("\u00a0").encoding == "UCS-2"
    info = sms_info("é" * 70 + "ê")
    assert (info.encoding, info.segments) == ("UCS-2", 2)
    assert sms_info("😀" * 35).units == 70
    assert sms_info("😀" * 35).segments == 1
    assert sms_info("😀" * 36).segments == 2
    assert sms_info("\ud800").units == 1
    with pytest.raises(TypeError):
        sms_info(None)  # type: ignore[arg-type]


# ---------------------------------------------------------------------------
# Receipt wording (issue 12)


def test_every_catalog_words_every_receipt_entry() -> None:
    from typing import get_args

    from optin_core import ConsentState, Trigger
    from optin_core._catalog import RECEIPT_WORDING, receipt_wording
    from optin_core._records import INPUT_KINDS
    from optin_core.stores._base import DELIVERY_STATUSES, MessageStatus

    needed = (
        {f"receipt_trigger_{t.value}" for t in Trigger}
        | {f"receipt_state_{s.value}" for s in ConsentState}
        | {f"receipt_input_{kind}" for kind in INPUT_KINDS}
        | {f"receipt_status_{s}" for s in get_args(MessageStatus)}
        | {f"receipt_delivery_{s}" for s in DELIVERY_STATUSES}
    )
    assert needed <= set(RECEIPT_WORDING)
    english = receipt_wording("en")
    for locale in available_locales():
        words = receipt_wording(locale)
        assert set(words) == set(RECEIPT_WORDING), locale
        for msgid, text in words.items():
            assert text.strip(), (locale, msgid)
            names = set(re.findall(r"\{([^{}]*)\}", text))
            assert names == set(RECEIPT_WORDING[msgid]), (locale, msgid)
        if locale != "en":
            translated = [k for k in words if words[k] != english[k]]
            assert len(translated) > 0.8 * len(words), locale


def test_receipt_entry_problems_are_reported() -> None:
    from optin_core._catalog import _receipt_problems

    catalog = {
        "receipt_verified": ("{count} ok {extra}", False),
        "receipt_erased": ("on {date}", True),
        "receipt_title": ("  ", False),
    }
    problems = _receipt_problems("xx", catalog)
    assert "xx/receipt_verified: unknown placeholder {extra}" in problems
    assert "xx/receipt_erased: fuzzy" in problems
    assert "xx/receipt_erased: missing placeholder {by}" in problems
    assert "xx/receipt_title: empty" in problems
    assert "xx/receipt_contact: missing" in problems


def test_receipt_placeholders_are_filled_literally() -> None:
    from optin_core._catalog import fill

    assert fill("{by} on {date} {other}", {"by": "{date}", "date": "\\1"}) == (
        "{date} on \\1 {other}"
    )
