"""Locale negotiation: which keyword packs and catalogs serve a contact.

A contact's locale arrives from a CRM, a phone's settings or a web form, so it
comes in every spelling (``fr_CA``, ``fr-ca``, ``FR``, ``fr_FR.UTF-8``) and
sometimes as garbage. Inbound handling must never fail on it, so
:func:`locale_chain` always answers; only :func:`require_locale`, for hosts
that explicitly ask, raises.
"""

from __future__ import annotations

import re

from optin_core._errors import UnknownLocale

__all__ = ["available_locales", "locale_chain", "require_locale"]

# Kept in sync with the keyword packs and the catalogs by tests; a literal here
# (not a directory listing) keeps negotiation free of I/O.
_AVAILABLE: tuple[str, ...] = ("de", "en", "es", "fr", "fr-CA", "it", "nl", "pt")
_BY_FOLDED = {loc.casefold(): loc for loc in _AVAILABLE}

# BCP 47 and POSIX shapes only: anything else (control characters, lone
# surrogates, megabytes) is refused before Babel sees it.
_TAG_RE = re.compile(r"[A-Za-z]{2,3}(?:[-_][A-Za-z0-9]{1,8}){0,4}")
_POSIX_SUFFIX_RE = re.compile(r"[.@][A-Za-z0-9_.@-]*\Z")
_MAX_TAG = 48


def available_locales() -> tuple[str, ...]:
    """The locales with both a keyword pack and a message catalog, sorted.

    .. versionadded:: 0.1.0
    """
    return _AVAILABLE


def _parent(locale: str) -> str | None:
    head, sep, _ = locale.partition("-")
    return head if sep else None


def _negotiate(tag: str) -> str | None:
    """The servable locale for ``tag``, or ``None``. Never raises."""
    tag = tag.strip()
    if not tag or len(tag) > _MAX_TAG:
        return None
    tag = _POSIX_SUFFIX_RE.sub("", tag)
    if not _TAG_RE.fullmatch(tag):
        return None
    tag = tag.replace("_", "-")
    direct = _BY_FOLDED.get(tag.casefold())
    if direct is not None:
        return direct
    # Babel only for tags no pack spells as given (``iw``, ``pt-br``...): it
    # is imported on first use, keeping it off the import path.
    import babel  # noqa: PLC0415 (on first use)

    preferred = [tag]
    try:
        parsed = babel.Locale.parse(tag, sep="-")
    except Exception:  # UnknownLocaleError and friends: an inbound must not fail
        parsed = None
    if parsed is not None:
        # Babel canonicalises aliases and case (``iw`` -> ``he``,
        # ``pt-br`` -> ``pt_BR``); offer the territory form, then the language.
        if parsed.territory:
            preferred.append(f"{parsed.language}-{parsed.territory}")
        preferred.append(parsed.language)
    else:
        preferred.append(tag.partition("-")[0])
    # aliases={} because Babel's default aliases map a bare language to one
    # country ("fr" -> "fr_FR"), which would skip our bare-language packs.
    found = babel.negotiate_locale(preferred, _AVAILABLE, sep="-", aliases={})
    if found is None:
        return None
    return _BY_FOLDED.get(found.casefold())


def locale_chain(locale: str | None, default: str = "en") -> tuple[str, ...]:
    """The fallback ladder for ``locale``, most specific first, without repeats.

    ``fr-CA`` gives ``("fr-CA", "fr", <default ladder>, "en")``; regional
    variants without a pack use their language (``pt-BR`` -> ``pt``); spellings
    such as ``fr_FR``, ``fr-fr`` or ``FR`` are accepted. An unknown, empty or
    malformed locale (or ``None``) falls back to the ladder of ``default``, and
    an unusable ``default`` to ``"en"``: this never raises for a ``str`` or
    ``None``. Non-string arguments are a :class:`TypeError`.

    .. versionadded:: 0.1.0
    """
    if locale is not None and not isinstance(locale, str):
        raise TypeError(f"locale must be a str or None, not {type(locale).__name__}")
    if not isinstance(default, str):
        raise TypeError(f"default must be a str, not {type(default).__name__}")
    found = None if locale is None else _negotiate(locale)
    return _ladder(found, _negotiate(default))


def _ladder(found: str | None, default: str | None) -> tuple[str, ...]:
    """The chain from already negotiated locales (``None``: unusable)."""
    chain: list[str] = []
    for step in (found, default):
        if step is None:
            continue
        for loc in (step, _parent(step)):
            if loc is not None and loc not in chain:
                chain.append(loc)
    if "en" not in chain:
        chain.append("en")
    return tuple(chain)


def require_locale(locale: str) -> str:
    """The canonical servable locale for ``locale``, or :class:`UnknownLocale`.

    For hosts that explicitly pick a locale (a settings screen, an import) and
    want a mistake reported rather than silently replaced by the fallback.
    ``"fr_FR"`` gives ``"fr"`` (served by the French pack), ``"fr-ca"`` gives
    ``"fr-CA"``.

    .. versionadded:: 0.1.0
    """
    if not isinstance(locale, str):
        raise TypeError(f"locale must be a str, not {type(locale).__name__}")
    found = _negotiate(locale)
    if found is None:
        raise UnknownLocale(locale, _AVAILABLE)
    return found
