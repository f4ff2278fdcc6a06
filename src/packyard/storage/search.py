"""Full-text search entries, one per (index, project): SQLite FTS5 or PostgreSQL tsvector."""

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


def remove(conn: Connection, index_id: int, project: str | None = None) -> None:
    where = "index_id = :index_id" + (" AND project = :project" if project else "")
    conn.execute(
        text(f"DELETE FROM search_entries WHERE {where}"),
        {"index_id": index_id, "project": project},
    )


def search(conn: Connection, query: str, limit: int = 50) -> list[SearchHit]:
    """Best matches first; every word must match (a prefix, on SQLite)."""
    words = _WORD.findall(query)
    if not words:
        return []
    if _is_sqlite(conn):
        match = " ".join(f'"{word}"*' for word in words)
        sql = (
            "SELECT index_id, project, version, summary FROM search_entries"
            " WHERE search_entries MATCH :match"
            " ORDER BY bm25(search_entries, 10.0, 3.0, 1.0) LIMIT :limit"
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
