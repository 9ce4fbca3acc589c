"""Hypothesis strategies for optin_core's records, inputs and policies.

The public ones are ``optin_core.testing``'s (the kit hosts use); this module
binds them as the tests use them, and adds the tests' own.
"""

from __future__ import annotations

import functools
from datetime import datetime

from hypothesis import strategies as st

from optin_core import ConsentState, Input, Policy
from optin_core._enums import Intent
from optin_core._keywords import default_keyword_index
from optin_core.testing import strategies as kit

#: The tests' reference time (a Monday morning).
T0 = kit.T0

#: Replies that exercise every intent, in several languages and spellings.
REPLIES = list(kit.SAMPLE_REPLIES)

#: Moments within a few days of T0, in a few zones, moving forward mostly.
moments = kit.moments()

reply_texts = st.one_of(st.sampled_from(REPLIES), st.text(max_size=40))


def inputs(at: st.SearchStrategy[datetime] = moments) -> st.SearchStrategy[Input]:
    return kit.inputs(at, texts=reply_texts)


policies = kit.policies(org_name="Hearsay")
#: A record reached by applying random inputs through ``decide``.
consents = functools.partial(kit.consents, policy=policies, texts=reply_texts)
#: A policy, and the head and log of a contact driven through ``decide``.
conversations = functools.partial(kit.conversations, policy=policies, texts=reply_texts)

states = st.sampled_from(list(ConsentState))


# -- reply texts: what contacts type, and what no one types --------------

#: Every str, including lone surrogates, controls and unassigned code points.
any_text = kit.any_text()

#: Locales as hosts send them: shipped, regional, odd spellings and garbage.
locales_any = st.one_of(
    st.none(),
    st.sampled_from(
        ["en", "fr", "fr-CA", "fr_CA", "FR", "fr-fr", "pt-BR", "es", "de", "it", "nl"]
    ),
    st.text(max_size=12),
)

#: Things that may surround a reply without changing its meaning.
decorations = kit.decorations()


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


def keyword_texts(intent: Intent) -> st.SearchStrategy[str]:
    """A keyword of ``intent`` with decorations around it."""
    return kit.keyword_replies(intents=[intent])


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
