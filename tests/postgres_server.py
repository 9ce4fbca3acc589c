"""A throw-away PostgreSQL server for the tests and the benchmarks.

The first test that asks for a PostgreSQL store starts one server for the
whole session: ``initdb`` into a fresh temporary directory, then ``pg_ctl
start`` on 127.0.0.1 at a free port (and a Unix socket in the same
directory), with the server binaries of Debian's ``postgresql`` package
(``/usr/lib/postgresql/<version>/bin``, or ``OPTIN_PG_BINDIR``). PostgreSQL
refuses to run as root: as root, the server runs as the ``postgres`` system
user, which owns the directory. Each store gets its own schema (its
``search_path``), dropped when the test ends; at the end of the session the
server is stopped and its directory deleted.

``OPTIN_TEST_PG_DSN`` points the tests at an existing server instead (a
role allowed to create schemas); nothing is started then.

When no server can start, PostgreSQL tests fail if the ``CI`` environment
variable is set (CI must never skip them), and are skipped with the reason
otherwise.
"""

from __future__ import annotations

import asyncio
import atexit
import contextlib
import itertools
import os
import pwd
import re
import shutil
import socket
import subprocess
import tempfile
import threading
from collections.abc import Awaitable, Callable, Iterator, Mapping, Sequence
from datetime import datetime
from pathlib import Path
from typing import Any, TypeVar

import pytest

from optin_core import AuditEvent, Consent, Outgoing
from optin_core.stores import Lease

#: Settings of the test server: durability off (a crash of a throw-away
#: server loses nothing anyone needs), enough connections for 8 processes
#: and the tests' pools.
TEST_SETTINGS: Mapping[str, str] = {
    "fsync": "off",
    "synchronous_commit": "off",
    "full_page_writes": "off",
    "max_connections": "300",
    "shared_buffers": "64MB",
    "log_min_messages": "warning",
    "deadlock_timeout": "200ms",
}

_T = TypeVar("_T")


class ServerUnavailable(Exception):
    """No PostgreSQL server could be started (the reason is the message)."""


def find_bindir() -> Path:
    """Where ``initdb``, ``pg_ctl`` and ``postgres`` are."""
    wanted = ("initdb", "pg_ctl", "postgres")
    candidates: list[Path] = []
    if os.environ.get("OPTIN_PG_BINDIR"):
        candidates.append(Path(os.environ["OPTIN_PG_BINDIR"]))
    debian = sorted(
        Path("/usr/lib/postgresql").glob("*/bin"),
        key=lambda p: [int(x) for x in re.findall(r"\d+", p.parent.name)] or [0],
        reverse=True,
    )
    candidates += debian
    found = shutil.which("initdb")
    if found:
        candidates.append(Path(found).resolve().parent)
    for bindir in candidates:
        if all((bindir / name).exists() for name in wanted):
            return bindir
    raise ServerUnavailable(
        "no PostgreSQL server binaries (initdb, pg_ctl, postgres): install "
        "Debian's postgresql package (apt-get install postgresql) or set "
        "OPTIN_PG_BINDIR"
    )


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


class PostgresServer:
    """One throw-away server: :meth:`start`, :meth:`dsn`, :meth:`stop`."""

    def __init__(self, settings: Mapping[str, str] = TEST_SETTINGS) -> None:
        self.settings = dict(settings)
        self.root: Path | None = None
        self.port = 0
        self.host = "127.0.0.1"
        self.bindir: Path | None = None
        self._user: str | None = None
        self._lock = threading.Lock()

    @property
    def data(self) -> Path:
        assert self.root is not None
        return self.root / "data"

    def _run(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("PG")}
        env["LC_ALL"] = "C"
        return subprocess.run(
            args,
            cwd=self.root,
            env=env,
            user=self._user,
            group=None if self._user is None else pwd.getpwnam(self._user).pw_gid,
            extra_groups=None if self._user is None else [],
            capture_output=True,
            text=True,
            check=check,
            timeout=120,
        )

    def start(self) -> None:
        self.bindir = find_bindir()
        if os.geteuid() == 0:
            try:
                pwd.getpwnam("postgres")
            except KeyError:
                raise ServerUnavailable(
                    "running as root, and there is no 'postgres' system user "
                    "to run the server as (PostgreSQL refuses root)"
                ) from None
            self._user = "postgres"
        self.root = Path(tempfile.mkdtemp(prefix="optin-pg-"))
        self.root.chmod(0o700)
        if self._user is not None:
            owner = pwd.getpwnam(self._user)
            os.chown(self.root, owner.pw_uid, owner.pw_gid)
        try:
            self._run(
                str(self.bindir / "initdb"),
                "-D",
                str(self.data),
                "-U",
                "postgres",
                "-A",
                "trust",
                "-E",
                "UTF8",
                "--no-locale",
                "--no-sync",
            )
        except subprocess.CalledProcessError as e:
            self._remove()
            raise ServerUnavailable(f"initdb failed: {e.stderr.strip()}") from None
        last = ""
        for _ in range(3):
            self.port = _free_port()
            self._configure()
            done = self._run(
                str(self.bindir / "pg_ctl"),
                "-D",
                str(self.data),
                "-l",
                str(self.root / "server.log"),
                "-w",
                "-t",
                "60",
                "start",
                check=False,
            )
            if done.returncode == 0:
                atexit.register(self.stop)
                return
            log = self.root / "server.log"
            last = (done.stderr or done.stdout).strip()
            if log.exists():
                last += "\n" + log.read_text(errors="replace")[-2000:]
        self._remove()
        raise ServerUnavailable(f"pg_ctl start failed: {last}")

    def _configure(self) -> None:
        conf = self.data / "postgresql.auto.conf"
        lines = [
            "listen_addresses = '127.0.0.1'",
            f"port = {self.port}",
            f"unix_socket_directories = '{self.root}'",
            *(f"{name} = '{value}'" for name, value in self.settings.items()),
        ]
        conf.write_text("\n".join(lines) + "\n")
        if self._user is not None:
            owner = pwd.getpwnam(self._user)
            os.chown(conf, owner.pw_uid, owner.pw_gid)

    def dsn(self, dbname: str = "postgres", *, search_path: str | None = None) -> str:
        dsn = f"host={self.host} port={self.port} user=postgres dbname={dbname}"
        if search_path is not None:
            dsn += f" options='-c search_path={search_path}'"
        return dsn

    def stop(self) -> None:
        with self._lock:
            if self.root is None:
                return
            if self.bindir is not None and self.data.exists():
                self._run(
                    str(self.bindir / "pg_ctl"),
                    "-D",
                    str(self.data),
                    "-m",
                    "immediate",
                    "-w",
                    "stop",
                    check=False,
                )
            self._remove()

    def _remove(self) -> None:
        if self.root is not None:
            shutil.rmtree(self.root, ignore_errors=True)
            self.root = None


# ---------------------------------------------------------------------------
# The session's server, schemas per test, and the stores made on them


class _Session:
    def __init__(self) -> None:
        self.server: PostgresServer | None = None
        self.admin_dsn: str | None = None
        self.failure: str | None = None
        self.schemas: list[str] = []
        self.closers: list[Callable[[], None]] = []
        self.counter = itertools.count(1)
        self.lock = threading.Lock()

    def admin(self) -> str:
        with self.lock:
            if self.admin_dsn is not None:
                return self.admin_dsn
            if self.failure is None:
                try:
                    self._open()
                except ServerUnavailable as e:
                    self.failure = str(e)
            if self.failure is not None:
                unavailable(self.failure)
            assert self.admin_dsn is not None
            return self.admin_dsn

    def _open(self) -> None:
        try:
            import psycopg
            import psycopg_pool  # noqa: F401
        except ImportError as e:
            raise ServerUnavailable(
                f"psycopg is not installed ({e}): pip install -e '.[test]'"
            ) from None
        external = os.environ.get("OPTIN_TEST_PG_DSN")
        if external:
            dsn = external
        else:
            server = PostgresServer()
            server.start()
            self.server = server
            dsn = server.dsn()
        try:
            with psycopg.connect(dsn, autocommit=True) as conn:
                conn.execute("SELECT 1")
        except psycopg.Error as e:
            raise ServerUnavailable(f"cannot connect to {dsn}: {e}") from e
        self.admin_dsn = dsn

    def schema_dsn(self) -> str:
        """A DSN whose ``search_path`` is a new, empty schema."""
        import psycopg

        admin = self.admin()
        name = f"optin_t{next(self.counter)}_{os.getpid()}"
        with psycopg.connect(admin, autocommit=True) as conn:
            conn.execute(f"CREATE SCHEMA {name}")
        self.schemas.append(name)
        return _with_search_path(admin, name)

    def cleanup(self) -> None:
        closers, self.closers = self.closers, []
        for close in reversed(closers):
            with contextlib.suppress(Exception):
                close()
        schemas, self.schemas = self.schemas, []
        if not schemas or self.admin_dsn is None:
            return
        import psycopg

        with (
            contextlib.suppress(psycopg.Error),
            psycopg.connect(self.admin_dsn, autocommit=True) as conn,
        ):
            conn.execute("SET lock_timeout = '5s'")
            for name in schemas:
                with contextlib.suppress(psycopg.Error):
                    conn.execute(f"DROP SCHEMA {name} CASCADE")

    def stop(self) -> None:
        self.cleanup()
        if self.server is not None:
            self.server.stop()
            self.server = None
        self.admin_dsn = None


SESSION = _Session()


def _with_search_path(dsn: str, schema: str) -> str:
    from psycopg.conninfo import make_conninfo

    return make_conninfo(dsn, options=f"-c search_path={schema}")


def unavailable(reason: str) -> None:
    """Fail (under CI) or skip the current test: no PostgreSQL server."""
    message = f"no PostgreSQL server for the tests: {reason}"
    if os.environ.get("CI"):
        pytest.fail(message + " (CI is set: PostgreSQL tests never skip)", False)
    pytest.skip(message)


def postgres_dsn() -> str:
    """A DSN on the session's server, whose tables go to a fresh schema
    (dropped after the test)."""
    return SESSION.schema_dsn()


def postgres_store(dsn: str | None = None, **settings: Any) -> Any:
    """A :class:`PostgresStore` on a fresh schema, closed after the test."""
    from optin_core.stores.postgres import PostgresStore

    store = PostgresStore(
        postgres_dsn() if dsn is None else dsn,
        **{"timeout": 10.0, "max_size": 8, **settings},
    )
    SESSION.closers.append(store.close)
    return store


def async_postgres_store(dsn: str | None = None, **settings: Any) -> AsyncFacade:
    """An :class:`AsyncPostgresStore` on a fresh schema, behind
    :class:`AsyncFacade` (closed after the test)."""
    facade = AsyncFacade(postgres_dsn() if dsn is None else dsn, **settings)
    SESSION.closers.append(facade.close)
    return facade


class AsyncFacade:
    """Blocking methods over an :class:`AsyncPostgresStore`, whose loop runs
    in a thread of its own: the store-contract suite, written for blocking
    stores, runs on the async store through it (every call is the async
    store's own coroutine, awaited in its loop)."""

    def __init__(self, dsn: str, **settings: Any) -> None:
        from optin_core.stores.postgres import AsyncPostgresStore

        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(
            target=self._loop.run_forever, name="async-store", daemon=True
        )
        self._thread.start()
        self.target = AsyncPostgresStore(
            dsn, **{"timeout": 10.0, "max_size": 8, **settings}
        )
        self._closed = False

    def __repr__(self) -> str:
        return f"AsyncFacade({self.target!r})"

    def _call(self, coro: Awaitable[_T]) -> _T:
        return asyncio.run_coroutine_threadsafe(coro, self._loop).result()  # type: ignore[arg-type]

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        try:
            self._call(self.target.close())
        finally:
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(timeout=10)
            self._loop.close()

    def namespace(self) -> str:
        return self._call(self.target.namespace())

    def get(self, contact: str) -> Consent | None:
        return self._call(self.target.get(contact))

    def log(self, contact: str, *, after: int = 0) -> list[AuditEvent]:
        return self._call(self.target.log(contact, after=after))

    def put(
        self,
        consent: Consent,
        events: Sequence[AuditEvent],
        *,
        expected_version: int,
        lease: Lease | None = None,
    ) -> Outgoing | None:
        return self._call(
            self.target.put(
                consent, events, expected_version=expected_version, lease=lease
            )
        )

    def pending(
        self, *, contact: str | None = None, limit: int | None = None
    ) -> list[Outgoing]:
        return self._call(self.target.pending(contact=contact, limit=limit))

    def due(self, **kwargs: Any) -> list[Outgoing]:
        return self._call(self.target.due(**kwargs))

    def claim(self, key: str, *, until: datetime, now: datetime) -> bool:
        return self._call(self.target.claim(key, until=until, now=now))

    def release(self, key: str, **kwargs: Any) -> int:
        return self._call(self.target.release(key, **kwargs))

    def mark_sent(self, key: str, **kwargs: Any) -> Outgoing | None:
        return self._call(self.target.mark_sent(key, **kwargs))

    def delivery(self, key_or_provider_id: str, status: Any, **kwargs: Any) -> Any:
        return self._call(self.target.delivery(key_or_provider_id, status, **kwargs))

    def messages(self, contact: str) -> list[Any]:
        return self._call(self.target.messages(contact))

    def dead_letters(self, **kwargs: Any) -> list[Any]:
        return self._call(self.target.dead_letters(**kwargs))

    def message_status(self, key: str) -> Any:
        return self._call(self.target.message_status(key))

    def claimed_version(self, key: str) -> int | None:
        return self._call(self.target.claimed_version(key))

    def contacts(self, **kwargs: Any) -> list[str]:
        return self._call(self.target.contacts(**kwargs))

    def restore(self, consent: Consent, events: Any, messages: Any = ()) -> None:
        self._call(self.target.restore(consent, events, messages))

    def erase(self, contact: str, erasure: Any, *, expected_version: int) -> None:
        self._call(
            self.target.erase(contact, erasure, expected_version=expected_version)
        )

    def suppress(self, erasure: Any) -> bool:
        return self._call(self.target.suppress(erasure))

    def erasure(self, key: str) -> Any:
        return self._call(self.target.erasure(key))

    def erasures(self, **kwargs: Any) -> list[Any]:
        return self._call(self.target.erasures(**kwargs))

    def purge_delivered(self, older_than: datetime) -> int:
        return self._call(self.target.purge_delivered(older_than))

    def migrate(self) -> int:
        return self._call(self.target.migrate())


# ---------------------------------------------------------------------------
# Fixtures (imported by conftest.py)


@pytest.fixture(autouse=True)
def _postgres_cleanup() -> Iterator[None]:
    """Close the PostgreSQL stores a test made and drop its schemas."""
    yield
    if SESSION.closers or SESSION.schemas:
        SESSION.cleanup()


@pytest.fixture(scope="session", autouse=True)
def _postgres_session() -> Iterator[None]:
    """Stop the session's server (if a test started it) at the end."""
    yield
    SESSION.stop()


@pytest.fixture
def pg_dsn() -> str:
    """A DSN on the session's server with a fresh schema of its own."""
    return postgres_dsn()
