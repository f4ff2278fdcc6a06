"""Scoped API tokens over HTTP: `/{user}/+tokens` (JSON API) and the web UI's tokens page.

A token's text is in exactly one response, the one that created it (`Cache-Control:
no-store`); lists show everything else. Every route here is an account route: an API token
cannot reach it (web/scopes.py), so a leaked token cannot mint more.
"""

from __future__ import annotations

from datetime import timedelta

from starlette.requests import Request
from starlette.responses import RedirectResponse, Response

from packyard.core.tokens import ALL_INDEXES
from packyard.errors import Forbidden, InvalidInput, Unauthenticated
from packyard.services.tokens import NewToken, TokenRequest, may_manage_tokens, token_view
from packyard.web.api import json_object
from packyard.web.auth import current_user
from packyard.web.lookup import boundary_of, services_of
from packyard.web.responses import api_response, devpi_api
from packyard.web.ui import _form_actor, page, viewer
from packyard.web.urls import urls_of

NO_STORE = {"Cache-Control": "no-store"}
# The web form's choices of lifetime, in days (0: never expires).
LIFETIME_DAYS = (1, 7, 30, 90, 365, 0)
FORM_ACTIONS = ("read", "upload", "admin")


def _owner(request: Request) -> str:
    return str(request.path_params["user"])


# --- JSON API -----------------------------------------------------------------------------------


@devpi_api
async def list_tokens(request: Request) -> Response:
    """`GET /{user}/+tokens`: the user's tokens, never their secrets (the user and root)."""
    actor = await current_user(request, services_of(request))
    tokens = await boundary_of(request).tokens.list(actor, _owner(request))
    return api_response([token_view(token) for token in tokens], "tokens")


@devpi_api
async def create_token(request: Request) -> Response:
    """`POST /{user}/+tokens` with {"indexes", "actions", "expires_in", "description"}."""
    body = await json_object(request)
    actor = await current_user(request, services_of(request))
    made = await boundary_of(request).tokens.create(
        actor, _owner(request), TokenRequest.from_json(body)
    )
    return api_response(
        _created_view(made), "token", status=201, headers=NO_STORE,
        message="token created: its text is shown only now, store it safely",
    )  # fmt: skip


def _created_view(made: NewToken) -> dict[str, object]:
    return {**token_view(made.token), "token": made.text}


@devpi_api
async def revoke_token(request: Request) -> Response:
    """`DELETE /{user}/+tokens/{id}`: the token stops working at once."""
    actor = await current_user(request, services_of(request))
    owner, token_id = _owner(request), request.path_params["token_id"]
    await boundary_of(request).tokens.revoke(actor, owner, token_id)
    return api_response(message=f"token {token_id} of {owner} revoked")


# --- web UI -------------------------------------------------------------------------------------


async def tokens_page(request: Request, created: NewToken | None = None) -> Response:
    """The tokens of the logged-in user (root: of anyone), a form to create one, and, right
    after creating one, its text (this once)."""
    owner = _owner(request) if created is None else created.token.user
    who = await viewer(request)
    if who is None:
        raise Unauthenticated("log in first to manage API tokens")
    tokens = await boundary_of(request).tokens.list(who, owner)
    response = await page(
        request, "ui/tokens.html", owner=owner, tokens=[token_view(t) for t in tokens],
        created=_created_view(created) if created else None, can_create=who == owner,
        lifetimes=LIFETIME_DAYS, form_actions=FORM_ACTIONS,
    )  # fmt: skip
    response.headers.update(NO_STORE)
    return response


async def create_token_form(request: Request) -> Response:
    actor, fields = await _form_actor(request)
    made = await boundary_of(request).tokens.create(actor, actor, _form_request(fields))
    return await tokens_page(request, created=made)


def _form_request(fields: dict[str, str]) -> TokenRequest:
    indexes = fields.get("indexes", "").replace(",", " ").split() or [ALL_INDEXES]
    actions = [action for action in FORM_ACTIONS if fields.get(f"action_{action}") == "on"]
    try:
        days = int(fields.get("expires_days", "30"))
    except ValueError as exc:
        raise InvalidInput("expires_days: a whole number of days") from exc
    lifetime = int(timedelta(days=days).total_seconds()) if days else None
    body = {"indexes": indexes, "actions": actions, "expires_in": lifetime}
    return TokenRequest.from_json(body | {"description": fields.get("description", "")})


async def revoke_token_form(request: Request) -> Response:
    actor, fields = await _form_actor(request)
    owner = fields.get("user", "")
    if not may_manage_tokens(actor, owner):
        raise Forbidden(f"only {owner} and root can revoke the tokens of {owner}")
    await boundary_of(request).tokens.revoke(actor, owner, fields.get("token", ""))
    return RedirectResponse(urls_of(request).tokens(owner), status_code=303)
