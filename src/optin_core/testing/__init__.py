"""A testing kit for hosts: fakes, Hypothesis strategies and a pytest plugin.

* :class:`FakeClock`, :class:`RecordingSender`, :func:`memory_service` and
  :func:`sqlite_service` need nothing beyond optin_core.
* The strategies (:mod:`optin_core.testing.strategies`: :func:`policies`,
  :func:`inputs`, :func:`replies`, :func:`hostile_texts`, :func:`consents`,
  :func:`conversations`, :func:`scripts`...) need Hypothesis, which the
  ``testing`` extra installs (``pip install 'optin-core[testing]'``). They
  are importable from here too, and Hypothesis is imported on first use, so
  ``import optin_core.testing`` works without it.
* The pytest plugin (:mod:`optin_core.testing.plugin`) is registered through
  the ``pytest11`` entry point, so its fixtures (``optin_service``,
  ``optin_sqlite_service``, ``optin_sender``, ``optin_clock``,
  ``optin_policy``) are there in any pytest run once optin_core is installed.

The guide "Testing your host" in the docs shows them at work on a webhook
handler.

.. versionadded:: 0.2.0
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

from ._fakes import T0, FakeClock, RecordingSender, memory_service, sqlite_service

if TYPE_CHECKING:
    from .strategies import (
        CONTACTS,
        SAMPLE_REPLIES,
        Conversation,
        any_text,
        consents,
        conversations,
        decorations,
        hostile_texts,
        inputs,
        keyword_replies,
        moments,
        policies,
        replies,
        scripts,
    )

#: The names served by :mod:`optin_core.testing.strategies` (Hypothesis).
_STRATEGIES = frozenset(
    {
        "CONTACTS",
        "SAMPLE_REPLIES",
        "Conversation",
        "any_text",
        "consents",
        "conversations",
        "decorations",
        "hostile_texts",
        "inputs",
        "keyword_replies",
        "moments",
        "policies",
        "replies",
        "scripts",
    }
)

__all__ = [
    "CONTACTS",
    "SAMPLE_REPLIES",
    "T0",
    "Conversation",
    "FakeClock",
    "RecordingSender",
    "any_text",
    "consents",
    "conversations",
    "decorations",
    "hostile_texts",
    "inputs",
    "keyword_replies",
    "memory_service",
    "moments",
    "policies",
    "replies",
    "scripts",
    "sqlite_service",
]


def __getattr__(name: str) -> Any:
    if name not in _STRATEGIES:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    try:
        strategies = import_module(f"{__name__}.strategies")
    except ImportError as e:
        if e.name is None or e.name.split(".")[0] != "hypothesis":
            raise
        raise ImportError(
            f"optin_core.testing.{name} needs Hypothesis, which the 'testing' "
            "extra installs: pip install 'optin-core[testing]'",
            name=e.name,
        ) from e
    return getattr(strategies, name)
