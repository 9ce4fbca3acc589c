"""Consent receipts: a contact's consent log, as a person reads it.

``ConsentService.receipt`` renders the verified log and the outbox's
delivery evidence as plain text, Markdown or HTML, in one of the shipped
locales (wording from the ``receipt_*`` entries of the gettext catalogs,
dates with Babel in the receipt's locale and time zone):

* each opt-in request with the exact wording shown, and the agent's
  greeting; each reply verbatim, with the rule and keyword that matched;
* who acted and by which input; the policy id and version of each event;
* the contact's consent level and the event that gave it (an attestation
  with its method and evidence, a YES, a stop), each change of level, and
  the category of each text;
* every message decided, verbatim, with its delivery status, provider id
  and delivery report; stops and restarts, listed first;
* the log's head digest, and whether the log verifies.

Everything that came from outside (replies, texts, names, evidence) is data:
escaped for the format (HTML entities; Markdown backslash escapes and code
fences longer than any backtick run of the text), never used as a format
string, and invisible or direction-changing characters are shown as
``⟨U+202E⟩`` so that a reply cannot disguise itself.
"""

from __future__ import annotations

import html
import unicodedata
from collections.abc import Iterable, Sequence
from datetime import datetime, tzinfo
from typing import Literal

import attrs

from ._catalog import fill, receipt_wording
from ._enums import ConsentState, MessageKind, Trigger
from ._erase import Erasure
from ._errors import InvalidInput
from ._levels import NONE
from ._locale import locale_chain, require_locale
from ._log import ConsentLog
from ._personal import Redacted
from ._policy import Policy
from ._quiet import zone
from ._records import AuditEvent, Outgoing
from .stores._base import MessageRecord

__all__ = ["ReceiptFormat", "render_erased", "render_receipt"]

ReceiptFormat = Literal["text", "markdown", "html"]

_FORMATS = ("text", "markdown", "html")


def check_receipt_format(fmt: object) -> ReceiptFormat:
    if fmt not in _FORMATS:
        raise ValueError(f"format must be one of {', '.join(_FORMATS)}, got {fmt!r}")
    return fmt  # type: ignore[return-value]


def receipt_zone(name: object) -> tzinfo:
    """The receipt's time zone (an IANA name); :class:`InvalidInput`."""
    if not isinstance(name, str):
        raise TypeError(f"tz must be an IANA zone name, got {type(name).__name__}")
    try:
        return zone(name)
    except ValueError as e:
        raise InvalidInput(f"tz: {e}") from None


# ---------------------------------------------------------------------------
# What a receipt says, before it is written in a format


@attrs.frozen(slots=True)
class _Value:
    """A value shown on a receipt: ``text`` (escaped inline), ``code`` (an
    id or digest, monospace), ``verbatim`` (a block kept exactly) or
    ``redacted`` (an erased value: the wording, then its digest)."""

    kind: Literal["text", "code", "verbatim", "redacted"]
    text: str
    #: What a verbatim block is (``reply``, ``greeting``, ``message``): its
    #: HTML class, so a page's style (or a test) can find it.
    role: str = ""


@attrs.frozen(slots=True)
class _Entry:
    heading: str
    fields: tuple[tuple[str, _Value], ...]


@attrs.frozen(slots=True)
class _Document:
    lang: str
    redacted: str
    title: str
    fields: tuple[tuple[str, _Value], ...]
    notes: tuple[str, ...]
    stops_title: str
    stops: tuple[str, ...]
    none: str
    log_title: str
    entries: tuple[_Entry, ...]


#: Characters shown as ``⟨U+XXXX⟩``: controls, surrogates, and the
#: invisible or direction-changing format characters a reply could use to
#: disguise itself (not the joiner of emoji sequences).
_SHOWN = frozenset(
    [
        *range(0x200B, 0x200D),
        0x200E,
        0x200F,
        *range(0x202A, 0x202F),
        *range(0x2060, 0x206A),
        0xFEFF,
        0x061C,
    ]
)


def _visible(text: str) -> str:
    out = []
    for ch in text:
        code = ord(ch)
        if ch in "\n\t":
            out.append(ch)
        elif code in _SHOWN or unicodedata.category(ch) in ("Cc", "Cs"):
            out.append(f"⟨U+{code:04X}⟩")
        else:
            out.append(ch)
    return "".join(out)


class _Words:
    """The receipt's wording and date format in one locale and zone."""

    def __init__(self, locale: str, default: str, where: tzinfo) -> None:
        self.locale = locale_chain(locale, default)[0]
        # Babel's date and number formats are loaded with the first receipt,
        # not with the library.
        from babel import Locale  # noqa: PLC0415 (on first use)

        self.babel = Locale.parse(self.locale.replace("-", "_"))
        self.words = receipt_wording(self.locale, default)
        self.zone = where

    def __call__(self, msgid: str, **values: str) -> str:
        text = self.words.get(msgid, msgid)
        return fill(text, values) if values else text

    def date(self, when: datetime) -> str:
        from babel.dates import format_datetime  # noqa: PLC0415 (on first use)

        return format_datetime(when, "long", tzinfo=self.zone, locale=self.babel)

    def number(self, n: int) -> str:
        from babel.numbers import format_decimal  # noqa: PLC0415 (on first use)

        return format_decimal(n, locale=self.babel)

    def trigger(self, trigger: Trigger) -> str:
        return self.words.get(f"receipt_trigger_{trigger.value}", trigger.value)

    def input(self, kind: str) -> str:
        return self.words.get(f"receipt_input_{kind}", kind)

    def state(self, state: ConsentState) -> str:
        return self.words.get(f"receipt_state_{state.value}", state.value)

    def level(self, level: str) -> str:
        """A consent level's wording; a policy's own level by its name."""
        return self.words.get(f"receipt_level_{level}", level)


def _value(
    text: str, kind: Literal["text", "code", "verbatim"], role: str = ""
) -> _Value:
    if text.__class__ is Redacted:
        return _Value("redacted", str(text))
    return _Value(kind, _visible(text), role)


def _greeting(message: Outgoing, policy: Policy) -> str | None:
    """The agent's greeting above the locked wording of an opt-in request,
    when the wording is the policy's (it may have changed since)."""
    if message.text.__class__ is Redacted or "\n" not in message.text:
        return None
    wording, _used = policy.message(MessageKind.OPT_IN_REQUEST, message.locale)
    head, _sep, rest = message.text.partition("\n")
    return head if rest == wording else None


def _delivery(
    words: _Words, record: MessageRecord | None
) -> tuple[tuple[str, _Value], ...]:
    if record is None:
        return (
            (words("receipt_delivery"), _Value("text", words("receipt_no_record"))),
        )
    fields = [
        (
            words("receipt_delivery"),
            _Value("text", words(f"receipt_status_{record.status}")),
        )
    ]
    if record.provider_id:
        fields.append(
            (words("receipt_provider_id"), _value(record.provider_id, "code"))
        )
    if record.sent_at is not None:
        fields.append(
            (words("receipt_sent_at"), _Value("text", words.date(record.sent_at)))
        )
    if record.delivery is not None:
        report = words(f"receipt_delivery_{record.delivery}")
        if record.delivery_at is not None:
            report += f" ({words.date(record.delivery_at)})"
        if record.error_code:
            report += f" [{record.error_code}]"
        fields.append((words("receipt_report"), _value(report, "text")))
    return tuple(fields)


def _entry(  # noqa: PLR0917 - an event, and what the receipt knows of it
    index: int,
    event: AuditEvent,
    words: _Words,
    records: dict[str, MessageRecord],
    policy: Policy,
    level_before: str,
) -> _Entry:
    heading = f"{index}. {words.date(event.at)} — {words.trigger(event.trigger)}"
    fields: list[tuple[str, _Value]] = [
        (words("receipt_input"), _Value("text", words.input(event.input))),
    ]
    if event.actor is not None:
        fields.append((words("receipt_actor"), _value(event.actor, "text")))
    if event.input_at is not None:
        fields.append(
            (words("receipt_input_at"), _Value("text", words.date(event.input_at)))
        )
    policy_text = (
        f"{event.policy_id}, {words('receipt_version')} {event.policy_version}"
    )
    fields.append((words("receipt_policy"), _value(policy_text, "text")))
    reply = event.reply
    if reply is not None:
        fields.append((words("receipt_reply"), _value(reply.text, "verbatim", "reply")))
        fields.append((words("receipt_rule"), _value(reply.rule.value, "code")))
        if reply.keyword is not None:
            fields.append((words("receipt_keyword"), _value(reply.keyword, "code")))
    if event.message_id is not None:
        fields.append((words("receipt_message_id"), _value(event.message_id, "code")))
    if event.method is not None:
        fields.append((words("receipt_method"), _value(event.method, "text")))
    if event.evidence is not None:
        fields.append((words("receipt_evidence"), _value(event.evidence, "text")))
    if event.reason is not None:
        fields.append((words("receipt_reason"), _value(event.reason, "text")))
    if event.level != level_before:
        change = f"{words.level(level_before)} → {words.level(event.level)}"
        fields.append((words("receipt_level"), _value(change, "text")))
    if event.category is not None:
        fields.append((words("receipt_category"), _value(event.category, "code")))
    for message in event.sent:
        if message.kind is MessageKind.OPT_IN_REQUEST:
            greeting = _greeting(message, policy)
            if greeting is not None:
                fields.append(
                    (
                        words("receipt_greeting"),
                        _value(greeting, "verbatim", "greeting"),
                    )
                )
            label = words("receipt_wording")
        else:
            label = words("receipt_message")
        fields.append((label, _value(message.text, "verbatim", "message")))
        fields.extend(_delivery(words, records.get(message.key)))
    if event.cancelled:
        fields.append(
            (words("receipt_withdrawn"), _Value("code", ", ".join(event.cancelled)))
        )
    return _Entry(heading, tuple(fields))


def _stop_or_start(event: AuditEvent) -> bool:
    """Whether ``event`` moved the contact into STOPPED or out of it."""
    stopped = ConsentState.STOPPED
    return (event.from_state is stopped) is not (event.to_state is stopped)


def _document(
    log: ConsentLog,
    records: Sequence[MessageRecord],
    policy: Policy,
    words: _Words,
    notes: Iterable[str],
) -> _Document:
    head = log.head
    by_key = {r.message.key: r for r in records}
    stops = tuple(
        f"{words.date(e.at)} — {words.trigger(e.trigger)}"
        for e in log.events
        if _stop_or_start(e)
    )
    # The level before each event, and the event that gave the current one.
    before: list[str] = []
    level, reached = NONE, None
    for event in log.events:
        before.append(level)
        if event.level != level:
            reached = event
        level = event.level
    fields = [
        (words("receipt_contact"), _value(head.contact, "code")),
        (words("receipt_state"), _Value("text", words.state(head.state))),
        (words("receipt_level"), _value(words.level(head.level), "text")),
    ]
    if reached is not None:
        how = f"{words.date(reached.at)} — {words.trigger(reached.trigger)}"
        if reached.method is not None:
            how += f" ({reached.method})"
        fields.append((words("receipt_level_reached"), _value(how, "text")))
    fields.append((words("receipt_head_digest"), _Value("code", head.digest or "-")))
    return _Document(
        lang=words.locale,
        redacted=words("receipt_redacted"),
        title=words("receipt_title"),
        fields=tuple(fields),
        notes=tuple(notes),
        stops_title=words("receipt_stops"),
        stops=stops,
        none=words("receipt_none"),
        log_title=words("receipt_log"),
        entries=tuple(
            _entry(i, e, words, by_key, policy, before[i - 1])
            for i, e in enumerate(log.events, 1)
        ),
    )


def _verification(words: _Words, log: ConsentLog, problem: str | None) -> str:
    if problem is not None:
        return words("receipt_not_verified", problem=_visible(problem))
    return words("receipt_verified", count=words.number(len(log.events)))


def render_receipt(
    log: ConsentLog,
    records: Sequence[MessageRecord],
    policy: Policy,
    *,
    locale: str | None,
    zone: tzinfo,
    fmt: ReceiptFormat,
    problem: str | None = None,
) -> str:
    """The receipt of a contact's ``log`` (verified, unless ``problem`` says
    why it does not verify) and its outbox ``records``."""
    words = _words(locale, log.head.locale, policy, zone)
    doc = _document(log, records, policy, words, [_verification(words, log, problem)])
    return _write(doc, fmt)


def render_erased(
    erasure: Erasure,
    policy: Policy,
    *,
    locale: str | None,
    zone: tzinfo,
    fmt: ReceiptFormat,
) -> str:
    """The receipt of an erased contact: each erased log, redacted (texts,
    replies and evidence shown as their digests)."""
    parts = []
    for erased in erasure.logs:
        log = erased.log
        words = _words(locale, log.head.locale, policy, zone)
        notes = [
            words("receipt_erased", date=words.date(erased.erased_at), by=erased.by),
            _verification(words, log, None),
        ]
        parts.append(_write(_document(log, erased.messages, policy, words, notes), fmt))
    if fmt == "html":
        # One page: the bodies of the later documents after the first's.
        first, *rest = parts
        bodies = [p.split("<main", 1)[1].rsplit("</main>", 1)[0] for p in rest]
        extra = "".join(f"<main{b}</main>\n" for b in bodies)
        return first.replace("</body>", extra + "</body>", 1)
    return "\n".join(parts)


def _words(
    locale: str | None, contact_locale: str | None, policy: Policy, where: tzinfo
) -> _Words:
    if locale is not None:
        chosen = require_locale(locale)
    else:
        chosen = contact_locale or policy.default_locale
    return _Words(chosen, policy.default_locale, where)


# ---------------------------------------------------------------------------
# Formats


def _write(doc: _Document, fmt: ReceiptFormat) -> str:
    if fmt == "html":
        return _html(doc)
    if fmt == "markdown":
        return _markdown(doc)
    return _text(doc)


def _text_value(value: _Value, redacted: str, indent: str) -> str:
    """A value after its label: inline, or a verbatim block on the lines
    below, each behind a bar (so a reply cannot pass for the receipt's own
    lines)."""
    if value.kind == "redacted":
        return f" {redacted} {value.text}"
    if value.kind == "verbatim":
        return "".join(f"\n{indent}| {line}" for line in value.text.split("\n"))
    return " " + value.text.replace("\n", " ")


def _text(doc: _Document) -> str:
    redacted = doc.redacted
    out = [doc.title, "=" * len(doc.title), ""]
    out += [f"{label}:{_text_value(v, redacted, '')}" for label, v in doc.fields]
    out.append("")
    for note in doc.notes:
        out += [note, ""]
    out += [doc.stops_title, "-" * len(doc.stops_title)]
    out += [f"- {s}" for s in doc.stops] or [doc.none]
    out += ["", doc.log_title, "-" * len(doc.log_title), ""]
    for entry in doc.entries:
        out.append(entry.heading)
        out += [
            f"   {label}:{_text_value(v, redacted, '   ')}" for label, v in entry.fields
        ]
        out.append("")
    return "\n".join(out).rstrip("\n") + "\n"


#: Characters escaped in inline Markdown: emphasis, code, links, headings,
#: tables, HTML and entities. (Values never start a line, so the list
#: markers ``-``, ``+`` and ``1.`` need no escape.)
_MD_SPECIAL = frozenset("\\`*_[]()#!|<>~&")


def _md(text: str) -> str:
    """Inline Markdown text: every ASCII punctuation character escaped (so
    nothing is emphasis, a link or HTML), line breaks as spaces."""
    return "".join("\\" + ch if ch in _MD_SPECIAL else ch for ch in text).replace(
        "\n", " "
    )


def _longest_backticks(text: str) -> int:
    longest = run = 0
    for ch in text:
        run = run + 1 if ch == "`" else 0
        longest = max(longest, run)
    return longest


def _code_span(text: str) -> str:
    """An inline code span that holds ``text`` literally (CommonMark: a
    fence longer than any backtick run inside, padded by spaces)."""
    fence = "`" * (_longest_backticks(text) + 1)
    return f"{fence} {text.replace(chr(10), ' ')} {fence}"


def _md_value(value: _Value, redacted: str) -> str:
    if value.kind == "redacted":
        return f"{_md(redacted)} {_code_span(value.text)}"
    if value.kind == "code":
        return _code_span(value.text)
    if value.kind == "verbatim":
        # A fenced block (the caller puts it between blank lines): its
        # content is literal, whatever it holds.
        fence = "`" * max(3, _longest_backticks(value.text) + 1)
        return f"{fence}text\n{value.text}\n{fence}"
    return _md(value.text)


def _markdown(doc: _Document) -> str:
    redacted = doc.redacted
    out = [f"# {_md(doc.title)}", ""]
    out += [f"- **{_md(label)}:** {_md_value(v, redacted)}" for label, v in doc.fields]
    out.append("")
    for note in doc.notes:
        out += [_md(note), ""]
    out += [f"## {_md(doc.stops_title)}", ""]
    out += [f"- {_md(s)}" for s in doc.stops] or [_md(doc.none)]
    out += ["", f"## {_md(doc.log_title)}", ""]
    for entry in doc.entries:
        out += [f"### {_md(entry.heading)}", ""]
        for label, v in entry.fields:
            if v.kind == "verbatim":
                out += ["", f"**{_md(label)}:**", "", _md_value(v, redacted), ""]
            else:
                out.append(f"- **{_md(label)}:** {_md_value(v, redacted)}")
        out.append("")
    # One blank line between blocks, never two.
    out = [line for i, line in enumerate(out) if line or (i and out[i - 1])]
    return "\n".join(out).rstrip("\n") + "\n"


_CSS = (
    "body{font-family:system-ui,sans-serif;margin:2em;color:#111;background:#fff}"
    "main{max-width:48em}dt{font-weight:bold}dd{margin:0 0 .5em 1.5em}"
    "pre.verbatim{white-space:pre-wrap;background:#f4f4f4;border-left:4px solid #555;"
    "padding:.5em;font-size:1em}code{font-size:.9em;word-break:break-all}"
    ".note{border:1px solid #999;padding:.5em}section.event{margin:0 0 1em 1em}"
)


def _h(text: str) -> str:
    return html.escape(text, quote=True)


def _html_value(value: _Value, redacted: str) -> str:
    if value.kind == "redacted":
        return (
            f'<span class="redacted">{_h(redacted)}</span> '
            f"<code>{_h(value.text)}</code>"
        )
    if value.kind == "code":
        return f"<code>{_h(value.text)}</code>"
    if value.kind == "verbatim":
        return f'<pre class="verbatim {value.role}">{_h(value.text)}</pre>'
    return _h(value.text)


def _html_fields(fields: Iterable[tuple[str, _Value]], redacted: str) -> str:
    items = "".join(
        f"<dt>{_h(label)}</dt><dd>{_html_value(v, redacted)}</dd>"
        for label, v in fields
    )
    return f"<dl>{items}</dl>"


def _html(doc: _Document) -> str:
    redacted = doc.redacted
    stops = (
        "<ul>" + "".join(f"<li>{_h(s)}</li>" for s in doc.stops) + "</ul>"
        if doc.stops
        else f"<p>{_h(doc.none)}</p>"
    )
    entries = "".join(
        f'<section class="event"><h3>{_h(e.heading)}</h3>'
        f"{_html_fields(e.fields, redacted)}</section>\n"
        for e in doc.entries
    )
    notes = "".join(f'<p class="note">{_h(n)}</p>\n' for n in doc.notes)
    return (
        "<!DOCTYPE html>\n"
        f'<html lang="{_h(doc.lang)}">\n<head>\n<meta charset="utf-8">\n'
        f"<title>{_h(doc.title)}</title>\n<style>{_CSS}</style>\n</head>\n<body>\n"
        f'<main class="receipt">\n<h1>{_h(doc.title)}</h1>\n'
        f"{_html_fields(doc.fields, redacted)}\n{notes}"
        f"<h2>{_h(doc.stops_title)}</h2>\n{stops}\n"
        f"<h2>{_h(doc.log_title)}</h2>\n{entries}"
        "</main>\n</body>\n</html>\n"
    )
