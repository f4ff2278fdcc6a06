"""Index lookup, configuration and push."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, TypeVar

from packyard.core import indexconfig
from packyard.core.models import IndexRecord
from packyard.services._threads import in_thread
from packyard.services.boundary.accounts import index_config_view
from packyard.services.readers import Reader
from packyard.services.transfer import PushResult

if TYPE_CHECKING:
    from packyard.services import Services

T = TypeVar("T")


@dataclasses.dataclass(frozen=True)
class ReadGrant:
    """An index the caller may read, and its bases they may not (left out of what they see)."""

    record: IndexRecord
    hidden_bases: tuple[str, ...]
    # Anonymous callers see all of it (the index and every base): what it shows is the same
    # for everyone, so a shared cache may keep it.
    public: bool = False


# Settings of an index that reads other indexes; the UI's form sends them for every kind.
READING_KEYS = ("bases", "mirror_whitelist")


class IndexUseCases:
    def __init__(self, services: Services) -> None:
        self._services = services
        self._indexes = services.indexes

    async def with_configs(self, fn: Callable[..., T], *args: Any) -> T:
        """`fn(*args)`, which reads only the index configuration: on the event loop while the
        configuration snapshot is current, else in a thread (reloading it runs SQL)."""
        if self._indexes.fresh() is not None:
            return fn(*args)
        return await in_thread(fn, *args)

    async def get(self, user: str, name: str) -> IndexRecord:
        return await self.with_configs(self._indexes.get, user, name)

    async def readable(self, caller: Reader, user: str, name: str) -> ReadGrant:
        """The index `user/name` if `caller` may read it (else Unauthenticated or Forbidden),
        and the bases they (or their token) may not: the one read check of every request
        under an index."""

        def check() -> ReadGrant:
            record = self._indexes.readable(caller.user, user, name)
            hidden = self._indexes.hidden_bases(record, caller)
            return ReadGrant(record, hidden, self._indexes.wholly_public(record))

        return await self.with_configs(check)

    async def resolution_order(self, record: IndexRecord) -> list[IndexRecord]:
        return await self.with_configs(self._indexes.resolution_order, record)

    async def view(
        self, viewer: str | None, user: str, name: str, with_projects: bool
    ) -> dict[str, Any]:
        record = await self.get(user, name)
        view = index_config_view(record, viewer)
        if with_projects:
            packages = self._services.packages
            view["projects"] = await in_thread(packages.own_project_names, record)
        return view

    async def create(
        self, actor: str | None, user: str, name: str, body: dict[str, Any]
    ) -> dict[str, Any]:
        record = await in_thread(self._indexes.create, actor, user, name, body)
        return index_config_view(record, actor)

    async def modify(
        self,
        actor: str | None,
        user: str,
        name: str,
        body: dict[str, Any] | list[str],
        error_on_noop: bool = False,
    ) -> dict[str, Any]:
        modify = self._indexes.modify
        record = await in_thread(modify, actor, user, name, body, error_on_noop)
        return index_config_view(record, actor)

    async def modify_from_form(
        self, actor: str | None, user: str, name: str, changes: dict[str, Any]
    ) -> dict[str, Any]:
        """The web UI's settings form: only what the index's kind has (a mirror has no bases
        nor whitelist to set)."""
        record = await self.get(user, name)
        known = indexconfig.keys_of(record.index_config)
        changes = {k: v for k, v in changes.items() if k in known or k not in READING_KEYS}
        return await self.modify(actor, user, name, changes)

    async def delete(self, actor: str | None, user: str, name: str) -> None:
        await in_thread(self._indexes.delete, actor, user, name)

    async def push(
        self, actor: str | None, user: str, name: str, body: dict[str, Any]
    ) -> PushResult:
        record = await self.get(user, name)
        return await self._services.transfer.push(actor, record, body)

    async def authorize_upload(self, actor: str | None, user: str, name: str) -> None:
        """Who may upload, decided before the body is read (on the loop when configs are
        current)."""
        authorize = self._services.uploads.authorize
        await self.with_configs(lambda: authorize(actor, user, name, self._indexes.fresh()))
