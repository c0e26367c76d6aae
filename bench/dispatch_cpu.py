"""Micro-benchmark: the worker's own CPU per hello request, without HTTP (not a test).

Drives the runtime's ASGI app (:func:`edge.runtime.app.create_app`: the function
path, a real route table, a real Python pool with real instance processes, the
real metrics recorder and access log) with ``--concurrency`` requests in flight,
feeding it ASGI scopes and collecting its ``send`` messages as gunicorn would.
Prints the worker process's CPU time (``time.process_time``: time the instance
processes spend is not in it, nor time this process waits) per request, the
function processes' CPU and context switches (all their threads) per request
(from ``/proc``: the switches are a steadier figure than CPU time on a shared
machine), and with
``--profile`` the functions with the most own CPU time (cProfile; ``BENCH_SORT=cumtime``
and ``BENCH_TOP=60`` change the order and the count).

With ``--real``, the function is the realistic one of :mod:`bench.realistic`
(a 2 KB JSON body in, 10 KB of JSON out) instead of hello.

Usage: ``python -m bench.dispatch_cpu [-n 20000] [--concurrency 16] [--profile] [--js] [--real]``
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import os
import pstats
import tempfile
import time
from pathlib import Path
from typing import Any

import uvloop

from bench.realistic import REAL_JS, REAL_PY, request_body
from edge.config import Config
from edge.routes import Router, parse_route
from edge.runtime.app import create_app
from edge.runtime.invocation import FunctionVersion
from edge.runtime.js.client import V8Hosts
from edge.runtime.js.pool import JsPool
from edge.runtime.python.client import Zygote
from edge.runtime.registry import PoolRegistry
from edge.runtime.table import RouteTable, Site, Target

HELLO = "def handle(request):\n    return 'hello world'\n"
HELLO_JS = "export default { fetch() { return new Response('hello world'); } };\n"
HOST = "bench.edge.localhost"


class Harness:
    """What the runtime app needs of a worker, with a one-site route table."""

    def __init__(self, config: Config, version: FunctionVersion) -> None:
        from edge.metrics import MetricsRecorder  # noqa: PLC0415
        from edge.runtime.accesslog import AccessLog  # noqa: PLC0415

        self.config = config
        self.hosts = V8Hosts()
        self.pools = PoolRegistry(
            Zygote(), js_factory=lambda v: JsPool(v, self.hosts.for_app(v.app, v.uid))
        )
        target = Target("hello", version, ("local",), 1)
        router = Router([(parse_route("/py"), target)])
        self.table = RouteTable(1, {HOST: Site("bench", "production", 1, router, (target,))})
        self.metrics = MetricsRecorder(None, "bench")  # type: ignore[arg-type]
        self.access = AccessLog(str(Path(tempfile.mkdtemp()) / "access.log"))
        self.logs = None
        self.fallback = None

    async def pool(self, version: FunctionVersion) -> Any:
        return await self.pools.get_or_start(version)


BODY = request_body()


def scope(real: bool) -> dict[str, Any]:
    json_body = [(b"content-type", b"application/json"), (b"content-length", b"%d" % len(BODY))]
    return {
        "type": "http",
        "method": "POST" if real else "GET",
        "path": "/py",
        "raw_path": b"/py",
        "query_string": b"",
        "scheme": "http",
        "headers": [(b"host", HOST.encode())] + (json_body if real else []),
        "server": ("127.0.0.1", 8080),
    }


async def one(app: Any, real: bool) -> None:
    sent: list[dict[str, Any]] = []
    body = BODY if real else b""

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": body, "more_body": False}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    await app(scope(real), receive, send)
    assert sent[0]["status"] == 200, sent


SWITCHES = ("voluntary_ctxt_switches:", "nonvoluntary_ctxt_switches:")


def _switches(pid: int) -> int:
    """Context switches so far of every thread of ``pid``."""
    total = 0
    for task in Path(f"/proc/{pid}/task").iterdir():
        try:
            lines = (task / "status").read_text().splitlines()
        except OSError:
            continue
        total += sum(int(line.split()[1]) for line in lines if line.startswith(SWITCHES))
    return total


def descendants_cpu() -> tuple[float, int]:
    """CPU seconds (user + system) and context switches so far of this process's
    live descendants."""
    tick = os.sysconf("SC_CLK_TCK")
    parents: dict[int, int] = {}
    cpu: dict[int, float] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            parents[int(entry.name)] = int(fields[1])
            cpu[int(entry.name)] = (int(fields[11]) + int(fields[12])) / tick
    ours = {os.getpid()}
    changed = True
    while changed:
        changed = False
        for pid, parent in parents.items():
            if parent in ours and pid not in ours:
                ours.add(pid)
                changed = True
    ours.discard(os.getpid())
    switches = 0
    for pid in ours:
        try:
            switches += _switches(pid)
        except OSError:
            continue
    return sum(cpu[pid] for pid in ours), switches


async def run(
    root: Path, n: int, concurrency: int, profile: bool, js: bool, real: bool
) -> tuple[float, float, float]:
    version = FunctionVersion(
        key="bench", app="bench", environment="production", release=1, name="hello",
        runtime="js" if js else "python", root=root, path="hello.js" if js else "hello.py",
        handler="" if js else "handle", env={},
        memory_mb=128, timeout_ms=5000, min_warm=concurrency, max_instances=concurrency,
    )  # fmt: skip
    config = Config.from_env({"EDGE_HOME": str(root / "home")})
    harness = Harness(config, version)
    app = create_app(config, harness)  # type: ignore[arg-type]
    await harness.pool(version)
    queue = asyncio.Queue[int]()

    async def client() -> None:
        while True:
            try:
                queue.get_nowait()
            except asyncio.QueueEmpty:
                return
            await one(app, real)

    for _ in range(2000):
        queue.put_nowait(0)
    await asyncio.gather(*(client() for _ in range(concurrency)))
    for _ in range(n):
        queue.put_nowait(0)
    profiler = cProfile.Profile() if profile else None
    children = descendants_cpu()
    started = time.process_time()
    if profiler is not None:
        profiler.enable()
    await asyncio.gather(*(client() for _ in range(concurrency)))
    if profiler is not None:
        profiler.disable()
    used = time.process_time() - started
    after = descendants_cpu()
    children_cpu, switches = after[0] - children[0], after[1] - children[1]
    await harness.pools.close()
    await harness.hosts.close()
    if profiler is not None:
        order, top = os.environ.get("BENCH_SORT", "tottime"), os.environ.get("BENCH_TOP", "25")
        pstats.Stats(profiler).sort_stats(order).print_stats(int(top))
    return used / n * 1e6, children_cpu / n * 1e6, switches / n


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-n", type=int, default=20000)
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--profile", action="store_true")
    parser.add_argument("--js", action="store_true", help="a JavaScript hello function")
    parser.add_argument("--real", action="store_true", help="the realistic function")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="edge-bench-") as tmp:
        (Path(tmp) / "hello.py").write_text(REAL_PY if args.real else HELLO)
        (Path(tmp) / "hello.js").write_text(REAL_JS if args.real else HELLO_JS)
        os.chmod(tmp, 0o755)
        with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
            per, function, switches = runner.run(
                run(Path(tmp), args.n, args.concurrency, args.profile, args.js, args.real)
            )
    print(
        f"CPU per request: worker {per:.1f} us, function processes {function:.1f} us, "
        f"{switches:.2f} context switches "
        f"({'V8 host' if args.js else 'zygote, templates, instances'}; "
        f"{args.n} requests, {args.concurrency} in flight)"
    )


if __name__ == "__main__":
    main()
