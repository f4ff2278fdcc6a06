"""Project status markers (PEP 792): what each status lets an index list, serve and accept.

A status belongs to a project on a hosted index (set by its owner) or comes with a mirror's
stored upstream page. `strictest` composes the statuses of every index contributing a project:
a quarantine on a base is never lifted by an index built on it.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Mapping
from enum import StrEnum
from typing import Any

from packyard.core.advisories import Advisory, Severity, naming
from packyard.core.advisories import refusal as advisory_refusal
from packyard.core.dists import parse_dist_filename
from packyard.core.simple import FileLink, ProjectPage
from packyard.errors import InvalidInput

MAX_REASON_LENGTH = 1000  # characters: a sentence or a link, not a document


class Status(StrEnum):
    """PEP 792's statuses, from the least to the most restrictive."""

    ACTIVE = "active"
    DEPRECATED = "deprecated"
    ARCHIVED = "archived"
    QUARANTINED = "quarantined"


_RANK = {status: rank for rank, status in enumerate(Status)}


@dataclasses.dataclass(frozen=True)
class ProjectStatus:
    status: Status = Status.ACTIVE
    reason: str = ""

    @property
    def is_active(self) -> bool:
        return self.status == Status.ACTIVE

    def to_json(self) -> dict[str, str]:
        """PEP 792's `project-status` object (the reason only when there is one)."""
        data = {"status": str(self.status)}
        if self.reason:
            data["reason"] = self.reason
        return data


ACTIVE = ProjectStatus()


def parse_status(status: object, reason: object = "") -> ProjectStatus:
    """A status a person asked for, else InvalidInput saying what is allowed."""
    allowed = ", ".join(s.value for s in Status)
    if not isinstance(status, str) or status.strip().lower() not in Status.__members__.values():
        raise InvalidInput(f"status must be one of {allowed}, not {status!r}")
    if reason is None:
        reason = ""
    if not isinstance(reason, str):
        raise InvalidInput("the reason must be a text")
    if len(reason) > MAX_REASON_LENGTH:
        raise InvalidInput(f"the reason is longer than {MAX_REASON_LENGTH} characters")
    return ProjectStatus(Status(status.strip().lower()), reason.strip())


def from_upstream(data: Mapping[str, Any] | None) -> ProjectStatus:
    """An upstream's `project-status` object; anything unknown or malformed counts as active
    (PEP 792: clients treat an unknown status as active), a reason is kept bounded."""
    if not isinstance(data, Mapping):
        return ACTIVE
    status, reason = data.get("status"), data.get("reason")
    if not isinstance(status, str) or status not in Status.__members__.values():
        return ACTIVE
    text = reason[:MAX_REASON_LENGTH] if isinstance(reason, str) else ""
    return ProjectStatus(Status(status), text)


def strictest(statuses: Iterable[ProjectStatus]) -> ProjectStatus:
    """The most restrictive of the statuses (active when there are none)."""
    return max(statuses, key=lambda found: _RANK[found.status], default=ACTIVE)


def lists_files(found: ProjectStatus) -> bool:
    """A quarantined project's page lists no files (PEP 792)."""
    return found.status != Status.QUARANTINED


def download_refusal(found: ProjectStatus, project: str) -> str | None:
    """Why a file of the project is not served, or None."""
    if found.status == Status.QUARANTINED:
        return f"The project {project} is quarantined{_because(found)}."
    return None


def upload_refusal(found: ProjectStatus, project: str) -> str | None:
    """Why nothing new may be uploaded to the project, or None (archived or quarantined)."""
    if found.status in (Status.ARCHIVED, Status.QUARANTINED):
        return f"The project {project} is {found.status} and takes no uploads{_because(found)}."
    return None


def _because(found: ProjectStatus) -> str:
    return f": {found.reason}" if found.reason else ""


@dataclasses.dataclass(frozen=True)
class ReleasePolicy:
    """What a project's status and its advisories decide for one project on one index:
    which versions its pages list and which of its files are refused, and why."""

    project: str
    status: ProjectStatus = ACTIVE
    advisories: tuple[Advisory, ...] = ()
    block: Severity | None = None  # the index's advisories_block_severity

    def refusal(self, version: str) -> str | None:
        """Why a file of `version` is refused, or None."""
        return download_refusal(self.status, self.project) or advisory_refusal(
            self.advisories, self.project, version, self.block
        )

    def naming(self, version: str) -> tuple[Advisory, ...]:
        return tuple(naming(self.advisories, version))

    def page(self, page: ProjectPage) -> ProjectPage:
        """The page with refused versions left out (every file, when quarantined), and the
        project's status on it."""
        if not lists_files(self.status):
            return dataclasses.replace(page, files=[], versions=[], status=self.status.to_json())
        refused = {v for v in {*page.versions, *map(_version_of, page.files)} if self.refusal(v)}
        files = [link for link in page.files if _version_of(link) not in refused]
        versions = [version for version in page.versions if version not in refused]
        return dataclasses.replace(
            page, files=files, versions=versions, status=self.status.to_json()
        )


def _version_of(link: FileLink) -> str:
    try:
        return str(parse_dist_filename(link.filename).version)
    except InvalidInput:
        return ""
