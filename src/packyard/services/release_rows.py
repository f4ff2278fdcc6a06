"""The rows an upload, an import and a push write beside a file: the version's metadata (kept
findable by search), the files of a release, and the log entries devpi shows."""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import Any

from packaging.utils import canonicalize_version
from sqlalchemy import Connection

from packyard.core.dists import complete_metadata
from packyard.core.models import FileKind, FileRecord, IndexRecord
from packyard.core.uploads import joins_release
from packyard.storage import search, store


def log_entry(what: str, who: str | None, **extra: Any) -> dict[str, Any]:
    moment = time.gmtime()
    return {"what": what, "who": who, "when": list(moment[:6]), **extra}


def version_files(conn: Connection, index_id: int, project: str, version: str) -> list[FileRecord]:
    """The release files an upload of `version` joins (`core.uploads.joins_release`)."""
    return [
        file
        for file in store.project_files(conn, index_id, project)
        if file.kind == FileKind.RELEASE and joins_release(version, file.version)
    ]


def index_for_search(
    conn: Connection, index_id: int, project: str, version: str, metadata: Mapping[str, Any]
) -> None:
    """Keep the project findable by the words of its latest upload's metadata."""
    summary = str(metadata.get("summary") or "")
    description = str(metadata.get("description") or "")
    search.upsert(conn, index_id, project, version, summary, description)


def ensure_version(
    conn: Connection,
    record: IndexRecord,
    project: str,
    version: str,
    kind: FileKind,
    fields: Mapping[str, Any],
) -> str:
    """Create the version's metadata record, or update the keys a release file carries
    (a doc zip names its version but brings no metadata to change); the version as stored."""
    key = canonicalize_version(version)
    current = store.get_version(conn, record.id, project, key)
    if current is None:
        full = complete_metadata(fields)
        store.insert_version(conn, record.id, project, version, key, full, time.time())
        index_for_search(conn, record.id, project, version, full)
        return version
    if kind != FileKind.RELEASE:
        return current.version
    merged = dict(current.metadata)
    merged.update({k: v for k, v in complete_metadata(fields).items() if k in fields})
    if merged != current.metadata:  # the wheel and sdist of a release usually agree
        store.update_version_metadata(conn, current.id, merged)
        index_for_search(conn, record.id, project, current.version, merged)
    return current.version
