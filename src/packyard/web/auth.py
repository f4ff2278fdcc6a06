"""Who is asking: credentials from `X-Devpi-Auth` or HTTP Basic (devpi-protocol.md §2.2).

Credentials sent with any request are judged before the request reaches its endpoint
(`Authentication`): wrong ones are answered 401 there, so no endpoint can mistake them for
an anonymous request, and a password guess is throttled wherever it is sent.
"""

from __future__ import annotations

import base64
import binascii

from starlette.requests import Request
from starlette.types import ASGIApp, Receive, Scope, Send

from packyard.errors import PackyardError, Unauthenticated
from packyard.services import Services
from packyard.web.responses import error_response

USER_KEY = "packyard.user"
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
    return await services.boundary.accounts.authenticate(name, secret, client_address(request))


def judges_its_own_credentials(request: Request) -> bool:
    """Logging in is itself the check; devpi-client sends its old token along with it."""
    return request.url.path == "/+login" and request.method == "POST"


class Authentication:
    """Judges the credentials a request carries before any endpoint runs (see module doc)."""

    def __init__(self, app: ASGIApp, services: Services) -> None:
        self.app = app
        self.services = services

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            request = Request(scope, receive)
            if not judges_its_own_credentials(request):
                try:
                    await current_user(request, self.services)
                except PackyardError as exc:
                    await error_response(request, exc)(scope, receive, send)
                    return
        await self.app(scope, receive, send)
