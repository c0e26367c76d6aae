"""``make regions``: the Tokyo figure, reproduced in network namespaces.

A us-east site (control plane, PostgreSQL, Redis, a runtime node), an ap-tokyo
site (a runtime node) and a Tokyo client, joined by links with one-way delays
(client <-> us-east 100 ms, client <-> ap-tokyo 7.5 ms, ap-tokyo <-> us-east
100 ms; see :mod:`bench.netns`). The run:

1. deploys a function with ``regions = ["us-east"]`` by ``git push``;
2. measures p50/p99 from the Tokyo client straight to us-east, and to its
   nearest node (ap-tokyo), which forwards to us-east (the fallback);
3. redeploys with ``regions = ["us-east", "ap-tokyo"]`` by ``git push`` and
   measures the nearest node again;
4. kills the Tokyo node during a run of requests: they move to us-east.

Prints the table (``--json``: the figures as JSON). Needs root and Linux.
Everything it creates (namespaces, links, processes, files) goes at the end,
also on Ctrl-C.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from collections import Counter
from contextlib import ExitStack
from pathlib import Path
from typing import Any

from bench.gitwork import Workdir
from bench.netns import Delays, Topology
from bench.procs import Processes, exit_on_signals
from bench.regionsites import EAST_URL, PLATFORM_PORT, TOKYO_URL, Sites
from bench.stats import percentile

APP = "tokyo-demo"
HOST = f"{APP}.edge.localhost"
PATH = "/hello"
HELLO = 'def handle(request):\n    return {"hello": "from the edge"}\n'


def manifest(regions: list[str]) -> str:
    listed = ", ".join(f'"{r}"' for r in regions)
    return f'[functions.hello]\nentry = "hello.py"\nroutes = ["{PATH}"]\nregions = [{listed}]\n'


def say(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


def deploy(sites: Sites, work: Workdir, regions: list[str]) -> None:
    work.commit(f"regions = {regions}", {"edge.toml": manifest(regions), "hello.py": HELLO})
    remote = f"http://x:{sites.token}@127.0.0.1:{PLATFORM_PORT}/git/{APP}.git"
    out = work.git("push", remote, "main").stderr
    for line in out.splitlines():
        if line.startswith("remote: ----->"):
            say("  " + line)


def row(label: str, path: str, data: dict[str, Any]) -> dict[str, Any]:
    lat = data["latencies_ms"]
    regions = ", ".join(data["regions"]) or "-"
    via = [v for v in data["via"] if v]
    return {
        "deployment": label,
        "path": path,
        "served_by": regions + (f" (via {', '.join(via)})" if via else ""),
        "p50_ms": round(percentile(lat, 50), 1) if lat else None,
        "p99_ms": round(percentile(lat, 99), 1) if lat else None,
        "samples": len(lat),
        "failures": data["failures"],
        "regions": data["regions"],
        "via": data["via"],
        "latencies_ms": [round(ms, 1) for ms in lat],
    }


def measure(sites: Sites, samples: int, *urls: str) -> dict[str, Any]:
    args = ["measure", "--host", HOST, "--path", PATH, "--samples", str(samples)]
    result: dict[str, Any] = sites.client(*args, *urls)
    return result


def failover(sites: Sites, seconds: float) -> dict[str, Any]:
    """Requests from the Tokyo client while the Tokyo node is killed."""
    argv = [
        *sites.topo.exec("client"),
        *(sys.executable, "-m", "bench.regionclient", "run", "--host", HOST, "--path", PATH),
        *("--seconds", str(seconds), TOKYO_URL, EAST_URL),
    ]
    with subprocess.Popen(argv, stdout=subprocess.PIPE, text=True) as proc:
        assert proc.stdout is not None
        if proc.stdout.readline().strip() != "started":
            raise RuntimeError("the failover client did not start")
        killed_at = time.monotonic()
        sites.kill_node("tokyo")
        timeline = json.loads(proc.stdout.read())["timeline"]
    before = [r for r in timeline if r["t"] <= killed_at]
    after = [r for r in timeline if r["t"] > killed_at]
    return {
        "before": Counter(r.get("region") or "failed" for r in before),
        "after": Counter(r.get("region") or "failed" for r in after),
        "failed_after": [r.get("error") for r in after if not r["ok"]],
    }


def wait_gone(sites: Sites, timeout: float = 45) -> list[dict[str, Any]]:
    deadline = time.monotonic() + timeout
    while True:
        nodes: list[dict[str, Any]] = json.loads(sites.edge("nodes", "--json"))["nodes"]
        if any(n["region"] == "ap-tokyo" and n["health"] == "gone" for n in nodes):
            return nodes
        if time.monotonic() > deadline:
            return nodes
        time.sleep(1)


def scenario(sites: Sites, args: argparse.Namespace, home: Path) -> dict[str, Any]:
    say("-----> starting PostgreSQL, Redis, the control plane and two runtime nodes")
    sites.start_data()
    sites.start_platform()
    sites.start_node("east")
    sites.start_node("tokyo")
    say(sites.edge("nodes"))
    work = Workdir(home / "app", wrapper=tuple(sites.topo.exec("east")))
    say('-----> git push: regions = ["us-east"]')
    deploy(sites, work, ["us-east"])
    direct = measure(sites, args.samples, EAST_URL)
    nearest = measure(sites, args.samples, TOKYO_URL, EAST_URL)
    say('-----> git push: regions = ["us-east", "ap-tokyo"]')
    deploy(sites, work, ["us-east", "ap-tokyo"])
    after = measure(sites, args.samples, TOKYO_URL, EAST_URL)
    say("-----> killing the Tokyo node (SIGKILL) while the Tokyo client sends requests")
    moved = failover(sites, args.failover_seconds)
    nodes = wait_gone(sites)
    return {
        "delays_ms": vars(args.delays),
        "links": sites.topo.mode,
        "nearest_node": {"before": nearest["nearest"], "after": after["nearest"]},
        "rtt_ms": after["rtt_ms"],
        "rows": [
            row('regions = ["us-east"]', "Tokyo client -> us-east node", direct),
            row(
                'regions = ["us-east"]',
                "Tokyo client -> ap-tokyo node -> us-east (fallback)",
                nearest,
            ),
            row('regions = ["us-east", "ap-tokyo"]', "Tokyo client -> ap-tokyo node", after),
        ],
        "failover": moved,
        "nodes_after_kill": [{k: n[k] for k in ("node", "region", "health")} for n in nodes],
    }


def report(result: dict[str, Any]) -> str:
    d = result["delays_ms"]
    lines = [
        f"Links, one way: Tokyo client <-> us-east {d['client_east']:g} ms, "
        f"Tokyo client <-> ap-tokyo {d['client_tokyo']:g} ms, "
        f"ap-tokyo <-> us-east {d['tokyo_east']:g} ms ({result['links']})",
        "",
        "| deployment | path | served by | p50 ms | p99 ms | requests |",
        "|---|---|---|---|---|---|",
    ]
    for r in result["rows"]:
        lines.append(
            f"| {r['deployment']} | {r['path']} | {r['served_by']} | {r['p50_ms']} "
            f"| {r['p99_ms']} | {r['samples']} ({r['failures']} failed) |"
        )
    f = result["failover"]
    lines += [
        "",
        f"Tokyo node killed: before, {dict(f['before'])}; after, {dict(f['after'])} "
        f"(failed after the kill: {len(f['failed_after'])}, in flight when it died)",
        "edge nodes after the kill: "
        + ", ".join(f"{n['region']} {n['health']}" for n in result["nodes_after_kill"]),
    ]
    return "\n".join(lines)


def parse(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench.regions", description=__doc__)
    parser.add_argument("--client-east-ms", type=float, default=100.0)
    parser.add_argument("--client-tokyo-ms", type=float, default=7.5)
    parser.add_argument("--tokyo-east-ms", type=float, default=100.0)
    parser.add_argument("--samples", type=int, default=40, help="timed requests per row")
    parser.add_argument("--failover-seconds", type=float, default=5.0)
    parser.add_argument("--workers", type=int, default=1, help="runtime workers per node")
    parser.add_argument("--json", action="store_true", help="print the figures as JSON")
    args = parser.parse_args(argv)
    if min(args.client_east_ms, args.client_tokyo_ms, args.tokyo_east_ms) < 0:
        parser.error("delays must not be negative")
    if args.samples < 1:
        parser.error("--samples must be at least 1")
    args.delays = Delays(args.client_east_ms, args.client_tokyo_ms, args.tokyo_east_ms)
    return args


def main(argv: list[str]) -> int:
    args = parse(argv)
    if sys.platform != "linux" or os.geteuid() != 0:
        print("make regions needs Linux and root (it creates network namespaces)", file=sys.stderr)
        return 2
    exit_on_signals()
    try:
        result = run(args)
    except KeyboardInterrupt:
        say("interrupted: the namespaces, links and processes of this run are gone")
        return 130
    print(json.dumps(result, indent=2) if args.json else report(result))
    return 0


def run(args: argparse.Namespace) -> dict[str, Any]:
    """Set everything up, run the scenario, tear everything down (also on errors)."""
    with ExitStack() as stack:
        home = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="edge-regions-")))
        home.chmod(0o711)  # function uids reach their release folders by path
        topo = stack.enter_context(Topology(f"edge{os.getpid()}-", args.delays, Processes(home)))
        sites = Sites(topo, topo.procs, home, workers=args.workers)
        stack.callback(sites.close)
        stack.enter_context(topo.procs)
        say(f"-----> network namespaces {topo.prefix}east/tokyo/client: {topo.up()}")
        try:
            result = scenario(sites, args, home)
        except Exception:
            say("failed; the last lines of each log:")
            for log in sorted(home.glob("*.log")):
                say(f"--- {log.name}\n{log.read_text(errors='replace')[-3000:]}")
            raise
    return result


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
