"""Phone numbers to E.164, with the optional ``phonenumbers`` package.

Contact ids are whatever the host uses; E.164 (``+33612345678``) is the safe
choice, since providers report inbound numbers that way. Normalising before
every call keeps "06 12 34 56 78" and "+33 6 12 34 56 78" one record.
"""

from __future__ import annotations

from typing import Any

from ._errors import InvalidInput

__all__ = ["normalize_phone"]


def _phonenumbers() -> Any:
    try:
        import phonenumbers  # noqa: PLC0415 (optional extra, imported on use)
    except ImportError:
        raise ImportError(
            "normalize_phone needs the optional 'phonenumbers' package: "
            "pip install 'optin-core[phone]'"
        ) from None
    return phonenumbers


def normalize_phone(number: str, region: str | None = None) -> str:
    """``number`` in E.164 form (``"+33612345678"``).

    ``region`` is the ISO 3166 country code ("FR", "US") used to read a
    national number; numbers written with ``+`` need none. Raises
    :class:`~optin_core.InvalidInput` for text that is not a possible phone
    number, ``TypeError`` for a non-str, and ``ImportError`` (saying what to
    install) without the ``phone`` extra.

    >>> normalize_phone("06 12 34 56 78", "FR")
    '+33612345678'

    .. versionadded:: 0.1.0
    """
    if not isinstance(number, str):
        raise TypeError(f"number must be str, got {type(number).__name__}")
    if region is not None and not isinstance(region, str):
        raise TypeError(f"region must be str or None, got {type(region).__name__}")
    pn = _phonenumbers()
    if len(number) > 64:
        raise InvalidInput(f"{number[:20]!r}... is too long to be a phone number")
    try:
        parsed = pn.parse(number, region.upper() if region else None)
    except pn.NumberParseException as e:
        hint = (
            "; pass region= (e.g. 'FR') for a national number"
            if region is None and not number.strip().startswith("+")
            else ""
        )
        raise InvalidInput(f"{number!r} is not a phone number ({e}){hint}") from None
    if not pn.is_possible_number(parsed):
        raise InvalidInput(
            f"{number!r} is not a possible phone number"
            + (f" in region {region!r}" if region else "")
        )
    return str(pn.format_number(parsed, pn.PhoneNumberFormat.E164))
