"""One function version's isolate in the V8 host: its queue, its d() batches, its limits.

Runs in the V8 host process (:mod:`edge.runtime.js.host`), on the host's event
loop. Requests queue per isolate and enter V8 in batches: one call of
``__edge.d()`` (``js/dispatch.js``, entered through :mod:`edge.runtime.js.entry`)
starts every queued request and returns every finished response. Limits are
enforced from outside the JavaScript: V8's hard heap limit, the same limit on
the isolate's ArrayBuffers
(:mod:`edge.runtime.js.buffers`), a deadline per request (terminate, then
replace a runaway), and the host's process-wide budget behind them (see
:meth:`edge.runtime.js.host.Host.budget`).
An isolate starts from the host's spare context (:mod:`edge.runtime.js.spare`),
which has the Web API prelude evaluated already, and evaluates only its module.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import time
from collections import deque
from concurrent.futures import Executor
from dataclasses import dataclass
from typing import Any

from py_mini_racer import MiniRacer

from edge.runtime.faults import fault_message
from edge.runtime.js import calls, modules
from edge.runtime.js.client import HOST_REASONS
from edge.runtime.js.compression import ZlibStreams
from edge.runtime.js.entry import Running
from edge.runtime.js.memory import IsolateMemory
from edge.runtime.js.modules import LoadError, ModuleSpec
from edge.runtime.js.relay import StreamRelay
from edge.runtime.js.spare import Racer, Spares
from edge.runtime.wire import MAX_FRAME

logger = logging.getLogger(__name__)

MIB = 1024 * 1024
MIN_GRACE_S = 0.1
MAX_LOCAL_CALLS = 64
TOO_MANY_CALLS = f"more than {MAX_LOCAL_CALLS} Web Crypto or compression calls at once"
# A fault is sent as its kind alone (no status, headers or body): the worker
# answers it from the fault table (edge.runtime.faults), as for Python.
FAULT_STATUS = 500
# The largest buffered body sent to the worker: a frame holds it, headers and logs.
MAX_BODY = MAX_FRAME - 8 * MIB


@dataclass(eq=False, slots=True)
class Call:
    """One request: its frame id, its item for ``d()``, and its deadline."""

    rid: int
    item: list[Any]
    deadline: float
    cold_ms: float = 0.0


def _kind(error: str) -> str:
    """The fault a finished response ended in: its own kind, or an exception."""
    return error if error == "invalid_response" else "exception"


class Isolate:
    """One function version's isolate, its request queue and its limits."""

    def __init__(
        self,
        spec: ModuleSpec,
        spares: Spares,
        send: Any,
        relay: Any = None,
        calls_pool: Executor | None = None,
    ) -> None:
        self.spec = spec
        self._calls_pool = calls_pool
        self.zlib = ZlibStreams()  # this isolate's (de)compression streams
        self._local_calls = 0  # host calls of this isolate running here now
        self._spares = spares
        self._freer = spares.freer
        self.from_ready_spare = False  # the last start found the prelude evaluated
        self._send = send
        self._relay = relay  # host calls (KV, fetch) to the worker: relay(isolate, calls)
        self.settle: list[list[Any]] = []
        self.release: list[int] = []  # stream bytes copied out of V8 (see js/dispatch.js)
        self.mr: MiniRacer | None = None
        self._racer: Racer | None = None
        self.queue: deque[Call] = deque()
        self.live: dict[int, Call] = {}
        self.forget: list[int] = []
        self.check: list[int] = []
        self.streams = StreamRelay(spec.name, send, _kind)
        self.collect = False
        self._async = False
        self.inflight: asyncio.Task[None] | None = None
        self._overdue_timer: asyncio.TimerHandle | None = None
        self._expiry: asyncio.TimerHandle | None = None  # at the earliest deadline
        self._pump_soon = False
        self.starting: asyncio.Future[float] | None = None
        self._load_ping = asyncio.Event()
        self.memory = IsolateMemory(spec.memory_mb * 1024)
        self._closing: set[asyncio.Future[None]] = set()  # contexts being freed
        self.closed = False
        # Python 3.11's asyncio.get_running_loop() makes a getpid() system call.
        self._loop = asyncio.get_running_loop()

    @property
    def peak_kb(self) -> int:
        """The highest heap use seen (see :class:`IsolateMemory`)."""
        return self.memory.peak_kb

    # ---- lifecycle ----

    def ensure_started(self) -> asyncio.Future[float]:
        """Start the isolate unless running or starting; resolves to cold-start ms."""
        if self.starting is None:
            self.starting = asyncio.ensure_future(self._start())
            self.starting.add_done_callback(self._started)
        return self.starting

    async def _start(self) -> float:
        with self._freer.starting():  # no context is freed beside it
            return await self._take_and_load(time.perf_counter())

    async def _take_and_load(self, began: float) -> float:
        try:
            racer, self.from_ready_spare = await self._spares.take()
        except LoadError as exc:
            raise LoadError(f"{self.spec.filename}: {exc}") from None
        try:
            # APPSEC: the function's own hard heap limit replaces the spare's
            # before any of its code runs.
            racer.mr.set_hard_memory_limit(self.spec.memory_mb * MIB)
            if racer.buffers is not None:
                racer.buffers.limit = self.spec.memory_mb * MIB
            await self._load(racer)
        except BaseException:
            racer.stack.close()
            raise
        self.mr, self._racer = racer.mr, racer
        return (time.perf_counter() - began) * 1000

    def _started(self, fut: asyncio.Future[float]) -> None:
        self.starting = None
        if fut.cancelled():
            return
        if fut.exception() is not None:
            logger.error("%s: isolate failed to start: %s", self.spec.name, fut.exception())
            while self.queue:
                self._fault(self.queue.popleft(), "crash")
            return
        for call in self.queue:
            call.cold_ms = fut.result()
        self._pump()

    async def _load(self, racer: Racer) -> None:
        mr = racer.mr
        self.memory.watch(mr, racer.prelude_kb)
        racer.on_ping = self._on_ping
        await modules.evaluate_module(
            mr,
            self.spec,
            self._load_ping,
            functools.partial(calls.run_all, self._calls_pool, self.zlib),
        )

    def close(self) -> None:
        """Dispose of the isolate, failing whatever is still waiting."""
        self.closed = True
        if self.starting is not None:
            self.starting.cancel()
        for call in [*self.queue, *self.live.values()]:
            self._fault(call, "unavailable")
        self.queue.clear()
        self.live.clear()
        self.streams.end_all("crash")
        self._dispose()

    def _dispose(self) -> None:
        task, self.inflight = self.inflight, None
        racer, self._racer, self.mr = self._racer, None, None
        if self._overdue_timer is not None:
            self._overdue_timer.cancel()
        if self.closed and self._expiry is not None:
            self._expiry.cancel()
        if racer is None:
            return
        if task is None or task.done():
            self._free(racer)
            return
        # Free the context only once the eval's callback is unregistered: a
        # callback delivered after mr_free_context would read freed memory.
        task.cancel()
        task.add_done_callback(lambda _: self._free(racer))
        self._closing.add(task)
        task.add_done_callback(self._closing.discard)

    def _free(self, racer: Racer) -> None:
        """Free a context off this loop (:class:`~edge.runtime.js.spare.Freer`)."""
        freeing = self._freer.free(racer.stack)
        self._closing.add(freeing)
        freeing.add_done_callback(self._closing.discard)

    async def wait_closed(self) -> None:
        """Wait until every disposed context is freed."""
        while self._closing:
            await asyncio.gather(*self._closing, return_exceptions=True)

    def _reset(self, reason: str) -> None:
        """Replace the isolate; its in-flight requests fail with ``reason``."""
        logger.warning("%s: isolate replaced: %s", self.spec.name, self._fault_text(reason))
        if reason == "memory":
            self.memory.killed()
        now = asyncio.get_running_loop().time()
        for call in self.live.values():
            self._fault(call, reason if reason == "memory" or call.deadline <= now else "crash")
        self.live.clear()
        self.streams.end_all("memory" if reason == "memory" else "crash")
        self.forget, self.check, self.collect, self.settle = [], [], False, []
        self.zlib = ZlibStreams()  # the next context's ids start afresh
        self.memory.buffers_failed = False
        self._dispose()
        self._pump()

    # ---- requests ----

    def submit(self, rid: int, request: list[Any]) -> None:
        """Queue ``[method, url, headers, body, params]``; one ``resp`` frame answers it."""
        loop = self._loop
        method, url, headers, body, params = request
        kind, text = modules.request_body(body) if body else (0, "")
        call = Call(
            rid,
            [rid, method, url, headers, kind, text, params],
            loop.time() + self.spec.timeout_ms / 1000,
        )
        # Every call has the same timeout, so none is due before one already
        # waiting: one timer, at the earliest deadline, serves them all.
        if self._expiry is None:
            self._expiry = loop.call_at(call.deadline, self._expire_due)
        self.queue.append(call)
        self._pump_later()

    def answer(self, js_id: int, reply: Any) -> None:
        """The worker's answer to host call ``js_id``: settled by the next d()."""
        self.settle.append([js_id, reply])
        self._pump_later()

    def _pump_later(self) -> None:
        """Pump at the end of this loop turn, so that every frame read at once
        (the worker writes a turn's invocations together) enters one batch."""
        if not self._pump_soon:
            self._pump_soon = True
            self._loop.call_soon(self._pump)

    def _pump(self) -> None:
        self._pump_soon = False
        if self.inflight is not None or self.closed:
            return
        if self.mr is None:
            if self.queue:
                self.ensure_started()
            return
        if not (
            self.queue
            or self.collect
            or self.forget
            or self.check
            or self.settle
            or self.streams.credit
        ):
            return
        loop = self._loop
        batch = list(self.queue)
        self.queue.clear()
        for call in batch:
            self.live[call.rid] = call
        credit = self.streams.take_credit()
        payload = [
            [call.item for call in batch],
            self.forget,
            self.check,
            self.settle,
            credit,
            self.release,
        ]
        self.forget, self.check, self.collect, self.settle = [], [], False, []
        self.release = []
        if batch:
            overdue = min(call.deadline for call in batch)
        else:
            # A stream's producer runs in these rounds too: it may compute a chunk
            # for up to timeout_ms before the isolate counts as runaway.
            grace = self.spec.timeout_ms / 1000 if self.streams.open else MIN_GRACE_S
            overdue = max([loop.time() + grace, *(c.deadline for c in self.live.values())])
        assert self._racer is not None
        # Started in V8 now, not when the task below first runs.
        first = self._racer.entry.d(payload)
        # Async handlers settle in V8's microtask checkpoint right after ``first``:
        # queue the collecting d() right away, so V8 runs it without waiting for
        # this loop. Even for one request that is cheaper than collecting once
        # ``first`` is back (neither thread sleeps and wakes between the two):
        # 215 against 325 us of CPU, 212 against 350 us to the response (measured,
        # one at a time).
        then = self._racer.entry.collect() if self._async and batch else None
        task = loop.create_task(self._dispatch(first, then, batch))
        self.inflight = task
        self._overdue_timer = loop.call_at(overdue, self._overdue, task, bool(batch))

    async def _dispatch(self, first: Running, then: Running | None, batch: list[Call]) -> None:
        mr = self.mr
        assert mr is not None
        pipelined = then is not None
        try:
            raw = await modules.dispatch_result(first, self.spec.name)
            if then is not None and isinstance(raw, str):
                first_result = await self._with_bytes(mr, raw)
                if mr is self.mr:
                    self._deliver(*first_result, batch, then_collects=True)
                raw = await modules.dispatch_result(then, self.spec.name)
        finally:
            if then is not None and not then.done():
                then.cancel()  # its callback is gone before any context free
        parsed = await self._with_bytes(mr, raw) if isinstance(raw, str) else None
        if mr is not self.mr:
            return  # replaced meanwhile
        self.inflight = None
        if self._overdue_timer is not None:
            self._overdue_timer.cancel()
        over = IsolateMemory.over_limit(self._racer)
        if over or raw is False:
            self._reset("memory" if over else "crash")
            return
        if parsed is not None:
            self._deliver(*parsed, [] if pipelined else batch)
        else:
            self.check.extend(call.rid for call in batch if call.rid in self.live)
        if self.memory.buffers_failed:
            # An ArrayBuffer allocation failed against the host's budget: free this
            # isolate's buffers now (the Freer's next free, after the replacement's
            # start), not at its next GC, so that the budget is never left
            # exhausted for the app's other isolates.
            self._reset("memory")
            return
        self.memory.track(mr)
        self._pump()

    def _overdue(self, task: asyncio.Task[None], has_batch: bool) -> None:
        if task is not self.inflight:
            return
        if has_batch:
            task.cancel()  # mini-racer cancels the V8 task: TerminateExecution if running
        else:
            self._reset("timeout")  # JS kept running past every live deadline

    def _expire_due(self) -> None:
        """Fail the calls past their deadline, then wait for the next deadline."""
        self._expiry = None
        loop = asyncio.get_running_loop()
        now = loop.time()
        waiting = [*self.queue, *self.live.values()]
        if any(call.deadline <= now for call in waiting):
            if IsolateMemory.over_limit(self._racer):
                self._reset("memory")
            else:
                for call in waiting:
                    if call.deadline <= now:
                        self._expire(call)
                self._pump()
            waiting = [*self.queue, *self.live.values()]
        if waiting and not self.closed:
            self._expiry = loop.call_at(min(c.deadline for c in waiting), self._expire_due)

    def _expire(self, call: Call) -> None:
        if call in self.queue:
            self.queue.remove(call)
        elif self.live.pop(call.rid, None) is not None:
            self.forget.append(call.rid)
        else:
            return
        self._fault(call, "timeout")

    def _on_ping(self, _handle: Any) -> None:
        self._load_ping.set()
        self.collect = True
        self._pump()

    async def _with_bytes(self, mr: MiniRacer, raw: str) -> tuple[list[Any], bytes | None]:
        """A d() result, parsed, and its stream bytes (copied out of V8, then released)."""
        result = modules.parse_result(raw)
        key = result[5] if isinstance(result, list) and len(result) == 6 else 0
        data = await modules.dispatch_bytes(mr, key) if key else None
        if data is not None:
            self.release.append(key)
        return result, data

    def _deliver(
        self,
        result: list[Any],
        data: bytes | None,
        batch: list[Call],
        *,
        then_collects: bool = False,
    ) -> None:
        """Hand on what a d() returned; ``then_collects``: a pipelined d() is
        already collecting what this one left pending."""
        done, collect, unknown, asked, items, _ = result
        chunks = modules.stream_chunks(items, data)
        local = [call for call in asked if call[2] == calls.LOCAL]
        if local:
            self._start_calls(local)
        if len(local) < len(asked) and self._relay is not None:
            self._relay(self, [call for call in asked if call[2] != calls.LOCAL])
        if batch:
            self._async = bool(collect)  # this function's handlers return promises
        for item in done:
            call = self.live.pop(item[0], None)
            if call is not None:
                self._respond(call, item)
        # Not cleared for the pipelined d(): a ping that came in meanwhile
        # announced results finished after it, and JS pings only once per d().
        self.collect = self.collect or (bool(collect) and not then_collects)
        lost = [self.live.pop(rid) for rid in unknown if rid in self.live]
        self.queue.extendleft(reversed(lost))
        for item in chunks:
            self.streams.relay(item)

    def stream_credit(self, rid: int, size: int) -> None:
        """The worker's client took ``size`` bytes of stream ``rid`` (-1: stop it)."""
        if self.streams.grant(rid, size):
            self._pump()

    def _start_calls(self, local: list[Any]) -> None:
        """Run the host calls this host answers itself (Web Crypto, zlib) off the loop."""
        loop = asyncio.get_running_loop()
        for js_id, _, _, args in local:
            if self._local_calls >= MAX_LOCAL_CALLS:  # APPSEC: bounds what waits in memory here
                self.answer(js_id, [0, ["OperationError", TOO_MANY_CALLS]])
                continue
            self._local_calls += 1
            fut = loop.run_in_executor(self._calls_pool, calls.perform_local, args, self.zlib)
            fut.add_done_callback(functools.partial(self._answered, self.mr, js_id))

    def _answered(self, mr: MiniRacer | None, js_id: int, fut: asyncio.Future[list[Any]]) -> None:
        self._local_calls -= 1
        if mr is not self.mr or self.closed or fut.cancelled():
            return  # the isolate that asked is gone; its ids mean nothing to the next
        self.answer(js_id, fut.result())

    def _respond(self, call: Call, item: list[Any]) -> None:
        try:
            status, headers, body, logs, error = modules.response_fields(item)
            if item[3] == modules.STREAMED:
                self.streams.opened(call.rid)
                self._reply(call, status, headers, None, logs=logs, error=None)
                return
        except modules.RESPONSE_ERRORS as exc:
            logger.error("%s: invalid response from JavaScript: %s", self.spec.name, exc)
            status, headers, body, error = FAULT_STATUS, [], b"", "invalid_response"
            logs = [[time.time(), "error", f"invalid response: {exc}"]]
        if error == "memory":  # an ArrayBuffer allocation failed (see Host.budget)
            self.memory.buffers_failed = True  # the isolate is replaced once its batch is read
            self._fault(call, "memory", logs)
            return
        self._reply(call, status, headers, body, logs=logs, error=error and _kind(error))

    def _fault(self, call: Call, error: str, logs: list[Any] | None = None) -> None:
        logs = [*(logs or []), [time.time(), "error", f"killed: {self._fault_text(error)}"]]
        self._reply(call, FAULT_STATUS, [], b"", logs=logs, error=error)

    def _fault_text(self, error: str) -> str:
        spec = self.spec
        return fault_message(
            error,
            function=spec.name,
            timeout_ms=spec.timeout_ms,
            memory_mb=spec.memory_mb,
            reason=HOST_REASONS.get(error, ""),
        )

    def _reply(
        self,
        call: Call,
        status: int,
        headers: list[Any],
        body: bytes | None,
        *,
        logs: list[Any],
        error: str | None,
    ) -> None:
        if body is not None and len(body) > MAX_BODY:
            # Past what one frame to the worker may carry (the worker's own
            # EDGE_MAX_RESPONSE_MB is lower): say so instead of breaking the link.
            status, headers, body, error = FAULT_STATUS, [], b"", "response_too_large"
        self._send(
            ["resp", call.rid, status, headers, body, logs, error, self.peak_kb, call.cold_ms]
        )
