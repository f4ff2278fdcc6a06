"""Content-addressed file storage: blobs/ab/cd/<sha256>, written temp -> sync -> rename.

A blob becomes visible only once complete and verified; a crash leaves at most a temp file,
which `recover_temp_files` settles at start-up. Identical content is stored once.
"""

from __future__ import annotations

import contextlib
import ctypes
import errno
import hashlib
import os
import re
import tempfile
import threading
from collections.abc import Callable, Iterator
from datetime import timedelta
from pathlib import Path
from types import TracebackType
from typing import NamedTuple

from packyard.errors import StorageFull

_SHA256 = re.compile(r"[0-9a-f]{64}")
_NO_SPACE = (errno.ENOSPC, errno.EDQUOT)
# Blobs whose hash was checked, remembered per process (see BlobStore.verify).
VERIFIED_MEMORY = 65536


def is_blob_name(name: str) -> bool:
    """Is `name` a sha256 hex digest, the name of every blob?"""
    return _SHA256.fullmatch(name) is not None


def storage_full() -> StorageFull:
    return StorageFull(
        "the server has no disk space left to store this; nothing was stored."
        " Ask the server's administrator to free space, then try again."
    )


@contextlib.contextmanager
def disk_full_as_error() -> Iterator[None]:
    """A write that found no space is a `StorageFull` (507), not an OSError (500)."""
    try:
        yield
    except OSError as exc:
        if exc.errno in _NO_SPACE:
            raise storage_full() from exc
        raise


class BlobProblem(Exception):
    """A stored blob is missing, or its bytes are not what its name (their sha256) says."""

    def __init__(self, path: Path, problem: str) -> None:
        super().__init__(f"{path} {problem}")
        self.path = path
        self.problem = problem


class StoredBlob(NamedTuple):
    """A blob as its store lists it: its name (a sha256, unless something else put a file
    there), size, last change (epoch seconds) and where it is (a path or an object key)."""

    name: str
    size: int
    modified: float
    location: str


class BlobWriter:
    """Receives a blob's bytes into a temp file while hashing them."""

    def __init__(self, store: BlobStore) -> None:
        self._store = store
        # Unbuffered: callers hand over large chunks, and a file object costs system calls.
        with disk_full_as_error():
            self._fd, name = tempfile.mkstemp(dir=store.temp_dir, prefix="upload-")
        self.temp_path = Path(name)
        self._hash = hashlib.sha256()
        self._committed = False
        self.size = 0
        self.sha256 = ""

    def write(self, chunk: bytes) -> None:
        view = memoryview(chunk)
        with disk_full_as_error():
            while view:
                view = view[os.write(self._fd, view) :]
        self._hash.update(chunk)
        self.size += len(chunk)

    def _close(self) -> None:
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1

    def finish(self, durable: bool = True) -> str:
        """Close the temp file, durably unless told; return its sha256 (not yet stored)."""
        self._close()
        if durable:
            with disk_full_as_error():
                self._store.group_sync.wait()
        self.sha256 = self._hash.hexdigest()
        return self.sha256

    def commit(self, durable: bool = True) -> str:
        """Move the finished temp file into place under its hash (durable=False: the caller
        makes the entry durable itself, with `BlobStore.sync_entry()` or `BlobStore.sync()`)."""
        if not self.sha256:
            self.finish(durable)
        with disk_full_as_error():
            adopted = self._store.adopt(self.temp_path, self.sha256, durable)
        self._committed = True
        if adopted is not None:  # its hash was computed from the bytes as they were written
            self._store.remember_verified(self.sha256, adopted)
        return self.sha256

    def abort(self) -> None:
        self._close()
        if not self._committed:
            self.temp_path.unlink(missing_ok=True)

    def __enter__(self) -> BlobWriter:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        # Whatever was not committed is thrown away.
        self.abort()


class GroupSync:
    """Writers that need their data on disk share file-system syncs (group commit).

    A flush to disk costs about the same for one file as for many, so each caller waits for
    the first sync that *starts* after it asked; concurrent uploads then share one.
    """

    def __init__(self, directory: Path) -> None:
        self._fd = os.open(directory, os.O_RDONLY)
        self._changed = threading.Condition()
        self._started = 0
        self._finished = 0
        self._running = False

    def wait(self) -> None:
        with self._changed:
            needed = self._started + 1
            while self._finished < needed:
                if self._running:
                    self._changed.wait()
                    continue
                self._running = True
                self._started += 1
                generation = self._started
                self._changed.release()
                try:
                    _syncfs(self._fd)
                finally:
                    self._changed.acquire()
                    self._running = False
                    self._finished = generation
                    self._changed.notify_all()

    def close(self) -> None:
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1


class BlobStore:
    """Blobs on the local file system, addressed by sha256."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.temp_dir = root / "tmp"
        self.temp_dir.mkdir(parents=True, exist_ok=True)
        self.group_sync = GroupSync(self.temp_dir)
        self._verified: dict[str, tuple[int, ...]] = {}
        self._verified_lock = threading.Lock()

    def path(self, sha256: str) -> Path:
        """Where the blob's bytes can be read on this host (a store with a remote copy
        brings it here first; a blob stored nowhere gets a path that does not exist)."""
        return self.local_path(sha256)

    def signed_url(self, sha256: str, expires_in: timedelta) -> str | None:
        """A URL a client can fetch the blob's bytes from directly for `expires_in`; None
        when the store has no such thing (files on this host's disk)."""
        return None

    def local_path(self, sha256: str) -> Path:
        """The blob's place under `root`, whether or not it is there."""
        if not _SHA256.fullmatch(sha256):
            raise ValueError(f"not a sha256 hex digest: {sha256!r}")
        return self.root / sha256[:2] / sha256[2:4] / sha256

    def exists(self, sha256: str) -> bool:
        return self.local_path(sha256).is_file()

    def writer(self) -> BlobWriter:
        return BlobWriter(self)

    def check(self) -> None:
        """Raises OSError unless blobs can be written here (readiness probes)."""
        if not os.access(self.temp_dir, os.W_OK | os.X_OK):
            raise PermissionError(f"cannot write to {self.temp_dir}")

    def put_bytes(self, data: bytes, durable: bool = True) -> str:
        """Store `data`; its sha256."""
        with self.writer() as writer:
            writer.write(data)
            return writer.commit(durable)

    def read_bytes(self, sha256: str) -> bytes:
        return self.path(sha256).read_bytes()

    def adopt(self, temp_path: Path, sha256: str, durable: bool = True) -> os.stat_result | None:
        """Rename a complete, fsynced temp file into place (or drop it if already stored);
        the placed file's stat, None when it was stored already."""
        final = self.local_path(sha256)
        if final.exists():
            temp_path.unlink(missing_ok=True)
            return None
        try:
            os.replace(temp_path, final)
        except FileNotFoundError:  # the first blob under this prefix
            final.parent.mkdir(parents=True, exist_ok=True)
            os.replace(temp_path, final)
        if durable:
            _fsync_dir(final.parent)
        return final.stat()

    def verify(self, sha256: str, size: int | None = None, rehash: bool = False) -> os.stat_result:
        """The blob's stat once it is checked: present, `size` bytes long (every call: one
        stat), and hashing to its name (once per file identity and process: a file changed
        in place gets a new ctime, so it is hashed again; `rehash`: every call). Raises
        `BlobProblem`."""
        path = self.path(sha256)
        try:
            stat = path.stat()
        except FileNotFoundError:
            raise BlobProblem(path, "is missing") from None
        if size is not None and stat.st_size != size:
            raise BlobProblem(path, f"holds {stat.st_size} bytes, not the {size} stored")
        if rehash or self._verified.get(sha256) != _identity(stat):
            actual = file_sha256(path)
            if actual != sha256:
                raise BlobProblem(path, f"has the sha256 {actual}: its bytes were changed")
            self.remember_verified(sha256, stat)
        return stat

    def remember_verified(self, sha256: str, stat: os.stat_result) -> None:
        with self._verified_lock:
            if len(self._verified) >= VERIFIED_MEMORY:
                del self._verified[next(iter(self._verified))]  # the oldest
            self._verified[sha256] = _identity(stat)

    def sync_entry(self, sha256: str) -> None:
        """Make a blob's directory entry durable (after `adopt(..., durable=False)`)."""
        _fsync_dir(self.local_path(sha256).parent)

    def sync(self) -> None:
        """Make blobs stored with durable=False durable: one flush for a bulk of them."""
        os.sync()

    def delete(self, sha256: str) -> None:
        self.local_path(sha256).unlink(missing_ok=True)

    def removal(self) -> BlobRemoval:
        """What a write transaction uses to remove the blobs its rows let go of."""
        return BlobRemoval(self)

    def stored(self) -> Iterator[StoredBlob]:
        """Every file under the blob directories (the temp dir aside), whatever its name."""
        for path in self._stored_paths():
            stat = path.stat()
            yield StoredBlob(path.name, stat.st_size, stat.st_mtime, str(path))

    def remove_stored(self, blob: StoredBlob) -> None:
        """Remove what `stored()` listed (an orphan), whatever its name."""
        Path(blob.location).unlink(missing_ok=True)

    def _stored_paths(self) -> Iterator[Path]:
        for first in sorted(self.root.iterdir()):
            if first == self.temp_dir or not first.is_dir():
                continue
            for second in sorted(first.iterdir()):
                if second.is_dir():
                    yield from sorted(path for path in second.iterdir() if path.is_file())

    def recover_temp_files(self, still_referenced: Callable[[set[str]], set[str]]) -> int:
        """Settle what interrupted writes left in the temp dir; returns how many files.

        A rename into place that a power cut lost leaves the complete blob behind under its
        temp name (uploads sync the file, not its directory); if a row points at it, it is
        put in place. Everything else (partial uploads, blobs set aside for removal that no
        row needs) is deleted. Call only when no write is running.
        """
        leftovers = [path for path in self.temp_dir.iterdir() if path.is_file()]
        by_hash = {file_sha256(path): path for path in leftovers}
        needed = still_referenced(set(by_hash))
        for sha, path in by_hash.items():
            if sha in needed and not self.exists(sha):
                self.adopt(path, sha)
            else:
                path.unlink(missing_ok=True)
        return len(leftovers)

    def remove_temp_files(self) -> int:
        """Clear what interrupted writes left behind; call only when no write is running."""
        count = 0
        for leftover in self.temp_dir.iterdir():
            leftover.unlink(missing_ok=True)
            count += 1
        return count


_libc = ctypes.CDLL(None, use_errno=True)


def _syncfs(fd: int) -> None:
    """Flush the whole file system holding `fd` (Linux syncfs(2)); os.sync() elsewhere."""
    syncfs = getattr(_libc, "syncfs", None)
    if syncfs is None:
        os.sync()
        return
    if syncfs(fd) != 0:
        error = ctypes.get_errno()
        raise OSError(error, os.strerror(error))


def _identity(stat: os.stat_result) -> tuple[int, ...]:
    """What changes whenever a file's bytes do (ctime cannot be set back by utime)."""
    return (stat.st_dev, stat.st_ino, stat.st_size, stat.st_mtime_ns, stat.st_ctime_ns)


def file_sha256(path: Path) -> str:
    with path.open("rb") as handle:
        return hashlib.file_digest(handle, "sha256").hexdigest()


def _fsync_dir(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class BlobRemoval:
    """Removes blobs no longer referenced, undoably until the surrounding transaction commits.

    Blobs are moved aside while the write lock is held; `finish()` deletes them once the
    rows are gone for good, `undo()` puts them back if the transaction failed.
    """

    def __init__(self, store: BlobStore) -> None:
        self._store = store
        self._moved: list[tuple[Path, Path]] = []

    def remove(self, sha256: str) -> None:
        source = self._store.local_path(sha256)
        if not source.exists():
            return
        aside = self._store.temp_dir / f"trash-{sha256}"
        os.replace(source, aside)
        self._moved.append((aside, source))

    def finish(self) -> None:
        for aside, _source in self._moved:
            aside.unlink(missing_ok=True)
        self._moved.clear()

    def undo(self) -> None:
        for aside, source in self._moved:
            os.replace(aside, source)
        self._moved.clear()
