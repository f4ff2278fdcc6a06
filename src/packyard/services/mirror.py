"""Mirror indexes: upstream pages fetched on demand and kept, files fetched once, verified and
cached, and the last good state served whenever the upstream fails.

Everything here runs on the event loop (upstream I/O goes through the outbound policy,
services/outbound.py); database work and page parsing go through the thread pool. Within one
worker process, one upstream request serves all concurrent askers (one flight per project page,
one per file). What an upstream said is logged; clients get generic words (an error text must
not tell an open port from a closed one).
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import hashlib
import json
import logging
import os
import time
from collections.abc import AsyncIterator, Callable, Iterable
from functools import partial
from html.parser import HTMLParser
from pathlib import Path
from typing import NoReturn, TypeVar
from urllib.parse import unquote, urlsplit

from pypi_simple import DistributionPackage, ProjectPage
from sqlalchemy import Connection

from packyard.config import Settings
from packyard.core.dists import check_safe_filename, parse_dist_filename
from packyard.core.indexconfig import MirrorConfig
from packyard.core.mirror import (
    MirrorLink,
    is_fresh,
    keep_known_hashes,
    parse_upload_time,
    trusted_directory,
)
from packyard.core.models import (
    FileKind,
    FileRecord,
    IndexRecord,
    MirrorList,
    MirrorPage,
    PageStatus,
)
from packyard.core.names import check_project_name, normalize_project
from packyard.core.simple import upload_time_text
from packyard.errors import InvalidInput, NotFound, PackyardError, UpstreamUnavailable
from packyard.services._threads import in_thread
from packyard.services.archives import read_core_metadata
from packyard.services.outbound import Fetched, Outbound, OutboundFailure, capped_chunks
from packyard.storage import search, store
from packyard.storage.blobs import BlobStore, BlobWriter
from packyard.storage.db import Database

log = logging.getLogger("packyard.mirror")
# httpx logs every request at INFO; the request log already says what matters.
logging.getLogger("httpx").setLevel(logging.WARNING)
# What a client is told when the upstream failed, whatever the reason (the log has it).
NO_ANSWER = "no usable answer from the upstream"

ACCEPT = (
    "application/vnd.pypi.simple.v1+json, application/vnd.pypi.simple.v1+html;q=0.2,"
    " text/html;q=0.01"
)
# How long a request waits for a revalidation before it is answered from the stored page.
STALE_WAIT = 1.0
# After a failed revalidation, the stored page is served without asking again for this long.
RETRY_AFTER = 30.0
# A failed first fetch is answered from memory this long, so a hanging upstream is not
# waited for again by every request.
FAILURE_MEMORY = 5.0
V = TypeVar("V")
# Per-project entries a worker remembers (freshness, failures, refreshes): past this, expired
# ones are dropped, so clients naming endless projects cannot grow the worker's memory.
MAX_REMEMBERED = 10_000
# No real project name is longer (the database column holds 200).
MAX_PROJECT_NAME = 200
# The full project list is large (PyPI: ~40 MB); it is fetched in the background.
LIST_TIMEOUT = 300.0
# A cached file's blob mtime records its last use, refreshed at most this often.
USE_MARK_INTERVAL = 86400.0
CHUNK = 256 * 1024
# Bytes of a download held back from readers until the whole file's hash is verified, so no
# client ever receives a complete file that turns out to be wrong.
HOLDBACK = 64 * 1024
# devpi's refresh needs no login: anyone may ask, but the upstream is asked again at most this
# often per project and worker.
REFRESH_INTERVAL = 10.0
# A finished download stays joinable this long: a request that looked for the cached file just
# before it was stored joins it instead of fetching the file again.
LINGER = 10.0


@dataclasses.dataclass
class MirrorStats:
    """Counters of one worker process, shown in /+status."""

    page_fetches: int = 0
    page_revalidations: int = 0
    stale_pages_served: int = 0
    upstream_errors: int = 0
    file_hits: int = 0
    file_misses: int = 0
    bytes_from_cache: int = 0
    bytes_from_upstream: int = 0

    def as_dict(self) -> dict[str, int]:
        return dataclasses.asdict(self)


class _Download:
    """One upstream file transfer that any number of readers follow as it grows."""

    def __init__(self, writer: BlobWriter) -> None:
        self.writer = writer
        self.fd = os.open(writer.temp_path, os.O_RDONLY)
        self.size = 0
        self.verified = False
        self.error: PackyardError | None = None
        self.finished = False
        self.readers = 0
        self.changed = asyncio.Condition()

    def has_more(self, offset: int) -> bool:
        """Whether a reader at `offset` can proceed: more bytes to pass on, or the end."""
        return self.finished or self.size - HOLDBACK > offset

    async def notify(self) -> None:
        async with self.changed:
            self.changed.notify_all()

    def release(self) -> None:
        if self.finished and self.readers == 0 and self.fd >= 0:
            os.close(self.fd)
            self.fd = -1


class Mirrors:
    """Fetch, keep and serve what mirror indexes take from their upstreams."""

    def __init__(
        self, db: Database, blobs: BlobStore, settings: Settings, outbound: Outbound
    ) -> None:
        self._db = db
        self._blobs = blobs
        self._settings = settings
        self._outbound = outbound
        self.stats = MirrorStats()
        self._fresh_until: dict[tuple[int, str], float] = {}
        self._page_flights: dict[tuple[int, str], asyncio.Task[None]] = {}
        # Never-fetched pages whose fetch just failed: (until, message), to fail fast.
        self._failures: dict[tuple[int, str], tuple[float, str]] = {}
        self._force_refresh: set[tuple[int, str]] = set()
        self._refreshed_at: dict[tuple[int, str], float] = {}
        self._downloads: dict[tuple[int, str], _Download] = {}
        self._list_flights: dict[int, asyncio.Task[None]] = {}

    def forget(self, index_id: int, project: str) -> None:
        """Treat the stored page as stale: the next request asks the upstream (devpi refresh)."""
        self._fresh_until.pop((index_id, project), None)
        self._failures.pop((index_id, project), None)
        self._force_refresh.add((index_id, project))

    async def refresh(self, record: IndexRecord, project: str) -> None:
        """devpi's refresh: ask the upstream again now (rate-limited per project). A refresh
        writes nothing unless the upstream's page changed, so asking flushes no cache."""
        _check_mirrored_name(project)
        key, now = (record.id, project), time.time()
        if now - self._refreshed_at.get(key, 0.0) < REFRESH_INTERVAL:
            return
        _prune(self._refreshed_at, lambda t: now - t < REFRESH_INTERVAL)
        self._refreshed_at[key] = now
        self.forget(record.id, project)
        # On failure the stored page, if any, stays; the simple page says what is known.
        with contextlib.suppress(UpstreamUnavailable):
            await self.ensure_page(record, project)

    def is_fresh(self, index_id: int, project: str) -> bool:
        """Known fresh in this worker, without touching the database."""
        return self._fresh_until.get((index_id, project), 0.0) > time.time()

    # --- project pages -----------------------------------------------------------------------

    async def ensure_page(self, record: IndexRecord, project: str) -> None:
        """Bring the stored page of `project` up to date when it is stale.

        Never raises while a stored page exists (it is served, however old); raises
        UpstreamUnavailable when the upstream fails and nothing was ever stored.
        """
        _check_mirrored_name(project)
        key = (record.id, project)
        if self.is_fresh(record.id, project):
            return
        failed = self._failures.get(key)
        if failed is not None and failed[0] > time.time():
            raise UpstreamUnavailable(failed[1])
        stored = await in_thread(self._stored_page, record.id, project)
        expiry = self._expiry(record)
        forced = key in self._force_refresh
        self._force_refresh.discard(key)
        if self.is_fresh(record.id, project):
            return  # another request's refresh landed while this one read the stored page
        if not forced and stored is not None and is_fresh(stored.fetched_at, expiry, time.time()):
            self._fresh_until[key] = stored.fetched_at + expiry
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
                self._fresh_until[key] = time.time() + RETRY_AFTER
                return
            message = (
                f"the upstream of {record.full_name} is unreachable and {project!r} was"
                f" never fetched ({_told(exc)})"
            )
            _prune(self._failures, lambda failure: failure[0] > time.time())
            self._failures[key] = (time.time() + FAILURE_MEMORY, message)
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

    def _expiry(self, record: IndexRecord) -> int:
        expiry = mirror_config(record).mirror_cache_expiry
        return self._settings.mirror_cache_expiry if expiry is None else expiry

    def _stored_page(self, index_id: int, project: str) -> MirrorPage | None:
        with self._db.read() as conn:
            return store.get_mirror_page(conn, index_id, project)

    async def _refresh_page(
        self, record: IndexRecord, project: str, stored: MirrorPage | None, forced: bool = False
    ) -> None:
        url = f"{upstream_url(record).rstrip('/')}/{project}/"
        headers = {"Accept": ACCEPT}
        if stored is not None and stored.status == PageStatus.OK:
            if stored.etag:
                headers["If-None-Match"] = stored.etag
            if stored.last_modified:
                headers["If-Modified-Since"] = stored.last_modified
        response = await self._get(record, url, self._settings.outbound_max_page_size, headers)
        now = time.time()
        key = (record.id, project)
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
            # Off the event loop: a large page must not stall other requests while it parses.
            parse = partial(self._parse_page, record, project, response, now, stored)
            page = await in_thread(parse)
            log.info("fetched %s from upstream: %d files", url, len(page.links))
            if _went_backwards(record, stored, page):
                log.warning("%s: upstream serial went backwards for %s", url, project)
            elif forced and stored is not None and stored.links == page.links:
                pass  # unchanged: nothing to write
            else:
                await in_thread(self._store_page, record, page)
        else:
            self._upstream_failed(url, f"HTTP {response.status}")
        _prune(self._fresh_until, lambda until: until > now)
        self._fresh_until[key] = now + self._expiry(record)
        self._failures.pop(key, None)

    async def _get(
        self,
        record: IndexRecord,
        url: str,
        max_bytes: int,
        headers: dict[str, str] | None = None,
        deadline: float | None = None,
    ) -> Fetched:
        """A whole upstream body under the outbound policy; failures become generic."""
        try:
            return await self._outbound.get(
                url, trusted=[upstream_url(record)], max_bytes=max_bytes, headers=headers,
                deadline=deadline or self._settings.mirror_timeout,
            )  # fmt: skip
        except OutboundFailure as exc:
            self._upstream_failed(url, exc)

    def _upstream_failed(self, url: str, problem: object, told: str = NO_ANSWER) -> NoReturn:
        """Log what went wrong; tell the client only `told`."""
        self.stats.upstream_errors += 1
        log.warning("upstream error for %s: %s", url, _describe(problem))
        raise UpstreamUnavailable(told)

    def _parse_page(
        self,
        record: IndexRecord,
        project: str,
        response: Fetched,
        now: float,
        stored: MirrorPage | None,
    ) -> MirrorPage:
        base = response.url
        limit = self._settings.outbound_max_page_links
        try:
            if "json" in response.headers.get("content-type", ""):
                data = json.loads(response.body)
                count = len(data.get("files") or ())
                if count <= limit:
                    parsed = ProjectPage.from_json_data(data, base_url=base)
            else:
                count = response.body.count(b"<a") + response.body.count(b"<A")
                if count <= limit:
                    parsed = ProjectPage.from_html(project, response.body, base_url=base)
        except (ValueError, TypeError, AttributeError) as exc:
            self._upstream_failed(base, f"unreadable project page: {exc}")
        if count > limit:
            told = (
                f"the upstream page of {project!r} lists more than {limit} files, the limit"
                " set by outbound_max_page_links"
            )
            self._upstream_failed(base, f"{count} links", told)
        # PEP 503: an HTML page names a file by its URL; the link text is only for show.
        from_url = "json" not in response.headers.get("content-type", "")
        found = (_mirror_link(package, from_url) for package in parsed.packages)
        links = [link.to_json() for link in found if link]
        serial = _int(str(parsed.last_serial or response.headers.get("x-pypi-last-serial") or ""))
        page = MirrorPage(
            record.id, project, PageStatus.OK, now, response.headers.get("etag"),
            response.headers.get("last-modified"), serial, links,
        )  # fmt: skip
        return _known(page, stored)

    def _store_page(self, record: IndexRecord, page: MirrorPage) -> None:
        with self._db.write("mirror-page", index=record.full_name, project=page.project) as conn:
            page = _with_known_hashes(conn, page)
            store.put_mirror_page(conn, page)
            if page.status == PageStatus.OK:
                search.upsert(conn, record.id, page.project, "", "", "")

    def _touch_page(self, record: IndexRecord, project: str, now: float) -> None:
        with self._db.write("mirror-revalidate", index=record.full_name, project=project) as conn:
            store.touch_mirror_page(conn, record.id, project, now)

    # --- dropping cached files ------------------------------------------------------------------

    def note_served(self, file: FileRecord, path: Path) -> None:
        """Count a cache hit, and mark the blob used today (its mtime; once a day at most)."""
        self.stats.file_hits += 1
        self.stats.bytes_from_cache += file.size
        now = time.time()
        try:
            if now - path.stat().st_mtime > USE_MARK_INTERVAL:
                os.utime(path, (now, now))
        except OSError:
            pass

    def drop_cached(
        self, record: IndexRecord, project: str | None = None, unused_days: float | None = None
    ) -> tuple[int, int]:
        """Delete cached files of a mirror (one project, or those unused for N days).

        Pages stay: a dropped file is fetched again on its next request. Returns the number
        of files and bytes dropped.
        """
        mirror_config(record)  # a stage's files are not a cache
        cutoff = time.time() - unused_days * 86400 if unused_days is not None else None
        with self._db.write("mirror-drop", index=record.full_name) as conn:
            candidates = store.index_files(conn, record.id, project)
            doomed = [f for f in candidates if cutoff is None or self._last_used(f) < cutoff]
            store.delete_files(conn, [f.id for f in doomed])
        for file in doomed:
            # A finished download lingers (LINGER) to be joined: not for a dropped file, which
            # is fetched again. (Called from a thread; a dict pop is atomic, and _forget
            # releases the lingering hold whether the entry is still there or not.)
            self._downloads.pop((record.id, file.filename), None)
        return len(doomed), sum(f.size for f in doomed)

    def _last_used(self, file: FileRecord) -> float:
        try:
            return self._blobs.path(file.sha256).stat().st_mtime
        except OSError:
            return 0.0

    # --- the upstream's full project list ------------------------------------------------------

    async def project_list(self, record: IndexRecord) -> MirrorList | None:
        """The stored full project list (names blob: `names_bytes`); a stale or missing one
        is refreshed in the background, never while a request waits."""
        stored = await in_thread(self._stored_list, record.id)
        stale = stored is None or not is_fresh(stored.fetched_at, self._expiry(record), time.time())
        wanted = not mirror_config(record).mirror_no_project_list and not self._settings.offline
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
            log.warning("project list refresh failed: %s", _describe(flight.exception()))

    def _stored_list(self, index_id: int) -> MirrorList | None:
        with self._db.read() as conn:
            return store.get_mirror_list(conn, index_id)

    async def _refresh_list(self, record: IndexRecord, stored: MirrorList | None) -> None:
        url = f"{upstream_url(record).rstrip('/')}/"
        headers = {"Accept": ACCEPT}
        if stored is not None and stored.etag:
            headers["If-None-Match"] = stored.etag
        cap = self._settings.outbound_max_list_size
        response = await self._get(record, url, cap, headers, deadline=LIST_TIMEOUT)
        now = time.time()
        if response.status == 304 and stored is not None:
            listing = dataclasses.replace(stored, fetched_at=now)
        elif response.status == 200:
            names = await in_thread(parse_project_list, response)
            sha = await in_thread(self._blobs.put_bytes, "\n".join(names).encode())
            etag = response.headers.get("etag")
            listing = MirrorList(record.id, now, etag, sha, len(names))
        else:
            self._upstream_failed(url, f"HTTP {response.status}")
        await in_thread(self._store_list, record, listing)

    def _store_list(self, record: IndexRecord, listing: MirrorList) -> None:
        with self._db.write("mirror-list", index=record.full_name, count=listing.count) as conn:
            store.put_mirror_list(conn, listing)

    # --- files ---------------------------------------------------------------------------------

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
        if self._settings.offline:
            raise UpstreamUnavailable(
                f"{record.full_name} runs offline; {link.filename} is not cached"
            )
        key = (record.id, link.filename)
        download = self._downloads.get(key)
        if download is None:
            download = _Download(self._blobs.writer())
            self._downloads[key] = download
            task = asyncio.create_task(self._fetch_file(record, link, download))
            task.add_done_callback(lambda _done: self._download_done(key, download))
        self.stats.file_misses += 1
        return self._follow(download)

    def _download_done(self, key: tuple[int, str], download: _Download) -> None:
        if download.verified:  # its file is held open until it is forgotten
            asyncio.get_running_loop().call_later(LINGER, self._forget, key, download)
        else:  # failed: the next request tries again
            self._downloads.pop(key, None)

    def _forget(self, key: tuple[int, str], download: _Download) -> None:
        if self._downloads.get(key) is download:
            del self._downloads[key]
        download.readers -= 1
        download.release()

    async def _follow(self, download: _Download) -> AsyncIterator[bytes]:
        download.readers += 1
        offset = 0
        try:
            while True:
                async with download.changed:
                    await download.changed.wait_for(partial(download.has_more, offset))
                if download.error is not None:
                    raise download.error
                limit = download.size if download.verified else download.size - HOLDBACK
                while offset < limit:
                    chunk = os.pread(download.fd, min(CHUNK, limit - offset), offset)
                    offset += len(chunk)
                    yield chunk
                if download.finished:
                    return
        finally:
            download.readers -= 1
            download.release()

    async def _fetch_file(self, record: IndexRecord, link: MirrorLink, download: _Download) -> None:
        writer = download.writer
        # The declared size is the cap when the page gives one; a setting otherwise.
        cap = link.size if link.size is not None else self._settings.outbound_max_file_size
        try:
            async with self._outbound.stream(
                "GET", link.url, trusted=[upstream_url(record)],
                deadline=self._settings.outbound_file_deadline,
            ) as response:  # fmt: skip
                if response.status_code == 404:
                    # devpi answers 404 too: the upstream no longer has the file.
                    raise NotFound(f"the upstream no longer has {link.filename}")
                if response.status_code != 200:
                    self._upstream_failed(link.url, f"HTTP {response.status_code}")
                async for chunk in capped_chunks(response, cap):
                    writer.write(chunk)
                    download.size = writer.size
                    await download.notify()
            sha256 = await in_thread(writer.finish)
            if link.sha256 and sha256 != link.sha256:
                self._refuse_body(link, link.sha256, sha256)
            refused = await in_thread(self._store_file, record, link, writer)
            if refused is not None:
                self._refuse_body(link, refused, sha256)
            self.stats.bytes_from_upstream += writer.size
            log.info("cached %s from upstream (%d bytes)", link.filename, writer.size)
            download.verified = True
            download.readers += 1  # the lingering hold, see _download_done
        except PackyardError as exc:
            download.error = exc
        except (OutboundFailure, OSError) as exc:
            self.stats.upstream_errors += 1
            log.warning("upstream error for %s: %s", link.url, _describe(exc))
            download.error = UpstreamUnavailable(f"could not fetch {link.filename}: {NO_ANSWER}")
        finally:
            writer.abort()
            download.finished = True
            await download.notify()
            download.release()

    def _refuse_body(self, link: MirrorLink, expected: str, got: str) -> NoReturn:
        told = f"{link.filename} from the upstream does not match its sha256"
        if link.trusted_on_first_use:
            told = (
                f"{link.filename} from the upstream differs from the copy this mirror first"
                f" fetched (sha256 {expected}); the upstream gives no hash, so the first copy"
                " is trusted and other bytes are refused"
            )
        self._upstream_failed(link.url, f"sha256 mismatch: expected {expected}, got {got}", told)

    def _store_file(self, record: IndexRecord, link: MirrorLink, writer: BlobWriter) -> str | None:
        """Keep a verified download; a file trusted on first use records its hash beside the
        link. Returns the trusted hash when another download got there first with other bytes
        (the write is then refused), else None."""
        dist = parse_dist_filename(link.filename)
        metadata_sha = None
        if dist.kind == "wheel":
            try:
                metadata_sha = self._blobs.put_bytes(read_core_metadata(writer.temp_path, dist))
            except InvalidInput:
                metadata_sha = None
        uploaded = parse_upload_time(link.upload_time)
        with self._db.write("mirror-file", index=record.full_name, file=link.filename) as conn:
            if link.trusted_on_first_use:
                trusted = _trust_first_use(conn, record, dist.project, link, writer.sha256)
                if trusted != writer.sha256:
                    return trusted
            if store.get_file(conn, record.id, link.filename) is not None:
                return None
            writer.commit()
            store.insert_file(
                conn,
                FileRecord(
                    id=0, index_id=record.id, project=dist.project, version=str(dist.version),
                    filename=link.filename, kind=FileKind.RELEASE, sha256=writer.sha256,
                    size=writer.size,
                    uploaded_at=uploaded.timestamp() if uploaded else time.time(),
                    yanked=None, metadata_sha256=metadata_sha,
                    requires_python=link.requires_python, for_file=None, log=[],
                    dir_sha256=trusted_directory(link.filename)
                    if link.trusted_on_first_use else None,
                ),
            )  # fmt: skip
        return None

    async def core_metadata(self, record: IndexRecord, link: MirrorLink) -> bytes:
        """A wheel's `.metadata` from the upstream, verified and kept by its hash."""
        expected = link.core_metadata_sha256
        if expected and self._blobs.exists(expected):
            return await in_thread(self._blobs.read_bytes, expected)
        if not link.core_metadata or not expected or self._settings.offline:
            raise NotFound("no core metadata for this file")
        url = f"{link.url}.metadata"
        response = await self._get(record, url, self._settings.outbound_max_page_size)
        if response.status != 200:
            self._upstream_failed(url, f"HTTP {response.status}")
        # Verified before it is kept: a wrong file must leave nothing behind.
        if hashlib.sha256(response.body).hexdigest() != expected:
            self._upstream_failed(url, "sha256 of the metadata file does not match")
        await in_thread(self._blobs.put_bytes, response.body)
        return response.body


def mirror_config(record: IndexRecord) -> MirrorConfig:
    """The typed config of a mirror index; a stage is refused."""
    config = record.index_config
    if not isinstance(config, MirrorConfig):
        raise InvalidInput(f"{record.full_name} is not a mirror index")
    return config


def upstream_url(record: IndexRecord) -> str:
    return mirror_config(record).mirror_url


def parse_project_list(response: Fetched) -> list[str]:
    """Normalised project names from an upstream's root page, PEP 691 JSON or PEP 503 HTML."""
    if "json" in response.headers.get("content-type", ""):
        names = [entry["name"] for entry in json.loads(response.body).get("projects", ())]
    else:
        collector = _AnchorTexts()
        collector.feed(response.body.decode("utf-8", "replace"))
        names = collector.texts
    return list(dict.fromkeys(normalize_project(name) for name in names if name.strip()))


class _AnchorTexts(HTMLParser):
    """Collects the text of every <a> element (PEP 503: the text is the project name)."""

    def __init__(self) -> None:
        super().__init__()
        self.texts: list[str] = []
        self._in_anchor = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "a":
            self._in_anchor = True
            self.texts.append("")

    def handle_endtag(self, tag: str) -> None:
        if tag == "a":
            self._in_anchor = False

    def handle_data(self, data: str) -> None:
        if self._in_anchor:
            self.texts[-1] += data


def _mirror_link(package: DistributionPackage, name_from_url: bool) -> MirrorLink | None:
    """What we keep of one upstream file; None for a name that is no safe file name. A file
    without a sha256 is kept, its hash to be trusted on first use."""
    url = package.url.split("#", 1)[0]
    filename = _url_filename(url) if name_from_url else package.filename
    try:
        check_safe_filename(filename)
    except InvalidInput:
        log.warning("skipping upstream file with an unsafe name: %r", filename)
        return None
    sha256 = (package.digests or {}).get("sha256") or ""
    if not _is_sha256(sha256):
        sha256 = ""  # a malformed hash is no hash: the first download decides
    yanked = (package.yanked_reason or "") if package.is_yanked else None
    metadata_sha = (package.metadata_digests or {}).get("sha256")
    return MirrorLink(
        filename=filename,
        url=url,
        sha256=sha256.lower(),
        trusted_on_first_use=not sha256,
        size=package.size,
        upload_time=upload_time_text(package.upload_time) if package.upload_time else None,
        requires_python=package.requires_python,
        yanked=yanked,
        core_metadata=bool(package.has_metadata),
        core_metadata_sha256=metadata_sha.lower() if metadata_sha else None,
    )


def _url_filename(url: str) -> str:
    """The last segment of a URL's path, percent-decoded (PEP 503: the file's name)."""
    return unquote(urlsplit(url).path.rsplit("/", 1)[-1])


def _is_sha256(text: str) -> bool:
    return len(text) == 64 and all(char in "0123456789abcdefABCDEF" for char in text)


def _known(
    page: MirrorPage, stored: MirrorPage | None, cached: Iterable[FileRecord] = ()
) -> MirrorPage:
    """`page` with the hashes this mirror already knows of the files its upstream lists
    without one (see keep_known_hashes); unchanged, and cheaply, when no hash is missing."""
    before = stored.links if stored else []
    if not any(data.get("trusted_on_first_use") for data in (*page.links, *before)):
        return page
    fresh = [MirrorLink.from_json(data) for data in page.links]
    known = [MirrorLink.from_json(data) for data in before]
    kept = keep_known_hashes(fresh, known, cached)
    return dataclasses.replace(page, links=[link.to_json() for link in kept])


def _with_known_hashes(conn: Connection, page: MirrorPage) -> MirrorPage:
    """_known, against what the database holds now (inside the write that stores `page`)."""
    stored = store.get_mirror_page(conn, page.index_id, page.project)
    if not any(data.get("trusted_on_first_use") for data in page.links):
        return _known(page, stored)
    return _known(page, stored, store.project_files(conn, page.index_id, page.project))


def _trust_first_use(
    conn: Connection, record: IndexRecord, project: str, link: MirrorLink, sha256: str
) -> str:
    """The hash trusted for the file of `link`, a file its upstream gives no hash for: the
    one already recorded (on its page, or of the cached file), else `sha256`, recorded now."""
    cached = store.get_file(conn, record.id, link.filename)
    if cached is not None:
        return cached.sha256
    page = store.get_mirror_page(conn, record.id, project)
    if page is None:
        return sha256
    links = [MirrorLink.from_json(data) for data in page.links]
    for position, known in enumerate(links):
        if known.filename == link.filename:
            if known.sha256:
                return known.sha256
            links[position] = dataclasses.replace(known, sha256=sha256)
            recorded = [item.to_json() for item in links]
            store.put_mirror_page(conn, dataclasses.replace(page, links=recorded))
            break
    return sha256


def _went_backwards(record: IndexRecord, stored: MirrorPage | None, page: MirrorPage) -> bool:
    if mirror_config(record).mirror_ignore_serial_header or stored is None:
        return False
    return bool(stored.upstream_serial and page.upstream_serial) and (
        (page.upstream_serial or 0) < (stored.upstream_serial or 0)
    )


def _int(text: str | None) -> int | None:
    try:
        return int(text) if text else None
    except ValueError:
        return None


def _told(exc: Exception) -> str:
    """What a client may read of a failure: our own words, never the upstream's."""
    return exc.message if isinstance(exc, UpstreamUnavailable) else NO_ANSWER


def _describe(problem: object) -> str:
    if isinstance(problem, PackyardError):
        return problem.message
    if isinstance(problem, TimeoutError):
        return "timed out"
    if isinstance(problem, BaseException):
        return f"{type(problem).__name__}: {problem}" if str(problem) else type(problem).__name__
    return str(problem)


def _check_mirrored_name(project: str) -> None:
    """No upstream request (nor anything remembered) for a name no project can have."""
    try:
        if len(project) > MAX_PROJECT_NAME:
            raise InvalidInput("too long")
        check_project_name(project)
    except InvalidInput as exc:
        raise NotFound(f"no project {project[:MAX_PROJECT_NAME]!a}: not a valid name") from exc


def _prune(remembered: dict[tuple[int, str], V], keep: Callable[[V], bool]) -> None:
    """Bound a per-project memory: past MAX_REMEMBERED entries drop the expired ones, and if
    that is not enough, all of them (each is only a saved upstream request)."""
    if len(remembered) < MAX_REMEMBERED:
        return
    for key in [key for key, value in remembered.items() if not keep(value)]:
        del remembered[key]
    if len(remembered) >= MAX_REMEMBERED:
        remembered.clear()
