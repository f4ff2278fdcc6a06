"""Project statuses (PEP 792) on hosted indexes, and the release policy every page and file
lookup applies: status and advisories, decided by `core.status.ReleasePolicy`."""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import Connection

from packyard.core import acl
from packyard.core.advisories import refusal as advisory_refusal
from packyard.core.dists import parse_dist_filename
from packyard.core.models import IndexRecord
from packyard.core.status import ACTIVE, ProjectStatus, ReleasePolicy, strictest, upload_refusal
from packyard.errors import Forbidden, InvalidInput, NotFound, Unauthenticated
from packyard.services.sources import Source, Sources
from packyard.storage import statuses, store
from packyard.storage.db import Database


def release_policy(
    conn: Connection, record: IndexRecord, sources: Sequence[Source], project: str
) -> ReleasePolicy:
    """The policy for `project` as `record` serves it from `sources` (its contributors): the
    strictest of their statuses, every advisory naming it, the index's severity threshold."""
    return ReleasePolicy(
        project=project,
        status=strictest(source.project_status(conn, project) for source in sources),
        advisories=tuple(statuses.project_advisories(conn, project)),
        block=record.index_config.advisories_block_severity,
    )


def dist_of(filename: str) -> tuple[str, str] | None:
    """(project, version) a release file's name gives; None for other files (doc zips)."""
    try:
        dist = parse_dist_filename(filename.removesuffix(".metadata"))
    except InvalidInput:
        return None
    return dist.project, str(dist.version)


class ProjectStatuses:
    """Set a hosted project's status; say why a file or an upload is refused."""

    def __init__(self, db: Database, sources: Sources) -> None:
        self._db = db
        self._sources = sources

    def set_status(
        self, actor: str | None, record: IndexRecord, project: str, found: ProjectStatus
    ) -> None:
        """Mark `project` on a hosted index (its owner or root); active clears the mark."""
        refusal = record.index_config.status_refusal
        if refusal is not None:
            raise Forbidden(refusal)
        with self._db.read() as conn:
            _existing(conn, record, project)
        if actor is None:
            raise Unauthenticated("authentication required to set a project's status")
        if actor not in (acl.ROOT, record.user):
            raise Forbidden(f"only the owner of {record.full_name} or root may set its status")
        with self._db.write(
            "project-status", index=record.full_name, project=project,
            status=str(found.status), reason=found.reason,
        ) as conn:  # fmt: skip
            _existing(conn, record, project)
            statuses.put_status(conn, record.id, project, found)

    def file_refusal(self, record: IndexRecord, filename: str) -> str | None:
        """Why the index refuses to serve the release file `filename`, or None."""
        dist = dist_of(filename)
        if dist is None:
            return None
        project, version = dist
        source = self._sources.source_for(record)
        with self._db.read() as conn:
            return release_policy(conn, record, [source], project).refusal(version)

    def upload_refusal(
        self, conn: Connection, record: IndexRecord, project: str, version: str
    ) -> str | None:
        """Why an upload of `version` to the hosted project is refused (in the writer's
        transaction): an archived or quarantined project, or a quarantined version."""
        found = statuses.get_status(conn, record.id, project) or ACTIVE
        malicious = statuses.project_advisories(conn, project)
        return upload_refusal(found, project) or advisory_refusal(malicious, project, version, None)

    def counts(self) -> dict[str, int]:
        with self._db.read() as conn:
            return statuses.count_statuses(conn) | statuses.count_advisories(conn)


def _existing(conn: Connection, record: IndexRecord, project: str) -> None:
    if not store.has_project(conn, record.id, project):
        raise NotFound(f"The project {project} does not exist on {record.full_name}.")
