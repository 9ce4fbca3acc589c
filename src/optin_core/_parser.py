"""The reply parser: a contact's text in, an intent and its evidence out.

Consent is strict and stop is generous, because the two errors do not cost
the same: reading "Yes please" as a reminder case costs one more message, while
missing "please stop" means texting someone who revoked consent. The rules are
written down in ``docs/parsing.md``; the words live in the keyword packs.

This module is the one home of "what counts as a stop" (and as a yes, a
reaction, a quote of our words): every matching rule is here, and reads the
tables of :mod:`optin_core._keywords`, which are data. Normalisation and the
read windows come from :mod:`optin_core._normalize`; the result,
:class:`ParsedReply`, is a record (:mod:`optin_core._records`). Imports run
one way: ``_normalize`` <- ``_keywords`` <- ``_parser``.

Everything here is pure: no I/O, no clock, no state that changes after import
(the default keyword index is built once, lazily).
"""

from __future__ import annotations

import unicodedata
from collections.abc import Iterable, Mapping

from optin_core._enums import Intent, MatchRule, MessageKind
from optin_core._keywords import (
    QUOTES,
    KeywordIndex,
    attribute,
    default_keyword_index,
)
from optin_core._locale import locale_chain
from optin_core._normalize import (
    ALNUM_RUN_RE,
    ASCII_NOT_ALNUM,
    HEAD_CHARS,
    TAIL_CHARS,
    WORD_RE,
    accent_form,
    fold,
    normalize,
    window,
    words,
)
from optin_core._records import ParsedReply

__all__ = [
    "HEAD_CHARS",
    "MIN_QUOTE_CHARS",
    "MIN_QUOTE_WORDS",
    "SHORT_MESSAGE_WORDS",
    "TAIL_CHARS",
    "OwnWords",
    "ParsedReply",
    "keyword_language",
    "normalize",
    "own_words",
    "parse_reply",
]

#: A message of at most this many words is "short": a stop word anywhere in
#: it counts ("please stop", "pls unsubscribe me").
SHORT_MESSAGE_WORDS = 6
#: A quote of our own words is at least this many consecutive words of one
#: message we send, verbatim after normalisation...
MIN_QUOTE_WORDS = 6
#: ... and at least this many characters: "will receive no more messages"
#: typed by a contact is theirs, not a quote.
MIN_QUOTE_CHARS = 30

_ELLIPSES = ("…", "...")
#: Emoji that Unicode files as punctuation rather than symbols.
_PUNCTUATION_EMOJI = frozenset("‼⁉〰〽")


# attrs' generated __init__ goes through a frozen-class setattr per field;
# writing the slots directly halves the cost of building a reply, which is
# most of the cost of parsing a short one. Same object, same invariants.
_new = object.__new__
_set_intent = ParsedReply.__dict__["intent"].__set__
_set_keyword = ParsedReply.__dict__["keyword"].__set__
_set_rule = ParsedReply.__dict__["rule"].__set__
_set_locale = ParsedReply.__dict__["locale"].__set__
_set_text = ParsedReply.__dict__["text"].__set__
_set_full_length = ParsedReply.__dict__["full_length"].__set__
_set_full_sha256 = ParsedReply.__dict__["full_sha256"].__set__
_set_quoted = ParsedReply.__dict__["quoted"].__set__


def _reply(  # noqa: PLR0917 (positional: the hot path's constructor)
    intent: Intent,
    keyword: str | None,
    rule: MatchRule,
    locale: str | None,
    text: str,
    quoted: MessageKind | None = None,
) -> ParsedReply:
    reply: ParsedReply = _new(ParsedReply)
    _set_intent(reply, intent)
    _set_keyword(reply, keyword)
    _set_rule(reply, rule)
    _set_locale(reply, locale)
    _set_text(reply, text)
    _set_full_length(reply, None)
    _set_full_sha256(reply, None)
    _set_quoted(reply, quoted)
    return reply


# -- our own words, quoted back --------------------------------------------

#: Words per key of the quote index. Every run of MIN_QUOTE_WORDS words holds
#: a key starting at a multiple of _QUOTE_STEP, so the scan looks up only
#: every _QUOTE_STEP-th position.
_GRAM = 3
_QUOTE_STEP = MIN_QUOTE_WORDS - _GRAM + 1


class OwnWords:
    """The texts we send, indexed so the parser can find them quoted back.

    A reply that quotes one of them at length (a phone reaction to the
    opt-in request, a pasted reminder, a client that quotes on reply) must
    be read on the contact's words only: our wording says YES and STOP, and
    neither is the contact's answer. Build one with :func:`own_words`; a
    :class:`~optin_core.Policy` holds one for every message it renders, in
    every locale (``policy.own_words``), built once.

    Immutable; lookups are a few dict probes per reply.

    .. versionadded:: 0.2.0
    """

    __slots__ = ("_grams", "_kinds", "_texts")

    _grams: dict[str, tuple[tuple[int, int], ...]]
    _kinds: tuple[MessageKind, ...]
    _texts: tuple[tuple[str, ...], ...]

    def __init__(self, texts: Iterable[tuple[MessageKind, str]]) -> None:
        raw: dict[str, MessageKind] = {}
        for kind, text in texts:
            if not isinstance(kind, MessageKind):
                raise TypeError(f"expected a MessageKind, not {type(kind).__name__}")
            if not isinstance(text, str):
                raise TypeError(f"expected a str text, not {type(text).__name__}")
            raw.setdefault(text, kind)
        found: dict[tuple[str, ...], MessageKind] = {}
        for text, kind in raw.items():
            words = tuple(WORD_RE.findall(fold(text)))
            if len(words) >= MIN_QUOTE_WORDS:
                found.setdefault(words, kind)
        grams: dict[str, list[tuple[int, int]]] = {}
        for tid, words in enumerate(found):
            keys = map(" ".join, zip(*(words[j:] for j in range(_GRAM)), strict=False))
            for pos, key in enumerate(keys):
                grams.setdefault(key, []).append((tid, pos))
        init = object.__setattr__
        init(self, "_texts", tuple(found))
        init(self, "_kinds", tuple(found.values()))
        init(self, "_grams", {k: tuple(v) for k, v in grams.items()})

    def __setattr__(self, name: str, value: object) -> None:
        raise AttributeError("OwnWords is immutable")

    def __len__(self) -> int:
        return len(self._texts)

    def __repr__(self) -> str:
        return f"<OwnWords {len(self._texts)} texts>"

    @property
    def kinds(self) -> frozenset[MessageKind]:
        """The kinds of message indexed."""
        return frozenset(self._kinds)

    def _find(self, s: str) -> tuple[list[tuple[int, int]], MessageKind] | None:
        """Spans of the normalised ``s`` that quote our texts, and the kind of
        the longest quote; ``None`` when there is none."""
        if s.count(" ") < MIN_QUOTE_WORDS - 1:
            return None
        matches = list(WORD_RE.finditer(s))
        words = [m.group() for m in matches]
        n = len(words)
        grams, texts = self._grams, self._texts
        spans: list[tuple[int, int]] = []
        kind: MessageKind | None = None
        longest = 0
        i = lo = 0
        while i + _GRAM <= n:
            hits = grams.get(" ".join(words[i : i + _GRAM]))
            best: tuple[int, int, int, int, int] | None = None
            for tid, pos in hits or ():
                t = texts[tid]
                a, ta = i, pos
                while a > lo and ta > 0 and words[a - 1] == t[ta - 1]:
                    a -= 1
                    ta -= 1
                b, tb = i + _GRAM, pos + _GRAM
                while b < n and tb < len(t) and words[b] == t[tb]:
                    b += 1
                    tb += 1
                if best is None or b - a > best[1] - best[0]:
                    best = (a, b, tid, ta, tb)
            if best is None or best[1] - best[0] < MIN_QUOTE_WORDS:
                i += _QUOTE_STEP
                continue
            a, b, tid, ta, tb = best
            t = texts[tid]
            # A phone cuts a long quote mid-word ("...and retai…”"), at the
            # end or, more rarely, at the start ("…ained. Reply YES").
            if b < n and tb < len(t) and t[tb].startswith(words[b]):
                gap = s[
                    matches[b].end() : matches[b + 1].start() if b + 1 < n else None
                ]
                if b + 1 == n or "..." in gap:
                    b += 1
            if a > lo and ta > 0 and t[ta - 1].endswith(words[a - 1]):
                gap = s[matches[a - 2].end() if a > 1 else 0 : matches[a - 1].start()]
                if a == 1 or "..." in gap:
                    a -= 1
            start, end = matches[a].start(), matches[b - 1].end()
            if end - start < MIN_QUOTE_CHARS:
                i += _QUOTE_STEP
                continue
            spans.append((start, end))
            if b - a > longest:
                longest, kind = b - a, self._kinds[tid]
            i = lo = b
        if kind is None:
            return None
        return spans, kind


def own_words(
    texts: OwnWords
    | Mapping[MessageKind, str | Iterable[str]]
    | Iterable[tuple[MessageKind, str]],
) -> OwnWords:
    """An index of our own texts for ``parse_reply(..., ours=...)``.

    ``texts`` maps each :class:`~optin_core.MessageKind` to its text (or
    texts), or lists ``(kind, text)`` pairs. Texts shorter than
    :data:`MIN_QUOTE_WORDS` words are left out: quoting them is not "at
    length". Build it once and reuse it (a policy does).

    .. versionadded:: 0.2.0
    """
    if isinstance(texts, OwnWords):
        return texts
    if isinstance(texts, str):
        raise TypeError("expected {MessageKind: text} or (kind, text) pairs, not a str")
    if isinstance(texts, Mapping):
        pairs: list[tuple[MessageKind, str]] = []
        for kind, value in texts.items():
            if isinstance(value, str):
                pairs.append((kind, value))
            else:
                pairs.extend((kind, text) for text in value)
        return OwnWords(pairs)
    return OwnWords(texts)


def parse_reply(
    text: str,
    locale: str | None = None,
    *,
    default_locale: str = "en",
    keywords: KeywordIndex | None = None,
    lenient_consent: bool = False,
    ours: OwnWords
    | Mapping[MessageKind, str | Iterable[str]]
    | Iterable[tuple[MessageKind, str]]
    | None = None,
) -> ParsedReply:
    """Classify a contact's reply.

    ``locale`` is the contact's locale (any spelling; unknown ones fall back
    to ``default_locale``, then English). Consent and re-subscribe words
    count when they belong to the contact's locale chain or to a language
    the index serves (``keywords.languages``; the built-in index serves
    every shipped pack, a policy's index its ``languages``); stop, help and
    decline words of every pack apply to everyone. ``keywords`` is the index
    to use (a policy's, with its extra words and languages); ``None`` is the
    built-in one. With ``lenient_consent``, a consent word surrounded only
    by polite or affirmative words ("Yes please", "Oui merci") is consent
    too, under :attr:`MatchRule.LENIENT`.

    ``ours`` are the texts we send (an :class:`OwnWords`, such as
    ``policy.own_words``, or anything :func:`own_words` accepts): a reply
    quoting one of them at length is classified on what remains once the
    quote is removed, and ``quoted`` records the kind quoted. Our wording is
    never the contact's YES or STOP.

    Never raises for a ``str``; a non-``str`` text or locale is a
    :class:`TypeError`. Only the first 512 and last 160 characters are read,
    counted once whitespace and invisible characters are collapsed.

    .. versionadded:: 0.1.0
    .. versionchanged:: 0.2.0 ``ours``; consent words of every served
       language; padding never pushes a word out of the windows.
    """
    if text.__class__ is not str and not isinstance(text, str):
        raise TypeError(f"text must be a str, not {type(text).__name__}")
    if ours is not None and ours.__class__ is not OwnWords:
        ours = own_words(ours)
    index = default_keyword_index() if keywords is None else keywords
    # The fast path: an exact keyword as contacts type it ("STOP", "Oui"),
    # for a locale spelled as hosts send it: three dict lookups. A keyword
    # is too short to hold a quote of ours.
    if len(text) <= index._prebuilt_max:
        by_locale = index._fast.get(default_locale)
        if by_locale is not None:
            table = by_locale.get(locale)
            if table is not None:
                found = table.get(text)
                if found is not None:
                    return found
    chain = _chain(index, locale, default_locale)
    return _parse(text, chain, index, lenient_consent, ours)


def keyword_language(
    reply: ParsedReply, keywords: KeywordIndex | None = None
) -> str | None:
    """The pack of the language ``reply``'s keyword belongs to, when it
    belongs to one language only; else ``None``.

    ``ARRET``, ``Oui``, ``AIDE``, ``Arrêtez de m'écrire``, ``Bitte keine SMS
    mehr`` are French, French, French, French, German: a confirmation or a
    HELP answer to them goes out in that language, whatever the contact's
    locale (Canadian practice: the keyword's language). ``STOP`` (English,
    French, and more), ``Ja`` (German and Dutch), ``no``, ``info``, a
    reaction or an unrecognised reply give ``None``: answer in the
    contact's locale. An exact reply whose accents settle it counts as one
    language: ``Sì`` is Italian and ``Sí`` Spanish (``Si`` is both), as long
    as the parser attributed it to that language (the contact's own chain
    comes first).

    .. versionadded:: 0.2.0
    """
    loc = reply.locale
    keyword = reply.keyword
    if loc is None or keyword is None or reply.intent is Intent.REACTION:
        return None
    index = default_keyword_index() if keywords is None else keywords
    langs = index._langs.get((reply.intent, keyword))
    if langs is None:
        return None
    if len(langs) == 1:
        return loc if loc.partition("-")[0] in langs else None
    if reply.rule is not MatchRule.EXACT or reply.quoted is not None:
        return None
    forms = index._written.get((reply.intent, keyword))
    packs = None if not forms else forms.get(accent_form(reply.text))
    if packs is not None and loc in packs:
        return loc
    return None


def _chain(index: KeywordIndex, locale: str | None, default: str) -> tuple[str, ...]:
    """The contact's locale chain: a dict hit for the spellings hosts send
    most, Babel's negotiation for the others."""
    chain = (
        index._chains_en.get(locale)
        if default == "en"
        else index._chains.get((locale, default))
    )
    if chain is None:
        chain = locale_chain(locale, default)
    return chain


def _parse(
    text: str,
    chain: tuple[str, ...],
    index: KeywordIndex,
    lenient: bool,
    ours: OwnWords | None = None,
) -> ParsedReply:
    if len(text) <= HEAD_CHARS:
        view, long = text, False
    else:
        # Padding collapsed: the windows count what a contact wrote.
        view, long = window(text)
    s = fold(view[:HEAD_CHARS] if long else view)
    if not s:
        if long:
            return _tail_stop(text, view, index, chain, ours, None)
        return _reply(Intent.UNRECOGNIZED, None, MatchRule.NONE, None, text)
    if not long:
        # A keyword never contains a quote, so no reaction can be exact.
        exact = index._exact[chain].get(s)
        if exact is not None:
            intent, keyword, loc, accents = exact
            if accents is not None:
                loc = accents.get(accent_form(view), loc)
            return _reply(intent, keyword, MatchRule.EXACT, loc, text)
    first = s.partition(" ")[0]
    quote_re = index._reaction_first.get(first)
    if quote_re is None and not first.isalnum():
        # "elimino!! de": an emoji folded to punctuation, glued to the word.
        first = first.rstrip(ASCII_NOT_ALNUM)
        quote_re = index._reaction_first.get(first)
    if quote_re is not None:
        quoted = quote_re.search(s) is not None
        # Without a quote, only "Loved an image" can be a reaction.
        if quoted or first in index._reaction_media_first:
            reaction = _reaction(index, view, s, quoted=quoted)
            if reaction is not None:
                keyword, locs = reaction
                found = None if ours is None else ours._find(s)
                return _reply(
                    Intent.REACTION,
                    keyword,
                    MatchRule.REACTION,
                    attribute(locs, chain),
                    text,
                    None if found is None else found[1],
                )
    kind = None
    if ours is not None:
        found = ours._find(s)
        if found is not None:
            unquoted = _unquoted(text, view, s, found, chain, index, long, ours)
            if isinstance(unquoted, ParsedReply):
                return unquoted
            s, kind = unquoted
    # The word rules: stop, then help and decline, then lenient consent.
    if index._screen.isdisjoint(ALNUM_RUN_RE.findall(s)):
        # No keyword's first word anywhere in the head.
        if long:
            return _tail_stop(text, view, index, chain, ours, kind)
        return _reply(Intent.UNRECOGNIZED, None, MatchRule.NONE, None, text, kind)
    found_words, tight, starts = words(s)
    if not found_words:
        return _reply(Intent.UNRECOGNIZED, None, MatchRule.NONE, None, text, kind)
    stop = _find_stop(
        index, found_words, tight, starts, chain, short=not long, ends=not long
    )
    if stop is not None:
        keyword, rule, loc = stop
        return _reply(Intent.STOP, keyword, rule, loc, text, kind)
    if long:
        return _tail_stop(text, view, index, chain, ours, kind)
    polite = _find_polite(index, found_words, chain)
    if polite is not None:
        intent, keyword, rule, loc = polite
        return _reply(intent, keyword, rule, loc, text, kind)
    if lenient and not _asks(view):
        consent = _find_lenient(index, found_words, s, chain)
        if consent is not None:
            keyword, loc = consent
            return _reply(Intent.CONSENT, keyword, MatchRule.LENIENT, loc, text, kind)
    return _reply(Intent.UNRECOGNIZED, None, MatchRule.NONE, None, text, kind)


def _unquoted(  # noqa: PLR0917 (the parse state, passed along)
    text: str,
    view: str,
    s: str,
    found: tuple[list[tuple[int, int]], MessageKind],
    chain: tuple[str, ...],
    index: KeywordIndex,
    long: bool,
    ours: OwnWords,
) -> ParsedReply | tuple[str, MessageKind]:
    """``s`` once our quoted words are removed, for the word rules to read,
    with the kind quoted; or the reply when that settles it."""
    spans, kind = found
    raw = []
    prev = 0
    for start, end in spans:
        raw.append(s[prev:start])
        prev = end
    raw.append(s[prev:])
    pieces = [fold(piece) for piece in raw]
    # Inner punctuation stays ("yes please?" is not lenient consent).
    rest = [piece for piece, folded in zip(raw, pieces, strict=True) if folded]
    if not rest:
        # Only our words (and emoji, punctuation): nothing of the contact's.
        if long:
            return _tail_stop(text, view, index, chain, ours, kind)
        return _reply(Intent.UNRECOGNIZED, None, MatchRule.NONE, None, text, kind)
    # A reaction whose quote is ours, whatever its closing marks: a lead
    # before the quote, at most a listed tail word after it.
    lead = _reaction_lead(index, pieces[0], view)
    if (
        lead is not None
        and not any(pieces[1:-1])
        and (not pieces[-1] or pieces[-1] in index._reaction_tails)
    ):
        if long:
            # A closing "... STOP" after a megabyte still counts.
            tail = _tail_stop(text, view, index, chain, ours, kind)
            if tail.intent is Intent.STOP:
                return tail
        keyword, locs = lead
        loc = attribute(locs, chain)
        return _reply(Intent.REACTION, keyword, MatchRule.REACTION, loc, text, kind)
    # A quote is a sentence of its own: what follows it starts a sentence.
    r = fold(". ".join(rest))
    if not long:
        exact = index._exact[chain].get(r)
        if exact is not None:
            intent, keyword, loc, _ = exact
            return _reply(intent, keyword, MatchRule.EXACT, loc, text, kind)
    return r, kind


def _tail_stop(  # noqa: PLR0917 (the parse state, passed along)
    text: str,
    view: str,
    index: KeywordIndex,
    chain: tuple[str, ...],
    ours: OwnWords | None,
    quoted: MessageKind | None,
) -> ParsedReply:
    """A long text may end with a stop: "... Stop texting me." or "..., stop"."""
    s = fold(view[-TAIL_CHARS:])
    cut = True
    if ours is not None:
        found = ours._find(s)
        if found is not None:
            spans, kind = found
            if quoted is None:
                quoted = kind
            # After a quote that opens the tail, a sentence starts.
            cut = bool(fold(s[: spans[0][0]]))
            pieces = []
            prev = 0
            for start, end in spans:
                pieces.append(s[prev:start])
                prev = end
            pieces.append(s[prev:])
            s = fold(". ".join(pieces))
    found_words, tight, starts = words(s)
    if found_words:
        # The first word of the tail may be cut in half: never a sentence start.
        starts[0] = not cut
        stop = _find_stop(
            index, found_words, tight, starts, chain, short=False, first=False
        )
        if stop is not None:
            keyword, rule, loc = stop
            return _reply(Intent.STOP, keyword, rule, loc, text, quoted)
    return _reply(Intent.UNRECOGNIZED, None, MatchRule.NONE, None, text, quoted)


# -- the word rules -----------------------------------------------------------


def _find_stop(
    index: KeywordIndex,
    found: list[str],
    tight: list[bool],
    starts: list[bool],
    chain: tuple[str, ...],
    *,
    short: bool,
    ends: bool = True,
    first: bool = True,
) -> tuple[str, MatchRule, str] | None:
    """A stop phrase among the words ``found``; ``ends``: they end the
    message; ``first``: they begin it (not so for a long text's tail)."""
    n = len(found)
    is_short = short and n <= SHORT_MESSAGE_WORDS
    company = index._weak_company
    third_party = index._third_party
    stops = index._stop
    for i, word in enumerate(found):
        phrases = stops.get(word)
        if phrases is None:
            continue
        for p in phrases:
            k = len(p.tokens)
            # A strong word counts where a sentence starts or the message
            # ends ("..., stop"); anywhere in a short message; a phrase that
            # only means our texts, anywhere (but not from a tail's first
            # word, which may be cut).
            last = ends and i + k == n
            if not (
                is_short or starts[i] or (last and p.strong) or (p.anywhere and i > 0)
            ):
                continue
            if k > 1 and (
                i + k > n
                or found[i + 1] != p.tokens[1]
                or tuple(found[i : i + k]) != p.tokens
            ):
                continue
            if p.strong:
                after = i + k
                if after < n and tight[after] and found[after] in p.not_after:
                    continue
                if i > 0 and tight[i] and found[i - 1] in p.not_before:
                    continue
                if (
                    p.keyword in third_party
                    and not index._tp_yes.isdisjoint(found)
                    and _about_others(index, found, tight, i, k)
                ):
                    continue
                if i == 0 and first:
                    rule = MatchRule.FIRST_WORD
                elif starts[i]:
                    rule = MatchRule.SENTENCE_START
                elif is_short:
                    rule = MatchRule.SHORT_MESSAGE
                elif last:
                    rule = MatchRule.LAST_WORD
                else:
                    rule = MatchRule.PHRASE
                return p.keyword, rule, attribute(p.locales, chain)
            if is_short and all(w in company for w in found[:i] + found[i + k :]):
                rule = MatchRule.FIRST_WORD if i == 0 else MatchRule.SHORT_MESSAGE
                return p.keyword, rule, attribute(p.locales, chain)
    return None


def _find_polite(
    index: KeywordIndex, found: list[str], chain: tuple[str, ...]
) -> tuple[Intent, str, MatchRule, str] | None:
    """HELP or DECLINE among polite words only: "help please", "no thanks"."""
    if len(found) > SHORT_MESSAGE_WORDS:
        return None
    polite = index._polite
    for i, word in enumerate(found):
        for p in index._polite_phrases.get(word, ()):
            k = len(p.tokens)
            if tuple(found[i : i + k]) != p.tokens:
                continue
            if all(w in polite for w in found[:i] + found[i + k :]):
                rule = MatchRule.FIRST_WORD if i == 0 else MatchRule.SHORT_MESSAGE
                return p.intent, p.keyword, rule, attribute(p.locales, chain)
    return None


def _asks(view: str) -> bool:
    """Whether a question mark ends or opens ``view`` ("Yes please?",
    "Oui merci ?", "¿Sí?"): the ends :func:`fold` trims, where the word
    rules cannot see one."""
    for chars in (view, reversed(view)):
        for ch in chars:
            if ch.isalnum():
                break
            if ch in "?¿" or "?" in unicodedata.normalize("NFKC", ch):
                return True
    return False


def _find_lenient(
    index: KeywordIndex, found: list[str], s: str, chain: tuple[str, ...]
) -> tuple[str, str] | None:
    """A consent word among polite and affirmative words: "Yes please"."""
    if "?" in s or len(found) > SHORT_MESSAGE_WORDS:
        return None
    allowed = index._lenient_words
    accepted = index._consent_ok[chain]
    for i, word in enumerate(found):
        for p in index._consent.get(word, ()):
            k = len(p.tokens)
            if tuple(found[i : i + k]) != p.tokens:
                continue
            if p.keyword not in accepted:
                continue
            if all(w in allowed for w in found[:i] + found[i + k :]):
                return p.keyword, index._exact[chain][p.keyword][2]
    return None


def _about_others(
    index: KeywordIndex, found: list[str], tight: list[bool], i: int, k: int
) -> bool:
    """Whether the stop phrase ``found[i:i+k]`` stops something else, in a
    message that says yes: "yes, make *them* stop", "yes, stop *the bill*".
    A word naming our texts keeps the stop ("stop the texts"). (The caller
    tests the yes first: it is the cheaper test.)"""
    n = len(found)
    after = i + k
    if i > 0 and tight[i] and found[i - 1] in index._tp_subjects:
        about = after >= n or not tight[after] or found[after] not in index._tp_ours
    else:
        about = (
            after + 1 < n
            and tight[after]
            and tight[after + 1]
            and found[after] in index._tp_determiners
            and found[after + 1] not in index._tp_things
        )
    return about and not index._tp_yes.isdisjoint(found)


# -- reactions ----------------------------------------------------------------


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


def _reaction(
    index: KeywordIndex, text: str, s: str, *, quoted: bool
) -> tuple[str, tuple[str, ...]] | None:
    """The lead of a phone reaction ("Liked “…”", "👍 to “…”") and the packs
    that list it, or ``None``. ``text`` is the reply as read (padding
    collapsed when it is long), ``s`` its normalised head."""
    m = None
    if quoted:
        if index._reaction_re is not None:
            m = index._reaction_re.match(s)
        if m is None and index._reaction_emoji_re is not None:
            m = index._reaction_emoji_re.match(s)
            if m is not None and not _emoji_start(text):
                m = None
    if m is None:
        media = index._reaction_media_re
        if media is not None and len(text) <= HEAD_CHARS:
            m = media.fullmatch(s)
        if m is None or m.lastgroup is None:
            return None
        return index._reaction_leads[m.lastgroup]
    if m.lastgroup is None:
        return None
    lead, locales = index._reaction_leads[m.lastgroup]
    tail = text[-TAIL_CHARS:].rstrip()
    if tail.endswith(_ELLIPSES):
        # The phone cut a long quote short and left it open.
        return lead, locales
    if len(text) <= HEAD_CHARS:
        needed = 2 + lead.count("'")
        if sum(text.count(q) for q in QUOTES) < needed:
            return None
    last = max(tail.rfind(q) for q in QUOTES)
    if last < 0:
        return None
    rest = normalize(tail[last + 1 :])
    if rest and rest not in index._reaction_tails:
        return None
    return lead, locales


def _reaction_lead(
    index: KeywordIndex, piece: str, text: str
) -> tuple[str, tuple[str, ...]] | None:
    """The reaction lead that the normalised ``piece`` is, whole: what comes
    before a quote of our words in ``text``."""
    m = None
    if index._reaction_lead_re is not None:
        m = index._reaction_lead_re.fullmatch(piece)
    if m is None and index._reaction_emoji_lead_re is not None:
        m = index._reaction_emoji_lead_re.fullmatch(piece)
        if m is not None and not _emoji_start(text):
            m = None
    if m is None or m.lastgroup is None:
        return None
    return index._reaction_leads[m.lastgroup]
