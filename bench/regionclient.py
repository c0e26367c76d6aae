"""``python -m bench.regionclient``: the Tokyo client of ``make regions``, run inside its
network namespace (``ip netns exec``), printing JSON for :mod:`bench.regions`.

- ``wait URL``: poll ``URL`` until it answers 200 (a node, the control plane).
- ``measure --host H --path P --samples N URL...``: time ``GET /healthz`` of every
  node to pick the nearest, then time N requests to it on one keep-alive
  connection (after a warm-up), failing over to the next node if it is down.
- ``run --host H --path P --seconds S URL...``: requests back to back for S
  seconds; prints ``started`` once the first answers arrived (the caller kills a
  node then), and a timeline at the end.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections import Counter
from typing import Any

import httpx

NOT_SENT = (httpx.ConnectError, httpx.ConnectTimeout)
WARMUP = 3


def wait(url: str, timeout: float) -> int:
    deadline = time.monotonic() + timeout
    with httpx.Client(timeout=2, trust_env=False) as client:
        while time.monotonic() < deadline:
            try:
                if client.get(url).status_code == 200:
                    return 0
            except httpx.HTTPError:
                pass
            time.sleep(0.1)
    print(f"nothing answered 200 at {url} within {timeout:.0f}s", file=sys.stderr)
    return 1


def by_distance(client: httpx.Client, urls: list[str]) -> tuple[list[str], dict[str, float]]:
    """The nodes nearest first, by the best of three ``/healthz`` round trips."""
    rtts: dict[str, float] = {}
    for url in urls:
        best = float("inf")
        for _ in range(3):
            started = time.perf_counter()
            try:
                client.get(f"{url}/healthz")
            except httpx.HTTPError:
                break
            best = min(best, (time.perf_counter() - started) * 1000)
        rtts[url] = best
    return sorted(urls, key=lambda u: rtts[u]), rtts


class Caller:
    """Requests to the nearest live node; on a node that refuses, the next one."""

    def __init__(self, client: httpx.Client, nodes: list[str], host: str, path: str) -> None:
        self.client, self.nodes, self.host, self.path = client, list(nodes), host, path

    def call(self) -> dict[str, Any]:
        while self.nodes:
            started = time.perf_counter()
            try:
                answer = self.client.get(self.nodes[0] + self.path, headers={"host": self.host})
            except NOT_SENT:
                self.nodes.pop(0)  # down: from now on the next nearest
                continue
            except httpx.HTTPError as exc:  # it was in flight when the node died
                return {"ok": False, "error": type(exc).__name__, "node": self.nodes[0]}
            return {
                "ok": answer.status_code == 200,
                "status": answer.status_code,
                "ms": (time.perf_counter() - started) * 1000,
                "node": self.nodes[0],
                "region": answer.headers.get("x-edge-region", ""),
                "via": answer.headers.get("x-edge-via", ""),
            }
        return {"ok": False, "error": "no node answers"}


def warm_up(caller: Caller, timeout: float = 60.0) -> None:
    """Until ``WARMUP`` answers in a row are 200: a node may learn new routes just
    after the push returned (a push waits only for the nodes of the app's regions)."""
    deadline = time.monotonic() + timeout
    streak = 0
    while streak < WARMUP and time.monotonic() < deadline:
        streak = streak + 1 if caller.call()["ok"] else 0
        if not streak:
            time.sleep(0.1)


def measure(args: argparse.Namespace) -> dict[str, Any]:
    with httpx.Client(timeout=30, trust_env=False) as client:
        nodes, rtts = by_distance(client, args.urls)
        caller = Caller(client, nodes, args.host, args.path)
        warm_up(caller)
        results = [caller.call() for _ in range(args.samples)]
    ok = [r for r in results if r["ok"]]
    return {
        "nearest": nodes[0],
        "rtt_ms": rtts,
        "latencies_ms": [r["ms"] for r in ok],
        "regions": Counter(r["region"] for r in ok),
        "via": Counter(r["via"] for r in ok),
        "failures": len(results) - len(ok),
        "statuses": Counter(r.get("status", r.get("error")) for r in results),
    }


def run(args: argparse.Namespace) -> dict[str, Any]:
    timeline: list[dict[str, Any]] = []
    with httpx.Client(timeout=30, trust_env=False) as client:
        nodes, _ = by_distance(client, args.urls)
        caller = Caller(client, nodes, args.host, args.path)
        deadline = time.monotonic() + args.seconds
        while time.monotonic() < deadline:
            result = caller.call()
            result["t"] = time.monotonic()
            timeline.append(result)
            if len(timeline) == args.started_after:
                print("started", flush=True)
    return {"timeline": timeline}


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.regionclient")
    sub = parser.add_subparsers(dest="cmd", required=True)
    waiting = sub.add_parser("wait")
    waiting.add_argument("url")
    waiting.add_argument("--timeout", type=float, default=90)
    for name in ("measure", "run"):
        cmd = sub.add_parser(name)
        cmd.add_argument("--host", required=True)
        cmd.add_argument("--path", required=True)
        cmd.add_argument("--samples", type=int, default=40)
        cmd.add_argument("--seconds", type=float, default=6)
        cmd.add_argument("--started-after", type=int, default=10)
        cmd.add_argument("urls", nargs="+")
    args = parser.parse_args(argv)
    if args.cmd == "wait":
        return wait(args.url, args.timeout)
    print(json.dumps(measure(args) if args.cmd == "measure" else run(args)), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
