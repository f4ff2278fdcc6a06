"""Moving releases: push between indexes, and push to an external upload URL (§12).

A push to an external URL makes this server send requests where the caller says: it needs
root's setting `allow_external_push` and upload rights on the source index, goes through the
outbound policy (services/outbound.py) on the event loop, and never hands the remote's answer
back (its status only; the body goes to the log).
"""

from __future__ import annotations

import base64
import dataclasses
import logging
import time
from collections.abc import Mapping
from typing import Any

from packaging.utils import canonicalize_version

from packyard.config import Settings
from packyard.core import acl
from packyard.core.dists import upload_filetype
from packyard.core.models import FileKind, FileRecord, IndexRecord, VersionRecord
from packyard.core.names import normalize_project, split_index_name
from packyard.core.releases import (
    EXISTS,
    Admission,
    Upload,
    admit,
    check_metadata_change,
    stored_dist,
)
from packyard.errors import Conflict, Forbidden, InvalidInput, NotFound, Unauthenticated
from packyard.services._threads import in_thread
from packyard.services.indexes import Indexes
from packyard.services.outbound import Outbound, OutboundFailure
from packyard.services.release_rows import index_for_search, log_entry, version_files
from packyard.storage import store
from packyard.storage.blobs import BlobStore
from packyard.storage.db import Database

Row = list[Any]
KNOWN_OPTIONS = frozenset(
    {"name", "version", "targetindex", "posturl", "username", "password", "no_docs",
     "only_docs", "register_project"}
)  # fmt: skip
log = logging.getLogger("packyard.push")


@dataclasses.dataclass(frozen=True)
class PushResult:
    """devpi's `actionlog`: one row per step, and the HTTP status for the whole."""

    status: int
    rows: list[Row]


class Transfer:
    """Copies a release (metadata, files, tox results, docs) to another place."""

    def __init__(
        self,
        db: Database,
        blobs: BlobStore,
        indexes: Indexes,
        settings: Settings,
        outbound: Outbound,
    ) -> None:
        self._db = db
        self._blobs = blobs
        self._indexes = indexes
        self._settings = settings
        self._outbound = outbound

    async def push(
        self, actor: str | None, source: IndexRecord, body: Mapping[str, Any]
    ) -> PushResult:
        unknown = sorted(set(body) - KNOWN_OPTIONS)
        if unknown:
            raise InvalidInput(f"unknown additional options: {', '.join(unknown)}")
        if body.get("no_docs") and body.get("only_docs"):
            raise InvalidInput("no_docs and only_docs cannot be combined")
        name, version = str(body.get("name") or ""), str(body.get("version") or "")
        if not name or not version:
            raise InvalidInput("push needs a name and a version")
        if not body.get("targetindex") and not body.get("posturl"):
            raise InvalidInput("push needs a targetindex or a posturl")
        # The release is looked up before the caller is judged (it is public to read).
        release, files = await in_thread(self._release, source, normalize_project(name), version)
        if not body.get("targetindex"):
            self._authorize_external(actor, source)
        files = _select(files, bool(body.get("no_docs")), bool(body.get("only_docs")))
        if body.get("targetindex"):
            target = str(body["targetindex"])
            return await in_thread(self._to_index, actor, source, release, files, target)
        return await self._to_external(source, release, files, body)

    def _authorize_external(self, actor: str | None, source: IndexRecord) -> None:
        """Decided before anything is sent."""
        if not self._settings.allow_external_push:
            raise Forbidden(
                "pushing to an external upload URL is turned off on this server; root can"
                " turn it on with the setting allow_external_push"
            )
        if actor is None:
            raise Unauthenticated("pushing to an external upload URL needs a login")
        if not acl.may_upload(actor, source.index_config.acl_upload):
            raise Forbidden(f"user {actor!r} cannot upload to {source.full_name!r}")

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
        # A mirror's acl_upload is empty: nobody uploads to it.
        if not acl.may_upload(actor, target.index_config.acl_upload):
            raise Unauthenticated(f"user {actor!r} cannot upload to {target.full_name!r}")
        rows: list[Row] = [
            [200, "register", release.project, release.version, "->", user + "/" + name]
        ]
        pushed = (release.project, release.version, source.full_name)
        with self._db.write("push", index=target.full_name, **_push_detail(*pushed)) as conn:
            released = version_files(conn, target.id, release.project, release.version)
            self._register(conn, target, release, released)
            for file in files:
                existing = store.get_file(conn, target.id, file.filename)
                if existing is not None and not target.volatile:
                    raise Conflict(f"{file.filename} {EXISTS}")
                replaced = [existing] if existing is not None else []
                if file.kind == FileKind.RELEASE:  # on a volatile target, the copy replaces twins
                    admission = _admitted(file, actor, target, released)
                    replaced = [*admission.replaces, *filter(None, [admission.identical])]
                store.delete_files(conn, [old.id for old in replaced])
                copy = _copied(file, target, source, actor)
                store.insert_file(conn, copy)
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

    async def _to_external(
        self,
        source: IndexRecord,
        release: VersionRecord,
        files: list[FileRecord],
        body: Mapping[str, Any],
    ) -> PushResult:
        url = str(body["posturl"])
        self._outbound.check_url(url, "posturl")
        credentials = f"{body.get('username', '')}:{body.get('password', '')}"
        headers = {"Authorization": "Basic " + base64.b64encode(credentials.encode()).decode()}
        metadata = {k: v for k, v in release.metadata.items() if v not in ("", [], None)}
        rows: list[Row] = []
        if body.get("register_project"):
            fields = {**metadata, ":action": "submit"}
            rows.append(await self._post(url, headers, fields, None, "register"))
        for file in files:
            if file.kind == FileKind.RELEASE:
                filetype, pyversion = upload_filetype(stored_dist(file))
                fields = {
                    **metadata,
                    ":action": "file_upload",
                    "protocol_version": "1",
                    "filetype": filetype,
                    "pyversion": pyversion,
                    "sha256_digest": file.sha256,
                }
                label = f"{source.full_name}/{file.relpath}"
                rows.append(await self._post(url, headers, fields, file, label))
            elif file.kind == FileKind.DOCZIP:
                fields = {"name": release.metadata.get("name") or release.project,
                          "version": release.version, ":action": "doc_upload"}  # fmt: skip
                rows.append(await self._post(url, headers, fields, file, release.project))
        ok = bool(rows) and rows[-1][0] in (200, 201)
        return PushResult(200 if ok else 502, rows)

    async def _post(
        self,
        url: str,
        headers: Mapping[str, str],
        fields: Mapping[str, Any],
        file: FileRecord | None,
        label: str,
    ) -> Row:
        """One upload to the external URL; the row carries its status, never its body."""
        what = "upload" if file is None or file.kind == FileKind.RELEASE else "docfile"
        files = None
        if file is not None:
            name = file.filename if file.kind == FileKind.RELEASE else f"{fields['name']}.zip"
            content = await in_thread(self._blobs.read_bytes, file.sha256)
            files = {"content": (name, content)}
        data = {key: value for key, value in fields.items() if value not in ("", [], None)}
        try:
            async with self._outbound.stream(
                "POST", url, trusted=[url], deadline=self._settings.outbound_file_deadline,
                headers=headers, data=data, files=files,
            ) as response:  # fmt: skip
                status = response.status_code
                if not response.is_success:
                    answer = b""
                    async for chunk in response.aiter_bytes(500):
                        answer = chunk[:500]
                        break
                    log.warning("push of %s to %s: HTTP %d %r", label, url, status, answer)
        except OutboundFailure:
            return [-1, f"exception on {what}", f"{label}: no usable answer from the upload URL"]
        return [status, what, label, ""]


def _admitted(
    file: FileRecord, actor: str | None, target: IndexRecord, released: list[FileRecord]
) -> Admission:
    """The release rule (core/releases.py) for a pushed file: a push brings a whole release
    at once, so a version the target already holds gets no new files (no release window)."""
    upload = Upload(stored_dist(file), file.sha256, actor, time.time())
    return admit(upload, released, target.volatile, window=0)


def _select(files: list[FileRecord], no_docs: bool, only_docs: bool) -> list[FileRecord]:
    if no_docs:
        return [f for f in files if f.kind != FileKind.DOCZIP]
    if only_docs:
        return [f for f in files if f.kind == FileKind.DOCZIP]
    return files


def _copied(
    file: FileRecord, target: IndexRecord, source: IndexRecord, actor: str | None
) -> FileRecord:
    log = [entry for entry in file.log if entry.get("what") != "overwrite"]
    log.append(log_entry("push", actor, src=source.full_name, dst=target.full_name))
    return dataclasses.replace(file, id=0, index_id=target.id, log=log)


def _push_row(original: FileRecord, copy: FileRecord, target: IndexRecord) -> Row:
    path = f"{target.full_name}/{copy.relpath}"
    if original.kind == FileKind.RELEASE:
        return [200, "store_releasefile", path]
    if original.kind == FileKind.TOXRESULT:
        return [200, "store_toxresult", path]
    return [200, "store_doczip", original.project, original.version, "->", target.full_name]


def _push_detail(project: str, version: str, source: str) -> dict[str, Any]:
    return {"project": project, "version": version, "source": source}
