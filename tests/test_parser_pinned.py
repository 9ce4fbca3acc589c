"""Parsing rules a mutation run showed no test would notice breaking (issue 17).

Each test pins one rule of ``docs/parsing.md`` through the public API
(``parse_reply``, ``own_words``, and ``window``, the read windows), on both
sides of its limit or switch:

* the read windows: a long reply is read through its first 512 and last
  160 characters *counted once its padding is collapsed*, whatever the
  padding is made of (spaces, controls, zero-width characters, combining
  marks), however long its runs are and wherever they fall; and the
  windows are built in bounded time;
* the normal form keeps the accents that tell "Sí" from "Sì", invisible
  characters aside, and multi-word keywords are matched word by word;
* a long reply's tail: a stop there carries its evidence (keyword, rule,
  locale, the text); a long text is never a short message; the tail's
  first word, which may be cut in half, never starts a sentence, even
  before a quote of our words; a quote of ours in the tail is a sentence
  of its own;
* lenient consent reports the pack its word came from;
* ``own_words``: a text of exactly six words is a quote "at length"; the
  errors name what was wrong.

The limits are written as numbers, not read from the module that defines
them: a test that reads the constant moves with it.
"""

from __future__ import annotations

import re
import signal
from collections.abc import Iterator
from contextlib import contextmanager

import pytest

from optin_core import Intent, MatchRule, MessageKind, own_words, parse_reply
from optin_core._normalize import window

from .test_parser_windows import _reference
from .test_rules_pinned import _prose

# -- the read windows ------------------------------------------------------


@contextmanager
def _within(seconds: float) -> Iterator[None]:
    """Fail (rather than hang) when the body takes longer than ``seconds``:
    a guard against a window that never ends, not a speed check (the
    bound is far above any run; speed is measured in bench/)."""

    def timeout(signum: int, frame: object) -> None:
        raise TimeoutError(f"took more than {seconds} s")

    previous = signal.signal(signal.SIGALRM, timeout)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


def _build(pieces: list[tuple[str, int]]) -> str:
    """``count`` characters of each piece, the piece repeated (and cut)."""
    return "".join(
        (piece * (count // len(piece) + 1))[:count] for piece, count in pieces
    )


def _seen(view: str) -> str:
    # A single space-like character is kept as it was (the normal form makes
    # it a space): compare it as a space, character for character, so that
    # a run the view failed to collapse still shows.
    return _SPACE_LIKE.sub(" ", view)


_SPACE_LIKE = re.compile(r"[\s\x00-\x1f\x7f-\x9f]")


X = "x"
ZW = "\u200b"  # zero-width space: dropped
ACUTE = "\u0301"  # combining acute accent: dropped
VS16 = "\ufe0f"  # emoji variation selector: dropped

#: Texts whose padding falls where the windows are cut: runs that end
#: exactly at a chunk's edge, runs longer than a stride unit, runs of
#: invisible characters only (which collapse to nothing), runs of several
#: characters that repeat, padding at the very start or end, and texts of
#: 512 characters. Each is read as the collapsed text would be.
WINDOW_CASES: dict[str, list[tuple[str, int]]] = {
    # A leading run of spaces that fills the first chunk exactly collapses
    # to one space, not to nothing.
    "spaces fill the first chunk": [(" ", 1090), ("yes", 3)],
    "line breaks fill the first chunk": [("\n", 1090), ("yes", 3)],
    # A run of invisible characters only collapses to nothing, not a space.
    "zero-width fill the first chunk": [(ZW, 1090), ("yes", 3)],
    "accents fill the first chunk": [(ACUTE, 1090), ("yes", 3)],
    # 512 characters of padding: short, read whole.
    "512 of mixed padding": [(" \u200b\n", 512)],
    "512 controls": [("\x00", 512)],
    # Combining marks around a word: the text is 513 characters, but only
    # "yes" once collapsed.
    "accents around yes": [(ACUTE, 255), ("yes", 3), (ACUTE, 255)],
    "selectors around yes": [(VS16, 255), ("yes", 3), (VS16, 255)],
    "accents around STOP": [(ACUTE, 255), ("STOP", 4), (ACUTE, 255)],
    # Long runs: the head strides over them, and the space they hold counts.
    "spaces before prose": [(" ", 511), ("blah " * 120 + "stop", 604)],
    "zero-width before prose": [(ZW, 1091), ("blah " * 120 + "stop", 604)],
    "accents before prose": [(ACUTE, 1091), ("blah " * 120 + "stop", 604)],
    "accents around a long word": [(ACUTE, 511), (X, 600), (ACUTE, 511)],
    "zero-width around a long word": [(ZW, 511), (X, 600), (ZW, 511)],
    "a run crosses the head's edge": [
        (X, 1559 - 7 - 2 - 1091 - 160),
        (ACUTE, 1091),
        ("x" * 160, 160),
        ("Stop.\n\n", 7),
    ],
    # Tails: the run the tail strides back over, and what precedes it.
    "tail after selectors": [
        (X, 159),
        (VS16, 387),
        (X, 600),
        ("\u00a0", 258),
        ("y. Stop", 7),
        (" ", 387),
    ],
    "tail after a mixed run": [
        ("blah " * 100, 500),
        (X, 600),
        (X, 161),
        (X, 161),
        (" \u200b\n", 256),
        (X, 160),
        (" ", 387),
    ],
    "tail run of tabs": [
        ("blah " * 100, 500),
        (ACUTE, 385),
        (X, 159),
        (ZW, 257),
        ("y. Stop", 7),
        ("\t ", 1092),
    ],
    "tail run of spaced zero-width": [("yes", 3), ("ab ", 1089), ("\u200b ", 1092)],
    "tail ends in spaced zero-width": [
        (X, 300),
        ("yes", 3),
        ("\t ", 387),
        (X, 160),
        ("ab ", 1024),
        (" \u200b", 256),
    ],
    "tail ends in selectors": [
        ("hello world", 11),
        (ZW, 64),
        (X, 600),
        ("please", 6),
        ("\n", 256),
        ("blah " * 100, 500),
        (VS16, 1091),
    ],
    "tail after a huge zero-width run": [
        (X, 600),
        (VS16, 256),
        (X, 600),
        (ZW, 140_000),
        ("please", 6),
        (" \u200b", 388),
        ("hello world", 11),
    ],
    "tail over accents": [
        ("\x00", 1),
        ("ab ", 1024),
        (ACUTE, 257),
        (X, 159),
    ],
    "head of mixed padding": [
        (" \u200b\n", 513),
        ("\x00", 63),
        ("ab ", 320),
        ("blah " * 100, 500),
        ("\u00a0", 385),
        ("ab ", 2),
        (X, 300),
    ],
    # Padding just before the head's end: "  " at 510-511, or an invisible
    # character at 511, shifts the collapsed head's last character.
    "two spaces at the head's end": [(X, 510), ("  ", 2), ("y", 600)],
    "zero-width at the head's end": [(X, 511), (ZW, 1), ("y", 600)],
    # A tail whose first chunk collapses to 159 characters: the tail still
    # reads back to 160.
    "tail chunk of 159": [("b", 1200), ("d", 1), ("a", 79), (" ", 224), ("a", 79)],
    # A tail chunk cut between two spaces of one run: one space, not two.
    "tail cut inside a run": [("b", 1200), ("c ", 2), (" a", 2), ("    a", 384)],
    "padding to the end": [
        (ACUTE, 1),
        ("please", 6),
        ("please", 6),
        ("blah " * 100, 500),
        (" \u200b\n", 512),
        ("\t ", 513),
    ],
}


@pytest.mark.parametrize("name", list(WINDOW_CASES))
def test_the_windows_read_the_collapsed_text(name: str) -> None:
    text = _build(WINDOW_CASES[name])
    with _within(30.0):
        view, long = window(text)
    collapsed = _reference(text)
    seen = _seen(view)
    if len(text) <= 512:
        # Short: read whole, the normal form collapses it.
        assert (view, long) == (text, False)
        return
    # Long means: more than 512 characters once collapsed.
    assert long is (len(collapsed) > 512)
    if not long:
        assert seen == collapsed
    else:
        assert seen[:512] == collapsed[:512]
        assert seen[-160:] == collapsed[-160:]
    # So the reply reads as its collapsed text does: padding hides nothing.
    reply, plain = parse_reply(text), parse_reply(collapsed)
    assert (reply.intent, reply.rule) == (plain.intent, plain.rule)


@pytest.mark.parametrize(
    "pieces",
    [
        # The head reads on when its first chunk holds padding; the tail
        # reads back when its first chunk is padding: in bounded time.
        [(" ", 1000), ("a", 1), ("blah " * 200, 1000)],
        [("a ", 600), (" ", 5), ("blah " * 200, 1000), (" ", 200), ("b ", 20)],
        [("blah " * 200, 1000), ("  ", 400), ("b", 1)],
        # A tail whose first chunk collapses to fewer than 160 characters.
        # (The head's first chunk, 1,090 characters, holds no padding.)
        [("b", 1200), ("a   ", 258)],
        [("b", 1200), ("a    ", 400)],
    ],
)
def test_the_windows_are_built_in_bounded_time(pieces: list[tuple[str, int]]) -> None:
    text = _build(pieces)
    with _within(30.0):
        view, long = window(text)
        parse_reply(text)
    collapsed = _reference(text)
    assert long is (len(collapsed) > 512)
    assert _seen(view)[:512] == collapsed[:512]
    assert _seen(view)[-160:] == collapsed[-160:]


@pytest.mark.parametrize("mark", [ACUTE, VS16])
def test_marks_around_a_word_are_padding_not_length(mark: str) -> None:
    # 513 characters, but "yes" once the invisible marks are dropped: read
    # whole, so it is consent; "STOP" is the whole message.
    padding = mark * 255
    reply = parse_reply(padding + "yes" + padding)
    assert (reply.intent, reply.rule) == (Intent.CONSENT, MatchRule.EXACT)
    reply = parse_reply(padding + "STOP" + padding)
    assert (reply.intent, reply.rule) == (Intent.STOP, MatchRule.EXACT)


# -- accents that settle the language -----------------------------------------


@pytest.mark.parametrize(("text", "locale"), [("S\u200bí", "es"), ("S\u200bì", "it")])
def test_an_invisible_character_does_not_hide_the_accent_that_names_the_language(
    text: str, locale: str
) -> None:
    # "Sí" is Spanish, "Sì" Italian; a zero-width space typed inside the
    # word is dropped before the accent is read.
    reply = parse_reply(text)
    assert (reply.intent, reply.keyword, reply.locale) == (
        Intent.CONSENT,
        "si",
        locale,
    )


def test_multi_word_keywords_are_matched_word_by_word() -> None:
    reply = parse_reply("Hi, can you please stop texting me, I'm at work")
    assert (reply.intent, reply.keyword, reply.rule) == (
        Intent.STOP,
        "stop texting",
        MatchRule.PHRASE,
    )
    reply = parse_reply("Arrêtez de m'écrire", "fr")
    assert (reply.intent, reply.locale) == (Intent.STOP, "fr")


# -- a long reply's tail --------------------------------------------------------

#: A text of ours, eight words no pack knows.
OURS = "Acme garden tips arrive every sunday morning early"
INDEX = own_words({MessageKind.HELP: OURS})


def test_a_stop_in_the_tail_carries_its_evidence() -> None:
    text = _prose(700) + " I never signed up. Stop"
    reply = parse_reply(text, "fr")
    assert (reply.intent, reply.keyword, reply.rule, reply.locale) == (
        Intent.STOP,
        "stop",
        MatchRule.SENTENCE_START,
        "fr",
    )
    assert reply.text == text
    plain = _prose(700) + " thanks"
    reply = parse_reply(plain)
    assert (reply.intent, reply.text) == (Intent.UNRECOGNIZED, plain)


def test_a_long_text_is_never_a_short_message() -> None:
    # The tail holds three words, "stop" in the middle: neither a sentence
    # start nor the last word, and a long text is not short.
    text = _prose(700) + " " + "x" * 60 + " stop " + "y" * 80
    assert parse_reply(text).intent is Intent.UNRECOGNIZED
    # The same three words alone are a short message.
    assert parse_reply("x" * 60 + " stop " + "y" * 80).intent is Intent.STOP


def _ours_of(size: int) -> str:
    """Words of a text of ours, exactly ``size`` characters (the last word
    made of z's to fit)."""
    words = (
        "garden tips arrive every sunday morning early with seeds bulbs roses "
        "tulips lilies ferns mosses herbs basil thyme sage mint parsley"
    )
    assert len(words) < size - 2
    return words + " " + "z" * (size - len(words) - 1)


@pytest.mark.parametrize("before", ["x", " "])
def test_the_tails_first_word_never_starts_a_sentence_even_before_our_quote(
    before: str,
) -> None:
    # The tail starts at "stop": the end of "xstop", or a word of its own
    # after a space; the tail cannot tell, so its first word never starts
    # a sentence, even when a quote of ours follows it.
    quote = _ours_of(160 - len("stop ") - len(" thanks"))
    ending = "stop " + quote + " thanks"
    assert len(ending) == 160
    text = _prose(700) + " " + before + ending
    reply = parse_reply(text, ours={MessageKind.HELP: quote + " and more"})
    assert (reply.intent, reply.quoted) == (Intent.UNRECOGNIZED, MessageKind.HELP)


def test_the_tails_cut_first_word_stays_whole_before_our_quote() -> None:
    # The tail starts at "astop" (a word no pack knows) and ends with our
    # quote: what is left is "astop", not "stop".
    quote = _ours_of(160 - len("astop "))
    text = _prose(700) + " " + "astop " + quote
    assert text[-160:] == "astop " + quote
    reply = parse_reply(text, ours={MessageKind.HELP: quote + " and more"})
    assert (reply.intent, reply.quoted) == (Intent.UNRECOGNIZED, MessageKind.HELP)
    # The same tail with "stop" whole is a stop: its last word.
    quote = _ours_of(160 - len("stop "))
    text = _prose(700) + " " + "stop " + quote
    reply = parse_reply(text, ours={MessageKind.HELP: quote + " and more"})
    assert (reply.intent, reply.rule) == (Intent.STOP, MatchRule.LAST_WORD)


def test_our_quote_in_the_tail_is_a_sentence_of_its_own() -> None:
    # With our quote removed, "stop" is the last word of the message.
    text = _prose(700) + " ok, please stop " + OURS
    reply = parse_reply(text, ours=INDEX)
    assert (reply.intent, reply.rule, reply.quoted) == (
        Intent.STOP,
        MatchRule.LAST_WORD,
        MessageKind.HELP,
    )


# -- lenient consent -------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "locale", "pack"),
    [
        ("Yes please", "en", "en"),
        ("Oui merci", "fr", "fr"),
        ("Sim obrigado", None, "pt"),
    ],
)
def test_lenient_consent_reports_the_pack_of_its_word(
    text: str, locale: str | None, pack: str
) -> None:
    reply = parse_reply(text, locale, lenient_consent=True)
    assert (reply.intent, reply.rule, reply.locale) == (
        Intent.CONSENT,
        MatchRule.LENIENT,
        pack,
    )


# -- our own words ----------------------------------------------------------------


@pytest.mark.parametrize(("count", "indexed"), [(5, 0), (6, 1), (7, 1)])
def test_a_text_of_ours_is_indexed_from_six_words(count: int, indexed: int) -> None:
    words = ["garden", "tips", "arrive", "every", "sunday", "morning", "early"]
    text = " ".join(words[:count])
    ours = own_words({MessageKind.HELP: text})
    assert len(ours) == indexed
    reply = parse_reply("Who is this? " + text, ours=ours)
    assert reply.quoted is (MessageKind.HELP if indexed else None)


def test_own_words_refuses_a_str_and_says_what_it_expects() -> None:
    with pytest.raises(
        TypeError,
        match=r"^expected \{MessageKind: text\} or \(kind, text\) pairs, not a str$",
    ):
        own_words("Reply YES to receive texts")  # type: ignore[arg-type]


def test_own_words_names_the_wrong_kind_and_the_wrong_text() -> None:
    with pytest.raises(TypeError, match=r"^expected a MessageKind, not str$"):
        own_words([("help", OURS)])  # type: ignore[list-item]
    with pytest.raises(TypeError, match=r"^expected a str text, not bytes$"):
        own_words([(MessageKind.HELP, b"garden tips")])  # type: ignore[list-item]
