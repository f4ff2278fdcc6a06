"""The change feed across hosts (PostgreSQL only).

Every write transaction sends `NOTIFY packyard_changes, '<serial>[,config]'` (delivered at
commit). One listener per host publishes what it hears into the host's serial file, where every
worker of the host sees it with one read (storage/db.py `SerialFile`). The listener is the
worker holding the flock on `SERVERDIR/feed.lock`; when it exits, another worker takes over.

A host that missed notifications (start-up, a dropped connection) catches up from
`max(serial)` of the changes table on every (re)connect and every `poll_interval` seconds. A
serial learnt that way is published as a config change too: which changes it covers is not
known, and dropping the config caches once too often is only slower, never wrong.
"""

from __future__ import annotations

import fcntl
import logging
import os
import threading
import time
from pathlib import Path
from typing import Any, Protocol

import psycopg
from sqlalchemy import Connection, text

CHANNEL = "packyard_changes"
# How the listener's connection shows in pg_stat_activity (operators, tests).
APPLICATION_NAME = "packyard-change-feed"
# The listener wakes at least this often to notice a stop request.
WAKE_INTERVAL = 0.2
BACKOFF_FIRST = 0.1
BACKOFF_MAX = 5.0
CONNECT_TIMEOUT = 5

log = logging.getLogger("packyard.feed")
_NOTIFY = text("SELECT pg_notify(:channel, :payload)")


class Publisher(Protocol):
    def read(self) -> int: ...

    def publish(self, serial: int, config: bool = False) -> None: ...


def notify(connection: Connection, serial: int, config: bool) -> None:
    """Tell every host's listener, at commit, that `serial` was written."""
    payload = f"{serial},config" if config else str(serial)
    connection.execute(_NOTIFY, {"channel": CHANNEL, "payload": payload})


def parse_payload(payload: str) -> tuple[int, bool] | None:
    """`(serial, config)` from a notification's payload; None for anything else."""
    serial, _, kind = payload.partition(",")
    if not serial.isdigit():
        return None
    return int(serial), kind == "config"


class ChangeFeed:
    """The listener thread of one worker; it listens only while it leads its host."""

    def __init__(
        self, conninfo: str, serial: Publisher, lock_path: Path, poll_interval: float
    ) -> None:
        self._conninfo = conninfo
        self._serial = serial
        self._lock_path = lock_path
        self._poll_interval = poll_interval
        self._stop = threading.Event()
        self._lock_fd = -1
        self._thread = threading.Thread(target=self._run, name="change-feed", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout=WAKE_INTERVAL * 4)
        if self._lock_fd >= 0:
            os.close(self._lock_fd)
            self._lock_fd = -1

    def _run(self) -> None:
        backoff = BACKOFF_FIRST
        while not self._stop.is_set():
            if not self._lead():
                self._stop.wait(self._poll_interval)
                continue
            try:
                self._listen()
            except (psycopg.Error, OSError) as exc:
                log.warning("change feed: %s; reconnecting in %.1f s", exc, backoff)
                self._stop.wait(backoff)
                backoff = min(backoff * 2, BACKOFF_MAX)
                continue
            backoff = BACKOFF_FIRST

    def _lead(self) -> bool:
        """Whether this worker is (now) its host's listener: it holds the feed lock."""
        if self._lock_fd >= 0:
            return True
        fd = os.open(self._lock_path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            return False
        self._lock_fd = fd
        return True

    def _listen(self) -> None:
        with psycopg.connect(
            self._conninfo,
            autocommit=True,
            connect_timeout=CONNECT_TIMEOUT,
            application_name=APPLICATION_NAME,
        ) as conn:
            conn.execute(f"LISTEN {CHANNEL}")
            self._catch_up(conn)  # what was written while nobody listened
            polled = time.monotonic()
            while not self._stop.is_set():
                for note in conn.notifies(timeout=WAKE_INTERVAL):
                    self._heard(note.payload)
                if time.monotonic() - polled >= self._poll_interval:
                    self._catch_up(conn)
                    polled = time.monotonic()

    def _heard(self, payload: str) -> None:
        parsed = parse_payload(payload)
        if parsed is not None:
            self._serial.publish(*parsed)

    def _catch_up(self, conn: psycopg.Connection[Any]) -> None:
        row = conn.execute("SELECT max(serial) FROM changes").fetchone()
        newest = int(row[0] or 0) if row else 0
        if newest > self._serial.read():
            self._serial.publish(newest, config=True)
