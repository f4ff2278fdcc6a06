"""The simple repository API: `/USER/INDEX/+simple/` and `/USER/INDEX/+simple/NAME/`."""

from __future__ import annotations

from jinja2 import Environment
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response

from packyard.core import simple
from packyard.core.models import MirrorList
from packyard.core.names import normalize_project
from packyard.errors import NotFound, UpstreamUnavailable
from packyard.services import Services
from packyard.web.cached import CachedBody, render_cached, respond
from packyard.web.lookup import boundary_of
from packyard.web.readcheck import hidden_bases
from packyard.web.routing import is_installer
from packyard.web.urls import relative_root, urls_of

# Private indexes change under their users' feet: let clients revalidate (ETag) every time.
PAGE_CACHE_CONTROL = "max-age=0, must-revalidate"


def _content_type(request: Request) -> str:
    # `?format=...v1+json` typed literally decodes '+' to a space; media types have no spaces.
    format_param = (request.query_params.get("format") or "").replace(" ", "+")
    # A mismatch raises NotAcceptable: a 406 in the one error shape (web/responses.py).
    return simple.negotiate(request.headers.get("accept"), format_param or None)


def _redirect(request: Request, path: str) -> Response:
    """301 to `path` (under the root users see), keeping the query."""
    query = f"?{request.url.query}" if request.url.query else ""
    return RedirectResponse(path + query, status_code=301)


async def project_list(request: Request) -> Response:
    services: Services = request.app.state.services
    user, index = request.path_params["user"], request.path_params["index"]
    content_type = _content_type(request)
    if not request.url.path.endswith("/") and not is_installer(request):
        return _redirect(request, urls_of(request).path(request.url.path) + "/")
    record, listing = await boundary_of(request).pages.project_list(user, index)
    if listing is not None:
        body = await _upstream_list(request, record.full_name, listing, content_type)
        return respond(request, body, PAGE_CACHE_CONTROL)

    def render() -> CachedBody:
        names = services.packages.project_names(record)
        return _render_list(request, record.full_name, names, content_type)

    key = ("simple-list", user, index, content_type, hidden_bases(request))
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


async def _upstream_list(
    request: Request, index: str, listing: MirrorList, content_type: str
) -> CachedBody:
    """A mirror's full upstream list, rendered once per stored list (it can be ~40 MB)."""
    rendered: dict[tuple[int, str], tuple[str, CachedBody]] = request.app.state.upstream_lists
    known = rendered.get((listing.index_id, content_type))
    if known is not None and known[0] == listing.names_sha256:
        return known[1]
    services: Services = request.app.state.services

    def render() -> CachedBody:
        names = services.mirrors.names_bytes(listing).decode().split("\n")
        return _render_list(request, index, names, content_type)

    body = await boundary_of(request).pages.rendered(render)
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
        return _redirect(request, urls_of(request).simple_project(f"{user}/{index}", normalized))
    # File links are relative: from `/u/i/+simple/p/`, or the installer shortcut `/u/i/p/`.
    to_root = relative_root(request.url.path)
    key = ("simple-project", user, index, project, content_type, to_root, hidden_bases(request))
    cached = services.pages.get(key)
    if isinstance(cached, CachedBody) and _still_current(services, cached, project):
        return respond(request, cached, PAGE_CACHE_CONTROL)
    record, failures = await boundary_of(request).pages.simple_project(user, index, project)

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
        until = page.changes_at.timestamp() if page.changes_at else None
        return CachedBody.of(body, content_type, mirror_ids, until)

    fresh = await render_cached(services, key, render)
    return respond(request, fresh, PAGE_CACHE_CONTROL)


def _still_current(services: Services, cached: CachedBody, project: str) -> bool:
    """Nothing it leaves out was released since, and its mirrors' pages are fresh."""
    if not cached.current_at(services.sources.clock()):
        return False
    return all(services.mirrors.is_fresh(index_id, project) for index_id in cached.mirror_ids)


async def refresh(request: Request) -> Response:
    """Forget what mirrors know of a project and ask their upstreams again (devpi refresh)."""
    user, index = request.path_params["user"], request.path_params["index"]
    project = normalize_project(request.path_params["project"])
    record = await boundary_of(request).packages.forget_mirrored(user, index, project)
    target = urls_of(request).simple_project(record.full_name, project)
    return RedirectResponse(target, status_code=302)
