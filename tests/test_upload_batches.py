"""Group commit of uploads: concurrent uploads stored together, each succeeding or failing alone."""

from __future__ import annotations

import asyncio
import io
import threading
from collections.abc import Sequence
from pathlib import Path

import pytest

from packyard.core.uploads import UploadAction, UploadCommand
from packyard.errors import Conflict, InvalidInput, NotFound
from packyard.services import Services
from packyard.services.batches import Batches
from packyard.services.uploads import UploadOutcome, UploadRequest
from packyard.storage import store
from tests.builders import build_wheel


def _request(path: Path, index: str = "stage", content: bytes | None = None) -> UploadRequest:
    name, version = path.name.split("-")[:2]
    body = io.BytesIO(path.read_bytes() if content is None else content)
    command = UploadCommand(
        UploadAction.RELEASE_FILE, name, version, filename=path.name, content=body
    )
    return UploadRequest("root", "root", index, command)


def test_one_batch_stores_the_good_uploads_and_answers_each_bad_one_alone(
    services: Services, tmp_path: Path
) -> None:
    record = services.indexes.create("root", "root", "stage", {"bases": "", "volatile": False})
    demo = build_wheel(tmp_path / "a", "demo", "1.0")
    other = build_wheel(tmp_path / "b", "other", "2.0")
    changed = build_wheel(tmp_path / "c", "demo", "1.0", payload="x = 1\n")
    serial_before = services.serial

    results = services.uploads.upload_many(
        [
            _request(demo),
            _request(demo, content=b"not a zip at all"),
            _request(changed),  # other bytes under a stored filename: 409 on a stage index
            _request(demo),  # the same bytes again
            _request(other),
            _request(other, index="nowhere"),
        ]
    )

    stored, corrupt, conflict, identical, stored_other, unknown = results
    assert isinstance(stored, UploadOutcome) and stored.status == "stored"
    assert isinstance(corrupt, InvalidInput)
    assert isinstance(conflict, Conflict)
    assert isinstance(identical, UploadOutcome) and identical.status == "identical"
    assert isinstance(stored_other, UploadOutcome) and stored_other.status == "stored"
    assert isinstance(unknown, NotFound)
    with services.db.read() as conn:
        files = {f.filename: f for f in store.index_files(conn, record.id)}
    assert sorted(files) == [demo.name, other.name]
    for path in (demo, other):
        blob = services.blobs.path(files[path.name].sha256)
        assert blob.read_bytes() == path.read_bytes()
        metadata_sha = files[path.name].metadata_sha256
        assert metadata_sha is not None and services.blobs.exists(metadata_sha)
    assert list(services.blobs.temp_dir.iterdir()) == []
    assert services.serial > serial_before


def test_a_lone_upload_still_raises_its_own_error(services: Services, tmp_path: Path) -> None:
    services.indexes.create("root", "root", "stage", {"bases": ""})
    demo = build_wheel(tmp_path, "demo", "1.0")
    request = _request(demo, content=b"garbage")
    with pytest.raises(InvalidInput, match="not a readable archive"):
        services.uploads.upload(request.actor, request.user, request.index, request.command)


def test_items_arriving_during_a_batch_form_the_next_batch() -> None:
    first_batch_running, release_first_batch = threading.Event(), threading.Event()
    calls: list[list[str]] = []

    def handle_all(items: Sequence[str]) -> list[str | Exception]:
        calls.append(list(items))
        if len(calls) == 1:
            first_batch_running.set()
            release_first_batch.wait(10)
        return [ValueError(item) if item.startswith("bad") else item.upper() for item in items]

    async def scenario() -> list[str | BaseException]:
        batches: Batches[str, str] = Batches(handle_all)
        first = asyncio.create_task(batches.submit("a"))
        await asyncio.to_thread(first_batch_running.wait, 10)
        later = [asyncio.create_task(batches.submit(item)) for item in ("b", "bad-c", "d")]
        await asyncio.sleep(0.05)  # all three wait behind the running batch
        release_first_batch.set()
        return await asyncio.gather(first, *later, return_exceptions=True)

    a, b, bad_c, d = asyncio.run(scenario())
    assert calls == [["a"], ["b", "bad-c", "d"]]
    assert (a, b, d) == ("A", "B", "D")
    assert isinstance(bad_c, ValueError) and str(bad_c) == "bad-c"
