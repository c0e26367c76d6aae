"""Micro-benchmark of the Python function pool's hot paths (not a test).

Prints, measured in this one run:

* baseline: a bare socketpair echo with a forked child (4-byte length prefix,
  raw bytes), driven from asyncio the two ways the pool could use: an
  ``asyncio.Protocol`` (what ``edge.runtime.python.sockets`` uses) and
  ``loop.sock_sendall``/``loop.sock_recv``;
* warm: ``PythonPool.invoke`` of a hello function on a warm instance (request
  and reply msgpack frames, handler call, output capture, reply validation);
* cold: ``invoke`` when the instance has to be forked from the template first
  (``Outcome.cold_ms`` is the fork-to-socket part; "total" is the whole call);
* loaded: requests/s of ``--callers`` concurrent callers on a pool of
  ``--instances`` instances, without and with pipelining (a request queued in
  a busy instance's socket), in alternating rounds; the ratio is per round.

Usage: ``python bench/pool_roundtrip.py [--loop uvloop|asyncio] [-n 5000]``
"""

from __future__ import annotations

import argparse
import asyncio
import os
import socket
import statistics
import struct
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path

import uvloop

from edge.runtime.invocation import FunctionVersion, Invocation
from edge.runtime.python.client import Zygote
from edge.runtime.python.pool import PIPELINE_DEPTH, PythonPool
from edge.runtime.registry import PoolRegistry

HEADER = struct.Struct("!I")
HELLO = "def handle(request):\n    return {'hello': 'world'}\n"


def echo_child(sock: socket.socket) -> None:
    """Blocking echo of length-prefixed frames until EOF (runs in a forked child)."""
    reader = sock.makefile("rb")
    while True:
        header = reader.read(4)
        if len(header) < 4:
            os._exit(0)
        sock.sendall(header + reader.read(HEADER.unpack(header)[0]))


def start_echo() -> tuple[socket.socket, int]:
    ours, theirs = socket.socketpair()
    pid = os.fork()  # before any event loop or thread exists in this process
    if pid == 0:
        ours.close()
        echo_child(theirs)
    theirs.close()
    return ours, pid


class EchoProtocol(asyncio.Protocol):
    def __init__(self) -> None:
        self.waiter: asyncio.Future[bytes] | None = None
        self.buffer = bytearray()

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        if len(self.buffer) >= 4 and len(self.buffer) >= 4 + HEADER.unpack_from(self.buffer)[0]:
            payload = bytes(self.buffer[4:])
            self.buffer.clear()
            assert self.waiter is not None
            self.waiter.set_result(payload)


async def bench_protocol(sock: socket.socket, n: int, frame: bytes) -> list[float]:
    loop = asyncio.get_running_loop()
    protocol = EchoProtocol()
    transport, _ = await loop.connect_accepted_socket(lambda: protocol, sock)
    samples = []
    for _ in range(n):
        started = time.perf_counter()
        protocol.waiter = loop.create_future()
        transport.write(frame)
        await protocol.waiter
        samples.append(time.perf_counter() - started)
    transport.close()
    return samples


async def bench_sock_calls(sock: socket.socket, n: int, frame: bytes) -> list[float]:
    loop = asyncio.get_running_loop()
    sock.setblocking(False)
    samples = []
    for _ in range(n):
        started = time.perf_counter()
        await loop.sock_sendall(sock, frame)
        data = await loop.sock_recv(sock, 65536)
        while len(data) < len(frame):
            data += await loop.sock_recv(sock, 65536)
        samples.append(time.perf_counter() - started)
    sock.close()
    return samples


def hello_version(root: Path, max_instances: int = 1) -> FunctionVersion:
    return FunctionVersion(
        key="bench",
        app="bench",
        environment="production",
        release=1,
        name="hello",
        runtime="python",
        root=root,
        path="hello.py",
        handler="handle",
        env={},
        memory_mb=128,
        timeout_ms=5000,
        min_warm=0,
        max_instances=max_instances,
    )


def hello_request() -> Invocation:
    return Invocation(
        "GET",
        "http://bench.edge.localhost/",
        "/",
        "",
        [("accept", "*/*")],
        b"",
        {},
        "0123456789abcdef",
    )


async def bench_pool(root: Path, n: int, cold_n: int) -> dict[str, list[float]]:
    version, request = hello_version(root), hello_request()
    pools = PoolRegistry(Zygote())
    try:
        pool = await pools.get_or_start(version)
        assert isinstance(pool, PythonPool)
        for _ in range(200):
            await pool.invoke(request)
        warm = []
        for _ in range(n):
            started = time.perf_counter()
            outcome = await pool.invoke(request)
            warm.append(time.perf_counter() - started)
            assert outcome.status == 200 and not outcome.cold
        cold, fork = [], []
        for _ in range(cold_n):
            assert pool.reap_idle(time.monotonic() + 10, ttl=0) == 1  # the next call is cold
            await asyncio.sleep(0.02)  # let the kill settle, as a real cold start finds it
            started = time.perf_counter()
            outcome = await pool.invoke(request)
            cold.append(time.perf_counter() - started)
            fork.append(outcome.cold_ms / 1000)
            assert outcome.status == 200 and outcome.cold
        return {"warm": warm, "cold (total)": cold, "cold (fork to socket)": fork}
    finally:
        await pools.close()


async def rate(pool: PythonPool, callers: int, seconds: float) -> float:
    """Requests/s of ``callers`` concurrent loops of ``invoke`` for ``seconds``."""
    request = hello_request()
    deadline = time.perf_counter() + seconds
    done = 0

    async def caller() -> None:
        nonlocal done
        while time.perf_counter() < deadline:
            outcome = await pool.invoke(request)
            assert outcome.status == 200, outcome.body
            done += 1

    started = time.perf_counter()
    await asyncio.gather(*(caller() for _ in range(callers)))
    return done / (time.perf_counter() - started)


async def bench_loaded(
    root: Path, instances: int, callers: int, rounds: int
) -> list[tuple[float, float, int]]:
    """Per round: req/s without pipelining, with it, and requests pipelined."""
    zygote = Zygote()
    await zygote.start()
    version = hello_version(root, instances)
    pools = {
        depth: PythonPool(replace(version, key=f"depth{depth}"), zygote, pipeline_depth=depth)
        for depth in (0, PIPELINE_DEPTH)
    }
    try:
        for pool in pools.values():
            await pool.start()
            await rate(pool, callers, 0.5)  # every instance forked and warm
        results = []
        for _ in range(rounds):
            piped = pools[PIPELINE_DEPTH]
            before = piped.pipelined
            off = await rate(pools[0], callers, 2.0)
            on = await rate(piped, callers, 2.0)
            results.append((off, on, piped.pipelined - before))
        return results
    finally:
        for pool in pools.values():
            await pool.close()
        await zygote.close()


def percentiles(samples: list[float]) -> tuple[float, float]:
    q = statistics.quantiles(samples, n=100)
    return q[49] * 1e6, q[98] * 1e6


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--loop", choices=["uvloop", "asyncio"], default="uvloop")
    parser.add_argument("-n", type=int, default=5000, help="warm round trips")
    parser.add_argument("--cold", type=int, default=300, help="cold starts")
    parser.add_argument("--instances", type=int, default=4, help="instances when loaded")
    parser.add_argument("--callers", type=int, default=8, help="concurrent callers when loaded")
    parser.add_argument("--rounds", type=int, default=3, help="loaded rounds")
    args = parser.parse_args()
    frame = HEADER.pack(120) + b"x" * 120  # about the size of a hello request
    echo_a, pid_a = start_echo()
    echo_b, pid_b = start_echo()
    factory = uvloop.new_event_loop if args.loop == "uvloop" else asyncio.new_event_loop
    results: dict[str, list[float]] = {}
    with (
        tempfile.TemporaryDirectory(prefix="edge-bench-") as tmp,
        asyncio.Runner(loop_factory=factory) as runner,
    ):
        (Path(tmp) / "hello.py").write_text(HELLO)
        os.chmod(tmp, 0o755)
        results["baseline echo, asyncio.Protocol"] = runner.run(
            bench_protocol(echo_a, args.n, frame)
        )
        results["baseline echo, loop.sock_*"] = runner.run(bench_sock_calls(echo_b, args.n, frame))
        results.update(runner.run(bench_pool(Path(tmp), args.n, args.cold)))
        loaded = runner.run(bench_loaded(Path(tmp), args.instances, args.callers, args.rounds))
    for pid in (pid_a, pid_b):
        os.waitpid(pid, 0)
    base = percentiles(results["baseline echo, asyncio.Protocol"])
    print(f"Python {sys.version.split()[0]}, {args.loop}, {os.cpu_count()} CPUs")
    print(f"{'path':<34}{'p50 us':>10}{'p99 us':>10}{'p50 x base':>12}")
    for name, samples in results.items():
        p50, p99 = percentiles(samples)
        print(f"{name:<34}{p50:>10.1f}{p99:>10.1f}{p50 / base[0]:>12.2f}")
    print(f"\nloaded: {args.callers} callers on {args.instances} instances")
    print(f"{'round':<8}{'no pipelining':>16}{'pipelining':>14}{'ratio':>8}{'pipelined':>12}")
    for number, (off, on, piped) in enumerate(loaded, 1):
        print(f"{number:<8}{off:>12,.0f} r/s{on:>10,.0f} r/s{on / off:>8.2f}{piped:>12,}")
    ratio = statistics.median(on / off for off, on, _ in loaded)
    print(f"median ratio, pipelining / none: {ratio:.2f}")


if __name__ == "__main__":
    main()
