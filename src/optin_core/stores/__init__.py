"""Stores: where the service keeps each contact's head, log and outbox.

The protocol (:class:`Store`, :class:`AsyncStore`) and the checks every store
shares live in ``_base``; :class:`MemoryStore` and :class:`SQLiteStore` ship
here. ``tests/test_stores.py`` is the contract suite a new store joins with
one parameter.
"""

from __future__ import annotations

from ._base import AsyncStore, Lease, MessageStatus, Store
from .memory import MemoryStore
from .sqlite import SQLiteStore

__all__ = [
    "AsyncStore",
    "Lease",
    "MemoryStore",
    "MessageStatus",
    "SQLiteStore",
    "Store",
]
