"""Write transactions as the services name them.

Blob lifetimes are not the caller's business: the database notes every blob a row lets go
of (triggers, migration 0006) and every write transaction removes those no row needs any
more (`Database.write`), whatever was deleted: a file, a version, an index or a user.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import Any, TypeVar

from sqlalchemy import Connection

from packyard.core.models import FileRecord
from packyard.storage.blobs import BlobStore
from packyard.storage.db import Database

T = TypeVar("T")


@dataclasses.dataclass
class Change:
    """An open write transaction."""

    conn: Connection

    def release(self, files: Iterable[FileRecord]) -> None:
        """No longer needed (the database notes released blobs itself); kept for callers."""


@contextmanager
def changing(db: Database, _blobs: BlobStore, what: str, **detail: Any) -> Iterator[Change]:
    """One write transaction (`Database.write`)."""
    with db.write(what, **detail) as conn:
        yield Change(conn)


def changing_each(
    db: Database,
    _blobs: BlobStore,
    changes: Sequence[tuple[str, Mapping[str, Any], Callable[[Change], T]]],
) -> list[T | Exception]:
    """Several changes `(what, detail, work)` in one transaction (`Database.write_each`)."""

    def each(work: Callable[[Change], T]) -> Callable[[Connection], T]:
        return lambda conn: work(Change(conn))

    return db.write_each([(what, detail, each(work)) for what, detail, work in changes])
