"""Files under `/USER/INDEX/+f/...`: bytes with Range, ETag and immutable caching."""

from __future__ import annotations

import mimetypes

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import FileResponse, Response

from packyard.core.dists import http_date
from packyard.web.lookup import request_index, services_of
from packyard.web.responses import api_response, wants_json

FILE_CACHE_CONTROL = "max-age=365000000, immutable, public"


def _media_type(filename: str) -> str:
    if filename.endswith((".whl", ".metadata")):
        return "application/octet-stream"
    guessed, encoding = mimetypes.guess_type(filename)
    if encoding == "gzip":
        return "application/gzip"  # the bytes are gzip; no Content-Encoding, clients keep them
    return guessed or "application/octet-stream"


async def get_file(request: Request) -> Response:
    services = services_of(request)
    record = await request_index(request)
    relpath = request.path_params["relpath"]
    if wants_json(request):
        meta = await run_in_threadpool(services.packages.file_meta, record, relpath)
        return api_response(meta, "releasefilemeta")
    found = await run_in_threadpool(services.packages.find_file, record, relpath)
    sha = found.path.name
    headers = {
        "ETag": f'"{sha}"',
        "Last-Modified": http_date(found.record.uploaded_at),
        "Cache-Control": FILE_CACHE_CONTROL,
    }
    if f'"{sha}"' in request.headers.get("if-none-match", ""):
        return Response(status_code=304, headers=headers)
    filename = request.path_params["relpath"].rsplit("/", 1)[-1]
    return FileResponse(found.path, media_type=_media_type(filename), headers=headers)
