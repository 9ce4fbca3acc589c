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
from ._erase import ErasedLog, Erasure
from ._errors import (
    ContactStopped,
    DuplicateMessage,
    ImportRefused,
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
    UnknownContact,
    UnknownLocale,
)
from ._keywords import KeywordCollision, KeywordIndex, build_keyword_index
from ._locale import available_locales, locale_chain, require_locale
from ._log import ConsentLog, replay, verify
from ._machine import ConsentMachine, mermaid
from ._normalize import normalize
from ._parser import OwnWords, keyword_language, own_words, parse_reply
from ._personal import Redacted
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
    Import,
    Inbound,
    Input,
    Outgoing,
    ParsedReply,
    ProviderOptOut,
    RequestOptIn,
    Revoke,
    SendText,
)
from ._service import AsyncConsentService, ConsentService, Progress, SendErrorHandler
from ._sms import SmsInfo, sms_info
from ._transfer import ImportReport, ImportRow
from ._version import __version__
from .stores import (
    AsyncStore,
    Lease,
    MemoryStore,
    MessageStatus,
    SQLiteStore,
    Store,
)
from .stores._base import MessageRecord

if TYPE_CHECKING:
    from .stores.postgres import AsyncPostgresStore, PostgresStore


def __getattr__(name: str) -> Any:
    # PostgresStore and AsyncPostgresStore (the ``postgres`` extra) load on
    # first use, so that ``import optin_core`` never needs psycopg.
    if name in ("PostgresStore", "AsyncPostgresStore"):
        return getattr(_stores, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


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
    "ErasedLog",
    "Erasure",
    "Import",
    "ImportRefused",
    "ImportReport",
    "ImportRow",
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
    "MessageRecord",
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
    "Progress",
    "ProviderOptOut",
    "RecipientOptedOut",
    "RecordError",
    "Redacted",
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
    "UnknownContact",
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
    "keyword_language",
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
