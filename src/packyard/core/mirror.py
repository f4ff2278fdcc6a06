"""What a mirror keeps of an upstream project page, and how its files are addressed."""

from __future__ import annotations

import dataclasses
import hashlib
from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Any

from packyard.core.models import FileKind, FileRecord, MirrorPage, PageStatus
from packyard.core.simple import FileLink, upload_time_text


@dataclasses.dataclass(frozen=True)
class MirrorLink:
    """One file of an upstream page, with everything the upstream said about it."""

    filename: str
    url: str  # absolute upstream URL, without fragment
    sha256: str  # "" while unknown: the upstream gave none and the file was never fetched
    size: int | None = None
    upload_time: str | None = None  # PEP 700 text, as the upstream sent it
    requires_python: str | None = None
    yanked: str | None = None  # None: not yanked; "" yanked without reason
    core_metadata: bool = False
    core_metadata_sha256: str | None = None
    # The upstream gave no hash: `sha256` is what the first download had, and every later
    # download must have it too (trust on first use).
    trusted_on_first_use: bool = False

    @property
    def relpath(self) -> str:
        directory = self.directory_hash
        return f"+f/{directory[:3]}/{directory[3:16]}/{self.filename}"

    @property
    def directory_hash(self) -> str:
        """What names the file's +f/ directory: its hash, or for a file trusted on first use
        one made from its name, so its link is the same before and after the first download."""
        if self.trusted_on_first_use:
            return trusted_directory(self.filename)
        return self.sha256

    def to_json(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> MirrorLink:
        fields = {field.name for field in dataclasses.fields(cls)}
        return cls(**{key: value for key, value in data.items() if key in fields})

    def file_link(self, index: str, cached: FileRecord | None) -> FileLink:
        """The link as this server serves it: under the mirror index, hash set unchanged
        (a hash the upstream did not give is known once the file is cached)."""
        cached_size, cached_metadata_sha256 = (
            (cached.size, cached.metadata_sha256) if cached else (None, None)
        )
        return FileLink(
            filename=self.filename,
            url=f"{index}/{self.relpath}",
            sha256=self.sha256 or (cached.sha256 if cached else ""),
            size=self.size if self.size is not None else cached_size,
            index=index,
            upload_time=parse_upload_time(self.upload_time),
            requires_python=self.requires_python,
            yanked=self.yanked,
            core_metadata_sha256=self.core_metadata_sha256 or cached_metadata_sha256,
            trusted_on_first_use=self.trusted_on_first_use,
        )


def trusted_directory(filename: str) -> str:
    """The +f/ directory hash of a file whose upstream gave no hash (unique per index, as
    the file name is)."""
    return hashlib.sha256(f"trusted-on-first-use/{filename}".encode()).hexdigest()


def keep_known_hashes(
    fresh: Iterable[MirrorLink], stored: Iterable[MirrorLink], cached: Iterable[FileRecord]
) -> list[MirrorLink]:
    """The links of a newly fetched page, each given the hash this mirror already holds to.

    A file once cached never changes: its hash stays whatever the upstream declares now (a
    release on the upstream is immutable too, so another hash means another, swapped file).
    A hash trusted on first use stays too, cached or not: an upstream that later serves other
    bytes, with or without declaring their hash, is refused at the download. A hash-less link
    gets the hash an earlier page recorded. Otherwise the upstream's declared hash is its word.
    """
    recorded = {link.filename: link for link in stored if link.sha256}
    held = {
        file.filename: MirrorLink(
            file.filename,
            "",
            file.sha256,
            trusted_on_first_use=file.dir_sha256 == trusted_directory(file.filename),
        )
        for file in cached
        if file.kind == FileKind.RELEASE
    }
    kept = []
    for link in fresh:
        before = held.get(link.filename) or recorded.get(link.filename)
        if before is not None and (
            link.filename in held or not link.sha256 or before.trusted_on_first_use
        ):
            link = dataclasses.replace(
                link, sha256=before.sha256, trusted_on_first_use=before.trusted_on_first_use
            )
        kept.append(link)
    return kept


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
        if file.kind == FileKind.RELEASE
    ]  # fmt: skip
    return MirrorPage(index_id, project, PageStatus.OK, 0.0, None, None, None, links)
