"""Exemptions ("break glass"): allow a project, or one version, past a mirror's cooldown; and
what the holds left out, counted per index for /+status.

Every change is one named write (`exemption-add`, `exemption-remove`): the audit trail records
who made it and when, with the project, version, reason and expiry as its detail.
"""

from __future__ import annotations

import dataclasses
import threading
from datetime import UTC, datetime
from typing import Any

from packaging.version import InvalidVersion, Version

from packyard.config import Settings
from packyard.core import acl
from packyard.core.cooldown import Exemption, parse_moment
from packyard.core.models import IndexRecord
from packyard.core.names import normalize_project
from packyard.errors import Forbidden, InvalidInput, NotFound
from packyard.storage import exemptions as stored
from packyard.storage.db import Database

MAX_REASON = 500  # characters
# Projects whose held versions one worker counts per index (a bounded memory).
MAX_COUNTED_PROJECTS = 10_000


class Exemptions:
    """List, add and remove the exemptions of a mirror index (its managers only)."""

    def __init__(self, db: Database, settings: Settings) -> None:
        self._db = db
        self._settings = settings

    def list(self, actor: str | None, record: IndexRecord) -> list[Exemption]:
        """Its managers' list (reasons may name internal incidents, as the UI's list does)."""
        self._check_may_manage(actor, record)
        with self._db.read() as conn:
            return stored.of_index(conn, record.id)

    def add(
        self,
        actor: str | None,
        record: IndexRecord,
        project: str,
        version: str | None,
        reason: str,
        expires: str | None,
    ) -> Exemption:
        self._check_may_manage(actor, record)
        exemption = new_exemption(project, version, reason, expires, actor or "")
        detail: dict[str, Any] = {
            "project": exemption.project,
            "version": exemption.version,
            "reason": exemption.reason,
            "expires": exemption.expires.isoformat() if exemption.expires else None,
        }
        with self._db.write("exemption-add", index=record.full_name, **detail) as conn:
            exemption_id = stored.add(conn, record.id, exemption)
        return dataclasses.replace(exemption, id=exemption_id)

    def remove(self, actor: str | None, record: IndexRecord, exemption_id: int) -> Exemption:
        self._check_may_manage(actor, record)
        with self._db.write("exemption-remove", index=record.full_name, id=exemption_id) as conn:
            removed = stored.remove(conn, record.id, exemption_id)
            if removed is None:
                raise NotFound(f"{record.full_name} has no exemption {exemption_id}")
        return removed

    def _check_may_manage(self, actor: str | None, record: IndexRecord) -> None:
        refusal = record.index_config.exemption_refusal
        if refusal is not None:
            raise InvalidInput(f"{record.full_name} {refusal}")
        if not acl.may_manage_index(actor, record.user, self._settings.restrict_modify):
            raise Forbidden(f"no permission to change the exemptions of {record.full_name}")


def new_exemption(
    project: str, version: str | None, reason: str, expires: str | None, created_by: str
) -> Exemption:
    """An exemption from what a client sent, checked: a reason is required."""
    reason = (reason or "").strip()
    if not reason:
        raise InvalidInput("an exemption needs a reason (who asked, and why)")
    if len(reason) > MAX_REASON:
        raise InvalidInput(f"the reason is longer than {MAX_REASON} characters")
    if not project or not str(project).strip():
        raise InvalidInput("an exemption needs a project")
    return Exemption(
        project=normalize_project(str(project)),
        version=_version(version),
        reason=reason,
        expires=parse_moment(expires, "expires") if expires else None,
        created_by=created_by,
        created=datetime.now(UTC),
    )


def _version(text: str | None) -> str | None:
    if text is None or not str(text).strip():
        return None
    try:
        return str(Version(str(text)))
    except InvalidVersion as exc:
        raise InvalidInput(f"{text!r} is not a valid version") from exc


class HoldCounts:
    """What holds left out, per mirror index, as this worker last rendered it."""

    def __init__(self) -> None:
        self._held: dict[str, dict[str, int]] = {}  # index -> project -> versions held
        self._refused: dict[str, int] = {}  # index -> file requests refused
        self._lock = threading.Lock()

    def rendered(self, index: str, project: str, versions_held: int) -> None:
        with self._lock:
            projects = self._held.setdefault(index, {})
            if versions_held:
                if len(projects) >= MAX_COUNTED_PROJECTS and project not in projects:
                    projects.clear()
                projects[project] = versions_held
            else:
                projects.pop(project, None)

    def refused(self, index: str) -> None:
        with self._lock:
            self._refused[index] = self._refused.get(index, 0) + 1

    def as_dict(self) -> dict[str, dict[str, int]]:
        with self._lock:
            names = sorted(set(self._held) | set(self._refused))
            return {
                name: {
                    "projects-held": len(self._held.get(name, {})),
                    "versions-held": sum(self._held.get(name, {}).values()),
                    "files-refused": self._refused.get(name, 0),
                }
                for name in names
            }
