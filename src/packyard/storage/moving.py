"""Copying every row of one metadata database into another, empty one (`packyard move`).

Rows go table by table in foreign-key order, in the target's one transaction: the target has
all of them or none. The audit trail, tokens, settings (the server's uuid) and the change log
travel as they are; PostgreSQL's id sequences are then set past the copied ids.
"""

from __future__ import annotations

from collections.abc import Callable

from sqlalchemy import Connection, Integer, func, insert, select, text

from packyard.storage import search, tables

BATCH = 500
Progress = Callable[[str, int], None]  # (table, rows copied so far)


def row_count(conn: Connection) -> int:
    """Rows in all tables (the schema's bookkeeping aside)."""
    return sum(
        int(conn.execute(select(func.count()).select_from(table)).scalar() or 0)
        for table in tables.metadata.sorted_tables
    )


def copy_rows(source: Connection, target: Connection, progress: Progress) -> int:
    """Copy every row from `source` into the empty `target`; the number of rows copied."""
    copied = 0
    for table in tables.metadata.sorted_tables:
        result = source.execute(select(table)).mappings()
        while batch := [dict(row) for row in result.fetchmany(BATCH)]:
            target.execute(insert(table), batch)
            copied += len(batch)
            progress(table.name, copied)
    for entry in search.all_entries(source):
        search.upsert(target, *entry)
    if target.dialect.name == "postgresql":
        _advance_sequences(target)
    return copied


def _advance_sequences(conn: Connection) -> None:
    """Explicit ids do not move a sequence: set each past the largest copied id."""
    for table in tables.metadata.sorted_tables:
        for column in table.primary_key.columns:
            if isinstance(column.type, Integer) and column.autoincrement is True:
                conn.execute(
                    text(
                        f"SELECT setval(pg_get_serial_sequence('{table.name}', '{column.name}'),"
                        f" COALESCE(MAX({column.name}), 1), MAX({column.name}) IS NOT NULL)"
                        f" FROM {table.name}"
                    )
                )
