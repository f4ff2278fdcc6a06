"""Exemptions past a mirror's cooldown over HTTP (`/{user}/{index}/+exemptions`), and the
versions holds leave out (`/{user}/{index}/+held/{project}`, what the client's `list` shows)."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response

from packyard.core.names import normalize_project
from packyard.errors import NotFound
from packyard.services.boundary.exemptions import exemption_view, hold_view
from packyard.web.api import json_object
from packyard.web.auth import current_user
from packyard.web.lookup import boundary_of, services_of
from packyard.web.responses import api_response, devpi_api


def _index(request: Request) -> tuple[str, str]:
    return request.path_params["user"], request.path_params["index"]


@devpi_api
async def list_exemptions(request: Request) -> Response:
    """`GET /{user}/{index}/+exemptions`: every exemption, expired ones too (its managers)."""
    actor = await current_user(request, services_of(request))
    found = await boundary_of(request).exemptions.list(actor, *_index(request))
    return api_response([exemption_view(item) for item in found], "exemptions")


@devpi_api
async def add_exemption(request: Request) -> Response:
    """`POST /{user}/{index}/+exemptions` with {"project", "version"?, "reason", "expires"?}."""
    body = await json_object(request)
    actor = await current_user(request, services_of(request))
    made = await boundary_of(request).exemptions.add(actor, *_index(request), body)
    what = made.project + (f"=={made.version}" if made.version else "")
    return api_response(
        exemption_view(made), "exemption", status=201,
        message=f"exemption {made.id} added: {what} is served past the cooldown",
    )  # fmt: skip


@devpi_api
async def remove_exemption(request: Request) -> Response:
    """`DELETE /{user}/{index}/+exemptions/{id}`."""
    text = request.path_params["exemption_id"]
    if not text.isdigit():
        raise NotFound(f"no exemption {text!a}")
    actor = await current_user(request, services_of(request))
    await boundary_of(request).exemptions.remove(actor, *_index(request), int(text))
    return api_response(message=f"exemption {text} removed")


@devpi_api
async def held_versions(request: Request) -> Response:
    """`GET /{user}/{index}/+held/{project}`: version -> {"reason", "until"}."""
    project = normalize_project(request.path_params["project"])
    held = await boundary_of(request).exemptions.held(*_index(request), project)
    return api_response({v: hold_view(hold) for v, hold in held.items()}, "held")
