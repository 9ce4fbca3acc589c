"""Compliance tools through the service (issue 12): export, import that
never un-stops, erasure that keeps the suppression, retention; on every
store of ``SERVICE_STORE_KINDS``."""

from __future__ import annotations

import asyncio
import csv
import io
import json
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import psycopg
import pytest
from hypothesis import HealthCheck, assume, given, settings

from optin_core import (
    AsyncConsentService,
    ConsentService,
    ConsentState,
    ContactStopped,
    Import,
    InvalidInput,
    MemoryStore,
    MessageKind,
    Policy,
    SendBlocked,
    Trigger,
    decide,
)
from optin_core._erase import suppression_key
from optin_core._errors import ImportRefused, UnknownContact
from optin_core._log import ConsentLog
from optin_core._transfer import ImportReport

from .service_helpers import SERVICE_STORE_KINDS, T0, Clock, Sender, make_store
from .strategies import conversations

POLICY = Policy(
    org_name="Hearsay",
    program_name="Hearsay Conseil",
    attestation_methods=frozenset({"web_form"}),
)
A = "+33612345678"
B = "+15550001111"
C = "+15550002222"
D = "+15550003333"
E = "+15550004444"

#: The digits of A without its "+": what a grep of an erased store looks for.
A_DIGITS = A[1:].encode()


@pytest.fixture(params=SERVICE_STORE_KINDS)
def kind(request: pytest.FixtureRequest) -> str:
    result: str = request.param
    return result


@pytest.fixture
def stores(kind: str, tmp_path: Path) -> Iterator[Any]:
    """A factory of fresh stores of the parametrized kind."""
    made: list[Any] = []

    def new() -> Any:
        path = tmp_path / f"s{len(made)}"
        path.mkdir()
        store = make_store(kind, path)
        made.append(store)
        return store

    yield new
    for store in made:
        close = getattr(store, "close", None)
        if close is not None:
            close()


def service(store: Any, clock: Clock | None = None, **kw: Any) -> ConsentService:
    return ConsentService(
        kw.pop("policy", POLICY),
        store,
        kw.pop("send", None) or provider_ids(),
        clock=clock or Clock(),
        on_send_error=lambda _m, _e: None,
        **kw,
    )


def provider_ids() -> Any:
    counter = iter(range(10_000))

    def send(_message: Any) -> str:
        return f"SM{next(counter):04d}"

    return send


def populate(svc: ConsentService, clock: Clock) -> None:
    """Contacts in every interesting state, with delivery evidence."""
    svc.request_opt_in(
        A, greeting="Je suis Martha de Hearsay", by="martha", locale="fr"
    )
    clock.advance(minutes=1)
    svc.receive(A, "C'est pour quoi ?", message_id="in-a1")
    svc.receive(A, "Oui", message_id="in-a2")
    svc.send_text(A, "Votre bilan est prêt.", by="martha")
    svc.delivery_status("SM0003", "delivered")
    clock.advance(minutes=1)
    svc.receive(A, "STOP", message_id="in-a3")
    svc.attest(B, method="web_form", evidence="form 77", by="ops")
    svc.request_opt_in(C, by="agent")
    svc.request_opt_in(D, by="agent")
    svc.receive(D, "yes", message_id="in-d1")
    clock.advance(minutes=1)


def export(svc: ConsentService, fmt: str = "jsonl") -> str:
    out = io.StringIO()
    svc.export(out, format=fmt)  # type: ignore[arg-type]
    return out.getvalue()


def dump(store: Any) -> tuple[Any, ...]:
    """Everything a store holds of its contacts and erasures."""
    contacts = store.contacts()
    return (
        [(c, store.get(c), store.log(c), store.messages(c)) for c in contacts],
        store.erasures(),
    )


# ---------------------------------------------------------------------------
# Export, then import into an empty store: the same heads and logs


def test_round_trip_through_an_empty_store(stores: Any) -> None:
    clock = Clock()
    source = stores()
    svc = service(source, clock, send=provider_ids())
    populate(svc, clock)
    svc.erase(D, by="dpo", reason="request 1")
    exported = export(svc)
    lines = exported.splitlines()
    assert len(lines) == 4  # A, B, C live; D erased
    assert json.loads(lines[-1])["erasure"]["key"] == suppression_key(D)
    target = stores()
    into = service(target, clock)
    progress: list[tuple[int, int | None]] = []
    report = into.import_records(
        io.StringIO(exported),
        source="store A",
        progress=lambda d, t: progress.append((d, t)),
    )
    assert (report.applied, report.unchanged, report.refused) == (4, 0, 0)
    assert report.reasons["applied"] == {
        "restored (its log as exported)": 3,
        "erased: suppression imported": 1,
    }
    assert progress == [(1, 4), (2, 4), (3, 4), (4, 4)]
    assert dump(target) == dump(source)
    assert export(into) == exported
    # The erased contact stays suppressed in the new store.
    assert not into.can_send(D)
    with pytest.raises(ContactStopped):
        into.request_opt_in(D)
    # The restored log takes new decisions, and its history verifies.
    assert into.history(A).head == svc.history(A).head
    into.receive(A, "START", message_id="in-a4")
    assert into.can_send(A)


def test_importing_the_same_file_twice_changes_nothing(stores: Any) -> None:
    clock = Clock()
    svc = service(stores(), clock)
    populate(svc, clock)
    exported = export(svc)
    target = stores()
    into = service(target, clock)
    into.import_records(io.StringIO(exported), source="A")
    before = dump(target)
    report = into.import_records(io.StringIO(exported), source="A")
    assert (report.applied, report.refused) == (0, 0)
    assert report.reasons == {"unchanged": {"already in the store": 4}}
    assert dump(target) == before
    # CSV too: the second import of a summary finds every row done.
    table = export(svc, "csv")
    fresh = stores()
    csv_into = service(fresh, clock)
    first = csv_into.import_records(io.StringIO(table), format="csv", source="vendor")
    assert first.applied == 3  # A stopped, B and D opted in; C pending: nothing
    snapshot = dump(fresh)
    second = csv_into.import_records(io.StringIO(table), format="csv", source="vendor")
    assert second.applied == 0
    assert second.reasons["unchanged"] == {
        "imported before": 3,
        "no consent or stop to import": 1,
    }
    assert dump(fresh) == snapshot


# ---------------------------------------------------------------------------
# Imports never un-stop


def test_an_old_opted_in_export_never_unstops(stores: Any) -> None:
    clock = Clock()
    store = stores()
    svc = service(store, clock)
    svc.attest(B, method="web_form", evidence="form 77", by="ops")
    old = export(svc)  # B opted in
    clock.advance(minutes=5)
    svc.receive(B, "STOP", message_id="in-b1")
    before = dump(store)
    # This store's own old export: its log already holds it, and more.
    report = svc.import_records(io.StringIO(old), source="old backup")
    assert report.reasons == {"unchanged": {"already in the store": 1}}
    assert dump(store) == before
    # Another system's opted-in record: refused, the contact stays STOPPED.
    other = service(stores(), clock)
    other.attest(B, method="web_form", evidence="form 12", by="ops")
    report = svc.import_records(io.StringIO(export(other)), source="system B")
    assert report.refused == 1
    (row,) = report.refusals
    assert (row.line, row.contact) == (1, B)
    assert "never restarts" in row.reason
    assert svc.get(B).state is ConsentState.STOPPED
    assert not svc.can_send(B)
    assert dump(store) == before


def test_a_stopped_export_stops_an_opted_in_contact(stores: Any) -> None:
    clock = Clock()
    other = service(stores(), clock)
    other.attest(B, method="web_form", evidence="form 77", by="ops")
    other.receive(B, "STOP", message_id="x1")
    stopped = export(other)
    store = stores()
    sender = Sender(fail=lambda m: m.kind is MessageKind.TEXT)
    svc = service(store, clock, send=sender)
    svc.attest(B, method="web_form", evidence="form 78", by="ops")
    svc.send_text(B, "a text whose send fails", by="agent")  # stays queued
    (queued,) = store.pending(contact=B)
    report = svc.import_records(io.StringIO(stopped), source="system B")
    assert report.reasons == {"applied": {"stop imported": 1}}
    head = svc.get(B)
    assert head.state is ConsentState.STOPPED
    log = svc.history(B).events
    stop, cancel = log[-2:]
    assert stop.trigger is Trigger.IMPORT_STOP
    assert stop.input == "import"
    assert stop.method == "import:system B"
    assert stop.message_id is not None
    assert stop.message_id.startswith("import:")
    assert "exported log head" in (stop.evidence or "")
    assert stop.sent == ()  # nothing sent: the contact did not write
    assert cancel.trigger is Trigger.CANCEL
    assert cancel.cancelled == (queued.key,)
    assert store.pending(contact=B) == []
    # The same file again: imported before, nothing changes.
    again = svc.import_records(io.StringIO(stopped), source="system B")
    assert again.reasons == {"unchanged": {"imported before": 1}}
    # A stop from elsewhere, over a stopped contact: already so.
    third = service(stores(), clock)
    third.revoke(B, by="ops", reason="phone call")
    report = svc.import_records(io.StringIO(export(third)), source="system C")
    assert report.reasons == {"unchanged": {"stopped already": 1}}


def test_an_imported_row_is_recognised_after_the_contact_moved_on(
    stores: Any,
) -> None:
    clock = Clock()
    store = stores()
    svc = service(store, clock)
    svc.attest(B, method="web_form", evidence="f", by="ops")
    table = "contact,state,since\n+15550001111,stopped,2025-01-01T00:00:00+00:00\n"
    svc.import_records(io.StringIO(table), format="csv", source="vendor")
    assert svc.get(B).state is ConsentState.STOPPED
    clock.advance(minutes=1)
    svc.receive(B, "START", message_id="in-b9")  # the contact restarts
    report = svc.import_records(io.StringIO(table), format="csv", source="vendor")
    assert report.reasons == {"unchanged": {"imported before": 1}}
    assert svc.can_send(B)


def test_csv_import_through_the_core(stores: Any) -> None:
    clock = Clock()
    store = stores()
    svc = service(store, clock)
    svc.request_opt_in(C, by="agent")
    table = (
        "Contact,State,Since,Source,Evidence\n"
        "+1 555 000 1111,opted_in,2024-06-01T10:00:00Z,web,form 12\n"
        "+15550002222,opted_in,2024-06-01T10:00:00+02:00,,\n"
        "'+15550003333,stopped,,carrier,\n"
        "+15550004444,new,,,\n"
    )
    report = svc.import_records(
        io.StringIO(table), format="csv", source="braze", by="ops"
    )
    assert report.reasons == {
        "applied": {"opt-in imported": 2, "stop imported": 1},
        "unchanged": {"no consent or stop to import": 1},
    }
    event = svc.history(B).events[-1]
    assert event.trigger is Trigger.IMPORT_OPT_IN
    assert event.actor == "ops"
    assert (
        event.evidence
        == "opted_in since 2024-06-01T10:00:00+00:00; row 2; source: web; form 12"
    )
    assert svc.get(B).opted_in_at == T0  # the import's time, not the source's
    # A pending contact opts in by import; a stopped row stops a new contact.
    assert svc.get(C).state is ConsentState.OPTED_IN
    assert svc.get(D).state is ConsentState.STOPPED
    assert svc.get(E).version == 0


# ---------------------------------------------------------------------------
# Bad input: refused whole, naming the line; or skipped when asked


def _bad_jsonl(lines: list[str], at: int, text: str) -> str:
    return "\n".join([*lines[: at - 1], text, *lines[at - 1 :]]) + "\n"


@pytest.mark.parametrize(
    ("bad", "problem"),
    [
        ("{not json", "not JSON"),
        ('{"schema": 9, "contact": "+1"}', "unknown schema version 9"),
        ("[1, 2]", "expected a JSON object"),
        ('{"schema": 2, "erasure": {"schema": 2, "key": "x"}}', "key"),
    ],
)
def test_a_bad_jsonl_line_refuses_the_whole_file(
    stores: Any, bad: str, problem: str
) -> None:
    clock = Clock()
    svc = service(stores(), clock)
    populate(svc, clock)
    lines = export(svc).splitlines()
    target = stores()
    into = service(target, clock)
    with pytest.raises(ImportRefused, match=problem) as info:
        into.import_records(io.StringIO(_bad_jsonl(lines, 3, bad)), source="x")
    assert info.value.line == 3
    assert "line 3" in str(info.value)
    assert target.contacts() == []
    assert target.erasures() == []
    # With continue_on_error the line is reported and skipped.
    report = into.import_records(
        io.StringIO(_bad_jsonl(lines, 3, bad)), source="x", continue_on_error=True
    )
    assert report.applied == 4
    assert report.refused == 1
    assert report.refusals[0].line == 3
    assert report.refusals[0].reason.startswith("unreadable: ")
    assert len(target.contacts()) == 4


def test_a_tampered_log_fails_verification_and_names_its_line(stores: Any) -> None:
    clock = Clock()
    svc = service(stores(), clock)
    populate(svc, clock)
    lines = export(svc).splitlines()
    at = next(i for i, line in enumerate(lines) if json.loads(line)["contact"] == A)
    record = json.loads(lines[at])
    # The STOP reply rewritten as a YES: the chain no longer matches.
    stop = next(e for e in record["log"] if e["trigger"] == "stop")
    stop["reply"]["text"] = "Oui"
    lines[at] = json.dumps(record)
    target = stores()
    with pytest.raises(ImportRefused) as info:
        service(target, clock).import_records(io.StringIO("\n".join(lines)), source="x")
    assert info.value.line == at + 1
    assert "digest" in info.value.problem
    assert target.contacts() == []


def test_a_log_under_a_non_canonical_contact_id_is_refused(stores: Any) -> None:
    clock = Clock()
    svc = service(stores(), clock, contact_key=None)
    svc.attest("+1 555 000 1111", method="web_form", evidence="f", by="ops")
    with pytest.raises(ImportRefused, match="canonical"):
        service(stores(), clock).import_records(io.StringIO(export(svc)), source="x")


@pytest.mark.parametrize(
    ("table", "line", "problem"),
    [
        ("contact,state\n+15550001111,stopped\n", 1, "missing column"),
        ("contact,state,since\n+15550001111,unsubscribed,\n", 2, "unknown state"),
        (
            "contact,state,since\n+15550001111,stopped,\n"
            "+15550002222,stopped,2024-01-01T00:00:00\n",
            3,
            "naive timestamp",
        ),
        ("contact,state,since\n+15550001111,stopped,yesterday\n", 2, "ISO 8601"),
        ("contact,state,since\n+15550001111,stopped\n", 2, "no 'since' cell"),
        ("contact,state,since\n,stopped,\n", 2, "contact"),
    ],
)
def test_a_bad_csv_row_refuses_the_whole_file(
    stores: Any, table: str, line: int, problem: str
) -> None:
    store = stores()
    svc = service(store)
    with pytest.raises(ImportRefused, match=problem) as info:
        svc.import_records(io.StringIO(table), format="csv", source="vendor")
    assert info.value.line == line
    assert store.contacts() == []


def test_a_csv_header_problem_refuses_even_when_continuing(stores: Any) -> None:
    svc = service(stores())
    with pytest.raises(ImportRefused, match="missing column"):
        svc.import_records(
            io.StringIO("phone,status\n"),
            format="csv",
            source="v",
            continue_on_error=True,
        )


def test_import_arguments_are_checked(stores: Any) -> None:
    svc = service(stores())
    with pytest.raises(ValueError, match="format"):
        svc.import_records(io.StringIO(""), format="xml", source="x")  # type: ignore[arg-type]
    with pytest.raises(InvalidInput, match="source"):
        svc.import_records(io.StringIO(""), source=" ")
    with pytest.raises(TypeError, match="progress"):
        svc.import_records(io.StringIO(""), source="x", progress=3)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="text file"):
        svc.import_records(io.BytesIO(b""), source="x")  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="text file"):
        svc.export(io.BytesIO())  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="page_size"):
        svc.export(io.StringIO(), page_size=0)
    empty = svc.import_records(io.StringIO("\n\n"), source="x")
    assert empty == ImportReport()


class _Stream(io.StringIO):
    """A stream that cannot seek (a pipe, a socket)."""

    def seekable(self) -> bool:
        return False


def test_an_unseekable_stream_is_read_twice_through_a_spool(stores: Any) -> None:
    clock = Clock()
    svc = service(stores(), clock)
    populate(svc, clock)
    exported = export(svc)
    target = stores()
    report = service(target, clock).import_records(_Stream(exported), source="pipe")
    assert report.applied == 4


# ---------------------------------------------------------------------------
# Dry run


def test_a_dry_run_writes_nothing_and_reports_what_would_be_done(
    stores: Any,
) -> None:
    clock = Clock()
    svc = service(stores(), clock)
    populate(svc, clock)
    svc.erase(D, by="dpo", reason="r")
    exported = export(svc)
    target = stores()
    into = service(target, clock)
    into.attest(A, method="web_form", evidence="f", by="ops")  # A opted in here
    before = dump(target)
    dry = into.import_records(io.StringIO(exported), source="A", dry_run=True)
    assert dump(target) == before
    assert dry.dry_run
    real = into.import_records(io.StringIO(exported), source="A")
    assert attrs_without_dry(dry) == attrs_without_dry(real)
    assert real.reasons["applied"]["stop imported"] == 1  # A stopped there
    assert "would be applied" in str(dry)


def attrs_without_dry(report: ImportReport) -> tuple[Any, ...]:
    return (report.applied, report.unchanged, report.refused, report.reasons)


# ---------------------------------------------------------------------------
# Erasure


def _erasable(svc: ConsentService, clock: Clock) -> None:
    """A contact whose number is everywhere: in its replies, an evidence
    reference, a revocation's reason and a provider's error text."""
    svc.request_opt_in(A, greeting="Bonjour", by="martha", locale="fr")
    svc.receive(A, f"my number is {A}, who is this?", message_id="in-a1")
    svc.attest(A, method="web_form", evidence=f"form for {A}", by="ops")
    svc.send_text(A, f"Hello {A}", by="martha")
    clock.advance(minutes=1)


def test_erasure_removes_the_contact_and_keeps_the_suppression(
    stores: Any, tmp_path: Path
) -> None:
    clock = Clock()
    store = stores()
    sender = Sender(fail=lambda m: m.kind is MessageKind.TEXT)
    svc = service(store, clock, send=sender)
    _erasable(svc, clock)
    svc.send_text(B, "x", by="m") if svc.can_send(B) else None
    svc.attest(B, method="web_form", evidence="f", by="ops")
    (queued,) = store.pending(contact=A)  # the text whose send failed
    store.release(queued.key, error=f"provider says {A} is invalid")
    erasure = svc.erase(A, by="dpo", reason="GDPR art. 17, ticket 9")
    # The contact was stopped first, its queued text withdrawn.
    (erased,) = erasure.logs
    triggers = [e.trigger for e in erased.log.events]
    assert triggers[-2:] == [Trigger.REVOKE, Trigger.CANCEL]
    assert erased.log.head.state is ConsentState.STOPPED
    assert erased.by == "dpo"
    # Nothing of the contact's id is left in the store.
    assert store.get(A) is None
    assert store.log(A) == []
    assert store.messages(A) == []
    assert A not in store.contacts()
    held = json.dumps(erasure.logs[0].log.to_dict())
    assert A[1:] not in held
    assert "who is this" not in held
    assert "form for" not in held
    # Every digest kept: the redacted log verifies, and so does the export.
    assert svc.erasure(A) == erasure
    exported = export(svc)
    assert A[1:] not in exported
    # Never texted, attested or imported again...
    assert not svc.can_send(A)
    assert svc.get(A).state is ConsentState.STOPPED
    with pytest.raises(SendBlocked):
        svc.send_text(A, "hi", by="m")
    with pytest.raises(ContactStopped):
        svc.attest(A, method="web_form", evidence="f", by="ops")
    with pytest.raises(ContactStopped):
        svc.request_opt_in(A)
    table = f"contact,state,since\n{A},opted_in,\n"
    report = svc.import_records(io.StringIO(table), format="csv", source="v")
    assert report.refused == 1
    assert "erased here" in report.refusals[0].reason
    revoked = svc.revoke(A, by="ops", reason="again")
    assert not revoked.changed  # the number stays out of the store
    assert store.get(A) is None
    # ...erasing twice is a no-op, an unknown contact a clear error.
    assert svc.erase(A, by="dpo", reason="again") == erasure
    with pytest.raises(UnknownContact, match="no record"):
        svc.erase(E, by="dpo", reason="r")
    # The other contact is untouched.
    assert svc.can_send(B)
    _nowhere(store, tmp_path)


def _nowhere(store: Any, tmp_path: Path) -> None:
    """The erased number is in no byte of the database."""
    target = getattr(store, "target", store)
    if hasattr(target, "conninfo"):
        with psycopg.connect(target.conninfo, autocommit=True) as conn:
            tables = [
                r[0]
                for r in conn.execute(
                    "SELECT table_name FROM information_schema.tables "
                    "WHERE table_schema = current_schema()"
                ).fetchall()
            ]
            assert {"consents", "events", "outbox", "erasures"} <= set(tables)
            for table in tables:
                rows = conn.execute(f"SELECT t::text FROM {table} AS t").fetchall()
                text = "".join(r[0] for r in rows)
                assert A[1:] not in text, table
        return
    path = getattr(target, "path", None)
    if path is None:
        return  # MemoryStore: dropped references
    files = [Path(path), Path(f"{path}-wal")]
    data = b"".join(f.read_bytes() for f in files if f.exists())
    assert len(data) > 4096
    assert A_DIGITS not in data
    assert b"who is this" not in data
    assert B[1:].encode() in data  # the grep does find a contact that is there


def test_an_erased_contact_comes_back_only_by_texting_start(stores: Any) -> None:
    clock = Clock()
    store = stores()
    svc = service(store, clock)
    svc.attest(A, method="web_form", evidence="f", by="ops")
    clock.advance(minutes=10)
    erasure = svc.erase(A, by="dpo", reason="r")
    # A START sent before the erasure (a delayed webhook) restarts nothing.
    stale = svc.receive(A, "START", message_id="old", at=T0 + timedelta(minutes=1))
    assert not stale.changed
    assert store.get(A) is None
    clock.advance(minutes=1)
    back = svc.receive(A, "START", message_id="new")
    assert back.consent.state is ConsentState.OPTED_IN
    log = svc.history(A)
    assert [e.trigger for e in log.events] == [Trigger.REVOKE, Trigger.RESTART]
    assert log.events[0].at == erasure.erased_at
    assert log.events[0].actor == "optin_core:erasure"
    assert svc.can_send(A)
    # The suppression stays on record; erasing again keeps both logs.
    clock.advance(minutes=1)
    again = svc.erase(A, by="dpo", reason="second request")
    assert [e.by for e in again.logs] == ["dpo", "dpo"]
    assert again.logs[0] == erasure.logs[0]
    assert not svc.can_send(A)
    # The receipt shows both redacted logs, on one page.
    page = svc.receipt(A, format="html", locale="en")
    assert page.count('<main class="receipt">') == 2
    assert page.count("<html") == 1
    assert svc.receipt(A, locale="en").count("Consent receipt\n") == 2


def test_an_imported_erasure_stops_a_live_record_of_the_number(stores: Any) -> None:
    clock = Clock()
    source = service(stores(), clock)
    source.attest(A, method="web_form", evidence="f", by="ops")
    source.erase(A, by="dpo", reason="r")
    exported = export(source)
    store = stores()
    svc = service(store, clock)
    svc.attest(A, method="web_form", evidence="g", by="ops")
    report = svc.import_records(io.StringIO(exported), source="A")
    assert report.reasons == {
        "applied": {
            "erased: suppression imported": 1,
            "stop imported (erased in the source)": 1,
        }
    }
    assert not svc.can_send(A)
    assert svc.history(A).events[-1].evidence.endswith("erased in the source")


def test_erase_arguments_are_checked(stores: Any) -> None:
    svc = service(stores())
    svc.attest(A, method="web_form", evidence="f", by="ops")
    with pytest.raises(InvalidInput, match="by"):
        svc.erase(A, by="", reason="r")
    with pytest.raises(InvalidInput, match="reason"):
        svc.erase(A, by="dpo", reason=" ")
    assert svc.erasure(A) is None
    assert svc.can_send(A)


# ---------------------------------------------------------------------------
# Retention through the service


def test_purge_delivered_through_the_service(stores: Any) -> None:
    clock = Clock()
    store = stores()
    svc = service(store, clock)
    svc.attest(B, method="web_form", evidence="f", by="ops")
    svc.send_text(B, "hello", by="m")
    clock.advance(days=40)
    assert svc.purge_delivered(older_than=clock() - timedelta(days=30)) == 1
    assert store.messages(B) == []
    assert len(svc.history(B).events) == 2
    receipt = svc.receipt(B, locale="en")
    assert "no delivery record (purged after the retention period)" in receipt
    with pytest.raises(InvalidInput, match="naive"):
        svc.purge_delivered(older_than=clock().replace(tzinfo=None))
    with pytest.raises(TypeError):
        svc.purge_delivered(older_than="2025")  # type: ignore[arg-type]


# ---------------------------------------------------------------------------
# Export details


def test_csv_export_is_a_summary_safe_for_spreadsheets(stores: Any) -> None:
    clock = Clock()
    svc = service(stores(), clock, contact_key=None)
    populate(svc, clock)
    svc.attest("=HYPERLINK(1)", method="web_form", evidence="f", by="ops")
    rows = list(csv.DictReader(io.StringIO(export(svc, "csv"))))
    by_contact = {r["contact"]: r for r in rows}
    assert by_contact[A]["state"] == "stopped"
    assert by_contact[A]["source"] == "sms:stop"
    assert by_contact[B]["source"] == "attest:web_form"
    assert by_contact[C]["state"] == "pending"
    assert by_contact[D]["source"] == "sms:consent"
    assert by_contact["'=HYPERLINK(1)"]["state"] == "opted_in"  # not a formula
    assert list(rows[0]) == [
        "contact",
        "state",
        "since",
        "source",
        "last_change",
        "level",
        "level_since",
        "level_source",
    ]
    # The consent level, and the event that gave it.
    assert (by_contact[A]["level"], by_contact[A]["level_source"]) == (
        "none",
        "sms:stop",
    )
    assert by_contact[B]["level"] == "express"
    assert by_contact[B]["level_source"] == "attest:web_form"
    assert by_contact[B]["level_since"] == by_contact[B]["since"]
    assert (by_contact[C]["level"], by_contact[C]["level_since"]) == ("none", "")


def test_export_pages_and_reports_progress(stores: Any) -> None:
    clock = Clock()
    svc = service(stores(), clock)
    for n in range(7):
        svc.attest(f"+1555777{n:04d}", method="web_form", evidence="f", by="ops")
    seen: list[int] = []
    out = io.StringIO()
    assert svc.export(out, page_size=3, progress=lambda d, t: seen.append(d)) == 7
    assert seen == list(range(1, 8))
    contacts = [json.loads(line)["contact"] for line in out.getvalue().splitlines()]
    assert contacts == sorted(contacts)


# ---------------------------------------------------------------------------
# The property: merging histories in either order never un-stops


_merge_settings = settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
)


def _exported(head: Any, log: Any) -> str:
    return json.dumps({**ConsentLog(head=head, events=log).to_dict(), "messages": []})


@_merge_settings
@given(conversations(max_steps=10), conversations(max_steps=10))
def test_merging_two_histories_in_either_order_never_unstops(
    one: Any, two: Any
) -> None:
    _, head_one, log_one = one
    _, head_two, log_two = two
    assume(head_one.contact == head_two.contact)
    assume(log_one and log_two)
    contact = head_one.contact
    stopped = ConsentState.STOPPED in (head_one.state, head_two.state)
    for first, second in (
        ((head_one, log_one), (head_two, log_two)),
        ((head_two, log_two), (head_one, log_one)),
    ):
        svc = service(MemoryStore(), Clock(), contact_key=None)
        svc.import_records(io.StringIO(_exported(*first)), source="first")
        svc.import_records(io.StringIO(_exported(*second)), source="second")
        head = svc.get(contact)
        assert (head.state is ConsentState.STOPPED) is stopped
        if stopped:
            assert not svc.can_send(contact)
        if ConsentState.OPTED_IN in (head_one.state, head_two.state) and not stopped:
            assert head.state is ConsentState.OPTED_IN
        # Importing both again changes nothing.
        before = svc.history(contact)
        svc.import_records(io.StringIO(_exported(*first)), source="first")
        svc.import_records(io.StringIO(_exported(*second)), source="second")
        assert svc.history(contact) == before


# ---------------------------------------------------------------------------
# The core's Import input


def test_import_in_the_core() -> None:
    from .flows import record_in

    at = T0
    stop = Import(at=at, state=ConsentState.STOPPED, source="s", by="b", import_id="i1")
    yes = Import(at=at, state=ConsentState.OPTED_IN, source="s", by="b", import_id="i2")
    for state in ConsentState:
        head = record_in(state)
        d = decide(head, stop, POLICY)
        assert d.consent.state is ConsentState.STOPPED
        assert d.outgoing == ()
        assert d.changed is (state is not ConsentState.STOPPED)
        if state is ConsentState.STOPPED:
            with pytest.raises(ContactStopped, match="imported opt-in"):
                decide(head, yes, POLICY)
            continue
        d = decide(head, yes, POLICY)
        assert d.consent.state is ConsentState.OPTED_IN
        assert d.outgoing == ()
        assert d.changed is (state is not ConsentState.OPTED_IN)
    # The row's id is remembered: the same row again is a duplicate.
    head = decide(record_in(ConsentState.PENDING), yes, POLICY).consent
    again = decide(head, attrs_evolve(yes, at=at + timedelta(minutes=1)), POLICY)
    assert again.outcome.value == "duplicate"
    with pytest.raises(InvalidInput, match="carry no consent"):
        Import(at=at, state=ConsentState.PENDING, source="s", by="b", import_id="i")
    with pytest.raises(InvalidInput, match="naive"):
        Import(
            at=at,
            state=ConsentState.STOPPED,
            source="s",
            by="b",
            import_id="i",
            since=at.replace(tzinfo=None),
        )


def attrs_evolve(value: Any, **changes: Any) -> Any:
    import attrs

    return attrs.evolve(value, **changes)


# ---------------------------------------------------------------------------
# The async service runs the same steps


def test_the_async_service_exports_imports_erases_and_renders() -> None:
    async def main() -> None:
        clock = Clock()
        svc = AsyncConsentService(POLICY, MemoryStore(), Sender(), clock=clock)
        await svc.attest(A, method="web_form", evidence="f", by="ops")
        out = io.StringIO()
        assert await svc.export(out) == 1
        other = AsyncConsentService(POLICY, MemoryStore(), Sender(), clock=clock)
        report = await other.import_records(io.StringIO(out.getvalue()), source="a")
        assert report.applied == 1
        assert "Consent receipt" in await other.receipt(A, locale="en")
        erasure = await other.erase(A, by="dpo", reason="r")
        assert await other.erasure(A) == erasure
        assert not await other.can_send(A)
        assert await other.purge_delivered(older_than=clock()) == 0

    asyncio.run(main())


def _rechained(contact: str, events: list[Any]) -> list[Any]:
    """``events`` with their links and digests recomputed (a forger who
    knows the encoding, without a key)."""
    import attrs

    from optin_core import event_digest

    out, prev = [], ""
    for original in events:
        event = attrs.evolve(original, prev=prev, digest="")
        event = attrs.evolve(event, digest=event_digest(contact, event))
        out.append(event)
        prev = event.digest
    return out


def test_import_events_verify_and_forged_ones_are_refused() -> None:
    import attrs

    from optin_core import RecordError, verify

    stop = Import(
        at=T0,
        state=ConsentState.STOPPED,
        source="s",
        by="ops",
        import_id="import:1",
        evidence="row 2",
    )
    head = decide(Consent_new(A), stop, POLICY)
    (event,) = head.events
    assert event.message_id == "import:1"
    assert event.evidence == "stopped since unknown; row 2"
    assert verify(A, head.events, head.consent) == head.consent
    for change, field in (
        ({"message_id": None}, "reply"),
        ({"actor": None}, "evidence"),
        ({"evidence": None}, "evidence"),
        ({"input": "revoke", "message_id": None}, "input"),
    ):
        forged = _rechained(A, [attrs.evolve(event, **change)])
        with pytest.raises(RecordError) as info:
            verify(A, forged)
        assert info.value.field == f"log[0].{field}", change


def Consent_new(contact: str) -> Any:
    from optin_core import Consent

    return Consent.new(contact)


def test_help_from_an_erased_contact_is_answered_in_a_fresh_stopped_log(
    stores: Any,
) -> None:
    clock = Clock()
    store = stores()
    svc = service(store, clock)
    svc.attest(A, method="web_form", evidence="f", by="ops")
    svc.erase(A, by="dpo", reason="r")
    clock.advance(minutes=1)
    chat = svc.receive(A, "who is this?", message_id="c1")
    assert not chat.changed
    assert store.get(A) is None  # ordinary conversation is not recorded
    assert not svc.receive(A, "STOP", message_id="c2").changed
    helped = svc.receive(A, "HELP", message_id="c3")
    assert [m.kind for m in helped.outgoing] == [MessageKind.HELP]
    log = svc.history(A)
    assert [e.trigger for e in log.events] == [Trigger.REVOKE, Trigger.HELP]
    assert log.head.state is ConsentState.STOPPED
    assert not svc.can_send(A)


def test_a_contact_erased_while_listed_is_not_exported() -> None:
    store = MemoryStore()
    svc = service(store, contact_key=None)
    svc.attest(A, method="web_form", evidence="f", by="ops")
    svc.attest(B, method="web_form", evidence="f", by="ops")
    svc.erase(A, by="dpo", reason="r")
    # A listing read just before the erasure still names the contact.
    store.contacts = lambda after=None, limit=None: (  # type: ignore[method-assign]
        [A, B] if after is None else []
    )
    lines = export(svc).splitlines()
    assert [json.loads(line).get("contact") for line in lines] == [B, None]
    assert json.loads(lines[1])["erasure"]["key"] == suppression_key(A)


# ---------------------------------------------------------------------------
# Edges: malformed records, races, odd files


def test_malformed_erasure_records_are_refused_naming_the_field() -> None:
    from optin_core import RecordError
    from optin_core._erase import Erasure, read_log, record_from_dict

    svc = service(MemoryStore())
    svc.request_opt_in(A, by="agent")
    good = svc.erase(A, by="dpo", reason="r").to_dict()
    assert Erasure.from_dict(json.loads(json.dumps(good))).to_dict() == good
    message = good["logs"][0]["messages"][0]
    cases = [
        ({**good, "schema": 3}, "schema"),
        ({**good, "key": "x"}, "key"),
        ({**good, "logs": []}, "logs"),
        ({**good, "logs": [{**good["logs"][0], "messages": {}}]}, "logs[0].messages"),
    ]
    for data, field in cases:
        with pytest.raises(RecordError) as info:
            Erasure.from_dict(data)
        assert info.value.field == field
    for change, field in (
        ({"status": "lost"}, "m.status"),
        ({"delivery": "?"}, "m.delivery"),
    ):
        with pytest.raises(RecordError) as info:
            record_from_dict({**message, **change}, field="m")
        assert info.value.field == field
    with pytest.raises(RecordError, match="expected a list"):
        read_log({**good["logs"][0]["log"], "log": {}})
    # A redacted value must hold a digest.
    event = dict(good["logs"][0]["log"]["log"][0])
    event["evidence"] = {"redacted": "not a digest"}
    from optin_core import AuditEvent

    with pytest.raises(RecordError, match="keeps a digest"):
        AuditEvent.from_dict(event)
    # A redacted log filed under another key does not verify.
    other = Erasure.from_dict(good)
    moved = Erasure(key=suppression_key(B), logs=other.logs)
    with pytest.raises(RecordError, match="another contact"):
        moved.verify()


def test_a_corrupt_erasure_row_names_its_key(tmp_path: Path) -> None:
    import sqlite3

    from optin_core import RecordError, SQLiteStore

    with SQLiteStore(tmp_path / "c.db") as store:
        svc = service(store)
        svc.attest(A, method="web_form", evidence="f", by="ops")
        svc.erase(A, by="dpo", reason="r")
        with sqlite3.connect(tmp_path / "c.db") as conn:
            conn.execute("UPDATE erasures SET data = '{'")
        with pytest.raises(RecordError) as info:
            svc.can_send(A)
        assert info.value.contact == suppression_key(A)


def test_commitments_are_cached_and_bounded(monkeypatch: pytest.MonkeyPatch) -> None:
    from optin_core import _personal

    monkeypatch.setattr(_personal, "_CACHED", 2)
    monkeypatch.setattr(_personal, "_CONTACTS", {})
    monkeypatch.setattr(_personal, "_KEYED", {})
    for key, cache in ((None, "_CONTACTS"), (b"k" * 32, "_KEYED")):
        values = [f"+1555000{n:04d}" for n in range(5)]
        first = [_personal.contact_commitment(v, key) for v in values]
        assert first == [_personal.commit(v, key) for v in values]
        held = getattr(_personal, cache)
        assert 1 <= len(held) <= 2
        # A value still cached is served from the cache.
        (value, *_rest) = [
            v for v in values if (v if key is None else (key, v)) in held
        ]
        assert _personal.contact_commitment(value, key) == _personal.commit(value, key)
    long = "x" * 1000
    assert _personal.contact_commitment(long) == _personal.commit(long)


def test_a_receipt_shows_withdrawn_messages_late_webhooks_and_error_codes() -> None:
    clock = Clock()
    store = MemoryStore()
    sender = Sender(fail=lambda m: m.kind is MessageKind.TEXT)
    svc = service(store, clock, send=sender)
    svc.attest(B, method="web_form", evidence="f", by="ops")
    svc.send_text(B, "queued", by="m")  # its send fails: still queued
    (queued,) = store.pending(contact=B)
    clock.advance(minutes=5)
    svc.receive(B, "HELP", message_id="h1")
    (help_answer,) = [
        r for r in store.messages(B) if r.message.kind is MessageKind.HELP
    ]
    svc.delivery_status(help_answer.message.key, "undelivered", error_code="30003")
    # A STOP whose webhook carries an earlier time than the HELP.
    svc.receive(B, "STOP", message_id="s1", at=clock() - timedelta(minutes=1))
    text = svc.receipt(B, locale="en")
    assert "Messages withdrawn:" in text
    assert queued.key in text
    assert "Time given by the input:" in text
    assert "undelivered" in text
    assert "[30003]" in text


def test_import_edges(stores: Any) -> None:
    clock = Clock()
    source = service(stores(), clock)
    source.attest(A, method="web_form", evidence="f", by="ops")
    source.attest(B, method="web_form", evidence="f", by="ops")
    source.erase(A, by="dpo", reason="r")
    clock.advance(minutes=1)
    source.receive(A, "START", message_id="back")  # A erased, then back
    exported = export(source)
    lines = exported.splitlines()
    assert len(lines) == 3  # A (fresh log), B, A's erasure
    # The file holds a live line for the erased number: it is not stopped.
    target = stores()
    into = service(target, clock)
    report = into.import_records(io.StringIO(exported), source="s")
    assert report.applied == 3
    assert into.can_send(A)
    # The erasure line alone: suppressed already, and the live record, which
    # opted in after the erasure, is left as it is.
    again = into.import_records(io.StringIO(lines[2] + "\n"), source="s")
    assert again.reasons == {
        "unchanged": {
            "erased: suppressed already": 1,
            "opted in after its erasure in the source": 1,
        }
    }
    assert into.can_send(A)
    # A stopped line for a number erased here: unchanged.
    gone = service(stores(), clock)
    gone.attest(B, method="web_form", evidence="f", by="ops")
    gone.erase(B, by="dpo", reason="r")
    stopped = service(stores(), clock)
    stopped.revoke(B, by="ops", reason="call")
    report = gone.import_records(io.StringIO(export(stopped)), source="s")
    assert report.reasons == {"unchanged": {"erased here: suppressed already": 1}}
    # A dry run over an erased number reports, and writes nothing.
    dry = gone.import_records(
        io.StringIO("contact,state,since\n+15550001111,opted_in,\n"),
        format="csv",
        source="v",
        dry_run=True,
    )
    assert dry.refused == 1


def test_unreadable_csv_rows_can_be_skipped(stores: Any) -> None:
    svc = service(stores())
    table = (
        "contact,state,since\n+15550001111,stopped,\n+15550002222,maybe,\n"
        "+15550003333,opted_in,2024-01-01\n"
    )
    report = svc.import_records(
        io.StringIO(table), format="csv", source="v", continue_on_error=True
    )
    assert (report.applied, report.refused) == (1, 2)
    assert [r.line for r in report.refusals] == [3, 4]
    from optin_core._transfer import csv_rows

    assert list(csv_rows(io.StringIO("a,b\n"))) == [
        (1, None, "missing column(s) contact, state, since in the header")
    ]


def test_jsonl_lines_with_odd_messages_or_contacts_are_refused() -> None:
    svc = service(MemoryStore())
    svc.attest(B, method="web_form", evidence="f", by="ops")
    line = json.loads(export(svc))
    broken = {**line, "messages": {}}
    with pytest.raises(ImportRefused, match="messages"):
        service(MemoryStore()).import_records(
            io.StringIO(json.dumps(broken)), source="x"
        )
    other = service(MemoryStore())
    other.request_opt_in(C, by="agent")
    foreign = json.loads(export(other))["messages"]
    assert foreign
    line = json.loads(export(svc))
    line["messages"] = foreign  # another contact's delivery records
    with pytest.raises(
        ImportRefused, match=r"not a message of the log|another contact"
    ):
        service(MemoryStore()).import_records(io.StringIO(json.dumps(line)), source="x")

    def refuse(contact: str) -> str:
        raise InvalidInput(f"{contact} is not ours")

    strict = ConsentService(POLICY, MemoryStore(), Sender(), contact_key=refuse)
    with pytest.raises(ImportRefused, match="is not ours"):
        strict.import_records(io.StringIO(export(svc)), source="x")
    erasure = {"schema": 3, "erasure": {}}
    with pytest.raises(ImportRefused, match="schema"):
        service(MemoryStore()).import_records(
            io.StringIO(json.dumps(erasure)), source="x"
        )


def test_a_report_lists_at_most_so_many_refused_rows(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from optin_core import _transfer

    monkeypatch.setattr(_transfer, "MAX_LISTED", 2)
    svc = service(MemoryStore())
    table = "contact,state,since\n" + "".join(
        f"+1555000{n:04d},bogus,\n" for n in range(5)
    )
    report = svc.import_records(
        io.StringIO(table), format="csv", source="v", continue_on_error=True
    )
    assert report.refused == 5
    assert len(report.refusals) == 2
    assert not report.listed_all


def test_csv_sources_of_imports_and_provider_opt_outs() -> None:
    clock = Clock()
    svc = service(MemoryStore(), clock, contact_key=None)
    svc.import_records(
        io.StringIO("contact,state,since\n+15550001111,opted_in,\n"),
        format="csv",
        source="braze",
    )
    svc.request_opt_in(C, by="agent")
    svc.delivery_status("SM0000", "failed", error_code="21610", provider="twilio")
    svc.receive(D, "HELP", message_id="h")  # NEW, and still NEW
    rows = {r["contact"]: r for r in csv.DictReader(io.StringIO(export(svc, "csv")))}
    assert rows[B]["source"] == "import:braze"
    assert rows[C]["source"] == "provider:twilio"
    assert (rows[D]["state"], rows[D]["source"], rows[D]["since"]) == ("new", "", "")


class _Racing(MemoryStore):
    """A store where another writer gets in first, once: restore and erase
    then find the contact moved on."""

    def __init__(self) -> None:
        super().__init__()
        self.race: Any = None

    def restore(self, consent: Any, events: Any, messages: Any = ()) -> None:
        if self.race is not None:
            race, self.race = self.race, None
            race()
        super().restore(consent, events, messages)

    def erase(self, contact: str, erasure: Any, *, expected_version: int) -> None:
        if self.race is not None:
            race, self.race = self.race, None
            race()
        super().erase(contact, erasure, expected_version=expected_version)


def test_races_with_another_writer_are_decided_again() -> None:
    clock = Clock()
    source = service(MemoryStore(), clock)
    source.attest(B, method="web_form", evidence="f", by="ops")
    source.receive(B, "STOP", message_id="s")
    store = _Racing()
    svc = service(store, clock)
    # The contact is written between the check and the restore: merged.
    store.race = lambda: svc.attest(B, method="web_form", evidence="g", by="ops")
    report = svc.import_records(io.StringIO(export(source)), source="s")
    assert report.reasons == {"applied": {"stop imported": 1}}
    assert svc.get(B).state is ConsentState.STOPPED
    # The contact moves on between the redaction and the erase: redone.
    store.race = lambda: svc.receive(B, "HELP", message_id="h2")
    erasure = svc.erase(B, by="dpo", reason="r")
    assert erasure.logs[0].log.events[-1].trigger is Trigger.HELP


def test_compliance_needs_a_store_that_offers_it() -> None:
    from .service_helpers import AsyncStoreAdapter

    class Minimal:
        """A store of the earlier protocol: no listing, no erasure."""

        def __init__(self) -> None:
            self.inner = MemoryStore()

        def __getattr__(self, name: str) -> Any:
            if name in ("contacts", "erasure", "erase", "restore", "purge_delivered"):
                raise AttributeError(name)
            return getattr(self.inner, name)

    svc = service(Minimal())
    svc.attest(B, method="web_form", evidence="f", by="ops")  # works as before
    with pytest.raises(TypeError, match="contacts"):
        svc.export(io.StringIO())
    with pytest.raises(TypeError, match="erase"):
        svc.erase(B, by="dpo", reason="r")
    with pytest.raises(TypeError, match="purge_delivered"):
        svc.purge_delivered(older_than=T0)
    assert AsyncStoreAdapter  # the async tests' adapter lacks them too


def test_file_arguments_are_checked() -> None:
    svc = service(MemoryStore())
    with pytest.raises(TypeError, match="writing"):
        svc.export(object())  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="reading"):
        svc.import_records(object(), source="x")  # type: ignore[arg-type]

    class Closed(io.StringIO):
        def seekable(self) -> bool:
            raise ValueError("I/O operation on closed file")

    report = svc.import_records(Closed(""), source="x")
    assert report.rows == 0


def test_erasures_are_exported_in_pages_and_found_across_pages() -> None:
    clock = Clock()
    svc = service(MemoryStore(), clock)
    for contact in (A, B, C):
        svc.attest(contact, method="web_form", evidence="f", by="ops")
        svc.erase(contact, by="dpo", reason="r")
    svc.attest(D, method="web_form", evidence="f", by="ops")
    seen: list[int] = []
    out = io.StringIO()
    assert svc.export(out, page_size=2, progress=lambda d, _t: seen.append(d)) == 4
    assert seen == [1, 2, 3, 4]
    keys = [
        json.loads(x).get("erasure", {}).get("key") for x in out.getvalue().splitlines()
    ]
    assert keys[1:] == sorted(suppression_key(c) for c in (A, B, C))
    # Live records of the erased numbers, found page by page.
    target = service(MemoryStore(), clock)
    for contact in (A, B, C, D, E):
        target.attest(contact, method="web_form", evidence="g", by="ops")
    target._page = 2
    erasures = "".join(line + "\n" for line in out.getvalue().splitlines()[1:])
    report = target.import_records(io.StringIO(erasures), source="s")
    assert report.reasons["applied"]["stop imported (erased in the source)"] == 3
    assert [target.can_send(c) for c in (A, B, C, D, E)] == [
        False,
        False,
        False,
        True,
        True,
    ]


def test_an_erase_that_keeps_losing_its_race_says_so() -> None:
    from optin_core import StaleVersion

    class Busy(MemoryStore):
        def erase(self, contact: str, erasure: Any, *, expected_version: int) -> None:
            raise StaleVersion(contact, expected=expected_version, found=None)

    svc = service(Busy(), max_retries=2)
    svc.attest(A, method="web_form", evidence="f", by="ops")
    with pytest.raises(StaleVersion):
        svc.erase(A, by="dpo", reason="r")
