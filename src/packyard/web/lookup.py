"""The services a request reaches, and the index it names (looked up through the boundary)."""

from __future__ import annotations

from starlette.requests import Request

from packyard.core.models import IndexRecord
from packyard.services import Services
from packyard.services.boundary import Boundary


def services_of(request: Request) -> Services:
    services: Services = request.app.state.services
    return services


def boundary_of(request: Request) -> Boundary:
    """The async use cases: what a handler awaits."""
    return services_of(request).boundary


async def request_index(request: Request) -> IndexRecord:
    """The index of `/{user}/{index}/...`."""
    params = request.path_params
    return await boundary_of(request).indexes.get(params["user"], params["index"])
