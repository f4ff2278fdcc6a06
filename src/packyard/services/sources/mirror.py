"""A mirror as a source: the stored copy of its upstream's pages, files fetched on demand and
kept (services/mirror does the fetching; this answers for the index)."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Any, ClassVar

from sqlalchemy import Connection

from packyard.config import Settings
from packyard.core import acl, status
from packyard.core.cooldown import NO_HOLDS, Holds, judge
from packyard.core.dists import parse_dist_filename
from packyard.core.indexconfig import cooldown_policy
from packyard.core.mirror import MirrorLink, page_of_cached_files, parse_upload_time
from packyard.core.models import (
    FileKind,
    FileRecord,
    IndexRecord,
    MirrorList,
    MirrorPage,
    PageStatus,
)
from packyard.core.simple import FileLink
from packyard.core.status import ProjectStatus
from packyard.errors import Forbidden, InvalidInput, NotFound
from packyard.services._threads import in_thread
from packyard.services.exemptions import HoldCounts
from packyard.services.mirror import Mirrors
from packyard.services.sources.base import Dropped, Release, Upstream, VersionData
from packyard.storage import exemptions, store


class MirrorSource:
    """What the upstream's pages list, as last stored; files cached as they are asked for."""

    follows_upstream: ClassVar[bool] = True
    files_are_copies: ClassVar[bool] = True

    def __init__(
        self,
        record: IndexRecord,
        mirrors: Mirrors,
        settings: Settings,
        now: Callable[[], datetime],
        hold_counts: HoldCounts,
    ) -> None:
        self.record = record
        self._mirrors = mirrors
        self._settings = settings
        self._now = now
        self._hold_counts = hold_counts
        self._policy = cooldown_policy(record.full_name, record.index_config)

    # --- what it holds ------------------------------------------------------------------------

    def contributes(self, conn: Connection, project: str) -> bool:
        page = store.get_mirror_page(conn, self.record.id, project)
        return page is not None and page.status == PageStatus.OK

    def may_contribute(self, conn: Connection, project: str) -> bool:
        return True  # the upstream decides, when asked

    def project_names(self, conn: Connection) -> list[str]:
        return store.mirror_project_names(conn, self.record.id)

    def page_links(self, conn: Connection, project: str) -> tuple[list[FileLink], set[str]]:
        """The stored page's links, less the versions held back now."""
        page = store.get_mirror_page(conn, self.record.id, project)
        if page is None:
            return [], set()
        held = self._judged(conn, page).held_at(self._now())
        self._hold_counts.rendered(self.record.full_name, project, len(held))
        links, versions = self._all_links(conn, page)
        kept = [link for link in links if _version_of(link.filename) not in held]
        return kept, versions - set(held)

    def _all_links(self, conn: Connection, page: MirrorPage) -> tuple[list[FileLink], set[str]]:
        files = store.project_files(conn, self.record.id, page.project)
        cached = {file.filename: file for file in files}
        links, versions = [], set()
        for data in page.links:
            link = MirrorLink.from_json(data)
            links.append(link.file_link(self.record.full_name, cached.get(link.filename)))
            versions.add(_version_of(link.filename))
        return links, versions - {""}

    def holds(self, conn: Connection, project: str) -> Holds:
        if not self._policy.active:
            return NO_HOLDS  # no page read for a mirror without a policy
        page = store.get_mirror_page(conn, self.record.id, project)
        return NO_HOLDS if page is None else self._judged(conn, page)

    def _judged(self, conn: Connection, page: MirrorPage) -> Holds:
        """The policy over the upstream's upload times of each version's files."""
        if not self._policy.active:
            return NO_HOLDS
        times: dict[str, list[datetime | None]] = {}
        for data in page.links:
            link = MirrorLink.from_json(data)
            version = _version_of(link.filename)
            times.setdefault(version, []).append(parse_upload_time(link.upload_time))
        granted = exemptions.of_index(conn, self.record.id, page.project)
        return judge(self._policy, times, granted)

    def releases(self, conn: Connection, project: str) -> list[Release]:
        """Every version of the stored page, those held back now marked with their hold."""
        page = store.get_mirror_page(conn, self.record.id, project)
        if page is None:
            return []
        held = self._judged(conn, page).held_at(self._now())
        links, _versions = self._all_links(conn, page)
        grouped: dict[str, list[FileLink]] = {}
        for link in links:
            grouped.setdefault(_version_of(link.filename), []).append(link)
        index = self.record.full_name
        return [
            Release(version, index, {"name": project, "version": version}, files, [], hold)
            for version, files in grouped.items()
            for hold in [held.get(version)]
        ]

    def project_status(self, conn: Connection, project: str) -> ProjectStatus:
        page = store.get_mirror_page(conn, self.record.id, project)
        return status.from_upstream(page.project_status if page else None)

    def versions_data(self, conn: Connection, project: str, base_url: str) -> list[VersionData]:
        """devpi's JSON: the versions served now (held ones are left out)."""
        return [
            (release.version, _version_data(release, base_url))
            for release in self.releases(conn, project)
            if release.held is None
        ]

    def cached_files(self, conn: Connection) -> list[FileRecord]:
        files = store.index_files(conn, self.record.id)
        return [file for file in files if file.kind == FileKind.RELEASE]

    # --- export and import ---------------------------------------------------------------------

    def exports_files(self, include_mirrored_files: bool) -> bool:
        return include_mirrored_files  # a cache, left out unless asked for

    def exported_projects(
        self, conn: Connection, files: list[FileRecord]
    ) -> dict[str, dict[str, Any]]:
        names = {file.project for file in files} | set(store.project_names(conn, self.record.id))
        return {
            project: {
                file.version: {"name": project, "version": file.version}
                for file in files
                if file.project == project
            }
            for project in sorted(names)
        }

    def imported(self, conn: Connection, files: list[FileRecord]) -> None:
        """Its imported files are its last known state: a page per project lists them, so
        they are served when the upstream is unreachable or the server runs offline."""
        by_project: dict[str, list[FileRecord]] = {}
        for file in files:
            if file.index_id == self.record.id:
                by_project.setdefault(file.project, []).append(file)
        for project, project_files in by_project.items():
            if store.get_mirror_page(conn, self.record.id, project) is None:
                page = page_of_cached_files(self.record.id, project, project_files)
                store.put_mirror_page(conn, page)

    # --- changes -------------------------------------------------------------------------------

    async def delete_project(self, actor: str | None, project: str, force: bool) -> Dropped | None:
        """Drop the cached files of `project`: fetched again on their next request."""
        record = self.record
        if not acl.may_manage_index(actor, record.user, self._settings.restrict_modify):
            raise Forbidden(f"no permission to drop cached files of {record.full_name}")
        count, size = await in_thread(self._mirrors.drop_cached, record, project)
        return Dropped(count, size)

    # --- following the upstream ----------------------------------------------------------------

    async def refresh(self, project: str) -> None:
        await self._mirrors.ensure_page(self.record, project)

    async def ask_again(self, project: str) -> None:
        await self._mirrors.refresh(self.record, project)

    async def project_list(self) -> MirrorList | None:
        return await self._mirrors.project_list(self.record)

    async def missing_file(self, relpath: str, not_stored: NotFound) -> Upstream:
        mirrors = self._mirrors
        if relpath.endswith(".metadata"):
            link = await mirrors.find_link(self.record, relpath.removesuffix(".metadata"))
            return Upstream(link, None, await mirrors.core_metadata(self.record, link))
        link = await mirrors.find_link(self.record, relpath)
        return Upstream(link, mirrors.stream_file(self.record, link))

    async def missing_file_meta(self, relpath: str, not_stored: NotFound) -> dict[str, Any]:
        """From the upstream link of a file not cached yet."""
        link = await self._mirrors.find_link(self.record, relpath)
        dist = parse_dist_filename(link.filename)  # find_link only finds parseable names
        meta: dict[str, Any] = {
            "url": link.url,
            "project": dist.project,
            "version": str(dist.version),
        }
        return meta | _link_hashes(link.sha256, link.trusted_on_first_use)

    def served(self, file: FileRecord, path: Path) -> None:
        self._mirrors.note_served(file, path)


def _version_data(release: Release, base_url: str) -> dict[str, Any]:
    """A mirrored release as devpi shows it: name, version, requires_python, links (§11.2)."""
    data: dict[str, Any] = dict(release.metadata)
    requires_python = next((f.requires_python for f in release.files if f.requires_python), None)
    if requires_python:
        data["requires_python"] = requires_python
    data["+links"] = [
        {
            "rel": FileKind.RELEASE,
            "href": f"{base_url}/{link.url}",
            **_link_hashes(link.sha256, link.trusted_on_first_use),
            **({"yanked": link.yanked or True} if link.yanked is not None else {}),
        }
        for link in release.files
    ]
    data["+index"] = release.index
    return data


def _link_hashes(sha256: str, trusted_on_first_use: bool) -> dict[str, Any]:
    """devpi's hash keys of a link, and whether its hash was trusted on first use (none
    while a hash-less upstream file was never fetched)."""
    fields: dict[str, Any] = {}
    if sha256:
        fields = {"hash_spec": f"sha256={sha256}", "hashes": {"sha256": sha256}}
    if trusted_on_first_use:
        fields["trusted_on_first_use"] = True
    return fields


def _version_of(filename: str) -> str:
    try:
        return str(parse_dist_filename(filename).version)
    except InvalidInput:
        return ""
