"""Exemptions past a mirror's cooldown, and what holds leave out, as the web layer awaits them."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from packyard.core.cooldown import Exemption, Hold, moment_text
from packyard.services._threads import in_thread
from packyard.services.boundary.indexes import IndexUseCases

if TYPE_CHECKING:
    from packyard.services import Services


class ExemptionUseCases:
    def __init__(self, services: Services, indexes: IndexUseCases) -> None:
        self._services = services
        self._indexes = indexes

    async def list(self, actor: str | None, user: str, index: str) -> list[Exemption]:
        record = await self._indexes.get(user, index)
        return await in_thread(self._services.exemptions.list, actor, record)

    async def add(
        self, actor: str | None, user: str, index: str, request: dict[str, Any]
    ) -> Exemption:
        """`request`: {"project", "version" (optional), "reason", "expires" (optional ISO)}."""
        record = await self._indexes.get(user, index)
        return await in_thread(
            self._services.exemptions.add, actor, record,
            str(request.get("project") or ""), _text(request.get("version")),
            str(request.get("reason") or ""), _text(request.get("expires")),
        )  # fmt: skip

    async def remove(self, actor: str | None, user: str, index: str, exemption_id: int) -> None:
        record = await self._indexes.get(user, index)
        await in_thread(self._services.exemptions.remove, actor, record, exemption_id)

    async def held(self, user: str, index: str, project: str) -> dict[str, Hold]:
        """The versions of `project` held back now, its mirrors brought up to date first."""
        record = await self._indexes.get(user, index)
        await self._services.boundary.packages.refresh_mirrors(record, project)
        return await in_thread(self._services.packages.held, record, project)


def _text(value: object) -> str | None:
    return None if value is None or value == "" else str(value)


def exemption_view(exemption: Exemption) -> dict[str, Any]:
    """An exemption as the API shows it."""
    return {
        "id": exemption.id,
        "project": exemption.project,
        "version": exemption.version,
        "reason": exemption.reason,
        "expires": moment_text(exemption.expires) if exemption.expires else None,
        "created_by": exemption.created_by,
        "created": moment_text(exemption.created) if exemption.created else None,
    }


def hold_view(hold: Hold) -> dict[str, Any]:
    return {"reason": hold.reason, "until": moment_text(hold.until) if hold.until else None}
