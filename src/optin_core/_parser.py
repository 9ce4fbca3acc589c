"""The reply parser: a contact's text in, an intent and its evidence out.

Consent is strict and stop is generous, because the two errors do not cost
the same: reading "Yes please" as a reminder case costs one more message, while
missing "please stop" means texting someone who revoked consent. The rules are
written down in ``docs/parsing.md``; the words live in the keyword packs.

Everything here is pure: no I/O, no clock, no state that changes after import
(the default keyword index is built once, lazily).
"""

from __future__ import annotations

import hashlib
import re
import unicodedata
from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, TypeVar

import attrs

from optin_core import _keywords
from optin_core._enums import Intent, MatchRule, MessageKind
from optin_core._errors import RecordError, show

_E = TypeVar("_E", Intent, MatchRule, MessageKind)

if TYPE_CHECKING:
    from optin_core._keywords import KeywordIndex

__all__ = ["OwnWords", "ParsedReply", "normalize", "own_words", "parse_reply"]

#: Only this many leading characters are read. Consent must be the whole
#: message and stop the first word or a short message, so nothing further in
#: can change the answer, except a closing sentence, read from the tail.
HEAD_CHARS = 512
#: The tail read on longer texts, for a final "... STOP".
TAIL_CHARS = 160
#: A message of at most this many words is "short": a stop word anywhere in
#: it counts ("please stop", "pls unsubscribe me").
SHORT_MESSAGE_WORDS = 6
#: A quote of our own words is at least this many consecutive words of one
#: message we send, verbatim after normalisation...
MIN_QUOTE_WORDS = 6
#: ... and at least this many characters: "will receive no more messages"
#: typed by a contact is theirs, not a quote.
MIN_QUOTE_CHARS = 30


@attrs.frozen(kw_only=True, slots=True)
class ParsedReply:
    """What a reply means, with the evidence a compliance officer needs.

    ``keyword`` is the canonical (normalised) keyword that matched, ``rule``
    why it matched, ``locale`` the pack it came from (``None`` when nothing
    matched) and ``text`` the original text, untouched.

    In a consent log a reply longer than
    :data:`~optin_core.MAX_REPLY_CHARS` is kept as its first characters:
    ``full_length`` then holds the length of the whole reply and
    ``full_sha256`` the SHA-256 of its UTF-8 bytes (lone surrogates encoded as
    such), so the evidence stays bounded and still identifies the text. Both
    are ``None`` when ``text`` is complete.

    ``quoted`` is the kind of our own message the reply quoted at length
    (a reaction to the opt-in request, a pasted reminder), when the parser
    was given our texts (``parse_reply(..., ours=...)``): the reply was then
    classified on what remains once the quote is removed. ``None`` when no
    quote was found (or looked for).

    .. versionadded:: 0.1.0
    .. versionchanged:: 0.2.0 ``full_length`` and ``full_sha256``.
    .. versionchanged:: 0.3.0 ``quoted``.
    """

    intent: Intent
    keyword: str | None
    rule: MatchRule
    locale: str | None
    text: str
    full_length: int | None = None
    full_sha256: str | None = None
    quoted: MessageKind | None = None

    def to_dict(self) -> dict[str, object]:
        """A JSON-safe dict; :meth:`from_dict` reads it back.

        .. versionadded:: 0.1.0
        """
        d: dict[str, object] = {
            "intent": self.intent.value,
            "keyword": self.keyword,
            "rule": self.rule.value,
            "locale": self.locale,
            "text": self.text,
        }
        if self.full_length is not None:
            d["full_length"] = self.full_length
            d["full_sha256"] = self.full_sha256
        if self.quoted is not None:
            # Written only when set: replies without a quote keep the
            # encoding (and the log digests) they always had.
            d["quoted"] = self.quoted.value
        return d

    @classmethod
    def from_dict(cls, d: Mapping[str, object]) -> ParsedReply:
        """Read a dict written by :meth:`to_dict`.

        Raises :class:`~optin_core.RecordError` naming the field when the data
        is malformed.

        .. versionadded:: 0.1.0
        """
        if not isinstance(d, Mapping):
            raise RecordError("reply", f"expected a mapping, got {type(d).__name__}")
        unknown = sorted(str(k) for k in d if k not in _FIELDS)
        if unknown:
            raise RecordError(unknown[0], "unknown field")
        for name in _FIELDS[:5]:
            if name not in d:
                raise RecordError(name, "missing")
        intent = _member(Intent, d["intent"], "intent")
        rule = _member(MatchRule, d["rule"], "rule")
        keyword, locale, text = d["keyword"], d["locale"], d["text"]
        if keyword is not None and not isinstance(keyword, str):
            raise RecordError("keyword", "expected a str or null")
        if locale is not None and not isinstance(locale, str):
            raise RecordError("locale", "expected a str or null")
        if not isinstance(text, str):
            raise RecordError("text", "expected a str")
        full_length, full_sha256 = d.get("full_length"), d.get("full_sha256")
        if (full_length is None) != (full_sha256 is None):
            raise RecordError("full_length", "full_length and full_sha256 go together")
        if full_length is not None and (
            not isinstance(full_length, int)
            or isinstance(full_length, bool)
            or full_length <= len(text)
        ):
            raise RecordError(
                "full_length", "expected an int longer than the text kept"
            )
        if full_sha256 is not None and not _is_hex64(full_sha256):
            raise RecordError("full_sha256", "expected 64 lowercase hex digits")
        assert full_sha256 is None or isinstance(full_sha256, str)
        quoted = d.get("quoted")
        if quoted is not None:
            quoted = _member(MessageKind, quoted, "quoted")
        return cls(
            intent=intent,
            keyword=keyword,
            rule=rule,
            locale=locale,
            text=text,
            full_length=full_length,
            full_sha256=full_sha256,
            quoted=quoted,
        )

    def bounded(self, limit: int) -> ParsedReply:
        """This reply as a log keeps it: ``text`` cut to ``limit`` characters,
        with the whole text's length and SHA-256 (itself when short enough).

        .. versionadded:: 0.2.0
        """
        text = self.text
        if len(text) <= limit or self.full_length is not None:
            return self
        digest = hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()
        return ParsedReply(
            intent=self.intent,
            keyword=self.keyword,
            rule=self.rule,
            locale=self.locale,
            text=text[:limit],
            full_length=len(text),
            full_sha256=digest,
            quoted=self.quoted,
        )


_FIELDS = (
    "intent",
    "keyword",
    "rule",
    "locale",
    "text",
    "full_length",
    "full_sha256",
    "quoted",
)


def _member(enum_type: type[_E], value: object, name: str) -> _E:
    if isinstance(value, str):
        try:
            return enum_type(value)
        except ValueError:
            pass
    raise RecordError(name, f"unknown {name} {show(value)}")


def _is_hex64(value: object) -> bool:
    return (
        isinstance(value, str)
        and len(value) == 64
        and all(c in "0123456789abcdef" for c in value)
    )


# -- normalisation ----------------------------------------------------------

# Phones and keyboards send several apostrophes; NFKC keeps them apart, and
# U+00B4 would even become a space and a combining accent.
_APOSTROPHES = ("\u2019", "\u2018", "\u02bc", "\u00b4", "`", "\u2032", "\uff07")


def _apostrophes(s: str) -> str:
    # str.replace per character: str.translate with a dict is several times
    # slower on non-ASCII text.
    for ch in _APOSTROPHES:
        if ch in s:
            s = s.replace(ch, "'")
    return s


_ASCII_CONTROLS = str.maketrans(dict.fromkeys((*range(32), 127), " "))
_ASCII_NOT_ALNUM = "".join(
    chr(i) for i in range(128) if not chr(i).isalnum()
)  # str.strip() argument: every ASCII punctuation, symbol, space, control
# After NFKD, combining marks are dropped (accent folding: the Latin, Greek
# and Cyrillic diacritics, variation selectors, keycap and enclosing marks),
# and so are format characters (zero-width spaces and joiners, bidi controls,
# soft hyphen, BOM, emoji tags). Ranges rather than a per-character category
# test: a regex runs at C speed, and keywords only need these scripts folded.
_DROP_RE = re.compile(
    "[\u0300-\u036f\u0483-\u0489\u1ab0-\u1aff\u1dc0-\u1dff\u20d0-\u20ff"
    "\ufe00-\ufe0f\ufe20-\ufe2f\U000e0100-\U000e01ef"
    "\u00ad\u061c\u180e\u200b-\u200f\u202a-\u202e\u2060-\u2064"
    "\u2066-\u206f\ufeff\ufff9-\ufffb\U000e0001\U000e0020-\U000e007f]+"
)
# Controls and lone surrogates become spaces, so that words stay apart.
_SPACE_RE = re.compile("[\x00-\x1f\x7f-\x9f\ud800-\udfff]+")
_FRENCH_SPACING_RE = re.compile(r" (?=[!?:;»›])|(?<=[«‹]) ")
_FRENCH_MARKS = frozenset("!?:;»›«‹")
# Letters and digits on either side make another word ("adopt", "optional");
# "_" does not ("optout_" is "opt out").
_OPT_RE = re.compile(r"(?<![^\W_])opt[ _-]?(out|in)(?![^\W_])")
_WORD_RE = re.compile(r"[^\W_]+(?:['-][^\W_]+)*")
#: Runs of letters and digits: a word's parts, split at apostrophes and hyphens.
ALNUM_RUN_RE = re.compile(r"[^\W_]+")
_SENTENCE_END = frozenset(".!?;…¿¡")
_ELISION_RE = re.compile(r"([cdjlmnst]|qu|un|dell|all|nell|sull)'(.+)")


def _trim(s: str) -> str:
    if s.isascii():
        return s.strip(_ASCII_NOT_ALNUM)
    start, end = 0, len(s)
    while start < end and not s[start].isalnum():
        start += 1
    while end > start and not s[end - 1].isalnum():
        end -= 1
    return s[start:end]


def _fold(text: str) -> str:
    if text.isascii():
        # NFKC and accent folding are identities on ASCII; casefold is lower.
        s = text.lower()
        if "`" in s:
            s = s.replace("`", "'")
        if not s.isprintable():
            s = s.translate(_ASCII_CONTROLS)
    else:
        s = unicodedata.normalize("NFKC", _apostrophes(text)).casefold()
        s = _DROP_RE.sub("", unicodedata.normalize("NFKD", s))
        s = _SPACE_RE.sub(" ", s)
        s = _apostrophes(unicodedata.normalize("NFKC", s))
    s = " ".join(s.split())
    if not _FRENCH_MARKS.isdisjoint(s):
        s = _FRENCH_SPACING_RE.sub("", s)
    s = _trim(s)
    if "opt" in s:
        s = _OPT_RE.sub(r"opt \1", s)
    return s


def normalize(text: str) -> str:
    """The form replies are matched in; idempotent.

    NFKC, casefold, accents folded (``Arrêt`` -> ``arret``, ``Sí`` -> ``si``),
    format characters (zero-width spaces, joiners) dropped, whitespace
    collapsed, French spacing before ``! ? : ;`` and inside guillemets
    removed, ``opt-out`` / ``optout`` / ``opt out`` made ``opt out``, and
    punctuation, symbols and emoji trimmed at both ends.

    .. versionadded:: 0.1.0
    """
    if not isinstance(text, str):
        raise TypeError(f"text must be a str, not {type(text).__name__}")
    s = _fold(text)
    # A second pass is a no-op on every input we know of; it stays as a
    # guarantee, bounded, because idempotence is the promise.
    for _ in range(3):
        again = _fold(s)
        if again == s:
            break
        s = again
    return s


def _fold_chars(chars: str) -> str:
    """What each of ``chars`` becomes inside a normalised text (not at its ends)."""
    folded = {
        _apostrophes(unicodedata.normalize("NFKC", ch).casefold()) for ch in chars
    }
    return "".join(sorted(folded))


def _words(s: str) -> tuple[list[str], list[bool], list[bool]]:
    """Words of a normalised text, with two flags per word.

    ``tight[i]``: word ``i`` follows word ``i-1`` after a single space (no
    punctuation between), so neighbour exceptions such as "stop by" apply.
    ``starts[i]``: word ``i`` begins a sentence.
    """
    words: list[str] = _WORD_RE.findall(s)
    n = len(words)
    if not n:
        return words, [], []
    if "'" in s:
        return _split_elisions(words, s)
    if " ".join(words) == s:
        # No punctuation anywhere: one clause, one sentence.
        return words, [False] + [True] * (n - 1), [True] + [False] * (n - 1)
    # The text between words: gaps[i] comes before words[i].
    gaps = _WORD_RE.split(s)[:-1]
    tight = [False, *(gap == " " for gap in gaps[1:])]
    starts = [True, *(not _SENTENCE_END.isdisjoint(gap) for gap in gaps[1:])]
    return words, tight, starts


def _split_elisions(
    words: list[str], s: str
) -> tuple[list[str], list[bool], list[bool]]:
    """Words, with French and Italian elisions split off: "d'arrêter" -> d, arreter.

    Only here the apostrophe separates: "l'arrêt de bus" must read as the noun
    after "l", and "merci d'arrêter" as the verb, while "don't" stays whole.
    """
    joined, tight, starts = _words(s.replace("'", " "))  # positions, flags
    del joined
    out: list[str] = []
    out_tight: list[bool] = []
    out_starts: list[bool] = []
    k = 0
    for word in words:
        m = _ELISION_RE.match(word)
        parts = [m.group(1), m.group(2)] if m else [word]
        for j, part in enumerate(parts):
            out.append(part)
            out_tight.append(tight[k] if j == 0 and k < len(tight) else True)
            out_starts.append(starts[k] if j == 0 and k < len(starts) else False)
        k += word.count("'") + 1
    return out, out_tight, out_starts


# -- parsing ----------------------------------------------------------------


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

    .. versionadded:: 0.3.0
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
            words = tuple(_WORD_RE.findall(_fold(text)))
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
        matches = list(_WORD_RE.finditer(s))
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

    .. versionadded:: 0.3.0
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
    to ``default_locale``, then English). It decides which consent and
    re-subscribe words count; stop, help and decline words of every pack
    apply to everyone. ``keywords`` is the index to use (a policy's, with its
    extra words); ``None`` is the built-in one. With ``lenient_consent``, a
    consent word surrounded only by polite or affirmative words ("Yes
    please", "Oui merci") is consent too, under :attr:`MatchRule.LENIENT`.

    ``ours`` are the texts we send (an :class:`OwnWords`, such as
    ``policy.own_words``, or anything :func:`own_words` accepts): a reply
    quoting one of them at length is classified on what remains once the
    quote is removed, and ``quoted`` records the kind quoted. Our wording is
    never the contact's YES or STOP.

    Never raises for a ``str``; a non-``str`` text or locale is a
    :class:`TypeError`. Only the first 512 and last 160 characters are read.

    .. versionadded:: 0.1.0
    .. versionchanged:: 0.3.0 ``ours``.
    """
    if not isinstance(text, str):
        raise TypeError(f"text must be a str, not {type(text).__name__}")
    if ours is not None and ours.__class__ is not OwnWords:
        ours = own_words(ours)
    index = _keywords.default_keyword_index() if keywords is None else keywords
    chain = index._chain(locale, default_locale)
    table = index._prebuilt.get(chain)
    if table is not None and len(text) <= index._prebuilt_max:
        found = table.get(text)
        if found is not None:
            # A keyword is too short to hold a quote of ours.
            return found
    return _parse(text, chain, index, lenient_consent, ours)


def _parse(
    text: str,
    chain: tuple[str, ...],
    index: KeywordIndex,
    lenient: bool,
    ours: OwnWords | None = None,
) -> ParsedReply:
    long = len(text) > HEAD_CHARS
    head = text[:HEAD_CHARS] if long else text
    s = _fold(head)
    if not s:
        if long:
            return _tail_stop(text, index, chain, ours, None)
        return _reply(Intent.UNRECOGNIZED, None, MatchRule.NONE, None, text)
    if not long:
        # A keyword never contains a quote, so no reaction can be exact.
        exact = index._exact[chain].get(s)
        if exact is not None:
            intent, keyword, loc = exact
            return _reply(intent, keyword, MatchRule.EXACT, loc, text)
    first = s.partition(" ")[0]
    quote_re = index._reaction_first.get(first)
    if quote_re is None and not first.isalnum():
        # "elimino!! de": an emoji folded to punctuation, glued to the word.
        first = first.rstrip(_ASCII_NOT_ALNUM)
        quote_re = index._reaction_first.get(first)
    if quote_re is not None:
        quoted = quote_re.search(s) is not None
        # Without a quote, only "Loved an image" can be a reaction.
        if quoted or first in index._reaction_media_first:
            reaction = index._reaction(text, s, quoted=quoted)
            if reaction is not None:
                keyword, locs = reaction
                found = None if ours is None else ours._find(s)
                return _reply(
                    Intent.REACTION,
                    keyword,
                    MatchRule.REACTION,
                    index._pack_of(locs, chain),
                    text,
                    None if found is None else found[1],
                )
    kind = None
    if ours is not None:
        found = ours._find(s)
        if found is not None:
            unquoted = _unquoted(text, s, found, chain, index, long, ours)
            if isinstance(unquoted, ParsedReply):
                return unquoted
            s, kind = unquoted
    # The word rules: stop, then help and decline, then lenient consent.
    if index._screen.isdisjoint(ALNUM_RUN_RE.findall(s)):
        # No keyword's first word anywhere in the head.
        if long:
            return _tail_stop(text, index, chain, ours, kind)
        return _reply(Intent.UNRECOGNIZED, None, MatchRule.NONE, None, text, kind)
    words, tight, starts = _words(s)
    if not words:
        return _reply(Intent.UNRECOGNIZED, None, MatchRule.NONE, None, text, kind)
    stop = index._find_stop(words, tight, starts, chain, short=not long, ends=not long)
    if stop is not None:
        keyword, rule, loc = stop
        return _reply(Intent.STOP, keyword, rule, loc, text, kind)
    if long:
        return _tail_stop(text, index, chain, ours, kind)
    polite = index._find_polite(words, chain)
    if polite is not None:
        intent, keyword, rule, loc = polite
        return _reply(intent, keyword, rule, loc, text, kind)
    if lenient:
        consent = index._find_lenient(words, s, chain)
        if consent is not None:
            keyword, loc = consent
            return _reply(Intent.CONSENT, keyword, MatchRule.LENIENT, loc, text, kind)
    return _reply(Intent.UNRECOGNIZED, None, MatchRule.NONE, None, text, kind)


def _unquoted(  # noqa: PLR0917 (the parse state, passed along)
    text: str,
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
    pieces = [_fold(piece) for piece in raw]
    # Inner punctuation stays ("yes please?" is not lenient consent).
    rest = [piece for piece, folded in zip(raw, pieces, strict=True) if folded]
    if not rest:
        # Only our words (and emoji, punctuation): nothing of the contact's.
        if long:
            return _tail_stop(text, index, chain, ours, kind)
        return _reply(Intent.UNRECOGNIZED, None, MatchRule.NONE, None, text, kind)
    # A reaction whose quote is ours, whatever its closing marks: a lead
    # before the quote, at most a listed tail word after it.
    lead = index._reaction_lead(pieces[0], text)
    if (
        lead is not None
        and not any(pieces[1:-1])
        and (not pieces[-1] or pieces[-1] in index._reaction_tails)
    ):
        if long:
            # A closing "... STOP" after a megabyte still counts.
            tail = _tail_stop(text, index, chain, ours, kind)
            if tail.intent is Intent.STOP:
                return tail
        keyword, locs = lead
        loc = index._pack_of(locs, chain)
        return _reply(Intent.REACTION, keyword, MatchRule.REACTION, loc, text, kind)
    # A quote is a sentence of its own: what follows it starts a sentence.
    r = _fold(". ".join(rest))
    if not long:
        exact = index._exact[chain].get(r)
        if exact is not None:
            intent, keyword, loc = exact
            return _reply(intent, keyword, MatchRule.EXACT, loc, text, kind)
    return r, kind


def _tail_stop(
    text: str,
    index: KeywordIndex,
    chain: tuple[str, ...],
    ours: OwnWords | None,
    quoted: MessageKind | None,
) -> ParsedReply:
    """A long text may end with a stop: "... Stop texting me." or "..., stop"."""
    s = _fold(text[-TAIL_CHARS:])
    cut = True
    if ours is not None:
        found = ours._find(s)
        if found is not None:
            spans, kind = found
            if quoted is None:
                quoted = kind
            # After a quote that opens the tail, a sentence starts.
            cut = bool(_fold(s[: spans[0][0]]))
            pieces = []
            prev = 0
            for start, end in spans:
                pieces.append(s[prev:start])
                prev = end
            pieces.append(s[prev:])
            s = _fold(". ".join(pieces))
    words, tight, starts = _words(s)
    if words:
        # The first word of the tail may be cut in half: never a sentence start.
        starts[0] = not cut
        stop = index._find_stop(words, tight, starts, chain, short=False, first=False)
        if stop is not None:
            keyword, rule, loc = stop
            return _reply(Intent.STOP, keyword, rule, loc, text, quoted)
    return _reply(Intent.UNRECOGNIZED, None, MatchRule.NONE, None, text, quoted)
