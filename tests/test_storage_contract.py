"""The storage layer's contract, on SQLite and PostgreSQL: schema, serial, transactions,
constraints; and the content-addressed blob store."""

from __future__ import annotations

import dataclasses
import hashlib
import os
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from alembic import command
from alembic.config import Config as AlembicConfig
from sqlalchemy import Connection, create_engine, func, inspect, select, text
from sqlalchemy.exc import IntegrityError

from packyard.core.models import FileRecord, User
from packyard.storage import search, store, tables
from packyard.storage.blobs import BlobRemoval, BlobStore
from packyard.storage.db import MIGRATIONS, Database, SerialFile

TABLES = {"users", "indexes", "versions", "files", "changes", "server_settings"}


class Boom(Exception):
    """Raised inside a write transaction on purpose."""


@pytest.fixture
def database_url(storage_url: str, tmp_path: Path) -> str:
    return storage_url or f"sqlite:///{tmp_path / 'packyard.sqlite3'}"


@pytest.fixture
def db(database_url: str, tmp_path: Path) -> Iterator[Database]:
    database = Database(database_url, tmp_path / "serial")
    yield database
    database.close()


def _user(name: str) -> User:
    return User(name, "hash", None, {}, "2026-01-01T00:00:00Z", None)


def _file(
    index_id: int, filename: str, sha256: str = "a" * 64, kind: str = "releasefile"
) -> FileRecord:
    return FileRecord(
        id=0,
        index_id=index_id,
        project="demo",
        version="1.0",
        filename=filename,
        kind=kind,
        sha256=sha256,
        size=3,
        uploaded_at=0.0,
        yanked=None,
        metadata_sha256=None,
        requires_python=None,
        for_file=None,
        log=[],
    )


def _index(db: Database, user: str = "alice", name: str = "dev") -> int:
    with db.write("setup") as conn:
        if store.get_user(conn, user) is None:
            store.insert_user(conn, _user(user))
        return store.insert_index(conn, user, name, {"type": "stage"})


def _count(db: Database, table: Any) -> int:
    with db.read() as conn:
        return int(conn.execute(select(func.count()).select_from(table)).scalar() or 0)


# --- schema and migrations -------------------------------------------------------------------


def test_migrations_create_the_schema(db: Database) -> None:
    names = set(inspect(db.engine).get_table_names())
    assert names >= TABLES | {"alembic_version"}
    columns = {c["name"] for c in inspect(db.engine).get_columns("files")}
    assert {"index_id", "filename", "sha256", "size", "yanked", "metadata_sha256"} <= columns


def test_opening_twice_keeps_data_and_the_revision(database_url: str, tmp_path: Path) -> None:
    first = Database(database_url, tmp_path / "serial")
    _index(first)
    with first.read() as conn:
        revision = conn.execute(text("SELECT version_num FROM alembic_version")).scalars().all()
    first.close()
    second = Database(database_url, tmp_path / "serial")
    try:
        second.migrate()
        with second.read() as conn:
            assert (
                conn.execute(text("SELECT version_num FROM alembic_version")).scalars().all()
                == revision
            )
            assert [r.full_name for r in store.list_indexes(conn)] == ["alice/dev"]
        assert second.serial.read() == 1
    finally:
        second.close()


def test_a_new_serial_file_learns_the_serial_from_the_database(
    database_url: str, tmp_path: Path
) -> None:
    first = Database(database_url, tmp_path / "serial")
    _index(first)
    _index(first, name="prod")
    first.close()
    reopened = Database(database_url, tmp_path / "other-serial")
    try:
        assert reopened.serial.read() == 2
    finally:
        reopened.close()


# --- the change serial -----------------------------------------------------------------------


def test_each_write_bumps_the_serial_by_one_and_publishes_it(db: Database, tmp_path: Path) -> None:
    watcher = SerialFile(tmp_path / "serial")  # what another worker process reads
    try:
        start = db.serial.read()
        for step in range(1, 4):
            with db.write("setting", step=step) as conn:
                store.put_setting(conn, "key", step)
            assert db.serial.read() == start + step
            assert watcher.read() == start + step
            assert int((tmp_path / "serial").read_text()) == start + step
        with db.read() as conn:
            rows = conn.execute(select(tables.changes).order_by(tables.changes.c.serial)).all()
        assert [row.serial for row in rows][-3:] == [start + 1, start + 2, start + 3]
        assert rows[-1].what == "setting"
        assert rows[-1].detail == {"step": 3}
    finally:
        watcher.close()


def test_the_serial_file_never_goes_backwards(tmp_path: Path) -> None:
    serial = SerialFile(tmp_path / "serial")
    try:
        serial.publish(7)
        serial.publish(5)
        assert serial.read() == 7
    finally:
        serial.close()


def _failing_write(db: Database, body: Any) -> None:
    with db.write("doomed") as conn:
        body(conn)


def _insert_user_then_fail(conn: Connection) -> None:
    store.insert_user(conn, _user("ghost"))
    raise Boom


def _duplicate_user(conn: Connection) -> None:
    store.insert_user(conn, _user("ghost"))
    store.insert_user(conn, _user("ghost"))


@pytest.mark.parametrize(
    ("body", "error"),
    [(_insert_user_then_fail, Boom), (_duplicate_user, IntegrityError)],
    ids=["exception", "integrity-error"],
)
def test_a_failed_write_leaves_nothing_and_keeps_the_serial(
    db: Database, body: Any, error: type[Exception]
) -> None:
    _index(db)
    serial, changes = db.serial.read(), _count(db, tables.changes)
    with pytest.raises(error):
        _failing_write(db, body)
    with db.read() as conn:
        assert store.get_user(conn, "ghost") is None
    assert db.serial.read() == serial
    assert _count(db, tables.changes) == changes
    with db.write("after") as conn:
        store.insert_user(conn, _user("ghost"))
    assert db.serial.read() == serial + 1


def test_concurrent_writes_get_distinct_consecutive_serials(db: Database) -> None:
    start = db.serial.read()
    errors: list[BaseException] = []

    def work(worker: int) -> None:
        try:
            for step in range(5):
                with db.write("setting") as conn:
                    store.put_setting(conn, f"w{worker}", step)
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(n,)) for n in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    assert db.serial.read() == start + 20
    with db.read() as conn:
        serials = conn.execute(select(tables.changes.c.serial)).scalars().all()
    assert sorted(serials)[-20:] == list(range(start + 1, start + 21))


# --- constraints -----------------------------------------------------------------------------


def test_same_filename_twice_in_one_index_is_refused(db: Database) -> None:
    index_id = _index(db)
    other_id = _index(db, name="other")
    with db.write("upload") as conn:
        store.insert_file(conn, _file(index_id, "demo-1.0.tar.gz"))
        store.insert_file(conn, _file(other_id, "demo-1.0.tar.gz"))
    with pytest.raises(IntegrityError), db.write("upload") as conn:
        store.insert_file(conn, _file(index_id, "demo-1.0.tar.gz", sha256="b" * 64))
    with db.read() as conn:
        (stored,) = store.project_files(conn, index_id, "demo")
    assert stored.sha256 == "a" * 64


def _version(conn: Connection, index_id: int, version: str, key: str) -> int:
    return store.insert_version(conn, index_id, "demo", version, key, {}, 0.0)


@pytest.mark.parametrize(
    "write",
    [
        lambda conn, ids: store.insert_user(conn, _user("alice")),
        lambda conn, ids: store.insert_index(conn, "alice", "dev", {"type": "stage"}),
        lambda conn, ids: store.insert_index(conn, "nobody", "dev", {"type": "stage"}),
        lambda conn, ids: [_version(conn, ids, "1.0", "1"), _version(conn, ids, "1.0.0", "1")],
        lambda conn, ids: store.insert_file(conn, _file(ids, "x.tar.gz", sha256="abc")),
        lambda conn, ids: store.insert_file(conn, _file(ids, "x.tar.gz", kind="movie")),
        lambda conn, ids: store.insert_file(conn, _file(ids + 99, "x.tar.gz")),
    ],
    ids=[
        "user-twice",
        "index-twice",
        "index-without-user",
        "release-twice",
        "short-sha256",
        "unknown-kind",
        "file-without-index",
    ],
)
def test_integrity_is_enforced_by_the_database(db: Database, write: Any) -> None:
    index_id = _index(db)
    with pytest.raises(IntegrityError), db.write("bad") as conn:
        write(conn, index_id)


def test_deleting_an_index_deletes_its_rows(db: Database) -> None:
    index_id = _index(db)
    with db.write("upload") as conn:
        _version(conn, index_id, "1.0", "1")
        store.insert_file(conn, _file(index_id, "demo-1.0.tar.gz"))
    with db.write("delete") as conn:
        store.delete_index(conn, index_id)
    assert _count(db, tables.files) == 0
    assert _count(db, tables.versions) == 0


def _blob_db(database_url: str, tmp_path: Path) -> tuple[Database, BlobStore]:
    blobs = BlobStore(tmp_path / "blobs")
    return Database(database_url, tmp_path / "blob-serial", blobs), blobs


@pytest.mark.parametrize("deleted", ["files", "index", "user"])
def test_every_write_removes_the_blobs_its_rows_let_go_of(
    database_url: str, tmp_path: Path, deleted: str
) -> None:
    """Whatever the statement (a cascade too), a blob no row points at is gone at commit;
    one another index still uses stays."""
    db, blobs = _blob_db(database_url, tmp_path)
    shared, own, sidecar = (blobs.put_bytes(data) for data in (b"shared", b"own", b"meta"))
    doomed, kept = _index(db, "alice", "dev"), _index(db, "bob", "dev")
    with db.write("upload") as conn:
        store.insert_file(conn, _file(doomed, "a-1.0.tar.gz", shared))
        own_file = dataclasses.replace(_file(doomed, "b-1.0.whl", own), metadata_sha256=sidecar)
        store.insert_file(conn, own_file)
        store.insert_file(conn, _file(kept, "a-1.0.tar.gz", shared))
    with db.write("delete") as conn:
        if deleted == "files":
            store.delete_files(conn, [f.id for f in store.index_files(conn, doomed)])
        elif deleted == "index":
            store.delete_index(conn, doomed)
        else:  # the rows go by ON DELETE CASCADE alone
            conn.execute(tables.users.delete().where(tables.users.c.name == "alice"))
    assert _visible_files(blobs) == [blobs.path(shared)]
    with db.read() as conn:
        assert store.take_released_blobs(conn) == set()
    db.close()


def test_a_write_that_fails_keeps_the_blobs_its_rows_pointed_at(
    database_url: str, tmp_path: Path
) -> None:
    db, blobs = _blob_db(database_url, tmp_path)
    sha = blobs.put_bytes(b"precious")
    index_id = _index(db)
    with db.write("upload") as conn:
        store.insert_file(conn, _file(index_id, "a-1.0.tar.gz", sha))
    with pytest.raises(Boom), db.write("delete") as conn:
        store.delete_index(conn, index_id)
        raise Boom
    assert _visible_files(blobs) == [blobs.path(sha)]
    db.close()


# --- search ----------------------------------------------------------------------------------


def _found(db: Database, query: str) -> list[tuple[int, str, str, str]]:
    with db.read() as conn:
        return [(h.index_id, h.project, h.version, h.summary) for h in search.search(conn, query)]


def test_search_entries_follow_upserts_and_removals(db: Database) -> None:
    dev, prod = _index(db), _index(db, name="prod")
    with db.write("index") as conn:
        search.upsert(conn, dev, "hexagon", "1.0", "tiles for boards", "a board game kit")
        search.upsert(conn, prod, "hexagon", "0.9", "tiles for boards", "a board game kit")
        search.upsert(conn, dev, "octagon", "2.0", "stop signs", "")
    assert sorted(_found(db, "tiles")) == [
        (dev, "hexagon", "1.0", "tiles for boards"),
        (prod, "hexagon", "0.9", "tiles for boards"),
    ]
    with db.write("new version, same words") as conn:
        search.upsert(conn, dev, "hexagon", "1.1", "tiles for boards", "a board game kit")
    with db.write("new words") as conn:
        search.upsert(conn, prod, "hexagon", "1.0", "honeycomb shapes", "")
    assert _found(db, "tiles") == [(dev, "hexagon", "1.1", "tiles for boards")]
    assert _found(db, "honeycomb") == [(prod, "hexagon", "1.0", "honeycomb shapes")]
    with db.write("remove one") as conn:
        search.remove(conn, dev, "hexagon")
    assert _found(db, "tiles") == []
    assert _found(db, "stop") == [(dev, "octagon", "2.0", "stop signs")]
    with db.write("remove the index's") as conn:
        search.remove(conn, dev)
    assert _found(db, "stop") == []
    assert _found(db, "hexagon") == [(prod, "hexagon", "1.0", "honeycomb shapes")]


def test_upgrading_from_revision_0004_keeps_what_search_finds(tmp_path: Path) -> None:
    """A server dir made before search_keys existed finds the same entries after start."""
    url = f"sqlite:///{tmp_path / 'old.sqlite3'}"
    engine = create_engine(url)
    config = AlembicConfig()
    config.set_main_option("script_location", str(MIGRATIONS))
    with engine.connect() as connection:
        config.attributes["connection"] = connection
        command.upgrade(config, "0004")
        connection.execute(
            text("INSERT INTO users (name, pwhash, info, created) VALUES ('alice', 'h', '{}', '')")
        )
        connection.execute(
            text("INSERT INTO indexes (user, name, config) VALUES ('alice', 'dev', '{}')")
        )
        connection.execute(
            text(
                "INSERT INTO search_entries (index_id, project, version, summary, description)"
                " VALUES (1, 'hexagon', '1.0', 'tiles for boards', 'a board game kit')"
            )
        )
        connection.commit()
    engine.dispose()
    upgraded = Database(url, tmp_path / "serial")
    try:
        assert _found(upgraded, "board") == [(1, "hexagon", "1.0", "tiles for boards")]
        with upgraded.write("upsert after upgrade") as conn:
            search.upsert(conn, 1, "hexagon", "1.1", "tiles", "")
        assert _found(upgraded, "hexagon") == [(1, "hexagon", "1.1", "tiles")]
    finally:
        upgraded.close()


# --- blobs -----------------------------------------------------------------------------------


@pytest.fixture
def blobs(tmp_path: Path) -> BlobStore:
    return BlobStore(tmp_path / "blobs")


def _visible_files(blobs: BlobStore) -> list[Path]:
    return [p for p in blobs.root.rglob("*") if p.is_file() and blobs.temp_dir not in p.parents]


def test_put_read_exists(blobs: BlobStore) -> None:
    data = b"hello blob"
    sha = blobs.put_bytes(data)
    assert sha == hashlib.sha256(data).hexdigest()
    assert blobs.exists(sha)
    assert blobs.read_bytes(sha) == data
    assert blobs.path(sha) == blobs.root / sha[:2] / sha[2:4] / sha
    assert not blobs.exists("0" * 64)
    assert blobs.put_bytes(data) == sha
    assert _visible_files(blobs) == [blobs.path(sha)]
    assert list(blobs.temp_dir.iterdir()) == []


@pytest.mark.parametrize("bad", ["", "abc", "A" * 64, "g" * 64, "../" + "a" * 61])
def test_blob_paths_need_a_sha256(blobs: BlobStore, bad: str) -> None:
    with pytest.raises(ValueError, match="not a sha256"):
        blobs.path(bad)


def test_writes_go_to_a_temp_file_then_are_renamed(blobs: BlobStore) -> None:
    data = os.urandom(1000)
    with blobs.writer() as writer:
        writer.write(data[:500])
        assert writer.temp_path.parent == blobs.temp_dir
        assert _visible_files(blobs) == []
        writer.write(data[500:])
        sha = writer.finish()
        assert not blobs.exists(sha)
        assert writer.temp_path.read_bytes() == data
        inode = writer.temp_path.stat().st_ino
        writer.commit()
    assert sha == hashlib.sha256(data).hexdigest()
    assert writer.size == 1000
    assert blobs.read_bytes(sha) == data
    assert blobs.path(sha).stat().st_ino == inode  # renamed, not copied
    assert list(blobs.temp_dir.iterdir()) == []


def test_an_aborted_writer_leaves_nothing(blobs: BlobStore) -> None:
    with pytest.raises(Boom), blobs.writer() as writer:
        writer.write(b"half a file")
        raise Boom
    assert not writer.temp_path.exists()
    assert list(blobs.temp_dir.iterdir()) == []
    assert _visible_files(blobs) == []
    explicit = blobs.writer()
    explicit.write(b"more")
    explicit.abort()
    assert list(blobs.temp_dir.iterdir()) == []


def test_committing_content_already_stored_drops_the_temp_file(blobs: BlobStore) -> None:
    sha = blobs.put_bytes(b"same")
    with blobs.writer() as writer:
        writer.write(b"same")
        assert writer.commit() == sha
    assert list(blobs.temp_dir.iterdir()) == []
    assert blobs.read_bytes(sha) == b"same"


def test_remove_temp_files(blobs: BlobStore) -> None:
    sha = blobs.put_bytes(b"keep me")
    for name in ("upload-1", "upload-2", "trash-x"):
        (blobs.temp_dir / name).write_bytes(b"leftover")
    assert blobs.remove_temp_files() == 3
    assert list(blobs.temp_dir.iterdir()) == []
    assert blobs.read_bytes(sha) == b"keep me"
    assert BlobStore(blobs.root).remove_temp_files() == 0


def test_recovery_puts_back_a_referenced_blob_whose_rename_was_lost(blobs: BlobStore) -> None:
    """A power cut after the row committed but before the rename reached the disk."""
    kept = hashlib.sha256(b"referenced").hexdigest()
    (blobs.temp_dir / "upload-lost-rename").write_bytes(b"referenced")
    (blobs.temp_dir / "upload-partial").write_bytes(b"refer")
    (blobs.temp_dir / "trash-unreferenced").write_bytes(b"nobody wants me")
    asked: list[set[str]] = []

    def still_referenced(shas: set[str]) -> set[str]:
        asked.append(shas)
        return shas & {kept}

    assert blobs.recover_temp_files(still_referenced) == 3
    assert blobs.read_bytes(kept) == b"referenced"
    assert list(blobs.temp_dir.iterdir()) == []
    assert len(asked) == 1 and kept in asked[0]


@pytest.mark.parametrize("outcome", ["finish", "undo"])
def test_blob_removal_is_undoable_until_finished(blobs: BlobStore, outcome: str) -> None:
    sha = blobs.put_bytes(b"doomed")
    removal = BlobRemoval(blobs)
    removal.remove(sha)
    removal.remove("0" * 64)  # not stored: nothing to do
    assert not blobs.exists(sha)
    getattr(removal, outcome)()
    assert blobs.exists(sha) is (outcome == "undo")
    assert list(blobs.temp_dir.iterdir()) == []
