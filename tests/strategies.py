"""Hypothesis strategies for optin_core's records, inputs and policies.

Hosts can copy these to property-test their own integration.
"""

from __future__ import annotations

import contextlib
from datetime import UTC, datetime, timedelta, timezone

from hypothesis import strategies as st

from optin_core import (
    Attest,
    AuditEvent,
    Consent,
    ConsentState,
    Inbound,
    Input,
    Mode,
    OptinError,
    Policy,
    RequestOptIn,
    Revoke,
    SendText,
    cancel_queued,
    decide,
)
from optin_core._enums import Intent
from optin_core._keywords import default_keyword_index

T0 = datetime(2026, 3, 2, 9, 30, tzinfo=UTC)

#: Replies that exercise every intent, in several languages and spellings.
REPLIES = [
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
]

zones = st.sampled_from(
    [UTC, timezone(timedelta(hours=-5)), timezone(timedelta(hours=2))]
)

#: Moments within a few days of T0, in a few zones, moving forward mostly.
moments = st.builds(
    lambda minutes, tz: (T0 + timedelta(minutes=minutes)).astimezone(tz),
    st.integers(min_value=0, max_value=6 * 24 * 60),
    zones,
)

reply_texts = st.one_of(st.sampled_from(REPLIES), st.text(max_size=40))
message_ids = st.sampled_from([f"m{i}" for i in range(12)])
actors = st.sampled_from(["agent-1", "agent-2", "compliance"])
greetings = st.one_of(
    st.none(), st.sampled_from(["I'm Martha from Hearsay", "{org_name}", "Hi 👋"])
)
locales = st.one_of(st.none(), st.sampled_from(["en", "fr", "fr-CA", "es", "de"]))


def inputs(at: st.SearchStrategy[datetime] = moments) -> st.SearchStrategy[Input]:
    return st.one_of(
        st.builds(RequestOptIn, at=at, greeting=greetings, by=actors, locale=locales),
        st.builds(Inbound, text=reply_texts, at=at, message_id=message_ids),
        st.builds(Inbound, text=reply_texts, at=at, message_id=message_ids),
        st.builds(
            SendText,
            body=st.sampled_from(["Hello", "Your documents"]),
            at=at,
            by=actors,
        ),
        st.builds(
            Attest,
            method=st.sampled_from(["email", "paper"]),
            at=at,
            by=actors,
            evidence=st.just("doc-1"),
        ),
        st.builds(Revoke, at=at, by=actors, reason=st.just("phone call")),
    )


policies = st.builds(
    Policy,
    org_name=st.just("Hearsay"),
    mode=st.sampled_from(list(Mode)),
    max_attempts=st.integers(1, 4),
    max_reminders=st.integers(0, 3),
    resend_after=st.sampled_from([timedelta(0), timedelta(hours=1), timedelta(days=1)]),
    yes_restarts=st.booleans(),
    allow_restart=st.booleans(),
    decline_stops=st.booleans(),
    confirm_stop=st.booleans(),
    attestation_methods=st.sampled_from([frozenset(), frozenset({"email"})]),
)


@st.composite
def consents(draw: st.DrawFn, max_steps: int = 12) -> Consent:
    """A record reached by applying random inputs through ``decide``."""
    policy = draw(policies)
    consent = Consent.new(draw(st.sampled_from(["+15555550100", "+33612345678"])))
    for inp in draw(st.lists(inputs(), max_size=max_steps)):
        with contextlib.suppress(OptinError):
            consent = decide(consent, inp, policy).consent
    return consent


@st.composite
def conversations(
    draw: st.DrawFn, max_steps: int = 16
) -> tuple[Policy, Consent, tuple[AuditEvent, ...]]:
    """A policy, and the head and log of a contact driven through ``decide``
    by random inputs, as a store would keep them. When a decision stops the
    contact, a random part of the texts decided since the last stop is taken
    as still queued, so cancellations are logged too (``cancel_queued``)."""
    policy = draw(policies)
    consent = Consent.new(draw(st.sampled_from(["+15555550100", "+33612345678"])))
    log: list[AuditEvent] = []
    queued: list[object] = []
    for inp in draw(st.lists(inputs(), max_size=max_steps)):
        try:
            decision = decide(consent, inp, policy)
        except OptinError:
            continue
        if any(e.to_state is ConsentState.STOPPED for e in decision.events):
            still = [m for m in queued if draw(st.booleans())]
            decision = cancel_queued(decision, still, policy)  # type: ignore[arg-type]
            queued = []
        queued.extend(m for m in decision.outgoing)
        consent = decision.consent
        log.extend(decision.events)
    return policy, consent, tuple(log)


states = st.sampled_from(list(ConsentState))


# -- reply texts: what contacts type, and what no one types --------------

#: Every str, including lone surrogates, controls and unassigned code points.
any_text = st.text(st.characters(codec=None), max_size=200)

#: Locales as hosts send them: shipped, regional, odd spellings and garbage.
locales_any = st.one_of(
    st.none(),
    st.sampled_from(
        ["en", "fr", "fr-CA", "fr_CA", "FR", "fr-fr", "pt-BR", "es", "de", "it", "nl"]
    ),
    st.text(max_size=12),
)

_PUNCT = list(".!?,;:…-_*()[]\"'«»“”„ ")
_EMOJI = ["🛑", "👍", "😡", "🙏", "❤️", "😀", "👋🏽", "🇫🇷"]
_INVISIBLE = ["\u200b", "\u200d", "\ufeff", "\u2060", "\u00ad"]
_SPACES = [" ", "  ", "\t", "\n", "\u00a0", "\u202f", "\u3000"]

#: Things that may surround a reply without changing its meaning.
decorations = st.lists(
    st.sampled_from(_PUNCT + _EMOJI + _INVISIBLE + _SPACES), max_size=6
).map("".join)


def _keywords(intent: Intent, *, strong_only: bool = False) -> list[str]:
    return sorted(
        {
            e.written
            for e in default_keyword_index().entries
            if e.intent is intent and (not strong_only or e.strength == "strong")
        }
    )


def _cased(words: list[str]) -> st.SearchStrategy[str]:
    return st.sampled_from(words).flatmap(
        lambda w: st.sampled_from([w, w.upper(), w.capitalize(), w.title()])
    )


#: Stop keywords of every pack, as written, in various cases.
stop_keywords = _cased(_keywords(Intent.STOP))
#: Stop keywords that count as a first word ("STOP please").
strong_stop_keywords = _cased(_keywords(Intent.STOP, strong_only=True))


@st.composite
def keyword_texts(draw: st.DrawFn, intent: Intent) -> str:
    """A keyword of ``intent`` with decorations around it."""
    word = draw(_cased(_keywords(intent)))
    return draw(decorations) + word + draw(decorations)


# -- reactions and quotes of our own words (issue 16) ----------------------

# Imported here, with the names they serve, so this section only appends.
import unicodedata  # noqa: E402

from optin_core import MessageKind  # noqa: E402
from optin_core._keywords import load_packs  # noqa: E402

#: Emoji as phones send them (skin tones, joiner sequences, flags, the
#: heart with its variation selector), and any other symbol that Unicode
#: normalisation leaves as it is.
reaction_emoji = st.one_of(
    st.sampled_from(
        [
            "👍",
            "👎",
            "❤️",
            "😂",
            "😮",
            "😢",
            "🙏",
            "‼️",
            "❓",
            "👍🏽",
            "👨‍👩‍👧",
            "🇫🇷",
            "🔥",
            "©",
        ]
    ),
    st.characters(categories=["So"]).filter(
        lambda c: unicodedata.normalize("NFKC", c) == c
    ),
)

#: Opening and closing quote marks as clients and keyboards write them.
quote_pairs = st.sampled_from(
    [("“", "”"), ('"', '"'), ("„", "“"), ("« ", " »"), ("«", "»"), ("‘", "’"),
     ("'", "'"), ("「", "」"), ("＂", "＂")]
)  # fmt: skip


def _reaction_shapes() -> list[tuple[str, str, tuple[str, ...]]]:
    """Every reaction format of the packs: (client, lead as written, tails)."""
    shapes = []
    for pack in load_packs():
        for fmt in pack.get("reactions", {}).get("formats", ()):
            tails = tuple(fmt.get("tails", ())) or ("",)
            shapes.extend((fmt["client"], lead, tails) for lead in fmt["leads"])
    return sorted(set(shapes))


#: (client, lead, tails) of every shipped reaction format.
REACTION_SHAPES = _reaction_shapes()


@st.composite
def reactions_to(draw: st.DrawFn, quoted: str) -> str:
    """A phone's reaction to the message ``quoted``, in any shipped format,
    with any emoji and quote marks."""
    _client, lead, tails = draw(st.sampled_from(REACTION_SHAPES))
    emoji = draw(reaction_emoji)
    opening, closing = draw(quote_pairs)
    tail = draw(st.sampled_from(tails))
    if lead.startswith("* "):
        head = f"{emoji} {lead[2:]}"
    else:
        head = lead.replace("*", emoji)
        head = draw(st.sampled_from([head, head.capitalize()]))
    return f"{head} {opening}{quoted}{closing}" + (f" {tail}" if tail else "")


#: Kinds of message a policy sends on its own (the agent's TEXT aside).
automatic_kinds = st.sampled_from([k for k in MessageKind if k is not MessageKind.TEXT])
#: Shipped locales, and None (the policy's default).
message_locales = st.sampled_from(
    [None, "en", "fr", "fr-CA", "es", "pt", "de", "it", "nl"]
)

#: Policies whose wording varies: organisation and program names, a
#: template override, the default locale.
wording_policies = st.builds(
    Policy,
    org_name=st.sampled_from(["Acme", "Hearsay", "Banque Populaire", "Ö&Co", "X"]),
    program_name=st.sampled_from(["", "Acme Alerts", "Conseil+"]),
    default_locale=st.sampled_from(["en", "fr", "de"]),
    templates=st.sampled_from(
        [
            {},
            {"en": {"reminder": "Hi from {org_name}: please answer with YES to "
                    "accept or STOP to end these texts."}},
        ]
    ),
)  # fmt: skip


@st.composite
def cut_quotes(draw: st.DrawFn, reaction: str) -> str:
    """``reaction`` cut the way phones and segments cut it: at the
    160-character segment boundary or anywhere past its first 60
    characters, with or without an ellipsis; or with its closing mark lost."""
    how = draw(st.sampled_from(["segment", "anywhere", "unclosed"]))
    if how == "unclosed":
        return reaction.rstrip()[:-1]
    if how == "segment":
        end = 160
    else:
        end = draw(
            st.integers(min_value=min(60, len(reaction)), max_value=len(reaction))
        )
    mark = draw(st.sampled_from(["", "…", "...", "…”"]))
    return reaction[:end] + mark
