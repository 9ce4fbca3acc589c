"""The ``optin-core`` command line (the ``cli`` extra: click).

``python -m optin_core`` and the ``optin-core`` console script run
:func:`optin_core.__main__.main`, which checks that click is installed and
then runs :data:`cli`. Exit codes (:data:`EXIT_CODES`): 0 done; 1 the
command could not run (a store unreachable, a record unreadable, an extra
missing); 2 bad input (usage, an invalid policy file, an unknown locale, a
bad script line, store URL or import file); 3 a check failed (a log that
does not verify, rows an import refused, ``policy lint --strict`` with
keyword collisions).

A store command (``show``, ``verify``, and the compliance commands
``receipt``, ``export``, ``import``, ``erase``, ``purge``) is a function
decorated with ``@cli.command()``, :func:`store_option`,
:func:`policy_option` and :func:`json_option`, whose body runs in ``with
open_service(store_url, load_policy(policy_file)) as service:``: errors of
the store become one line and exit 1 there, a bad input is
:class:`BadInput` (exit 2), a failed check :class:`CheckFailed` or
``click.get_current_context().exit(EXIT_CHECK)``. ``open_service(...,
create=True)`` lets a command that writes create the SQLite file or the
PostgreSQL tables (only ``import`` does, and not with ``--dry-run``);
:func:`every_contact` walks a whole store a page at a time; long runs
(``export``, ``import``) show ``click.progressbar(..., file=sys.stderr)``
once they have lasted :data:`PROGRESS_AFTER` seconds, and only when stderr
is a terminal. A command that writes to logs verifies one first (a
forgotten ``--log-key-file`` would append events that break the chain).
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import sqlite3
import sys
import tempfile
import time
import tomllib
from collections.abc import Callable, Iterable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import IO, Any, TypeVar

import click

from . import stores
from ._core import decide
from ._enums import Intent, Outcome
from ._errors import (
    ImportRefused,
    InvalidInput,
    OptinError,
    PolicyError,
    RecordError,
    StoreUnavailable,
    UnknownLocale,
)
from ._locale import available_locales, require_locale
from ._parser import parse_reply
from ._policy import Mode, Policy
from ._receipt import ReceiptFormat
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
from ._transfer import Format, ImportReport
from ._version import __version__

__all__ = [
    "EXIT_CHECK",
    "EXIT_CODES",
    "EXIT_FAILURE",
    "EXIT_OK",
    "EXIT_USAGE",
    "PROGRESS_AFTER",
    "SIMULATION_START",
    "BadInput",
    "CheckFailed",
    "CliError",
    "cli",
    "every_contact",
    "json_option",
    "load_policy",
    "log_key_option",
    "open_service",
    "open_store",
    "policy_option",
    "read_log_key",
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
    EXIT_FAILURE: "could not run: a store unreachable or unreadable, an extra "
    "missing, an erasure not confirmed",
    EXIT_USAGE: "bad input: usage, policy file, locale, script line, store URL, "
    "import file",
    EXIT_CHECK: "a check failed: a log that does not verify, rows refused by an "
    "import, lint --strict",
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


def log_key_option(function: _F) -> _F:
    """``--log-key-file FILE`` (or ``$OPTIN_LOG_KEY_FILE``): the secret of
    keyed logs, for the commands that verify logs or key suppressions
    (:func:`read_log_key`)."""
    return click.option(
        "--log-key-file",
        type=click.Path(exists=True, dir_okay=False, path_type=Path),
        envvar="OPTIN_LOG_KEY_FILE",
        help="The secret of keyed logs (Policy.log_key), read from FILE "
        "(also $OPTIN_LOG_KEY_FILE).",
    )(function)


def read_log_key(path: Path | None) -> bytes | None:
    """The key in ``path`` (a trailing newline dropped), or ``None``."""
    if path is None:
        return None
    try:
        return path.read_bytes().rstrip(b"\n")
    except OSError as e:
        raise BadInput(f"cannot read {path}: {e.strerror or e}") from None


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
    policies, inspect consent stores and answer audits (receipts, export,
    import, erasure, retention)."""


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
@log_key_option
@click.option("--log", "with_log", is_flag=True, help="Show the events too.")
@json_option
def show(
    *,
    contact: str,
    store_url: str,
    policy_file: Path | None,
    log_key_file: Path | None,
    with_log: bool,
    as_json: bool,
) -> None:
    """Show CONTACT's consent as the store holds it."""
    loaded = load_policy(policy_file, log_key=read_log_key(log_key_file))
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
@log_key_option
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
    loaded = load_policy(policy_file, log_key=read_log_key(log_key_file))
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


# -- compliance: receipt, export, import, erase, purge ------------------------------


class CheckFailed(CliError):
    """A failed check shown as one line (``Error: ...``); exit code 3."""

    exit_code = EXIT_CHECK


@contextlib.contextmanager
def _service_errors() -> Iterator[None]:
    """The service's refusals as one line: a bad argument exits 2, a log
    that does not verify 3."""
    try:
        yield
    except (InvalidInput, UnknownLocale) as e:
        raise BadInput(str(e)) from None
    except RecordError as e:
        if not e.contact:  # the store itself: its schema, a record of it
            raise CliError(_unreadable(e)) from None
        raise CheckFailed(
            f"{e}; run 'optin-core verify' to list the logs that do not verify"
        ) from None


def _unreadable(error: RecordError) -> str:
    message = f"the store cannot be used: {error.field}: {error.problem}"
    if error.field == "schema":
        message += (
            " (the command line creates a store's tables only for an import "
            "without --dry-run)"
        )
    return message


def _utc_now() -> datetime:
    return datetime.now(UTC)


#: Seconds a run lasts before its progress bar shows: a short export or
#: import draws nothing.
PROGRESS_AFTER = 1.0


def _is_terminal(stream: IO[str]) -> bool:
    try:
        return bool(stream.isatty())
    except (AttributeError, ValueError):  # a closed or odd stream
        return False


class _ProgressBar:
    """A ``progress(done, total)`` callback for ``export`` and
    ``import_records``: click's progress bar on standard error, once the
    run has lasted :data:`PROGRESS_AFTER` seconds, and only when standard
    error is a terminal (a pipe or a log file gets nothing)."""

    def __init__(self, label: str) -> None:
        self.label = label
        self.stream = sys.stderr
        self.enabled = _is_terminal(self.stream)
        self.started = time.monotonic()
        self.bar: Any = None
        self.shown = 0

    def __call__(self, done: int, total: int | None) -> None:
        if not self.enabled:
            return
        if self.bar is None:
            if time.monotonic() - self.started < PROGRESS_AFTER:
                return
            # A generator has no length: click then draws a bar without a
            # total (an export's, whose total is not known in advance).
            nothing: tuple[int, ...] = ()
            self.bar = click.progressbar(
                (n for n in nothing) if total is None else None,
                length=total,
                label=self.label,
                file=self.stream,
                show_pos=True,
            )
            self.bar.__enter__()
        self.bar.update(done - self.shown)
        self.shown = done

    def close(self) -> None:
        if self.bar is not None:
            self.bar.__exit__(None, None, None)
            self.bar = None


@contextlib.contextmanager
def _progress(label: str) -> Iterator[_ProgressBar]:
    bar = _ProgressBar(label)
    try:
        yield bar
    finally:
        bar.close()


def _format_of(path: Path | None, given: str | None) -> Format:
    """The ``--format`` given, else ``csv`` for a ``.csv`` file, else
    ``jsonl``."""
    if given is not None:
        return "csv" if given == "csv" else "jsonl"
    if path is not None and path.suffix.lower() == ".csv":
        return "csv"
    return "jsonl"


def _transfer_format_option(what: str) -> Callable[[_F], _F]:
    return click.option(
        "--format",
        "fmt",
        type=click.Choice(["jsonl", "csv"]),
        default=None,
        help=f"{what} Default: csv for a .csv file, else jsonl.",
    )


def _check_key(service: ConsentService, contact: str | None = None) -> None:
    """Before a command writes to logs: verify ``contact``'s log, or the
    first contact's (a store's logs share one key). Events appended under
    the wrong key (a forgotten ``--log-key-file``) would break their
    chains for good, so a log that does not verify stops the command
    before it writes anything (exit 3)."""
    if contact is None:
        store: Any = service.store
        first = store.contacts(limit=1)
        if not first:
            return
        contact = first[0]
    problem = _verification_problem(service, contact)
    if problem is not None:
        raise CheckFailed(
            f"{problem}; nothing was written (a keyed store needs its "
            "--log-key-file; 'optin-core verify' lists the logs that do "
            "not verify)"
        )


def _verification_problem(service: ConsentService, contact: str) -> str | None:
    """Why ``contact``'s log does not verify, or ``None`` when it does (an
    error of the store itself propagates)."""
    try:
        service.history(contact)
    except RecordError as e:
        if not e.contact:
            raise
        return str(e)
    return None


def _no_record(contact: str) -> CliError:
    return CliError(f"no record of {contact} in the store")


def _receipt_formats() -> dict[str, ReceiptFormat]:
    return {"text": "text", "markdown": "markdown", "html": "html"}


@cli.command(short_help="A readable account of a contact's consent.")
@click.argument("contact")
@store_option
@policy_option
@log_key_option
@_locale_option
@click.option(
    "--tz",
    default=None,
    metavar="ZONE",
    help="The IANA time zone of the dates (default: the policy's time_zone).",
)
@click.option(
    "--format",
    "fmt",
    type=click.Choice(list(_receipt_formats())),
    default="text",
    show_default=True,
    help="text, markdown or html (escaped).",
)
@json_option
def receipt(
    *,
    contact: str,
    store_url: str,
    policy_file: Path | None,
    log_key_file: Path | None,
    locale: str | None,
    tz: str | None,
    fmt: str,
    as_json: bool,
) -> None:
    """A readable account of CONTACT's consent, for an auditor: each
    request with its wording, each reply verbatim, every message with its
    delivery, stops and restarts, and whether the log verifies. Exits 3
    when it does not (the receipt is still printed, under a warning)."""
    loaded = load_policy(policy_file, log_key=read_log_key(log_key_file))
    locale = _check_locale(locale)
    with open_service(store_url, loaded) as service, _service_errors():
        head = service.get(contact)
        if head.version == 0:
            raise _no_record(head.contact)
        problem = _verification_problem(service, head.contact)
        text = service.receipt(
            head.contact, locale=locale, tz=tz, format=_receipt_formats()[fmt]
        )
    if as_json:
        _emit(
            {
                "contact": head.contact,
                "state": head.state.value,
                "format": fmt,
                "verified": problem is None,
                "problem": problem,
                "receipt": text,
            }
        )
    else:
        click.echo(text, nl=not text.endswith("\n"))
    if problem is not None:
        click.echo(f"Warning: the log does not verify: {problem}", err=True)
        click.get_current_context().exit(EXIT_CHECK)


@contextlib.contextmanager
def _output(path: Path | None) -> Iterator[IO[str]]:
    """Standard output, or a file written whole or not at all: a temporary
    file beside ``path``, renamed over it once complete (an export that
    fails leaves no half file)."""
    if path is None:
        yield sys.stdout
        return
    try:
        handle, temporary = tempfile.mkstemp(
            dir=path.parent, prefix=f".{path.name}.", suffix=".part"
        )
    except OSError as e:
        raise BadInput(f"cannot write {path}: {e.strerror or e}") from None
    done = False
    try:
        with open(handle, "w", encoding="utf-8", newline="") as fp:
            yield fp
        os.replace(temporary, path)
        done = True
    finally:
        if not done:
            with contextlib.suppress(OSError):
                os.unlink(temporary)


@cli.command(short_help="Export every contact (JSONL or a CSV summary).")
@store_option
@policy_option
@log_key_option
@_transfer_format_option(
    "jsonl: every contact's head, verified log and delivery records, then "
    "every erasure; csv: a summary, one row per contact."
)
@click.option(
    "--output",
    "-o",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="Write to FILE (whole, or not at all) instead of standard output.",
)
@json_option
def export(
    *,
    store_url: str,
    policy_file: Path | None,
    log_key_file: Path | None,
    fmt: str | None,
    output: Path | None,
    as_json: bool,
) -> None:
    """Export every contact of the store: JSONL (each verified log with its
    delivery records, then each erasure) or a CSV summary. Exits 3 if a log
    does not verify."""
    if as_json and output is None:
        raise BadInput(
            "--json prints a summary on standard output, where the export "
            "goes without --output: pass --output FILE"
        )
    chosen = _format_of(output, fmt)
    loaded = load_policy(policy_file, log_key=read_log_key(log_key_file))
    with (
        open_service(store_url, loaded) as service,
        _service_errors(),
        _output(output) as fp,
        _progress("exporting") as progress,
    ):
        written = service.export(fp, format=chosen, progress=progress)
    if as_json:
        _emit({"format": chosen, "output": str(output), "records": written})
        return
    where = "standard output" if output is None else str(output)
    click.echo(f"{written} records exported to {where} ({chosen})", err=output is None)


def _report_dict(report: ImportReport) -> dict[str, Any]:
    return {
        "dry_run": report.dry_run,
        "rows": report.rows,
        "applied": report.applied,
        "unchanged": report.unchanged,
        "refused": report.refused,
        "reasons": {k: dict(v) for k, v in report.reasons.items()},
        "refusals": [
            {"line": r.line, "contact": r.contact, "reason": r.reason}
            for r in report.refusals
        ],
        "listed_all": report.listed_all,
    }


#: Refused rows the text output of ``import`` lists one by one.
LISTED = 20


def _show_report(report: ImportReport) -> None:
    click.echo(str(report))
    for row in report.refusals[:LISTED]:
        who = "" if row.contact is None else f" ({row.contact})"
        click.echo(f"  line {row.line}{who}: {row.reason}")
    more = report.refused - min(len(report.refusals), LISTED)
    if more:
        click.echo(f"  ... and {more} more refused rows (--json lists them)")
    if report.dry_run:
        click.echo("This was a dry run: nothing was written.")


@contextlib.contextmanager
def _input(path: Path) -> Iterator[IO[str]]:
    """``path`` ('-': standard input) as UTF-8 text, a byte order mark
    dropped (spreadsheets write one), newlines as they are (CSV)."""
    if str(path) == "-":
        stdin = io.TextIOWrapper(sys.stdin.buffer, encoding="utf-8-sig", newline="")
        try:
            yield stdin
        finally:
            stdin.detach()  # standard input stays open
        return
    with open(path, encoding="utf-8-sig", newline="") as fp:
        yield fp


@cli.command(name="import", short_help="Import consent records (JSONL or CSV).")
@click.argument(
    "file",
    type=click.Path(exists=True, dir_okay=False, allow_dash=True, path_type=Path),
)
@store_option
@policy_option
@log_key_option
@_transfer_format_option(
    "jsonl: an export of this library; csv: contact, state, since (and "
    "source, evidence)."
)
@click.option(
    "--source",
    required=True,
    metavar="NAME",
    help="Where the records come from (recorded on every event written).",
)
@click.option(
    "--by",
    default="import",
    show_default=True,
    metavar="WHO",
    help="Who imports them (recorded on every event written).",
)
@click.option(
    "--dry-run", is_flag=True, help="Report what would be done; write nothing."
)
@click.option(
    "--continue",
    "continue_on_error",
    is_flag=True,
    help="Report and skip unreadable lines instead of refusing the file.",
)
@json_option
def import_(
    *,
    file: Path,
    store_url: str,
    policy_file: Path | None,
    log_key_file: Path | None,
    fmt: str | None,
    source: str,
    by: str,
    dry_run: bool,
    continue_on_error: bool,
    as_json: bool,
) -> None:
    """Import consent records from FILE ('-': standard input): a JSONL
    export, or a CSV of contact, state, since. The file is verified whole
    before anything is written; a stop always applies, an opt-in never
    over a stop. Exits 3 when rows were refused."""
    for value, name in ((source, "--source"), (by, "--by")):
        if not value.strip():
            raise BadInput(f"{name} must not be empty (it is logged on every event)")
    stdin = str(file) == "-"
    chosen = _format_of(None if stdin else file, fmt)
    loaded = load_policy(policy_file, log_key=read_log_key(log_key_file))
    try:
        with (
            open_service(store_url, loaded, create=not dry_run) as service,
            _service_errors(),
            _input(file) as fp,
            _progress("importing") as progress,
        ):
            _check_key(service)
            report = service.import_records(
                fp,
                format=chosen,
                source=source,
                by=by,
                dry_run=dry_run,
                continue_on_error=continue_on_error,
                progress=progress,
            )
    except ImportRefused as e:
        hint = ""
        if not (chosen == "csv" and e.line == 1):
            hint = " (fix the file, or pass --continue to skip such lines)"
        raise BadInput(
            f"{file}: import refused at line {e.line}: {e.problem}; nothing was "
            f"written{hint}"
        ) from None
    except UnicodeDecodeError as e:
        raise BadInput(f"{file} is not UTF-8 text: {e.reason}") from None
    if as_json:
        _emit({"file": str(file), "format": chosen, **_report_dict(report)})
    else:
        _show_report(report)
    if report.refused:
        click.get_current_context().exit(EXIT_CHECK)


def _confirm(question: str) -> bool:
    """The answer to ``question`` asked on standard error (standard output
    stays for ``--json``); no answer (end of input) is no."""
    try:
        answer = click.confirm(question, err=True)
    except click.exceptions.Abort:
        answer = False
    else:
        if _is_terminal(sys.stdin):
            return answer  # the terminal echoed the answer and its newline
    click.echo(err=True)  # end the prompt's line
    return answer


@cli.command(short_help="Erase a contact's personal data; keep it suppressed.")
@click.argument("contact")
@store_option
@policy_option
@log_key_option
@click.option("--by", required=True, metavar="WHO", help="Who erases (logged).")
@click.option(
    "--reason",
    required=True,
    metavar="WHY",
    help="Why: the request's reference, kept with the erasure (so no "
    "personal data in it).",
)
@click.option("--yes", "-y", is_flag=True, help="Erase without asking.")
@json_option
def erase(
    *,
    contact: str,
    store_url: str,
    policy_file: Path | None,
    log_key_file: Path | None,
    by: str,
    reason: str,
    yes: bool,
    as_json: bool,
) -> None:
    """Erase CONTACT's personal data (a GDPR request) and keep the number
    suppressed: it is stopped, its log redacted (it still verifies), and
    it can no longer be texted, attested or imported. Asks first, unless
    --yes. Erasing twice changes nothing."""
    for value, name in ((by, "--by"), (reason, "--reason")):
        if not value.strip():
            raise BadInput(f"{name} must not be empty (it is logged)")
    loaded = load_policy(policy_file, log_key=read_log_key(log_key_file))
    with open_service(store_url, loaded) as service, _service_errors():
        head = service.get(contact)
        canonical = head.contact
        done = service.store.get(canonical) is None
        if done:
            erasure = service.erasure(canonical)
            if erasure is None:
                raise _no_record(canonical)
        else:
            _check_key(service, canonical)
            if not yes and not _confirm(
                f"Erase the personal data of {canonical} ({head.state.value}, "
                f"{head.version} events)? Its log is redacted, the number "
                "stays suppressed, and this cannot be undone."
            ):
                raise CliError(
                    "nothing was erased (pass --yes to erase without asking)"
                )
            erasure = service.erase(canonical, by=by, reason=reason)
    last = erasure.logs[-1]
    if as_json:
        _emit(
            {
                "contact": canonical,
                "already_erased": done,
                "erased_at": last.erased_at.isoformat(),
                "by": last.by,
                "reason": last.reason,
                "key": erasure.key,
                "events": len(last.log.events),
                "erasures": len(erasure.logs),
            }
        )
        return
    if done:
        click.echo(
            f"{canonical} was erased already, at {_when(last.erased_at)} by "
            f"{last.by}: nothing to do"
        )
        return
    click.echo(
        f"erased {canonical}: {len(last.log.events)} events redacted; "
        f"suppression key {erasure.key}"
    )
    click.echo(
        "The number stays suppressed: it cannot be texted, attested or "
        "imported, and comes back only by texting START."
    )


@cli.command(short_help="Retention: delete old delivered outbox rows.")
@store_option
@click.option(
    "--older-than",
    "days",
    required=True,
    type=click.IntRange(min=0),
    metavar="DAYS",
    help="Delete outbox rows of messages sent more than DAYS days ago.",
)
@json_option
def purge(store_url: str, days: int, as_json: bool) -> None:
    """Retention: delete the outbox rows of messages sent more than DAYS
    days ago. The log keeps every message and every event: nothing else is
    ever purged."""
    cutoff = _utc_now() - timedelta(days=days)
    with open_service(store_url) as service, _service_errors():
        purged = service.purge_delivered(older_than=cutoff)
    if as_json:
        _emit({"purged": purged, "older_than": cutoff.isoformat()})
        return
    click.echo(
        f"{purged} delivered outbox rows purged (sent before {_when(cutoff)}); "
        "the log keeps every message"
    )


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
