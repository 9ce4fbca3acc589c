"""Hypothesis strategies for property-testing a host's integration.

This module imports Hypothesis: install the ``testing`` extra
(``pip install 'optin-core[testing]'``). Every strategy is a function that
returns a ``SearchStrategy``, as Hypothesis' own are; those that take
strategies as arguments also take plain values.

* policies: :func:`policies`
* inputs: :func:`moments`, :func:`inputs`
* replies per locale: :func:`replies`, :func:`keyword_replies`,
  :func:`hostile_texts`, :func:`decorations`, :func:`any_text`
* heads and logs: :func:`consents`, :func:`conversations`
* whole conversations, as a host lives them: :func:`scripts`

.. versionadded:: 0.2.0
"""

from __future__ import annotations

import contextlib
import functools
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime, timedelta, timezone
from typing import Any, NamedTuple, TypeVar

import attrs
from hypothesis import strategies as st

from .._core import cancel_queued, decide
from .._enums import ConsentState, Intent
from .._errors import OptinError
from .._keywords import build_keyword_index
from .._locale import require_locale
from .._policy import Mode, Policy
from .._records import (
    Attest,
    AuditEvent,
    Consent,
    Inbound,
    Input,
    Outgoing,
    RequestOptIn,
    Revoke,
    SendText,
)
from ._fakes import T0

__all__ = [
    "CONTACTS",
    "SAMPLE_REPLIES",
    "T0",
    "Conversation",
    "any_text",
    "consents",
    "conversations",
    "decorations",
    "hostile_texts",
    "inputs",
    "keyword_replies",
    "moments",
    "policies",
    "replies",
    "scripts",
]

_T = TypeVar("_T")

#: Replies that exercise every intent, in several languages and spellings,
#: with the classic traps ("please stop by the office", a phone's reaction).
SAMPLE_REPLIES: tuple[str, ...] = (
    "Yes",
    "yes",
    "YES!",
    "Oui",
    "oui !",
    "ＯＵＩ",
    "Sí",
    "si",
    "ja",
    "sim",
    "STOP",
    "Stop.",
    "stop texting me",
    "Arrêt",
    "arret",
    "unsubscribe",
    "baja",
    "START",
    "unstop",
    "HELP",
    "info",
    "aide",
    "No",
    "non",
    "maybe later",
    "who is this?",
    "👍",
    "",
    "Liked “Reply YES to receive texts”",
    "please stop by the office",
    "yes stop",
    "Stopover?",
)

#: The contact ids the strategies use: a US and a French number.
CONTACTS: tuple[str, ...] = ("+15555550100", "+33612345678")

_ZONES = (UTC, timezone(timedelta(hours=-5)), timezone(timedelta(hours=2)))
_ACTORS = ("agent-1", "agent-2", "compliance")
_GREETINGS = ("I'm Martha from Hearsay", "{org_name}", "Hi 👋")
_REQUEST_LOCALES = ("en", "fr", "fr-CA", "es", "de")
_CATEGORIES = ("informational", "informational", "marketing")
_METHODS = ("email", "app", "phone_call", "paper")


def _strategy(value: st.SearchStrategy[_T] | _T) -> st.SearchStrategy[_T]:
    return value if isinstance(value, st.SearchStrategy) else st.just(value)


# -- policies ------------------------------------------------------------------


def _settings() -> dict[str, st.SearchStrategy[Any]]:
    return {
        "org_name": st.just("Acme"),
        "mode": st.sampled_from(list(Mode)),
        "max_attempts": st.integers(1, 4),
        "max_reminders": st.integers(0, 3),
        "resend_after": st.sampled_from(
            [timedelta(0), timedelta(hours=1), timedelta(days=1)]
        ),
        "yes_restarts": st.booleans(),
        "allow_restart": st.booleans(),
        "decline_stops": st.booleans(),
        "confirm_stop": st.booleans(),
        "attestation_methods": st.sampled_from(
            [
                frozenset(),
                frozenset({"email"}),
                {"email": "written", "app": "written", "phone_call": "express"},
            ]
        ),
    }


@functools.cache
def _policy_fields() -> frozenset[str]:
    return frozenset(f.name for f in attrs.fields(Policy) if f.init)


def policies(**fixed: Any) -> st.SearchStrategy[Policy]:
    """Policies whose switches vary: the mode, resend and reminder limits,
    what YES, START and NO do, stop confirmations, attestation methods
    (none, ``email`` giving express consent, or ``email`` and ``app``
    giving written consent and ``phone_call`` express).

    Pin or widen any setting by name, with a value or a strategy:
    ``policies(org_name="Hearsay", mode=Mode.DISCLAIMER)``,
    ``policies(quiet_hours=st.sampled_from([None, ("21:00", "08:00")]))``.
    The organisation is ``"Acme"`` unless given. An unknown setting is a
    ``TypeError`` at once, not at the first draw.
    """
    unknown = sorted(set(fixed) - _policy_fields())
    if unknown:
        raise TypeError(f"Policy has no setting {', '.join(unknown)}")
    settings = _settings()
    settings.update({name: _strategy(value) for name, value in fixed.items()})
    return st.builds(Policy, **settings)


# -- times and inputs ------------------------------------------------------------


def moments(start: datetime = T0, *, days: int = 6) -> st.SearchStrategy[datetime]:
    """Aware datetimes within ``days`` after ``start``, to the minute, in
    three zones (UTC, UTC-5, UTC+2): the same instants written differently."""
    return st.builds(
        lambda minutes, tz: (start + timedelta(minutes=minutes)).astimezone(tz),
        st.integers(min_value=0, max_value=days * 24 * 60),
        st.sampled_from(_ZONES),
    )


def inputs(
    at: st.SearchStrategy[datetime] | None = None,
    *,
    texts: st.SearchStrategy[str] | None = None,
) -> st.SearchStrategy[Input]:
    """Every kind of input ``decide`` takes: opt-in requests (with and
    without a greeting and a locale), replies (twice as likely as the rest),
    the agent's texts (informational or marketing), attestations (by
    e-mail, app, phone call or paper) and revocations.

    ``at`` draws their times (:func:`moments` by default: not in order);
    ``texts`` the replies (:func:`replies` by default). Message ids come
    from a small set, so redelivered webhooks happen.
    """
    at = moments() if at is None else at
    texts = replies() if texts is None else texts
    message_ids = st.sampled_from([f"m{i}" for i in range(12)])
    actors = st.sampled_from(_ACTORS)
    return st.one_of(
        st.builds(
            RequestOptIn,
            at=at,
            greeting=st.one_of(st.none(), st.sampled_from(_GREETINGS)),
            by=actors,
            locale=st.one_of(st.none(), st.sampled_from(_REQUEST_LOCALES)),
        ),
        st.builds(Inbound, text=texts, at=at, message_id=message_ids),
        st.builds(Inbound, text=texts, at=at, message_id=message_ids),
        st.builds(
            SendText,
            body=st.sampled_from(["Hello", "Your documents"]),
            at=at,
            by=actors,
            category=st.sampled_from(_CATEGORIES),
        ),
        st.builds(
            Attest,
            method=st.sampled_from(_METHODS),
            at=at,
            by=actors,
            evidence=st.just("doc-1"),
        ),
        st.builds(Revoke, at=at, by=actors, reason=st.just("phone call")),
    )


# -- replies -------------------------------------------------------------------

_PUNCT = list(".!?,;:…-_*()[]\"'«»“”„ ")
_EMOJI = ["🛑", "👍", "😡", "🙏", "❤️", "😀", "👋🏽", "🇫🇷"]
_INVISIBLE = ["\u200b", "\u200d", "\ufeff", "\u2060", "\u00ad"]
_SPACES = [" ", "  ", "\t", "\n", "\u00a0", "\u202f", "\u3000"]


def decorations() -> st.SearchStrategy[str]:
    """What may surround a reply without changing its meaning: punctuation,
    emoji, invisible characters and odd spaces (up to six of them)."""
    return st.lists(
        st.sampled_from(_PUNCT + _EMOJI + _INVISIBLE + _SPACES), max_size=6
    ).map("".join)


def any_text(max_size: int = 200) -> st.SearchStrategy[str]:
    """Every ``str``: lone surrogates, controls, unassigned code points."""
    return st.text(st.characters(codec=None), max_size=max_size)


@functools.cache
def _keywords(locale: str | None, intents: frozenset[Intent]) -> tuple[str, ...]:
    return tuple(
        sorted(
            {
                e.written
                for e in build_keyword_index().entries
                if e.intent in intents and (locale is None or e.locale == locale)
            }
        )
    )


_KEYWORD_INTENTS = frozenset(
    {Intent.CONSENT, Intent.STOP, Intent.START, Intent.HELP, Intent.DECLINE}
)


def keyword_replies(
    locale: str | None = None, intents: Iterable[Intent | str] | None = None
) -> st.SearchStrategy[str]:
    """A keyword of ``locale``'s pack (every pack when ``None``), of one of
    ``intents`` (``Intent`` members or their values; consent, stop, start,
    help and decline by default), in any case, surrounded by
    :func:`decorations`.

    Each is what its pack says for a contact of that locale:
    ``parse_reply(text, locale).intent`` is the keyword's intent.
    """
    chosen = (
        _KEYWORD_INTENTS if intents is None else frozenset(Intent(i) for i in intents)
    )
    if locale is not None:
        locale = require_locale(locale)
    words = _keywords(locale, chosen)
    if not words:
        raise ValueError(
            f"the {locale or 'shipped'} packs have no keyword of "
            f"{', '.join(sorted(i.value for i in chosen))}"
        )
    cased = st.sampled_from(words).flatmap(
        lambda w: st.sampled_from([w, w.upper(), w.capitalize(), w.title()])
    )
    return st.tuples(decorations(), cased, decorations()).map("".join)


#: Texts crafted to trip a parser or what stores and renders its results.
_TRAPS = (
    "please stop by the office",
    "I can't stop laughing",
    "the nearest bus stop",
    "Stopover?",
    "yes but who is this?",
    "Yes please",
    "S\u200bT\u200bO\u200bP",
    "\u202eSTOP",
    "YES\u202e",
    "\ufeffYES",
    "𝐘𝐄𝐒",
    "Ｓｔｏｐ",
    "yes\x00stop",
    "\x00",
    "\r\n",
    "<script>alert('yes')</script>",
    "'); DROP TABLE consents; --",
    "{org_name} {0} %s %(x)s",
    "\\u0000 \\n",
    "Liked “Reply YES to receive texts”",
    "👍 to “Reply YES to receive texts”",
    "A aimé « Répondez OUI »",
)


def hostile_texts() -> st.SearchStrategy[str]:
    """Text no contact means, every webhook eventually gets: lone
    surrogates and controls, invisible and bidi characters inside keywords,
    look-alike letters, markup and SQL, phone reactions, combining-mark
    floods and texts up to a few hundred kilobytes."""
    words = st.sampled_from(["STOP ", "yes ", "Oui", "🛑", "a", "\u200b", "é"])
    return st.one_of(
        st.sampled_from(_TRAPS),
        any_text(),
        st.builds(
            lambda w, n: w * n, words, st.integers(min_value=1, max_value=50_000)
        ),
        st.builds(
            lambda w, n: w + "\u0301" * n,
            st.sampled_from(["YES", "STOP", "oui"]),
            st.integers(min_value=1, max_value=5_000),
        ),
        st.builds(
            lambda w, c: c.join(w),
            st.sampled_from(["STOP", "YES", "Oui", "arrêt"]),
            st.sampled_from([*_INVISIBLE, "\u202e", "\u2066", "\x00", " "]),
        ),
    )


def replies(
    locale: str | None = None,
    *,
    intents: Iterable[Intent | str] | None = None,
    hostile: bool = False,
) -> st.SearchStrategy[str]:
    """What contacts text back, in ``locale`` (any when ``None``).

    * Without ``intents``: keywords of the locale's pack
      (:func:`keyword_replies`), :data:`SAMPLE_REPLIES`, and short free text.
    * With ``intents``: only keywords of those intents, each of which the
      parser reads as its intent for a contact of that locale.
    * ``hostile=True`` adds :func:`hostile_texts`.
    """
    parts = [keyword_replies(locale, intents)]
    if intents is None:
        parts += [st.sampled_from(SAMPLE_REPLIES), st.text(max_size=40)]
    if hostile:
        parts.append(hostile_texts())
    return st.one_of(parts)


# -- heads, logs and conversations ---------------------------------------------


class Conversation(NamedTuple):
    """A policy, and a contact's head and log after a conversation, as a
    store keeps them (``policy, head, log = conversation`` unpacks it)."""

    policy: Policy
    head: Consent
    log: tuple[AuditEvent, ...]


def _policy_strategy(
    policy: Policy | st.SearchStrategy[Policy] | None,
) -> st.SearchStrategy[Policy]:
    return policies() if policy is None else _strategy(policy)


@st.composite
def consents(
    draw: st.DrawFn,
    max_steps: int = 12,
    *,
    policy: Policy | st.SearchStrategy[Policy] | None = None,
    texts: st.SearchStrategy[str] | None = None,
) -> Consent:
    """A head reached by applying random :func:`inputs` through ``decide``
    under ``policy`` (a :func:`policies` draw by default); refused inputs
    are skipped."""
    chosen = draw(_policy_strategy(policy))
    consent = Consent.new(draw(st.sampled_from(CONTACTS)))
    for inp in draw(st.lists(inputs(texts=texts), max_size=max_steps)):
        with contextlib.suppress(OptinError):
            consent = decide(consent, inp, chosen).consent
    return consent


@st.composite
def conversations(
    draw: st.DrawFn,
    max_steps: int = 16,
    *,
    policy: Policy | st.SearchStrategy[Policy] | None = None,
    texts: st.SearchStrategy[str] | None = None,
) -> Conversation:
    """A policy, and the head and verified-by-construction log of a contact
    driven through ``decide`` by random :func:`inputs`.

    When a decision stops the contact, a random part of the texts decided
    since the last stop is taken as still queued, so that cancellations are
    logged too (``cancel_queued``). ``verify(head.contact, log, head)``
    holds for every draw.
    """
    chosen = draw(_policy_strategy(policy))
    consent = Consent.new(draw(st.sampled_from(CONTACTS)))
    log: list[AuditEvent] = []
    queued: list[Outgoing] = []
    for inp in draw(st.lists(inputs(texts=texts), max_size=max_steps)):
        try:
            decision = decide(consent, inp, chosen)
        except OptinError:
            continue
        if any(e.to_state is ConsentState.STOPPED for e in decision.events):
            still = [m for m in queued if draw(st.booleans())]
            decision = cancel_queued(decision, still, chosen)
            queued = []
        queued.extend(decision.outgoing)
        consent = decision.consent
        log.extend(decision.events)
    return Conversation(chosen, consent, tuple(log))


@st.composite
def scripts(
    draw: st.DrawFn,
    max_steps: int = 12,
    *,
    locale: str | None = None,
    start: datetime = T0,
    texts: st.SearchStrategy[str] | None = None,
) -> list[Input]:
    """A whole conversation as a host lives it: the agent's opt-in request
    (in ``locale``), then the contact's replies and the agent's texts
    (informational or marketing), attestations (by e-mail or phone call)
    and revocations, each a few minutes to a day after the one before, with
    distinct message ids.

    Feed it to your webhook handler and service (replies as inbound
    webhooks, the rest as agent actions), or to ``decide``. Refusals
    (``SendBlocked`` for a text before consent...) are part of the game.
    """
    texts = replies(locale) if texts is None else texts
    at = start
    steps: list[Input] = [
        RequestOptIn(at=at, greeting=draw(st.sampled_from(_GREETINGS)), locale=locale)
    ]
    kinds: Sequence[str] = draw(
        st.lists(
            st.sampled_from(
                ["reply", "reply", "reply", "text", "request", "attest", "revoke"]
            ),
            max_size=max_steps - 1,
        )
    )
    for number, kind in enumerate(kinds, start=1):
        at += timedelta(minutes=draw(st.integers(min_value=1, max_value=24 * 60)))
        if kind == "reply":
            steps.append(Inbound(text=draw(texts), at=at, message_id=f"SM{number}"))
        elif kind == "text":
            steps.append(
                SendText(
                    body="Your statement is ready",
                    at=at,
                    by="agent-1",
                    category=draw(st.sampled_from(_CATEGORIES)),
                )
            )
        elif kind == "request":
            steps.append(RequestOptIn(at=at, by="agent-1", locale=locale))
        elif kind == "attest":
            method = draw(st.sampled_from(("email", "phone_call")))
            steps.append(Attest(method=method, at=at, by="agent-1", evidence="mail-1"))
        else:
            steps.append(Revoke(at=at, by="compliance", reason="asked by phone"))
    return steps
