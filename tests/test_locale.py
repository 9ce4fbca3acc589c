"""Locale negotiation: the fallback ladder never fails an inbound."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from optin_core._errors import UnknownLocale
from optin_core._locale import available_locales, locale_chain, require_locale


def test_available() -> None:
    assert available_locales() == ("de", "en", "es", "fr", "fr-CA", "it", "nl", "pt")


@pytest.mark.parametrize(
    ("locale", "default", "chain"),
    [
        ("fr-CA", "en", ("fr-CA", "fr", "en")),
        ("fr_CA", "en", ("fr-CA", "fr", "en")),
        ("fr-ca", "en", ("fr-CA", "fr", "en")),
        ("FR", "en", ("fr", "en")),
        ("fr_FR", "en", ("fr", "en")),
        ("fr-FR", "en", ("fr", "en")),
        ("fr_FR.UTF-8", "en", ("fr", "en")),
        ("pt-BR", "en", ("pt", "en")),
        ("es-419", "en", ("es", "en")),
        ("de-AT", "en", ("de", "en")),
        ("en-US", "en", ("en",)),
        ("fr-CA", "es", ("fr-CA", "fr", "es", "en")),
        ("de", "fr-CA", ("de", "fr-CA", "fr", "en")),
        (None, "en", ("en",)),
        (None, "fr-CA", ("fr-CA", "fr", "en")),
        ("zh", "en", ("en",)),
        ("zh", "nl", ("nl", "en")),
        ("", "it", ("it", "en")),
        ("xx-YY", "en", ("en",)),
        ("fr-CA,fr;q=0.9", "en", ("en",)),
        ("\ud800", "en", ("en",)),
        ("a" * 10_000, "en", ("en",)),
        ("fr", "garbage!", ("fr", "en")),
    ],
)
def test_chain(locale: str | None, default: str, chain: tuple[str, ...]) -> None:
    assert locale_chain(locale, default) == chain


@given(st.one_of(st.none(), st.text(st.characters(codec=None))), st.text(max_size=10))
def test_chain_never_raises(locale: str | None, default: str) -> None:
    chain = locale_chain(locale, default)
    assert chain[-1] == "en"
    assert len(set(chain)) == len(chain)
    assert set(chain) <= set(available_locales())


@pytest.mark.parametrize("bad", [1, b"fr", ["fr"]])
def test_chain_type_errors(bad: object) -> None:
    with pytest.raises(TypeError):
        locale_chain(bad)  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        locale_chain("fr", bad)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("locale", "canonical"),
    [("fr_ca", "fr-CA"), ("FR", "fr"), ("fr-FR", "fr"), ("pt-BR", "pt"), ("en", "en")],
)
def test_require_locale(locale: str, canonical: str) -> None:
    assert require_locale(locale) == canonical


@pytest.mark.parametrize("locale", ["zh", "", "xx-YY", "not a locale", "\ud800"])
def test_require_locale_refuses(locale: str) -> None:
    with pytest.raises(UnknownLocale) as info:
        require_locale(locale)
    assert isinstance(info.value, LookupError)
    assert info.value.available == available_locales()
    with pytest.raises(TypeError):
        require_locale(None)  # type: ignore[arg-type]
