"""``PostgresStore`` and ``AsyncPostgresStore``: the store protocol on
PostgreSQL, for hosts whose workers run in several processes or on several
machines. Needs psycopg 3 and its pool: ``pip install 'optin-core[postgres]'``.

The logical schema and every rule are :class:`~optin_core.SQLiteStore`'s
(``_base`` checks the arguments, ``_log.check_extension`` the events,
``_rows`` encodes the rows); only the SQL differs. Each operation is written
once, as a generator that yields the statements it needs and receives their
rows, and both stores drive the same generators: ``PostgresStore`` with a
blocking connection pool, ``AsyncPostgresStore`` with an asyncio one.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import random
import re
import secrets
import threading
import time
from collections.abc import Callable, Generator, Mapping, Sequence
from datetime import datetime, timedelta
from importlib import resources
from typing import Any, NamedTuple, TypeAlias, TypeVar, cast

import attrs
import psycopg
from psycopg import errors as pg_errors
from psycopg.conninfo import conninfo_to_dict
from psycopg.pq import TransactionStatus
from psycopg_pool import AsyncConnectionPool, ConnectionPool, PoolTimeout

from .. import __version__
from .._enums import MessageKind
from .._erase import Erasure
from .._errors import (
    DuplicateMessage,
    RecordError,
    StaleVersion,
    StoreUnavailable,
)
from .._log import check_extension
from .._records import AuditEvent, Consent, Outgoing
from ._base import (
    DeliveryStatus,
    Lease,
    MessageRecord,
    MessageStatus,
    Write,
    cancellation_refused,
    check_after,
    check_delivery,
    check_erasure,
    check_lease,
    check_limit,
    check_page,
    prepare_restore,
    prepare_write,
    retry_time,
    reused_key,
    stale_fork,
    timestamp,
    uncancelled,
)
from ._cache import HeadCache
from ._rows import (
    decode_erasure,
    decode_event,
    decode_head,
    decode_outgoing,
    encode,
)

__all__ = ["STORE_SCHEMA", "AsyncPostgresStore", "PostgresStore"]

#: The store schema this module writes: the logical schema of
#: ``SQLiteStore``'s ``PRAGMA user_version`` 2, recorded in the
#: ``optin_core_schema`` table.
STORE_SCHEMA = 2

#: ``(version, script)``: what brings a database to each store schema, in
#: order. A later schema appends its migration here; a database is taken
#: from the version it records to :data:`STORE_SCHEMA` in one transaction.
MIGRATIONS: tuple[tuple[int, str], ...] = (
    (2, resources.files(__package__).joinpath("postgres.sql").read_text("utf-8")),
)

_VERSIONS = """
CREATE TABLE IF NOT EXISTS optin_core_schema (
    version integer PRIMARY KEY,
    applied_at timestamptz NOT NULL DEFAULT now(),
    library text NOT NULL
)
"""

#: ``pg_advisory_xact_lock`` key serializing concurrent migrations.
_MIGRATION_LOCK = 0x6F7074696E5F636F  # "optin_co"

_STOP_CONFIRMATION = MessageKind.STOP_CONFIRMATION.value

_log = logging.getLogger("optin_core")

#: Attempts of an operation that met a deadlock or a serialization failure
#: (``put`` reports it as a conflict instead: the service decides again).
_ATTEMPTS = 5

#: A write that lost a race waits a random 0 to ``_BACKOFF * 2**n`` seconds
#: (``n``: the contact's conflicts in this process, forgotten after a quiet
#: second; at most ``_BACKOFF_MAX``) before it reports the conflict: writers
#: of one contact really run in parallel here, and retrying all at once they
#: would collide again and again (the k-th of k simultaneous writers would
#: lose k - 1 times in a row, past the service's retries).
_BACKOFF = 0.002
_BACKOFF_MAX = 0.05

# ---------------------------------------------------------------------------
# SQL

#: The head row, its data only when it is not the cached head, and the
#: version and digest of the log's last event (which the head's must equal:
#: a head rolled back, deleted, or a log truncated is refused). No row: no
#: head and no log.
_GET = """
SELECT c.version, c.digest,
       CASE WHEN c.version = %(version)s AND c.digest = %(digest)s THEN NULL
            ELSE c.data END,
       e.version, e.digest
FROM (SELECT 1) AS one
LEFT JOIN consents AS c ON c.contact = %(contact)s
LEFT JOIN LATERAL (
    SELECT version, digest FROM events
    WHERE contact = %(contact)s ORDER BY version DESC LIMIT 1
) AS e ON true
WHERE c.contact IS NOT NULL OR e.version IS NOT NULL
"""

_LOG = """
SELECT data FROM events WHERE contact = %s AND version > %s ORDER BY version
"""

#: The stored head, locked: the path of a head this process has not cached.
_STORED = "SELECT version, digest, data FROM consents WHERE contact = %s FOR UPDATE"

#: The first write of a contact, or the compare-and-set of its head on
#: version *and* digest (extend only), unless the write logs a message id
#: the contact's log holds already (``dup``); each returns the contact.
_FIRST = """
INSERT INTO consents (contact, version, state, digest, data)
SELECT %(contact)s, %(version)s, %(state)s, %(digest)s, %(data)s
WHERE NOT EXISTS (SELECT 1 FROM dup)
ON CONFLICT (contact) DO NOTHING
RETURNING contact
"""

_CAS = """
UPDATE consents SET version = %(version)s, state = %(state)s,
                    digest = %(digest)s, data = %(data)s
WHERE contact = %(contact)s AND version = %(expected)s AND digest = %(prev)s
  AND NOT EXISTS (SELECT 1 FROM dup)
RETURNING contact
"""

#: A write of the head and its log, in one statement: the head (``_FIRST``
#: or ``_CAS``: it takes the head's row lock, so that no other writer of the
#: contact gets past it until this write commits); the events; then the
#: contact's queue (its open outbox rows), locked in order, so that a
#: sender marking one of them waits for this write, then sees its messages.
#: The queue's filter needs the head's row, so locks are always taken head
#: first. With ``{msg}`` (``_MESSAGES``) the write's messages are inserted
#: too, the first one already claimed when nothing in the queue holds it
#: (the rule of ``_claimable``). One row per queue row, or one with NULLs:
#: whether the head was written, a duplicate message id, the key claimed.
_WRITE = """
WITH dup AS (
    SELECT message_id FROM events
    WHERE contact = %(contact)s AND message_id = ANY(%(ids)b::bytea[])
    ORDER BY version LIMIT 1
),
head AS ({head}),
ins AS (
    INSERT INTO events (contact, version, message_id, digest, data)
    SELECT %(contact)s, u.version, u.message_id, u.digest, u.data
    FROM unnest(%(versions)b::integer[], %(mids)b::bytea[], %(digests)b::text[],
                %(datas)b::text[]) AS u(version, message_id, digest, data)
    WHERE EXISTS (SELECT 1 FROM head)
    RETURNING 1
),
q AS (
    SELECT seq, key, status, kind, leased_until, next_attempt_at, data
    FROM outbox
    WHERE contact = (SELECT contact FROM head) AND open
    ORDER BY seq
    FOR UPDATE
){msg}
SELECT (SELECT count(*) FROM head), (SELECT message_id FROM dup),
       {claimed},
       q.seq, q.key, q.status, q.kind, q.leased_until, q.next_attempt_at, q.data
FROM (SELECT 1) AS one LEFT JOIN q ON true
ORDER BY q.seq
"""

_MESSAGES = """,
msg AS (
    INSERT INTO outbox (key, contact, version, position, kind, data,
                        leased_until, claimed_version, behind)
    SELECT u.key, %(contact)s, u.version, u.position, u.kind, u.data,
           CASE WHEN c.claim THEN %(until)s::timestamptz END,
           CASE WHEN c.claim THEN %(version)s::integer END,
           c.claim AND %(more)s
    FROM unnest(%(keys)b::text[], %(mversions)b::integer[],
                %(positions)b::integer[], %(kinds)b::text[], %(mdatas)b::text[])
         WITH ORDINALITY AS u(key, version, position, kind, data, n)
    CROSS JOIN LATERAL (
        SELECT u.n = 1 AND %(until)s::timestamptz IS NOT NULL AND NOT EXISTS (
            SELECT 1 FROM q AS o
            WHERE o.leased_until > %(now)s
               OR (o.status = 'pending'
                   AND (u.kind != 'stop_confirmation'
                        OR o.next_attempt_at IS NULL
                        OR o.next_attempt_at <= %(now)s))) AS claim
    ) AS c
    WHERE EXISTS (SELECT 1 FROM head)
    ORDER BY u.n
    RETURNING key, leased_until IS NOT NULL AS claimed
),
flag AS (
    -- Queued behind a message being sent: its sender will look for them.
    UPDATE outbox SET behind = true
    WHERE seq IN (SELECT seq FROM q WHERE leased_until IS NOT NULL)
      AND EXISTS (SELECT 1 FROM msg)
      AND NOT EXISTS (SELECT 1 FROM msg WHERE claimed)
)"""

_FOUND = "SELECT version, digest FROM consents WHERE contact = %s"

#: The open rows of the contact of the message %s (mark_sent with a lease).
_QUEUE_OF = """
SELECT seq, key, status, kind, leased_until, next_attempt_at, data, contact
FROM outbox
WHERE contact = (SELECT m.contact FROM outbox AS m WHERE m.key = %s) AND open
ORDER BY seq
"""

_WHY_NOT = "SELECT contact, status, kind FROM outbox WHERE key = %s"

_CANCEL = """
UPDATE outbox SET status = 'cancelled', open = leased_until IS NOT NULL
WHERE key = ANY(%b::text[])
"""

#: Close the messages a write gives up (expired, dead letters).
_CLOSE = """
UPDATE outbox AS o SET status = u.status, open = false, leased_until = NULL
FROM unnest(%b::text[], %b::text[]) AS u(key, status)
WHERE o.key = u.key
"""

#: The write's messages, in order; %(claim)s (a key, or NULL) inserted
#: already claimed.
_INSERT = """
INSERT INTO outbox (key, contact, version, position, kind, data, leased_until,
                    claimed_version, behind)
SELECT u.key, %(contact)s, u.version, u.position, u.kind, u.data,
       CASE WHEN u.key = %(claim)s THEN %(until)s::timestamptz END,
       CASE WHEN u.key = %(claim)s THEN %(version)s::integer END,
       u.key = %(claim)s AND %(more)s
FROM unnest(%(keys)b::text[], %(versions)b::integer[], %(positions)b::integer[],
            %(kinds)b::text[], %(datas)b::text[])
     WITH ORDINALITY AS u(key, version, position, kind, data, n)
ORDER BY u.n
"""

#: Lease an older message this write holds locked and found claimable.
_LEASE_ROW = """
UPDATE outbox SET leased_until = %(until)s, claimed_version = %(version)s,
                  behind = %(more)s
WHERE key = %(key)s
"""

#: Messages queued behind these, being sent, by a write that claimed none.
_FLAG = "UPDATE outbox SET behind = true WHERE key = ANY(%b::text[])"

#: Whether messages of the contact wait behind the row ``x`` being claimed.
_BEHIND = """
EXISTS (SELECT 1 FROM outbox AS b
        WHERE b.contact = x.contact AND b.open AND b.status = 'pending'
          AND b.seq > x.seq)
"""

_QUARANTINE = """
UPDATE outbox SET status = 'quarantined', open = false, leased_until = NULL,
                  last_error = %s
WHERE key = %s
"""

#: The rows claim() may lease at %(now)s (the rule _claimable applies to a
#: locked queue): pending, not leased, due, and no earlier open message of
#: the contact holding it back: one being sent, or one pending (a stop
#: confirmation passes pending messages that wait for a retry).
_CLAIMABLE = """
x.status = 'pending' AND x.open
AND (x.leased_until IS NULL OR x.leased_until <= %(now)s)
AND (x.next_attempt_at IS NULL OR x.next_attempt_at <= %(now)s)
AND NOT EXISTS (
    SELECT 1 FROM outbox AS o
    WHERE o.contact = x.contact AND o.open AND o.seq < x.seq
      AND (o.leased_until > %(now)s
           OR (o.status = 'pending'
               AND (x.kind != 'stop_confirmation'
                    OR o.next_attempt_at IS NULL
                    OR o.next_attempt_at <= %(now)s))))
"""

#: claim(): the row is locked with SKIP LOCKED, so flushing workers, on any
#: machine, pass over a message another is claiming instead of waiting for
#: it; per-contact order is _CLAIMABLE, in the same statement.
_CLAIM = f"""
UPDATE outbox AS x
SET leased_until = %(until)s,
    claimed_version = (SELECT c.version FROM consents AS c
                       WHERE c.contact = x.contact),
    behind = {_BEHIND}
WHERE x.seq = (SELECT seq FROM outbox WHERE key = %(key)s FOR UPDATE SKIP LOCKED)
  AND {_CLAIMABLE}
"""

#: mark_sent's claim of the next message: the row lock waited for (never
#: skipped), the rule checked again on the row as it then stands.
_CLAIM_KEY = f"""
UPDATE outbox AS x
SET leased_until = %(until)s,
    claimed_version = (SELECT c.version FROM consents AS c
                       WHERE c.contact = x.contact),
    behind = {_BEHIND}
WHERE x.key = %(key)s AND {_CLAIMABLE}
"""

#: At most one claimable message per contact, the oldest, oldest first.
_DUE = f"""
SELECT key, contact, data FROM (
    SELECT DISTINCT ON (x.contact) x.seq, x.key, x.contact, x.data
    FROM outbox AS x
    WHERE {_CLAIMABLE}
    ORDER BY x.contact, x.seq
) AS due
ORDER BY seq
"""

_NEW_NAMESPACE = """
INSERT INTO meta (name, value) VALUES ('namespace', %s)
ON CONFLICT (name) DO NOTHING
"""

_MARK_SENT = """
UPDATE outbox SET status = 'sent', leased_until = NULL, open = false,
                  provider_id = coalesce(%(provider_id)s, provider_id),
                  sent_at = %(at)s
WHERE key = %(key)s AND status != 'sent'
RETURNING behind
"""

_ATTEMPTS_SO_FAR = """
SELECT attempts FROM outbox WHERE key = %s AND status != 'sent' FOR UPDATE
"""

_RELEASE = """
UPDATE outbox SET leased_until = NULL,
                  attempts = attempts + 1,
                  last_error = %(error)s,
                  next_attempt_at = %(retry_at)s,
                  open = CASE WHEN status = 'pending' THEN open ELSE false END
WHERE key = %(key)s
"""

_DELIVERY = """
UPDATE outbox SET delivery = %(status)s, delivery_at = %(at)s,
                  error_code = %(error_code)s
WHERE seq = (
    (SELECT seq FROM outbox WHERE key = %(id)s)
    UNION ALL
    (SELECT seq FROM outbox WHERE provider_id = %(id)s ORDER BY seq LIMIT 1)
    LIMIT 1)
RETURNING contact, data
"""

_RECORD = """
SELECT contact, data, status, attempts, last_error, next_attempt_at,
       provider_id, sent_at, delivery, delivery_at, error_code
FROM outbox
"""

_RESTORE_HEAD = """
INSERT INTO consents (contact, version, state, digest, data)
VALUES (%s, %s, %s, %s, %s)
ON CONFLICT (contact) DO NOTHING
RETURNING contact
"""

_RESTORE_EVENTS = """
INSERT INTO events (contact, version, message_id, digest, data)
SELECT %(contact)s, u.version, u.message_id, u.digest, u.data
FROM unnest(%(versions)s::integer[], %(mids)s::bytea[], %(digests)s::text[],
            %(datas)s::text[]) AS u(version, message_id, digest, data)
"""

_RESTORE_OUTBOX = """
INSERT INTO outbox (key, contact, version, position, kind, data, status, open,
                    attempts, last_error, next_attempt_at, provider_id,
                    sent_at, delivery, delivery_at, error_code)
SELECT u.key, %(contact)s, u.version, u.position, u.kind, u.data, u.status,
       u.status = 'pending', u.attempts, u.error, u.retry, u.pid, u.sent,
       u.delivery, u.delivered, u.code
FROM unnest(%(keys)s::text[], %(versions)s::integer[], %(positions)s::integer[],
            %(kinds)s::text[], %(datas)s::text[], %(statuses)s::text[],
            %(attempts)s::integer[], %(errors)s::text[],
            %(retries)s::timestamptz[], %(pids)s::text[], %(sents)s::timestamptz[],
            %(deliveries)s::text[], %(delivered)s::timestamptz[],
            %(codes)s::text[])
     WITH ORDINALITY AS u(key, version, position, kind, data, status, attempts,
                          error, retry, pid, sent, delivery, delivered, code, n)
ORDER BY u.n
"""

_ERASE = "INSERT INTO erasures (key, erased_at, data) VALUES (%s, %s, %s)"


def _page(select: str, column: str, after: str | None) -> str:
    """A keyset page of ``select``: the rows after %(after)s (when given),
    in order of ``column``, at most %(limit)s (NULL: every one)."""
    where = "" if after is None else f" WHERE {column} > %(after)s"
    return f"{select}{where} ORDER BY {column} LIMIT %(limit)s"


# ---------------------------------------------------------------------------
# Operations as generators of statements


@attrs.frozen(slots=True)
class _Sql:
    text: str
    params: Sequence[Any] | Mapping[str, Any] | None = None
    #: The statement commits a write (autocommit): a connection lost while it
    #: runs leaves its outcome unknown, and it is not retried.
    commits: bool = False


class _Rows(NamedTuple):
    rowcount: int
    rows: list[tuple[Any, ...]]


_T = TypeVar("_T")
_Steps: TypeAlias = Generator[_Sql, _Rows, _T]
_Conn: TypeAlias = psycopg.Connection[tuple[Any, ...]]
_AConn: TypeAlias = psycopg.AsyncConnection[tuple[Any, ...]]


class _Queued(NamedTuple):
    """One open outbox row of a contact's queue (``message``: for a row
    the write adds, the message itself)."""

    seq: int
    key: str
    status: str
    kind: str
    leased_until: datetime | None
    next_attempt_at: datetime | None
    data: str
    message: Outgoing | None = None


def _mid(message_id: str) -> bytes:
    """A message id as the ``events.message_id`` key (any ``str``)."""
    return message_id.encode("utf-8", "surrogatepass")


def _text(value: str | None) -> str | None:
    """``value`` storable as PostgreSQL text (no NUL, no lone surrogate)."""
    if value is None:
        return None
    return (
        value.replace("\x00", "\\x00")
        .encode("utf-8", "backslashreplace")
        .decode("utf-8")
    )


def _claimable(queue: Sequence[_Queued], index: int, now: datetime) -> bool:
    """Whether ``claim`` may lease ``queue[index]`` at ``now``: the rule of
    ``_CLAIMABLE``, applied to a contact's locked queue (its open rows, in
    order)."""
    row = queue[index]
    if row.status != "pending":
        return False
    if row.leased_until is not None and row.leased_until > now:
        return False
    if row.next_attempt_at is not None and row.next_attempt_at > now:
        return False
    for earlier in queue[:index]:
        if earlier.leased_until is not None and earlier.leased_until > now:
            return False
        if earlier.status == "pending" and (
            row.kind != _STOP_CONFIRMATION
            or earlier.next_attempt_at is None
            or earlier.next_attempt_at <= now
        ):
            return False
    return True


def _pick(queue: Sequence[_Queued], now: datetime) -> int | None:
    """The index of the message ``claim`` would lease next in a contact's
    queue: the head, or past it a stop confirmation (which never waits
    behind messages that wait for a retry); ``None`` when none can be."""
    first = True
    for index, row in enumerate(queue):
        if row.status != "pending" or (not first and row.kind != _STOP_CONFIRMATION):
            continue
        first = False
        if _claimable(queue, index, now):
            return index
    return None


def _choose(
    contact: str, queue: list[_Queued], now: datetime
) -> _Steps[tuple[_Queued, Outgoing] | None]:
    """The row to claim next and its message, quarantining (and dropping
    from ``queue``) rows that cannot be read back."""
    while (index := _pick(queue, now)) is not None:
        row = queue[index]
        if row.message is not None:
            return row, row.message
        try:
            return row, decode_outgoing(contact, row.data)
        except RecordError as error:
            yield from _quarantine_steps(row.key, error)
            del queue[index]
    return None


def _claim_after(
    contact: str, queue: list[_Queued], lease: Lease
) -> _Steps[Outgoing | None]:
    """Claim the next message of a queue read without locks: the row picked,
    leased by a statement that checks the rule again on the row as it then
    stands (``None`` if it moved on meanwhile)."""
    chosen = yield from _choose(contact, queue, lease.now)
    if chosen is None:
        return None
    row, message = chosen
    claimed = yield _Sql(
        _CLAIM_KEY, {"key": row.key, "until": lease.until, "now": lease.now}
    )
    return message if claimed.rowcount == 1 else None


def _quarantine_steps(key: str, error: RecordError) -> _Steps[None]:
    """Set aside a row that cannot be read back (it would block its contact
    forever), and say so on the ``optin_core`` logger."""
    yield _Sql(_QUARANTINE, (_text(error.problem), key))
    _log.warning(
        "outbox message %s of a contact is unreadable and was quarantined: %s",
        key,
        error.problem,
    )


def _record(row: tuple[Any, ...]) -> MessageRecord:
    contact, data, status, attempts, error, retry, pid, sent, got, at, code = row
    return MessageRecord(
        message=decode_outgoing(contact, data),
        status=status,
        attempts=attempts,
        last_error=error,
        next_attempt_at=retry,
        provider_id=pid,
        sent_at=sent,
        delivery=got,
        delivery_at=at,
        error_code=code,
    )


def _schema_steps(apply: bool) -> _Steps[int]:
    """Check the database's store schema; with ``apply``, migrate it to
    :data:`STORE_SCHEMA` (in the caller's transaction). The version found,
    or the one reached."""
    if apply:
        yield _Sql("SELECT pg_advisory_xact_lock(%s)", (_MIGRATION_LOCK,))
        yield _Sql(_VERSIONS)
    found = 0
    exists = yield _Sql("SELECT to_regclass('optin_core_schema') IS NOT NULL")
    if exists.rows[0][0]:
        rows = yield _Sql("SELECT coalesce(max(version), 0) FROM optin_core_schema")
        found = int(rows.rows[0][0])
    if found > STORE_SCHEMA:
        raise RecordError(
            "schema",
            f"the database was written by a newer optin_core (store schema "
            f"{found}; this one knows {STORE_SCHEMA}); upgrade the library",
        )
    if not apply:
        return found
    for version, script in MIGRATIONS:
        if version > found:
            yield _Sql(script)
            yield _Sql(
                "INSERT INTO optin_core_schema (version, library) VALUES (%s, %s)",
                (version, f"optin_core {__version__}"),
            )
    return STORE_SCHEMA


def _needs_migration(found: int) -> RecordError:
    return RecordError(
        "schema",
        f"the database is at store schema {found} and this optin_core needs "
        f"{STORE_SCHEMA}; run store.migrate() once (a role allowed to create "
        "tables), or construct the store with migrate=True",
    )


# ---------------------------------------------------------------------------
# Connection settings and errors


def _server(conninfo: str) -> tuple[str, str, str]:
    """``(server, description, password)`` of a connection string: where it
    connects (``host:port``), the string without its password, and the
    password (to scrub from error messages)."""
    try:
        params = conninfo_to_dict(conninfo)
    except psycopg.ProgrammingError as e:
        raise ValueError(f"not a PostgreSQL connection string: {e}") from None
    host = str(params.get("host") or params.get("hostaddr") or "")
    host = host or os.environ.get("PGHOST", "") or "localhost (default socket)"
    port = str(params.get("port") or os.environ.get("PGPORT", "") or "5432")
    password = str(params.get("password") or "")
    shown = " ".join(
        f"{k}={v}"
        for k, v in params.items()
        if k in ("host", "hostaddr", "port", "dbname", "user")
    )
    return f"{host}:{port}", shown, password


def _scrub(text: str, password: str) -> str:
    text = re.sub(r"\s+", " ", text).strip()
    if password:
        text = text.replace(password, "***")
    return text


def _conflict(e: BaseException) -> bool:
    return isinstance(e, (pg_errors.DeadlockDetected, pg_errors.SerializationFailure))


def _lost(conn: psycopg.BaseConnection[Any], e: BaseException) -> bool:
    """Whether ``e`` means the connection is gone (server restart, network)."""
    if not isinstance(e, psycopg.OperationalError) or _conflict(e):
        return False
    state = e.sqlstate or ""
    return (
        conn.broken
        or conn.closed
        or state.startswith("08")
        or state in ("57P01", "57P02", "57P03")
    )


class _Lost(Exception):
    def __init__(self, error: Exception, committing: bool) -> None:
        super().__init__(str(error))
        self.error = error
        self.committing = committing


class _Stage:
    """How far an operation got: its commit sent (``committing``: a lost
    connection leaves the outcome unknown), or done (``committed``)."""

    __slots__ = ("committed", "committing")

    def __init__(self) -> None:
        self.committing = False
        self.committed = False


_BEGIN = "BEGIN ISOLATION LEVEL READ COMMITTED"


class _PostgresBase:
    """Settings, the head cache and every operation's statements; the two
    stores below only drive them."""

    def __init__(
        self,
        conninfo: str = "",
        *,
        min_size: int = 1,
        max_size: int = 4,
        timeout: float = 30.0,
        cache_size: int = 1024,
        migrate: bool = True,
        connect_kwargs: Mapping[str, Any] | None = None,
    ) -> None:
        if not isinstance(conninfo, str):
            raise TypeError(
                f"conninfo must be a str (a libpq DSN or URI), got "
                f"{type(conninfo).__name__}"
            )
        for name, value, low in (("min_size", min_size, 0), ("max_size", max_size, 1)):
            if not isinstance(value, int) or isinstance(value, bool) or value < low:
                raise ValueError(f"{name} must be an int >= {low}, got {value!r}")
        if max_size < min_size:
            raise ValueError(f"max_size ({max_size}) is below min_size ({min_size})")
        if (
            not isinstance(timeout, (int, float))
            or isinstance(timeout, bool)
            or not timeout > 0
        ):
            raise ValueError(
                f"timeout must be a number of seconds > 0, got {timeout!r}"
            )
        if (
            not isinstance(cache_size, int)
            or isinstance(cache_size, bool)
            or cache_size < 0
        ):
            raise ValueError(f"cache_size must be an int >= 0, got {cache_size!r}")
        self.conninfo = conninfo
        self.min_size = min_size
        self.max_size = max_size
        self.timeout = float(timeout)
        self.cache_size = cache_size
        self.migrate_on_first_use = bool(migrate)
        self.connect_kwargs = dict(connect_kwargs or {})
        self._server, self._shown, self._password = _server(conninfo)
        self._setup()

    def _setup(self) -> None:
        self._closed = False
        self._cache = HeadCache(self.cache_size, os.getpid())
        self._namespace: str | None = None
        # contact -> (conflicts, monotonic time of the last one)
        self._conflicts: dict[str, tuple[int, float]] = {}

    def __getstate__(self) -> dict[str, Any]:
        return {
            "conninfo": self.conninfo,
            "min_size": self.min_size,
            "max_size": self.max_size,
            "timeout": self.timeout,
            "cache_size": self.cache_size,
            "migrate": self.migrate_on_first_use,
            "connect_kwargs": self.connect_kwargs,
        }

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__init__(  # type: ignore[misc]
            state["conninfo"],
            min_size=state["min_size"],
            max_size=state["max_size"],
            timeout=state["timeout"],
            cache_size=state["cache_size"],
            migrate=state["migrate"],
            connect_kwargs=state["connect_kwargs"],
        )

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self._shown!r})"

    def _heads(self) -> HeadCache:
        cache = self._cache
        if cache.pid != os.getpid():
            cache = self._cache = HeadCache(self.cache_size, os.getpid())
        return cache

    def _connect_kwargs(self) -> dict[str, Any]:
        return {
            "autocommit": True,
            "connect_timeout": max(1, round(self.timeout)),
            "application_name": "optin_core",
            **self.connect_kwargs,
        }

    def _unreachable(
        self, e: BaseException, *, unknown: bool = False
    ) -> StoreUnavailable:
        return StoreUnavailable(
            self._server, _scrub(str(e), self._password), outcome_unknown=unknown
        )

    def _pool_timeout(self, e: BaseException) -> StoreUnavailable:
        return StoreUnavailable(
            self._server,
            f"no connection within {self.timeout:g} s from a pool of at most "
            f"{self.max_size} ({_scrub(str(e), self._password)})",
        )

    # -- the operations --

    @staticmethod
    def _namespace_steps() -> _Steps[str]:
        # Two statements: the SELECT sees a row another process inserted
        # while this INSERT waited for it.
        yield _Sql(_NEW_NAMESPACE, (secrets.token_hex(16),))
        found = yield _Sql("SELECT value FROM meta WHERE name = 'namespace'")
        return str(found.rows[0][0])

    def _get_steps(self, contact: str) -> _Steps[Consent | None]:
        cache = self._heads()
        cached = cache.get(contact)
        found = yield _Sql(
            _GET,
            {
                "version": -1 if cached is None else cached.version,
                "digest": "" if cached is None else cached.digest,
                "contact": contact,
            },
        )
        if not found.rows:
            if cached is not None:
                cache.drop(contact)
            return None
        version, digest, data, last_version, last = found.rows[0]
        if version is None:
            raise RecordError(
                "record",
                f"the log holds {last_version} events but the head is missing "
                "(a table edited by hand)",
                contact=contact,
            )
        if last != digest or last_version != version:
            raise RecordError(
                "digest",
                "the head does not match its log's last event (a table edited "
                "by hand, or a truncated log)",
                contact=contact,
            )
        if data is None and cached is not None:
            return cached
        head = decode_head(contact, data, version, digest)
        cache.add(head)
        return head

    @staticmethod
    def _log_steps(contact: str, after: int) -> _Steps[list[AuditEvent]]:
        found = yield _Sql(_LOG, (contact, after))
        return [decode_event(contact, row[0], i) for i, row in enumerate(found.rows)]

    def _known(
        self,
        consent: Consent,
        events: Sequence[AuditEvent],
        write: Write,
        expected: int,
    ) -> Consent | None:
        """The head the events extend, checked before any I/O when this
        process knows it (the compare-and-set then proves the row still
        names it); ``None``: read it under the row lock."""
        contact = consent.contact
        known: Consent | None = None
        if expected == 0:
            known = Consent(contact=contact)
        else:
            cached = self._heads().get(contact)
            if (
                cached is not None
                and cached.version == expected
                and cached.digest == write.prev
            ):
                known = cached
        if known is not None:
            if known.digest != write.prev:
                raise stale_fork(contact, expected)
            check_extension(known, consent, events)
        return known

    @staticmethod
    def _put_steps(  # noqa: PLR0917 (one transaction, read top to bottom)
        consent: Consent,
        events: Sequence[AuditEvent],
        write: Write,
        expected: int,
        leased: Lease | None,
        known: Consent | None,
    ) -> _Steps[Outgoing | None]:
        contact = consent.contact
        if known is None:
            found = yield _Sql(_STORED, (contact,))
            row = found.rows[0] if found.rows else None
            if row is None or row[0] != expected:
                raise StaleVersion(
                    contact, expected=expected, found=None if row is None else row[0]
                )
            if row[1] != write.prev:
                raise stale_fork(contact, expected)
            stored = decode_head(contact, row[2], row[0], row[1])
            check_extension(stored, consent, events)
        # The usual write (no cancellation, a head this process knows) is
        # one statement, committed on its own; the others one transaction.
        one = known is not None and not (
            write.cancelled or write.closed or write.withdraws
        )
        messages = [m for _v, _p, m in write.messages]
        params: dict[str, Any] = {
            "contact": contact,
            "version": consent.version,
            "state": consent.state.value,
            "digest": consent.digest,
            "data": encode(consent),
            "expected": expected,
            "prev": write.prev,
            "ids": [_mid(i) for i in write.message_ids],
            "versions": [e.version for e in events],
            "mids": [
                None if e.message_id is None else _mid(e.message_id) for e in events
            ],
            "digests": [e.digest for e in events],
            "datas": [encode(e) for e in events],
        }
        if one:
            params |= {
                "until": None if leased is None else leased.until,
                "now": None if leased is None else leased.now,
                "keys": [m.key for m in messages],
                "mversions": [v for v, _p, _m in write.messages],
                "positions": [p for _v, p, _m in write.messages],
                "kinds": [m.kind.value for m in messages],
                "mdatas": [encode(m) for m in messages],
                "more": len(messages) > 1,
            }
        sql = _WRITE.format(
            head=_FIRST if expected == 0 else _CAS,
            msg=_MESSAGES if one else "",
            claimed="(SELECT key FROM msg WHERE claimed)" if one else "NULL",
        )
        try:
            written = yield _Sql(sql, params, commits=one)
        except pg_errors.UniqueViolation as e:
            if e.diag.constraint_name == "outbox_key_key":
                raise reused_key(contact) from None
            raise StaleVersion(  # pragma: no cover - the CAS comes first
                contact, expected=expected, found=None, why="the log moved on"
            ) from None
        saved, duplicate, claimed_key = written.rows[0][:3]
        if saved != 1:
            found = yield _Sql(_FOUND, (contact,))
            version, digest = found.rows[0] if found.rows else (0, "")
            if version == expected and digest == write.prev and duplicate:
                raise DuplicateMessage(
                    contact, bytes(duplicate).decode("utf-8", "surrogatepass")
                )
            if version == expected:
                raise stale_fork(contact, expected)
            raise StaleVersion(
                contact, expected=expected, found=version if found.rows else None
            )
        queue = [_Queued(*row[3:]) for row in written.rows if row[3] is not None]
        if one:
            # Written and committed; the claim, when the first new message
            # could not be claimed in the write: an older message, leased by
            # a statement of its own that checks the rule again.
            if claimed_key is not None:
                return messages[0]
            if leased is None or not any(r.status == "pending" for r in queue):
                return None
            queue += [
                _Queued(0, m.key, "pending", m.kind.value, None, None, "", m)
                for m in messages
            ]
            return (yield from _claim_after(contact, queue, leased))
        if write.cancelled or write.withdraws:
            queue = yield from _cancel_steps(contact, write, expected, queue)
        if write.closed:
            queue = yield from _close_steps(contact, write, expected, queue)
        queue += [
            _Queued(0, m.key, "pending", m.kind.value, None, None, "", m)
            for m in messages
        ]
        chosen = None
        if leased is not None:
            chosen = yield from _choose(contact, queue, leased.now)
        claim = None if chosen is None else chosen[0]
        # Whether messages wait behind the one claimed: its sender looks.
        more = claim is not None and any(
            row.status == "pending" for row in queue[queue.index(claim) + 1 :]
        )
        if messages:
            try:
                yield _Sql(
                    _INSERT,
                    {
                        "contact": contact,
                        "claim": None if claim is None else claim.key,
                        "until": None if leased is None else leased.until,
                        "version": consent.version,
                        "more": more,
                        "keys": [m.key for m in messages],
                        "versions": [v for v, _p, _m in write.messages],
                        "positions": [p for _v, p, _m in write.messages],
                        "kinds": [m.kind.value for m in messages],
                        "datas": [encode(m) for m in messages],
                    },
                )
            except pg_errors.UniqueViolation:
                raise reused_key(contact) from None
        if chosen is None:
            held = [row.key for row in queue if row.leased_until is not None]
            if messages and held:
                yield _Sql(_FLAG, (held,))
            return None
        if claim is not None and claim.message is None and leased is not None:
            yield _Sql(
                _LEASE_ROW,
                {
                    "until": leased.until,
                    "version": consent.version,
                    "key": claim.key,
                    "more": more,
                },
            )
        return chosen[1]

    @staticmethod
    def _pending_steps(
        contact: str | None, limit: int | None
    ) -> _Steps[list[Outgoing]]:
        sql = "SELECT contact, data FROM outbox WHERE status = 'pending'"
        args: list[Any] = []
        if contact is not None:
            sql += " AND contact = %s AND open"
            args.append(contact)
        sql += " ORDER BY seq"
        if limit is not None:
            sql += " LIMIT %s"
            args.append(limit)
        found = yield _Sql(sql, args)
        return [decode_outgoing(who, data) for who, data in found.rows]

    @staticmethod
    def _claim_steps(key: str, until: datetime, now: datetime) -> _Steps[bool]:
        done = yield _Sql(_CLAIM, {"key": key, "until": until, "now": now})
        return done.rowcount == 1

    @staticmethod
    def _due_steps(now: datetime, limit: int | None) -> _Steps[list[Outgoing]]:
        sql = _DUE if limit is None else _DUE + " LIMIT %(limit)s"
        found = yield _Sql(sql, {"now": now, "limit": limit})
        due: list[Outgoing] = []
        for key, contact, data in found.rows:
            try:
                due.append(decode_outgoing(contact, data))
            except RecordError as error:
                yield from _quarantine_steps(key, error)
        return due

    @staticmethod
    def _release_steps(
        key: str, error: str | None, now: datetime | None, backoff: timedelta | None
    ) -> _Steps[int]:
        found = yield _Sql(_ATTEMPTS_SO_FAR, (key,))
        if not found.rows:
            return 0
        attempts = int(found.rows[0][0]) + 1
        yield _Sql(
            _RELEASE,
            {
                "key": key,
                "error": _text(error),
                "retry_at": retry_time(now, backoff, attempts),
            },
        )
        return attempts

    @staticmethod
    def _mark_steps(
        mark: Mapping[str, Any], leased: Lease | None
    ) -> _Steps[Outgoing | None]:
        marked = yield _Sql(_MARK_SENT, mark)
        if leased is None or (marked.rows and not marked.rows[0][0]):
            # Nothing waits behind it (a write that queued a message behind
            # it while it was being sent set ``behind``, under its lock).
            return None
        # Then, in a statement of its own (after the mark, which waited for
        # any write holding the row): a write that added messages behind
        # this one while it was being sent has committed, and they are in
        # this statement's view.
        found = yield _Sql(_QUEUE_OF, (mark["key"],))
        if not found.rows:
            return None
        contact = found.rows[0][-1]
        queue = [_Queued(*row[:-1]) for row in found.rows]
        return (yield from _claim_after(contact, queue, leased))

    @staticmethod
    def _delivery_steps(
        key_or_provider_id: str,
        status: DeliveryStatus,
        at: datetime,
        error_code: str | None,
    ) -> _Steps[Outgoing | None]:
        found = yield _Sql(
            _DELIVERY,
            {
                "id": _text(key_or_provider_id),
                "status": status,
                "at": at,
                "error_code": None if error_code is None else _text(str(error_code)),
            },
        )
        if not found.rows:
            return None
        contact, data = found.rows[0]
        return decode_outgoing(contact, data)

    @staticmethod
    def _messages_steps(contact: str) -> _Steps[list[MessageRecord]]:
        found = yield _Sql(_RECORD + " WHERE contact = %s ORDER BY seq", (contact,))
        return [_record(row) for row in found.rows]

    @staticmethod
    def _dead_letters_steps(limit: int | None) -> _Steps[list[MessageRecord]]:
        sql = _RECORD + " WHERE status = 'failed' ORDER BY seq"
        if limit is not None:
            sql += " LIMIT %(limit)s"
        found = yield _Sql(sql, {"limit": limit})
        return [_record(row) for row in found.rows]

    @staticmethod
    def _mark(key: str, provider_id: str | None, at: datetime | None) -> dict[str, Any]:
        """mark_sent's arguments, checked before any I/O."""
        if provider_id is not None and not isinstance(provider_id, str):
            raise TypeError(f"provider_id must be a str, got {provider_id!r:.40}")
        if at is not None:
            timestamp(at, "at")
        return {"key": key, "provider_id": _text(provider_id) or None, "at": at}

    @staticmethod
    def _status_steps(key: str) -> _Steps[MessageStatus | None]:
        found = yield _Sql("SELECT status FROM outbox WHERE key = %s", (key,))
        return cast(MessageStatus, found.rows[0][0]) if found.rows else None

    @staticmethod
    def _claimed_version_steps(key: str) -> _Steps[int | None]:
        found = yield _Sql("SELECT claimed_version FROM outbox WHERE key = %s", (key,))
        return cast(int | None, found.rows[0][0]) if found.rows else None

    @staticmethod
    def _contacts_steps(after: str | None, limit: int | None) -> _Steps[list[str]]:
        found = yield _Sql(
            _page("SELECT contact FROM consents", "contact", after),
            {"after": after, "limit": limit},
        )
        return [row[0] for row in found.rows]

    @staticmethod
    def _restore_steps(
        consent: Consent,
        events: Sequence[AuditEvent],
        rows: Sequence[tuple[int, int, MessageRecord]],
    ) -> _Steps[None]:
        contact = consent.contact
        found = yield _Sql(
            _RESTORE_HEAD,
            (
                contact,
                consent.version,
                consent.state.value,
                consent.digest,
                encode(consent),
            ),
        )
        if not found.rows:
            stored = yield _Sql(_FOUND, (contact,))
            raise StaleVersion(
                contact,
                expected=0,
                found=stored.rows[0][0] if stored.rows else None,
            )
        yield _Sql(
            _RESTORE_EVENTS,
            {
                "contact": contact,
                "versions": [e.version for e in events],
                "mids": [
                    None if e.message_id is None else _mid(e.message_id) for e in events
                ],
                "digests": [e.digest for e in events],
                "datas": [encode(e) for e in events],
            },
        )
        if not rows:
            return
        records = [r for _v, _p, r in rows]
        try:
            yield _Sql(
                _RESTORE_OUTBOX,
                {
                    "contact": contact,
                    "keys": [r.message.key for r in records],
                    "versions": [v for v, _p, _r in rows],
                    "positions": [p for _v, p, _r in rows],
                    "kinds": [r.message.kind.value for r in records],
                    "datas": [encode(r.message) for r in records],
                    "statuses": [r.status for r in records],
                    "attempts": [r.attempts for r in records],
                    "errors": [_text(r.last_error) for r in records],
                    "retries": [r.next_attempt_at for r in records],
                    "pids": [_text(r.provider_id) for r in records],
                    "sents": [r.sent_at for r in records],
                    "deliveries": [r.delivery for r in records],
                    "delivered": [r.delivery_at for r in records],
                    "codes": [_text(r.error_code) for r in records],
                },
            )
        except pg_errors.UniqueViolation:
            raise reused_key(contact) from None

    @staticmethod
    def _erase_steps(
        contact: str, erasure: Erasure, expected: int, digest: str
    ) -> _Steps[None]:
        deleted = yield _Sql(
            "DELETE FROM consents WHERE contact = %s AND version = %s "
            "AND digest = %s RETURNING contact",
            (contact, expected, digest),
        )
        if not deleted.rows:
            found = yield _Sql(_FOUND, (contact,))
            raise StaleVersion(
                contact,
                expected=expected,
                found=found.rows[0][0] if found.rows else None,
            )
        yield _Sql("DELETE FROM events WHERE contact = %s", (contact,))
        yield _Sql("DELETE FROM outbox WHERE contact = %s", (contact,))
        yield _Sql(
            _ERASE + " ON CONFLICT (key) DO UPDATE SET erased_at = excluded.erased_at, "
            "data = excluded.data",
            (erasure.key, erasure.erased_at, encode(erasure)),
        )

    @staticmethod
    def _suppress_steps(erasure: Erasure) -> _Steps[bool]:
        found = yield _Sql(
            _ERASE + " ON CONFLICT (key) DO NOTHING RETURNING key",
            (erasure.key, erasure.erased_at, encode(erasure)),
        )
        return bool(found.rows)

    @staticmethod
    def _erasure_steps(key: str) -> _Steps[Erasure | None]:
        found = yield _Sql("SELECT data FROM erasures WHERE key = %s", (key,))
        return decode_erasure(key, found.rows[0][0]) if found.rows else None

    @staticmethod
    def _erasures_steps(after: str | None, limit: int | None) -> _Steps[list[Erasure]]:
        found = yield _Sql(
            _page("SELECT key, data FROM erasures", "key", after),
            {"after": after, "limit": limit},
        )
        return [decode_erasure(key, data) for key, data in found.rows]

    @staticmethod
    def _purge_steps(older_than: datetime) -> _Steps[int]:
        done = yield _Sql(
            "DELETE FROM outbox WHERE status = 'sent' AND sent_at < %s",
            (older_than,),
        )
        return done.rowcount

    def _prepare_put(
        self,
        consent: Consent,
        events: Sequence[AuditEvent],
        expected_version: int,
        lease: Lease | None,
    ) -> tuple[Callable[[], _Steps[Outgoing | None]], bool]:
        """The steps of a put, checked before any I/O, and whether they need
        a transaction (the usual write is one statement)."""
        write = prepare_write(consent, events, expected_version)
        leased = check_lease(lease)
        known = self._known(consent, events, write, expected_version)
        tx = known is None or bool(write.cancelled or write.closed or write.withdraws)
        return (
            lambda: self._put_steps(
                consent, events, write, expected_version, leased, known
            ),
            tx,
        )

    def _backoff(self, contact: str) -> float:
        """How long a write of ``contact`` that lost a race waits."""
        now = time.monotonic()
        n, last = self._conflicts.get(contact, (0, now))
        if now - last > 1.0:
            n = 0
        if len(self._conflicts) > 10_000:
            self._conflicts.clear()
        self._conflicts[contact] = (n + 1, now)
        return random.uniform(0, min(_BACKOFF * 2 ** min(n, 8), _BACKOFF_MAX))

    @staticmethod
    def _put_conflict(
        consent: Consent, expected: int
    ) -> Callable[[Exception], Exception]:
        def conflict(error: Exception) -> Exception:
            return StaleVersion(
                consent.contact,
                expected=expected,
                found=None,
                why=f"the database reported {type(error).__name__}; decide again",
            )

        return conflict


def _cancel_steps(
    contact: str, write: Write, expected: int, queue: list[_Queued]
) -> _Steps[list[_Queued]]:
    """Cancel exactly the messages the write's ``cancel`` events list (each
    a pending message of a kind the write withdraws), and check that none
    of those kinds is left pending; the queue as it stands after."""
    kinds = {kind.value for kind in write.withdraws}
    by_key = {row.key: row for row in queue}
    cancelled = set(write.cancelled)
    for key in write.cancelled:
        row = by_key.get(key)
        if row is not None and row.status == "pending" and row.kind in kinds:
            continue
        stored = yield from _stored_row(contact, key, row)
        raise cancellation_refused(
            contact,
            key,
            sent=stored is not None
            and stored[0] == contact
            and stored[1] == "sent"
            and stored[2] in kinds,
            version=expected,
        )
    if write.cancelled:
        yield _Sql(_CANCEL, (list(write.cancelled),))
    for row in queue:
        if row.status == "pending" and row.kind in kinds and row.key not in cancelled:
            raise uncancelled(contact, row.key)
    return [
        row._replace(status="cancelled") if row.key in cancelled else row
        for row in queue
        if row.key not in cancelled or row.leased_until is not None
    ]


def _close_steps(
    contact: str, write: Write, expected: int, queue: list[_Queued]
) -> _Steps[list[_Queued]]:
    """Close the messages the write gives up (expired, dead letters): each
    must be a pending message of the contact."""
    by_key = {row.key: row for row in queue}
    for key, _status in write.closed:
        row = by_key.get(key)
        if row is not None and row.status == "pending":
            continue
        stored = yield from _stored_row(contact, key, row)
        raise cancellation_refused(
            contact,
            key,
            sent=stored is not None and stored[0] == contact and stored[1] == "sent",
            version=expected,
        )
    yield _Sql(
        _CLOSE,
        ([key for key, _s in write.closed], [status for _k, status in write.closed]),
    )
    closed = {key for key, _s in write.closed}
    return [row for row in queue if row.key not in closed]


def _stored_row(
    contact: str, key: str, row: _Queued | None
) -> _Steps[tuple[Any, ...] | None]:
    """``(contact, status, kind)`` of the message ``key``, or ``None``."""
    if row is not None:
        return (contact, row.status, row.kind)
    found = yield _Sql(_WHY_NOT, (key,))
    return found.rows[0] if found.rows else None


# ---------------------------------------------------------------------------
# The blocking store


class PostgresStore(_PostgresBase):
    """The :class:`~optin_core.Store` protocol on PostgreSQL (psycopg 3 and
    its :class:`psycopg_pool.ConnectionPool`), for hosts whose workers run in
    several processes or on several machines.

    * ``conninfo``: a libpq connection string or URI
      (``"postgresql://app@db.internal/consent"``; the password may come from
      ``PGPASSWORD`` or ``~/.pgpass``). Tables go in the first schema of the
      role's ``search_path``;
    * the schema (``postgres.sql`` beside this module: the logical schema of
      ``SQLiteStore``) is created or migrated on first use, in one
      transaction, serialized by an advisory lock, and its version recorded
      in ``optin_core_schema``. With ``migrate=False`` the store only checks
      it, for hosts that forbid DDL at runtime: run :meth:`migrate` once at
      deploy time. A database of a newer schema is refused
      (:class:`~optin_core.RecordError` with both version numbers);
    * ``put`` is atomic: compare-and-set of the head on version *and*
      digest, the events appended (a unique ``(contact, message_id)``
      index), the cancellations, the messages indexed, and with a lease the
      contact's next message claimed. The usual write (a head this process
      has cached, nothing to cancel) is one statement; the others one
      transaction. A connection lost before the commit leaves nothing
      written; deadlocks and serialization failures are reported as
      :class:`~optin_core.StaleVersion`, so the service decides again within
      its bounded retries (after a short random wait: writers of one
      contact really run at once here). A service operation that sends one
      message is three statements and two commits (``get``, ``put``,
      ``mark_sent``);
    * ``claim`` locks the message with ``FOR UPDATE SKIP LOCKED``: workers
      flushing at the same time, on any machine, pass over what another is
      claiming; the per-contact order check is in the same statement;
    * ``get`` reads the head with the digest of the log's last event: a head
      that does not match it (a table edited by hand) is a
      :class:`~optin_core.RecordError` naming the contact. A per-process LRU
      cache of ``cache_size`` heads skips decoding an unchanged head;
    * a pool of ``min_size`` to ``max_size`` connections per process, opened
      on first use; after ``fork`` the child opens its own pool and never
      touches the parent's; the store pickles to its settings for
      ``spawn``. ``timeout`` bounds connecting and waiting for a connection;
      a server that cannot be reached is a
      :class:`~optin_core.StoreUnavailable` naming host and port (never the
      password). ``connect_kwargs`` go to ``psycopg.connect``.

    .. versionadded:: 0.2.0
    """

    def _setup(self) -> None:
        super()._setup()
        self._lock = threading.Lock()
        self._lock_pid = os.getpid()
        self._pool: ConnectionPool[_Conn] | None = None
        self._pool_pid = 0
        # Pools inherited through fork: kept referenced and never closed
        # here, as closing their connections would end the parent's sessions.
        self._inherited: list[object] = []

    def __enter__(self) -> PostgresStore:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def close(self) -> None:
        """Close this process's pool. The store can't be used after."""
        with self._lock:
            self._closed = True
            pool, self._pool = self._pool, None
        if pool is not None and self._pool_pid == os.getpid():
            pool.close()

    # -- connections --

    def _connect(self) -> _Conn:
        try:
            return psycopg.connect(self.conninfo, **self._connect_kwargs())
        except psycopg.OperationalError as e:
            raise self._unreachable(e) from None

    def _schema(self, apply: bool) -> int:
        with self._connect() as conn:
            return _drive(conn, _schema_steps(apply), tx=apply, stage=_Stage())

    def migrate(self) -> int:
        """Create or migrate the schema to :data:`STORE_SCHEMA` now (one
        transaction; idempotent); the version reached."""
        if self._closed:
            raise RuntimeError(f"{self!r} is closed")
        return self._schema(apply=True)

    def _ready(self) -> ConnectionPool[_Conn]:
        pool = self._pool
        pid = os.getpid()
        if pool is not None and self._pool_pid == pid:
            return pool
        if self._lock_pid != pid:
            # A forked child: a parent's thread may have held the lock.
            self._lock, self._lock_pid = threading.Lock(), pid
        with self._lock:
            if self._closed:
                raise RuntimeError(f"{self!r} is closed")
            if self._pool is not None and self._pool_pid == pid:
                return self._pool
            if self._pool is not None:
                self._inherited.append(self._pool)
            found = self._schema(apply=False)
            if found != STORE_SCHEMA:
                if not self.migrate_on_first_use:
                    raise _needs_migration(found)
                self._schema(apply=True)
            pool = ConnectionPool(
                self.conninfo,
                min_size=self.min_size,
                max_size=self.max_size,
                timeout=self.timeout,
                kwargs=self._connect_kwargs(),
                open=False,
                name=f"optin_core-{pid}",
            )
            pool.open(wait=False)
            self._pool, self._pool_pid = pool, pid
            return pool

    def _run(
        self,
        make: Callable[[], _Steps[_T]],
        *,
        tx: bool = False,
        conflict: Callable[[Exception], Exception] | None = None,
        salvage: bool = False,
    ) -> _T:
        retried_lost = False
        for attempt in range(_ATTEMPTS):
            pool = self._ready()
            stage = _Stage()
            try:
                with pool.connection() as conn:
                    try:
                        return _drive(conn, make(), tx=tx, stage=stage)
                    except psycopg.OperationalError as e:
                        if _lost(conn, e):
                            raise _Lost(e, stage.committing) from e
                        raise
            except PoolTimeout as e:
                raise self._pool_timeout(e) from None
            except _Lost as lost:
                if salvage and stage.committed:
                    # The write is saved; only its claim was lost: the
                    # message stays pending for the next flush.
                    return cast(_T, None)
                if lost.committing:
                    raise self._unreachable(lost.error, unknown=True) from None
                if retried_lost:
                    raise self._unreachable(lost.error) from None
                retried_lost = True
                # The others may be gone too (a server restart): drop them.
                pool.check()
            except (pg_errors.DeadlockDetected, pg_errors.SerializationFailure) as e:
                if stage.committed:  # pragma: no cover - after the write
                    raise
                if conflict is not None:
                    raise conflict(e) from e
                if attempt == _ATTEMPTS - 1:
                    raise
        raise AssertionError("unreachable")  # pragma: no cover

    # -- the protocol --

    def namespace(self) -> str:
        if self._namespace is None:
            self._namespace = self._run(self._namespace_steps)
        return self._namespace

    def get(self, contact: str) -> Consent | None:
        return self._run(lambda: self._get_steps(contact))

    def log(self, contact: str, *, after: int = 0) -> list[AuditEvent]:
        check_after(after)
        return self._run(lambda: self._log_steps(contact, after))

    def put(
        self,
        consent: Consent,
        events: Sequence[AuditEvent],
        *,
        expected_version: int,
        lease: Lease | None = None,
    ) -> Outgoing | None:
        make, tx = self._prepare_put(consent, events, expected_version, lease)
        try:
            claimed = self._run(
                make,
                tx=tx,
                conflict=self._put_conflict(consent, expected_version),
                salvage=True,
            )
        except StaleVersion:
            time.sleep(self._backoff(consent.contact))
            raise
        self._heads().add(consent)
        return claimed

    def pending(
        self, *, contact: str | None = None, limit: int | None = None
    ) -> list[Outgoing]:
        check_limit(limit)
        return self._run(lambda: self._pending_steps(contact, limit))

    def claim(self, key: str, *, until: datetime, now: datetime) -> bool:
        timestamp(until, "until")
        timestamp(now, "now")
        return self._run(lambda: self._claim_steps(key, until, now))

    def due(self, *, now: datetime, limit: int | None = None) -> list[Outgoing]:
        check_limit(limit)
        timestamp(now, "now")
        return self._run(lambda: self._due_steps(now, limit))

    def release(
        self,
        key: str,
        *,
        error: str | None = None,
        now: datetime | None = None,
        backoff: timedelta | None = None,
    ) -> int:
        retry_time(now, backoff, 1)  # the arguments, checked before any write
        return self._run(lambda: self._release_steps(key, error, now, backoff), tx=True)

    def mark_sent(
        self,
        key: str,
        *,
        lease: Lease | None = None,
        provider_id: str | None = None,
        at: datetime | None = None,
    ) -> Outgoing | None:
        leased = check_lease(lease)
        mark = self._mark(key, provider_id, at)
        return self._run(lambda: self._mark_steps(mark, leased))

    def delivery(
        self,
        key_or_provider_id: str,
        status: DeliveryStatus,
        *,
        at: datetime,
        error_code: str | None = None,
    ) -> Outgoing | None:
        checked = check_delivery(status)
        timestamp(at, "at")
        return self._run(
            lambda: self._delivery_steps(key_or_provider_id, checked, at, error_code)
        )

    def messages(self, contact: str) -> list[MessageRecord]:
        return self._run(lambda: self._messages_steps(contact))

    def dead_letters(self, *, limit: int | None = None) -> list[MessageRecord]:
        check_limit(limit)
        return self._run(lambda: self._dead_letters_steps(limit))

    # -- inspection --

    def message_status(self, key: str) -> MessageStatus | None:
        """``"pending"``, ``"sent"`` or ``"cancelled"``; ``None`` if unknown."""
        return self._run(lambda: self._status_steps(key))

    def claimed_version(self, key: str) -> int | None:
        """The head version stored when ``key`` was last claimed."""
        return self._run(lambda: self._claimed_version_steps(key))

    def contacts(
        self, *, after: str | None = None, limit: int | None = None
    ) -> list[str]:
        """See :meth:`Store.contacts` (keyset: an index range scan per
        page)."""
        check_page(after, limit)
        return self._run(lambda: self._contacts_steps(after, limit))

    def restore(
        self,
        consent: Consent,
        events: Sequence[AuditEvent],
        messages: Sequence[MessageRecord] = (),
    ) -> None:
        _write, rows = prepare_restore(consent, events, messages)
        self._run(lambda: self._restore_steps(consent, events, rows), tx=True)
        self._heads().add(consent)

    def erase(self, contact: str, erasure: Erasure, *, expected_version: int) -> None:
        """See :meth:`Store.erase`. PostgreSQL keeps deleted row versions
        until ``VACUUM`` (and in its WAL and backups): see
        ``docs/compliance.md``."""
        digest = check_erasure(contact, erasure, expected_version)
        self._heads().drop(contact)
        self._run(
            lambda: self._erase_steps(contact, erasure, expected_version, digest),
            tx=True,
        )
        self._heads().drop(contact)

    def suppress(self, erasure: Erasure) -> bool:
        return self._run(lambda: self._suppress_steps(erasure))

    def erasure(self, key: str) -> Erasure | None:
        return self._run(lambda: self._erasure_steps(key))

    def erasures(
        self, *, after: str | None = None, limit: int | None = None
    ) -> list[Erasure]:
        check_page(after, limit)
        return self._run(lambda: self._erasures_steps(after, limit))

    def purge_delivered(self, older_than: datetime) -> int:
        timestamp(older_than, "older_than")
        return self._run(lambda: self._purge_steps(older_than))


def _drive(conn: _Conn, steps: _Steps[_T], *, tx: bool, stage: _Stage) -> _T:
    """Run ``steps`` on ``conn``, in one transaction when ``tx``."""
    cur = conn.cursor()
    try:
        if tx:
            cur.execute(_BEGIN)
        value: _Rows | None = None
        error: Exception | None = None
        while True:
            try:
                sql = steps.send(value) if error is None else steps.throw(error)  # type: ignore[arg-type]
            except StopIteration as done:
                result: _T = done.value
                break
            value, error = None, None
            if sql.commits:
                stage.committing = True
            try:
                cur.execute(sql.text, sql.params)
                rows = cur.fetchall() if cur.description is not None else []
                value = _Rows(cur.rowcount, rows)
            except psycopg.IntegrityError as e:
                error = e
            else:
                stage.committed = stage.committing
        if tx:
            stage.committing = True
            cur.execute("COMMIT")
        return result
    except BaseException:
        if (
            tx
            and not conn.closed
            and conn.info.transaction_status
            in (TransactionStatus.INTRANS, TransactionStatus.INERROR)
        ):
            with contextlib.suppress(psycopg.Error):
                cur.execute("ROLLBACK")
        raise
    finally:
        steps.close()
        cur.close()


# ---------------------------------------------------------------------------
# The async store


class AsyncPostgresStore(_PostgresBase):
    """:class:`PostgresStore` for asyncio (:class:`~optin_core.AsyncStore`):
    the same operations, statements and guarantees, on psycopg's async
    connections and :class:`psycopg_pool.AsyncConnectionPool`.

    The pool is opened on first use, in the running event loop, and the
    store is bound to that loop (use one store per loop). ``await
    store.close()``, or ``async with``. For
    :class:`~optin_core.AsyncConsentService`.

    .. versionadded:: 0.2.0
    """

    def _setup(self) -> None:
        super()._setup()
        self._pool: AsyncConnectionPool[_AConn] | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._opening: asyncio.Lock | None = None

    async def __aenter__(self) -> AsyncPostgresStore:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()

    async def close(self) -> None:
        """Close the pool. The store can't be used after."""
        self._closed = True
        pool, self._pool = self._pool, None
        if pool is not None:
            await pool.close()

    async def _connect(self) -> _AConn:
        try:
            return await psycopg.AsyncConnection.connect(
                self.conninfo, **self._connect_kwargs()
            )
        except psycopg.OperationalError as e:
            raise self._unreachable(e) from None

    async def _schema(self, apply: bool) -> int:
        async with await self._connect() as conn:
            return await _adrive(conn, _schema_steps(apply), tx=apply, stage=_Stage())

    async def migrate(self) -> int:
        """See :meth:`PostgresStore.migrate`."""
        if self._closed:
            raise RuntimeError(f"{self!r} is closed")
        return await self._schema(apply=True)

    async def _ready(self) -> AsyncConnectionPool[_AConn]:
        if self._closed:
            raise RuntimeError(f"{self!r} is closed")
        loop = asyncio.get_running_loop()
        if self._loop is not None and self._loop is not loop:
            raise RuntimeError(
                f"{self!r} is bound to the event loop that first used it; "
                "create one store per event loop"
            )
        pool = self._pool
        if pool is not None:
            return pool
        if self._opening is None:
            self._loop = loop
            self._opening = asyncio.Lock()
        async with self._opening:
            if self._pool is not None:
                return self._pool
            found = await self._schema(apply=False)
            if found != STORE_SCHEMA:
                if not self.migrate_on_first_use:
                    raise _needs_migration(found)
                await self._schema(apply=True)
            pool = AsyncConnectionPool(
                self.conninfo,
                min_size=self.min_size,
                max_size=self.max_size,
                timeout=self.timeout,
                kwargs=self._connect_kwargs(),
                open=False,
                name="optin_core-async",
            )
            await pool.open(wait=False)
            self._pool = pool
            return pool

    async def _run(
        self,
        make: Callable[[], _Steps[_T]],
        *,
        tx: bool = False,
        conflict: Callable[[Exception], Exception] | None = None,
        salvage: bool = False,
    ) -> _T:
        retried_lost = False
        for attempt in range(_ATTEMPTS):
            pool = await self._ready()
            stage = _Stage()
            try:
                async with pool.connection() as conn:
                    try:
                        return await _adrive(conn, make(), tx=tx, stage=stage)
                    except psycopg.OperationalError as e:
                        if _lost(conn, e):
                            raise _Lost(e, stage.committing) from e
                        raise
            except PoolTimeout as e:
                raise self._pool_timeout(e) from None
            except _Lost as lost:
                if salvage and stage.committed:
                    # The write is saved; only its claim was lost: the
                    # message stays pending for the next flush.
                    return cast(_T, None)
                if lost.committing:
                    raise self._unreachable(lost.error, unknown=True) from None
                if retried_lost:
                    raise self._unreachable(lost.error) from None
                retried_lost = True
                await pool.check()
            except (pg_errors.DeadlockDetected, pg_errors.SerializationFailure) as e:
                if stage.committed:  # pragma: no cover - after the write
                    raise
                if conflict is not None:
                    raise conflict(e) from e
                if attempt == _ATTEMPTS - 1:
                    raise
        raise AssertionError("unreachable")  # pragma: no cover

    async def namespace(self) -> str:
        if self._namespace is None:
            self._namespace = await self._run(self._namespace_steps)
        return self._namespace

    async def get(self, contact: str) -> Consent | None:
        return await self._run(lambda: self._get_steps(contact))

    async def log(self, contact: str, *, after: int = 0) -> list[AuditEvent]:
        check_after(after)
        return await self._run(lambda: self._log_steps(contact, after))

    async def put(
        self,
        consent: Consent,
        events: Sequence[AuditEvent],
        *,
        expected_version: int,
        lease: Lease | None = None,
    ) -> Outgoing | None:
        make, tx = self._prepare_put(consent, events, expected_version, lease)
        try:
            claimed = await self._run(
                make,
                tx=tx,
                conflict=self._put_conflict(consent, expected_version),
                salvage=True,
            )
        except StaleVersion:
            await asyncio.sleep(self._backoff(consent.contact))
            raise
        self._heads().add(consent)
        return claimed

    async def pending(
        self, *, contact: str | None = None, limit: int | None = None
    ) -> list[Outgoing]:
        check_limit(limit)
        return await self._run(lambda: self._pending_steps(contact, limit))

    async def claim(self, key: str, *, until: datetime, now: datetime) -> bool:
        timestamp(until, "until")
        timestamp(now, "now")
        return await self._run(lambda: self._claim_steps(key, until, now))

    async def due(self, *, now: datetime, limit: int | None = None) -> list[Outgoing]:
        check_limit(limit)
        timestamp(now, "now")
        return await self._run(lambda: self._due_steps(now, limit))

    async def release(
        self,
        key: str,
        *,
        error: str | None = None,
        now: datetime | None = None,
        backoff: timedelta | None = None,
    ) -> int:
        retry_time(now, backoff, 1)  # the arguments, checked before any write
        return await self._run(
            lambda: self._release_steps(key, error, now, backoff), tx=True
        )

    async def mark_sent(
        self,
        key: str,
        *,
        lease: Lease | None = None,
        provider_id: str | None = None,
        at: datetime | None = None,
    ) -> Outgoing | None:
        leased = check_lease(lease)
        mark = self._mark(key, provider_id, at)
        return await self._run(lambda: self._mark_steps(mark, leased))

    async def delivery(
        self,
        key_or_provider_id: str,
        status: DeliveryStatus,
        *,
        at: datetime,
        error_code: str | None = None,
    ) -> Outgoing | None:
        """See :meth:`PostgresStore.delivery`."""
        checked = check_delivery(status)
        timestamp(at, "at")
        return await self._run(
            lambda: self._delivery_steps(key_or_provider_id, checked, at, error_code)
        )

    async def messages(self, contact: str) -> list[MessageRecord]:
        """See :meth:`PostgresStore.messages`."""
        return await self._run(lambda: self._messages_steps(contact))

    async def dead_letters(self, *, limit: int | None = None) -> list[MessageRecord]:
        """See :meth:`PostgresStore.dead_letters`."""
        check_limit(limit)
        return await self._run(lambda: self._dead_letters_steps(limit))

    async def message_status(self, key: str) -> MessageStatus | None:
        """See :meth:`PostgresStore.message_status`."""
        return await self._run(lambda: self._status_steps(key))

    async def claimed_version(self, key: str) -> int | None:
        """See :meth:`PostgresStore.claimed_version`."""
        return await self._run(lambda: self._claimed_version_steps(key))

    async def contacts(
        self, *, after: str | None = None, limit: int | None = None
    ) -> list[str]:
        """See :meth:`PostgresStore.contacts`."""
        check_page(after, limit)
        return await self._run(lambda: self._contacts_steps(after, limit))

    async def restore(
        self,
        consent: Consent,
        events: Sequence[AuditEvent],
        messages: Sequence[MessageRecord] = (),
    ) -> None:
        """See :meth:`PostgresStore.restore`."""
        _write, rows = prepare_restore(consent, events, messages)
        await self._run(lambda: self._restore_steps(consent, events, rows), tx=True)
        self._heads().add(consent)

    async def erase(
        self, contact: str, erasure: Erasure, *, expected_version: int
    ) -> None:
        """See :meth:`PostgresStore.erase`."""
        digest = check_erasure(contact, erasure, expected_version)
        self._heads().drop(contact)
        await self._run(
            lambda: self._erase_steps(contact, erasure, expected_version, digest),
            tx=True,
        )
        self._heads().drop(contact)

    async def suppress(self, erasure: Erasure) -> bool:
        """See :meth:`PostgresStore.suppress`."""
        return await self._run(lambda: self._suppress_steps(erasure))

    async def erasure(self, key: str) -> Erasure | None:
        """See :meth:`PostgresStore.erasure`."""
        return await self._run(lambda: self._erasure_steps(key))

    async def erasures(
        self, *, after: str | None = None, limit: int | None = None
    ) -> list[Erasure]:
        """See :meth:`PostgresStore.erasures`."""
        check_page(after, limit)
        return await self._run(lambda: self._erasures_steps(after, limit))

    async def purge_delivered(self, older_than: datetime) -> int:
        """See :meth:`PostgresStore.purge_delivered`."""
        timestamp(older_than, "older_than")
        return await self._run(lambda: self._purge_steps(older_than))


async def _adrive(conn: _AConn, steps: _Steps[_T], *, tx: bool, stage: _Stage) -> _T:
    """:func:`_drive` on an async connection."""
    cur = conn.cursor()
    try:
        if tx:
            await cur.execute(_BEGIN)
        value: _Rows | None = None
        error: Exception | None = None
        while True:
            try:
                sql = steps.send(value) if error is None else steps.throw(error)  # type: ignore[arg-type]
            except StopIteration as done:
                result: _T = done.value
                break
            value, error = None, None
            if sql.commits:
                stage.committing = True
            try:
                await cur.execute(sql.text, sql.params)
                rows = await cur.fetchall() if cur.description is not None else []
                value = _Rows(cur.rowcount, rows)
            except psycopg.IntegrityError as e:
                error = e
            else:
                stage.committed = stage.committing
        if tx:
            stage.committing = True
            await cur.execute("COMMIT")
        return result
    except BaseException:
        if (
            tx
            and not conn.closed
            and conn.info.transaction_status
            in (TransactionStatus.INTRANS, TransactionStatus.INERROR)
        ):
            with contextlib.suppress(psycopg.Error):
                await cur.execute("ROLLBACK")
        raise
    finally:
        steps.close()
        await cur.close()
