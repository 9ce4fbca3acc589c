"""optin_core: SMS opt-in attestation, sans I/O.

Before an agent may text a contact in its own words, the contact is sent an
opt-in request and must answer YES; STOP ends all messaging; anything else gets
a reminder. :func:`decide` is the pure core; :class:`ConsentService` is the
thin shell that applies its decisions through the host's ``send`` and
``store``.
"""

from __future__ import annotations

from ._catalog import render_message
from ._chain import canonical_bytes, event_digest
from ._core import cancel_queued, cancelled_by_stop, decide, may_text, sendable
from ._enums import ConsentState, Intent, MatchRule, MessageKind, Outcome, Trigger
from ._errors import (
    ContactStopped,
    DuplicateMessage,
    InvalidGreeting,
    InvalidInput,
    MethodNotAccepted,
    OptinError,
    PolicyError,
    RecipientOptedOut,
    RecordError,
    ResendNotAllowed,
    SendBlocked,
    StaleVersion,
    UnknownLocale,
)
from ._keywords import KeywordCollision, KeywordIndex, build_keyword_index
from ._locale import available_locales, locale_chain, require_locale
from ._log import ConsentLog, replay, verify
from ._machine import ConsentMachine, mermaid
from ._parser import ParsedReply, normalize, parse_reply
from ._phone import normalize_phone
from ._policy import Mode, Policy
from ._records import (
    MAX_CONTACT_LENGTH,
    MAX_MESSAGE_ID_LENGTH,
    MAX_REPLY_CHARS,
    SCHEMA_VERSION,
    Attest,
    AuditEvent,
    Consent,
    Decision,
    Inbound,
    Input,
    Outgoing,
    ProviderOptOut,
    RequestOptIn,
    Revoke,
    SendText,
)
from ._service import AsyncConsentService, ConsentService, SendErrorHandler
from ._sms import SmsInfo, sms_info
from .stores import (
    AsyncStore,
    Lease,
    MemoryStore,
    MessageStatus,
    SQLiteStore,
    Store,
)

__version__ = "0.1.0"

__all__ = [
    "MAX_CONTACT_LENGTH",
    "MAX_MESSAGE_ID_LENGTH",
    "MAX_REPLY_CHARS",
    "SCHEMA_VERSION",
    "AsyncConsentService",
    "AsyncStore",
    "Attest",
    "AuditEvent",
    "Consent",
    "ConsentLog",
    "ConsentMachine",
    "ConsentService",
    "ConsentState",
    "ContactStopped",
    "Decision",
    "DuplicateMessage",
    "Inbound",
    "Input",
    "Intent",
    "InvalidGreeting",
    "InvalidInput",
    "KeywordCollision",
    "KeywordIndex",
    "Lease",
    "MatchRule",
    "MemoryStore",
    "MessageKind",
    "MessageStatus",
    "MethodNotAccepted",
    "Mode",
    "OptinError",
    "Outcome",
    "Outgoing",
    "ParsedReply",
    "Policy",
    "PolicyError",
    "ProviderOptOut",
    "RecipientOptedOut",
    "RecordError",
    "RequestOptIn",
    "ResendNotAllowed",
    "Revoke",
    "SQLiteStore",
    "SendBlocked",
    "SendErrorHandler",
    "SendText",
    "SmsInfo",
    "StaleVersion",
    "Store",
    "Trigger",
    "UnknownLocale",
    "__version__",
    "available_locales",
    "build_keyword_index",
    "cancel_queued",
    "cancelled_by_stop",
    "canonical_bytes",
    "decide",
    "event_digest",
    "locale_chain",
    "may_text",
    "mermaid",
    "normalize",
    "normalize_phone",
    "parse_reply",
    "render_message",
    "replay",
    "require_locale",
    "sendable",
    "sms_info",
    "verify",
]
