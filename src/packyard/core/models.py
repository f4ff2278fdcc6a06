"""Plain records passed between storage and services (no ORM objects leak up)."""

from __future__ import annotations

import dataclasses
from typing import Any


@dataclasses.dataclass(frozen=True)
class User:
    name: str
    pwhash: str | None
    pwsalt: str | None
    info: dict[str, Any]
    created: str
    modified: str | None
    # Bound into the user's login tokens; empty means "issue a new one" when stored.
    token_stamp: str = ""


@dataclasses.dataclass(frozen=True)
class IndexRecord:
    id: int
    user: str
    name: str
    config: dict[str, Any]

    @property
    def full_name(self) -> str:
        return f"{self.user}/{self.name}"

    @property
    def is_mirror(self) -> bool:
        return bool(self.config.get("type") == "mirror")

    @property
    def volatile(self) -> bool:
        return bool(self.config.get("volatile", True))


@dataclasses.dataclass(frozen=True)
class VersionRecord:
    id: int
    index_id: int
    project: str
    version: str
    metadata: dict[str, Any]
    created: float


@dataclasses.dataclass(frozen=True)
class FileRecord:
    id: int
    index_id: int
    project: str
    version: str
    filename: str
    kind: str  # releasefile | doczip | toxresult
    sha256: str
    size: int
    uploaded_at: float
    yanked: str | None
    metadata_sha256: str | None
    requires_python: str | None
    for_file: str | None
    log: list[dict[str, Any]]
    dir_sha256: str | None = None  # toxresults: the release file's hash

    @property
    def relpath(self) -> str:
        """devpi's hash directory: +f/<3 hex>/<13 hex>/<filename>."""
        sha = self.dir_sha256 or self.sha256
        return f"+f/{sha[:3]}/{sha[3:16]}/{self.filename}"


@dataclasses.dataclass(frozen=True)
class MirrorPage:
    """A mirror's stored copy of an upstream project page (links as `MirrorLink.to_json`)."""

    index_id: int
    project: str
    status: str  # "ok" | "missing"
    fetched_at: float
    etag: str | None
    last_modified: str | None
    upstream_serial: int | None
    links: list[dict[str, Any]]


@dataclasses.dataclass(frozen=True)
class MirrorList:
    """A mirror's stored copy of the upstream's full project list (names in a blob)."""

    index_id: int
    fetched_at: float
    etag: str | None
    names_sha256: str
    count: int
