"""How a function's answer reaches its client: through ASGI, or straight onto HTTP/1.

:class:`edge.runtime.dispatch.FunctionPath` answers every function request with
one :class:`Reply`: a head (status, header pairs) and a whole body, or a head
and a :class:`~edge.runtime.streaming.BodyStream`. Two kinds exist:

* :class:`AsgiReply`, over gunicorn's ASGI ``send()``, for requests that came
  through the ASGI app (the first request on a connection, HTTP/2, anything
  :class:`edge.runtime.connection.EdgeProtocol` does not take itself);
* :class:`DirectReply`, which writes the HTTP/1.1 response on the connection's
  transport itself, for the keep-alive requests the protocol answers without
  gunicorn's per-request ASGI machinery (a task, a scope, ``send`` closures,
  the connection loop's wake-ups: a fifth of a bare request's CPU, measured).

Both frame the same way: ``content-length`` for a whole body (none on 1xx and
204, no body bytes on 304), chunked for a stream. Header names and values are
already checked (:mod:`edge.runtime.headers` for the function's own), so
neither validates them again.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any, Protocol

from gunicorn.asgi.protocol import (
    _CACHED_SERVER_HEADER,
    _get_cached_date_header,
    _get_cached_status_line,
)

from edge.runtime.faults import fault_response
from edge.runtime.streaming import BodyStream

Head = list[tuple[bytes, bytes]]
# The ASGI scope keys under which :class:`edge.runtime.connection.EdgeProtocol`
# passes a future that completes when the connection closes, and a callable
# that resets it.
CLOSED_KEY = "edge.closed"
ABORT_KEY = "edge.abort"
Send = Callable[[dict[str, Any]], Awaitable[None]]

# A whole body past this goes out in slices of it, each once the socket's write
# buffer has room, so the worker's memory stays bounded for a slow client.
SLICE = 256 * 1024
# A body at least this large is handed to the transport beside its head, not copied.
NO_COPY = 64 * 1024
_HTTP11 = (1, 1)
_CLOSE = b"Connection: close\r\n"
_CHUNKED = b"transfer-encoding: chunked\r\n"
_NO_BODY = (204, 304)  # RFC 9110 15.3.5, 15.4.5


class Reply(Protocol):
    """Where one function request's answer goes."""

    closed: asyncio.Future[None] | None  # completes when the client is gone
    abort: Callable[[], None] | None  # resets the connection (a failed stream)

    async def send(self, status: int, head: Head, body: bytes) -> None:
        """The whole response: ``head`` gets its ``content-length`` here."""

    async def send_stream(self, status: int, head: Head, stream: BodyStream) -> None:
        """A streamed response; ``stream`` is closed whatever happens."""


def fault_head(
    request_id: str, fault: str, message: str, *extra: tuple[bytes, bytes]
) -> tuple[int, Head, bytes]:
    """A platform fault (one JSON shape, see ``edge.runtime.faults``) as
    :meth:`Reply.send` arguments."""
    status, headers, body = fault_response(fault, request_id, message)
    head = [(name.encode("latin-1"), value.encode("latin-1")) for name, value in headers]
    head += [(b"x-edge-request-id", request_id.encode()), *extra]
    return status, head, body


class AsgiReply:
    """A :class:`Reply` through gunicorn's ASGI ``send()``."""

    __slots__ = ("_send", "abort", "closed")

    def __init__(
        self,
        send: Send,
        closed: asyncio.Future[None] | None,
        abort: Callable[[], None] | None,
    ) -> None:
        self._send = send
        self.closed = closed
        self.abort = abort

    async def send(self, status: int, head: Head, body: bytes) -> None:
        head.append((b"content-length", str(len(body)).encode()))
        await self._send({"type": "http.response.start", "status": status, "headers": head})
        if len(body) <= SLICE:
            await self._send({"type": "http.response.body", "body": body})
            return
        view = memoryview(body)
        for start in range(0, len(view), SLICE):
            end = start + SLICE
            message = {
                "type": "http.response.body",
                "body": view[start:end],
                "more_body": end < len(view),
            }
            await self._send(message)

    async def send_stream(self, status: int, head: Head, stream: BodyStream) -> None:
        send = self._send
        try:
            await send({"type": "http.response.start", "status": status, "headers": head})
            async for chunk in stream:
                await send({"type": "http.response.body", "body": chunk, "more_body": True})
        finally:
            await stream.close()
        await send({"type": "http.response.body", "body": b""})


class Connection(Protocol):
    """What :class:`DirectReply` needs of the connection it writes on."""

    transport: Any

    @property
    def closed_future(self) -> asyncio.Future[None] | None:
        """Completes when the connection closes."""

    def abort(self) -> None:
        """Reset the connection (a stream that failed after its head)."""

    def is_closed(self) -> bool:
        """Whether the connection is closed or closing: nothing more is written."""

    def will_close(self) -> bool:
        """Whether this response is the connection's last (the worker is stopping)."""

    async def drain(self) -> None:
        """Return once the write buffer is below its high-water mark (or the
        client is gone, or took nothing for the send timeout)."""

    def write_paused(self) -> bool:
        """Whether the write buffer is past its high-water mark (:meth:`drain` waits)."""


class DirectReply:
    """A :class:`Reply` written straight onto an HTTP/1.1 connection.

    The head says ``Connection: close`` when the connection asks for it (the
    worker is stopping); :attr:`close` then tells the connection to close once
    the response is out. A body is written whole, then the write waits for
    the buffer to drain (bounded by the send timeout), so a connection holds
    at most one response beyond the high-water mark, as gunicorn's does.
    """

    __slots__ = ("_conn", "abort", "close", "closed", "sent")

    def __init__(self, conn: Connection) -> None:
        self._conn = conn
        self.closed: asyncio.Future[None] | None = conn.closed_future
        self.abort: Callable[[], None] | None = conn.abort
        self.close = False  # the head announced the connection's end
        self.sent = False  # the head went out

    def _head(self, status: int, head: Head, framing: bytes) -> list[bytes]:
        parts = [_get_cached_status_line(_HTTP11, status)]
        for name, value in head:
            parts += (name, b": ", value, b"\r\n")
        parts += (framing, _CACHED_SERVER_HEADER, _get_cached_date_header())
        if self._conn.will_close():
            self.close = True
            parts.append(_CLOSE)
        parts.append(b"\r\n")
        return parts

    async def send(self, status: int, head: Head, body: bytes) -> None:
        draining = self.write(status, head, body)
        if draining is not None:
            await draining

    def write(self, status: int, head: Head, body: bytes) -> Coroutine[Any, Any, None] | None:
        """:meth:`send` without waiting: ``None`` when nothing is left to wait
        for, else the wait for the write buffer to drain (to be awaited)."""
        conn = self._conn
        if conn.is_closed():
            return None
        self.sent = True
        if status == 204 or status < 200:  # RFC 9110 6.4.2: no body, no length
            conn.transport.write(b"".join(self._head(status, head, b"")))
            return None
        parts = self._head(status, head, b"content-length: %d\r\n" % len(body))
        if status == 304 or not body:
            conn.transport.write(b"".join(parts))
        elif len(body) < NO_COPY:
            parts.append(body)
            conn.transport.write(b"".join(parts))
        else:
            conn.transport.writelines((b"".join(parts), body))
        return conn.drain() if conn.write_paused() else None

    async def send_stream(self, status: int, head: Head, stream: BodyStream) -> None:
        """The head goes out with the first chunk (or the end), in one write. A
        status that allows no body (1xx, 204, 304) gets the head alone, and the
        stream is stopped."""
        conn = self._conn
        pending = b""
        try:
            if conn.is_closed():
                return
            if status in _NO_BODY or status < 200:
                self.sent = True
                conn.transport.write(b"".join(self._head(status, head, b"")))
                return
            self.sent = True
            pending = b"".join(self._head(status, head, _CHUNKED))
            async for chunk in stream:
                if conn.is_closed():
                    return
                if not chunk:  # an empty chunk would end the body
                    continue
                conn.transport.write(b"%b%x\r\n%b\r\n" % (pending, len(chunk), chunk))
                pending = b""
                await conn.drain()
        finally:
            await stream.close()
        if not conn.is_closed():
            conn.transport.write(pending + b"0\r\n\r\n")
