"""Hosted documentation: `/USER/INDEX/NAME/VERSION/+doc/PATH`, read from the uploaded zip."""

from __future__ import annotations

import mimetypes
import posixpath

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response

from packyard.core.names import normalize_project
from packyard.web.lookup import request_index, services_of


async def doc_root(request: Request) -> Response:
    return RedirectResponse(request.url.path + "/index.html", status_code=302)


async def serve_doc(request: Request) -> Response:
    services = services_of(request)
    record = await request_index(request)
    project = normalize_project(request.path_params["project"])
    version = request.path_params["version"]
    path = posixpath.normpath(request.path_params["path"] or "index.html").lstrip("/")
    if path.endswith("/") or path in ("", "."):
        path = (path.rstrip("/") + "/index.html").lstrip("/")
    data = await run_in_threadpool(services.packages.doc_file, record, project, version, path)
    media_type = mimetypes.guess_type(path)[0] or "application/octet-stream"
    return Response(data, media_type=media_type, headers={"Cache-Control": "max-age=600"})
