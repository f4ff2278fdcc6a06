"""Plain records passed between storage and services (no ORM objects leak up)."""

from __future__ import annotations

import dataclasses
from enum import StrEnum
from typing import Any

from packyard.core import indexconfig
from packyard.core.indexconfig import IndexConfig


class FileKind(StrEnum):
    """What a stored file is: devpi's `type` of an export entry and `rel` of a link."""

    RELEASE = "releasefile"
    DOCZIP = "doczip"
    TOXRESULT = "toxresult"


class PageStatus(StrEnum):
    """A mirror's stored upstream page: the project exists upstream, or it does not."""

    OK = "ok"
    MISSING = "missing"


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
    config: dict[str, Any]  # the wire form (devpi's keys): stored, exported, sent as JSON
    # The typed form of `config`, parsed once: what code reads (never `config.get`).
    index_config: IndexConfig = dataclasses.field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "index_config", indexconfig.parse(self.config))

    @property
    def full_name(self) -> str:
        return f"{self.user}/{self.name}"

    @property
    def is_mirror(self) -> bool:
        return self.index_config.is_mirror

    @property
    def volatile(self) -> bool:
        return self.index_config.volatile


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
    kind: FileKind
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
    status: PageStatus
    fetched_at: float
    etag: str | None
    last_modified: str | None
    upstream_serial: int | None
    links: list[dict[str, Any]]
    # The upstream's PEP 792 `project-status` object, passed through (None: not stated).
    project_status: dict[str, Any] | None = None


@dataclasses.dataclass(frozen=True)
class MirrorList:
    """A mirror's stored copy of the upstream's full project list (names in a blob)."""

    index_id: int
    fetched_at: float
    etag: str | None
    names_sha256: str
    count: int
