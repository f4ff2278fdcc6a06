"""Changing what an index holds: deleting projects, versions and files, and yanking release
files (PEP 592). Reading lives in `packages`."""

from __future__ import annotations

from contextlib import AbstractContextManager
from typing import Any

from packaging.utils import canonicalize_version
from sqlalchemy import Connection

from packyard.core import acl
from packyard.core.models import FileKind, FileRecord, IndexRecord, VersionRecord
from packyard.errors import Forbidden, InvalidInput, NotFound, Unauthenticated
from packyard.services.packages import find_file
from packyard.storage import store
from packyard.storage.blobs import BlobStore
from packyard.storage.db import Database


class PackageEdits:
    """Delete and yank what an index holds, after the lookups and permission checks."""

    def __init__(self, db: Database, blobs: BlobStore) -> None:
        self._db = db
        self._blobs = blobs

    # --- deleting ---------------------------------------------------------------------------

    def delete_version(
        self, actor: str | None, record: IndexRecord, project: str, version: str, force: bool
    ) -> None:
        _refuse_edits(record)  # a property of the index, not of the caller
        with self._db.read() as conn:
            _existing_version(conn, record, project, version)
        self._check_delete(actor, record, force, "cannot delete version on non-volatile index")
        with self._writing("delete-version", record, project=project, version=version) as conn:
            found = _existing_version(conn, record, project, version)
            store.delete_version(conn, record.id, project, found.version)

    def delete_project(
        self, actor: str | None, record: IndexRecord, project: str, force: bool
    ) -> None:
        _refuse_edits(record)  # a property of the index, not of the caller
        with self._db.read() as conn:
            _existing_project(conn, record, project)
        message = f"project '{project}' is on non-volatile index {record.full_name}"
        self._check_delete(actor, record, force, message)
        with self._writing("delete-project", record, project=project) as conn:
            _existing_project(conn, record, project)
            store.delete_project(conn, record.id, project)

    def delete_file(self, actor: str | None, record: IndexRecord, relpath: str, force: bool) -> str:
        found = find_file(self._db, self._blobs, record, relpath)
        if found.is_metadata:
            raise InvalidInput("a .metadata file goes with its distribution; delete that")
        self._check_delete(actor, record, force, "cannot delete version on non-volatile index")
        file = found.record
        with self._writing("delete-file", record, file=file.filename) as conn:
            results = [
                f
                for f in store.project_files(conn, record.id, file.project)
                if f.kind == FileKind.TOXRESULT and f.for_file == file.filename
            ]
            store.delete_files(conn, [file.id, *(f.id for f in results)])
            if store.count_files(conn, record.id, file.project, file.version) == 0:
                store.delete_version(conn, record.id, file.project, file.version)
        return f"{record.full_name}/{file.relpath}"

    def _check_delete(
        self, actor: str | None, record: IndexRecord, force: bool, message: str
    ) -> None:
        _refuse_edits(record)
        if actor is None:
            raise Unauthenticated("authentication required to delete")
        if not acl.may_delete_entries(actor, record.user, record.index_config.acl_upload):
            raise Forbidden(f"no permission to delete from {record.full_name}")
        if record.volatile:
            return
        if not force:
            raise Forbidden(message)
        if not acl.may_force_delete(actor, record.user):
            raise Forbidden(
                f"only {record.user} (the owner of non-volatile index {record.full_name}) or"
                " root may force a deletion from it"
            )

    def _writing(
        self, what: str, record: IndexRecord, **detail: Any
    ) -> AbstractContextManager[Connection]:
        return self._db.write(what, index=record.full_name, **detail)

    # --- yanking -------------------------------------------------------------------------------

    def set_yanked(
        self,
        actor: str | None,
        record: IndexRecord,
        project: str,
        version: str | None,
        filename: str | None,
        yanked: str | None,
    ) -> int:
        """Yank (reason text, '' for none) or unyank (None) a release or one file (PEP 592)."""
        with self._db.read() as conn:
            _yank_targets(conn, record, project, version, filename)
        if actor is None:
            raise Unauthenticated("authentication required to yank")
        if not acl.may_delete_entries(actor, record.user, record.index_config.acl_upload):
            raise Forbidden(f"no permission to yank on {record.full_name}")
        what = "yank" if yanked is not None else "unyank"
        detail: dict[str, Any] = {"project": project, "version": version, "file": filename}
        if yanked is not None:
            detail["reason"] = yanked
        with self._db.write(what, index=record.full_name, **detail) as conn:
            targets = _yank_targets(conn, record, project, version, filename)
            for file in targets:
                store.update_file(conn, file.id, yanked=yanked)
        return len(targets)


# Lookups of what a change is about. Each runs before the caller is judged (and again in the
# writer's turn): a missing thing is 404 for everyone, as in devpi, since project and version
# lists are public; permissions are judged only on things that exist.


def _refuse_edits(record: IndexRecord) -> None:
    """Some index kinds (a mirror) hold nothing that may be deleted or changed."""
    refusal = record.index_config.edit_refusal
    if refusal is not None:
        raise Forbidden(refusal)


def _existing_project(conn: Connection, record: IndexRecord, project: str) -> None:
    if not store.has_project(conn, record.id, project):
        raise NotFound("project not found")


def _existing_version(
    conn: Connection, record: IndexRecord, project: str, version: str
) -> VersionRecord:
    found = store.get_version(conn, record.id, project, canonicalize_version(version))
    if found is None:
        raise NotFound(f"The version {version} of project {project} does not exist.")
    return found


def _yank_targets(
    conn: Connection, record: IndexRecord, project: str, version: str | None, filename: str | None
) -> list[FileRecord]:
    targets = [
        f
        for f in store.project_files(conn, record.id, project)
        if f.kind == FileKind.RELEASE
        and (version is None or canonicalize_version(f.version) == canonicalize_version(version))
        and (filename is None or f.filename == filename)
    ]
    if not targets:
        raise NotFound(f"no matching release files of {project} on {record.full_name}")
    return targets
