"""Write transactions that may leave blobs unreferenced, and remove those blobs safely."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import Any, TypeVar

from sqlalchemy import Connection

from packyard.core.models import FileRecord
from packyard.storage import store
from packyard.storage.blobs import BlobRemoval, BlobStore
from packyard.storage.db import Database

T = TypeVar("T")


@dataclasses.dataclass
class Change:
    """An open write transaction, and the blobs its deleted rows pointed at."""

    conn: Connection
    released: set[str] = dataclasses.field(default_factory=set)

    def release(self, files: Iterable[FileRecord]) -> None:
        """Note files whose rows this transaction deletes or replaces."""
        for file in files:
            self.released.add(file.sha256)
            if file.metadata_sha256:
                self.released.add(file.metadata_sha256)


def _remove_released(change: Change, removal: BlobRemoval) -> None:
    if change.released:
        still_used = store.referenced_blobs(change.conn, change.released)
        for sha in change.released - still_used:
            removal.remove(sha)


@contextmanager
def changing(db: Database, blobs: BlobStore, what: str, **detail: Any) -> Iterator[Change]:
    """A write transaction that removes the blobs no row points at any more when it ends.

    Removal happens under the write lock (so no upload can adopt a blob being removed) and is
    undone if the transaction fails (so no row is ever left pointing at a missing blob).
    """
    removal = BlobRemoval(blobs)
    try:
        with db.write(what, **detail) as conn:
            change = Change(conn)
            yield change
            _remove_released(change, removal)
    except BaseException:
        removal.undo()
        raise
    removal.finish()


def changing_each(
    db: Database,
    blobs: BlobStore,
    changes: Sequence[tuple[str, Mapping[str, Any], Callable[[Change], T]]],
) -> list[T | Exception]:
    """Several changes `(what, detail, work)` in one transaction (group commit), each made as
    `changing` makes one alone; a change that raises is undone alone, its exception in its
    place. If the transaction itself fails, every change is undone and the error raised."""
    removals: list[BlobRemoval] = []

    def each(work: Callable[[Change], T]) -> Callable[[Connection], T]:
        def run(conn: Connection) -> T:
            change, removal = Change(conn), BlobRemoval(blobs)
            try:
                result = work(change)
                _remove_released(change, removal)
            except BaseException:
                removal.undo()
                raise
            removals.append(removal)
            return result

        return run

    try:
        results = db.write_each([(what, detail, each(work)) for what, detail, work in changes])
    except BaseException:
        for removal in reversed(removals):
            removal.undo()
        raise
    for removal in removals:
        removal.finish()
    return results
