"""SMS length arithmetic: encoding, code units and segments of a text.

Hosts use it to keep automatic messages to one segment and to warn an agent
before a greeting pushes the opt-in request into a second (billed) one.
"""

from __future__ import annotations

from typing import Final, Literal

import attrs

__all__ = ["SmsInfo", "sms_info"]

# GSM 03.38 default alphabet (basic table). ESC (0x1B) is left out: it is the
# escape to the extension table, not a character a text can carry.
_GSM_BASIC: Final = frozenset(
    "@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞÆæßÉ !\"#¤%&'()*+,-./0123456789:;<=>?"
    "¡ABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÑÜ§¿abcdefghijklmnopqrstuvwxyzäöñüà"
)
# Extension table: each costs two septets (ESC + code).
_GSM_EXTENSION: Final = frozenset("\f^{}\\[~]|€")

_GSM_SINGLE: Final = 160
_GSM_MULTI: Final = 153
_UCS2_SINGLE: Final = 70
_UCS2_MULTI: Final = 67


@attrs.frozen(kw_only=True, slots=True)
class SmsInfo:
    """How a text travels as SMS.

    ``units`` are septets for GSM-7 (extension characters count 2) and UTF-16
    code units for UCS-2 (characters outside the BMP count 2); ``segments``
    is how many SMS parts carry it (0 for the empty text).

    .. versionadded:: 0.1.0
    """

    encoding: Literal["GSM-7", "UCS-2"]
    segments: int
    units: int


def _segments(costs: list[int], single: int, multi: int) -> int:
    total = sum(costs)
    if total == 0:
        return 0
    if total <= single:
        return 1
    # A two-unit character (escape pair, surrogate pair) is never split
    # between parts, so count part by part rather than dividing.
    parts, used = 1, 0
    for cost in costs:
        if used + cost > multi:
            parts += 1
            used = 0
        used += cost
    return parts


def sms_info(text: str) -> SmsInfo:
    """Encoding, length in code units and segment count of ``text``.

    GSM-7 when every character is in the GSM 03.38 basic or extension table
    (160 septets in one segment, 153 per part when concatenated), else UCS-2
    (70 code units, 67 per part).

    .. versionadded:: 0.1.0
    """
    if not isinstance(text, str):
        raise TypeError(f"text must be a str, not {type(text).__name__}")
    if all(ch in _GSM_BASIC or ch in _GSM_EXTENSION for ch in text):
        costs = [2 if ch in _GSM_EXTENSION else 1 for ch in text]
        return SmsInfo(
            encoding="GSM-7",
            segments=_segments(costs, _GSM_SINGLE, _GSM_MULTI),
            units=sum(costs),
        )
    costs = [2 if ord(ch) > 0xFFFF else 1 for ch in text]
    return SmsInfo(
        encoding="UCS-2",
        segments=_segments(costs, _UCS2_SINGLE, _UCS2_MULTI),
        units=sum(costs),
    )
