"""Micro-benchmark: a Python instance's CPU per request against how many wait in its socket.

Forks one real instance (:class:`edge.runtime.python.process.instance.Instance`,
its real request loop, framing and output capture) on a socketpair, and drives
it from this process in rounds of ``B`` requests written at once, reading the
``B`` replies before the next round: ``B = 1`` is an instance that sleeps
between requests, a larger ``B`` one that finds the next request waiting. Prints
the instance's CPU time (``/proc``) and context switches per request for each
``B``, and, as the floor, the same handler's work run in a loop in this process
(parse the body, build the answer, encode the reply frame).

With ``--hello``, the function is hello world; by default it is the realistic
one of :mod:`bench.realistic` (2 KB of JSON in, 10 KB out).

Usage: ``python -m bench.instance_depth [-n 20000] [--depths 1,4,12] [--hello]``
"""

from __future__ import annotations

import argparse
import os
import socket
import time
from collections.abc import Callable
from typing import Any

from bench.realistic import REAL_PY, request_body
from edge.runtime.python.process.instance import Capture, Instance
from edge.runtime.wire import FrameBuffer, encode

HELLO_PY = "def handle(request):\n    return 'hello world'\n"
HEADERS = [["content-type", "application/json"], ["host", "bench"], ["user-agent", "wrk"]]


def _message(body: bytes) -> dict[str, Any]:
    return {
        "method": "POST",
        "url": "http://bench/real",
        "path": "/real",
        "query": "",
        "headers": HEADERS,
        "params": {},
        "body": body,
        "id": "0" * 16,
    }


def _cpu_ticks(pid: int) -> int:
    with open(f"/proc/{pid}/stat") as stat:
        fields = stat.read().rpartition(")")[2].split()
    return int(fields[11]) + int(fields[12])  # utime + stime


def _switches(pid: int) -> int:
    with open(f"/proc/{pid}/status") as status:
        return sum(int(line.split(":")[1]) for line in status if "ctxt_switches" in line)


def _drive(handler: Callable[..., Any], message: dict[str, Any], depth: int, n: int) -> str:
    ours, theirs = socket.socketpair()
    pid = os.fork()
    if pid == 0:  # the instance
        ours.close()
        os._exit(Instance(theirs, handler, {}, Capture()).run())
    theirs.close()
    frames, burst = FrameBuffer(), encode(message) * depth

    def round_() -> None:
        ours.sendall(burst)
        got = 0
        while got < depth:
            frames.feed(ours.recv(1 << 20))
            while frames.next() is not None:
                got += 1

    try:
        for _ in range(max(1, 500 // depth)):  # warm up
            round_()
        ticks, switches = _cpu_ticks(pid), _switches(pid)
        rounds = max(1, n // depth)
        for _ in range(rounds):
            round_()
        ticks, switches = _cpu_ticks(pid) - ticks, _switches(pid) - switches
    finally:
        ours.close()
        os.waitpid(pid, 0)
    requests = rounds * depth
    us = ticks / os.sysconf("SC_CLK_TCK") / requests * 1e6
    return f"{depth:>3} waiting: instance {us:6.1f} us/request, {switches / requests:.2f} switches"


def _floor(handler: Callable[..., Any], message: dict[str, Any], n: int) -> str:
    ours, theirs = socket.socketpair()
    instance = Instance(ours, handler, {}, Capture())
    try:
        started = time.process_time()
        for _ in range(n):
            instance._answer(message)  # the request's own work, no I/O
        us = (time.process_time() - started) / n * 1e6
    finally:
        ours.close()
        theirs.close()
    return f"floor (the handler and the reply frame, in a loop here): {us:.1f} us/request"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-n", type=int, default=20000, help="requests per depth")
    parser.add_argument("--depths", default="1,4,12", help="requests written at once")
    parser.add_argument("--hello", action="store_true", help="hello world, not the realistic one")
    args = parser.parse_args()
    namespace: dict[str, Any] = {}
    exec(HELLO_PY if args.hello else REAL_PY, namespace)  # our own bench code
    handler = namespace["handle"]
    message = _message(b"" if args.hello else request_body())
    print(_floor(handler, message, args.n))
    for depth in (int(d) for d in args.depths.split(",")):
        print(_drive(handler, message, depth, args.n))


if __name__ == "__main__":
    main()
