"""`packyard fsck`: does every row's blob exist with the right bytes, is every blob used?

Checks every file row (release files, doc zips, toxresults, cached mirror files), its PEP 658
sidecar and every mirror's stored project list against the blob store, hashing each blob in
full; then lists the blobs no row points at. `repair` removes those orphans, rebuilds PEP 658
sidecars from their wheels and drops damaged cached mirror files (fetched again on their
next request). Damaged uploaded files cannot be rebuilt: they are reported, to be restored
from a backup.
"""

from __future__ import annotations

import dataclasses
import hashlib
import time
from collections.abc import Callable

from packyard.core.dists import parse_dist_filename
from packyard.core.models import FileRecord, IndexRecord
from packyard.errors import PackyardError
from packyard.services.archives import read_core_metadata
from packyard.services.sources import Sources
from packyard.storage import store
from packyard.storage.blobs import BlobProblem, BlobStore, StoredBlob
from packyard.storage.db import Database

# An unreferenced blob this young may be one a running server wrote just before taking the
# write lock to store its row (PEP 658 sidecars, mirror name lists): repair leaves it alone.
ORPHAN_GRACE_SECONDS = 600.0
Report = Callable[[str], None]


@dataclasses.dataclass
class FsckResult:
    files: int = 0
    bytes: int = 0
    damaged: list[str] = dataclasses.field(default_factory=list)  # not repaired
    repaired: list[str] = dataclasses.field(default_factory=list)
    orphans: list[StoredBlob] = dataclasses.field(default_factory=list)  # left stored
    removed_orphans: int = 0

    @property
    def clean(self) -> bool:
        return not self.damaged and not self.orphans

    def __str__(self) -> str:
        return (
            f"checked {self.files} files ({self.bytes} bytes): {len(self.damaged)} damaged or"
            f" missing, {len(self.repaired)} repaired, {len(self.orphans)} orphaned blobs,"
            f" {self.removed_orphans} orphaned blobs removed"
        )


@dataclasses.dataclass(frozen=True)
class _Row:
    index: IndexRecord
    file: FileRecord

    @property
    def name(self) -> str:
        return f"{self.index.full_name}/{self.file.relpath}"


class Fsck:
    """One check of a server dir's database against its blob store."""

    def __init__(self, db: Database, blobs: BlobStore, sources: Sources, report: Report) -> None:
        self._db = db
        self._blobs = blobs
        self._sources = sources
        self._report = report
        self.result = FsckResult()

    def run(self, repair: bool) -> FsckResult:
        rows, lists = self._read_rows()
        for row in rows:
            self._check_file(row, repair)
        for index, names_sha in lists:
            self._check_blob(names_sha, None, f"{index.full_name} project list", None)
        self._check_orphans(repair)
        return self.result

    def _read_rows(self) -> tuple[list[_Row], list[tuple[IndexRecord, str]]]:
        with self._db.read() as conn:
            rows: list[_Row] = []
            lists: list[tuple[IndexRecord, str]] = []
            for index in store.list_indexes(conn):
                rows.extend(_Row(index, file) for file in store.index_files(conn, index.id))
                listing = store.get_mirror_list(conn, index.id)
                if listing is not None:
                    lists.append((index, listing.names_sha256))
        return rows, lists

    def _check_file(self, row: _Row, repair: bool) -> None:
        self.result.files += 1
        self.result.bytes += row.file.size
        intact = self._check_blob(row.file.sha256, row.file.size, row.name, None)
        if not intact and repair and self._sources.source_for(row.index).files_are_copies:
            self._drop_cached(row)
            return
        sidecar = row.file.metadata_sha256
        if sidecar:
            rebuild = (lambda: self._rebuild_sidecar(row)) if repair and intact else None
            self._check_blob(sidecar, None, f"{row.name}.metadata", rebuild)

    def _check_blob(
        self, sha: str, size: int | None, name: str, rebuild: Callable[[], None] | None
    ) -> bool:
        """Whether the blob is intact; a problem is reported, and rebuilt when possible."""
        try:
            self._blobs.verify(sha, size, rehash=True)
            return True
        except BlobProblem as problem:
            self._report(f"damaged: {name}: blob {problem}")
            if rebuild is None:
                self.result.damaged.append(name)
                return False
        try:
            rebuild()
        except PackyardError as exc:
            self._report(f"  cannot rebuild {name}: {exc.message}")
            self.result.damaged.append(name)
            return False
        self._report(f"  rebuilt {name}")
        self.result.repaired.append(name)
        return False

    def _rebuild_sidecar(self, row: _Row) -> None:
        dist = parse_dist_filename(row.file.filename)
        data = read_core_metadata(self._blobs.path(row.file.sha256), dist)
        if hashlib.sha256(data).hexdigest() != row.file.metadata_sha256:
            raise PackyardError("the wheel's METADATA does not hash to the stored sidecar's")
        self._blobs.delete(row.file.metadata_sha256 or "")
        self._blobs.put_bytes(data)

    def _drop_cached(self, row: _Row) -> None:
        """A damaged cached mirror file goes (row and blob); its next request fetches it."""
        with self._db.write("fsck-drop-cached", index=row.index.full_name) as conn:
            current = store.get_file(conn, row.index.id, row.file.filename)
            if current is not None and current.sha256 == row.file.sha256:
                store.delete_files(conn, [current.id])  # its blob goes with it, if unshared
        self._report(f"  dropped the cached copy of {row.name}: fetched again when asked for")
        self.result.repaired.append(row.name)

    def _check_orphans(self, repair: bool) -> None:
        with self._db.read() as conn:
            used = store.all_referenced_blobs(conn) | store.mirror_metadata_blobs(conn)
        unused = [blob for blob in self._blobs.stored() if blob.name not in used]
        if not repair:
            self._note_orphans(unused)
            return
        # Again under the write lock: a blob stored since the read may have its row now.
        with self._db.write("fsck-orphans") as conn:
            still = store.referenced_blobs(conn, {blob.name for blob in unused})
            young = time.time() - ORPHAN_GRACE_SECONDS
            for blob in unused:
                if blob.name in still:
                    continue
                if blob.modified > young:
                    self._note_orphans([blob], " (recent: left for a running server)")
                    continue
                self._blobs.remove_stored(blob)
                self.result.removed_orphans += 1
                self._report(f"removed orphaned blob {blob.location}")

    def _note_orphans(self, blobs: list[StoredBlob], why: str = "") -> None:
        for blob in blobs:
            self._report(f"orphaned blob: {blob.location} ({blob.size} bytes){why}")
            self.result.orphans.append(blob)
