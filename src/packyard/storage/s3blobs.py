"""Blobs in an S3-compatible bucket (AWS S3, Ceph RGW, SeaweedFS, moto), for many hosts.

The bucket is the truth, under `<prefix>/ab/cd/<sha256>` like the file store's layout. The
local blob dir becomes a cache of the hot blobs, bounded in bytes, so repeated downloads are
served from this host's disk. A blob goes to the bucket before the row that names it commits
(an object appears whole or not at all), and comes back verified: bytes that do not hash to
their name never reach a client, whatever the bucket holds. Credentials and endpoint come from
the standard AWS environment (AWS_ENDPOINT_URL, AWS_ACCESS_KEY_ID, ...), read by obstore.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import tempfile
import threading
import time
from collections import OrderedDict
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from urllib.parse import urlsplit

import obstore
from obstore.exceptions import AlreadyExistsError
from obstore.store import S3Store

from packyard.errors import ConfigError, StorageUnavailable
from packyard.storage.blobs import (
    BlobProblem,
    BlobRemoval,
    BlobStore,
    StoredBlob,
    disk_full_as_error,
    is_blob_name,
)

# Network patience per request, and retries, so that a stopped store answers a clear 503
# within seconds instead of hanging a request.
CLIENT_OPTIONS = {"timeout": "30s", "connect_timeout": "3s"}
RETRIES = {
    "max_retries": 2,
    "backoff": {
        "init_backoff": timedelta(milliseconds=100),
        "max_backoff": timedelta(seconds=1),
        "base": 2,
    },
    "retry_timeout": timedelta(seconds=5),
}
CHUNK = 1024 * 1024
# Seconds a cached blob just checked for a download is kept whatever the budget (see
# CacheBudget.over_budget).
GRACE_SECONDS = 60.0


def parse_blobs_url(url: str) -> tuple[str, str]:
    """(bucket, prefix) of `s3://BUCKET[/PREFIX]`; ConfigError for anything else."""
    parts = urlsplit(url)
    if parts.scheme != "s3" or not parts.netloc:
        raise ConfigError(f"blobs must be 's3://BUCKET/PREFIX', not {url!r}")
    return parts.netloc, parts.path.strip("/")


def s3_store(url: str) -> S3Store:
    bucket, prefix = parse_blobs_url(url)
    endpoint = os.environ.get("AWS_ENDPOINT_URL", "")
    options = dict(CLIENT_OPTIONS, allow_http=endpoint.startswith("http://"))
    return S3Store(
        bucket,
        prefix=prefix or None,
        client_options=options,  # type: ignore[arg-type]
        retry_config=RETRIES,  # type: ignore[arg-type]
    )


def unavailable(exc: Exception) -> StorageUnavailable:
    return StorageUnavailable(
        "the server's object storage cannot be reached; nothing was changed. Try again"
        f" shortly ({type(exc).__name__})"
    )


class S3BlobStore(BlobStore):
    """The bucket holds every blob; `root` caches up to `cache_bytes` of them (see module)."""

    def __init__(self, root: Path, bucket: S3Store, cache_bytes: int) -> None:
        super().__init__(root)
        self.bucket = bucket
        self.cache = CacheBudget(cache_bytes)
        self._locks: dict[str, tuple[threading.Lock, int]] = {}
        self._locks_lock = threading.Lock()
        for path in self._stored_paths():  # what a previous run cached: not in use now
            self.cache.add(path.name, path.stat().st_size, used_at=0.0)
        self._evict()

    def key(self, sha256: str) -> str:
        """The object key under the prefix (the same layout as the file store's)."""
        return self.local_path(sha256).relative_to(self.root).as_posix()  # checks the sha

    # --- reading: through the local cache --------------------------------------------------

    def path(self, sha256: str) -> Path:
        local = self.local_path(sha256)
        if not local.is_file():
            with self._fetching(sha256):  # one download per blob, whoever else waits for it
                if not local.is_file():
                    self._fetch(sha256)
        self.cache.touch(sha256)
        return local

    @contextlib.contextmanager
    def _fetching(self, sha256: str) -> Iterator[None]:
        with self._locks_lock:
            lock, users = self._locks.get(sha256, (threading.Lock(), 0))
            self._locks[sha256] = (lock, users + 1)
        try:
            with lock:
                yield
        finally:
            with self._locks_lock:
                lock, users = self._locks[sha256]
                if users == 1:
                    del self._locks[sha256]
                else:
                    self._locks[sha256] = (lock, users - 1)

    def exists(self, sha256: str) -> bool:
        if self.local_path(sha256).is_file():
            return True
        try:
            obstore.head(self.bucket, self.key(sha256))
        except FileNotFoundError:
            return False
        except Exception as exc:
            raise unavailable(exc) from exc
        return True

    def signed_url(self, sha256: str, expires_in: timedelta) -> str | None:
        """A presigned GET of the blob's object (signed locally: no request to the store)."""
        try:
            return obstore.sign(self.bucket, "GET", self.key(sha256), expires_in)
        except Exception as exc:
            raise unavailable(exc) from exc

    def check(self) -> None:
        """Raises StorageUnavailable unless the bucket answers (a HEAD of a key never used)."""
        super().check()
        try:
            obstore.head(self.bucket, "health-probe")
        except FileNotFoundError:
            return
        except Exception as exc:
            raise unavailable(exc) from exc

    def _fetch(self, sha256: str) -> None:
        """Bring a blob into the cache, verified; nothing when the bucket has none."""
        digest = hashlib.sha256()
        with disk_full_as_error():
            fd, name = tempfile.mkstemp(dir=self.temp_dir, prefix="fetch-")
        temp = Path(name)
        try:
            with os.fdopen(fd, "wb") as handle:
                try:
                    for chunk in obstore.get(self.bucket, self.key(sha256)).stream(CHUNK):
                        digest.update(chunk)
                        with disk_full_as_error():
                            handle.write(chunk)
                except FileNotFoundError:
                    return
                except Exception as exc:
                    raise unavailable(exc) from exc
            if digest.hexdigest() != sha256:
                raise BlobProblem(self.local_path(sha256), "in the object store has other bytes")
            stat = super().adopt(temp, sha256, durable=False)
            if stat is not None:
                self.remember_verified(sha256, stat)
                self.cache.add(sha256, stat.st_size)
                self._evict()
        finally:
            temp.unlink(missing_ok=True)

    # --- writing: to the bucket first ------------------------------------------------------

    def adopt(self, temp_path: Path, sha256: str, durable: bool = True) -> os.stat_result | None:
        """Upload the complete temp file (unless the bucket has it), then keep it cached."""
        try:
            obstore.put(self.bucket, self.key(sha256), temp_path, mode="create")
        except AlreadyExistsError:
            pass  # content-addressed: the same bytes
        except Exception as exc:
            temp_path.unlink(missing_ok=True)
            raise unavailable(exc) from exc
        stat = super().adopt(temp_path, sha256, durable=False)
        if stat is not None:
            self.cache.add(sha256, stat.st_size)
            self._evict()
        return stat

    def sync_entry(self, sha256: str) -> None:
        """Durable once the bucket answered the upload; the cache needs no sync."""

    def sync(self) -> None:
        """As `sync_entry`."""

    def delete(self, sha256: str) -> None:
        try:
            obstore.delete(self.bucket, self.key(sha256))
        except FileNotFoundError:
            pass
        except Exception as exc:
            raise unavailable(exc) from exc
        self.uncache(sha256)

    def uncache(self, sha256: str) -> None:
        super().delete(sha256)
        self.cache.discard(sha256)

    def removal(self) -> BlobRemoval:
        return BucketRemoval(self)

    def stored(self) -> Iterator[StoredBlob]:
        """Every blob under the prefix (the bucket's, not this host's cache). Objects not
        named like a blob are not ours (the prefix may be shared): never listed, never
        removed as orphans."""
        try:
            for batch in obstore.list(self.bucket):
                for entry in batch:
                    key = entry["path"]
                    name = key.rsplit("/", 1)[-1]
                    if not is_blob_name(name) or key != self.key(name):
                        continue
                    modified = entry["last_modified"].timestamp()
                    yield StoredBlob(name, entry["size"], modified, key)
        except Exception as exc:
            raise unavailable(exc) from exc

    def remove_stored(self, blob: StoredBlob) -> None:
        try:
            obstore.delete(self.bucket, blob.location)
        except FileNotFoundError:
            pass
        except Exception as exc:
            raise unavailable(exc) from exc
        self.uncache(blob.name)

    def _evict(self) -> None:
        for sha256 in self.cache.over_budget():
            super().delete(sha256)


class BucketRemoval(BlobRemoval):
    """The cached copy moves aside as in the file store; the bucket's copy goes only once the
    transaction committed (an object store has no rename to undo)."""

    def __init__(self, store: S3BlobStore) -> None:
        super().__init__(store)
        self._bucket_store = store
        self._pending: list[str] = []

    def remove(self, sha256: str) -> None:
        super().remove(sha256)
        self._bucket_store.cache.discard(sha256)
        self._pending.append(sha256)

    def finish(self) -> None:
        super().finish()
        pending, self._pending = self._pending, []
        for sha256 in pending:
            # Unreachable now: left as an orphan, which `packyard fsck --repair` removes.
            with contextlib.suppress(StorageUnavailable):
                self._bucket_store.delete(sha256)

    def undo(self) -> None:
        super().undo()
        self._pending.clear()


class CacheBudget:
    """Which cached blobs to drop first (least recently used) to stay under a byte budget."""

    def __init__(self, budget: int) -> None:
        self.budget = budget
        self.used = 0
        self._sizes: OrderedDict[str, int] = OrderedDict()
        self._used_at: dict[str, float] = {}
        self._lock = threading.Lock()

    def add(self, sha256: str, size: int, used_at: float | None = None) -> None:
        with self._lock:
            self.used += size - self._sizes.pop(sha256, 0)
            self._sizes[sha256] = size
            self._used_at[sha256] = time.monotonic() if used_at is None else used_at

    def touch(self, sha256: str) -> None:
        with self._lock:
            if sha256 in self._sizes:
                self._sizes.move_to_end(sha256)
                self._used_at[sha256] = time.monotonic()

    def discard(self, sha256: str) -> None:
        with self._lock:
            self.used -= self._sizes.pop(sha256, 0)
            self._used_at.pop(sha256, None)

    def over_budget(self) -> list[str]:
        """Take the least recently used entries off until the rest fits. One used in the last
        `GRACE_SECONDS` stays even so: it was just checked for a download that is about to
        open it (an open file outlives its unlinking; a path does not)."""
        dropped: list[str] = []
        recent = time.monotonic() - GRACE_SECONDS
        with self._lock:
            while self.used > self.budget and self._sizes:
                sha256 = next(iter(self._sizes))
                if self._used_at[sha256] > recent:
                    break  # the rest are more recent still
                self.used -= self._sizes.pop(sha256)
                del self._used_at[sha256]
                dropped.append(sha256)
        return dropped
