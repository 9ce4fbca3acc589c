"""optin_core: SMS opt-in attestation, sans I/O.

Before an agent may text a contact in its own words, the contact is sent an
opt-in request and must answer YES; STOP ends all messaging; anything else gets
a reminder. :func:`decide` is the pure core; :class:`ConsentService` is the
thin shell that applies its decisions through the host's ``send`` and
``store``.
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

from ._version import __version__

if TYPE_CHECKING:
    from ._catalog import render_message
    from ._chain import canonical_bytes, event_digest
    from ._core import cancel_queued, cancelled_by_stop, decide, may_text, sendable
    from ._declaration import ConsentMachine, mermaid
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
    from ._service import (
        AsyncConsentService,
        ConsentService,
        Progress,
        SendErrorHandler,
    )
    from ._sms import SmsInfo, sms_info
    from ._transfer import ImportReport, ImportRow
    from .stores import (
        AsyncStore,
        Lease,
        MemoryStore,
        MessageStatus,
        SQLiteStore,
        Store,
    )
    from .stores._base import MessageRecord
    from .stores.postgres import AsyncPostgresStore, PostgresStore

#: Every public name, by the module that defines it, loaded on first use
#: (PEP 562). ``import optin_core`` then costs next to nothing, and a host
#: pays only for what it uses: the machine's declaration (python-statemachine,
#: which imports asyncio), the service (asyncio), SQLite, Babel and the
#: compliance tools are not loaded by ``decide`` (``bench/import_time.py``).
_LAZY: dict[str, str] = {
    "render_message": "._catalog",
    "canonical_bytes": "._chain",
    "event_digest": "._chain",
    "cancel_queued": "._core",
    "cancelled_by_stop": "._core",
    "decide": "._core",
    "may_text": "._core",
    "sendable": "._core",
    "ConsentMachine": "._declaration",
    "mermaid": "._declaration",
    "ConsentState": "._enums",
    "Intent": "._enums",
    "MatchRule": "._enums",
    "MessageKind": "._enums",
    "Outcome": "._enums",
    "Trigger": "._enums",
    "ErasedLog": "._erase",
    "Erasure": "._erase",
    "ContactStopped": "._errors",
    "DuplicateMessage": "._errors",
    "ImportRefused": "._errors",
    "InvalidGreeting": "._errors",
    "InvalidInput": "._errors",
    "MethodNotAccepted": "._errors",
    "OptinError": "._errors",
    "PolicyError": "._errors",
    "RecipientOptedOut": "._errors",
    "RecordError": "._errors",
    "ResendNotAllowed": "._errors",
    "SendBlocked": "._errors",
    "StaleVersion": "._errors",
    "StoreUnavailable": "._errors",
    "UnknownContact": "._errors",
    "UnknownLocale": "._errors",
    "KeywordCollision": "._keywords",
    "KeywordIndex": "._keywords",
    "build_keyword_index": "._keywords",
    "available_locales": "._locale",
    "locale_chain": "._locale",
    "require_locale": "._locale",
    "ConsentLog": "._log",
    "replay": "._log",
    "verify": "._log",
    "normalize": "._normalize",
    "OwnWords": "._parser",
    "keyword_language": "._parser",
    "own_words": "._parser",
    "parse_reply": "._parser",
    "Redacted": "._personal",
    "canonical_contact": "._phone",
    "normalize_phone": "._phone",
    "phone_key": "._phone",
    "Mode": "._policy",
    "Policy": "._policy",
    "Attest": "._records",
    "AuditEvent": "._records",
    "Consent": "._records",
    "Decision": "._records",
    "Import": "._records",
    "Inbound": "._records",
    "Input": "._records",
    "MAX_CONTACT_LENGTH": "._records",
    "MAX_MESSAGE_ID_LENGTH": "._records",
    "MAX_REPLY_CHARS": "._records",
    "Outgoing": "._records",
    "ParsedReply": "._records",
    "ProviderOptOut": "._records",
    "RequestOptIn": "._records",
    "Revoke": "._records",
    "SCHEMA_VERSION": "._records",
    "SendText": "._records",
    "AsyncConsentService": "._service",
    "ConsentService": "._service",
    "Progress": "._service",
    "SendErrorHandler": "._service",
    "SmsInfo": "._sms",
    "sms_info": "._sms",
    "ImportReport": "._transfer",
    "ImportRow": "._transfer",
    "AsyncPostgresStore": ".stores",
    "AsyncStore": ".stores",
    "Lease": ".stores",
    "MemoryStore": ".stores",
    "MessageStatus": ".stores",
    "PostgresStore": ".stores",
    "SQLiteStore": ".stores",
    "Store": ".stores",
    "MessageRecord": ".stores._base",
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(import_module(module, __name__), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *_LAZY})


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
