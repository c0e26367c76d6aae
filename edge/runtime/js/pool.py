"""JavaScript function pools: one per function version, on the worker's V8 host.

:class:`JsPool` is the :class:`~edge.runtime.invocation.FunctionPool` of one
``runtime = "js"`` function version, run in an isolate of the worker's V8 host
(:mod:`edge.runtime.js.client`). One isolate serves all of a version's
concurrent requests, so ``max_instances`` does not apply; instead a pool admits
at most :data:`MAX_INFLIGHT` requests at once and answers 503 beyond that.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from typing import Any

from edge.runtime.faults import fault_outcome
from edge.runtime.headers import header_passes
from edge.runtime.invocation import (
    FunctionLoadError,
    FunctionVersion,
    Invocation,
    LogRecord,
    Outcome,
)
from edge.runtime.js.client import HOST_REASONS, HostDiedError, V8Host
from edge.runtime.streaming import BodyStream, WindowExceeded
from edge.runtime.wire import MIB

logger = logging.getLogger(__name__)

MAX_INFLIGHT = 1024
ERRORS = frozenset(
    {
        None,
        "exception",
        "timeout",
        "memory",
        "crash",
        "invalid_response",
        "unavailable",
        "response_too_large",
    }
)
HOST_DIED = "crashed: the V8 host process died"


def _records(logs: Any) -> list[LogRecord]:
    """Log lines from the V8 host (APPSEC: shape-checked like its replies)."""
    return [LogRecord(float(ts), str(level), str(msg)) for ts, level, msg in logs]


def _headers(headers: Any) -> list[tuple[str, str]]:
    """A reply's headers, checked again here. APPSEC: the V8 host checks them
    too, but it runs untrusted code: if one escaped V8 it could send a CR or LF
    in a header and split the response on the client's connection."""
    pairs = []
    for name, value in headers:
        if not (type(name) is str and type(value) is str):
            raise TypeError("a header is not a pair of strings")
        if header_passes(name, value):
            pairs.append((name, value))
    return pairs


def _request_url(inv: Invocation) -> str:
    if "://" in inv.url:
        return inv.url
    host = next((v for k, v in inv.headers if k.lower() == "host"), "localhost")
    query = f"?{inv.query_string}" if inv.query_string else ""
    return f"http://{host}{inv.path}{query}"


def _frame(inv: Invocation) -> list[Any]:
    """An ``invoke`` frame's fields after its key: the request as the host takes it."""
    headers = [[k.lower(), v] for k, v in inv.headers]
    return [inv.method, _request_url(inv), headers, inv.body, inv.params]


class JsPool:
    """The :class:`~edge.runtime.invocation.FunctionPool` of one JS function version.

    Args:
        version: the function version (``runtime == "js"``).
        host: the worker's shared :class:`V8Host`.
        max_response: the largest buffered response body, in bytes (502 beyond).
    """

    def __init__(
        self, version: FunctionVersion, host: V8Host, max_response: int = 32 * MIB
    ) -> None:
        self.version = version
        self._max_response = max_response
        self.last_used = time.monotonic()
        self._host = host
        self._inflight = 0
        self._closed = False
        self._registered = False
        self._idle = asyncio.Event()
        self._idle.set()

    def _spec(self) -> dict[str, Any]:
        v = self.version
        try:
            source = (v.root / v.path).read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            raise FunctionLoadError(f"{v.path}: cannot read the module: {exc}") from None
        return {
            "name": v.name,
            "filename": v.path,
            "source": source,
            "memory_mb": v.memory_mb,
            "timeout_ms": v.timeout_ms,
            "env": dict(v.env),
        }

    async def start(self) -> None:
        """Read the module and create its isolate (pre-warm).

        Raises:
            FunctionLoadError: the module does not compile or evaluate, with V8's message.
        """
        self._register()
        try:
            await self._host.load(self.version.key)
        except HostDiedError as exc:
            raise FunctionLoadError(f"{self.version.path}: {exc}") from None

    def _register(self) -> None:
        if not self._registered:
            self._host.register(self.version.key, self._spec(), self.version)
            self._registered = True

    async def invoke(self, invocation: Invocation) -> Outcome:
        """Run one request in the version's isolate (loading it on first use);
        faults become 5xx outcomes."""
        started = time.perf_counter()
        self.last_used = time.monotonic()
        if self._closed:
            return self._fault("unavailable", invocation, started, reason="it is shutting down")
        if self._inflight >= MAX_INFLIGHT:
            return self._fault("overloaded", invocation, started, limit=MAX_INFLIGHT)
        self._enter()
        try:
            return await self._invoke(invocation, started)
        finally:
            self._leave()

    def submit(self, invocation: Invocation, done: Callable[[Outcome], None]) -> bool:
        """:meth:`invoke` for a version whose isolate is loaded, without a task or a
        future: ``done`` gets the outcome, called as the V8 host's reply is read.
        False, and nothing sent, when the isolate is not loaded (or the pool is
        closed or full): :meth:`invoke` then loads it, or answers the fault."""
        if self._closed or self._inflight >= MAX_INFLIGHT or not self._registered:
            return False
        started = time.perf_counter()

        def on_reply(reply: list[Any] | None) -> None:
            self._leave()
            if reply is None:
                done(self._fault("crash", invocation, started, reason=HOST_DIED))
            else:
                done(self._outcome(invocation, reply, 0.0, started))

        if not self._host.submit(self.version.key, _frame(invocation), on_reply):
            return False
        self.last_used = time.monotonic()
        self._enter()
        return True

    async def _invoke(self, inv: Invocation, started: float) -> Outcome:
        key = self.version.key
        frame = _frame(inv)
        try:
            self._register()
            info, cold = await self._host.load(key)
            reply = await self._host.invoke(key, frame)
        except FunctionLoadError as exc:
            logger.error("%s: load failed: %s", self.version.name, exc)
            return self._fault("load", inv, started, reason=str(exc))
        except HostDiedError:
            return self._fault("crash", inv, started, reason=HOST_DIED)
        return self._outcome(inv, reply, info["cold_ms"] if cold else 0.0, started)

    def _outcome(
        self, inv: Invocation, reply: list[Any], load_ms: float, started: float
    ) -> Outcome:
        # APPSEC: the host runs untrusted code, so its frames are checked like input.
        try:
            _, rid, status, headers, body, logs, error, peak_kb, cold_ms = reply
            streamed = body is None and error is None
            if not (isinstance(status, int) and (isinstance(body, bytes) or streamed)):
                raise TypeError("bad reply")
            if error not in ERRORS:
                raise TypeError("bad reply")
            records = _records(logs)
            if body is not None and len(body) > self._max_response:
                outcome = fault_outcome(
                    "response_too_large",
                    self.version,
                    inv.request_id,
                    limit_mb=self._max_response // MIB,
                )
            elif error is None:
                pairs = _headers(headers)
                outcome = Outcome(status, pairs, body or b"")
                if streamed:
                    outcome.stream = self._stream(rid)
            else:
                outcome = fault_outcome(
                    error,
                    self.version,
                    inv.request_id,
                    reason=HOST_REASONS.get(error, ""),
                    limit_mb=self._max_response // MIB,
                )
            outcome.logs = records
            outcome.memory_peak_kb = int(peak_kb)
            outcome.cold_ms = max(float(cold_ms), load_ms)
            outcome.cold = outcome.cold_ms > 0
        except (TypeError, ValueError) as exc:
            logger.error("%s: malformed reply from the V8 host: %s", self.version.name, exc)
            if len(reply) > 4 and reply[4] is None and isinstance(reply[1], int):
                self._host.cancel(self.version.key, reply[1])  # a streamed head: stop it
            return self._fault("invalid_response", inv, started)
        outcome.duration_ms = (time.perf_counter() - started) * 1000
        return outcome

    def _stream(self, rid: int) -> BodyStream:
        """The body of streamed response ``rid``, fed by the V8 host."""
        key, host = self.version.key, self._host
        self._enter()  # until the stream is over: a drain waits for it
        body = BodyStream(lambda size: host.ack(key, rid, size), lambda _: host.cancel(key, rid))

        def sink(frame: list[Any] | None) -> None:
            try:
                if frame is None:
                    body.end("crash")
                elif frame[0] == "chunk" and isinstance(frame[2], bytes):
                    body.feed(frame[2])
                elif frame[0] == "end" and frame[2] in ERRORS:
                    body.end(frame[2], _records(frame[3]))
                else:
                    raise TypeError("bad stream frame")
            except (TypeError, ValueError, IndexError, WindowExceeded) as exc:
                logger.error("%s: invalid stream from the V8 host: %s", self.version.name, exc)
                body.stop("invalid_response")

        body.on_done(lambda _: self._leave())
        host.stream_to(rid, sink)
        return body

    def _enter(self) -> None:
        """A request (or a streamed body) is in flight: a drain waits for it."""
        self._inflight += 1
        self._idle.clear()

    def _leave(self) -> None:
        self._inflight -= 1
        if self._inflight == 0:
            self._idle.set()

    def _fault(self, fault: str, inv: Invocation, started: float, **details: Any) -> Outcome:
        outcome = fault_outcome(fault, self.version, inv.request_id, **details)
        outcome.duration_ms = (time.perf_counter() - started) * 1000
        return outcome

    def reap_idle(self, now: float, ttl: float) -> int:
        """Unload the isolate when idle past ``ttl`` and ``min_warm`` is 0."""
        idle = now - self.last_used > ttl and self._inflight == 0
        if idle and self.version.min_warm == 0 and self._host.is_loaded(self.version.key):
            self._host.unload(self.version.key)
            return 1
        return 0

    async def close(self, drain: bool = True) -> None:
        """Stop taking requests; with ``drain``, wait (bounded) for in-flight ones."""
        self._closed = True
        if drain and self._inflight:
            bound = self.version.timeout_ms / 1000 + 1.0
            try:
                await asyncio.wait_for(self._idle.wait(), bound)
            except TimeoutError:
                logger.warning(
                    "%s: closing with %d requests in flight", self.version.name, self._inflight
                )
        if self._registered:
            self._registered = False
            self._host.unregister(self.version.key)
