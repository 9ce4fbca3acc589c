"""Message catalogs: the automatic messages, per locale, as gettext ``.po``.

The catalogs live under ``optin_core/locales/<ll_CC>/LC_MESSAGES/`` and are
read at runtime with Babel (no compile step), once per process. The msgids are
the :class:`~optin_core.MessageKind` values, so a translator sees what each
message is for in the ``#.`` comment next to it.
"""

from __future__ import annotations

import functools
import io
import os
import re
from collections.abc import Mapping
from typing import Final

from optin_core._enums import MessageKind
from optin_core._locale import _negotiate, available_locales, locale_chain

__all__ = ["RECEIPT_WORDING", "check_catalogs", "receipt_wording", "render_message"]

_PLACEHOLDER_RE: Final = re.compile(r"\{([^{}]*)\}")
_KNOWN: Final = frozenset({"org_name", "program_name"})
#: Placeholders each message must carry, so that a translation cannot drop
#: the name a regulator expects to read (the program in a confirmation...).
_REQUIRED: Final[Mapping[MessageKind, frozenset[str]]] = {
    MessageKind.OPT_IN_REQUEST: frozenset({"org_name"}),
    MessageKind.REMINDER: frozenset(),
    MessageKind.OPT_IN_CONFIRMATION: frozenset({"program_name"}),
    MessageKind.STOP_CONFIRMATION: frozenset({"program_name"}),
    MessageKind.START_CONFIRMATION: frozenset({"program_name"}),
    MessageKind.HELP: frozenset({"program_name"}),
    MessageKind.DISCLAIMER: frozenset({"org_name"}),
}
# Not GSM-7, and French typography would slip them in before "!" or ":".
_FORBIDDEN_SPACES: Final = ("\u00a0", "\u202f", "\u2007")


#: The wording of consent receipts (``ConsentService.receipt``), by msgid,
#: with the placeholders each must carry (filled literally, never by
#: ``str.format``). Every shipped catalog translates every one.
RECEIPT_WORDING: Final[Mapping[str, frozenset[str]]] = {
    **{
        name: frozenset()
        for name in (
            "receipt_title",
            "receipt_contact",
            "receipt_state",
            "receipt_log",
            "receipt_stops",
            "receipt_none",
            "receipt_head_digest",
            "receipt_redacted",
            "receipt_when",
            "receipt_input",
            "receipt_actor",
            "receipt_policy",
            "receipt_reply",
            "receipt_rule",
            "receipt_keyword",
            "receipt_greeting",
            "receipt_wording",
            "receipt_message",
            "receipt_delivery",
            "receipt_provider_id",
            "receipt_sent_at",
            "receipt_report",
            "receipt_no_record",
            "receipt_method",
            "receipt_evidence",
            "receipt_reason",
            "receipt_withdrawn",
            "receipt_input_at",
            "receipt_version",
            "receipt_message_id",
        )
    },
    "receipt_verified": frozenset({"count"}),
    "receipt_not_verified": frozenset({"problem"}),
    "receipt_erased": frozenset({"date", "by"}),
    **{
        f"receipt_state_{state}": frozenset()
        for state in ("new", "pending", "opted_in", "disclosed", "stopped")
    },
    **{
        f"receipt_trigger_{trigger}": frozenset()
        for trigger in (
            "request",
            "resend",
            "disclose",
            "consent",
            "upgrade",
            "restart",
            "stop",
            "decline",
            "revoke",
            "attest",
            "remind",
            "help",
            "text",
            "pause",
            "cancel",
            "expire",
            "dead_letter",
            "signup",
            "import_stop",
            "import_opt_in",
        )
    },
    **{
        f"receipt_input_{kind}": frozenset()
        for kind in (
            "request_opt_in",
            "inbound",
            "send_text",
            "attest",
            "revoke",
            "provider_opt_out",
            "message_expired",
            "message_failed",
            "import",
        )
    },
    **{
        f"receipt_status_{status}": frozenset()
        for status in (
            "pending",
            "sent",
            "cancelled",
            "expired",
            "failed",
            "quarantined",
        )
    },
    **{
        f"receipt_delivery_{status}": frozenset()
        for status in ("delivered", "undelivered", "failed")
    },
    # Consent levels and message categories (the default ladder's levels;
    # a policy's own levels are shown by name).
    **{
        name: frozenset()
        for name in ("receipt_level", "receipt_level_reached", "receipt_category")
    },
    **{
        f"receipt_level_{level}": frozenset()
        for level in ("none", "disclosed", "express", "written")
    },
}


def receipt_wording(locale: str | None, default_locale: str = "en") -> dict[str, str]:
    """Every receipt msgid's text in ``locale`` (the locale ladder, as for
    messages: ``fr-CA`` falls back to ``fr``, then the default, then
    English), placeholders left in.

    .. versionadded:: 0.2.0
    """
    found: dict[str, str] = {}
    for step in reversed(locale_chain(locale, default_locale)):
        catalog = _catalog(step)
        for msgid in RECEIPT_WORDING:
            entry = catalog.get(msgid)
            if entry is not None and entry[0] and not entry[1]:
                found[msgid] = entry[0]
    return found


def fill(template: str, values: Mapping[str, str]) -> str:
    """``template`` with ``{name}`` replaced by ``values[name]`` literally
    (a value holding braces or backslashes stays as it is)."""

    def replace(m: re.Match[str]) -> str:
        return values.get(m.group(1), m.group(0))

    return _PLACEHOLDER_RE.sub(replace, template)


def _kinds() -> tuple[MessageKind, ...]:
    return tuple(k for k in MessageKind if k is not MessageKind.TEXT)


@functools.cache
def _catalog(locale: str) -> Mapping[str, tuple[str, bool]]:
    """msgid -> (msgstr, fuzzy) for a shipped locale; empty when unreadable."""
    # Babel's .po reader is imported on first use: most processes render
    # from a few locales, and ``import optin_core`` should not pay for it.
    from babel.messages.pofile import read_po  # noqa: PLC0415 (on first use)

    folder = os.path.join(os.path.dirname(os.path.abspath(__file__)), "locales")
    po = os.path.join(folder, locale.replace("-", "_"), "LC_MESSAGES", "optin_core.po")
    try:
        with open(po, "rb") as f:
            data = f.read()
    except OSError:
        return {}
    catalog = read_po(io.BytesIO(data), locale=locale.replace("-", "_"))
    out: dict[str, tuple[str, bool]] = {}
    for message in catalog:
        if (
            message.id
            and isinstance(message.id, str)
            and isinstance(message.string, str)
        ):
            out[message.id] = (message.string, message.fuzzy)
    return out


def _fill(template: str, org_name: str, program_name: str) -> str:
    values = {"org_name": org_name, "program_name": program_name}

    def replace(m: re.Match[str]) -> str:
        # A function replacement is inserted verbatim: a name holding "\1",
        # "{x}" or "{0.__class__}" stays literal (no str.format, no escapes).
        return values.get(m.group(1), m.group(0))

    return _PLACEHOLDER_RE.sub(replace, template)


def _override(
    overrides: Mapping[str, Mapping[str, str]], locale: str, kind: MessageKind
) -> str | None:
    per_kind = overrides.get(locale)
    if per_kind is None:
        # Policies may spell locales their own way ("fr_CA"); match loosely.
        for key, value in overrides.items():
            if isinstance(key, str) and _negotiate(key) == locale:
                per_kind = value
                break
    if not per_kind:
        return None
    template = per_kind.get(kind.value)
    return template if isinstance(template, str) and template else None


def _by_language(chain: tuple[str, ...]) -> list[list[str]]:
    """``("fr-CA", "fr", "en")`` -> ``[["fr-CA", "fr"], ["en"]]``, in order."""
    groups: dict[str, list[str]] = {}
    for step in chain:
        groups.setdefault(step.partition("-")[0], []).append(step)
    return list(groups.values())


def render_message(
    kind: MessageKind,
    locale: str | None,
    *,
    default_locale: str = "en",
    org_name: str,
    program_name: str,
    overrides: Mapping[str, Mapping[str, str]] | None = None,
) -> tuple[str, str]:
    """The text of an automatic message and the locale actually used.

    The locale ladder (:func:`~optin_core.locale_chain`) is walked one
    language at a time: within a language, a policy override
    (``{locale: {kind.value: template}}``) of any of its steps wins over the
    shipped catalogs (a ``fr`` override serves ``fr-CA`` contacts), and the
    shipped wording in the contact's language wins over an override in
    another (a French contact never gets the English override when French
    exists). ``{org_name}`` and ``{program_name}`` are
    replaced literally; other braces are left as they are. ``OPT_IN_REQUEST``
    is the locked opt-in wording only: the agent's greeting goes before it.
    ``TEXT`` (the agent's own words) has no template: :class:`ValueError`.

    .. versionadded:: 0.1.0
    """
    if not isinstance(kind, MessageKind):
        raise TypeError(f"kind must be a MessageKind, not {type(kind).__name__}")
    if kind is MessageKind.TEXT:
        raise ValueError(
            "MessageKind.TEXT is the agent's own words; it has no template"
        )
    for name, value in (("org_name", org_name), ("program_name", program_name)):
        if not isinstance(value, str):
            raise TypeError(f"{name} must be a str, not {type(value).__name__}")
    for group in _by_language(locale_chain(locale, default_locale)):
        if overrides:
            for step in group:
                template = _override(overrides, step, kind)
                if template is not None:
                    return _fill(template, org_name, program_name), step
        for step in group:
            entry = _catalog(step).get(kind.value)
            if entry is not None and entry[0] and not entry[1]:
                return _fill(entry[0], org_name, program_name), step
    # Unreachable while check_catalogs() passes for English.
    raise LookupError(f"no catalog has a {kind.value!r} message")


def check_catalogs() -> list[str]:
    """Problems in the shipped catalogs; an empty list when they are complete.

    Reports missing, fuzzy and empty entries, unknown msgids, unknown or
    missing placeholders, and non-breaking spaces.

    .. versionadded:: 0.1.0
    """
    problems: list[str] = []
    expected = {k.value: k for k in _kinds()}
    for locale in available_locales():
        catalog = _catalog(locale)
        if not catalog:
            problems.append(f"{locale}: catalog missing or unreadable")
            continue
        for msgid in sorted(set(catalog) - set(expected) - set(RECEIPT_WORDING)):
            problems.append(f"{locale}/{msgid}: unknown msgid")
        problems.extend(_receipt_problems(locale, catalog))
        for msgid, kind in expected.items():
            entry = catalog.get(msgid)
            if entry is None:
                problems.append(f"{locale}/{msgid}: missing")
                continue
            text, fuzzy = entry
            if fuzzy:
                problems.append(f"{locale}/{msgid}: fuzzy")
            if not text.strip():
                problems.append(f"{locale}/{msgid}: empty")
                continue
            names = set(_PLACEHOLDER_RE.findall(text))
            for name in sorted(names - _KNOWN):
                problems.append(f"{locale}/{msgid}: unknown placeholder {{{name}}}")
            for name in sorted(_REQUIRED[kind] - names):
                problems.append(f"{locale}/{msgid}: missing placeholder {{{name}}}")
            if any(space in text for space in _FORBIDDEN_SPACES):
                problems.append(f"{locale}/{msgid}: non-breaking space")
    return problems


def _receipt_problems(
    locale: str, catalog: Mapping[str, tuple[str, bool]]
) -> list[str]:
    """A catalog's problems with the receipt wording: missing, fuzzy or
    empty entries, placeholders other than the msgid's."""
    problems: list[str] = []
    for msgid, needed in RECEIPT_WORDING.items():
        entry = catalog.get(msgid)
        if entry is None:
            problems.append(f"{locale}/{msgid}: missing")
            continue
        text, fuzzy = entry
        if fuzzy:
            problems.append(f"{locale}/{msgid}: fuzzy")
        if not text.strip():
            problems.append(f"{locale}/{msgid}: empty")
            continue
        names = set(_PLACEHOLDER_RE.findall(text))
        for name in sorted(names - needed):
            problems.append(f"{locale}/{msgid}: unknown placeholder {{{name}}}")
        for name in sorted(needed - names):
            problems.append(f"{locale}/{msgid}: missing placeholder {{{name}}}")
    return problems
