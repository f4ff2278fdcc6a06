"""devpi's JSON API: discovery, login, users, indexes, uploads, JSON views (protocol 2-11).

One endpoint per (route, method); `web/routing.py` picks the representation (JSON here, the
web page in ui.py, the simple page in simple.py) before any of them runs."""

from __future__ import annotations

import json
import tempfile
from typing import Any, BinaryIO, cast

from starlette.requests import Request
from starlette.responses import Response

from packyard.core.names import normalize_project
from packyard.core.status import parse_status
from packyard.errors import InvalidInput, NotFound, Unauthenticated
from packyard.services.uploads import UploadRequest
from packyard.web.auth import client_address, current_user
from packyard.web.limits import allow_body, bounded_form
from packyard.web.lookup import boundary_of, request_index, services_of
from packyard.web.readcheck import reveals_no_content
from packyard.web.responses import REASON_HEADER, api_response, devpi_api
from packyard.web.upload_form import upload_command
from packyard.web.urls import urls_of

FEATURES = ["push-no-docs", "push-only-docs", "push-register-project", "server-keyvalue-parsing"]
# All text fields of one upload together (a long description fits); the file part is apart.
MAX_FORM_TEXT = 8 * 1024 * 1024
# Room for the multipart boundaries and part headers around the file and the fields.
MULTIPART_OVERHEAD = 64 * 1024


async def json_body(request: Request) -> Any:
    """The JSON body (at most `max_body_size`), read only after the credentials are checked."""
    await current_user(request, services_of(request))
    return await _parsed_json(request)


async def json_object(request: Request) -> dict[str, Any]:
    body = await json_body(request)
    if not isinstance(body, dict):
        raise InvalidInput("Bad request: expected a JSON object")
    return body


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


def _named(request: Request, key: str) -> str:
    """A path segment naming a user, index or project; `+...` names are routes, not things."""
    name: str = request.path_params[key]
    if name.startswith("+"):
        raise NotFound(f"no such resource {request.url.path}")
    return name


async def _actor(request: Request) -> str | None:
    return await current_user(request, services_of(request))


# --- discovery, login, status --------------------------------------------------------------


@reveals_no_content  # URLs only: `devpi use USER/INDEX` works before `devpi login`
@devpi_api
async def api_discovery(request: Request) -> Response:
    urls = urls_of(request)
    actor = await _actor(request)
    result: dict[str, Any] = {
        "login": urls.absolute("+login"),
        "authstatus": ["ok", actor, []] if actor else ["noauth", "", []],
        "features": FEATURES,
    }
    if "index" in request.path_params:  # /USER/INDEX/+api (a route parameter, not a method)
        record = await request_index(request)
        result["index"] = urls.absolute(record.full_name)
        result["simpleindex"] = urls.absolute(record.full_name, "+simple") + "/"
        if record.index_config.upload_refusal is None:  # where uploads go, if anywhere
            result["pypisubmit"] = urls.absolute(record.full_name) + "/"
    return api_response(result, "apiconfig")


@devpi_api
async def login(request: Request) -> Response:
    # Not json_body: the devpi client sends its old (maybe dead) token along with a login.
    body = await _parsed_json(request)
    if not isinstance(body, dict) or not body.get("user") or "password" not in body:
        raise InvalidInput("Bad request: no user/password specified")
    user, password = str(body["user"]), str(body["password"])
    token = await boundary_of(request).accounts.login(user, password, client_address(request))
    result = {"password": token.token, "expiration": token.expiration}
    return api_response(result, "proxyauth", message="login successful")


@devpi_api
async def logout(request: Request) -> Response:
    """`POST /+logout`: revoke every login token of the caller."""
    actor = await _actor(request)
    await boundary_of(request).accounts.logout(actor)
    return api_response(message=f"logged out: every login token of {actor} is revoked")


@devpi_api
async def status(request: Request) -> Response:
    """Server facts; where it runs and its caches only for root (they help an attacker)."""
    facts = await boundary_of(request).pages.status(await _actor(request))
    return api_response(facts, "status")


# --- users ----------------------------------------------------------------------------------


@devpi_api
async def root(request: Request) -> Response:
    users = await boundary_of(request).accounts.users_view(await _actor(request))
    return api_response(users, "list:userconfig")


@devpi_api
async def user_get(request: Request) -> Response:
    name = _named(request, "user")
    view = await boundary_of(request).accounts.user_view(name, await _actor(request))
    return api_response(view, "userconfig")


@devpi_api
async def user_put(request: Request) -> Response:
    name = _named(request, "user")
    body = await json_object(request)
    view = await boundary_of(request).accounts.create(await _actor(request), name, body)
    return api_response(view, "userconfig", status=201)


@devpi_api
async def user_patch(request: Request) -> Response:
    name = _named(request, "user")
    body = await json_object(request)
    update = await boundary_of(request).accounts.modify(await _actor(request), name, body)
    if update.token is not None:
        result = {"password": update.token.token, "expiration": update.token.expiration}
        return api_response(result, "userpassword", message="user updated, new proxy auth")
    if not update.changed:
        return api_response(message=f"user {name!r} unchanged: it has these settings already")
    return api_response(message="user updated")


@devpi_api
async def user_delete(request: Request) -> Response:
    name = _named(request, "user")
    await boundary_of(request).accounts.delete(await _actor(request), name)
    return api_response(message=f"user '{name}' deleted")


# --- indexes --------------------------------------------------------------------------------


def _index_names(request: Request) -> tuple[str, str]:
    return _named(request, "user"), _named(request, "index")


@devpi_api
async def index_get(request: Request) -> Response:
    user, name = _index_names(request)
    viewer = await _actor(request)
    with_projects = not _flag(request, "no_projects")
    view = await boundary_of(request).indexes.view(viewer, user, name, with_projects)
    return api_response(view, "indexconfig")


@devpi_api
async def index_put(request: Request) -> Response:
    user, name = _index_names(request)
    body = await json_object(request)
    view = await boundary_of(request).indexes.create(await _actor(request), user, name, body)
    return api_response(view, "indexconfig")


@devpi_api
async def index_patch(request: Request) -> Response:
    user, name = _index_names(request)
    body = await json_body(request)
    if not isinstance(body, dict | list):
        raise InvalidInput("Bad request: expected a JSON object or list")
    actor, noop = await _actor(request), _flag(request, "error_on_noop")
    view = await boundary_of(request).indexes.modify(actor, user, name, body, noop)
    return api_response(view, "indexconfig")


@devpi_api
async def index_delete(request: Request) -> Response:
    user, name = _index_names(request)
    await boundary_of(request).indexes.delete(await _actor(request), user, name)
    return api_response(message=f"index {user}/{name} deleted", status=201)


@devpi_api
async def index_push(request: Request) -> Response:
    """devpi push (`PUSH`, or `POST` with a JSON body)."""
    user, name = _index_names(request)
    body = await json_object(request)
    pushed = await boundary_of(request).indexes.push(await _actor(request), user, name, body)
    return api_response(pushed.rows, "actionlog", status=pushed.status)


@devpi_api
async def cached_files(request: Request) -> Response:
    """`GET /USER/INDEX/+cached`: the files a mirror has cached (what bundles carry)."""
    params = request.path_params
    files = await boundary_of(request).packages.cached_files(params["user"], params["index"])
    return api_response(files, "cachedfiles")


@devpi_api
async def upload(request: Request) -> Response:
    """The legacy upload API (twine, uv publish, devpi upload): exactly 200 on success."""
    user, index = _index_names(request)
    boundary = boundary_of(request)
    limit = services_of(request).settings.max_upload_size
    actor = await _actor(request)
    # Decided from the headers alone: an unauthorised upload is answered before its body is read
    # (and its unread body drained only up to the ordinary cap).
    await boundary.indexes.authorize_upload(actor, user, index)
    message = f"file too large: the limit is {limit} bytes"
    allow_body(request, limit + MAX_FORM_TEXT + MULTIPART_OVERHEAD, message)
    async with bounded_form(request, MAX_FORM_TEXT, max_files=2, max_fields=2000) as form:
        command = upload_command(form.multi_items())
        outcome = await boundary.packages.upload(UploadRequest(actor, user, index, command))
    return Response(b"", media_type="text/html", headers={REASON_HEADER: outcome.message})


# --- projects, versions, files ----------------------------------------------------------------


def _project_names(request: Request) -> tuple[str, str, str]:
    params = request.path_params
    return params["user"], params["index"], normalize_project(_named(request, "project"))


@devpi_api
async def project_get(request: Request) -> Response:
    user, index, project = _project_names(request)
    ignore_bases = _flag(request, "ignore_bases")
    view = await boundary_of(request).packages.project_view(
        user, index, project, urls_of(request).root, ignore_bases
    )
    return api_response(view, "projectconfig")


@devpi_api
async def project_delete(request: Request) -> Response:
    user, index, project = _project_names(request)
    actor, force = await _actor(request), _flag(request, "force")
    dropped = await boundary_of(request).packages.delete_project(actor, user, index, project, force)
    if dropped is not None:  # a mirror's cached files: fetched again on their next request
        size = f"{dropped.size} bytes"
        return api_response(message=f"dropped {dropped.count} cached file(s) ({size}) of {project}")
    return api_response(message=f"project {project} deleted from stage {user}/{index}")


@devpi_api
async def project_patch(request: Request) -> Response:
    """`{"status": ..., "reason": ...}` sets the PEP 792 status; `{"yanked": ...}` yanks."""
    user, index, project = _project_names(request)
    body = await json_body(request)
    if isinstance(body, dict) and "status" in body:
        found = parse_status(body["status"], body.get("reason"))
        actor = await _actor(request)
        await boundary_of(request).packages.set_project_status(actor, user, index, project, found)
        return api_response(found.to_json(), "projectstatus", message=f"{project}: {found.status}")
    return await _yank(request, user, index, project, None)


@devpi_api
async def import_advisories(request: Request) -> Response:
    """`POST /+advisories` with an OSV export zip as the body (root only; checked first)."""
    actor = await _actor(request)
    if actor is None:
        raise Unauthenticated("authentication required to import advisories")
    limit = services_of(request).settings.advisories_max_size
    allow_body(request, limit, f"advisory file too large: the limit is {limit} bytes")
    with tempfile.SpooledTemporaryFile(max_size=8 * 1024 * 1024) as spool:
        async for chunk in request.stream():
            spool.write(chunk)
        spool.seek(0)
        body = cast(BinaryIO, spool)
        imported = await boundary_of(request).packages.import_advisories(actor, body)
    return api_response(imported.as_dict(), "advisories", message="advisories imported")


@devpi_api
async def version_get(request: Request) -> Response:
    user, index, project = _project_names(request)
    version, ignore_bases = request.path_params["version"], _flag(request, "ignore_bases")
    view = await boundary_of(request).packages.version_view(
        user, index, project, version, urls_of(request).root, ignore_bases
    )
    return api_response(view, "versiondata")


@devpi_api
async def version_delete(request: Request) -> Response:
    user, index, project = _project_names(request)
    version = request.path_params["version"]
    actor, force = await _actor(request), _flag(request, "force")
    packages = boundary_of(request).packages
    await packages.delete_version(actor, user, index, project, version, force)
    return api_response(message=f"project {project} version '{version}' deleted")


@devpi_api
async def version_patch(request: Request) -> Response:
    user, index, project = _project_names(request)
    return await _yank(request, user, index, project, request.path_params["version"])


def _file_names(request: Request) -> tuple[str, str, str]:
    params = request.path_params
    return params["user"], params["index"], params["relpath"]


@devpi_api
async def file_toxresult(request: Request) -> Response:
    """`POST` a tox result beside a release file (who may is asked before the body is read)."""
    user, index, relpath = _file_names(request)
    services, packages = services_of(request), boundary_of(request).packages
    actor = await _actor(request)
    await packages.check_toxresult_upload(actor, user, index, relpath)
    limit = services.settings.max_toxresult_size
    allow_body(request, limit, f"tox result too large: the limit is {limit} bytes")
    body = await request.body()
    path = await packages.attach_toxresult(actor, user, index, relpath, body)
    return api_response(path, "toxresultpath")


@devpi_api
async def file_delete(request: Request) -> Response:
    user, index, relpath = _file_names(request)
    actor, force = await _actor(request), _flag(request, "force")
    path = await boundary_of(request).packages.delete_file(actor, user, index, relpath, force)
    return api_response(message=f"package '{path}' deleted")


@devpi_api
async def file_patch(request: Request) -> Response:
    user, index, relpath = _file_names(request)
    return await _yank(request, user, index, "", None, relpath)


async def _yank(
    request: Request,
    user: str,
    index: str,
    project: str,
    version: str | None,
    relpath: str | None = None,
) -> Response:
    """PATCH {"yanked": true | "reason" | false} on a project, version or file (PEP 592)."""
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
    actor = await _actor(request)
    count = await boundary_of(request).packages.set_yanked(
        actor, user, index, project, version, yanked, relpath
    )
    what = "yanked" if yanked is not None else "unyanked"
    return api_response(
        {"files": count, "yanked": yanked}, "yank", message=f"{count} file(s) {what}"
    )
