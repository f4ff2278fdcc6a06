"""Trust on first use: a file its upstream lists without a sha256 is held to the hash of the
first copy this mirror fetched, kept beside its link, and every later copy must match it. And a
file once cached keeps its hash whatever its upstream declares later (a release never changes).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable

from sqlalchemy import Connection

from packyard.core.mirror import MirrorLink, keep_known_hashes
from packyard.core.models import FileRecord, IndexRecord, MirrorPage
from packyard.storage import store


def with_hashes_known(
    page: MirrorPage, stored: MirrorPage | None, cached: Iterable[FileRecord] = ()
) -> MirrorPage:
    """`page` with the hashes this mirror holds to (see keep_known_hashes): of files its
    upstream lists without one, and of files it cached; unchanged, and cheaply, when neither."""
    before = stored.links if stored else []
    cached = list(cached)
    if not cached and not any(data.get("trusted_on_first_use") for data in (*page.links, *before)):
        return page
    fresh = [MirrorLink.from_json(data) for data in page.links]
    known = [MirrorLink.from_json(data) for data in before]
    kept = keep_known_hashes(fresh, known, cached)
    return dataclasses.replace(page, links=[link.to_json() for link in kept])


def with_hashes_stored(conn: Connection, page: MirrorPage) -> MirrorPage:
    """with_hashes_known, against what the database holds now (inside the write that stores
    `page`)."""
    stored = store.get_mirror_page(conn, page.index_id, page.project)
    files = store.project_files(conn, page.index_id, page.project)
    return with_hashes_known(page, stored, files)


def trust_first_use(
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
