"""Files under `/USER/INDEX/+f/...`: bytes with Range, ETag and immutable caching."""

from __future__ import annotations

import mimetypes
from collections.abc import AsyncIterator

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import FileResponse, Response, StreamingResponse

from packyard.core.dists import http_date, parse_dist_filename
from packyard.core.models import IndexRecord
from packyard.errors import NotFound
from packyard.services import Services
from packyard.services.integrity import checked_file
from packyard.services.packages import StoredFile
from packyard.web.lookup import request_index, services_of
from packyard.web.responses import UNTRUSTED_CONTENT_HEADERS, api_response, wants_json

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
        return await _file_meta(request, record, relpath)
    try:
        found = await _stored_file(services, record, relpath)
    except NotFound:
        if not record.is_mirror:
            raise
        return await _from_upstream(request, record, relpath)
    if record.is_mirror:
        services.mirrors.note_served(found.record, found.path)
    sha = found.path.name
    headers = {
        "ETag": f'"{sha}"',
        "Last-Modified": http_date(found.record.uploaded_at),
        "Cache-Control": FILE_CACHE_CONTROL,
        **UNTRUSTED_CONTENT_HEADERS,  # uploaders' bytes: never sniffed, never run as a page
    }
    if f'"{sha}"' in request.headers.get("if-none-match", ""):
        return Response(status_code=304, headers=headers)
    # Checked on every request (a stat; the hash once per process and file identity): a
    # missing or damaged blob is an error, never bytes with immutable caching.
    stat = await run_in_threadpool(checked_file, services.blobs, found, request.url.path)
    filename = request.path_params["relpath"].rsplit("/", 1)[-1]
    return FileResponse(
        found.path, media_type=_media_type(filename), headers=headers, stat_result=stat
    )


async def _from_upstream(request: Request, record: IndexRecord, relpath: str) -> Response:
    """A mirror file not cached yet: streamed from the upstream while it is cached."""
    mirrors = services_of(request).mirrors
    filename = relpath.rsplit("/", 1)[-1]
    if filename.endswith(".metadata"):
        link = await mirrors.find_link(record, relpath.removesuffix(".metadata"))
        body = await mirrors.core_metadata(record, link)
        return Response(body, media_type="application/octet-stream")
    link = await mirrors.find_link(record, relpath)
    headers = {"X-Accel-Buffering": "no", **UNTRUSTED_CONTENT_HEADERS}
    if link.sha256:  # not known before a hash-less upstream file's first download
        headers["ETag"] = f'"{link.sha256}"'
    if link.size is not None:
        headers["Content-Length"] = str(link.size)
    stream = mirrors.stream_file(record, link)
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


async def _file_meta(request: Request, record: IndexRecord, relpath: str) -> Response:
    """devpi's `releasefilemeta`; for a mirror file not cached yet, from its upstream link."""
    services = services_of(request)
    try:
        meta = await run_in_threadpool(services.packages.file_meta, record, relpath)
    except NotFound:
        if not record.is_mirror:
            raise
        link = await services.mirrors.find_link(record, relpath)
        dist = parse_dist_filename(link.filename)  # find_link only finds parseable names
        meta = {"url": link.url, "project": dist.project, "version": str(dist.version)}
        if link.sha256:
            meta |= {"hash_spec": f"sha256={link.sha256}", "hashes": {"sha256": link.sha256}}
        if link.trusted_on_first_use:
            meta["trusted_on_first_use"] = True
    return api_response(meta, "releasefilemeta")


async def _stored_file(services: Services, record: IndexRecord, relpath: str) -> StoredFile:
    """The stored file behind a +f path; lookups are kept until the next change."""
    key = ("file", record.id, relpath)
    known = services.pages.get(key)
    if isinstance(known, StoredFile):
        return known
    serial = services.pages.current()
    found = await run_in_threadpool(services.packages.find_file, record, relpath)
    services.pages.store(key, found, serial)
    return found
