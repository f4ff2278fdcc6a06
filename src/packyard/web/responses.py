"""Responses in devpi's JSON envelope, and the one place domain errors become HTTP."""

from __future__ import annotations

import json
from collections.abc import Callable
from http import HTTPStatus
from typing import Any, TypeVar

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Match

from packyard import __version__, errors
from packyard.web.urls import urls_of

# devpi-client shows `message` only when the content type is exactly this (no charset).
JSON_TYPE = "application/json"
# A header the server runner turns into the HTTP reason phrase (twine and devpi print it).
REASON_HEADER = "x-packyard-reason"
# Statuses whose reason phrase keeps the standard words first, whatever the message.
STANDARD_REASON_FIRST = frozenset({401, 403})
# Content types of the UI's form posts (their errors are pages).
FORM_TYPES = ("application/x-www-form-urlencoded",)
_DEVPI_API = "packyard_devpi_api"
Endpoint = TypeVar("Endpoint", bound=Callable[..., Any])
# The UI's pages run no script at all: even a README that slipped past sanitising stays inert,
# and no other site may frame the owner's forms.
PAGE_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'self'; script-src 'none'; object-src 'none'; img-src * data:;"
        " base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
    ),
    "X-Content-Type-Options": "nosniff",
}
# What uploaders wrote (hosted docs, their HTML and SVG): sandboxed, so the page runs no
# script, gets an opaque origin (it can neither read this server's responses nor post its
# forms with the viewer's cookies), and cannot be sniffed into another type. Images, styles
# and fonts from the same docs still load, so a Sphinx site looks right.
UNTRUSTED_CONTENT_HEADERS = {
    "Content-Security-Policy": (
        "sandbox; default-src 'none'; img-src 'self' data:; style-src 'self' 'unsafe-inline';"
        " font-src 'self' data:; media-src 'self'; base-uri 'none'; form-action 'none'"
    ),
    "X-Content-Type-Options": "nosniff",
}
# The same on a separate docs origin (setting docs_url), where the UI and its session are
# not: scripts may run (search in Sphinx docs), still in an opaque origin.
UNTRUSTED_SCRIPTED_HEADERS = {
    "Content-Security-Policy": (
        "sandbox allow-scripts allow-popups; default-src 'self' 'unsafe-inline' data:;"
        " base-uri 'none'; form-action 'none'"
    ),
    "X-Content-Type-Options": "nosniff",
}

# Every class of packyard.errors has its status here (a test checks it); a subclass defined
# elsewhere gets its nearest ancestor's.
STATUS: dict[type[errors.PackyardError], int] = {
    errors.PackyardError: 500,
    errors.InvalidInput: 400,
    errors.Unauthenticated: 401,
    errors.LoginExpired: 401,
    errors.Forbidden: 403,
    errors.NotFound: 404,
    errors.NotAcceptable: 406,
    errors.Conflict: 409,
    errors.Gone: 410,
    errors.TooLarge: 413,
    errors.UpstreamUnavailable: 502,
    errors.Damaged: 500,
    errors.StorageFull: 507,
    errors.TryLater: 503,
    errors.TooManyAttempts: 429,
    errors.Busy: 503,
    errors.StorageUnavailable: 503,
    errors.DatabaseUnavailable: 503,
    errors.ConfigError: 500,  # a start-up error; should one reach a request, it is ours
}


def status_for(exc: errors.PackyardError) -> int:
    """The status of the error's class, or of its nearest ancestor in `STATUS`."""
    return next(STATUS[kind] for kind in type(exc).__mro__ if kind in STATUS)


def api_response(
    result: Any = None,
    result_type: str | None = None,
    message: str | None = None,
    status: int = 200,
    headers: dict[str, str] | None = None,
) -> Response:
    """devpi's envelope: {"type", "result", "message"}, indented, with a trailing newline.

    `Vary: Accept` because browsers get HTML pages at the same URLs (web/ui.py): a cache must
    not hand one kind of client the other's answer.
    """
    headers = {"Vary": "Accept", **(headers or {})}
    body: dict[str, Any] = {}
    if result_type is not None:
        body["type"] = result_type
        body["result"] = result
    if message is not None:
        body["message"] = message
    return json_bytes_response(json.dumps(body, indent=2).encode() + b"\n", status, headers)


def json_bytes_response(
    body: bytes, status: int = 200, headers: dict[str, str] | None = None
) -> Response:
    return Response(body, status_code=status, media_type=JSON_TYPE, headers=headers)


def wants_json(request: Request) -> bool:
    return "application/json" in request.headers.get("accept", "")


def devpi_api(endpoint: Endpoint) -> Endpoint:
    """Marks an endpoint of devpi's JSON API: its errors are JSON whatever the Accept header
    (as devpi answers them), except where it hands a browser a web page."""
    setattr(endpoint, _DEVPI_API, True)
    return endpoint


def is_devpi_api(request: Request) -> bool:
    """Whether the route the request goes to (or went to) is marked with `devpi_api`.

    Errors raised before routing (bad credentials, in middleware) find their route here."""
    endpoint = request.scope.get("endpoint")
    if endpoint is None:
        endpoint = _route_endpoint(request)
    return is_devpi_api_endpoint(endpoint)


def is_devpi_api_endpoint(endpoint: object) -> bool:
    return bool(getattr(endpoint, _DEVPI_API, False))


def _route_endpoint(request: Request) -> object:
    """The endpoint the router would choose; a path-only match when no method matches."""
    app = request.scope.get("app")
    router = getattr(app, "router", None)
    partial: object = None
    for route in getattr(router, "routes", ()):
        match, child_scope = route.matches(request.scope)
        if match == Match.FULL:
            return child_scope.get("endpoint")
        if match == Match.PARTIAL and partial is None:
            partial = child_scope.get("endpoint")
    return partial


def is_page_request(request: Request) -> bool:
    """A browser asking for a web page or posting one of its forms: it reads HTML."""
    if not request.headers.get("accept", "").lstrip().startswith("text/html"):
        return False
    form = request.headers.get("content-type", "").startswith(FORM_TYPES)
    return request.method in ("GET", "HEAD") or form or not is_devpi_api(request)


def error_response(request: Request, exc: errors.PackyardError) -> Response:
    """The one error shape, chosen by who asks (see `error_from_status`)."""
    status = status_for(exc)
    headers: dict[str, str] = {}
    if isinstance(exc, errors.TooLarge):
        # The rest of the body is not read: the connection cannot carry another request, and
        # saying so keeps clients from sending their next one into a closing socket.
        headers["Connection"] = "close"
    # No Basic challenge for browsers: it would pop up a password dialog where the error
    # page's link to the log-in form belongs.
    if isinstance(exc, errors.Unauthenticated) and not is_page_request(request):
        headers["WWW-Authenticate"] = 'Basic realm="packyard"'
    if isinstance(exc, errors.LoginExpired):
        # Where a client whose login token died can get a new one; devpi-client drops its
        # stored token when a 401 carries a Location (and says so).
        headers["Location"] = urls_of(request).login()
    if isinstance(exc, errors.TryLater):
        headers["Retry-After"] = str(exc.retry_after)
    return error_from_status(request, status, exc.message, headers)


def error_from_status(
    request: Request, status: int, message: str, headers: dict[str, str] | None = None
) -> Response:
    """JSON `{"message"}` on devpi's API and for JSON clients; an HTML page for a browser's
    page; plain text for the rest (installers on simple pages and files).

    Clients that do not ask for JSON (twine, the devpi client's upload) print the reason
    phrase, so it carries the message too (as devpi and PyPI do); for 401 and 403 after the
    standard words ("401 Unauthorized: authentication required to upload").
    """
    headers = {"Vary": "Accept", **(headers or {})}
    if wants_json(request):
        # JSON clients print "<status> <reason>: <message>"; the standard reason reads best.
        return api_response(message=message, status=status, headers=headers)
    if is_page_request(request):
        html = request.app.state.jinja.get_template("ui/error.html").render(
            status=status, title=HTTPStatus(status).phrase, message=message,
            version=__version__, serial=request.app.state.services.serial,
            urls=urls_of(request),
        )  # fmt: skip
        headers |= PAGE_HEADERS
        return Response(html, status_code=status, media_type="text/html", headers=headers)
    headers[REASON_HEADER] = reason_phrase(status, message)
    if is_devpi_api(request):
        return api_response(message=message, status=status, headers=headers)
    return Response(message + "\n", status_code=status, media_type="text/plain", headers=headers)


def reason_phrase(status: int, message: str) -> str:
    """The message as a reason phrase: one line of visible ASCII, after the standard words
    for 401 and 403 (clients and people look for "Unauthorized" and "Forbidden")."""
    line = message.splitlines()[0] if message else ""
    text = "".join(char if 32 <= ord(char) < 127 else "?" for char in line)[:200]
    if status in STANDARD_REASON_FIRST:
        return f"{HTTPStatus(status).phrase}: {text}" if text else HTTPStatus(status).phrase
    return text or HTTPStatus(status).phrase
