"""Policy.from_toml: every setting from a file, every mistake named."""

from __future__ import annotations

import re
import tomllib
from datetime import time, timedelta
from pathlib import Path

import attrs
import pytest

from optin_core import Intent, MessageKind, Mode, Policy, PolicyError
from optin_core._toml import read_duration, toml_type

DOCS = Path(__file__).parent.parent / "docs"


def test_every_kind_of_setting(tmp_path: Path) -> None:
    path = tmp_path / "policy.toml"
    path.write_text(
        """
org_name = "Hearsay"
mode = "disclaimer"
default_locale = "fr-CA"
languages = ["fr", "en"]
allow_resend = false
max_attempts = 2
resend_after = "1h30m"
loop_window = 600
stop_confirmation_window = "none"
quiet_hours = [21:00:00, "08:00"]
time_zone = "America/Montreal"
attestation_methods = ["email", "paper"]
policy_version = "2026-11"

[extra_keywords.consent]
fr = ["d'accord"]

[templates.fr]
reminder = "{org_name} : répondez OUI ou STOP."
""",
        encoding="utf-8",
    )
    policy = Policy.from_toml(path)
    assert policy.mode is Mode.DISCLAIMER
    assert policy.default_locale == "fr-CA"
    assert set(policy.languages) == {"fr", "en"}
    assert policy.allow_resend is False
    assert policy.max_attempts == 2
    assert policy.resend_after == timedelta(hours=1, minutes=30)
    assert policy.loop_window == timedelta(minutes=10)
    assert policy.stop_confirmation_window is None
    assert policy.quiet_hours == (time(21), time(8))
    # The names of 0.2.0: each gives express consent.
    assert dict(policy.attestation_methods) == {"email": "express", "paper": "express"}
    assert policy.extra_keywords[Intent.CONSENT]["fr"] == ("d'accord",)
    assert policy.message(MessageKind.REMINDER, "fr")[0].startswith("Hearsay :")
    # The same file as text, and as a str path.
    text = path.read_text(encoding="utf-8")
    assert Policy.from_toml(text) == policy
    assert Policy.from_toml(str(path)) == policy


def test_a_sub_table_and_overrides() -> None:
    text = '[tool.optin_core]\norg_name = "Acme"\nmax_attempts = 2\n'
    policy = Policy.from_toml(
        text, table="tool.optin_core", max_attempts=5, log_key=b"s" * 16
    )
    assert policy.org_name == "Acme"
    assert policy.max_attempts == 5
    assert policy.log_key == b"s" * 16
    with pytest.raises(PolicyError, match=r"Policy\.tool\.other: no such table"):
        Policy.from_toml(text, table="tool.other")
    with pytest.raises(PolicyError, match="expected a table, got an integer"):
        Policy.from_toml("x = 1\n", table="x")


def test_a_subclass_reads_its_own_fields() -> None:
    @attrs.frozen(kw_only=True)
    class Branch(Policy):
        branch: str = "main"
        weight: float = 1.0  # a type TOML rules do not know: passed as is

    policy = Branch.from_toml('org_name = "Acme"\nbranch = "Lyon"\nweight = 0.5\n')
    assert isinstance(policy, Branch)
    assert policy.branch == "Lyon"
    assert policy.weight == 0.5
    with pytest.raises(PolicyError, match=r"Policy\.branch: expected a string"):
        Branch.from_toml('org_name = "Acme"\nbranch = 1\n')


@pytest.mark.parametrize(
    ("line", "setting", "expected"),
    [
        ("foo = 1", "foo", "unknown setting; the settings are allow_resend"),
        ("max_attemps = 2", "max_attemps", "did you mean max_attempts?"),
        ("keywords = {}", "keywords", "unknown setting"),
        ("org_name = 3", "org_name", "expected a string; got an integer: 3"),
        ("max_attempts = true", "max_attempts", "expected an integer; got a boolean"),
        ("max_attempts = 2.5", "max_attempts", "expected an integer; got a float"),
        ("confirm_stop = 1", "confirm_stop", "expected true or false; got an integer"),
        ('mode = "strict"', "mode", 'expected one of "attestation" or "disclaimer"'),
        ("resend_after = -5", "resend_after", "expected a duration"),
        ('resend_after = ""', "resend_after", "expected a duration"),
        ("resend_after = 2026-01-01", "resend_after", "got a date: "),
        ("loop_window = 2026-01-01T00:00:00", "loop_window", "got a date-time"),
        ('stop_confirmation_window = "never"', "stop_confirmation_window", '"none"'),
        ('quiet_hours = ["21:00"]', "quiet_hours", "two wall-clock times"),
        ("quiet_hours = 21", "quiet_hours", "two wall-clock times"),
        ('languages = "fr"', "languages", "expected an array of strings"),
        ("attestation_methods = [1]", "attestation_methods", "an array of names"),
        ("attestation_methods = { email = 1 }", "attestation_methods", "a table"),
        ('categories = ["marketing"]', "categories", "a table of names"),
        ('levels = "written"', "levels", "an array of strings"),
        ('extra_keywords = ["ok"]', "extra_keywords", "a table of intents"),
        ('templates = "x"', "templates", "a table of locales"),
        ('log_key = "secret"', "log_key", "is a secret and never read from a file"),
        ('quiet_hours = ["25:00", "08:00"]', "quiet_hours", "is not a time"),
        ('languages = ["xx"]', "languages", "the available languages are"),
    ],
)
def test_mistakes_name_the_key_and_the_type(
    line: str, setting: str, expected: str
) -> None:
    with pytest.raises(PolicyError) as raised:
        Policy.from_toml(
            f'org_name = "Acme"\n{line}\n' if "org_name" not in line else line
        )
    assert raised.value.setting == setting
    assert expected in str(raised.value)
    assert str(raised.value).startswith(f"Policy.{setting}: ")


def test_org_name_is_required() -> None:
    with pytest.raises(PolicyError, match=r"Policy\.org_name: is required"):
        Policy.from_toml("max_attempts = 2\n")


def test_files_and_text_that_are_not_policies(tmp_path: Path) -> None:
    with pytest.raises(tomllib.TOMLDecodeError):
        Policy.from_toml('org_name = "Acme"\nmax_attempts =\n')
    with pytest.raises(FileNotFoundError):
        Policy.from_toml(tmp_path / "missing.toml")
    with pytest.raises(FileNotFoundError):
        Policy.from_toml("missing.toml")
    with pytest.raises(TypeError, match="a path or TOML text, got int"):
        Policy.from_toml(3)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("24h", timedelta(hours=24)),
        ("2d", timedelta(days=2)),
        ("1h30m", timedelta(hours=1, minutes=30)),
        (" 1H 30M ", timedelta(hours=1, minutes=30)),
        ("90s", timedelta(seconds=90)),
        ("1d2h3m4s", timedelta(days=1, hours=2, minutes=3, seconds=4)),
        (0, timedelta(0)),
        (3600, timedelta(hours=1)),
        ("", None),
        ("h", None),
        ("24 hours", None),
        ("-1h", None),
        (-1, None),
        (True, None),
        (1.5, None),
        (None, None),
    ],
)
def test_durations(value: object, expected: timedelta | None) -> None:
    assert read_duration(value) == expected


def test_toml_type_names() -> None:
    parsed = tomllib.loads(
        'a = true\nb = 1\nc = 1.5\nd = "x"\ne = []\nf = {}\n'
        "g = 2026-01-01T00:00:00\nh = 2026-01-01\ni = 09:30:00\n"
    )
    assert [toml_type(v) for v in parsed.values()] == [
        "a boolean",
        "an integer",
        "a float",
        "a string",
        "an array",
        "a table",
        "a date-time",
        "a date",
        "a time",
    ]


def test_the_example_of_the_settings_page_loads() -> None:
    page = (DOCS / "settings.md").read_text(encoding="utf-8")
    found = re.search(r"```toml\n(.*?)```", page, re.DOTALL)
    assert found is not None
    policy = Policy.from_toml(found.group(1))
    assert policy.org_name == "Banque Exemple"
    assert policy.quiet_hours == (time(21), time(8))
