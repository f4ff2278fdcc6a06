"""What a mirror keeps of an upstream project page, and how its files are addressed."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime
from typing import Any

from packyard.core.models import FileRecord, MirrorPage
from packyard.core.simple import FileLink, upload_time_text


@dataclasses.dataclass(frozen=True)
class MirrorLink:
    """One file of an upstream page, with everything the upstream said about it."""

    filename: str
    url: str  # absolute upstream URL, without fragment
    sha256: str
    size: int | None = None
    upload_time: str | None = None  # PEP 700 text, as the upstream sent it
    requires_python: str | None = None
    yanked: str | None = None  # None: not yanked; "" yanked without reason
    core_metadata: bool = False
    core_metadata_sha256: str | None = None

    @property
    def relpath(self) -> str:
        return f"+f/{self.sha256[:3]}/{self.sha256[3:16]}/{self.filename}"

    def to_json(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> MirrorLink:
        fields = {field.name for field in dataclasses.fields(cls)}
        return cls(**{key: value for key, value in data.items() if key in fields})

    def file_link(
        self, index: str, cached_size: int | None, cached_metadata_sha256: str | None
    ) -> FileLink:
        """The link as this server serves it: under the mirror index, hash set unchanged."""
        return FileLink(
            filename=self.filename,
            url=f"{index}/{self.relpath}",
            sha256=self.sha256,
            size=self.size if self.size is not None else cached_size,
            index=index,
            upload_time=parse_upload_time(self.upload_time),
            requires_python=self.requires_python,
            yanked=self.yanked,
            core_metadata_sha256=self.core_metadata_sha256 or cached_metadata_sha256,
        )


def parse_upload_time(text: str | None) -> datetime | None:
    if not text:
        return None
    try:
        moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return None
    return moment.astimezone(UTC) if moment.tzinfo else moment.replace(tzinfo=UTC)


def is_fresh(fetched_at: float, expiry: int, now: float) -> bool:
    return now - fetched_at < expiry


def page_of_cached_files(index_id: int, project: str, files: list[FileRecord]) -> MirrorPage:
    """The last known state of a mirrored project when only its files are known (an import):
    served like any stored page, and stale at once, so an upstream that answers replaces it.
    The files are on disk: their upstream URL is never needed."""
    links = [
        MirrorLink(
            filename=file.filename, url="", sha256=file.sha256, size=file.size,
            upload_time=upload_time_text(datetime.fromtimestamp(file.uploaded_at, UTC)),
            requires_python=file.requires_python, yanked=file.yanked,
            core_metadata=file.metadata_sha256 is not None,
            core_metadata_sha256=file.metadata_sha256,
        ).to_json()
        for file in files
        if file.kind == "releasefile"
    ]  # fmt: skip
    return MirrorPage(index_id, project, "ok", 0.0, None, None, None, links)
