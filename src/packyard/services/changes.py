"""Write transactions that may leave blobs unreferenced, and remove those blobs safely."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from typing import Any

from sqlalchemy import Connection

from packyard.core.models import FileRecord
from packyard.storage import store
from packyard.storage.blobs import BlobRemoval, BlobStore
from packyard.storage.db import Database


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
            if change.released:
                still_used = store.referenced_blobs(conn, change.released)
                for sha in change.released - still_used:
                    removal.remove(sha)
    except BaseException:
        removal.undo()
        raise
    removal.finish()
