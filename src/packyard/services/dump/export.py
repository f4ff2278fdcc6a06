"""Export: one consistent snapshot (one read transaction) written as a devpi dump, every
file checked against its row's sha256 and size as it is copied."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import shutil
import sys
from pathlib import Path
from typing import Any

from sqlalchemy import Connection

from packyard import __version__
from packyard.core.dists import http_date
from packyard.core.models import FileKind, FileRecord, IndexRecord, User
from packyard.errors import Conflict
from packyard.services.audit import export_entries
from packyard.services.dump.format import (
    DUMP_VERSION,
    Progress,
    Summary,
    damaged_error,
    no_progress,
)
from packyard.services.sources import Source, Sources
from packyard.storage import store
from packyard.storage.blobs import BlobStore, file_sha256
from packyard.storage.db import Database


class Exporter:
    """Writes a server's users, indexes, metadata and files as a devpi dump."""

    def __init__(self, db: Database, blobs: BlobStore, sources: Sources) -> None:
        self._db = db
        self._blobs = blobs
        self._sources = sources

    def export(
        self,
        target: Path,
        include_mirrored_files: bool = False,
        hard_links: bool = False,
        progress: Progress = no_progress,
        skip_damaged: bool = False,
    ) -> Summary:
        """Write the export; every file is checked against its row's sha256 and size as it
        is copied. A damaged or missing one fails the export (naming them all, leaving
        nothing behind) unless `skip_damaged`, which leaves them out and lists them."""
        if target.exists() and any(target.iterdir()):
            raise Conflict(f"export directory {target} is not empty")
        target.mkdir(parents=True, exist_ok=True)
        try:
            return self._export(target, include_mirrored_files, hard_links, progress, skip_damaged)
        except BaseException:
            _empty(target)
            raise

    def _export(
        self,
        target: Path,
        include_mirrored_files: bool,
        hard_links: bool,
        progress: Progress,
        skip_damaged: bool,
    ) -> Summary:
        summary = Summary()
        copies: list[_Copy] = []
        with self._db.read() as conn:
            if self._db.url.get_backend_name() != "sqlite":
                conn.exec_driver_sql("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ")
            users = {user.name: _user_record(user) for user in store.list_users(conn)}
            indexes = {}
            for record in store.list_indexes(conn):
                source = self._sources.source_for(record)
                if not source.exports_files(include_mirrored_files):
                    indexes[record.full_name] = {"indexconfig": record.config}
                    continue
                entry, files = _index_record(conn, source)
                indexes[record.full_name] = entry
                copies.extend(files)
                summary.projects += len(entry["projects"])
            export_entries(conn, target)  # the audit trail, of the same snapshot
        summary.users, summary.indexes = len(users), len(indexes)
        made: set[Path] = set()
        for done, copy in enumerate(copies, 1):
            destination = target / copy.relative
            if destination.parent not in made:
                destination.parent.mkdir(parents=True, exist_ok=True)
                made.add(destination.parent)
            if self._copy_checked(copy, destination, hard_links):
                summary.files += 1
                summary.bytes += copy.size
            else:
                summary.skipped.append(copy.name)
            progress("files", done, len(copies))
        if summary.skipped and not skip_damaged:
            raise damaged_error(summary.skipped, "exported")
        _leave_out(indexes, copies, set(summary.skipped))
        dataindex = {
            "dumpversion": DUMP_VERSION,
            "pythonversion": list(sys.version_info),
            "devpi_server": f"packyard {__version__}",
            "users": users,
            "indexes": indexes,
        }
        (target / "dataindex.json").write_text(json.dumps(dataindex, indent=2))
        return summary

    def _copy_checked(self, copy: _Copy, destination: Path, hard_link: bool) -> bool:
        """Copy one blob, hashing what is written; False (nothing left) when it is damaged."""
        try:
            sha, size = _place_hashed(self._blobs.path(copy.sha256), destination, hard_link)
        except FileNotFoundError:
            return False
        if sha == copy.sha256 and size == copy.size:
            return True
        destination.unlink()
        return False


@dataclasses.dataclass(frozen=True)
class _Copy:
    """A file to export: its blob, where it goes, and its entry in the dataindex."""

    index: str
    sha256: str
    size: int
    relative: Path

    @property
    def name(self) -> str:
        return f"{self.index}/{self.relative.name} (sha256 {self.sha256})"


def _leave_out(indexes: dict[str, Any], copies: list[_Copy], skipped: set[str]) -> None:
    """Drop the entries of skipped files, and of toxresults about a skipped release file."""
    gone = {(copy.index, copy.relative.name) for copy in copies if copy.name in skipped}
    if not gone:
        return
    for name, data in indexes.items():
        data["files"] = [
            entry
            for entry in data.get("files", [])
            if (name, entry["relpath"].rsplit("/", 1)[-1]) not in gone
            and (name, str(entry.get("for_entrypath", "")).rsplit("/", 1)[-1]) not in gone
        ]


def _empty(target: Path) -> None:
    """Remove what a failed export wrote (the directory was empty before)."""
    for child in target.iterdir():
        if child.is_dir() and not child.is_symlink():
            shutil.rmtree(child)
        else:
            child.unlink()


def _user_record(user: User) -> dict[str, Any]:
    record: dict[str, Any] = {"username": user.name, "created": user.created, **user.info}
    if user.pwhash:
        record["pwhash"] = user.pwhash
    if user.pwsalt:
        record["pwsalt"] = user.pwsalt
    if user.modified:
        record["modified"] = user.modified
    return record


def _index_record(conn: Connection, source: Source) -> tuple[dict[str, Any], list[_Copy]]:
    record = source.record
    # Toxresults last, as import stores them: export -> import -> export is byte-identical.
    files = sorted(store.index_files(conn, record.id), key=lambda f: f.kind == FileKind.TOXRESULT)
    by_name = {file.filename: file for file in files}
    projects = source.exported_projects(conn, files)
    entries, copies = [], []
    for file in files:
        relative = _export_path(record, file, by_name)
        entry: dict[str, Any] = {
            "type": file.kind,
            "projectname": file.project,
            "version": file.version,
            "relpath": relative.as_posix(),
            "entrymapping": {
                "last_modified": http_date(file.uploaded_at),
                "hash_spec": f"sha256={file.sha256}",
                "hashes": {"sha256": file.sha256},
                "project": file.project,
                "version": file.version,
            },
            "log": file.log,
            **_packyard_state(file, projects.get(file.project, {}).get(file.version, {})),
        }
        if file.kind == FileKind.TOXRESULT and file.for_file in by_name:
            entry["for_entrypath"] = f"{record.full_name}/{by_name[file.for_file].relpath}"
        entries.append(entry)
        copies.append(_Copy(record.full_name, file.sha256, file.size, relative))
    return {"indexconfig": record.config, "projects": projects, "files": entries}, copies


def _packyard_state(file: FileRecord, version_metadata: dict[str, Any]) -> dict[str, Any]:
    """What users set on a file beyond devpi's format, as keys devpi-import ignores: the
    yank (PEP 592) and the file's own Requires-Python where the version's does not say it."""
    state: dict[str, Any] = {}
    if file.yanked is not None:
        state["yanked"] = file.yanked
    if (file.requires_python or None) != (version_metadata.get("requires_python") or None):
        state["requires_python"] = file.requires_python
    return state


def _export_path(record: IndexRecord, file: FileRecord, by_name: dict[str, FileRecord]) -> Path:
    base = Path(record.user, record.name)
    if file.kind == FileKind.DOCZIP:
        return base / file.filename
    if file.kind == FileKind.TOXRESULT:
        release_sha = file.dir_sha256 or file.sha256
        return base / file.project / f"sha256={release_sha}" / file.filename
    return base / file.project / file.version / file.filename


def _place_hashed(source: Path, destination: Path, hard_link: bool) -> tuple[str, int]:
    """Copy (or link) `source` to `destination`; the sha256 and size of what was placed."""
    if hard_link:
        try:
            os.link(source, destination)
            return file_sha256(destination), destination.stat().st_size
        except FileNotFoundError:
            raise
        except OSError:
            pass  # another file system: copy instead
    digest, size = hashlib.sha256(), 0
    with source.open("rb") as reader, destination.open("wb") as writer:
        while chunk := reader.read(1 << 20):
            digest.update(chunk)
            writer.write(chunk)
            size += len(chunk)
    return digest.hexdigest(), size
