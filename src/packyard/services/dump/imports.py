"""Import: checks each file's hash as it copies the file into the blob store, syncs once,
then stores all rows in one transaction: a failure removes the blobs it added and leaves the
target as it was."""

from __future__ import annotations

import dataclasses
import email.utils
import hashlib
import json
import os
import shutil
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from argon2 import PasswordHasher
from packaging.utils import canonicalize_version
from sqlalchemy import Connection

from packyard.core.dists import check_safe_filename, parse_dist_filename
from packyard.core.models import FileKind, FileRecord, IndexRecord, User
from packyard.core.names import normalize_project
from packyard.errors import Conflict, InvalidInput, PackyardError
from packyard.services.archives import read_core_metadata
from packyard.services.audit import import_entries
from packyard.services.dump.format import USER_KEYS, Progress, Summary, damaged_error, no_progress
from packyard.services.release_rows import index_for_search
from packyard.services.sources import Sources
from packyard.storage import store
from packyard.storage.blobs import BlobStore, file_sha256
from packyard.storage.db import Database


def _place(source: Path, destination: Path, hard_link: bool) -> None:
    if hard_link:
        try:
            os.link(source, destination)
            return
        except OSError:
            pass  # another file system: copy instead
    shutil.copyfile(source, destination)


@dataclasses.dataclass(frozen=True)
class ImportOptions:
    root_password: str | None = None
    root_pwhash: str | None = None
    skip_types: tuple[str, ...] = ()
    skip_indexes: tuple[str, ...] = ()  # e.g. root/pypi with --no-root-pypi, as devpi-import
    hard_links: bool = False
    allow_nonempty: bool = False
    skip_damaged: bool = False  # leave out (and report) files missing or not matching


@dataclasses.dataclass
class _PlannedFile:
    index: str
    record: FileRecord
    source: Path
    for_entrypath: str | None
    problem: str = ""  # why the file cannot be imported, if it cannot


class Importer:
    """Reads a devpi dump (packyard's or devpi-server's) into this server, all or nothing."""

    def __init__(self, db: Database, blobs: BlobStore, sources: Sources) -> None:
        self._db = db
        self._blobs = blobs
        self._sources = sources

    def import_(
        self, source: Path, options: ImportOptions, progress: Progress = no_progress
    ) -> Summary:
        dataindex = _read_dataindex(source)
        with self._db.read() as conn:
            if _has_data(conn) and not options.allow_nonempty:
                raise Conflict(
                    "the target server already has users or indexes; import into an empty"
                    " server dir, or pass --force to import beside them"
                )
        indexes = {
            name: data
            for name, data in dataindex.get("indexes", {}).items()
            if data.get("indexconfig", {}).get("type") not in options.skip_types
            and name not in options.skip_indexes
        }
        planned = list(self._plan_files(source, indexes))
        damaged = self._leave_out_damaged(planned, options.skip_damaged)
        stored: list[str] = []
        try:
            for done, item in enumerate(planned, 1):
                stored.extend(self._store_blob(item, options.hard_links))
                progress("files", done, len(planned))
            self._blobs.sync()
            users = dataindex.get("users", {})
            summary = self._write_rows(source, users, indexes, planned, options)
        except BaseException:
            self._forget_blobs(stored)
            raise
        summary.skipped = damaged
        return summary

    @staticmethod
    def _leave_out_damaged(planned: list[_PlannedFile], skip: bool) -> list[str]:
        """Check every file before anything is stored; the damaged ones (and toxresults about
        them) are left out when `skip`, else the import fails naming them all."""
        damaged = [item for item in planned if item.problem]
        if not damaged:
            return []
        names = [f"{item.source.name}: {item.problem}" for item in damaged]
        if not skip:
            raise damaged_error(names, "imported")
        gone = {(item.index, item.record.filename) for item in damaged}
        planned[:] = [
            item
            for item in planned
            if not item.problem
            and (item.index, (item.for_entrypath or "").rsplit("/", 1)[-1]) not in gone
        ]
        return names

    def _plan_files(self, source: Path, indexes: dict[str, Any]) -> Iterator[_PlannedFile]:
        root = source.resolve()
        for index_name, data in indexes.items():
            versions = data.get("projects") or {}
            for entry in data.get("files", ()):
                path = (root / entry["relpath"]).resolve()
                if not path.is_relative_to(root):
                    raise InvalidInput(f"{entry['relpath']}: outside the export")
                record = _file_record(entry, path, versions)
                yield _PlannedFile(
                    index=index_name,
                    record=record,
                    source=path,
                    for_entrypath=entry.get("for_entrypath"),
                    problem=_source_problem(path, record.sha256),
                )

    def _store_blob(self, item: _PlannedFile, hard_link: bool) -> list[str]:
        """Copy (or link) one checked file into the blob store."""
        expected = item.record.sha256
        new: list[str] = []
        if not self._blobs.exists(expected):
            with self._blobs.writer() as writer:
                writer.abort()
                _place(item.source, writer.temp_path, hard_link)
                writer.sha256 = expected
                writer.commit(durable=False)  # one sync for all before the rows commit
            new.append(expected)
        if item.record.kind == FileKind.RELEASE and item.record.filename.endswith(".whl"):
            metadata = _wheel_metadata(item)
            if metadata is not None:
                sha = hashlib.sha256(metadata).hexdigest()
                if not self._blobs.exists(sha):
                    new.append(self._blobs.put_bytes(metadata, durable=False))
                item.record = dataclasses.replace(item.record, metadata_sha256=sha)
        return new

    def _forget_blobs(self, shas: list[str]) -> None:
        """Remove blobs this failed import added, unless something refers to them."""
        with self._db.read() as conn:
            used = store.referenced_blobs(conn, set(shas))
        for sha in set(shas) - used:
            self._blobs.delete(sha)

    def _write_rows(
        self,
        source: Path,
        users: dict[str, Any],
        indexes: dict[str, Any],
        planned: list[_PlannedFile],
        options: ImportOptions,
    ) -> Summary:
        summary = Summary(users=len(users), indexes=len(indexes))
        with self._db.write("import", config=True, users=len(users), indexes=len(indexes)) as conn:
            import_entries(conn, source)  # the exported trail, before this import's own entry
            for name, data in users.items():
                _put_user(conn, _user(name, data, options))
            index_ids: dict[str, IndexRecord] = {}
            for full_name, data in indexes.items():
                user, name = full_name.split("/", 1)
                config = _migrated_config(data["indexconfig"])
                index_ids[full_name] = IndexRecord(
                    _put_index(conn, user, name, config), user, name, config
                )
            known: set[tuple[int, str, str]] = set()  # versions already ensured
            for full_name, data in indexes.items():
                record = index_ids[full_name]
                for project, versions in (data.get("projects") or {}).items():
                    summary.projects += 1
                    name = normalize_project(project)
                    for version, metadata in versions.items():
                        _ensure_version(conn, record, name, version, metadata, known)
            releases: dict[tuple[str, str], FileRecord] = {}
            inserted: list[FileRecord] = []
            for item in sorted(planned, key=lambda p: p.record.kind == FileKind.TOXRESULT):
                record = index_ids[item.index]
                file = self._linked(item, releases)
                file = dataclasses.replace(file, index_id=record.id)
                _ensure_version(conn, record, file.project, file.version, {}, known)
                store.insert_file(conn, file)
                releases[(item.index, file.filename)] = file
                inserted.append(file)
                summary.files += 1
                summary.bytes += file.size
            for record in index_ids.values():
                self._sources.source_for(record).imported(conn, inserted)
        return summary

    @staticmethod
    def _linked(item: _PlannedFile, releases: dict[tuple[str, str], FileRecord]) -> FileRecord:
        """Toxresults point at their release file (and live in its hash directory)."""
        if item.record.kind != FileKind.TOXRESULT or not item.for_entrypath:
            return item.record
        # By basename, as devpi-import: older exports name other hash directories.
        release = releases.get((item.index, item.for_entrypath.rsplit("/", 1)[-1]))
        if release is None:
            raise InvalidInput(f"{item.source.name}: its release file is not in the export")
        return dataclasses.replace(
            item.record, for_file=release.filename, dir_sha256=release.sha256
        )


def _migrated_config(exported: dict[str, Any]) -> dict[str, Any]:
    """Config keys of older devpi versions, renamed or dropped as devpi-import does."""
    config = dict(exported)
    if "uploadtrigger_jenkins" in config and not config["uploadtrigger_jenkins"]:
        del config["uploadtrigger_jenkins"]
    if "pypi_whitelist" in config:  # renamed in devpi 3.0
        config.setdefault("mirror_whitelist", config.pop("pypi_whitelist"))
    return config


def _put_user(conn: Connection, user: User) -> None:
    """A new user; the target's own root gives way to the export's (as in devpi-import)."""
    if store.get_user(conn, user.name) is None:
        store.insert_user(conn, user)
    elif user.name == "root":
        values = dataclasses.asdict(user)
        del values["name"]
        store.update_user(conn, "root", **values)
    else:
        raise Conflict(f"user {user.name} already exists on the target server")


def _put_index(conn: Connection, user: str, name: str, config: dict[str, Any]) -> int:
    """A new index; an unused root/pypi of the target takes the export's config instead."""
    existing = store.get_index(conn, user, name)
    if existing is None:
        return store.insert_index(conn, user, name, config)
    if existing.full_name == "root/pypi" and not store.index_files(conn, existing.id):
        store.update_index_config(conn, existing.id, config)
        return existing.id
    raise Conflict(f"index {existing.full_name} already exists on the target server")


def _wheel_metadata(item: _PlannedFile) -> bytes | None:
    try:
        return read_core_metadata(item.source, parse_dist_filename(item.record.filename))
    except PackyardError:
        return None


def _has_data(conn: Connection) -> bool:
    """devpi's rule: a server with only the default root user (and root/pypi) is empty."""
    users = [user.name for user in store.list_users(conn)]
    indexes = [index.full_name for index in store.list_indexes(conn)]
    return users not in ([], ["root"]) or indexes not in ([], ["root/pypi"])


def _read_dataindex(source: Path) -> dict[str, Any]:
    path = source / "dataindex.json"
    try:
        data = json.loads(path.read_text())
    except FileNotFoundError as exc:
        raise InvalidInput(
            f"{source} holds no dataindex.json: not a devpi/packyard export"
        ) from exc
    except ValueError as exc:
        raise InvalidInput(f"{path} is not valid JSON: {exc}") from exc
    if str(data.get("dumpversion")) not in ("1", "2"):
        raise InvalidInput(f"unsupported dumpversion {data.get('dumpversion')!r} (1 or 2 known)")
    return dict(data)


def _user(name: str, data: dict[str, Any], options: ImportOptions) -> User:
    pwhash, pwsalt = data.get("pwhash"), data.get("pwsalt")
    if name == "root" and (options.root_password or options.root_pwhash):
        pwsalt = None
        pwhash = options.root_pwhash or PasswordHasher().hash(options.root_password or "")
    return User(
        name=name,
        pwhash=pwhash,
        pwsalt=pwsalt,
        info={key: data[key] for key in USER_KEYS if key in data},
        created=data.get("created") or time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        modified=data.get("modified"),
    )


def _source_problem(path: Path, expected: str) -> str:
    """Why an exported file cannot be imported ('' when it can)."""
    if not path.is_file():
        return "missing from the export"
    actual = file_sha256(path)
    if actual != expected:
        return (
            f"its sha256 is {actual}, but the export says {expected};"
            " the export is damaged or was changed"
        )
    return ""


def _file_kind(entry: dict[str, Any]) -> FileKind:
    kind = entry.get("type", FileKind.RELEASE)
    try:
        return FileKind(kind)
    except ValueError:
        raise InvalidInput(f"{entry.get('relpath')}: unknown file type {kind!r}") from None


def _file_record(
    entry: dict[str, Any], path: Path, versions: dict[str, dict[str, Any]]
) -> FileRecord:
    mapping = entry.get("entrymapping", {})
    sha256 = (mapping.get("hashes") or {}).get("sha256")
    if not sha256:
        spec = str(mapping.get("hash_spec", ""))
        sha256 = spec.removeprefix("sha256=") if spec.startswith("sha256=") else None
    if entry.get("type") == FileKind.TOXRESULT and path.parent.name == f"sha256={sha256}":
        sha256 = None  # devpi 6.5 to 6.8 exported the release file's hash for toxresults
    if not sha256 and path.is_file():  # devpi-import accepts entries without hashes (§13.4)
        sha256 = file_sha256(path)
    version = entry.get("version") or mapping.get("version") or _version_from_name(path.name)
    # Versions and names become path segments of later exports: nothing that could escape.
    check_safe_filename(path.name)
    if "/" in str(version) or "\\" in str(version) or str(version).startswith("."):
        raise InvalidInput(f"{entry.get('relpath')}: {version!r} is not a usable version")
    modified = (
        email.utils.parsedate_to_datetime(mapping["last_modified"]).timestamp()
        if (mapping.get("last_modified"))
        else time.time()
    )
    project = normalize_project(entry.get("projectname") or mapping.get("project", ""))
    metadata = (versions.get(project) or {}).get(str(version)) or {}
    return FileRecord(
        id=0,
        index_id=0,
        project=project,
        version=str(version),
        filename=path.name,
        kind=_file_kind(entry),
        sha256=(sha256 or "").lower(),
        size=path.stat().st_size if path.is_file() else 0,
        uploaded_at=modified,
        # packyard's own keys (see _packyard_state); devpi's exports have none.
        yanked=_text_or_none(entry.get("yanked")),
        metadata_sha256=None,
        requires_python=_text_or_none(
            entry["requires_python"]
            if "requires_python" in entry
            else metadata.get("requires_python") or None
        ),
        for_file=None,
        log=list(entry.get("log") or []),
    )


def _text_or_none(value: Any) -> str | None:
    if value is not None and not isinstance(value, str):
        raise InvalidInput(f"{value!r} is not text")
    return value


def _version_from_name(filename: str) -> str:
    try:
        return str(parse_dist_filename(filename).version)
    except InvalidInput:
        return ""


def _ensure_version(
    conn: Connection,
    record: IndexRecord,
    project: str,
    version: str,
    metadata: dict[str, Any],
    known: set[tuple[int, str, str]],
) -> None:
    key = canonicalize_version(version)
    if (record.id, project, key) in known:
        return
    known.add((record.id, project, key))
    if store.get_version(conn, record.id, project, key) is None:
        data = dict(metadata) or {"name": project, "version": version}
        store.insert_version(conn, record.id, project, version, key, data, time.time())
        index_for_search(conn, record.id, project, version, data)
