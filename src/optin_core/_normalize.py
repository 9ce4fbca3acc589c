"""The normal form replies are matched in, their words, and the read windows.

A leaf module: it imports nothing from the package, so the keyword index
(which normalises the words of the packs) and the parser (which normalises
replies) both build on it, and imports run one way:
``_normalize`` <- ``_keywords`` <- ``_parser``.
"""

from __future__ import annotations

import re
import unicodedata

__all__ = [
    "ALNUM_RUN_RE",
    "HEAD_CHARS",
    "TAIL_CHARS",
    "WORD_RE",
    "accent_form",
    "canonical",
    "fold",
    "fold_chars",
    "normalize",
    "trim",
    "window",
    "words",
]

#: Only this many leading characters are read, counted once whitespace and
#: invisible characters are collapsed. Consent must be the whole message and
#: stop the first word or a short message, so nothing further in can change
#: the answer, except a closing sentence, read from the tail.
HEAD_CHARS = 512
#: The tail read on longer texts, for a final "... STOP" (counted the same way).
TAIL_CHARS = 160

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
#: str.strip() argument: every ASCII punctuation, symbol, space, control.
ASCII_NOT_ALNUM = "".join(chr(i) for i in range(128) if not chr(i).isalnum())
# After NFKD, combining marks are dropped (accent folding: the Latin, Greek
# and Cyrillic diacritics, variation selectors, keycap and enclosing marks),
# and so are format characters (zero-width spaces and joiners, bidi controls,
# soft hyphen, BOM, emoji tags). Ranges rather than a per-character category
# test: a regex runs at C speed, and keywords only need these scripts folded.
_MARKS = (
    "\u0300-\u036f\u0483-\u0489\u1ab0-\u1aff\u1dc0-\u1dff\u20d0-\u20ff\ufe20-\ufe2f"
)
# Format characters and variation selectors: dropped even where accents are
# kept (see accent_form).
_FORMAT = (
    "\ufe00-\ufe0f\U000e0100-\U000e01ef"
    "\u00ad\u061c\u180e\u200b-\u200f\u202a-\u202e\u2060-\u2064"
    "\u2066-\u206f\ufeff\ufff9-\ufffb\U000e0001\U000e0020-\U000e007f"
)
_INVISIBLE = _MARKS + _FORMAT
_DROP_RE = re.compile(f"[{_INVISIBLE}]+")
_FORMAT_RE = re.compile(f"[{_FORMAT}]+")
# Controls and lone surrogates become spaces, so that words stay apart.
_CONTROLS = "\x00-\x1f\x7f-\x9f\ud800-\udfff"
_SPACE_RE = re.compile(f"[{_CONTROLS}]+")
_FRENCH_SPACING_RE = re.compile(r" (?=[!?:;»›])|(?<=[«‹]) ")
_FRENCH_MARKS = frozenset("!?:;»›«‹")
# Letters and digits on either side make another word ("adopt", "optional");
# "_" does not ("optout_" is "opt out").
_OPT_RE = re.compile(r"(?<![^\W_])opt[ _-]?(out|in)(?![^\W_])")
#: A word: letters and digits, joined by inner apostrophes or hyphens.
WORD_RE = re.compile(r"[^\W_]+(?:['-][^\W_]+)*")
#: Runs of letters and digits: a word's parts, split at apostrophes and hyphens.
ALNUM_RUN_RE = re.compile(r"[^\W_]+")
_SENTENCE_END = frozenset(".!?;…¿¡")
_ELISION_RE = re.compile(r"([cdjlmnst]|qu|un|dell|all|nell|sull)'(.+)")


def trim(s: str) -> str:
    """``s`` without what is not a letter or digit at either end."""
    if s.isascii():
        return s.strip(ASCII_NOT_ALNUM)
    start, end = 0, len(s)
    while start < end and not s[start].isalnum():
        start += 1
    while end > start and not s[end - 1].isalnum():
        end -= 1
    return s[start:end]


def fold(text: str) -> str:
    """One pass of :func:`normalize` (already its fixed point on every input
    we know of); the parser's hot path calls this directly."""
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
    s = trim(s)
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
    s = fold(text)
    # A second pass is a no-op on every input we know of; it stays as a
    # guarantee, bounded, because idempotence is the promise.
    for _ in range(3):
        again = fold(s)
        if again == s:
            break
        s = again
    return s


def accent_form(text: str) -> str:
    """``text`` as typed, accents kept: NFKC, casefold, apostrophes unified,
    invisible characters dropped, spaces collapsed, trimmed. "Sì" and "Sí"
    differ here; both are ``si`` in the normal form."""
    s = _apostrophes(unicodedata.normalize("NFKC", text)).casefold()
    if not s.isascii():
        s = _FORMAT_RE.sub("", s)
    return trim(" ".join(s.split()))


def fold_chars(chars: str) -> str:
    """What each of ``chars`` becomes inside a normalised text (not at its ends)."""
    folded = {
        _apostrophes(unicodedata.normalize("NFKC", ch).casefold()) for ch in chars
    }
    return "".join(sorted(folded))


def canonical(word: str) -> str:
    """A keyword's normal form, as the index stores it: its words, elisions
    split, joined by single spaces (``"d'arrêter"`` -> ``"d arreter"``)."""
    return " ".join(words(normalize(word))[0])


def words(s: str) -> tuple[list[str], list[bool], list[bool]]:
    """Words of a normalised text, with two flags per word.

    ``tight[i]``: word ``i`` follows word ``i-1`` after a single space (no
    punctuation between), so neighbour exceptions such as "stop by" apply.
    ``starts[i]``: word ``i`` begins a sentence.
    """
    found: list[str] = WORD_RE.findall(s)
    n = len(found)
    if not n:
        return found, [], []
    if "'" in s:
        return _split_elisions(found, s)
    if " ".join(found) == s:
        # No punctuation anywhere: one clause, one sentence.
        return found, [False] + [True] * (n - 1), [True] + [False] * (n - 1)
    # The text between words: gaps[i] comes before found[i].
    gaps = WORD_RE.split(s)[:-1]
    tight = [False, *(gap == " " for gap in gaps[1:])]
    starts = [True, *(not _SENTENCE_END.isdisjoint(gap) for gap in gaps[1:])]
    return found, tight, starts


def _split_elisions(
    found: list[str], s: str
) -> tuple[list[str], list[bool], list[bool]]:
    """Words, with French and Italian elisions split off: "d'arrêter" -> d, arreter.

    Only here the apostrophe separates: "l'arrêt de bus" must read as the noun
    after "l", and "merci d'arrêter" as the verb, while "don't" stays whole.
    """
    joined, tight, starts = words(s.replace("'", " "))  # positions, flags
    del joined
    out: list[str] = []
    out_tight: list[bool] = []
    out_starts: list[bool] = []
    k = 0
    for word in found:
        m = _ELISION_RE.match(word)
        parts = [m.group(1), m.group(2)] if m else [word]
        for j, part in enumerate(parts):
            out.append(part)
            out_tight.append(tight[k] if j == 0 and k < len(tight) else True)
            out_starts.append(starts[k] if j == 0 and k < len(starts) else False)
        k += word.count("'") + 1
    return out, out_tight, out_starts


# -- the read windows ---------------------------------------------------------

# Padding: what the normal form turns into one space (whitespace, controls,
# lone surrogates) or drops (invisible characters). A run of padding
# collapses to one space when it holds a space-like character, to nothing
# otherwise; collapsing changes the text's length when the run holds two
# space-like characters in a row or any invisible character ("excess").
_SPACE_LIKE = f"\\s{_CONTROLS}"
_PAD = f"{_SPACE_LIKE}{_INVISIBLE}"
_EXCESS_RE = re.compile(f"[{_INVISIBLE}]|[{_SPACE_LIKE}]{{2}}")
_SPACES_RE = re.compile(f"[{_SPACE_LIKE}]+")
_SPACE_LIKE_RE = re.compile(f"[{_SPACE_LIKE}]")
_IS_PAD_RE = re.compile(f"[{_PAD}]")
_PAD_RUN_RE = re.compile(f"[{_PAD}]+")
# What str.split() does not take for whitespace among the space-like
# characters: most controls, and lone surrogates.
_ODD_SPACE_RE = re.compile("[\x00-\x08\x0e-\x1b\x7f-\x84\x86-\x9f\ud800-\udfff]")
# The invisible characters phones and clients send most, removed with
# str.replace (at memchr speed) before a regex looks for the others.
_COMMON_INVISIBLE = ("\u200b", "\u200c", "\u200d", "\u2060", "\ufeff", "\ufe0f")
#: Raw characters read past what a window still needs, per chunk.
_SLACK = 64
# A padding run longer than this is strided over: doubling blocks of its
# first _UNIT characters are compared at memcmp speed (one character
# repeated, or a repeating pattern); the rest, if it does not repeat, is
# matched by the regex.
_UNIT = 256
_MAX_STRIDE = 1 << 16


def window(text: str) -> tuple[str, bool]:
    """``(view, long)``: ``text`` as the parser reads it.

    ``long`` says whether ``text`` has more than :data:`HEAD_CHARS`
    characters once its padding is collapsed (each run of whitespace,
    controls and invisible characters made one space, or nothing when it
    holds only invisible ones). When it has not, ``view`` is the whole text
    collapsed (``normalize(view) == normalize(text)``). When it has,
    ``view[:HEAD_CHARS]`` is the collapsed text's head and
    ``view[-TAIL_CHARS:]`` its tail: no amount of padding pushes a word out
    of them. A long text without excess padding in its windows is returned
    as it is, after two regex scans of the windows; otherwise only the
    windows are built, and long runs of padding are strided over.
    """
    n = len(text)
    if n <= HEAD_CHARS:
        return text, False
    if not _excess(text[: HEAD_CHARS + 1]) and not _excess(text[-TAIL_CHARS - 1 :]):
        return text, True
    head, end = _compact_head(text, HEAD_CHARS + 1)
    if end >= n:
        return head, len(head) > HEAD_CHARS
    return head + _compact_tail(text, TAIL_CHARS + 1, end), True


def _excess(piece: str) -> bool:
    """Whether collapsing ``piece``'s padding would change its length."""
    # Printable text holds no control, format or space character but the
    # ASCII space: only "  ", a combining mark or a variation selector can be
    # excess. Two C-speed tests settle most texts; the regex decides the rest.
    if piece.isprintable() and "  " not in piece:
        return not piece.isascii() and _DROP_RE.search(piece) is not None
    return _EXCESS_RE.search(piece) is not None


def _collapse(piece: str) -> str:
    """``piece`` with its padding collapsed, at C speed: invisible characters
    dropped, each run of space-like characters made one space."""
    if not piece.isascii():
        for ch in _COMMON_INVISIBLE:
            if ch in piece:
                piece = piece.replace(ch, "")
        if _DROP_RE.search(piece) is not None:
            piece = _DROP_RE.sub("", piece)
    if not piece.isprintable() and _ODD_SPACE_RE.search(piece) is not None:
        return _SPACES_RE.sub(" ", piece)
    parts = piece.split()
    if not parts:
        return " " if piece else ""
    out = " ".join(parts)
    if piece[0].isspace():
        out = " " + out
    if piece[-1].isspace():
        out += " "
    return out


def _compact_head(text: str, need: int) -> tuple[str, int]:
    """At least ``need`` characters of ``text`` collapsed, from its start,
    and the raw position reached (never inside a run of padding)."""
    n = len(text)
    pieces: list[str] = []
    count = 0
    p = 0
    while count < need and p < n:
        hi = min(n, p + 2 * (need - count) + _SLACK)
        piece = _collapse(text[p:hi])
        p = hi
        if p < n and _IS_PAD_RE.match(text, p):
            # The cut fell before or inside a run: stride over the rest.
            p, spaced = _run_end(text, p)
            if spaced and not piece.endswith(" "):
                piece += " "
        pieces.append(piece)
        count += len(piece)
    return "".join(pieces), p


def _compact_tail(text: str, need: int, stop: int) -> str:
    """At least ``need`` characters of ``text`` collapsed, from its end,
    reading back no further than the raw position ``stop``."""
    pieces: list[str] = []
    count = 0
    q = len(text)
    while count < need and q > stop:
        lo = max(stop, q - 2 * (need - count) - _SLACK)
        piece = _collapse(text[lo:q])
        q = lo
        if q > stop and _IS_PAD_RE.match(text, q - 1):
            q, spaced = _run_start(text, q, stop)
            if spaced and not piece.startswith(" "):
                piece = " " + piece
        pieces.append(piece)
        count += len(piece)
    pieces.reverse()
    return "".join(pieces)


def _run_end(text: str, p: int) -> tuple[int, bool]:
    """Where the padding run that starts at ``p`` (or goes on there) ends,
    and whether it holds a space-like character from ``p`` on."""
    m = _PAD_RUN_RE.match(text, p, p + _UNIT)
    end = p if m is None else m.end()
    spaced = _SPACE_LIKE_RE.search(text, p, end) is not None
    if end - p == _UNIT:
        block = text[p:end]
        while True:
            if text.startswith(block, end):
                end += len(block)
                if len(block) < _MAX_STRIDE:
                    block += block
            elif len(block) > _UNIT:
                block = block[: len(block) // 2]
            else:
                break
        m = _PAD_RUN_RE.match(text, end)
        if m is not None:
            spaced = spaced or _SPACE_LIKE_RE.search(text, end, m.end()) is not None
            end = m.end()
    return end, spaced


def _run_start(text: str, q: int, stop: int) -> tuple[int, bool]:
    """Where the padding run that ends at ``q`` (or goes on there) starts,
    ``stop`` at the earliest, and whether it holds a space-like character
    before ``q``."""
    start = q
    spaced = False
    size = _UNIT
    while start > stop:
        lo = max(stop, start - size)
        m = _PAD_RUN_RE.match(text[lo:start][::-1])
        if m is None:
            break
        spaced = (
            spaced or _SPACE_LIKE_RE.search(text, start - m.end(), start) is not None
        )
        start -= m.end()
        if start > lo:
            break
        if size == _UNIT and start > stop:
            # A long run: stride back over repeats of its last _UNIT characters.
            block = text[start : start + _UNIT]
            while start > stop:
                if text.endswith(block, stop, start):
                    start -= len(block)
                    if len(block) < _MAX_STRIDE:
                        block += block
                elif len(block) > _UNIT:
                    block = block[len(block) // 2 :]
                else:
                    break
        size = min(size * 4, _MAX_STRIDE)
    return start, spaced
