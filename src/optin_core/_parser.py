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
from collections.abc import Mapping
from typing import TYPE_CHECKING, TypeVar

import attrs

from optin_core import _keywords
from optin_core._enums import Intent, MatchRule
from optin_core._errors import RecordError, show

_E = TypeVar("_E", Intent, MatchRule)

if TYPE_CHECKING:
    from optin_core._keywords import KeywordIndex

__all__ = ["ParsedReply", "normalize", "parse_reply"]

#: Only this many leading characters are read. Consent must be the whole
#: message and stop the first word or a short message, so nothing further in
#: can change the answer, except a closing sentence, read from the tail.
HEAD_CHARS = 512
#: The tail read on longer texts, for a final "... STOP".
TAIL_CHARS = 160
#: A message of at most this many words is "short": a stop word anywhere in
#: it counts ("please stop", "pls unsubscribe me").
SHORT_MESSAGE_WORDS = 6


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

    .. versionadded:: 0.1.0
    .. versionchanged:: 0.2.0 ``full_length`` and ``full_sha256``.
    """

    intent: Intent
    keyword: str | None
    rule: MatchRule
    locale: str | None
    text: str
    full_length: int | None = None
    full_sha256: str | None = None

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
        return cls(
            intent=intent,
            keyword=keyword,
            rule=rule,
            locale=locale,
            text=text,
            full_length=full_length,
            full_sha256=full_sha256,
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
        )


_FIELDS = ("intent", "keyword", "rule", "locale", "text", "full_length", "full_sha256")


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


def _reply(
    intent: Intent, keyword: str | None, rule: MatchRule, locale: str | None, text: str
) -> ParsedReply:
    reply: ParsedReply = _new(ParsedReply)
    _set_intent(reply, intent)
    _set_keyword(reply, keyword)
    _set_rule(reply, rule)
    _set_locale(reply, locale)
    _set_text(reply, text)
    _set_full_length(reply, None)
    _set_full_sha256(reply, None)
    return reply


def parse_reply(
    text: str,
    locale: str | None = None,
    *,
    default_locale: str = "en",
    keywords: KeywordIndex | None = None,
    lenient_consent: bool = False,
) -> ParsedReply:
    """Classify a contact's reply.

    ``locale`` is the contact's locale (any spelling; unknown ones fall back
    to ``default_locale``, then English). It decides which consent and
    re-subscribe words count; stop, help and decline words of every pack
    apply to everyone. ``keywords`` is the index to use (a policy's, with its
    extra words); ``None`` is the built-in one. With ``lenient_consent``, a
    consent word surrounded only by polite or affirmative words ("Yes
    please", "Oui merci") is consent too, under :attr:`MatchRule.LENIENT`.

    Never raises for a ``str``; a non-``str`` text or locale is a
    :class:`TypeError`. Only the first 512 and last 160 characters are read.

    .. versionadded:: 0.1.0
    """
    if not isinstance(text, str):
        raise TypeError(f"text must be a str, not {type(text).__name__}")
    index = _keywords.default_keyword_index() if keywords is None else keywords
    chain = index._chain(locale, default_locale)
    table = index._prebuilt.get(chain)
    if table is not None and len(text) <= index._prebuilt_max:
        found = table.get(text)
        if found is not None:
            return found
    return _parse(text, chain, index, lenient_consent)


def _parse(
    text: str, chain: tuple[str, ...], index: KeywordIndex, lenient: bool
) -> ParsedReply:
    long = len(text) > HEAD_CHARS
    head = text[:HEAD_CHARS] if long else text
    s = _fold(head)
    if not s:
        if long:
            return _tail_stop(text, index, chain)
        return _reply(Intent.UNRECOGNIZED, None, MatchRule.NONE, None, text)
    if not long:
        # A keyword never contains a quote, so no reaction can be exact.
        exact = index._exact[chain].get(s)
        if exact is not None:
            intent, keyword, loc = exact
            return _reply(intent, keyword, MatchRule.EXACT, loc, text)
    quote_re = index._reaction_first.get(s.partition(" ")[0])
    if quote_re is not None:
        reaction = index._reaction(text, s, quoted=quote_re.search(s) is not None)
        if reaction is not None:
            keyword, loc = reaction
            return _reply(Intent.REACTION, keyword, MatchRule.REACTION, loc, text)
    if index._screen.isdisjoint(ALNUM_RUN_RE.findall(s)):
        # No keyword's first word anywhere in the head.
        if long:
            return _tail_stop(text, index, chain)
        return _reply(Intent.UNRECOGNIZED, None, MatchRule.NONE, None, text)
    words, tight, starts = _words(s)
    if not words:
        return _reply(Intent.UNRECOGNIZED, None, MatchRule.NONE, None, text)
    stop = index._find_stop(words, tight, starts, chain, short=not long, ends=not long)
    if stop is not None:
        keyword, rule, loc = stop
        return _reply(Intent.STOP, keyword, rule, loc, text)
    if long:
        return _tail_stop(text, index, chain)
    polite = index._find_polite(words, chain)
    if polite is not None:
        intent, keyword, rule, loc = polite
        return _reply(intent, keyword, rule, loc, text)
    if lenient:
        consent = index._find_lenient(words, s, chain)
        if consent is not None:
            keyword, loc = consent
            return _reply(Intent.CONSENT, keyword, MatchRule.LENIENT, loc, text)
    return _reply(Intent.UNRECOGNIZED, None, MatchRule.NONE, None, text)


def _tail_stop(text: str, index: KeywordIndex, chain: tuple[str, ...]) -> ParsedReply:
    """A long text may end with a stop: "... Stop texting me." or "..., stop"."""
    s = _fold(text[-TAIL_CHARS:])
    words, tight, starts = _words(s)
    if words:
        # The first word of the tail may be cut in half: never a sentence start.
        starts[0] = False
        stop = index._find_stop(words, tight, starts, chain, short=False)
        if stop is not None:
            keyword, rule, loc = stop
            return _reply(Intent.STOP, keyword, rule, loc, text)
    return _reply(Intent.UNRECOGNIZED, None, MatchRule.NONE, None, text)
