"""Micro-benchmark of JavaScript requests through JsPool (not a test).

Prints, measured in this one run:

* warm: ``JsPool.invoke`` of a hello module on a warm isolate, one request at
  a time (worker -> V8 host frame, one ``__edge.d()`` batch, reply), and with
  ``--concurrency`` requests in flight (the host batches them into one V8 entry);
* cold: ``JsPool.start`` of new function versions in a running host (isolate
  creation, prelude, module evaluation), and the first start of the host itself;
* baseline, in this process, after the host is gone (V8 is initialised here
  only at the end, after every subprocess was started): a bare ``mr.call`` of
  an equivalent handler (JSON in/out), and an ``eval_cancelable`` from
  mini-racer's own loop.

Usage: ``python bench/js_roundtrip.py [-n 3000] [--concurrency 32] [--loop uvloop|asyncio]
[--handler async|sync]``
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

from edge.runtime.invocation import FunctionVersion, Invocation
from edge.runtime.js.client import V8Host
from edge.runtime.js.pool import JsPool

HELLO = {
    "async": 'export default { async fetch(request) { return new Response("hello world") } };\n',
    "sync": 'export default { fetch(request) { return new Response("hello world") } };\n',
}
HANDLER = "var handler = function (req) { return {status: 200, body: 'hello ' + req.url}; };"


def pct(samples: list[float]) -> tuple[float, float]:
    ordered = sorted(samples)
    return ordered[len(ordered) // 2], ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))]


def version(root: Path, key: str) -> FunctionVersion:
    return FunctionVersion(
        key=key,
        app="bench",
        environment="production",
        release=1,
        name="hello",
        runtime="js",
        root=root,
        path="hello.js",
        handler="",
        env={},
        memory_mb=128,
        timeout_ms=5000,
    )


def invocation() -> Invocation:
    return Invocation(
        method="GET",
        url="http://bench.test/hello",
        path="/hello",
        query_string="",
        headers=[("host", "bench.test")],
        body=b"",
        params={},
        request_id="r",
    )


async def timed(n: int, call: Callable[[], Awaitable[object]]) -> list[float]:
    samples = []
    for _ in range(n):
        began = time.perf_counter()
        await call()
        samples.append((time.perf_counter() - began) * 1e3)
    return samples


async def concurrent(pool: JsPool, n: int, width: int) -> tuple[float, list[float]]:
    latencies: list[float] = []

    async def lane(count: int) -> None:
        for _ in range(count):
            began = time.perf_counter()
            await pool.invoke(invocation())
            latencies.append((time.perf_counter() - began) * 1e3)

    began = time.perf_counter()
    await asyncio.gather(*(lane(n // width) for _ in range(width)))
    return len(latencies) / (time.perf_counter() - began), latencies


async def measure_pool(root: Path, n: int, width: int) -> dict[str, object]:
    host = V8Host()
    results: dict[str, object] = {}
    try:
        began = time.perf_counter()
        pool = JsPool(version(root, "warm"), host)
        await pool.start()
        results["host_start_ms"] = (time.perf_counter() - began) * 1e3
        await timed(300, lambda: pool.invoke(invocation()))
        results["warm"] = pct(await timed(n, lambda: pool.invoke(invocation())))
        results["rps"], lat = await concurrent(pool, n * 4, width)
        results["concurrent"] = pct(lat)
        colds = []
        for i in range(30):
            cold = JsPool(version(root, f"cold{i}"), host)
            began = time.perf_counter()
            await cold.start()
            colds.append((time.perf_counter() - began) * 1e3)
            await cold.close()
        results["cold"] = pct(colds)
        await pool.close()
    finally:
        await host.close()
    return results


async def measure_baseline(n: int) -> dict[str, object]:
    from py_mini_racer import MiniRacer  # noqa: PLC0415 - V8 starts here, after all spawns

    results: dict[str, object] = {}
    loop = asyncio.get_running_loop()

    def bare_call() -> list[float]:
        mr = MiniRacer()  # created off-loop: its own loop thread, as plain users do
        mr.eval(HANDLER)
        samples = []
        for _ in range(n + 300):
            began = time.perf_counter()
            mr.call("handler", {"url": "/hello"})
            samples.append((time.perf_counter() - began) * 1e3)
        mr.close()
        return samples[300:]

    results["mr.call"] = pct(await loop.run_in_executor(None, bare_call))
    mr = MiniRacer()  # created on this loop: callbacks land here
    mr.eval(HANDLER)
    code = "JSON.stringify(handler({url: '/hello'}))"
    await timed(300, lambda: mr.eval_cancelable(code))
    results["eval_cancelable"] = pct(await timed(n, lambda: mr.eval_cancelable(code)))
    mr.close()
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("-n", type=int, default=3000)
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--loop", choices=["uvloop", "asyncio"], default="uvloop")
    parser.add_argument(
        "--handler",
        choices=sorted(HELLO),
        default="async",
        help="an `async fetch` (the usual) or a plain `fetch`",
    )
    args = parser.parse_args()
    if args.loop == "uvloop":
        import uvloop  # noqa: PLC0415

        uvloop.install()
    with tempfile.TemporaryDirectory() as folder:
        root = Path(folder)
        (root / "hello.js").write_text(HELLO[args.handler])
        pool = asyncio.run(measure_pool(root, args.n, args.concurrency))
    base = asyncio.run(measure_baseline(args.n))
    call_p50 = base["mr.call"][0]  # type: ignore[index]
    rows = [
        ("baseline: bare mr.call (JSON in/out)", base["mr.call"]),
        ("baseline: eval_cancelable on mini-racer's loop", base["eval_cancelable"]),
        ("JsPool.invoke, warm, 1 in flight", pool["warm"]),
        (f"JsPool.invoke, warm, {args.concurrency} in flight", pool["concurrent"]),
        ("cold: JsPool.start of a new version (isolate)", pool["cold"]),
    ]
    print(f"{'path':<52} {'p50 ms':>8} {'p99 ms':>8} {'p50 / mr.call':>14}")
    for name, (p50, p99) in rows:  # type: ignore[misc]
        print(f"{name:<52} {p50:8.3f} {p99:8.3f} {p50 / call_p50:14.2f}")
    print(
        f"throughput with {args.concurrency} in flight: {pool['rps']:,.0f} req/s "
        f"(one worker's asyncio loop + one V8 host)"
    )
    print(
        f"first JsPool.start, including the V8 host process start: {pool['host_start_ms']:.1f} ms"
    )
    print(
        f"python {sys.version.split()[0]}, loop {args.loop}, {args.handler} fetch handler; "
        f"samples: n={args.n} warm, 30 cold"
    )


if __name__ == "__main__":
    main()
