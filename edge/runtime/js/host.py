"""The V8 host process: all JavaScript isolates of one runtime worker.

Run as ``python -m edge.runtime.js.host --fd N`` by :class:`edge.runtime.js.client.V8Host`
(frames are described there), or with ``--check`` by :mod:`edge.runtime.js.modules`.
V8 is initialised only here, in a fresh process that never forks.

One :class:`~edge.runtime.js.isolate.Isolate` (a ``MiniRacer`` context on this
process's loop) per function version, started from a spare context that has the
Web API prelude evaluated already (:mod:`edge.runtime.js.spare`). Requests queue
per isolate and enter V8 in batches: one call of ``__edge.d()`` (``js/dispatch.js``,
through :mod:`edge.runtime.js.entry`) starts every queued request and returns
every finished response, so a busy function pays one thread hand-off per batch, not per request.
Handlers that finish later send a ping; the next ``d()`` collects them. Limits
are enforced from outside the JavaScript:

* V8's hard heap limit (``memory_mb``) on every isolate; when hit, the isolate
  is replaced and its requests get 502 "memory limit of N MB exceeded";
* a deadline per request (``timeout_ms``, then 504): a batch still running at
  its first deadline is terminated (``TerminateExecution``) and the isolate,
  probed, keeps serving; one still busy past every live deadline (an endless
  loop in a promise continuation or a timer) is replaced;
* the same limit on each isolate's ArrayBuffers, which live outside V8's heap
  (:mod:`edge.runtime.js.buffers`): past it, the isolate is terminated and
  replaced as for its heap limit;
* behind both, a process-wide RLIMIT_DATA budget (:meth:`Host.budget`), sized
  so that every isolate meets its own limits before the process meets it.
"""

from __future__ import annotations

import argparse
import asyncio
import functools
import importlib
import logging
import os
import resource
import signal
import socket
import sys
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import uvloop
from py_mini_racer import init_mini_racer

from edge.runtime.js import modules, threadstate
from edge.runtime.js.buffers import SWEEP_FLAG, BufferLimits
from edge.runtime.js.isolate import FAULT_STATUS, Isolate
from edge.runtime.js.link import FrameProtocol
from edge.runtime.js.modules import LoadError, ModuleSpec
from edge.runtime.js.spare import SPARE_MEMORY_MB, Spares

logger = logging.getLogger(__name__)

MIB = 1024 * 1024
NOBODY = 65534
LATE_IMPORTS = (
    "concurrent.futures.thread",
    "encodings.ascii",
    "encodings.latin_1",
    "encodings.utf_16_le",  # modules.parse_result, for texts outside the BMP
)
ISOLATE_DATA = 96 * MIB  # address space one isolate maps (thread stacks, heap reservations)
CALL_THREADS = 2
DATA_SLACK = 512 * MIB  # this interpreter, frames in flight, an isolate being replaced
# How far one isolate's ArrayBuffers may pass its limit before its next full GC
# stops it (V8 14.4 runs one every ~160 MB of ArrayBuffer growth, measured).
BUFFER_STEP = 192 * MIB
# mini-racer's default (one thread per isolate, no V8 worker threads), and
# buffers swept in the GC's pause, as the ArrayBuffer limits need. No
# compilation cache: a batch past the inbox (edge.runtime.js.entry) is a new
# script (its batch inlined) that runs once, and the cache kept each one's
# source alive: an isolate taking bodies
# grew until its memory limit replaced it (a 16 KB batch at a time, 128 MB
# after ~4,500 batches when little else allocated; measured).
V8_FLAGS = ("--single-threaded", "--no-compilation-cache", SWEEP_FLAG)


def _data_size() -> int:
    with open("/proc/self/status", "rb") as status:
        line = next(x for x in status if x.startswith(b"VmData:"))
    return int(line.split()[1]) * 1024


class Host:
    """Routes frames from the worker to isolates, one per function version."""

    def __init__(self, runtime_js: str) -> None:
        self.buffers = BufferLimits(init_mini_racer(ignore_duplicate_init=True))
        self.spares = Spares(runtime_js, self.buffers)
        self._base_data = _data_size()
        self.isolates: dict[str, Isolate] = {}
        self.conn: FrameProtocol | None = None
        self._calls: dict[int, tuple[Isolate, object, int]] = {}
        self._next_call = 0
        self._tasks: set[asyncio.Task[None]] = set()
        self._freeing: set[Isolate] = set()  # closed, their contexts not yet freed
        # Host calls (Web Crypto, zlib) get threads of their own, so a slow one (an RSA
        # key generation) never holds up the threads that start isolates.
        self._calls_pool = ThreadPoolExecutor(CALL_THREADS, thread_name_prefix="host-call")

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
            elif op == "stats":
                self.send(["ok", rid, self.stats()])
            elif op == "unload":
                isolate = self.isolates.pop(key, None)
                if isolate is not None:
                    self._retire(isolate)
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
        isolate = self.isolates.get(key)
        if isolate is None:
            self.send(["resp", rid, FAULT_STATUS, [], b"", [], "unavailable", 0, 0.0])
            return
        isolate.submit(rid, args)  # the worker is trusted; submit checks the shape

    async def _load(self, rid: int, key: str, spec: ModuleSpec) -> None:
        isolate = self.isolates.get(key)
        if isolate is None or isolate.spec != spec:
            if isolate is not None:
                self._retire(isolate)
            relay = functools.partial(self._relay, key)
            isolate = Isolate(spec, self.spares, self.send, relay, self._calls_pool)
            self.isolates[key] = isolate
            self.budget()
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
        info = {"cold_ms": cold_ms, "memory_peak_kb": isolate.peak_kb}
        self.send(["ok", rid, {**info, "spare": isolate.from_ready_spare}])

    def _retire(self, isolate: Isolate) -> None:
        """Close an isolate that left ``isolates``; it stays in the budget until its
        context is freed (off this loop: :meth:`Isolate._free`)."""
        isolate.close()
        self._freeing.add(isolate)
        task = asyncio.ensure_future(isolate.wait_closed())
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        task.add_done_callback(lambda _: self._freed(isolate))

    def _freed(self, isolate: Isolate) -> None:
        self._freeing.discard(isolate)
        self.budget()

    def stats(self) -> dict[str, Any]:
        """What the ``stats`` frame answers: isolates, how cold starts found the
        spare, and the Python thread states the isolates' threads keep."""
        return {
            "isolates": len(self.isolates),
            "spare_ready": self.spares.ready,
            "spares_taken": self.spares.taken,
            "spares_taken_ready": self.spares.taken_ready,
            "isolate_thread_states": threadstate.foreign_states(),
        }

    def budget(self) -> None:
        """Cap this process's data size to what its isolates may use.

        Each isolate may hold ``memory_mb`` of V8 heap and as much again of
        ArrayBuffers (outside the heap), each stopped by its own limit (V8's hard
        limit; :mod:`edge.runtime.js.buffers`), which V8 checks at its GCs, so an
        isolate can pass it by a step (``BUFFER_STEP``) before it is stopped.
        The budget is that sum, one step and the interpreter's slack: one
        function's bomb meets its own limit while every other isolate of the app
        still has the memory it is allowed.

        APPSEC: RLIMIT_DATA is the backstop. It makes an ArrayBuffer allocation
        the per-isolate limit does not catch (shared memory, which V8 counts as
        no isolate's; one allocation that would take all the room at once) fail
        with a RangeError, answered as the function's memory fault (its isolate
        is replaced at once, freeing its buffers), instead of growing this
        process until the node runs out of memory. Until the isolate is
        replaced, the app's other isolates may find no memory (see README.md).
        """
        need = (
            self._base_data
            + DATA_SLACK
            + BUFFER_STEP
            + ISOLATE_DATA
            + 2 * SPARE_MEMORY_MB * MIB  # the spare
            + sum(
                ISOLATE_DATA + 2 * isolate.spec.memory_mb * MIB
                for isolate in [*self.isolates.values(), *self._freeing]
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
        for isolate in [*isolates, *self._freeing]:
            await isolate.wait_closed()
        await self.spares.close()
        self._calls_pool.shutdown(wait=False, cancel_futures=True)


async def serve(fd: int, runtime_js: str) -> None:
    """Serve the worker on the inherited socket ``fd`` until it closes."""
    loop = asyncio.get_running_loop()
    lost: asyncio.Future[None] = loop.create_future()
    host = Host(runtime_js)

    def on_lost() -> None:
        if not lost.done():
            lost.set_result(None)

    # Set before the connection exists: frames already waiting on the socket are
    # read (and some answered at once) before create_connection returns.
    host.conn = conn = FrameProtocol(host.on_frame, on_lost)
    await loop.create_connection(lambda: conn, sock=socket.socket(fileno=fd))
    host.budget()
    host.spares.fill()  # the first load finds it ready, or on its way
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
    os.sched_setscheduler(0, os.SCHED_BATCH, os.sched_param(0))  # see process/template.py
    logging.basicConfig(
        stream=sys.stderr,
        level=logging.INFO,
        format="v8-host[%(process)d] %(levelname)s %(name)s: %(message)s",
    )
    init_mini_racer(flags=V8_FLAGS, ignore_duplicate_init=True)
    script = modules.runtime_script()
    _drop_privileges(args.uid)
    if args.check:
        return modules.main()
    uvloop.run(serve(args.fd, script))
    return 0


if __name__ == "__main__":
    sys.exit(main())
