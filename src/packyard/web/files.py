"""Files under `/USER/INDEX/+f/...`: bytes with Range, ETag and immutable caching."""

from __future__ import annotations

import mimetypes
from collections.abc import AsyncIterator

from starlette.requests import Request
from starlette.responses import FileResponse, RedirectResponse, Response, StreamingResponse

from packyard.core.dists import http_date
from packyard.services.boundary.files import Upstream
from packyard.web.lookup import boundary_of
from packyard.web.responses import UNTRUSTED_CONTENT_HEADERS, api_response

FILE_CACHE_CONTROL = "max-age=365000000, immutable, public"


def _media_type(filename: str) -> str:
    if filename.endswith((".whl", ".metadata")):
        return "application/octet-stream"
    guessed, encoding = mimetypes.guess_type(filename)
    if encoding == "gzip":
        return "application/gzip"  # the bytes are gzip; no Content-Encoding, clients keep them
    return guessed or "application/octet-stream"


async def get_file(request: Request) -> Response:
    params = request.path_params
    files = boundary_of(request).files
    found = await files.stored(params["user"], params["index"], params["relpath"])
    filename = params["relpath"].rsplit("/", 1)[-1]
    if isinstance(found, Upstream):
        return await _from_upstream(found, filename)
    sha = found.path.name
    headers = {
        "ETag": f'"{sha}"',
        "Last-Modified": http_date(found.record.uploaded_at),
        "Cache-Control": FILE_CACHE_CONTROL,
        **UNTRUSTED_CONTENT_HEADERS,  # uploaders' bytes: never sniffed, never run as a page
    }
    if f'"{sha}"' in request.headers.get("if-none-match", ""):
        return Response(status_code=304, headers=headers)
    direct = await files.direct_url(found)
    if direct is not None:  # the client fetches it from the object store itself
        return RedirectResponse(direct, status_code=302, headers={"Cache-Control": "no-store"})
    # Checked on every request (a stat; the hash once per process and file identity): a
    # missing or damaged blob is an error, never bytes with immutable caching.
    checked = await files.checked(found, request.url.path)
    return FileResponse(
        found.path, media_type=_media_type(filename), headers=headers, stat_result=checked.stat
    )


async def file_meta(request: Request) -> Response:
    """devpi's `releasefilemeta` (`GET` of a +f path with `Accept: application/json`)."""
    params = request.path_params
    meta = await boundary_of(request).files.meta(params["user"], params["index"], params["relpath"])
    return api_response(meta, "releasefilemeta")


async def _from_upstream(upstream: Upstream, filename: str) -> Response:
    """A mirror file not cached yet: streamed from the upstream while it is cached."""
    if upstream.whole is not None or upstream.chunks is None:
        return Response(upstream.whole or b"", media_type="application/octet-stream")
    link = upstream.link
    headers = {"X-Accel-Buffering": "no", **UNTRUSTED_CONTENT_HEADERS}
    if link.sha256:  # not known before a hash-less upstream file's first download
        headers["ETag"] = f'"{link.sha256}"'
    if link.size is not None:
        headers["Content-Length"] = str(link.size)
    stream = upstream.chunks
    # The status goes out with the first bytes: an upstream that fails before delivering any
    # (unreachable, hanging, an error status, a small file that fails its hash) is a 502,
    # not a 200 whose body breaks off.
    try:
        first = await anext(stream)
    except StopAsyncIteration:
        first = b""
    chunks = _prepend(first, stream)
    return StreamingResponse(chunks, media_type=_media_type(filename), headers=headers)


async def _prepend(first: bytes, rest: AsyncIterator[bytes]) -> AsyncIterator[bytes]:
    yield first
    async for chunk in rest:
        yield chunk
