"""What ``import optin_core`` loads: the public names on first use only.

Deterministic checks (which modules a fresh interpreter has loaded), not
timings: the time itself is measured by ``bench/import_time.py``.
"""

from __future__ import annotations

import subprocess
import sys

import pytest

import optin_core
import optin_core.stores

HEAVY = (
    "asyncio",
    "babel",
    "babel.messages.pofile",
    "importlib.resources",
    "sqlite3",
    "statemachine",
    "tempfile",
)


def _loaded_after(code: str) -> list[str]:
    probe = (
        f"{code}\nimport sys\nprint(','.join(m for m in {HEAVY!r} if m in sys.modules))"
    )
    out = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, check=True
    ).stdout.strip()
    return [m for m in out.split(",") if m]


def test_import_loads_nothing_heavy() -> None:
    assert _loaded_after("import optin_core") == []


def test_the_decision_path_needs_no_service_store_or_declaration() -> None:
    # A host that only decides (its own shell) never pays for asyncio, SQLite
    # or python-statemachine; Babel's .po reader comes with the first policy,
    # which renders its messages.
    code = (
        "from optin_core import Inbound, Policy, RequestOptIn, decide, Consent\n"
        "from datetime import datetime, UTC\n"
        "p = Policy(org_name='Acme')\n"
        "c = Consent.new('+15550100')\n"
        "at = datetime(2026, 1, 1, tzinfo=UTC)\n"
        "d = decide(c, RequestOptIn(at=at), p)\n"
        "d = decide(d.consent, Inbound(text='Yes', at=at, message_id='m1'), p)\n"
        "assert d.consent.state.value == 'opted_in', d.consent.state\n"
    )
    assert _loaded_after(code) == ["babel", "babel.messages.pofile"]


@pytest.mark.parametrize("module", [optin_core, optin_core.stores])
def test_every_exported_name_resolves(module: object) -> None:
    names = module.__all__  # type: ignore[attr-defined]
    for name in names:
        assert getattr(module, name) is not None, name
    assert set(names) <= set(dir(module))


def test_an_unknown_name_is_an_attribute_error() -> None:
    with pytest.raises(AttributeError, match="no attribute 'nope'"):
        optin_core.nope  # type: ignore[attr-defined]  # noqa: B018
    with pytest.raises(AttributeError, match="no attribute 'nope'"):
        optin_core.stores.nope  # type: ignore[attr-defined]  # noqa: B018


def test_the_declaration_is_loaded_only_when_asked_for() -> None:
    loaded = _loaded_after("import optin_core\noptin_core.ConsentMachine")
    assert "statemachine" in loaded
