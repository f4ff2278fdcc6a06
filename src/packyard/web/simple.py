"""The simple repository API: `/USER/INDEX/+simple/` and `/USER/INDEX/+simple/NAME/`."""

from __future__ import annotations

import re

from jinja2 import Environment
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response

from packyard.core import simple
from packyard.core.models import IndexRecord, MirrorList
from packyard.core.names import normalize_project
from packyard.errors import NotFound, UpstreamUnavailable
from packyard.services import Services
from packyard.web.cached import CachedBody, render_cached, respond
from packyard.web.lookup import request_index

# Private indexes change under their users' feet: let clients revalidate (ETag) every time.
PAGE_CACHE_CONTROL = "max-age=0, must-revalidate"
_INSTALLER = re.compile(r"^([\w.\-]+\s+)*(distribute|setuptools|pip|pex|uv)/", re.IGNORECASE)


def is_installer(request: Request) -> bool:
    return bool(_INSTALLER.match(request.headers.get("user-agent", "")))


def _content_type(request: Request) -> str:
    # `?format=...v1+json` typed literally decodes '+' to a space; media types have no spaces.
    format_param = (request.query_params.get("format") or "").replace(" ", "+")
    # A mismatch raises NotAcceptable: a 406 in the one error shape (web/responses.py).
    return simple.negotiate(request.headers.get("accept"), format_param or None)


def _redirect(request: Request, path: str) -> Response:
    query = f"?{request.url.query}" if request.url.query else ""
    return RedirectResponse(path + query, status_code=301)


async def project_list(request: Request) -> Response:
    services: Services = request.app.state.services
    user, index = request.path_params["user"], request.path_params["index"]
    content_type = _content_type(request)
    if not request.url.path.endswith("/") and not is_installer(request):
        return _redirect(request, request.url.path + "/")
    record = await request_index(request)
    listing = await services.mirrors.project_list(record) if record.is_mirror else None
    if listing is not None:
        return respond(
            request, await _upstream_list(request, listing, content_type), PAGE_CACHE_CONTROL
        )

    def render() -> CachedBody:
        names = services.packages.project_names(record)
        return _render_list(request, record.full_name, names, content_type)

    key = ("simple-list", user, index, content_type)
    cached = await render_cached(services, key, render)
    return respond(request, cached, PAGE_CACHE_CONTROL)


def _render_list(request: Request, index: str, names: list[str], content_type: str) -> CachedBody:
    if simple.is_json(content_type):
        return CachedBody.of(simple.project_list_json(names), content_type)
    jinja: Environment = request.app.state.jinja
    html = jinja.get_template("simple_index.html").render(
        index=index, names=names, api_version=simple.API_VERSION
    )
    return CachedBody.of(html.encode(), content_type)


async def _upstream_list(request: Request, listing: MirrorList, content_type: str) -> CachedBody:
    """A mirror's full upstream list, rendered once per stored list (it can be ~40 MB)."""
    rendered: dict[tuple[int, str], tuple[str, CachedBody]] = request.app.state.upstream_lists
    known = rendered.get((listing.index_id, content_type))
    if known is not None and known[0] == listing.names_sha256:
        return known[1]
    services: Services = request.app.state.services
    record = await request_index(request)

    def render() -> CachedBody:
        names = services.mirrors.names_bytes(listing).decode().split("\n")
        return _render_list(request, record.full_name, names, content_type)

    body = await run_in_threadpool(render)
    rendered[(listing.index_id, content_type)] = (listing.names_sha256, body)
    return body


async def project_page(request: Request) -> Response:
    services: Services = request.app.state.services
    jinja: Environment = request.app.state.jinja
    user, index = request.path_params["user"], request.path_params["index"]
    project = request.path_params["project"]
    content_type = _content_type(request)
    with_slash = request.url.path.endswith("/")
    normalized = normalize_project(project)
    if normalized != project or (not with_slash and not is_installer(request)):
        return _redirect(request, f"/{user}/{index}/+simple/{normalized}/")
    # File links are relative: from `/u/i/+simple/p/`, or the installer shortcut `/u/i/p/`.
    to_root = "../" * (request.url.path.count("/") - 1)
    key = ("simple-project", user, index, project, content_type, to_root)
    cached = services.pages.get(key)
    if isinstance(cached, CachedBody) and _mirrors_fresh(services, cached, project):
        return respond(request, cached, PAGE_CACHE_CONTROL)
    record = await request_index(request)
    failures = await refresh_mirrors(services, record, project)

    def render() -> CachedBody:
        mirror_ids = tuple(m.id for m in services.packages.mirrors_to_consult(record, project))
        try:
            page = services.packages.project_page(record, project)
        except NotFound:
            if failures:
                raise UpstreamUnavailable(failures[0].message) from None
            raise
        if simple.is_json(content_type):
            body = simple.project_page_json(page, to_root)
        else:
            body = (
                jinja.get_template("simple_project.html")
                .render(page=page, to_root=to_root, api_version=simple.API_VERSION)
                .encode()
            )
        return CachedBody.of(body, content_type, mirror_ids)

    fresh = await render_cached(services, key, render)
    return respond(request, fresh, PAGE_CACHE_CONTROL)


def _mirrors_fresh(services: Services, cached: CachedBody, project: str) -> bool:
    return all(services.mirrors.is_fresh(index_id, project) for index_id in cached.mirror_ids)


async def refresh_mirrors(
    services: Services, record: IndexRecord, project: str
) -> list[UpstreamUnavailable]:
    """Bring stale mirror pages up to date; a failing base mirror only counts as a failure."""
    if not any(item.is_mirror for item in services.indexes.resolution_order(record)):
        return []
    mirrors = await run_in_threadpool(services.packages.mirrors_to_consult, record, project)
    failures = []
    for mirror in mirrors:
        try:
            await services.mirrors.ensure_page(mirror, project)
        except UpstreamUnavailable as exc:
            if mirror.id == record.id:
                raise
            failures.append(exc)
    return failures


async def refresh(request: Request) -> Response:
    """Forget what mirrors know of a project and ask their upstreams again (devpi refresh)."""
    services: Services = request.app.state.services
    record = await request_index(request)
    project = normalize_project(request.path_params["project"])
    for item in services.indexes.resolution_order(record):
        if item.is_mirror:
            await services.mirrors.refresh(item, project)
    target = f"/{record.full_name}/+simple/{project}/"
    return RedirectResponse(target, status_code=302)
