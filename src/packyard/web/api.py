"""devpi's JSON API: discovery, login, users, indexes, uploads, JSON views (protocol 2-11)."""

from __future__ import annotations

import json
from typing import Any

from starlette.concurrency import run_in_threadpool
from starlette.datastructures import UploadFile
from starlette.requests import Request
from starlette.responses import Response

from packyard import __version__
from packyard.core import acl
from packyard.core.models import IndexRecord, User
from packyard.core.names import normalize_project
from packyard.errors import Forbidden, InvalidInput, NotFound
from packyard.services import Services
from packyard.services.uploads import UploadForm, UploadOutcome, UploadRequest
from packyard.web import simple, ui
from packyard.web.auth import client_address, current_user
from packyard.web.batches import Batches
from packyard.web.limits import allow_body, bounded_form
from packyard.web.lookup import request_index, services_of
from packyard.web.responses import REASON_HEADER, api_response, devpi_api
from packyard.web.simple import is_installer, refresh_mirrors
from packyard.web.urls import urls_of

FEATURES = ["push-no-docs", "push-only-docs", "push-register-project", "server-keyvalue-parsing"]
# The devpi-server release whose protocol this API implements (devpi-protocol.md), reported in
# /+status `versioninfo` as devpi does: clients and scripts read the protocol level from the
# `devpi-server` entry, and the `packyard` entry beside it says which server really answers.
DEVPI_SERVER_COMPATIBLE = "6.20.3"
# All text fields of one upload together (a long description fits); the file part is apart.
MAX_FORM_TEXT = 8 * 1024 * 1024
# Room for the multipart boundaries and part headers around the file and the fields.
MULTIPART_OVERHEAD = 64 * 1024


async def json_body(request: Request) -> Any:
    """The JSON body (at most `max_body_size`), read only after the credentials are checked."""
    await current_user(request, services_of(request))
    return await _parsed_json(request)


async def _parsed_json(request: Request) -> Any:
    raw = await request.body()
    if not raw.strip():
        return {}
    try:
        return json.loads(raw)
    except ValueError as exc:
        raise InvalidInput("Bad request: could not decode json") from exc


def _flag(request: Request, name: str) -> bool:
    return name in request.query_params


# --- discovery, login, status --------------------------------------------------------------


@devpi_api
async def api_discovery(request: Request) -> Response:
    services = services_of(request)
    urls = urls_of(request)
    actor = await current_user(request, services)
    result: dict[str, Any] = {
        "login": urls.absolute("+login"),
        "authstatus": ["ok", actor, []] if actor else ["noauth", "", []],
        "features": FEATURES,
    }
    if "index" in request.path_params:
        record = await request_index(request)
        result["index"] = urls.absolute(record.full_name)
        result["simpleindex"] = urls.absolute(record.full_name, "+simple") + "/"
        if not record.is_mirror:
            result["pypisubmit"] = urls.absolute(record.full_name) + "/"
    return api_response(result, "apiconfig")


@devpi_api
async def login(request: Request) -> Response:
    if request.headers.get("content-type", "").startswith("application/x-www-form-urlencoded"):
        return await ui.login_submit(request)
    services = services_of(request)
    # Not json_body: the devpi client sends its old (maybe dead) token along with a login.
    body = await _parsed_json(request)
    if not isinstance(body, dict) or not body.get("user") or "password" not in body:
        raise InvalidInput("Bad request: no user/password specified")
    user, password = str(body["user"]), str(body["password"])
    address = client_address(request)
    token = await run_in_threadpool(services.accounts.login, user, password, address)
    result = {"password": token.token, "expiration": token.expiration}
    return api_response(result, "proxyauth", message="login successful")


@devpi_api
async def logout(request: Request) -> Response:
    """`POST /+logout`: revoke every login token of the caller (the UI's form posts here too)."""
    if request.headers.get("content-type", "").startswith("application/x-www-form-urlencoded"):
        return await ui.logout(request)
    services = services_of(request)
    actor = await current_user(request, services)
    await run_in_threadpool(services.accounts.revoke_tokens, actor)
    return api_response(message=f"logged out: every login token of {actor} is revoked")


@devpi_api
async def status(request: Request) -> Response:
    """Server facts; where it runs and its caches only for root (they help an attacker)."""
    services = services_of(request)
    result: dict[str, Any] = {
        "versioninfo": {"devpi-server": DEVPI_SERVER_COMPATIBLE, "packyard": __version__},
        "serial": services.serial,
        "role": "MASTER",
    }
    viewer = await current_user(request, services)
    if viewer is None and ui.prefers_html(request):
        viewer = await ui.viewer(request)  # root logged in through the browser
    if viewer == acl.ROOT:
        result |= {
            "serverdir": str(services.settings.serverdir),
            "host": services.settings.host,
            "port": services.settings.port,
            "outside-url": services.settings.outside_url or None,
            "offline": services.settings.offline,
            "mirror-cache": services.mirrors.stats.as_dict(),
        }
    if ui.prefers_html(request):
        return await ui.status_page(request, result)
    return api_response(result, "status")


# --- users ----------------------------------------------------------------------------------


def index_config_view(record: IndexRecord) -> dict[str, Any]:
    return dict(record.config)


PRIVATE_USER_KEYS = ("email", "custom_data")


def user_view(services: Services, user: User, viewer: str | None) -> dict[str, Any]:
    """A user's config as devpi shows it; e-mail and custom data only to them and root."""
    info = dict(user.info)
    if not acl.may_see_private_user_info(viewer, user.name):
        for key in PRIVATE_USER_KEYS:
            info.pop(key, None)
    view: dict[str, Any] = {"username": user.name, "created": user.created, **info}
    if user.modified:
        view["modified"] = user.modified
    view["indexes"] = {r.name: index_config_view(r) for r in services.indexes.of_user(user.name)}
    return view


@devpi_api
async def root(request: Request) -> Response:
    if ui.prefers_html(request):
        return await ui.root_page(request)
    services = services_of(request)
    actor = await current_user(request, services)

    def all_users() -> dict[str, Any]:
        return {user.name: user_view(services, user, actor) for user in services.accounts.list()}

    return api_response(await run_in_threadpool(all_users), "list:userconfig")


@devpi_api
async def user_resource(request: Request) -> Response:
    services = services_of(request)
    name = request.path_params["user"]
    if name.startswith("+"):
        raise NotFound(f"no such resource {request.url.path}")
    actor = await current_user(request, services)
    accounts = services.accounts
    if request.method in ("GET", "HEAD") and ui.prefers_html(request):
        return await ui.user_page(request)
    if request.method in ("GET", "HEAD"):
        view = await run_in_threadpool(lambda: user_view(services, accounts.get(name), actor))
        return api_response(view, "userconfig")
    if request.method == "DELETE":
        await run_in_threadpool(accounts.delete, actor, name)
        return api_response(message=f"user '{name}' deleted")
    body = await json_body(request)
    if not isinstance(body, dict):
        raise InvalidInput("Bad request: expected a JSON object")
    if request.method == "PUT":
        user = await run_in_threadpool(accounts.create, actor, name, body)
        return api_response(user_view(services, user, user.name), "userconfig", status=201)
    update = await run_in_threadpool(accounts.modify, actor, name, body)
    if update.token is not None:
        result = {"password": update.token.token, "expiration": update.token.expiration}
        return api_response(result, "userpassword", message="user updated, new proxy auth")
    if not update.changed:
        return api_response(message=f"user {name!r} unchanged: it has these settings already")
    return api_response(message="user updated")


# --- indexes --------------------------------------------------------------------------------


@devpi_api
async def index_resource(request: Request) -> Response:
    services = services_of(request)
    user, name = request.path_params["user"], request.path_params["index"]
    if name.startswith("+"):
        raise NotFound(f"no such resource {request.url.path}")
    method = request.method
    if method == "POST" and request.headers.get("content-type", "").startswith("multipart/"):
        return await upload(request, user, name)
    actor = await current_user(request, services)
    indexes = services.indexes
    if method in ("GET", "HEAD") and is_installer(request):
        return await simple.project_list(request)  # devpi's shortcut: -i http://host/u/i/
    if method in ("GET", "HEAD") and ui.prefers_html(request):
        return await ui.index_page(request)
    if method in ("GET", "HEAD"):
        record = await request_index(request)
        view = index_config_view(record)
        if not _flag(request, "no_projects"):
            view["projects"] = await run_in_threadpool(services.packages.own_project_names, record)
        return api_response(view, "indexconfig")
    if method == "DELETE":
        await run_in_threadpool(indexes.delete, actor, user, name)
        return api_response(message=f"index {user}/{name} deleted", status=201)
    body = await json_body(request)
    if method == "PUT":
        if not isinstance(body, dict):
            raise InvalidInput("Bad request: expected a JSON object")
        record = await run_in_threadpool(indexes.create, actor, user, name, body)
        return api_response(index_config_view(record), "indexconfig")
    if method == "PATCH":
        if not isinstance(body, dict | list):
            raise InvalidInput("Bad request: expected a JSON object or list")
        noop = _flag(request, "error_on_noop")
        record = await run_in_threadpool(indexes.modify, actor, user, name, body, noop)
        return api_response(index_config_view(record), "indexconfig")
    if method in ("POST", "PUSH"):
        if not isinstance(body, dict):
            raise InvalidInput("Bad request: expected a JSON object")
        record = await request_index(request)
        pushed = await services.transfer.push(actor, record, body)
        return api_response(pushed.rows, "actionlog", status=pushed.status)
    raise InvalidInput(f"method {method} not supported here")


@devpi_api
async def cached_files(request: Request) -> Response:
    """`GET /USER/INDEX/+cached`: the files a mirror has cached (what bundles carry)."""
    services = services_of(request)
    record = await request_index(request)
    files = await run_in_threadpool(services.packages.cached_files, record)
    return api_response(files, "cachedfiles")


async def upload(request: Request, user: str, index: str) -> Response:
    """The legacy upload API (twine, uv publish, devpi upload): exactly 200 on success."""
    services = services_of(request)
    limit = services.settings.max_upload_size
    actor = await current_user(request, services)
    # Decided from the headers alone: an unauthorised upload is answered before its body is read
    # (and its unread body drained only up to the ordinary cap).
    snapshot = services.indexes.fresh()
    if snapshot is None:
        await run_in_threadpool(services.uploads.authorize, actor, user, index)
    else:
        services.uploads.authorize(actor, user, index, snapshot)
    message = f"file too large: the limit is {limit} bytes"
    allow_body(request, limit + MAX_FORM_TEXT + MULTIPART_OVERHEAD, message)
    async with bounded_form(request, MAX_FORM_TEXT, max_files=2, max_fields=2000) as form:
        fields: dict[str, list[str]] = {}
        upload_form = UploadForm(fields)
        for key, value in form.multi_items():
            if isinstance(value, UploadFile):
                if key == "content":
                    upload_form.filename = value.filename
                    upload_form.content = value.file
            elif value:
                fields.setdefault(key, []).append(value)
        batches: Batches[UploadRequest, UploadOutcome] = request.app.state.upload_batches
        incoming = UploadRequest(actor, user, index, upload_form)
        await run_in_threadpool(services.uploads.inspect, incoming)  # outside the shared batch
        outcome = await batches.submit(incoming)
    return Response(b"", media_type="text/html", headers={REASON_HEADER: outcome.message})


# --- projects, versions, files ----------------------------------------------------------------


@devpi_api
async def project_resource(request: Request) -> Response:
    services = services_of(request)
    record = await request_index(request)
    project = request.path_params["project"]
    if project.startswith("+"):
        raise NotFound(f"no such resource {request.url.path}")
    normalized = normalize_project(project)
    if request.method == "DELETE" and record.is_mirror:
        return await _drop_mirrored(request, record, normalized)
    if request.method == "DELETE":
        actor = await current_user(request, services)
        force = _flag(request, "force")
        await run_in_threadpool(services.packages.delete_project, actor, record, normalized, force)
        return api_response(message=f"project {normalized} deleted from stage {record.full_name}")
    if request.method == "PATCH":
        return await _yank(request, record, normalized, None)
    if is_installer(request):
        return await simple.project_page(request)  # devpi's shortcut: -i http://host/u/i/
    if ui.prefers_html(request):
        return await ui.project_page(request)
    await refresh_mirrors(services, record, normalized)
    result = await run_in_threadpool(
        services.packages.project_view,
        record,
        normalized,
        urls_of(request).root,
        _flag(request, "ignore_bases"),
    )
    return api_response(result, "projectconfig")


async def _drop_mirrored(request: Request, record: IndexRecord, project: str) -> Response:
    """On a mirror, deleting a project drops its cached files; they are fetched again."""
    services = services_of(request)
    actor = await current_user(request, services)
    if not acl.may_manage_index(actor, record.user, services.settings.restrict_modify):
        raise Forbidden(f"no permission to drop cached files of {record.full_name}")
    count, size = await run_in_threadpool(services.mirrors.drop_cached, record, project)
    return api_response(message=f"dropped {count} cached file(s) ({size} bytes) of {project}")


@devpi_api
async def version_resource(request: Request) -> Response:
    services = services_of(request)
    record = await request_index(request)
    project = normalize_project(request.path_params["project"])
    version = request.path_params["version"]
    if request.method == "DELETE":
        actor = await current_user(request, services)
        force = _flag(request, "force")
        await run_in_threadpool(
            services.packages.delete_version, actor, record, project, version, force
        )
        return api_response(message=f"project {project} version '{version}' deleted")
    if request.method == "PATCH":
        return await _yank(request, record, project, version)
    if ui.prefers_html(request):
        return await ui.version_page(request)
    await refresh_mirrors(services, record, project)
    result = await run_in_threadpool(
        services.packages.version_view,
        record,
        project,
        version,
        urls_of(request).root,
        _flag(request, "ignore_bases"),
    )
    return api_response(result, "versiondata")


@devpi_api
async def file_resource(request: Request) -> Response:
    services = services_of(request)
    record = await request_index(request)
    relpath = request.path_params["relpath"]
    actor = await current_user(request, services)
    if request.method == "POST":
        found = await run_in_threadpool(services.packages.find_file, record, relpath)
        services.uploads.check_toxresult_upload(actor, record, found.record)  # before the body
        limit = services.settings.max_toxresult_size
        allow_body(request, limit, f"tox result too large: the limit is {limit} bytes")
        body = await request.body()
        path = await run_in_threadpool(
            services.uploads.attach_toxresult, actor, record, found.record, body
        )
        return api_response(path, "toxresultpath")
    if request.method == "DELETE":
        force = _flag(request, "force")
        path = await run_in_threadpool(services.packages.delete_file, actor, record, relpath, force)
        return api_response(message=f"package '{path}' deleted")
    found = await run_in_threadpool(services.packages.find_file, record, relpath)
    return await _yank(request, record, found.record.project, None, found.record.filename)


async def _yank(
    request: Request,
    record: IndexRecord,
    project: str,
    version: str | None,
    filename: str | None = None,
) -> Response:
    """PATCH {"yanked": true | "reason" | false} on a project, version or file (PEP 592)."""
    services = services_of(request)
    body = await json_body(request)
    if not isinstance(body, dict) or "yanked" not in body:
        raise InvalidInput('expected a JSON object like {"yanked": true} or {"yanked": "reason"}')
    value = body["yanked"]
    if value is False or value is None:
        yanked = None
    elif value is True:
        yanked = ""
    elif isinstance(value, str):
        yanked = value
    else:
        raise InvalidInput("yanked must be true, false or a reason text")
    actor = await current_user(request, services)
    count = await run_in_threadpool(
        services.packages.set_yanked, actor, record, project, version, filename, yanked
    )
    what = "yanked" if yanked is not None else "unyanked"
    return api_response(
        {"files": count, "yanked": yanked}, "yank", message=f"{count} file(s) {what}"
    )
