"""Request limits inside the app: body caps enforced as the body streams, and bounded forms.

Every request's body is capped at `max_body_size` (JSON, forms, toxresults) unless its
endpoint raises the cap for itself with `allow_body` before reading — only the upload
endpoint does. The cap is checked against a declared `Content-Length` before the first byte
is read, and against the bytes received as they arrive, so a chunked body is refused (413)
once it passes the cap, with nothing beyond it held or spooled. The connection's own limits
(head size, timeouts, connection count) live in `web/server.py`, read from `ConnectionLimits`.
"""

from __future__ import annotations

import contextlib
import dataclasses
import resource
from collections.abc import AsyncIterator

from starlette.datastructures import FormData, Headers
from starlette.formparsers import MultiPartException, MultiPartParser
from starlette.requests import ClientDisconnect, Request
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from packyard.config import Settings
from packyard.errors import InvalidInput, TooLarge

# The scope key holding this request's body cap; the protocol reads it too (how much of an
# unread body it drains after an early answer). And the message saying it was passed.
BODY_LIMIT = "packyard.body_limit"
BODY_LIMIT_MESSAGE = "packyard.body_limit_message"
# Set once the app asks for the body: until then a client waiting (say, for the answer to an
# upload refused from its headers) is not blamed for a slow body (web/server.py).
BODY_WANTED = "packyard.body_wanted"
# The lifespan state key the protocol finds its limits under (web/server.py).
CONNECTION_LIMITS = "packyard.connection_limits"
# Descriptors kept free for the database, blobs and temp files besides the connections.
RESERVED_DESCRIPTORS = 200


@dataclasses.dataclass(frozen=True)
class ConnectionLimits:
    """What one HTTP connection may cost, from the settings (see docs/settings.md)."""

    max_header_size: int = Settings.max_header_size
    max_header_count: int = Settings.max_header_count
    header_timeout: float = Settings.header_timeout
    body_timeout: float = Settings.body_timeout
    max_connections: int = Settings.max_connections
    max_body_size: int = Settings.max_body_size

    @classmethod
    def from_settings(cls, settings: Settings) -> ConnectionLimits:
        return cls(
            max_header_size=settings.max_header_size,
            max_header_count=settings.max_header_count,
            header_timeout=settings.header_timeout,
            body_timeout=settings.body_timeout,
            max_connections=min(settings.max_connections, connections_that_fit()),
            max_body_size=settings.max_body_size,
        )


def connections_that_fit() -> int:
    """How many connections the process's descriptor limit leaves room for."""
    soft, _hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft == resource.RLIM_INFINITY:
        return 1 << 20
    return max(1, soft - RESERVED_DESCRIPTORS)


def raise_descriptor_limit(max_connections: int) -> None:
    """Raise the soft descriptor limit so `max_connections` fit (as far as the hard one allows):
    a server out of descriptors cannot open its database or write a blob."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    wanted = max_connections + RESERVED_DESCRIPTORS
    if soft == resource.RLIM_INFINITY or soft >= wanted:
        return
    ceiling = wanted if hard == resource.RLIM_INFINITY else min(wanted, hard)
    resource.setrlimit(resource.RLIMIT_NOFILE, (max(soft, ceiling), hard))


def allow_body(request: Request, limit: int, message: str) -> None:
    """Let this request's body be up to `limit` bytes (call before reading it); `message`
    tells a client that sent more."""
    request.scope[BODY_LIMIT] = limit
    request.scope[BODY_LIMIT_MESSAGE] = message


def too_large(scope: Scope) -> TooLarge:
    limit = scope[BODY_LIMIT]
    default = f"request body too large: at most {limit} bytes are accepted here"
    return TooLarge(scope.get(BODY_LIMIT_MESSAGE) or default)


class BodyLimit:
    """Caps every request body as it streams; see the module docstring."""

    def __init__(self, app: ASGIApp, default_limit: int) -> None:
        self.app = app
        self.default_limit = default_limit

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        scope[BODY_LIMIT] = self.default_limit
        received = 0

        async def limited_receive() -> Message:
            nonlocal received
            limit: int = scope[BODY_LIMIT]
            scope[BODY_WANTED] = True
            if received == 0 and _declared_length(scope) > limit:
                raise too_large(scope)
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    raise too_large(scope)
            return message

        # A client gone (or cut off for being too slow) mid-body: there is no one to answer.
        with contextlib.suppress(ClientDisconnect):
            await self.app(scope, limited_receive, send)


def _declared_length(scope: Scope) -> int:
    value = Headers(scope=scope).get("content-length", "")
    return int(value) if value.isdigit() else 0


@contextlib.asynccontextmanager
async def bounded_form(
    request: Request, max_text: int, max_files: int, max_fields: int
) -> AsyncIterator[FormData]:
    """A multipart form parsed within budgets (see BoundedMultiPartParser); closed on exit."""
    form = await BoundedMultiPartParser(request, max_text, max_files, max_fields).parse()
    try:
        yield form
    finally:
        await form.close()


class BoundedMultiPartParser(MultiPartParser):
    """Starlette's multipart parser with a budget for everything held in memory: the text
    fields together (the file part goes to a temp file) and each part's header lines."""

    MAX_PART_HEADER = 16 * 1024

    def __init__(self, request: Request, max_text: int, max_files: int, max_fields: int) -> None:
        super().__init__(
            request.headers,
            request.stream(),
            max_files=max_files,
            max_fields=max_fields,
            max_part_size=max_text,
        )
        self._text_left = max_text
        self._max_text = max_text
        self._part_header = 0

    def on_part_data(self, data: bytes, start: int, end: int) -> None:
        if self._current_part.file is None:
            self._text_left -= end - start
            if self._text_left < 0:
                raise TooLarge(
                    f"form fields too large: at most {self._max_text} bytes of text fields"
                )
        super().on_part_data(data, start, end)

    def on_header_field(self, data: bytes, start: int, end: int) -> None:
        self._grow_part_header(end - start)
        super().on_header_field(data, start, end)

    def on_header_value(self, data: bytes, start: int, end: int) -> None:
        self._grow_part_header(end - start)
        super().on_header_value(data, start, end)

    def on_part_begin(self) -> None:
        self._part_header = 0
        super().on_part_begin()

    def _grow_part_header(self, size: int) -> None:
        self._part_header += size
        if self._part_header > self.MAX_PART_HEADER:
            raise TooLarge(f"form part headers too large: at most {self.MAX_PART_HEADER} bytes")

    async def parse(self) -> FormData:
        """The form, or InvalidInput (400) for a malformed one, TooLarge (413) past a budget."""
        try:
            return await super().parse()
        except MultiPartException as exc:
            raise InvalidInput(f"bad form: {exc.message}") from exc
        except ValueError as exc:  # python-multipart's own parse errors
            raise InvalidInput(f"bad form: {exc}") from exc
