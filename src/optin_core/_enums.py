"""The small vocabularies every layer shares: states, intents, message kinds.

They live apart from the modules that use them so that the parser, the message
catalogs and the state machine can each be imported without the others.
"""

from __future__ import annotations

import enum

__all__ = ["ConsentState", "Intent", "MatchRule", "MessageKind"]


class ConsentState(enum.Enum):
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


class Intent(enum.Enum):
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


class MatchRule(enum.Enum):
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
    #: Consent accepted only because the policy is lenient ("Yes please").
    LENIENT = "lenient"
    #: The message is a phone reaction quoting another message.
    REACTION = "reaction"
    #: The message matched no rule.
    NONE = "none"


class MessageKind(enum.Enum):
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
