"""A private stage as a source: its projects, versions and files are rows in the database."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

from sqlalchemy import Connection

from packyard.core.cooldown import NO_HOLDS, Holds
from packyard.core.models import FileKind, FileRecord, IndexRecord, MirrorList, VersionRecord
from packyard.core.simple import FileLink
from packyard.core.status import ACTIVE, ProjectStatus
from packyard.errors import InvalidInput, NotFound
from packyard.services._threads import in_thread
from packyard.services.sources.base import Dropped, Release, Upstream, VersionData
from packyard.storage import statuses, store

if TYPE_CHECKING:
    from packyard.services.package_edits import PackageEdits


class StageSource:
    """Uploaded files and registered versions; nothing to refresh, nothing to fetch."""

    follows_upstream: ClassVar[bool] = False
    files_are_copies: ClassVar[bool] = False

    def __init__(self, record: IndexRecord, edits: PackageEdits) -> None:
        self.record = record
        self._edits = edits

    # --- what it holds ------------------------------------------------------------------------

    def contributes(self, conn: Connection, project: str) -> bool:
        return store.has_project(conn, self.record.id, project)

    def may_contribute(self, conn: Connection, project: str) -> bool:
        return self.contributes(conn, project)

    def project_names(self, conn: Connection) -> list[str]:
        return store.project_names(conn, self.record.id)

    def page_links(self, conn: Connection, project: str) -> tuple[list[FileLink], set[str]]:
        links = [
            self._link(file)
            for file in store.project_files(conn, self.record.id, project)
            if file.kind == FileKind.RELEASE
        ]
        # Versions without files (registered only) still belong to the project (PEP 700).
        versions = store.list_versions(conn, self.record.id, project)
        return links, {version.version for version in versions}

    def releases(self, conn: Connection, project: str) -> list[Release]:
        files = store.project_files(conn, self.record.id, project)
        releases = []
        for version in store.list_versions(conn, self.record.id, project):
            own = [f for f in files if f.version == version.version]
            links = [self._link(f) for f in own if f.kind == FileKind.RELEASE]
            extras = [f for f in own if f.kind != FileKind.RELEASE]
            index = self.record.full_name
            releases.append(Release(version.version, index, version.metadata, links, extras))
        return releases

    def holds(self, conn: Connection, project: str) -> Holds:
        return NO_HOLDS  # uploads are not held: whoever may upload decides

    def project_status(self, conn: Connection, project: str) -> ProjectStatus:
        return statuses.get_status(conn, self.record.id, project) or ACTIVE

    def versions_data(self, conn: Connection, project: str, base_url: str) -> list[VersionData]:
        files = store.project_files(conn, self.record.id, project)
        return [
            (version.version, self._version_data(version, files, base_url))
            for version in store.list_versions(conn, self.record.id, project)
        ]

    def _version_data(
        self, version: VersionRecord, project_files: list[FileRecord], base_url: str
    ) -> dict[str, Any]:
        data = dict(version.metadata)
        files = [file for file in project_files if file.version == version.version]
        by_name = {file.filename: file for file in files}
        prefix = f"{base_url}/{self.record.full_name}"
        links = []
        for file in files:
            link: dict[str, Any] = {
                "rel": file.kind,
                "href": f"{prefix}/{file.relpath}",
                "hash_spec": f"sha256={file.sha256}",
                "hashes": {"sha256": file.sha256},
                "log": file.log,
            }
            release = by_name.get(file.for_file or "")
            if release is not None:
                link["for_href"] = f"{prefix}/{release.relpath}"
            if file.yanked is not None:
                link["yanked"] = file.yanked or True
            links.append(link)
        data["+links"] = links
        data["+index"] = self.record.full_name  # which index (base) this version comes from
        return data

    def _link(self, file: FileRecord) -> FileLink:
        index = self.record.full_name
        return FileLink(
            filename=file.filename,
            url=f"{index}/{file.relpath}",
            sha256=file.sha256,
            size=file.size,
            index=index,
            upload_time=datetime.fromtimestamp(file.uploaded_at, UTC),
            requires_python=file.requires_python,
            yanked=file.yanked,
            core_metadata_sha256=file.metadata_sha256,
        )

    def cached_files(self, conn: Connection) -> list[FileRecord]:
        raise InvalidInput(f"{self.record.full_name} is not a mirror index")

    # --- export and import ---------------------------------------------------------------------

    def exports_files(self, include_mirrored_files: bool) -> bool:
        return True

    def exported_projects(
        self, conn: Connection, files: list[FileRecord]
    ) -> dict[str, dict[str, Any]]:
        names = {file.project for file in files} | set(self.project_names(conn))
        return {
            project: {
                v.version: v.metadata for v in store.list_versions(conn, self.record.id, project)
            }
            for project in sorted(names)
        }

    def imported(self, conn: Connection, files: list[FileRecord]) -> None:
        """Its rows are all there is."""

    # --- changes -------------------------------------------------------------------------------

    async def delete_project(self, actor: str | None, project: str, force: bool) -> Dropped | None:
        await in_thread(self._edits.delete_project, actor, self.record, project, force)
        return None

    # --- following an upstream: a stage has none -------------------------------------------------

    async def refresh(self, project: str) -> None:
        """Its rows are always current."""

    async def ask_again(self, project: str) -> None:
        """Nothing to ask."""

    async def project_list(self) -> MirrorList | None:
        return None  # its own projects are the list

    async def missing_file(self, relpath: str, not_stored: NotFound) -> Upstream:
        raise not_stored

    async def missing_file_meta(self, relpath: str, not_stored: NotFound) -> dict[str, Any]:
        raise not_stored

    def served(self, file: FileRecord, path: Path) -> None:
        """Uploaded files are not counted."""
