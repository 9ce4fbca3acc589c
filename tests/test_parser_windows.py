"""Padding and the read windows (issue 10, item 3), and the parser's module
structure (item 7).

The parser reads the first 512 and the last 160 characters of a reply,
counted once whitespace and invisible characters are collapsed: no amount
of padding hides a stop.
"""

from __future__ import annotations

import ast
import random
import re
from pathlib import Path

import pytest
from hypothesis import example, given
from hypothesis import strategies as st

import optin_core
from optin_core import Intent, MatchRule, parse_reply
from optin_core import _normalize as n
from optin_core._normalize import HEAD_CHARS, TAIL_CHARS, normalize, window

from .strategies import strong_stop_keywords

SRC = Path(optin_core.__file__).parent

# -- padding -------------------------------------------------------------------

#: Padding as clients and people produce it: spaces, line breaks, tabs,
#: no-break and ideographic spaces, zero-width characters, BOM, controls.
PADDING = [
    " ",
    "\n",
    "\r\n",
    "\t",
    "\u00a0",
    "\u3000",
    "\u200b",
    "\u200d",
    "\ufeff",
    "\u2060",
    " \u200b",
    "\u200b\n",
    "\x00",
]


def _reference(text: str) -> str:
    """The collapsed text, the slow way: every run of padding made one
    space (nothing when it holds only invisible characters)."""
    return n._PAD_RUN_RE.sub(
        lambda m: " " if n._SPACE_LIKE_RE.search(m.group()) else "", text
    )


@pytest.mark.parametrize("count", [600, 5_000, 100_000, 1_000_000])
@pytest.mark.parametrize("pad", PADDING)
@pytest.mark.parametrize(
    "shape",
    [
        "{p}STOP",
        "STOP{p}",
        "{p}STOP{p}",
        "{p}STOP please{p}",
        # Invisible characters between letters are dropped ("s\u200btop" is
        # "stop"), so words stay apart by a space or punctuation.
        "please {p}stop",
        "Hello {p}STOP{p}, thanks",
        "stop{p} texting me",
        "{p}Ne m'écrivez plus",
        "Who is this?{p}Stop.",
        "{p}Arrêt",
    ],
)
def test_padded_stops_of_any_length_are_stops(shape: str, pad: str, count: int) -> None:
    padding = (pad * (count // len(pad) + 1))[:count]
    text = shape.format(p=padding)
    reply = parse_reply(text, "en")
    assert reply.intent is Intent.STOP, (shape, pad, count)
    assert reply.text == text


@pytest.mark.parametrize("count", [600, 1_000_000])
@pytest.mark.parametrize("pad", [" ", "\u200b", "\n"])
def test_padding_never_changes_a_yes_or_a_look_alike(pad: str, count: int) -> None:
    padding = pad * count
    assert parse_reply(padding + "Oui" + padding, None).intent is Intent.CONSENT
    assert parse_reply(padding + "yes", "en").intent is Intent.CONSENT
    for text in ("please stop by the office", "bus stop", "Je suis en arrêt maladie"):
        reply = parse_reply(padding + text + padding, "en")
        assert reply.intent is Intent.UNRECOGNIZED, text


def test_padding_between_long_texts_keeps_the_tail() -> None:
    # The head is prose, the padding would push the tail's stop out.
    text = "Please call me back about the loan. " * 20 + " " * 10_000 + "STOP"
    reply = parse_reply(text, "en")
    assert (reply.intent, reply.rule) == (Intent.STOP, MatchRule.SENTENCE_START)
    text = "Call me back about the loan, " * 20 + "\u200b " * 10_000 + "stop"
    reply = parse_reply(text, "en")
    assert (reply.intent, reply.rule) == (Intent.STOP, MatchRule.LAST_WORD)
    # A long text stays long: its head is never consent.
    long_yes = parse_reply("yes " + "x" * 600 + " " * 10_000)
    assert long_yes.intent is not Intent.CONSENT


_PIECES = st.sampled_from(
    ["a", "b", "S", "T", "é", "😀", ".", " ", "  ", "\n", "\t", "\u200b", "\u0301"]
)


@given(
    st.lists(
        st.tuples(_PIECES, st.sampled_from([1, 1, 2, 7, 40, 300, 3000])),
        min_size=1,
        max_size=40,
    )
)
@example([("a", 300), (" ", 3000), ("b", 300)])
@example([(" ", 3000), ("S", 1), ("\u200b", 300), ("T", 600)])
@example([("a", 1), ("\u200b", 3000)] * 3 + [("b", 600)])
def test_window_reads_the_collapsed_text(pieces: list[tuple[str, int]]) -> None:
    text = "".join(piece * count for piece, count in pieces)
    view, long = window(text)
    collapsed = _reference(text)
    # A single space-like character is not collapsed (it stays what it was,
    # and the normal form makes it a space).
    seen = n._SPACE_LIKE_RE.sub(" ", view)
    if len(text) <= HEAD_CHARS:
        assert (view, long) == (text, False)
    elif not long:
        assert len(collapsed) <= HEAD_CHARS
        assert seen == collapsed
        assert normalize(view) == normalize(text)
    else:
        assert len(collapsed) > HEAD_CHARS
        assert seen[:HEAD_CHARS] == collapsed[:HEAD_CHARS]
        assert seen[-TAIL_CHARS:] == collapsed[-TAIL_CHARS:]


@pytest.mark.parametrize("seed", range(6))
@pytest.mark.parametrize("where", ["head", "tail", "both", "middle"])
def test_window_on_padding_that_does_not_repeat(seed: int, where: str) -> None:
    # A run no stride can skip (a mixture of padding characters in random
    # order) is read by the regex, forwards or backwards, and gives the same
    # windows as collapsing the whole text.
    rng = random.Random(seed)
    size = rng.choice([300, 700, 5_000, 70_000])
    mixture = "".join(rng.choice(" \u200b\n\t\u00a0\u2060") for _ in range(size))
    words = "please call me back " * rng.choice([1, 30])
    text = {
        "head": mixture + words + "STOP",
        "tail": "STOP " + words + mixture,
        "both": mixture + "STOP " + words + mixture,
        "middle": words * 30 + mixture + "stop" + mixture[:7] + words * 30,
    }[where]
    view, long = window(text)
    collapsed = _reference(text)
    seen = n._SPACE_LIKE_RE.sub(" ", view)
    assert long is (len(collapsed) > HEAD_CHARS)
    if long:
        assert seen[:HEAD_CHARS] == collapsed[:HEAD_CHARS]
        assert seen[-TAIL_CHARS:] == collapsed[-TAIL_CHARS:]
    elif len(text) > HEAD_CHARS:
        assert seen == collapsed
    else:
        assert view == text  # short enough: the normal form collapses it
    if where != "middle":
        assert parse_reply(text).intent is Intent.STOP


@given(strong_stop_keywords, st.sampled_from(PADDING), st.integers(0, 3000))
def test_any_strong_stop_survives_any_padding(word: str, pad: str, count: int) -> None:
    padding = pad * count
    assert parse_reply(padding + word + padding).intent is Intent.STOP


# -- module structure (item 7) -------------------------------------------------


def _imports(module: str) -> set[str]:
    """The package modules ``module`` imports (absolute or relative)."""
    tree = ast.parse((SRC / f"{module}.py").read_text(encoding="utf-8"))
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom):
            name = node.module or ""
            if node.level:
                found.add(name.split(".")[0] or ".")
            elif name.startswith("optin_core."):
                found.add(name.split(".")[1])
            elif name == "optin_core":
                found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.Import):
            found.update(
                alias.name.split(".")[1]
                for alias in node.names
                if alias.name.startswith("optin_core.")
            )
    return found


def test_imports_run_one_way() -> None:
    # _normalize is a leaf; the index is data and never imports the parser;
    # records never import the parser or the index.
    assert _imports("_normalize") == set()
    assert _imports("_keywords") <= {"_enums", "_locale", "_normalize", "_records"}
    assert "_parser" not in _imports("_keywords")
    assert {"_parser", "_keywords"}.isdisjoint(_imports("_records"))
    assert {"_parser", "_keywords"}.isdisjoint(_imports("_machine"))
    assert _imports("_parser") <= {
        "_enums",
        "_keywords",
        "_locale",
        "_normalize",
        "_records",
    }


def test_every_matching_rule_lives_in_the_parser() -> None:
    source = (SRC / "_keywords.py").read_text(encoding="utf-8")
    for rule in ("_find_stop", "_find_polite", "_find_lenient", "_about_others"):
        assert not re.search(rf"def {rule}\b", source), rule
        assert re.search(
            rf"def {rule}\b", (SRC / "_parser.py").read_text(encoding="utf-8")
        )
    parser = (SRC / "_parser.py").read_text(encoding="utf-8")
    for name in (r"def _?fold\(", r"def _?words\(", r"HEAD_CHARS =", r"_ELISION_RE ="):
        assert not re.search(name, source), name
        assert not re.search(name, parser), name


def test_public_names_stay_importable_from_the_package() -> None:
    from optin_core import _parser, _records

    assert optin_core.ParsedReply is _records.ParsedReply is _parser.ParsedReply
    assert optin_core.normalize is n.normalize is _parser.normalize
    for name in ("parse_reply", "keyword_language", "OwnWords", "own_words"):
        assert getattr(optin_core, name) is getattr(_parser, name)
        assert name in optin_core.__all__
