"""optin_core: SMS opt-in attestation, sans I/O.

Before an agent may text a contact in its own words, the contact is sent an
opt-in request and must answer YES; STOP ends all messaging; anything else gets
a reminder. :func:`decide` is the pure core; :class:`ConsentService` is the
thin shell that applies its decisions through the host's ``send`` and
``store``.
"""

from __future__ import annotations

from ._catalog import render_message
from ._core import cancelled_by_stop, decide, may_text, sendable
from ._enums import ConsentState, Intent, MatchRule, MessageKind, Trigger
from ._errors import (
    ContactStopped,
    InvalidGreeting,
    InvalidInput,
    MethodNotAccepted,
    OptinError,
    PolicyError,
    RecordError,
    ResendNotAllowed,
    SendBlocked,
    StaleVersion,
    UnknownLocale,
)
from ._keywords import KeywordCollision, KeywordIndex, build_keyword_index
from ._locale import available_locales, locale_chain, require_locale
from ._machine import ConsentMachine, mermaid, replay
from ._parser import ParsedReply, normalize, parse_reply
from ._phone import normalize_phone
from ._policy import Mode, Policy
from ._records import (
    SCHEMA_VERSION,
    Attest,
    AuditEvent,
    Consent,
    Decision,
    Inbound,
    Input,
    Outgoing,
    RequestOptIn,
    Revoke,
    SendText,
)
from ._service import AsyncConsentService, ConsentService, SendErrorHandler
from ._sms import SmsInfo, sms_info
from ._stores import (
    AsyncStore,
    Lease,
    MemoryStore,
    MessageStatus,
    SQLiteStore,
    Store,
)

__version__ = "0.1.0"

__all__ = [
    "SCHEMA_VERSION",
    "AsyncConsentService",
    "AsyncStore",
    "Attest",
    "AuditEvent",
    "Consent",
    "ConsentMachine",
    "ConsentService",
    "ConsentState",
    "ContactStopped",
    "Decision",
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
    "Outgoing",
    "ParsedReply",
    "Policy",
    "PolicyError",
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
    "cancelled_by_stop",
    "decide",
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
]
