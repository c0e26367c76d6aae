"""Streamed replies, in the instance: a generator's chunks sent as they come.

A handler that returns a generator or async generator of ``str``/``bytes``
(or ``Response(body=<that>)``) gets a streamed reply. Every frame an instance
sends carries a kind ``k`` so that other frame kinds (KV requests) can share
the socket; a plain reply (no ``k``) stays the one-frame fast path:

* ``{"k": "head", "status", "headers"}``: once, written together with the
  first chunk, so the worker's ``timeout_ms`` bounds the time to the first byte;
* ``{"k": "chunk", "d": bytes}``: at most :data:`CHUNK_MAX` bytes each;
* ``{"k": "end", "error": None | "exception", "logs": [...]}``: the last one.

The worker answers ``{"k": "ack", "n": int}`` as the client takes bytes. The
instance never has more than :data:`WINDOW` bytes unacknowledged: past that
it blocks on the socket until credit comes, so a slow client pauses the
generator itself. Acks that arrive after the end are skipped by the request
loop (:func:`is_ack`); code that reads other frames from the worker while a
stream is under way (e.g. a KV reply) hands the acks it meets to
:meth:`StreamSender.credit`. Requests the worker queued behind this one
(pipelining) may arrive meanwhile: the instance keeps them for after the end.
"""

from __future__ import annotations

import socket
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any

from edge.function import Response
from edge.runtime.wire import CHUNK_MAX, WINDOW, ProtocolError, encode

Chunks = Iterator[Any] | AsyncIterator[Any]


class ClientGone(Exception):
    """The worker closed the socket mid-stream (the client went away)."""


def streamed(result: Any) -> tuple[Response, Chunks] | None:
    """``(response, chunks)`` when ``result`` is a stream, else ``None``."""
    body = result.body if isinstance(result, Response) else result
    if not isinstance(body, Iterator | AsyncIterator):
        return None
    response = result if isinstance(result, Response) else Response(b"")
    return response, body


def is_ack(message: Any) -> bool:
    """Whether a frame from the worker is a (late) stream ack, not a request."""
    return isinstance(message, dict) and message.get("k") == "ack"


def _bytes(chunk: Any) -> bytes:
    if chunk.__class__ is bytes:
        return chunk
    if isinstance(chunk, str):
        return chunk.encode()
    if isinstance(chunk, bytes | bytearray | memoryview):
        return bytes(chunk)
    raise TypeError(f"a streamed body must yield str or bytes, not {type(chunk).__name__}")


class StreamSender:
    """Sends one streamed reply on the instance socket.

    Args:
        sock: the instance socket (blocking).
        read_tagged: reads the worker's next tagged frame for this request,
            decoded (``None`` at EOF).
        run: runs an awaitable to completion (for async generators).
    """

    def __init__(
        self,
        sock: socket.socket,
        read_tagged: Callable[[], Any],
        run: Callable[[Any], Any],
    ) -> None:
        self._sock = sock
        self._read_tagged = read_tagged
        self._run = run
        self._unacked = 0
        self._text: bool | None = None  # whether the first chunk was a str

    def first(self, chunks: Chunks) -> bytes | None:
        """The first non-empty chunk (``None`` if the stream is empty); errors propagate."""
        return next(self._chunks(chunks), None)

    def send(self, response: Response, first: bytes | None, chunks: Chunks) -> None:
        """Send the head, the first chunk and the rest, waiting for credit.

        Exceptions of the generator propagate (the caller ends the stream with
        an ``exception``); :class:`ClientGone` when the worker hung up.
        """
        headers = list(response.headers)
        if first is not None and not any(k.lower() == "content-type" for k, _ in headers):
            text = "text/plain; charset=utf-8" if self._text else "application/octet-stream"
            headers.append(("content-type", text))
        head = encode({"k": "head", "status": response.status, "headers": headers})
        self._sock.sendall(head)
        if first is not None:
            self._send_chunk(first)
        for chunk in self._chunks(chunks):
            self._send_chunk(chunk)

    def end(self, error: str | None, logs: list[Any]) -> bytes:
        """The end frame."""
        return encode({"k": "end", "error": error, "logs": logs})

    def _chunks(self, chunks: Chunks) -> Iterator[bytes]:
        if isinstance(chunks, Iterator):
            for chunk in chunks:
                if data := self._bytes(chunk):
                    yield data
            return
        while True:
            try:
                chunk = self._run(chunks.__anext__())
            except StopAsyncIteration:
                return
            if data := self._bytes(chunk):
                yield data

    def _bytes(self, chunk: Any) -> bytes:
        if self._text is None:
            self._text = isinstance(chunk, str)
        return _bytes(chunk)

    def _send_chunk(self, data: bytes) -> None:
        view = memoryview(data)
        for start in range(0, len(view), CHUNK_MAX):
            piece = view[start : start + CHUNK_MAX]
            while self._unacked + len(piece) > WINDOW:
                self._wait_credit()
            self._sock.sendall(encode({"k": "chunk", "d": bytes(piece)}))
            self._unacked += len(piece)

    def credit(self, message: dict[str, Any]) -> None:
        """Take an ack frame's credit (raises ProtocolError if it is malformed)."""
        size = message.get("n")
        if type(size) is not int or size <= 0:
            raise ProtocolError("a stream ack without a positive byte count")
        self._unacked -= size

    def _wait_credit(self) -> None:
        message = self._read_tagged()
        if message is None:
            raise ClientGone()
        if not is_ack(message):
            raise ProtocolError("expected a stream ack from the worker")
        self.credit(message)
