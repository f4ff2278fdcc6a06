"""All SQL: reads and writes of users, indexes, versions and files over a Connection."""

from __future__ import annotations

import secrets
from collections.abc import Iterable
from typing import Any

from sqlalchemy import Connection, Row, bindparam, delete, func, insert, select, update

from packyard.core.models import (
    FileKind,
    FileRecord,
    IndexRecord,
    MirrorList,
    MirrorPage,
    PageStatus,
    User,
    VersionRecord,
)
from packyard.storage import search
from packyard.storage.tables import (
    files,
    indexes,
    mirror_lists,
    mirror_pages,
    released_blobs,
    settings,
    users,
    versions,
)

# --- users -------------------------------------------------------------------------------


def _user(row: Row[Any]) -> User:
    info = dict(row.info or {})
    stamp = row.token_stamp or ""
    return User(row.name, row.pwhash, row.pwsalt, info, row.created, row.modified, stamp)


def new_token_stamp() -> str:
    return secrets.token_hex(16)


def get_user(conn: Connection, name: str) -> User | None:
    row = conn.execute(select(users).where(users.c.name == name)).first()
    return _user(row) if row else None


def list_users(conn: Connection) -> list[User]:
    return [_user(row) for row in conn.execute(select(users).order_by(users.c.name))]


def insert_user(conn: Connection, user: User) -> None:
    conn.execute(
        insert(users).values(
            name=user.name,
            pwhash=user.pwhash,
            pwsalt=user.pwsalt,
            info=user.info,
            created=user.created,
            modified=user.modified,
            token_stamp=user.token_stamp or new_token_stamp(),
        )
    )


def update_user(conn: Connection, name: str, **values: Any) -> None:
    """Change a user's columns; an empty `token_stamp` is replaced by a new random one."""
    if "token_stamp" in values and not values["token_stamp"]:
        values["token_stamp"] = new_token_stamp()
    conn.execute(update(users).where(users.c.name == name).values(**values))


def token_stamps(conn: Connection) -> dict[str, str]:
    """user name -> the stamp its login tokens must carry."""
    query = select(users.c.name, users.c.token_stamp)
    return {row.name: row.token_stamp or "" for row in conn.execute(query)}


def delete_user(conn: Connection, name: str) -> None:
    conn.execute(delete(users).where(users.c.name == name))


# --- indexes -----------------------------------------------------------------------------


def _index(row: Row[Any]) -> IndexRecord:
    return IndexRecord(row.id, row.user, row.name, dict(row.config))


def list_indexes(conn: Connection) -> list[IndexRecord]:
    query = select(indexes).order_by(indexes.c.user, indexes.c.name)
    return [_index(row) for row in conn.execute(query)]


def get_index(conn: Connection, user: str, name: str) -> IndexRecord | None:
    query = select(indexes).where(indexes.c.user == user, indexes.c.name == name)
    row = conn.execute(query).first()
    return _index(row) if row else None


def insert_index(conn: Connection, user: str, name: str, config: dict[str, Any]) -> int:
    result = conn.execute(insert(indexes).values(user=user, name=name, config=config))
    return int(result.inserted_primary_key[0])  # type: ignore[index]


def update_index_config(conn: Connection, index_id: int, config: dict[str, Any]) -> None:
    conn.execute(update(indexes).where(indexes.c.id == index_id).values(config=config))


def delete_index(conn: Connection, index_id: int) -> None:
    search.remove(conn, index_id)
    conn.execute(delete(mirror_pages).where(mirror_pages.c.index_id == index_id))
    conn.execute(delete(mirror_lists).where(mirror_lists.c.index_id == index_id))
    conn.execute(delete(files).where(files.c.index_id == index_id))
    conn.execute(delete(versions).where(versions.c.index_id == index_id))
    conn.execute(delete(indexes).where(indexes.c.id == index_id))


# --- versions ----------------------------------------------------------------------------


def _version(row: Row[Any]) -> VersionRecord:
    return VersionRecord(
        row.id, row.index_id, row.project, row.version, dict(row.metadata), row.created
    )


def project_names(conn: Connection, index_id: int) -> list[str]:
    query = (
        select(versions.c.project)
        .where(versions.c.index_id == index_id)
        .distinct()
        .order_by(versions.c.project)
    )
    return list(conn.execute(query).scalars())


# Statements on the upload and page paths are built once: building a statement (and its
# cache key) costs more than running it on SQLite.
_IN_PROJECT = (
    versions.c.index_id == bindparam("index_id"),
    versions.c.project == bindparam("project"),
)
_INSERT_VERSION = insert(versions)
_UPDATE_METADATA = (
    update(versions)
    .where(versions.c.id == bindparam("version_id"))
    .values(metadata=bindparam("new_metadata"))
)
_HAS_PROJECT = select(versions.c.id).where(*_IN_PROJECT).limit(1)
_LIST_VERSIONS = select(versions).where(*_IN_PROJECT).order_by(versions.c.id)
_GET_VERSION = select(versions).where(
    *_IN_PROJECT, versions.c.version_key == bindparam("version_key")
)


def has_project(conn: Connection, index_id: int, project: str) -> bool:
    params = {"index_id": index_id, "project": project}
    return conn.execute(_HAS_PROJECT, params).first() is not None


def list_versions(conn: Connection, index_id: int, project: str) -> list[VersionRecord]:
    rows = conn.execute(_LIST_VERSIONS, {"index_id": index_id, "project": project})
    return [_version(row) for row in rows]


def get_version(
    conn: Connection, index_id: int, project: str, version_key: str
) -> VersionRecord | None:
    params = {"index_id": index_id, "project": project, "version_key": version_key}
    row = conn.execute(_GET_VERSION, params).first()
    return _version(row) if row else None


def insert_version(
    conn: Connection,
    index_id: int,
    project: str,
    version: str,
    version_key: str,
    metadata: dict[str, Any],
    created: float,
) -> int:
    values = {
        "index_id": index_id,
        "project": project,
        "version": version,
        "version_key": version_key,
        "metadata": metadata,
        "created": created,
    }
    result = conn.execute(_INSERT_VERSION, values)
    return int(result.inserted_primary_key[0])  # type: ignore[index]


def update_version_metadata(conn: Connection, version_id: int, metadata: dict[str, Any]) -> None:
    conn.execute(_UPDATE_METADATA, {"version_id": version_id, "new_metadata": metadata})


def delete_version(conn: Connection, index_id: int, project: str, version: str) -> None:
    conn.execute(
        delete(files).where(
            files.c.index_id == index_id, files.c.project == project, files.c.version == version
        )
    )
    conn.execute(
        delete(versions).where(
            versions.c.index_id == index_id,
            versions.c.project == project,
            versions.c.version == version,
        )
    )
    _reindex_for_search(conn, index_id, project)


def _reindex_for_search(conn: Connection, index_id: int, project: str) -> None:
    """Search follows the most recent remaining version, or forgets a project left empty."""
    row = conn.execute(
        select(versions.c.version, versions.c.metadata)
        .where(versions.c.index_id == index_id, versions.c.project == project)
        .order_by(versions.c.id.desc())
        .limit(1)
    ).first()
    if row is None:
        search.remove(conn, index_id, project)
        return
    metadata = dict(row.metadata or {})
    summary, description = metadata.get("summary") or "", metadata.get("description") or ""
    search.upsert(conn, index_id, project, row.version, str(summary), str(description))


def delete_project(conn: Connection, index_id: int, project: str) -> None:
    search.remove(conn, index_id, project)
    conn.execute(delete(files).where(files.c.index_id == index_id, files.c.project == project))
    conn.execute(
        delete(versions).where(versions.c.index_id == index_id, versions.c.project == project)
    )


# --- files -------------------------------------------------------------------------------


def _file(row: Row[Any]) -> FileRecord:
    return FileRecord(
        row.id,
        row.index_id,
        row.project,
        row.version,
        row.filename,
        FileKind(row.kind),
        row.sha256,
        row.size,
        row.uploaded_at,
        row.yanked,
        row.metadata_sha256,
        row.requires_python,
        row.for_file,
        list(row.log or []),
        row.dir_sha256,
    )


_PROJECT_FILES = (
    select(files)
    .where(files.c.index_id == bindparam("index_id"), files.c.project == bindparam("project"))
    .order_by(files.c.id)
)
_GET_FILE = select(files).where(
    files.c.index_id == bindparam("index_id"), files.c.filename == bindparam("filename")
)
_INSERT_FILE = insert(files)


def project_files(conn: Connection, index_id: int, project: str) -> list[FileRecord]:
    rows = conn.execute(_PROJECT_FILES, {"index_id": index_id, "project": project})
    return [_file(row) for row in rows]


def index_files(conn: Connection, index_id: int, project: str | None = None) -> list[FileRecord]:
    query = select(files).where(files.c.index_id == index_id)
    if project is not None:
        query = query.where(files.c.project == project)
    return [_file(row) for row in conn.execute(query.order_by(files.c.id))]


def get_file(conn: Connection, index_id: int, filename: str) -> FileRecord | None:
    row = conn.execute(_GET_FILE, {"index_id": index_id, "filename": filename}).first()
    return _file(row) if row else None


def insert_file(conn: Connection, record: FileRecord) -> int:
    values = {
        key: getattr(record, key)
        for key in (
            "index_id",
            "project",
            "version",
            "filename",
            "kind",
            "sha256",
            "size",
            "uploaded_at",
            "yanked",
            "metadata_sha256",
            "requires_python",
            "for_file",
            "log",
            "dir_sha256",
        )
    }
    result = conn.execute(_INSERT_FILE, values)
    return int(result.inserted_primary_key[0])  # type: ignore[index]


def update_file(conn: Connection, file_id: int, **values: Any) -> None:
    conn.execute(update(files).where(files.c.id == file_id).values(**values))


def delete_files(conn: Connection, file_ids: Iterable[int]) -> None:
    conn.execute(delete(files).where(files.c.id.in_(list(file_ids))))


def count_files(conn: Connection, index_id: int, project: str, version: str) -> int:
    query = select(func.count()).where(
        files.c.index_id == index_id, files.c.project == project, files.c.version == version
    )
    return int(conn.execute(query).scalar() or 0)


# Every column whose value names a blob (the triggers of migration 0006 watch the same).
BLOB_COLUMNS = (files.c.sha256, files.c.metadata_sha256, mirror_lists.c.names_sha256)


def referenced_blobs(conn: Connection, candidates: set[str]) -> set[str]:
    """Those of `candidates` that some row still points at."""
    wanted = list(candidates)
    used: set[str] = set()
    for column in BLOB_COLUMNS:
        used.update(sha for sha in conn.execute(select(column).where(column.in_(wanted))).scalars())
    return used


def all_referenced_blobs(conn: Connection) -> set[str]:
    """Every blob some row points at."""
    found: set[str] = set()
    for column in BLOB_COLUMNS:
        found.update(conn.execute(select(column).where(column.is_not(None)).distinct()).scalars())
    return found


def mirror_metadata_blobs(conn: Connection) -> set[str]:
    """The PEP 658 files stored mirror pages name: mirrors keep them by hash alone, also for
    wheels not cached (yet)."""
    found: set[str] = set()
    for links in conn.execute(select(mirror_pages.c.links)).scalars():
        found.update(
            link["core_metadata_sha256"] for link in links if link.get("core_metadata_sha256")
        )
    return found


def take_released_blobs(conn: Connection) -> set[str]:
    """The blobs rows let go of in this transaction (noted by triggers); the notes go."""
    released = set(conn.execute(select(released_blobs.c.sha256)).scalars())
    if released:
        conn.execute(delete(released_blobs))
    return released


# --- mirror state --------------------------------------------------------------------------


def _mirror_page(row: Row[Any]) -> MirrorPage:
    return MirrorPage(
        row.index_id,
        row.project,
        PageStatus(row.status),
        row.fetched_at,
        row.etag,
        row.last_modified,
        row.upstream_serial,
        list(row.links),
        row.project_status,
    )


def get_mirror_page(conn: Connection, index_id: int, project: str) -> MirrorPage | None:
    query = select(mirror_pages).where(
        mirror_pages.c.index_id == index_id, mirror_pages.c.project == project
    )
    row = conn.execute(query).first()
    return _mirror_page(row) if row else None


def put_mirror_page(conn: Connection, page: MirrorPage) -> None:
    conn.execute(
        delete(mirror_pages).where(
            mirror_pages.c.index_id == page.index_id, mirror_pages.c.project == page.project
        )
    )
    conn.execute(
        insert(mirror_pages).values(
            index_id=page.index_id,
            project=page.project,
            status=page.status,
            fetched_at=page.fetched_at,
            etag=page.etag,
            last_modified=page.last_modified,
            upstream_serial=page.upstream_serial,
            links=page.links,
            project_status=page.project_status,
        )
    )


def touch_mirror_page(conn: Connection, index_id: int, project: str, fetched_at: float) -> None:
    conn.execute(
        update(mirror_pages)
        .where(mirror_pages.c.index_id == index_id, mirror_pages.c.project == project)
        .values(fetched_at=fetched_at)
    )


def get_mirror_list(conn: Connection, index_id: int) -> MirrorList | None:
    row = conn.execute(select(mirror_lists).where(mirror_lists.c.index_id == index_id)).first()
    if row is None:
        return None
    count = row._mapping["count"]  # `row.count` is a tuple method
    return MirrorList(row.index_id, row.fetched_at, row.etag, row.names_sha256, count)


def put_mirror_list(conn: Connection, listing: MirrorList) -> None:
    conn.execute(delete(mirror_lists).where(mirror_lists.c.index_id == listing.index_id))
    conn.execute(
        insert(mirror_lists).values(
            index_id=listing.index_id,
            fetched_at=listing.fetched_at,
            etag=listing.etag,
            names_sha256=listing.names_sha256,
            count=listing.count,
        )
    )


def mirror_project_names(conn: Connection, index_id: int) -> list[str]:
    query = select(mirror_pages.c.project).where(
        mirror_pages.c.index_id == index_id, mirror_pages.c.status == PageStatus.OK.value
    )
    return list(conn.execute(query.order_by(mirror_pages.c.project)).scalars())


# --- server settings ---------------------------------------------------------------------


def get_setting(conn: Connection, key: str) -> Any:
    return conn.execute(select(settings.c.value).where(settings.c.key == key)).scalar()


def put_setting(conn: Connection, key: str, value: Any) -> None:
    conn.execute(delete(settings).where(settings.c.key == key))
    conn.execute(insert(settings).values(key=key, value=value))
