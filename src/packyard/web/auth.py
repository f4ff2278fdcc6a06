"""Who is asking: credentials from `X-Devpi-Auth` or HTTP Basic (devpi-protocol.md §2.2).

Credentials sent with any request are judged before the request reaches its endpoint
(`Authentication`): wrong ones are answered 401 there, so no endpoint can mistake them for
an anonymous request, and a password guess is throttled wherever it is sent. The same place
names the request's actor (user, token, address) for the audit trail of whatever it writes.

An API token (user `__token__` or its owner, the token as the secret) authenticates as its
owner, so every ACL applies unchanged; its scope is checked there too, once for every route
(web/scopes.py): a request outside it is answered 403 before any endpoint runs.
"""

from __future__ import annotations

import base64
import binascii
import ipaddress

from starlette.requests import Request
from starlette.types import ASGIApp, Receive, Scope, Send

from packyard.core.tokens import ApiToken
from packyard.errors import Forbidden, PackyardError, Unauthenticated
from packyard.services import Services
from packyard.services.audit import Actor, acting_as, set_actor
from packyard.web.responses import error_response
from packyard.web.scopes import request_need

USER_KEY = "packyard.user"
# The API token a request authenticated with, when it did (set with USER_KEY).
TOKEN_KEY = "packyard.api_token"
# The web UI's session: "user:token", set by logging in through the browser (web/ui.py).
SESSION_COOKIE = "packyard_session"
VIEWER_KEY = "packyard.viewer"


def credentials(request: Request) -> tuple[str, str] | None:
    """(user, secret) as sent, or None; the secret may be a token or a password."""
    encoded = request.headers.get("x-devpi-auth")
    if encoded is None:
        scheme, _, encoded_basic = request.headers.get("authorization", "").partition(" ")
        if scheme.lower() != "basic":
            return None
        encoded = encoded_basic
    try:
        decoded = base64.b64decode(encoded.strip(), validate=True).decode("utf-8")
    except (binascii.Error, UnicodeDecodeError):
        return ("", "")  # sent, but unreadable: wrong credentials, not none
    user, sep, secret = decoded.partition(":")
    return (user, secret) if sep and user else ("", "")


def client_address(request: Request) -> str:
    return request.client.host if request.client else ""


def recorded_address(request: Request) -> str | None:
    """The client address for the audit trail: only if it is an IP address (never whatever
    text a header carried)."""
    try:
        return str(ipaddress.ip_address(client_address(request)))
    except ValueError:
        return None


def request_actor(request: Request, user: str | None) -> Actor:
    """Who the audit trail names for what `user` writes through this request."""
    token = api_token(request)
    return Actor(user=user, token=token.id if token else None, address=recorded_address(request))


def act_as(request: Request, user: str | None) -> None:
    """From here on this request writes as `user` (e.g. a browser session's user, known
    only once its form is checked)."""
    set_actor(request_actor(request, user))


async def current_user(request: Request, services: Services) -> str | None:
    """The authenticated user name, or None when no credentials were sent.

    Raises Unauthenticated for wrong credentials (LoginExpired for a dead token), and
    TooManyAttempts or Busy when a password cannot be checked now."""
    if USER_KEY not in request.scope:
        request.scope[USER_KEY] = await _authenticate(request, services)
    user: str | None = request.scope[USER_KEY]
    return user


async def session_user(request: Request, services: Services) -> str | None:
    """The user logged in through the browser, if the session cookie is still valid."""
    user, sep, token = request.cookies.get(SESSION_COOKIE, "").partition(":")
    if not (sep and user and token):
        return None
    if VIEWER_KEY not in request.scope:
        request.scope[VIEWER_KEY] = await services.boundary.accounts.session_user(user, token)
    viewer: str | None = request.scope[VIEWER_KEY]
    return viewer


async def reader(request: Request, services: Services) -> str | None:
    """Whose read rights apply: the credentials sent, else the browser's session. (A session
    never authorises a change: forms check their CSRF token, the API its credentials.)"""
    return await current_user(request, services) or await session_user(request, services)


async def _authenticate(request: Request, services: Services) -> str | None:
    sent = credentials(request)
    if sent is None:
        return None
    name, secret = sent
    if not name:
        raise Unauthenticated(
            "the credentials sent could not be read: expected base64 of 'user:secret'"
        )
    address = client_address(request)
    token = await services.boundary.tokens.authenticate(name, secret, address)
    if token is not None:
        request.scope[TOKEN_KEY] = token
        return token.user
    return await services.boundary.accounts.authenticate(name, secret, address)


def api_token(request: Request) -> ApiToken | None:
    """The API token the request authenticated with, if any."""
    token = request.scope.get(TOKEN_KEY)
    return token if isinstance(token, ApiToken) else None


def check_token_scope(request: Request) -> None:
    """Refuse (403) a request authenticated by an API token whose scope does not cover it."""
    token = api_token(request)
    if token is None:
        return
    need = request_need(request.scope)
    if need is not None and not token.scope.allows(need):
        raise Forbidden(token.scope.refusal(need))


def judges_its_own_credentials(request: Request) -> bool:
    """Logging in is itself the check; devpi-client sends its old token along with it."""
    return request.url.path == "/+login" and request.method == "POST"


class Authentication:
    """Judges the credentials a request carries before any endpoint runs (see module doc)."""

    def __init__(self, app: ASGIApp, services: Services) -> None:
        self.app = app
        self.services = services

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        request = Request(scope, receive)
        user = None
        if not judges_its_own_credentials(request):
            try:
                user = await current_user(request, self.services)
                check_token_scope(request)
            except PackyardError as exc:
                await error_response(request, exc)(scope, receive, send)
                return
        # Every write this request makes is recorded as this actor's (never as the server's).
        with acting_as(request_actor(request, user)):
            await self.app(scope, receive, send)
