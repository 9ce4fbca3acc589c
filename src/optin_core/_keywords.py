"""Keyword packs and the precompiled index the parser reads.

The packs are JSON files under ``optin_core/keywords/``, one per locale, so a
translator or a compliance reviewer can read and edit them; every keyword
cites its sources (keys of ``keywords/sources.json``, or ``native`` for the
obvious words of a language). :func:`build_keyword_index` turns them, plus a
policy's extra words, into lookup tables built once and shared by every
parse: dicts from normalised text to results, and the ready-made replies for
the spellings people type most ("YES", "Stop.", "Oui !").
"""

from __future__ import annotations

import functools
import json
import re
import unicodedata
from collections.abc import Iterable, Mapping
from importlib import resources
from typing import Any, Final

import attrs

from optin_core import _locale, _parser
from optin_core._enums import Intent, MatchRule
from optin_core._locale import available_locales, locale_chain, require_locale

__all__ = [
    "Keyword",
    "KeywordCollision",
    "KeywordIndex",
    "build_keyword_index",
    "default_keyword_index",
    "lint_keywords",
    "load_packs",
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
_STRENGTHS: Final = frozenset({"strong", "weak", "exact"})
_QUOTES: Final = "\"“”„‟«»‹›'‘’‚‛「」『』＂"
_ELLIPSES: Final = ("…", "...")
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
    ones count as the first word of the message or of a sentence, or
    anywhere in a short message, unless a listed neighbour makes them
    ordinary words (``not_after``: "stop *by*", ``not_before``: "*bus* stop");
    ``"weak"`` ones (END, CANCEL, BAJA...) count only alone or among polite
    words ("cancel please"). Other intents are ``"exact"``.

    .. versionadded:: 0.1.0
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
    when a policy reports one for every locale).

    .. versionadded:: 0.1.0
    """

    keyword: str
    locale: str
    intents: tuple[Intent, ...]
    sources: tuple[str, ...] = ()


@attrs.frozen(slots=True)
class _Phrase:
    tokens: tuple[str, ...]
    keyword: str
    intent: Intent
    strong: bool
    locales: tuple[str, ...]
    not_after: frozenset[str]
    not_before: frozenset[str]


def _attribute(locales: tuple[str, ...], chain: tuple[str, ...]) -> str:
    for loc in chain:
        if loc in locales:
            return loc
    return locales[0]


def _canonical(word: str) -> str:
    return " ".join(_parser._words(_parser.normalize(word))[0])


@functools.cache
def load_packs() -> tuple[Mapping[str, Any], ...]:
    """The shipped keyword packs as parsed JSON, in :data:`PACK_ORDER`.

    Read from the package data once per process.

    .. versionadded:: 0.1.0
    """
    folder = resources.files("optin_core") / "keywords"
    packs = []
    for loc in PACK_ORDER:
        raw = (folder / f"{loc}.json").read_text(encoding="utf-8")
        packs.append(json.loads(raw))
    return tuple(packs)


@functools.cache
def load_sources() -> Mapping[str, Mapping[str, str]]:
    """The source keys packs cite, each with its ``url`` and ``note``.

    .. versionadded:: 0.1.0
    """
    folder = resources.files("optin_core") / "keywords"
    data = json.loads((folder / "sources.json").read_text(encoding="utf-8"))
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
            canonical = _canonical(written)
            if not canonical:
                raise ValueError(f"{locale}: keyword {written!r} has no letters")
            out.append(
                Keyword(
                    keyword=canonical,
                    written=written,
                    intent=intent,
                    locale=locale,
                    strength=strength,
                    sources=tuple(item["sources"]),
                    not_after=frozenset(
                        _canonical(w) for w in item.get("not_after", ())
                    ),
                    not_before=frozenset(
                        _canonical(w) for w in item.get("not_before", ())
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
                canonical = _canonical(word)
                if not canonical:
                    raise ValueError(
                        f"extra keywords {intent.value}/{loc}: {word!r} has no letters"
                    )
                out.append(
                    Keyword(
                        keyword=canonical,
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
            words.update(_canonical(word).split())
    return frozenset(words)


#: Emoji that Unicode files as punctuation rather than symbols.
_PUNCTUATION_EMOJI: Final = frozenset("‼⁉〰〽")


def _emoji_start(text: str) -> bool:
    """Whether ``text`` opens with an emoji, spaces and invisible characters
    aside: Google Messages' reactions read "👍 to “…”". An emoji is a symbol,
    one of the few punctuation emoji ("‼️"), or any character shown as an
    emoji by the variation selector that follows it."""
    for i, ch in enumerate(text[:32]):
        if ch.isspace():
            continue
        category = unicodedata.category(ch)
        if category == "Cf":
            continue
        return (
            category == "So"
            or ch in _PUNCTUATION_EMOJI
            or text[i + 1 : i + 2] == "\ufe0f"
        )
    return False


def _phrases(entries: Iterable[Keyword]) -> dict[str, tuple[_Phrase, ...]]:
    """Phrases merged across packs, keyed by first token, longest first."""
    merged: dict[tuple[Intent, str], list[Keyword]] = {}
    for e in entries:
        merged.setdefault((e.intent, e.keyword), []).append(e)
    by_first: dict[str, list[_Phrase]] = {}
    for (intent, keyword), group in merged.items():
        phrase = _Phrase(
            tokens=tuple(keyword.split()),
            keyword=keyword,
            intent=intent,
            strong=any(e.strength == "strong" for e in group),
            locales=_ordered(e.locale for e in group),
            not_after=frozenset().union(*(e.not_after for e in group)),
            not_before=frozenset().union(*(e.not_before for e in group)),
        )
        by_first.setdefault(phrase.tokens[0], []).append(phrase)
    return {
        first: tuple(sorted(group, key=lambda p: -len(p.tokens)))
        for first, group in by_first.items()
    }


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
    :func:`default_keyword_index` is the shared built-in one.

    .. versionadded:: 0.1.0
    """

    __slots__ = (
        "_chains",
        "_chains_en",
        "_consent",
        "_entries",
        "_exact",
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
        "_stop",
        "_third_party",
        "_tp_determiners",
        "_tp_ours",
        "_tp_subjects",
        "_tp_things",
        "_tp_yes",
        "_weak_company",
    )

    _entries: tuple[Keyword, ...]
    _stop: dict[str, tuple[_Phrase, ...]]
    _polite_phrases: dict[str, tuple[_Phrase, ...]]
    _consent: dict[str, tuple[_Phrase, ...]]
    _polite: frozenset[str]
    _lenient_words: frozenset[str]
    _weak_company: frozenset[str]
    _exact: dict[tuple[str, ...], dict[str, tuple[Intent, str, str]]]
    _chains_en: dict[str | None, tuple[str, ...]]
    _chains: dict[tuple[str | None, str], tuple[str, ...]]
    _prebuilt: dict[tuple[str, ...], dict[str, _parser.ParsedReply]]
    _prebuilt_max: int
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
        self, packs: Iterable[Mapping[str, Any]], extra: list[Keyword]
    ) -> None:
        packs = tuple(packs)
        entries: list[Keyword] = []
        for pack in packs:
            entries.extend(_pack_entries(pack))
        entries.extend(extra)
        init = functools.partial(object.__setattr__, self)
        init("_entries", tuple(entries))
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
        # Every word-level rule starts at the first word of a phrase; a text
        # sharing no alphanumeric run with those words can only be
        # unrecognised, and a set test says so before any word list is built.
        init(
            "_screen",
            frozenset(
                run
                for lead in (*self._stop, *self._polite_phrases, *self._consent)
                for run in _parser.ALNUM_RUN_RE.findall(lead)
            ),
        )
        self._init_third_party(packs)
        self._init_reactions(packs)
        self._init_chains()
        self._init_exact()
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

    # -- construction helpers ------------------------------------------------

    def _init_third_party(self, packs: tuple[Mapping[str, Any], ...]) -> None:
        """Stop words whose object is someone else's ("make them stop", "stop
        the bill"), read as such only in a message that also says yes."""
        init = functools.partial(object.__setattr__, self)
        init(
            "_third_party",
            frozenset(
                _canonical(w)
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
                    folded = _parser.normalize(written.replace("*", " ASTERISK "))
                    folded = folded.replace("asterisk", "*")
                    locales = target.setdefault(folded, [])
                    if pack["locale"] not in locales:
                        locales.append(pack["locale"])
                tails.update(_parser.normalize(t) for t in fmt.get("tails", ()))
            media.extend(_parser.normalize(m) for m in section.get("media", ()))
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
        quote_re = re.compile(f"[{re.escape(_parser._fold_chars(_QUOTES))}]")
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
        quotes = re.escape(_parser._fold_chars(_QUOTES))
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

    def _init_exact(self) -> None:
        by_intent: dict[Intent, dict[str, tuple[str, ...]]] = {}
        for intent in _PRIORITY:
            locales: dict[str, set[str]] = {}
            for e in self._entries:
                if e.intent is intent:
                    locales.setdefault(e.keyword, set()).add(e.locale)
            by_intent[intent] = {kw: _ordered(locs) for kw, locs in locales.items()}
        exact: dict[tuple[str, ...], dict[str, tuple[Intent, str, str]]] = {}
        for chain in {*self._chains_en.values(), *self._chains.values()}:
            table: dict[str, tuple[Intent, str, str]] = {}
            for intent in _PRIORITY:
                for keyword, locs in by_intent[intent].items():
                    if keyword in table:
                        continue
                    if intent in _CHAIN_INTENTS and not any(
                        loc in chain for loc in locs
                    ):
                        continue
                    table[keyword] = (intent, keyword, _attribute(locs, chain))
            exact[chain] = table
        object.__setattr__(self, "_exact", exact)

    def _init_prebuilt(self) -> None:
        written: dict[str, set[str]] = {}
        for e in self._entries:
            written.setdefault(e.keyword, {e.keyword}).add(e.written)
        spellings = {
            key: _spellings(key, frozenset(bases)) for key, bases in written.items()
        }
        shared: dict[tuple[str, str, str, str], _parser.ParsedReply] = {}
        prebuilt: dict[tuple[str, ...], dict[str, _parser.ParsedReply]] = {}
        for chain in set(self._chains_en.values()):
            table: dict[str, _parser.ParsedReply] = {}
            for key, (intent, keyword, loc) in self._exact[chain].items():
                for raw in spellings[key]:
                    reply = shared.get((raw, intent.value, keyword, loc))
                    if reply is None:
                        reply = _parser.ParsedReply(
                            intent=intent,
                            keyword=keyword,
                            rule=MatchRule.EXACT,
                            locale=loc,
                            text=raw,
                        )
                        shared[(raw, intent.value, keyword, loc)] = reply
                    table[raw] = reply
            prebuilt[chain] = table
        object.__setattr__(self, "_prebuilt", prebuilt)
        # Longer texts skip the table: looking one up would hash all of it.
        longest = max((len(k) for t in prebuilt.values() for k in t), default=0)
        object.__setattr__(self, "_prebuilt_max", longest)

    # -- used by the parser -------------------------------------------------

    def _chain(self, locale: str | None, default: str) -> tuple[str, ...]:
        chain = (
            self._chains_en.get(locale)
            if default == "en"
            else self._chains.get((locale, default))
        )
        if chain is None:
            chain = locale_chain(locale, default)
        return chain

    def _find_stop(
        self,
        words: list[str],
        tight: list[bool],
        starts: list[bool],
        chain: tuple[str, ...],
        *,
        short: bool,
        ends: bool = True,
        first: bool = True,
    ) -> tuple[str, MatchRule, str] | None:
        """A stop phrase among ``words``; ``ends``: they end the message;
        ``first``: they begin it (not so for a long text's tail)."""
        n = len(words)
        is_short = short and n <= _parser.SHORT_MESSAGE_WORDS
        company = self._weak_company
        third_party = self._third_party
        for i, word in enumerate(words):
            phrases = self._stop.get(word)
            if phrases is None:
                continue
            for p in phrases:
                k = len(p.tokens)
                # A strong word counts where a sentence starts or the message
                # ends ("..., stop"); anywhere in a short message.
                last = ends and i + k == n
                if not (is_short or starts[i] or (last and p.strong)):
                    continue
                if k > 1 and tuple(words[i : i + k]) != p.tokens:
                    continue
                if p.strong:
                    after = i + k
                    if after < n and tight[after] and words[after] in p.not_after:
                        continue
                    if i > 0 and tight[i] and words[i - 1] in p.not_before:
                        continue
                    if (
                        p.keyword in third_party
                        and not self._tp_yes.isdisjoint(words)
                        and self._about_others(words, tight, i, k)
                    ):
                        continue
                    if i == 0 and first:
                        rule = MatchRule.FIRST_WORD
                    elif starts[i]:
                        rule = MatchRule.SENTENCE_START
                    elif is_short:
                        rule = MatchRule.SHORT_MESSAGE
                    else:
                        rule = MatchRule.LAST_WORD
                    return p.keyword, rule, _attribute(p.locales, chain)
                if is_short and all(w in company for w in words[:i] + words[i + k :]):
                    rule = MatchRule.FIRST_WORD if i == 0 else MatchRule.SHORT_MESSAGE
                    return p.keyword, rule, _attribute(p.locales, chain)
        return None

    def _find_polite(
        self, words: list[str], chain: tuple[str, ...]
    ) -> tuple[Intent, str, MatchRule, str] | None:
        """HELP or DECLINE among polite words only: "help please", "no thanks"."""
        if len(words) > _parser.SHORT_MESSAGE_WORDS:
            return None
        polite = self._polite
        for i, word in enumerate(words):
            for p in self._polite_phrases.get(word, ()):
                k = len(p.tokens)
                if tuple(words[i : i + k]) != p.tokens:
                    continue
                if all(w in polite for w in words[:i] + words[i + k :]):
                    rule = MatchRule.FIRST_WORD if i == 0 else MatchRule.SHORT_MESSAGE
                    return p.intent, p.keyword, rule, _attribute(p.locales, chain)
        return None

    def _find_lenient(
        self, words: list[str], s: str, chain: tuple[str, ...]
    ) -> tuple[str, str] | None:
        """A consent word among polite and affirmative words: "Yes please"."""
        if "?" in s or len(words) > _parser.SHORT_MESSAGE_WORDS:
            return None
        allowed = self._lenient_words
        for i, word in enumerate(words):
            for p in self._consent.get(word, ()):
                k = len(p.tokens)
                if tuple(words[i : i + k]) != p.tokens:
                    continue
                if not any(loc in chain for loc in p.locales):
                    continue
                if all(w in allowed for w in words[:i] + words[i + k :]):
                    return p.keyword, _attribute(p.locales, chain)
        return None

    def _reaction(
        self, text: str, s: str, *, quoted: bool
    ) -> tuple[str, tuple[str, ...]] | None:
        """The lead of a phone reaction ("Liked “…”", "👍 to “…”") and the
        packs that list it, or ``None``."""
        m = None
        if quoted:
            if self._reaction_re is not None:
                m = self._reaction_re.match(s)
            if m is None and self._reaction_emoji_re is not None:
                m = self._reaction_emoji_re.match(s)
                if m is not None and not _emoji_start(text):
                    m = None
        if m is None:
            media = self._reaction_media_re
            if media is not None and len(text) <= _parser.HEAD_CHARS:
                m = media.fullmatch(s)
            if m is None or m.lastgroup is None:
                return None
            return self._reaction_leads[m.lastgroup]
        if m.lastgroup is None:
            return None
        lead, locales = self._reaction_leads[m.lastgroup]
        tail = text[-_parser.TAIL_CHARS :].rstrip()
        if tail.endswith(_ELLIPSES):
            # The phone cut a long quote short and left it open.
            return lead, locales
        if len(text) <= _parser.HEAD_CHARS:
            needed = 2 + lead.count("'")
            if sum(text.count(q) for q in _QUOTES) < needed:
                return None
        last = max(tail.rfind(q) for q in _QUOTES)
        if last < 0:
            return None
        rest = _parser.normalize(tail[last + 1 :])
        if rest and rest not in self._reaction_tails:
            return None
        return lead, locales

    def _reaction_lead(
        self, piece: str, text: str
    ) -> tuple[str, tuple[str, ...]] | None:
        """The reaction lead that the normalised ``piece`` is, whole: what
        comes before a quote of our words in ``text``."""
        m = None
        if self._reaction_lead_re is not None:
            m = self._reaction_lead_re.fullmatch(piece)
        if m is None and self._reaction_emoji_lead_re is not None:
            m = self._reaction_emoji_lead_re.fullmatch(piece)
            if m is not None and not _emoji_start(text):
                m = None
        if m is None or m.lastgroup is None:
            return None
        return self._reaction_leads[m.lastgroup]

    def _pack_of(self, locales: tuple[str, ...], chain: tuple[str, ...]) -> str:
        """The pack a match is attributed to: the first of the contact's
        chain that lists it, else the first in :data:`PACK_ORDER`."""
        return _attribute(locales, chain)

    def _about_others(
        self, words: list[str], tight: list[bool], i: int, k: int
    ) -> bool:
        """Whether the stop phrase ``words[i:i+k]`` stops something else, in
        a message that says yes: "yes, make *them* stop", "yes, stop *the
        bill*". A word naming our texts keeps the stop ("stop the texts").
        (The caller tests the yes first: it is the cheaper test.)"""
        n = len(words)
        after = i + k
        if i > 0 and tight[i] and words[i - 1] in self._tp_subjects:
            about = after >= n or not tight[after] or words[after] not in self._tp_ours
        else:
            about = (
                after + 1 < n
                and tight[after]
                and tight[after + 1]
                and words[after] in self._tp_determiners
                and words[after + 1] not in self._tp_things
            )
        return about and not self._tp_yes.isdisjoint(words)


@functools.cache
def _spellings(key: str, bases: frozenset[str]) -> tuple[str, ...]:
    """Raw texts that normalise to ``key``: case variants and a closing mark."""
    raws = {
        cased + suffix
        for base in bases
        for cased in (base, base.upper(), base.capitalize(), base.title())
        for suffix in _SUFFIXES
    }
    return tuple(sorted(raw for raw in raws if _parser._fold(raw) == key))


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


def build_keyword_index(
    extra: Mapping[Intent, Mapping[str, Iterable[str]]] | None = None,
) -> KeywordIndex:
    """An index of the shipped packs plus a policy's extra keywords.

    ``extra`` maps an intent to ``{locale: words}``; locales are checked with
    :func:`~optin_core.require_locale` (so a typo raises
    :class:`~optin_core.UnknownLocale`). Extra stop words count alone or among
    polite words; extra consent and re-subscribe words count for contacts
    whose locale chain includes their locale. ``None`` (or empty) returns the
    shared default index. Building takes some milliseconds: build once per
    policy, not per message.

    .. versionadded:: 0.1.0
    """
    if not extra:
        return default_keyword_index()
    return KeywordIndex(load_packs(), _extra_entries(extra))


@functools.cache
def default_keyword_index() -> KeywordIndex:
    """The index of the shipped packs, built on first use and then shared.

    .. versionadded:: 0.1.0
    """
    return KeywordIndex(load_packs(), [])


def lint_keywords(index: KeywordIndex) -> tuple[KeywordCollision, ...]:
    """Keywords that mean two intents for some locale chain.

    For instance YES as consent and, added by a policy, as re-subscribe
    (Twilio's reading). The parser resolves such a keyword by a fixed
    priority (stop, consent, start, help, decline); a collision reported here
    says that the priority, not the organisation, is deciding.

    .. versionadded:: 0.1.0
    """
    seen: dict[tuple[str, tuple[Intent, ...]], KeywordCollision] = {}
    for head in PACK_ORDER:
        chain = locale_chain(head)
        found: dict[str, dict[Intent, list[Keyword]]] = {}
        for e in index.entries:
            if e.intent in _CHAIN_INTENTS and e.locale not in chain:
                continue
            found.setdefault(e.keyword, {}).setdefault(e.intent, []).append(e)
        for keyword, by_intent in found.items():
            if len(by_intent) < 2:
                continue
            intents = tuple(i for i in _PRIORITY if i in by_intent)
            if (keyword, intents) in seen:
                continue
            sources = sorted(
                {s for es in by_intent.values() for e in es for s in e.sources}
            )
            seen[(keyword, intents)] = KeywordCollision(
                keyword=keyword, locale=head, intents=intents, sources=tuple(sources)
            )
    return tuple(seen.values())
