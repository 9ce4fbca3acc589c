"""The compliance commands of ``optin-core``: ``receipt``, ``export``,
``import``, ``erase`` and ``purge``, on SQLite and PostgreSQL: output,
``--json`` shapes, exit codes, and what they write (or, read-only and
``--dry-run``, do not)."""

from __future__ import annotations

import hashlib
import io
import json
import sqlite3
import stat
import sys
from datetime import timedelta
from pathlib import Path
from urllib.parse import quote

import pytest
from click.testing import CliRunner, Result

from optin_core import ConsentService, ConsentState, Policy
from optin_core._cli import (
    EXIT_CHECK,
    EXIT_FAILURE,
    EXIT_OK,
    EXIT_USAGE,
    cli,
    run,
)
from optin_core._transfer import CSV_COLUMNS
from optin_core.testing import T0, sqlite_service

FR = "+33612345678"
US = "+15555550100"
NEW = "+15555550123"
HOSTILE = "Oui <script>alert(1)</script>"


def invoke(*args: str, stdin: str | bytes | None = None) -> Result:
    return CliRunner().invoke(cli, list(args), input=stdin, catch_exceptions=False)


def url(path: Path) -> str:
    return f"sqlite:///{path}"


def fill(service: ConsentService) -> None:
    """FR opted in (after a reply with markup in it), US stopped."""
    service.request_opt_in(FR, locale="fr")
    service.receive(FR, HOSTILE, message_id="SM0")
    service.receive(FR, "Oui", message_id="SM1")
    service.request_opt_in(US)
    service.receive(US, "STOP", message_id="SM2")


@pytest.fixture
def database(tmp_path: Path) -> Path:
    path = tmp_path / "consent.db"
    service = sqlite_service(path)
    fill(service)
    service.store.close()  # type: ignore[union-attr]
    return path


def state_of(path: Path, contact: str) -> ConsentState:
    service = sqlite_service(path)
    try:
        return service.get(contact).state
    finally:
        service.store.close()  # type: ignore[union-attr]


def jsonl_export(store: str) -> list[dict[str, object]]:
    result = invoke("export", "--store", store)
    assert result.exit_code == EXIT_OK, result.output
    return [json.loads(line) for line in result.stdout.splitlines()]


def tamper(database: Path) -> None:
    with sqlite3.connect(database) as db:
        db.execute(
            "UPDATE events SET data = replace(data, 'Oui', 'Non') "
            "WHERE contact = ? AND version = 3",
            (FR,),
        )
    db.close()


def files_in(directory: Path) -> set[str]:
    return {p.name for p in directory.iterdir()}


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


# -- receipt ---------------------------------------------------------------------


def test_receipt_in_the_contacts_locale(database: Path) -> None:
    result = invoke("receipt", "+33 6 12 34 56 78", "--store", url(database))
    assert result.exit_code == EXIT_OK, result.output
    out = result.stdout
    assert out.startswith("Reçu de consentement\n")  # the contact's locale
    assert f"Contact: {FR}" in out
    assert HOSTILE in out  # each reply verbatim
    assert "Acme souhaite vous écrire par SMS." in out  # the wording shown
    assert out.endswith("\n")
    assert not out.endswith("\n\n")
    assert result.stderr == ""


def test_receipt_locale_time_zone_and_formats(database: Path) -> None:
    store = url(database)
    utc = invoke("receipt", US, "--store", store, "--locale", "en")
    assert utc.exit_code == EXIT_OK
    assert utc.stdout.startswith("Consent receipt\n")
    assert "March 2, 2026, 9:30:00" in utc.stdout
    paris = invoke(
        "receipt", US, "--store", store, "--locale", "en", "--tz", "Europe/Paris"
    )
    assert paris.exit_code == EXIT_OK
    assert "March 2, 2026, 10:30:00" in paris.stdout
    assert "9:30:00" not in paris.stdout
    markdown = invoke("receipt", US, "--store", store, "--format", "markdown")
    assert markdown.exit_code == EXIT_OK
    assert markdown.stdout.startswith("# ")
    html = invoke("receipt", FR, "--store", store, "--format", "html")
    assert html.exit_code == EXIT_OK
    assert html.stdout.startswith("<!DOCTYPE html>")
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html.stdout
    assert "<script>" not in html.stdout


def test_receipt_json(database: Path) -> None:
    text = invoke("receipt", FR, "--store", url(database)).stdout
    result = invoke("receipt", FR, "--store", url(database), "--json")
    assert result.exit_code == EXIT_OK
    data = json.loads(result.stdout)
    assert data == {
        "contact": FR,
        "state": "opted_in",
        "format": "text",
        "verified": True,
        "problem": None,
        "receipt": data["receipt"],
    }
    assert data["receipt"].rstrip("\n") == text.rstrip("\n")


@pytest.mark.parametrize(
    ("args", "code", "message"),
    [
        ((NEW,), EXIT_FAILURE, f"no record of {NEW} in the store"),
        ((FR, "--tz", "Mars/Olympus"), EXIT_USAGE, "unknown time zone 'Mars/Olympus'"),
        ((FR, "--locale", "xx"), EXIT_USAGE, "locale 'xx' is not available"),
        ((FR, "--format", "pdf"), EXIT_USAGE, "'pdf' is not one of"),
        (("",), EXIT_USAGE, "contact"),
    ],
)
def test_receipt_bad_input(
    database: Path, args: tuple[str, ...], code: int, message: str
) -> None:
    result = invoke("receipt", *args, "--store", url(database))
    assert result.exit_code == code, result.output
    assert result.stdout == ""
    assert message in result.stderr
    assert "Traceback" not in result.output


def test_receipt_of_a_log_that_does_not_verify(database: Path) -> None:
    tamper(database)
    result = invoke("receipt", FR, "--store", url(database), "--locale", "en")
    assert result.exit_code == EXIT_CHECK
    assert result.stdout.startswith("Consent receipt")  # still shown
    assert "Non" in result.stdout
    assert result.stderr.startswith("Warning: the log does not verify: ")
    data = json.loads(invoke("receipt", FR, "--store", url(database), "--json").stdout)
    assert data["verified"] is False
    assert "log[2]" in data["problem"]
    # Another contact's receipt is not concerned.
    assert invoke("receipt", US, "--store", url(database)).exit_code == EXIT_OK


def test_receipt_of_an_erased_contact_names_no_number(database: Path) -> None:
    assert (
        invoke(
            "erase",
            FR,
            "--by",
            "dpo",
            "--reason",
            "ticket 9",
            "--yes",
            "--store",
            url(database),
        ).exit_code
        == EXIT_OK
    )
    result = invoke("receipt", FR, "--store", url(database))
    assert result.exit_code == EXIT_OK, result.output
    assert FR not in result.stdout
    assert "sha256:" in result.stdout
    assert HOSTILE not in result.stdout


def test_an_erasure_that_does_not_verify_is_a_failed_check(database: Path) -> None:
    store = url(database)
    invoke("erase", FR, "--by", "dpo", "--reason", "r", "--yes", "--store", store)
    with sqlite3.connect(database) as db:
        db.execute("UPDATE erasures SET data = replace(data, '\"dpo\"', '\"bob\"')")
    db.close()
    for command in (["receipt", FR], ["export"]):
        result = invoke(*command, "--store", store)
        assert result.exit_code == EXIT_CHECK, result.output
        assert len(result.stderr.strip().splitlines()) == 1
        assert "run 'optin-core verify'" in result.stderr


# -- export ----------------------------------------------------------------------


def test_export_jsonl_to_standard_output(database: Path) -> None:
    result = invoke("export", "--store", url(database))
    assert result.exit_code == EXIT_OK, result.output
    lines = [json.loads(line) for line in result.stdout.splitlines()]
    assert [line["contact"] for line in lines] == [US, FR]  # code point order
    assert {"schema", "contact", "head", "log", "messages"} <= set(lines[0])
    assert lines[1]["head"]["state"] == "opted_in"
    assert len(lines[1]["log"]) == lines[1]["head"]["version"] == 3
    assert lines[1]["messages"][0]["status"] == "sent"
    assert result.stderr == "2 records exported to standard output (jsonl)\n"


def test_export_csv_to_a_file(database: Path, tmp_path: Path) -> None:
    out = tmp_path / "summary.csv"
    result = invoke("export", "--store", url(database), "-o", str(out))
    assert result.exit_code == EXIT_OK, result.output
    assert result.stdout == f"2 records exported to {out} (csv)\n"  # by its suffix
    assert stat.S_IMODE(out.stat().st_mode) == 0o600  # personal data
    rows = out.read_text(encoding="utf-8").splitlines()
    assert rows[0] == ",".join(CSV_COLUMNS)
    assert rows[1].startswith(f"{US},stopped,2026-03-02T09:30:00+00:00,sms:stop,")
    assert rows[2].startswith(f"{FR},opted_in,")
    # --format wins over the suffix; no temporary file is left behind.
    forced = tmp_path / "all.csv"
    result = invoke(
        "export", "--store", url(database), "-o", str(forced), "--format", "jsonl"
    )
    assert (
        json.loads(forced.read_text(encoding="utf-8").splitlines()[0])["contact"] == US
    )
    assert not [name for name in files_in(tmp_path) if name.endswith(".part")]


def test_export_json_summary(database: Path, tmp_path: Path) -> None:
    out = tmp_path / "consent.jsonl"
    result = invoke("export", "--store", url(database), "--output", str(out), "--json")
    assert result.exit_code == EXIT_OK
    assert json.loads(result.stdout) == {
        "format": "jsonl",
        "output": str(out),
        "records": 2,
    }
    assert len(out.read_text(encoding="utf-8").splitlines()) == 2
    result = invoke("export", "--store", url(database), "--json")
    assert result.exit_code == EXIT_USAGE
    assert result.stdout == ""
    assert "pass --output FILE" in result.stderr


def test_export_that_fails_leaves_no_file(database: Path, tmp_path: Path) -> None:
    tamper(database)
    out = tmp_path / "exports" / "consent.jsonl"
    out.parent.mkdir()
    out.write_text("the previous export\n", encoding="utf-8")
    result = invoke("export", "--store", url(database), "-o", str(out))
    assert result.exit_code == EXIT_CHECK
    assert "log[2]" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
    assert out.read_text(encoding="utf-8") == "the previous export\n"  # untouched
    assert files_in(out.parent) == {"consent.jsonl"}


def test_export_to_a_directory_that_does_not_exist(
    database: Path, tmp_path: Path
) -> None:
    result = invoke(
        "export", "--store", url(database), "-o", str(tmp_path / "no" / "x.jsonl")
    )
    assert result.exit_code == EXIT_USAGE
    assert "cannot write" in result.stderr


def test_read_only_commands_create_no_store(tmp_path: Path) -> None:
    missing = tmp_path / "missing.db"
    for command in (
        ["receipt", FR],
        ["export"],
        ["erase", FR, "--by", "dpo", "--reason", "r", "--yes"],
        ["purge", "--older-than", "30"],
        ["import", "-", "--source", "s", "--dry-run"],
    ):
        result = invoke(*command, "--store", url(missing), stdin="")
        assert result.exit_code == EXIT_FAILURE, (command, result.output)
        assert result.stderr == f"Error: no SQLite database at {missing}\n"
    assert not missing.exists()
    assert files_in(tmp_path) == set()


def test_the_progress_bar_shows_on_a_terminal_only(
    database: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    out = tmp_path / "consent.jsonl"
    args = ["export", "--store", url(database), "-o", str(out)]
    # Not a terminal: no bar, however long the run.
    monkeypatch.setattr("optin_core._cli.PROGRESS_AFTER", 0.0)
    assert run(args) == EXIT_OK
    assert capsys.readouterr().err == ""
    # A terminal: the bar, on standard error.
    terminal = Terminal()
    monkeypatch.setattr(sys, "stderr", terminal)
    assert run(args) == EXIT_OK
    assert "exporting" in terminal.getvalue()
    assert terminal.getvalue().rstrip().endswith("2\x1b[?25h")
    assert capsys.readouterr().out == f"2 records exported to {out} (jsonl)\n"
    terminal = Terminal()
    monkeypatch.setattr(sys, "stderr", terminal)
    store = url(tmp_path / "copy.db")
    assert run(["import", str(out), "--source", "copy", "--store", store]) == EXIT_OK
    assert "importing" in terminal.getvalue()
    assert "2/2" in terminal.getvalue()
    # A short run on a terminal draws nothing.
    monkeypatch.setattr("optin_core._cli.PROGRESS_AFTER", 3600.0)
    terminal = Terminal()
    monkeypatch.setattr(sys, "stderr", terminal)
    assert run(args) == EXIT_OK
    assert terminal.getvalue() == ""


def test_a_stream_that_cannot_say_whether_it_is_a_terminal() -> None:
    from optin_core._cli import _is_terminal

    closed = io.StringIO()
    closed.close()
    assert _is_terminal(closed) is False


# -- import ----------------------------------------------------------------------


def test_export_import_round_trip_on_sqlite(database: Path, tmp_path: Path) -> None:
    exported = tmp_path / "consent.jsonl"
    assert (
        invoke("export", "--store", url(database), "-o", str(exported)).exit_code == 0
    )
    target = tmp_path / "new.db"
    result = invoke(
        "import", str(exported), "--source", "old store", "--store", url(target)
    )
    assert result.exit_code == EXIT_OK, result.output
    assert result.stdout.splitlines() == [
        "2 rows: 2 applied, 0 unchanged, 0 refused",
        "  applied: restored (its log as exported): 2",
    ]
    assert target.is_file()  # an import creates its store
    assert jsonl_export(url(target)) == jsonl_export(url(database))
    # Twice: nothing changes.
    result = invoke(
        "import",
        str(exported),
        "--source",
        "old store",
        "--store",
        url(target),
        "--json",
    )
    assert result.exit_code == EXIT_OK
    assert json.loads(result.stdout) == {
        "file": str(exported),
        "format": "jsonl",
        "dry_run": False,
        "rows": 2,
        "applied": 0,
        "unchanged": 2,
        "refused": 0,
        "reasons": {"unchanged": {"already in the store": 2}},
        "refusals": [],
        "listed_all": True,
    }
    assert jsonl_export(url(target)) == jsonl_export(url(database))


def stopped_here_opted_in_there(tmp_path: Path) -> tuple[Path, Path]:
    """A store where US is stopped, and a CSV that says US and NEW opted in
    and FR stopped."""
    path = tmp_path / "here.db"
    service = sqlite_service(path)
    fill(service)
    service.store.close()  # type: ignore[union-attr]
    csv = tmp_path / "vendor.csv"
    csv.write_text(
        "contact,state,since,source\n"
        f"{US},opted_in,2024-01-01T00:00:00Z,web\n"
        f"{NEW},opted_in,2024-01-01T00:00:00Z,web\n"
        f"{FR},stopped,2024-06-01T00:00:00+02:00,\n",
        encoding="utf-8",
    )
    return path, csv


def test_import_never_unstops_and_says_so_in_its_exit_code(tmp_path: Path) -> None:
    path, csv = stopped_here_opted_in_there(tmp_path)
    result = invoke(
        "import", str(csv), "--source", "braze", "--by", "alice", "--store", url(path)
    )
    assert result.exit_code == EXIT_CHECK, result.output
    assert result.stdout.splitlines() == [  # as docs/cli.md shows it
        "3 rows: 2 applied, 0 unchanged, 1 refused",
        "  applied: opt-in imported: 1",
        "  applied: stop imported: 1",
        "  refused: stopped: an imported opt-in never restarts a contact: 1",
        f"  line 2 ({US}): stopped: an imported opt-in never restarts a contact",
    ]
    docs = (Path(__file__).parents[1] / "docs" / "cli.md").read_text(encoding="utf-8")
    assert "\n".join(result.stdout.splitlines()[:4]) in docs
    assert state_of(path, US) is ConsentState.STOPPED
    assert state_of(path, NEW) is ConsentState.OPTED_IN
    assert state_of(path, FR) is ConsentState.STOPPED
    service = sqlite_service(path)
    try:
        event = service.history(FR).events[-1]
    finally:
        service.store.close()  # type: ignore[union-attr]
    assert event.actor == "alice"
    assert event.method == "import:braze"


def test_dry_run_writes_nothing(tmp_path: Path) -> None:
    path, csv = stopped_here_opted_in_there(tmp_path)
    before = jsonl_export(url(path))
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    result = invoke(
        "import", str(csv), "--source", "braze", "--dry-run", "--store", url(path)
    )
    assert result.exit_code == EXIT_CHECK  # a row would be refused
    assert result.stdout.splitlines()[0] == (
        "3 rows: 2 would be applied, 0 unchanged, 1 refused"
    )
    assert result.stdout.splitlines()[-1] == "This was a dry run: nothing was written."
    data = json.loads(
        invoke(
            "import",
            str(csv),
            "--source",
            "b",
            "--dry-run",
            "--json",
            "--store",
            url(path),
        ).stdout
    )
    assert data["dry_run"] is True
    assert data["refusals"] == [
        {
            "line": 2,
            "contact": US,
            "reason": "stopped: an imported opt-in never restarts a contact",
        }
    ]
    assert jsonl_export(url(path)) == before
    assert hashlib.sha256(path.read_bytes()).hexdigest() == digest
    assert state_of(path, NEW) is ConsentState.NEW
    assert state_of(path, FR) is ConsentState.OPTED_IN


@pytest.mark.parametrize(
    ("name", "text", "message"),
    [
        (
            "bad.jsonl",
            '{"schema": 2}\nnot json\n',
            "import refused at line 1: ",
        ),
        (
            "bad.jsonl",
            "\n[1, 2]\n",
            "import refused at line 2: expected a JSON object",
        ),
        (
            "naive.csv",
            f"contact,state,since\n{US},stopped,2024-01-01T00:00:00Z\n"
            f"{FR},stopped,2024-01-01T00:00:00\n",
            "import refused at line 3: since '2024-01-01T00:00:00' is a naive",
        ),
        (
            "state.csv",
            f"contact,state,since\n{US},subscribed,2024-01-01T00:00:00Z\n",
            "import refused at line 2: unknown state 'subscribed'",
        ),
    ],
)
def test_a_bad_file_is_refused_whole_naming_the_line(
    database: Path, tmp_path: Path, name: str, text: str, message: str
) -> None:
    before = jsonl_export(url(database))
    bad = tmp_path / name
    bad.write_text(text, encoding="utf-8")
    result = invoke("import", str(bad), "--source", "s", "--store", url(database))
    assert result.exit_code == EXIT_USAGE, result.output
    assert result.stdout == ""
    assert result.stderr.startswith(f"Error: {bad}: {message}")
    assert result.stderr.rstrip().endswith(
        "nothing was written (fix the file, or pass --continue to skip such lines)"
    )
    assert len(result.stderr.strip().splitlines()) == 1
    assert jsonl_export(url(database)) == before


def test_a_csv_without_its_columns_is_refused_even_with_continue(
    database: Path, tmp_path: Path
) -> None:
    bad = tmp_path / "columns.csv"
    bad.write_text(f"phone,status\n{US},stopped\n", encoding="utf-8")
    result = invoke(
        "import", str(bad), "--source", "s", "--continue", "--store", url(database)
    )
    assert result.exit_code == EXIT_USAGE
    assert result.stderr == (
        f"Error: {bad}: import refused at line 1: missing column(s) contact, "
        "state, since in the header; nothing was written\n"
    )


def test_continue_skips_bad_lines_and_reports_them(
    database: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    bad = tmp_path / "mixed.csv"
    bad.write_text(
        "contact,state,since\n"
        f"{NEW},opted_in,2024-01-01T00:00:00Z\n"
        f"{FR},maybe,2024-01-01T00:00:00Z\n"
        f"{FR},stopped,yesterday\n",
        encoding="utf-8",
    )
    monkeypatch.setattr("optin_core._cli.LISTED", 1)
    result = invoke(
        "import", str(bad), "--source", "s", "--continue", "--store", url(database)
    )
    assert result.exit_code == EXIT_CHECK, result.output
    lines = result.stdout.splitlines()
    assert lines[0] == "3 rows: 1 applied, 0 unchanged, 2 refused"
    assert lines[-2].startswith("  line 3: unreadable: unknown state 'maybe'")
    assert lines[-1] == "  ... and 1 more refused rows (--json lists them)"
    assert state_of(database, NEW) is ConsentState.OPTED_IN
    assert state_of(database, FR) is ConsentState.OPTED_IN


def test_import_from_standard_input_with_a_byte_order_mark(database: Path) -> None:
    text = f"\ufeffcontact,state,since\r\n{FR},stopped,2024-01-01T00:00:00Z\r\n"
    result = invoke(
        "import",
        "-",
        "--format",
        "csv",
        "--source",
        "excel",
        "--store",
        url(database),
        stdin=text.encode("utf-8"),
    )
    assert result.exit_code == EXIT_OK, result.output
    assert result.stdout.splitlines()[0] == "1 rows: 1 applied, 0 unchanged, 0 refused"
    assert state_of(database, FR) is ConsentState.STOPPED


def test_import_bad_arguments(database: Path, tmp_path: Path) -> None:
    latin = tmp_path / "latin1.csv"
    latin.write_bytes("contact,state,since\nJosé,stopped,\n".encode("latin-1"))
    result = invoke("import", str(latin), "--source", "s", "--store", url(database))
    assert result.exit_code == EXIT_USAGE
    assert result.stderr.startswith(f"Error: {latin} is not UTF-8 text:")
    for option in ("--source", "--by"):
        args = ["import", str(latin), "--source", "s", "--store", url(database)]
        args += [option, " "]
        result = invoke(*args)
        assert result.exit_code == EXIT_USAGE
        assert (
            result.stderr
            == f"Error: {option} must not be empty (it is logged on every event)\n"
        )
    result = invoke("import", str(latin), "--store", url(database))
    assert result.exit_code == EXIT_USAGE
    assert "Missing option '--source'" in result.stderr
    result = invoke(
        "import",
        str(tmp_path / "nope.jsonl"),
        "--source",
        "s",
        "--store",
        url(database),
    )
    assert result.exit_code == EXIT_USAGE
    assert "does not exist" in result.stderr


def test_an_erased_contact_is_not_imported_back(database: Path, tmp_path: Path) -> None:
    exported = tmp_path / "before.jsonl"
    invoke("export", "--store", url(database), "-o", str(exported))
    invoke(
        "erase", FR, "--by", "dpo", "--reason", "r", "--yes", "--store", url(database)
    )
    result = invoke(
        "import", str(exported), "--source", "backup", "--store", url(database)
    )
    assert result.exit_code == EXIT_CHECK
    assert (
        f"  line 2 ({FR}): erased here: only the contact can come back, by "
        "texting START" in result.stdout.splitlines()
    )
    assert FR.encode() not in database.read_bytes()


# -- erase -----------------------------------------------------------------------


def test_erase_with_yes(database: Path) -> None:
    result = invoke(
        "erase",
        "+33 6 12 34 56 78",
        "--by",
        "dpo",
        "--reason",
        "GDPR art. 17",
        "--yes",
        "--store",
        url(database),
    )
    assert result.exit_code == EXIT_OK, result.output
    lines = result.stdout.splitlines()
    assert lines[0].startswith(
        f"erased {FR}: 4 events redacted; suppression key sha256:"
    )
    assert "comes back only by texting START" in lines[1]
    assert result.stderr == ""  # no question asked
    wal = database.with_name(database.name + "-wal")
    for path in (database, wal):
        if path.exists():
            assert FR.encode() not in path.read_bytes()
            assert b"script" not in path.read_bytes()
    service = sqlite_service(database)
    try:
        assert service.can_send(FR) is False
        assert service.get(FR).state is ConsentState.STOPPED
        assert service.store.get(FR) is None  # type: ignore[attr-defined]
    finally:
        service.store.close()  # type: ignore[union-attr]
    # The other contact is untouched.
    assert state_of(database, US) is ConsentState.STOPPED
    assert invoke("verify", US, "--store", url(database)).exit_code == EXIT_OK


def test_erase_asks_first(database: Path) -> None:
    args = ["erase", FR, "--by", "dpo", "--reason", "r", "--store", url(database)]
    for answer in ("n\n", "", "\n"):
        result = invoke(*args, stdin=answer)
        assert result.exit_code == EXIT_FAILURE, answer
        assert result.stderr.startswith(
            f"Erase the personal data of {FR} (opted_in, 3 events)? "
        )
        assert result.stderr.endswith(
            "\nError: nothing was erased (pass --yes to erase without asking)\n"
        )
        assert state_of(database, FR) is ConsentState.OPTED_IN
    result = invoke(*args, "--json", stdin="y\n")
    assert result.exit_code == EXIT_OK
    data = json.loads(result.stdout)  # the question went to standard error
    assert data["already_erased"] is False
    assert FR.encode() not in database.read_bytes()


def test_erase_twice_is_a_no_op(database: Path) -> None:
    args = ["erase", FR, "--by", "dpo", "--reason", "r1", "--store", url(database)]
    first = json.loads(invoke(*args, "--yes", "--json").stdout)
    assert set(first) == {
        "contact",
        "already_erased",
        "erased_at",
        "by",
        "reason",
        "key",
        "events",
        "erasures",
    }
    assert first["contact"] == FR
    assert first["by"] == "dpo"
    assert first["reason"] == "r1"
    assert first["events"] == 4  # the revocation that stopped it, then erased
    assert first["erasures"] == 1
    assert first["key"].startswith("sha256:")
    result = invoke(*args)  # no --yes: nothing to ask
    assert result.exit_code == EXIT_OK
    assert result.stdout.startswith(f"{FR} was erased already, at ")
    assert result.stdout.rstrip().endswith("by dpo: nothing to do")
    assert result.stderr == ""
    again = json.loads(invoke(*args, "--json").stdout)
    assert again == {**first, "already_erased": True}


@pytest.mark.parametrize(
    ("args", "code", "message"),
    [
        ((NEW, "--by", "dpo", "--reason", "r"), EXIT_FAILURE, f"no record of {NEW}"),
        ((FR, "--by", "", "--reason", "r"), EXIT_USAGE, "--by must not be empty"),
        ((FR, "--by", "dpo", "--reason", " "), EXIT_USAGE, "--reason must not be"),
        ((FR, "--by", "dpo"), EXIT_USAGE, "Missing option '--reason'"),
        (("", "--by", "dpo", "--reason", "r"), EXIT_USAGE, "contact"),
    ],
)
def test_erase_bad_input(
    database: Path, args: tuple[str, ...], code: int, message: str
) -> None:
    result = invoke("erase", *args, "--store", url(database))
    assert result.exit_code == code, result.output
    assert message in result.stderr
    assert "Erase the personal data" not in result.stderr  # refused before asking
    assert state_of(database, FR) is ConsentState.OPTED_IN


def keyed_store(tmp_path: Path) -> tuple[Path, Path]:
    key = b"k" * 32
    path = tmp_path / "keyed.db"
    service = sqlite_service(path, Policy(org_name="Acme", log_key=key))
    fill(service)
    service.store.close()  # type: ignore[union-attr]
    key_file = tmp_path / "key"
    key_file.write_bytes(key + b"\n")
    return path, key_file


def test_a_keyed_store_is_written_only_with_its_key(tmp_path: Path) -> None:
    """Events appended without the key would break the chains for good: the
    write commands check a log first and write nothing."""
    path, key_file = keyed_store(tmp_path)
    key = ["--log-key-file", str(key_file)]
    before = jsonl_export_keyed(path, key)
    args = ["erase", FR, "--by", "dpo", "--reason", "r", "--yes", "--store", url(path)]
    result = invoke(*args)
    assert result.exit_code == EXIT_CHECK
    assert "the log is keyed (HMAC): pass its log_key" in result.stderr
    assert "nothing was written (a keyed store needs its --log-key-file" in (
        result.stderr
    )
    csv = tmp_path / "stops.csv"
    csv.write_text(
        f"contact,state,since\n{FR},stopped,2024-01-01T00:00:00Z\n", encoding="utf-8"
    )
    result = invoke("import", str(csv), "--source", "s", "--store", url(path))
    assert result.exit_code == EXIT_CHECK
    assert "nothing was written" in result.stderr
    wrong = tmp_path / "wrong"
    wrong.write_bytes(b"w" * 32)
    result = invoke(*args, "--log-key-file", str(wrong))
    assert result.exit_code == EXIT_CHECK
    assert jsonl_export_keyed(path, key) == before  # nothing was written
    # With the key: verified, and written under it.
    result = invoke("import", str(csv), "--source", "s", "--store", url(path), *key)
    assert result.exit_code == EXIT_OK, result.output
    result = invoke(*args, *key, "--json")
    assert result.exit_code == EXIT_OK, result.output
    assert json.loads(result.stdout)["key"].startswith("hmac-sha256:")
    result = invoke("show", US, "--store", url(path), "--log", *key)
    assert result.exit_code == EXIT_OK
    assert invoke("verify", "--store", url(path), *key).exit_code == EXIT_OK
    # An empty store has no log to check.
    empty = tmp_path / "empty.db"
    result = invoke("import", str(csv), "--source", "s", "--store", url(empty), *key)
    assert result.exit_code == EXIT_OK, result.output


def jsonl_export_keyed(path: Path, key: list[str]) -> str:
    result = invoke("export", "--store", url(path), *key)
    assert result.exit_code == EXIT_OK, result.output
    return result.stdout


# -- purge -----------------------------------------------------------------------


def test_purge_old_delivered_rows(
    database: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("optin_core._cli._utc_now", lambda: T0 + timedelta(days=10))
    store = url(database)
    result = invoke("purge", "--older-than", "30", "--store", store)
    assert result.exit_code == EXIT_OK
    assert result.stdout == (
        "0 delivered outbox rows purged (sent before 2026-02-10 09:30:00+00:00); "
        "the log keeps every message\n"
    )
    result = invoke("purge", "--older-than", "9", "--store", store, "--json")
    assert result.exit_code == EXIT_OK
    data = json.loads(result.stdout)
    assert data == {"purged": data["purged"], "older_than": "2026-03-03T09:30:00+00:00"}
    assert data["purged"] >= 4
    service = sqlite_service(database)
    try:
        assert service.store.messages(FR) == []  # type: ignore[attr-defined]
        assert len(service.history(FR).events) == 3  # the log keeps all
    finally:
        service.store.close()  # type: ignore[union-attr]
    receipt = invoke("receipt", FR, "--store", store, "--locale", "en").stdout
    assert "purged after the retention period" in receipt


def test_purge_bad_input(database: Path) -> None:
    for days in ("-1", "ninety"):
        result = invoke("purge", "--older-than", days, "--store", url(database))
        assert result.exit_code == EXIT_USAGE
        assert "--older-than" in result.stderr
    assert invoke("purge", "--store", url(database)).exit_code == EXIT_USAGE


# -- stores that cannot be used ---------------------------------------------------

COMMANDS = [
    ["receipt", FR],
    ["export"],
    ["import", "-", "--source", "s"],
    ["import", "-", "--source", "s", "--dry-run"],
    ["erase", FR, "--by", "dpo", "--reason", "r", "--yes"],
    ["purge", "--older-than", "30"],
]


@pytest.mark.parametrize("command", COMMANDS, ids=lambda c: " ".join(c[:2]))
@pytest.mark.parametrize(
    ("store", "code", "message"),
    [
        ("sqlite://", EXIT_USAGE, "a SQLite URL names a file"),
        ("mysql://db/consent", EXIT_USAGE, "unknown store URL"),
        (
            "postgresql://nobody@127.0.0.1:1/consent",
            EXIT_FAILURE,
            "127.0.0.1:1 is unreachable",
        ),
    ],
)
def test_an_unusable_store_is_one_line(
    command: list[str], store: str, code: int, message: str
) -> None:
    result = invoke(*command, "--store", store, stdin="")
    assert result.exit_code == code, result.output
    assert len(result.stderr.strip().splitlines()) == 1, result.stderr
    assert message in result.stderr
    assert "Traceback" not in result.output
    assert result.stdout == ""


def test_an_import_cannot_create_a_file_where_there_is_no_directory(
    tmp_path: Path,
) -> None:
    store = url(tmp_path / "no" / "such" / "dir.db")
    result = invoke("import", "-", "--source", "s", "--store", store, stdin="")
    assert result.exit_code == EXIT_FAILURE
    assert "the SQLite database cannot be read" in result.stderr


# -- PostgreSQL ------------------------------------------------------------------


def pg_url(pg_dsn: str) -> str:
    """The store URL of the test server's DSN (its schema in ``options``)."""
    from psycopg.conninfo import conninfo_to_dict

    parts = conninfo_to_dict(pg_dsn)
    host = str(parts.get("host", "127.0.0.1"))
    port = parts.get("port", 5432)
    query = f"options={quote(str(parts['options']))}"
    if host.startswith("/"):  # a Unix socket directory
        where = ""
        query += f"&host={quote(host)}&port={port}"
    else:
        where = f"{quote(host, safe='')}:{port}"
    return f"postgresql://{parts['user']}@{where}/{parts['dbname']}?{query}"


def test_round_trip_through_postgresql(
    database: Path, tmp_path: Path, pg_dsn: str
) -> None:
    """SQLite -> JSONL -> PostgreSQL (tables created by the import) ->
    JSONL -> SQLite: the same heads, logs and delivery records all along,
    erasures included."""
    store = pg_url(pg_dsn)
    assert (
        invoke(
            "erase",
            US,
            "--by",
            "dpo",
            "--reason",
            "r",
            "--yes",
            "--store",
            url(database),
        ).exit_code
        == EXIT_OK
    )
    first = tmp_path / "sqlite.jsonl"
    assert invoke("export", "--store", url(database), "-o", str(first)).exit_code == 0
    # A dry run creates nothing, so it needs the tables.
    result = invoke(
        "import", str(first), "--source", "s", "--dry-run", "--store", store
    )
    assert result.exit_code == EXIT_FAILURE
    assert result.stderr.startswith(
        "Error: the store cannot be used: schema: the database is at store schema 0"
    )
    assert result.stderr.endswith(
        "(the command line creates a store's tables only for an import without "
        "--dry-run)\n"
    )
    result = invoke("import", str(first), "--source", "sqlite", "--store", store)
    assert result.exit_code == EXIT_OK, result.output
    assert result.stdout.splitlines()[0] == "2 rows: 2 applied, 0 unchanged, 0 refused"
    second = tmp_path / "postgres.jsonl"
    assert invoke("export", "--store", store, "-o", str(second)).exit_code == EXIT_OK
    assert second.read_text(encoding="utf-8") == first.read_text(encoding="utf-8")
    result = invoke(
        "import",
        str(second),
        "--source",
        "sqlite",
        "--store",
        store,
        "--dry-run",
        "--json",
    )
    assert result.exit_code == EXIT_OK
    assert json.loads(result.stdout)["unchanged"] == 2
    back = tmp_path / "back.db"
    assert (
        invoke("import", str(second), "--source", "pg", "--store", url(back)).exit_code
        == EXIT_OK
    )
    assert jsonl_export(url(back)) == jsonl_export(url(database))
    receipt = invoke("receipt", FR, "--store", store, "--format", "html")
    assert receipt.exit_code == EXIT_OK
    assert "&lt;script&gt;" in receipt.stdout
    csv = invoke("export", "--store", store, "--format", "csv").stdout.splitlines()
    assert csv == [",".join(CSV_COLUMNS), csv[1]]  # the erased contact is not in it
    assert csv[1].startswith(f"{FR},opted_in,")


def test_erase_and_purge_on_postgresql(
    pg_dsn: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    from optin_core.stores.postgres import PostgresStore
    from optin_core.testing import FakeClock, RecordingSender

    with PostgresStore(pg_dsn) as pg:
        fill(
            ConsentService(
                Policy(org_name="Acme"), pg, RecordingSender(), clock=FakeClock()
            )
        )
    store = pg_url(pg_dsn)
    args = ["erase", FR, "--by", "dpo", "--reason", "r", "--store", store]
    result = invoke(*args, stdin="n\n")
    assert result.exit_code == EXIT_FAILURE
    result = invoke(*args, "--yes", "--json")
    assert result.exit_code == EXIT_OK, result.output
    data = json.loads(result.stdout)
    assert data["already_erased"] is False
    assert data["events"] == 4
    result = invoke(*args, "--json")
    assert json.loads(result.stdout)["already_erased"] is True
    shown = json.loads(invoke("show", FR, "--store", store, "--json").stdout)
    assert shown["head"]["state"] == "stopped"
    assert shown["may_text"] is False
    lines = jsonl_export(store)
    assert [line.get("contact") for line in lines] == [US, None]
    assert lines[1]["erasure"]["key"] == data["key"]
    assert lines[1]["erasure"]["logs"][0]["reason"] == "r"  # kept in clear
    assert FR not in json.dumps(lines)
    with PostgresStore(pg_dsn) as pg:
        assert pg.get(FR) is None
    monkeypatch.setattr("optin_core._cli._utc_now", lambda: T0 + timedelta(days=10))
    result = invoke("purge", "--older-than", "9", "--store", store, "--json")
    assert result.exit_code == EXIT_OK
    assert json.loads(result.stdout)["purged"] == 2  # US's two messages
    with PostgresStore(pg_dsn) as pg:
        assert pg.messages(US) == []
        assert len(pg.log(US)) == 2


# -- odd corners -----------------------------------------------------------------


def test_erase_asks_at_a_terminal(
    database: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """At a terminal the answer's newline is the terminal's: none is added."""
    monkeypatch.setattr(sys, "stdin", Terminal("y\n"))
    args = ["erase", FR, "--by", "dpo", "--reason", "r", "--store", url(database)]
    assert run(args) == EXIT_OK
    out, err = capsys.readouterr()
    assert err.startswith(f"Erase the personal data of {FR}")
    assert err.endswith("[y/N]: ")
    assert out.startswith(f"erased {FR}: ")


def test_a_key_file_that_cannot_be_read(
    database: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    key_file = tmp_path / "key"
    key_file.write_bytes(b"k" * 32)

    def unreadable(_self: Path) -> bytes:
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr(Path, "read_bytes", unreadable)
    result = invoke(
        "receipt", FR, "--store", url(database), "--log-key-file", str(key_file)
    )
    assert result.exit_code == EXIT_USAGE
    assert result.stderr == f"Error: cannot read {key_file}: Permission denied\n"


def test_an_error_of_the_store_itself_is_one_line(
    database: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A RecordError that names no contact is the store's (its schema, a
    record it cannot decode): exit 1, not a failed check of a log."""
    from optin_core import RecordError

    def broken(*_args: object, **_kwargs: object) -> None:
        raise RecordError("outbox", "a row of an unknown kind")

    monkeypatch.setattr(ConsentService, "history", broken)
    for command in (
        ["receipt", FR],
        ["erase", FR, "--by", "dpo", "--reason", "r", "--yes"],
        ["import", "-", "--source", "s"],
    ):
        result = invoke(*command, "--store", url(database), stdin="")
        assert result.exit_code == EXIT_FAILURE, result.output
        assert result.stderr == (
            "Error: the store cannot be used: outbox: a row of an unknown kind\n"
        )
    assert state_of(database, FR) is ConsentState.OPTED_IN
