"""What the web UI's pages, the status page and the cached simple pages show."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Hashable
from typing import TYPE_CHECKING, Any, TypeVar

from packyard import __version__
from packyard.core import acl
from packyard.core.models import IndexRecord, MirrorList, User
from packyard.core.names import split_index_name
from packyard.core.status import ProjectStatus
from packyard.errors import NotFound, UpstreamUnavailable
from packyard.services._threads import in_thread
from packyard.services.boundary.indexes import IndexUseCases
from packyard.services.boundary.packages import PackageUseCases
from packyard.services.readmes import Description
from packyard.services.sources import Release
from packyard.storage.search import SearchHit

if TYPE_CHECKING:
    from packyard.services import Services

Body = TypeVar("Body")
# The devpi-server release whose protocol the API implements (devpi-protocol.md), reported in
# /+status `versioninfo` as devpi does: clients and scripts read the protocol level from the
# `devpi-server` entry, and the `packyard` entry beside it says which server really answers.
DEVPI_SERVER_COMPATIBLE = "6.20.3"


@dataclasses.dataclass(frozen=True)
class IndexPage:
    record: IndexRecord
    order: list[IndexRecord]
    projects: list[tuple[str, str]]  # (name, the index it comes from)


@dataclasses.dataclass(frozen=True)
class VersionPage:
    release: Release
    description: Description | None
    can_change: bool


class PageUseCases:
    def __init__(
        self, services: Services, indexes: IndexUseCases, packages: PackageUseCases
    ) -> None:
        self._services = services
        self._indexes = indexes
        self._packages = packages

    async def cached(
        self,
        key: Hashable,
        render: Callable[[], Body],
        current: Callable[[Body], bool] | None = None,
    ) -> Body:
        """The rendering kept for `key` until the next change (or until `current` says it
        is out of date: e.g. a held version's cooldown ended); rendered (it reads the
        database) in a thread when missing or stale."""
        pages = self._services.pages
        known = pages.get(key)
        if known is not None and (current is None or current(known)):  # type: ignore[arg-type]
            return known  # type: ignore[return-value]  # each key holds one kind of body
        serial = pages.current()
        fresh = await in_thread(render)
        pages.store(key, fresh, serial)
        return fresh

    async def rendered(self, render: Callable[[], Body]) -> Body:
        """A rendering not kept per change serial (its caller keeps it its own way)."""
        return await in_thread(render)

    async def project_list(self, user: str, index: str) -> tuple[IndexRecord, MirrorList | None]:
        """The index, and for a mirror its stored upstream list (refreshed when stale)."""
        record = await self._indexes.get(user, index)
        return record, await self._services.sources.source_for(record).project_list()

    async def simple_project(
        self, user: str, index: str, project: str
    ) -> tuple[IndexRecord, list[UpstreamUnavailable]]:
        """The index of a simple project page, its mirrors brought up to date first."""
        record = await self._indexes.get(user, index)
        return record, await self._packages.refresh_mirrors(record, project)

    async def status(self, viewer: str | None) -> dict[str, Any]:
        """Server facts; where it runs and its caches only for root (they help an attacker)."""
        services = self._services
        result: dict[str, Any] = {
            "versioninfo": {"devpi-server": DEVPI_SERVER_COMPATIBLE, "packyard": __version__},
            "serial": services.serial,
            "role": "MASTER",
            # Projects marked per status, advisories known: what the index holds back.
            "held-back": await in_thread(services.statuses.counts),
        }
        if viewer == acl.ROOT:
            result |= {
                "serverdir": str(services.settings.serverdir),
                "host": services.settings.host,
                "port": services.settings.port,
                "outside-url": services.settings.outside_url or None,
                "offline": services.settings.offline,
                "mirror-cache": services.mirrors.stats.as_dict(),
                # What mirror cooldowns hold back, per index (this worker's count).
                "held-back": services.sources.hold_counts.as_dict(),
            }
        return result

    async def users(self, viewer: str | None) -> list[tuple[User, list[IndexRecord]]]:
        """Every user and the indexes `viewer` may read; none when users are hidden from
        anonymous visitors."""
        services = self._services
        if viewer is None and services.settings.hide_users_from_anonymous:
            return []

        def gather() -> list[tuple[User, list[IndexRecord]]]:
            indexes = services.indexes
            listed = services.accounts.list()
            return [(user, indexes.readable_of_user(user.name, viewer)) for user in listed]

        return await in_thread(gather)

    async def user(self, name: str, viewer: str | None) -> tuple[User, list[IndexRecord]]:
        services = self._services
        services.boundary.accounts.check_users_visible(viewer)
        return await in_thread(
            lambda: (services.accounts.get(name), services.indexes.readable_of_user(name, viewer))
        )

    async def index(self, user: str, name: str) -> IndexPage:
        record = await self._indexes.get(user, name)
        packages = self._services.packages
        order = await self._indexes.resolution_order(record)

        def gather() -> list[tuple[str, str]]:
            sources: dict[str, str] = {}
            for item in order:
                for project in packages.listed_project_names(item):
                    sources.setdefault(project, item.full_name)
            return sorted(sources.items())

        return IndexPage(record, order, await in_thread(gather))

    async def project(
        self, user: str, index: str, project: str
    ) -> tuple[IndexRecord, list[Release], str | None]:
        """The index, the releases of `project` and the mirror that blocks it, if any."""
        record = await self._indexes.get(user, index)
        packages = self._services.packages

        def gather() -> tuple[list[Release], str | None]:
            return packages.releases(record, project), packages.blocked_mirror(record, project)

        releases, blocked = await in_thread(gather)
        return record, releases, blocked

    async def project_status(
        self, user: str, index: str, project: str, viewer: str | None
    ) -> tuple[ProjectStatus, bool]:
        """`project`'s PEP 792 status as the index serves it, and whether `viewer` may set it
        (a hosted project: its index's owner or root)."""
        record = await self._indexes.get(user, index)
        found = await in_thread(self._services.packages.project_status, record, project)
        settable = record.index_config.status_refusal is None
        may_set = settable and viewer in (acl.ROOT, record.user)
        return found, may_set

    async def version(
        self, user: str, index: str, project: str, version: str, viewer: str | None
    ) -> tuple[IndexRecord, VersionPage]:
        record = await self._indexes.get(user, index)
        releases = await in_thread(self._services.packages.releases, record, project)
        release = next((r for r in releases if r.version == version), None)
        if release is None:
            raise NotFound(f"The version {version} of project {project} does not exist.")
        owner = await self._indexes.get(*split_index_name(release.index))
        can_change = release.index == record.full_name and acl.may_delete_entries(
            viewer, owner.user, owner.index_config.acl_upload
        )
        description = await in_thread(self._services.readmes.describe, release.metadata)
        return record, VersionPage(release, description, can_change)

    async def search(self, query: str, viewer: str | None) -> list[tuple[str, SearchHit]]:
        """Hits in the indexes `viewer` may read (the others' are not shown at all)."""
        if not query:
            return []
        services = self._services

        def readable_hits() -> list[tuple[str, SearchHit]]:
            hits, indexes = services.packages.search(query), services.indexes.all()
            may_read = services.indexes.may_read
            return [
                (name, hit)
                for name, hit in hits
                if name in indexes and may_read(viewer, indexes[name])
            ]

        return await in_thread(readable_hits)
