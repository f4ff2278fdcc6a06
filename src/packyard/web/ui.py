"""The web UI: server-rendered pages at the same URLs the devpi client reads as JSON.

Browsers (whose Accept starts with text/html) get pages; everyone else keeps getting JSON.
Logging in from the browser sets a session cookie; every form carries a CSRF token derived
from that session. The login form, used before there is a session, carries one derived from a
random pre-session cookie (so no other site can log a browser in to its own account).
"""

from __future__ import annotations

import hmac
import secrets
from typing import Any
from urllib.parse import quote

from jinja2 import Environment
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse, Response

from packyard import __version__
from packyard.core import acl
from packyard.core.names import normalize_project, split_index_name
from packyard.errors import Forbidden, NotFound, Unauthenticated
from packyard.services import Services
from packyard.web.auth import client_address
from packyard.web.lookup import index_named, request_index, services_of
from packyard.web.responses import PAGE_HEADERS

SESSION_COOKIE = "packyard_session"
LOGIN_COOKIE = "packyard_login"
FORM_EXPIRED = "the form expired or came from another site; reload the page and retry"


def prefers_html(request: Request) -> bool:
    """Browsers list text/html first; API clients, pip and curl do not."""
    return request.headers.get("accept", "").lstrip().startswith("text/html")


# --- sessions ---------------------------------------------------------------------------------


def _session(request: Request) -> tuple[str, str] | None:
    value = request.cookies.get(SESSION_COOKIE, "")
    user, sep, token = value.partition(":")
    return (user, token) if sep and user and token else None


async def viewer(request: Request) -> str | None:
    """The user logged in through the browser, if the session is still valid."""
    session = _session(request)
    if session is None:
        return None
    if "packyard.viewer" not in request.scope:
        authenticate = services_of(request).accounts.authenticate_token
        request.scope["packyard.viewer"] = await run_in_threadpool(authenticate, *session)
    user: str | None = request.scope["packyard.viewer"]
    return user


def _csrf(request: Request) -> str:
    session = request.cookies.get(SESSION_COOKIE, "")
    return services_of(request).accounts.csrf_token(session) if session else ""


async def _form_actor(request: Request) -> tuple[str, dict[str, str]]:
    """The logged-in user behind a form post, after checking its CSRF token."""
    async with request.form() as form:
        fields = {key: str(value) for key, value in form.items()}
    user = await viewer(request)
    if user is None:
        raise Unauthenticated("log in first")
    if not hmac.compare_digest(fields.get("csrf", ""), _csrf(request)):
        raise Forbidden(FORM_EXPIRED)
    return user, fields


def _login_csrf(request: Request, nonce: str) -> str:
    return services_of(request).accounts.csrf_token(nonce, purpose="login")


# --- rendering --------------------------------------------------------------------------------


async def page(request: Request, template: str, code: int = 200, **context: Any) -> Response:
    jinja: Environment = request.app.state.jinja
    services = services_of(request)
    context.setdefault("query", "")
    html = jinja.get_template(template).render(
        viewer=await viewer(request),
        csrf=_csrf(request),
        version=__version__,
        serial=services.serial,
        **context,
    )
    headers = {"Vary": "Accept, Cookie", **PAGE_HEADERS}
    return HTMLResponse(html, status_code=code, headers=headers)


# --- pages ------------------------------------------------------------------------------------


async def root_page(request: Request) -> Response:
    services = services_of(request)

    def gather() -> list[dict[str, Any]]:
        return [
            {"name": user.name, "indexes": services.indexes.of_user(user.name)}
            for user in services.accounts.list()
        ]

    return await page(request, "ui/root.html", users=await run_in_threadpool(gather))


async def user_page(request: Request) -> Response:
    services = services_of(request)
    name = request.path_params["user"]
    user = await run_in_threadpool(services.accounts.get, name)
    current = await viewer(request)
    can_manage = acl.may_manage_index(current, name, services.settings.restrict_modify)
    indexes = await run_in_threadpool(services.indexes.of_user, name)
    return await page(request, "ui/user.html", user=user, indexes=indexes, can_manage=can_manage)


async def index_page(request: Request) -> Response:
    services = services_of(request)
    record = await request_index(request)

    def gather() -> list[tuple[str, str]]:
        sources: dict[str, str] = {}
        for item in services.indexes.resolution_order(record):
            names = (
                services.packages.project_names(item)
                if item.is_mirror
                else services.packages.own_project_names(item)
            )
            for name in names:
                sources.setdefault(name, item.full_name)
        return sorted(sources.items())

    current = await viewer(request)
    return await page(
        request,
        "ui/index.html",
        index=record,
        settings=sorted(record.config.items()),
        order=services.indexes.resolution_order(record),
        projects=await run_in_threadpool(gather),
        base_url=_outside_url(request),
        can_manage=acl.may_manage_index(current, record.user, services.settings.restrict_modify),
    )


async def project_page(request: Request) -> Response:
    services = services_of(request)
    record = await request_index(request)
    project = normalize_project(request.path_params["project"])
    releases = await run_in_threadpool(services.packages.releases, record, project)
    blocked = await run_in_threadpool(services.packages.blocked_mirror, record, project)
    return await page(
        request, "ui/project.html", index=record, project=project, releases=releases,
        blocked=blocked,
    )  # fmt: skip


async def version_page(request: Request) -> Response:
    services = services_of(request)
    record = await request_index(request)
    project = normalize_project(request.path_params["project"])
    version = request.path_params["version"]
    releases = await run_in_threadpool(services.packages.releases, record, project)
    release = next((r for r in releases if r.version == version), None)
    if release is None:
        raise NotFound(f"The version {version} of project {project} does not exist.")
    current = await viewer(request)
    owner = await index_named(request, *split_index_name(release.index))
    can_change = release.index == record.full_name and acl.may_delete_entries(
        current, owner.user, owner.index_config.acl_upload
    )
    return await page(
        request,
        "ui/version.html",
        index=record,
        project=project,
        release=release,
        metadata=release.metadata,
        description=await run_in_threadpool(services.readmes.describe, release.metadata),
        docs=any(a.kind == "doczip" for a in release.attachments),
        toxresults=[a for a in release.attachments if a.kind == "toxresult"],
        all_yanked=bool(release.files) and all(f.yanked is not None for f in release.files),
        can_change=can_change,
    )


async def search_page(request: Request) -> Response:
    services = services_of(request)
    query = request.query_params.get("q", "").strip()
    results = await run_in_threadpool(services.packages.search, query) if query else []
    return await page(request, "ui/search.html", query=query, results=results)


async def status_page(request: Request, facts: dict[str, Any]) -> Response:
    cache = facts.pop("mirror-cache", None)
    cached = cache.items() if cache is not None else None
    return await page(request, "ui/status.html", status=facts.items(), cache=cached)


# --- logging in and out -----------------------------------------------------------------------


async def login_form(request: Request) -> Response:
    nonce = request.cookies.get(LOGIN_COOKIE) or secrets.token_urlsafe(24)
    response = await page(
        request, "ui/login.html", next=request.query_params.get("next", "/"),
        login_csrf=_login_csrf(request, nonce),
    )  # fmt: skip
    response.set_cookie(LOGIN_COOKIE, nonce, path="/+login", httponly=True, samesite="strict")
    return response


async def login_submit(request: Request) -> Response:
    services = services_of(request)
    async with request.form() as form:
        user, password = str(form.get("user", "")), str(form.get("password", ""))
        target = str(form.get("next") or "/")
        sent_csrf = str(form.get("csrf", ""))
    nonce = request.cookies.get(LOGIN_COOKIE, "")
    if not nonce or not hmac.compare_digest(sent_csrf, _login_csrf(request, nonce)):
        raise Forbidden(f"log-in refused: {FORM_EXPIRED}")
    address = client_address(request)
    try:
        token = await run_in_threadpool(services.accounts.login, user, password, address)
    except Unauthenticated:
        return await page(
            request, "ui/login.html", code=401, next=target, login_csrf=sent_csrf,
            error="Unknown user or wrong password.",
        )  # fmt: skip
    if not target.startswith("/") or target.startswith("//"):
        target = "/"
    response = RedirectResponse(target, status_code=303)
    response.set_cookie(
        SESSION_COOKIE, f"{user}:{token.token}", max_age=token.expiration, httponly=True,
        samesite="lax",
    )  # fmt: skip
    return response


async def logout(request: Request) -> Response:
    """Log out and revoke the session's token (with every other token of the user)."""
    user, _fields = await _form_actor(request)
    await run_in_threadpool(services_of(request).accounts.revoke_tokens, user)
    response = RedirectResponse("/", status_code=303)
    response.delete_cookie(SESSION_COOKIE)
    return response


# --- owner tasks --------------------------------------------------------------------------------


async def create_index(request: Request) -> Response:
    services = services_of(request)
    actor, fields = await _form_actor(request)
    user, name = fields.get("user", ""), fields.get("name", "").strip()
    config = {
        "bases": fields.get("bases", ""),
        "volatile": fields.get("volatile") == "true",
        "title": fields.get("title", ""),
    }
    record = await run_in_threadpool(services.indexes.create, actor, user, name, config)
    return RedirectResponse(f"/{quote(record.full_name)}", status_code=303)


async def index_settings(request: Request) -> Response:
    services = services_of(request)
    actor, fields = await _form_actor(request)
    user, name = split_index_name(fields.get("index", ""))
    record = await index_named(request, user, name)
    changes: dict[str, Any] = {
        "title": fields.get("title", ""),
        "description": fields.get("description", ""),
        "volatile": fields.get("volatile") == "true",
    }
    if not record.is_mirror:
        changes["bases"] = fields.get("bases", "")
        changes["mirror_whitelist"] = fields.get("mirror_whitelist", "")
    await run_in_threadpool(services.indexes.modify, actor, user, name, changes)
    return RedirectResponse(f"/{quote(record.full_name)}", status_code=303)


async def yank(request: Request) -> Response:
    services = services_of(request)
    actor, fields = await _form_actor(request)
    record = await index_named(request, *split_index_name(fields.get("index", "")))
    project, version = normalize_project(fields.get("project", "")), fields.get("version", "")
    reason = fields.get("reason", "") if fields.get("action") == "yank" else None
    await run_in_threadpool(
        services.packages.set_yanked, actor, record, project, version, None, reason
    )
    return RedirectResponse(_version_url(record.full_name, project, version), status_code=303)


async def delete_release(request: Request) -> Response:
    services: Services = services_of(request)
    actor, fields = await _form_actor(request)
    record = await index_named(request, *split_index_name(fields.get("index", "")))
    project, version = normalize_project(fields.get("project", "")), fields.get("version", "")
    await run_in_threadpool(
        services.packages.delete_version, actor, record, project, version, False
    )
    return RedirectResponse(f"/{quote(record.full_name)}/{project}", status_code=303)


def _outside_url(request: Request) -> str:
    """The server root as users reach it (behind a proxy: X-Outside-Url or --outside-url)."""
    outside = request.headers.get("x-outside-url") or services_of(request).settings.outside_url
    return (outside or str(request.base_url)).rstrip("/")


def _version_url(index: str, project: str, version: str) -> str:
    return f"/{quote(index)}/{project}/{quote(version)}"
