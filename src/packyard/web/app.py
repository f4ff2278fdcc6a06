"""The application factory: routes, error mapping and the headers every response carries."""

from __future__ import annotations

import logging
import sys
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from jinja2 import Environment, PackageLoader, select_autoescape
from starlette.applications import Starlette
from starlette.datastructures import MutableHeaders
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Mount, Route
from starlette.staticfiles import StaticFiles
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from packyard import __version__
from packyard.config import Settings, load_settings
from packyard.errors import PackyardError
from packyard.services import Services, open_services
from packyard.web import api, audit, docs, exemptions, files, health, simple, tokens, ui
from packyard.web.auth import Authentication
from packyard.web.limits import CONNECTION_LIMITS, BodyLimit, ConnectionLimits
from packyard.web.metrics import Metrics, metrics_page, request_labels
from packyard.web.readcheck import with_read_check
from packyard.web.responses import error_from_status, error_response
from packyard.web.routing import by_body, json_or, represented

log = logging.getLogger("packyard.requests")


def routes() -> list[BaseRoute]:
    def both(path: str, endpoint: object, methods: list[str]) -> list[Route]:
        return [
            Route(path, endpoint, methods=methods),  # type: ignore[arg-type]
            Route(path + "/", endpoint, methods=methods),  # type: ignore[arg-type]
        ]

    def each(path: str, by_method: dict[str, object]) -> list[Route]:
        """One endpoint per method of `path` (and of `path/`)."""
        return [route for method, end in by_method.items() for route in both(path, end, [method])]

    project = "/{user}/{index}/{project}"
    version = "/{user}/{index}/{project}/{version}"
    # Every route under /{user}/{index} reads that index only if its caller may (lookup.py).
    return with_read_check([
        Route("/", represented(json=api.root, html=ui.root_page), methods=["GET"]),
        Route("/+api", api.api_discovery, methods=["GET"]),
        Route("/+health", health.health, methods=["GET"]),
        Route("/+health/ready", health.ready, methods=["GET"]),
        Route("/+login", by_body(json=api.login, form=ui.login_submit), methods=["POST"]),
        Route("/+login", ui.login_form, methods=["GET"]),
        Route("/+logout", by_body(json=api.logout, form=ui.logout), methods=["POST"]),
        Route("/+search", ui.search_page, methods=["GET"]),
        Route("/+audit", represented(json=audit.audit_log, html=audit.audit_page), methods=["GET"]),
        Route("/+ui/create-index", ui.create_index, methods=["POST"]),
        Route("/+ui/index-settings", ui.index_settings, methods=["POST"]),
        Route("/+ui/yank", ui.yank, methods=["POST"]),
        Route("/+ui/project-status", ui.project_status, methods=["POST"]),
        Route("/+ui/delete-release", ui.delete_release, methods=["POST"]),
        Mount("/+static", StaticFiles(packages=[("packyard.web", "static")]), name="static"),
        Route("/+status", represented(json=api.status, html=ui.status_page), methods=["GET"]),
        Route("/+metrics", metrics_page, methods=["GET"]),
        Route("/+advisories", api.import_advisories, methods=["POST"]),
        Route("/{user}/+api", api.api_discovery, methods=["GET"]),
        Route("/+ui/create-token", tokens.create_token_form, methods=["POST"]),
        Route("/+ui/revoke-token", tokens.revoke_token_form, methods=["POST"]),
        *each("/{user}/+tokens", {
            "GET": represented(json=tokens.list_tokens, html=tokens.tokens_page),
            "POST": tokens.create_token,
        }),
        *both("/{user}/+tokens/{token_id}", tokens.revoke_token, ["DELETE"]),
        Route("/{user}/{index}/+api", api.api_discovery, methods=["GET"]),
        Route("/{user}/{index}/+cached", api.cached_files, methods=["GET"]),
        *each("/{user}/{index}/+exemptions", {
            "GET": exemptions.list_exemptions, "POST": exemptions.add_exemption,
        }),
        *both(
            "/{user}/{index}/+exemptions/{exemption_id}", exemptions.remove_exemption, ["DELETE"]
        ),
        *both("/{user}/{index}/+held/{project}", exemptions.held_versions, ["GET"]),
        *both("/{user}/{index}/+simple", simple.project_list, ["GET"]),
        *both("/{user}/{index}/+simple/{project}", simple.project_page, ["GET"]),
        *both("/{user}/{index}/+simple/{project}/refresh", simple.refresh, ["POST"]),
        Route("/{user}/{index}/{project}/{version}/+doc/{path:path}", docs.serve_doc),
        Route("/{user}/{index}/{project}/{version}/+doc", docs.doc_root),
        Route(
            "/{user}/{index}/+f/{relpath:path}",
            json_or(json=files.file_meta, other=files.get_file),
            methods=["GET"],
        ),
        Route("/{user}/{index}/+f/{relpath:path}", api.file_toxresult, methods=["POST"]),
        Route("/{user}/{index}/+f/{relpath:path}", api.file_delete, methods=["DELETE"]),
        Route("/{user}/{index}/+f/{relpath:path}", api.file_patch, methods=["PATCH"]),
        *each("/{user}", {
            "GET": represented(json=api.user_get, html=ui.user_page),
            "PUT": api.user_put, "PATCH": api.user_patch, "DELETE": api.user_delete,
        }),
        *each("/{user}/{index}", {
            "GET": represented(
                json=api.index_get, html=ui.index_page, installer=simple.project_list
            ),
            "PUT": api.index_put, "PATCH": api.index_patch, "DELETE": api.index_delete,
            "POST": by_body(json=api.index_push, multipart=api.upload),
            "PUSH": api.index_push,
        }),
        *each(project, {
            "GET": represented(
                json=api.project_get, html=ui.project_page, installer=simple.project_page
            ),
            "DELETE": api.project_delete, "PATCH": api.project_patch,
        }),
        *each(version, {
            "GET": represented(json=api.version_get, html=ui.version_page),
            "DELETE": api.version_delete, "PATCH": api.version_patch,
        }),
    ])  # fmt: skip


async def domain_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, PackyardError)
    return error_response(request, exc)


async def routing_error(request: Request, exc: Exception) -> Response:
    """The router's own refusals (no such route, method not allowed) in the one error shape."""
    assert isinstance(exc, HTTPException)
    if exc.status_code in (204, 304):
        return Response(status_code=exc.status_code, headers=exc.headers)
    return error_from_status(request, exc.status_code, exc.detail, dict(exc.headers or {}))


# Logged for a request the app never answered because its client went away (or was cut off
# by the protocol, which answered it itself): nginx's "client closed request".
CLIENT_GONE = 499


class ServerHeaders:
    """Adds devpi's headers (API version, serial), logs one line per request and counts it
    (web/metrics.py)."""

    def __init__(self, app: ASGIApp, services: Services, metrics: Metrics) -> None:
        self.app = app
        self.services = services
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        labels = request_labels(scope)  # before routing changes the scope
        status = CLIENT_GONE  # unless the app answers (an exception becomes a 500 below)

        async def send_with_headers(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                headers = MutableHeaders(scope=message)
                headers["X-Devpi-Api-Version"] = "2"
                headers["X-Devpi-Server-Version"] = __version__
                headers["X-Devpi-Serial"] = str(self.services.serial)
                headers["X-Devpi-Uuid"] = self.services.uuid
                # A single server is its own primary (devpi's replication headers).
                headers["X-Devpi-Master-Uuid"] = self.services.uuid
                headers["X-Devpi-Primary-Uuid"] = self.services.uuid
            await send(message)

        try:
            await self.app(scope, receive, send_with_headers)
        except BaseException:
            status = 500 if status == CLIENT_GONE else status
            raise
        finally:
            elapsed = time.perf_counter() - started
            self.metrics.record(labels, status, elapsed)
            self.metrics.follow_mirror(self.services.mirrors.stats)
            if self.services.settings.log_requests:
                log.info("%s %s %d %.1fms", scope["method"], scope["path"], status, elapsed * 1000)


def create_app(services: Services) -> Starlette:
    """Build the ASGI app around already opened services."""

    limits = ConnectionLimits.from_settings(services.settings)

    @asynccontextmanager
    async def lifespan(_app: Starlette) -> AsyncIterator[dict[str, object]]:
        services.follow_other_hosts()
        # The lifespan state is where the server's protocol finds its limits (web/server.py).
        yield {CONNECTION_LIMITS: limits}
        await services.outbound.aclose()
        services.close()
        log.info("packyard stopped: storage closed")

    app = Starlette(
        routes=routes(),
        exception_handlers={PackyardError: domain_error, HTTPException: routing_error},
        lifespan=lifespan,
    )
    app.state.services = services
    app.state.metrics = metrics = Metrics(services.settings.metrics_allow)
    # Rendered full project lists of mirrors, per (index id, content type): (names sha, body).
    app.state.upstream_lists = {}
    app.state.jinja = Environment(
        loader=PackageLoader("packyard.web", "templates"),
        autoescape=select_autoescape(default=True),
        auto_reload=False,
    )
    app.add_middleware(BodyLimit, default_limit=limits.max_body_size)
    app.add_middleware(Authentication, services=services)  # inside: its 401s get the headers
    app.add_middleware(ServerHeaders, services=services, metrics=metrics)
    return app


def create_app_from_settings(settings: Settings) -> Starlette:
    return create_app(open_services(settings))


def app_from_environment() -> Starlette:
    """Factory for worker processes: settings travel in PACKYARD_* variables."""
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s", stream=sys.stderr)
    return create_app_from_settings(load_settings())
