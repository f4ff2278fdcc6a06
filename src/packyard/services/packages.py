"""Projects, versions and files as readers see them: simple pages, devpi's JSON views (§11)
and file lookup. Deleting and yanking are in `package_edits`."""

from __future__ import annotations

import dataclasses
import zipfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

from packaging.utils import canonicalize_version
from sqlalchemy import Connection

from packyard.core import inheritance
from packyard.core.advisories import Advisory
from packyard.core.cooldown import Hold
from packyard.core.dists import http_date, parse_dist_filename
from packyard.core.models import FileRecord, IndexRecord
from packyard.core.simple import FileLink, ProjectPage
from packyard.core.status import ProjectStatus, ReleasePolicy
from packyard.errors import InvalidInput, NotFound
from packyard.services.archives import ZipMember, read_core_metadata, zip_member
from packyard.services.indexes import Indexes
from packyard.services.project_status import release_policy
from packyard.services.sources import Release, Source, Sources, version_sort_key
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


MAX_SEARCH_LENGTH = 200  # characters in one search query
MAX_SEARCH_WORDS = 10


class Packages:
    """Read and change what an index holds."""

    def __init__(self, db: Database, blobs: BlobStore, indexes: Indexes, sources: Sources) -> None:
        self._db = db
        self._blobs = blobs
        self._indexes = indexes
        self._sources = sources

    # --- what an index serves, bases included -----------------------------------------------

    def _order(self, record: IndexRecord) -> list[Source]:
        return self._sources.sources_for(self._indexes.resolution_order(record))

    def _walk(
        self, record: IndexRecord, project: str, counts: Callable[[Source, Connection], bool]
    ) -> tuple[list[Source], str | None]:
        """The sources `counts` finds `project` in, as the whitelist lets them contribute,
        and the mirror it holds back.

        The whitelist is judged over every base, so a private project keeps its mirrors out
        even for a caller who may not read the base that has it; that base's files are then
        left out of what this caller sees."""
        everything = self._sources.sources_for(self._indexes.full_resolution_order(record))
        by_name = {source.record.full_name: source for source in everything}
        visible = {item.id for item in self._indexes.resolution_order(record)}
        with self._db.read() as conn:
            found = inheritance.contributing_indexes(
                project,
                list(by_name),
                {name: source.record.index_config for name, source in by_name.items()},
                lambda name: counts(by_name[name], conn),
            )
        walked = [by_name[name] for name in found.indexes]
        return [source for source in walked if source.record.id in visible], found.blocked_mirror

    def contributors(self, record: IndexRecord, project: str) -> list[Source]:
        """The sources whose files count for `project` under `record`, in resolution order."""
        return self._walk(record, project, _contributes(project))[0]

    def blocked_mirror(self, record: IndexRecord, project: str) -> str | None:
        """The mirror the whitelist keeps out of `project`'s pages, if any (for the UI)."""
        return self._walk(record, project, _may_contribute(project))[1]

    def to_refresh(self, record: IndexRecord, project: str) -> list[Source]:
        """The sources following an upstream that may serve `project` under `record`: those
        the whitelist allows."""
        walked, _blocked = self._walk(record, project, _may_contribute(project))
        return [source for source in walked if source.follows_upstream]

    def mirrors_to_consult(self, record: IndexRecord, project: str) -> list[IndexRecord]:
        """The indexes of `to_refresh` (a cached page is fresh while theirs are)."""
        return [source.record for source in self.to_refresh(record, project)]

    def project_names(self, record: IndexRecord) -> list[str]:
        """Every project of the index and its bases, each once, in resolution order."""
        seen: dict[str, None] = {}
        with self._db.read() as conn:
            for source in self._order(record):
                seen.update(dict.fromkeys(source.project_names(conn)))
        return list(seen)

    def own_project_names(self, record: IndexRecord) -> list[str]:
        """The projects with versions stored in the index itself (devpi's `projects` key)."""
        with self._db.read() as conn:
            return store.project_names(conn, record.id)

    def listed_project_names(self, record: IndexRecord) -> list[str]:
        """The projects the index itself lists (a mirror: those its stored pages have)."""
        with self._db.read() as conn:
            return self._sources.source_for(record).project_names(conn)

    def project_page(self, record: IndexRecord, project: str) -> ProjectPage:
        """The simple page of `project`: every release file from contributing indexes."""
        contributors = self.contributors(record, project)
        if not contributors:
            raise NotFound(f"The project {project} does not exist.")
        links: list[FileLink] = []
        versions: set[str] = set()
        seen: set[str] = set()
        now, changes = self._sources.now(), []
        with self._db.read() as conn:
            for source in contributors:
                source_links, source_versions = source.page_links(conn, project)
                versions.update(source_versions)
                changes.append(source.holds(conn, project).changes_after(now))
                for link in source_links:
                    if link.filename not in seen:
                        seen.add(link.filename)
                        links.append(link)
            policy = release_policy(conn, record, contributors, project)
        ordered = sorted(versions, key=version_sort_key)
        changes_at = min((moment for moment in changes if moment), default=None)
        return policy.page(ProjectPage(project, record.full_name, links, ordered, changes_at))

    def releases(self, record: IndexRecord, project: str) -> list[Release]:
        """Every version visible under `record`, newest first, each from its first index."""
        found: dict[str, Release] = {}
        contributors = self.contributors(record, project)
        with self._db.read() as conn:
            for source in contributors:
                for release in source.releases(conn, project):
                    found.setdefault(canonicalize_version(release.version), release)
            policy = release_policy(conn, record, contributors, project)
        if not found:
            raise NotFound(f"The project {project} does not exist.")
        ordered = sorted(found.values(), key=lambda r: version_sort_key(r.version), reverse=True)
        return [_judged(release, policy) for release in ordered]

    def project_status(self, record: IndexRecord, project: str) -> ProjectStatus:
        """`project`'s PEP 792 status as `record` serves it (the web page)."""
        contributors = self.contributors(record, project)
        with self._db.read() as conn:
            return release_policy(conn, record, contributors, project).status

    def held(self, record: IndexRecord, project: str) -> dict[str, Hold]:
        """The versions of `project` held back now under `record` (by its mirrors' policies),
        newest first: what its pages and JSON leave out, and why."""
        now, found = self._sources.now(), dict[str, Hold]()
        with self._db.read() as conn:
            for source in self.contributors(record, project):
                for version, hold in source.holds(conn, project).held_at(now).items():
                    found.setdefault(version, hold)
        ordered = sorted(found, key=version_sort_key, reverse=True)
        return {version: found[version] for version in ordered}

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
        source = self._sources.source_for(record)
        with self._db.read() as conn:
            files = source.cached_files(conn)
        return [
            {
                "filename": f.filename,
                "sha256": f.sha256,
                "size": f.size,
                "path": f"{record.full_name}/{f.relpath}",
            }
            for f in files
        ]

    # --- devpi JSON views ---------------------------------------------------------------------

    def project_view(
        self, record: IndexRecord, project: str, base_url: str, ignore_bases: bool = False
    ) -> dict[str, dict[str, Any]]:
        """version -> versiondata across contributing indexes (first one wins, rest shadow)."""
        contributors = (
            [self._sources.source_for(record)]
            if ignore_bases
            else self.contributors(record, project)
        )
        result: dict[str, dict[str, Any]] = {}
        with self._db.read() as conn:
            for source in contributors:
                for version, data in source.versions_data(conn, project, base_url):
                    if version in result:
                        result[version].setdefault("+shadowing", []).append(data)
                    else:
                        result[version] = data
            policy = release_policy(conn, record, contributors, project)
        for version, data in result.items():
            _mark(data, policy, version)
        if not result and not self._has_project(record, project, ignore_bases):
            raise NotFound(f"no project {project!r}")
        return result  # empty for a project its mirror's upstream lists with no files (devpi)

    def _has_project(self, record: IndexRecord, project: str, ignore_bases: bool) -> bool:
        found = self.contributors(record, project)
        return any(s.record.id == record.id for s in found) if ignore_bases else bool(found)

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
        return find_file(self._db, self._blobs, record, relpath)

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


def _judged(release: Release, policy: ReleasePolicy) -> Release:
    """The release with why the index refuses it and the advisories naming it."""
    return dataclasses.replace(
        release, refused=policy.refusal(release.version), advisories=policy.naming(release.version)
    )


def _mark(data: dict[str, Any], policy: ReleasePolicy, version: str) -> None:
    """devpi's versiondata with packyard's keys: the project's status, why the version is
    refused, the advisories naming it (`+` keys are the server's, as devpi's `+links`)."""
    if not policy.status.is_active:
        data["+project_status"] = policy.status.to_json()
    refused = policy.refusal(version)
    if refused:
        data["+refused"] = refused
    named = policy.naming(version)
    if named:
        data["+advisories"] = [_advisory_json(advisory) for advisory in named]


def _advisory_json(advisory: Advisory) -> dict[str, Any]:
    severity = advisory.severity.label if advisory.severity else None
    return {"id": advisory.id, "summary": advisory.summary, "severity": severity,
            "malicious": advisory.malicious}  # fmt: skip


def _contributes(project: str) -> Callable[[Source, Connection], bool]:
    return lambda source, conn: source.contributes(conn, project)


def _may_contribute(project: str) -> Callable[[Source, Connection], bool]:
    return lambda source, conn: source.may_contribute(conn, project)


def find_file(db: Database, blobs: BlobStore, record: IndexRecord, relpath: str) -> StoredFile:
    """The stored file a +f path of `record` names, else NotFound."""
    parts = relpath.split("/")
    if len(parts) != 3:
        raise NotFound("no such file")
    head, rest, filename = parts
    with db.read() as conn:
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
        if not blobs.exists(file.metadata_sha256):
            _rebuild_metadata(blobs, file)
        return StoredFile(file, blobs.local_path(file.metadata_sha256), True)
    # Where it is (or will be) on this host: brought here only when served from here
    # (`checked_file`), not for a lookup, a delete or a redirect to the object store.
    return StoredFile(file, blobs.local_path(file.sha256))


def _rebuild_metadata(blobs: BlobStore, file: FileRecord) -> None:
    """PEP 658 files are stored without fsync; one lost in a crash comes from the wheel."""
    dist = parse_dist_filename(file.filename)
    rebuilt = blobs.put_bytes(read_core_metadata(blobs.path(file.sha256), dist))
    if rebuilt != file.metadata_sha256:
        raise NotFound("the core metadata of this file cannot be rebuilt")
