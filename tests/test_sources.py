"""One source type per index kind (services/sources): the kind picks the source once, and no
other service branches on the kind."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from packyard import errors
from packyard.core.indexconfig import IndexType
from packyard.core.models import IndexRecord
from packyard.services import Services
from packyard.services.sources import MirrorSource, StageSource
from tests.builders import build_wheel
from tests.test_upload_batches import _request

SERVICES = Path(__file__).parent.parent / "src" / "packyard" / "services"
STAGE = IndexRecord(1, "alice", "dev", {"type": "stage"})
MIRROR = IndexRecord(2, "root", "pypi", {"type": "mirror", "mirror_url": "http://127.0.0.1:9/"})


def test_every_index_kind_has_a_source(services: Services) -> None:
    chosen = {
        kind: type(services.sources.source_for(record))
        for kind, record in ((IndexType.STAGE, STAGE), (IndexType.MIRROR, MIRROR))
    }
    assert chosen == {IndexType.STAGE: StageSource, IndexType.MIRROR: MirrorSource}
    assert set(chosen) == set(IndexType)


def test_no_service_branches_on_the_index_kind() -> None:
    """`is_mirror` was asked in 22 places in services; the kind now picks a source once."""
    uses = [
        f"{path.relative_to(SERVICES)}:{number}"
        for path in sorted(SERVICES.rglob("*.py"))
        for number, line in enumerate(path.read_text().splitlines(), 1)
        if re.search(r"\bis_mirror\b", line)
    ]
    assert uses == []


def test_a_stage_and_a_mirror_answer_for_themselves(services: Services, tmp_path: Path) -> None:
    stage = services.indexes.create("root", "root", "stage", {"bases": ""})
    mirror = services.indexes.create(
        "root",
        "root",
        "mirror",
        {"type": "mirror", "mirror_url": "https://example.invalid/simple/"},
    )
    wheel = build_wheel(tmp_path, "demo", "1.0")
    services.uploads.upload("root", "root", "stage", _request(wheel).command)
    stage_source = services.sources.source_for(stage)
    mirror_source = services.sources.source_for(mirror)
    with services.db.read() as conn:
        assert stage_source.project_names(conn) == ["demo"]
        assert stage_source.contributes(conn, "demo")
        assert not mirror_source.contributes(conn, "demo")  # no stored page lists it
        assert mirror_source.may_contribute(conn, "demo")  # until its upstream is asked
        assert mirror_source.cached_files(conn) == []
        with pytest.raises(errors.InvalidInput, match="is not a mirror index"):
            stage_source.cached_files(conn)
    assert (stage_source.follows_upstream, mirror_source.follows_upstream) == (False, True)
    assert stage_source.exports_files(False)
    assert not mirror_source.exports_files(False) and mirror_source.exports_files(True)
