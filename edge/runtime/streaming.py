"""Streamed responses on the worker side, shared by Python and JavaScript pools.

A pool that gets a response head with a streamed body answers an
:class:`~edge.runtime.invocation.Outcome` whose ``stream`` is a
:class:`BodyStream`; the dispatcher hands it to falcon as ``resp.stream``.
The producer (an instance socket, or the V8 host) feeds chunks in; falcon
pulls them out and sends each to the client.

Flow control is credit-based, like HTTP/2's window: the producer may have at
most :data:`WINDOW` bytes that the client has not yet taken. A chunk counts as
taken when falcon asks for the next one, i.e. after its ``send()`` returned,
and gunicorn's ``send()`` only returns once the socket's write buffer is below
its high-water mark. So a slow client stops the producer, and a worker holds
at most about ``WINDOW`` + 64 KiB per streamed response, whatever its length.

APPSEC: producers are untrusted. One that sends past its window is cut off
(:meth:`BodyStream.feed` raises), so it cannot make the worker buffer more.
"""

from __future__ import annotations

import asyncio
import collections
import time
from collections.abc import Callable
from typing import Any

from edge.runtime.wire import CHUNK_MAX, WINDOW

__all__ = ["CHUNK_MAX", "WINDOW", "BodyStream", "StreamAborted", "WindowExceeded"]

# What ended a stream (the ``error`` of its log and metric record), besides the
# producer's own faults (``exception``, ``memory``, ``crash``, ...).
DISCONNECTED = "disconnected"
STREAM_LIMIT = "stream_limit"


class WindowExceeded(Exception):
    """A producer sent more than its flow-control window allows."""


class StreamAborted(Exception):
    """The stream ended in a fault after its head was sent: the client gets a
    truncated (unterminated) body, so it cannot mistake it for a whole one."""


class BodyStream:
    """The chunks of one streamed response, as an async iterator of bytes.

    Args:
        credit: called with a byte count when the client took that much, so
            the producer may send more.
        cancel: called once if the stream must stop before the producer ended
            it (client gone, time limit); it must stop the producer.
    """

    def __init__(self, credit: Callable[[int], None], cancel: Callable[[str], None]) -> None:
        self._credit = credit
        self._cancel = cancel
        self._chunks: collections.deque[bytes] = collections.deque()
        self._buffered = 0
        self._taken = 0
        self._waiter: asyncio.Future[None] | None = None
        self._timer: asyncio.TimerHandle | None = None
        self._abort: Callable[[], None] | None = None
        self._on_done: list[Callable[[BodyStream], None]] = []
        self.ended = False
        self.closed = False
        self.error: str | None = None
        self.logs: list[Any] = []
        self.bytes = 0
        self.started = time.perf_counter()
        self.duration_ms = 0.0

    # -- the producer's side ----------------------------------------------------

    def feed(self, data: bytes) -> None:
        """Queue a chunk from the producer.

        Raises:
            WindowExceeded: the producer ignored its window (APPSEC: cut it off).
        """
        if self.ended or not data:
            return
        self._buffered += len(data)
        if self._buffered > WINDOW + CHUNK_MAX:
            raise WindowExceeded(f"sent {self._buffered} bytes past a {WINDOW}-byte window")
        self._chunks.append(data)
        self._wake()

    def end(self, error: str | None = None, logs: list[Any] | None = None) -> None:
        """The producer finished (``error`` is ``None``) or failed."""
        if self.ended:
            return
        self.ended = True
        self.error = self.error or error
        self.logs.extend(logs or ())
        self._wake()

    def stop(self, reason: str) -> None:
        """Stop the stream from outside (client gone, time limit): the producer is
        cancelled and whatever is queued is dropped."""
        if self.ended:
            return
        self.error = reason
        self._chunks.clear()
        self.end(reason)
        self._cancel(reason)

    # -- the dispatcher's side ----------------------------------------------------

    def start(
        self,
        max_seconds: float,
        closed: asyncio.Future[Any] | None,
        abort: Callable[[], None] | None = None,
    ) -> None:
        """Arm the stream's time limit, stop it when ``closed`` (the client's
        connection) completes, and end a failed stream with ``abort()`` (which
        resets the connection) rather than by raising :class:`StreamAborted`."""
        self._abort = abort
        loop = asyncio.get_running_loop()
        self._timer = loop.call_later(max_seconds, self.stop, STREAM_LIMIT)
        if closed is not None:
            closed.add_done_callback(lambda _: self.stop(DISCONNECTED))

    def on_done(self, callback: Callable[[BodyStream], None]) -> None:
        """Call ``callback(self)`` once, when the stream is over and closed."""
        self._on_done.append(callback)

    def __aiter__(self) -> BodyStream:
        return self

    async def __anext__(self) -> bytes:
        self._give_credit()
        while not self._chunks and not self.ended:
            self._waiter = asyncio.get_running_loop().create_future()
            try:
                await self._waiter
            except asyncio.CancelledError:
                self.stop(DISCONNECTED)
                raise
            finally:
                self._waiter = None
        if self._chunks:
            chunk = self._chunks.popleft()
            self._taken = len(chunk)
            self.bytes += self._taken
            return chunk
        if self.error not in (None, DISCONNECTED):
            if self._abort is None:
                raise StreamAborted(self.error)
            self._abort()
        raise StopAsyncIteration

    async def close(self) -> None:
        """Called by falcon when it stops iterating (done, failed or cancelled)."""
        if self.closed:
            return
        self.closed = True
        if not self.ended:
            self.stop(DISCONNECTED)
        if self._timer is not None:
            self._timer.cancel()
        self.duration_ms = (time.perf_counter() - self.started) * 1000
        for callback in self._on_done:
            callback(self)

    def _give_credit(self) -> None:
        taken, self._taken = self._taken, 0
        if taken:
            self._buffered -= taken
            if not self.ended:
                self._credit(taken)

    def _wake(self) -> None:
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)
