"""Policy settings read from TOML (:meth:`optin_core.Policy.from_toml`).

TOML has no durations and no null, so this module reads them by a few
conventions, checks every value's TOML type against the field's declared
type before the policy sees it, and reports a mistake as a
:class:`~optin_core.PolicyError` naming the key and the type expected.
The policy's own validation then applies as for keyword arguments.
"""

from __future__ import annotations

import datetime as _dt
import difflib
import enum
import os
import re
import sys
import tomllib
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import attrs

from ._errors import PolicyError

__all__ = ["DURATION_HELP", "policy_settings", "read_duration", "toml_type"]

#: How durations are written in a policy file.
DURATION_HELP = (
    'a duration: a string such as "24h", "30m", "1h30m", "90s" or "2d", '
    "or an integer number of seconds"
)

_DURATION = re.compile(r"(?:(\d+)d)?(?:(\d+)h)?(?:(\d+)m)?(?:(\d+)s)?")
_NONE = "none"


def read_duration(value: object) -> _dt.timedelta | None:
    """``value`` as a timedelta, or ``None`` when it is not a duration."""
    if isinstance(value, int) and not isinstance(value, bool):
        return _dt.timedelta(seconds=value) if value >= 0 else None
    if isinstance(value, str):
        text = value.strip().replace(" ", "").lower()
        found = _DURATION.fullmatch(text)
        if text and found:
            days, hours, minutes, seconds = (int(g or 0) for g in found.groups())
            return _dt.timedelta(
                days=days, hours=hours, minutes=minutes, seconds=seconds
            )
    return None


def toml_type(value: object) -> str:
    """The TOML name of a parsed value's type, for error messages."""
    names: list[tuple[type | tuple[type, ...], str]] = [
        (bool, "a boolean"),
        (int, "an integer"),
        (float, "a float"),
        (str, "a string"),
        (list, "an array"),
        (dict, "a table"),
        (_dt.datetime, "a date-time"),
        (_dt.date, "a date"),
        (_dt.time, "a time"),
    ]
    for kind, name in names:
        if isinstance(value, kind):
            return name
    return type(value).__name__  # pragma: no cover - tomllib makes no other


def _is_strings(value: object) -> bool:
    return isinstance(value, list) and all(isinstance(v, str) for v in value)


def _is_string_table(value: object) -> bool:
    return isinstance(value, dict) and all(isinstance(v, str) for v in value.values())


def _enum(annotation: str, cls: type) -> type[enum.Enum] | None:
    """The enum class named ``annotation`` in the modules of ``cls``'s MRO."""
    for klass in cls.__mro__:
        module = sys.modules.get(klass.__module__)
        found = getattr(module, annotation, None)
        if isinstance(found, type) and issubclass(found, enum.Enum):
            return found
    return None


# Each rule: (expected, check, convert). ``check`` says whether the TOML
# value has the right type; ``convert`` turns it into the field's value.
_Rule = tuple[str, Callable[[Any], bool], Callable[[Any], Any]]


def _rule(annotation: str, cls: type) -> _Rule | None:
    """How to read a field declared as ``annotation`` (``None``: as is)."""
    rules: dict[str, _Rule] = {
        "str": ("a string", lambda v: isinstance(v, str), str),
        "bool": ("true or false", lambda v: isinstance(v, bool), bool),
        "int": (
            "an integer",
            lambda v: isinstance(v, int) and not isinstance(v, bool),
            int,
        ),
        "timedelta": (
            DURATION_HELP,
            lambda v: read_duration(v) is not None,
            read_duration,
        ),
        "timedelta | None": (
            f'{DURATION_HELP}, or "none"',
            lambda v: v == _NONE or read_duration(v) is not None,
            lambda v: None if v == _NONE else read_duration(v),
        ),
        "tuple[time, time] | None": (
            'two wall-clock times, such as ["21:00", "08:00"], or "none"',
            lambda v: (
                v == _NONE
                or (
                    isinstance(v, list)
                    and len(v) == 2
                    and all(isinstance(t, (str, _dt.time)) for t in v)
                )
            ),
            lambda v: None if v == _NONE else tuple(v),
        ),
        "tuple[str, ...]": ("an array of strings", _is_strings, tuple),
        "frozenset[str]": ("an array of strings", _is_strings, frozenset),
        "Mapping[str, str]": (
            'a table of names to levels: {email = "written"}, or an array of names',
            lambda v: _is_strings(v) or _is_string_table(v),
            lambda v: dict(v) if isinstance(v, dict) else tuple(v),
        ),
        "Mapping[str, str] | None": (
            'a table of names to levels: {marketing = "written"}, or "none"',
            lambda v: v == _NONE or _is_string_table(v),
            lambda v: None if v == _NONE else dict(v),
        ),
        "Mapping[Intent, Mapping[str, tuple[str, ...]]]": (
            "a table of intents, each a table of locales to arrays of words: "
            '[extra_keywords.consent] en = ["ok", "sure"]',
            lambda v: isinstance(v, dict),
            dict,
        ),
        "Mapping[str, Mapping[str, str]]": (
            "a table of locales, each a table of message kinds to texts: "
            '[templates.en] reminder = "..."',
            lambda v: isinstance(v, dict),
            dict,
        ),
    }
    if annotation in rules:
        return rules[annotation]
    kind = _enum(annotation, cls)
    if kind is not None:
        choices = [m.value for m in kind]
        listed = " or ".join(f'"{c}"' for c in choices)
        return (f"one of {listed}", lambda v: v in choices, str)
    return None


#: Settings a file may not hold, and why.
_REFUSED = {
    "log_key": "is a secret and never read from a file: pass it in code, "
    "Policy.from_toml(path, log_key=secret)",
}


def _load(source: str | os.PathLike[str]) -> dict[str, Any]:
    if isinstance(source, os.PathLike) or (
        isinstance(source, str) and "\n" not in source and "=" not in source
    ):
        with Path(source).open("rb") as f:
            return tomllib.load(f)
    if not isinstance(source, str):
        raise TypeError(f"expected a path or TOML text, got {type(source).__name__}")
    return tomllib.loads(source)


def policy_settings(
    cls: type,
    source: str | os.PathLike[str],
    *,
    table: str | None = None,
    overrides: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """The keyword arguments of ``cls`` read from ``source`` (a path, or
    TOML text), from its ``table`` (dotted: ``"tool.optin_core"``) when
    given; ``overrides`` win over the file."""
    data: Any = _load(source)
    for part in table.split(".") if table else ():
        data = data.get(part) if isinstance(data, dict) else None
        if data is None:
            raise PolicyError(table or "", "no such table in the file")
    if not isinstance(data, dict):
        raise PolicyError(table or "", f"expected a table, got {toml_type(data)}")
    fields = {f.name: f for f in attrs.fields(cls) if f.init}
    settings: dict[str, Any] = {}
    for key, value in data.items():
        field = fields.get(key)
        if field is None:
            close = difflib.get_close_matches(key, fields, n=1)
            raise PolicyError(
                key,
                f"unknown setting; did you mean {close[0]}?"
                if close
                else "unknown setting; the settings are " + ", ".join(sorted(fields)),
            )
        if key in _REFUSED:
            raise PolicyError(key, _REFUSED[key])
        rule = _rule(str(field.type), cls)
        if rule is None:
            settings[key] = value
            continue
        expected, check, convert = rule
        if not check(value):
            raise PolicyError(
                key, f"expected {expected}; got {toml_type(value)}: {value!r:.60}"
            )
        settings[key] = convert(value)
    settings.update(overrides or {})
    missing = [
        name
        for name, f in fields.items()
        if f.default is attrs.NOTHING and name not in settings
    ]
    if missing:
        raise PolicyError(missing[0], "is required")
    return settings
