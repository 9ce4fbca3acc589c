"""The ``optin-core`` command line: output, exit codes, errors in one line."""

from __future__ import annotations

import io
import json
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from optin_core import __main__ as entry
from optin_core import __version__
from optin_core._cli import EXIT_CHECK, EXIT_FAILURE, EXIT_OK, EXIT_USAGE, cli, run
from optin_core.testing import sqlite_service

FR = "+33612345678"
US = "+15555550100"


def invoke(*args: str, stdin: str | None = None) -> Result:
    return CliRunner().invoke(cli, list(args), input=stdin, catch_exceptions=False)


# -- parse -----------------------------------------------------------------------


def test_parse_oui_in_french_is_consent() -> None:
    result = invoke("parse", "Oui", "--locale", "fr")
    assert result.exit_code == EXIT_OK
    lines = result.stdout.splitlines()
    assert lines[0].startswith("intent:  consent")
    assert "keyword: oui" in lines
    assert "rule:    exact" in lines
    assert "locale:  fr" in lines


def test_parse_json() -> None:
    result = invoke("parse", "Stop, thank you", "--json")
    assert result.exit_code == EXIT_OK
    data = json.loads(result.stdout)
    assert data["intent"] == "stop"
    assert data["keyword"] == "stop"
    assert data["text"] == "Stop, thank you"


def test_parse_says_when_no_keyword_matched() -> None:
    result = invoke("parse", "please stop by the office")
    assert result.exit_code == EXIT_OK
    assert "intent:  unrecognized" in result.stdout
    assert "rule:    none (no keyword matched)" in result.stdout


def test_parse_reads_a_quote_of_our_wording() -> None:
    quoted = "Acme would like to text you. Messages are monitored and retained."
    result = invoke("parse", f"who is this? « {quoted} »")
    assert result.exit_code == EXIT_OK
    assert "quoted:  our opt_in_request" in result.stdout


def test_parse_with_a_policy_uses_its_words(tmp_path: Path) -> None:
    policy = tmp_path / "policy.toml"
    policy.write_text(
        'org_name = "Acme"\n[extra_keywords.consent]\nen = ["okay"]\n',
        encoding="utf-8",
    )
    assert json.loads(invoke("parse", "okay", "--json").stdout)["intent"] != "consent"
    result = invoke("parse", "okay", "--policy", str(policy), "--json")
    assert json.loads(result.stdout)["intent"] == "consent"


def test_parse_refuses_an_unknown_locale() -> None:
    result = invoke("parse", "Oui", "--locale", "xx-YY")
    assert result.exit_code == EXIT_USAGE
    assert result.stdout == ""
    assert result.stderr.startswith("Error: ")
    assert "Traceback" not in result.output


# -- simulate --------------------------------------------------------------------

SEED = """\
# the seed's conversation, in French
agent: request Je suis Martha de Hearsay
contact: C'est pour quoi ?
contact: Oui
agent: text Votre bilan est prêt
wait 20m
contact: STOP
agent: text Une dernière chose
"""


def test_simulate_a_script(tmp_path: Path) -> None:
    script = tmp_path / "seed.txt"
    script.write_text(SEED, encoding="utf-8")
    result = invoke("simulate", "--locale", "fr", "--script", str(script))
    assert result.exit_code == EXIT_OK, result.output
    out = result.stdout
    assert "[Mon 09:31] agent sends the opt-in request" in out
    assert "Je suis Martha de Hearsay" in out
    assert "sends reminder:" in out
    assert 'read as consent (keyword "oui")' in out
    assert "sends opt_in_confirmation:" in out
    assert "[Mon 09:55] contact: STOP" in out  # 20 minutes waited
    assert "refused (SendBlocked)" in out
    assert "The contact ends stopped, after 5 logged events" in out
    assert "nothing was sent" in out


def test_simulate_json_has_one_object_per_step() -> None:
    result = invoke("simulate", "--json", "--script", "-", stdin=SEED)
    assert result.exit_code == EXIT_OK
    steps = [json.loads(line) for line in result.stdout.splitlines()]
    assert [s["line"] for s in steps] == [2, 3, 4, 5, 7, 8]
    assert [s.get("state") for s in steps] == [
        "pending",
        "pending",
        "opted_in",
        "opted_in",
        "stopped",
        None,
    ]
    assert steps[2]["reply"]["intent"] == "consent"
    assert steps[2]["sent"][0]["kind"] == "opt_in_confirmation"
    assert steps[-1]["refused"]["error"] == "SendBlocked"


def test_simulate_says_why_nothing_changed() -> None:
    script = "agent: request\ncontact: Oui\ncontact: Oui\ncontact: hello there\n"
    result = invoke("simulate", "--script", "-", stdin=script)
    assert result.exit_code == EXIT_OK
    assert "nothing changes: already in that state" in result.stdout
    assert "nothing changes: ordinary conversation" in result.stdout


def test_simulate_agent_actions_and_policy(tmp_path: Path) -> None:
    policy = tmp_path / "p.toml"
    policy.write_text(
        'org_name = "Hearsay"\nattestation_methods = ["email"]\n', encoding="utf-8"
    )
    script = (
        "agent: attest email mail-42\n"
        "agent: text Hello\n"
        "agent: revoke asked by phone\n"
        "agent: revoke\n"
        "agent: request\n"
    )
    result = invoke("simulate", "--policy", str(policy), "--script", "-", stdin=script)
    assert result.exit_code == EXIT_OK, result.output
    out = result.stdout
    assert "agent records consent by email (mail-42)" in out
    assert "agent texts: Hello" in out
    assert "agent records an opt-out: asked by phone" in out
    assert "agent records an opt-out: revoked by the agent" in out
    assert "refused (ContactStopped)" in out


@pytest.mark.parametrize(
    ("line", "problem"),
    [
        ("bogus", "start the line with 'contact:', 'agent:' or 'wait'"),
        ("agent: dance", "unknown agent action 'dance'"),
        ("agent: text", "unknown agent action 'text'"),
        ("wait forever", "wait needs a duration"),
    ],
)
def test_simulate_refuses_a_bad_script_line_naming_it(line: str, problem: str) -> None:
    result = invoke("simulate", "--script", "-", stdin=f"agent: request\n{line}\n")
    assert result.exit_code == EXIT_USAGE
    assert result.stderr.startswith("Error: line 2: ")
    assert problem in result.stderr


def test_simulate_refuses_an_invalid_input_in_a_script() -> None:
    result = invoke("simulate", "--script", "-", stdin="agent: attest email\n" * 1)
    assert result.exit_code == EXIT_OK  # not accepted by the policy: a refusal
    assert "refused (MethodNotAccepted)" in result.stdout
    long_id = "agent: request " + "x" * 200 + "\n"
    result = invoke("simulate", "--script", "-", stdin=long_id)
    assert result.exit_code == EXIT_OK
    assert "refused (InvalidGreeting)" in result.stdout


def test_simulate_interactive_quit_ends_the_session(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    class Terminal(io.StringIO):
        def isatty(self) -> bool:
            return True

    typed = Terminal("agent: request\ncontact: yes\nquit\ncontact: STOP\n")
    monkeypatch.setattr(sys, "stdin", typed)
    assert run(["simulate"]) == EXIT_OK
    out = capsys.readouterr().out
    assert "The contact ends opted_in, after 2 logged events" in out
    assert "contact: STOP" not in out


def test_simulate_interactive_output(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    class Terminal(io.StringIO):
        def isatty(self) -> bool:
            return True

    monkeypatch.setattr(sys, "stdin", Terminal("?\nagent: request\nnonsense\nexit\n"))
    assert run(["simulate"]) == EXIT_OK
    out, err = capsys.readouterr()
    assert out.count("contact: TEXT") == 2  # the banner and "?"
    assert "> " in out
    assert "start the line with" in err
    assert "The contact ends pending, after 1 logged events" in out


# -- policy lint -----------------------------------------------------------------


def write(tmp_path: Path, text: str) -> str:
    path = tmp_path / "policy.toml"
    path.write_text(text, encoding="utf-8")
    return str(path)


def test_lint_a_good_policy(tmp_path: Path) -> None:
    path = write(tmp_path, 'org_name = "Acme"\nmode = "disclaimer"\n')
    result = invoke("policy", "lint", path)
    assert result.exit_code == EXIT_OK
    assert (
        "ok: policy 'default' version '1', disclaimer mode, for Acme" in result.stdout
    )


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ('org_name = "Acme"\nmax_attemps = 2\n', "Policy.max_attemps: unknown setting"),
        (
            'org_name = "Acme"\nmax_attempts = "3"\n',
            "Policy.max_attempts: expected an integer; got a string: '3'",
        ),
        (
            'org_name = "Acme"\nresend_after = "soon"\n',
            'Policy.resend_after: expected a duration: a string such as "24h"',
        ),
        (
            'org_name = "Acme"\nmax_attempts = 0\n',
            "Policy.max_attempts: must be an int",
        ),
        ("max_attempts = 2\n", "Policy.org_name: is required"),
        ('org_name = "Acme"\nmax_attempts = \n', "is not valid TOML"),
    ],
)
def test_lint_names_the_key_and_the_expected_type(
    tmp_path: Path, text: str, expected: str
) -> None:
    result = invoke("policy", "lint", write(tmp_path, text))
    assert result.exit_code == EXIT_USAGE
    assert expected in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
    assert "Traceback" not in result.output


def test_lint_json_and_strict(tmp_path: Path) -> None:
    path = write(tmp_path, 'org_name = "Acme"\nyes_restarts = true\n')
    result = invoke("policy", "lint", path, "--json")
    assert result.exit_code == EXIT_OK
    data = json.loads(result.stdout)
    assert data["ok"] is True
    assert data["warnings"] == ["'yes' means consent and start"]
    assert invoke("policy", "lint", path).stdout.splitlines()[1] == (
        "warning: 'yes' means consent and start"
    )
    assert invoke("policy", "lint", path, "--strict").exit_code == EXIT_CHECK
    bad = write(tmp_path, 'org_name = "Acme"\nmode = 3\n')
    result = invoke("policy", "lint", bad, "--json")
    assert result.exit_code == EXIT_USAGE
    data = json.loads(result.stdout)
    assert data["ok"] is False
    assert "Policy.mode: expected one of" in data["error"]


def test_lint_a_missing_file_is_a_usage_error(tmp_path: Path) -> None:
    result = invoke("policy", "lint", str(tmp_path / "nope.toml"))
    assert result.exit_code == EXIT_USAGE
    assert "does not exist" in result.stderr


# -- show and verify -------------------------------------------------------------


@pytest.fixture
def database(tmp_path: Path) -> Path:
    path = tmp_path / "consent.db"
    service = sqlite_service(path)
    service.request_opt_in(FR, locale="fr")
    service.receive(FR, "Oui", message_id="SM1")
    service.request_opt_in(US)
    service.receive(US, "STOP", message_id="SM2")
    service.store.close()  # type: ignore[union-attr]
    return path


def url(path: Path) -> str:
    return f"sqlite:///{path}"  # an absolute path: sqlite:////tmp/...


def test_show_a_contact(database: Path) -> None:
    result = invoke("show", "+33 6 12 34 56 78", "--store", url(database))
    assert result.exit_code == EXIT_OK, result.output
    lines = result.stdout.splitlines()
    assert lines[0] == f"contact:     {FR}"
    assert lines[1] == "state:       opted_in; may be texted: yes"
    assert "events:      2" in lines
    assert "locale:      fr" in lines


def test_show_with_the_log_and_json(database: Path) -> None:
    result = invoke("show", US, "--store", url(database), "--log")
    assert result.exit_code == EXIT_OK
    assert "state:       stopped; may be texted: no" in result.stdout
    assert "  v2 " in result.stdout
    assert "stop: pending -> stopped; sent stop_confirmation" in result.stdout
    data = json.loads(
        invoke("show", US, "--store", url(database), "--json", "--log").stdout
    )
    assert data["head"]["state"] == "stopped"
    assert data["may_text"] is False
    assert [e["trigger"] for e in data["log"]] == ["request", "stop"]


def test_show_an_unknown_contact(
    database: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OPTIN_STORE", url(database))
    result = invoke("show", "+15555550111")
    assert result.exit_code == EXIT_OK
    assert "state:       new (no record); may be texted: no" in result.stdout


def test_verify_one_and_all(database: Path) -> None:
    result = invoke("verify", FR, "--store", url(database))
    assert result.exit_code == EXIT_OK
    assert result.stdout.startswith(f"ok      {FR}: 2 events, head sha256:")
    result = invoke("verify", "--store", url(database))
    assert result.exit_code == EXIT_OK
    assert result.stdout.splitlines()[-1] == "2 verified, 0 failed"
    data = json.loads(invoke("verify", "--store", url(database), "--json").stdout)
    assert data == {"verified": 2, "failed": []}


def test_verify_an_unknown_contact_is_an_error(database: Path) -> None:
    result = invoke("verify", "+15555550111", "--store", url(database))
    assert result.exit_code == EXIT_FAILURE
    assert "no record of +15555550111" in result.stderr


def tamper(database: Path) -> None:
    with sqlite3.connect(database) as db:
        db.execute(
            "UPDATE events SET data = replace(data, 'Oui', 'Non') "
            "WHERE contact = ? AND version = 2",
            (FR,),
        )
    db.close()


def test_verify_finds_an_edited_event(database: Path) -> None:
    tamper(database)
    result = invoke("verify", "--store", url(database))
    assert result.exit_code == EXIT_CHECK
    assert f"FAILED  {FR}: " in result.stdout
    assert "log[1]" in result.stdout
    assert result.stdout.splitlines()[-1] == "1 verified, 1 failed"
    data = json.loads(invoke("verify", FR, "--store", url(database), "--json").stdout)
    assert data["verified"] == 0
    assert data["failed"][0]["contact"] == FR
    # show --log reads the verified log, so it refuses too, in one line.
    result = invoke("show", FR, "--store", url(database), "--log")
    assert result.exit_code == EXIT_FAILURE
    assert len(result.stderr.strip().splitlines()) == 1


def test_verify_a_keyed_log_needs_its_key(tmp_path: Path) -> None:
    from optin_core import Policy

    key = b"k" * 32
    path = tmp_path / "keyed.db"
    service = sqlite_service(path, Policy(org_name="Acme", log_key=key))
    service.request_opt_in(US)
    service.store.close()  # type: ignore[union-attr]
    key_file = tmp_path / "key"
    key_file.write_bytes(key + b"\n")
    assert invoke("verify", US, "--store", url(path)).exit_code == EXIT_CHECK
    result = invoke("verify", US, "--store", url(path), "--log-key-file", str(key_file))
    assert result.exit_code == EXIT_OK, result.output


@pytest.mark.parametrize(
    ("store", "code", "message"),
    [
        ("sqlite:///does/not/exist.db", EXIT_FAILURE, "no SQLite database at"),
        ("sqlite://", EXIT_USAGE, "a SQLite URL names a file"),
        ("mysql://db/consent", EXIT_USAGE, "unknown store URL"),
        (
            "postgresql://nobody@127.0.0.1:1/consent",
            EXIT_FAILURE,
            "127.0.0.1:1 is unreachable",
        ),
    ],
)
def test_an_unusable_store_is_one_line(store: str, code: int, message: str) -> None:
    for command in (["show", US], ["verify", US], ["verify"]):
        result = invoke(*command, "--store", store)
        assert result.exit_code == code, result.output
        assert len(result.stderr.strip().splitlines()) == 1, result.stderr
        assert message in result.stderr
        assert "Traceback" not in result.output


def test_a_file_that_is_not_a_database(tmp_path: Path) -> None:
    path = tmp_path / "notes.db"
    path.write_text("not a database", encoding="utf-8")
    result = invoke("show", US, "--store", url(path))
    assert result.exit_code == EXIT_FAILURE
    assert "the SQLite database cannot be read" in result.stderr


def test_a_store_that_cannot_list_contacts(
    database: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from optin_core.stores import SQLiteStore

    monkeypatch.delattr(SQLiteStore, "contacts")
    result = invoke("verify", "--store", url(database))
    assert result.exit_code == EXIT_USAGE
    assert "cannot list its contacts: name one" in result.stderr


def test_the_store_is_required() -> None:
    result = invoke("show", US)
    assert result.exit_code == EXIT_USAGE
    assert "--store" in result.stderr


# -- the entry points ------------------------------------------------------------


def test_run_returns_exit_codes(capsys: pytest.CaptureFixture[str]) -> None:
    assert run(["--version"]) == EXIT_OK
    assert capsys.readouterr().out.strip() == f"optin-core, version {__version__}"
    assert run(["parse"]) == EXIT_USAGE
    assert "Missing argument 'TEXT'" in capsys.readouterr().err
    assert run(["policy", "lint", "/nonexistent.toml"]) == EXIT_USAGE
    assert "does not exist" in capsys.readouterr().err
    assert run(["parse", "x", "--locale", "zz"]) == EXIT_USAGE
    assert capsys.readouterr().err.startswith("Error: locale 'zz' is not available")


def test_an_unexpected_error_is_one_line_unless_debugging(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    def broken(*_args: object, **_kwargs: object) -> None:
        raise RuntimeError("disk on fire")

    monkeypatch.setattr("optin_core._cli.parse_reply", broken)
    assert run(["parse", "x"]) == EXIT_FAILURE
    err = capsys.readouterr().err
    assert err == (
        "Error: unexpected RuntimeError: disk on fire (run with --debug for the "
        "traceback)\n"
    )
    with pytest.raises(RuntimeError, match="disk on fire"):
        run(["--debug", "parse", "x"])


def test_an_interrupted_session_aborts(monkeypatch: pytest.MonkeyPatch) -> None:
    def interrupted(*_args: object, **_kwargs: object) -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr("optin_core._cli.parse_reply", interrupted)
    assert run(["parse", "x"]) == EXIT_FAILURE


def test_main_names_the_extra_when_click_is_missing(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setitem(sys.modules, "click", None)
    assert entry.main(["parse", "Oui"]) == 1
    assert capsys.readouterr().err == entry.MISSING_CLICK
    assert "pip install 'optin-core[cli]'" in entry.MISSING_CLICK


def test_main_runs_the_command_line(capsys: pytest.CaptureFixture[str]) -> None:
    assert entry.main(["parse", "Oui", "--locale", "fr"]) == EXIT_OK
    assert "consent" in capsys.readouterr().out


def test_python_dash_m_and_the_console_script() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "optin_core", "parse", "Oui", "--locale", "fr"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("intent:  consent")
    import importlib.metadata

    scripts = importlib.metadata.entry_points(group="console_scripts")
    assert [s.value for s in scripts if s.name == "optin-core"] == [
        "optin_core.__main__:main"
    ]


def test_simulate_reads_piped_stdin_without_script() -> None:
    result = invoke("simulate", stdin="agent: request\ncontact: Yes\n")
    assert result.exit_code == EXIT_OK
    assert "Type ? for this help" not in result.stdout  # not a terminal
    assert "The contact ends opted_in, after 2 logged events" in result.stdout


def test_show_json_without_the_log(database: Path) -> None:
    data = json.loads(invoke("show", FR, "--store", url(database), "--json").stdout)
    assert data["head"]["contact"] == FR
    assert data["may_text"] is True
    assert "log" not in data


def test_a_policy_file_that_cannot_be_read(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def unreadable(*_args: object, **_kwargs: object) -> None:
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr("optin_core._cli.Policy.from_toml", unreadable)
    result = invoke("policy", "lint", write(tmp_path, 'org_name = "Acme"\n'))
    assert result.exit_code == EXIT_USAGE
    assert "cannot read" in result.stderr
    assert "Permission denied" in result.stderr


def test_the_command_line_never_sends() -> None:
    from optin_core._cli import _refuse_send

    with pytest.raises(RuntimeError, match="never sends"):
        _refuse_send(None)  # type: ignore[arg-type]


def test_a_missing_postgres_extra_is_one_line(monkeypatch: pytest.MonkeyPatch) -> None:
    from optin_core import stores

    def missing(*_args: object, **_kwargs: object) -> None:
        raise ImportError("PostgresStore needs the 'postgres' extra (psycopg 3)")

    monkeypatch.setattr(stores, "PostgresStore", missing)
    result = invoke("verify", US, "--store", "postgresql://db/consent")
    assert result.exit_code == EXIT_FAILURE
    assert result.stderr == (
        "Error: PostgresStore needs the 'postgres' extra (psycopg 3)\n"
    )


def test_show_and_verify_on_postgresql(pg_dsn: str) -> None:
    from urllib.parse import quote

    from psycopg.conninfo import conninfo_to_dict

    from optin_core import ConsentService, Policy
    from optin_core.stores.postgres import PostgresStore
    from optin_core.testing import FakeClock, RecordingSender

    with PostgresStore(pg_dsn) as store:
        service = ConsentService(
            Policy(org_name="Acme"), store, RecordingSender(), clock=FakeClock()
        )
        service.request_opt_in(FR, locale="fr")
        service.receive(FR, "Oui", message_id="SM1")
    parts = conninfo_to_dict(pg_dsn)
    host = parts.get("host", "127.0.0.1")
    where = f"{quote(str(host), safe='')}:{parts.get('port', 5432)}"
    if str(host).startswith("/"):  # a Unix socket directory
        where = ""
    query = f"options={quote(str(parts['options']))}"
    if not where:
        query += f"&host={quote(str(host))}&port={parts.get('port', 5432)}"
    pg_url = f"postgresql://{parts['user']}@{where}/{parts['dbname']}?{query}"
    result = invoke("show", FR, "--store", pg_url)
    assert result.exit_code == EXIT_OK, result.output
    assert "state:       opted_in; may be texted: yes" in result.stdout
    result = invoke("verify", "--store", pg_url)
    assert result.exit_code == EXIT_OK, result.output
    assert result.stdout.splitlines()[-1] == "1 verified, 0 failed"


def test_verify_pages_through_every_contact(
    database: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("optin_core._cli.PAGE", 1)
    result = invoke("verify", "--store", url(database))
    assert result.exit_code == EXIT_OK
    assert [
        line.split()[1].rstrip(":") for line in result.stdout.splitlines()[:-1]
    ] == [
        US,
        FR,
    ]  # in code point order, one page each
    assert result.stdout.splitlines()[-1] == "2 verified, 0 failed"


def test_simulate_in_disclaimer_mode_names_the_disclaimer(tmp_path: Path) -> None:
    policy = write(tmp_path, 'org_name = "Acme"\nmode = "disclaimer"\n')
    script = "agent: request\ncontact: STOP\n"
    result = invoke("simulate", "--policy", policy, "--script", "-", stdin=script)
    assert result.exit_code == EXIT_OK
    assert "agent sends the disclaimer" in result.stdout
    assert "sends disclaimer:" in result.stdout
    assert "The contact ends stopped" in result.stdout


def test_open_service_for_commands_that_write(tmp_path: Path) -> None:
    """What a future store command that writes (an import) gets: a new
    SQLite file, and a service whose send is its own."""
    from optin_core._cli import CliError, open_service

    new = tmp_path / "new.db"
    with pytest.raises(CliError, match="no SQLite database"), open_service(url(new)):
        pass
    assert not new.exists()
    sent: list[object] = []
    with open_service(url(new), create=True, send=sent.append) as service:
        service.request_opt_in(US)
    assert new.is_file()
    assert len(sent) == 1
    result = invoke("show", US, "--store", url(new))
    assert "state:       pending" in result.stdout
