"""The read check in front of every route under `/{user}/{index}`.

It is applied to the route table (`with_read_check`), not by handlers: a route added under
`/{user}/{index}` gets it by construction, whatever its handler looks up or caches. It asks the
one use case `indexes.readable` (401 for anonymous callers, 403 for others), and runs the
endpoint as that caller's reader (with their API token's scope), so that every resolution
order computed for the request leaves out the bases they, or their token, may not read
(services/readers.py).
"""

from __future__ import annotations

import functools
from collections.abc import Awaitable, Callable

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from packyard.errors import NotFound
from packyard.services.boundary.indexes import ReadGrant
from packyard.services.readers import Reader, reading_as
from packyard.web.auth import api_token, reader
from packyard.web.lookup import services_of

Endpoint = Callable[[Request], Awaitable[Response]]
GRANT_KEY = "packyard.read_grant"
READ_CHECKED = "packyard_read_checked"
NO_CONTENT = "packyard_reveals_no_index_content"
# The request headers whose credentials change what a response shows.
CREDENTIAL_HEADERS = ("Authorization", "Cookie", "X-Devpi-Auth")


def hidden_bases(request: Request) -> tuple[str, ...]:
    """The bases of the request's index its caller may not read: a rendering for them lacks
    these, so it is kept apart from others' (part of a cached page's key)."""
    grant: ReadGrant | None = request.scope.get(GRANT_KEY)
    return grant.hidden_bases if grant is not None else ()


def reveals_no_content(endpoint: Endpoint) -> Endpoint:
    """Marks an endpoint under `/{user}/{index}` that shows nothing of the index (endpoint
    discovery, so `devpi use` works before `devpi login`): it skips the read check."""
    setattr(endpoint, NO_CONTENT, True)
    return endpoint


def read_checked(endpoint: Endpoint) -> Endpoint:
    """`endpoint` behind the read check of the index its path names (see module doc)."""

    @functools.wraps(endpoint)
    async def checked(request: Request) -> Response:
        services = services_of(request)
        caller = await reader(request, services)
        token = api_token(request)
        viewer = Reader(caller, token.scope if token is not None else None)
        params = request.path_params
        try:
            grant = await services.boundary.indexes.readable(
                viewer, params["user"], params["index"]
            )
        except NotFound:
            grant = None  # the endpoint says what is missing (or, for PUT, creates it)
        request.scope[GRANT_KEY] = grant
        with reading_as(viewer):
            response = await endpoint(request)
        if grant is not None and not grant.public:
            keep_out_of_shared_caches(response)
        return response

    setattr(checked, READ_CHECKED, True)
    return checked


def keep_out_of_shared_caches(response: Response) -> None:
    """What not everyone may read (or what reads differently per caller) is `private`: a
    shared cache must neither keep it nor give one caller's answer to another."""
    response.headers["Cache-Control"] = private_cache_control(response.headers.get("cache-control"))
    vary = [item.strip() for item in response.headers.get("vary", "").split(",") if item.strip()]
    known = {item.lower() for item in vary}
    vary += [header for header in CREDENTIAL_HEADERS if header.lower() not in known]
    response.headers["Vary"] = ", ".join(vary)


def private_cache_control(value: str | None) -> str:
    """`value` with `public` replaced by `private` (plain `private` when there was none)."""
    directives = [item.strip() for item in (value or "").split(",") if item.strip()]
    kept = [item for item in directives if item.lower() not in ("public", "private")]
    return ", ".join([*kept, "private"])


def is_read_checked(endpoint: object) -> bool:
    return bool(getattr(endpoint, READ_CHECKED, False) or getattr(endpoint, NO_CONTENT, False))


def with_read_check(routes: list[BaseRoute]) -> list[BaseRoute]:
    """Every route whose path names an index, with its endpoint behind the read check."""
    return [_checked_route(route) for route in routes]


def _checked_route(route: BaseRoute) -> BaseRoute:
    if not isinstance(route, Route) or "{index}" not in route.path:
        return route
    if is_read_checked(route.endpoint):
        return route
    methods = sorted(route.methods) if route.methods else None
    return Route(route.path, read_checked(route.endpoint), methods=methods, name=route.name)
