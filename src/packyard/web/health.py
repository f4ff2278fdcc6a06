"""`GET /+health`: liveness (200 whenever this process serves requests), and readiness
(`/+health/ready`, or `/+health?ready`): 200 when the database and the blob store answer,
else 503 naming what failed. Open to anyone: it reveals no content (web/scopes.py)."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from packyard.services.health import OK
from packyard.web.lookup import services_of

NO_STORE = {"Cache-Control": "no-store"}


async def health(request: Request) -> Response:
    if "ready" in request.query_params:
        return await ready(request)
    return JSONResponse({"status": "alive"}, headers=NO_STORE)


async def ready(request: Request) -> Response:
    checks = await services_of(request).health.readiness()
    failed = sorted(name for name, state in checks.items() if state != OK)
    body = {"status": "unavailable" if failed else "ready", "checks": checks, "failed": failed}
    return JSONResponse(body, status_code=503 if failed else 200, headers=NO_STORE)
