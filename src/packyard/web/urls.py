"""Every link packyard makes, built in one place under the root users reach the server at.

The root is the `X-Outside-Url` header a reverse proxy sets (devpi's), else the `outside_url`
setting, else the request's own scheme, host and ASGI root path. Mounted by a proxy under a
path (`location /pypi/ { proxy_pass http://127.0.0.1:3141/; }`), the root is
`https://host/pypi`: JSON links are absolute under it and pages link by path under `/pypi/`,
while the app itself still routes `/USER/INDEX/...` (the proxy strips the prefix). A link made
anywhere else by hand would leave the mount; so handlers and templates ask this builder.
"""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import quote, urlencode, urlsplit

from starlette.requests import Request

from packyard.web.lookup import services_of

OUTSIDE_URL_HEADER = "x-outside-url"
# Characters kept as they are in a path segment: user and index names may hold '@', local
# versions '+'; everything else (spaces, '?', '#', non-ASCII) is percent-encoded.
_SAFE = "/@+"


def _quoted(parts: tuple[str, ...]) -> str:
    return "/".join(quote(part.strip("/"), safe=_SAFE) for part in parts if part.strip("/"))


@dataclass(frozen=True)
class Urls:
    """Links under one root: `origin` (`scheme://host[:port]`) and a path `prefix`.

    `prefix` is `""` at the host's root, else a path like `/pypi` (no trailing slash).
    """

    origin: str
    prefix: str = ""

    @classmethod
    def from_root(cls, root: str) -> Urls | None:
        """The builder for an absolute root URL; None unless it is http(s) with a host."""
        parts = urlsplit(root.strip())
        if parts.scheme not in ("http", "https") or not parts.netloc:
            return None
        prefix = quote(parts.path.rstrip("/"), safe=_SAFE)
        return cls(f"{parts.scheme}://{parts.netloc}", prefix)

    # --- the two forms ------------------------------------------------------------------------

    def path(self, *parts: str) -> str:
        """The path under the root (`/pypi/a/b`): links and redirects on pages."""
        return f"{self.prefix}/{_quoted(parts)}"

    def absolute(self, *parts: str) -> str:
        """The absolute URL (`https://host/pypi/a/b`): links in JSON for API clients."""
        return self.origin + self.path(*parts)

    @property
    def root(self) -> str:
        """The absolute root without a trailing slash, for services that append paths."""
        return self.origin + self.prefix

    # --- named places -------------------------------------------------------------------------

    def home(self) -> str:
        return self.path()

    def login(self) -> str:
        return self.path("+login")

    def logout(self) -> str:
        return self.path("+logout")

    def search(self) -> str:
        return self.path("+search")

    def status(self) -> str:
        return self.path("+status")

    def static(self, name: str) -> str:
        return self.path("+static", name)

    def audit(self, index: str | None = None) -> str:
        """The audit log page, of one index (`USER/INDEX`) or of everything."""
        return self.path("+audit") + (f"?{urlencode({'index': index})}" if index else "")

    def ui_action(self, name: str) -> str:
        """Where a web UI form posts (`create-index`, `yank`, ...)."""
        return self.path("+ui", name)

    def user(self, name: str) -> str:
        return self.path(name)

    def tokens(self, user: str) -> str:
        """The API tokens page (and API) of `user`."""
        return self.path(user, "+tokens")

    def index(self, index: str) -> str:
        """`index` is the full name `USER/INDEX`."""
        return self.path(index)

    def project(self, index: str, project: str) -> str:
        return self.path(index, project)

    def version(self, index: str, project: str, version: str) -> str:
        return self.path(index, project, version)

    def docs(self, index: str, project: str, version: str, page: str = "index.html") -> str:
        return self.path(index, project, version, "+doc", page)

    def simple_project(self, index: str, project: str) -> str:
        return self.path(index, "+simple", project) + "/"

    def is_inside(self, target: str) -> bool:
        """Whether a path (a log-in form's `next`) stays on this server under the root."""
        if not target.startswith("/") or target.startswith("//") or "\\" in target:
            return False
        return target == self.home() or target.startswith(self.prefix + "/")


def relative_root(route_path: str) -> str:
    """`../` enough times to climb from a page at `route_path` to the root: simple pages link
    to files relatively, so they are right under any mount and cacheable for every root."""
    return "../" * (route_path.count("/") - 1)


def urls_of(request: Request) -> Urls:
    """The builder for this request's root (see the module docstring); kept per request."""
    known = request.scope.get("packyard.urls")
    if isinstance(known, Urls):
        return known
    candidates = (
        request.headers.get(OUTSIDE_URL_HEADER, ""),
        services_of(request).settings.outside_url,
        str(request.base_url),
    )
    built = next(filter(None, map(Urls.from_root, filter(None, candidates))), None)
    urls = built or Urls(f"{request.url.scheme}://{request.url.netloc}")
    request.scope["packyard.urls"] = urls
    return urls
