"""The benchmark cases, each with the baselines it is measured against.

Every builder returns the :class:`~harness.Group` s of one area (parse,
decide, service, audience gate, record cost); fixtures are built outside the
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
import tracemalloc
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
    "T0",
    "Area",
    "Skip",
    "fresh",
    "iter_areas",
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
    table = baseline_keywords()
    groups = []
    for suffix, corpus in (
        ("mixed", REPLIES),
        ("short", short_replies()),
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
        groups.append(
            Group(
                f"decide.{label}",
                [
                    Workload(case, run_decide),
                    Workload(built, run_decide_built),
                    Workload(naive, run_naive),
                    Workload(minimal, run_minimal),
                ],
                compare=[(case, minimal), (built, minimal), (naive, case)],
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
        from optin_core._service import ConsentService
        from optin_core._stores import MemoryStore, SQLiteStore
    except ImportError as e:
        raise Skip(
            "the service shell is not importable yet "
            f"(optin_core._service / optin_core._stores: {e})"
        ) from None
    return ConsentService, MemoryStore, SQLiteStore


#: The raw baselines' tables: the same shape as SQLiteStore's (a JSON row per
#: contact; an outbox row per message), written here so that the baseline
#: does not depend on the store it is compared with.
_RAW_SCHEMA = """
CREATE TABLE IF NOT EXISTS consents (
    contact TEXT PRIMARY KEY, version INTEGER NOT NULL,
    state TEXT NOT NULL, data TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS outbox (
    seq INTEGER PRIMARY KEY AUTOINCREMENT, key TEXT NOT NULL UNIQUE,
    contact TEXT NOT NULL, version INTEGER NOT NULL, position INTEGER NOT NULL,
    kind TEXT NOT NULL, data TEXT NOT NULL,
    status TEXT NOT NULL DEFAULT 'pending', leased_until REAL,
    claimed_version INTEGER);
CREATE INDEX IF NOT EXISTS outbox_contact ON outbox (contact, seq);
"""


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


def service_area(mode: Mode) -> Area:
    """``receive(contact, "Yes")`` from PENDING, against raw sqlite3.

    Fairness: every timed ``receive`` meets a contact seeded (untimed, before
    the sample, through a second service on the same file) with the record
    of a just-sent opt-in request, whose message is already marked sent. So
    each operation is exactly: load a ~800-byte record, decide PENDING ->
    OPTED_IN, compare-and-set it with its confirmation, deliver that one
    message; no record grows from sample to sample. The raw baselines seed
    the same JSON row and do, by hand:

    * ``read+CAS`` (the issue's baseline): SELECT the row, ``json.loads``,
      append the event dict, ``json.dumps``, ``UPDATE ... WHERE contact = ?
      AND version = ?`` in one transaction;
    * ``same protocol``: the statements and commits SQLiteStore's protocol
      needs too: the CAS and the outbox INSERT in one transaction, then
      SELECT the pending messages, claim (a commit), send, mark sent (a
      commit), SELECT pending again; it isolates the library's own cost from
      the durability the protocol buys (three commits instead of one).

    Both sides use the same journal (WAL) and ``synchronous`` setting.
    """
    service_cls, memory_cls, sqlite_cls = _service_modules()
    from optin_core import Consent, Inbound, Policy, RequestOptIn, decide

    policy = Policy(org_name="Hearsay")
    template = decide(Consent.new(CONTACT), RequestOptIn(at=T0), policy).consent
    template_json = json.dumps(
        template.to_dict(), ensure_ascii=False, separators=(",", ":")
    )
    yes = Inbound(text="Yes", at=_at(5), message_id="SM0001")
    yes_decision = decide(template, yes, policy)
    yes_event = yes_decision.consent.to_dict()["history"][-1]
    confirmation = yes_decision.outgoing[0].to_dict()
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
        loads, dumps = json.loads, json.dumps
        lease = 120.0
        tally = delivered.setdefault(name, [0, 0]) if protocol else [0, 0]
        now = at.timestamp()

        def setup(loops: int) -> None:
            rows = [
                (c, template.version, template.state.value, template_json)
                for c in contacts.next_batch(loops)
            ]
            conn.execute("BEGIN IMMEDIATE")
            conn.executemany("INSERT INTO consents VALUES (?, ?, ?, ?)", rows)
            conn.execute("COMMIT")

        def run(loops: int) -> None:
            execute = conn.execute
            for contact in contacts.batch[:loops]:
                version, data = execute(
                    "SELECT version, data FROM consents WHERE contact = ?", (contact,)
                ).fetchone()
                record = loads(data)
                record["state"] = "opted_in"
                record["version"] = version + 1
                record["history"].append(yes_event)
                execute("BEGIN IMMEDIATE")
                cursor = execute(
                    "UPDATE consents SET version = ?, state = ?, data = ? "
                    "WHERE contact = ? AND version = ?",
                    (
                        version + 1,
                        "opted_in",
                        dumps(record, ensure_ascii=False, separators=(",", ":")),
                        contact,
                        version,
                    ),
                )
                if cursor.rowcount != 1:
                    raise AssertionError("raw compare-and-set failed")
                if not protocol:
                    execute("COMMIT")
                    continue
                key = f"{contact}:{version + 1}:0"
                message = dict(confirmation, contact=contact, key=key)
                execute(
                    "INSERT OR IGNORE INTO outbox "
                    "(key, contact, version, position, kind, data) "
                    "VALUES (?, ?, ?, ?, ?, ?)",
                    (
                        key,
                        contact,
                        version + 1,
                        0,
                        message["kind"],
                        dumps(message, ensure_ascii=False),
                    ),
                )
                execute("COMMIT")
                for _ in range(2):  # deliver, then find nothing left
                    pending = execute(
                        "SELECT key, data FROM outbox "
                        "WHERE status = 'pending' AND contact = ? ORDER BY seq",
                        (contact,),
                    ).fetchall()
                    for msg_key, msg_data in pending:
                        claimed = execute(
                            "UPDATE outbox SET leased_until = ?, claimed_version = "
                            "(SELECT version FROM consents WHERE contact = ?) "
                            "WHERE key = ? AND status = 'pending' "
                            "AND (leased_until IS NULL OR leased_until <= ?)",
                            (now + lease, contact, msg_key, now),
                        ).rowcount
                        if claimed:
                            send(loads(msg_data))
                            tally[1] += 1
                            execute(
                                "UPDATE outbox SET status = 'sent', "
                                "leased_until = NULL "
                                "WHERE key = ? AND status != 'sent'",
                                (msg_key,),
                            )
            tally[0] += loops

        return Workload(name, run, setup=setup)

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
        area.groups.append(
            Group(
                f"service.sqlite.{sync.lower()}",
                [
                    receive_workload(case, store, seed_store),
                    raw_workload(
                        raw, os.path.join(tmp, f"raw-{sync}.db"), sync, protocol=False
                    ),
                    raw_workload(
                        same, os.path.join(tmp, f"same-{sync}.db"), sync, protocol=True
                    ),
                ],
                compare=[(case, raw), (case, same), (same, raw)],
            )
        )
    area.metrics["service"] = {
        "record_json_bytes": len(template_json.encode()),
        "reply": "Yes",
        "from_state": template.state.value,
        "to_state": yes_decision.consent.state.value,
        "messages_per_receive_expected": len(yes_decision.outgoing),
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


def typical_record() -> Any:
    """An opted-in record: request, an unclear reply and its reminder, yes,
    and three texts from the agent."""
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
    for step in steps:
        consent = decide(consent, step, policy).consent
    return consent


def _memory_per_record(template_json: str, n: int) -> dict[str, Any]:
    """tracemalloc bytes per record in a ``{contact: Consent}`` store of ``n``.

    Each record is read back from its own JSON text, so records share no
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
            "no strings, datetimes or sub-records are shared between records"
        ),
    }


def record_area(mode: Mode) -> Area:
    try:
        from optin_core import Consent
    except ImportError as e:
        raise Skip(f"optin_core is not importable: {e}") from None
    record = typical_record()
    as_dict = record.to_dict()
    compact = json.dumps(as_dict, ensure_ascii=False, separators=(",", ":"))
    pretty = json.dumps(as_dict)
    loads, dumps = json.loads, json.dumps
    from_dict = Consent.from_dict

    def roundtrip(loops: int) -> None:
        for _ in range(loops):
            from_dict(loads(dumps(record.to_dict())))

    def to_json(loops: int) -> None:
        for _ in range(loops):
            dumps(record.to_dict())

    def from_json(loops: int) -> None:
        for _ in range(loops):
            from_dict(loads(compact))

    def json_only(loops: int) -> None:
        for _ in range(loops):
            loads(dumps(as_dict))

    if from_dict(loads(dumps(record.to_dict()))) != record:
        raise AssertionError("the typical record does not round-trip")
    # tracemalloc slows from_dict about fivefold: 100,000 records take two
    # minutes, so quick mode measures 5,000 (bytes per record do not depend
    # on the count, except the store dict's own share).
    n = {"full": 100_000, "quick": 5_000}.get(mode.name, 200)
    memory = _memory_per_record(compact, n)
    return Area(
        [
            Group(
                "record",
                [
                    Workload("from_dict(loads(dumps(to_dict())))", roundtrip),
                    Workload("dumps(to_dict())", to_json),
                    Workload("from_dict(loads(json))", from_json),
                    Workload("loads(dumps(dict)) [json only]", json_only),
                ],
                compare=[
                    (
                        "from_dict(loads(dumps(to_dict())))",
                        "loads(dumps(dict)) [json only]",
                    )
                ],
            )
        ],
        metrics={
            "record": {
                "events": len(record.history),
                "triggers": [e.trigger for e in record.history],
                "json_bytes_compact": len(compact.encode()),
                "json_bytes_default": len(pretty.encode()),
                "memory": memory,
            }
        },
    )


AREAS: dict[str, Callable[[Mode], Area]] = {
    "parse": parse_area,
    "decide": decide_area,
    "service": service_area,
    "gate": gate_area,
    "record": record_area,
}


def iter_areas(names: list[str], mode: Mode) -> Iterator[tuple[str, Area | Skip]]:
    for name in names:
        try:
            yield name, AREAS[name](mode)
        except Skip as e:
            yield name, e
