"""The V8 host process: all JavaScript isolates of one runtime worker.

Run as ``python -m edge.runtime.js.host --fd N`` by :class:`edge.runtime.js.pool.V8Host`
(frames are described there), or with ``--check`` by :mod:`edge.runtime.js.modules`.
V8 is initialised only here, in a fresh process that never forks.

One :class:`Isolate` (a ``MiniRacer`` context on this process's loop) per function
version. Requests queue per isolate and enter V8 in batches: one ``eval`` of
``__edge.d(...)`` (``js/dispatch.js``) starts every queued request and returns
every finished response, so a busy function pays one thread hand-off per batch,
not per request. Handlers that finish later send a ping; the next ``d()``
collects them. Limits are enforced from outside the JavaScript:

* V8's hard heap limit (``memory_mb``) on every isolate; when hit, the isolate
  is replaced and its requests get 502 "memory limit of N MB exceeded";
* a deadline per request (``timeout_ms``, then 504): a batch still running at
  its first deadline is terminated (``TerminateExecution``) and the isolate,
  probed, keeps serving; one still busy past every live deadline (an endless
  loop in a promise continuation or a timer) is replaced;
* ArrayBuffers live outside V8's heap: a process-wide RLIMIT_DATA budget turns
  an ArrayBuffer bomb into a failed allocation, answered as a memory fault.
"""

from __future__ import annotations

import argparse
import asyncio
import functools
import importlib
import json
import logging
import os
import resource
import signal
import socket
import sys
import time
from collections import deque
from contextlib import ExitStack
from dataclasses import dataclass
from typing import Any

import uvloop
from py_mini_racer import JSMappedObject, MiniRacer, init_mini_racer, mini_racer

from edge.runtime.faults import fault_message
from edge.runtime.js import modules
from edge.runtime.js.client import HOST_REASONS, FrameProtocol
from edge.runtime.js.modules import LoadError, ModuleSpec
from edge.runtime.js.relay import StreamRelay
from edge.runtime.wire import MAX_FRAME

logger = logging.getLogger(__name__)

MIB = 1024 * 1024
NOBODY = 65534
LATE_IMPORTS = ("concurrent.futures.thread", "encodings.ascii", "encodings.latin_1")
PRELUDE_TIMEOUT_S = 10.0
MIN_GRACE_S = 0.1
PEAK_STEP = 1.25
ISOLATE_DATA = 96 * MIB  # address space one isolate maps (thread stacks, heap reservations)
DATA_SLACK = 512 * MIB  # this interpreter, frames in flight, an isolate being replaced
# A fault is sent as its kind alone (no status, headers or body): the worker
# answers it from the fault table (edge.runtime.faults), as for Python.
FAULT_STATUS = 500
# The largest buffered body sent to the worker: a frame holds it, headers and logs.
MAX_BODY = MAX_FRAME - 8 * MIB


@dataclass(eq=False)
class Call:
    """One request: its frame id, its item for ``d()``, and its deadline."""

    rid: int
    item: list[Any]
    deadline: float
    timer: asyncio.TimerHandle | None = None
    cold_ms: float = 0.0


def _data_size() -> int:
    with open("/proc/self/status", "rb") as status:
        line = next(x for x in status if x.startswith(b"VmData:"))
    return int(line.split()[1]) * 1024


def _new_racer(stack: ExitStack, loop: asyncio.AbstractEventLoop) -> MiniRacer:
    """A context whose callbacks land on ``loop`` (called in a thread: it blocks ~3 ms)."""
    return stack.enter_context(mini_racer(event_loop=loop))


def _kind(error: str) -> str:
    """The fault a finished response ended in: its own kind, or an exception."""
    return error if error == "invalid_response" else "exception"


class Isolate:
    """One function version's isolate, its request queue and its limits."""

    def __init__(self, spec: ModuleSpec, runtime_js: str, send: Any, relay: Any = None) -> None:
        self.spec = spec
        self._runtime_js = runtime_js
        self._send = send
        self._relay = relay  # host calls (KV, fetch) to the worker: relay(isolate, calls)
        self.settle: list[list[Any]] = []
        self.mr: MiniRacer | None = None
        self._stack: ExitStack | None = None
        self.queue: deque[Call] = deque()
        self.live: dict[int, Call] = {}
        self.forget: list[int] = []
        self.check: list[int] = []
        self.streams = StreamRelay(spec.name, send, _kind)
        self.collect = False
        self._async = False
        self.inflight: asyncio.Task[None] | None = None
        self._overdue_timer: asyncio.TimerHandle | None = None
        self.starting: asyncio.Future[float] | None = None
        self._load_ping = asyncio.Event()
        self.peak_kb = 0
        self._mark_kb = 0
        self._closing: set[asyncio.Task[None]] = set()
        self.closed = False

    # ---- lifecycle ----

    def ensure_started(self) -> asyncio.Future[float]:
        """Start the isolate unless running or starting; resolves to cold-start ms."""
        if self.starting is None:
            self.starting = asyncio.ensure_future(self._start())
            self.starting.add_done_callback(self._started)
        return self.starting

    async def _start(self) -> float:
        began = time.perf_counter()
        loop = asyncio.get_running_loop()
        stack = ExitStack()
        try:
            creating = loop.run_in_executor(None, _new_racer, stack, loop)
            try:
                mr = await asyncio.shield(creating)
            except asyncio.CancelledError:
                await asyncio.wait({creating})  # let the thread finish entering the stack
                raise
            # APPSEC: always a hard heap limit; without one a memory bomb aborts the process.
            mr.set_hard_memory_limit(self.spec.memory_mb * MIB)
            await self._load(mr, stack)
        except BaseException:
            stack.close()
            raise
        self.mr, self._stack = mr, stack
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

    async def _load(self, mr: MiniRacer, stack: ExitStack) -> None:
        internal = await modules.eval_limited(mr, self._runtime_js, self.spec, PRELUDE_TIMEOUT_S)
        self._watch_memory(mr)
        # mini-racer 0.14 (pinned in pyproject) has no public API for a JS->Python
        # notification that does not block its loop; this private one is the same
        # mechanism its Promise support uses.
        assert mr._ctx is not None and isinstance(internal, JSMappedObject)
        internal["ping"] = stack.enter_context(mr._ctx._register_js_notification(self._on_ping))
        await modules.evaluate_module(mr, self.spec, self._load_ping)

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
        stack, self._stack, self.mr = self._stack, None, None
        if self._overdue_timer is not None:
            self._overdue_timer.cancel()
        if stack is None:
            return
        if task is None or task.done():
            stack.close()  # TerminateExecution, then joins the isolate's thread
            return
        # Free the context only once the eval's callback is unregistered: a
        # callback delivered after mr_free_context would read freed memory.
        task.cancel()
        task.add_done_callback(lambda _: stack.close())
        self._closing.add(task)
        task.add_done_callback(self._closing.discard)

    async def wait_closed(self) -> None:
        """Wait until every disposed context is freed."""
        while self._closing:
            await asyncio.gather(*self._closing, return_exceptions=True)

    def _reset(self, reason: str) -> None:
        """Replace the isolate; its in-flight requests fail with ``reason``."""
        logger.warning("%s: isolate replaced: %s", self.spec.name, self._fault_text(reason))
        if reason == "memory":
            self.peak_kb = max(self.peak_kb, self.spec.memory_mb * 1024)
        now = asyncio.get_running_loop().time()
        for call in self.live.values():
            self._fault(call, reason if reason == "memory" or call.deadline <= now else "crash")
        self.live.clear()
        self.streams.end_all("memory" if reason == "memory" else "crash")
        self.forget, self.check, self.collect, self.settle = [], [], False, []
        self._dispose()
        self._pump()

    # ---- requests ----

    def submit(self, rid: int, request: list[Any]) -> None:
        """Queue ``[method, url, headers, body, params]``; one ``resp`` frame answers it."""
        loop = asyncio.get_running_loop()
        method, url, headers, body, params = request
        kind, text = modules.request_body(body) if body else (0, "")
        call = Call(
            rid,
            [rid, method, url, headers, kind, text, params],
            loop.time() + self.spec.timeout_ms / 1000,
        )
        call.timer = loop.call_at(call.deadline, self._expire, call)
        self.queue.append(call)
        self._pump()

    def answer(self, js_id: int, reply: Any) -> None:
        """The worker's answer to host call ``js_id``: settled by the next d()."""
        self.settle.append([js_id, reply])
        self._pump()

    def _pump(self) -> None:
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
        loop = asyncio.get_running_loop()
        batch = list(self.queue)
        self.queue.clear()
        for call in batch:
            self.live[call.rid] = call
        credit = self.streams.take_credit()
        payload = [[call.item for call in batch], self.forget, self.check, self.settle, credit]
        self.forget, self.check, self.collect, self.settle = [], [], False, []
        if batch:
            overdue = min(call.deadline for call in batch)
        else:
            # A stream's producer runs in these rounds too: it may compute a chunk
            # for up to timeout_ms before the isolate counts as runaway.
            grace = self.spec.timeout_ms / 1000 if self.streams.open else MIN_GRACE_S
            overdue = max([loop.time() + grace, *(c.deadline for c in self.live.values())])
        code = f"__edge.d({json.dumps(payload, ensure_ascii=False)})"  # JSON is valid JS
        task = asyncio.ensure_future(self._dispatch(code, batch))
        self.inflight = task
        self._overdue_timer = loop.call_at(overdue, self._overdue, task, bool(batch))

    async def _dispatch(self, code: str, batch: list[Call]) -> None:
        mr = self.mr
        assert mr is not None
        first = asyncio.ensure_future(mr.eval_cancelable(code))
        # Async handlers settle in V8's microtask checkpoint right after ``first``.
        # Under load (a batch of several), queue the collecting d() right away, so
        # V8 runs it without waiting for this loop; alone, a request is faster
        # without the second task contending for the GIL.
        pipelined = self._async and len(batch) > 1
        then = asyncio.ensure_future(mr.eval_cancelable(modules.COLLECT)) if pipelined else None
        try:
            raw = await modules.dispatch_result(first, self.spec.name)
            if then is not None and isinstance(raw, str):
                self._deliver(raw, batch)
                self.collect = False  # ``then`` is that collection
                raw = await modules.dispatch_result(then, self.spec.name)
        finally:
            if then is not None and not then.done():
                then.cancel()  # and wait: its callback must be gone before any context free
                await asyncio.wait({then})
        if mr is not self.mr:
            return  # replaced meanwhile
        self.inflight = None
        if self._overdue_timer is not None:
            self._overdue_timer.cancel()
        if mr.was_hard_memory_limit_reached() or raw is False:
            self._reset("memory" if mr.was_hard_memory_limit_reached() else "crash")
            return
        if isinstance(raw, str):
            self._deliver(raw, [] if pipelined else batch)
        else:
            self.check.extend(call.rid for call in batch if call.rid in self.live)
        self._track_memory(mr)
        self._pump()

    def _overdue(self, task: asyncio.Task[None], has_batch: bool) -> None:
        if task is not self.inflight:
            return
        if has_batch:
            task.cancel()  # mini-racer cancels the V8 task: TerminateExecution if running
        else:
            self._reset("timeout")  # JS kept running past every live deadline

    def _expire(self, call: Call) -> None:
        call.timer = None
        if self.mr is not None and self.mr.was_hard_memory_limit_reached():
            self._reset("memory")
            return
        if call in self.queue:
            self.queue.remove(call)
        elif self.live.pop(call.rid, None) is not None:
            self.forget.append(call.rid)
        else:
            return
        self._fault(call, "timeout")
        self._pump()

    def _on_ping(self, _handle: Any) -> None:
        self._load_ping.set()
        self.collect = True
        self._pump()

    def _deliver(self, raw: str, batch: list[Call]) -> None:
        done, collect, unknown, calls, chunks = json.loads(raw)
        if calls and self._relay is not None:
            self._relay(self, calls)
        if batch:
            self._async = bool(collect)  # this function's handlers return promises
        for item in done:
            call = self.live.pop(item[0], None)
            if call is not None:
                self._respond(call, item)
        self.collect = self.collect or bool(collect)
        lost = [self.live.pop(rid) for rid in unknown if rid in self.live]
        self.queue.extendleft(reversed(lost))
        for item in chunks:
            self.streams.relay(item)

    def stream_credit(self, rid: int, size: int) -> None:
        """The worker's client took ``size`` bytes of stream ``rid`` (-1: stop it)."""
        if self.streams.grant(rid, size):
            self._pump()

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
        if error == "memory":  # an ArrayBuffer allocation failed (see Host._budget)
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
        if call.timer is not None:
            call.timer.cancel()
            call.timer = None
        if body is not None and len(body) > MAX_BODY:
            # Past what one frame to the worker may carry (the worker's own
            # EDGE_MAX_RESPONSE_MB is lower): say so instead of breaking the link.
            status, headers, body, error = FAULT_STATUS, [], b"", "response_too_large"
        self._send(
            ["resp", call.rid, status, headers, body, logs, error, self.peak_kb, call.cold_ms]
        )

    # The heap peak is tracked without ever blocking on the isolate: mini-racer's
    # heap_stats() waits for the isolate's thread, which a runaway promise
    # continuation can hold forever (and a waiter then keeps the context alive,
    # so it can never be terminated). heap_stats() is read once, right after the
    # prelude, when only our code has run; after that V8's soft memory limit
    # (checked after every GC, readable without blocking) is a ratchet: each time
    # the heap passes the mark, the peak is at least the mark and the mark rises.

    def _watch_memory(self, mr: MiniRacer) -> None:
        used_kb = int(mr.heap_stats()["used_heap_size"]) // 1024
        self.peak_kb = max(self.peak_kb, used_kb)
        self._mark_kb = int(max(self.peak_kb, used_kb) * PEAK_STEP)
        mr.set_soft_memory_limit(self._mark_kb * 1024)

    def _track_memory(self, mr: MiniRacer) -> None:
        if mr.was_soft_memory_limit_reached():
            self.peak_kb = max(self.peak_kb, self._mark_kb)
            self._mark_kb = min(int(self._mark_kb * PEAK_STEP), self.spec.memory_mb * 1024)
            mr.set_soft_memory_limit(self._mark_kb * 1024)


class Host:
    """Routes frames from the worker to isolates, one per function version."""

    def __init__(self, runtime_js: str) -> None:
        self._runtime_js = runtime_js
        self._base_data = _data_size()
        self.isolates: dict[str, Isolate] = {}
        self.conn: FrameProtocol | None = None
        self._calls: dict[int, tuple[Isolate, object, int]] = {}
        self._next_call = 0
        self._tasks: set[asyncio.Task[None]] = set()

    def send(self, frame: list[Any]) -> None:
        if self.conn is not None:
            self.conn.send(frame)

    def on_frame(self, frame: Any) -> None:
        """Handle one frame (APPSEC: shape-checked; a bad frame is logged and dropped)."""
        try:
            op, rid, key, *args = frame
            if op == "callr":
                self._settle(rid, key)
            elif op == "invoke":
                self._invoke(rid, key, args)
            elif op == "load":
                task = asyncio.ensure_future(self._load(rid, key, ModuleSpec.parse(args[0])))
                self._tasks.add(task)
                task.add_done_callback(self._tasks.discard)
            elif op in ("ack", "cancel"):
                isolate = self.isolates.get(key)
                if isolate is not None:
                    isolate.stream_credit(rid, int(args[0]) if op == "ack" else -1)
            elif op == "unload":
                isolate = self.isolates.pop(key, None)
                if isolate is not None:
                    isolate.close()
                    self._budget()
        except (TypeError, ValueError, KeyError, IndexError, AttributeError) as exc:
            logger.error("dropping malformed frame: %s", exc)

    def _relay(self, key: str, isolate: Isolate, calls: list[Any]) -> None:
        """Send an isolate's host calls to the worker: ``["call", id, key, rid, kind, args]``."""
        for js_id, rid, kind, args in calls:
            self._next_call += 1
            # The context too: call ids restart in a replaced isolate, and an old
            # answer must never settle a new call.
            self._calls[self._next_call] = (isolate, isolate.mr, js_id)
            self.send(["call", self._next_call, key, rid, kind, args])

    def _settle(self, call_id: int, reply: Any) -> None:
        """The worker answered a host call: hand it to the isolate's next d()."""
        isolate, context, js_id = self._calls.pop(call_id, (None, None, 0))
        if isolate is not None and not isolate.closed and isolate.mr is context:
            isolate.answer(js_id, reply)

    def _invoke(self, rid: int, key: str, args: list[Any]) -> None:
        method, url, headers, body, params = args
        isolate = self.isolates.get(key)
        if isolate is None:
            self.send(["resp", rid, FAULT_STATUS, [], b"", [], "unavailable", 0, 0.0])
            return
        isolate.submit(rid, [method, url, headers, body, params])  # the worker is trusted

    async def _load(self, rid: int, key: str, spec: ModuleSpec) -> None:
        isolate = self.isolates.get(key)
        if isolate is None or isolate.spec != spec:
            if isolate is not None:
                isolate.close()
            relay = functools.partial(self._relay, key)
            isolate = self.isolates[key] = Isolate(spec, self._runtime_js, self.send, relay)
            self._budget()
        try:
            cold_ms = await isolate.ensure_started() if isolate.mr is None else 0.0
        except LoadError as exc:
            if self.isolates.get(key) is isolate:
                del self.isolates[key]
            self.send(["err", rid, str(exc)])
            return
        except asyncio.CancelledError:
            self.send(["err", rid, f"{spec.filename}: unloaded while loading"])
            return
        self.send(["ok", rid, {"cold_ms": cold_ms, "memory_peak_kb": isolate.peak_kb}])

    def _budget(self) -> None:
        """Cap this process's data size to what its isolates may use.

        APPSEC: V8's hard limit covers its heap, not ArrayBuffer memory, which is
        malloc'd outside it. RLIMIT_DATA makes an ArrayBuffer bomb fail with a
        RangeError (answered as a memory fault) instead of growing this process
        until the node runs out of memory.
        """
        need = (
            self._base_data
            + DATA_SLACK
            + sum(
                ISOLATE_DATA + 2 * isolate.spec.memory_mb * MIB
                for isolate in self.isolates.values()
            )
        )
        _, hard = resource.getrlimit(resource.RLIMIT_DATA)
        if hard == resource.RLIM_INFINITY or need <= hard:
            resource.setrlimit(resource.RLIMIT_DATA, (need, hard))

    async def close(self) -> None:
        isolates = list(self.isolates.values())
        self.isolates.clear()
        for isolate in isolates:
            isolate.close()
        for isolate in isolates:
            await isolate.wait_closed()


async def serve(fd: int, runtime_js: str) -> None:
    """Serve the worker on the inherited socket ``fd`` until it closes."""
    loop = asyncio.get_running_loop()
    lost: asyncio.Future[None] = loop.create_future()
    host = Host(runtime_js)

    def on_lost() -> None:
        if not lost.done():
            lost.set_result(None)

    _, conn = await loop.create_connection(
        lambda: FrameProtocol(host.on_frame, on_lost), sock=socket.socket(fileno=fd)
    )
    host.conn = conn
    await lost
    await host.close()


def _harden() -> None:
    # APPSEC: defence in depth on top of the scrubbed environment the worker
    # passes: no EDGE_* settings, no core dumps (heap contents), few files.
    for name in [k for k in os.environ if k.startswith("EDGE_")]:
        del os.environ[name]
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
    _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    limit = 1024 if hard == resource.RLIM_INFINITY else min(hard, 1024)
    resource.setrlimit(resource.RLIMIT_NOFILE, (limit, limit))
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the worker decides when we stop


def _drop_privileges(uid: int) -> None:
    # APPSEC: V8 runs untrusted code; a root host would make a V8 escape a node
    # takeover. A worker's host runs as its app's function uid (one host per
    # app), the push-time checker as nobody. Everything this process needs
    # from disk is loaded by now.
    if os.geteuid() == 0:
        for name in LATE_IMPORTS:  # the interpreter may live where nobody cannot read
            importlib.import_module(name)
        uid = uid or NOBODY
        os.setgroups([])
        os.setresgid(uid, uid, uid)
        os.setresuid(uid, uid, uid)


def main(argv: list[str] | None = None) -> int:
    """Entry point: ``--fd N`` serves a worker, ``--check`` checks modules."""
    parser = argparse.ArgumentParser(prog="python -m edge.runtime.js.host")
    mode = parser.add_mutually_exclusive_group(required=True)
    mode.add_argument("--fd", type=int, help="inherited socket to serve")
    mode.add_argument("--check", action="store_true", help="check modules (JSON on stdin)")
    parser.add_argument("--uid", type=int, default=0, help="uid/gid to run as when root")
    args = parser.parse_args(argv)
    _harden()
    logging.basicConfig(
        stream=sys.stderr,
        level=logging.INFO,
        format="v8-host[%(process)d] %(levelname)s %(name)s: %(message)s",
    )
    init_mini_racer(ignore_duplicate_init=True)
    script = modules.runtime_script()
    _drop_privileges(args.uid)
    if args.check:
        return modules.main()
    uvloop.run(serve(args.fd, script))
    return 0


if __name__ == "__main__":
    sys.exit(main())
