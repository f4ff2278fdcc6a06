"""Project statuses (PEP 792) and imported advisories: the SQL behind them."""

from __future__ import annotations

import time
from collections.abc import Iterable

from sqlalchemy import Connection, delete, func, insert, select

from packyard.core.advisories import Advisory
from packyard.core.status import ProjectStatus, Status
from packyard.storage.tables import advisories, project_statuses


def get_status(conn: Connection, index_id: int, project: str) -> ProjectStatus | None:
    """The status the index's owner set for `project`, None when none is set (active)."""
    query = select(project_statuses.c.status, project_statuses.c.reason).where(
        project_statuses.c.index_id == index_id, project_statuses.c.project == project
    )
    row = conn.execute(query).first()
    return ProjectStatus(Status(row.status), row.reason) if row else None


def put_status(conn: Connection, index_id: int, project: str, found: ProjectStatus) -> None:
    """Set (or, for active, clear) the status of `project` on the index."""
    conn.execute(
        delete(project_statuses).where(
            project_statuses.c.index_id == index_id, project_statuses.c.project == project
        )
    )
    if not found.is_active:
        conn.execute(
            insert(project_statuses).values(
                index_id=index_id, project=project, status=str(found.status),
                reason=found.reason, changed=time.time(),
            )
        )  # fmt: skip


def count_statuses(conn: Connection) -> dict[str, int]:
    """status -> how many hosted projects have it."""
    query = select(project_statuses.c.status, func.count()).group_by(project_statuses.c.status)
    return {status: count for status, count in conn.execute(query)}


def project_advisories(conn: Connection, project: str) -> list[Advisory]:
    query = select(advisories.c.data).where(advisories.c.project == project)
    return [Advisory.from_json(data) for (data,) in conn.execute(query)]


def put_advisories(conn: Connection, found: Iterable[Advisory]) -> int:
    """Store the advisories, each replacing what an earlier import said under its id."""
    rows = {(a.id, a.project): a for a in found}
    ids = sorted({advisory_id for advisory_id, _project in rows})
    for start in range(0, len(ids), 500):  # bounded IN lists
        conn.execute(delete(advisories).where(advisories.c.id.in_(ids[start : start + 500])))
    values = [
        {"id": a.id, "project": a.project, "malicious": int(a.malicious), "data": a.to_json()}
        for a in rows.values()
    ]
    if values:
        conn.execute(insert(advisories), values)
    return len(values)


def count_advisories(conn: Connection) -> dict[str, int]:
    """How many advisories are stored, and how many name malicious packages."""
    total = conn.execute(select(func.count()).select_from(advisories)).scalar_one()
    malicious = conn.execute(
        select(func.count()).select_from(advisories).where(advisories.c.malicious == 1)
    ).scalar_one()
    return {"advisories": total, "malicious": malicious}
