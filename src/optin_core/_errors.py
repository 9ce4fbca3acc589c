"""The error tree.

Every error the library raises derives from :class:`OptinError`. Errors that
report host misuse also derive from the builtin that fits (``ValueError``,
``LookupError``) so that generic handlers keep working. A contact's reply never
raises: odd text is classified, not rejected.
"""

from __future__ import annotations

import reprlib
from collections.abc import Iterable
from datetime import datetime
from typing import ClassVar

__all__ = [
    "ContactStopped",
    "DuplicateMessage",
    "ImportRefused",
    "InvalidGreeting",
    "InvalidInput",
    "MethodNotAccepted",
    "OptinError",
    "PolicyError",
    "RecipientOptedOut",
    "RecordError",
    "ResendNotAllowed",
    "SendBlocked",
    "StaleVersion",
    "StoreUnavailable",
    "UnknownContact",
    "UnknownLocale",
]


_shown = reprlib.Repr()
_shown.maxlevel = 2
_shown.maxstring = 40
_shown.maxother = 40
_shown.maxlist = _shown.maxdict = _shown.maxtuple = 4


def show(value: object) -> str:
    """A short ``repr`` of untrusted data for an error message: bounded in
    length and depth, so a hostile value cannot make the message itself fail
    (``repr`` of a list nested 100,000 deep raises ``RecursionError``)."""
    try:
        return _shown.repr(value)
    except Exception:  # a host object whose __repr__ raises
        return f"<{type(value).__name__}>"


class OptinError(Exception):
    """Base class of every error raised by optin_core.

    .. versionadded:: 0.1.0
    """


class SendBlocked(OptinError, ValueError):
    """The agent's text may not be sent in the contact's current state.

    ``reason`` is one of ``"opt_in_required"``, ``"awaiting_reply"``,
    ``"stopped"``, ``"too_long"``, ``"quiet_hours"`` (then
    ``next_allowed_at`` says when the quiet hours end) or
    ``"level_too_low"``: the text's ``category`` needs the ``required``
    consent level and the contact has only ``current``; ``methods`` are the
    accepted attestation methods that would raise it (empty when none
    does: the policy must accept one first).

    .. versionadded:: 0.1.0
    .. versionchanged:: 0.2.0 ``"quiet_hours"`` and ``next_allowed_at``.
    .. versionchanged:: 0.3.0 ``"level_too_low"``, ``category``,
       ``required``, ``current`` and ``methods``.
    """

    _ADVICE: ClassVar[dict[str, str]] = {
        "opt_in_required": "send the opt-in request first (request_opt_in) "
        "and wait for the contact's YES",
        "awaiting_reply": "the opt-in request is awaiting the contact's YES; "
        "wait for it or resend the request when the policy allows",
        "stopped": "the contact replied STOP; only the contact can restart "
        "messaging (by texting START)",
        "too_long": "shorten the text to the policy's max_text_length",
        "quiet_hours": "it is night where the contact lives (the policy's "
        "quiet_hours); send it at or after next_allowed_at",
    }

    def __init__(
        self,
        reason: str,
        *,
        contact: str = "",
        next_allowed_at: datetime | None = None,
        category: str | None = None,
        required: str | None = None,
        current: str | None = None,
        methods: Iterable[str] = (),
    ) -> None:
        self.reason = reason
        self.contact = contact
        self.next_allowed_at = next_allowed_at
        self.category = category
        self.required = required
        self.current = current
        self.methods = tuple(methods)
        if reason == "level_too_low":
            advice = self._level_advice()
        else:
            advice = self._ADVICE.get(reason, "check the contact's state first")
        if next_allowed_at is not None:
            advice += f" ({next_allowed_at.isoformat()})"
        who = f" to {contact!r}" if contact else ""
        super().__init__(f"text{who} blocked ({reason}): {advice}")

    def _level_advice(self) -> str:
        needs = (
            f"a {self.category} text needs {self.required} consent and the "
            f"contact's level is {self.current}"
        )
        if self.methods:
            return (
                f"{needs}; raise it with an attestation by "
                f"{' or '.join(self.methods)} (attest(method=..., evidence=...)), "
                "or send it in a category the contact's level allows"
            )
        return (
            f"{needs}; no accepted attestation method gives {self.required}: map "
            "one to it in Policy.attestation_methods, or send it in a category "
            "the contact's level allows"
        )


class ContactStopped(OptinError, ValueError):
    """The contact has opted out; requests and attestations are refused.

    .. versionadded:: 0.1.0
    """

    def __init__(self, contact: str = "", *, what: str = "this action") -> None:
        self.contact = contact
        who = f"contact {contact!r}" if contact else "the contact"
        super().__init__(
            f"{who} has opted out, so {what} is refused; only the contact can "
            "restart messaging by texting START"
        )


class ResendNotAllowed(OptinError, ValueError):
    """The opt-in request may not be resent now.

    ``attempts_left`` says how many requests remain (0 when none), and
    ``next_allowed_at`` when the next one may go (``None`` when never).

    .. versionadded:: 0.1.0
    """

    def __init__(
        self,
        why: str,
        *,
        attempts_left: int,
        next_allowed_at: datetime | None,
    ) -> None:
        self.why = why
        self.attempts_left = attempts_left
        self.next_allowed_at = next_allowed_at
        if next_allowed_at is None:
            advice = "no further request can be sent under this policy"
        else:
            advice = f"try again at or after {next_allowed_at.isoformat()}"
        super().__init__(
            f"opt-in request not resent ({why}; {attempts_left} attempt(s) "
            f"left): {advice}"
        )


class MethodNotAccepted(OptinError, ValueError):
    """An out-of-band attestation used a method the policy does not accept.

    .. versionadded:: 0.1.0
    """

    def __init__(self, method: str, accepted: Iterable[str]) -> None:
        self.method = method
        self.accepted = tuple(sorted(accepted))
        names = ", ".join(self.accepted) or "none"
        super().__init__(
            f"attestation method {method!r} is not accepted by the policy "
            f"(accepted: {names}); add it to Policy.attestation_methods or "
            "gather consent by SMS"
        )


class StaleVersion(OptinError):
    """A compare-and-set write found another version in the store.

    The caller should reload the record and decide again.

    .. versionadded:: 0.1.0
    """

    def __init__(
        self,
        contact: str,
        *,
        expected: int,
        found: int | None,
        why: str = "",
    ) -> None:
        self.contact = contact
        self.expected = expected
        self.found = found
        detail = f"; {why}" if why else ""
        super().__init__(
            f"record of {contact!r} changed concurrently (expected version "
            f"{expected}, found {found}{detail}); reload it and decide again"
        )


class DuplicateMessage(OptinError):
    """A store refused a write whose inbound ``message_id`` is already in the
    contact's log: a redelivered webhook, however old.

    :class:`~optin_core.ConsentService` treats it as "already processed" and
    returns an unchanged decision; a host's own shell should do the same.

    .. versionadded:: 0.2.0
    """

    def __init__(self, contact: str, message_id: str) -> None:
        self.contact = contact
        self.message_id = message_id
        super().__init__(
            f"message {message_id!r} of {contact!r} is already in its consent "
            "log; it was processed before, so drop this delivery"
        )


class RecipientOptedOut(OptinError):
    """Raised by a host's ``send`` when the provider refuses a message because
    the recipient opted out with it (Twilio 21610, Telnyx 40300...; see
    :mod:`optin_core.providers`).

    The service then records the opt-out as a stop (a ``revoke`` from
    ``provider:<name>``, with no confirmation: the provider or carrier
    already answered) and withdraws every message still queued for the
    contact.

    .. versionadded:: 0.2.0
    """

    def __init__(self, code: str, *, provider: str | None = None) -> None:
        self.code = str(code)
        self.provider = provider or "provider"
        super().__init__(
            f"{self.provider} refused the message: the recipient opted out "
            f"(code {self.code}); the contact is recorded as stopped"
        )


class StoreUnavailable(OptinError, ConnectionError):
    """A store could not reach its database server, or lost the connection
    during an operation.

    ``server`` is where the store tried to connect (``host:port``, never the
    password); ``problem`` what went wrong. A write interrupted before its
    commit wrote nothing; ``outcome_unknown`` is true when the connection
    was lost during the commit itself, so the write may or may not be saved
    (read the head again before deciding anything).

    .. versionadded:: 0.2.0
    """

    def __init__(
        self, server: str, problem: str, *, outcome_unknown: bool = False
    ) -> None:
        self.server = server
        self.problem = problem
        self.outcome_unknown = outcome_unknown
        tail = (
            "; the write may or may not have been saved: read the record again"
            if outcome_unknown
            else "; nothing was written"
        )
        super().__init__(
            f"the database server at {server} is unreachable or refused the "
            f"connection: {problem}{tail}"
        )


class PolicyError(OptinError, ValueError):
    """A policy setting is invalid. The message names the setting.

    .. versionadded:: 0.1.0
    """

    def __init__(self, setting: str, problem: str) -> None:
        self.setting = setting
        super().__init__(f"Policy.{setting}: {problem}")


class InvalidInput(OptinError, ValueError):
    """An input built by the host is invalid (naive datetime, empty id...).

    .. versionadded:: 0.1.0
    """


class InvalidGreeting(InvalidInput):
    """The agent's greeting is too long or carries control characters.

    .. versionadded:: 0.1.0
    """


class UnknownLocale(OptinError, LookupError):
    """A host explicitly asked for a locale the library cannot serve.

    .. versionadded:: 0.1.0
    """

    def __init__(self, locale: object, available: Iterable[str]) -> None:
        self.locale = locale
        self.available = tuple(sorted(available))
        super().__init__(
            f"locale {locale!r} is not available; use one of "
            f"{', '.join(self.available)} (or None for the policy default)"
        )


class RecordError(OptinError, ValueError):
    """A stored record or log is malformed, forged, or of an unknown schema.

    ``field`` names the offending field (dotted path, e.g. ``log[3].digest``),
    ``problem`` says what is wrong with it, and ``index`` is the position of
    the first log event that fails (``None`` when the fault is not in an
    event).

    .. versionadded:: 0.1.0
    .. versionchanged:: 0.2.0 ``problem`` and ``index``.
    """

    def __init__(
        self,
        field: str,
        problem: str,
        *,
        contact: str = "",
        index: int | None = None,
    ) -> None:
        self.field = field
        self.problem = problem
        self.contact = contact
        self.index = index
        who = f" of {contact!r}" if contact else ""
        super().__init__(
            f"consent record{who} is invalid at {field!r}: {problem}; restore it "
            "from its history or a backup, never by guessing"
        )


class UnknownContact(OptinError, LookupError):
    """An action needs a contact the store has no record of (erasing a
    contact never seen).

    .. versionadded:: 0.2.0
    """

    def __init__(self, contact: str, *, what: str) -> None:
        self.contact = contact
        super().__init__(
            f"no record of contact {contact!r}, so {what} is refused; check the "
            "contact id (as the service normalises it) and the store"
        )


class ImportRefused(OptinError, ValueError):
    """An import file was refused before anything was written: ``line`` is
    the number of the first line (JSONL) or row (CSV, the header is row 1)
    that cannot be read, and ``problem`` why.

    .. versionadded:: 0.2.0
    """

    def __init__(self, line: int, problem: str) -> None:
        self.line = line
        self.problem = problem
        super().__init__(
            f"import refused at line {line}: {problem}; nothing was written "
            "(fix the file, or pass continue_on_error=True to skip such lines)"
        )
