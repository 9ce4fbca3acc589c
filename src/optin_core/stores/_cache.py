"""A per-process cache of heads, for stores whose reads cost a decode."""

from __future__ import annotations

import threading
from collections import OrderedDict

from .._records import Consent

__all__ = ["HeadCache"]


class HeadCache:
    """A bounded LRU ``contact -> Consent`` of the heads a store read or
    wrote, shared by the threads of one process.

    Heads are immutable and a ``(contact, version, digest)`` triple is written
    once (compare-and-set on both), so a cached head is served only when the
    row, read in the same query, still names that version and digest: the
    database stays the truth, across threads and processes.
    """

    __slots__ = ("_heads", "_lock", "pid", "size")

    def __init__(self, size: int, pid: int) -> None:
        self.size = size
        self.pid = pid
        self._lock = threading.Lock()
        self._heads: OrderedDict[str, Consent] = OrderedDict()

    def get(self, contact: str) -> Consent | None:
        with self._lock:
            head = self._heads.get(contact)
            if head is not None:
                self._heads.move_to_end(contact)
            return head

    def add(self, head: Consent) -> None:
        if not self.size:
            return
        contact = head.contact
        with self._lock:
            held = self._heads.get(contact)
            if held is None or held.version <= head.version:
                self._heads[contact] = head
            self._heads.move_to_end(contact)
            if len(self._heads) > self.size:
                self._heads.popitem(last=False)

    def drop(self, contact: str) -> None:
        with self._lock:
            self._heads.pop(contact, None)
