"""Stores: where the service keeps each contact's head, log and outbox.

The protocol (:class:`Store`, :class:`AsyncStore`) and the checks every store
shares live in ``_base``; :class:`MemoryStore` and :class:`SQLiteStore` ship
here, and :class:`PostgresStore` / :class:`AsyncPostgresStore` (the
``postgres`` extra: psycopg 3). All four are loaded on first use, so that this
package imports without sqlite3 or psycopg. ``tests/test_stores.py`` is the
contract suite a new store joins with one parameter.
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

from ._base import AsyncStore, Lease, MessageStatus, Store

if TYPE_CHECKING:
    from .memory import MemoryStore
    from .postgres import AsyncPostgresStore, PostgresStore
    from .sqlite import SQLiteStore

__all__ = [
    "AsyncPostgresStore",
    "AsyncStore",
    "Lease",
    "MemoryStore",
    "MessageStatus",
    "PostgresStore",
    "SQLiteStore",
    "Store",
]

#: Stores loaded on first use, with the extra their module needs (``None``:
#: none): ``import optin_core`` loads no store, so neither sqlite3 nor psycopg.
_LAZY: dict[str, tuple[str, str | None]] = {
    "MemoryStore": ("memory", None),
    "SQLiteStore": ("sqlite", None),
    "PostgresStore": ("postgres", "postgres"),
    "AsyncPostgresStore": ("postgres", "postgres"),
}


def __getattr__(name: str) -> Any:
    if name not in _LAZY:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    module, extra = _LAZY[name]
    try:
        value = getattr(import_module(f"{__name__}.{module}"), name)
    except ImportError as e:
        missing = e.name is None or e.name.split(".")[0] not in (
            "psycopg",
            "psycopg_pool",
        )
        if extra is None or missing:
            raise
        return _missing(name, extra, e)
    globals()[name] = value
    return value


def _missing(name: str, extra: str, error: ImportError) -> type:
    """A stand-in for ``name`` while its extra is not installed: importable
    (``from optin_core import *`` keeps working), and raising an
    ``ImportError`` naming the extra when used."""
    message = (
        f"{name} needs the {extra!r} extra (psycopg 3 and its pool): pip "
        f"install 'optin-core[{extra}]' (import failed: {error})"
    )

    def refuse(*_args: object, **_kwargs: object) -> Any:
        raise ImportError(message, name=error.name)

    return type(name, (), {"__new__": refuse, "__doc__": message})
