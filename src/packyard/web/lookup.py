"""Finding the index a request names without blocking the event loop on the database."""

from __future__ import annotations

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request

from packyard.core.models import IndexRecord
from packyard.services import Services


def services_of(request: Request) -> Services:
    services: Services = request.app.state.services
    return services


async def request_index(request: Request) -> IndexRecord:
    """The index of `/{user}/{index}/...`."""
    return await index_named(request, request.path_params["user"], request.path_params["index"])


async def index_named(request: Request, user: str, name: str) -> IndexRecord:
    """An index by name; the config snapshot, when stale, is reloaded off the event loop."""
    indexes = services_of(request).indexes
    snapshot = indexes.fresh()
    if snapshot is None:
        snapshot = await run_in_threadpool(indexes.all)
    return indexes.get(user, name, snapshot)
