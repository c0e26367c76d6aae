"""The direct path: function requests answered at the HTTP/1 protocol.

A keep-alive HTTP/1.1 request for a function of this node, arriving while
nothing else is under way on its connection, is answered by
:class:`DirectProtocol` instead of gunicorn's connection loop: the C parser's
callbacks collect it, one task runs :meth:`FunctionPath.answer` (the code the
ASGI path runs too) with a :class:`~edge.runtime.replies.DirectReply` that
writes the response on the transport (no task at all for a JavaScript function
whose isolate is loaded, or a Python function with an instance at hand:
:meth:`FunctionPath.answer_soon` writes it as the reply is read), and the
connection is made ready for
its next request as gunicorn's loop would (parser reset, reading resumed,
keep-alive timer armed, what came in behind fed on). gunicorn's loop stays
parked and takes any request the direct path does not: HEAD, chunked or
over-limit bodies, Transfer-Encoding, Expect, Upgrade, Connection: close,
HTTP/1.0, what gunicorn would refuse, unknown hosts and routes, other regions'
functions, ``/healthz`` and ``/metrics``.

What a request no longer pays (README.md, Benchmarks, fourth and eleventh
passes): gunicorn's request object (but for a connection's first request, or
one with headers its policy acts on) and ASGI scope, the ``send()`` closures, a
second task and its future, the connection loop's wake-up, and a keep-alive
timer made and cancelled per request (one timer per connection here re-arms
itself only when it fires early).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Coroutine
from typing import Any
from urllib.parse import unquote_to_bytes

from falcon.util.uri import parse_host
from gunicorn.asgi.parser import RFC9112_TARGET_INVALID, CallbackRequest
from gunicorn.asgi.protocol import ASGIProtocol, _RequestHeaderPolicy, secure_scheme_names

from edge.runtime.dispatch import FunctionPath, Routed
from edge.runtime.replies import DirectReply

logger = logging.getLogger(__name__)

# Request headers that leave a request to gunicorn's own loop (it answers the
# 100 of an Expect, an Upgrade may take the connection over, and it refuses a
# Transfer-Encoding that does not end with chunked; chunked bodies are its own).
_NOT_DIRECT = frozenset({b"upgrade", b"expect", b"transfer-encoding"})


class DirectCall:
    """A request :class:`EdgeProtocol` answers itself: routed, its body coming in."""

    __slots__ = ("chunks", "query", "routed", "scheme")

    def __init__(self, routed: Routed, scheme: str, query: str) -> None:
        self.routed = routed
        self.scheme = scheme
        self.query = query
        self.chunks: list[bytes] = []


def _call(
    line: tuple[str, str],
    host: tuple[bytes, str],
    headers: list[tuple[bytes, bytes]],
    local: Any,
    scheme_query: tuple[str, str],
) -> DirectCall:
    """A :class:`DirectCall` of the request's method and path, its Host (as sent,
    and its name), its headers and where it is routed (``local``)."""
    site, target, params = local
    pairs = [(n.decode("latin-1"), v.decode("latin-1")) for n, v in headers]
    method, path = line
    routed = Routed(method, path, host[0].decode("latin-1"), host[1], pairs, site, target, params)
    return DirectCall(routed, *scheme_query)


class DirectProtocol(ASGIProtocol):
    """gunicorn's HTTP/1 protocol with the direct path (see the module's docstring)."""

    _closed: bool
    _forwarded_trust: Any
    _keepalive_handle: asyncio.TimerHandle | None
    _secure_names: Any

    def __init__(self, worker: Any) -> None:
        super().__init__(worker)
        app = worker.asgi
        self._path = app if isinstance(app, FunctionPath) else None
        self._direct_ok = False  # this connection may take the direct path
        self._direct: DirectCall | None = None
        self._direct_task: asyncio.Task[None] | None = None
        self._closed_future: asyncio.Future[None] | None = None
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
        self._closed_future = self.worker.loop.create_future()
        if self._callback_parser is None:  # HTTP/2
            return
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

    def _on_headers_complete(self) -> Any:
        call = self._direct_call() if self._direct_ok and self._idle() else None
        if call is None:
            return super()._on_headers_complete()
        self._cancel_keepalive_timer()
        self._direct = call
        if self._callback_parser.content_length:
            self._watch_body()
        return False  # the body follows

    def _idle(self) -> bool:
        """Whether no request is under way on this connection.

        gunicorn's loop need not be parked yet: it may still be on its way back
        from a request whose response is out (its ASGI app returns after its
        last ``send``), or not have started. It then parks without looking at
        the parser, which holds nothing of the direct request by then, and its
        arming of the keep-alive timer is ignored while the direct request runs.
        """
        worker = self.worker
        return (
            self._direct is None
            and self._current_request is None
            and not self._finishing_calls
            and not self._closed
            and worker.alive
            and worker.nr + 1 < worker.max_requests
        )

    def _direct_call(self) -> DirectCall | None:
        """The request whose headers just came in, if the direct path takes it.

        Anything gunicorn's request building would refuse (a target with bytes
        outside printable ASCII, a second Host or Content-Type, a
        Transfer-Encoding that is not chunked) is left to gunicorn's loop, which
        answers it 400 as for any request. On a connection whose forwarded-header
        trust is known, a request with no header that policy acts on (scheme
        headers, names with "_") is taken without gunicorn's request object:
        from_parser's checks are the ones above, and its object cost ~2.5 us.
        """
        parser = self._callback_parser
        path = self._path
        assert path is not None
        if not self._plain(parser, path.config.max_body_bytes):
            return None
        scanned = self._scan(parser.asgi_headers)
        if scanned is None:
            return None
        host, policy = scanned
        raw_url = parser.path
        raw_path, _, raw_query = raw_url.partition(b"?")
        if not raw_path.startswith(b"/") or RFC9112_TARGET_INVALID.search(raw_url):
            return None
        hostname = parse_host(host.decode("latin-1"))[0].lower()
        local = path.local(hostname, parser.method.decode("latin-1"), raw_path.decode("latin-1"))
        if local is None:
            return None
        if policy:
            return self._policed_call(host, hostname, local)
        if b"%" in raw_path:
            raw_path = unquote_to_bytes(raw_path)
        return _call(
            (parser.method.decode("ascii"), raw_path.decode("utf-8", errors="replace")),
            (host, hostname),
            parser.asgi_headers,
            local,
            ("https" if self._is_ssl else "http", raw_query.decode("latin-1")),
        )

    @staticmethod
    def _plain(parser: Any, max_body: int) -> bool:
        """HTTP/1.1, kept alive, not HEAD, and a body of a known size within the limit."""
        return (
            parser.http_version == (1, 1)
            and not parser.is_chunked
            and parser.should_keep_alive
            and (parser.content_length or 0) <= max_body
            and parser.method != b"HEAD"
        )

    def _scan(self, headers: list[tuple[bytes, bytes]]) -> tuple[bytes, bool] | None:
        """The Host, and whether the header policy must see the request; ``None``
        for a request left to gunicorn (no Host, a second Host or Content-Type,
        Upgrade, Expect, Transfer-Encoding)."""
        policy = self._forwarded_trust is None  # not worked out yet: the policy runs
        names = frozenset() if policy else self._secure_names
        host = b""
        content_type = False
        for name, value in headers:
            if name == b"host":
                if host:
                    return None
                host = value
            elif name == b"content-type":
                if content_type:
                    return None
                content_type = True
            elif name in _NOT_DIRECT:
                return None
            if not policy and (b"_" in name or name in names):
                policy = True
        return (host, policy) if host else None

    def _policed_call(self, host: bytes, hostname: str, local: Any) -> DirectCall:
        """:meth:`_direct_call` through gunicorn's request object and its header
        policy (raising here answers 400 and closes, as gunicorn does)."""
        request = CallbackRequest.from_parser(self._callback_parser, is_ssl=self._is_ssl)
        if self._forwarded_trust is None:
            self._policy(request).apply(request)  # works out (and keeps) the trust
        else:
            self._policy(request).apply(request, self._forwarded_trust, self._secure_names)
        return _call(
            (request.method, request.path or "/"),
            (host, hostname),
            request.headers_bytes,
            local,
            (request.scheme, request.query),
        )

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
            self._body_seen = self.worker.loop.time()

    def _watch_body(self) -> None:
        """Close the connection if the direct request's body stalls (no byte for
        :attr:`_body_timeout` seconds): unanswered, as a request never finished."""
        loop = self.worker.loop
        self._body_seen = loop.time()
        self._body_timer = loop.call_at(self._body_seen + self._body_timeout, self._body_due)

    def _body_due(self) -> None:
        self._body_timer = None
        if self._direct is None or self._direct_task is not None or self._closed:
            return
        loop = self.worker.loop
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
        path = self._path
        assert path is not None
        reply = DirectReply(self)
        chunks = call.chunks
        body = chunks[0] if len(chunks) == 1 else b"".join(chunks)
        routed, scheme, query = call.routed, call.scheme, call.query

        def answered(left: Coroutine[Any, Any, None] | None, error: Exception | None) -> None:
            if left is not None:
                self._direct_task = self.worker.loop.create_task(self._answer(call, left, reply))
            elif error is not None:
                self._failed(call, reply, error)
                self._direct_over(True)
            else:
                self._direct_over(reply.close)

        if path.answer_soon(routed, scheme, query, body, reply, answered=answered):
            path.worker.direct_callbacks += 1
            return
        answering = path.answer(routed, scheme, query, body, reply)
        self._direct_task = self.worker.loop.create_task(self._answer(call, answering, reply))

    async def _answer(
        self, call: DirectCall, answering: Coroutine[Any, Any, None], reply: DirectReply
    ) -> None:
        close = False
        try:
            await answering
        except asyncio.CancelledError:  # the client left, and its grace period is over
            close = True
        except Exception as exc:
            self._failed(call, reply, exc)
            close = True
        finally:
            self._direct_over(close or reply.close)

    def _failed(self, call: DirectCall, reply: DirectReply, error: Exception) -> None:
        routed = call.routed
        logger.error(
            "answering %s %s on %s", routed.method, routed.path, routed.host, exc_info=error
        )
        if not reply.sent:
            self._send_error_response(500, "Internal Server Error")

    def _direct_over(self, close: bool) -> None:
        """A direct request is answered: ready the connection for the next one."""
        self._direct = None  # first: the keep-alive timer is armed below
        self._direct_task = None
        assert self._path is not None
        self._path.worker.direct_requests += 1
        worker = self.worker
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
        loop = self.worker.loop
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
        loop = self.worker.loop
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
        """Reset the connection (gunicorn's ``send()`` is a no-op from then on)."""
        if self.transport is not None and not self._closed:
            self._closed = True
            self.transport.abort()

    def is_closed(self) -> bool:
        return self._closed

    def will_close(self) -> bool:
        worker = self.worker
        return not worker.alive or worker.nr + 1 >= worker.max_requests

    async def drain(self) -> None:
        flow = self._flow_control
        if flow is not None and flow.write_paused:
            await flow.drain()

    def write_paused(self) -> bool:
        flow = self._flow_control
        return flow is not None and bool(flow.write_paused)

    def connection_lost(self, exc: Exception | None) -> None:
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
            self.worker.loop.call_later(max(grace, 0), task.cancel)
        if self._closed_future is not None and not self._closed_future.done():
            self._closed_future.set_result(None)
