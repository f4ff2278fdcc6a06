"""Rendered responses kept per change serial, with ETag and a gzip variant."""

from __future__ import annotations

import dataclasses
import gzip
import hashlib
from collections.abc import Callable, Hashable

from starlette.requests import Request
from starlette.responses import Response

from packyard.services import Services

GZIP_MIN_SIZE = 1024


@dataclasses.dataclass
class CachedBody:
    body: bytes
    content_type: str
    etag: str
    # Mirrors (index ids) whose stored pages this rendering used; it is current only while
    # each of them is fresh.
    mirror_ids: tuple[int, ...] = ()
    # When what it leaves out changes (a held version's cooldown ends; epoch seconds): it is
    # rendered again from then on, though nothing was written.
    until: float | None = None
    _gzipped: bytes | None = None

    @classmethod
    def of(
        cls,
        body: bytes,
        content_type: str,
        mirror_ids: tuple[int, ...] = (),
        until: float | None = None,
    ) -> CachedBody:
        etag = f'"{hashlib.sha256(body).hexdigest()[:32]}"'
        return cls(body, content_type, etag, mirror_ids, until)

    def current_at(self, now: float) -> bool:
        return self.until is None or now < self.until

    def gzipped(self) -> bytes:
        if self._gzipped is None:
            self._gzipped = gzip.compress(self.body, compresslevel=6, mtime=0)
        return self._gzipped


def respond(
    request: Request, cached: CachedBody, cache_control: str, vary: str = "Accept"
) -> Response:
    """200 with the body (gzip when accepted), or 304 when the client's ETag matches."""
    headers = {"ETag": cached.etag, "Cache-Control": cache_control, "Vary": vary}
    if cached.etag in request.headers.get("if-none-match", ""):
        return Response(status_code=304, headers=headers)
    headers["Vary"] = f"{vary}, Accept-Encoding"
    body = cached.body
    if len(body) >= GZIP_MIN_SIZE and "gzip" in request.headers.get("accept-encoding", ""):
        body = cached.gzipped()
        headers["Content-Encoding"] = "gzip"
    return Response(body, media_type=cached.content_type, headers=headers)


async def render_cached(
    services: Services, key: Hashable, render: Callable[[], CachedBody]
) -> CachedBody:
    """The cached rendering for `key`, rendered (off the event loop) when missing or stale
    (a change was written, or the time it was current `until` passed)."""
    clock = services.sources.clock
    return await services.boundary.pages.cached(key, render, lambda b: b.current_at(clock()))
