"""Where the time goes: cProfile, a component breakdown, and line timings.

Usage::

    python bench/hotspots.py decide [--text "who is this?"] [-n 20000]
    python bench/hotspots.py parse [-n 200]          # the mixed corpus n times
    python bench/hotspots.py receive [-n 2000]       # ConsentService + MemoryStore
    python bench/hotspots.py receive-sqlite          # + SQLiteStore (NORMAL)
    python bench/hotspots.py history-sqlite --events 10000 [--text send_text]
                                                     # receive "help" on a long log
    python bench/hotspots.py breakdown               # decide's parts, one by one
    python bench/hotspots.py decide --lines          # needs line_profiler

``--lines`` uses `line_profiler` when it is importable (it is not a
dependency: ``pip install --target /tmp/lp line_profiler`` and run with
``PYTHONPATH=/tmp/lp``); it times every line of the hot functions.
"""

from __future__ import annotations

import argparse
import cProfile
import io
import pstats
import statistics
import sys
import time
from collections.abc import Callable, Sequence
from datetime import timedelta
from pathlib import Path
from typing import Any

if __package__ in (None, ""):  # run as a script: make ``bench`` importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.cases import CONTACT, T0, _at
from bench.corpus import REPLIES


def _fixtures(text: str) -> tuple[Any, Any, Any]:
    from optin_core import Consent, Inbound, Policy, RequestOptIn, decide

    policy = Policy(org_name="Hearsay")
    pending = decide(Consent.new(CONTACT), RequestOptIn(at=T0), policy).consent
    inbound = Inbound(text=text, at=_at(5), message_id="SM0001")
    return policy, pending, inbound


def workload(what: str, text: str, events: int = 10) -> Callable[[int], None]:
    from optin_core import decide, parse_reply

    if what == "decide":
        policy, pending, inbound = _fixtures(text)

        def run(n: int) -> None:
            for _ in range(n):
                decide(pending, inbound, policy)

        return run
    if what == "parse":

        def run_parse(n: int) -> None:
            for _ in range(n):
                for reply, locale in REPLIES:
                    parse_reply(reply, locale)

        return run_parse
    if what in ("receive", "receive-sqlite"):
        import os
        import tempfile

        from optin_core import ConsentService, Policy
        from optin_core.stores import MemoryStore, SQLiteStore

        if what == "receive":
            store: Any = MemoryStore()
        else:
            path = os.path.join(tempfile.mkdtemp(prefix="optin-prof-"), "p.db")
            store = SQLiteStore(path, synchronous="NORMAL")
        policy = Policy(org_name="Hearsay")
        service = ConsentService(policy, store, lambda m: None)
        counter = iter(range(10**9))
        batches: list[list[str]] = []

        def seed(n: int) -> None:
            # Untimed by the profiler: called before it is enabled.
            contacts = [f"+1700{next(counter):07d}" for _ in range(n)]
            for c in contacts:
                service.request_opt_in(c, at=T0)
            batches.append(contacts)

        def run_receive(n: int) -> None:
            contacts = batches.pop(0) if batches else []
            for c in contacts[:n]:
                service.receive(c, text, message_id="SM1", at=_at(5))

        run_receive.seed = seed  # type: ignore[attr-defined]
        return run_receive
    if what in ("history", "history-sqlite"):
        return _history_workload(what == "history-sqlite", text, events)
    raise SystemExit(f"unknown workload {what!r}")


def _history_workload(sqlite: bool, text: str, events: int) -> Callable[[int], None]:
    """``receive(contact, text)`` (``--text send_text``: ``send_text``) on
    contacts whose log holds ``events`` events, as the ``history`` area
    builds them (one put per contact, messages marked sent)."""
    import os
    import tempfile

    from bench.cases import history_policy, seed_log
    from optin_core import ConsentService
    from optin_core.stores import MemoryStore, SQLiteStore

    if sqlite:
        path = os.path.join(tempfile.mkdtemp(prefix="optin-prof-"), "h.db")
        store: Any = SQLiteStore(path, synchronous="NORMAL")
    else:
        store = MemoryStore()
    policy = history_policy()
    service = ConsentService(policy, store, lambda m: None)
    counter = iter(range(10**9))
    batches: list[list[tuple[str, Any]]] = []

    def seed(n: int) -> None:
        # Untimed by the profiler: called before it is enabled. One contact
        # per 100 operations (its log grows by at most 1 %).
        ops: list[tuple[str, Any]] = []
        while len(ops) < n:
            contact = f"+1710{next(counter):07d}"
            head = seed_log(store, contact, events, policy)
            at = head.last_at
            for _ in range(min(100, n - len(ops))):
                at += timedelta(minutes=1)
                ops.append((contact, at))
        batches.append(ops)

    def run(n: int) -> None:
        ops = batches.pop(0) if batches else []
        for i, (contact, at) in enumerate(ops[:n]):
            if text == "send_text":
                service.send_text(contact, "Your documents are ready.", at=at)
            else:
                service.receive(contact, text, message_id=f"SMP{i}-{at}", at=at)

    run.seed = seed  # type: ignore[attr-defined]
    return run


def _seed(run: Callable[[int], None], n: int) -> None:
    seed = getattr(run, "seed", None)
    if seed is not None:
        seed(n)


def profile(run: Callable[[int], None], n: int, top: int, sort: str) -> str:
    _seed(run, max(1, n // 20))
    run(max(1, n // 20))  # warm caches first
    _seed(run, n)
    prof = cProfile.Profile()
    prof.enable()
    run(n)
    prof.disable()
    out = io.StringIO()
    stats = pstats.Stats(prof, stream=out)
    stats.strip_dirs().sort_stats(sort).print_stats(top)
    return out.getvalue()


def lines(run: Callable[[int], None], n: int, funcs: Sequence[Any]) -> str:
    try:
        from line_profiler import LineProfiler  # type: ignore[import-not-found]
    except ImportError:
        return "line_profiler is not importable; see this module's docstring\n"
    lp = LineProfiler()
    for f in funcs:
        lp.add_function(f)
    _seed(run, max(1, n // 20))
    run(max(1, n // 20))
    _seed(run, n)
    lp.enable_by_count()
    run(n)
    lp.disable_by_count()
    out = io.StringIO()
    lp.print_stats(stream=out, output_unit=1e-6, stripzeros=True)
    return out.getvalue()


def _timings_ns(
    fn: Callable[[], object], target_ns: int = 10_000_000
) -> tuple[float, float]:
    """(min, median) ns per call over 9 samples of about 10 ms.

    For parts this small the minimum is the better estimate of the cost on a
    shared machine; the median says how noisy it was.
    """
    loops = 1
    while True:
        t = time.perf_counter_ns()
        for _ in range(loops):
            fn()
        elapsed = time.perf_counter_ns() - t
        if elapsed > target_ns // 4:
            break
        loops *= 4
    loops = max(1, loops * target_ns // max(elapsed, 1))
    samples = []
    for _ in range(9):
        t = time.perf_counter_ns()
        for _ in range(loops):
            fn()
        samples.append((time.perf_counter_ns() - t) / loops)
    return min(samples), statistics.median(samples)


def breakdown(text: str) -> str:
    """The parts of ``decide(pending, Inbound(text))``, each timed alone."""
    import hashlib

    import attrs

    from optin_core import Consent, decide, locale_chain, parse_reply
    from optin_core._records import AuditEvent, Decision, Outgoing, idempotency_key

    policy, pending, inbound = _fixtures(text)
    d = decide(pending, inbound, policy)
    event = d.events[-1]
    new = d.consent
    msg = d.outgoing[0] if d.outgoing else None
    kind = msg.kind if msg else None

    def fields(obj: Any) -> dict[str, Any]:
        return {a.name: getattr(obj, a.name) for a in attrs.fields(type(obj)) if a.init}

    ev_kw, new_kw, dec_kw = fields(event), fields(new), fields(d)
    parts: list[tuple[str, Callable[[], object]]] = [
        ("decide (total)", lambda: decide(pending, inbound, policy)),
        (
            "parse_reply as decide calls it",
            lambda: parse_reply(
                text,
                pending.locale,
                default_locale=policy.default_locale,
                keywords=policy.keywords,
                lenient_consent=policy.lenient_consent,
            ),
        ),
        ("policy.classify", lambda: policy.classify(d.reply)),
        ("locale_chain(None, 'en')", lambda: locale_chain(pending.locale, "en")),
        ("idempotency_key (sha256)", lambda: idempotency_key(CONTACT, 2, 0)),
        (
            "hashlib.sha256 alone",
            lambda: hashlib.sha256(b"+15555550100\x1f2\x1f0").hexdigest(),
        ),
        ("AuditEvent(**16 fields)", lambda: AuditEvent(**ev_kw)),
        ("Consent(**13 fields)", lambda: Consent(**new_kw)),
        ("Decision(**4 fields)", lambda: Decision(**dec_kw)),
    ]
    if kind is not None and msg is not None:
        parts.insert(
            3, ("policy.message(kind, locale)", lambda: policy.message(kind, None))
        )
        msg_kw = fields(msg)
        parts.append(("Outgoing(**5 fields)", lambda: Outgoing(**msg_kw)))
    rows = [
        f"decide(pending, Inbound({text!r})), parts timed alone:",
        f"  {'part':<34} {'min':>8}    {'median':>8}",
    ]
    for name, fn in parts:
        low, mid = _timings_ns(fn)
        rows.append(f"  {name:<34} {low / 1000:8.2f} µs {mid / 1000:8.2f} µs")
    return "\n".join(rows) + "\n"


def _hot_functions(what: str) -> list[Any]:
    import optin_core._catalog as catalog
    import optin_core._core as core
    import optin_core._locale as locale
    import optin_core._machine as machine
    import optin_core._parser as parser
    import optin_core._records as records

    names = {
        "decide": [
            (core, "_inbound"),
            (core, "_loop_guard"),
            (core, "_Step.fire"),
            (machine, "fire"),
            (machine, "apply_event"),
            (machine, "_advance"),
            (catalog, "render_message"),
            (locale, "locale_chain"),
            (locale, "_negotiate"),
            (records, "idempotency_key"),
        ],
        "parse": [
            (parser, "parse_reply"),
            (parser, "_parse"),
            (parser, "_fold"),
            (parser, "_words"),
        ],
    }.get(what, [])
    found = []
    for module, dotted in names:
        obj: Any = module
        for part in dotted.split("."):
            obj = getattr(obj, part, None)
        if obj is not None:
            found.append(obj)
    return found


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "what",
        choices=[
            "decide",
            "parse",
            "receive",
            "receive-sqlite",
            "history",
            "history-sqlite",
            "breakdown",
        ],
    )
    parser.add_argument(
        "--events",
        type=int,
        default=10,
        help="history: events logged per contact before the profiled operations",
    )
    parser.add_argument("--text", default="Yes", help="the inbound reply")
    parser.add_argument("-n", type=int, default=None, help="iterations")
    parser.add_argument("--top", type=int, default=25)
    parser.add_argument("--sort", default="tottime")
    parser.add_argument("--lines", action="store_true", help="line timings too")
    args = parser.parse_args(argv)
    if args.what == "breakdown":
        print(breakdown(args.text))
        return 0
    n = args.n or {"decide": 20_000, "parse": 200}.get(args.what, 2_000)
    text = args.text
    if args.what.startswith("history") and text == "Yes":
        text = "help"  # an opted-in contact: "Yes" would change nothing
    run = workload(args.what, text, args.events)
    print(profile(run, n, args.top, args.sort))
    if args.lines:
        print(lines(run, n, _hot_functions(args.what)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
