"""optin_core: SMS opt-in attestation, sans I/O.

Before an agent may text a contact in its own words, the contact is sent an
opt-in request and must answer YES; STOP ends all messaging; anything else gets
a reminder. :func:`decide` is the pure core; :class:`ConsentService` is the
thin shell that applies its decisions through the host's ``send`` and
``store``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from . import stores as _stores
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
    StoreUnavailable,
    UnknownLocale,
)
from ._keywords import KeywordCollision, KeywordIndex, build_keyword_index
from ._locale import available_locales, locale_chain, require_locale
from ._log import ConsentLog, replay, verify
from ._machine import ConsentMachine, mermaid
from ._parser import OwnWords, ParsedReply, normalize, own_words, parse_reply
from ._phone import canonical_contact, normalize_phone, phone_key
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

if TYPE_CHECKING:
    from .stores.postgres import AsyncPostgresStore, PostgresStore


def __getattr__(name: str) -> Any:
    # PostgresStore and AsyncPostgresStore (the ``postgres`` extra) load on
    # first use, so that ``import optin_core`` never needs psycopg.
    if name in ("PostgresStore", "AsyncPostgresStore"):
        return getattr(_stores, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__version__ = "0.1.0"

__all__ = [
    "MAX_CONTACT_LENGTH",
    "MAX_MESSAGE_ID_LENGTH",
    "MAX_REPLY_CHARS",
    "SCHEMA_VERSION",
    "AsyncConsentService",
    "AsyncPostgresStore",
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
    "OwnWords",
    "ParsedReply",
    "Policy",
    "PolicyError",
    "PostgresStore",
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
    "StoreUnavailable",
    "Trigger",
    "UnknownLocale",
    "__version__",
    "available_locales",
    "build_keyword_index",
    "cancel_queued",
    "cancelled_by_stop",
    "canonical_bytes",
    "canonical_contact",
    "decide",
    "event_digest",
    "locale_chain",
    "may_text",
    "mermaid",
    "normalize",
    "normalize_phone",
    "own_words",
    "parse_reply",
    "phone_key",
    "render_message",
    "replay",
    "require_locale",
    "sendable",
    "sms_info",
    "verify",
]
