"""Consent receipts (issue 12): golden files of the seed conversation in
French and English, escaping, every locale, erased and broken logs, and the
HTML receipt rendered by headless Chromium."""

from __future__ import annotations

import os
import shutil
import struct
import subprocess
import zlib
from datetime import timedelta
from pathlib import Path
from typing import Any

import attrs
import pytest

from optin_core import (
    ConsentService,
    InvalidInput,
    MemoryStore,
    Policy,
    UnknownLocale,
    available_locales,
)
from optin_core._catalog import RECEIPT_WORDING, receipt_wording

from .service_helpers import T0, Clock
from .test_seed import SCENARIOS

DATA = Path(__file__).parent / "data" / "receipts"
CONTACT = "+33612345678"
TEXTS = {"fr": "Votre bilan est prêt.", "en": "Your statement is ready."}
#: Set to regenerate the golden files (then review the diff).
UPDATE = os.environ.get("OPTIN_UPDATE_GOLDEN") == "1"


def _store() -> MemoryStore:
    store = MemoryStore()
    store._namespace = "golden"  # message keys (and digests) fixed
    return store


def seed_service(locale: str, *, reply: str | None = None) -> ConsentService:
    """The seed conversation, through the service: request with a greeting,
    an unclear reply (reminder), YES, the agent's text (delivered), STOP."""
    greeting, unclear, yes, stop, _ = SCENARIOS[locale]
    clock = Clock(T0)
    counter = iter(range(1, 100))

    def send(_message: Any) -> str:
        return f"SM{next(counter):04d}"

    svc = ConsentService(
        Policy(org_name="Hearsay", program_name="Hearsay Conseil"),
        _store(),
        send,
        clock=clock,
    )
    svc.request_opt_in(CONTACT, greeting=greeting, by="martha", locale=locale)
    clock.advance(minutes=3)
    svc.receive(CONTACT, reply or unclear, message_id="SMin01")
    clock.advance(minutes=2)
    svc.receive(CONTACT, yes, message_id="SMin02")
    clock.advance(minutes=4)
    svc.send_text(CONTACT, TEXTS[locale], by="martha")
    svc.delivery_status("SM0004", "delivered", at=clock() + timedelta(seconds=7))
    clock.advance(minutes=21)
    svc.receive(CONTACT, stop, message_id="SMin03")
    return svc


EXTENSIONS = {"text": "txt", "markdown": "md", "html": "html"}


@pytest.mark.parametrize("fmt", sorted(EXTENSIONS))
@pytest.mark.parametrize("locale", ["fr", "en"])
def test_the_seed_receipt_matches_its_golden_file(locale: str, fmt: str) -> None:
    svc = seed_service(locale)
    got = svc.receipt(CONTACT, tz="Europe/Paris", format=fmt)  # type: ignore[arg-type]
    path = DATA / f"seed-{locale}.{EXTENSIONS[fmt]}"
    if UPDATE:
        path.parent.mkdir(exist_ok=True)
        path.write_text(got, encoding="utf-8")
    assert got == path.read_text(encoding="utf-8")


@pytest.mark.parametrize("locale", ["fr", "en"])
def test_the_seed_receipt_says_what_an_auditor_asks(locale: str) -> None:
    svc = seed_service(locale)
    greeting, unclear, yes, _stop, _ = SCENARIOS[locale]
    log = svc.history(CONTACT)
    text = svc.receipt(CONTACT, tz="Europe/Paris")
    request = log.events[0].sent[0].text
    assert request.startswith(greeting + "\n")
    # The exact wording shown, line by line, and the greeting on its own.
    for line in request.split("\n"):
        assert f"   | {line}" in text
    assert text.count(f"   | {greeting}") == 2
    # Each reply verbatim, with its rule and keyword.
    for reply in (unclear, yes, "STOP"):
        assert f"   | {reply}\n" in text
    words = receipt_wording(locale)
    assert f"{words['receipt_rule']}: exact" in text
    assert f"{words['receipt_keyword']}: {yes.casefold()}" in text
    # Who and by which input, the policy, delivery with provider ids.
    assert f"{words['receipt_actor']}: martha" in text
    assert words["receipt_input_inbound"] in text
    assert f"{words['receipt_policy']}: default, {words['receipt_version']} 1" in text
    for n in range(1, 6):
        assert f"SM{n:04d}" in text
    assert words["receipt_delivery_delivered"] in text
    # Stops and restarts, the head digest, and that the log verifies.
    assert words["receipt_trigger_stop"] in text
    assert log.head.digest in text
    assert words["receipt_verified"].split("{")[0] in text
    # Dates in the receipt's zone: 09:00 UTC is 11:00 in Paris in April.
    assert "11:00:00" in text
    utc = svc.receipt(CONTACT, tz="UTC")
    assert "9:00:00" in utc
    assert "11:00:00" not in utc


HOSTILE = (
    "<script>document.title='pwned'</script> **bold** [x](http://e.vil) "
    "```fence``` \u202eevil\u202c \x00 \ud800 & &amp; {org_name}"
)


def test_a_hostile_reply_is_data_in_every_format() -> None:
    svc = seed_service("en", reply=HOSTILE)
    page = svc.receipt(CONTACT, format="html")
    assert "<script" not in page
    assert "&lt;script&gt;document.title=&#x27;pwned&#x27;&lt;/script&gt;" in page
    assert "&amp;amp;" in page
    assert "⟨U+202E⟩" in page
    assert "\u202e" not in page
    assert "⟨U+0000⟩" in page
    assert "⟨U+D800⟩" in page
    assert "{org_name}" in page  # never a format string
    markdown = svc.receipt(CONTACT, format="markdown")
    # Verbatim inside a fence longer than any backtick run of the reply.
    assert "````text\n<script>document.title='pwned'</script> **bold**" in markdown
    text = svc.receipt(CONTACT)
    assert "   | <script>document.title='pwned'</script>" in text
    for out in (page, markdown, text):
        out.encode("utf-8")  # no lone surrogate left


def test_receipt_arguments_are_checked() -> None:
    svc = seed_service("en")
    with pytest.raises(ValueError, match="format"):
        svc.receipt(CONTACT, format="pdf")  # type: ignore[arg-type]
    with pytest.raises(InvalidInput, match="tz"):
        svc.receipt(CONTACT, tz="Mars/Olympus")
    with pytest.raises(TypeError):
        svc.receipt(CONTACT, tz=3)  # type: ignore[arg-type]
    with pytest.raises(UnknownLocale):
        svc.receipt(CONTACT, locale="tlh")


@pytest.mark.parametrize("locale", available_locales())
def test_every_locale_has_its_receipt(locale: str) -> None:
    svc = seed_service("fr")
    text = svc.receipt(CONTACT, locale=locale, format="html")
    words = receipt_wording(locale)
    assert set(words) == set(RECEIPT_WORDING)
    assert f"<h1>{words['receipt_title']}</h1>" in text
    assert f'lang="{locale}"' in text
    if locale != "en":
        english = receipt_wording("en")
        same = [k for k in words if words[k] == english[k]]
        # A few words are the same in several languages ("Contact", "import").
        assert len(same) < len(words) // 5, same


def test_a_log_that_does_not_verify_is_shown_under_a_warning() -> None:
    svc = seed_service("en")
    store: Any = svc.store
    log = store._logs[CONTACT]
    reply = log[2].reply
    log[2] = attrs.evolve(log[2], reply=attrs.evolve(reply, text="No"))
    text = svc.receipt(CONTACT)
    assert "WARNING: the log does not verify:" in text
    assert "log[2].digest" in text
    assert "   | No\n" in text


def test_an_erased_contact_has_a_redacted_receipt() -> None:
    svc = seed_service("fr")
    svc.erase(CONTACT, by="dpo", reason="RGPD art. 17")
    for fmt in ("text", "markdown", "html"):
        out = svc.receipt(CONTACT, format=fmt)  # type: ignore[arg-type]
        assert CONTACT[1:] not in out
        assert "Je suis Martha" not in out
        assert "C'est pour quoi" not in out
        assert "[effacé" in out.replace("\\[", "[")
        assert "dpo" in out
        assert "Le journal est vérifié" in out
    # Once the contact came back, the receipt is the fresh log's.
    svc.receive(CONTACT, "START", message_id="back")
    assert "Envois repris par le contact" in svc.receipt(CONTACT, locale="fr")


# ---------------------------------------------------------------------------
# Rendered in a browser


def _chromium() -> str | None:
    for name in ("chromium", "chromium-browser", "google-chrome"):
        found = shutil.which(name)
        if found:
            return found
    return None


def _run_chromium(binary: str, profile: Path, *args: str) -> bytes:
    flags = [
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        f"--user-data-dir={profile}",
    ]
    done = subprocess.run(
        [binary, *flags, *args], capture_output=True, timeout=120, check=True
    )
    return done.stdout


def _pixels(png: bytes) -> tuple[int, int, list[bytes]]:
    """A PNG's width, height and rows of RGB(A) bytes: just enough of the
    format for Chromium's screenshots (8 bits, not interlaced)."""
    assert png[:8] == b"\x89PNG\r\n\x1a\n"
    pos, idat, width, height, channels = 8, b"", 0, 0, 0
    while pos < len(png):
        (length,) = struct.unpack(">I", png[pos : pos + 4])
        kind = png[pos + 4 : pos + 8]
        body = png[pos + 8 : pos + 8 + length]
        if kind == b"IHDR":
            width, height, depth, color, _c, _f, interlace = struct.unpack(
                ">IIBBBBB", body
            )
            assert (depth, interlace) == (8, 0)
            assert color in (2, 6)
            channels = 3 if color == 2 else 4
        elif kind == b"IDAT":
            idat += body
        pos += 12 + length
    raw = zlib.decompress(idat)
    stride = width * channels
    rows: list[bytes] = []
    previous = bytearray(stride)
    for y in range(height):
        start = y * (stride + 1)
        kind, line = raw[start], bytearray(raw[start + 1 : start + 1 + stride])
        for x in range(stride):
            left = line[x - channels] if x >= channels else 0
            up = previous[x]
            corner = previous[x - channels] if x >= channels else 0
            if kind == 1:
                line[x] = (line[x] + left) & 0xFF
            elif kind == 2:
                line[x] = (line[x] + up) & 0xFF
            elif kind == 3:
                line[x] = (line[x] + (left + up) // 2) & 0xFF
            elif kind == 4:
                p = left + up - corner
                pa, pb, pc = abs(p - left), abs(p - up), abs(p - corner)
                pred = left if pa <= pb and pa <= pc else up if pb <= pc else corner
                line[x] = (line[x] + pred) & 0xFF
        rows.append(bytes(line))
        previous = line
    return width, height, rows


def _ink(rows: list[bytes], channels: int = 4) -> int:
    """How many pixels are dark (text)."""
    dark = 0
    for row in rows:
        for x in range(0, len(row) - 2, channels):
            if row[x] + row[x + 1] + row[x + 2] < 300:
                dark += 1
    return dark


def _differing(one: list[bytes], two: list[bytes]) -> int:
    return sum(
        a != b
        for r1, r2 in zip(one, two, strict=True)
        for a, b in zip(r1, r2, strict=True)
    )


def test_the_html_receipt_renders_its_wording_and_reply_in_chromium(
    tmp_path: Path,
) -> None:
    binary = _chromium()
    if binary is None:
        if os.environ.get("CI"):
            pytest.fail(
                "chromium is missing: .ci/run installs Debian's chromium package; "
                "install it (apt-get install -y chromium)"
            )
        pytest.skip("chromium is not installed (apt-get install -y chromium)")
    reply = "C'est pour quoi ? <script>document.title='pwned'</script>"
    page = seed_service("fr", reply=reply).receipt(CONTACT, format="html")
    assert page.count('<pre class="verbatim reply">') == 3
    # The same page, then with the replies, then the messages, hidden by an
    # added style: what differs between the screenshots is what was drawn.
    hide = "<style>pre.{}{{visibility:hidden}}</style></head>"
    pages = {
        "receipt": page,
        "no-reply": page.replace("</head>", hide.format("reply"), 1),
        "no-message": page.replace("</head>", hide.format("message"), 1),
    }
    shots = {}
    for name, html in pages.items():
        path = tmp_path / f"{name}.html"
        path.write_text(html, encoding="utf-8")
        png = tmp_path / f"{name}.png"
        _run_chromium(
            binary,
            tmp_path / f"profile-{name}",
            f"--screenshot={png}",
            "--window-size=900,2600",
            path.as_uri(),
        )
        shots[name] = _pixels(png.read_bytes())
    dom = _run_chromium(
        binary,
        tmp_path / "profile-dom",
        "--dump-dom",
        (tmp_path / "receipt.html").as_uri(),
    ).decode("utf-8")
    # The wording and the reply are in the rendered document, as text: the
    # reply's <script> never ran (the title is the receipt's).
    assert "<title>Reçu de consentement</title>" in dom
    assert "pwned</title>" not in dom
    assert "Hearsay souhaite vous écrire par SMS." in dom
    assert "&lt;script&gt;document.title='pwned'&lt;/script&gt;" in dom
    assert dom.count("<script") == 0
    width, height, rows = shots["receipt"]
    assert (width, height) == (900, 2600)
    assert _ink(rows) > 20_000  # a page of text, not a blank screenshot
    # The replies and the wording are drawn: hiding them changes the page.
    assert _differing(rows, shots["no-reply"][2]) > 500
    assert _differing(rows, shots["no-message"][2]) > 2000
