"""Consent levels and message categories: the names every layer shares.

A contact's **consent level** says how strong their consent is, on a ladder
the policy defines (``Policy.levels``); the default ladder is
``none < disclosed < express < written``. The rules tie the levels below
``express`` to the states (``none`` for NEW, PENDING and STOPPED,
``disclosed`` for DISCLOSED); an OPTED_IN contact has ``express`` (an SMS
YES, a re-subscribe, an import) or more (an attestation whose method the
policy maps to a higher level). The transitions' effects on the level are
declared beside the machine (:data:`optin_core._machine.LEVEL_EFFECTS`).

A text's **category** (``SendText.category``, ``"informational"`` by
default) needs a minimum level (``Policy.categories``).

These names live apart so that records, the machine and the policy can
each use them without importing one another.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from types import MappingProxyType
from typing import Final

from ._enums import ConsentState

__all__ = [
    "DEFAULT_CATEGORY",
    "DEFAULT_LEVELS",
    "DISCLOSED",
    "EXPRESS",
    "INFORMATIONAL",
    "MARKETING",
    "NONE",
    "STATE_LEVELS",
    "WRITTEN",
    "is_name",
    "lower_on_default_ladder",
]

#: No consent: never contacted, awaiting a reply, or stopped.
NONE: Final = "none"
#: The disclaimer was delivered (disclaimer mode); no explicit consent.
DISCLOSED: Final = "disclosed"
#: Prior express consent: an SMS YES, a re-subscribe (START), an import.
EXPRESS: Final = "express"
#: Prior express written consent: a signed form, an e-mail confirmation,
#: an in-app e-signature (an attestation whose method the policy maps here).
WRITTEN: Final = "written"

#: The default ladder, lowest first.
DEFAULT_LEVELS: Final = (NONE, DISCLOSED, EXPRESS, WRITTEN)

#: The level every state implies: the level itself for all but OPTED_IN,
#: whose level is ``express`` or higher (raised by attestations). An event
#: records its level only where it differs from its ``to_state``'s here.
STATE_LEVELS: Final[Mapping[ConsentState, str]] = MappingProxyType(
    {
        ConsentState.NEW: NONE,
        ConsentState.PENDING: NONE,
        ConsentState.OPTED_IN: EXPRESS,
        ConsentState.DISCLOSED: DISCLOSED,
        ConsentState.STOPPED: NONE,
    }
)

#: The category of a text when none is given: what texting meant before
#: categories (an agent's own words to a consenting contact).
INFORMATIONAL: Final = "informational"
#: Marketing texts: prior express written consent by default.
MARKETING: Final = "marketing"
DEFAULT_CATEGORY: Final = INFORMATIONAL

_RANKS = {name: rank for rank, name in enumerate(DEFAULT_LEVELS)}

_NAME = re.compile(r"[a-z][a-z0-9_-]{0,63}").fullmatch


def is_name(value: object) -> bool:
    """Whether ``value`` can name a level or a category: lowercase ASCII
    letters, digits, ``_`` and ``-``, starting with a letter, at most 64."""
    return isinstance(value, str) and _NAME(value) is not None


def lower_on_default_ladder(level: str, than: str) -> bool:
    """Whether ``level`` is below ``than`` on the default ladder (``False``
    when either is not on it: a policy's own levels are the policy's to
    order)."""
    a, b = _RANKS.get(level), _RANKS.get(than)
    return a is not None and b is not None and a < b
