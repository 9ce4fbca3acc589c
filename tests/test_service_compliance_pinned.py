"""The service's compliance paths, pinned rule by rule (exact messages, exact
report rows, exact logged ids), through the public service API:

* a store that lacks a compliance method is refused up front, naming the
  method and the operation that needs it;
* bad arguments of export, import, erase and purge are refused with the
  documented error and its exact message;
* an import's report: each refused row names its line, its contact and the
  exact reason; the unchanged reasons say what is already so; a dry run
  writes nothing, on every path (CSV rows, erasures found live here);
* each imported row's id (its event's ``message_id``) is a digest of what
  the row says (source, contact, state, since, and the exported log head or
  the erasure), stable across versions, so that a file imported again is
  recognised; the event's evidence names the row;
* an erasure line stops a live record of the number, page after page, but
  not one whose live line is in the same file; under ``Policy.log_key``
  suppression keys, erasures and exports use the key;
* an export's lines: CSV never lists erasures, erasures are paged without
  repeats, a store of the earlier protocol (no ``erasures``) still exports;
* an erase that keeps losing its race raises the ``StaleVersion``;
* receipts honour ``locale``, ``tz`` (else the policy's ``time_zone``) and
  ``format``, and show a log that does not verify under its warning;
* the async service passes every setting through, with the same defaults.
"""

from __future__ import annotations

import asyncio
import hashlib
import io
import json
from collections.abc import Callable
from datetime import datetime, timedelta, tzinfo
from typing import Any

import attrs
import pytest

from optin_core import (
    AsyncConsentService,
    ConsentService,
    ConsentState,
    InvalidInput,
    MemoryStore,
    Policy,
    RecordError,
    StaleVersion,
)
from optin_core._erase import suppression_key
from optin_core._errors import ImportRefused, UnknownContact
from optin_core._transfer import ImportRow

from .service_helpers import T0, Clock, Sender

POLICY = Policy(org_name="Acme", attestation_methods=frozenset({"web_form"}))
KEY = b"k" * 32
#: A keyed policy in a zone other than UTC: suppression keys are HMACs,
#: and receipts' dates are in Paris time by default.
KEYED = Policy(
    org_name="Acme",
    attestation_methods=frozenset({"web_form"}),
    log_key=KEY,
    time_zone="Europe/Paris",
)
A = "+15550001111"
B = "+15550002222"
C = "+15550003333"


def service(
    store: Any = None, policy: Policy = POLICY, clock: Clock | None = None, **kw: Any
) -> ConsentService:
    return ConsentService(
        policy,
        MemoryStore() if store is None else store,
        Sender(),
        clock=clock or Clock(),
        on_send_error=lambda _m, _e: None,
        **kw,
    )


def attest(svc: ConsentService, contact: str) -> None:
    svc.attest(contact, method="web_form", evidence="form 1", by="ops")


def export(svc: ConsentService, fmt: str = "jsonl", **kw: Any) -> str:
    out = io.StringIO()
    svc.export(out, format=fmt, **kw)  # type: ignore[arg-type]
    return out.getvalue()


def csv_file(*rows: str) -> io.StringIO:
    return io.StringIO("contact,state,since\n" + "".join(r + "\n" for r in rows))


def row_id(source: str, contact: str, state: str, since: object, ident: str) -> str:
    """An imported row's id as rules.md describes it: a digest of what the
    row says. Restated here (not imported) so that a change of the formula,
    which would make every row imported before look new, fails a test."""
    text = json.dumps([source, contact, state, str(since), ident], ensure_ascii=True)
    return "import:" + hashlib.sha256(text.encode("ascii")).hexdigest()


class Hiding:
    """A MemoryStore without some methods (a store of an earlier protocol)."""

    def __init__(self, *hidden: str) -> None:
        self.inner = MemoryStore()
        self.hidden = hidden

    def __getattr__(self, name: str) -> Any:
        if name in self.hidden:
            raise AttributeError(name)
        return getattr(self.inner, name)


def dump(store: MemoryStore) -> tuple[Any, ...]:
    contacts = store.contacts()
    return (
        [(c, store.get(c), store.log(c), store.messages(c)) for c in contacts],
        store.erasures(),
    )


# ---------------------------------------------------------------------------
# A store without a compliance method: refused up front, naming both


def _run(operation: str, svc: ConsentService) -> None:
    if operation == "an import":
        svc.import_records(io.StringIO(""), source="s")
    elif operation == "erase":
        svc.erase(A, by="dpo", reason="r")
    elif operation == "erasure":
        svc.erasure(A)
    elif operation == "a receipt":
        svc.receipt(A)
    elif operation == "export":
        svc.export(io.StringIO())
    else:
        svc.purge_delivered(older_than=T0)


@pytest.mark.parametrize(
    ("operation", "missing"),
    [
        ("an import", "restore"),
        ("an import", "suppress"),
        ("an import", "erasure"),
        ("an import", "contacts"),
        ("erase", "erase"),
        ("erase", "erasure"),
        ("erase", "messages"),
        ("erasure", "erasure"),
        ("a receipt", "messages"),
        ("export", "contacts"),
        ("export", "messages"),
        ("retention", "purge_delivered"),
    ],
)
def test_a_store_without_a_compliance_method_is_refused_naming_it(
    operation: str, missing: str
) -> None:
    # Checked before anything is read or written, even with nothing to do
    # (an empty file, an unknown contact, an empty store).
    svc = service(Hiding(missing))
    with pytest.raises(TypeError) as info:
        _run(operation, svc)
    assert str(info.value) == (
        f"store has no {missing}() method, which {operation} needs; see "
        "optin_core.Store (0.2.0) for the protocol"
    )


# ---------------------------------------------------------------------------
# Bad arguments: the documented error, word for word


def test_export_arguments_are_refused_with_exact_messages() -> None:
    svc = service()
    attest(svc, A)
    cases: list[tuple[Callable[[], object], type[Exception], str]] = [
        (
            lambda: svc.export(io.StringIO(), progress=3),  # type: ignore[arg-type]
            TypeError,
            "progress must be None or callable(done, total)",
        ),
        (
            lambda: svc.export(object()),  # type: ignore[arg-type]
            TypeError,
            "fp must be a text file open for writing",
        ),
        (
            lambda: svc.export(io.BytesIO()),  # type: ignore[arg-type]
            TypeError,
            "fp must be a text file (open(path, 'w', newline=''))",
        ),
        # A bool is not a page size, though it is an int.
        (
            lambda: svc.export(io.StringIO(), page_size=True),
            ValueError,
            "page_size must be an int >= 1, got True",
        ),
        (
            lambda: svc.export(io.StringIO(), page_size=0),
            ValueError,
            "page_size must be an int >= 1, got 0",
        ),
    ]
    for call, error, message in cases:
        with pytest.raises(error) as info:
            call()
        assert str(info.value) == message


def test_a_page_of_one_contact_exports_everything() -> None:
    # page_size >= 1: one is the smallest page, and still lists everyone.
    svc = service()
    for contact in (A, B, C):
        attest(svc, contact)
    svc.erase(C, by="dpo", reason="r")
    out = io.StringIO()
    assert svc.export(out, page_size=1) == 3
    lines = [json.loads(x) for x in out.getvalue().splitlines()]
    assert [x.get("contact") for x in lines] == [A, B, None]
    assert lines[2]["erasure"]["key"] == suppression_key(C)


def test_import_arguments_are_refused_with_exact_messages() -> None:
    svc = service()
    for kw, name in (({"source": " "}, "source"), ({"source": "s", "by": ""}, "by")):
        with pytest.raises(InvalidInput) as info:
            svc.import_records(io.StringIO(""), **kw)
        assert str(info.value) == (
            f"{name} must be a non-empty str (it is recorded on every imported event)"
        )
    with pytest.raises(TypeError) as error:
        svc.import_records(io.StringIO(""), source="s", progress=3)  # type: ignore[arg-type]
    assert str(error.value) == "progress must be None or callable(done, total)"


def test_erase_arguments_are_refused_with_exact_messages() -> None:
    svc = service()
    attest(svc, A)
    for kw, name in (
        ({"by": "", "reason": "r"}, "by"),
        ({"by": "d", "reason": " "}, "reason"),
    ):
        with pytest.raises(InvalidInput) as info:
            svc.erase(A, **kw)
        assert str(info.value) == f"{name} must be a non-empty str"
    with pytest.raises(UnknownContact) as unknown:
        svc.erase(B, by="dpo", reason="r")
    assert unknown.value.contact == B
    assert str(unknown.value) == (
        f"no record of contact {B!r}, so an erasure is refused; check the "
        "contact id (as the service normalises it) and the store"
    )
    assert svc.can_send(A)


class _NoOffset(tzinfo):
    """A tzinfo that does not know its offset: the datetime is naive."""

    def utcoffset(self, dt: datetime | None) -> timedelta | None:
        return None

    def dst(self, dt: datetime | None) -> timedelta | None:
        return None

    def tzname(self, dt: datetime | None) -> str | None:
        return None


def test_purge_arguments_are_refused_with_exact_messages() -> None:
    svc = service()
    with pytest.raises(TypeError) as wrong:
        svc.purge_delivered(older_than="2025")  # type: ignore[arg-type]
    assert str(wrong.value) == "older_than must be a datetime, got str"
    naive = "older_than is a naive datetime; pass an aware one"
    # Naive both ways: no tzinfo, or a tzinfo without an offset.
    for when in (T0.replace(tzinfo=None), T0.replace(tzinfo=_NoOffset())):
        with pytest.raises(InvalidInput) as info:
            svc.purge_delivered(older_than=when)
        assert str(info.value) == naive


# ---------------------------------------------------------------------------
# The import's report: refused rows name their line, contact and reason


def test_an_imported_opt_in_over_a_stop_is_refused_naming_its_row() -> None:
    svc = service()
    svc.revoke(B, by="ops", reason="call")
    report = svc.import_records(
        csv_file(f"{A},stopped,", f"{B},opted_in,"), format="csv", source="v"
    )
    assert report.refusals == (
        ImportRow(
            line=3,
            contact=B,
            reason="stopped: an imported opt-in never restarts a contact",
        ),
    )
    assert svc.get(B).state is ConsentState.STOPPED


def test_an_imported_opt_in_of_an_erased_number_is_refused_naming_its_row() -> None:
    svc = service()
    attest(svc, A)
    svc.erase(A, by="dpo", reason="r")
    report = svc.import_records(
        csv_file(f"{B},opted_in,", f"{A},opted_in,"), format="csv", source="v"
    )
    assert report.refusals == (
        ImportRow(
            line=3,
            contact=A,
            reason="erased here: only the contact can come back, by texting START",
        ),
    )
    assert svc.store.get(A) is None  # type: ignore[attr-defined]


def test_an_opt_in_row_for_an_opted_in_contact_is_opted_in_already() -> None:
    svc = service()
    attest(svc, A)
    report = svc.import_records(csv_file(f"{A},opted_in,"), format="csv", source="v")
    assert report.reasons == {"unchanged": {"opted in already": 1}}


def test_a_row_refused_when_read_is_never_applied_even_if_it_reads_later() -> None:
    # A contact_key backed by a lookup that fails once (a flaky directory):
    # the check pass refuses the row; the apply pass must not apply it.
    failed: set[str] = set()

    def flaky(contact: str) -> str:
        if contact not in failed:
            failed.add(contact)
            raise InvalidInput(f"lookup of {contact} failed")
        return contact

    svc = ConsentService(
        POLICY, MemoryStore(), Sender(), clock=Clock(), contact_key=flaky
    )
    report = svc.import_records(
        csv_file(f"{A},stopped,"), format="csv", source="v", continue_on_error=True
    )
    assert (report.applied, report.refused) == (0, 1)
    assert svc.store.contacts() == []  # type: ignore[attr-defined]


def test_a_blank_line_in_a_jsonl_file_is_skipped_not_the_end() -> None:
    source = service()
    attest(source, A)
    attest(source, B)
    first, second = export(source).splitlines()
    into = service()
    report = into.import_records(io.StringIO(f"{first}\n\n{second}\n"), source="s")
    assert report.reasons == {"applied": {"restored (its log as exported)": 2}}
    assert into.store.contacts() == [A, B]  # type: ignore[attr-defined]


# ---------------------------------------------------------------------------
# Dry runs write nothing, on every path


def test_a_csv_dry_run_writes_nothing() -> None:
    svc = service()
    attest(svc, A)
    before = dump(svc.store)  # type: ignore[arg-type]
    report = svc.import_records(
        csv_file(f"{A},stopped,"), format="csv", source="v", dry_run=True
    )
    assert report.reasons == {"applied": {"stop imported": 1}}
    assert dump(svc.store) == before  # type: ignore[arg-type]
    assert svc.can_send(A)


def test_a_dry_run_of_an_erasure_leaves_the_live_record_alone() -> None:
    source = service()
    attest(source, A)
    source.erase(A, by="dpo", reason="r")
    svc = service()
    attest(svc, A)
    before = dump(svc.store)  # type: ignore[arg-type]
    report = svc.import_records(io.StringIO(export(source)), source="s", dry_run=True)
    assert report.reasons == {
        "applied": {
            "erased: suppression imported": 1,
            "stop imported (erased in the source)": 1,
        }
    }
    assert dump(svc.store) == before  # type: ignore[arg-type]
    assert svc.can_send(A)


class _LateSuppress(MemoryStore):
    """Another importer suppresses the number between this import's check
    and its write: ``suppress`` then answers False."""

    def __init__(self, racing: Any) -> None:
        super().__init__()
        self.racing = racing

    def erasure(self, key: str) -> Any:
        found = super().erasure(key)
        if self.racing is not None:
            racing, self.racing = self.racing, None
            self.suppress(racing)
        return found


def test_an_erasure_suppressed_meanwhile_is_unchanged() -> None:
    source = service()
    attest(source, A)
    erasure = source.erase(A, by="dpo", reason="r")
    svc = service(_LateSuppress(erasure))
    report = svc.import_records(io.StringIO(export(source)), source="s")
    assert report.reasons == {"unchanged": {"erased: suppression imported": 1}}


# ---------------------------------------------------------------------------
# Each imported row's id and evidence


def test_a_csv_row_is_logged_under_its_id_with_its_row() -> None:
    clock = Clock()
    svc = service(clock=clock)
    attest(svc, A)
    svc.import_records(
        csv_file(f"{A},stopped,", f"{B},opted_in,2024-06-01T10:00:00Z"),
        format="csv",
        source="vendor",
    )
    stop = svc.history(A).events[-1]
    assert stop.message_id == row_id("vendor", A, "stopped", "", "")
    assert stop.evidence == "stopped since unknown; row 2"
    opt_in = svc.history(B).events[-1]
    since = datetime.fromisoformat("2024-06-01T10:00:00+00:00")
    assert opt_in.message_id == row_id("vendor", B, "opted_in", since, "")
    assert opt_in.actor == "import"  # by's default
    # The same rows again: recognised by their ids.
    again = svc.import_records(
        csv_file(f"{A},stopped,", f"{B},opted_in,2024-06-01T10:00:00Z"),
        format="csv",
        source="vendor",
    )
    assert again.reasons == {"unchanged": {"imported before": 2}}


def test_a_jsonl_stop_is_logged_under_the_id_of_the_exported_head() -> None:
    clock = Clock()
    other = service(clock=clock)
    attest(other, B)
    clock.advance(minutes=3)
    other.revoke(B, by="ops", reason="call")
    head = other.history(B).head
    stopped_at = T0 + timedelta(minutes=3)
    svc = service(clock=clock)
    attest(svc, B)
    report = svc.import_records(io.StringIO(export(other)), source="system B")
    assert report.reasons == {"applied": {"stop imported": 1}}
    stop = [e for e in svc.history(B).events if e.to_state is ConsentState.STOPPED]
    assert stop[0].message_id == row_id(
        "system B", B, "stopped", stopped_at, head.digest
    )
    assert stop[0].evidence == (
        f"stopped since {stopped_at.isoformat()}; line 1; "
        f"exported log head {head.digest}"
    )


def test_an_erasure_stops_a_live_record_under_the_keyed_suppression_key() -> None:
    clock = Clock()
    source = service(policy=KEYED, clock=clock)
    attest(source, A)
    clock.advance(minutes=1)
    erasure = source.erase(A, by="dpo", reason="r")
    svc = service(policy=KEYED, clock=clock)
    attest(svc, A)
    report = svc.import_records(io.StringIO(export(source)), source="s")
    assert report.reasons == {
        "applied": {
            "erased: suppression imported": 1,
            "stop imported (erased in the source)": 1,
        }
    }
    assert not svc.can_send(A)
    stop = [e for e in svc.history(A).events if e.to_state is ConsentState.STOPPED]
    assert stop[0].message_id == row_id("s", A, "stopped", erasure.erased_at, "erased")
    assert stop[0].evidence == (
        f"stopped since {erasure.erased_at.isoformat()}; line 1; erased in the source"
    )


def test_a_live_line_in_the_same_file_keeps_an_erased_number_live_keyed() -> None:
    # The number was erased, then came back by texting START: its live line
    # is newer than its erasure, so the erasure line stops nothing.
    clock = Clock()
    source = service(policy=KEYED, clock=clock)
    attest(source, A)
    attest(source, B)
    source.erase(A, by="dpo", reason="r")
    clock.advance(minutes=1)
    source.receive(A, "START", message_id="back")
    svc = service(policy=KEYED, clock=clock)
    report = svc.import_records(io.StringIO(export(source)), source="s")
    assert report.reasons == {
        "applied": {
            "restored (its log as exported)": 2,
            "erased: suppression imported": 1,
        }
    }
    assert svc.can_send(A)


def test_live_records_of_erased_numbers_are_found_page_after_page() -> None:
    clock = Clock()
    contacts = [f"+1555000{n:04d}" for n in range(7)]
    source = service(clock=clock)
    for contact in contacts:
        attest(source, contact)
        source.erase(contact, by="dpo", reason="r")
    svc = service(clock=clock)
    for contact in contacts:
        attest(svc, contact)
    svc._page = 3  # pages of 3 over 7 contacts: 3, 3, 1
    report = svc.import_records(io.StringIO(export(source)), source="s")
    # Each number stopped once, none twice.
    assert report.reasons == {
        "applied": {
            "erased: suppression imported": 7,
            "stop imported (erased in the source)": 7,
        }
    }
    assert not any(svc.can_send(c) for c in contacts)


# ---------------------------------------------------------------------------
# Export lines


def test_a_csv_export_lists_no_erasure() -> None:
    svc = service()
    attest(svc, A)
    attest(svc, B)
    svc.erase(A, by="dpo", reason="r")
    out = io.StringIO()
    assert svc.export(out, format="csv") == 1
    lines = out.getvalue().splitlines()
    assert len(lines) == 2
    assert lines[1].startswith(f"{B},opted_in,")


def test_erasures_are_exported_in_pages_without_repeats() -> None:
    svc = service()
    contacts = [f"+1555000{n:04d}" for n in range(4)]
    for contact in contacts:
        attest(svc, contact)
        svc.erase(contact, by="dpo", reason="r")
    out = io.StringIO()
    assert svc.export(out, page_size=3) == 4
    keys = [json.loads(x)["erasure"]["key"] for x in out.getvalue().splitlines()]
    assert keys == sorted(suppression_key(c) for c in contacts)


def test_a_store_without_erasures_listing_still_exports() -> None:
    svc = service(Hiding("erasures"))
    attest(svc, A)
    out = io.StringIO()
    assert svc.export(out) == 1
    assert json.loads(out.getvalue())["contact"] == A


def test_keyed_erasures_are_made_found_and_exported_with_the_key() -> None:
    svc = service(policy=KEYED)
    attest(svc, A)
    attest(svc, B)
    erasure = svc.erase(A, by="dpo", reason="r")
    assert erasure.key == suppression_key(A, KEY)
    assert svc.erasure(A) == erasure
    out = io.StringIO()
    assert svc.export(out) == 2
    last = json.loads(out.getvalue().splitlines()[-1])
    assert last["erasure"]["key"] == suppression_key(A, KEY)


class _Spy(MemoryStore):
    def __init__(self) -> None:
        super().__init__()
        self.limits: list[int | None] = []

    def contacts(self, *, after: str | None = None, limit: int | None = None) -> Any:
        self.limits.append(limit)
        return super().contacts(after=after, limit=limit)


def test_export_lists_contacts_in_pages_of_500_by_default() -> None:
    store = _Spy()
    svc = service(store)
    attest(svc, A)
    svc.export(io.StringIO())
    assert store.limits == [500]
    store.limits.clear()
    asyncio.run(_async(store).export(io.StringIO()))
    assert store.limits == [500]


# ---------------------------------------------------------------------------
# Erase races


def test_an_erase_that_keeps_losing_raises_the_stores_conflict() -> None:
    raised: list[StaleVersion] = []

    class Busy(MemoryStore):
        def erase(self, contact: str, erasure: Any, *, expected_version: int) -> None:
            raised.append(StaleVersion(contact, expected=expected_version, found=9))
            raise raised[-1]

    svc = service(Busy(), max_retries=2)
    attest(svc, A)
    svc.revoke(A, by="ops", reason="call")
    with pytest.raises(StaleVersion) as info:
        svc.erase(A, by="dpo", reason="r")
    assert info.value is raised[-1]
    assert len(raised) == 2


class _Restarting(MemoryStore):
    """A store whose contact texts START right after each of the first
    ``restarts`` stops is written, before the erase can be."""

    svc: ConsentService
    restarts = 0
    stops = 0

    def put(self, consent: Any, events: Any, **kw: Any) -> Any:
        result = super().put(consent, events, **kw)
        if consent.state is ConsentState.STOPPED:
            self.stops += 1
            if self.restarts:
                self.restarts -= 1
                self.svc.receive(A, "START", message_id=f"start-{self.restarts}")
        return result


def _restarting(restarts: int, max_retries: int) -> tuple[_Restarting, ConsentService]:
    store = _Restarting()
    svc = service(store, max_retries=max_retries)
    store.svc = svc
    attest(svc, A)
    store.restarts = restarts
    return store, svc


def test_an_erase_whose_contact_keeps_restarting_raises_stale_version() -> None:
    # The first stop is part of the erasure; each stop after a restart uses
    # up a try: with 2 tries, 3 stops, then the erase gives up.
    store, svc = _restarting(restarts=3, max_retries=2)
    with pytest.raises(StaleVersion) as info:
        svc.erase(A, by="dpo", reason="r")
    assert (info.value.contact, info.value.expected, info.value.found) == (A, 0, None)
    assert store.stops == 3
    assert svc.erasure(A) is None


def test_an_erase_restarted_fewer_times_than_its_tries_erases() -> None:
    store, svc = _restarting(restarts=1, max_retries=2)
    erasure = svc.erase(A, by="dpo", reason="r")
    assert store.stops == 2
    assert svc.erasure(A) == erasure


def test_erase_with_one_try_erases_a_live_contact() -> None:
    svc = service(max_retries=1)
    attest(svc, A)
    erasure = svc.erase(A, by="dpo", reason="r")
    assert svc.erasure(A) == erasure


# ---------------------------------------------------------------------------
# Receipts


def test_a_receipt_is_dated_in_the_policy_zone_unless_told_otherwise() -> None:
    svc = service(policy=KEYED)
    attest(svc, B)
    # T0 is 09:00 UTC: 11:00 in Paris (the policy's zone), 05:00 in New York.
    assert "Level reached: April 11, 2025, 11:00:00\u202fAM +0200 —" in svc.receipt(B)
    new_york = svc.receipt(B, tz="America/New_York")
    assert "Level reached: April 11, 2025, 5:00:00\u202fAM EDT —" in new_york
    assert "+0200" not in new_york


def test_a_receipt_honours_locale_and_format() -> None:
    svc = service(policy=KEYED)
    attest(svc, B)
    assert svc.receipt(B).startswith("Consent receipt\n")
    french = svc.receipt(B, locale="fr", tz="America/New_York")
    assert french.startswith("Reçu de consentement\n")
    assert "Niveau atteint: 11 avril 2025, 05:00:00 -0400 —" in french
    assert svc.receipt(B, format="markdown").startswith("# Consent receipt\n")


def test_an_erased_contacts_receipt_honours_locale_and_zone() -> None:
    svc = service(policy=KEYED)
    attest(svc, A)
    svc.erase(A, by="dpo", reason="r")
    page = svc.receipt(A, locale="fr", tz="America/New_York")
    assert page.startswith("Reçu de consentement\n")
    assert "05:00:00" in page
    assert "+0200" not in page


class _Tampered(MemoryStore):
    """A store whose log was edited: the first event's actor rewritten."""

    def log(self, contact: str, *, after: int = 0) -> Any:
        events = super().log(contact, after=after)
        if after == 0 and events:
            events = [attrs.evolve(events[0], actor="mallory"), *events[1:]]
        return events


def test_a_receipt_of_a_log_that_fails_verification_says_why() -> None:
    svc = service(_Tampered())
    attest(svc, B)
    with pytest.raises(RecordError) as info:
        svc.history(B)
    page = svc.receipt(B)
    assert str(info.value) in page
    assert "mallory" in page  # still shown
    # A log that verifies carries no warning.
    clean = service()
    attest(clean, B)
    assert "The log verifies" in clean.receipt(B)
    assert "does not verify" not in clean.receipt(B)


# ---------------------------------------------------------------------------
# The async service passes every setting through


def _async(store: Any, policy: Policy = POLICY) -> AsyncConsentService:
    return AsyncConsentService(policy, store, Sender(), clock=Clock())


def test_the_async_service_passes_every_setting_through() -> None:
    async def main() -> None:
        svc = _async(MemoryStore(), KEYED)
        await svc.attest(A, method="web_form", evidence="f", by="ops")
        # export: progress
        seen: list[tuple[int, int | None]] = []
        out = io.StringIO()
        await svc.export(out, progress=lambda d, t: seen.append((d, t)))
        assert seen == [(1, None)]
        # import: a bad line refuses the file by default...
        bad = f"{B},maybe,"
        with pytest.raises(ImportRefused):
            await svc.import_records(csv_file(bad), format="csv", source="v")
        # ...and is skipped when told; progress is called per row.
        rows: list[tuple[int, int | None]] = []
        report = await svc.import_records(
            csv_file(f"{A},stopped,", bad),
            format="csv",
            source="v",
            continue_on_error=True,
            dry_run=True,
            progress=lambda d, t: rows.append((d, t)),
        )
        assert (report.applied, report.refused, report.dry_run) == (1, 1, True)
        assert rows == [(1, 2), (2, 2)]
        assert await svc.can_send(A)  # the dry run wrote nothing
        await svc.import_records(csv_file(f"{A},stopped,"), format="csv", source="v")
        assert (await svc.history(A)).events[-1].actor == "import"
        # receipt: locale and zone
        page = await svc.receipt(A, locale="fr", tz="America/New_York")
        assert page.startswith("Reçu de consentement\n")
        assert "05:00:00" in page

    asyncio.run(main())
