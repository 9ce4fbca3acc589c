"""SMS providers as they really behave: opt-out error codes, inbound payloads.

* :data:`OPT_OUT_CODES`: the error codes with which providers refuse a message
  because the recipient opted out, each with the public page that documents
  it (codes known only from memory are left out). A host's ``send`` raises
  :func:`opt_out_error` 's answer, and the service records the stop.
* :func:`twilio_inbound`, :func:`telnyx_inbound`, :func:`vonage_inbound`: a
  provider's inbound webhook payload as the arguments of
  ``ConsentService.receive`` (:class:`InboundSms`). A payload missing a field
  is a ``ValueError`` naming it.
* :func:`verify_twilio_signature`: Twilio's request signature, checked with
  the ``twilio`` package's own validator (``pip install 'optin-core[twilio]'``):
  nothing hand-written.

.. versionadded:: 0.2.0
"""

from __future__ import annotations

import importlib
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import attrs

from ._errors import RecipientOptedOut

if TYPE_CHECKING:
    from ._records import Decision
    from ._service import ConsentService

__all__ = [
    "OPT_OUT_CODES",
    "InboundSms",
    "OptOutCode",
    "opt_out_error",
    "telnyx_inbound",
    "twilio_inbound",
    "verify_twilio_signature",
    "vonage_inbound",
]


@attrs.frozen(kw_only=True, slots=True)
class OptOutCode:
    """A provider's "the recipient opted out" error code, and its source."""

    provider: str
    code: str
    meaning: str
    source: str


#: Error codes that mean "the recipient opted out", with their sources.
OPT_OUT_CODES: tuple[OptOutCode, ...] = (
    OptOutCode(
        provider="twilio",
        code="21610",
        meaning="Attempt to send to unsubscribed recipient (replied STOP)",
        source="https://www.twilio.com/docs/api/errors/21610",
    ),
    OptOutCode(
        provider="telnyx",
        code="40300",
        meaning="Blocked due to STOP message (an existing block rule)",
        source="https://developers.telnyx.com/docs/messaging/messages/advanced-opt-in-out",
    ),
    OptOutCode(
        provider="vonage",
        code="9",
        meaning=(
            "SMS API delivery receipt err-code 9: the user has requested not "
            "to receive messages from the sending number"
        ),
        source="https://developer.vonage.com/en/opt-out-assist/guides/messaging-opted-out-numbers",
    ),
)

_BY_CODE = {(c.provider, c.code): c for c in OPT_OUT_CODES}


def opt_out_error(provider: str, code: object) -> RecipientOptedOut | None:
    """The :class:`~optin_core.RecipientOptedOut` a ``send`` should raise for
    ``provider``'s error ``code``, or ``None`` when the code does not mean an
    opt-out (raise your own error then, for a retry)::

        except TwilioRestException as e:
            raise opt_out_error("twilio", e.code) or e
    """
    name = str(provider).strip().lower()
    found = _BY_CODE.get((name, str(code).strip()))
    return None if found is None else RecipientOptedOut(found.code, provider=name)


@attrs.frozen(kw_only=True, slots=True)
class InboundSms:
    """An inbound SMS read off a provider's webhook.

    ``at`` is the provider's own time for the message when the payload has
    one (``None``: the service's clock), so a webhook redelivered after a
    stop is recognised as older than the stop. ``opt_out`` is the provider's
    own reading of a keyword when it reports one (Twilio's ``OptOutType``:
    ``"STOP"``, ``"START"``, ``"HELP"``), kept for the host's logs: the
    library reads the text itself.
    """

    provider: str
    contact: str
    text: str
    message_id: str
    at: datetime | None = None
    opt_out: str | None = None

    def receive(self, service: ConsentService) -> Decision:
        """``service.receive(contact, text, message_id=..., at=...)``."""
        return service.receive(
            self.contact, self.text, message_id=self.message_id, at=self.at
        )


def _field(payload: Mapping[str, Any], name: str, where: str = "") -> Any:
    if not isinstance(payload, Mapping):
        raise ValueError(f"expected a mapping for {where or 'the payload'}")
    value = payload.get(name)
    if value is None or (isinstance(value, str) and not value.strip()):
        raise ValueError(f"the payload has no {where + name!r} field")
    return value


def _text(payload: Mapping[str, Any], name: str, where: str = "") -> str:
    value = _field(payload, name, where)
    if not isinstance(value, str):
        raise ValueError(f"the payload's {where + name!r} is not text")
    return value


def twilio_inbound(form: Mapping[str, str]) -> InboundSms:
    """An inbound Twilio webhook (its form fields): ``From``, ``Body``,
    ``MessageSid``, and ``OptOutType`` when Advanced Opt-Out is on.

    Twilio sends no timestamp with an inbound message: ``at`` is ``None``.
    """
    body = form.get("Body") if isinstance(form, Mapping) else None
    if body is None:
        raise ValueError("the payload has no 'Body' field")
    opt_out = form.get("OptOutType") or None
    return InboundSms(
        provider="twilio",
        contact=_text(form, "From"),
        text=str(body),
        message_id=_text(form, "MessageSid"),
        opt_out=None if opt_out is None else str(opt_out).upper(),
    )


def telnyx_inbound(event: Mapping[str, Any]) -> InboundSms:
    """A Telnyx ``message.received`` webhook event (the parsed JSON)."""
    data = _field(event, "data")
    kind = _text(data, "event_type", "data.")
    if kind != "message.received":
        raise ValueError(f"not an inbound message event: {kind!r}")
    payload = _field(data, "payload", "data.")
    sender = _field(payload, "from", "data.payload.")
    text = payload.get("text") if isinstance(payload, Mapping) else None
    if text is None:
        raise ValueError("the payload has no 'data.payload.text' field")
    when = payload.get("received_at") or data.get("occurred_at")
    return InboundSms(
        provider="telnyx",
        contact=_text(sender, "phone_number", "data.payload.from."),
        text=str(text),
        message_id=_text(payload, "id", "data.payload."),
        at=None if when is None else _iso(str(when), "data.occurred_at"),
    )


def vonage_inbound(payload: Mapping[str, Any]) -> InboundSms:
    """A Vonage inbound SMS: the SMS API webhook (``msisdn``, ``text``,
    ``messageId``, ``message-timestamp``) or the Messages API one (``from``,
    ``text``, ``message_uuid``, ``timestamp``)."""
    if isinstance(payload, Mapping) and "msisdn" in payload:
        text = payload.get("text")
        if text is None:
            raise ValueError("the payload has no 'text' field")
        stamp = payload.get("message-timestamp")
        at = None
        if stamp is not None:
            try:
                at = datetime.strptime(str(stamp), "%Y-%m-%d %H:%M:%S").replace(
                    tzinfo=UTC
                )
            except ValueError:
                raise ValueError(
                    f"'message-timestamp' is not YYYY-MM-DD HH:MM:SS: {stamp!r:.40}"
                ) from None
        return InboundSms(
            provider="vonage",
            contact=_plus(_text(payload, "msisdn")),
            text=str(text),
            message_id=_text(payload, "messageId"),
            at=at,
        )
    text = payload.get("text") if isinstance(payload, Mapping) else None
    if text is None:
        raise ValueError("the payload has no 'text' field")
    stamp = payload.get("timestamp")
    return InboundSms(
        provider="vonage",
        contact=_plus(_text(payload, "from")),
        text=str(text),
        message_id=_text(payload, "message_uuid"),
        at=None if stamp is None else _iso(str(stamp), "timestamp"),
    )


def _plus(number: str) -> str:
    # Vonage writes international numbers without the "+" of E.164.
    number = number.strip()
    return number if number.startswith("+") or not number.isdigit() else "+" + number


def _iso(value: str, name: str) -> datetime:
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise ValueError(f"{name!r} is not an ISO 8601 time: {value!r:.40}") from None
    return parsed if parsed.tzinfo is not None else parsed.replace(tzinfo=UTC)


def verify_twilio_signature(
    url: str, params: Mapping[str, str], signature: str, auth_token: str
) -> bool:
    """Whether ``signature`` (the ``X-Twilio-Signature`` header) signs this
    request, by the ``twilio`` package's ``RequestValidator``.

    Raises ``ImportError`` naming the extra when ``twilio`` is missing.
    """
    try:
        validators = importlib.import_module("twilio.request_validator")
    except ImportError:
        raise ImportError(
            "checking Twilio signatures needs the twilio package: "
            "pip install 'optin-core[twilio]'"
        ) from None
    validator = validators.RequestValidator(auth_token)
    return bool(validator.validate(url, dict(params), signature))
