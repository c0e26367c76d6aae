"""The function path: every request for a deployed function, as a raw ASGI app.

Host -> app environment (``<app>.<domain>``, ``<branch>--<app>.<domain>``),
method + path -> function through the current :class:`RouteTable` snapshot,
then the function's pool runs it in a separate process (or V8 isolate).

This is the runtime's hot path. :meth:`FunctionPath.answer` runs a function
and answers through a :class:`~edge.runtime.replies.Reply`, recording the
request by appending to buffers. Most requests reach it straight from the
HTTP/1 protocol (:mod:`edge.runtime.direct`, kept-alive connections); the rest
come through gunicorn as raw ASGI (:meth:`FunctionPath.__call__`), which reads
the scope once. Everything else (``/healthz``, ``/metrics``, unknown hosts,
functions answered by another region) goes on to the falcon app
(:mod:`edge.runtime.app`). The README's Benchmarks section has the worker's CPU
per request at each step (``python -m bench.cpu``, ``bench.dispatch_cpu``).
"""

from __future__ import annotations

import itertools
import os
import time
from collections.abc import Awaitable, Callable, Coroutine, Mapping
from typing import Any, NamedTuple

from falcon.util.uri import parse_host

from edge.config import Config
from edge.logstream import outcome_entries
from edge.runtime.faults import fault_message
from edge.runtime.invocation import (
    FunctionLoadError,
    FunctionVersion,
    Invocation,
    LogRecord,
    Outcome,
)
from edge.runtime.replies import ABORT_KEY, CLOSED_KEY, AsgiReply, DirectReply, Reply, fault_head
from edge.runtime.scrape import on_metrics_socket
from edge.runtime.streaming import DISCONNECTED, BodyStream
from edge.runtime.table import Site, Target
from edge.runtime.worker import Worker

Scope = dict[str, Any]
Receive = Callable[[], Awaitable[Mapping[str, Any]]]
Send = Callable[[dict[str, Any]], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

RESERVED_HEADERS = frozenset(
    {"content-length", "transfer-encoding", "connection", "keep-alive", "upgrade", "date", "server"}
)
COLD = (b"x-edge-cold-start", b"true")
WARM = (b"x-edge-cold-start", b"false")
CLOSE = (b"connection", b"close")
# The scope key under which a function of other regions reaches the falcon side.
TARGET_KEY = "edge.target"


class ClientGone(Exception):
    """The client went away before its request body was complete."""


class Routed(NamedTuple):
    """A request the route table matched to a function of this node."""

    method: str
    path: str
    host: str  # the Host header as sent (with its port)
    hostname: str  # lower case, without the port
    headers: list[tuple[str, str]]
    site: Site
    target: Target
    params: dict[str, str]


class RequestIds:
    """Request ids: a random per-worker prefix and a counter (16 hex digits),
    instead of ``os.urandom`` per request. Built in each worker after the fork."""

    def __init__(self) -> None:
        self._prefix = os.urandom(4).hex()
        self._numbers = itertools.count()

    def next(self) -> str:
        number = next(self._numbers)
        if number > 0xFFFFFFFF:  # wrapped: a new prefix keeps ids unique
            self._prefix, self._numbers = os.urandom(4).hex(), itertools.count(1)
            number = 0
        return f"{self._prefix}{number:08x}"


def _invocation(
    routed: Routed, scheme: str, query: str, body: bytes, request_id: str
) -> Invocation:
    method, path, host, _, headers, _, _, params = routed
    url = f"{scheme}://{host}{path}" + (f"?{query}" if query else "")
    return Invocation(method, url, path, query, headers, body, params, request_id)


def _where(routed: Routed, request_id: str) -> tuple[Any, ...]:
    """What :meth:`FunctionPath._record` says of a request besides its outcome."""
    method, path, _, hostname, _, site, target, _ = routed
    return (request_id, hostname, method, path, site.app, site.environment, target)


class FunctionPath:
    """The ASGI app in front of falcon: function requests here, the rest to ``fallback``.

    Args:
        config: the node's settings.
        worker: the worker's route table, pools, metrics and logs.
        fallback: the falcon app, for everything that is not a local function.
        ids: where request ids come from (shared with the falcon side).
    """

    def __init__(self, config: Config, worker: Worker, fallback: ASGIApp, ids: RequestIds) -> None:
        self.config = config
        self.worker = worker
        self.fallback = fallback
        self.ids = ids
        self._region = config.region.encode()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or on_metrics_socket(scope, self.config):
            await self.fallback(scope, receive, send)
            return
        headers: list[tuple[str, str]] = []
        host = ""
        for raw_name, raw_value in scope["headers"]:
            name, value = raw_name.decode("latin-1"), raw_value.decode("latin-1")
            headers.append((name, value))
            if name == "host":
                host = value
        hostname = parse_host(host)[0].lower() if host else ""
        site = self.worker.table.site(hostname) if hostname else None
        if site is None:
            await self.fallback(scope, receive, send)
            return
        # The router wants the raw (still percent-encoded) path: it decodes params itself.
        method, path = scope["method"], scope["path"] or "/"
        raw = scope.get("raw_path")
        match = site.router.match(method, raw.decode("latin-1") if raw else path)
        reply = AsgiReply(send, scope.get(CLOSED_KEY), scope.get(ABORT_KEY))
        if match is None:
            message = (
                f"no route for {method} {path} in {site.app} ({site.environment}, v{site.release})"
            )
            await reply.send(*fault_head(self.ids.next(), "not_found", message))
            return
        target = match[0]
        if target.version is None:  # another region's function: falcon's side forwards it
            scope[TARGET_KEY] = target
            await self.fallback(scope, receive, send)
            return
        routed = Routed(method, path, host, hostname, headers, site, target, match[1])
        try:
            body = await self._body(receive, headers)
        except ClientGone:  # gone, or stalled past gunicorn's body timeout: no answer
            if reply.abort is not None:
                reply.abort()
            return
        if body is None:
            request_id = self.ids.next()
            message = fault_message("too_large", limit_mb=self.config.max_body_bytes >> 20)
            release = (b"x-edge-release", f"v{target.release}".encode())
            await reply.send(*fault_head(request_id, "too_large", message, release, CLOSE))
            return
        query = scope["query_string"].decode()
        await self.answer(routed, scope.get("scheme", "http"), query, body, reply)

    def on_metrics_port(self, port: Any) -> bool:
        """Whether a connection to this local port came in on ``EDGE_METRICS_BIND``."""
        bind = self.config.metrics_bind
        return bind is not None and port == bind[1]

    def local(
        self, hostname: str, method: str, raw_path: str
    ) -> tuple[Site, Target, dict[str, str]] | None:
        """The function of this node that answers a request, if any: ``None``
        when another region's node, the falcon side or a fault answers it."""
        site = self.worker.table.site(hostname) if hostname else None
        if site is None:
            return None
        match = site.router.match(method, raw_path)
        if match is None or match[0].version is None:
            return None
        return site, match[0], match[1]

    async def answer(
        self, routed: Routed, scheme: str, query: str, body: bytes, reply: Reply
    ) -> None:
        """Run the matched function on ``body`` and answer with its outcome."""
        target = routed.target
        version = target.version
        assert version is not None
        request_id = self.ids.next()
        release = (b"x-edge-release", f"v{target.release}".encode())
        invocation = _invocation(routed, scheme, query, body, request_id)
        try:
            pool = self.worker.pools.get(version.key) or await self.worker.pool(version)
        except FunctionLoadError as exc:
            message = fault_message("load", function=target.name, reason=exc)
            await reply.send(*fault_head(request_id, "load", message, release))
            return
        outcome = await pool.invoke(invocation)
        where = _where(routed, request_id)
        head = self._head(outcome, request_id, release)
        if outcome.stream is None:
            self._record(version, where, outcome, len(outcome.body))
            await reply.send(outcome.status, head, outcome.body)
            return
        await self._send_stream(version, where, outcome, head, reply)

    def answer_soon(
        self,
        routed: Routed,
        scheme: str,
        query: str,
        body: bytes,
        reply: DirectReply,
        *,
        answered: Callable[[Coroutine[Any, Any, None] | None, Exception | None], None],
    ) -> bool:
        """:meth:`answer`, with no task, when the function's pool takes the request
        at once (a JavaScript version whose isolate is loaded; a Python version
        with an instance at hand): the response is written as the reply is read
        from the V8 host or the instance, then ``answered`` is called with
        what is left to await (a stream, or the wait for the write buffer to
        drain; else ``None``) or the exception that stopped it. False when the
        pool cannot: nothing is done, and :meth:`answer` is to be awaited.

        A task, its coroutines and the future they wait on cost a request 3 us
        of the worker's CPU against 0.4 us for a callback (measured alone).
        """
        target = routed.target
        version = target.version
        pool = self.worker.pools.get(version.key) if version is not None else None
        if pool is None or version is None:
            return False
        request_id = self.ids.next()

        def done(outcome: Outcome) -> None:
            try:
                release = (b"x-edge-release", f"v{target.release}".encode())
                head = self._head(outcome, request_id, release)
                where = _where(routed, request_id)
                if outcome.stream is not None:
                    answered(self._send_stream(version, where, outcome, head, reply), None)
                    return
                self._record(version, where, outcome, len(outcome.body))
                left = reply.write(outcome.status, head, outcome.body)
            except Exception as exc:
                answered(None, exc)
                return
            answered(left, None)

        return pool.submit(_invocation(routed, scheme, query, body, request_id), done)

    async def _send_stream(
        self,
        version: FunctionVersion,
        where: tuple[Any, ...],
        outcome: Outcome,
        head: list[tuple[bytes, bytes]],
        reply: Reply,
    ) -> None:
        stream = outcome.stream
        assert stream is not None
        stream.start(self.config.max_stream_s, reply.closed, reply.abort)
        stream.on_done(lambda body: self._stream_over(version, where, outcome, body))
        await reply.send_stream(outcome.status, head, stream)

    async def _body(self, receive: Receive, headers: list[tuple[str, str]]) -> bytes | None:
        """The whole request body, or ``None`` if it is over ``EDGE_MAX_BODY_MB``.

        Over the limit, the rest stays unread: the caller's answer closes the connection.

        Raises:
            ClientGone: the client left (or its body stalled past gunicorn's worker
                timeout) before the body was complete: the function must not run
                on a part of it.
        """
        limit = self.config.max_body_bytes
        for name, value in headers:
            if name == "content-length":
                if not value.isdigit():  # gunicorn rejects a bad one before we see it
                    break
                if int(value) > limit:
                    return None
                if value == "0":
                    return b""
                break
        chunks: list[bytes] = []
        size = 0
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                raise ClientGone
            chunk = message.get("body", b"")
            if chunk:
                chunks.append(chunk)
                size += len(chunk)
                if size > limit:
                    return None
            if not message.get("more_body", False):
                break
        return chunks[0] if len(chunks) == 1 else b"".join(chunks)

    def _head(
        self, outcome: Outcome, request_id: str, release: tuple[bytes, bytes]
    ) -> list[tuple[bytes, bytes]]:
        head = [
            (name.encode("latin-1"), value.encode("latin-1"))
            for name, value in outcome.headers
            if name.lower() not in RESERVED_HEADERS
        ]
        head += [
            (b"x-edge-request-id", request_id.encode()),
            release,
            (b"x-edge-region", self._region),
            COLD if outcome.cold else WARM,
        ]
        if outcome.cold:
            head.append((b"x-edge-cold-start-ms", f"{outcome.cold_ms:.2f}".encode()))
        head.append((b"x-edge-duration-ms", f"{outcome.duration_ms:.2f}".encode()))
        return head

    def _stream_over(
        self, version: FunctionVersion, where: tuple[Any, ...], outcome: Outcome, body: BodyStream
    ) -> None:
        """Count a streamed request once it is over: full duration, bytes, logs."""
        outcome.duration_ms += body.duration_ms
        outcome.logs = body.logs
        if body.error == "stream_limit":
            limit = self.config.max_stream_s
            outcome.logs.append(
                LogRecord(time.time(), "error", f"stream stopped at EDGE_MAX_STREAM_S={limit:g} s")
            )
        outcome.error = None if body.error == DISCONNECTED else body.error
        self._record(version, where, outcome, body.bytes, body.error)

    def _record(
        self,
        version: FunctionVersion,
        where: tuple[Any, ...],
        outcome: Outcome,
        size: int,
        error: str | None = None,
    ) -> None:
        request_id, host, method, path, app, environment, target = where
        self.worker.metrics.observe_outcome(version, outcome, size)
        if outcome.logs or outcome.error:
            self.worker.logs.emit_many(outcome_entries(version, request_id, outcome))
        self.worker.access.record(
            (
                time.time(),
                request_id,
                host,
                method,
                path,
                outcome.status,
                round(outcome.duration_ms, 3),
                outcome.cold,
                self.config.region,
                app,
                environment,
                target.release,
                target.name,
                error or outcome.error,
                size,
            )
        )
