"""Moving releases: push between indexes, and push to an external upload URL (§12)."""

from __future__ import annotations

import base64
import dataclasses
import time
from collections.abc import Mapping
from typing import Any

import httpx
from packaging.utils import canonicalize_version

from packyard.core import acl
from packyard.core.dists import parse_dist_filename
from packyard.core.models import FileRecord, IndexRecord, VersionRecord
from packyard.core.names import normalize_project, split_index_name
from packyard.core.releases import EXISTS, Admission, Upload, admit, check_metadata_change
from packyard.errors import Conflict, InvalidInput, NotFound, Unauthenticated
from packyard.services.changes import changing
from packyard.services.indexes import Indexes
from packyard.services.uploads import index_for_search, log_entry, version_files
from packyard.storage import store
from packyard.storage.blobs import BlobStore
from packyard.storage.db import Database

Row = list[Any]
KNOWN_OPTIONS = frozenset(
    {"name", "version", "targetindex", "posturl", "username", "password", "no_docs",
     "only_docs", "register_project"}
)  # fmt: skip
EXTERNAL_TIMEOUT = 60.0


@dataclasses.dataclass(frozen=True)
class PushResult:
    """devpi's `actionlog`: one row per step, and the HTTP status for the whole."""

    status: int
    rows: list[Row]


class Transfer:
    """Copies a release (metadata, files, tox results, docs) to another place."""

    def __init__(self, db: Database, blobs: BlobStore, indexes: Indexes) -> None:
        self._db = db
        self._blobs = blobs
        self._indexes = indexes

    def push(self, actor: str | None, source: IndexRecord, body: Mapping[str, Any]) -> PushResult:
        unknown = sorted(set(body) - KNOWN_OPTIONS)
        if unknown:
            raise InvalidInput(f"unknown additional options: {', '.join(unknown)}")
        if body.get("no_docs") and body.get("only_docs"):
            raise InvalidInput("no_docs and only_docs cannot be combined")
        name, version = str(body.get("name") or ""), str(body.get("version") or "")
        if not name or not version:
            raise InvalidInput("push needs a name and a version")
        release, files = self._release(source, normalize_project(name), version)
        files = _select(files, bool(body.get("no_docs")), bool(body.get("only_docs")))
        if body.get("targetindex"):
            return self._to_index(actor, source, release, files, str(body["targetindex"]))
        if body.get("posturl"):
            return self._to_external(source, release, files, body)
        raise InvalidInput("push needs a targetindex or a posturl")

    def _release(
        self, source: IndexRecord, project: str, version: str
    ) -> tuple[VersionRecord, list[FileRecord]]:
        with self._db.read() as conn:
            release = store.get_version(conn, source.id, project, canonicalize_version(version))
            if release is None:
                raise InvalidInput(
                    f"there are no files for {project} {version} on stage {source.full_name}"
                )
            files = [
                file
                for file in store.project_files(conn, source.id, project)
                if file.version == release.version
            ]
        if not files:
            raise NotFound(f"no release/files found for {project} {version}")
        return release, files

    # --- index to index ------------------------------------------------------------------------

    def _to_index(
        self,
        actor: str | None,
        source: IndexRecord,
        release: VersionRecord,
        files: list[FileRecord],
        target_name: str,
    ) -> PushResult:
        try:
            user, name = split_index_name(target_name)
        except InvalidInput as exc:
            raise InvalidInput("targetindex not in format user/index") from exc
        target = self._indexes.get(user, name)
        if target.is_mirror or not acl.may_upload(actor, target.config.get("acl_upload", ())):
            raise Unauthenticated(f"user {actor!r} cannot upload to {target.full_name!r}")
        rows: list[Row] = [
            [200, "register", release.project, release.version, "->", user + "/" + name]
        ]
        with changing(self._db, self._blobs, "push", index=target.full_name) as change:
            released = version_files(change.conn, target.id, release.project, release.version)
            self._register(change.conn, target, release, released)
            for file in files:
                existing = store.get_file(change.conn, target.id, file.filename)
                if existing is not None and not target.volatile:
                    raise Conflict(f"{file.filename} {EXISTS}")
                replaced = [existing] if existing is not None else []
                if file.kind == "releasefile":  # on a volatile target, the copy replaces twins
                    admission = _admitted(file, actor, target, released)
                    replaced = [*admission.replaces, *filter(None, [admission.identical])]
                change.release(replaced)
                store.delete_files(change.conn, [old.id for old in replaced])
                copy = _copied(file, target, source, actor)
                store.insert_file(change.conn, copy)
                rows.append(_push_row(file, copy, target))
        return PushResult(200, rows)

    @staticmethod
    def _register(
        conn: Any, target: IndexRecord, release: VersionRecord, released: list[FileRecord]
    ) -> None:
        key = canonicalize_version(release.version)
        current = store.get_version(conn, target.id, release.project, key)
        if current is None:
            store.insert_version(
                conn, target.id, release.project, release.version, key,
                dict(release.metadata), release.created,
            )  # fmt: skip
        elif current.metadata != release.metadata:
            check_metadata_change(target.full_name, current, released, target.volatile)
            store.update_version_metadata(conn, current.id, dict(release.metadata))
        index_for_search(conn, target.id, release.project, release.version, release.metadata)

    # --- to an external index (a PyPI-like upload URL) -----------------------------------------

    def _to_external(
        self,
        source: IndexRecord,
        release: VersionRecord,
        files: list[FileRecord],
        body: Mapping[str, Any],
    ) -> PushResult:
        url = str(body["posturl"])
        credentials = f"{body.get('username', '')}:{body.get('password', '')}"
        headers = {"Authorization": "Basic " + base64.b64encode(credentials.encode()).decode()}
        metadata = {k: v for k, v in release.metadata.items() if v not in ("", [], None)}
        rows: list[Row] = []
        with httpx.Client(timeout=EXTERNAL_TIMEOUT, headers=headers) as client:
            if body.get("register_project"):
                rows.append(
                    self._post(client, url, {**metadata, ":action": "submit"}, None, "register")
                )
            for file in files:
                if file.kind == "releasefile":
                    fields = {
                        **metadata,
                        ":action": "file_upload",
                        "protocol_version": "1",
                        "filetype": "bdist_wheel" if file.filename.endswith(".whl") else "sdist",
                        "pyversion": _pyversion(file.filename),
                        "sha256_digest": file.sha256,
                    }
                    rows.append(
                        self._post(client, url, fields, file, f"{source.full_name}/{file.relpath}")
                    )
                elif file.kind == "doczip":
                    fields = {"name": release.metadata.get("name") or release.project,
                              "version": release.version, ":action": "doc_upload"}  # fmt: skip
                    rows.append(self._post(client, url, fields, file, release.project))
        ok = bool(rows) and rows[-1][0] in (200, 201)
        return PushResult(200 if ok else 502, rows)

    def _post(
        self,
        client: httpx.Client,
        url: str,
        fields: Mapping[str, Any],
        file: FileRecord | None,
        label: str,
    ) -> Row:
        what = "upload" if file is None or file.kind == "releasefile" else "docfile"
        files = None
        if file is not None:
            name = file.filename if file.kind == "releasefile" else f"{fields['name']}.zip"
            files = {"content": (name, self._blobs.read_bytes(file.sha256))}
        data = {key: value for key, value in fields.items() if value not in ("", [], None)}
        try:
            response = client.post(url, data=data, files=files)
        except httpx.HTTPError as exc:
            return [-1, f"exception on {what}", f"{label}: {exc}"]
        text = "" if response.is_success else response.text[:500]
        return [response.status_code, what, label, text]


def _admitted(
    file: FileRecord, actor: str | None, target: IndexRecord, released: list[FileRecord]
) -> Admission:
    """The release rule (core/releases.py) for a pushed file: a push brings a whole release
    at once, so a version the target already holds gets no new files (no release window)."""
    upload = Upload(parse_dist_filename(file.filename), file.sha256, actor, time.time())
    return admit(upload, released, target.volatile, window=0)


def _select(files: list[FileRecord], no_docs: bool, only_docs: bool) -> list[FileRecord]:
    if no_docs:
        return [f for f in files if f.kind != "doczip"]
    if only_docs:
        return [f for f in files if f.kind == "doczip"]
    return files


def _copied(
    file: FileRecord, target: IndexRecord, source: IndexRecord, actor: str | None
) -> FileRecord:
    log = [entry for entry in file.log if entry.get("what") != "overwrite"]
    log.append(log_entry("push", actor, src=source.full_name, dst=target.full_name))
    return dataclasses.replace(file, id=0, index_id=target.id, log=log)


def _push_row(original: FileRecord, copy: FileRecord, target: IndexRecord) -> Row:
    path = f"{target.full_name}/{copy.relpath}"
    if original.kind == "releasefile":
        return [200, "store_releasefile", path]
    if original.kind == "toxresult":
        return [200, "store_toxresult", path]
    return [200, "store_doczip", original.project, original.version, "->", target.full_name]


def _pyversion(filename: str) -> str:
    if filename.endswith(".whl"):
        return filename[:-4].split("-")[-3]
    return "source"
