"""Phone numbers: the service's canonical contact keys."""

from __future__ import annotations

import sys

import pytest

from optin_core import InvalidInput
from optin_core._phone import normalize_phone

# ---------------------------------------------------------------------------
# Phone numbers


def test_normalize_phone() -> None:
    assert normalize_phone("06 12 34 56 78", "FR") == "+33612345678"
    assert normalize_phone("+33612345678") == "+33612345678"
    assert normalize_phone("+33 6 12 34 56 78", "us") == "+33612345678"
    assert normalize_phone("(415) 555-2671", "US") == "+14155552671"
    with pytest.raises(InvalidInput, match="region"):
        normalize_phone("06 12 34 56 78")
    with pytest.raises(InvalidInput):
        normalize_phone("not a number", "FR")
    with pytest.raises(InvalidInput, match="not a valid phone number"):
        normalize_phone("+33 6123", "FR")
    with pytest.raises(InvalidInput, match="too long"):
        normalize_phone("1" * 100, "FR")
    with pytest.raises(TypeError):
        normalize_phone(33612345678)  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        normalize_phone("+33612345678", 33)  # type: ignore[arg-type]


def test_normalize_phone_without_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "phonenumbers", None)
    with pytest.raises(ImportError, match=r"optin-core\[phone\]"):
        normalize_phone("+33612345678")
