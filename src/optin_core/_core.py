"""The pure core: ``decide(consent, input, policy) -> Decision``.

``decide`` evaluates the guards of the consent rules (docs/rules.md: resend
limits, reminder caps, ordering, duplicates, the loop guard, the policy's
switches) and picks the machine trigger; :func:`optin_core._machine.fire`
alone moves the record. No clock, no I/O, no randomness: time and ids come in
with the input.
"""

from __future__ import annotations

import functools
import unicodedata
from collections.abc import Iterable
from datetime import datetime

from ._enums import ConsentState, Intent, MessageKind, Outcome, Trigger
from ._errors import (
    ContactStopped,
    InvalidGreeting,
    MethodNotAccepted,
    PolicyError,
    ResendNotAllowed,
    SendBlocked,
)
from ._levels import DEFAULT_CATEGORY, DISCLOSED, EXPRESS, STATE_LEVELS
from ._locale import locale_chain, require_locale
from ._machine import EFFECTS, fire, repeat_key, withdrawn_by
from ._parser import keyword_language, parse_reply
from ._policy import Mode, Policy
from ._quiet import quiet_until, zone
from ._records import (
    MAX_REPLY_CHARS,
    Attest,
    AuditEvent,
    Consent,
    Decision,
    Import,
    Inbound,
    Input,
    MessageExpired,
    MessageFailed,
    Outgoing,
    ParsedReply,
    ProviderOptOut,
    RequestOptIn,
    Revoke,
    SendText,
    make_decision,
)

__all__ = ["cancel_queued", "cancelled_by_stop", "decide", "may_text", "sendable"]

_NEW = ConsentState.NEW
_PENDING = ConsentState.PENDING
_OPTED_IN = ConsentState.OPTED_IN
_DISCLOSED = ConsentState.DISCLOSED
_STOPPED = ConsentState.STOPPED

#: Characters a greeting may carry although Unicode files them as format
#: characters: the zero-width joiner that glues emoji sequences together.
_GREETING_FORMAT_OK = frozenset({"\u200d"})


def decide(
    consent: Consent, input: Input, policy: Policy, *, namespace: str = ""
) -> Decision:
    """Decide what ``input`` does to ``consent`` under ``policy``.

    Returns a :class:`Decision`: the new record (the same object when nothing
    changed), the messages to send in order and the audit events appended.
    Host misuse raises: :class:`SendBlocked`, :class:`ContactStopped`,
    :class:`ResendNotAllowed`, :class:`MethodNotAccepted`,
    :class:`InvalidGreeting`, :class:`UnknownLocale`. A contact's reply never
    raises.

    ``namespace`` goes into the idempotency key of every message decided, so
    two stores or tenants texting the same number never share a key (the
    service passes its store's); ``""`` keeps the plain keys.

    .. versionadded:: 0.1.0
    .. versionchanged:: 0.2.0 ``namespace``.
    """
    if not isinstance(consent, Consent):
        raise TypeError(f"consent must be a Consent, got {type(consent).__name__}")
    if not isinstance(policy, Policy):
        raise TypeError(f"policy must be a Policy, got {type(policy).__name__}")
    if not isinstance(namespace, str):
        raise TypeError(f"namespace must be a str, got {type(namespace).__name__}")
    if isinstance(input, Inbound):
        return _inbound(consent, input, policy, namespace)
    if isinstance(input, SendText):
        return _send_text(consent, input, policy, namespace)
    if isinstance(input, RequestOptIn):
        return _request(consent, input, policy, namespace)
    if isinstance(input, Attest):
        return _attest(consent, input, policy)
    if isinstance(input, Revoke):
        return _revoke(consent, input, policy)
    if isinstance(input, ProviderOptOut):
        return _provider_opt_out(consent, input, policy)
    if isinstance(input, MessageExpired):
        return _withdraw(
            consent,
            Trigger.EXPIRE,
            input,
            policy,
            f"not handed to the provider by its deadline (at {input.at.isoformat()})",
        )
    if isinstance(input, MessageFailed):
        return _withdraw(
            consent,
            Trigger.DEAD_LETTER,
            input,
            policy,
            f"given up after {input.attempts} failed attempts: {input.error}",
        )
    if isinstance(input, Import):
        return _import(consent, input, policy)
    raise TypeError(
        "input must be RequestOptIn, Inbound, SendText, Attest, Revoke, "
        "ProviderOptOut, MessageExpired, MessageFailed or Import, got "
        f"{type(input).__name__}"
    )


def may_text(
    consent: Consent,
    policy: Policy,
    *,
    at: datetime | None = None,
    time_zone: str | None = None,
    category: str = DEFAULT_CATEGORY,
) -> bool:
    """Whether a :class:`SendText` of ``category`` would be accepted for
    ``consent``.

    True where the policy allows texting and the contact's consent level
    reaches the category's (``Policy.categories``), and for a contact who
    is still to receive the disclaimer in disclaimer mode (it goes out
    first, and gives the ``disclosed`` level). With ``at``, also false
    during the policy's quiet hours in the contact's ``time_zone`` (the
    policy's when ``None``). A category the policy does not name is an
    :class:`InvalidInput`.

    .. versionadded:: 0.1.0
    .. versionchanged:: 0.2.0 ``at`` and ``time_zone``.
    .. versionchanged:: 0.3.0 ``category``.
    """
    required = policy.category_level(category)
    state = consent.state
    if not _may_text_in(state, policy):
        return False
    if not policy.reaches(_level_at_send(consent, policy), required):
        return False
    if at is None or policy.quiet_hours is None:
        return True
    return (
        quiet_until(at, zone(time_zone or policy.time_zone), policy.quiet_hours) is None
    )


def sendable(
    consents: Iterable[Consent], policy: Policy, category: str = DEFAULT_CATEGORY
) -> Iterable[Consent]:
    """The records of ``consents`` that may get a text of ``category`` now:
    the audience gate.

    Asks the policy once per state and level, not once per record, so
    filtering a million records costs a set lookup or two each. A category
    the policy does not name is an :class:`InvalidInput`, at once.

    .. versionadded:: 0.1.0
    .. versionchanged:: 0.3.0 ``category``.
    """
    required = policy.category_level(category)
    # Every state but OPTED_IN has the one level it implies (disclosed once
    # the disclaimer goes first); an opted-in contact has express or more.
    anyone: set[ConsentState] = set()
    by_level: set[ConsentState] = set()
    for state in ConsentState:
        if not _may_text_in(state, policy):
            continue
        implied = _implied_at_send(state, policy)
        if policy.reaches(implied, required):
            anyone.add(state)
        elif state is _OPTED_IN:
            by_level.add(state)
    if not by_level:
        return (c for c in consents if c.state in anyone)
    levels = {level for level in policy.levels if policy.reaches(level, required)}
    return (
        c
        for c in consents
        if c.state in anyone or (c.state in by_level and c.level in levels)
    )


def _may_text_in(state: ConsentState, policy: Policy) -> bool:
    return policy.allows_texting(state) or policy.discloses_first(state)


def _discloses_first(state: ConsentState, policy: Policy) -> bool:
    """Whether a text to a contact in ``state`` goes after the disclaimer."""
    return not policy.allows_texting(state) and policy.discloses_first(state)


def _implied_at_send(state: ConsentState, policy: Policy) -> str:
    """The least level a contact in ``state`` has when a text goes out."""
    if _discloses_first(state, policy):
        return DISCLOSED
    return STATE_LEVELS[state]


def _level_at_send(consent: Consent, policy: Policy) -> str:
    """The contact's level when a text would go out: ``disclosed`` once the
    disclaimer went first, else its own."""
    if _discloses_first(consent.state, policy):
        return DISCLOSED
    return consent.level


def cancelled_by_stop(decision: Decision) -> frozenset[MessageKind]:
    """The kinds of still-unsent messages that ``decision`` makes undeliverable.

    When the decision stops the contact, every message queued before the stop
    and not yet sent is cancelled, except stop confirmations and HELP answers:
    a text composed before a STOP must never reach the contact after it. A
    provider's opt-out (:class:`ProviderOptOut`) withdraws every kind, even
    from a stopped contact: the provider would refuse them all.
    :func:`cancel_queued` records the cancellation in the log, and the store
    applies it in the same write.

    The same as :attr:`Decision.withdraws`.

    .. versionadded:: 0.1.0
    """
    return withdrawn_by(decision.events)


def cancel_queued(
    decision: Decision, queued: Iterable[Outgoing], policy: Policy
) -> Decision:
    """``decision`` with the cancellation of ``queued`` messages logged.

    ``queued`` are the contact's still-unsent messages as the store lists
    them (``store.pending(contact=...)``), read after the head ``decision``
    was taken on. When the decision stops the contact, those of a kind the
    stop makes undeliverable are listed on a ``cancel`` event appended right
    after the stop, so the log proves they were never sent; the store
    cancels exactly those in the same write (and refuses the write if one of
    them was sent meanwhile: decide again). Otherwise ``decision`` itself.

    .. versionadded:: 0.2.0
    """
    kinds = cancelled_by_stop(decision)
    # A stop is always its decision's last event (and a cancel follows it
    # once: a decision that already has one is returned as it is).
    stop = decision.events[-1] if decision.events else None
    if not kinds or stop is None or stop.to_state is not _STOPPED:
        return decision
    if stop.trigger is Trigger.CANCEL:
        return decision
    contact = decision.consent.contact
    keys = tuple(
        dict.fromkeys(m.key for m in queued if m.contact == contact and m.kind in kinds)
    )
    if not keys:
        return decision
    consent, cancel = fire(
        decision.consent,
        Trigger.CANCEL,
        at=stop.input_time,
        input=stop.input,
        cancelled=keys,
        actor=stop.actor,
        locale=None,
        policy_id=policy.policy_id,
        policy_version=policy.policy_version,
        log_key=policy.log_key,
    )
    return make_decision(
        consent, decision.outgoing, (*decision.events, cancel), decision.reply
    )


# ---------------------------------------------------------------------------


def _fire(
    consent: Consent,
    trigger: Trigger,
    input: Input,
    policy: Policy,
    *,
    send: bool = True,
    text: str | None = None,
    locale: str | None = None,
    answer: str | None = None,
    reply: ParsedReply | None = None,
    reason: str | None = None,
    namespace: str = "",
    cancelled: tuple[str, ...] = (),
    level: str | None = None,
    category: str | None = None,
) -> tuple[Consent, AuditEvent]:
    """Fire ``trigger`` with the message its effect sends, if ``send``.

    ``text`` is the message when the caller composed it (a request with its
    greeting, the agent's text); otherwise the policy renders it, in
    ``answer`` when given (the language of the contact's keyword), else in
    the contact's locale. A stop confirmation carries its deadline (the
    input's time plus ``policy.stop_confirmation_window``). Who acted, the
    message id, method and evidence come from the input
    (:func:`_provenance`).
    """
    actor, message_id, method, evidence = _provenance(input)
    kind = EFFECTS[trigger] if send else None
    messages: tuple[tuple[MessageKind, str, str, datetime | None], ...] = ()
    if kind is not None:
        contact_locale = consent.locale if locale is None else locale
        if text is None:
            body, used = policy.message(kind, answer or contact_locale)
        else:
            body, used = text, contact_locale or policy.default_locale
        window = policy.stop_confirmation_window
        deadline = (
            input.at + window
            if kind is MessageKind.STOP_CONFIRMATION and window is not None
            else None
        )
        messages = ((kind, body, used, deadline),)
    return fire(
        consent,
        trigger,
        at=input.at,
        input=input.kind,
        messages=messages,
        actor=actor,
        message_id=message_id,
        reply=reply,
        method=method,
        evidence=evidence,
        reason=reason,
        locale=locale,
        policy_id=policy.policy_id,
        policy_version=policy.policy_version,
        log_key=policy.log_key,
        namespace=namespace,
        cancelled=cancelled,
        level=level,
        category=category,
    )


def _provenance(
    input: Input,
) -> tuple[str | None, str | None, str | None, str | None]:
    """What an event records of its input, in one place: who acted, the
    message id the log deduplicates on, and the method and evidence of an
    attestation or an import."""
    if isinstance(input, Inbound):
        return "contact", input.message_id, None, None
    if isinstance(input, Attest):
        return input.by, None, input.method, input.evidence
    if isinstance(input, ProviderOptOut):
        return f"provider:{input.provider}", None, None, None
    if isinstance(input, (MessageExpired, MessageFailed)):
        return "delivery", None, None, None
    if isinstance(input, Import):
        since = "unknown" if input.since is None else input.since.isoformat()
        evidence = f"{input.state.value} since {since}"
        if input.evidence:
            evidence += f"; {input.evidence}"
        return input.by, input.import_id, f"import:{input.source}", evidence
    return input.by, None, None, None


def _decision(
    consent: Consent, *events: AuditEvent, reply: ParsedReply | None = None
) -> Decision:
    if len(events) == 1:
        outgoing = events[0].sent
    else:
        outgoing = tuple(m for e in events for m in e.sent)
    return make_decision(consent, outgoing, events, reply)


def _inbound(consent: Consent, msg: Inbound, policy: Policy, ns: str) -> Decision:
    reply = policy.classify(
        parse_reply(
            msg.text,
            consent.locale,
            default_locale=policy.default_locale,
            keywords=policy.keywords,
            lenient_consent=policy.lenient_consent,
            ours=policy.own_words,
        )
    )
    if msg.message_id in consent.recent_message_ids:
        return make_decision(consent, (), (), reply, Outcome.DUPLICATE)
    trigger, send = _inbound_trigger(consent, msg, reply, policy)
    if not isinstance(trigger, Trigger):
        return make_decision(consent, (), (), reply, trigger)
    reason = None
    if send and (trigger is Trigger.REMIND or trigger is Trigger.HELP):
        if is_paused(consent, msg.at, policy):
            return make_decision(consent, (), (), reply, Outcome.PAUSED)
        reason = why_pause(consent, msg.at, reply, policy)
        if reason is not None:
            trigger, send = Trigger.PAUSE, False
    # A keyword of one language (ARRET, AIDE, Oui) is answered in it, and
    # gives a contact without a locale theirs; a shared one (STOP) leaves
    # the contact's locale to decide.
    language = _answer_language(
        keyword_language(reply, policy.keywords), consent.locale, policy.default_locale
    )
    consent, event = _fire(
        consent,
        trigger,
        msg,
        policy,
        send=send,
        locale=language if consent.locale is None else None,
        answer=language,
        reply=reply,
        reason=reason,
        namespace=ns,
    )
    return _decision(consent, event, reply=reply)


@functools.lru_cache(maxsize=256)
def _answer_language(
    language: str | None, locale: str | None, default: str
) -> str | None:
    """The pack a reply in ``language`` is answered in: the contact's own
    variant of that language when they have one (a Canadian contact's "Oui",
    a word of the ``fr`` pack, is answered in ``fr-CA``), else ``language``."""
    if language is None:
        return None
    own = locale_chain(locale, default)[0]
    return own if own.partition("-")[0] == language.partition("-")[0] else language


def _inbound_trigger(
    consent: Consent, msg: Inbound, reply: ParsedReply, policy: Policy
) -> tuple[Trigger | Outcome, bool]:
    """The trigger an inbound reply fires and whether its message goes out,
    or the outcome that says why nothing happens."""
    state = consent.state
    intent = reply.intent
    # A reply older than the latest stop cannot undo it, and one older than
    # the opt-in request cannot answer it (a delayed or replayed webhook).
    stale_for_stop = consent.stopped_at is not None and msg.at < consent.stopped_at
    stale_for_request = (
        consent.requested_at is not None and msg.at < consent.requested_at
    )
    # When the provider answers STOP, START and HELP itself, they are
    # recorded but our own answer would be the contact's second one.
    answers = not policy.provider_answers_keywords
    if intent is Intent.STOP:
        if state is _STOPPED:
            return Outcome.UNCHANGED, False
        return Trigger.STOP, policy.confirm_stop and answers
    if intent is Intent.HELP:
        if not policy.answer_help:
            return Outcome.POLICY, False
        return Trigger.HELP, answers
    if state is _STOPPED:
        restarts = intent is Intent.START or (
            intent is Intent.CONSENT and policy.yes_restarts
        )
        if not restarts:
            return Outcome.CONVERSATION, False
        if stale_for_stop:
            return Outcome.STALE, False
        if not policy.allow_restart:
            return Outcome.POLICY, False
        return Trigger.RESTART, policy.confirm_restart and answers
    if intent is Intent.CONSENT or intent is Intent.START:
        if state is _PENDING:
            if stale_for_request:
                return Outcome.STALE, False
            return Trigger.CONSENT, policy.confirm_opt_in
        if state is _DISCLOSED:
            return Trigger.UPGRADE, False
        if state is _NEW:
            signup = policy.keyword_opt_in
            if signup == "single":
                return Trigger.SIGNUP, policy.confirm_opt_in
            if signup == "double":
                if policy.mode is Mode.DISCLAIMER:
                    return Trigger.DISCLOSE, True
                return Trigger.REQUEST, True
            return Outcome.CONVERSATION, False  # never saw any wording
        return Outcome.UNCHANGED, False
    if state is not _PENDING:
        # Outside the opt-in exchange a reply is ordinary conversation.
        return Outcome.CONVERSATION, False
    if stale_for_request:
        return Outcome.STALE, False
    if intent is Intent.DECLINE and policy.decline_stops:
        return Trigger.DECLINE, policy.confirm_stop and answers
    if consent.reminders < policy.max_reminders:
        return Trigger.REMIND, True
    return Outcome.POLICY, False


def is_paused(consent: Consent, at: datetime, policy: Policy) -> bool:
    """Whether automatic replies to ``consent`` are paused at ``at``: a pause
    began (and was recorded) within the policy's ``loop_window``."""
    return (
        consent.last_trigger is Trigger.PAUSE
        and consent.last_at is not None
        and consent.last_at >= at - policy.loop_window
    )


def why_pause(
    consent: Consent, at: datetime, reply: ParsedReply, policy: Policy
) -> str | None:
    """Why automatic replies should pause now, answering ``reply`` at ``at``
    (the reason the ``pause`` event records), or ``None`` to answer: the
    contact repeated the unrecognised text that just got a reminder (an
    auto-responder), or ``loop_max_auto_replies`` went out within
    ``loop_window``."""
    if (
        consent.last_trigger is Trigger.REMIND
        and consent.reminded_reply is not None
        and consent.reminded_reply == repeat_key(reply.bounded(MAX_REPLY_CHARS))
    ):
        return "loop guard: the contact repeated the same unrecognized reply"
    since = at - policy.loop_window
    count = 0
    for when in reversed(consent.auto_replies):
        if when < since:
            break
        count += 1
    if count >= policy.loop_max_auto_replies:
        return (
            f"loop guard: {count} automatic replies within "
            f"{policy.loop_window}; automatic replies paused"
        )
    return None


def _request(consent: Consent, req: RequestOptIn, policy: Policy, ns: str) -> Decision:
    locale = None if req.locale is None else require_locale(req.locale)
    state = consent.state
    if state is _STOPPED:
        raise ContactStopped(consent.contact, what="an opt-in request")
    if policy.allows_texting(state):
        return make_decision(consent, (), (), None, Outcome.UNCHANGED)
    _check_quiet_hours(consent, req, policy)
    if policy.mode is Mode.DISCLAIMER:
        consent, event = _fire(
            consent,
            Trigger.DISCLOSE,
            req,
            policy,
            locale=locale,
            namespace=ns,
        )
        return _decision(consent, event)
    if state is _PENDING:
        _check_resend(consent, req, policy)
        trigger = Trigger.RESEND
    else:
        trigger = Trigger.REQUEST
    contact_locale = locale or consent.locale
    wording, used = policy.message(MessageKind.OPT_IN_REQUEST, contact_locale)
    text = _with_greeting(req.greeting, wording, policy)
    consent, event = _fire(
        consent,
        trigger,
        req,
        policy,
        text=text,
        locale=locale or used,
        namespace=ns,
    )
    return _decision(consent, event)


def _check_resend(consent: Consent, req: RequestOptIn, policy: Policy) -> None:
    left = max(policy.max_attempts - consent.attempts, 0)
    if not policy.allow_resend:
        raise ResendNotAllowed(
            "the policy does not allow resending the opt-in request",
            attempts_left=0,
            next_allowed_at=None,
        )
    if left == 0:
        raise ResendNotAllowed(
            f"all {policy.max_attempts} attempts are used",
            attempts_left=0,
            next_allowed_at=None,
        )
    last = consent.last_requested_at
    if last is not None and req.at < last + policy.resend_after:
        raise ResendNotAllowed(
            f"the last request went at {last.isoformat()} and the policy waits "
            f"{policy.resend_after} between requests",
            attempts_left=left,
            next_allowed_at=last + policy.resend_after,
        )


def _with_greeting(greeting: str | None, wording: str, policy: Policy) -> str:
    """The opt-in request: the agent's greeting, then the locked wording.

    The greeting is data: it is concatenated, never formatted, so braces in it
    are sent as typed.
    """
    if greeting is None or not greeting.strip():
        text = wording
    else:
        greeting = greeting.strip()
        if len(greeting) > policy.max_greeting_length:
            raise InvalidGreeting(
                f"greeting is {len(greeting)} characters; the policy allows "
                f"{policy.max_greeting_length}: shorten it"
            )
        for ch in greeting:
            if (
                unicodedata.category(ch) in ("Cc", "Cf", "Cs", "Co", "Cn")
                and ch not in _GREETING_FORMAT_OK
            ):
                raise InvalidGreeting(
                    f"greeting contains the control character U+{ord(ch):04X}; "
                    "remove it (line breaks and invisible characters could "
                    "disguise the locked opt-in wording)"
                )
        text = f"{greeting}\n{wording}"
    if len(wording) > policy.max_request_length:
        # Not the greeting's fault: this locale's wording alone is too long.
        raise InvalidGreeting(
            f"the opt-in request's wording alone is {len(wording)} characters; "
            f"the policy allows {policy.max_request_length}: raise "
            "max_request_length or shorten the wording (templates)"
        )
    if len(text) > policy.max_request_length:
        raise InvalidGreeting(
            f"the opt-in request would be {len(text)} characters; the policy "
            f"allows {policy.max_request_length}: shorten the greeting"
        )
    return text


def _send_text(consent: Consent, req: SendText, policy: Policy, ns: str) -> Decision:
    category = req.category
    required = policy.category_level(category)
    if len(req.body) > policy.max_text_length:
        raise SendBlocked("too_long", contact=consent.contact)
    _check_quiet_hours(consent, req, policy)
    state = consent.state
    disclose = False
    if not policy.allows_texting(state):
        if state is _STOPPED:
            raise SendBlocked("stopped", contact=consent.contact)
        if _may_text_in(state, policy):
            # Disclaimer mode, not yet disclosed: the disclaimer goes first.
            disclose = True
        elif state is _PENDING:
            raise SendBlocked("awaiting_reply", contact=consent.contact)
        else:
            raise SendBlocked("opt_in_required", contact=consent.contact)
    # The category's level: the contact's, once the disclaimer went first
    # (a text needing more is refused before anything goes out).
    level = DISCLOSED if disclose else consent.level
    if not policy.reaches(level, required):
        raise SendBlocked(
            "level_too_low",
            contact=consent.contact,
            category=category,
            required=required,
            current=level,
            methods=policy.methods_reaching(required),
        )
    events: tuple[AuditEvent, ...] = ()
    if disclose:
        consent, disclosed = _fire(consent, Trigger.DISCLOSE, req, policy, namespace=ns)
        events = (disclosed,)
    consent, event = _fire(
        consent,
        Trigger.TEXT,
        req,
        policy,
        text=req.body,
        namespace=ns,
        category=category,
    )
    return _decision(consent, *events, event)


def _check_quiet_hours(
    consent: Consent, req: SendText | RequestOptIn, policy: Policy
) -> None:
    """An agent's own message (a text, an opt-in request) waits for the end
    of the contact's night; answers to the contact are never held back."""
    hours = policy.quiet_hours
    if hours is None:
        return
    where = zone(req.time_zone or policy.time_zone)
    until = quiet_until(req.at, where, hours)
    if until is not None:
        raise SendBlocked("quiet_hours", contact=consent.contact, next_allowed_at=until)


def _attest(consent: Consent, req: Attest, policy: Policy) -> Decision:
    # Like a revocation or an opt-out, an attestation sends nothing, so the
    # namespace (which only goes into message keys) is not passed on.
    if consent.state is _STOPPED:
        raise ContactStopped(consent.contact, what="an out-of-band attestation")
    if not policy.accepts_attestation(req.method):
        raise MethodNotAccepted(req.method, policy.attestation_methods)
    given = policy.attestation_level(req.method)
    if given not in policy.levels or not policy.reaches(given, EXPRESS):
        raise PolicyError(
            "attestation_level",
            f"the method {req.method!r:.60} gives {given!r:.40}, which is not a "
            f"level of the ladder at least {EXPRESS!r}",
        )
    # The level rises to the method's, and never falls: a weaker attestation
    # of an opted-in contact is recorded (its evidence counts) and keeps
    # the level the contact has.
    level = consent.level
    if consent.state is not _OPTED_IN or not policy.reaches(level, given):
        level = given
    consent, event = _fire(
        consent,
        Trigger.ATTEST,
        req,
        policy,
        level=level,
    )
    return _decision(consent, event)


def _withdraw(
    consent: Consent,
    trigger: Trigger,
    req: MessageExpired | MessageFailed,
    policy: Policy,
    reason: str,
) -> Decision:
    """Log that a queued message will never go (expired, or a dead letter);
    the store closes it in the same write. In any state, nothing sent."""
    consent, event = _fire(
        consent,
        trigger,
        req,
        policy,
        reason=reason,
        cancelled=(req.key,),
    )
    return _decision(consent, event)


def _provider_opt_out(
    consent: Consent, req: ProviderOptOut, policy: Policy
) -> Decision:
    # A revocation in every state, stopped included (the provider's word is
    # recorded each time), with nothing sent: the provider would refuse it.
    reason = f"{req.provider} opt-out {req.code}"
    if req.key is not None:
        reason += f" (sending {req.key})"
    consent, event = _fire(
        consent,
        Trigger.REVOKE,
        req,
        policy,
        reason=reason,
    )
    return _decision(consent, event)


def _revoke(consent: Consent, req: Revoke, policy: Policy) -> Decision:
    consent, event = _fire(
        consent,
        Trigger.REVOKE,
        req,
        policy,
        reason=req.reason,
    )
    return _decision(consent, event)


def _import(consent: Consent, req: Import, policy: Policy) -> Decision:
    """Another system's stop or opt-in (an import). A stop always applies;
    an opt-in never over a stop (only the contact restarts, by texting
    START) and changes nothing for a contact who already opted in. Nothing
    is sent: the contact did not write to us. The row's ``import_id`` is the
    event's message id, so the same row imported again is a duplicate."""
    if req.import_id in consent.recent_message_ids:
        return make_decision(consent, (), (), None, Outcome.DUPLICATE)
    state = consent.state
    if req.state is _STOPPED:
        if state is _STOPPED:
            return make_decision(consent, (), (), None, Outcome.UNCHANGED)
        trigger = Trigger.IMPORT_STOP
    else:
        if state is _STOPPED:
            raise ContactStopped(consent.contact, what="an imported opt-in")
        if state is ConsentState.OPTED_IN:
            return make_decision(consent, (), (), None, Outcome.UNCHANGED)
        trigger = Trigger.IMPORT_OPT_IN
    consent, event = _fire(
        consent,
        trigger,
        req,
        policy,
        send=False,
    )
    return _decision(consent, event)
