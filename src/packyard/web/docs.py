"""Hosted documentation: `/USER/INDEX/NAME/VERSION/+doc/PATH`, read from the uploaded zip.

Anyone who may upload writes these pages, so they are untrusted content served beside the UI
and its session. They are sandboxed (`UNTRUSTED_CONTENT_HEADERS`): no script runs, the page
gets an opaque origin (it cannot read the server's responses nor post its forms), and nothing
is content-sniffed. With the `docs_url` setting, docs are served from that other origin
instead (requests here are redirected there), where their scripts may run, still sandboxed.
"""

from __future__ import annotations

import mimetypes
import posixpath
from urllib.parse import urlsplit

from starlette.requests import Request
from starlette.responses import RedirectResponse, Response, StreamingResponse

from packyard.core.names import normalize_project
from packyard.services.archives import stream_member
from packyard.web.lookup import boundary_of, services_of
from packyard.web.responses import UNTRUSTED_CONTENT_HEADERS, UNTRUSTED_SCRIPTED_HEADERS
from packyard.web.urls import urls_of


async def doc_root(request: Request) -> Response:
    return RedirectResponse(urls_of(request).path(request.url.path, "index.html"), status_code=302)


async def serve_doc(request: Request) -> Response:
    services = services_of(request)
    docs_url = services.settings.docs_url.rstrip("/")
    on_docs_origin = bool(docs_url) and _origin(str(request.url)) == _origin(docs_url)
    if docs_url and not on_docs_origin:
        return RedirectResponse(docs_url + request.url.path, status_code=302)
    user, index = request.path_params["user"], request.path_params["index"]
    project = normalize_project(request.path_params["project"])
    version = request.path_params["version"]
    path = posixpath.normpath(request.path_params["path"] or "index.html").lstrip("/")
    if path.endswith("/") or path in ("", "."):
        path = (path.rstrip("/") + "/index.html").lstrip("/")
    member = await boundary_of(request).files.doc_member(user, index, project, version, path)
    media_type = mimetypes.guess_type(path)[0] or "application/octet-stream"
    headers = {
        "Cache-Control": "max-age=600",
        "Content-Length": str(member.size),
        **(UNTRUSTED_SCRIPTED_HEADERS if on_docs_origin else UNTRUSTED_CONTENT_HEADERS),
    }
    return StreamingResponse(stream_member(member), media_type=media_type, headers=headers)


def _origin(url: str) -> tuple[str, str]:
    parts = urlsplit(url)
    return parts.scheme, parts.netloc.lower()
