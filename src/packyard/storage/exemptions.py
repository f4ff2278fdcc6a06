"""The exemptions table: break-glass allowances past a mirror's cooldown."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Connection, Row, delete, insert, select

from packyard.core.cooldown import Exemption
from packyard.storage.tables import exemptions


def _moment(value: float | None) -> datetime | None:
    return None if value is None else datetime.fromtimestamp(value, UTC)


def _exemption(row: Row[Any]) -> Exemption:
    return Exemption(
        project=row.project,
        version=row.version,
        reason=row.reason,
        expires=_moment(row.expires),
        created_by=row.created_by,
        created=_moment(row.created),
        id=row.id,
    )


def of_index(conn: Connection, index_id: int, project: str | None = None) -> list[Exemption]:
    """The exemptions of an index (of one project, when named), oldest first."""
    query = select(exemptions).where(exemptions.c.index_id == index_id)
    if project is not None:
        query = query.where(exemptions.c.project == project)
    return [_exemption(row) for row in conn.execute(query.order_by(exemptions.c.id))]


def add(conn: Connection, index_id: int, exemption: Exemption) -> int:
    created = exemption.created or datetime.now(UTC)
    values = {
        "index_id": index_id,
        "project": exemption.project,
        "version": exemption.version,
        "reason": exemption.reason,
        "expires": exemption.expires.timestamp() if exemption.expires else None,
        "created_by": exemption.created_by,
        "created": created.timestamp(),
    }
    result = conn.execute(insert(exemptions).values(**values))
    return int(result.inserted_primary_key[0])  # type: ignore[index]


def remove(conn: Connection, index_id: int, exemption_id: int) -> Exemption | None:
    """Delete one exemption; what it was, or None when there was none."""
    query = select(exemptions).where(
        exemptions.c.index_id == index_id, exemptions.c.id == exemption_id
    )
    row = conn.execute(query).first()
    if row is None:
        return None
    conn.execute(delete(exemptions).where(exemptions.c.id == exemption_id))
    return _exemption(row)
