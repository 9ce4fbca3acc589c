"""The benchmark cases, each with the baselines it is measured against.

Every builder returns the :class:`~harness.Group` s of one area (parse,
decide, service, audience gate, record cost, history); fixtures are built outside the
timed region. A builder raises :class:`Skip` when the code it measures is
not importable yet.
"""

from __future__ import annotations

import gc
import json
import os
import random
import sys
import tempfile
import time
import tracemalloc
import unicodedata
from collections.abc import Callable, Iterator
from contextlib import ExitStack
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import attrs

from bench.corpus import (
    LONG_REPLIES,
    REPLIES,
    baseline_keywords,
    megabyte_replies,
    short_replies,
)
from bench.harness import Group, Mode, Workload

__all__ = [
    "AREAS",
    "CONTACT",
    "HISTORY_LENGTHS",
    "HISTORY_OPS",
    "HISTORY_STORES",
    "T0",
    "Area",
    "Skip",
    "build_log",
    "fresh",
    "history_case",
    "history_policy",
    "iter_areas",
    "seed_log",
    "typical_record",
]

T0 = datetime(2026, 3, 2, 9, 30, tzinfo=UTC)
CONTACT = "+15555550100"


class Skip(Exception):
    """The code this area measures is not importable (yet)."""


@dataclass
class Area:
    """The groups of one area, plus figures that are not timings."""

    groups: list[Group]
    metrics: dict[str, Any] = field(default_factory=dict)
    cleanup: ExitStack = field(default_factory=ExitStack)


def _at(minutes: float) -> datetime:
    return T0 + timedelta(minutes=minutes)


# ---------------------------------------------------------------------------
# 1. Parse


def fresh(text: str) -> str:
    """An equal ``str`` that is a new object, its hash not computed yet.

    A webhook hands the parser a new string every time; reusing one object
    would let ``dict`` lookups skip hashing it (CPython caches a string's
    hash), which for a megabyte of text is most of the work.
    """
    return text[:-1] + text[-1:] if len(text) > 1 else text


class _FreshTexts:
    """Per sample, ``loops`` fresh copies of the texts (built untimed)."""

    def __init__(self, texts: list[str]) -> None:
        self.texts = texts
        self.batches: list[list[str]] = []

    def setup(self, loops: int) -> None:
        self.batches = []  # free the last sample's copies first
        self.batches = [[fresh(t) for t in self.texts] for _ in range(loops)]


def _parse_workloads(
    suffix: str, corpus: list[tuple[str, str]], table: dict[str, str]
) -> list[Workload]:
    from optin_core import parse_reply

    locales = [loc for _, loc in corpus]
    texts = [t for t, _ in corpus]
    mine, theirs = _FreshTexts(texts), _FreshTexts(texts)

    def parse(loops: int) -> None:
        p = parse_reply
        for batch in mine.batches[:loops]:
            for text, locale in zip(batch, locales, strict=True):
                p(text, locale)

    def baseline(loops: int) -> None:
        get = table.get
        for batch in theirs.batches[:loops]:
            for text, _locale in zip(batch, locales, strict=True):
                get(text.strip().casefold())

    return [
        Workload(f"parse_reply[{suffix}]", parse, ops=len(corpus), setup=mine.setup),
        Workload(
            f"dict.get(strip.casefold)[{suffix}]",
            baseline,
            ops=len(corpus),
            setup=theirs.setup,
        ),
    ]


def parse_area(mode: Mode) -> Area:
    try:
        from optin_core import parse_reply
    except ImportError as e:
        raise Skip(f"optin_core.parse_reply is not importable: {e}") from None
    from optin_core import MatchRule

    table = baseline_keywords()
    # Exact keywords as contacts type them ("STOP", "Oui", "yes!"): no
    # padding, no width or compatibility forms, nothing invisible. The
    # parser's fast path, against the same dict lookup. (Padded or
    # fullwidth spellings are in "short".)
    exact = [
        (t, loc)
        for t, loc in short_replies()
        if t == t.strip()
        and unicodedata.normalize("NFKC", t) == t
        and all(c.isalpha() or c in "!.?'-" for c in t)
        and parse_reply(t, loc).rule is MatchRule.EXACT
    ]
    groups = []
    for suffix, corpus in (
        ("mixed", REPLIES),
        ("short", short_replies()),
        ("exact", exact),
        ("long", LONG_REPLIES),
    ):
        ws = _parse_workloads(suffix, corpus, table)
        groups.append(Group(f"parse.{suffix}", ws, compare=[(ws[0].name, ws[1].name)]))

    size = max(1 << 10, int((1 << 20) * mode.scale)) if mode.scale < 1 else 1 << 20
    big = megabyte_replies(size)
    intents = {}
    workloads = []
    compare = []
    # Ten fresh megabyte strings per sample (UCS-4 ones take 4 MB each).
    big_loops = 10 if mode.scale >= 1 else 2
    for label, text in big.items():
        intents[label] = parse_reply(fresh(text), "en").intent.value
        mine, theirs = _FreshTexts([text]), _FreshTexts([text])

        def parse_big(loops: int, mine: _FreshTexts = mine) -> None:
            for (copy,) in mine.batches[:loops]:
                parse_reply(copy, "en")

        def base_big(loops: int, theirs: _FreshTexts = theirs) -> None:
            get = table.get
            for (copy,) in theirs.batches[:loops]:
                get(copy.strip().casefold())

        case = f"parse_reply[1MB {label}]"
        base = f"dict.get(strip.casefold)[1MB {label}]"
        workloads += [
            Workload(case, parse_big, setup=mine.setup, loops=big_loops),
            Workload(base, base_big, setup=theirs.setup, loops=big_loops),
        ]
        compare.append((case, base))
    groups.append(Group("parse.1MB", workloads, compare=compare))
    return Area(
        groups,
        metrics={
            "parse": {
                "corpus_size": len(REPLIES),
                "short_size": len(short_replies()),
                "long_size": len(LONG_REPLIES),
                "locales": sorted({loc for _, loc in REPLIES}),
                "big_reply_chars": size,
                "big_reply_intents": intents,
            }
        },
    )


# ---------------------------------------------------------------------------
# 2. Decide


@attrs.frozen(kw_only=True, slots=True)
class MiniRecord:
    """The fair minimal record of the hand-written baseline: five fields."""

    contact: str
    state: str
    version: int
    at: datetime
    message_id: str


#: The minimal hand-written machine: (state, intent) -> state.
MINI_TABLE: dict[tuple[str, str | None], str] = {
    ("pending", "consent"): "opted_in",
    ("pending", "start"): "opted_in",
    ("pending", "stop"): "stopped",
    ("pending", "decline"): "stopped",
    ("pending", None): "pending",
    ("opted_in", "stop"): "stopped",
    ("stopped", "start"): "opted_in",
}

#: The naive handler's intent -> event (python-statemachine event names).
NAIVE_EVENTS: dict[str | None, str] = {
    "consent": "consent",
    "start": "consent",
    "stop": "stop",
    "decline": "decline",
    "help": "help",
    None: "remind",
}


class _Model:
    """The naive approach's model object; python-statemachine sets ``state``."""

    def __init__(self, state: str) -> None:
        self.state = state


def decide_area(mode: Mode) -> Area:
    try:
        from optin_core import (
            Consent,
            ConsentMachine,
            Inbound,
            Policy,
            RequestOptIn,
            decide,
            event_digest,
        )
    except ImportError as e:
        raise Skip(f"optin_core is not importable: {e}") from None
    policy = Policy(org_name="Hearsay")
    pending = decide(Consent.new(CONTACT), RequestOptIn(at=T0), policy).consent
    table = baseline_keywords()
    groups = []
    metrics: dict[str, Any] = {}
    at = _at(5)
    for label, text in (("yes", "Yes"), ("unclear", "who is this?")):
        inbound = Inbound(text=text, at=at, message_id="SM0001")
        decision = decide(pending, inbound, policy)
        metrics[label] = {
            "text": text,
            "to_state": decision.consent.state.value,
            "outgoing": [m.kind.value for m in decision.outgoing],
            "events": [e.trigger for e in decision.events],
        }

        def run_decide(
            loops: int, inbound: Any = inbound, pending: Any = pending
        ) -> None:
            for _ in range(loops):
                decide(pending, inbound, policy)

        def run_decide_built(loops: int, text: str = text) -> None:
            # The webhook's full share: build the validated input, then decide.
            for _ in range(loops):
                decide(pending, Inbound(text=text, at=at, message_id="SM0001"), policy)

        def run_chain(
            loops: int, event: Any = decision.events[-1], contact: str = CONTACT
        ) -> None:
            # The floor the hash chain sets: the decided event's canonical
            # encoding and digest alone, which decide must compute.
            for _ in range(loops):
                event_digest(contact, event)

        def run_naive(loops: int, text: str = text) -> None:
            get = table.get
            for _ in range(loops):
                event = NAIVE_EVENTS[get(text.strip().casefold())]
                machine = ConsentMachine(model=_Model("pending"))
                machine.send(event)

        def run_minimal(loops: int, text: str = text) -> None:
            get = table.get
            rec = MiniRecord(
                contact=CONTACT, state="pending", version=1, at=T0, message_id=""
            )
            for _ in range(loops):
                intent = get(text.strip().casefold())
                state = MINI_TABLE.get((rec.state, intent), rec.state)
                MiniRecord(
                    contact=rec.contact,
                    state=state,
                    version=rec.version + 1,
                    at=at,
                    message_id="SM0001",
                )

        case = f"decide[{label}]"
        naive = f"naive python-statemachine[{label}]"
        minimal = f"minimal dict+attrs[{label}]"
        built = f"Inbound()+decide[{label}]"
        chain = f"event digest alone[{label}]"
        groups.append(
            Group(
                f"decide.{label}",
                [
                    Workload(case, run_decide),
                    Workload(built, run_decide_built),
                    Workload(naive, run_naive),
                    Workload(minimal, run_minimal),
                    Workload(chain, run_chain),
                ],
                compare=[
                    (case, minimal),
                    (built, minimal),
                    (naive, case),
                    (chain, minimal),
                ],
            )
        )
    # The naive handler must do the same transition, or the race is unfair.
    for label, event in (("yes", "consent"), ("unclear", "remind")):
        model = _Model("pending")
        ConsentMachine(model=model).send(event)
        metrics[label]["naive_to_state"] = model.state
    return Area(groups, metrics={"decide": metrics})


# ---------------------------------------------------------------------------
# 3. Service


def _service_modules() -> tuple[Any, Any, Any]:
    try:
        from optin_core import ConsentService
        from optin_core.stores import MemoryStore, SQLiteStore
    except ImportError as e:
        raise Skip(
            "the service shell is not importable yet "
            f"(optin_core.ConsentService / optin_core.stores: {e})"
        ) from None
    return ConsentService, MemoryStore, SQLiteStore


#: The raw baselines' tables: the same as SQLiteStore's schema 2 (a bounded
#: head row per contact, compare-and-set on version and digest; an event row
#: per logged event, with the unique (contact, message_id) index; an outbox
#: row per message), written here so that the baseline does not depend on
#: the store it is compared with.
_RAW_SCHEMA = """
CREATE TABLE IF NOT EXISTS consents (
    contact TEXT PRIMARY KEY, version INTEGER NOT NULL,
    state TEXT NOT NULL, digest TEXT NOT NULL, data TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS events (
    contact TEXT NOT NULL, version INTEGER NOT NULL, message_id TEXT,
    digest TEXT NOT NULL, data TEXT NOT NULL,
    PRIMARY KEY (contact, version)) WITHOUT ROWID;
CREATE UNIQUE INDEX IF NOT EXISTS events_message
    ON events (contact, message_id) WHERE message_id IS NOT NULL;
CREATE TABLE IF NOT EXISTS outbox (
    seq INTEGER PRIMARY KEY AUTOINCREMENT, key TEXT NOT NULL UNIQUE,
    contact TEXT NOT NULL, version INTEGER NOT NULL, position INTEGER NOT NULL,
    kind TEXT NOT NULL, data TEXT NOT NULL,
    status TEXT NOT NULL DEFAULT 'pending', leased_until REAL,
    claimed_version INTEGER, open INTEGER NOT NULL DEFAULT 1);
CREATE INDEX IF NOT EXISTS outbox_open ON outbox (contact, seq) WHERE open = 1;
CREATE INDEX IF NOT EXISTS outbox_pending ON outbox (seq) WHERE status = 'pending';
"""

#: Row JSON as SQLiteStore writes it (``optin_core.stores._rows.encode``):
#: compact, ASCII.
_encode_json = json.JSONEncoder(ensure_ascii=True, separators=(",", ":")).encode


def _raw_connection(path: str, synchronous: str) -> Any:
    import sqlite3

    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("PRAGMA journal_mode = WAL")
    conn.execute(f"PRAGMA synchronous = {synchronous}")
    conn.executescript(_RAW_SCHEMA)
    return conn


class _Contacts:
    """Fresh contact ids: every timed operation meets a record never touched."""

    def __init__(self, prefix: str) -> None:
        self.prefix = prefix
        self.n = 0
        self.batch: list[str] = []

    def next_batch(self, k: int) -> list[str]:
        start = self.n
        self.n += k
        self.batch = [f"{self.prefix}{i:09d}" for i in range(start, start + k)]
        return self.batch


#: The library's receive with 0.2.0's commits (see ``service_area``).
BEFORE_CASE = "receive[SQLiteStore FULL, 0.2.0 commits]"

#: Worker processes of the service area's multi-process point.
PROCESSES = 4


def _processes_point(mode: Mode, tmp: str) -> dict[str, Any]:
    """``receive(contact, "help")`` by :data:`PROCESSES` worker processes,
    each with its own ``SQLiteStore`` (FULL) on one file and its own
    contacts (``bench/scaling.py``'s point: all start together, every
    operation's latency kept): 2 s in quick mode, 5 s in full."""
    from bench.scaling import _point

    duration = {"quick": 2.0, "full": 5.0}.get(mode.name, 0.2)
    contacts = 200 if mode.scale == 1 else 10
    path = os.path.join(tmp, "processes.db")
    point = _point("sqlite", path, PROCESSES, duration, contacts)
    return {
        k: point[k]
        for k in (
            "workers",
            "duration_s",
            "operations",
            "delivered",
            "receives_per_s",
            "p50_ms",
            "p99_ms",
            "max_ms",
            "client_cpu_per_op_us",
            "machine_cpu_busy",
        )
    }


def service_area(mode: Mode) -> Area:
    """``receive(contact, "Yes")`` from PENDING, against raw sqlite3.

    Fairness: every timed ``receive`` meets a contact seeded (untimed, before
    the sample, through a second service on the same file) with the head and
    log of a just-sent opt-in request, whose message is already marked sent.
    So each operation is exactly: load a ~470-byte head, decide PENDING ->
    OPTED_IN, append one event and compare-and-set the head with its
    confirmation, deliver that one message; no log grows from sample to
    sample. The raw baselines seed the same head JSON, event JSON and sent
    outbox row (``_rows.encode``'s format) and do, by hand:

    * ``read+CAS`` (the issue's baseline): SELECT the head row,
      ``json.loads``, update the head dict, ``json.dumps`` it and the event,
      ``UPDATE ... WHERE contact = ? AND version = ? AND digest = ?``,
      INSERT the event row, one commit;
    * ``same protocol``: the commits SQLiteStore's protocol makes: the same
      transaction plus the queue check and the outbox INSERT, already
      claimed (as the store's lease-in-put does); commit; send; then, in a
      second transaction committed at ``synchronous=NORMAL`` as the store
      does (one fsync per operation, not two), mark it sent and look for a
      next pending message. It isolates the library's own cost from the
      durability the protocol buys.

    Neither baseline computes a digest or checks the events (the library
    does both). Both use the same journal (WAL) and ``synchronous`` setting.
    """
    service_cls, memory_cls, sqlite_cls = _service_modules()
    from optin_core import Consent, Inbound, Policy, RequestOptIn, decide

    policy = Policy(org_name="Hearsay")
    request = decide(Consent.new(CONTACT), RequestOptIn(at=T0), policy)
    template = request.consent
    head_json = _encode_json(template.to_dict())
    request_event_json = _encode_json(request.events[0].to_dict())
    request_message = request.outgoing[0].to_dict()
    yes = Inbound(text="Yes", at=_at(5), message_id="SM0001")
    yes_decision = decide(template, yes, policy)
    if len(yes_decision.events) != 1 or len(yes_decision.outgoing) != 1:
        raise AssertionError("receive('Yes') from PENDING: one event, one message")
    yes_head = yes_decision.consent.to_dict()
    before = template.to_dict()
    head_changes = {
        k: v for k, v in yes_head.items() if v != before[k] and k != "version"
    }
    yes_event = yes_decision.events[0].to_dict()
    confirmation = yes_decision.outgoing[0].to_dict()
    new_state = yes_decision.consent.state.value
    new_digest = yes_decision.consent.digest
    at = _at(5)
    area = Area([])
    tmp = area.cleanup.enter_context(tempfile.TemporaryDirectory(prefix="optin-bench-"))

    def send(message: object) -> None:
        return None

    # Each timed send is counted: a benchmark of a path that silently stops
    # delivering would measure the wrong thing. {name: [receives, sends]}
    delivered: dict[str, list[int]] = {}

    def receive_workload(name: str, store: Any, seed_store: Any) -> Workload:
        tally = delivered.setdefault(name, [0, 0])

        def counting_send(message: object) -> None:
            tally[1] += 1

        service = service_cls(policy, store, counting_send)
        seeder = service_cls(policy, seed_store, send, clock=lambda: T0)
        contacts = _Contacts(f"+1{len(name):02d}")

        def setup(loops: int) -> None:
            for contact in contacts.next_batch(loops):
                seeder.request_opt_in(contact, at=T0)

        def run(loops: int) -> None:
            receive = service.receive
            for i, contact in enumerate(contacts.batch[:loops]):
                receive(contact, "Yes", message_id=f"SM{i}", at=at)
            tally[0] += loops

        return Workload(name, run, setup=setup)

    def raw_workload(
        name: str, path: str, synchronous: str, *, protocol: bool
    ) -> Workload:
        conn = _raw_connection(path, synchronous)
        area.cleanup.callback(conn.close)
        contacts = _Contacts("+19")
        loads, dumps = json.loads, _encode_json
        lease = 120.0
        tally = delivered.setdefault(name, [0, 0]) if protocol else [0, 0]
        now = at.timestamp()

        def setup(loops: int) -> None:
            # The rows request_opt_in leaves: head, request event, sent request.
            heads, events, outbox = [], [], []
            for c in contacts.next_batch(loops):
                heads.append(
                    (
                        c,
                        template.version,
                        template.state.value,
                        template.digest,
                        head_json.replace(CONTACT, c),
                    )
                )
                events.append(
                    (
                        c,
                        1,
                        None,
                        template.digest,
                        request_event_json.replace(CONTACT, c),
                    )
                )
                key = f"{c}:1:0"
                message = dumps(dict(request_message, contact=c, key=key))
                outbox.append((key, c, 1, 0, request_message["kind"], message))
            conn.execute("BEGIN IMMEDIATE")
            conn.executemany("INSERT INTO consents VALUES (?, ?, ?, ?, ?)", heads)
            conn.executemany(
                "INSERT INTO events (contact, version, message_id, digest, data) "
                "VALUES (?, ?, ?, ?, ?)",
                events,
            )
            conn.executemany(
                "INSERT INTO outbox (key, contact, version, position, kind, data, "
                "status, open) VALUES (?, ?, ?, ?, ?, ?, 'sent', 0)",
                outbox,
            )
            conn.execute("COMMIT")

        def run(loops: int) -> None:
            execute = conn.execute
            for i, contact in enumerate(contacts.batch[:loops]):
                version, digest, data = execute(
                    "SELECT version, digest, data FROM consents WHERE contact = ?",
                    (contact,),
                ).fetchone()
                head = loads(data)
                head.update(head_changes)
                head["version"] = version + 1
                key = f"{contact}:{version + 1}:0"
                message = dict(confirmation, contact=contact, key=key)
                event = dict(yes_event, version=version + 1, prev=digest)
                event["message_id"] = f"SM{i}"
                event["sent"] = [message]
                execute("BEGIN IMMEDIATE")
                cursor = execute(
                    "UPDATE consents SET version = ?, state = ?, digest = ?, "
                    "data = ? WHERE contact = ? AND version = ? AND digest = ?",
                    (
                        version + 1,
                        new_state,
                        new_digest,
                        dumps(head),
                        contact,
                        version,
                        digest,
                    ),
                )
                if cursor.rowcount != 1:
                    raise AssertionError("raw compare-and-set failed")
                execute(
                    "INSERT INTO events (contact, version, message_id, digest, data) "
                    "VALUES (?, ?, ?, ?, ?)",
                    (contact, version + 1, f"SM{i}", new_digest, dumps(event)),
                )
                if not protocol:
                    execute("COMMIT")
                    continue
                held = execute(
                    "SELECT 1 FROM outbox WHERE contact = ? AND open = 1 AND "
                    "(status = 'pending' OR "
                    "(status = 'cancelled' AND leased_until > ?)) LIMIT 1",
                    (contact, now),
                ).fetchone()
                cursor = execute(
                    "INSERT OR IGNORE INTO outbox "
                    "(key, contact, version, position, kind, data, leased_until, "
                    "claimed_version) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                    (
                        key,
                        contact,
                        version + 1,
                        0,
                        message["kind"],
                        dumps(message),
                        None if held else now + lease,
                        None if held else version + 1,
                    ),
                )
                execute("COMMIT")  # commit 1: head, event, message claimed
                if held or cursor.rowcount != 1:
                    raise AssertionError("raw same protocol: the queue was held")
                send(message)
                tally[1] += 1
                # Commit 2, as the store makes it: the mark and the look for
                # a message queued meanwhile in one transaction, at
                # synchronous=NORMAL (no fsync of its own).
                execute("PRAGMA synchronous = NORMAL")
                execute("BEGIN IMMEDIATE")
                execute(
                    "UPDATE outbox SET status = 'sent', leased_until = NULL, "
                    "open = 0 WHERE key = ? AND status != 'sent'",
                    (key,),
                )
                execute(  # anything queued meanwhile is this sender's to deliver
                    "SELECT key, data FROM outbox WHERE contact = ? AND open = 1 "
                    "AND status = 'pending' ORDER BY seq LIMIT 1",
                    (contact,),
                ).fetchone()
                execute("COMMIT")
                execute(f"PRAGMA synchronous = {synchronous}")
            tally[0] += loops

        return Workload(name, run, setup=setup)

    class Before(sqlite_cls):  # type: ignore[misc,valid-type]
        """The 0.2.0 protocol: the sent mark fsynced, the claim a second
        statement (the reference of the throughput target)."""

        _one_fsync = False

    memory = memory_cls()
    area.groups.append(
        Group(
            "service.memory",
            [receive_workload("receive[MemoryStore]", memory, memory)],
        )
    )
    for sync in ("FULL", "NORMAL"):
        path = os.path.join(tmp, f"store-{sync}.db")
        store = sqlite_cls(path, synchronous=sync)
        area.cleanup.callback(store.close)
        # Seeding goes through the public API too, with cheap durability.
        seed_store = sqlite_cls(path, synchronous="NORMAL")
        area.cleanup.callback(seed_store.close)
        case = f"receive[SQLiteStore {sync}]"
        raw = f"raw sqlite3 read+CAS[{sync}]"
        same = f"raw sqlite3 same protocol[{sync}]"
        workloads = [
            receive_workload(case, store, seed_store),
            raw_workload(
                raw, os.path.join(tmp, f"raw-{sync}.db"), sync, protocol=False
            ),
            raw_workload(
                same, os.path.join(tmp, f"same-{sync}.db"), sync, protocol=True
            ),
        ]
        compare = [(case, raw), (case, same), (same, raw)]
        if sync == "FULL":
            # The same receive with 0.2.0's commits (two fsyncs), in its
            # own file: the reference of "1.4x today's throughput".
            before_path = os.path.join(tmp, "before-FULL.db")
            before = Before(before_path, synchronous=sync)
            area.cleanup.callback(before.close)
            before_seed = sqlite_cls(before_path, synchronous="NORMAL")
            area.cleanup.callback(before_seed.close)
            workloads.append(receive_workload(BEFORE_CASE, before, before_seed))
            compare.append((case, BEFORE_CASE))
        area.groups.append(
            Group(f"service.sqlite.{sync.lower()}", workloads, compare=compare)
        )
    area.metrics["service"] = {
        "head_json_bytes": len(head_json.encode()),
        "event_json_bytes": len(_encode_json(yes_event).encode()),
        "reply": "Yes",
        "from_state": template.state.value,
        "to_state": yes_decision.consent.state.value,
        "messages_per_receive_expected": len(yes_decision.outgoing),
        "commits": {
            "library": 2,
            "raw read+CAS": 1,
            "raw same protocol": 2,
            "0.2.0 protocol": 2,
        },
        # The second commit (the sent mark) skips its fsync at FULL.
        "fsyncs_at_full": {
            "library": 1,
            "raw read+CAS": 1,
            "raw same protocol": 1,
            "0.2.0 protocol": 2,
        },
        # receive by 4 worker processes on one file (bench/scaling.py's
        # point): throughput and latency percentiles.
        "processes": _processes_point(mode, tmp),
        # Filled in while the groups run: [receives, messages sent].
        "delivered": delivered,
    }
    return area


# ---------------------------------------------------------------------------
# 4. Audience gate


def gate_area(mode: Mode) -> Area:
    try:
        from optin_core import Consent, ConsentState, Policy, may_text, sendable
    except ImportError as e:
        raise Skip(f"optin_core is not importable: {e}") from None
    n = max(1000, int(1_000_000 * mode.scale))
    rng = random.Random(5)
    weights = {
        ConsentState.OPTED_IN: 55,
        ConsentState.PENDING: 15,
        ConsentState.NEW: 10,
        ConsentState.STOPPED: 15,
        ConsentState.DISCLOSED: 5,
    }
    states = rng.choices(list(weights), weights=list(weights.values()), k=n)
    gc.disable()  # a million new objects: no collections while building them
    records = [Consent(contact=f"+1555{i:07d}", state=s) for i, s in enumerate(states)]
    gc.enable()
    del states
    policy = Policy(org_name="Hearsay")
    opted_in = ConsentState.OPTED_IN
    count = sum(1 for _ in sendable(records, policy))

    def gate(loops: int) -> None:
        for _ in range(loops):
            list(sendable(records, policy))

    def per_record(loops: int) -> None:
        for _ in range(loops):
            [c for c in records if may_text(c, policy)]

    def baseline(loops: int) -> None:
        for _ in range(loops):
            [c for c in records if c.state is opted_in]

    gate_w = Workload("list(sendable(records))", gate, ops=n, loops=1)
    may_w = Workload("[c for c in records if may_text(c)]", per_record, ops=n, loops=1)
    base_w = Workload("[c for c in records if c.state is OPTED_IN]", baseline, ops=n)
    base_w.loops = 1
    area = Area(
        [
            Group(
                "gate",
                [gate_w, may_w, base_w],
                compare=[(gate_w.name, base_w.name), (may_w.name, base_w.name)],
            )
        ],
        metrics={
            "gate": {
                "records": n,
                "sendable": count,
                "distinct_objects": True,
                "states": {s.value: w for s, w in weights.items()},
            }
        },
    )
    area.cleanup.callback(records.clear)
    return area


# ---------------------------------------------------------------------------
# 5. Record cost


def typical_record() -> tuple[Any, tuple[Any, ...]]:
    """An opted-in contact: its head and its log of six events (request, an
    unclear reply and its reminder, yes, and three texts from the agent)."""
    from optin_core import Consent, Inbound, Policy, RequestOptIn, SendText, decide

    policy = Policy(org_name="Hearsay")
    consent = Consent.new(CONTACT)
    steps: list[Any] = [
        RequestOptIn(at=T0, greeting="Hi, it's Martha from Hearsay.", by="martha"),
        Inbound(text="who is this?", at=_at(3), message_id="SM0001"),
        Inbound(text="Yes", at=_at(5), message_id="SM0002"),
        SendText(body="Thanks! Your renewal quote is ready.", at=_at(6), by="martha"),
        SendText(
            body="Can we talk on Thursday at 3pm about the new coverage options?",
            at=_at(60),
            by="martha",
        ),
        SendText(body="Great, talk then.", at=_at(90), by="martha"),
    ]
    events: list[Any] = []
    for step in steps:
        decision = decide(consent, step, policy)
        consent = decision.consent
        events.extend(decision.events)
    return consent, tuple(events)


def _memory_per_record(template_json: str, n: int) -> dict[str, Any]:
    """tracemalloc bytes per head in a ``{contact: Consent}`` store of ``n``.

    Each head is read back from its own JSON text, so heads share no
    strings, datetimes or sub-records with each other; what they do share is
    what CPython shares anyway: enum members, ``None``/``True``/small ints,
    one-character strings and the ``timezone.utc`` singleton.
    """
    from optin_core import Consent

    store: dict[str, Any] = {}
    gc.collect()
    gc.disable()  # no collections on the clock of a fixture of 100,000 records
    was_tracing = tracemalloc.is_tracing()
    if not was_tracing:
        tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        for i in range(n):
            contact = f"+1666{i:07d}"
            store[contact] = Consent.from_dict(
                json.loads(template_json.replace(CONTACT, contact))
            )
        after = tracemalloc.get_traced_memory()[0]
        keys_bytes = sum(map(sys.getsizeof, store))
        store_overhead = sys.getsizeof(store)
    finally:
        if not was_tracing:
            tracemalloc.stop()
        gc.enable()
    total = after - before
    return {
        "records": n,
        "bytes_total": total,
        "bytes_per_record": round(total / n),
        "bytes_per_record_excluding_store_dict": round(
            (total - store_overhead - keys_bytes) / n
        ),
        "store_dict_bytes_per_record": round((store_overhead + keys_bytes) / n),
        "shared": (
            "enum members, None/bools/small ints, 1-char strings, timezone.utc; "
            "no strings, datetimes or sub-records are shared between heads"
        ),
    }


def record_area(mode: Mode) -> Area:
    """The head's and an event's JSON round trip (what a store row costs to
    write and read back), against ``loads(dumps(dict))`` of the same dicts.

    The head is bounded; the log's events are written once each and read
    only for evidence, so a typical operation pays one head round trip and
    one event ``to_dict`` + dumps.
    """
    try:
        from optin_core import AuditEvent, Consent, ConsentLog
    except ImportError as e:
        raise Skip(f"optin_core is not importable: {e}") from None
    head, events = typical_record()
    head_dict = head.to_dict()
    head_json = _encode_json(head_dict)
    event_dicts = [e.to_dict() for e in events]
    event_jsons = [_encode_json(d) for d in event_dicts]
    loads, dumps = json.loads, _encode_json
    head_from, event_from = Consent.from_dict, AuditEvent.from_dict
    n_events = len(events)

    def head_roundtrip(loops: int) -> None:
        for _ in range(loops):
            head_from(loads(dumps(head.to_dict())))

    def head_out(loops: int) -> None:
        for _ in range(loops):
            dumps(head.to_dict())

    def head_in(loops: int) -> None:
        for _ in range(loops):
            head_from(loads(head_json))

    def head_json_only(loops: int) -> None:
        for _ in range(loops):
            loads(dumps(head_dict))

    def event_roundtrip(loops: int) -> None:
        for _ in range(loops):
            for event in events:
                event_from(loads(dumps(event.to_dict())))

    def event_out(loops: int) -> None:
        for _ in range(loops):
            for event in events:
                dumps(event.to_dict())

    def event_in(loops: int) -> None:
        for _ in range(loops):
            for text in event_jsons:
                event_from(loads(text))

    def event_json_only(loops: int) -> None:
        for _ in range(loops):
            for d in event_dicts:
                loads(dumps(d))

    if head_from(loads(dumps(head.to_dict()))) != head:
        raise AssertionError("the typical head does not round-trip")
    if [event_from(loads(t)) for t in event_jsons] != list(events):
        raise AssertionError("the typical events do not round-trip")
    log_json = _encode_json(ConsentLog(head=head, events=events).to_dict())
    event_bytes = [len(t.encode()) for t in event_jsons]
    # tracemalloc slows from_dict about fivefold: 100,000 heads take a
    # minute, so quick mode measures 5,000 (bytes per head do not depend on
    # the count, except the store dict's own share).
    n = {"full": 100_000, "quick": 5_000}.get(mode.name, 200)
    memory = _memory_per_record(head_json, n)
    head_case = "Consent.from_dict(loads(dumps(to_dict())))"
    head_base = "loads(dumps(dict)) [head, json only]"
    event_case = "AuditEvent.from_dict(loads(dumps(to_dict())))"
    event_base = "loads(dumps(dict)) [event, json only]"
    return Area(
        [
            Group(
                "record.head",
                [
                    Workload(head_case, head_roundtrip),
                    Workload("dumps(Consent.to_dict())", head_out),
                    Workload("Consent.from_dict(loads(json))", head_in),
                    Workload(head_base, head_json_only),
                ],
                compare=[(head_case, head_base)],
            ),
            Group(
                "record.event",
                [
                    Workload(event_case, event_roundtrip, ops=n_events),
                    Workload("dumps(AuditEvent.to_dict())", event_out, ops=n_events),
                    Workload(
                        "AuditEvent.from_dict(loads(json))", event_in, ops=n_events
                    ),
                    Workload(event_base, event_json_only, ops=n_events),
                ],
                compare=[(event_case, event_base)],
            ),
        ],
        metrics={
            "record": {
                "encoding": "compact ASCII JSON, as SQLiteStore writes rows",
                "head_json_bytes": len(head_json.encode()),
                "head_json_bytes_default": len(json.dumps(head_dict).encode()),
                "events": n_events,
                "triggers": [e.trigger.value for e in events],
                "event_json_bytes": event_bytes,
                "bytes_per_event": round(sum(event_bytes) / n_events),
                "log_export_json_bytes": len(log_json.encode()),
                "memory": memory,
            }
        },
    )


# ---------------------------------------------------------------------------
# 6. History: cost per operation against the length of the contact's log

#: Log lengths the history area measures: events logged before the timed op.
HISTORY_LENGTHS = (10, 1_000, 10_000)
#: The stores, as named in the cases.
HISTORY_STORES = ("MemoryStore", "SQLiteStore NORMAL")
#: The timed operations: each appends one event and delivers one message.
HISTORY_OPS = ("send_text", "receive")
_HISTORY_TEXT = "Your renewal documents are ready."


def history_case(op: str, store: str, length: int) -> str:
    """The name of the ``history`` area's case for ``op`` on ``store`` at a
    log of ``length`` events."""
    return f"{op}[{store}, {length:,} events]"


def history_policy() -> Any:
    """The history area's policy: HELP is answered however often it comes
    (the loop guard would otherwise pause automatic replies)."""
    from optin_core import Policy

    return Policy(org_name="Hearsay", loop_max_auto_replies=10**6)


def build_log(contact: str, length: int, policy: Any) -> tuple[Any, list[Any]]:
    """A head and its log of exactly ``length`` (>= 2) events, by pure
    ``decide``: the opt-in request, "Yes", then the agent's texts and the
    contact's HELP replies alternating, a minute apart. Every event sends
    one message."""
    from optin_core import Consent, Inbound, RequestOptIn, SendText, decide

    consent = Consent.new(contact)
    events: list[Any] = []
    step = 0
    while len(events) < length:
        at = T0 + timedelta(minutes=step)
        if step == 0:
            what: Any = RequestOptIn(at=at)
        elif step == 1:
            what = Inbound(text="Yes", at=at, message_id="SM-yes")
        elif step % 2:
            what = SendText(body=_HISTORY_TEXT, at=at, by="martha")
        else:
            what = Inbound(text="help", at=at, message_id=f"SM-{step}")
        decision = decide(consent, what, policy)
        consent = decision.consent
        events.extend(decision.events)
        step += 1
    if len(events) != length:
        raise AssertionError(f"built {len(events)} events, not {length}")
    return consent, events


def seed_log(store: Any, contact: str, length: int, policy: Any) -> Any:
    """Write a contact with a log of ``length`` events into ``store`` in one
    ``put``, its messages then marked sent (the outbox holds none pending);
    the head."""
    head, events = build_log(contact, length, policy)
    store.put(head, events, expected_version=0)
    for message in store.pending(contact=contact):
        store.mark_sent(message.key)
    return head


class _LogPool:
    """Contacts whose log is ``length`` events long, for one store's timed
    operations.

    Each contact serves ``uses`` operations (its log is between ``length``
    and ``length + uses - 1`` events when an operation meets it), then a new
    one is built, untimed. ``take(k)`` hands out the next ``k`` operations:
    ``(contact, at, message_id)``, ``at`` a minute after the contact's last
    event.
    """

    def __init__(
        self, store: Any, policy: Any, length: int, prefix: str, uses: int
    ) -> None:
        self.store = store
        self.policy = policy
        self.length = length
        self.prefix = prefix
        self.uses = uses
        self.built = 0
        self.ops = 0
        self._current: list[Any] | None = None  # [contact, last at, uses left]

    def take(self, k: int) -> list[tuple[str, datetime, str]]:
        out = []
        for _ in range(k):
            current = self._current
            if current is None or current[2] == 0:
                contact = f"{self.prefix}{self.built:06d}"
                self.built += 1
                head = seed_log(self.store, contact, self.length, self.policy)
                current = self._current = [contact, head.last_at, self.uses]
            current[1] += timedelta(minutes=1)
            current[2] -= 1
            self.ops += 1
            out.append((current[0], current[1], f"SMH{self.ops}"))
        return out


#: Operations per SQLite sample: at ~14 WAL frames per operation, a sample
#: stays well under the 1,000-frame autocheckpoint (see :class:`_Wal`).
_SQLITE_LOOPS = 50


class _Wal:
    """The history SQLite store's write-ahead log, reset before each sample.

    A WAL checkpoint (fsync the WAL, copy its pages, fsync the database;
    then an fsync of the WAL header on the next write) costs milliseconds
    and fires on whichever commit crosses 1,000 frames: a sample of ~50
    operations holds zero or one of them by chance, which moved the medians
    by 2x between runs. So before each sample, untimed, the WAL is
    checkpointed (TRUNCATE) and one small contact written (it takes the
    header sync); a sample of :data:`_SQLITE_LOOPS` operations then never
    checkpoints, at any length. What a checkpoint costs grows with the pages
    written, which :meth:`frames` counts: frames per operation are reported
    per case (``metrics.history.wal_frames_per_op``).
    """

    def __init__(self, path: str, store: Any, policy: Any) -> None:
        import sqlite3

        self.conn = sqlite3.connect(path, isolation_level=None)
        page_size = self.conn.execute("PRAGMA page_size").fetchone()[0]
        self.frame = page_size + 24  # each frame: a page and its header
        self.path = path + "-wal"
        self.store = store
        self.policy = policy
        self.resets = 0
        self.start = 0

    def _size(self) -> int:
        return os.path.getsize(self.path) if os.path.exists(self.path) else 0

    def reset(self) -> None:
        self.conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        self.resets += 1
        seed_log(self.store, f"+130{self.resets:08d}", 2, self.policy)
        self.start = self._size()

    def frames(self) -> tuple[int, int]:
        """Frames written since the last :meth:`reset`, and in all since the
        checkpoint (the autocheckpoint fires at 1,000)."""
        size = self._size()
        return (size - self.start) // self.frame, size // self.frame

    def close(self) -> None:
        self.conn.close()


def _sqlite_log_size(
    sqlite_cls: Any, service_cls: Any, policy: Any, path: str, length: int
) -> dict[str, Any]:
    """Stored size of one contact with a log of ``length`` events, alone in a
    fresh database (synchronous NORMAL), its messages all sent."""
    import sqlite3

    contact = "+15550009999"
    wal = path + "-wal"
    store = sqlite_cls(path, synchronous="NORMAL")
    try:
        seed_log(store, contact, length, policy)
        before = os.path.getsize(path) + (
            os.path.getsize(wal) if os.path.exists(wal) else 0
        )
        service = service_cls(policy, store, lambda message: None)
        t = time.perf_counter()
        log = service.history(contact)
        history_ms = (time.perf_counter() - t) * 1e3
        if len(log.events) != length:
            raise AssertionError("history() did not return the whole log")
    finally:
        store.close()
    conn = sqlite3.connect(path)
    try:
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        (head_bytes,) = conn.execute(
            "SELECT length(CAST(data AS BLOB)) FROM consents WHERE contact = ?",
            (contact,),
        ).fetchone()
        events, data_avg, row_avg = conn.execute(
            "SELECT count(*), avg(length(CAST(data AS BLOB))), "
            "avg(length(CAST(data AS BLOB)) + length(contact) + length(digest) "
            "+ coalesce(length(message_id), 0)) FROM events WHERE contact = ?",
            (contact,),
        ).fetchone()
        messages, outbox_avg = conn.execute(
            "SELECT count(*), avg(length(CAST(data AS BLOB))) FROM outbox "
            "WHERE contact = ?",
            (contact,),
        ).fetchone()
        page_size = conn.execute("PRAGMA page_size").fetchone()[0]
        try:
            tables = {
                name: pages * page_size
                for name, pages in conn.execute(
                    "SELECT name, count(*) FROM dbstat GROUP BY name"
                )
            }
        except sqlite3.OperationalError:  # SQLite built without dbstat
            tables = {}
    finally:
        conn.close()
    size = os.path.getsize(path)
    return {
        "events": events,
        "head_row_bytes": head_bytes,
        "event_row_data_bytes_avg": round(data_avg),
        "event_row_bytes_avg_with_key_columns": round(row_avg),
        "outbox_messages": messages,
        "outbox_row_data_bytes_avg": round(outbox_avg),
        "db_file_bytes": size,
        "db_file_bytes_per_event": round(size / length),
        "db_plus_wal_bytes_before_checkpoint": before,
        "bytes_by_table_and_index": tables,
        "history_read_ms": round(history_ms, 1),
        "note": (
            "one contact alone in a fresh file, written by one put and its "
            "messages marked sent, then checkpointed (TRUNCATE); the file "
            "includes the outbox rows and the indexes"
        ),
    }


def _memory_log_size(
    memory_cls: Any, service_cls: Any, policy: Any, length: int
) -> dict[str, Any]:
    """tracemalloc bytes per logged event in a MemoryStore (events, their
    messages' outbox entries, the id set), and the history read time."""
    store = memory_cls()
    contact = "+15550009998"
    gc.collect()
    was_tracing = tracemalloc.is_tracing()
    if not was_tracing:
        tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        seed_log(store, contact, length, policy)
        gc.collect()
        after = tracemalloc.get_traced_memory()[0]
    finally:
        if not was_tracing:
            tracemalloc.stop()
    service = service_cls(policy, store, lambda message: None)
    t = time.perf_counter()
    log = service.history(contact)
    history_ms = (time.perf_counter() - t) * 1e3
    return {
        "events": len(log.events),
        "bytes_per_event": round((after - before) / length),
        "history_read_ms": round(history_ms, 1),
        "note": (
            "tracemalloc, the store's share only (events, outbox entries, "
            "message-id set, head); decide's events share template strings"
        ),
    }


def history_area(mode: Mode) -> Area:
    """``send_text`` and ``receive(contact, "help")`` on a contact whose log
    holds 10, 1,000 or 10,000 events, on MemoryStore and SQLiteStore
    (WAL, ``synchronous=NORMAL``, temp file).

    Each timed operation appends one event and delivers one message (HELP is
    answered every time: ``loop_max_auto_replies=10**6``). The logs are built
    untimed by pure ``decide`` and written with one ``put`` per contact, their
    messages then marked sent; each contact serves ``length // 10``
    operations (one at 10 events), so an operation meets a log within 10 %
    of its nominal length. The lengths of one store and operation are one
    group, sampled interleaved in the same store and file; the ratios are
    ``cost(1,000) / cost(10)`` and ``cost(10,000) / cost(10)``. The SQLite
    store writes every contact and then operates on it through the same
    store object, so every operation finds its head in the store's
    per-process cache, at every length alike. Its samples are
    :data:`_SQLITE_LOOPS` operations each, after an untimed WAL reset, so no
    checkpoint lands in them (:class:`_Wal`); the WAL frames each operation
    writes, which is what checkpoints cost in proportion to, are counted
    instead. The logs seeded for a sample are moved out of the garbage
    collector's reach (``gc.freeze()``) before it, like every group's
    fixtures.
    """
    service_cls, memory_cls, sqlite_cls = _service_modules()
    policy = history_policy()
    area = Area([])
    tmp = area.cleanup.enter_context(
        tempfile.TemporaryDirectory(prefix="optin-bench-history-")
    )
    sqlite_path = os.path.join(tmp, "history.db")
    sqlite_store = sqlite_cls(sqlite_path, synchronous="NORMAL")
    area.cleanup.callback(sqlite_store.close)
    sqlite_store.get(CONTACT)  # creates the file and its schema
    wal = _Wal(sqlite_path, sqlite_store, policy)
    area.cleanup.callback(wal.close)
    # {case: [(WAL frames of the sample, in the WAL, loops), per sample]}
    frames: dict[str, list[tuple[int, int, int]]] = {}
    stores = {"MemoryStore": memory_cls(), "SQLiteStore NORMAL": sqlite_store}
    # {case: [operations, messages sent]}
    delivered: dict[str, list[int]] = {}
    uses = {n: max(1, n // 10) for n in HISTORY_LENGTHS}
    pools = {
        (store_name, n): _LogPool(store, policy, n, f"+1{i}{j}", uses[n])
        for i, (store_name, store) in enumerate(stores.items(), start=2)
        for j, n in enumerate(HISTORY_LENGTHS)
    }

    def workload(op: str, store_name: str, n: int) -> Workload:
        name = history_case(op, store_name, n)
        tally = delivered.setdefault(name, [0, 0])

        def counting_send(message: object) -> None:
            tally[1] += 1

        service = service_cls(policy, stores[store_name], counting_send)
        pool = pools[store_name, n]
        batch: list[tuple[str, datetime, str]] = []
        sqlite = stores[store_name] is sqlite_store
        per_op: list[tuple[int, int, int]] = frames.setdefault(name, [])

        def setup(loops: int) -> None:
            batch[:] = pool.take(loops)
            if sqlite:
                wal.reset()
            # The seeded logs are fixtures: out of the collector's reach, as
            # the harness does for every group's fixtures, so no full
            # collection over them lands on a timed sample.
            gc.freeze()

        def run_send_text(loops: int) -> None:
            send_text = service.send_text
            for contact, at, _ in batch[:loops]:
                send_text(contact, _HISTORY_TEXT, by="martha", at=at)
            tally[0] += loops
            if sqlite:
                per_op.append((*wal.frames(), loops))

        def run_receive(loops: int) -> None:
            receive = service.receive
            for contact, at, message_id in batch[:loops]:
                receive(contact, "help", message_id=message_id, at=at)
            tally[0] += loops
            if sqlite:
                per_op.append((*wal.frames(), loops))

        run = run_send_text if op == "send_text" else run_receive
        return Workload(name, run, setup=setup, loops=_SQLITE_LOOPS if sqlite else None)

    longer = HISTORY_LENGTHS[1:]
    for store_name in HISTORY_STORES:
        tag = store_name.split()[0].removesuffix("Store").lower()
        for op in HISTORY_OPS:
            names = [history_case(op, store_name, n) for n in HISTORY_LENGTHS]
            area.groups.append(
                Group(
                    f"history.{tag}.{op}",
                    [workload(op, store_name, n) for n in HISTORY_LENGTHS],
                    compare=[
                        (history_case(op, store_name, n), names[0]) for n in longer
                    ],
                )
            )
    size_length = HISTORY_LENGTHS[-1]
    area.metrics["history"] = {
        "lengths": list(HISTORY_LENGTHS),
        "ops": {
            "send_text": f"send_text(contact, {_HISTORY_TEXT!r}): a TEXT event, "
            "one message",
            "receive": "receive(contact, 'help'): a HELP event, one message",
        },
        "stores": {
            "MemoryStore": "in process",
            "SQLiteStore NORMAL": "WAL, synchronous=NORMAL, temp file, "
            "head cache warm at every length; WAL checkpointed (TRUNCATE) "
            f"before each sample, untimed; {_SQLITE_LOOPS} operations per "
            "sample, so no checkpoint is timed",
        },
        "policy": "Policy(org_name='Hearsay', loop_max_auto_replies=10**6)",
        "ops_per_contact": {str(n): uses[n] for n in HISTORY_LENGTHS},
        # The head is bounded, but its windows (the last 32 automatic
        # replies' times, the last 32 inbound ids) fill up over the first
        # few dozen events: a 10-event head is smaller than a long one.
        "head_json_bytes_by_length": {
            str(n): len(_encode_json(build_log(CONTACT, n, policy)[0].to_dict()))
            for n in HISTORY_LENGTHS
        },
        "messages_per_op_expected": 1,
        "sizes": {
            "SQLiteStore NORMAL": _sqlite_log_size(
                sqlite_cls,
                service_cls,
                policy,
                os.path.join(tmp, "size.db"),
                size_length,
            ),
            "MemoryStore": _memory_log_size(
                memory_cls, service_cls, policy, 2_000 if mode.scale >= 1 else 200
            ),
        },
        # Filled in while the groups run: [operations, messages sent].
        "delivered": delivered,
        # Filled in while the groups run, per sample, then summarized by
        # run.py: the median frames per operation (what a checkpoint has to
        # copy), and the most the WAL held at the end of a sample (under
        # 1,000: no checkpoint was timed).
        "wal_frames_per_op": frames,
        "wal_frames_max": {},
        # Filled in by run.py from the medians: see its history_summary().
        "ratios": {},
    }
    return area


AREAS: dict[str, Callable[[Mode], Area]] = {
    "parse": parse_area,
    "decide": decide_area,
    "service": service_area,
    "gate": gate_area,
    "record": record_area,
    "history": history_area,
}


def iter_areas(names: list[str], mode: Mode) -> Iterator[tuple[str, Area | Skip]]:
    for name in names:
        try:
            yield name, AREAS[name](mode)
        except Skip as e:
            yield name, e
