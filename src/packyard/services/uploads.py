"""The legacy upload API as a pipeline of small steps (devpi-protocol.md §9, standards §A.12).

authorize -> validate form -> validate filename -> stream to temp while hashing -> check digests
-> read metadata -> duplicate check -> move blob into place -> commit rows.
Nothing is stored unless every step passed.
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import hashlib
import hmac
import json
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any, BinaryIO, Literal

from packaging.utils import canonicalize_version
from packaging.version import InvalidVersion, Version
from sqlalchemy import Connection

from packyard.config import Settings
from packyard.core import acl
from packyard.core.dists import (
    FORM_ALIASES,
    LIST_KEYS,
    METADATA_KEYS,
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
from packyard.errors import Conflict, Forbidden, InvalidInput, NotFound, TooLarge, Unauthenticated
from packyard.services.archives import check_zip, limits_from, read_core_metadata
from packyard.services.indexes import Indexes
from packyard.storage import search, store
from packyard.storage.blobs import BlobStore, BlobWriter
from packyard.storage.db import Database

CHUNK = 1024 * 1024
_DIGESTS = {"sha256_digest": "sha256", "md5_digest": "md5", "blake2_256_digest": "blake2b"}


@dataclasses.dataclass
class UploadForm:
    """A parsed multipart upload: every text field (repeatable) and the file part."""

    fields: dict[str, list[str]]
    filename: str | None = None
    content: BinaryIO | None = None
    # What `Uploads.inspect` found in the file before the upload joined a batch: the core
    # metadata (b"" for a doc zip), or the error to answer; None if not inspected yet.
    inspected: bytes | Exception | None = None

    def value(self, key: str) -> str:
        values = self.fields.get(key) or [""]
        return values[0].strip()


class SentDigests:
    """The digests a client sent with its upload, computed over the bytes as they arrive."""

    def __init__(self, form: UploadForm) -> None:
        self._expected = {key: form.value(key).lower() for key in _DIGESTS if form.value(key)}
        self._hashers = {
            key: hashlib.blake2b(digest_size=32) if algo == "blake2b" else hashlib.new(algo)
            for key, algo in _DIGESTS.items()
            if key in self._expected
        }

    def update(self, chunk: bytes) -> None:
        for hasher in self._hashers.values():
            hasher.update(chunk)

    def check(self) -> None:
        for key, hasher in self._hashers.items():
            if not hmac.compare_digest(hasher.hexdigest(), self._expected[key]):
                raise InvalidInput(
                    f"The digest supplied does not match a digest calculated from the"
                    f" uploaded file ({key})."
                )


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


@dataclasses.dataclass(frozen=True)
class UploadRequest:
    """One legacy-API POST, as `Uploads.upload_many` takes them."""

    actor: str | None
    user: str
    index: str
    form: UploadForm


@dataclasses.dataclass(frozen=True)
class _Received:
    """A release file received, synced-to-be and checked, waiting for its rows."""

    actor: str | None
    record: IndexRecord
    incoming: Incoming
    writer: BlobWriter
    metadata_sha: str | None
    new_metadata: bool  # its PEP 658 file was written by this upload


def log_entry(what: str, who: str | None, **extra: Any) -> dict[str, Any]:
    moment = time.gmtime()
    return {"what": what, "who": who, "when": list(moment[:6]), **extra}


class Uploads:
    """Stores release files uploaded through the legacy API."""

    def __init__(
        self, db: Database, blobs: BlobStore, indexes: Indexes, settings: Settings
    ) -> None:
        self._db = db
        self._blobs = blobs
        self._indexes = indexes
        self._settings = settings

    def upload(self, actor: str | None, user: str, index: str, form: UploadForm) -> UploadOutcome:
        """Handle one legacy-API POST: a release file, a documentation zip or a register."""
        [outcome] = self.upload_many([UploadRequest(actor, user, index, form)])
        if isinstance(outcome, Exception):
            raise outcome
        return outcome

    def inspect(self, request: UploadRequest) -> None:
        """Read the file's metadata (or check the doc zip) before the upload joins a batch:
        a hostile archive then costs its own request's time, not every batched upload's."""
        form = request.form
        try:
            self._authorize(request.actor, request.user, request.index)
            form.inspected = self._inspect(form)
        except Exception as exc:  # answered in order, once the batch handles this request
            form.inspected = exc
        finally:
            if form.content is not None:
                form.content.seek(0)

    def _inspect(self, form: UploadForm) -> bytes | None:
        if form.content is None or not form.filename:
            return None
        limits = limits_from(self._settings)
        action = form.value(":action")
        if action == "file_upload":
            return read_core_metadata(form.content, self._validate_filename(form), limits)
        if action == "doc_upload":
            check_zip(form.content, form.filename, limits)
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
        record = self._authorize(request.actor, request.user, request.index)
        form = request.form
        action = form.value(":action")
        if action == "file_upload":
            return self._receive_release(request.actor, record, form, writers)
        if action == "doc_upload":
            return self._receive_docs(request.actor, record, form, writers)
        if action == "submit":
            return self._register(record, form)
        raise InvalidInput(f"action {action!r} not supported")

    @contextlib.contextmanager
    def _batch_writer(self, writers: contextlib.ExitStack) -> Iterator[BlobWriter]:
        """A blob writer thrown away if the block fails, else kept until the batch ends."""
        with contextlib.ExitStack() as on_failure:
            writer = on_failure.enter_context(self._blobs.writer())
            yield writer
            writers.push(on_failure.pop_all())

    def _receive_release(
        self,
        actor: str | None,
        record: IndexRecord,
        form: UploadForm,
        writers: contextlib.ExitStack,
    ) -> _Received:
        dist = self._validate_filename(form)
        if form.content is None:
            raise InvalidInput("content file field not found")
        digests = SentDigests(form)
        with self._batch_writer(writers) as writer:
            self._receive(form.content, writer, digests.update, durable=False)
            digests.check()
            # Read back from the received content: usually still in memory, no file to reopen.
            content, limits = form.content, limits_from(self._settings)
            metadata = _inspected(form, lambda: read_core_metadata(content, dist, limits))
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
        return _Received(actor, record, incoming, writer, metadata_sha, new_metadata)

    def _receive_docs(
        self,
        actor: str | None,
        record: IndexRecord,
        form: UploadForm,
        writers: contextlib.ExitStack,
    ) -> _Received:
        """A documentation zip for one version (devpi: `{project}-{version}.doc.zip`)."""
        name = check_project_name(form.value("name"))
        project = normalize_project(name)
        if form.content is None or not form.filename:
            raise InvalidInput("content file field not found")
        version = form.value("version") or self._latest_version(record, project)
        parse_version(version)
        filename, limits = form.filename, limits_from(self._settings)
        with self._batch_writer(writers) as writer:
            self._receive(form.content, writer, durable=False)

            def check_docs() -> bytes:
                check_zip(writer.temp_path, filename, limits)
                return b""

            _inspected(form, check_docs)
        incoming = Incoming(
            project=project,
            version=version,
            filename=f"{project}-{version}.doc.zip",
            kind=FileKind.DOCZIP,
            fields={"name": name, "version": version},
        )
        return _Received(actor, record, incoming, writer, None, False)

    def _latest_version(self, record: IndexRecord, project: str) -> str:
        with self._db.read() as conn:
            versions = [v.version for v in store.list_versions(conn, record.id, project)]
        if not versions:  # devpi's words: its client and scripts match on them
            raise InvalidInput(
                f"doczip has no version and {project!r} has no releases to derive one from"
            )
        return max(versions, key=parse_version)

    def _register(self, record: IndexRecord, form: UploadForm) -> UploadOutcome:
        """`:action=submit`: store a version's metadata without files (replacing it whole)."""
        fields = form_metadata(form)
        name = check_project_name(str(fields.get("name") or ""))
        version = str(parse_version(str(fields.get("version") or "")))
        project = normalize_project(name)
        full = complete_metadata(fields)
        with self._db.write("register", index=record.full_name, project=project) as conn:
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
        """Who may attach tox results to `release` (asked before their body is read, of a
        file already looked up: a missing one is 404 for everyone)."""
        if release.kind != FileKind.RELEASE:
            raise NotFound(f"no release file found at {release.relpath}")
        if actor is None:
            raise Unauthenticated(
                "authentication required to upload tox results; log in, or use the devpi"
                " test --no-upload option to skip the upload."
            )
        config = record.index_config
        if not acl.may_upload_toxresult(actor, config.acl_toxresult_upload, config.acl_upload):
            raise Forbidden(
                "No permission to upload tox results. You can use the devpi test --no-upload"
                " option to skip the upload."
            )

    def attach_toxresult(
        self, actor: str | None, record: IndexRecord, release: FileRecord, body: bytes
    ) -> str:
        """Store a tox result (JSON) beside a release file; returns its path with hash."""
        self.check_toxresult_upload(actor, record, release)
        limit = self._settings.max_toxresult_size
        if len(body) > limit:
            raise TooLarge(f"tox result too large: the limit is {limit} bytes")
        try:
            json.loads(body)
        except ValueError as exc:
            raise InvalidInput("a tox result must be a JSON document") from exc
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
        return self._authorize(actor, user, index, snapshot)

    def _authorize(
        self,
        actor: str | None,
        user: str,
        index: str,
        snapshot: dict[str, IndexRecord] | None = None,
    ) -> IndexRecord:
        record = self._indexes.get(user, index, snapshot)
        if record.is_mirror:
            raise NotFound("cannot submit to mirror index")
        if actor is None:
            raise Unauthenticated("authentication required to upload")
        if not acl.may_upload(actor, record.index_config.acl_upload):
            raise Forbidden("no permission to submit")
        return record

    @staticmethod
    def _validate_filename(form: UploadForm) -> DistFilename:
        name, version, filetype = form.value("name"), form.value("version"), form.value("filetype")
        return check_upload_filename(form.filename, name, version, filetype)

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
            ("upload", {"index": item.record.full_name, "file": item.incoming.filename},
             functools.partial(self._store_rows, item))
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
        admission = self._admit(conn, item)
        if admission.identical is not None:
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
        version = self._ensure_version(conn, record, incoming)
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

    @staticmethod
    def _ensure_version(conn: Connection, record: IndexRecord, incoming: Incoming) -> str:
        """Create the version's metadata record, or update the keys a release file carries
        (a doc zip names its version but brings no metadata to change)."""
        project, version, fields = incoming.project, incoming.version, incoming.fields
        key = canonicalize_version(version)
        current = store.get_version(conn, record.id, project, key)
        if current is None:
            full = complete_metadata(fields)
            store.insert_version(conn, record.id, project, version, key, full, time.time())
            index_for_search(conn, record.id, project, version, full)
            return version
        if incoming.kind != FileKind.RELEASE:
            return current.version
        merged = dict(current.metadata)
        merged.update({k: v for k, v in complete_metadata(fields).items() if k in fields})
        if merged != current.metadata:  # the wheel and sdist of a release usually agree
            store.update_version_metadata(conn, current.id, merged)
            index_for_search(conn, record.id, project, current.version, merged)
        return current.version


def version_files(conn: Connection, index_id: int, project: str, version: str) -> list[FileRecord]:
    """The release files an upload of `version` joins (1.0 and 1.0.0 alike). A local version
    (1.0+cpu) joins its public version's release as well: pip's `==1.0` takes 1.0+cpu, and
    prefers it, so it must not slip into a released 1.0."""
    key = canonicalize_version(version)
    public = _public_release(version)
    return [
        file
        for file in store.project_files(conn, index_id, project)
        if file.kind == FileKind.RELEASE
        and (
            canonicalize_version(file.version) == key
            or (public is not None and public == _public_release(file.version, local_too=True))
        )
    ]


def _public_release(version: str, local_too: bool = False) -> str | None:
    """The canonical public part of a local version (of any version with `local_too`)."""
    try:
        parsed = Version(version)
    except InvalidVersion:
        return None
    return canonicalize_version(parsed.public) if parsed.local or local_too else None


def index_for_search(
    conn: Connection, index_id: int, project: str, version: str, metadata: Mapping[str, Any]
) -> None:
    """Keep the project findable by the words of its latest upload's metadata."""
    summary = str(metadata.get("summary") or "")
    description = str(metadata.get("description") or "")
    search.upsert(conn, index_id, project, version, summary, description)


def _inspected(form: UploadForm, inspect: Callable[[], bytes]) -> bytes:
    """What `Uploads.inspect` found (its error raised here, in its turn), else inspect now."""
    if isinstance(form.inspected, Exception):
        raise form.inspected
    return form.inspected if form.inspected is not None else inspect()


def form_metadata(form: UploadForm) -> dict[str, Any]:
    """Metadata sent as form fields (for `submit`), in devpi's key names."""
    fields: dict[str, Any] = {}
    for key, values in form.fields.items():
        target = FORM_ALIASES.get(key, key)
        if target in METADATA_KEYS:
            fields[target] = values if target in LIST_KEYS else values[0]
    return fields


def toxresult_name(release: FileRecord, count: int, moment: time.struct_time) -> str:
    """devpi's name: `{release}.toxresult-{YYYYmmddHHMMSS}-{n}`, n counting earlier ones."""
    return f"{release.filename}.toxresult-{time.strftime('%Y%m%d%H%M%S', moment)}-{count}"
