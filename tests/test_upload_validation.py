"""Table tests of the pure upload rules (core/uploads.py): no server, no storage."""

from __future__ import annotations

import time

import pytest

from packyard import errors
from packyard.core.models import FileKind, FileRecord, IndexRecord
from packyard.core.uploads import (
    check_may_upload,
    check_may_upload_toxresult,
    check_toxresult,
    doc_zip_name,
    first_value,
    form_metadata,
    joins_release,
    latest_version,
    toxresult_name,
)

STAGE = IndexRecord(1, "alice", "dev", {"type": "stage", "acl_upload": ["alice"]})
OPEN_TOX = IndexRecord(
    2,
    "alice",
    "ci",
    {"type": "stage", "acl_upload": ["alice"], "acl_toxresult_upload": [":AUTHENTICATED:"]},
)
MIRROR = IndexRecord(3, "root", "pypi", {"type": "mirror"})


def _file(kind: FileKind = FileKind.RELEASE) -> FileRecord:
    return FileRecord(
        id=1,
        index_id=1,
        project="pkg",
        version="1.0",
        filename="pkg-1.0.tar.gz",
        kind=kind,
        sha256="ab" * 32,
        size=3,
        uploaded_at=0.0,
        yanked=None,
        metadata_sha256=None,
        requires_python=None,
        for_file=None,
        log=[],
    )


@pytest.mark.parametrize(
    ("actor", "record", "error", "message"),
    [
        ("alice", STAGE, None, ""),
        ("root", STAGE, errors.Forbidden, "no permission to submit"),
        ("bob", STAGE, errors.Forbidden, "no permission to submit"),
        (None, STAGE, errors.Unauthenticated, "authentication required"),
        ("root", MIRROR, errors.NotFound, "cannot submit to mirror index"),
        (None, MIRROR, errors.NotFound, "cannot submit to mirror index"),  # the kind first
    ],
)
def test_who_may_upload(
    actor: str | None, record: IndexRecord, error: type[Exception] | None, message: str
) -> None:
    if error is None:
        assert check_may_upload(actor, record) is record
    else:
        with pytest.raises(error, match=message):
            check_may_upload(actor, record)


@pytest.mark.parametrize(
    ("actor", "record", "kind", "error", "message"),
    [
        ("alice", STAGE, FileKind.RELEASE, None, ""),
        ("bob", STAGE, FileKind.RELEASE, errors.Forbidden, "--no-upload"),  # the default ACL
        ("bob", OPEN_TOX, FileKind.RELEASE, None, ""),
        (None, OPEN_TOX, FileKind.RELEASE, errors.Unauthenticated, "--no-upload"),
        ("alice", STAGE, FileKind.DOCZIP, errors.NotFound, "no release file"),
        ("alice", STAGE, FileKind.TOXRESULT, errors.NotFound, "no release file"),
    ],
)
def test_who_may_attach_tox_results(
    actor: str | None,
    record: IndexRecord,
    kind: FileKind,
    error: type[Exception] | None,
    message: str,
) -> None:
    if error is None:
        check_may_upload_toxresult(actor, record, _file(kind))
    else:
        with pytest.raises(error, match=message):
            check_may_upload_toxresult(actor, record, _file(kind))


@pytest.mark.parametrize(
    ("body", "limit", "error"),
    [
        (b'{"testenvs": {}}', 100, None),
        (b"[]", 2, None),
        (b"[1]", 2, errors.TooLarge),
        (b"not json", 100, errors.InvalidInput),
        (b"", 100, errors.InvalidInput),
        (b"\xff\xfe", 100, errors.InvalidInput),
    ],
)
def test_tox_result_bodies(body: bytes, limit: int, error: type[Exception] | None) -> None:
    if error is None:
        check_toxresult(body, limit)
    else:
        with pytest.raises(error):
            check_toxresult(body, limit)


@pytest.mark.parametrize(
    ("version", "stored", "joins"),
    [
        ("1.0", "1.0", True),
        ("1.0", "1.0.0", True),
        ("1.0.0", "1", True),
        ("1.0+cpu", "1.0", True),  # pip's ==1.0 takes 1.0+cpu: it joins the release of 1.0
        ("1.0", "1.0+cpu", False),
        ("1.0+cpu", "1.0+gpu", True),
        ("1.0", "1.1", False),
        ("1.0", "1.0.post1", False),
        ("1.0", "not a version", False),
        ("not a version", "not a version", True),
    ],
)
def test_which_files_an_upload_joins(version: str, stored: str, joins: bool) -> None:
    assert joins_release(version, stored) is joins


@pytest.mark.parametrize(
    ("fields", "metadata"),
    [
        ({"name": ["pkg"], "version": ["1.0"]}, {"name": "pkg", "version": "1.0"}),
        ({"summary": ["s"], ":action": ["submit"]}, {"summary": "s"}),
        ({"classifiers": ["A", "B"]}, {"classifiers": ["A", "B"]}),
        ({"unknown_field": ["x"]}, {}),
    ],
)
def test_register_fields(fields: dict[str, list[str]], metadata: dict[str, object]) -> None:
    assert form_metadata(fields) == metadata


@pytest.mark.parametrize(
    ("fields", "key", "value"),
    [({"a": [" x ", "y"]}, "a", "x"), ({"a": []}, "a", ""), ({}, "a", "")],
)
def test_first_value(fields: dict[str, list[str]], key: str, value: str) -> None:
    assert first_value(fields, key) == value


@pytest.mark.parametrize(
    ("versions", "latest"),
    [(["1.0", "2.0", "1.10"], "2.0"), (["1.9", "1.10"], "1.10"), (["1.0rc1", "1.0"], "1.0")],
)
def test_a_doc_zip_documents_the_latest_version(versions: list[str], latest: str) -> None:
    assert latest_version("pkg", versions) == latest


def test_a_doc_zip_without_version_needs_a_release() -> None:
    with pytest.raises(errors.InvalidInput, match="doczip has no version and 'pkg' has no"):
        latest_version("pkg", [])


def test_devpi_names() -> None:
    moment = time.struct_time((2024, 5, 6, 7, 8, 9, 0, 127, 0))
    assert toxresult_name(_file(), 2, moment) == "pkg-1.0.tar.gz.toxresult-20240506070809-2"
    assert doc_zip_name("pkg", "1.0") == "pkg-1.0.doc.zip"
