"""The legacy upload API as a pipeline of small steps (devpi-protocol.md §9, standards §A.12).

authorize -> validate form -> validate filename -> stream to temp while hashing -> check digests
-> read metadata -> duplicate check -> move blob into place -> commit rows.
Nothing is stored unless every step passed. The rules are pure functions in `core.uploads`
and `core.dists`; the rows written beside a file are in `release_rows`.
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import hashlib
import time
from collections.abc import Callable, Iterator, Sequence
from typing import Any, BinaryIO, Literal

from packaging.utils import canonicalize_version
from sqlalchemy import Connection

from packyard.config import Settings
from packyard.core.audit import Actor
from packyard.core.dists import (
    DistFilename,
    check_matches,
    check_upload_filename,
    complete_metadata,
    parse_core_metadata,
    parse_dist_filename,
    parse_version,
)
from packyard.core.models import FileKind, FileRecord, IndexRecord
from packyard.core.names import check_project_name, normalize_project
from packyard.core.releases import EXISTS, Admission, Upload, admit, check_metadata_change
from packyard.core.uploads import (
    SentDigests,
    UploadAction,
    UploadCommand,
    check_may_upload,
    check_may_upload_toxresult,
    check_toxresult,
    doc_zip_name,
    latest_version,
    toxresult_name,
)
from packyard.errors import Conflict, Forbidden, InvalidInput, TooLarge
from packyard.services.archives import check_zip, limits_from, read_core_metadata
from packyard.services.indexes import Indexes
from packyard.services.project_status import ProjectStatuses
from packyard.services.release_rows import (
    ensure_version,
    index_for_search,
    log_entry,
    version_files,
)
from packyard.storage import audit, store
from packyard.storage.blobs import BlobStore, BlobWriter
from packyard.storage.db import Database

CHUNK = 1024 * 1024


@dataclasses.dataclass(frozen=True)
class Incoming:
    """A received file, checked and ready to be stored."""

    project: str
    version: str
    filename: str
    kind: FileKind  # a release file or a doc zip
    fields: dict[str, Any]  # metadata, in devpi's key names
    core_metadata: bytes | None = None  # a wheel's METADATA, kept as its PEP 658 file


UploadStatus = Literal["stored", "replaced", "registered", "identical"]


@dataclasses.dataclass(frozen=True)
class UploadOutcome:
    """What happened; 'identical': nothing changed."""

    status: UploadStatus
    file: FileRecord | None
    replaced: tuple[FileRecord, ...] = ()  # the files a volatile index let this one replace
    index: str = ""

    @property
    def message(self) -> str:
        """One line for the reason phrase: clients show it, so a replacement is never silent."""
        if self.status == "identical":
            return "Upload of identical file to non volatile index."
        if self.replaced:
            old = ", ".join(f"{f.filename} (sha256 {f.sha256[:16]})" for f in self.replaced)
            return f"replaced {old} on volatile index {self.index}"
        return "OK"


@dataclasses.dataclass
class UploadRequest:
    """One legacy-API POST, as `Uploads.upload_many` takes them."""

    actor: str | None
    user: str
    index: str
    command: UploadCommand
    # What `Uploads.inspect` found in the file before the upload joined a batch: the core
    # metadata (b"" for a doc zip), or the error to answer; None if not inspected yet.
    inspected: bytes | Exception | None = None
    # Who the audit trail names: taken in the request, since a batch runs for many.
    origin: Actor = dataclasses.field(default_factory=audit.current_actor)


@dataclasses.dataclass(frozen=True)
class _Received:
    """A release file received, synced-to-be and checked, waiting for its rows."""

    actor: str | None
    record: IndexRecord
    incoming: Incoming
    writer: BlobWriter
    metadata_sha: str | None
    new_metadata: bool  # its PEP 658 file was written by this upload
    origin: Actor = dataclasses.field(default_factory=audit.current_actor)


class Uploads:
    """Stores release files uploaded through the legacy API."""

    def __init__(
        self,
        db: Database,
        blobs: BlobStore,
        indexes: Indexes,
        settings: Settings,
        statuses: ProjectStatuses,
    ) -> None:
        self._db = db
        self._blobs = blobs
        self._indexes = indexes
        self._settings = settings
        self._statuses = statuses

    def upload(
        self, actor: str | None, user: str, index: str, command: UploadCommand
    ) -> UploadOutcome:
        """Handle one legacy-API POST: a release file, a documentation zip or a register."""
        [outcome] = self.upload_many([UploadRequest(actor, user, index, command)])
        if isinstance(outcome, Exception):
            raise outcome
        return outcome

    def inspect(self, request: UploadRequest) -> None:
        """Read the file's metadata (or check the doc zip) before the upload joins a batch:
        a hostile archive then costs its own request's time, not every batched upload's."""
        command = request.command
        try:
            self.authorize(request.actor, request.user, request.index)
            request.inspected = self._inspect(command)
        except Exception as exc:  # answered in order, once the batch handles this request
            request.inspected = exc
        finally:
            if command.content is not None:
                command.content.seek(0)

    def _inspect(self, command: UploadCommand) -> bytes | None:
        if command.content is None or not command.filename:
            return None
        limits = limits_from(self._settings)
        if command.action == UploadAction.RELEASE_FILE:
            dist = self._validate_filename(command)
            return read_core_metadata(command.content, dist, limits)
        if command.action == UploadAction.DOCS:
            check_zip(command.content, command.filename, limits)
            return b""
        return None

    def upload_many(self, requests: Sequence[UploadRequest]) -> list[UploadOutcome | Exception]:
        """Handle concurrent POSTs together, each failing alone (its exception in its place).

        Release files are received first, then made durable by one disk flush and stored in
        one transaction (group commit): the flush and the commit cost about as much for many
        files as for one.
        """
        results: dict[int, UploadOutcome | Exception] = {}
        received: dict[int, _Received] = {}
        with contextlib.ExitStack() as writers:
            for position, request in enumerate(requests):
                try:
                    with audit.acting_as(request.origin):
                        handled = self._handle(request, writers)
                except Exception as exc:  # this request's error, answered to it alone
                    results[position] = exc
                    continue
                if isinstance(handled, _Received):
                    received[position] = handled
                else:
                    results[position] = handled
            if received:
                self._blobs.group_sync.wait()
                stored = self._store_all(list(received.values()))
                results.update(zip(received, stored, strict=True))
        return [results[position] for position in range(len(requests))]

    def _handle(
        self, request: UploadRequest, writers: contextlib.ExitStack
    ) -> UploadOutcome | _Received:
        record = self.authorize(request.actor, request.user, request.index)
        action = request.command.action
        if action == UploadAction.RELEASE_FILE:
            return self._receive_release(record, request, writers)
        if action == UploadAction.DOCS:
            return self._receive_docs(record, request, writers)
        return self._register(record, request.command)

    @contextlib.contextmanager
    def _batch_writer(self, writers: contextlib.ExitStack) -> Iterator[BlobWriter]:
        """A blob writer thrown away if the block fails, else kept until the batch ends."""
        with contextlib.ExitStack() as on_failure:
            writer = on_failure.enter_context(self._blobs.writer())
            yield writer
            writers.push(on_failure.pop_all())

    def _receive_release(
        self, record: IndexRecord, request: UploadRequest, writers: contextlib.ExitStack
    ) -> _Received:
        command = request.command
        dist = self._validate_filename(command)
        if command.content is None:
            raise InvalidInput("content file field not found")
        digests = SentDigests(command.digests)
        with self._batch_writer(writers) as writer:
            self._receive(command.content, writer, digests.update, durable=False)
            digests.check()
            # Read back from the received content: usually still in memory, no file to reopen.
            content, limits = command.content, limits_from(self._settings)
            metadata = _inspected(request, lambda: read_core_metadata(content, dist, limits))
            parsed = parse_core_metadata(metadata, dist.filename)
            check_project_name(parsed.name)
            check_matches(dist, parsed.name, parsed.version)
            incoming = Incoming(
                project=dist.project,
                version=str(parsed.fields.get("version") or dist.version),
                filename=dist.filename,
                kind=FileKind.RELEASE,
                fields=parsed.fields,
                core_metadata=metadata if dist.kind == "wheel" else None,
            )
        # The PEP 658 file is written before the lock and without fsync: it is derived from
        # the wheel, and rebuilt from it should it ever be lost (Packages.find_file).
        metadata_sha, new_metadata = None, False
        if incoming.core_metadata is not None:
            metadata_sha = hashlib.sha256(incoming.core_metadata).hexdigest()
            new_metadata = not self._blobs.exists(metadata_sha)
            if new_metadata:
                self._blobs.put_bytes(incoming.core_metadata, durable=False)
        return _Received(request.actor, record, incoming, writer, metadata_sha, new_metadata)

    def _receive_docs(
        self, record: IndexRecord, request: UploadRequest, writers: contextlib.ExitStack
    ) -> _Received:
        """A documentation zip for one version (devpi: `{project}-{version}.doc.zip`)."""
        command = request.command
        name = check_project_name(command.project)
        project = normalize_project(name)
        if command.content is None or not command.filename:
            raise InvalidInput("content file field not found")
        version = command.version or self._latest_version(record, project)
        parse_version(version)
        filename, limits = command.filename, limits_from(self._settings)
        with self._batch_writer(writers) as writer:
            self._receive(command.content, writer, durable=False)

            def check_docs() -> bytes:
                check_zip(writer.temp_path, filename, limits)
                return b""

            _inspected(request, check_docs)
        incoming = Incoming(
            project=project,
            version=version,
            filename=doc_zip_name(project, version),
            kind=FileKind.DOCZIP,
            fields={"name": name, "version": version},
        )
        return _Received(request.actor, record, incoming, writer, None, False)

    def _latest_version(self, record: IndexRecord, project: str) -> str:
        with self._db.read() as conn:
            versions = [v.version for v in store.list_versions(conn, record.id, project)]
        return latest_version(project, versions)

    def _register(self, record: IndexRecord, command: UploadCommand) -> UploadOutcome:
        """`:action=submit`: store a version's metadata without files (replacing it whole)."""
        fields = dict(command.metadata)
        name = check_project_name(str(fields.get("name") or ""))
        version = str(parse_version(str(fields.get("version") or "")))
        project = normalize_project(name)
        full = complete_metadata(fields)
        with self._db.write("register", index=record.full_name, project=project) as conn:
            self._check_status(conn, record, project, version)
            key = canonicalize_version(version)
            current = store.get_version(conn, record.id, project, key)
            if current is None:
                store.insert_version(conn, record.id, project, version, key, full, time.time())
            elif current.metadata != full:
                released = version_files(conn, record.id, project, version)
                check_metadata_change(record.full_name, current, released, record.volatile)
                store.update_version_metadata(conn, current.id, full)
            index_for_search(conn, record.id, project, version, full)
        return UploadOutcome("registered", None)

    def check_toxresult_upload(
        self, actor: str | None, record: IndexRecord, release: FileRecord
    ) -> None:
        """Who may attach tox results to `release` (asked before their body is read)."""
        check_may_upload_toxresult(actor, record, release)

    def attach_toxresult(
        self, actor: str | None, record: IndexRecord, release: FileRecord, body: bytes
    ) -> str:
        """Store a tox result (JSON) beside a release file; returns its path with hash."""
        self.check_toxresult_upload(actor, record, release)
        check_toxresult(body, self._settings.max_toxresult_size)
        with self._db.write("toxresult", index=record.full_name) as conn:
            earlier = [
                f
                for f in store.project_files(conn, record.id, release.project)
                if f.kind == FileKind.TOXRESULT and f.for_file == release.filename
            ]
            sha = self._blobs.put_bytes(body)
            result = FileRecord(
                id=0,
                index_id=record.id,
                project=release.project,
                version=release.version,
                filename=toxresult_name(release, len(earlier), time.gmtime()),
                kind=FileKind.TOXRESULT,
                sha256=sha,
                size=len(body),
                uploaded_at=time.time(),
                yanked=None,
                metadata_sha256=None,
                requires_python=None,
                for_file=release.filename,
                log=[log_entry("upload", actor, dst=record.full_name)],
                dir_sha256=release.sha256,
            )
            store.insert_file(conn, result)
        return f"{record.full_name}/{result.relpath}#sha256={sha}"

    # --- steps ----------------------------------------------------------------------------

    def authorize(
        self,
        actor: str | None,
        user: str,
        index: str,
        snapshot: dict[str, IndexRecord] | None = None,
    ) -> IndexRecord:
        """The index `actor` may upload to, else NotFound, Unauthenticated or Forbidden: the
        web layer asks before it reads an upload's body (with a fresh `snapshot` of the
        indexes, on the event loop: no thread hop)."""
        return check_may_upload(actor, self._indexes.get(user, index, snapshot))

    @staticmethod
    def _validate_filename(command: UploadCommand) -> DistFilename:
        return check_upload_filename(
            command.filename, command.project, command.version, command.dist_type
        )

    def _receive(
        self,
        content: BinaryIO,
        writer: BlobWriter,
        also: Callable[[bytes], None] = lambda _chunk: None,
        durable: bool = True,
    ) -> None:
        limit = self._settings.max_upload_size
        while chunk := content.read(CHUNK):
            writer.write(chunk)
            also(chunk)
            if writer.size > limit:
                raise TooLarge(f"file too large: the limit is {limit} bytes")
        writer.finish(durable)

    def _store_all(self, received: Sequence[_Received]) -> list[UploadOutcome | Exception]:
        changes = [
            ("upload", _upload_detail(item), functools.partial(self._store_rows, item),
             item.origin)
            for item in received
        ]  # fmt: skip
        try:
            outcomes = self._db.write_each(changes)
        except Exception as exc:  # the transaction failed: no upload of the batch was stored
            outcomes = [exc] * len(received)
        kept = {
            item.metadata_sha
            for item, outcome in zip(received, outcomes, strict=True)
            if not isinstance(outcome, Exception)
        }
        for item, outcome in zip(received, outcomes, strict=True):
            sha = item.metadata_sha
            if isinstance(outcome, Exception) and item.new_metadata and sha and sha not in kept:
                self._blobs.delete(sha)
        return outcomes

    def _store_rows(self, item: _Received, conn: Connection) -> UploadOutcome:
        record, incoming, writer = item.record, item.incoming, item.writer
        filename = incoming.filename
        self._check_status(conn, record, incoming.project, incoming.version)
        admission = self._admit(conn, item)
        if admission.identical is not None:
            audit.unchanged(conn)
            return UploadOutcome("identical", admission.identical)
        # The file's bytes were synced; its rename is not (recover_temp_files redoes one a
        # power cut loses), so concurrent uploads do not queue behind the disk.
        writer.commit(durable=False)
        log = [log_entry("upload", item.actor, dst=record.full_name)]
        if admission.replaces:
            entries = [entry for old in admission.replaces for entry in old.log]
            overwrites = sum(1 for entry in entries if entry.get("what") == "overwrite")
            log.insert(0, log_entry("overwrite", None, count=overwrites + 1))
            store.delete_files(conn, [old.id for old in admission.replaces])
        version = ensure_version(
            conn, record, incoming.project, incoming.version, incoming.kind, incoming.fields
        )
        new = FileRecord(
            id=0,
            index_id=record.id,
            project=incoming.project,
            version=version,
            filename=filename,
            kind=incoming.kind,
            sha256=writer.sha256,
            size=writer.size,
            uploaded_at=time.time(),
            yanked=None,
            metadata_sha256=item.metadata_sha,
            requires_python=incoming.fields.get("requires_python") or None,
            for_file=None,
            log=log,
        )
        file_id = store.insert_file(conn, new)
        status: UploadStatus = "replaced" if admission.replaces else "stored"
        stored = dataclasses.replace(new, id=file_id)
        return UploadOutcome(status, stored, admission.replaces, record.full_name)

    def _check_status(
        self, conn: Connection, record: IndexRecord, project: str, version: str
    ) -> None:
        """An archived or quarantined project, or a version an advisory names as malicious,
        takes no upload (judged in the writer's transaction: no race with a status change)."""
        refusal = self._statuses.upload_refusal(conn, record, project, version)
        if refusal is not None:
            raise Forbidden(refusal)

    def _admit(self, conn: Connection, item: _Received) -> Admission:
        """The release rule (core/releases.py); doc zips keep devpi's rule by filename."""
        record, incoming, writer = item.record, item.incoming, item.writer
        if incoming.kind == FileKind.RELEASE:
            dist = parse_dist_filename(incoming.filename)
            upload = Upload(dist, writer.sha256, item.actor, time.time())
            found = version_files(conn, record.id, upload.dist.project, incoming.version)
            return admit(upload, found, record.volatile, self._settings.release_window)
        existing = store.get_file(conn, record.id, incoming.filename)
        if existing is None:
            return Admission()
        if existing.sha256 == writer.sha256:
            return Admission(identical=existing)
        if not record.volatile:
            raise Conflict(f"{incoming.filename} {EXISTS}")
        return Admission(replaces=(existing,))


def _upload_detail(item: _Received) -> dict[str, str]:
    incoming = item.incoming
    return {
        "index": item.record.full_name,
        "project": incoming.project,
        "version": incoming.version,
        "file": incoming.filename,
    }


def _inspected(request: UploadRequest, inspect: Callable[[], bytes]) -> bytes:
    """What `Uploads.inspect` found (its error raised here, in its turn), else inspect now."""
    if isinstance(request.inspected, Exception):
        raise request.inspected
    return request.inspected if request.inspected is not None else inspect()
