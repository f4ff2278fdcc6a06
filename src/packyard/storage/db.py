"""Engine set-up, schema migrations, transactions, and the change-serial file.

SQLite runs in WAL mode; writes go through one writer at a time (`BEGIN IMMEDIATE` across
processes, a lock within one). Every write transaction records one row in `changes`, whose
serial is then published in a small file so that every worker process can tell, with one
`pread`, whether anything changed since it cached a page.
"""

from __future__ import annotations

import fcntl
import hashlib
import logging
import mmap
import os
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TypeVar

from alembic import command
from alembic.config import Config as AlembicConfig
from sqlalchemy import Connection, Engine, create_engine, event, func, insert, pool, select, text
from sqlalchemy.engine import ExceptionContext, make_url
from sqlalchemy.exc import OperationalError

from packyard.core.audit import Actor
from packyard.errors import DatabaseUnavailable
from packyard.storage import audit, feed, store, tables
from packyard.storage.blobs import BlobStore, storage_full

logging.getLogger("alembic").setLevel(logging.WARNING)

MIGRATIONS = Path(__file__).parent / "migrations"
T = TypeVar("T")
SERIAL_WIDTH = 20
_INSERT_CHANGE = insert(tables.changes)
# PostgreSQL advisory locks: the writer's turn has a two-key lock of its own; single flights
# use one-key locks (a key space apart from the two-key one).
_WRITER_TURN = text("SELECT pg_advisory_xact_lock(1885430635, 1)")
_TRY_LOCK = text("SELECT pg_try_advisory_lock(:id)")
_WAIT_LOCK = text("SELECT pg_advisory_lock(:id)")
_UNLOCK = text("SELECT pg_advisory_unlock(:id)")


class SerialFile:
    """Two fixed-width counters in one file: the change serial, and the serial of the last
    change to users or index configs. Written under a lock, never backwards.

    Reads go through a shared memory map: no system call, so checking the serial on the event
    loop never hands the GIL to a busy worker thread (which could keep it for milliseconds).
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        if not path.exists():
            self._write_raw(0)
        self._fd = os.open(path, os.O_RDWR)
        self._pad_to(2 * SERIAL_WIDTH)  # files from before the config serial hold one number
        self._view = mmap.mmap(self._fd, 2 * SERIAL_WIDTH, prot=mmap.PROT_READ)

    def read(self) -> int:
        """The serial of the newest change of any kind."""
        return self._read_at(0)

    def read_config(self) -> int:
        """The serial of the newest change to users or index configurations."""
        return self._read_at(SERIAL_WIDTH)

    def _read_at(self, offset: int) -> int:
        data = self._view[offset : offset + SERIAL_WIDTH]
        return int(data) if data.strip() else 0

    def _pad_to(self, size: int) -> None:
        fcntl.flock(self._fd, fcntl.LOCK_EX)
        try:
            current = os.fstat(self._fd).st_size
            if current < size:
                os.pwrite(self._fd, b" " * (size - current), current)
        finally:
            fcntl.flock(self._fd, fcntl.LOCK_UN)

    def publish(self, serial: int, config: bool = False) -> None:
        fcntl.flock(self._fd, fcntl.LOCK_EX)
        try:
            for offset, wanted in ((0, True), (SERIAL_WIDTH, config)):
                if wanted and serial > self._read_at(offset):
                    os.pwrite(self._fd, str(serial).rjust(SERIAL_WIDTH).encode(), offset)
        finally:
            fcntl.flock(self._fd, fcntl.LOCK_UN)

    def _write_raw(self, serial: int) -> None:
        tmp = self.path.with_suffix(".tmp")
        tmp.write_bytes(str(serial).rjust(SERIAL_WIDTH).encode())
        os.replace(tmp, self.path)

    def close(self) -> None:
        if self._fd >= 0:
            self._view.close()
            os.close(self._fd)
            self._fd = -1


class Database:
    """The metadata database: pooled reads, serialised writes, one change serial per write."""

    def __init__(self, url: str, serial_path: Path, blobs: BlobStore | None = None) -> None:
        """`blobs`: the store whose blobs the rows point at. Each write transaction removes
        those its rows let go of; without it, they stay noted for a later writer."""
        self._blobs = blobs
        self.url = make_url(url)
        if self.url.drivername == "postgresql":
            self.url = self.url.set(drivername="postgresql+psycopg")
        self.is_sqlite = self.url.get_backend_name() == "sqlite"
        if self.is_sqlite and self.url.database not in (None, "", ":memory:"):
            keep_private(Path(self.url.database))
        self.engine = self._create_engine()
        self._write_lock = threading.Lock()
        # SQLite writers of all worker processes queue on this file's flock, which wakes the
        # next one the moment it is released; SQLite's own busy handler polls, sleeping 1, 2,
        # 5, 10 ... ms between tries.
        self._write_lock_fd = os.open(serial_path.parent / "write.lock", os.O_RDWR | os.O_CREAT)
        self.migrate()
        self.serial = SerialFile(serial_path)
        self._feed: feed.ChangeFeed | None = None
        # Whatever changed while no server ran (an import, another host) counts as new.
        self.serial.publish(self._last_serial(), config=True)

    def _create_engine(self) -> Engine:
        if not self.is_sqlite:
            engine = create_engine(self.url, pool_pre_ping=True, pool_size=10, max_overflow=20)
            event.listen(engine, "handle_error", _disk_full)
            event.listen(engine, "handle_error", _unreachable)
            return engine
        engine = create_engine(
            self.url,
            poolclass=pool.QueuePool,
            pool_size=8,
            max_overflow=16,
            connect_args={"check_same_thread": False, "timeout": 30},
        )
        event.listen(engine, "connect", _sqlite_on_connect)
        event.listen(engine, "begin", _sqlite_on_begin)
        event.listen(engine, "handle_error", _disk_full)
        return engine

    def migrate(self) -> None:
        """Bring the schema to the newest revision (a server dir made by N opens in N+1)."""
        config = AlembicConfig()
        config.set_main_option("script_location", str(MIGRATIONS))
        with self.engine.connect() as connection:
            if self.is_sqlite:
                connection = connection.execution_options(sqlite_begin="IMMEDIATE")
            config.attributes["connection"] = connection
            command.upgrade(config, "head")
            connection.commit()

    @contextmanager
    def read(self) -> Iterator[Connection]:
        """A connection inside one consistent read transaction."""
        with self.engine.connect() as connection, connection.begin():
            yield connection

    @contextmanager
    def write(self, what: str, config: bool = False, **detail: Any) -> Iterator[Connection]:
        """One write transaction; it records a change row and its audit entry (by the actor
        of the current context: `storage.audit`), and publishes the new serial.

        `config`: the transaction changes users or index configurations, which workers cache
        until the next such change.
        """
        with self._writer_connection() as connection, self._blob_lifetimes() as release:
            with connection.begin():
                self._take_writer_turn(connection)
                audit.begin(connection)
                yield connection
                serial = _record_change(connection, what, detail)
                audit.record(connection, serial, what, detail, audit.current_actor())
                release(connection)
                self._announce(connection, serial, config)
            self.serial.publish(serial, config)

    @contextmanager
    def write_bookkeeping(self) -> Iterator[Connection]:
        """A write that changes no content (e.g. when a token was last used): no change row and
        no new serial, so it drops no cached page and is no change to replicate or export."""
        with self._writer_connection() as connection, connection.begin():
            yield connection

    def write_each(
        self, writes: Sequence[tuple[str, Mapping[str, Any], Callable[[Connection], T], Actor]]
    ) -> list[T | Exception]:
        """Several writes in one transaction (group commit), each `(what, detail, work, actor)`
        as `write` would make it alone: in its own savepoint, recording its own change and
        audit entry. The writes come from several requests, so each names its own actor
        (captured in its request: `storage.audit.current_actor()`). A write that raises is
        rolled back alone and its exception takes its place in the results."""
        results: list[T | Exception] = []
        serial = 0
        with self._writer_connection() as connection, self._blob_lifetimes() as release:
            with connection.begin():
                self._take_writer_turn(connection)
                for what, detail, work, actor in writes:
                    try:
                        with connection.begin_nested():
                            audit.begin(connection)
                            result = work(connection)
                            recorded = _record_change(connection, what, detail)
                            audit.record(connection, recorded, what, detail, actor)
                    except Exception as exc:  # it belongs to that write alone
                        results.append(exc)
                        continue
                    serial = recorded
                    results.append(result)
                release(connection)
                if serial:
                    self._announce(connection, serial, False)
            if serial:
                self.serial.publish(serial)
        return results

    @contextmanager
    def _blob_lifetimes(self) -> Iterator[Callable[[Connection], None]]:
        """Yields `release(conn)`, to call last in a write transaction: it moves aside the
        blobs the transaction's rows let go of (noted by triggers) that no row points at any
        more. They are deleted once the transaction commits and put back if it fails. Under
        the write lock, so no upload can adopt a blob while it is being removed."""
        removal = self._blobs.removal() if self._blobs is not None else None

        def release(connection: Connection) -> None:
            if removal is None:
                return
            released = store.take_released_blobs(connection)
            if released:
                for sha in released - store.referenced_blobs(connection, released):
                    removal.remove(sha)

        try:
            yield release
        except BaseException:
            if removal is not None:
                removal.undo()
            raise
        if removal is not None:
            removal.finish()

    @contextmanager
    def _writer_connection(self) -> Iterator[Connection]:
        """A connection whose transactions write (SQLite: `BEGIN IMMEDIATE`), on our turn."""
        with self._writing(), self.engine.connect() as connection:
            if self.is_sqlite:
                connection = connection.execution_options(sqlite_begin="IMMEDIATE")
            yield connection

    @contextmanager
    def _writing(self) -> Iterator[None]:
        """The writer's turn: one thread of this process, one process of this server dir."""
        with self._write_lock:
            if not self.is_sqlite:
                yield
                return
            fcntl.flock(self._write_lock_fd, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(self._write_lock_fd, fcntl.LOCK_UN)

    def _take_writer_turn(self, connection: Connection) -> None:
        """PostgreSQL: one write transaction at a time across every host and worker, held to
        its commit, as SQLite's single writer is. Each write's look-up-then-change (a
        duplicate upload's 409) is then decided on committed rows, and serials commit in
        their order, so a published serial never runs ahead of a change not yet visible."""
        if not self.is_sqlite:
            connection.execute(_WRITER_TURN)

    def _announce(self, connection: Connection, serial: int, config: bool) -> None:
        """PostgreSQL: the change feed's NOTIFY, sent to every host at commit."""
        if not self.is_sqlite:
            feed.notify(connection, serial, config)

    def follow_changes(self, poll_interval: float) -> None:
        """PostgreSQL: keep this host's serial file following writes made by other hosts
        (storage/feed.py). Started by serving processes only; a no-op on SQLite."""
        if self.is_sqlite or self._feed is not None:
            return
        conninfo = self.url.set(drivername="postgresql").render_as_string(hide_password=False)
        lock = self.serial.path.parent / "feed.lock"
        self._feed = feed.ChangeFeed(conninfo, self.serial, lock, poll_interval)
        self._feed.start()

    @contextmanager
    def single_flight(self, key: str, wait: float) -> Iterator[bool]:
        """Across hosts, one holder of `key` at a time. Yields True to the one that got it at
        once (it does the work; the others wait until it is done, at most `wait` seconds),
        False to a waiter (look for the work's result, then maybe try again). On SQLite, with
        one host, always True (each worker keeps its own single flight)."""
        if self.is_sqlite:
            yield True
            return
        lock_id = _lock_id(key)
        with self.engine.connect() as connection:
            got = connection.execute(_TRY_LOCK, {"id": lock_id}).scalar()
            connection.commit()
            if not got:
                _wait_for_lock(connection, lock_id, wait)
                yield False
                return
            try:
                yield True
            finally:
                connection.execute(_UNLOCK, {"id": lock_id})
                connection.commit()

    def check(self) -> None:
        """Raises unless the database answers a trivial query (readiness probes)."""
        with self.engine.connect() as connection:
            connection.execute(text("SELECT 1"))

    def _last_serial(self) -> int:
        with self.read() as connection:
            value = connection.execute(select(func.max(tables.changes.c.serial))).scalar()
        return int(value or 0)

    def close(self) -> None:
        if self._feed is not None:
            self._feed.stop()
        self.engine.dispose()
        self.serial.close()
        if self._write_lock_fd >= 0:
            os.close(self._write_lock_fd)
            self._write_lock_fd = -1


# SQLite creates the -wal and -shm files with the mode of the database file itself.
SQLITE_COMPANIONS = ("", "-wal", "-shm", "-journal")


def keep_private(database: Path) -> None:
    """The SQLite file holds password hashes: created, and kept, readable by the owner only
    (with its -wal/-shm/-journal companions, also when an older version made them 0644)."""
    fd = os.open(database, os.O_RDWR | os.O_CREAT, 0o600)
    os.close(fd)
    for suffix in SQLITE_COMPANIONS:
        path = database.with_name(database.name + suffix)
        try:
            if path.stat().st_mode & 0o077:
                path.chmod(0o600)
        except FileNotFoundError:
            continue


def _lock_id(key: str) -> int:
    """A signed 64-bit advisory lock id for `key`, the same on every host."""
    digest = hashlib.sha256(key.encode()).digest()
    return int.from_bytes(digest[:8], "big", signed=True)


def _wait_for_lock(connection: Connection, lock_id: int, wait: float) -> None:
    """Wait (at most `wait` s) until the holder of `lock_id` lets go; then let go at once."""
    try:
        connection.execute(text(f"SET lock_timeout = {int(wait * 1000)}"))
        connection.execute(_WAIT_LOCK, {"id": lock_id})
        connection.execute(_UNLOCK, {"id": lock_id})
    except OperationalError:  # waited long enough: the caller looks for the result anyway
        connection.rollback()
    else:
        connection.commit()
    finally:
        connection.execute(text("RESET lock_timeout"))
        connection.commit()


def _record_change(connection: Connection, what: str, detail: Mapping[str, Any]) -> int:
    """Insert the transaction's `changes` row; its serial."""
    change = {"at": time.time(), "what": what, "detail": dict(detail)}
    result = connection.execute(_INSERT_CHANGE, change)
    return int(result.inserted_primary_key[0])  # type: ignore[index]


_SQLITE_FULL = 13
_POSTGRESQL_DISK_FULL = "53100"


def _disk_full(context: ExceptionContext) -> None:
    """A database that ran out of space raises `StorageFull` (507), not a database error."""
    original = context.original_exception
    sqlite_code = getattr(original, "sqlite_errorcode", None)
    full = isinstance(sqlite_code, int) and sqlite_code & 0xFF == _SQLITE_FULL
    if full or getattr(original, "sqlstate", None) == _POSTGRESQL_DISK_FULL:
        raise storage_full() from original


def _unreachable(context: ExceptionContext) -> None:
    """PostgreSQL that cannot be reached (down, restarting, a dropped connection) raises
    `DatabaseUnavailable` (503: try again), not a database error (500). A failed pre-ping is
    left alone: the pool then connects afresh, and only that failing counts."""
    if context.is_pre_ping:
        return
    if context.connection is None or context.is_disconnect:  # connecting, or connection lost
        raise DatabaseUnavailable(
            "the server's database cannot be reached; try again shortly"
            f" ({type(context.original_exception).__name__})"
        ) from context.original_exception


def _sqlite_on_connect(dbapi_connection: Any, _record: Any) -> None:
    # Let SQLAlchemy's "begin" event issue BEGIN itself (pysqlite's own handling is wrong).
    dbapi_connection.isolation_level = None
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA busy_timeout=30000")
    cursor.close()


def _sqlite_on_begin(connection: Connection) -> None:
    mode = connection.get_execution_options().get("sqlite_begin", "")
    connection.exec_driver_sql(f"BEGIN {mode}".strip())
