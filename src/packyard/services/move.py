"""Moving a server between topologies (`packyard move`): SQLite + files to PostgreSQL + an
object store, and back.

Blobs first, then rows. Every blob a row names is read from the source, hashed on the way and
stored in the target only if it hashes to its name; one the target already holds (an earlier,
interrupted run) is verified there and skipped. Then every row is copied in one transaction of
the target (storage/moving.py), which must be empty: a move that fails leaves an empty target
database, and running it again resumes with the blobs already there. Last, every blob a row
names is checked to be in the target.
"""

from __future__ import annotations

import dataclasses
import hashlib
import os
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path

from packyard.config import Settings
from packyard.errors import Conflict, InvalidInput
from packyard.services import open_blob_store
from packyard.storage import moving, store
from packyard.storage.blobs import BlobProblem, BlobStore
from packyard.storage.db import Database

CHUNK = 1024 * 1024
# (what, done, total): "blobs" then "rows".
Progress = Callable[[str, int, int], None]


@dataclasses.dataclass(frozen=True)
class MoveReport:
    blobs_copied: int
    blobs_present: int  # already in the target, verified
    bytes_copied: int
    rows: int


@dataclasses.dataclass
class Side:
    """One end of a move: its database and its blob store."""

    db: Database
    blobs: BlobStore

    def close(self) -> None:
        self.db.close()


def open_side(settings: Settings) -> Side:
    settings.serverdir.mkdir(parents=True, exist_ok=True)
    blobs = open_blob_store(settings)
    return Side(Database(settings.database_url, settings.serverdir / "serial", blobs), blobs)


def move(source: Settings, target: Settings, progress: Progress) -> MoveReport:
    """Copy the server of `source` into `target` (see module doc)."""
    if (source.database_url, source.blobs) == (target.database_url, target.blobs):
        raise InvalidInput("the source and the target are the same storage")
    origin, destination = open_side(source), open_side(target)
    try:
        with destination.db.engine.connect() as conn:
            if moving.row_count(conn):
                raise Conflict(
                    "the target database is not empty: a move only fills an empty one"
                    " (its blobs may be there already: they are checked and kept)"
                )
        with origin.db.read() as conn:
            shas = sorted(store.all_referenced_blobs(conn) | store.mirror_metadata_blobs(conn))
        copied, present, size = _copy_blobs(origin.blobs, destination.blobs, shas, progress)
        with origin.db.read() as reading, destination.db.engine.begin() as writing:
            total = moving.row_count(reading)
            rows = moving.copy_rows(reading, writing, lambda _t, n: progress("rows", n, total))
        missing = [sha for sha in shas if not destination.blobs.exists(sha)]
        if missing:
            raise InvalidInput(f"{len(missing)} blob(s) are not in the target, e.g. {missing[0]}")
        _copy_secret(source.serverdir, target.serverdir)
        return MoveReport(copied, present, size, rows)
    finally:
        origin.close()
        destination.close()


def _copy_blobs(
    source: BlobStore, target: BlobStore, shas: list[str], progress: Progress
) -> tuple[int, int, int]:
    copied = present = size = 0
    for done, sha in enumerate(shas, 1):
        if target.exists(sha) and _verified(target, sha):
            present += 1
        else:
            size += _copy_blob(source, target, sha)
            copied += 1
        progress("blobs", done, len(shas))
    target.sync()
    return copied, present, size


def _verified(store: BlobStore, sha: str) -> bool:
    try:
        store.verify(sha, rehash=True)
    except BlobProblem:
        return False
    return True


def _copy_blob(source: BlobStore, target: BlobStore, sha: str) -> int:
    """Copy one blob, hashing it on the way; InvalidInput when its bytes are not its name's."""
    digest = hashlib.sha256()
    fd, name = tempfile.mkstemp(dir=target.temp_dir, prefix="move-")
    temp = Path(name)
    try:
        with open(fd, "wb") as handle, source.path(sha).open("rb") as reading:
            while chunk := reading.read(CHUNK):
                digest.update(chunk)
                handle.write(chunk)
            handle.flush()
            os.fsync(handle.fileno())  # durable before the rows that name it commit
        if digest.hexdigest() != sha:
            raise InvalidInput(f"blob {sha} in the source holds other bytes: nothing was moved")
        size = temp.stat().st_size
        target.adopt(temp, sha)
        return size
    except FileNotFoundError:
        raise InvalidInput(f"blob {sha} is missing in the source: run `packyard fsck`") from None
    finally:
        temp.unlink(missing_ok=True)


def _copy_secret(source_dir: Path, target_dir: Path) -> None:
    """The token-signing key, so that login tokens stay valid on the target."""
    secret, copy = source_dir / "secret", target_dir / "secret"
    if secret.is_file() and not copy.exists() and source_dir != target_dir:
        shutil.copy2(secret, copy)
