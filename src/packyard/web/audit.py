"""`GET /+audit`: the audit trail, as JSON for clients and as a page for browsers.

Root reads everything; an index's owner reads that index's entries (`?index=USER/INDEX`);
anyone else gets 401 (not logged in) or 403. Filters: `user`, `index`, `since`, `until`
(ISO 8601 or epoch seconds), `limit` (1-1000, default 100), `order` (`newest`, the default,
or `oldest`)."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response

from packyard.core.audit import Entry, parse_query
from packyard.web.auth import current_user
from packyard.web.lookup import services_of
from packyard.web.responses import api_response, devpi_api
from packyard.web.ui import page, viewer


async def _entries(request: Request, reader: str | None) -> list[Entry]:
    query = parse_query(dict(request.query_params))
    return await services_of(request).audit.read(reader, query)


@devpi_api
async def audit_log(request: Request) -> Response:
    reader = await current_user(request, services_of(request))
    entries = await _entries(request, reader)
    return api_response([entry.view() for entry in entries], "list:audit")


async def audit_page(request: Request) -> Response:
    """The browser's view: root or the owner logged in (through the browser or otherwise)."""
    reader = await current_user(request, services_of(request)) or await viewer(request)
    entries = await _entries(request, reader)
    params = request.query_params
    return await page(
        request, "ui/audit.html", entries=[e.view() for e in entries],
        index=params.get("index", ""), user=params.get("user", ""),
    )  # fmt: skip
