"""The audit trail as a use case: reading it (root, or an index's owner for that index), and
carrying it through export and import. Recording happens in storage's unit of work, for
every write (`storage.db.Database.write`): no service records an entry itself."""

from __future__ import annotations

import json
from pathlib import Path

from sqlalchemy import Connection

from packyard.core.audit import SERVER_ACTOR, Actor, Entry, Query, command_actor, may_read
from packyard.core.names import split_index_name
from packyard.errors import Forbidden, InvalidInput, Unauthenticated
from packyard.services._threads import in_thread
from packyard.storage import audit as audit_rows
from packyard.storage import store
from packyard.storage.audit import acting_as, current_actor, set_actor
from packyard.storage.db import Database

__all__ = [
    "SERVER_ACTOR",
    "Actor",
    "AuditLog",
    "acting_as",
    "command_actor",
    "current_actor",
    "export_entries",
    "import_entries",
    "set_actor",
]

# Beside dataindex.json in an export; devpi-import reads only what dataindex.json names.
EXPORT_FILE = "packyard-audit.jsonl"
IMPORT_CHUNK = 1000  # entries inserted at a time: a long trail is never all in memory


class AuditLog:
    def __init__(self, db: Database) -> None:
        self._db = db

    async def read(self, viewer: str | None, query: Query) -> list[Entry]:
        """The entries `query` selects, if `viewer` may read them: 401 for nobody logged in,
        403 for a user who is neither root nor the owner of the index the query names."""
        if viewer is None:
            raise Unauthenticated("log in to read the audit log")
        return await in_thread(self._read, viewer, query)

    def _read(self, viewer: str, query: Query) -> list[Entry]:
        with self._db.read() as conn:
            if not may_read(viewer, query, _owner_of_existing(conn, query.index)):
                raise Forbidden(
                    "only root reads the audit log; an index owner reads that index's entries"
                    " while it exists (give index=USER/INDEX)"
                )
            return audit_rows.query(conn, query)


def _owner_of_existing(conn: Connection, index: str | None) -> str | None:
    """Who owns `index` now; None if it does not exist. (Its name is no proof: a deleted
    user's name, and so their index names, can be registered again by someone else.)"""
    if index is None:
        return None
    user, name = split_index_name(index)
    record = store.get_index(conn, user, name)
    return record.user if record is not None else None


def export_entries(conn: Connection, target: Path) -> int:
    """Write every entry (oldest first, one JSON object a line) beside the dump; how many."""
    count = 0
    with (target / EXPORT_FILE).open("w", encoding="utf-8") as out:
        for entry in audit_rows.all_entries(conn):
            view = entry.view()
            del view["id"]
            out.write(json.dumps(view, sort_keys=True) + "\n")
            count += 1
    return count


def import_entries(conn: Connection, source: Path) -> int:
    """Add the entries an export carries (none for a devpi export), before the import's own."""
    path = source / EXPORT_FILE
    if not path.is_file():
        return 0
    count, entries = 0, []
    with path.open(encoding="utf-8") as lines:
        for number, line in enumerate(lines, 1):
            if not line.strip():
                continue
            try:
                entries.append(Entry.from_view(json.loads(line)))
            except (ValueError, InvalidInput) as exc:
                raise InvalidInput(f"{EXPORT_FILE} line {number}: not an audit entry") from exc
            if len(entries) == IMPORT_CHUNK:
                audit_rows.insert_entries(conn, entries)
                count, entries = count + len(entries), []
    audit_rows.insert_entries(conn, entries)
    return count + len(entries)
