"""1,000 functions on one node: route matching time and the memory of idle pools.

``.venv/bin/python -m bench.scale`` (also run by ``make bench``):

* Route match: a route table with one app of 1,000 functions (3 route patterns
  each: exact, ``:param`` and ``*`` tail) and 100 apps of 10, built by the
  runtime's own :class:`~edge.runtime.table.RouteTable` from a routing snapshot;
  the time of Host lookup + most-specific match, p50/p99, against a table of one
  app with 10 functions in the same run.
* Idle pool memory: ``--pools`` Python pools (a template each, ``min_warm = 0``)
  and as many JS isolates in one V8 host, started by the runtime's own pool
  classes; the proportional set size (PSS) they add, per pool.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import statistics
import tempfile
import time
from dataclasses import replace
from pathlib import Path

from edge.config import Config
from edge.runtime.invocation import FunctionVersion
from edge.runtime.js.client import V8Host
from edge.runtime.js.pool import JsPool
from edge.runtime.python.client import Zygote
from edge.runtime.python.pool import PythonPool
from edge.runtime.registry import PoolRegistry
from edge.runtime.table import RouteTable
from edge.snapshot import FunctionRecord, LiveEnvironment, RoutingSnapshot

HELLO_PY = "def handle(request):\n    return 'hello'\n"
HELLO_JS = "export default { fetch() { return new Response('hello'); } };\n"


def record(i: int) -> FunctionRecord:
    routes = (f"/f{i}", f"GET /f{i}/items/:id", f"/f{i}/files/*")
    return FunctionRecord(
        f"f{i}", "python", f"f{i}.py", f"f{i}.py", "handle", 128, 1000, ["us-east"], {}, 0, 8,
        f"hash{i}", routes,
    )  # fmt: skip


def snapshot(apps: dict[str, int]) -> RoutingSnapshot:
    return RoutingSnapshot(
        1,
        tuple(
            LiveEnvironment(app, "production", n, 1, "artifact", tuple(record(i) for i in range(n)))
            for n, app in enumerate(apps)
            for n in [apps[app]]
        ),
    )


def requests(apps: dict[str, int], count: int, domain: str) -> list[tuple[str, str]]:
    rng = random.Random(7)
    found = []
    for _ in range(count):
        app = rng.choice(list(apps))
        i = rng.randrange(apps[app])
        path = rng.choice([f"/f{i}", f"/f{i}/items/{rng.randrange(10**6)}", f"/f{i}/files/a/b.txt"])
        found.append((f"{app}.{domain}", path))
    return found


def time_matches(table: RouteTable, calls: list[tuple[str, str]]) -> list[float]:
    samples = []
    for host, path in calls:
        began = time.perf_counter()
        site = table.site(host)
        assert site is not None and site.router.match("GET", path) is not None
        samples.append(time.perf_counter() - began)
    return samples


def percentiles(samples: list[float]) -> tuple[float, float]:
    q = statistics.quantiles(samples, n=100)
    return q[49] * 1e6, q[98] * 1e6


def route_rows(config: Config, count: int) -> list[str]:
    small = {"small": 10}
    large = {"big": 1000, **{f"app{n}": 10 for n in range(100)}}
    small_table = RouteTable.build(snapshot(small), config)
    base = time_matches(small_table, requests(small, count, config.domain))
    began = time.perf_counter()
    table = RouteTable.build(snapshot(large), config)
    build_ms = (time.perf_counter() - began) * 1000
    big = time_matches(table, requests(large, count, config.domain))
    environments = list(snapshot(large).environments)  # one small app deploys again
    environments[-1] = replace(environments[-1], release_id=10_000, version=2)
    began = time.perf_counter()
    RouteTable.build(RoutingSnapshot(2, tuple(environments)), config, table)
    rebuild_ms = (time.perf_counter() - began) * 1000
    (b50, b99), (l50, l99) = percentiles(base), percentiles(big)
    return [
        f"route match, 1 app x 10 functions: p50 {b50:.2f} us, p99 {b99:.2f} us",
        f"route match, 2,000 functions (1 app x 1,000 + 100 apps x 10, 6,000 patterns): "
        f"p50 {l50:.2f} us, p99 {l99:.2f} us ({l50 / b50:.2f}x the small table); "
        f"table built in {build_ms:.0f} ms, rebuilt after one app's deploy in {rebuild_ms:.1f} ms",
    ]


def pss_kb(pid: int) -> int:
    with open(f"/proc/{pid}/smaps_rollup") as rollup:
        line = next(x for x in rollup if x.startswith("Pss:"))
    return int(line.split()[1])


def version(root: Path, i: int, runtime: str) -> FunctionVersion:
    path = f"f{i}.py" if runtime == "python" else f"f{i}.js"
    return FunctionVersion(
        f"{runtime}-{i}", "scale", "production", 1, f"f{i}", runtime, root, path,
        "handle" if runtime == "python" else "", {}, 128, 1000,
    )  # fmt: skip


async def pool_rows(root: Path, pools: int) -> list[str]:
    for i in range(pools):
        (root / f"f{i}.py").write_text(HELLO_PY + f"# {i}\n")
        (root / f"f{i}.js").write_text(HELLO_JS + f"// {i}\n")
    registry = PoolRegistry(Zygote(), max_pools=pools * 2)
    host = V8Host()
    try:
        python = [await registry.get_or_start(version(root, i, "python")) for i in range(pools)]
        templates = [p.template_pid for p in python if isinstance(p, PythonPool)]
        py_kb = sum(pss_kb(pid) for pid in templates if pid) / len(templates)
        first = JsPool(version(root, 0, "js"), host)
        await first.start()
        assert host.pid is not None
        one = pss_kb(host.pid)
        rest = [JsPool(version(root, i, "js"), host) for i in range(1, pools)]
        for pool in rest:
            await pool.start()
        js_kb = (pss_kb(host.pid) - one) / max(len(rest), 1)
        return [
            f"idle Python pool (its template, min_warm 0): {py_kb / 1024:.1f} MiB PSS each "
            f"(mean of {len(templates)}); 1,000 such pools: {py_kb * 1000 / 1024 / 1024:.1f} GiB",
            f"idle JS pool (an isolate with the Web API prelude, in its app's V8 host): "
            f"{js_kb / 1024:.1f} MiB PSS each (mean of {len(rest)}); "
            f"1,000: {js_kb * 1000 / 1024 / 1024:.1f} GiB",
        ]
    finally:
        await registry.close()
        await host.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--matches", type=int, default=20_000)
    parser.add_argument("--pools", type=int, default=20)
    args = parser.parse_args()
    config = Config.from_env({"EDGE_HOME": tempfile.mkdtemp(prefix="edge-scale-")})
    for line in route_rows(config, args.matches):
        print(line)
    with tempfile.TemporaryDirectory(prefix="edge-scale-") as tmp:
        os.chmod(tmp, 0o755)
        for line in asyncio.run(pool_rows(Path(tmp), args.pools)):
            print(line)


if __name__ == "__main__":
    main()
