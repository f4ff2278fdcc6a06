"""Mirror indexes: upstream pages fetched on demand and kept, files fetched once, verified and
cached, and the last good state served whenever the upstream fails.

`Mirrors` orchestrates one job per module: `upstream` (requests through the outbound policy,
services/outbound.py, and parsing what they return), `freshness` (when to ask again, over an
injected clock), `downloads` (files) and `trust` (hashes trusted on first use). Everything here
runs on the event loop; database work and page parsing go through the thread pool. Within one
worker process, one upstream request serves all concurrent askers (one flight per project page,
one per file).
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import time
from collections.abc import AsyncIterator, Callable
from functools import partial
from pathlib import Path

from packyard.config import Settings
from packyard.core.dists import parse_dist_filename
from packyard.core.mirror import MirrorLink
from packyard.core.models import FileRecord, IndexRecord, MirrorList, MirrorPage, PageStatus
from packyard.core.names import check_project_name
from packyard.errors import InvalidInput, NotFound, UpstreamUnavailable
from packyard.services._threads import in_thread
from packyard.services.mirror.downloads import Downloads
from packyard.services.mirror.freshness import Freshness
from packyard.services.mirror.trust import with_hashes_known, with_hashes_stored
from packyard.services.mirror.upstream import (
    ACCEPT,
    MirrorStats,
    Upstream,
    describe,
    log,
    mirror_config,
    parse_page,
    parse_project_list,
    told,
    upstream_url,
    went_backwards,
)
from packyard.services.outbound import Fetched, Outbound
from packyard.storage import search, store
from packyard.storage.blobs import BlobStore
from packyard.storage.db import Database

__all__ = ["MirrorStats", "Mirrors", "mirror_config", "parse_project_list", "upstream_url"]

# How long a request waits for a revalidation before it is answered from the stored page.
STALE_WAIT = 1.0
# No real project name is longer (the database column holds 200).
MAX_PROJECT_NAME = 200
# The full project list is large (PyPI: ~40 MB); it is fetched in the background.
LIST_TIMEOUT = 300.0


class Mirrors:
    """Fetch, keep and serve what mirror indexes take from their upstreams."""

    def __init__(
        self,
        db: Database,
        blobs: BlobStore,
        settings: Settings,
        outbound: Outbound,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._db = db
        self._blobs = blobs
        self._settings = settings
        self.stats = MirrorStats()
        self._upstream = Upstream(outbound, settings, self.stats)
        self._freshness = Freshness(settings.mirror_cache_expiry, clock)
        self._downloads = Downloads(db, blobs, settings, self._upstream, self.stats)
        self._page_flights: dict[tuple[int, str], asyncio.Task[None]] = {}
        self._list_flights: dict[int, asyncio.Task[None]] = {}

    def forget(self, index_id: int, project: str) -> None:
        """Treat the stored page as stale: the next request asks the upstream (devpi refresh)."""
        self._freshness.forget((index_id, project))

    async def refresh(self, record: IndexRecord, project: str) -> None:
        """devpi's refresh: ask the upstream again now (rate-limited per project). A refresh
        writes nothing unless the upstream's page changed, so asking flushes no cache."""
        _check_mirrored_name(project)
        if not self._freshness.may_refresh((record.id, project)):
            return
        self.forget(record.id, project)
        # On failure the stored page, if any, stays; the simple page says what is known.
        with contextlib.suppress(UpstreamUnavailable):
            await self.ensure_page(record, project)

    def is_fresh(self, index_id: int, project: str) -> bool:
        """Known fresh in this worker, without touching the database."""
        return self._freshness.is_fresh((index_id, project))

    # --- project pages -----------------------------------------------------------------------

    async def ensure_page(self, record: IndexRecord, project: str) -> None:
        """Bring the stored page of `project` up to date when it is stale.

        Never raises while a stored page exists (it is served, however old); raises
        UpstreamUnavailable when the upstream fails and nothing was ever stored.
        """
        _check_mirrored_name(project)
        key, freshness = (record.id, project), self._freshness
        if freshness.is_fresh(key):
            return
        failed = freshness.failure(key)
        if failed is not None:
            raise UpstreamUnavailable(failed)
        stored = await in_thread(self._stored_page, record.id, project)
        expiry = freshness.expiry(mirror_config(record))
        forced = freshness.take_forced(key)
        if freshness.is_fresh(key):
            return  # another request's refresh landed while this one read the stored page
        if (
            not forced
            and stored is not None
            and freshness.stored_is_fresh(stored.fetched_at, expiry)
        ):
            freshness.fresh_until(key, stored.fetched_at + expiry)
            return
        if self._settings.offline:
            if stored is None:
                raise UpstreamUnavailable(
                    f"{record.full_name} runs offline and has no copy of {project!r}"
                )
            return
        try:
            await self._join_refresh(record, project, stored, forced)
        except (TimeoutError, UpstreamUnavailable) as exc:
            if stored is not None:
                # Serve the stored page, and stop asking the upstream for a while.
                self.stats.stale_pages_served += 1
                freshness.served_stale(key)
                return
            message = (
                f"the upstream of {record.full_name} is unreachable and {project!r} was"
                f" never fetched ({told(exc)})"
            )
            freshness.remember_failure(key, message)
            raise UpstreamUnavailable(message) from exc

    async def _join_refresh(
        self, record: IndexRecord, project: str, stored: MirrorPage | None, forced: bool
    ) -> None:
        """Wait for this project's one refresh in flight (starting it if needed); a request
        with a stored page to fall back on waits only briefly."""
        key = (record.id, project)
        flight = self._page_flights.get(key)
        if flight is None:
            flight = asyncio.create_task(self._refresh_page(record, project, stored, forced))
            self._page_flights[key] = flight
            flight.add_done_callback(lambda done: self._page_landed(key, done))
        await asyncio.wait_for(asyncio.shield(flight), STALE_WAIT if stored else None)

    def _page_landed(self, key: tuple[int, str], flight: asyncio.Task[None]) -> None:
        self._page_flights.pop(key, None)
        if not flight.cancelled():
            flight.exception()  # retrieved here; the waiting requests handle it

    def _stored_page(self, index_id: int, project: str) -> MirrorPage | None:
        with self._db.read() as conn:
            return store.get_mirror_page(conn, index_id, project)

    async def _refresh_page(
        self, record: IndexRecord, project: str, stored: MirrorPage | None, forced: bool = False
    ) -> None:
        url = _page_url(record, project)
        headers = {"Accept": ACCEPT}
        if stored is not None and stored.status == PageStatus.OK:
            if stored.etag:
                headers["If-None-Match"] = stored.etag
            if stored.last_modified:
                headers["If-Modified-Since"] = stored.last_modified
        max_bytes = self._settings.outbound_max_page_size
        response = await self._upstream.get(record, url, max_bytes, headers)
        now = self._freshness.now()
        if response.status == 304 and stored is not None:
            self.stats.page_revalidations += 1
            if not forced:  # a forced refresh that changed nothing writes nothing
                await in_thread(self._touch_page, record, project, now)
        elif response.status == 404:
            self.stats.page_fetches += 1
            # Only a project that went away leaves a row saying so: one never seen leaves
            # none (a client can name any number of those; it gets a 404 either way).
            if stored is not None:
                page = MirrorPage(record.id, project, PageStatus.MISSING, now, None, None, None, [])
                await in_thread(self._store_page, record, page)
        elif response.status == 200:
            self.stats.page_fetches += 1
            await self._take_page(record, project, response, now, stored, forced)
        else:
            self._upstream.failed(url, f"HTTP {response.status}")
        self._freshness.fetched(
            (record.id, project), now, self._freshness.expiry(mirror_config(record))
        )

    async def _take_page(
        self,
        record: IndexRecord,
        project: str,
        response: Fetched,
        now: float,
        stored: MirrorPage | None,
        forced: bool,
    ) -> None:
        """Parse an upstream page and store it, unless it changed nothing or went backwards."""
        url = _page_url(record, project)
        # Off the event loop: a large page must not stall other requests while it parses.
        limit = self._settings.outbound_max_page_links
        parse = partial(parse_page, self._upstream, record, project, response, now, limit)
        page = await in_thread(lambda: with_hashes_known(parse(), stored))
        log.info("fetched %s from upstream: %d files", url, len(page.links))
        if went_backwards(record, stored, page):
            log.warning("%s: upstream serial went backwards for %s", url, project)
        elif forced and stored is not None and stored.links == page.links:
            pass  # unchanged: nothing to write
        else:
            await in_thread(self._store_page, record, page)

    def _store_page(self, record: IndexRecord, page: MirrorPage) -> None:
        with self._db.write("mirror-page", index=record.full_name, project=page.project) as conn:
            page = with_hashes_stored(conn, page)
            store.put_mirror_page(conn, page)
            if page.status == PageStatus.OK:
                search.upsert(conn, record.id, page.project, "", "", "")

    def _touch_page(self, record: IndexRecord, project: str, now: float) -> None:
        with self._db.write("mirror-revalidate", index=record.full_name, project=project) as conn:
            store.touch_mirror_page(conn, record.id, project, now)

    # --- cached files ----------------------------------------------------------------------------

    def note_served(self, file: FileRecord, path: Path) -> None:
        """Count a cache hit, and mark the blob used today (its mtime; once a day at most)."""
        self._downloads.note_served(file, path)

    def drop_cached(
        self, record: IndexRecord, project: str | None = None, unused_days: float | None = None
    ) -> tuple[int, int]:
        """Delete cached files of a mirror (one project, or those unused for N days).

        Pages stay: a dropped file is fetched again on its next request. Returns the number
        of files and bytes dropped.
        """
        mirror_config(record)  # a stage's files are not a cache
        cutoff = time.time() - unused_days * 86400 if unused_days is not None else None
        last_used = self._downloads.last_used
        with self._db.write("mirror-drop", index=record.full_name, project=project) as conn:
            candidates = store.index_files(conn, record.id, project)
            doomed = [f for f in candidates if cutoff is None or last_used(f) < cutoff]
            store.delete_files(conn, [f.id for f in doomed])
        for file in doomed:
            self._downloads.dropped(record.id, file.filename)
        return len(doomed), sum(f.size for f in doomed)

    async def find_link(self, record: IndexRecord, relpath: str) -> MirrorLink:
        """The upstream link behind `+f/<relpath>` of this mirror (fetching its page if needed)."""
        filename = relpath.rsplit("/", 1)[-1]
        try:
            project = parse_dist_filename(filename).project
        except InvalidInput as exc:
            raise NotFound("no such file") from exc
        await self.ensure_page(record, project)
        page = await in_thread(self._stored_page, record.id, project)
        for data in page.links if page else ():
            link = MirrorLink.from_json(data)
            if link.relpath == f"+f/{relpath}":
                return link
        raise NotFound("no such file")

    def stream_file(self, record: IndexRecord, link: MirrorLink) -> AsyncIterator[bytes]:
        """The file's bytes from the upstream, while they are cached (one download for all)."""
        return self._downloads.stream_file(record, link)

    async def core_metadata(self, record: IndexRecord, link: MirrorLink) -> bytes:
        """A wheel's `.metadata` from the upstream, verified and kept by its hash."""
        return await self._downloads.core_metadata(record, link)

    # --- the upstream's full project list ------------------------------------------------------

    async def project_list(self, record: IndexRecord) -> MirrorList | None:
        """The stored full project list (names blob: `names_bytes`); a stale or missing one
        is refreshed in the background, never while a request waits."""
        stored = await in_thread(self._stored_list, record.id)
        config = mirror_config(record)
        expiry = self._freshness.expiry(config)
        stale = stored is None or not self._freshness.stored_is_fresh(stored.fetched_at, expiry)
        wanted = not config.mirror_no_project_list and not self._settings.offline
        if stale and wanted and record.id not in self._list_flights:
            flight = asyncio.create_task(self._refresh_list(record, stored))
            self._list_flights[record.id] = flight
            flight.add_done_callback(lambda done: self._list_landed(record.id, done))
        return stored

    def names_bytes(self, listing: MirrorList) -> bytes:
        """Newline-separated normalised names of a stored list."""
        return self._blobs.read_bytes(listing.names_sha256)

    def _list_landed(self, index_id: int, flight: asyncio.Task[None]) -> None:
        self._list_flights.pop(index_id, None)
        if not flight.cancelled() and flight.exception() is not None:
            log.warning("project list refresh failed: %s", describe(flight.exception()))

    def _stored_list(self, index_id: int) -> MirrorList | None:
        with self._db.read() as conn:
            return store.get_mirror_list(conn, index_id)

    async def _refresh_list(self, record: IndexRecord, stored: MirrorList | None) -> None:
        url = f"{upstream_url(record).rstrip('/')}/"
        headers = {"Accept": ACCEPT}
        if stored is not None and stored.etag:
            headers["If-None-Match"] = stored.etag
        cap = self._settings.outbound_max_list_size
        response = await self._upstream.get(record, url, cap, headers, deadline=LIST_TIMEOUT)
        now = self._freshness.now()
        if response.status == 304 and stored is not None:
            listing = dataclasses.replace(stored, fetched_at=now)
        elif response.status == 200:
            names = await in_thread(parse_project_list, response)
            sha = await in_thread(self._blobs.put_bytes, "\n".join(names).encode())
            etag = response.headers.get("etag")
            listing = MirrorList(record.id, now, etag, sha, len(names))
        else:
            self._upstream.failed(url, f"HTTP {response.status}")
        await in_thread(self._store_list, record, listing)

    def _store_list(self, record: IndexRecord, listing: MirrorList) -> None:
        with self._db.write("mirror-list", index=record.full_name, count=listing.count) as conn:
            store.put_mirror_list(conn, listing)


def _page_url(record: IndexRecord, project: str) -> str:
    return f"{upstream_url(record).rstrip('/')}/{project}/"


def _check_mirrored_name(project: str) -> None:
    """No upstream request (nor anything remembered) for a name no project can have."""
    try:
        if len(project) > MAX_PROJECT_NAME:
            raise InvalidInput("too long")
        check_project_name(project)
    except InvalidInput as exc:
        raise NotFound(f"no project {project[:MAX_PROJECT_NAME]!a}: not a valid name") from exc
