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
slices (``edge.runtime.app``), so the write buffer never holds much more than
the high-water mark.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
import struct
from typing import Any

from falcon.util.uri import parse_host
from gunicorn.asgi.parser import CallbackRequest
from gunicorn.asgi.protocol import (
    ASGIProtocol,
    FlowControl,
    _RequestHeaderPolicy,
    secure_scheme_names,
)
from gunicorn.workers import gasgi
from gunicorn.workers.gasgi import ASGIWorker
from gunicorn_h1c import H1CProtocol

from edge.runtime.dispatch import FunctionPath, Routed
from edge.runtime.replies import ABORT_KEY, CLOSED_KEY, DirectReply

logger = logging.getLogger(__name__)

# SO_LINGER on, 0 s: close() resets the connection instead of leaving the kernel
# to keep offering unsent bytes to a client with a zero window.
_RESET = struct.pack("ii", 1, 0)
# What gunicorn_h1c keeps of the bytes behind a finished request (its default
# limit_remaining); gunicorn closes the connection when it had to drop more.
C_PARSER_TAIL = 64 * 1024
# Request headers that leave a request to gunicorn's own loop (it answers the
# 100 of an Expect, and an Upgrade may take the connection over).
_NOT_DIRECT = frozenset({b"upgrade", b"expect"})


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


class DirectCall:
    """A request :class:`EdgeProtocol` answers itself: routed, its body coming in."""

    __slots__ = ("chunks", "query", "routed", "scheme")

    def __init__(self, routed: Routed, scheme: str, query: str) -> None:
        self.routed = routed
        self.scheme = scheme
        self.query = query
        self.chunks: list[bytes] = []


class EdgeProtocol(ASGIProtocol):
    """gunicorn's HTTP/1 protocol with the send and header timeouts above, and
    the direct path for function requests (see :meth:`_direct_call`)."""

    _flow_control: FlowControl | None
    _closed: bool
    _forwarded_trust: Any
    _keepalive_handle: asyncio.TimerHandle | None
    _secure_names: Any

    def __init__(self, worker: EdgeWorker) -> None:
        super().__init__(worker)
        self._edge_worker = worker
        self._closed_future: asyncio.Future[None] | None = None
        self._header_timer: asyncio.TimerHandle | None = None
        app = worker.asgi
        self._path = app if isinstance(app, FunctionPath) else None
        self._direct_ok = False  # this connection may take the direct path
        self._direct: DirectCall | None = None
        self._direct_task: asyncio.Task[None] | None = None
        self._peer: Any = None
        self._idle_since = 0.0
        self._keepalive_armed = False
        # A direct request's body: the bound on a stall (gunicorn's worker timeout,
        # as its own body receiver has), when a byte last came, the timer.
        self._body_timeout = float(getattr(self.cfg, "timeout", 30) or 30)
        self._body_seen = 0.0
        self._body_timer: asyncio.TimerHandle | None = None

    def connection_made(self, transport: Any) -> None:
        super().connection_made(transport)
        worker = self._edge_worker
        self._closed_future = worker.loop.create_future()
        if self._flow_control is not None:
            self._flow_control = TimedFlowControl(transport, worker.send_timeout)
        if self._callback_parser is not None:  # HTTP/1 (HTTP/2 has its own settings timer)
            self._header_timer = worker.loop.call_later(worker.header_timeout, self._header_expired)
            path = self._path
            self._peer = transport.get_extra_info("peername")
            sockname = transport.get_extra_info("sockname")
            self._direct_ok = (
                path is not None
                and isinstance(sockname, tuple)
                and not path.on_metrics_port(sockname[1])
                and self._pre_request is None
                and self._post_request is None
                and not self._uses_uwsgi
            )

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
        call = self._direct_call() if self._direct_ok and self._idle() else None
        if call is None:
            return super()._on_headers_complete()
        self._cancel_keepalive_timer()
        self._direct = call
        if self._callback_parser.content_length:
            self._watch_body()
        return False  # the body follows

    # -- the direct path -----------------------------------------------------
    #
    # A keep-alive HTTP/1.1 request for a function of this node, arriving while
    # the connection is idle, is answered here instead of through gunicorn's
    # connection loop: the parser's callbacks collect it, one task runs
    # FunctionPath.answer() with a DirectReply that writes the response on the
    # transport, and the connection is made ready for the next request as
    # gunicorn's loop would (parser reset, reading resumed, keep-alive timer
    # armed, what came in behind fed on). gunicorn's loop stays parked, waiting
    # for a request, and takes any request the direct path does not: the first
    # on a connection, HEAD, chunked or over-limit bodies, Expect, Upgrade,
    # Connection: close, HTTP/1.0, unknown hosts and routes, other regions.

    def _idle(self) -> bool:
        """Whether no request is under way on this connection.

        gunicorn's loop need not be parked yet: it may still be on its way back
        from a request whose response is out (its ASGI app returns after its
        last ``send``), or not have started. It then parks without looking at
        the parser, which holds nothing of the direct request by then, and its
        arming of the keep-alive timer is ignored while the direct request runs.
        """
        worker = self._edge_worker
        return (
            self._direct is None
            and self._current_request is None
            and not self._finishing_calls
            and not self._closed
            and worker.alive
            and worker.nr + 1 < worker.max_requests
        )

    def _direct_call(self) -> DirectCall | None:
        """The request whose headers just came in, if the direct path takes it."""
        parser = self._callback_parser
        path = self._path
        assert path is not None
        if parser.http_version != (1, 1) or parser.is_chunked or not parser.should_keep_alive:
            return None
        if (parser.content_length or 0) > path.config.max_body_bytes or parser.method == b"HEAD":
            return None
        host = b""
        for name, value in parser.asgi_headers:
            if name == b"host":
                host = value
            elif name in _NOT_DIRECT:
                return None
        raw_path = parser.path.partition(b"?")[0]
        if not host or not raw_path.startswith(b"/"):
            return None
        hostname = parse_host(host.decode("latin-1"))[0].lower()
        local = path.local(hostname, parser.method.decode("latin-1"), raw_path.decode("latin-1"))
        if local is None:
            return None
        # gunicorn's own checks and header policy, as for any request (raising here
        # answers 400 and closes, as it does). The policy acts only on scheme
        # headers and names with "_": without them it would change nothing.
        request = CallbackRequest.from_parser(parser, is_ssl=self._is_ssl)
        if self._forwarded_trust is None:
            self._policy(request).apply(request)  # works out (and keeps) the trust
        else:
            names = self._secure_names
            for name, _ in request.headers_bytes:
                if b"_" in name or name in names:
                    self._policy(request).apply(request, self._forwarded_trust, names)
                    break
        headers = [(n.decode("latin-1"), v.decode("latin-1")) for n, v in request.headers_bytes]
        site, target, params = local
        routed = Routed(
            request.method,
            request.path or "/",
            host.decode("latin-1"),
            hostname,
            headers,
            site,
            target,
            params,
        )
        return DirectCall(routed, request.scheme, request.query)

    def _policy(self, request: CallbackRequest) -> _RequestHeaderPolicy:
        policy = _RequestHeaderPolicy(self.cfg, self._peer, request.scheme, request.version)
        if self._forwarded_trust is None:
            self._forwarded_trust = policy._peer_trusted_for_forwarded()
            self._secure_names = secure_scheme_names(self._forwarded_trust[0])
        return policy

    def _on_body(self, chunk: bytes) -> None:
        call = self._direct
        if call is None:
            super()._on_body(chunk)
        elif chunk:
            call.chunks.append(chunk)
            self._body_seen = self._edge_worker.loop.time()

    def _watch_body(self) -> None:
        """Close the connection if the direct request's body stalls (no byte for
        :attr:`_body_timeout` seconds): unanswered, as a request never finished."""
        loop = self._edge_worker.loop
        self._body_seen = loop.time()
        self._body_timer = loop.call_at(self._body_seen + self._body_timeout, self._body_due)

    def _body_due(self) -> None:
        self._body_timer = None
        if self._direct is None or self._direct_task is not None or self._closed:
            return
        loop = self._edge_worker.loop
        due = self._body_seen + self._body_timeout
        if loop.time() < due:
            self._body_timer = loop.call_at(due, self._body_due)
            return
        logger.info("client %s sent no body bytes for %g s: closed", self._peer, self._body_timeout)
        self._direct = None
        self._close_transport()
        self._request_ready.set()  # gunicorn's loop sees the close and ends

    def _on_message_complete(self) -> None:
        call = self._direct
        if call is None:
            super()._on_message_complete()
            return
        if self._body_timer is not None:
            self._body_timer.cancel()
            self._body_timer = None
        self._direct_task = self._edge_worker.loop.create_task(self._answer(call))

    async def _answer(self, call: DirectCall) -> None:
        path = self._path
        assert path is not None
        reply = DirectReply(self)
        chunks = call.chunks
        body = chunks[0] if len(chunks) == 1 else b"".join(chunks)
        close = False
        try:
            await path.answer(call.routed, call.scheme, call.query, body, reply)
        except asyncio.CancelledError:  # the client left, and its grace period is over
            close = True
        except Exception:
            routed = call.routed
            logger.exception("answering %s %s on %s", routed.method, routed.path, routed.host)
            if not reply.sent:
                self._send_error_response(500, "Internal Server Error")
            close = True
        finally:
            self._direct_over(close or reply.close)

    def _direct_over(self, close: bool) -> None:
        """A direct request is answered: ready the connection for the next one."""
        self._direct = None  # first: the keep-alive timer is armed below
        self._direct_task = None
        assert self._path is not None
        self._path.worker.direct_requests += 1
        worker = self._edge_worker
        worker.nr += 1
        if worker.nr >= worker.max_requests:
            self.log.info("Autorestarting worker after current request.")
            worker.alive = False
        parser = self._callback_parser
        if close or self._closed or not worker.alive or parser.remaining_truncated:
            self._close_transport()
            self._request_ready.set()  # gunicorn's loop sees the close and ends
            return
        pipelined = parser.remaining()
        parser.reset()
        self._resume_reading()
        self._arm_keepalive_timer()
        if pipelined and not self._feed_callback_parser(pipelined):
            self._request_ready.set()  # it answered 400 and closed

    # -- one keep-alive timer per connection -----------------------------------
    #
    # gunicorn arms a timer after every response and cancels it when the next
    # request's headers are in: a TimerHandle made and cancelled per request
    # (3% of a worker's CPU on the direct path). Here the timer outlives
    # requests: arming notes when the connection went idle, cancelling notes
    # that it is busy, and the timer, when it fires, closes the connection only
    # if it is still idle and has been for the whole keep-alive time; if not,
    # it sets itself for when that would be (or, busy, leaves the next arming
    # to set it).

    def _arm_keepalive_timer(self) -> None:
        if self._direct is not None:  # gunicorn's loop parks while a direct request runs
            return
        loop = self._edge_worker.loop
        self._idle_since = loop.time()
        self._keepalive_armed = True
        if self._keepalive_handle is None and self._keepalive > 0:
            due = self._idle_since + self._keepalive
            self._keepalive_handle = loop.call_at(due, self._keepalive_due)

    def _cancel_keepalive_timer(self) -> None:
        self._keepalive_armed = False

    def _keepalive_due(self) -> None:
        self._keepalive_handle = None
        if not self._keepalive_armed or self._closed:
            return
        loop = self._edge_worker.loop
        due = self._idle_since + self._keepalive
        if loop.time() < due:
            self._keepalive_handle = loop.call_at(due, self._keepalive_due)
            return
        self._keepalive_timeout()

    # -- what DirectReply needs of the connection ----------------------------

    @property
    def closed_future(self) -> asyncio.Future[None] | None:
        return self._closed_future

    def abort(self) -> None:
        self._abort()

    def is_closed(self) -> bool:
        return self._closed

    def will_close(self) -> bool:
        worker = self._edge_worker
        return not worker.alive or worker.nr + 1 >= worker.max_requests

    async def drain(self) -> None:
        flow = self._flow_control
        if flow is not None and flow.write_paused:
            await flow.drain()

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
        for timer in (self._keepalive_handle, self._body_timer):
            if timer is not None:
                timer.cancel()
        self._keepalive_handle = self._body_timer = None
        super().connection_lost(exc)
        task = self._direct_task
        if task is not None and not task.done():
            # As gunicorn does for an ASGI call: the function may finish within
            # the grace period (its answer goes nowhere), then it is cancelled.
            grace = getattr(self.cfg, "asgi_disconnect_grace_period", 3)
            self._edge_worker.loop.call_later(max(grace, 0), task.cancel)
        if self._flow_control is not None:
            self._flow_control.resume_writing()  # a send() waiting on this client returns
        if self._closed_future is not None and not self._closed_future.done():
            self._closed_future.set_result(None)

    def _build_http_scope(self, request: Any, sockname: Any, peername: Any) -> dict[str, Any]:
        scope: dict[str, Any] = super()._build_http_scope(request, sockname, peername)
        scope[CLOSED_KEY] = self._closed_future
        scope[ABORT_KEY] = self._abort
        return scope

    def _abort(self) -> None:
        if self.transport is not None and not self._closed:
            self._closed = True  # gunicorn's send() is a no-op from now on
            self.transport.abort()


class EdgeWorker(ASGIWorker):
    """gunicorn's asgi worker serving connections with :class:`EdgeProtocol`.

    Built per configuration by :func:`worker_class` (gunicorn instantiates the
    class itself, so the settings travel as class constants).
    """

    send_timeout = 30.0
    header_timeout = 10.0

    def init_process(self) -> None:
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
