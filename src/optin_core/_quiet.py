"""Quiet hours: when an agent may not text a contact, in the contact's zone.

Pure: the zone is an IANA name resolved once (at the boundary, where inputs
and policies are built) and cached by :mod:`zoneinfo`.
"""

from __future__ import annotations

import functools
from datetime import datetime, time, timedelta, tzinfo
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

__all__ = ["quiet_until", "zone"]


@functools.lru_cache(maxsize=512)
def zone(name: str) -> tzinfo:
    """The time zone called ``name`` (``"Europe/Paris"``); ``ValueError``
    naming it when there is none."""
    if not isinstance(name, str) or not name.strip():
        raise ValueError(
            f"a time zone is an IANA name like 'Europe/Paris', got {name!r}"
        )
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise ValueError(
            f"unknown time zone {name!r}: use an IANA name like 'America/New_York'"
        ) from None


def quiet_until(
    at: datetime, where: tzinfo, hours: tuple[time, time]
) -> datetime | None:
    """When the quiet hours ``hours`` (``(start, end)``, local wall-clock
    times, overnight when ``start > end``) around ``at`` end in the zone
    ``where``, or ``None`` when ``at`` is not in them.

    The end is the next wall-clock ``end`` in that zone, so a night across a
    change of daylight saving time still ends at ``end`` local time.
    """
    start, end = hours
    local = at.astimezone(where)
    now = local.time().replace(tzinfo=None)
    # A night across midnight (start > end) is two spans of the clock.
    quiet = start <= now < end if start <= end else now >= start or now < end
    if not quiet:
        return None
    day = local.date() if now < end else local.date() + timedelta(days=1)
    wake = datetime.combine(day, end, tzinfo=where)
    # A wall-clock time skipped by a change of time (a "gap") is read with
    # the offset before the gap; normalise it through UTC.
    return wake.astimezone(at.tzinfo)
