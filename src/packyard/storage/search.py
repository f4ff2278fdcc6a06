"""Full-text search entries, one per (index, project): SQLite FTS5 or PostgreSQL tsvector.

On SQLite the words live in the FTS5 table `search_text`, whose rowid is the id of the
project's row in `search_keys` (index, project, version): an FTS5 table is searchable only by
its words and rowid, so every other lookup goes through the key table's index.
"""

from __future__ import annotations

import dataclasses
import re

from sqlalchemy import Connection, text

_WORD = re.compile(r"\w+", re.UNICODE)
_PG_DOCUMENT = "to_tsvector('english', project || ' ' || summary || ' ' || description)"


@dataclasses.dataclass(frozen=True)
class SearchHit:
    index_id: int
    project: str
    version: str
    summary: str


def _is_sqlite(conn: Connection) -> bool:
    return conn.dialect.name == "sqlite"


def upsert(
    conn: Connection, index_id: int, project: str, version: str, summary: str, description: str
) -> None:
    """Make (index, project) findable by its name, summary and description."""
    if not _is_sqlite(conn):
        remove(conn, index_id, project)
        conn.execute(
            text(
                "INSERT INTO search_entries (index_id, project, version, summary, description)"
                " VALUES (:index_id, :project, :version, :summary, :description)"
            ),
            {
                "index_id": index_id,
                "project": project,
                "version": version,
                "summary": summary,
                "description": description,
            },
        )
        return
    key = {"index_id": index_id, "project": project}
    row = conn.execute(
        text(
            "SELECT k.id, t.summary, t.description FROM search_keys k"
            " LEFT JOIN search_text t ON t.rowid = k.id"
            " WHERE k.index_id = :index_id AND k.project = :project"
        ),
        key,
    ).first()
    if row is None:
        entry_id = conn.execute(
            text(
                "INSERT INTO search_keys (index_id, project, version)"
                " VALUES (:index_id, :project, :version) RETURNING id"
            ),
            {**key, "version": version},
        ).scalar_one()
    else:
        entry_id = row.id
        conn.execute(
            text("UPDATE search_keys SET version = :version WHERE id = :id"),
            {"version": version, "id": entry_id},
        )
        if (row.summary, row.description) == (summary, description):
            return  # the words are the same: spare FTS5 re-tokenising them
        conn.execute(text("DELETE FROM search_text WHERE rowid = :id"), {"id": entry_id})
    conn.execute(
        text(
            "INSERT INTO search_text (rowid, project, summary, description)"
            " VALUES (:id, :project, :summary, :description)"
        ),
        {"id": entry_id, "project": project, "summary": summary, "description": description},
    )


def remove(conn: Connection, index_id: int, project: str | None = None) -> None:
    """Forget one project of an index, or (project=None) every project of it."""
    where = "index_id = :index_id" + (" AND project = :project" if project else "")
    params = {"index_id": index_id, "project": project}
    if not _is_sqlite(conn):
        conn.execute(text(f"DELETE FROM search_entries WHERE {where}"), params)
        return
    conn.execute(
        text(f"DELETE FROM search_text WHERE rowid IN (SELECT id FROM search_keys WHERE {where})"),
        params,
    )
    conn.execute(text(f"DELETE FROM search_keys WHERE {where}"), params)


def query_words(query: str) -> list[str]:
    """The words a query searches for."""
    return _WORD.findall(query)


def search(conn: Connection, query: str, limit: int = 50) -> list[SearchHit]:
    """Best matches first; every word must match (a prefix, on SQLite)."""
    words = query_words(query)
    if not words:
        return []
    if _is_sqlite(conn):
        match = " ".join(f'"{word}"*' for word in words)
        sql = (
            "SELECT k.index_id, k.project, k.version, search_text.summary FROM search_text"
            " JOIN search_keys k ON k.id = search_text.rowid"
            " WHERE search_text MATCH :match"
            " ORDER BY bm25(search_text, 10.0, 3.0, 1.0) LIMIT :limit"
        )
        rows = conn.execute(text(sql), {"match": match, "limit": limit})
    else:
        sql = (
            "SELECT index_id, project, version, summary FROM search_entries"
            f" WHERE {_PG_DOCUMENT} @@ plainto_tsquery('english', :query)"
            f" ORDER BY ts_rank({_PG_DOCUMENT}, plainto_tsquery('english', :query)) DESC"
            " LIMIT :limit"
        )
        rows = conn.execute(text(sql), {"query": " ".join(words), "limit": limit})
    return [SearchHit(int(r.index_id), r.project, r.version, r.summary) for r in rows]


def all_entries(conn: Connection) -> list[tuple[int, str, str, str, str]]:
    """Every entry as (index_id, project, version, summary, description), for a move."""
    if _is_sqlite(conn):
        query = (
            "SELECT k.index_id, k.project, k.version, t.summary, t.description"
            " FROM search_keys k LEFT JOIN search_text t ON t.rowid = k.id"
        )
    else:
        query = "SELECT index_id, project, version, summary, description FROM search_entries"
    return [
        (int(row[0]), str(row[1]), str(row[2] or ""), str(row[3] or ""), str(row[4] or ""))
        for row in conn.execute(text(query))
    ]
