"""Representation chosen at routing: one endpoint per (route, method, representation).

devpi's views declare `request_method=` and `accept=` predicates; here a route names its
method and, where one URL serves several representations, `represented` picks the endpoint
from the request's headers in this one place. No handler branches on the method or Accept.
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable

from starlette.requests import Request
from starlette.responses import Response

from packyard.web.responses import devpi_api, is_devpi_api_endpoint, wants_json

Endpoint = Callable[[Request], Awaitable[Response]]
_INSTALLER = re.compile(r"^([\w.\-]+\s+)*(distribute|setuptools|pip|pex|uv)/", re.IGNORECASE)
FORM_TYPE = "application/x-www-form-urlencoded"


def is_installer(request: Request) -> bool:
    """pip, uv and friends, which devpi serves simple pages at the index and project URLs."""
    return bool(_INSTALLER.match(request.headers.get("user-agent", "")))


def prefers_html(request: Request) -> bool:
    """Browsers list text/html first; API clients, pip and curl do not."""
    return request.headers.get("accept", "").lstrip().startswith("text/html")


def represented(
    json: Endpoint, html: Endpoint | None = None, installer: Endpoint | None = None
) -> Endpoint:
    """One GET endpoint per representation: installers get the simple page, browsers the web
    page, everyone else devpi's JSON."""

    async def endpoint(request: Request) -> Response:
        if installer is not None and is_installer(request):
            return await installer(request)
        if html is not None and prefers_html(request):
            return await html(request)
        return await json(request)

    endpoint.__name__ = getattr(json, "__name__", "endpoint")
    return devpi_api(endpoint) if is_devpi_api_endpoint(json) else endpoint


def json_or(json: Endpoint, other: Endpoint) -> Endpoint:
    """JSON for a request that accepts it anywhere (devpi's `releasefilemeta` of a file)."""

    async def endpoint(request: Request) -> Response:
        return await (json if wants_json(request) else other)(request)

    endpoint.__name__ = getattr(other, "__name__", "endpoint")
    return endpoint


def by_body(
    json: Endpoint, form: Endpoint | None = None, multipart: Endpoint | None = None
) -> Endpoint:
    """One POST endpoint per body kind: the UI's forms, multipart uploads, JSON."""

    async def endpoint(request: Request) -> Response:
        content_type = request.headers.get("content-type", "")
        if form is not None and content_type.startswith(FORM_TYPE):
            return await form(request)
        if multipart is not None and content_type.startswith("multipart/"):
            return await multipart(request)
        return await json(request)

    endpoint.__name__ = getattr(json, "__name__", "endpoint")
    return devpi_api(endpoint) if is_devpi_api_endpoint(json) else endpoint
