"""Stored files checked before they are served: a missing or damaged blob is an error that
names the file (and, in the log, the blob), never a 200 with the wrong bytes."""

from __future__ import annotations

import logging
import os

from packyard.errors import Damaged
from packyard.services.packages import StoredFile
from packyard.storage.blobs import BlobProblem, BlobStore

log = logging.getLogger("packyard.integrity")


def checked_file(blobs: BlobStore, found: StoredFile, url_path: str) -> os.stat_result:
    """The stat of `found`'s blob once its size and sha256 are checked (`BlobStore.verify`);
    `Damaged` when it is missing or holds other bytes."""
    record = found.record
    name = f"{record.filename}.metadata" if found.is_metadata else record.filename
    sha = found.path.name
    try:
        return blobs.verify(sha, None if found.is_metadata else record.size)
    except BlobProblem as problem:
        log.error("damaged file %s (%s): blob %s", url_path, name, problem)
        state = "missing" if problem.problem == "is missing" else "damaged"
        raise Damaged(
            f"{name}: the server's stored copy of this file is {state}, so it is not served."
            " The server's administrator can find and repair such files with `packyard fsck`."
        ) from None
