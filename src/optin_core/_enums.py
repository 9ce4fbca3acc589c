"""The small vocabularies every layer shares: states, intents, message kinds.

They live apart from the modules that use them so that the parser, the message
catalogs and the state machine can each be imported without the others.
"""

from __future__ import annotations

import enum

__all__ = ["ConsentState", "Intent", "MatchRule", "MessageKind", "Outcome", "Trigger"]


class _Enum(enum.Enum):
    # Members are singletons, so identity hashing is exact; Enum's own
    # __hash__ is Python code, and these members key the hot path's tables.
    __hash__ = object.__hash__


class ConsentState(_Enum):
    """Where a contact stands. Values are the stable strings written to records.

    .. versionadded:: 0.1.0
    """

    #: Never contacted, or no record yet.
    NEW = "new"
    #: Opt-in request sent; no valid answer yet.
    PENDING = "pending"
    #: Explicit consent: an SMS yes, a re-subscribe or an accepted attestation.
    OPTED_IN = "opted_in"
    #: Disclaimer delivered (disclaimer mode); no explicit consent.
    DISCLOSED = "disclosed"
    #: Consent revoked; only the stop confirmation and HELP answers may follow.
    STOPPED = "stopped"


class Intent(_Enum):
    """What a contact's reply means, as :func:`optin_core.parse_reply` reads it.

    .. versionadded:: 0.1.0
    """

    #: The exact consent answer ("Yes", "Oui", "Sí").
    CONSENT = "consent"
    #: An opt-out ("Stop", "Arrêt", "unsubscribe", "stop texting me").
    STOP = "stop"
    #: A re-subscribe keyword ("START", "UNSTOP").
    START = "start"
    #: A request for help ("HELP", "INFO", "AIDE").
    HELP = "help"
    #: A refusal of the opt-in request ("No", "Non").
    DECLINE = "decline"
    #: A phone's tapback/reaction ("Liked “…”"): never consent, never stop.
    REACTION = "reaction"
    #: Anything else.
    UNRECOGNIZED = "unrecognized"


class MatchRule(_Enum):
    """Why the parser chose an intent; recorded as evidence on audit events.

    .. versionadded:: 0.1.0
    """

    #: The whole normalised message is a keyword.
    EXACT = "exact"
    #: The first word of the message is a stop keyword ("STOP please").
    FIRST_WORD = "first_word"
    #: A short message contains a stop keyword ("please stop").
    SHORT_MESSAGE = "short_message"
    #: A later sentence starts with a stop keyword ("Who is this? Stop texting me").
    SENTENCE_START = "sentence_start"
    #: The message ends with a stop keyword ("I never signed up, stop").
    LAST_WORD = "last_word"
    #: A stop phrase that can only mean our texts, inside a longer message
    #: ("Hi, can you stop texting me, I'm at work").
    #:
    #: .. versionadded:: 0.2.0
    PHRASE = "phrase"
    #: Consent accepted only because the policy is lenient ("Yes please").
    LENIENT = "lenient"
    #: The message is a phone reaction quoting another message.
    REACTION = "reaction"
    #: The message matched no rule.
    NONE = "none"


class MessageKind(_Enum):
    """The kinds of message the library asks a host to send.

    .. versionadded:: 0.1.0
    """

    #: Optional greeting followed by the locked opt-in wording.
    OPT_IN_REQUEST = "opt_in_request"
    #: "Reply exactly YES or STOP", sent after an unclear answer.
    REMINDER = "reminder"
    #: Sent once after a consent answer, when the policy confirms.
    OPT_IN_CONFIRMATION = "opt_in_confirmation"
    #: The single confirmation an opt-out may receive.
    STOP_CONFIRMATION = "stop_confirmation"
    #: Sent after a re-subscribe, when the policy confirms.
    START_CONFIRMATION = "start_confirmation"
    #: The answer to HELP / INFO.
    HELP = "help"
    #: The notice sent first in disclaimer mode.
    DISCLAIMER = "disclaimer"
    #: The agent's own words.
    TEXT = "text"


class Trigger(enum.StrEnum):
    """The events of the consent machine; ``decide`` fires one per change.

    A ``str`` enum: audit events store it, and it compares equal to its name
    as written in records (``event.trigger == "stop"``).

    .. versionadded:: 0.1.0
    """

    #: First opt-in request of a cycle.
    REQUEST = "request"
    #: The opt-in request sent again.
    RESEND = "resend"
    #: Disclaimer delivered (disclaimer mode).
    DISCLOSE = "disclose"
    #: The contact answered the opt-in request with consent.
    CONSENT = "consent"
    #: A disclosed contact gave explicit consent.
    UPGRADE = "upgrade"
    #: A stopped contact re-subscribed.
    RESTART = "restart"
    #: The contact opted out by SMS.
    STOP = "stop"
    #: The contact refused the opt-in request ("No").
    DECLINE = "decline"
    #: An opt-out received by another channel or a compliance action.
    REVOKE = "revoke"
    #: Consent gathered outside SMS was accepted.
    ATTEST = "attest"
    #: An unclear answer got the "reply YES or STOP" reminder.
    REMIND = "remind"
    #: HELP was answered.
    HELP = "help"
    #: The agent's own text went out.
    TEXT = "text"
    #: The loop guard paused automatic replies.
    PAUSE = "pause"
    #: A stop cancelled texts still queued for the contact (the keys are
    #: recorded on the event).
    CANCEL = "cancel"
    #: A queued message passed its deadline unsent (a late stop confirmation).
    EXPIRE = "expire"
    #: A queued message failed too often and was given up (the dead letter).
    DEAD_LETTER = "dead_letter"
    #: A new contact texted a sign-up keyword (single opt-in, when the
    #: policy's ``keyword_opt_in`` allows it).
    SIGNUP = "signup"
    #: A stop carried over from another system (an import): it always
    #: applies, whatever the contact's state.
    IMPORT_STOP = "import_stop"
    #: An opt-in carried over from another system (an import): it applies
    #: only to a contact that never stopped (NEW, PENDING, DISCLOSED).
    IMPORT_OPT_IN = "import_opt_in"


class Outcome(_Enum):
    """Why a decision came out as it did: what a host logs for each input.

    .. versionadded:: 0.2.0
    """

    #: The record changed (events were logged).
    CHANGED = "changed"
    #: The inbound message id was processed before (a redelivered webhook).
    DUPLICATE = "duplicate"
    #: The input is older than the stop or the opt-in request it would act on.
    STALE = "stale"
    #: Ordinary conversation, outside the opt-in exchange: the host's business.
    CONVERSATION = "conversation"
    #: The contact is already where the input would lead (STOP when stopped,
    #: a request to a contact who may already be texted).
    UNCHANGED = "unchanged"
    #: Automatic replies are paused by the loop guard.
    PAUSED = "paused"
    #: The policy says not to act (no HELP answers, no restarts, reminders
    #: used up).
    POLICY = "policy"
