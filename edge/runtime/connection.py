"""The runtime's HTTP connections: gunicorn's asgi worker with slow-client limits.

gunicorn 27's asgi protocol already applies write backpressure (``send()``
waits while the socket's write buffer is over 64 KiB), but it waits forever,
and nothing bounds how long a client may take to send its request headers.
:class:`EdgeProtocol` adds, per connection:

* a send timeout (``EDGE_SEND_TIMEOUT_S``): a client that takes no bytes for
  that long while a response waits to be written is disconnected, so a
  never-reading client cannot pin a response (or a function instance) in the
  worker;
* a header timeout (``EDGE_HEADER_TIMEOUT_S``): a connection whose first
  request's headers are not complete by then is closed (later requests on a
  kept-alive connection are bounded by gunicorn's keep-alive timer, which runs
  until their headers are complete);
* a future, at ``scope["edge.closed"]``, that completes when the connection
  closes: a streamed response stops its producer at once (gunicorn only tells
  the application through ``receive()``, which would need a task per stream),
  and a ``send()`` blocked on a vanished client is released;
* a callable, at ``scope["edge.abort"]``, that resets the connection: a
  stream that fails after its head ends unterminated, so the client cannot take
  a truncated body for a whole one (raising into gunicorn would do the same,
  with a traceback in the log for every such stream).

Buffered bodies are bounded by the dispatcher, which sends large ones in
slices (``edge.runtime.replies``), so the write buffer never holds much more
than the high-water mark. Function requests on kept-alive connections are
answered at the protocol, without gunicorn's ASGI loop (``edge.runtime.direct``).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
import struct
from typing import Any

from gunicorn.asgi.protocol import ASGIProtocol, FlowControl
from gunicorn.workers import gasgi
from gunicorn.workers.gasgi import ASGIWorker
from gunicorn_h1c import H1CProtocol

from edge.runtime.direct import DirectProtocol
from edge.runtime.replies import ABORT_KEY, CLOSED_KEY

logger = logging.getLogger(__name__)

# SO_LINGER on, 0 s: close() resets the connection instead of leaving the kernel
# to keep offering unsent bytes to a client with a zero window.
_RESET = struct.pack("ii", 1, 0)
# What gunicorn_h1c keeps of the bytes behind a finished request (its default
# limit_remaining); gunicorn closes the connection when it had to drop more.
C_PARSER_TAIL = 64 * 1024


class HeldParser(H1CProtocol):
    """gunicorn's C parser, holding the next request's bytes while one is answered.

    A finished request's parser keeps at most :data:`C_PARSER_TAIL` bytes behind
    it, until gunicorn resets it for the next request; past that gunicorn closes
    the connection without an answer. A keep-alive client that sends a large
    request the moment a response arrives (or pipelines one) loses it that way.
    :class:`EdgeProtocol` feeds it in slices of at most that size and, once a
    request is complete, keeps what follows in :attr:`held` (bounded by
    gunicorn's read backpressure); :meth:`remaining` hands both back to
    gunicorn, which resets the parser and feeds them to it.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.held = bytearray()

    def remaining(self) -> bytes:
        tail: bytes = super().remaining()
        return tail + self.held if self.held else tail

    def reset(self) -> None:
        super().reset()
        self.held = bytearray()


class TimedFlowControl(FlowControl):
    """gunicorn's write flow control, with a bound on how long a write may wait."""

    __slots__ = ("_timeout",)

    def __init__(self, transport: Any, timeout: float) -> None:
        super().__init__(transport)
        self._timeout = timeout

    async def drain(self) -> None:
        if self._is_writable_event.is_set():
            return
        try:
            await asyncio.wait_for(self._is_writable_event.wait(), self._timeout)
        except TimeoutError:
            peer = self._transport.get_extra_info("peername")
            logger.info("client %s took nothing for %g s: disconnected", peer, self._timeout)
            sock = self._transport.get_extra_info("socket")
            with contextlib.suppress(OSError, AttributeError):
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, _RESET)
            self._transport.abort()  # connection_lost() then releases every waiter


class EdgeProtocol(DirectProtocol):
    """gunicorn's HTTP/1 protocol with the send and header timeouts above, and
    the direct path for function requests (:mod:`edge.runtime.direct`)."""

    _flow_control: FlowControl | None

    def __init__(self, worker: EdgeWorker) -> None:
        super().__init__(worker)
        self._edge_worker = worker
        self._header_timer: asyncio.TimerHandle | None = None

    def connection_made(self, transport: Any) -> None:
        super().connection_made(transport)
        worker = self._edge_worker
        if self._flow_control is not None:
            self._flow_control = TimedFlowControl(transport, worker.send_timeout)
        if self._callback_parser is not None:  # HTTP/1 (HTTP/2 has its own settings timer)
            self._header_timer = worker.loop.call_later(worker.header_timeout, self._header_expired)

    def _feed_callback_parser(self, data: bytes) -> bool:
        parser = self._callback_parser
        if parser.__class__ is not HeldParser:
            return bool(super()._feed_callback_parser(data))
        if parser.is_complete:  # the request before is still being answered
            parser.held += data
            return True
        if len(data) <= C_PARSER_TAIL:
            return bool(super()._feed_callback_parser(data))
        view = memoryview(data)
        for start in range(0, len(view), C_PARSER_TAIL):
            if parser.is_complete:
                parser.held += view[start:]
                return True
            if not super()._feed_callback_parser(view[start : start + C_PARSER_TAIL]):
                return False
        return True

    def _http1_buffered(self) -> int:
        held = super()._http1_buffered()
        parser = self._callback_parser
        return int(held + len(parser.held) if parser.__class__ is HeldParser else held)

    def _on_headers_complete(self) -> Any:
        if self._header_timer is not None:
            self._header_timer.cancel()
            self._header_timer = None
        return super()._on_headers_complete()

    def _header_expired(self) -> None:
        self._header_timer = None
        if self._current_request is None and not self._closed:
            peer = self.transport.get_extra_info("peername") if self.transport else None
            logger.info("client %s sent no complete request headers in time: closed", peer)
            self._close_transport()
            if self._request_ready is not None:
                self._request_ready.set()

    def connection_lost(self, exc: Exception | None) -> None:
        if self._header_timer is not None:
            self._header_timer.cancel()
            self._header_timer = None
        super().connection_lost(exc)
        if self._flow_control is not None:
            self._flow_control.resume_writing()  # a send() waiting on this client returns

    def _build_http_scope(self, request: Any, sockname: Any, peername: Any) -> dict[str, Any]:
        scope: dict[str, Any] = super()._build_http_scope(request, sockname, peername)
        scope[CLOSED_KEY] = self._closed_future
        scope[ABORT_KEY] = self.abort
        return scope


class EdgeWorker(ASGIWorker):
    """gunicorn's asgi worker serving connections with :class:`EdgeProtocol`.

    Built per configuration by :func:`worker_class` (gunicorn instantiates the
    class itself, so the settings travel as class constants).
    """

    send_timeout = 30.0
    header_timeout = 10.0

    def init_process(self) -> None:
        # SCHED_BATCH, as its function processes: a worker woken by a reply (or
        # a client) does not preempt the instance running on its CPU, which
        # goes on to the request queued behind (pipelining) instead of being
        # switched out at every reply; the worker then reads several replies per
        # wake-up. Realistic Python under wrk: the instances' context switches
        # 0.8-0.9 -> 0.3 per request, worker CPU 138-154 -> 113 us (README,
        # Benchmarks). A CPU-bound function on the worker's CPU holds it up to
        # the end of its time slice, no longer (and cpu.max bounds it).
        os.sched_setscheduler(0, os.SCHED_BATCH, os.sched_param(0))
        # gunicorn 27 creates its protocol by this module-level name in
        # ASGIWorker._serve() and offers no factory hook; this runs in the
        # worker process after the fork, so only this worker is affected.
        gasgi.ASGIProtocol = EdgeProtocol
        if not prefer_c_parser():
            logger.warning("gunicorn_h1c is not installed: HTTP/1 is parsed in Python")
        super().init_process()


def prefer_c_parser() -> bool:
    """Let :class:`EdgeProtocol` parse HTTP/1 with gunicorn's C parser
    (``gunicorn_h1c``, picohttpparser); returns whether it is installed.

    gunicorn 27 records whether the C parser is usable on the class it is asked
    through, then reads it from ``ASGIProtocol`` itself: asked only through a
    subclass, it silently parses in Python (8 us more per request, measured).
    Asking the base class once, per worker, is enough. The parser it builds is
    then :class:`HeldParser`, which never drops a request queued behind another.
    """
    if not (ASGIProtocol._check_h1c_protocol_available() and ASGIProtocol._h1c_has_limits):
        return False
    ASGIProtocol._h1c_protocol_class = HeldParser
    return True


def worker_class(send_timeout: float, header_timeout: float) -> type[EdgeWorker]:
    """An :class:`EdgeWorker` class with these timeouts, in seconds."""
    return type(
        "EdgeWorker",
        (EdgeWorker,),
        {"send_timeout": send_timeout, "header_timeout": header_timeout},
    )
