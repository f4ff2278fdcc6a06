"""Running the app under uvicorn, with one addition: custom HTTP reason phrases.

devpi and PyPI put an upload's error message into the reason phrase, and twine and the devpi
client print it. ASGI has no field for it, so a response names its phrase in the
`x-packyard-reason` header and the protocol below moves it into the status line.
"""

from __future__ import annotations

import asyncio
from typing import Any

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from packyard.web.responses import REASON_HEADER

_MARKER = b"\r\n" + REASON_HEADER.encode() + b": "


def with_reason_phrase(head: bytes) -> bytes:
    """Rewrite `HTTP/1.1 409 Conflict` to carry the phrase from the reason header, if any."""
    end_of_head = head.find(b"\r\n\r\n")
    start = head.find(_MARKER, 0, end_of_head)
    if start < 0:
        return head
    value_start = start + len(_MARKER)
    value_end = head.find(b"\r\n", value_start)
    reason = head[value_start:value_end].strip()
    status_end = head.find(b"\r\n")
    status_line = head[:status_end]
    version, code = status_line.split(b" ", 2)[:2]
    without_header = head[:start] + head[value_end:]
    return version + b" " + code + b" " + reason + without_header[status_end:]


class _ReasonTransport:
    """Forwards everything to the real transport, fixing up response heads on the way."""

    def __init__(self, transport: asyncio.Transport) -> None:
        self._transport = transport

    def write(self, data: bytes) -> None:
        if data.startswith(b"HTTP/1.1 ") and _MARKER in data:
            data = with_reason_phrase(data)
        self._transport.write(data)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._transport, name)


class ReasonPhraseProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol, with custom reason phrases."""

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(_ReasonTransport(transport))  # type: ignore[arg-type]
