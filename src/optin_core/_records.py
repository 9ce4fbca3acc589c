"""Frozen records: inputs to the core, its outputs, and the consent record.

Inputs are validated when they are built, at the host's boundary, so that the
hot path (:func:`optin_core.decide`) can trust them. Records read back from a
store are validated by :meth:`Consent.from_dict`.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Mapping
from datetime import datetime
from typing import Any, ClassVar, TypeAlias

import attrs

from ._enums import ConsentState, Intent, MatchRule, MessageKind, Outcome, Trigger
from ._errors import InvalidInput, RecordError, show
from ._levels import DEFAULT_CATEGORY, DISCLOSED, NONE, STATE_LEVELS, is_name
from ._personal import Redacted
from ._quiet import zone

__all__ = [
    "MAX_CONTACT_LENGTH",
    "MAX_MESSAGE_ID_LENGTH",
    "MAX_REPLY_CHARS",
    "SCHEMA_VERSION",
    "Attest",
    "AuditEvent",
    "Consent",
    "Decision",
    "Import",
    "Inbound",
    "Input",
    "MessageExpired",
    "MessageFailed",
    "Outgoing",
    "ParsedReply",
    "ProviderOptOut",
    "RequestOptIn",
    "Revoke",
    "SendText",
]

#: Version of the serialised form written by :meth:`Consent.to_dict` (2:
#: a bounded head, the log beside it; 1: a record with its whole history).
SCHEMA_VERSION = 2

#: How many inbound message ids a head remembers, so that the pure core
#: drops a webhook redelivered soon after; stores check every id of the log.
RECENT_IDS = 32

#: How many automatic replies (reminders, HELP answers) a head remembers for
#: the loop guard's count; a ``loop_max_auto_replies`` above it never pauses
#: by count (the repeated-reply rule still does).
AUTO_REPLY_MEMORY = 32

#: Longest contact id accepted (an E.164 number has at most 16 characters).
MAX_CONTACT_LENGTH = 256

#: Longest provider message id accepted (Twilio's are 34 characters).
MAX_MESSAGE_ID_LENGTH = 256

#: A reply longer than this is logged as its first characters, its length
#: and the SHA-256 of the whole text (see :class:`ParsedReply`).
MAX_REPLY_CHARS = 2048


def _aware(instance: object, attribute: attrs.Attribute[Any], value: object) -> None:
    if not isinstance(value, datetime):
        raise TypeError(
            f"{type(instance).__name__}.{attribute.name} must be a datetime, "
            f"got {type(value).__name__}"
        )
    if value.tzinfo is None or value.utcoffset() is None:
        raise InvalidInput(
            f"{type(instance).__name__}.{attribute.name} is a naive datetime; "
            "pass a timezone-aware one, e.g. datetime.now(timezone.utc)"
        )


def _text(instance: object, attribute: attrs.Attribute[Any], value: object) -> None:
    if not isinstance(value, str):
        raise TypeError(
            f"{type(instance).__name__}.{attribute.name} must be str, "
            f"got {type(value).__name__}"
        )


def _nonempty(instance: object, attribute: attrs.Attribute[Any], value: object) -> None:
    _text(instance, attribute, value)
    if not str(value).strip():
        raise InvalidInput(
            f"{type(instance).__name__}.{attribute.name} must not be empty"
        )


def _message_id(
    instance: object, attribute: attrs.Attribute[Any], value: object
) -> None:
    _nonempty(instance, attribute, value)
    if not _utf8(str(value)):
        raise InvalidInput(
            f"{type(instance).__name__}.{attribute.name} holds lone surrogates; "
            "provider message ids are plain text"
        )
    if len(str(value)) > MAX_MESSAGE_ID_LENGTH:
        raise InvalidInput(
            f"{type(instance).__name__}.{attribute.name} is {len(str(value))} "
            f"characters; provider message ids have at most {MAX_MESSAGE_ID_LENGTH}"
        )


def _opt_zone(instance: object, attribute: attrs.Attribute[Any], value: object) -> None:
    if value is None:
        return
    _text(instance, attribute, value)
    try:
        zone(str(value))
    except ValueError as e:
        raise InvalidInput(f"{type(instance).__name__}.{attribute.name}: {e}") from None


def _opt_text(instance: object, attribute: attrs.Attribute[Any], value: object) -> None:
    if value is not None:
        _text(instance, attribute, value)


def _category(instance: object, attribute: attrs.Attribute[Any], value: object) -> None:
    _text(instance, attribute, value)
    if not is_name(value):
        raise InvalidInput(
            f"{type(instance).__name__}.{attribute.name} {show(value)} is not a "
            "category name (lowercase letters, digits, '_' and '-', such as "
            "'informational' or 'marketing')"
        )


# ---------------------------------------------------------------------------
# Inputs


@attrs.frozen(kw_only=True, slots=True)
class RequestOptIn:
    """The agent starts, or resends, the opt-in request.

    ``greeting`` is the agent's optional personal line shown above the locked
    wording ("I'm Martha from Hearsay"). ``locale`` sets the contact's language
    when given; ``time_zone`` is the contact's zone for the quiet hours, as
    for :class:`SendText`.

    .. versionadded:: 0.1.0
    .. versionchanged:: 0.2.0 ``time_zone``.
    """

    kind: ClassVar[str] = "request_opt_in"
    at: datetime = attrs.field(validator=_aware)
    greeting: str | None = attrs.field(default=None, validator=_opt_text)
    by: str | None = attrs.field(default=None, validator=_opt_text)
    locale: str | None = attrs.field(default=None, validator=_opt_text)
    time_zone: str | None = attrs.field(default=None, validator=_opt_zone)


@attrs.frozen(kw_only=True, slots=True)
class Inbound:
    """The contact texted us. ``message_id`` is the provider's id (dedupe key).

    .. versionadded:: 0.1.0
    """

    kind: ClassVar[str] = "inbound"
    text: str = attrs.field(validator=_text)
    at: datetime = attrs.field(validator=_aware)
    message_id: str = attrs.field(validator=_message_id)


@attrs.frozen(kw_only=True, slots=True)
class SendText:
    """The agent wants to send ``body``, in its own words.

    ``time_zone`` is the contact's IANA zone as the host knows it, for the
    policy's quiet hours (the policy's ``time_zone`` when ``None``).

    ``category`` is what kind of text it is (``"informational"`` by
    default, ``"marketing"``, or any category the policy names): the
    contact's consent level must reach the category's minimum
    (``Policy.categories``), else ``SendBlocked("level_too_low")``. A
    category the policy does not name is an :class:`InvalidInput` when
    decided; a malformed name, when built.

    .. versionadded:: 0.1.0
    .. versionchanged:: 0.2.0 ``time_zone``.
    .. versionchanged:: 0.3.0 ``category``.
    """

    kind: ClassVar[str] = "send_text"
    body: str = attrs.field(validator=_nonempty)
    at: datetime = attrs.field(validator=_aware)
    by: str | None = attrs.field(default=None, validator=_opt_text)
    time_zone: str | None = attrs.field(default=None, validator=_opt_zone)
    category: str = attrs.field(default=DEFAULT_CATEGORY, validator=_category)


@attrs.frozen(kw_only=True, slots=True)
class Attest:
    """Consent gathered outside SMS (e-mail, app, web form, paper).

    ``evidence`` references the proof (document id, e-mail message id, form
    submission URL); it is recorded verbatim on the audit event.

    .. versionadded:: 0.1.0
    """

    kind: ClassVar[str] = "attest"
    method: str = attrs.field(validator=_nonempty)
    at: datetime = attrs.field(validator=_aware)
    by: str = attrs.field(validator=_nonempty)
    evidence: str = attrs.field(validator=_nonempty)


@attrs.frozen(kw_only=True, slots=True)
class Revoke:
    """An opt-out received by another channel, or a compliance action.

    .. versionadded:: 0.1.0
    """

    kind: ClassVar[str] = "revoke"
    at: datetime = attrs.field(validator=_aware)
    by: str = attrs.field(validator=_nonempty)
    reason: str = attrs.field(validator=_nonempty)


@attrs.frozen(kw_only=True, slots=True)
class ProviderOptOut:
    """The SMS provider (or the carrier behind it) says the contact opted out:
    a send refused with an opt-out error (Twilio 21610, Telnyx 40300...), or
    an opt-out the provider handled itself. A stop, with no confirmation
    (the provider or carrier already answered), and every queued message
    withdrawn.

    ``provider`` names it (``"twilio"``), ``code`` is its error code or
    opt-out type, ``key`` the message whose send was refused, if any.

    .. versionadded:: 0.2.0
    """

    kind: ClassVar[str] = "provider_opt_out"
    at: datetime = attrs.field(validator=_aware)
    provider: str = attrs.field(validator=_nonempty)
    code: str = attrs.field(validator=_nonempty)
    key: str | None = attrs.field(default=None, validator=_opt_text)


@attrs.frozen(kw_only=True, slots=True)
class MessageExpired:
    """A queued message passed its ``deadline`` before it could be handed to
    the provider (a stop confirmation held back by an outage): it is logged
    as expired and never sent.

    .. versionadded:: 0.2.0
    """

    kind: ClassVar[str] = "message_expired"
    at: datetime = attrs.field(validator=_aware)
    key: str = attrs.field(validator=_nonempty)


@attrs.frozen(kw_only=True, slots=True)
class MessageFailed:
    """A queued message failed ``attempts`` times and is given up on (the
    dead letter): logged with the last ``error``, never retried.

    .. versionadded:: 0.2.0
    """

    kind: ClassVar[str] = "message_failed"
    at: datetime = attrs.field(validator=_aware)
    key: str = attrs.field(validator=_nonempty)
    attempts: int = attrs.field(validator=attrs.validators.instance_of(int))
    error: str = attrs.field(validator=_text)


def _importable(
    instance: object, attribute: attrs.Attribute[Any], value: object
) -> None:
    if value is not ConsentState.STOPPED and value is not ConsentState.OPTED_IN:
        raise InvalidInput(
            f"Import.state must be ConsentState.STOPPED or OPTED_IN, got "
            f"{show(value)}: other states carry no consent and no stop to import"
        )


def _opt_aware(
    instance: object, attribute: attrs.Attribute[Any], value: object
) -> None:
    if value is not None:
        _aware(instance, attribute, value)


@attrs.frozen(kw_only=True, slots=True)
class Import:
    """A consent status carried over from another system (a vendor's export,
    a second system being merged): ``ConsentService.import_records`` builds
    one per row it applies.

    ``state`` is what the source says: ``STOPPED`` (always applied: a stop
    outranks everything) or ``OPTED_IN`` (applied only to a contact that is
    NEW, PENDING or DISCLOSED: never over a stop, which only the contact can
    undo). ``source`` names the system or file, ``since`` is when the source
    says the contact entered that state, ``evidence`` the row's own
    reference; all are recorded on the event. ``import_id`` identifies the
    source row (a digest of what it says): logged as the event's message id,
    so importing the same row twice changes nothing.

    .. versionadded:: 0.2.0
    """

    kind: ClassVar[str] = "import"
    at: datetime = attrs.field(validator=_aware)
    state: ConsentState = attrs.field(validator=_importable)
    source: str = attrs.field(validator=_nonempty)
    by: str = attrs.field(validator=_nonempty)
    import_id: str = attrs.field(validator=_message_id)
    since: datetime | None = attrs.field(default=None, validator=_opt_aware)
    evidence: str | None = attrs.field(default=None, validator=_opt_text)


Input: TypeAlias = (
    RequestOptIn
    | Inbound
    | SendText
    | Attest
    | Revoke
    | ProviderOptOut
    | MessageExpired
    | MessageFailed
    | Import
)
INPUT_KINDS = {
    c.kind: c
    for c in (
        RequestOptIn,
        Inbound,
        SendText,
        Attest,
        Revoke,
        ProviderOptOut,
        MessageExpired,
        MessageFailed,
        Import,
    )
}


# ---------------------------------------------------------------------------
# Outputs


def idempotency_key(
    contact: str, version: int, position: int, namespace: str = ""
) -> str:
    """The stable key of the ``position``-th message decided at ``version``.

    Hashed so that it fits provider idempotency headers whatever the contact
    id looks like, and carries no phone number in clear. ``namespace`` (a
    store's and tenant's) makes keys unique across stores and tenants texting
    the same number; ``""`` gives the keys of 0.1.0.
    """
    text = f"{contact}\x1f{version}\x1f{position}"
    if namespace:
        text = f"{namespace}\x1e{text}"
    return hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()[:32]


@attrs.frozen(kw_only=True, slots=True)
class ParsedReply:
    """What a reply means, with the evidence a compliance officer needs.

    ``keyword`` is the canonical (normalised) keyword that matched, ``rule``
    why it matched, ``locale`` the pack it came from (``None`` when nothing
    matched) and ``text`` the original text, untouched.

    In a consent log a reply longer than :data:`MAX_REPLY_CHARS` is kept as
    its first characters: ``full_length`` then holds the length of the whole
    reply and ``full_sha256`` the SHA-256 of its UTF-8 bytes (lone
    surrogates encoded as such), so the evidence stays bounded and still
    identifies the text. Both are ``None`` when ``text`` is complete.

    ``quoted`` is the kind of our own message the reply quoted at length
    (a reaction to the opt-in request, a pasted reminder), when the parser
    was given our texts (``parse_reply(..., ours=...)``): the reply was then
    classified on what remains once the quote is removed. ``None`` when no
    quote was found (or looked for).

    Built by :func:`~optin_core.parse_reply`; it lives with the other
    records, which carry it, so that records never import the parser.

    .. versionadded:: 0.1.0
    .. versionchanged:: 0.2.0 ``full_length`` and ``full_sha256``.
    .. versionchanged:: 0.2.0 ``quoted``.
    """

    intent: Intent
    keyword: str | None
    rule: MatchRule
    locale: str | None
    text: str
    full_length: int | None = None
    full_sha256: str | None = None
    quoted: MessageKind | None = None

    def to_dict(self) -> dict[str, object]:
        """A JSON-safe dict; :meth:`from_dict` reads it back.

        .. versionadded:: 0.1.0
        """
        d: dict[str, object] = {
            "intent": self.intent.value,
            "keyword": self.keyword,
            "rule": self.rule.value,
            "locale": self.locale,
            "text": personal(self.text),
        }
        if self.full_length is not None:
            d["full_length"] = self.full_length
            d["full_sha256"] = self.full_sha256
        if self.quoted is not None:
            # Written only when set: replies without a quote keep the
            # encoding (and the log digests) they always had.
            d["quoted"] = self.quoted.value
        return d

    @classmethod
    def from_dict(cls, d: Mapping[str, object]) -> ParsedReply:
        """Read a dict written by :meth:`to_dict`.

        Raises :class:`~optin_core.RecordError` naming the field when the data
        is malformed.

        .. versionadded:: 0.1.0
        """
        if not isinstance(d, Mapping):
            raise RecordError("reply", f"expected a mapping, got {type(d).__name__}")
        unknown = sorted(str(k) for k in d if k not in _REPLY_FIELDS)
        if unknown:
            raise RecordError(unknown[0], "unknown field")
        for name in _REPLY_FIELDS[:5]:
            if name not in d:
                raise RecordError(name, "missing")
        intent: Intent = _reply_member(Intent, d["intent"], "intent")
        rule: MatchRule = _reply_member(MatchRule, d["rule"], "rule")
        keyword, locale, text = d["keyword"], d["locale"], d["text"]
        if keyword is not None and not isinstance(keyword, str):
            raise RecordError("keyword", "expected a str or null")
        if locale is not None and not isinstance(locale, str):
            raise RecordError("locale", "expected a str or null")
        text = _personal_value(text, "text")
        full_length, full_sha256 = d.get("full_length"), d.get("full_sha256")
        if (full_length is None) != (full_sha256 is None):
            raise RecordError("full_length", "full_length and full_sha256 go together")
        if full_length is not None and (
            not isinstance(full_length, int)
            or isinstance(full_length, bool)
            or (full_length <= len(text) and text.__class__ is not Redacted)
        ):
            raise RecordError(
                "full_length", "expected an int longer than the text kept"
            )
        if full_sha256 is not None and not _is_hex(full_sha256, 64):
            raise RecordError("full_sha256", "expected 64 lowercase hex digits")
        assert full_sha256 is None or isinstance(full_sha256, str)
        quoted = d.get("quoted")
        if quoted is not None:
            quoted = _reply_member(MessageKind, quoted, "quoted")
        return cls(
            intent=intent,
            keyword=keyword,
            rule=rule,
            locale=locale,
            text=text,
            full_length=full_length,
            full_sha256=full_sha256,
            quoted=quoted,
        )

    def bounded(self, limit: int) -> ParsedReply:
        """This reply as a log keeps it: ``text`` cut to ``limit`` characters,
        with the whole text's length and SHA-256 (itself when short enough).

        .. versionadded:: 0.2.0
        """
        text = self.text
        if len(text) <= limit or self.full_length is not None:
            return self
        digest = hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()
        return ParsedReply(
            intent=self.intent,
            keyword=self.keyword,
            rule=self.rule,
            locale=self.locale,
            text=text[:limit],
            full_length=len(text),
            full_sha256=digest,
            quoted=self.quoted,
        )


_REPLY_FIELDS = (
    "intent",
    "keyword",
    "rule",
    "locale",
    "text",
    "full_length",
    "full_sha256",
    "quoted",
)


def _reply_member(enum_type: Any, value: object, name: str) -> Any:
    if isinstance(value, str):
        try:
            return enum_type(value)
        except ValueError:
            pass
    raise RecordError(name, f"unknown {name} {show(value)}")


@attrs.frozen(kw_only=True, slots=True)
class Outgoing:
    """A message the host must send.

    ``key`` is stable for this message whatever happens later: pass it to the
    provider's idempotency header, or dedupe on it, so that a retry after a
    crash never reaches the contact twice. ``deadline``, when set, is the
    moment after which the message must not go out at all (a stop
    confirmation: ``Policy.stop_confirmation_window``); the service then
    logs it as expired instead.

    .. versionadded:: 0.1.0
    .. versionchanged:: 0.2.0 ``deadline``.
    """

    contact: str
    kind: MessageKind
    text: str
    locale: str
    key: str
    deadline: datetime | None = None

    def to_dict(self) -> dict[str, Any]:
        d: dict[str, Any] = {
            "contact": personal(self.contact),
            "kind": self.kind.value,
            "text": personal(self.text),
            "locale": self.locale,
            "key": self.key,
        }
        if self.deadline is not None:
            d["deadline"] = self.deadline.isoformat()
        return d

    @classmethod
    def from_dict(cls, data: object, *, field: str = "outgoing") -> Outgoing:
        d = _mapping(data, field)
        return cls(
            contact=_pstr(d, "contact", field),
            kind=_enum(MessageKind, d, "kind", field),
            text=_pstr(d, "text", field),
            locale=_str(d, "locale", field),
            key=_str(d, "key", field),
            deadline=_opt_dt(d, "deadline", field),
        )


@attrs.frozen(kw_only=True, slots=True)
class AuditEvent:
    """One entry of a contact's consent log: the proof of a change.

    ``trigger`` names the machine transition that fired (``"consent"``,
    ``"stop"``, ``"remind"``...). ``sent`` holds the exact messages decided,
    an opt-in request with its full rendered wording. ``reply`` holds the
    reply (kept to :data:`MAX_REPLY_CHARS` characters, with the length and
    SHA-256 of a longer one) and the rule and keyword the parser matched.
    ``cancelled`` lists the keys of the queued messages a stop cancelled
    (``trigger="cancel"``).

    ``at`` never decreases along a log: it is the input's time, or the
    previous event's when the input carried an earlier one (a delayed
    webhook), whose own time is then kept in ``input_at``.

    ``prev`` is the digest of the event before (``""`` for the first) and
    ``digest`` this event's, over its canonical encoding (see
    ``docs/rules.md``): the log is a hash chain.

    ``level`` is the contact's consent level after the event (``express``,
    ``written``...). When not given it is the level ``to_state`` implies
    (:data:`~optin_core._levels.STATE_LEVELS`: ``none`` for NEW, PENDING
    and STOPPED, ``disclosed`` for DISCLOSED, ``express`` for OPTED_IN),
    and records write it only where it differs, so logs written before
    levels keep their encoding and read back with the level the rules
    give. ``category`` is a text's category (``trigger="text"``:
    ``"informational"`` unless given; ``None`` on other events), written
    likewise only when it is not that default.

    .. versionadded:: 0.1.0
    .. versionchanged:: 0.2.0 ``input_at``, ``cancelled``, ``prev``, ``digest``.
    .. versionchanged:: 0.3.0 ``level`` and ``category``.
    """

    version: int
    at: datetime
    input: str
    trigger: Trigger
    from_state: ConsentState
    to_state: ConsentState
    actor: str | None = None
    message_id: str | None = None
    reply: ParsedReply | None = None
    sent: tuple[Outgoing, ...] = ()
    method: str | None = None
    evidence: str | None = None
    reason: str | None = None
    locale: str | None = None
    policy_id: str = ""
    policy_version: str = ""
    input_at: datetime | None = None
    cancelled: tuple[str, ...] = ()
    prev: str = ""
    digest: str = ""
    level: str = attrs.field(
        default=attrs.Factory(lambda self: STATE_LEVELS[self.to_state], takes_self=True)
    )
    category: str | None = attrs.field(
        default=attrs.Factory(
            lambda self: default_category(self.trigger), takes_self=True
        )
    )

    @property
    def input_time(self) -> datetime:
        """The time the input carried (``input_at``, else ``at``)."""
        return self.at if self.input_at is None else self.input_at

    def to_dict(self) -> dict[str, Any]:
        """A JSON-safe dict; :meth:`from_dict` reads it back."""
        d = self.body()
        d["digest"] = self.digest
        return d

    def body(self) -> dict[str, Any]:
        """:meth:`to_dict` without ``digest``: what the digest covers (with
        the contact, see :func:`optin_core.event_digest`)."""
        d: dict[str, Any] = {
            "version": self.version,
            "at": self.at.isoformat(),
            "input": self.input,
            "trigger": self.trigger.value,
            "from_state": self.from_state.value,
            "to_state": self.to_state.value,
            "actor": self.actor,
            "message_id": self.message_id,
            "reply": None if self.reply is None else self.reply.to_dict(),
            "sent": [m.to_dict() for m in self.sent],
            "method": self.method,
            "evidence": _opt_personal(self.evidence),
            "reason": _opt_personal(self.reason),
            "locale": self.locale,
            "policy_id": self.policy_id,
            "policy_version": self.policy_version,
            "input_at": _iso(self.input_at),
            "cancelled": list(self.cancelled),
            "prev": self.prev,
        }
        # Written only where they differ from what the event implies, so
        # events without them keep the encoding (and digests) of 0.2.0.
        if self.level != STATE_LEVELS[self.to_state]:
            d["level"] = self.level
        if self.category != default_category(self.trigger):
            d["category"] = self.category
        return d

    @classmethod
    def from_dict(cls, data: object, *, field: str = "event") -> AuditEvent:
        """Read a dict written by :meth:`to_dict` (or by 0.1.0, without the
        chain fields). Raises :class:`RecordError` naming the field."""
        d = _mapping(data, field)
        reply = d.get("reply")
        if reply is not None:
            reply = _mapping(reply, f"{field}.reply")
            try:
                reply = ParsedReply.from_dict(reply)
            except RecordError as e:
                raise RecordError(f"{field}.reply.{e.field}", e.problem) from None
        sent = d.get("sent", [])
        if not isinstance(sent, list):
            raise RecordError(f"{field}.sent", "expected a list")
        cancelled = d.get("cancelled", [])
        if not isinstance(cancelled, list) or not all(
            isinstance(k, str) and k for k in cancelled
        ):
            raise RecordError(f"{field}.cancelled", "expected a list of keys")
        kind = d.get("input")
        if not isinstance(kind, str) or kind not in INPUT_KINDS:
            raise RecordError(f"{field}.input", f"unknown input {show(d.get('input'))}")
        trigger = _enum(Trigger, d, "trigger", field)
        to_state = _enum(ConsentState, d, "to_state", field)
        level = d.get("level", STATE_LEVELS[to_state])
        if not is_name(level):
            raise RecordError(
                f"{field}.level", f"expected a consent level's name, got {show(level)}"
            )
        category = d.get("category", default_category(trigger))
        if category is not None and not is_name(category):
            raise RecordError(
                f"{field}.category", f"expected a category's name, got {show(category)}"
            )
        return cls(
            version=_int(d, "version", field),
            at=_dt(d, "at", field),
            input=_str(d, "input", field),
            trigger=trigger,
            from_state=_enum(ConsentState, d, "from_state", field),
            to_state=to_state,
            actor=_opt_str(d, "actor", field),
            message_id=_opt_str(d, "message_id", field),
            reply=reply,
            sent=tuple(
                Outgoing.from_dict(m, field=f"{field}.sent[{i}]")
                for i, m in enumerate(sent)
            ),
            method=_opt_str(d, "method", field),
            evidence=_opt_pstr(d, "evidence", field),
            reason=_opt_pstr(d, "reason", field),
            locale=_opt_str(d, "locale", field),
            policy_id=_str(d, "policy_id", field),
            policy_version=_str(d, "policy_version", field),
            input_at=_opt_dt(d, "input_at", field),
            cancelled=tuple(cancelled),
            prev=_digest_str(d, "prev", field, empty=True),
            digest=_digest_str(d, "digest", field, empty="digest" not in d),
            level=level,
            category=category,
        )


def default_category(trigger: Trigger) -> str | None:
    """The category an event of ``trigger`` has unless it records one: the
    default category for a text, none for any other event."""
    return DEFAULT_CATEGORY if trigger is Trigger.TEXT else None


@attrs.frozen(kw_only=True, slots=True)
class Consent:
    """A contact's consent head: the bounded state the rules read.

    Never mutated: every change is a new head. The evidence, the contact's
    append-only log of :class:`AuditEvent`, lives beside it in the store and is
    read on demand (``ConsentService.history``); the head only holds its
    ``version`` (the number of logged events, used for compare-and-set) and
    ``digest`` (the last event's, ``""`` before the first).

    ``requested_at`` is when the current opt-in cycle began (a reply older
    than it cannot answer it); ``last_requested_at`` drives
    ``Policy.resend_after``. ``last_at`` and ``last_trigger`` are the last
    event's; ``reminded_reply`` identifies the reply that last got a reminder
    and ``auto_replies`` the times of the last :data:`AUTO_REPLY_MEMORY`
    automatic replies (the loop guard's window); ``recent_message_ids`` the
    last :data:`RECENT_IDS` inbound message ids (stores check every id of the
    log). ``level`` is the contact's consent level (``none``, ``disclosed``,
    ``express``, ``written`` or a level of the policy's ladder), the level
    of the last event. Every field is derived from the log: replaying it
    gives the head.

    .. versionadded:: 0.1.0
    .. versionchanged:: 0.2.0 The head no longer carries ``history``.
    .. versionchanged:: 0.3.0 ``level``.
    """

    contact: str
    state: ConsentState = ConsentState.NEW
    locale: str | None = None
    version: int = 0
    attempts: int = 0
    reminders: int = 0
    requested_at: datetime | None = None
    last_requested_at: datetime | None = None
    opted_in_at: datetime | None = None
    disclosed_at: datetime | None = None
    stopped_at: datetime | None = None
    last_at: datetime | None = None
    last_trigger: Trigger | None = None
    reminded_reply: str | None = None
    auto_replies: tuple[datetime, ...] = ()
    recent_message_ids: tuple[str, ...] = ()
    digest: str = ""
    level: str = attrs.field(
        default=attrs.Factory(lambda self: STATE_LEVELS[self.state], takes_self=True)
    )

    @classmethod
    def new(cls, contact: str) -> Consent:
        """The head of a contact never seen before.

        Raises :class:`InvalidInput` for an empty, over-long
        (:data:`MAX_CONTACT_LENGTH`) or non-printable contact id, and
        ``TypeError`` for a non-str one.
        """
        check_contact(contact)
        return cls(contact=contact)

    def to_dict(self) -> dict[str, Any]:
        """A JSON-safe dict of the head, ``schema`` = :data:`SCHEMA_VERSION`.

        The log is not included: export it with ``ConsentLog.to_dict()``.
        """
        return {
            "schema": SCHEMA_VERSION,
            "contact": personal(self.contact),
            "state": self.state.value,
            "locale": self.locale,
            "version": self.version,
            "attempts": self.attempts,
            "reminders": self.reminders,
            "requested_at": _iso(self.requested_at),
            "last_requested_at": _iso(self.last_requested_at),
            "opted_in_at": _iso(self.opted_in_at),
            "disclosed_at": _iso(self.disclosed_at),
            "stopped_at": _iso(self.stopped_at),
            "last_at": _iso(self.last_at),
            "last_trigger": (
                None if self.last_trigger is None else self.last_trigger.value
            ),
            "reminded_reply": self.reminded_reply,
            "auto_replies": [t.isoformat() for t in self.auto_replies],
            "recent_message_ids": list(self.recent_message_ids),
            "digest": self.digest,
            "level": self.level,
        }

    @classmethod
    def from_dict(cls, data: object, *, log_key: bytes | None = None) -> Consent:
        """Rebuild a head written by :meth:`to_dict`.

        Also reads a schema-1 record (0.1.0, which carried its whole
        history): its history is verified like a log (``log_key`` for a
        keyed chain) and replayed into a head. Raises :class:`RecordError`
        naming the field for a malformed, inconsistent or forged record, or
        an unknown schema version.
        """
        d = _mapping(data, "record")
        contact = d.get("contact")
        who = contact if isinstance(contact, str) else ""
        try:
            if d.get("schema") == 1:
                # Imported here: the log module builds on this one.
                from ._log import read_schema1  # noqa: PLC0415

                return read_schema1(d, log_key=log_key)[0]
            return cls._from_dict(d)
        except RecordError as e:
            if who and not e.contact:
                raise RecordError(
                    e.field, e.problem, contact=who, index=e.index
                ) from None
            raise

    @classmethod
    def _from_dict(cls, d: Mapping[str, Any]) -> Consent:
        schema = d.get("schema")
        if schema != SCHEMA_VERSION:
            raise RecordError(
                "schema",
                f"unknown schema version {show(schema)} (this library reads 1 and "
                f"{SCHEMA_VERSION})",
            )
        ids = d.get("recent_message_ids")
        if (
            not isinstance(ids, list)
            or len(ids) > RECENT_IDS
            or not all(isinstance(i, str) and i for i in ids)
        ):
            raise RecordError(
                "recent_message_ids", f"expected a list of at most {RECENT_IDS} ids"
            )
        autos = d.get("auto_replies")
        if not isinstance(autos, list) or len(autos) > AUTO_REPLY_MEMORY:
            raise RecordError(
                "auto_replies", f"expected a list of at most {AUTO_REPLY_MEMORY} times"
            )
        contact = _pstr(d, "contact", "")
        try:
            check_contact(contact)
        except InvalidInput as e:
            raise RecordError("contact", str(e)) from None
        last_trigger = d.get("last_trigger")
        reminded = d.get("reminded_reply")
        if reminded is not None and not _is_hex(reminded, 64):
            raise RecordError("reminded_reply", "expected 64 lowercase hex digits")
        state = _enum(ConsentState, d, "state", "")
        # Heads written before levels (0.2.0) have none: the state's.
        level = d.get("level", STATE_LEVELS[state])
        if not is_name(level):
            raise RecordError(
                "level", f"expected a consent level's name, got {show(level)}"
            )
        head = cls(
            contact=contact,
            state=state,
            locale=_opt_str(d, "locale", ""),
            version=_int(d, "version", ""),
            attempts=_int(d, "attempts", ""),
            reminders=_int(d, "reminders", ""),
            requested_at=_opt_dt(d, "requested_at", ""),
            last_requested_at=_opt_dt(d, "last_requested_at", ""),
            opted_in_at=_opt_dt(d, "opted_in_at", ""),
            disclosed_at=_opt_dt(d, "disclosed_at", ""),
            stopped_at=_opt_dt(d, "stopped_at", ""),
            last_at=_opt_dt(d, "last_at", ""),
            last_trigger=(
                None if last_trigger is None else _enum(Trigger, d, "last_trigger", "")
            ),
            reminded_reply=reminded,
            auto_replies=tuple(
                _dt({f"auto_replies[{i}]": t}, f"auto_replies[{i}]", "")
                for i, t in enumerate(autos)
            ),
            recent_message_ids=tuple(ids),
            digest=_digest_str(d, "digest", "", empty=True),
            level=level,
        )
        check_head(head)
        return head


def check_head(head: Consent) -> None:
    """The invariants every head holds, whatever its log: a head read alone
    (without its log) is checked against them.

    Raises :class:`RecordError` naming the first field that breaks one.
    """
    state = head.state
    implied = STATE_LEVELS[state]
    if state is ConsentState.OPTED_IN:
        if head.level in (NONE, DISCLOSED):
            raise RecordError(
                "level",
                f"an OPTED_IN head has express consent or more, not {head.level}",
            )
    elif head.level != implied:
        raise RecordError(
            "level", f"a {state.name} head has level {implied}, not {show(head.level)}"
        )
    if head.version == 0:
        if state is not ConsentState.NEW or head.digest or head.last_at is not None:
            raise RecordError("version", "0 (no event yet) needs a NEW head")
        return
    if not head.digest:
        raise RecordError("digest", f"missing at version {head.version}")
    if head.last_at is None or head.last_trigger is None:
        raise RecordError("last_at", "missing on a head with events")
    if state is ConsentState.STOPPED and head.stopped_at is None:
        raise RecordError("stopped_at", "a STOPPED head needs the time of its stop")
    if state is ConsentState.OPTED_IN and head.opted_in_at is None:
        raise RecordError("opted_in_at", "an OPTED_IN head needs its consent time")
    if state is ConsentState.DISCLOSED and head.disclosed_at is None:
        raise RecordError("disclosed_at", "a DISCLOSED head needs its disclaimer time")
    if state is ConsentState.PENDING and (
        head.requested_at is None or head.attempts < 1
    ):
        raise RecordError("requested_at", "a PENDING head needs its opt-in request")
    for name in (
        "requested_at",
        "last_requested_at",
        "opted_in_at",
        "disclosed_at",
        "stopped_at",
    ):
        value = getattr(head, name)
        if value is not None and value > head.last_at:
            raise RecordError(name, "later than the head's last event")


@attrs.frozen(kw_only=True, slots=True)
class Decision:
    """What :func:`optin_core.decide` concluded.

    ``consent`` is the new head (the same object when nothing changed),
    ``outgoing`` the messages to send in order, ``events`` the events to
    append to the contact's log, ``reply`` the parsed reply when the input
    was text, and ``outcome`` why: :attr:`Outcome.CHANGED` when there are
    events, else the reason nothing happened (a duplicate, a stale reply,
    ordinary conversation...), for the host's logs.

    .. versionadded:: 0.1.0
    .. versionchanged:: 0.2.0 ``outcome``.
    """

    consent: Consent
    outgoing: tuple[Outgoing, ...] = ()
    events: tuple[AuditEvent, ...] = ()
    reply: ParsedReply | None = None
    outcome: Outcome = Outcome.CHANGED

    @property
    def changed(self) -> bool:
        """Whether the record changed (and so must be saved)."""
        return bool(self.events)

    @property
    def withdraws(self) -> frozenset[MessageKind]:
        """The kinds of the contact's still-unsent messages this decision
        makes undeliverable: after a stop, every kind but the stop
        confirmation and HELP answers (a text composed before a STOP must
        never reach the contact after it); after a provider's opt-out, every
        kind; otherwise none. A host with its own shell cancels those
        (:func:`~optin_core.cancel_queued`) in the same write as the events.

        .. versionadded:: 0.3.0
        """
        # The machine's table says which kinds a stopped contact may get;
        # imported here because the machine builds these records.
        from ._machine import withdrawn_by  # noqa: PLC0415

        return withdrawn_by(self.events)


# ---------------------------------------------------------------------------
# Trusted constructors for the hot path.
#
# attrs' frozen __init__ goes through object.__setattr__ by name for every
# field; writing the slots through their descriptors halves the cost, and a
# decision builds three of these records. Only the machine calls them, with
# values it produced itself; tests check they equal the attrs constructors.

_new = object.__new__


def _slot(cls: type, name: str) -> Any:
    return cls.__dict__[name].__set__


_out = [_slot(Outgoing, f.name) for f in attrs.fields(Outgoing)]
_ev = [_slot(AuditEvent, f.name) for f in attrs.fields(AuditEvent)]
_co = [_slot(Consent, f.name) for f in attrs.fields(Consent)]
_de = [_slot(Decision, f.name) for f in attrs.fields(Decision)]


def make_decision(
    consent: Consent,
    outgoing: tuple[Outgoing, ...],
    events: tuple[AuditEvent, ...],
    reply: ParsedReply | None,
    outcome: Outcome = Outcome.CHANGED,
) -> Decision:
    """``Decision(...)`` with the fields in declaration order, unchecked."""
    decision: Decision = _new(Decision)
    s = _de
    s[0](decision, consent)
    s[1](decision, outgoing)
    s[2](decision, events)
    s[3](decision, reply)
    s[4](decision, outcome)
    return decision


def make_outgoing(  # noqa: PLR0917 - one argument per field, in order
    contact: str,
    kind: MessageKind,
    text: str,
    locale: str,
    key: str,
    deadline: datetime | None = None,
) -> Outgoing:
    """``Outgoing(...)`` with the fields in declaration order, unchecked."""
    message: Outgoing = _new(Outgoing)
    s = _out
    s[0](message, contact)
    s[1](message, kind)
    s[2](message, text)
    s[3](message, locale)
    s[4](message, key)
    s[5](message, deadline)
    return message


def make_event(  # noqa: PLR0917 - one argument per field, in order
    version: int,
    at: datetime,
    input: str,
    trigger: Trigger,
    from_state: ConsentState,
    to_state: ConsentState,
    actor: str | None,
    message_id: str | None,
    reply: ParsedReply | None,
    sent: tuple[Outgoing, ...],
    method: str | None,
    evidence: str | None,
    reason: str | None,
    locale: str | None,
    policy_id: str,
    policy_version: str,
    input_at: datetime | None,
    cancelled: tuple[str, ...],
    prev: str,
    digest: str,
    level: str,
    category: str | None,
) -> AuditEvent:
    """``AuditEvent(...)`` with the fields in declaration order, unchecked."""
    event: AuditEvent = _new(AuditEvent)
    s = _ev
    s[0](event, version)
    s[1](event, at)
    s[2](event, input)
    s[3](event, trigger)
    s[4](event, from_state)
    s[5](event, to_state)
    s[6](event, actor)
    s[7](event, message_id)
    s[8](event, reply)
    s[9](event, sent)
    s[10](event, method)
    s[11](event, evidence)
    s[12](event, reason)
    s[13](event, locale)
    s[14](event, policy_id)
    s[15](event, policy_version)
    s[16](event, input_at)
    s[17](event, cancelled)
    s[18](event, prev)
    s[19](event, digest)
    s[20](event, level)
    s[21](event, category)
    return event


def make_consent(  # noqa: PLR0917 - one argument per field, in order
    contact: str,
    state: ConsentState,
    locale: str | None,
    version: int,
    attempts: int,
    reminders: int,
    requested_at: datetime | None,
    last_requested_at: datetime | None,
    opted_in_at: datetime | None,
    disclosed_at: datetime | None,
    stopped_at: datetime | None,
    last_at: datetime | None,
    last_trigger: Trigger | None,
    reminded_reply: str | None,
    auto_replies: tuple[datetime, ...],
    recent_message_ids: tuple[str, ...],
    digest: str,
    level: str,
) -> Consent:
    """``Consent(...)`` with the fields in declaration order, unchecked."""
    consent: Consent = _new(Consent)
    s = _co
    s[0](consent, contact)
    s[1](consent, state)
    s[2](consent, locale)
    s[3](consent, version)
    s[4](consent, attempts)
    s[5](consent, reminders)
    s[6](consent, requested_at)
    s[7](consent, last_requested_at)
    s[8](consent, opted_in_at)
    s[9](consent, disclosed_at)
    s[10](consent, stopped_at)
    s[11](consent, last_at)
    s[12](consent, last_trigger)
    s[13](consent, reminded_reply)
    s[14](consent, auto_replies)
    s[15](consent, recent_message_ids)
    s[16](consent, digest)
    s[17](consent, level)
    return consent


# ---------------------------------------------------------------------------
# Reading untrusted dicts: every helper names the field it rejects.


def check_contact(contact: object) -> str:
    """``contact`` if it is a usable contact id; ``TypeError`` /
    :class:`InvalidInput` saying why not."""
    if not isinstance(contact, str):
        raise TypeError(f"contact must be str, got {type(contact).__name__}")
    if not contact.strip():
        raise InvalidInput("contact must be a non-empty id (e.g. an E.164 number)")
    if len(contact) > MAX_CONTACT_LENGTH:
        raise InvalidInput(
            f"contact id is {len(contact)} characters; at most "
            f"{MAX_CONTACT_LENGTH} are allowed (use an E.164 number or a short key)"
        )
    if not contact.isprintable() or not _utf8(contact):
        raise InvalidInput(
            f"contact {contact!r} holds control characters or lone "
            "surrogates; pass the host's clean key (see normalize_phone)"
        )
    return contact


_HEX64 = re.compile(r"[0-9a-f]{64}").fullmatch


def _is_hex(value: object, length: int) -> bool:
    return isinstance(value, str) and len(value) == length == 64 and bool(_HEX64(value))


#: The prefixes of a digest: plain SHA-256, or HMAC-SHA-256 under a host key.
DIGEST_KINDS = ("sha256:", "hmac-sha256:")

_DIGEST = re.compile(r"(?:sha256|hmac-sha256):[0-9a-f]{64}").fullmatch


def is_digest(value: object) -> bool:
    """Whether ``value`` is a digest as logs write them."""
    return isinstance(value, str) and _DIGEST(value) is not None


def _digest_str(d: Mapping[str, Any], key: str, prefix: str, *, empty: bool) -> str:
    value = d.get(key, "" if empty else None)
    if value == "" and empty:
        return ""
    if not is_digest(value):
        raise RecordError(
            _path(prefix, key),
            f"expected 'sha256:' or 'hmac-sha256:' and 64 hex digits, got "
            f"{show(value)}",
        )
    return str(value)


def _utf8(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _path(prefix: str, key: str) -> str:
    return f"{prefix}.{key}" if prefix else key


def _mapping(data: object, field: str) -> Mapping[str, Any]:
    if not isinstance(data, Mapping):
        raise RecordError(field, f"expected an object, got {type(data).__name__}")
    return data


def _str(d: Mapping[str, Any], key: str, prefix: str) -> str:
    value = d.get(key)
    if not isinstance(value, str):
        raise RecordError(_path(prefix, key), f"expected str, got {show(value)}")
    return value


def _opt_str(d: Mapping[str, Any], key: str, prefix: str) -> str | None:
    return None if d.get(key) is None else _str(d, key, prefix)


def personal(value: str) -> Any:
    """A personal value as records write it: itself, or
    ``{"redacted": "<commitment>"}`` once an erasure removed it."""
    if value.__class__ is Redacted:
        return {"redacted": str(value)}
    return value


def _opt_personal(value: str | None) -> Any:
    return None if value is None else personal(value)


def _personal_value(value: object, name: str) -> str:
    """A personal value read back: a ``str``, or ``{"redacted": digest}``
    (a :class:`Redacted`)."""
    if isinstance(value, str):
        return value
    if isinstance(value, Mapping) and set(value) == {"redacted"}:
        digest = value["redacted"]
        if is_digest(digest):
            return Redacted(digest)
        raise RecordError(name, f"a redacted value keeps a digest, got {show(digest)}")
    raise RecordError(name, f"expected str, got {show(value)}")


def _pstr(d: Mapping[str, Any], key: str, prefix: str) -> str:
    return _personal_value(d.get(key), _path(prefix, key))


def _opt_pstr(d: Mapping[str, Any], key: str, prefix: str) -> str | None:
    return None if d.get(key) is None else _pstr(d, key, prefix)


def _int(d: Mapping[str, Any], key: str, prefix: str) -> int:
    value = d.get(key)
    if not isinstance(value, int) or isinstance(value, bool) or value < 0:
        raise RecordError(
            _path(prefix, key), f"expected a non-negative int, got {show(value)}"
        )
    return value


def _dt(d: Mapping[str, Any], key: str, prefix: str) -> datetime:
    value = _str(d, key, prefix)
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        raise RecordError(
            _path(prefix, key), f"not an ISO 8601 datetime: {show(value)}"
        ) from None
    if parsed.tzinfo is None:
        raise RecordError(_path(prefix, key), "datetime without a timezone")
    return parsed


def _opt_dt(d: Mapping[str, Any], key: str, prefix: str) -> datetime | None:
    return None if d.get(key) is None else _dt(d, key, prefix)


def _enum(enum_type: Any, d: Mapping[str, Any], key: str, prefix: str) -> Any:
    value = d.get(key)
    try:
        # Only a str can be a member's value; anything else would make the
        # enum's own error message repr it (unbounded).
        if isinstance(value, str):
            return enum_type(value)
        raise ValueError(value)
    except ValueError:
        allowed = ", ".join(m.value for m in enum_type)
        raise RecordError(
            _path(prefix, key), f"{show(value)} is not one of {allowed}"
        ) from None


def _iso(value: datetime | None) -> str | None:
    return None if value is None else value.isoformat()
