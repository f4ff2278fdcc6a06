"""Files under `+f/` and hosted docs: lookup (kept until the next change), integrity check,
devpi's `releasefilemeta`, and a mirror's files not cached yet."""

from __future__ import annotations

import dataclasses
import os
from collections.abc import AsyncIterator
from datetime import timedelta
from typing import TYPE_CHECKING, Any

from packyard.core.dists import parse_dist_filename
from packyard.core.mirror import MirrorLink
from packyard.core.models import IndexRecord
from packyard.errors import NotFound
from packyard.services._threads import in_thread
from packyard.services.archives import ZipMember
from packyard.services.boundary.indexes import IndexUseCases
from packyard.services.integrity import checked_file
from packyard.services.packages import StoredFile

if TYPE_CHECKING:
    from packyard.services import Services


@dataclasses.dataclass(frozen=True)
class Stored:
    """A stored file, checked against its blob (stat; hash once per process and file)."""

    found: StoredFile
    stat: os.stat_result


@dataclasses.dataclass(frozen=True)
class Upstream:
    """A mirror file not cached yet: its link and its bytes as they arrive (being cached)."""

    link: MirrorLink
    chunks: AsyncIterator[bytes] | None
    # A `.metadata` file beside it, extracted whole (no streaming).
    whole: bytes | None = None


class FileUseCases:
    def __init__(self, services: Services, indexes: IndexUseCases) -> None:
        self._services = services
        self._indexes = indexes

    async def stored(self, user: str, index: str, relpath: str) -> StoredFile | Upstream:
        """The stored file of a +f path, else (on a mirror) its upstream download."""
        record = await self._indexes.get(user, index)
        try:
            found = await self._stored_file(record, relpath)
        except NotFound:
            if not record.is_mirror:
                raise
            return await self._from_upstream(record, relpath)
        if record.is_mirror:
            self._services.mirrors.note_served(found.record, found.path)
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

    async def _from_upstream(self, record: IndexRecord, relpath: str) -> Upstream:
        mirrors = self._services.mirrors
        if relpath.endswith(".metadata"):
            link = await mirrors.find_link(record, relpath.removesuffix(".metadata"))
            body = await mirrors.core_metadata(record, link)
            return Upstream(link, None, body)
        link = await mirrors.find_link(record, relpath)
        return Upstream(link, mirrors.stream_file(record, link))

    async def meta(self, user: str, index: str, relpath: str) -> dict[str, Any]:
        """devpi's `releasefilemeta`; for a mirror file not cached yet, from its upstream link."""
        record = await self._indexes.get(user, index)
        try:
            return await in_thread(self._services.packages.file_meta, record, relpath)
        except NotFound:
            if not record.is_mirror:
                raise
        link = await self._services.mirrors.find_link(record, relpath)
        dist = parse_dist_filename(link.filename)  # find_link only finds parseable names
        meta: dict[str, Any] = {
            "url": link.url,
            "project": dist.project,
            "version": str(dist.version),
        }
        if link.sha256:
            meta |= {"hash_spec": f"sha256={link.sha256}", "hashes": {"sha256": link.sha256}}
        if link.trusted_on_first_use:
            meta["trusted_on_first_use"] = True
        return meta

    async def doc_member(
        self, user: str, index: str, project: str, version: str, path: str
    ) -> ZipMember:
        record = await self._indexes.get(user, index)
        limit = self._services.settings.max_archive_unpacked
        doc_file = self._services.packages.doc_file
        return await in_thread(doc_file, record, project, version, path, limit)
