"""What a request needs of an API token's scope, read from the route table alone.

Every request is classified by the route it matches (its path template and path parameters)
and its method, never by its handler: a route added later is classified by the same rules.

- routes under `/{user}/{index}`: GET and HEAD read that index; an upload (multipart POST to
  the index, a tox result POSTed to a file) uploads to it; every other change (PUT, PATCH,
  DELETE of the index, a project, a version or a file: deletes and yanks) administers it. A push
  names its target in the body, so it needs `admin` on every index (`*`).
- server and user routes (`/`, `/{user}`, `/+status`, `/+search`): GET reads "no index", which
  only a token for every index (`*`) may; changing a user is an account change.
- account routes (users, passwords, tokens, logout, the web UI's forms): never with a token.
- endpoint discovery (`+api`: where to log in and upload; clients ask it before uploading),
  static files, the log-in form and `/+health` (load balancers' probes) need nothing.
"""

from __future__ import annotations

from typing import Any

from starlette.routing import BaseRoute, Match, Mount, Route
from starlette.types import Scope

from packyard.core.tokens import Action, Need

# /+metrics judges its callers itself (web/metrics.py: metrics_allow, or root).
OPEN_ROUTES = frozenset(
    {"/+api", "/{user}/+api", "/{user}/{index}/+api", "/+login", "/+static", "/+metrics",
     "/+health", "/+health/ready"}
)  # fmt: skip
ACCOUNT_ROUTE_PREFIXES = ("/+ui/", "/+logout", "/{user}/+tokens")
UPLOAD_ROUTES = frozenset({"/{user}/{index}", "/{user}/{index}/+f/{relpath:path}"})
READING_POSTS = frozenset({"/{user}/{index}/+simple/{project}/refresh"})
INDEX_ROUTE = "/{user}/{index}"
READ_METHODS = frozenset({"GET", "HEAD"})


def request_need(scope: Scope) -> Need | None:
    """What the request needs of a token's scope; None when it needs nothing (or matches no
    route, so that no endpoint runs)."""
    matched = matched_route(scope)
    if matched is None:
        return None
    path, params = matched
    return classify(path, scope["method"], params, content_type(scope))


def classify(path: str, method: str, params: dict[str, Any], content_type: str) -> Need | None:
    """The need of `method` on the route `path` (its template, e.g. `/{user}/{index}`)."""
    path = path.rstrip("/") or "/"
    if path in OPEN_ROUTES:
        return None
    if path.startswith(ACCOUNT_ROUTE_PREFIXES):
        return Need(None, Action.ACCOUNT)
    index = _index_of(params)
    if method in READ_METHODS:
        return Need(index, Action.READ)
    if index is None:
        return Need(None, Action.ACCOUNT)
    if method == "POST" and path in READING_POSTS:
        return Need(index, Action.READ)
    multipart = content_type.startswith("multipart/")
    if method == "POST" and path in UPLOAD_ROUTES and (path != INDEX_ROUTE or multipart):
        return Need(index, Action.UPLOAD)
    if path == INDEX_ROUTE and method in ("POST", "PUSH"):
        return Need(None, Action.ADMIN)  # a push: its target is in the body
    return Need(index, Action.ADMIN)


def _index_of(params: dict[str, Any]) -> str | None:
    user, index = params.get("user"), params.get("index")
    if not isinstance(user, str) or not isinstance(index, str) or index.startswith("+"):
        return None
    return f"{user}/{index}"


def matched_route(scope: Scope) -> tuple[str, dict[str, Any]] | None:
    """The template and path parameters of the route the router will run."""
    router = getattr(scope.get("app"), "router", None)
    routes: list[BaseRoute] = list(getattr(router, "routes", ()))
    for route in routes:
        match, child = route.matches(scope)
        if match == Match.FULL and isinstance(route, Route | Mount):
            return route.path, dict(child.get("path_params", {}))
    return None


def content_type(scope: Scope) -> str:
    for key, value in scope.get("headers", ()):
        if key == b"content-type":
            return str(value.decode("latin-1"))
    return ""
