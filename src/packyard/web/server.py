"""Running the app under uvicorn, with two additions to its HTTP protocol.

- Custom reason phrases: devpi and PyPI put an upload's error message into the reason phrase,
  and twine and the devpi client print it. ASGI has no field for it, so a response names its
  phrase in the `x-packyard-reason` header and the protocol moves it into the status line.
- The `PUSH` method, which `devpi push` sends: httptools (the fast parser) rejects methods it
  does not know, so a connection that sends one is handed over to the h11 protocol, the way
  uvicorn hands a connection to its WebSocket protocol on upgrade.
"""

from __future__ import annotations

import asyncio
from typing import Any

from uvicorn.protocols.http.h11_impl import H11Protocol
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


# Methods devpi's client uses that httptools' parser does not know.
_FOREIGN_METHODS = (b"PUSH ",)


class H11ReasonProtocol(H11Protocol):
    """uvicorn's h11 protocol, with custom reason phrases."""

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(_ReasonTransport(transport))  # type: ignore[arg-type]


class ReasonPhraseProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol, with custom reason phrases and a fallback for PUSH."""

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        self._raw_transport = transport
        super().connection_made(_ReasonTransport(transport))  # type: ignore[arg-type]

    def data_received(self, data: bytes) -> None:
        idle = self.cycle is None or self.cycle.response_complete
        if idle and data.startswith(_FOREIGN_METHODS):
            self._hand_over_to_h11(data)
            return
        super().data_received(data)

    def _hand_over_to_h11(self, data: bytes) -> None:
        self.connections.discard(self)
        protocol = H11ReasonProtocol(
            config=self.config, server_state=self.server_state, app_state=self.app_state
        )
        protocol.connection_made(self._raw_transport)
        self._raw_transport.set_protocol(protocol)
        protocol.data_received(data)
