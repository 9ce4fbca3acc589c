"""Keyword packs and the precompiled index the parser reads: data only.

The packs are JSON files under ``optin_core/keywords/``, one per locale, so a
translator or a compliance reviewer can read and edit them; every keyword
cites its sources (keys of ``keywords/sources.json``, or ``native`` for the
obvious words of a language). :func:`build_keyword_index` turns them, plus a
policy's extra words and the languages it serves, into lookup tables built
once and shared by every parse: dicts from normalised text to results, and
the ready-made replies for the spellings people type most ("YES", "Stop.",
"Oui !").

What a match *means* (first word, sentence start, "stop by", reactions...)
is decided in :mod:`optin_core._parser`, which reads these tables; this
module imports nothing from it.
"""

from __future__ import annotations

import functools
import json
import os
import re
from collections.abc import Iterable, Mapping
from typing import Any, Final

import attrs

from optin_core import _locale
from optin_core._enums import Intent, MatchRule
from optin_core._locale import available_locales, locale_chain, require_locale
from optin_core._normalize import (
    ALNUM_RUN_RE,
    accent_form,
    canonical,
    fold,
    fold_chars,
    normalize,
)
from optin_core._records import ParsedReply

__all__ = [
    "Keyword",
    "KeywordCollision",
    "KeywordIndex",
    "build_keyword_index",
    "default_keyword_index",
    "lint_keywords",
    "load_packs",
    "served_languages",
]

#: Pack order when a keyword is in several packs and none is in the
#: contact's chain: the pack it is attributed to is the first here.
PACK_ORDER: Final = ("en", "fr", "fr-CA", "es", "pt", "de", "it", "nl")
_INTENT_KEYS: Final = {
    "consent": Intent.CONSENT,
    "stop": Intent.STOP,
    "start": Intent.START,
    "help": Intent.HELP,
    "decline": Intent.DECLINE,
}
#: Consent and re-subscribe words depend on the contact's locale chain; the
#: others apply whatever the locale (a missed STOP is the costly error, and
#: HELP is answered in the keyword's language).
_CHAIN_INTENTS: Final = frozenset({Intent.CONSENT, Intent.START})
# When one text is a keyword of several intents, the first wins; lint reports it.
_PRIORITY: Final = (
    Intent.STOP,
    Intent.CONSENT,
    Intent.START,
    Intent.HELP,
    Intent.DECLINE,
)
_STRENGTHS: Final = frozenset({"anywhere", "strong", "weak", "exact"})
#: The quote marks phones put around a reaction's quoted message.
QUOTES: Final = "\"“”„‟«»‹›'‘’‚‛「」『』＂"
_COMMON_REGIONS: Final = (
    *("en-US", "en-GB", "en-CA", "en-AU", "en-IE", "en-NZ"),
    *("fr-FR", "fr-BE", "fr-CH", "fr-LU"),
    *("es-ES", "es-MX", "es-US", "es-419", "es-AR", "es-CO"),
    *("pt-BR", "pt-PT", "de-DE", "de-AT", "de-CH", "it-IT", "it-CH", "nl-NL", "nl-BE"),
)
# Raw spellings prebuilt per keyword: case variants and a closing mark.
_SUFFIXES: Final = ("", ".", "!", " !", "?")


@attrs.frozen(kw_only=True, slots=True)
class Keyword:
    """One keyword of one pack, as the index uses it.

    ``keyword`` is the normalised form matched against replies, ``written``
    the form in the pack. ``strength`` applies to stop words: ``"strong"``
    ones count as the first word of the message or of a sentence, as its
    last word, or anywhere in a short message, unless a listed neighbour
    makes them ordinary words (``not_after``: "stop *by*", ``not_before``:
    "*bus* stop"); ``"anywhere"`` ones (phrases that can only mean our
    texts: "stop texting", "ne m'écrivez plus") count at any position too;
    ``"weak"`` ones (END, CANCEL, BAJA...) count only alone or among polite
    words ("cancel please"). Other intents are ``"exact"``.

    .. versionadded:: 0.1.0
    .. versionchanged:: 0.2.0 the ``"anywhere"`` strength.
    """

    keyword: str
    written: str
    intent: Intent
    locale: str
    strength: str
    sources: tuple[str, ...]
    not_after: frozenset[str] = frozenset()
    not_before: frozenset[str] = frozenset()


@attrs.frozen(kw_only=True, slots=True)
class KeywordCollision:
    """A keyword that means two intents for one locale chain.

    ``locale`` is the first locale whose chain sees the collision (``"*"``
    when a policy reports one for every locale); ``locales`` the packs that
    list the keyword under one of ``intents`` (a word that means consent in
    one language the policy serves and stop in another names both).

    .. versionadded:: 0.1.0
    .. versionchanged:: 0.2.0 ``locales``.
    """

    keyword: str
    locale: str
    intents: tuple[Intent, ...]
    sources: tuple[str, ...] = ()
    locales: tuple[str, ...] = ()


@attrs.frozen(slots=True)
class Phrase:
    """A keyword as the parser's word rules read it, merged across packs:
    its words, the packs that list it, and how strongly it means stop."""

    tokens: tuple[str, ...]
    keyword: str
    intent: Intent
    strong: bool
    anywhere: bool
    locales: tuple[str, ...]
    not_after: frozenset[str]
    not_before: frozenset[str]


def attribute(locales: tuple[str, ...], chain: tuple[str, ...]) -> str:
    """The pack a match is attributed to: the first of the contact's chain
    that lists it, else the first of ``locales`` (in :data:`PACK_ORDER`)."""
    for loc in chain:
        if loc in locales:
            return loc
    return locales[0]


def _language(locale: str) -> str:
    return locale.partition("-")[0]


def _package_text(*parts: str) -> str:
    # A plain file read: ``importlib.resources`` would add pathlib, zipfile
    # and tempfile to every import of the library, for the zipped installs
    # this package does not support.
    with open(os.path.join(_PACKAGE, *parts), encoding="utf-8") as f:
        return f.read()


_PACKAGE = os.path.dirname(os.path.abspath(__file__))


@functools.cache
def load_packs() -> tuple[Mapping[str, Any], ...]:
    """The shipped keyword packs as parsed JSON, in :data:`PACK_ORDER`.

    Read from the package data once per process.

    .. versionadded:: 0.1.0
    """
    packs = []
    for loc in PACK_ORDER:
        packs.append(json.loads(_package_text("keywords", f"{loc}.json")))
    return tuple(packs)


@functools.cache
def load_sources() -> Mapping[str, Mapping[str, str]]:
    """The source keys packs cite, each with its ``url`` and ``note``.

    .. versionadded:: 0.1.0
    """
    data = json.loads(_package_text("keywords", "sources.json"))
    sources: Mapping[str, Mapping[str, str]] = data["sources"]
    return sources


def _pack_entries(pack: Mapping[str, Any]) -> list[Keyword]:
    locale = pack["locale"]
    out = []
    for key, intent in _INTENT_KEYS.items():
        for item in pack.get(key, ()):
            written = item["keyword"]
            strength = (
                item.get("strength", "exact") if intent is Intent.STOP else "exact"
            )
            if strength not in _STRENGTHS:
                raise ValueError(f"{locale}/{written}: unknown strength {strength!r}")
            normal = canonical(written)
            if not normal:
                raise ValueError(f"{locale}: keyword {written!r} has no letters")
            out.append(
                Keyword(
                    keyword=normal,
                    written=written,
                    intent=intent,
                    locale=locale,
                    strength=strength,
                    sources=tuple(item["sources"]),
                    not_after=frozenset(
                        canonical(w) for w in item.get("not_after", ())
                    ),
                    not_before=frozenset(
                        canonical(w) for w in item.get("not_before", ())
                    ),
                )
            )
    return out


def _extra_entries(
    extra: Mapping[Intent, Mapping[str, Iterable[str]]],
) -> list[Keyword]:
    out = []
    for intent, per_locale in extra.items():
        if not isinstance(intent, Intent) or intent in (
            Intent.REACTION,
            Intent.UNRECOGNIZED,
        ):
            raise ValueError(f"extra keywords: {intent!r} takes no keywords")
        for loc, words in per_locale.items():
            canonical_loc = require_locale(loc)
            if isinstance(words, str):
                raise TypeError(f"extra keywords {intent.value}/{loc}: expected a list")
            for word in words:
                normal = canonical(word)
                if not normal:
                    raise ValueError(
                        f"extra keywords {intent.value}/{loc}: {word!r} has no letters"
                    )
                out.append(
                    Keyword(
                        keyword=normal,
                        written=word,
                        intent=intent,
                        locale=canonical_loc,
                        # A policy's stop word counts alone or among polite
                        # words: it cannot know which sentences it appears in.
                        strength="weak" if intent is Intent.STOP else "exact",
                        sources=("policy",),
                    )
                )
    return out


def _words_of(
    packs: Iterable[Mapping[str, Any]], key: str, field: str = "words"
) -> frozenset[str]:
    words: set[str] = set()
    for pack in packs:
        for word in pack.get(key, {}).get(field, ()):
            words.update(canonical(word).split())
    return frozenset(words)


def _phrases(entries: Iterable[Keyword]) -> dict[str, tuple[Phrase, ...]]:
    """Phrases merged across packs, keyed by first token, longest first."""
    merged: dict[tuple[Intent, str], list[Keyword]] = {}
    for e in entries:
        merged.setdefault((e.intent, e.keyword), []).append(e)
    by_first: dict[str, list[Phrase]] = {}
    for (intent, keyword), group in merged.items():
        anywhere = any(e.strength == "anywhere" for e in group)
        phrase = Phrase(
            tokens=tuple(keyword.split()),
            keyword=keyword,
            intent=intent,
            strong=anywhere or any(e.strength == "strong" for e in group),
            anywhere=anywhere,
            locales=_ordered(e.locale for e in group),
            not_after=frozenset().union(*(e.not_after for e in group)),
            not_before=frozenset().union(*(e.not_before for e in group)),
        )
        by_first.setdefault(phrase.tokens[0], []).append(phrase)
    return {
        first: tuple(sorted(group, key=lambda p: -len(p.tokens)))
        for first, group in by_first.items()
    }


def _anchor(tokens: tuple[str, ...]) -> str:
    """The alphanumeric run a text must contain to hold the phrase
    ``tokens``: its longest (the first of equals)."""
    runs: list[str] = [run for t in tokens for run in ALNUM_RUN_RE.findall(t)]
    return max(runs, key=len)


def _ordered(locales: Iterable[str]) -> tuple[str, ...]:
    unique = set(locales)
    return tuple(sorted(unique, key=PACK_ORDER.index))


def _lead_regex(lead: str) -> str:
    # The space before the emoji is optional: "‼️" folds to "!!", and French
    # spacing drops the space before "!" ("a reagi avec!! a").
    out = ""
    for tok in lead.split(" "):
        if tok == "*":
            out += r" ?\S{1,24}" if out else r"\S{1,24}"
        else:
            out += (" " if out else "") + re.escape(tok)
    return out


class KeywordIndex:
    """Precompiled keyword tables; immutable, built once, shared by parses.

    Build one with :func:`build_keyword_index` (a policy does, once);
    :func:`default_keyword_index` is the shared built-in one. The tables are
    data: :mod:`optin_core._parser` holds every rule that reads them.

    .. versionadded:: 0.1.0
    .. versionchanged:: 0.2.0 ``languages``: the consent and re-subscribe
       words of these languages count for every contact.
    """

    __slots__ = (
        "_chains",
        "_chains_en",
        "_consent",
        "_consent_ok",
        "_entries",
        "_exact",
        "_fast",
        "_langs",
        "_languages",
        "_lenient_words",
        "_polite",
        "_polite_phrases",
        "_prebuilt",
        "_prebuilt_max",
        "_reaction_emoji_lead_re",
        "_reaction_emoji_re",
        "_reaction_first",
        "_reaction_lead_re",
        "_reaction_leads",
        "_reaction_media_first",
        "_reaction_media_re",
        "_reaction_re",
        "_reaction_tails",
        "_screen",
        "_served",
        "_stop",
        "_third_party",
        "_tp_determiners",
        "_tp_ours",
        "_tp_subjects",
        "_tp_things",
        "_tp_yes",
        "_weak_company",
        "_written",
    )

    _entries: tuple[Keyword, ...]
    _languages: tuple[str, ...]
    _served: frozenset[str]
    _stop: dict[str, tuple[Phrase, ...]]
    _polite_phrases: dict[str, tuple[Phrase, ...]]
    _consent: dict[str, tuple[Phrase, ...]]
    _polite: frozenset[str]
    _lenient_words: frozenset[str]
    _weak_company: frozenset[str]
    _exact: dict[
        tuple[str, ...], dict[str, tuple[Intent, str, str, dict[str, str] | None]]
    ]
    _consent_ok: dict[tuple[str, ...], frozenset[str]]
    _langs: dict[tuple[Intent, str], frozenset[str]]
    _written: dict[tuple[Intent, str], dict[str, frozenset[str]]]
    _chains_en: dict[str | None, tuple[str, ...]]
    _chains: dict[tuple[str | None, str], tuple[str, ...]]
    _prebuilt: dict[tuple[str, ...], dict[str, ParsedReply]]
    _prebuilt_max: int
    #: ``default_locale -> locale as the host spells it -> exact reply ->
    #: ParsedReply``: the parser's fast path, one lookup per level.
    _fast: dict[str, dict[str | None, dict[str, ParsedReply]]]
    _reaction_re: re.Pattern[str] | None
    _reaction_emoji_re: re.Pattern[str] | None
    _reaction_lead_re: re.Pattern[str] | None
    _reaction_emoji_lead_re: re.Pattern[str] | None
    _reaction_media_re: re.Pattern[str] | None
    _reaction_leads: dict[str, tuple[str, tuple[str, ...]]]
    _reaction_first: dict[str, re.Pattern[str]]
    _reaction_media_first: frozenset[str]
    _reaction_tails: frozenset[str]
    _screen: frozenset[str]
    _third_party: frozenset[str]
    _tp_yes: frozenset[str]
    _tp_subjects: frozenset[str]
    _tp_determiners: frozenset[str]
    _tp_ours: frozenset[str]
    _tp_things: frozenset[str]

    def __init__(
        self,
        packs: Iterable[Mapping[str, Any]],
        extra: list[Keyword],
        languages: Iterable[str] | None = None,
    ) -> None:
        packs = tuple(packs)
        entries: list[Keyword] = []
        for pack in packs:
            entries.extend(_pack_entries(pack))
        entries.extend(extra)
        init = functools.partial(object.__setattr__, self)
        init("_entries", tuple(entries))
        served = served_languages(languages)
        init("_languages", served)
        # A language serves its regional packs' parents too: fr-CA's
        # consent words are fr's.
        init(
            "_served",
            frozenset(served) | {_language(loc) for loc in served} & set(PACK_ORDER),
        )
        init("_stop", _phrases(e for e in entries if e.intent is Intent.STOP))
        init(
            "_polite_phrases",
            _phrases(e for e in entries if e.intent in (Intent.HELP, Intent.DECLINE)),
        )
        init("_consent", _phrases(e for e in entries if e.intent is Intent.CONSENT))
        polite = _words_of(packs, "polite")
        init("_polite", polite)
        init(
            "_lenient_words",
            polite
            | _words_of(packs, "affirm")
            | {
                tok
                for e in entries
                if e.intent is Intent.CONSENT
                for tok in e.keyword.split()
            },
        )
        # A weak stop word ("cancel", "baja") counts beside polite words and
        # beside a consent word: "sí, baja" carries both signals, and stop wins.
        init("_weak_company", self._polite | self._lenient_words)
        # A text sharing no alphanumeric run with these words can only be
        # unrecognised, and a set test says so before any word list is built:
        # the first word of each help, decline and consent phrase, and the
        # rarest-looking word of each stop phrase (its longest: "mir nicht
        # mehr schreiben" needs "schreiben", so "mir" alone does not send
        # every German sentence through the word rules).
        init(
            "_screen",
            frozenset(
                run
                for lead in (*self._polite_phrases, *self._consent)
                for run in ALNUM_RUN_RE.findall(lead)
            )
            | {
                _anchor(phrase.tokens)
                for group in self._stop.values()
                for phrase in group
            },
        )
        self._init_languages()
        self._init_third_party(packs)
        self._init_reactions(packs)
        self._init_chains()
        self._init_exact(packs)
        self._init_prebuilt()

    def __setattr__(self, name: str, value: object) -> None:
        raise AttributeError("KeywordIndex is immutable")

    def __repr__(self) -> str:
        return f"<KeywordIndex {len(self._entries)} keywords>"

    @property
    def entries(self) -> tuple[Keyword, ...]:
        """Every keyword of the index, pack words first, then the policy's.

        .. versionadded:: 0.1.0
        """
        return self._entries

    @property
    def languages(self) -> tuple[str, ...]:
        """The languages whose consent and re-subscribe words count for every
        contact, whatever their locale (in :data:`PACK_ORDER`).

        .. versionadded:: 0.2.0
        """
        return self._languages

    # -- construction helpers ------------------------------------------------

    def _init_languages(self) -> None:
        """Which languages list each keyword, and, for a keyword several
        languages share once accents are folded, which language each of its
        accented spellings belongs to ("sí" Spanish, "sì" Italian)."""
        packs: dict[tuple[Intent, str], set[str]] = {}
        written: dict[tuple[Intent, str], dict[str, set[str]]] = {}
        for e in self._entries:
            key = (e.intent, e.keyword)
            packs.setdefault(key, set()).add(e.locale)
            form = accent_form(e.written)
            written.setdefault(key, {}).setdefault(form, set()).add(e.locale)
        langs = {
            key: frozenset(_language(loc) for loc in locs)
            for key, locs in packs.items()
        }
        init = functools.partial(object.__setattr__, self)
        init("_langs", langs)
        init(
            "_written",
            {
                key: {
                    form: frozenset(locs)
                    for form, locs in forms.items()
                    if len({_language(loc) for loc in locs}) == 1
                }
                for key, forms in written.items()
                if len(langs[key]) > 1
            },
        )

    def _init_third_party(self, packs: tuple[Mapping[str, Any], ...]) -> None:
        """Stop words whose object is someone else's ("make them stop", "stop
        the bill"), read as such only in a message that also says yes."""
        init = functools.partial(object.__setattr__, self)
        init(
            "_third_party",
            frozenset(
                canonical(w)
                for pack in packs
                for w in pack.get("third_party", {}).get("stop", ())
            ),
        )
        init("_tp_yes", _words_of(packs, "third_party", "yes"))
        init("_tp_subjects", _words_of(packs, "third_party", "subjects"))
        init("_tp_determiners", _words_of(packs, "third_party", "determiners"))
        ours = _words_of(packs, "third_party", "ours")
        init("_tp_ours", ours)
        # After "stop the", a word that still names our texts, or a polite
        # word ("stop this please"), keeps the stop.
        init("_tp_things", ours | self._polite)

    def _init_reactions(self, packs: tuple[Mapping[str, Any], ...]) -> None:
        by_lead: dict[str, list[str]] = {}
        by_emoji_lead: dict[str, list[str]] = {}
        media: list[str] = []
        tails: set[str] = set()
        for pack in packs:
            section = pack.get("reactions", {})
            for fmt in section.get("formats", ()):
                for lead in fmt.get("leads", ()):
                    # "* to": the lead follows an emoji that opens the text.
                    target = by_emoji_lead if lead.startswith("* ") else by_lead
                    written = lead[2:] if lead.startswith("* ") else lead
                    folded = normalize(written.replace("*", " ASTERISK "))
                    folded = folded.replace("asterisk", "*")
                    locales = target.setdefault(folded, [])
                    if pack["locale"] not in locales:
                        locales.append(pack["locale"])
                tails.update(normalize(t) for t in fmt.get("tails", ()))
            media.extend(normalize(m) for m in section.get("media", ()))
        leads: dict[str, tuple[str, tuple[str, ...]]] = {}
        plain: list[str] = []
        emoji: list[str] = []
        for group, alternatives, star in (
            (by_lead, plain, ""),
            (by_emoji_lead, emoji, "* "),
        ):
            for folded, locales in group.items():
                name = f"r{len(leads)}"
                leads[name] = (star + folded, _ordered(locales))
                alternatives.append(f"(?P<{name}>{_lead_regex(folded)})")
        init = functools.partial(object.__setattr__, self)
        init("_reaction_leads", leads)
        # The parser tries the reaction patterns only when the first word can
        # start a lead and a quote follows somewhere: two cheap tests.
        quote_re = re.compile(f"[{re.escape(fold_chars(QUOTES))}]")
        first = {lead.removeprefix("* ").split(" ")[0] for lead, _ in leads.values()}
        init("_reaction_first", dict.fromkeys(first, quote_re))
        # Leads that may take a medium instead of a quote ("Loved an image").
        media_first = {
            lead.split(" ")[0]
            for lead, _ in leads.values()
            if not lead.startswith("* ")
        }
        init("_reaction_media_first", frozenset(media_first if media else ()))
        init("_reaction_tails", frozenset(tails))
        quotes = re.escape(fold_chars(QUOTES))
        for key, lead_key, alternatives in (
            ("_reaction_re", "_reaction_lead_re", plain),
            ("_reaction_emoji_re", "_reaction_emoji_lead_re", emoji),
        ):
            if not alternatives:
                init(key, None)
                init(lead_key, None)
                continue
            # Longest leads first, so "a reagi avec" is not read as "a" + quote.
            either = "|".join(sorted(alternatives, key=lambda alt: -len(alt)))
            init(key, re.compile(f"(?:{either}) ?[{quotes}]"))
            init(lead_key, re.compile(f"(?:{either})"))
        media_re = None
        if media and plain:
            leads_re = "|".join(sorted(plain, key=lambda alt: -len(alt)))
            media_alt = "|".join(re.escape(m) for m in media)
            media_re = re.compile(f"(?:{leads_re}) (?:{media_alt})")
        init("_reaction_media_re", media_re)

    def _init_chains(self) -> None:
        chains_en, chains = _chain_tables()
        object.__setattr__(self, "_chains_en", chains_en)
        object.__setattr__(self, "_chains", chains)

    def _init_exact(self, packs: tuple[Mapping[str, Any], ...]) -> None:
        """Per locale chain: what each whole normalised text means.

        Stop, help and decline words of every pack count for everyone.
        Consent and re-subscribe words count when a pack of the chain or a
        served language lists them, except a served language's word that the
        contact's own packs give another meaning (the Portuguese "já" is not
        the German "ja"): the contact's language wins.
        """
        by_intent: dict[Intent, dict[str, tuple[str, ...]]] = {}
        for intent in _PRIORITY:
            locales: dict[str, set[str]] = {}
            for e in self._entries:
                if e.intent is intent:
                    locales.setdefault(e.keyword, set()).add(e.locale)
            by_intent[intent] = {kw: _ordered(locs) for kw, locs in locales.items()}
        polite_by_pack = {
            pack["locale"]: frozenset(
                canonical(w) for w in pack.get("polite", {}).get("words", ())
            )
            for pack in packs
        }
        served = self._served
        # A keyword with an elision ("d'accord") is stored split ("d
        # accord"), but a whole reply is looked up as typed: its written
        # form leads to the same meaning.
        as_typed = {
            (typed, e.keyword)
            for e in self._entries
            if (typed := fold(e.written)) != e.keyword
        }
        exact: dict[
            tuple[str, ...], dict[str, tuple[Intent, str, str, dict[str, str] | None]]
        ] = {}
        consent_ok: dict[tuple[str, ...], frozenset[str]] = {}
        for chain in {*self._chains_en.values(), *self._chains.values()}:
            # What the contact's own packs say a word is, if not a yes.
            own = frozenset().union(
                *(polite_by_pack.get(loc, frozenset()) for loc in chain),
                (
                    e.keyword
                    for e in self._entries
                    if e.locale in chain and e.intent not in _CHAIN_INTENTS
                ),
            )
            table: dict[str, tuple[Intent, str, str, dict[str, str] | None]] = {}
            ok: set[str] = set()
            for intent in _PRIORITY:
                for keyword, listed in by_intent[intent].items():
                    if keyword in table:
                        continue
                    # A shared keyword's accents may name its language:
                    # "Sì" is Italian, "Sí" Spanish.
                    accents = None
                    locs = listed
                    if intent in _CHAIN_INTENTS and not any(
                        loc in chain for loc in listed
                    ):
                        locs = tuple(loc for loc in listed if loc in served)
                        if not locs or keyword in own:
                            continue
                        forms = self._written.get((intent, keyword))
                        if forms:
                            accents = {
                                form: attribute(_ordered(packs_ & set(locs)), chain)
                                for form, packs_ in forms.items()
                                if not packs_.isdisjoint(locs)
                            }
                    if intent is Intent.CONSENT:
                        ok.add(keyword)
                    table[keyword] = (
                        intent,
                        keyword,
                        attribute(locs, chain),
                        accents or None,
                    )
            for typed, keyword in as_typed:
                if keyword in table:
                    table.setdefault(typed, table[keyword])
            exact[chain] = table
            consent_ok[chain] = frozenset(ok)
        init = functools.partial(object.__setattr__, self)
        init("_exact", exact)
        init("_consent_ok", consent_ok)

    def _init_prebuilt(self) -> None:
        written: dict[str, set[str]] = {}
        for e in self._entries:
            written.setdefault(e.keyword, {e.keyword}).add(e.written)
        spellings = {
            key: _spellings(key, frozenset(bases)) for key, bases in written.items()
        }
        shared: dict[tuple[str, str, str, str], ParsedReply] = {}
        prebuilt: dict[tuple[str, ...], dict[str, ParsedReply]] = {}
        for chain in set(self._chains_en.values()):
            table: dict[str, ParsedReply] = {}
            for key, (intent, keyword, loc, forms) in self._exact[chain].items():
                if key != keyword:  # a written form, spelled with its keyword
                    continue
                for raw in spellings[key]:
                    used = loc
                    if forms:
                        used = forms.get(accent_form(raw), loc)
                    reply = shared.get((raw, intent.value, keyword, used))
                    if reply is None:
                        reply = ParsedReply(
                            intent=intent,
                            keyword=keyword,
                            rule=MatchRule.EXACT,
                            locale=used,
                            text=raw,
                        )
                        shared[(raw, intent.value, keyword, used)] = reply
                    table[raw] = reply
            prebuilt[chain] = table
        object.__setattr__(self, "_prebuilt", prebuilt)
        fast: dict[str, dict[str | None, dict[str, ParsedReply]]] = {"en": {}}
        for tag, chain in self._chains_en.items():
            if chain in prebuilt:
                fast["en"][tag] = prebuilt[chain]
        for (tag, default), chain in self._chains.items():
            if chain in prebuilt:
                fast.setdefault(default, {})[tag] = prebuilt[chain]
        object.__setattr__(self, "_fast", fast)
        # Longer texts skip the table: looking one up would hash all of it.
        longest = max((len(k) for t in prebuilt.values() for k in t), default=0)
        object.__setattr__(self, "_prebuilt_max", longest)


@functools.cache
def _spellings(key: str, bases: frozenset[str]) -> tuple[str, ...]:
    """Raw texts that normalise to ``key``: case variants and a closing mark."""
    raws = {
        cased + suffix
        for base in bases
        for cased in (base, base.upper(), base.capitalize(), base.title())
        for suffix in _SUFFIXES
    }
    return tuple(sorted(raw for raw in raws if fold(raw) == key))


@functools.cache
def _chain_tables() -> tuple[
    dict[str | None, tuple[str, ...]], dict[tuple[str | None, str], tuple[str, ...]]
]:
    """Locale chains of the spellings hosts send most, computed once.

    ``parse_reply`` looks its chain up here (a dict hit) and only negotiates
    with Babel for spellings not listed.
    """
    spellings: set[str | None] = {None, ""}
    for loc in (*available_locales(), *_COMMON_REGIONS):
        for form in (loc, loc.replace("-", "_")):
            spellings.update({form, form.lower(), form.upper()})
    found = {tag: None if tag is None else _locale._negotiate(tag) for tag in spellings}
    defaults = {d: _locale._negotiate(d) for d in available_locales()}
    chains_en = {tag: _locale._ladder(f, "en") for tag, f in found.items()}
    chains = {
        (tag, d): _locale._ladder(f, df)
        for tag, f in found.items()
        for d, df in defaults.items()
    }
    return chains_en, chains


def served_languages(languages: Iterable[str] | None) -> tuple[str, ...]:
    """The canonical form of a ``languages`` setting: servable locales, in
    :data:`PACK_ORDER`, without repeats; ``None`` is every shipped pack.

    Raises :class:`~optin_core.UnknownLocale` (listing the available ones)
    for a language without a pack, and :class:`TypeError` for a single
    ``str`` (``("en",)``, not ``"en"``) or a non-iterable.

    .. versionadded:: 0.2.0
    """
    if languages is None:
        return PACK_ORDER
    if isinstance(languages, str):
        raise TypeError(
            f"languages must be a collection of locales, not the str {languages!r} "
            f"(write ({languages!r},))"
        )
    try:
        found = {require_locale(loc) for loc in languages}
    except TypeError:
        raise TypeError("languages must be a collection of locale str") from None
    return tuple(loc for loc in PACK_ORDER if loc in found)


def build_keyword_index(
    extra: Mapping[Intent, Mapping[str, Iterable[str]]] | None = None,
    *,
    languages: Iterable[str] | None = None,
) -> KeywordIndex:
    """An index of the shipped packs plus a policy's extra keywords.

    ``extra`` maps an intent to ``{locale: words}``; locales are checked with
    :func:`~optin_core.require_locale` (so a typo raises
    :class:`~optin_core.UnknownLocale`). Extra stop words count alone or among
    polite words; extra consent and re-subscribe words count for contacts
    whose locale chain includes their locale, or when their language is
    served.

    ``languages`` are the languages whose consent and re-subscribe words
    count for every contact, whatever their locale (``None``: every shipped
    pack; ``()``: only the contact's own chain). See
    :func:`served_languages`.

    The index is immutable and shared: one per ``languages`` without extra
    words, and the last 64 distinct (``extra``, ``languages``) settings are
    kept, so building a policy per request from the same settings costs a
    cache lookup, not the tens of milliseconds a new index takes.

    .. versionadded:: 0.1.0
    .. versionchanged:: 0.2.0 ``languages``.
    .. versionchanged:: 0.3.0 indexes with extra words are cached.
    """
    served = served_languages(languages)
    if not extra:
        return _shared_index(served)
    extra = _read_once(extra)
    key = _extra_key(extra)
    if key is None:  # words that cannot be a cache key: _extra_entries says why
        return KeywordIndex(load_packs(), _extra_entries(extra), served)
    return _cached_index(key, served)


_ExtraKey = tuple[tuple[object, str, tuple[str, ...]], ...]


def _read_once(
    extra: Mapping[Intent, Mapping[str, Iterable[str]]],
) -> Mapping[Intent, Mapping[str, Iterable[str]]]:
    """``extra`` with each word list read into a tuple, so a one-shot
    iterator is not used up by the cache key before the index reads it.
    Anything that is not a mapping of iterables is left as it is, for
    :func:`_extra_entries` to report."""
    try:
        return {
            intent: {locale: _words_once(words) for locale, words in by_locale.items()}
            for intent, by_locale in extra.items()
        }
    except (AttributeError, TypeError):
        return extra


def _words_once(words: Iterable[str]) -> Iterable[str]:
    if isinstance(words, str):
        return words
    try:
        return tuple(words)
    except TypeError:
        return words


def _extra_key(extra: Mapping[Intent, Mapping[str, Iterable[str]]]) -> _ExtraKey | None:
    """``extra`` as a hashable value, the same for equal settings; ``None``
    when it is not a mapping of locales to lists of str (the index build
    then reports the mistake)."""
    rows = []
    try:
        for intent, by_locale in extra.items():
            for locale, words in by_locale.items():
                if not isinstance(locale, str) or isinstance(words, str):
                    return None
                written = tuple(words)
                if not all(isinstance(w, str) for w in written):
                    return None
                rows.append((intent, locale, written))
    except (AttributeError, TypeError):
        return None
    return tuple(sorted(rows, key=lambda r: (str(r[0]), r[1])))


# Hosts that build a policy per request (or per tenant, from the same
# settings) get the index built once: it is immutable, so policies share it.
@functools.lru_cache(maxsize=64)
def _cached_index(key: _ExtraKey, served: tuple[str, ...]) -> KeywordIndex:
    extra: dict[Any, dict[str, tuple[str, ...]]] = {}
    for intent, locale, words in key:
        extra.setdefault(intent, {})[locale] = words
    return KeywordIndex(load_packs(), _extra_entries(extra), served)


@functools.cache
def _shared_index(served: tuple[str, ...]) -> KeywordIndex:
    if served == PACK_ORDER:
        return default_keyword_index()
    return KeywordIndex(load_packs(), [], served)


@functools.cache
def default_keyword_index() -> KeywordIndex:
    """The index of the shipped packs, every language served, built on first
    use and then shared.

    .. versionadded:: 0.1.0
    """
    return KeywordIndex(load_packs(), [])


def lint_keywords(index: KeywordIndex) -> tuple[KeywordCollision, ...]:
    """Keywords that mean two intents for some locale chain.

    For instance YES as consent and, added by a policy, as re-subscribe
    (Twilio's reading), or a word that is consent in one language the index
    serves and stop, help or decline in another (consent words of a served
    language count for every contact). The parser resolves such a keyword
    by a fixed priority (stop, consent, start, help, decline); a collision
    reported here says that the priority, not the organisation, is
    deciding.

    .. versionadded:: 0.1.0
    .. versionchanged:: 0.2.0 the served languages' consent words are
       checked against every chain.
    """
    served = index._served
    seen: dict[tuple[str, tuple[Intent, ...]], KeywordCollision] = {}
    for head in PACK_ORDER:
        chain = locale_chain(head)
        found: dict[str, dict[Intent, list[Keyword]]] = {}
        for e in index.entries:
            if (
                e.intent in _CHAIN_INTENTS
                and e.locale not in chain
                and e.locale not in served
            ):
                continue
            found.setdefault(e.keyword, {}).setdefault(e.intent, []).append(e)
        for keyword, by_intent in found.items():
            if len(by_intent) < 2:
                continue
            intents = tuple(i for i in _PRIORITY if i in by_intent)
            if (keyword, intents) in seen:
                continue
            group = [e for es in by_intent.values() for e in es]
            seen[(keyword, intents)] = KeywordCollision(
                keyword=keyword,
                locale=head,
                intents=intents,
                sources=tuple(sorted({s for e in group for s in e.sources})),
                locales=_ordered(e.locale for e in group),
            )
    return tuple(seen.values())
