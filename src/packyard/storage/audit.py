"""The audit trail in storage: who is acting (a context variable), the row each recorded write
adds in its own transaction, and reading the rows back.

The acting `Actor` lives in a `ContextVar`: the web layer sets it per request, a CLI command
for its run; it follows the request into worker threads (anyio copies the context), and
defaults to the server itself. Work done for several requests at once (a batch of uploads)
captures each request's actor when the request is made (`current_actor()`).
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any

from sqlalchemy import Connection, Row, insert, select

from packyard.core.audit import SERVER_ACTOR, Actor, Entry, Query, action_of, new_entry
from packyard.storage.tables import audit

_actor: ContextVar[Actor] = ContextVar("packyard_actor", default=SERVER_ACTOR)
_NOTES = "packyard.audit"  # key of Connection.info: what the running write adds to its entry
_UNCHANGED = "packyard.audit.unchanged"


def current_actor() -> Actor:
    return _actor.get()


def set_actor(actor: Actor) -> None:
    """Make `actor` the one acting from here on in this context (e.g. once a request's
    user is known)."""
    _actor.set(actor)


@contextmanager
def acting_as(actor: Actor) -> Iterator[None]:
    """Writes made inside are recorded as `actor`'s."""
    token = _actor.set(actor)
    try:
        yield
    finally:
        _actor.reset(token)


def note(conn: Connection, **detail: Any) -> None:
    """Add to the detail of the entry the running write will record (e.g. what it changed).
    Never a secret: detail is shown to the index owner and root (and redacted anyway)."""
    conn.info.setdefault(_NOTES, {}).update(detail)


def unchanged(conn: Connection) -> None:
    """The running write turned out to change nothing (e.g. an identical re-upload): it
    records no entry."""
    conn.info[_UNCHANGED] = True


def begin(conn: Connection) -> None:
    """Forget notes of an earlier write on this connection (called as a write starts)."""
    conn.info.pop(_NOTES, None)
    conn.info.pop(_UNCHANGED, None)


def record(
    conn: Connection, serial: int, what: str, detail: Mapping[str, Any], actor: Actor
) -> None:
    """Insert the entry of write `what` (if it is one that is recorded), inside its
    transaction: it commits, or rolls back, with the change."""
    action = action_of(what)
    notes = conn.info.pop(_NOTES, {})
    if action is None or conn.info.pop(_UNCHANGED, False):
        return
    entry = new_entry(serial, time.time(), actor, action, {**detail, **notes})
    insert_entries(conn, [entry])


def insert_entries(conn: Connection, entries: Iterable[Entry]) -> None:
    rows = [_row_values(entry) for entry in entries]
    if rows:
        conn.execute(insert(audit), rows)


def _row_values(entry: Entry) -> dict[str, Any]:
    return {
        "serial": entry.serial,
        "at": entry.at,
        "actor": entry.user,
        "token": entry.token,
        "address": entry.address,
        "action": entry.action,
        "index_name": entry.index,
        "project": entry.project,
        "version": entry.version,
        "filename": entry.filename,
        "detail": dict(entry.detail),
    }


def _entry(row: Row[Any]) -> Entry:
    return Entry(
        id=row.id,
        serial=row.serial,
        at=row.at,
        user=row.actor,
        token=row.token,
        address=row.address,
        action=row.action,
        index=row.index_name,
        project=row.project,
        version=row.version,
        filename=row.filename,
        detail=dict(row.detail or {}),
    )


def query(conn: Connection, wanted: Query) -> list[Entry]:
    """The entries `wanted` selects, at most its limit, in its order."""
    statement = select(audit)
    if wanted.user is not None:
        statement = statement.where(audit.c.actor == wanted.user)
    if wanted.index is not None:
        statement = statement.where(audit.c.index_name == wanted.index)
    if wanted.since is not None:
        statement = statement.where(audit.c.at >= wanted.since)
    if wanted.until is not None:
        statement = statement.where(audit.c.at < wanted.until)
    order = audit.c.id.asc() if wanted.oldest_first else audit.c.id.desc()
    statement = statement.order_by(order).limit(wanted.limit)
    return [_entry(row) for row in conn.execute(statement)]


def all_entries(conn: Connection) -> Iterator[Entry]:
    """Every entry, oldest first, streamed (for the export)."""
    result = conn.execution_options(yield_per=1000).execute(select(audit).order_by(audit.c.id))
    for row in result:
        yield _entry(row)
