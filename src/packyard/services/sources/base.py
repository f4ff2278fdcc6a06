"""What every index kind answers as a source of projects and files (the `Source` protocol),
and the values its answers are made of."""

from __future__ import annotations

import dataclasses
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any, ClassVar, Protocol

from packaging.version import InvalidVersion, Version
from sqlalchemy import Connection

from packyard.core.advisories import Advisory
from packyard.core.cooldown import Hold, Holds
from packyard.core.mirror import MirrorLink
from packyard.core.models import FileRecord, IndexRecord, MirrorList
from packyard.core.simple import FileLink
from packyard.core.status import ProjectStatus
from packyard.errors import NotFound


@dataclasses.dataclass(frozen=True)
class Release:
    """One version of a project as an index serves it, and the index it comes from."""

    version: str
    index: str
    metadata: dict[str, Any]
    files: list[FileLink]
    attachments: list[FileRecord]  # doc zips and tox results (hosted releases only)
    held: Hold | None = None  # held back by its mirror's cooldown now (shown, not served)
    # Why the index refuses this version (project status, advisories), if it does.
    refused: str | None = None
    advisories: tuple[Advisory, ...] = ()  # every advisory naming it, malicious first


@dataclasses.dataclass(frozen=True)
class Dropped:
    """What deleting a project from a mirror did: its cached files are fetched again."""

    count: int
    size: int


@dataclasses.dataclass(frozen=True)
class Upstream:
    """A mirror file not cached yet: its link and its bytes as they arrive (being cached)."""

    link: MirrorLink
    chunks: AsyncIterator[bytes] | None
    # A `.metadata` file beside it, extracted whole (no streaming).
    whole: bytes | None = None


VersionData = tuple[str, dict[str, Any]]  # (version, devpi's versiondata)


class Source(Protocol):
    """One index as a source of projects and files; its kind decides every answer.

    Reads take the caller's connection (one consistent snapshot for a whole walk of the
    resolution order); what follows an upstream is async (it may ask the upstream)."""

    record: IndexRecord
    # Its pages follow an upstream: bring them up to date before reading them.
    follows_upstream: ClassVar[bool]
    # Its files are copies of an upstream's: a damaged one is dropped and fetched again.
    files_are_copies: ClassVar[bool]

    # --- what it holds (one read transaction) -----------------------------------------------
    def contributes(self, conn: Connection, project: str) -> bool:
        """Does `project` have a page here now (a mirror: a stored page listing it)?"""

    def may_contribute(self, conn: Connection, project: str) -> bool:
        """Could `project` have a page here (a mirror: any name, until its upstream says)?"""

    def project_names(self, conn: Connection) -> list[str]:
        """The projects this index itself lists."""

    def page_links(self, conn: Connection, project: str) -> tuple[list[FileLink], set[str]]:
        """The release links of `project`'s simple page, and every version it has."""

    def releases(self, conn: Connection, project: str) -> list[Release]:
        """`project`'s versions with their files (the web pages); held ones marked."""

    def holds(self, conn: Connection, project: str) -> Holds:
        """What its serve-time policy holds back of `project` (core/cooldown.py); pages,
        devpi's JSON and file lookups leave out what `Holds.held_at(now)` names."""

    def project_status(self, conn: Connection, project: str) -> ProjectStatus:
        """`project`'s PEP 792 status here (a stage: its owner's; a mirror: its upstream's)."""

    def versions_data(self, conn: Connection, project: str, base_url: str) -> list[VersionData]:
        """`project`'s versions as devpi's JSON views show them (§11)."""

    def cached_files(self, conn: Connection) -> list[FileRecord]:
        """The files it keeps as copies of an upstream's (bundle sources)."""

    # --- export and import -----------------------------------------------------------------
    def exports_files(self, include_mirrored_files: bool) -> bool:
        """Does an export carry its files (else its configuration alone)?"""

    def exported_projects(
        self, conn: Connection, files: list[FileRecord]
    ) -> dict[str, dict[str, Any]]:
        """project -> version -> metadata, as a devpi dump holds them."""

    def imported(self, conn: Connection, files: list[FileRecord]) -> None:
        """Settle what an import stored into it (`files`: every file imported)."""

    # --- changes ---------------------------------------------------------------------------
    async def delete_project(self, actor: str | None, project: str, force: bool) -> Dropped | None:
        """Delete `project` (a mirror drops its cached copies instead, and says how many)."""

    # --- following an upstream -------------------------------------------------------------
    async def refresh(self, project: str) -> None:
        """Bring `project`'s page up to date if it is stale (a stage's always is)."""

    async def ask_again(self, project: str) -> None:
        """devpi's refresh: forget what is known of `project` and ask the upstream now."""

    async def project_list(self) -> MirrorList | None:
        """The upstream's full project list, when the index shows that instead of its own."""

    async def missing_file(self, relpath: str, not_stored: NotFound) -> Upstream:
        """A +f path not stored here: fetched from the upstream, else `not_stored` raised."""

    async def missing_file_meta(self, relpath: str, not_stored: NotFound) -> dict[str, Any]:
        """devpi's `releasefilemeta` of a +f path not stored here, else `not_stored` raised."""

    def served(self, file: FileRecord, path: Path) -> None:
        """Note that a stored file was served."""


def version_sort_key(text: str) -> tuple[int, Version | str]:
    try:
        return (1, Version(text))
    except InvalidVersion:
        return (0, text)
