"""Micro-benchmark: the V8 host's own CPU per hello request, in batches (not a test).

Runs a V8 host (:class:`edge.runtime.js.host.Host`) in this process, loads a
hello function into it, and feeds it ``invoke`` frames ``--batch`` at a time, as
a worker would in one write, waiting for every answer before the next batch.
Prints the CPU time of this process (the host's loop thread and the isolate's
thread) and of the loop thread alone, per request. No worker, no sockets: the
figure is the host's Python and V8 work and its thread hand-offs, which is what
changes when the batch path does. ``--async`` makes the handler ``async``, so each
batch also pays for the ``d()`` that collects it.

Usage: ``python -m bench.host_cpu [-n 20000] [--batch 10] [--async]``
"""

from __future__ import annotations

import argparse
import asyncio
import time
from typing import Any

import uvloop
from py_mini_racer import init_mini_racer

from edge.runtime.js import host as v8host
from edge.runtime.js import modules
from edge.runtime.js.modules import ModuleSpec
from edge.runtime.wire import encode

SYNC = "export default { fetch() { return new Response('hello world'); } };\n"
ASYNC = "export default { async fetch() { return new Response('hello world'); } };\n"
HEADERS = [["host", "bench.edge.localhost"], ["user-agent", "wrk"], ["accept", "*/*"]]
WARMUP = 2000


async def measure(requests: int, batch: int, source: str) -> tuple[float, float]:
    """Host CPU and loop-thread CPU per request, in microseconds."""
    host = v8host.Host(modules.runtime_script())
    answered = asyncio.Event()
    state = {"left": 0}

    class Sink:
        def send(self, frame: list[Any]) -> None:
            encode(frame)  # as the host's connection would
            if frame[0] == "resp":
                state["left"] -= 1
                if state["left"] == 0:
                    answered.set()
            elif frame[0] == "err":
                raise RuntimeError(frame)

    host.conn = Sink()  # type: ignore[assignment]
    host.spares.fill()
    spec = {
        "name": "hello",
        "filename": "hello.js",
        "source": source,
        "memory_mb": 128,
        "timeout_ms": 5000,
        "env": {},
    }
    await host._load(1, "hello", ModuleSpec.parse(spec))
    rid = 10

    async def run(count: int) -> None:
        nonlocal rid
        for _ in range(count // batch):
            state["left"] = batch
            answered.clear()
            for _ in range(batch):
                rid += 1
                url = "http://bench.edge.localhost/js"
                host.on_frame(["invoke", rid, "hello", "GET", url, HEADERS, b"", {}])
            await answered.wait()

    await run(WARMUP)
    cpu, loop = time.process_time(), time.thread_time()
    await run(requests)
    per = 1e6 / requests
    result = ((time.process_time() - cpu) * per, (time.thread_time() - loop) * per)
    await host.close()
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-n", type=int, default=20000, help="requests measured")
    parser.add_argument("--batch", type=int, default=10, help="requests per write")
    parser.add_argument("--async", dest="is_async", action="store_true", help="async handler")
    args = parser.parse_args()
    init_mini_racer(flags=v8host.V8_FLAGS, ignore_duplicate_init=True)
    source = ASYNC if args.is_async else SYNC
    total, loop = uvloop.run(measure(args.n, args.batch, source))
    kind = "async" if args.is_async else "sync"
    print(
        f"V8 host CPU per request: {total:.1f} us, its loop thread {loop:.1f} us "
        f"({args.n} requests, batches of {args.batch}, {kind} hello)"
    )


if __name__ == "__main__":
    main()
