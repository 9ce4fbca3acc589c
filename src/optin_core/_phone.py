"""Phone numbers to E.164, with the optional ``phonenumbers`` package.

Contact ids are whatever the host uses; E.164 (``+33612345678``) is the safe
choice, since providers report inbound numbers that way. Normalising before
every call keeps "06 12 34 56 78" and "+33 6 12 34 56 78" one record.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

from ._errors import InvalidInput

__all__ = ["canonical_contact", "normalize_phone", "phone_key", "zone_of_number"]

# "+", then digits that may be grouped by spaces, dots, dashes or brackets:
# how people and CRMs write an international number.
_E164_LIKE = re.compile(r"\+[\d\s.()\-]{7,30}")
_SEPARATORS = re.compile(r"[\s.()\-]")


def canonical_contact(contact: str) -> str:
    """The service's default ``contact_key``: an E.164-looking id
    (``"+1 415 555 0101"``, ``"+1-415-555-0101"``, ``"+1 (415) 555.0101"``)
    as plain E.164 (``"+14155550101"``); any other id (a chat handle, an
    e-mail address, a national number) unchanged. No dependency: national
    formats need :func:`phone_key`.

    .. versionadded:: 0.2.0
    """
    if not isinstance(contact, str):
        raise TypeError(f"contact must be str, got {type(contact).__name__}")
    stripped = contact.strip()
    if _E164_LIKE.fullmatch(stripped):
        digits = _SEPARATORS.sub("", stripped[1:])
        if digits.isdigit() and 7 <= len(digits) <= 15 and digits[0] != "0":
            return "+" + digits
    return contact


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
    if not pn.is_possible_number(parsed) or not pn.is_valid_number(parsed):
        raise InvalidInput(
            f"{number!r} is not a valid phone number"
            + (f" in region {region!r}" if region else "")
            + " (never guessed into another E.164 number)"
        )
    return str(pn.format_number(parsed, pn.PhoneNumberFormat.E164))


def zone_of_number(contact: str) -> str | None:
    """The IANA zone of an E.164 number when it has exactly one (a French
    mobile: ``"Europe/Paris"``), else ``None``; ``None`` too without the
    ``phone`` extra or for ids that are not numbers.

    .. versionadded:: 0.2.0
    """
    if not contact.startswith("+"):
        return None
    try:
        pn = _phonenumbers()
        from phonenumbers import timezone  # noqa: PLC0415 (optional extra)

        zones = timezone.time_zones_for_number(pn.parse(contact, None))
    except Exception:  # not installed, or not a number: no zone known
        return None
    if len(zones) != 1 or zones[0] == "Etc/Unknown":
        return None
    return str(zones[0])


def phone_key(region: str | None = None) -> Callable[[str], str]:
    """A ``contact_key`` for the service that reads national numbers too:
    ``ConsentService(..., contact_key=phone_key("FR"))`` files
    ``"06 12 34 56 78"`` under ``"+33612345678"``. Ids that are not phone
    numbers at all (no digits) are left alone; a number that is not valid is
    :class:`~optin_core.InvalidInput`. Needs the ``phone`` extra.

    .. versionadded:: 0.2.0
    """
    if region is not None and not isinstance(region, str):
        raise TypeError(f"region must be str or None, got {type(region).__name__}")
    _phonenumbers()  # fail at configuration, not at the first webhook

    def key(contact: str) -> str:
        if not isinstance(contact, str):
            raise TypeError(f"contact must be str, got {type(contact).__name__}")
        if not any(ch.isdigit() for ch in contact) or "@" in contact:
            return contact
        return normalize_phone(contact, region)

    return key
