"""Files under `+f/` and hosted docs: lookup (kept until the next change), integrity check,
devpi's `releasefilemeta`, and a mirror's files not cached yet."""

from __future__ import annotations

import dataclasses
import os
from datetime import timedelta
from typing import TYPE_CHECKING, Any

from packyard.core.cooldown import Holds
from packyard.core.dists import parse_dist_filename
from packyard.core.indexconfig import cooldown_policy
from packyard.core.models import IndexRecord
from packyard.errors import Forbidden, InvalidInput, NotFound
from packyard.services._threads import in_thread
from packyard.services.archives import ZipMember
from packyard.services.boundary.indexes import IndexUseCases
from packyard.services.integrity import checked_file
from packyard.services.packages import StoredFile
from packyard.services.sources import Upstream

if TYPE_CHECKING:
    from packyard.services import Services


@dataclasses.dataclass(frozen=True)
class Stored:
    """A stored file, checked against its blob (stat; hash once per process and file)."""

    found: StoredFile
    stat: os.stat_result


__all__ = ["FileUseCases", "Stored", "Upstream"]


class FileUseCases:
    def __init__(self, services: Services, indexes: IndexUseCases) -> None:
        self._services = services
        self._indexes = indexes

    async def stored(self, user: str, index: str, relpath: str) -> StoredFile | Upstream:
        """The stored file of a +f path, else (on a mirror) its upstream download."""
        record = await self._indexes.get(user, index)
        await self._check_served(record, relpath)
        source = self._services.sources.source_for(record)
        await self._check_not_held(record, relpath)
        try:
            found = await self._stored_file(record, relpath)
        except NotFound as not_stored:
            return await source.missing_file(relpath, not_stored)
        source.served(found.record, found.path)
        return found

    async def checked(self, found: StoredFile, url_path: str) -> Stored:
        """A missing or damaged blob is an error, never bytes with immutable caching."""
        stat = await in_thread(checked_file, self._services.blobs, found, url_path)
        return Stored(found, stat)

    async def direct_url(self, found: StoredFile) -> str | None:
        """With `blobs_redirect`: a short-lived URL of the file in the object store, for a
        client to fetch it from there (its bytes were verified on the way in); else None."""
        settings = self._services.settings
        if not settings.blobs_redirect or found.is_metadata:
            return None
        expiry = timedelta(seconds=settings.blobs_redirect_expiry)
        return await in_thread(self._services.blobs.signed_url, found.record.sha256, expiry)

    async def _stored_file(self, record: IndexRecord, relpath: str) -> StoredFile:
        """The stored file behind a +f path; lookups are kept until the next change."""
        pages = self._services.pages
        key = ("file", record.id, relpath)
        known = pages.get(key)
        if isinstance(known, StoredFile):
            return known
        serial = pages.current()
        found = await in_thread(self._services.packages.find_file, record, relpath)
        pages.store(key, found, serial)
        return found

    async def _check_not_held(self, record: IndexRecord, relpath: str) -> None:
        """Refuse a file of a version its mirror's cooldown holds back now (403, saying why
        and until when: the message is the reason phrase pip and uv print). Cached or not,
        the file is refused, so a lockfile cannot pull what a page leaves out."""
        if not cooldown_policy(record.full_name, record.index_config).active:
            return  # no policy: no lookup on the hot path
        filename = relpath.rsplit("/", 1)[-1].removesuffix(".metadata")
        try:
            dist = parse_dist_filename(filename)
        except InvalidInput:
            return  # not a release file name: the lookup answers 404
        holds = await self._holds(record, dist.project)
        hold = holds.held_at(self._services.sources.now()).get(str(dist.version))
        if hold is not None:
            self._services.sources.hold_counts.refused(record.full_name)
            raise Forbidden(f"{filename} is {hold.reason}")

    async def _holds(self, record: IndexRecord, project: str) -> Holds:
        """A project's holds, kept until the next change (they are judged at each request)."""
        pages = self._services.pages
        key = ("holds", record.id, project)
        known = pages.get(key)
        if isinstance(known, Holds):
            return known
        serial = pages.current()
        source = self._services.sources.source_for(record)

        def judged() -> Holds:
            with self._services.db.read() as conn:
                return source.holds(conn, project)

        holds = await in_thread(judged)
        pages.store(key, holds, serial)
        return holds

    async def _check_served(self, record: IndexRecord, relpath: str) -> None:
        """Forbidden, saying why, for a file of a refused version (its project quarantined,
        an advisory): the verdict is kept until the next change, as the lookup is."""
        pages = self._services.pages
        filename = relpath.rsplit("/", 1)[-1]
        key = ("file-refusal", record.id, filename)
        known = pages.get(key)
        if not isinstance(known, tuple):
            serial = pages.current()
            refusal = await in_thread(self._services.statuses.file_refusal, record, filename)
            known = (refusal,)
            pages.store(key, known, serial)
        if known[0] is not None:
            raise Forbidden(known[0])

    async def meta(self, user: str, index: str, relpath: str) -> dict[str, Any]:
        """devpi's `releasefilemeta`; for a mirror file not cached yet, from its upstream link."""
        record = await self._indexes.get(user, index)
        await self._check_not_held(record, relpath)
        try:
            return await in_thread(self._services.packages.file_meta, record, relpath)
        except NotFound as not_stored:
            source = self._services.sources.source_for(record)
            return await source.missing_file_meta(relpath, not_stored)

    async def doc_member(
        self, user: str, index: str, project: str, version: str, path: str
    ) -> ZipMember:
        record = await self._indexes.get(user, index)
        limit = self._services.settings.max_archive_unpacked
        doc_file = self._services.packages.doc_file
        return await in_thread(doc_file, record, project, version, path, limit)
