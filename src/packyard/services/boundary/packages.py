"""Projects and versions: devpi's JSON views, uploads, deleting and yanking. A mirror among
the indexes a request reads brings its pages up to date first: the index kind decides that
(devpi's `MirrorStage`), not the caller."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, BinaryIO

from packyard.core import acl
from packyard.core.models import IndexRecord
from packyard.core.status import ProjectStatus
from packyard.errors import Forbidden, UpstreamUnavailable
from packyard.services._threads import in_thread
from packyard.services.advisories import Imported
from packyard.services.batches import Batches
from packyard.services.boundary.indexes import IndexUseCases
from packyard.services.sources import Dropped
from packyard.services.uploads import UploadOutcome, UploadRequest

if TYPE_CHECKING:
    from packyard.services import Services


__all__ = ["Dropped", "PackageUseCases"]


class PackageUseCases:
    def __init__(self, services: Services, indexes: IndexUseCases) -> None:
        self._services = services
        self._packages = services.packages
        self._edits = services.edits
        self._sources = services.sources
        self._indexes = indexes
        # Concurrent uploads are stored together: one disk flush and one transaction per batch.
        self._uploads: Batches[UploadRequest, UploadOutcome] = Batches(services.uploads.upload_many)

    # --- mirrors among the bases ----------------------------------------------------------

    async def refresh_mirrors(self, record: IndexRecord, project: str) -> list[UpstreamUnavailable]:
        """Bring stale mirror pages of `project` up to date across the resolution order; a
        failing base mirror only counts as a failure (the index's own failing is an error)."""
        order = self._sources.sources_for(await self._indexes.resolution_order(record))
        if not any(source.follows_upstream for source in order):
            return []  # nothing to bring up to date: no thread hop
        failures = []
        for source in await in_thread(self._packages.to_refresh, record, project):
            try:
                await source.refresh(project)
            except UpstreamUnavailable as exc:
                if source.record.id == record.id:
                    raise
                failures.append(exc)
        return failures

    async def forget_mirrored(self, user: str, index: str, project: str) -> IndexRecord:
        """devpi's refresh: every mirror in the order forgets `project` and asks again."""
        record = await self._indexes.get(user, index)
        for item in await self._indexes.resolution_order(record):
            await self._sources.source_for(item).ask_again(project)
        return record

    # --- devpi JSON views -----------------------------------------------------------------

    async def project_view(
        self, user: str, index: str, project: str, base_url: str, ignore_bases: bool
    ) -> dict[str, dict[str, Any]]:
        record = await self._indexes.get(user, index)
        await self.refresh_mirrors(record, project)
        view = self._packages.project_view
        return await in_thread(view, record, project, base_url, ignore_bases)

    async def version_view(
        self, user: str, index: str, project: str, version: str, base_url: str, ignore_bases: bool
    ) -> dict[str, Any]:
        record = await self._indexes.get(user, index)
        await self.refresh_mirrors(record, project)
        view = self._packages.version_view
        return await in_thread(view, record, project, version, base_url, ignore_bases)

    async def cached_files(self, user: str, index: str) -> list[dict[str, Any]]:
        record = await self._indexes.get(user, index)
        return await in_thread(self._packages.cached_files, record)

    # --- changes ----------------------------------------------------------------------------

    async def upload(self, incoming: UploadRequest) -> UploadOutcome:
        """Inspect the archive alone (a hostile one costs only its own request), then store
        it in the next batch."""
        await in_thread(self._services.uploads.inspect, incoming)
        return await self._uploads.submit(incoming)

    async def delete_project(
        self, actor: str | None, user: str, index: str, project: str, force: bool
    ) -> Dropped | None:
        """Delete a project; on a mirror, drop its cached files instead (fetched again)."""
        record = await self._indexes.get(user, index)
        return await self._sources.source_for(record).delete_project(actor, project, force)

    async def delete_version(
        self, actor: str | None, user: str, index: str, project: str, version: str, force: bool
    ) -> None:
        record = await self._indexes.get(user, index)
        await in_thread(self._edits.delete_version, actor, record, project, version, force)

    async def delete_file(
        self, actor: str | None, user: str, index: str, relpath: str, force: bool
    ) -> str:
        record = await self._indexes.get(user, index)
        return await in_thread(self._edits.delete_file, actor, record, relpath, force)

    async def set_yanked(
        self,
        actor: str | None,
        user: str,
        index: str,
        project: str,
        version: str | None,
        yanked: str | None,
        relpath: str | None = None,
    ) -> int:
        """Yank or unyank a project, a version or (by its +f path) one file (PEP 592)."""
        record = await self._indexes.get(user, index)

        def set_yanked() -> int:
            filename = None
            target = project
            if relpath is not None:
                found = self._packages.find_file(record, relpath).record
                target, filename = found.project, found.filename
            return self._edits.set_yanked(actor, record, target, version, filename, yanked)

        return await in_thread(set_yanked)

    async def set_project_status(
        self, actor: str | None, user: str, index: str, project: str, found: ProjectStatus
    ) -> None:
        """Mark a hosted project archived, deprecated or quarantined (PEP 792), or active."""
        record = await self._indexes.get(user, index)
        await in_thread(self._services.statuses.set_status, actor, record, project, found)

    async def import_advisories(self, actor: str | None, source: BinaryIO) -> Imported:
        """Root imports an OSV export zip (every record read before any is stored)."""
        if actor != acl.ROOT:
            raise Forbidden("only root may import advisories")
        return await in_thread(self._services.advisories.import_zip, source, "advisories.zip")

    async def check_toxresult_upload(
        self, actor: str | None, user: str, index: str, relpath: str
    ) -> None:
        """Who may attach a tox result, asked before its body is read."""
        record = await self._indexes.get(user, index)
        found = await in_thread(self._packages.find_file, record, relpath)
        self._services.uploads.check_toxresult_upload(actor, record, found.record)

    async def attach_toxresult(
        self, actor: str | None, user: str, index: str, relpath: str, body: bytes
    ) -> str:
        record = await self._indexes.get(user, index)

        def attach() -> str:
            found = self._packages.find_file(record, relpath)
            return self._services.uploads.attach_toxresult(actor, record, found.record, body)

        return await in_thread(attach)
