"""The ``optin-core`` command line (the ``cli`` extra: click).

``python -m optin_core`` and the ``optin-core`` console script run
:func:`optin_core.__main__.main`, which checks that click is installed and
then runs :data:`cli`. Exit codes (:data:`EXIT_CODES`): 0 done; 1 the
command could not run (a store unreachable, a record unreadable, an extra
missing); 2 bad input (usage, an invalid policy file, an unknown locale, a
bad script line or store URL); 3 a check failed (a log that does not
verify, ``policy lint --strict`` with keyword collisions).

A store command (``show``, ``verify``; the compliance commands join the
same way) is a function decorated with ``@cli.command()``,
:func:`store_option`, :func:`policy_option` and :func:`json_option`, whose
body runs in ``with open_service(store_url, load_policy(policy_file)) as
service:``: errors of the store become one line and exit 1 there, a bad
input is :class:`BadInput` (exit 2), a failed check
``click.get_current_context().exit(EXIT_CHECK)``. ``open_service(...,
create=True)`` lets a command that writes create the SQLite file or the
PostgreSQL tables; :func:`every_contact` walks a whole store a page at a
time; long runs show ``click.progressbar(..., file=sys.stderr)``, which
hides itself when stderr is not a terminal.
"""

from __future__ import annotations

import contextlib
import json
import sqlite3
import sys
import tomllib
from collections.abc import Callable, Iterable, Iterator
from datetime import datetime, timedelta
from pathlib import Path
from typing import IO, Any, TypeVar

import click

from . import stores
from ._core import decide
from ._enums import Intent, Outcome
from ._errors import (
    OptinError,
    PolicyError,
    RecordError,
    StoreUnavailable,
    UnknownLocale,
)
from ._locale import available_locales, require_locale
from ._parser import parse_reply
from ._policy import Mode, Policy
from ._records import (
    Attest,
    Consent,
    Decision,
    Inbound,
    Input,
    Outgoing,
    ParsedReply,
    RequestOptIn,
    Revoke,
    SendText,
)
from ._service import ConsentService
from ._toml import read_duration
from ._version import __version__

__all__ = [
    "EXIT_CHECK",
    "EXIT_CODES",
    "EXIT_FAILURE",
    "EXIT_OK",
    "EXIT_USAGE",
    "SIMULATION_START",
    "BadInput",
    "CliError",
    "cli",
    "every_contact",
    "json_option",
    "load_policy",
    "open_service",
    "open_store",
    "policy_option",
    "run",
    "store_option",
]

EXIT_OK = 0
EXIT_FAILURE = 1
EXIT_USAGE = 2
EXIT_CHECK = 3
#: What each exit code means.
EXIT_CODES = {
    EXIT_OK: "done",
    EXIT_FAILURE: "could not run: a store unreachable or unreadable, an extra missing",
    EXIT_USAGE: "bad input: usage, policy file, locale, script line, store URL",
    EXIT_CHECK: "a check failed: a log that does not verify, lint --strict",
}

#: Where ``simulate`` starts its clock: Monday 2 March 2026, 09:30 UTC.
SIMULATION_START = datetime.fromisoformat("2026-03-02T09:30:00+00:00")

_F = TypeVar("_F", bound=Callable[..., Any])


class CliError(click.ClickException):
    """An error shown as one line (``Error: ...``); exit code 1."""

    exit_code = EXIT_FAILURE


class BadInput(CliError):
    """Bad input shown as one line (``Error: ...``); exit code 2."""

    exit_code = EXIT_USAGE


# -- shared options --------------------------------------------------------------


def json_option(function: _F) -> _F:
    """``--json``: machine-readable output on stdout."""
    return click.option(
        "--json",
        "as_json",
        is_flag=True,
        help="Print JSON instead of text.",
    )(function)


def policy_option(function: _F) -> _F:
    """``--policy FILE``: a TOML policy (``Policy.from_toml``)."""
    return click.option(
        "--policy",
        "policy_file",
        type=click.Path(exists=True, dir_okay=False, path_type=Path),
        help="A TOML policy file (default: Policy(org_name='Acme')).",
    )(function)


def store_option(function: _F) -> _F:
    """``--store URL`` (or ``$OPTIN_STORE``): ``sqlite:///path`` or
    ``postgresql://...``."""
    return click.option(
        "--store",
        "store_url",
        required=True,
        envvar="OPTIN_STORE",
        metavar="URL",
        help="sqlite:///relative.db, sqlite:////absolute.db or "
        "postgresql://user@host/db (also $OPTIN_STORE).",
    )(function)


def _locale_option(function: _F) -> _F:
    return click.option(
        "--locale",
        "-l",
        default=None,
        help=f"The contact's locale: {', '.join(available_locales())}.",
    )(function)


def _check_locale(locale: str | None) -> str | None:
    if locale is None:
        return None
    try:
        return require_locale(locale)
    except (UnknownLocale, TypeError) as e:
        raise BadInput(str(e)) from None


def load_policy(path: Path | None, *, log_key: bytes | None = None) -> Policy:
    """The policy of ``path`` (``Policy(org_name="Acme")`` without one); a
    bad file is a :class:`CliError` with exit code 2."""
    overrides: dict[str, Any] = {} if log_key is None else {"log_key": log_key}
    if path is None:
        return Policy(org_name="Acme", **overrides)
    try:
        return Policy.from_toml(path, **overrides)
    except PolicyError as e:
        raise BadInput(f"{path}: {e}") from None
    except tomllib.TOMLDecodeError as e:
        raise BadInput(f"{path} is not valid TOML: {e}") from None
    except OSError as e:
        raise BadInput(f"cannot read {path}: {e.strerror or e}") from None


def _emit(data: Any) -> None:
    click.echo(json.dumps(data, ensure_ascii=False, sort_keys=False))


# -- the group ---------------------------------------------------------------------


@click.group(
    context_settings={"help_option_names": ["-h", "--help"]},
    epilog="Exit codes: "
    + "; ".join(f"{code} {meaning}" for code, meaning in EXIT_CODES.items())
    + ".",
)
@click.version_option(__version__, prog_name="optin-core")
@click.option(
    "--debug", is_flag=True, help="Show the traceback of an unexpected error."
)
def cli(debug: bool) -> None:
    """SMS opt-in consent: try replies, simulate conversations, lint
    policies and inspect consent stores."""


# -- parse -------------------------------------------------------------------------

#: What each intent means to a newcomer.
_MEANING = {
    Intent.CONSENT: "an answer YES to the opt-in request",
    Intent.STOP: "an opt-out: messaging ends",
    Intent.START: "a re-subscribe after a stop",
    Intent.HELP: "a request for help: answered with the HELP message",
    Intent.DECLINE: "an answer NO to the opt-in request",
    Intent.REACTION: "a phone's reaction to a message: never an answer",
    Intent.UNRECOGNIZED: "not an answer: a pending contact gets the reminder",
}


def _classify(text: str, locale: str | None, policy: Policy) -> ParsedReply:
    """The reply as ``decide`` reads it under ``policy``."""
    return policy.classify(
        parse_reply(
            text,
            locale,
            default_locale=policy.default_locale,
            keywords=policy.keywords,
            lenient_consent=policy.lenient_consent,
            ours=policy.own_words,
        )
    )


def _reply_dict(reply: ParsedReply) -> dict[str, Any]:
    return {
        "text": reply.text,
        "intent": reply.intent.value,
        "rule": reply.rule.value,
        "keyword": reply.keyword,
        "locale": reply.locale,
        "quoted": None if reply.quoted is None else reply.quoted.value,
    }


@cli.command()
@click.argument("text")
@_locale_option
@policy_option
@json_option
def parse(
    text: str, locale: str | None, policy_file: Path | None, as_json: bool
) -> None:
    """Read TEXT as a contact's reply: its intent, and the rule and keyword
    that matched."""
    locale = _check_locale(locale)
    reply = _classify(text, locale, load_policy(policy_file))
    if as_json:
        _emit(_reply_dict(reply))
        return
    click.echo(f"intent:  {reply.intent.value} ({_MEANING[reply.intent]})")
    if reply.keyword is None:
        click.echo("rule:    none (no keyword matched)")
    else:
        click.echo(f"rule:    {reply.rule.value}")
        click.echo(f"keyword: {reply.keyword}")
    if reply.locale is not None:
        click.echo(f"locale:  {reply.locale}")
    if reply.quoted is not None:
        click.echo(f"quoted:  our {reply.quoted.value} (read without the quote)")


# -- simulate ----------------------------------------------------------------------

_SIMULATE_HELP = """\
Lines:
  contact: TEXT               the contact texts TEXT
  agent: request [GREETING]   the agent sends the opt-in request
  agent: text BODY            the agent texts in its own words
  agent: attest METHOD [REF]  consent gathered outside SMS
  agent: revoke [REASON]      an opt-out received another way
  wait DURATION               time passes (30m, 24h, 1h30m, 2d)
  # ...                       a comment
Each step happens one minute after the previous one."""

#: Why a decision that changed nothing changed nothing.
_OUTCOMES = {
    Outcome.DUPLICATE: "a message id already processed (a redelivered webhook)",
    Outcome.STALE: "older than the stop or the request it would act on",
    Outcome.CONVERSATION: "ordinary conversation, outside the opt-in exchange",
    Outcome.UNCHANGED: "already in that state",
    Outcome.PAUSED: "automatic replies are paused (the loop guard)",
    Outcome.POLICY: "the policy says not to act",
}


class _ScriptError(ValueError):
    pass


def _parse_line(
    line: str, at: datetime, number: int, locale: str | None
) -> Input | timedelta | None:
    """One simulation line: an input, a wait, or ``None`` (blank, comment)."""
    stripped = line.strip()
    if not stripped or stripped.startswith("#"):
        return None
    head, sep, rest = stripped.partition(":")
    who = head.strip().lower()
    if who == "contact" and sep:
        return Inbound(text=rest.strip(), at=at, message_id=f"SM{number}")
    if who == "agent" and sep:
        action, _, arg = rest.strip().partition(" ")
        arg = arg.strip()
        if action == "request":
            return RequestOptIn(at=at, greeting=arg or None, by="agent", locale=locale)
        if action == "text" and arg:
            return SendText(body=arg, at=at, by="agent")
        if action == "attest" and arg:
            method, _, ref = arg.partition(" ")
            return Attest(
                method=method, at=at, by="agent", evidence=ref.strip() or "cli"
            )
        if action == "revoke":
            return Revoke(at=at, by="agent", reason=arg or "revoked by the agent")
        raise _ScriptError(
            f"unknown agent action {rest.strip()!r}: request, text BODY, "
            "attest METHOD, revoke"
        )
    word, _, amount = stripped.partition(" ")
    if word.lower() == "wait":
        delay = read_duration(amount.strip())
        if delay is None:
            raise _ScriptError(f"wait needs a duration such as 30m or 24h: {line!r}")
        return delay
    raise _ScriptError(
        f"start the line with 'contact:', 'agent:' or 'wait': {stripped!r}"
    )


def _describe(inp: Input, policy: Policy) -> str:
    if isinstance(inp, Inbound):
        return f"contact: {inp.text}"
    if isinstance(inp, RequestOptIn):
        greeting = "" if inp.greeting is None else f' (greeting "{inp.greeting}")'
        what = "disclaimer" if policy.mode is Mode.DISCLAIMER else "opt-in request"
        return f"agent sends the {what}{greeting}"
    if isinstance(inp, SendText):
        return f"agent texts: {inp.body}"
    if isinstance(inp, Attest):
        return f"agent records consent by {inp.method} ({inp.evidence})"
    assert isinstance(inp, Revoke)
    return f"agent records an opt-out: {inp.reason}"


def _message_dict(message: Outgoing) -> dict[str, Any]:
    return {"kind": message.kind.value, "locale": message.locale, "text": message.text}


def _show_decision(decision: Decision) -> None:
    if decision.reply is not None:
        reply = decision.reply
        how = "" if reply.keyword is None else f' (keyword "{reply.keyword}")'
        click.echo(f"    read as {reply.intent.value}{how}")
    for message in decision.outgoing:
        click.echo(f"    sends {message.kind.value}:")
        for text_line in message.text.splitlines():
            click.echo(f"      | {text_line}")
    if not decision.changed:
        click.echo(f"    nothing changes: {_OUTCOMES.get(decision.outcome, '')}")
    consent = decision.consent
    click.echo(f"    state: {consent.state.value}")


def _step_json(
    number: int, inp: Input, decision: Decision | None, error: OptinError | None
) -> dict[str, Any]:
    data: dict[str, Any] = {
        "line": number,
        "at": inp.at.isoformat(),
        "input": inp.kind,
        "refused": None,
    }
    if error is not None:
        data["refused"] = {"error": type(error).__name__, "message": str(error)}
        return data
    assert decision is not None
    data.update(
        outcome=decision.outcome.value,
        state=decision.consent.state.value,
        version=decision.consent.version,
        reply=None if decision.reply is None else _reply_dict(decision.reply),
        sent=[_message_dict(m) for m in decision.outgoing],
    )
    return data


def _lines(script: IO[str] | None) -> Iterator[str]:
    if script is not None:
        yield from script
        return
    stdin = sys.stdin
    interactive = stdin.isatty()
    if interactive:
        click.echo(_SIMULATE_HELP + "\nType ? for this help, quit to end.")
    while True:
        if interactive:
            click.echo("> ", nl=False)
        line = stdin.readline()
        if not line or (interactive and line.strip() in ("quit", "exit")):
            return
        if interactive and line.strip() == "?":
            click.echo(_SIMULATE_HELP)
            continue
        yield line


@cli.command(epilog=_SIMULATE_HELP)
@policy_option
@_locale_option
@click.option(
    "--script",
    type=click.File("r", encoding="utf-8"),
    help="Read the steps from FILE ('-': stdin) instead of asking for them.",
)
@click.option(
    "--contact",
    default="+15555550100",
    show_default=True,
    help="The contact's id.",
)
@json_option
def simulate(
    policy_file: Path | None,
    locale: str | None,
    script: IO[str] | None,
    contact: str,
    as_json: bool,
) -> None:
    """A conversation with one contact through ``decide``: each decision,
    the state, and the messages a host would send. Nothing is sent."""
    policy = load_policy(policy_file)
    locale = _check_locale(locale)
    consent = Consent.new(contact)
    at = SIMULATION_START
    events = 0
    for number, line in enumerate(_lines(script), start=1):
        try:
            step = _parse_line(line, at + timedelta(minutes=1), number, locale)
        except (_ScriptError, OptinError) as e:
            if script is None:
                click.echo(f"    {e}", err=True)
                continue
            raise BadInput(f"line {number}: {e}") from None
        if step is None:
            continue
        if isinstance(step, timedelta):
            at += step
            continue
        at = step.at
        decision: Decision | None = None
        error: OptinError | None = None
        try:
            decision = decide(consent, step, policy)
        except OptinError as e:
            error = e
        if as_json:
            _emit(_step_json(number, step, decision, error))
        else:
            click.echo(f"[{at:%a %H:%M}] {_describe(step, policy)}")
            if error is not None:
                click.echo(f"    refused ({type(error).__name__}): {error}")
            else:
                assert decision is not None
                _show_decision(decision)
        if decision is not None:
            consent = decision.consent
            events += len(decision.events)
    if not as_json:
        click.echo(
            f"\nThe contact ends {consent.state.value}, after {events} logged "
            "events. This was a simulation: nothing was sent. A host hands each "
            "message shown to its SMS provider and saves the events with the "
            "state."
        )


# -- policy lint -------------------------------------------------------------------


@cli.group()
def policy() -> None:
    """Work with policy files (TOML)."""


@policy.command()
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option(
    "--strict", is_flag=True, help="Exit 3 when keywords collide between intents."
)
@json_option
def lint(file: Path, strict: bool, as_json: bool) -> None:
    """Check a TOML policy FILE: unknown keys, wrong types, invalid values,
    keyword collisions."""
    try:
        loaded = load_policy(file)
    except CliError as e:
        if as_json:
            _emit({"file": str(file), "ok": False, "error": e.message, "warnings": []})
        raise
    warnings = [
        f"{c.keyword!r} means {' and '.join(i.value for i in c.intents)}"
        + (f" ({c.locale})" if c.locale != "*" else "")
        for c in loaded.lint()
    ]
    if as_json:
        _emit({"file": str(file), "ok": True, "error": None, "warnings": warnings})
    else:
        click.echo(
            f"{file}: ok: policy {loaded.policy_id!r} version "
            f"{loaded.policy_version!r}, {loaded.mode.value} mode, for "
            f"{loaded.org_name}"
        )
        for warning in warnings:
            click.echo(f"warning: {warning}")
    if strict and warnings:
        click.get_current_context().exit(EXIT_CHECK)


# -- stores ------------------------------------------------------------------------


def _refuse_send(message: Outgoing) -> None:
    raise RuntimeError("the command line never sends messages")


@contextlib.contextmanager
def _store_errors() -> Iterator[None]:
    """Store failures as one line and exit code 1."""
    try:
        yield
    except StoreUnavailable as e:
        raise CliError(str(e)) from None
    except sqlite3.Error as e:
        raise CliError(f"the SQLite database cannot be read: {e}") from None
    except ImportError as e:
        raise CliError(str(e)) from None


@contextlib.contextmanager
def open_store(url: str, *, create: bool = False) -> Iterator[Any]:
    """The store a URL names, closed on exit: ``sqlite:///path`` or
    ``postgresql://...``.

    By default nothing is created: the SQLite file must exist, and a
    PostgreSQL store is opened with ``migrate=False`` (a database without
    the tables is a one-line error). A command that writes a new store (an
    import) passes ``create=True``: the file or the tables are created."""
    if url.startswith("sqlite://"):
        path = url.removeprefix("sqlite://").removeprefix("/")
        if not path:
            raise BadInput(
                "a SQLite URL names a file: sqlite:///relative.db or "
                "sqlite:////absolute.db"
            )
        if not create and not Path(path).is_file():
            raise CliError(f"no SQLite database at {path}")
        with _store_errors():
            sqlite_store = stores.SQLiteStore(path)
        try:
            yield sqlite_store
        finally:
            sqlite_store.close()
        return
    if url.startswith(("postgresql://", "postgres://")):
        with _store_errors():
            # The stand-in of a missing ``postgres`` extra raises an
            # ImportError naming it.
            pg_store = stores.PostgresStore(
                url, min_size=0, max_size=1, timeout=10.0, migrate=create
            )
        try:
            yield pg_store
        finally:
            pg_store.close()
        return
    raise BadInput(f"unknown store URL {url!r}: use sqlite:///path or postgresql://...")


@contextlib.contextmanager
def open_service(
    store_url: str,
    policy: Policy | None = None,
    *,
    send: Callable[[Outgoing], object] | None = None,
    create: bool = False,
) -> Iterator[ConsentService]:
    """A service on the store at ``store_url`` (:func:`open_store`); its
    ``send`` refuses unless one is given (the command line sends nothing by
    default). Store errors inside become one line and exit 1."""
    with open_store(store_url, create=create) as store, _store_errors():
        yield ConsentService(
            policy or Policy(org_name="Acme"),
            store,
            _refuse_send if send is None else send,
        )


def _when(moment: datetime | None) -> str:
    return "-" if moment is None else moment.isoformat(sep=" ", timespec="seconds")


@cli.command()
@click.argument("contact")
@store_option
@policy_option
@click.option("--log", "with_log", is_flag=True, help="Show the events too.")
@json_option
def show(
    contact: str,
    store_url: str,
    policy_file: Path | None,
    with_log: bool,
    as_json: bool,
) -> None:
    """Show CONTACT's consent as the store holds it."""
    loaded = load_policy(policy_file)
    with open_service(store_url, loaded) as service:
        try:
            if with_log:
                history = service.history(contact)
                head, events = history.head, history.events
            else:
                head, events = service.get(contact), ()
        except RecordError as e:
            raise CliError(str(e)) from None
    may_text = loaded.allows_texting(head.state)
    if as_json:
        data: dict[str, Any] = {
            "head": head.to_dict(),
            "may_text": may_text,
        }
        if with_log:
            data["log"] = [e.to_dict() for e in events]
        _emit(data)
        return
    rows = [
        ("contact", head.contact),
        (
            "state",
            f"{head.state.value}"
            + (" (no record)" if head.version == 0 else "")
            + f"; may be texted: {'yes' if may_text else 'no'}",
        ),
        ("events", str(head.version)),
        ("locale", head.locale or "-"),
        ("requested", f"{_when(head.requested_at)} ({head.attempts} attempts)"),
        ("opted in", _when(head.opted_in_at)),
        ("disclosed", _when(head.disclosed_at)),
        ("stopped", _when(head.stopped_at)),
        ("last change", _when(head.last_at)),
        ("head digest", head.digest or "-"),
    ]
    for name, value in rows:
        click.echo(f"{name + ':':<13}{value}")
    for event in events:
        sent = ", ".join(m.kind.value for m in event.sent)
        click.echo(
            f"  v{event.version} {_when(event.at)} {event.trigger.value}: "
            f"{event.from_state.value} -> {event.to_state.value}"
            + (f"; sent {sent}" if sent else "")
        )


def _verify_one(service: ConsentService, contact: str) -> dict[str, Any]:
    try:
        history = service.history(contact)
    except RecordError as e:
        return {"contact": contact, "ok": False, "problem": str(e)}
    return {
        "contact": history.head.contact,
        "ok": True,
        "events": len(history.events),
        "digest": history.head.digest,
    }


@cli.command()
@click.argument("contact", required=False)
@store_option
@policy_option
@click.option(
    "--log-key-file",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    envvar="OPTIN_LOG_KEY_FILE",
    help="The secret of keyed logs (Policy.log_key), read from FILE "
    "(also $OPTIN_LOG_KEY_FILE).",
)
@json_option
def verify(
    contact: str | None,
    store_url: str,
    policy_file: Path | None,
    log_key_file: Path | None,
    as_json: bool,
) -> None:
    """Verify the hash chain of CONTACT's log against its head, or of every
    contact's. Exits 3 when one does not verify."""
    key = None if log_key_file is None else log_key_file.read_bytes().rstrip(b"\n")
    loaded = load_policy(policy_file, log_key=key)
    verified, failed = 0, []
    with open_service(store_url, loaded) as service:
        if contact is not None:
            contacts: Iterable[str] = [contact]
        else:
            contacts = every_contact(service.store)
        for one in contacts:
            result = _verify_one(service, one)
            if contact is not None and result["ok"] and result["events"] == 0:
                raise CliError(f"no record of {contact} in the store")
            if result["ok"]:
                verified += 1
            else:
                failed.append(result)
            if as_json:
                continue
            if result["ok"]:
                click.echo(
                    f"ok      {result['contact']}: {result['events']} events, "
                    f"head {result['digest'][:23]}..."
                )
            else:
                click.echo(f"FAILED  {result['contact']}: {result['problem']}")
    if as_json:
        _emit({"verified": verified, "failed": failed})
    else:
        click.echo(f"{verified} verified, {len(failed)} failed")
    if failed:
        click.get_current_context().exit(EXIT_CHECK)


#: Contacts read per page when a command walks a whole store.
PAGE = 500


def every_contact(store: Any) -> Iterator[str]:
    """Every contact of ``store``, a page at a time (keyset pagination:
    ``store.contacts(after=, limit=)``), so memory stays constant."""
    listing = getattr(store, "contacts", None)
    if listing is None:
        raise BadInput("this store cannot list its contacts: name one")
    after = None
    while True:
        page = listing(after=after, limit=PAGE)
        yield from page
        if len(page) < PAGE:
            return
        after = page[-1]


def run(args: list[str] | None = None) -> int:
    """Run the command line; returns the exit code. An unexpected error is
    one line (its traceback with ``--debug``)."""
    argv = sys.argv[1:] if args is None else args
    try:
        code = cli.main(args=argv, prog_name="optin-core", standalone_mode=False)
    except click.ClickException as e:
        e.show()
        return e.exit_code
    except click.exceptions.Abort:
        click.echo("Aborted.", err=True)
        return EXIT_FAILURE
    except Exception as e:
        if "--debug" in argv:
            raise
        click.echo(
            f"Error: unexpected {type(e).__name__}: {e} (run with --debug "
            "for the traceback)",
            err=True,
        )
        return EXIT_FAILURE
    return code if isinstance(code, int) else EXIT_OK
