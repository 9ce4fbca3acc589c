"""A realistic mixed corpus of inbound replies, and the baseline keyword dict.

Replies are ``(text, locale)`` pairs across the eight shipped locales:
mostly short answers as people type them (case, punctuation, emoji,
full-width letters, a stray space), some conversation, reactions, and a few
long messages of about 300 characters.
"""

from __future__ import annotations

import json
from pathlib import Path

__all__ = [
    "LONG_REPLIES",
    "REPLIES",
    "SHORT_MAX",
    "baseline_keywords",
    "megabyte_replies",
    "short_replies",
]

#: A reply of at most this many characters counts as "short".
SHORT_MAX = 24

_SHORT: list[tuple[str, str]] = [
    # en
    ("Yes", "en"),
    ("yes", "en"),
    ("YES", "en"),
    ("Yes!", "en"),
    (" yes. ", "en"),
    ("Y", "en"),
    ("yep 👍", "en"),
    ("STOP", "en"),
    ("Stop.", "en"),
    ("stop", "en"),
    ("STOP please", "en"),
    ("stop texting me", "en"),
    ("please stop", "en"),
    ("Unsubscribe", "en"),
    ("opt-out", "en"),
    ("HELP", "en"),
    ("no", "en"),
    ("No thanks", "en"),
    ("who is this?", "en"),
    ("Yes please", "en"),
    ("ok", "en"),
    ("👍", "en"),
    ("START", "en"),
    ("Liked “Reply YES to receive texts”", "en"),
    ("ＹＥＳ", "en"),
    ("y\u200bes", "en"),
    # fr / fr-CA
    ("Oui", "fr"),
    ("Oui !", "fr"),
    ("OUI", "fr"),
    (" oui. ", "fr"),
    ("ＯＵＩ", "fr"),
    ("Arrêt", "fr"),
    ("ARRET", "fr"),
    ("stop", "fr"),
    ("Non", "fr"),
    ("C'est qui ?", "fr"),
    ("A aimé « Répondez OUI »", "fr"),
    ("Oui", "fr-CA"),
    ("Arrête", "fr-CA"),
    ("Désabonner", "fr-CA"),
    ("aide", "fr-CA"),
    ("Ben oui", "fr-CA"),
    # es
    ("Sí", "es"),
    ("si", "es"),
    ("SÍ!", "es"),
    ("Baja", "es"),
    ("Alto", "es"),
    ("ayuda", "es"),
    ("¿Quién es?", "es"),
    ("No", "es"),
    # pt
    ("Sim", "pt"),
    ("sim 😀", "pt"),
    ("Parar", "pt"),
    ("Sair", "pt"),
    ("ajuda", "pt"),
    ("Quem é?", "pt"),
    # de
    ("Ja", "de"),
    ("JA!", "de"),
    ("Stopp", "de"),
    ("Abmelden", "de"),
    ("Hilfe", "de"),
    ("Wer ist das?", "de"),
    ("Nein", "de"),
    # it
    ("Sì", "it"),
    ("si", "it"),
    ("Basta", "it"),
    ("Stop", "it"),
    ("aiuto", "it"),
    ("Chi è?", "it"),
    # nl
    ("Ja", "nl"),
    ("ja hoor", "nl"),
    ("Stop", "nl"),
    ("Afmelden", "nl"),
    ("Wie is dit?", "nl"),
]

_MEDIUM: list[tuple[str, str]] = [
    ("Sorry, I think you have the wrong number", "en"),
    ("Can you call me back after 5pm?", "en"),
    ("Merci, je vous rappelle demain matin.", "fr"),
    ("Gracias, ¿a qué hora abren mañana?", "es"),
    ("Danke, ich melde mich später bei Ihnen.", "de"),
    ("Bedankt, tot morgen!", "nl"),
    ("Obrigado, falo com você amanhã.", "pt"),
    ("Grazie, ci sentiamo domani.", "it"),
]

#: About 300 characters each: the long tail of real inboxes.
LONG_REPLIES: list[tuple[str, str]] = [
    (
        "Hi Martha, thanks for reaching out. I got your message about the "
        "policy renewal but I'm travelling until next Thursday and won't be "
        "able to look at the documents before then. Could you send me an "
        "e-mail with the summary instead, and we can set up a call when I'm "
        "back? Also, my wife's number changed, I'll forward it. Thanks!",
        "en",
    ),
    (
        "Bonjour, merci pour votre message. Je suis actuellement en "
        "déplacement et je ne pourrai pas regarder les documents avant "
        "jeudi prochain. Pourriez-vous plutôt m'envoyer un courriel avec le "
        "résumé ? Nous pourrons fixer un rendez-vous à mon retour. Mon "
        "numéro de bureau a changé, je vous le transmets. Bonne journée !",
        "fr",
    ),
    (
        "Hola, gracias por el mensaje. Estoy de viaje hasta el jueves y no "
        "podré revisar los documentos antes. ¿Me los puede enviar por correo "
        "con un resumen? Podemos hablar por teléfono cuando vuelva. Por "
        "cierto, el número de mi esposa cambió, se lo paso luego. ¡Saludos "
        "y que tenga un buen día! 😊",
        "es",
    ),
    (
        "Hallo, danke für die Nachricht. Ich bin bis nächsten Donnerstag "
        "unterwegs und kann mir die Unterlagen vorher nicht ansehen. Könnten "
        "Sie mir stattdessen eine E-Mail mit der Zusammenfassung schicken? "
        "Dann vereinbaren wir einen Termin, wenn ich zurück bin. Übrigens "
        "hat sich meine Büronummer geändert. Viele Grüße!",
        "de",
    ),
]

#: The mixed corpus: every short and medium reply, and the long ones.
REPLIES: list[tuple[str, str]] = _SHORT + _MEDIUM + LONG_REPLIES


def short_replies() -> list[tuple[str, str]]:
    return [(t, loc) for t, loc in REPLIES if len(t) <= SHORT_MAX]


def megabyte_replies(size: int = 1 << 20) -> dict[str, str]:
    """Adversarial inputs of ``size`` characters (1 MiB by default)."""
    words = "please call me back tomorrow about the renewal thanks "
    return {
        "prose": (words * (size // len(words) + 1))[:size],
        "stop+prose": ("STOP " + words * (size // len(words) + 1))[:size],
        "one word": "a" * size,
        "emoji+spaces": ("😀 \u200b" * (size // 3 + 1))[:size],
    }


def baseline_keywords() -> dict[str, str]:
    """Every keyword of every shipped pack, casefolded, mapped to its intent.

    Read straight from the data files, so the baseline does not depend on the
    parser it is compared with.
    """
    folder = Path(__file__).resolve().parent.parent / "src" / "optin_core" / "keywords"
    table: dict[str, str] = {}
    for path in sorted(folder.glob("*.json")):
        if path.name == "sources.json":
            continue
        pack = json.loads(path.read_text(encoding="utf-8"))
        for intent, entries in pack.items():
            if not isinstance(entries, list):
                continue
            for entry in entries:
                if isinstance(entry, dict) and isinstance(entry.get("keyword"), str):
                    table.setdefault(entry["keyword"].casefold(), intent)
    return table
