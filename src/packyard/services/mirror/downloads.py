"""Mirrored files: fetched once from the upstream for all concurrent readers, verified before
the last bytes are passed on, kept by their hash, and marked when served from the cache.
"""

from __future__ import annotations

import asyncio
import hashlib
import os
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from functools import partial
from pathlib import Path
from typing import NoReturn

from packyard.config import Settings
from packyard.core.dists import parse_dist_filename
from packyard.core.mirror import MirrorLink, parse_upload_time, trusted_directory
from packyard.core.models import FileKind, FileRecord, IndexRecord
from packyard.errors import InvalidInput, NotFound, PackyardError, UpstreamUnavailable
from packyard.services._threads import in_thread
from packyard.services.archives import read_core_metadata
from packyard.services.mirror.trust import trust_first_use
from packyard.services.mirror.upstream import NO_ANSWER, MirrorStats, Upstream, log
from packyard.services.outbound import OutboundFailure, capped_chunks
from packyard.storage import store
from packyard.storage.blobs import BlobStore, BlobWriter
from packyard.storage.db import Database

# A cached file's blob mtime records its last use, refreshed at most this often.
USE_MARK_INTERVAL = 86400.0
CHUNK = 256 * 1024
# Bytes of a download held back from readers until the whole file's hash is verified, so no
# client ever receives a complete file that turns out to be wrong.
HOLDBACK = 64 * 1024
# A finished download stays joinable this long: a request that looked for the cached file just
# before it was stored joins it instead of fetching the file again.
LINGER = 10.0


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


class Downloads:
    """The downloads of one worker: one per (index, file name) in flight or lingering."""

    def __init__(
        self,
        db: Database,
        blobs: BlobStore,
        settings: Settings,
        upstream: Upstream,
        stats: MirrorStats,
    ) -> None:
        self._db = db
        self._blobs = blobs
        self._settings = settings
        self._upstream = upstream
        self._stats = stats
        self._downloads: dict[tuple[int, str], _Download] = {}

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
        self._stats.file_misses += 1
        return self._follow(download)

    def dropped(self, index_id: int, filename: str) -> None:
        """A cached file was dropped: a lingering download of it is not to be joined (the file
        is fetched again). Called from a thread: a dict pop is atomic, and _forget releases
        the lingering hold whether the entry is still there or not."""
        self._downloads.pop((index_id, filename), None)

    def note_served(self, file: FileRecord, path: Path) -> None:
        """Count a cache hit, and mark the blob used today (its mtime; once a day at most)."""
        self._stats.file_hits += 1
        self._stats.bytes_from_cache += file.size
        now = time.time()
        try:
            if now - path.stat().st_mtime > USE_MARK_INTERVAL:
                os.utime(path, (now, now))
        except OSError:
            pass

    def last_used(self, file: FileRecord) -> float:
        """When a cached file was last served (its blob's mtime, see note_served)."""
        try:
            return self._blobs.path(file.sha256).stat().st_mtime
        except OSError:
            return 0.0

    async def core_metadata(self, record: IndexRecord, link: MirrorLink) -> bytes:
        """A wheel's `.metadata` from the upstream, verified and kept by its hash."""
        expected = link.core_metadata_sha256
        if expected and self._blobs.exists(expected):
            return await in_thread(self._blobs.read_bytes, expected)
        if not link.core_metadata or not expected or self._settings.offline:
            raise NotFound("no core metadata for this file")
        url = f"{link.url}.metadata"
        response = await self._upstream.get(record, url, self._settings.outbound_max_page_size)
        if response.status != 200:
            self._upstream.failed(url, f"HTTP {response.status}")
        # Verified before it is kept: a wrong file must leave nothing behind.
        if hashlib.sha256(response.body).hexdigest() != expected:
            self._upstream.failed(url, "sha256 of the metadata file does not match")
        await in_thread(self._blobs.put_bytes, response.body)
        return response.body

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
        try:
            # One host fetches at a time; one that waited copies what the other stored.
            async with self._flight(record, link):
                if not await self._copy_stored(record, link, download):
                    await self._fetch_and_store(record, link, download)
            download.verified = True
            download.readers += 1  # the lingering hold, see _download_done
        except PackyardError as exc:
            download.error = exc
        except (OutboundFailure, OSError) as exc:
            self._upstream.count_failure(link.url, exc)
            download.error = UpstreamUnavailable(f"could not fetch {link.filename}: {NO_ANSWER}")
        finally:
            writer.abort()
            download.finished = True
            await download.notify()
            download.release()

    @asynccontextmanager
    async def _flight(self, record: IndexRecord, link: MirrorLink) -> AsyncIterator[None]:
        """The cross-host single flight of one mirror file (storage: an advisory lock on
        PostgreSQL); waits at most `mirror_flight_wait` for another host's fetch."""
        key = f"mirror-file/{record.id}/{link.filename}"
        flight = self._db.single_flight(key, self._settings.mirror_flight_wait)
        await in_thread(flight.__enter__)
        try:
            yield
        finally:
            await in_thread(flight.__exit__, None, None, None)

    async def _copy_stored(
        self, record: IndexRecord, link: MirrorLink, download: _Download
    ) -> bool:
        """Another host (or worker) stored the file meanwhile: its bytes into the download,
        checked against the stored hash. False when it is not stored."""
        stored = await in_thread(self._stored_file, record.id, link.filename)
        if stored is None:
            return False
        sha256 = await in_thread(self._copy_blob, stored.sha256, download.writer)
        if sha256 != stored.sha256:
            raise UpstreamUnavailable(f"the stored copy of {link.filename} is damaged")
        download.size = download.writer.size
        return True

    def _stored_file(self, index_id: int, filename: str) -> FileRecord | None:
        with self._db.read() as conn:
            return store.get_file(conn, index_id, filename)

    def _copy_blob(self, sha256: str, writer: BlobWriter) -> str:
        with self._blobs.path(sha256).open("rb") as source:
            while chunk := source.read(CHUNK):
                writer.write(chunk)
        return writer.finish(durable=False)

    async def _fetch_and_store(
        self, record: IndexRecord, link: MirrorLink, download: _Download
    ) -> None:
        writer = download.writer
        await self._receive(record, link, download)
        sha256 = await in_thread(writer.finish)
        if link.sha256 and sha256 != link.sha256:
            self._refuse_body(link, link.sha256, sha256)
        refused = await in_thread(self._store_file, record, link, writer)
        if refused is not None:
            self._refuse_body(link, refused, sha256)
        self._stats.bytes_from_upstream += writer.size
        log.info("cached %s from upstream (%d bytes)", link.filename, writer.size)

    async def _receive(self, record: IndexRecord, link: MirrorLink, download: _Download) -> None:
        """The upstream's bytes into the download's temp file, readers woken as they grow."""
        # The declared size is the cap when the page gives one; a setting otherwise.
        cap = link.size if link.size is not None else self._settings.outbound_max_file_size
        async with self._upstream.stream(record, link.url) as response:
            if response.status_code == 404:
                # devpi answers 404 too: the upstream no longer has the file.
                raise NotFound(f"the upstream no longer has {link.filename}")
            if response.status_code != 200:
                self._upstream.failed(link.url, f"HTTP {response.status_code}")
            async for chunk in capped_chunks(response, cap):
                download.writer.write(chunk)
                download.size = download.writer.size
                await download.notify()

    def _refuse_body(self, link: MirrorLink, expected: str, got: str) -> NoReturn:
        told = f"{link.filename} from the upstream does not match its sha256"
        if link.trusted_on_first_use:
            told = (
                f"{link.filename} from the upstream differs from the copy this mirror first"
                f" fetched (sha256 {expected}); the upstream gives no hash, so the first copy"
                " is trusted and other bytes are refused"
            )
        self._upstream.failed(link.url, f"sha256 mismatch: expected {expected}, got {got}", told)

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
                trusted = trust_first_use(conn, record, dist.project, link, writer.sha256)
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
