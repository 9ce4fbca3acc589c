"""Receive throughput and latency with 1, 2, 4 and 8 worker processes, on
PostgreSQL and on SQLite, in the same run.

Usage::

    python bench/scaling.py                    # 5 s per point, a throw-away server
    python bench/scaling.py --quick            # 2 s per point
    python bench/scaling.py --dsn postgresql://app@db/bench   # an existing server
    python bench/scaling.py --stores sqlite    # no PostgreSQL at all
    python bench/scaling.py --json out.json

Each worker is a process with its own store (``PostgresStore`` with a pool of
one connection, or ``SQLiteStore`` on one shared file, ``synchronous=FULL``:
both durable at commit) and its own ``ConsentService`` with a ``send`` that
only counts. It first seeds its contacts (``request_opt_in``, untimed), then
all workers start together and each runs ``receive(contact, "help",
message_id=...)`` for the duration, round-robin over its contacts: load the
head, decide, append one event and compare-and-set the head with its answer
claimed (commit 1), send, mark it sent (commit 2). Workers never share a
contact: the figure is the store's scaling, not write conflicts.
Throughput is all workers' operations over the window; latencies are every
operation's, p50 and p99 over all of them. Each point gets a fresh schema
(PostgreSQL) or file (SQLite); points run interleaved, PostgreSQL then
SQLite at each worker count.

Without ``--dsn`` the PostgreSQL server is started for the run (``initdb``
in a temporary directory, as ``tests/postgres_server.py`` does for the
tests) with PostgreSQL's default, durable settings (``fsync``,
``synchronous_commit`` and ``full_page_writes`` on): the settings in force
are read back from the server and printed. ``--smoke`` runs tiny points (no
PostgreSQL unless ``--dsn`` is given or a server starts): CI runs it.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Sequence
from datetime import timedelta
from pathlib import Path
from typing import Any

if __package__ in (None, ""):  # run as a script: make ``bench`` importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.harness import machine_info

__all__ = ["main", "run"]

WORKER_COUNTS = (1, 2, 4, 8)

#: Server settings of the throw-away benchmark server: PostgreSQL's
#: defaults for everything that decides durability and commit cost.
BENCH_SETTINGS = {"max_connections": "100", "log_min_messages": "warning"}

#: Settings read back from the server and reported.
REPORTED = (
    "server_version",
    "fsync",
    "synchronous_commit",
    "full_page_writes",
    "wal_sync_method",
    "commit_delay",
    "commit_siblings",
    "wal_level",
    "shared_buffers",
    "max_wal_size",
    "checkpoint_timeout",
    "max_connections",
)


def _policy() -> Any:
    from optin_core import Policy

    return Policy(org_name="Acme", loop_max_auto_replies=10**9)


def _open(store: str, target: str) -> Any:
    if store == "postgres":
        from optin_core.stores.postgres import PostgresStore

        return PostgresStore(target, min_size=1, max_size=1)
    from optin_core import SQLiteStore

    return SQLiteStore(target, synchronous="FULL")


def _cpu_busy() -> tuple[int, int]:
    """(busy, total) jiffies of the whole machine, from /proc/stat."""
    try:
        with open("/proc/stat") as f:
            fields = [int(x) for x in f.readline().split()[1:]]
    except OSError:
        return 0, 0
    idle = fields[3] + (fields[4] if len(fields) > 4 else 0)
    return sum(fields) - idle, sum(fields)


def _proc_cpu(pid: int, *, children: bool = False) -> float:
    """CPU seconds of process ``pid`` (with ``children``: and of its children
    it has reaped), from /proc; 0 when unreadable."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    ticks = int(fields[11]) + int(fields[12])  # utime, stime
    if children:
        ticks += int(fields[13]) + int(fields[14])  # cutime, cstime
    return ticks / os.sysconf("SC_CLK_TCK")


def _server_cpu(postmaster: int | None) -> float:
    """CPU seconds the server has used: the postmaster, the backends it has
    reaped, and the live ones."""
    if postmaster is None:
        return 0.0
    total = _proc_cpu(postmaster, children=True)
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as f:
                ppid = int(f.read().rsplit(")", 1)[1].split()[1])
        except (OSError, ValueError, IndexError):
            continue
        if ppid == postmaster:
            total += _proc_cpu(int(entry))
    return total


def _worker(  # noqa: PLR0917 (a multiprocessing target)
    store_kind: str,
    target: str,
    worker: int,
    contacts: int,
    duration: float,
    start: Any,
    out: Any,
) -> None:
    from optin_core import ConsentService

    sent = [0]

    def send(_message: Any) -> None:
        sent[0] += 1

    try:
        store = _open(store_kind, target)
        service = ConsentService(_policy(), store, send, lease=timedelta(minutes=2))
        names = [f"+1555{worker:02d}{i:05d}" for i in range(contacts)]
        for name in names:
            service.request_opt_in(name)
    except BaseException:
        start.abort()  # the parent and the other workers stop waiting
        raise
    sent[0] = 0
    latencies: list[int] = []
    start.wait(timeout=300)
    cpu0 = time.process_time()
    deadline = time.perf_counter() + duration
    n = 0
    clock = time.perf_counter_ns
    while True:
        t0 = clock()
        if t0 / 1e9 >= deadline:
            break
        service.receive(names[n % contacts], "help", message_id=f"w{worker}-{n}")
        latencies.append(clock() - t0)
        n += 1
    cpu = time.process_time() - cpu0
    close = getattr(store, "close", None)
    if close is not None:
        close()
    out.put((worker, n, sent[0], cpu, latencies))


def _point(  # noqa: PLR0917
    store_kind: str,
    target: str,
    workers: int,
    duration: float,
    contacts: int,
    postmaster: int | None = None,
) -> dict[str, Any]:
    ctx = multiprocessing.get_context("spawn")
    start = ctx.Barrier(workers + 1)
    out = ctx.Queue()
    procs = [
        ctx.Process(
            target=_worker,
            args=(store_kind, target, w, contacts, duration, start, out),
        )
        for w in range(workers)
    ]
    for p in procs:
        p.start()
    start.wait(timeout=300)
    busy0, total0 = _cpu_busy()
    server0 = _server_cpu(postmaster)
    results = [out.get(timeout=duration + 300) for _ in procs]
    busy1, total1 = _cpu_busy()
    for p in procs:
        p.join(timeout=60)
    time.sleep(0.2)  # the backends exit and are reaped
    server = _server_cpu(postmaster) - server0
    ops = sum(r[1] for r in results)
    delivered = sum(r[2] for r in results)
    latencies = sorted(ns for r in results for ns in r[4])
    cpu = sum(r[3] for r in results)

    def pct(q: float) -> float:
        if not latencies:
            return 0.0
        return latencies[min(len(latencies) - 1, int(q * len(latencies)))] / 1e6

    return {
        "store": store_kind,
        "workers": workers,
        "duration_s": duration,
        "operations": ops,
        "delivered": delivered,
        "receives_per_s": round(ops / duration, 1),
        "p50_ms": round(pct(0.50), 3),
        "p99_ms": round(pct(0.99), 3),
        "max_ms": round(latencies[-1] / 1e6, 3) if latencies else 0.0,
        "mean_ms": round(statistics.fmean(latencies) / 1e6, 3) if latencies else 0,
        "client_cpu_per_op_us": round(cpu / ops * 1e6, 1) if ops else None,
        "server_cpu_per_op_us": round(server / ops * 1e6, 1)
        if ops and postmaster is not None
        else None,
        "machine_cpu_busy": round((busy1 - busy0) / (total1 - total0), 3)
        if total1 > total0
        else None,
    }


def _pg_settings(dsn: str) -> dict[str, str]:
    import psycopg

    with psycopg.connect(dsn, autocommit=True) as conn:
        rows = conn.execute(
            "SELECT name, setting, unit FROM pg_settings WHERE name = ANY(%s)",
            (list(REPORTED),),
        ).fetchall()
    return {
        name: f"{setting}{'' if not unit else ' ' + unit}"
        for name, setting, unit in sorted(rows, key=lambda r: REPORTED.index(r[0]))
    }


def _fresh_schema(admin: str, n: int) -> str:
    import psycopg
    from psycopg.conninfo import make_conninfo

    name = f"bench_{os.getpid()}_{n}"
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f"DROP SCHEMA IF EXISTS {name} CASCADE")
        conn.execute(f"CREATE SCHEMA {name}")
    dsn = make_conninfo(admin, options=f"-c search_path={name}")
    from optin_core.stores.postgres import PostgresStore

    with PostgresStore(dsn) as store:
        store.migrate()
    return dsn


def run(
    *,
    stores: Sequence[str] = ("postgres", "sqlite"),
    workers: Sequence[int] = WORKER_COUNTS,
    duration: float = 5.0,
    contacts: int = 200,
    dsn: str | None = None,
    log: Any = sys.stderr,
) -> dict[str, Any]:
    """Measure every point; the JSON-able report."""
    machine = machine_info()
    report: dict[str, Any] = {
        "machine": machine,
        "duration_s": duration,
        "contacts_per_worker": contacts,
        "operation": 'receive(contact, "help"): one event appended, one '
        "message delivered, two commits",
        "points": [],
        "postgres": None,
        "sqlite": {"synchronous": "FULL", "journal_mode": "WAL"},
        "skipped": {},
    }
    tmp = Path(tempfile.mkdtemp(prefix="optin-scaling-"))
    server = None
    postmaster: int | None = None
    admin = dsn
    if "postgres" in stores and admin is None:
        try:
            from tests.postgres_server import PostgresServer, ServerUnavailable

            server = PostgresServer(BENCH_SETTINGS)
            server.start()
            admin = server.dsn()
            pid_file = server.data / "postmaster.pid"
            postmaster = int(pid_file.read_text().split()[0])
        except (ImportError, ServerUnavailable) as e:
            report["skipped"]["postgres"] = str(e)
            print(f"[scaling] PostgreSQL SKIPPED: {e}", file=log)
            stores = [s for s in stores if s != "postgres"]
    try:
        if admin is not None and "postgres" in stores:
            report["postgres"] = {
                "server": "started for this run" if server else "given (--dsn)",
                "settings": _pg_settings(admin),
            }
        n = 0
        for count in workers:
            for kind in stores:
                n += 1
                if kind == "postgres":
                    assert admin is not None
                    target = _fresh_schema(admin, n)
                else:
                    target = str(tmp / f"scaling-{n}.db")
                    _open("sqlite", target).close()
                began = time.perf_counter()
                point = _point(
                    kind,
                    target,
                    count,
                    duration,
                    contacts,
                    postmaster if kind == "postgres" else None,
                )
                report["points"].append(point)
                print(
                    f"[scaling] {kind:8} {count} workers: "
                    f"{point['receives_per_s']:8.1f} receives/s, p50 "
                    f"{point['p50_ms']:.2f} ms, p99 {point['p99_ms']:.2f} ms, "
                    f"CPU busy {point['machine_cpu_busy']} "
                    f"({time.perf_counter() - began:.1f} s)",
                    file=log,
                )
    finally:
        if server is not None:
            server.stop()
        shutil.rmtree(tmp, ignore_errors=True)
    report["targets"] = _targets(report["points"])
    machine["loadavg_end"] = machine_info()["loadavg"]
    return report


def _targets(points: list[dict[str, Any]]) -> list[dict[str, Any]]:
    by = {(p["store"], p["workers"]): p for p in points}
    one, eight = by.get(("postgres", 1)), by.get(("postgres", 8))
    targets = []
    if one and eight and one["receives_per_s"]:
        x = eight["receives_per_s"] / one["receives_per_s"]
        targets.append(
            {
                "name": "PostgreSQL, 8 workers / 1 worker throughput",
                "target": ">= 2x",
                "measured": round(x, 2),
                "met": x >= 2,
            }
        )
    if eight:
        targets.append(
            {
                "name": "PostgreSQL p99 latency at 8 workers (ms)",
                "target": "< 20 ms",
                "measured": eight["p99_ms"],
                "met": eight["p99_ms"] < 20,
            }
        )
    return targets


def _table(points: list[dict[str, Any]]) -> str:
    rows = [
        (
            "store",
            "workers",
            "receives/s",
            "p50 ms",
            "p99 ms",
            "max ms",
            "machine CPU",
            "client µs/op",
            "server µs/op",
        )
    ]
    for p in points:
        rows.append(
            (
                p["store"],
                str(p["workers"]),
                f"{p['receives_per_s']:.0f}",
                f"{p['p50_ms']:.2f}",
                f"{p['p99_ms']:.2f}",
                f"{p['max_ms']:.1f}",
                "" if p["machine_cpu_busy"] is None else f"{p['machine_cpu_busy']:.0%}",
                ""
                if p["client_cpu_per_op_us"] is None
                else f"{p['client_cpu_per_op_us']:.0f}",
                ""
                if p["server_cpu_per_op_us"] is None
                else f"{p['server_cpu_per_op_us']:.0f}",
            )
        )
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    return "\n".join(
        "  ".join(
            c.rjust(w) if i else c.ljust(w)
            for i, (c, w) in enumerate(zip(r, widths, strict=True))
        )
        for r in rows
    )


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    which = parser.add_mutually_exclusive_group()
    which.add_argument("--quick", action="store_true", help="2 s per point")
    which.add_argument("--smoke", action="store_true", help="tiny points (CI)")
    parser.add_argument("--duration", type=float, help="seconds per point")
    parser.add_argument("--workers", type=int, nargs="+", default=list(WORKER_COUNTS))
    parser.add_argument(
        "--stores",
        nargs="+",
        choices=("postgres", "sqlite"),
        default=["postgres", "sqlite"],
    )
    parser.add_argument("--dsn", help="an existing PostgreSQL server (admin DSN)")
    parser.add_argument("--contacts", type=int, default=200, help="per worker")
    parser.add_argument("--json", nargs="?", const="-", metavar="PATH")
    args = parser.parse_args(argv)
    duration = args.duration or (0.3 if args.smoke else 2.0 if args.quick else 5.0)
    workers = (
        [1, 2] if args.smoke and args.workers == list(WORKER_COUNTS) else args.workers
    )
    contacts = 5 if args.smoke else args.contacts
    report = run(
        stores=args.stores,
        workers=workers,
        duration=duration,
        contacts=contacts,
        dsn=args.dsn,
    )
    out = sys.stderr if args.json == "-" else sys.stdout
    m = report["machine"]
    print(
        f"\nreceive scaling, {duration:g} s per point; {m['cpu']}, {m['cores']} "
        f"cores, Python {m['python']}, {m['platform']}\nload average "
        f"{m['loadavg']} at start, {m['loadavg_end']} at end\n",
        file=out,
    )
    print(_table(report["points"]), file=out)
    if report["postgres"]:
        print("\nPostgreSQL settings:", file=out)
        for name, value in report["postgres"]["settings"].items():
            print(f"  {name} = {value}", file=out)
    print("\nSQLite: WAL, synchronous=FULL", file=out)
    for t in report["targets"]:
        mark = "MET" if t["met"] else "NOT MET"
        print(
            f"  [{mark:>7}] {t['name']}: {t['measured']} (target {t['target']})",
            file=out,
        )
    for name, why in report["skipped"].items():
        print(f"\nSKIPPED {name}: {why}", file=out)
    if args.json:
        text = json.dumps(report, indent=1)
        if args.json == "-":
            print(text)
        else:
            Path(args.json).write_text(text + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
