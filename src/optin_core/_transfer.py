"""Export and import formats: what ``ConsentService.export`` writes and
``ConsentService.import_records`` reads, and the import's report.

* **JSONL** (``format="jsonl"``): one contact per line, the verified log as
  :meth:`ConsentLog.to_dict` writes it (``schema``, ``contact``, ``head``,
  ``log``) plus ``messages``, the outbox records with their delivery
  evidence; and one line per erased contact, ``{"schema": 2, "erasure":
  ...}`` (the suppression key and the redacted logs, no contact id). ASCII
  JSON, so any reply (lone surrogates included) survives the trip.
* **CSV** (``format="csv"``): a summary, one row per contact: ``contact``,
  ``state``, ``since`` (when the contact entered that state), ``source``
  (what put it there: ``sms:consent``, ``attest:email``,
  ``import:vendor``...), ``last_change``, then the consent ``level``
  (``express``, ``written``...), ``level_since`` and ``level_source`` (the
  event that gave it, written like ``source``). Erased contacts are not in
  it (their id is gone). An import reads ``contact``, ``state`` and
  ``since`` (and ``source`` and ``evidence`` when present): an imported
  opt-in gives ``express``, whatever a ``level`` column says (a summary row
  is no evidence of written consent; move logs with JSONL to keep it).

Reading a file never writes: every line is parsed and verified first (see
:func:`parse_jsonl_line`, :func:`parse_csv_row`); each refusal names its
line.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import re
from collections import Counter
from collections.abc import Callable, Iterator, Mapping
from datetime import datetime
from typing import IO, Literal

import attrs

from ._enums import ConsentState, Trigger
from ._erase import Erasure, record_from_dict, record_to_dict
from ._errors import ImportRefused, InvalidInput, RecordError, show
from ._levels import NONE
from ._log import ConsentLog
from ._records import AuditEvent
from .stores._base import MessageRecord

__all__ = [
    "CSV_COLUMNS",
    "ImportReport",
    "ImportRow",
]

#: The columns of a CSV export, in order.
CSV_COLUMNS = (
    "contact",
    "state",
    "since",
    "source",
    "last_change",
    "level",
    "level_since",
    "level_source",
)
#: The columns a CSV import needs.
CSV_REQUIRED = ("contact", "state", "since")

#: How many refused rows an :class:`ImportReport` lists one by one (the
#: counts are always complete).
MAX_LISTED = 1000

Format = Literal["jsonl", "csv"]
RowOutcome = Literal["applied", "unchanged", "refused"]


def check_format(fmt: object) -> Format:
    if fmt not in ("jsonl", "csv"):
        raise ValueError(f"format must be 'jsonl' or 'csv', got {show(fmt)}")
    return fmt


# ---------------------------------------------------------------------------
# The report


@attrs.frozen(kw_only=True, slots=True)
class ImportRow:
    """One row of an import that was not applied as asked: its ``line``
    (JSONL) or row (CSV, the header is row 1), its contact when known, and
    why.

    .. versionadded:: 0.2.0
    """

    line: int
    contact: str | None
    reason: str


@attrs.frozen(kw_only=True, slots=True)
class ImportReport:
    """What ``ConsentService.import_records`` did (or, with ``dry_run``,
    would do): how many rows were **applied**, **unchanged** (already so,
    imported before, nothing to import) and **refused** (an opt-in over a
    stop, an erased contact, an unreadable line skipped with
    ``continue_on_error``), with the count of each reason (``reasons``:
    outcome -> reason -> rows) and the refused rows themselves (the first
    :data:`MAX_LISTED`; ``listed_all`` says whether that is every one).

    .. versionadded:: 0.2.0
    """

    applied: int = 0
    unchanged: int = 0
    refused: int = 0
    reasons: Mapping[str, Mapping[str, int]] = attrs.field(factory=dict)
    refusals: tuple[ImportRow, ...] = ()
    listed_all: bool = True
    dry_run: bool = False
    rows: int = 0

    def __str__(self) -> str:
        what = "would be applied" if self.dry_run else "applied"
        lines = [
            f"{self.rows} rows: {self.applied} {what}, {self.unchanged} "
            f"unchanged, {self.refused} refused"
        ]
        for outcome in ("applied", "unchanged", "refused"):
            for reason, count in sorted(self.reasons.get(outcome, {}).items()):
                lines.append(f"  {outcome}: {reason}: {count}")
        return "\n".join(lines)


class Tally:
    """Builds an :class:`ImportReport` row by row, in constant memory (but
    the first :data:`MAX_LISTED` refused rows)."""

    def __init__(self, dry_run: bool) -> None:
        self.dry_run = dry_run
        self.counts: dict[str, Counter[str]] = {
            "applied": Counter(),
            "unchanged": Counter(),
            "refused": Counter(),
        }
        self.refusals: list[ImportRow] = []
        self.more = False

    def add(
        self, outcome: RowOutcome, reason: str, line: int, contact: str | None
    ) -> None:
        self.counts[outcome][reason] += 1
        if outcome == "refused":
            if len(self.refusals) < MAX_LISTED:
                self.refusals.append(
                    ImportRow(line=line, contact=contact, reason=reason)
                )
            else:
                self.more = True

    def report(self) -> ImportReport:
        totals = {k: sum(v.values()) for k, v in self.counts.items()}
        return ImportReport(
            applied=totals["applied"],
            unchanged=totals["unchanged"],
            refused=totals["refused"],
            reasons={k: dict(v) for k, v in self.counts.items() if v},
            refusals=tuple(self.refusals),
            listed_all=not self.more,
            dry_run=self.dry_run,
            rows=sum(totals.values()),
        )


# ---------------------------------------------------------------------------
# Rows as read


@attrs.frozen(slots=True)
class LogRow:
    """A JSONL line of a contact: its verified log and outbox records."""

    line: int
    log: ConsentLog
    messages: tuple[MessageRecord, ...]


@attrs.frozen(slots=True)
class ErasureRow:
    """A JSONL line of an erased contact (verified)."""

    line: int
    erasure: Erasure


@attrs.frozen(slots=True)
class CsvRow:
    """A CSV row: a contact and the state its source gives it."""

    line: int
    contact: str
    state: ConsentState
    since: datetime | None
    source: str | None
    evidence: str | None


Row = LogRow | ErasureRow | CsvRow


# ---------------------------------------------------------------------------
# Writing


_dumps = json.JSONEncoder(ensure_ascii=True, separators=(",", ":")).encode


def jsonl_line(log: ConsentLog, records: list[MessageRecord]) -> str:
    """The export line of a contact (ASCII JSON and a newline)."""
    data = log.to_dict()
    data["messages"] = [record_to_dict(r) for r in records]
    return _dumps(data) + "\n"


def erasure_line(erasure: Erasure) -> str:
    """The export line of an erased contact."""
    return _dumps({"schema": 2, "erasure": erasure.to_dict()}) + "\n"


def since(log: ConsentLog) -> datetime | None:
    """When the contact entered its current state (``None`` for NEW)."""
    head = log.head
    return {
        ConsentState.OPTED_IN: head.opted_in_at,
        ConsentState.STOPPED: head.stopped_at,
        ConsentState.PENDING: head.requested_at,
        ConsentState.DISCLOSED: head.disclosed_at,
    }.get(head.state)


def source_of(event: AuditEvent) -> str:
    """What an event came from, for the CSV's ``source`` column."""
    if event.input == "inbound":
        return f"sms:{event.trigger.value}"
    if event.input == "attest":
        return f"attest:{event.method}"
    if event.input == "import":
        return str(event.method)
    if event.input == "provider_opt_out":
        return str(event.actor)
    return event.trigger.value


def entered_by(log: ConsentLog) -> AuditEvent | None:
    """The event that moved the contact into its current state."""
    state = log.head.state
    for event in reversed(log.events):
        if event.to_state is state and (
            event.from_state is not state or event.trigger is Trigger.REVOKE
        ):
            return event
    return None


def level_reached(log: ConsentLog) -> AuditEvent | None:
    """The event that gave the contact its current consent level (``None``
    while it never changed)."""
    reached, level = None, NONE
    for event in log.events:
        if event.level != level:
            reached, level = event, event.level
    return reached


_PLAIN = re.compile(r"[+-]?[0-9][0-9 ().-]*")
_FORMULA = ("=", "+", "-", "@", "\t", "\r")


def _cell(value: str) -> str:
    """A CSV cell a spreadsheet will not run as a formula: a value starting
    with = + - @ or a control gets a leading apostrophe, unless it is a plain
    number ("+33612345678" stays as it is)."""
    if value.startswith(_FORMULA) and not _PLAIN.fullmatch(value):
        return "'" + value
    return value


def _uncell(value: str) -> str:
    if value.startswith("'") and value[1:].startswith(_FORMULA):
        return value[1:]
    return value


def csv_header() -> str:
    return _csv_line(CSV_COLUMNS)


def csv_line(log: ConsentLog) -> str:
    """The export row of a contact."""
    when = since(log)
    entered = entered_by(log)
    last = log.head.last_at
    leveled = level_reached(log)
    return _csv_line(
        (
            _cell(log.contact),
            log.head.state.value,
            "" if when is None else when.isoformat(),
            "" if entered is None else _cell(source_of(entered)),
            "" if last is None else last.isoformat(),
            log.head.level,
            "" if leveled is None else leveled.input_time.isoformat(),
            "" if leveled is None else _cell(source_of(leveled)),
        )
    )


def _csv_line(cells: tuple[str, ...]) -> str:
    out = io.StringIO()
    csv.writer(out, lineterminator="\n").writerow(cells)
    return out.getvalue()


# ---------------------------------------------------------------------------
# Reading


def parse_jsonl_line(
    line: int,
    text: str,
    *,
    log_key: bytes | None,
    canonical: Callable[[str], str],
) -> Row:
    """A JSONL line, read and verified; :class:`ImportRefused` naming the
    line when it is not JSON, has an unknown schema, fails verification or
    holds a contact id that is not the service's canonical one."""
    try:
        data = json.loads(text)
    except ValueError as e:
        raise ImportRefused(line, f"not JSON ({e})") from None
    if not isinstance(data, dict):
        raise ImportRefused(line, f"expected a JSON object, got {show(data)}")
    try:
        if "erasure" in data:
            if data.get("schema") != 2:
                raise RecordError(
                    "schema", f"unknown schema version {show(data.get('schema'))}"
                )
            erasure = Erasure.from_dict(data["erasure"])
            erasure.verify(log_key=log_key)
            return ErasureRow(line, erasure)
        log = ConsentLog.from_dict(data, log_key=log_key)
        raw = data.get("messages", [])
        if not isinstance(raw, list):
            raise RecordError("messages", "expected a list")
        records = tuple(
            record_from_dict(m, field=f"messages[{i}]") for i, m in enumerate(raw)
        )
    except RecordError as e:
        raise ImportRefused(line, _problem(e)) from None
    except (TypeError, ValueError) as e:  # pragma: no cover - defensive
        raise ImportRefused(line, str(e)) from None
    contact = log.contact
    try:
        wanted = canonical(contact)
    except (TypeError, InvalidInput) as e:
        raise ImportRefused(line, f"contact {contact!r}: {e}") from None
    if wanted != contact:
        raise ImportRefused(
            line,
            f"contact {contact!r} is not this service's canonical id "
            f"({wanted!r}); its log is chained to the id it was written under",
        )
    for record in records:
        if record.message.contact != contact:
            raise ImportRefused(line, "a message record of another contact")
    return LogRow(line, log, records)


def _problem(e: RecordError) -> str:
    where = f" (contact {e.contact!r})" if e.contact else ""
    return f"{e.field}: {e.problem}{where}"


def csv_rows(fp: IO[str]) -> Iterator[tuple[int, dict[str, str | None] | None, str]]:
    """``(row number, cells, problem)`` for each data row of a CSV file
    (the header is row 1); ``cells`` is ``None`` and ``problem`` says why
    when the header lacks a needed column (row 1)."""
    reader = csv.DictReader(fp)
    header = reader.fieldnames
    names = [] if header is None else [h.strip().lower() for h in header]
    missing = [c for c in CSV_REQUIRED if c not in names]
    if missing:
        yield 1, None, f"missing column(s) {', '.join(missing)} in the header"
        return
    for number, row in enumerate(reader, 2):
        cells = {(k or "").strip().lower(): v for k, v in row.items() if k is not None}
        yield number, cells, ""


def parse_csv_row(
    line: int, cells: Mapping[str, str | None], canonical: Callable[[str], str]
) -> CsvRow:
    """A CSV row, read; :class:`ImportRefused` naming the row for an
    unknown state, a naive or malformed timestamp, a missing cell or an
    unusable contact id."""
    raw = {k: (v or "").strip() for k, v in cells.items()}
    for name in CSV_REQUIRED:
        if cells.get(name) is None:
            raise ImportRefused(line, f"row has no {name!r} cell")
    contact_text = _uncell(raw["contact"])
    try:
        contact = canonical(contact_text)
    except (TypeError, InvalidInput) as e:
        raise ImportRefused(line, f"contact {contact_text!r}: {e}") from None
    state_text = raw["state"].lower()
    try:
        state = ConsentState(state_text)
    except ValueError:
        allowed = ", ".join(s.value for s in ConsentState)
        raise ImportRefused(
            line, f"unknown state {raw['state']!r} (expected one of {allowed})"
        ) from None
    when: datetime | None = None
    if raw["since"]:
        try:
            when = datetime.fromisoformat(raw["since"])
        except ValueError:
            raise ImportRefused(
                line, f"since {raw['since']!r} is not an ISO 8601 timestamp"
            ) from None
        if when.tzinfo is None or when.utcoffset() is None:
            raise ImportRefused(
                line,
                f"since {raw['since']!r} is a naive timestamp: add its zone "
                "(e.g. +00:00 or Z)",
            )
    return CsvRow(
        line,
        contact,
        state,
        when,
        _uncell(raw.get("source", "")) or None,
        raw.get("evidence") or None,
    )


def import_id(source: str, *parts: object) -> str:
    """The id of an imported row: a digest of what it says (not of where it
    sits in the file), so the same row imported again is recognised."""
    text = json.dumps([source, *[str(p) for p in parts]], ensure_ascii=True)
    return "import:" + hashlib.sha256(text.encode("ascii")).hexdigest()
