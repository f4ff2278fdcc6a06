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

from jinja2 import Environment
from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse, Response

from packyard import __version__
from packyard.core import acl
from packyard.core.names import normalize_project, split_index_name
from packyard.core.status import parse_status
from packyard.errors import Forbidden, Unauthenticated
from packyard.services.readers import Reader
from packyard.web.auth import (
    SESSION_COOKIE,
    act_as,
    client_address,
    current_user,
    reader,
    session_user,
)
from packyard.web.lookup import boundary_of, services_of
from packyard.web.responses import PAGE_HEADERS
from packyard.web.urls import urls_of

LOGIN_COOKIE = "packyard_login"
FORM_EXPIRED = "the form expired or came from another site; reload the page and retry"


# --- sessions ---------------------------------------------------------------------------------


async def viewer(request: Request) -> str | None:
    """The user logged in through the browser, if the session is still valid."""
    return await session_user(request, services_of(request))


async def _reader(request: Request) -> str | None:
    """Whose read rights a page shows: credentials sent, else the browser's session."""
    return await reader(request, services_of(request))


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
    act_as(request, user)  # what the form changes is recorded as the session's user
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
        urls=urls_of(request),
        **context,
    )
    headers = {"Vary": "Accept, Cookie", **PAGE_HEADERS}
    return HTMLResponse(html, status_code=code, headers=headers)


# --- pages ------------------------------------------------------------------------------------


async def root_page(request: Request) -> Response:
    who = await _reader(request)
    users = await boundary_of(request).pages.users(who)
    listed = [{"name": user.name, "indexes": indexes} for user, indexes in users]
    hidden = who is None and services_of(request).settings.hide_users_from_anonymous
    return await page(request, "ui/root.html", users=listed, users_hidden=hidden)


async def user_page(request: Request) -> Response:
    name = request.path_params["user"]
    user, indexes = await boundary_of(request).pages.user(name, await _reader(request))
    restrict = services_of(request).settings.restrict_modify
    can_manage = acl.may_manage_index(await viewer(request), name, restrict)
    return await page(request, "ui/user.html", user=user, indexes=indexes, can_manage=can_manage)


async def index_page(request: Request) -> Response:
    params = request.path_params
    shown = await boundary_of(request).pages.index(params["user"], params["index"])
    record = shown.record
    restrict = services_of(request).settings.restrict_modify
    can_manage = acl.may_manage_index(await viewer(request), record.user, restrict)
    # The owner sees the mirror's exemptions past its cooldown (who allowed what, and why).
    exemptions = []
    if can_manage and record.is_mirror:
        listing = boundary_of(request).exemptions.list
        exemptions = await listing(await viewer(request), params["user"], params["index"])
    return await page(
        request,
        "ui/index.html",
        index=record,
        settings=sorted(record.config.items()),
        order=shown.order,
        projects=shown.projects,
        can_manage=can_manage,
        exemptions=exemptions,
    )


async def project_page(request: Request) -> Response:
    params = request.path_params
    project = normalize_project(params["project"])
    pages = boundary_of(request).pages
    shown = await pages.project(params["user"], params["index"], project)
    record, releases, blocked = shown
    status, may_set_status = await pages.project_status(
        params["user"], params["index"], project, await viewer(request)
    )
    return await page(
        request, "ui/project.html", index=record, project=project, releases=releases,
        blocked=blocked, status=status, may_set_status=may_set_status,
    )  # fmt: skip


async def version_page(request: Request) -> Response:
    params = request.path_params
    project, version = normalize_project(params["project"]), params["version"]
    record, shown = await boundary_of(request).pages.version(
        params["user"], params["index"], project, version, await viewer(request)
    )
    release = shown.release
    return await page(
        request,
        "ui/version.html",
        index=record,
        project=project,
        release=release,
        metadata=release.metadata,
        description=shown.description,
        docs=any(a.kind == "doczip" for a in release.attachments),
        toxresults=[a for a in release.attachments if a.kind == "toxresult"],
        all_yanked=bool(release.files) and all(f.yanked is not None for f in release.files),
        can_change=shown.can_change,
    )


async def search_page(request: Request) -> Response:
    query = request.query_params.get("q", "").strip()
    results = await boundary_of(request).pages.search(query, await _reader(request))
    return await page(request, "ui/search.html", query=query, results=results)


async def status_page(request: Request) -> Response:
    """`/+status` for a browser: root logged in through the browser sees what root sees."""
    who = await current_user(request, services_of(request)) or await viewer(request)
    facts = await boundary_of(request).pages.status(who)
    cache = facts.pop("mirror-cache", None)
    cached = cache.items() if cache is not None else None
    held = facts.pop("held-back", {})
    return await page(
        request, "ui/status.html", status=facts.items(), cache=cached, held=held.items()
    )


# --- logging in and out -----------------------------------------------------------------------


async def login_form(request: Request) -> Response:
    nonce = request.cookies.get(LOGIN_COOKIE) or secrets.token_urlsafe(24)
    urls = urls_of(request)
    response = await page(
        request, "ui/login.html", next=request.query_params.get("next", urls.home()),
        login_csrf=_login_csrf(request, nonce),
    )  # fmt: skip
    # The path the browser sees: behind a proxy's mount the form is at /MOUNT/+login.
    response.set_cookie(LOGIN_COOKIE, nonce, path=urls.login(), httponly=True, samesite="strict")
    return response


async def login_submit(request: Request) -> Response:
    urls = urls_of(request)
    async with request.form() as form:
        user, password = str(form.get("user", "")), str(form.get("password", ""))
        target = str(form.get("next") or urls.home())
        sent_csrf = str(form.get("csrf", ""))
    nonce = request.cookies.get(LOGIN_COOKIE, "")
    if not nonce or not hmac.compare_digest(sent_csrf, _login_csrf(request, nonce)):
        raise Forbidden(f"log-in refused: {FORM_EXPIRED}")
    address = client_address(request)
    try:
        token = await boundary_of(request).accounts.login(user, password, address)
    except Unauthenticated:
        return await page(
            request, "ui/login.html", code=401, next=target, login_csrf=sent_csrf,
            error="Unknown user or wrong password.",
        )  # fmt: skip
    if not urls.is_inside(target):
        target = urls.home()
    response = RedirectResponse(target, status_code=303)
    response.set_cookie(
        SESSION_COOKIE, f"{user}:{token.token}", max_age=token.expiration, httponly=True,
        samesite="lax",
    )  # fmt: skip
    return response


async def logout(request: Request) -> Response:
    """Log out and revoke the session's token (with every other token of the user)."""
    user, _fields = await _form_actor(request)
    await boundary_of(request).accounts.logout(user)
    response = RedirectResponse(urls_of(request).home(), status_code=303)
    response.delete_cookie(SESSION_COOKIE)
    return response


# --- owner tasks --------------------------------------------------------------------------------


async def create_index(request: Request) -> Response:
    actor, fields = await _form_actor(request)
    user, name = fields.get("user", ""), fields.get("name", "").strip()
    config = {
        "bases": fields.get("bases", ""),
        "volatile": fields.get("volatile") == "true",
        "title": fields.get("title", ""),
    }
    await boundary_of(request).indexes.create(actor, user, name, config)
    return RedirectResponse(urls_of(request).index(f"{user}/{name}"), status_code=303)


async def _form_on_index(request: Request) -> tuple[str, dict[str, str], str, str]:
    """A form naming an index in its fields: its actor, fields and that index, once the actor
    may read it. Its path names no index, so the route table's read check cannot, and a
    non-reader must not tell a project's existence from the answer (404 vs 403)."""
    actor, fields = await _form_actor(request)
    user, index = split_index_name(fields.get("index", ""))
    await boundary_of(request).indexes.readable(Reader(actor), user, index)
    return actor, fields, user, index


async def index_settings(request: Request) -> Response:
    actor, fields, user, name = await _form_on_index(request)
    changes: dict[str, Any] = {
        "title": fields.get("title", ""),
        "description": fields.get("description", ""),
        "volatile": fields.get("volatile") == "true",
        # Bases and the whitelist mean nothing to a mirror: the service leaves them out there.
        "bases": fields.get("bases", ""),
        "mirror_whitelist": fields.get("mirror_whitelist", ""),
    }
    await boundary_of(request).indexes.modify_from_form(actor, user, name, changes)
    return RedirectResponse(urls_of(request).index(f"{user}/{name}"), status_code=303)


async def yank(request: Request) -> Response:
    actor, fields, user, index = await _form_on_index(request)
    project, version = normalize_project(fields.get("project", "")), fields.get("version", "")
    reason = fields.get("reason", "") if fields.get("action") == "yank" else None
    await boundary_of(request).packages.set_yanked(actor, user, index, project, version, reason)
    target = urls_of(request).version(f"{user}/{index}", project, version)
    return RedirectResponse(target, status_code=303)


async def project_status(request: Request) -> Response:
    """The owner's form on the project page: set its PEP 792 status."""
    actor, fields = await _form_actor(request)
    user, index = split_index_name(fields.get("index", ""))
    project = normalize_project(fields.get("project", ""))
    found = parse_status(fields.get("status", ""), fields.get("reason", ""))
    await boundary_of(request).packages.set_project_status(actor, user, index, project, found)
    return RedirectResponse(urls_of(request).project(f"{user}/{index}", project), status_code=303)


async def delete_release(request: Request) -> Response:
    actor, fields, user, index = await _form_on_index(request)
    project, version = normalize_project(fields.get("project", "")), fields.get("version", "")
    packages = boundary_of(request).packages
    await packages.delete_version(actor, user, index, project, version, False)
    return RedirectResponse(urls_of(request).project(f"{user}/{index}", project), status_code=303)
