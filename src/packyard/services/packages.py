"""Projects, versions and files as readers see them: simple pages, devpi's JSON views (§11)
and file lookup. Deleting and yanking are in `package_edits`."""

from __future__ import annotations

import dataclasses
import zipfile
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from packaging.utils import canonicalize_version
from packaging.version import InvalidVersion, Version
from sqlalchemy import Connection

from packyard.core import inheritance
from packyard.core.dists import http_date, parse_dist_filename
from packyard.core.mirror import MirrorLink
from packyard.core.models import FileKind, FileRecord, IndexRecord, PageStatus, VersionRecord
from packyard.core.simple import FileLink, ProjectPage
from packyard.errors import InvalidInput, NotFound
from packyard.services.archives import ZipMember, read_core_metadata, zip_member
from packyard.services.indexes import Indexes
from packyard.storage import search, store
from packyard.storage.blobs import BlobStore
from packyard.storage.db import Database
from packyard.storage.search import SearchHit


@dataclasses.dataclass(frozen=True)
class StoredFile:
    """A file found under an index's +f/ path, ready to be served."""

    record: FileRecord
    path: Path
    is_metadata: bool = False

    @property
    def size(self) -> int:
        return self.path.stat().st_size if self.is_metadata else self.record.size


@dataclasses.dataclass(frozen=True)
class Release:
    """One version of a project as an index serves it, and the index it comes from."""

    version: str
    index: str
    metadata: dict[str, Any]
    files: list[FileLink]
    attachments: list[FileRecord]  # doc zips and tox results (hosted releases only)


def version_sort_key(text: str) -> tuple[int, Version | str]:
    try:
        return (1, Version(text))
    except InvalidVersion:
        return (0, text)


MAX_SEARCH_LENGTH = 200  # characters in one search query
MAX_SEARCH_WORDS = 10


class Packages:
    """Read and change what an index holds."""

    def __init__(self, db: Database, blobs: BlobStore, indexes: Indexes) -> None:
        self._db = db
        self._blobs = blobs
        self._indexes = indexes

    # --- what an index serves, bases included -----------------------------------------------

    def contributors(self, record: IndexRecord, project: str) -> list[IndexRecord]:
        """The indexes whose files count for `project` under `record`, in resolution order.

        A mirror counts when its stored copy of the upstream page lists the project.
        """
        return self._walk(record, project, assume_mirrors_have_it=False)

    def blocked_mirror(self, record: IndexRecord, project: str) -> str | None:
        """The mirror the whitelist keeps out of `project`'s pages, if any (for the UI)."""
        order = self._indexes.full_resolution_order(record)
        by_name = {item.full_name: item for item in order}
        with self._db.read() as conn:
            found = inheritance.contributing_indexes(
                project,
                [item.full_name for item in order],
                {name: item.index_config for name, item in by_name.items()},
                lambda name: (
                    by_name[name].is_mirror or store.has_project(conn, by_name[name].id, project)
                ),
            )
        return found.blocked_mirror

    def mirrors_to_consult(self, record: IndexRecord, project: str) -> list[IndexRecord]:
        """The mirrors that may serve `project` under `record`: those the whitelist allows."""
        walked = self._walk(record, project, assume_mirrors_have_it=True)
        return [item for item in walked if item.is_mirror]

    def _walk(
        self, record: IndexRecord, project: str, assume_mirrors_have_it: bool
    ) -> list[IndexRecord]:
        # The whitelist is judged over every base, so a private project keeps its mirrors out
        # even for a caller who may not read the base that has it; that base's files are then
        # left out of what this caller sees.
        order = self._indexes.full_resolution_order(record)
        visible = {item.id for item in self._indexes.resolution_order(record)}
        by_name = {item.full_name: item for item in order}
        with self._db.read() as conn:

            def has_project(name: str) -> bool:
                item = by_name[name]
                if not item.is_mirror:
                    return store.has_project(conn, item.id, project)
                if assume_mirrors_have_it:
                    return True
                page = store.get_mirror_page(conn, item.id, project)
                return page is not None and page.status == PageStatus.OK

            found = inheritance.contributing_indexes(
                project,
                [item.full_name for item in order],
                {name: item.index_config for name, item in by_name.items()},
                has_project,
            )
        return [by_name[name] for name in found.indexes if by_name[name].id in visible]

    def project_names(self, record: IndexRecord) -> list[str]:
        """Every project of the index and its bases, each once, in resolution order."""
        seen: dict[str, None] = {}
        with self._db.read() as conn:
            for item in self._indexes.resolution_order(record):
                names = (
                    store.mirror_project_names(conn, item.id)
                    if item.is_mirror
                    else store.project_names(conn, item.id)
                )
                seen.update(dict.fromkeys(names))
        return list(seen)

    def own_project_names(self, record: IndexRecord) -> list[str]:
        with self._db.read() as conn:
            return store.project_names(conn, record.id)

    def project_page(self, record: IndexRecord, project: str) -> ProjectPage:
        """The simple page of `project`: every release file from contributing indexes."""
        contributors = self.contributors(record, project)
        if not contributors:
            raise NotFound(f"The project {project} does not exist.")
        links: list[FileLink] = []
        versions: set[str] = set()
        seen: set[str] = set()
        with self._db.read() as conn:
            for item in contributors:
                found = (
                    _mirror_links(conn, item, project)
                    if item.is_mirror
                    else _stage_links(conn, item, project)
                )
                item_links, item_versions = found
                versions.update(item_versions)
                for link in item_links:
                    if link.filename not in seen:
                        seen.add(link.filename)
                        links.append(link)
        return ProjectPage(project, record.full_name, links, sorted(versions, key=version_sort_key))

    def releases(self, record: IndexRecord, project: str) -> list[Release]:
        """Every version visible under `record`, newest first, each from its first index."""
        found: dict[str, Release] = {}
        with self._db.read() as conn:
            for item in self.contributors(record, project):
                for release in _releases_of(conn, item, project):
                    found.setdefault(canonicalize_version(release.version), release)
        if not found:
            raise NotFound(f"The project {project} does not exist.")
        ordered = sorted(found.values(), key=lambda r: version_sort_key(r.version), reverse=True)
        return ordered

    def search(self, query: str, limit: int = 50) -> list[tuple[str, SearchHit]]:
        """(index name, hit) pairs, best first, for words in names, summaries, descriptions.

        Every word costs a full-text lookup, so a query is bounded in length and words."""
        if len(query) > MAX_SEARCH_LENGTH:
            raise InvalidInput(
                f"The search is {len(query)} characters long; the limit is {MAX_SEARCH_LENGTH}."
            )
        if len(search.query_words(query)) > MAX_SEARCH_WORDS:
            raise InvalidInput(f"Search for at most {MAX_SEARCH_WORDS} words at once.")
        with self._db.read() as conn:
            hits = search.search(conn, query, limit)
        names = {record.id: name for name, record in self._indexes.all().items()}
        return [(names[hit.index_id], hit) for hit in hits if hit.index_id in names]

    def cached_files(self, record: IndexRecord) -> list[dict[str, Any]]:
        """What a mirror holds locally: the files it actually served (bundle sources)."""
        if not record.is_mirror:
            raise InvalidInput(f"{record.full_name} is not a mirror index")
        with self._db.read() as conn:
            files = store.index_files(conn, record.id)
        return [
            {
                "filename": f.filename,
                "sha256": f.sha256,
                "size": f.size,
                "path": f"{record.full_name}/{f.relpath}",
            }
            for f in files
            if f.kind == FileKind.RELEASE
        ]

    # --- devpi JSON views ---------------------------------------------------------------------

    def project_view(
        self, record: IndexRecord, project: str, base_url: str, ignore_bases: bool = False
    ) -> dict[str, dict[str, Any]]:
        """version -> versiondata across contributing indexes (first one wins, rest shadow)."""
        contributors = [record] if ignore_bases else self.contributors(record, project)
        result: dict[str, dict[str, Any]] = {}
        with self._db.read() as conn:
            for item in contributors:
                for version, data in self._versions_data(conn, item, project, base_url):
                    if version in result:
                        result[version].setdefault("+shadowing", []).append(data)
                    else:
                        result[version] = data
        if not result and not self._has_project(record, project, ignore_bases):
            raise NotFound(f"no project {project!r}")
        return result  # empty for a project its mirror's upstream lists with no files (devpi)

    def _has_project(self, record: IndexRecord, project: str, ignore_bases: bool) -> bool:
        found = self.contributors(record, project)
        return any(item.id == record.id for item in found) if ignore_bases else bool(found)

    def version_view(
        self,
        record: IndexRecord,
        project: str,
        version: str,
        base_url: str,
        ignore_bases: bool = False,
    ) -> dict[str, Any]:
        versions = self.project_view(record, project, base_url, ignore_bases)
        key = canonicalize_version(version)
        for text, data in versions.items():
            if canonicalize_version(text) == key:
                return data
        raise NotFound(f"The version {version} of project {project} does not exist.")

    def _versions_data(
        self, conn: Connection, item: IndexRecord, project: str, base_url: str
    ) -> list[tuple[str, dict[str, Any]]]:
        if item.is_mirror:
            releases = _releases_of(conn, item, project)
            return [
                (release.version, _mirror_version_data(release, base_url)) for release in releases
            ]
        return [
            (version.version, self._version_data(conn, item, version, base_url))
            for version in store.list_versions(conn, item.id, project)
        ]

    def _version_data(
        self, conn: Connection, item: IndexRecord, version: VersionRecord, base_url: str
    ) -> dict[str, Any]:
        data = dict(version.metadata)
        files = [
            file
            for file in store.project_files(conn, item.id, version.project)
            if file.version == version.version
        ]
        by_name = {file.filename: file for file in files}
        links = []
        for file in files:
            link: dict[str, Any] = {
                "rel": file.kind,
                "href": f"{base_url}/{item.full_name}/{file.relpath}",
                "hash_spec": f"sha256={file.sha256}",
                "hashes": {"sha256": file.sha256},
                "log": file.log,
            }
            release = by_name.get(file.for_file or "")
            if release is not None:
                link["for_href"] = f"{base_url}/{item.full_name}/{release.relpath}"
            if file.yanked is not None:
                link["yanked"] = file.yanked or True
            links.append(link)
        data["+links"] = links
        data["+index"] = item.full_name  # which index (base) this version comes from
        return data

    def file_meta(self, record: IndexRecord, relpath: str) -> dict[str, Any]:
        """devpi's `releasefilemeta` for a +f path."""
        found = self.find_file(record, relpath)
        file = found.record
        return {
            "hash_spec": f"sha256={file.sha256}",
            "hashes": {"sha256": file.sha256},
            "project": file.project,
            "version": file.version,
            "last_modified": http_date(file.uploaded_at),
        }

    # --- files ---------------------------------------------------------------------------------

    def find_file(self, record: IndexRecord, relpath: str) -> StoredFile:
        """Resolve `+f/<3 hex>/<13 hex>/<filename>` (or its `.metadata` sidecar)."""
        parts = relpath.split("/")
        if len(parts) != 3:
            raise NotFound("no such file")
        head, rest, filename = parts
        with self._db.read() as conn:
            file = store.get_file(conn, record.id, filename)
            is_metadata = False
            if file is None and filename.endswith(".metadata"):
                file = store.get_file(conn, record.id, filename.removesuffix(".metadata"))
                is_metadata = True
        if file is None or file.relpath != f"+f/{head}/{rest}/{file.filename}":
            raise NotFound("no such file")
        if is_metadata:
            if not file.metadata_sha256:
                raise NotFound("no core metadata for this file")
            if not self._blobs.exists(file.metadata_sha256):
                self._rebuild_metadata(file)
            return StoredFile(file, self._blobs.local_path(file.metadata_sha256), True)
        # Where it is (or will be) on this host: brought here only when served from here
        # (`checked_file`), not for a lookup, a delete or a redirect to the object store.
        return StoredFile(file, self._blobs.local_path(file.sha256))

    def _rebuild_metadata(self, file: FileRecord) -> None:
        """PEP 658 files are stored without fsync; one lost in a crash comes from the wheel."""
        dist = parse_dist_filename(file.filename)
        rebuilt = self._blobs.put_bytes(read_core_metadata(self._blobs.path(file.sha256), dist))
        if rebuilt != file.metadata_sha256:
            raise NotFound("the core metadata of this file cannot be rebuilt")

    def doc_file(
        self, record: IndexRecord, project: str, version: str, path: str, max_size: int
    ) -> ZipMember:
        """One member of a version's documentation zip (looked up through the bases too), at
        most `max_size` bytes unpacked; `archives.stream_member` yields its bytes."""
        filename = f"{project}-{version}.doc.zip"
        with self._db.read() as conn:
            for item in self._indexes.resolution_order(record):
                doczip = store.get_file(conn, item.id, filename)
                if doczip is not None:
                    break
            else:
                raise NotFound(f"no documentation for {project} {version}")
        try:
            member = zip_member(self._blobs.path(doczip.sha256), path, max_size)
        except zipfile.BadZipFile as exc:
            raise NotFound(f"the documentation of {project} {version} is unreadable") from exc
        if member is None:
            raise NotFound(f"{path} is not in the documentation of {project} {version}")
        return member


def _releases_of(conn: Connection, item: IndexRecord, project: str) -> list[Release]:
    if item.is_mirror:
        links, _versions = _mirror_links(conn, item, project)
        grouped: dict[str, list[FileLink]] = {}
        for link in links:
            grouped.setdefault(_version_of(link.filename), []).append(link)
        return [
            Release(version, item.full_name, {"name": project, "version": version}, files, [])
            for version, files in grouped.items()
        ]
    files = store.project_files(conn, item.id, project)
    releases = []
    for version in store.list_versions(conn, item.id, project):
        own = [f for f in files if f.version == version.version]
        links = [
            _link(f, f"{item.full_name}/{f.relpath}", item.full_name)
            for f in own
            if f.kind == FileKind.RELEASE
        ]
        extras = [f for f in own if f.kind != FileKind.RELEASE]
        releases.append(Release(version.version, item.full_name, version.metadata, links, extras))
    return releases


def _mirror_version_data(release: Release, base_url: str) -> dict[str, Any]:
    """A mirrored release as devpi shows it: name, version, requires_python, links (§11.2)."""
    data: dict[str, Any] = dict(release.metadata)
    requires_python = next((f.requires_python for f in release.files if f.requires_python), None)
    if requires_python:
        data["requires_python"] = requires_python
    data["+links"] = [
        {
            "rel": FileKind.RELEASE,
            "href": f"{base_url}/{link.url}",
            **_hash_fields(link),
            **({"yanked": link.yanked or True} if link.yanked is not None else {}),
        }
        for link in release.files
    ]
    data["+index"] = release.index
    return data


def _hash_fields(link: FileLink) -> dict[str, Any]:
    """devpi's hash keys of a link, and whether its hash was trusted on first use (none
    while a hash-less upstream file was never fetched)."""
    fields: dict[str, Any] = {}
    if link.sha256:
        fields = {"hash_spec": f"sha256={link.sha256}", "hashes": {"sha256": link.sha256}}
    if link.trusted_on_first_use:
        fields["trusted_on_first_use"] = True
    return fields


def _stage_links(
    conn: Connection, item: IndexRecord, project: str
) -> tuple[list[FileLink], set[str]]:
    links = [
        _link(file, f"{item.full_name}/{file.relpath}", item.full_name)
        for file in store.project_files(conn, item.id, project)
        if file.kind == FileKind.RELEASE
    ]
    # Versions without files (registered only) still belong to the project (PEP 700).
    return links, {version.version for version in store.list_versions(conn, item.id, project)}


def _mirror_links(
    conn: Connection, item: IndexRecord, project: str
) -> tuple[list[FileLink], set[str]]:
    page = store.get_mirror_page(conn, item.id, project)
    if page is None:
        return [], set()
    cached = {file.filename: file for file in store.project_files(conn, item.id, project)}
    links, versions = [], set()
    for data in page.links:
        link = MirrorLink.from_json(data)
        links.append(link.file_link(item.full_name, cached.get(link.filename)))
        versions.add(_version_of(link.filename))
    return links, versions - {""}


def _version_of(filename: str) -> str:
    try:
        return str(parse_dist_filename(filename).version)
    except InvalidInput:
        return ""


def _link(file: FileRecord, url: str, index: str) -> FileLink:
    return FileLink(
        filename=file.filename,
        url=url,
        sha256=file.sha256,
        size=file.size,
        index=index,
        upload_time=datetime.fromtimestamp(file.uploaded_at, UTC),
        requires_python=file.requires_python,
        yanked=file.yanked,
        core_metadata_sha256=file.metadata_sha256,
    )
