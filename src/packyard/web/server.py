"""Running the app under uvicorn's httptools protocol, with three additions.

- Custom reason phrases: devpi and PyPI put an upload's error message into the reason phrase,
  and twine and the devpi client print it. ASGI has no field for it, so a response names its
  phrase in the `x-packyard-reason` header and the protocol moves it into the status line.
- The `PUSH` method, which `devpi push` sends: httptools (llhttp) rejects methods it does not
  know, so a request starting with `PUSH ` is fed to the parser as `POST` and handed to the app
  as `PUSH`. This is done only where the parser stands between two messages, so body bytes are
  never read as a request; a PUSH pipelined behind another request in the same segment is
  refused (400). One parser reads every request, so every request gets the same limits.
- Request limits before the app (`ConnectionLimits`, from the settings): the head's size and
  number of header fields (431), a deadline for the whole head and a minimum pace for the body
  (408), a cap on open connections (503 at once), and a bound on how much of a body left unread
  by an early answer (a 401 before an upload's body) is drained before the connection closes.
  Refusals are answered, then the connection is half-closed and lingers briefly, so the client
  reads the answer instead of a reset. Body caps inside the app are in `web/limits.py`.
"""

from __future__ import annotations

import asyncio
from http import HTTPStatus
from typing import Any, cast

import httptools
from uvicorn.config import Config
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol
from uvicorn.server import ServerState

from packyard.web.limits import BODY_LIMIT, BODY_WANTED, CONNECTION_LIMITS, ConnectionLimits
from packyard.web.responses import REASON_HEADER

_MARKER = b"\r\n" + REASON_HEADER.encode() + b": "
_PUSH = b"PUSH "
# A refused connection keeps reading (and dropping) this long after its answer, so that
# closing with unread data does not reset the connection before the client read the answer.
LINGER_S = 1.0
# A body must bring at least this much per `body_timeout` (or end), else it is too slow.
BODY_PROGRESS_BYTES = 64 * 1024


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


class _Refusal(Exception):
    """A request over a limit. `status` None: close without an answer; `in_body`: it concerns
    the body of the request being answered rather than the head of a next one."""

    def __init__(self, status: int | None, message: str, in_body: bool = False) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.in_body = in_body


def plain_response(status: int, message: str) -> bytes:
    body = message.encode() + b"\n"
    head = (
        f"HTTP/1.1 {status} {HTTPStatus(status).phrase}\r\n"
        "content-type: text/plain; charset=utf-8\r\n"
        f"content-length: {len(body)}\r\nconnection: close\r\n\r\n"
    )
    return head.encode() + body


class ReasonPhraseProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol with reason phrases, PUSH and request limits."""

    def __init__(
        self,
        config: Config,
        server_state: ServerState,
        app_state: dict[str, Any],
        _loop: asyncio.AbstractEventLoop | None = None,
    ) -> None:
        super().__init__(config, server_state, app_state, _loop)
        found = app_state.get(CONNECTION_LIMITS)
        self.limits = found if isinstance(found, ConnectionLimits) else ConnectionLimits()
        self._refused = False
        self._at_boundary = True  # the parser stands between two messages
        self._held = b""  # the start of what may be `PUSH `, waiting for the rest
        self._push_next = False
        self._head_open = False
        self._head_size = 0  # request line and headers parsed so far
        self._head_received = 0  # bytes received while the head is incomplete
        self._header_count = 0
        self._body_received = 0
        self._window_received = 0  # body bytes since the last pace check
        self._head_timer: asyncio.TimerHandle | None = None
        self._body_timer: asyncio.TimerHandle | None = None

    # --- connection ---------------------------------------------------------------------

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(_ReasonTransport(transport))  # type: ignore[arg-type]
        if len(self.connections) > self.limits.max_connections:
            self._answer_and_close(503, "too many connections: try again in a moment")
            return
        self._arm_head_timer()

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        if self._refused:
            return  # lingering: dropped
        self._unset_keepalive_if_required()
        if self._at_boundary:
            self._arm_head_timer()
            data = self._translate_push(data)
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserUpgrade:
            if self._should_upgrade():
                self.handle_websocket_upgrade()
            else:
                self._unsupported_upgrade_warning()
            return
        except httptools.HttpParserError as exc:
            cause = exc.__context__
            self._refuse(cause if isinstance(cause, _Refusal) else self._parse_error(exc))
            return
        if self._head_open:  # a head still incomplete: bound what it may cost to receive
            self._head_received += len(data)
            if self._head_received > self.limits.max_header_size:
                self._refuse(self._head_too_large())
        elif not self._at_boundary and self._body_timer is None:
            self._window_received = 0
            self._body_timer = self.loop.call_later(self.limits.body_timeout, self._check_pace)

    def _translate_push(self, data: bytes) -> bytes:
        """`PUSH ` at the start of a message is parsed as `POST` (see the module docstring)."""
        data, self._held = self._held + data, b""
        if len(data) < len(_PUSH) and _PUSH.startswith(data):
            self._held = data
            return b""
        if data.startswith(_PUSH):
            self._push_next = True
            return b"POST" + data[len(b"PUSH") :]
        return data

    def _parse_error(self, exc: httptools.HttpParserError) -> _Refusal:
        message = "invalid HTTP request"
        if isinstance(exc, httptools.HttpParserInvalidMethodError):
            message += ": unknown method (a PUSH cannot be pipelined behind another request)"
        return _Refusal(400, message, in_body=not self._head_open and not self._at_boundary)

    def _head_too_large(self) -> _Refusal:
        limit = self.limits.max_header_size
        return _Refusal(431, f"request headers too large: at most {limit} bytes are accepted")

    # --- parser callbacks -----------------------------------------------------------------

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self._at_boundary = False
        self._head_open = True
        self._head_size = self._head_received = self._header_count = 0
        self._body_received = 0

    def on_url(self, url: bytes) -> None:
        self._grow_head(len(url))
        super().on_url(url)

    def on_header(self, name: bytes, value: bytes) -> None:
        self._header_count += 1
        if self._header_count > self.limits.max_header_count:
            limit = self.limits.max_header_count
            raise _Refusal(431, f"too many header fields: at most {limit} are accepted")
        self._grow_head(len(name) + len(value) + 4)
        super().on_header(name, value)

    def _grow_head(self, size: int) -> None:
        self._head_size += size
        if self._head_size > self.limits.max_header_size:
            raise self._head_too_large()

    def on_headers_complete(self) -> None:
        self._head_open = False
        self._cancel_head_timer()
        super().on_headers_complete()
        if self._push_next:
            self._push_next = False
            self.scope["method"] = "PUSH"

    def on_body(self, body: bytes) -> None:
        self._body_received += len(body)
        self._window_received += len(body)
        drain_limit = cast(int, self.scope.get(BODY_LIMIT, self.limits.max_body_size))
        if self.cycle.response_complete and self._body_received > drain_limit:
            raise _Refusal(None, "unread body over the limit", in_body=True)
        super().on_body(body)

    def on_message_complete(self) -> None:
        self._at_boundary = True
        self._cancel_body_timer()
        super().on_message_complete()

    # --- deadlines ------------------------------------------------------------------------

    def _arm_head_timer(self) -> None:
        if self._head_timer is None:
            self._head_timer = self.loop.call_later(self.limits.header_timeout, self._head_late)

    def _cancel_head_timer(self) -> None:
        if self._head_timer is not None:
            self._head_timer.cancel()
            self._head_timer = None

    def _cancel_body_timer(self) -> None:
        if self._body_timer is not None:
            self._body_timer.cancel()
            self._body_timer = None

    def _disarm(self) -> None:
        self._cancel_head_timer()
        self._cancel_body_timer()

    def _head_late(self) -> None:
        self._head_timer = None
        if self._head_open or self._held:
            timeout = self.limits.header_timeout
            self._refuse(_Refusal(408, f"request headers not received within {timeout:g} s"))
        elif self.cycle is None or self.cycle.response_complete:
            self.transport.close()  # connected (or kept alive) and silent

    def _check_pace(self) -> None:
        self._body_timer = None
        if self._window_received < BODY_PROGRESS_BYTES and self._app_awaits_body():
            timeout = self.limits.body_timeout
            message = (
                f"request body too slow: less than {BODY_PROGRESS_BYTES} bytes in {timeout:g} s"
            )
            self._refuse(_Refusal(408, message, in_body=True))
            return
        self._window_received = 0
        self._body_timer = self.loop.call_later(self.limits.body_timeout, self._check_pace)

    def _app_awaits_body(self) -> bool:
        """Whether a slow body is the client's fault: the app asked for the body (or answered
        already) and has read everything received; reading is not paused for the app."""
        cycle = self.cycle
        asked = self.scope.get(BODY_WANTED) or cycle.response_complete
        return bool(asked) and not cycle.body and not self.flow.read_paused

    # --- refusing -------------------------------------------------------------------------

    def _refuse(self, refusal: _Refusal) -> None:
        cycle = self.cycle
        if refusal.in_body and cycle is not None:
            if not cycle.response_started:
                # The app's receive() now reports a disconnect, and its answer goes nowhere.
                cycle.disconnected = True
                cycle.message_event.set()
            elif not cycle.response_complete:
                self._stop_reading()
                self.transport.close()
                return
            else:
                refusal.status = None  # answered already
        elif cycle is not None and not cycle.response_complete:
            # A pipelined request failed behind one still being answered: finish that, then close.
            self._stop_reading()
            cycle.keep_alive = False
            return
        self._answer_and_close(refusal.status, refusal.message)

    def _stop_reading(self) -> None:
        self._refused = True
        self._push_next = False
        self._disarm()

    def _answer_and_close(self, status: int | None, message: str) -> None:
        self._stop_reading()
        if status is not None:
            self.logger.warning("refused a request: %s %s", status, message)
            self.transport.write(plain_response(status, message))
        if self.transport.can_write_eof():
            self.transport.write_eof()
        self.flow.resume_reading()
        self.loop.call_later(LINGER_S, self.transport.close)
