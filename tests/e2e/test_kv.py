"""Function KV end to end: Python and JavaScript functions on a real stack.

Operations travel from the function process to the runtime worker as frames
and run on the stack's real Redis; the tests read what users see (HTTP
answers, ``edge kv``) and what lands in Redis.
"""

from __future__ import annotations

import json
import subprocess
import sys
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
import redis
from stack import Stack, Workdir, make_stack, wait_for

from edge.redisserver import RedisServer

MANIFEST = """
[functions.py]
entry = "kvpy.py"
routes = ["/py/*"]
max_instances = 4

[functions.js]
entry = "kvjs.js"
routes = ["/js/*"]

[functions.pyspin]
entry = "spin.py"
routes = ["/spin/py"]
timeout_ms = 400

[functions.jsspin]
entry = "spin.js"
routes = ["/spin/js"]
timeout_ms = 400
"""

SPIN_PY = """
from edge import kv


def handle(request):
    while True:  # KV time counts against timeout_ms
        kv.incr("spins")
"""

SPIN_JS = """
export default {
  async fetch(request, env) {
    for (;;) await env.KV.incr("spins-js");
  },
};
"""

KV_PY = """
import json
import os
from edge import kv


def handle(request):
    op = request.params["*"]
    q = request.query
    if op == "put":
        value = request.json() if q.get("json") else request.text()
        ttl = float(q["ttl"]) if "ttl" in q else None
        kv.put(q["key"], value, ttl=ttl)
        return {"stored": q["key"]}
    if op == "get":
        return {"value": kv.get(q["key"])}
    if op == "get_json":
        return {"value": kv.get_json(q["key"])}
    if op == "list":
        return {"keys": kv.list(prefix=q.get("prefix", ""))}
    if op == "incr":
        return {"n": kv.incr(q["key"]), "template": os.getppid()}
    if op == "delete":
        kv.delete(q["key"])
        return {"deleted": q["key"]}
    if op == "big":
        try:
            kv.put(q["key"], b"x" * (int(q["mb"]) * 1024 * 1024 + 1))
        except kv.KVError as exc:
            return {"caught": exc.code, "message": str(exc)}
        return {"caught": None}
    if op == "longkey":
        try:
            kv.put("k" * 513, "v")
        except kv.KVError as exc:
            return {"caught": exc.code, "message": str(exc)}
        return {"caught": None}
    return {"unknown": op}
"""

KV_JS = """
export default {
  async fetch(request, env, ctx) {
    const url = new URL(request.url);
    const op = ctx.params["*"];
    const key = url.searchParams.get("key");
    if (op === "get") return Response.json({ value: await env.KV.get(key) });
    if (op === "json") return Response.json({ value: await env.KV.get(key, "json") });
    if (op === "bytes") {
      const buf = await env.KV.get(key, "arrayBuffer");
      return Response.json({ bytes: buf === null ? null : Array.from(new Uint8Array(buf)) });
    }
    if (op === "put") {
      const ttl = url.searchParams.get("ttl");
      await env.KV.put(key, await request.text(), ttl ? { expirationTtl: Number(ttl) } : {});
      return Response.json({ stored: key });
    }
    if (op === "list") {
      const opts = { prefix: url.searchParams.get("prefix") || "" };
      if (url.searchParams.get("limit")) opts.limit = Number(url.searchParams.get("limit"));
      if (url.searchParams.get("cursor")) opts.cursor = url.searchParams.get("cursor");
      return Response.json(await env.KV.list(opts));
    }
    if (op === "incr") return Response.json({ n: await env.KV.incr(key, 1) });
    if (op === "delete") { await env.KV.delete(key); return Response.json({ deleted: key }); }
    if (op === "big") {
      try {
        await env.KV.put(key, new Uint8Array(1024 * 1024 + 1));
        return Response.json({ caught: null });
      } catch (e) {
        return Response.json({ caught: e.code, message: e.message });
      }
    }
    return Response.json({ unknown: op });
  },
};
"""


@pytest.fixture(scope="module")
def kv_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    tmp = Path(tmp_path_factory.mktemp("kv-stack"))
    server = RedisServer(tmp / "redis.sock", tmp / "redis")
    server.start()
    stack = make_stack(tmp, f"sqlite:///{tmp / 'edge.db'}", server.url)
    try:
        stack.start("platform")
        stack.start("runtime")
        yield stack
    finally:
        stack.close()
        server.stop()


def deploy(stack: Stack, tmp: Path, app: str, branch: str = "main") -> Workdir:
    work = Workdir(tmp / f"{app}-{branch}")
    if branch != "main":
        work.git("checkout", "-b", branch)
    files = {"kvpy.py": KV_PY, "kvjs.js": KV_JS, "spin.py": SPIN_PY, "spin.js": SPIN_JS}
    work.commit("v1", {"edge.toml": MANIFEST, **files})
    out = work.push(stack.remote(app), branch)
    assert "live at" in out.stderr, out.stderr
    return work


@pytest.fixture(scope="module")
def app(kv_stack: Stack, tmp_path_factory: pytest.TempPathFactory) -> str:
    name = "kv-" + uuid.uuid4().hex[:6]
    deploy(kv_stack, Path(tmp_path_factory.mktemp("kv-app")), name)
    return name


def call(stack: Stack, host: str, path: str, body: str | None = None) -> dict:
    method = "GET" if body is None else "POST"
    response = stack.call(method, host, path, content=body)
    assert response.status_code == 200, (response.status_code, response.text)
    return response.json()


def test_python_writes_and_javascript_reads(kv_stack: Stack, app: str) -> None:
    host = kv_stack.host(app)
    assert call(kv_stack, host, "/py/put?key=greeting", "héllo") == {"stored": "greeting"}
    assert call(kv_stack, host, "/js/get?key=greeting") == {"value": "héllo"}
    assert call(kv_stack, host, "/js/bytes?key=greeting")["bytes"] == list("héllo".encode())
    assert call(kv_stack, host, "/js/put?key=from-js", "written by js") == {"stored": "from-js"}
    assert call(kv_stack, host, "/py/get?key=from-js") == {"value": "written by js"}
    assert call(kv_stack, host, "/py/get?key=absent") == {"value": None}
    assert call(kv_stack, host, "/js/get?key=absent") == {"value": None}
    call(kv_stack, host, "/js/delete?key=from-js")
    assert call(kv_stack, host, "/py/get?key=from-js") == {"value": None}


def test_json_values_and_ttl(kv_stack: Stack, app: str) -> None:
    host = kv_stack.host(app)
    doc = {"name": "Arthur", "tags": ["a", 42]}
    call(kv_stack, host, "/py/put?key=user:1&json=1", json.dumps(doc))
    assert call(kv_stack, host, "/py/get_json?key=user:1") == {"value": doc}
    assert call(kv_stack, host, "/js/json?key=user:1") == {"value": doc}

    call(kv_stack, host, "/py/put?key=short&ttl=0.3", "soon gone")
    call(kv_stack, host, "/js/put?key=short-js&ttl=1", "soon gone too")
    assert call(kv_stack, host, "/js/get?key=short") == {"value": "soon gone"}
    assert "short" in call(kv_stack, host, "/py/list?prefix=short")["keys"]
    wait_for(
        lambda: call(kv_stack, host, "/py/list?prefix=short")["keys"] == [],
        timeout=5,
        message="TTL'd keys to expire and leave the listing",
    )
    assert call(kv_stack, host, "/py/get?key=short") == {"value": None}
    assert call(kv_stack, host, "/js/get?key=short-js") == {"value": None}


def test_list_by_prefix_with_cursor(kv_stack: Stack, app: str) -> None:
    host = kv_stack.host(app)
    for name in ("fruit:apple", "fruit:banana", "fruit:cherry", "veg:leek"):
        call(kv_stack, host, f"/py/put?key={name}", name)
    fruit = ["fruit:apple", "fruit:banana", "fruit:cherry"]
    assert call(kv_stack, host, "/py/list?prefix=fruit:") == {"keys": fruit}
    page = call(kv_stack, host, "/js/list?prefix=fruit:&limit=2")
    assert page["keys"] == [{"name": "fruit:apple"}, {"name": "fruit:banana"}]
    assert page["list_complete"] is False and page["cursor"]
    rest = call(kv_stack, host, f"/js/list?prefix=fruit:&limit=2&cursor={page['cursor']}")
    assert rest["keys"] == [{"name": "fruit:cherry"}] and rest["list_complete"] is True


def test_concurrent_incr_across_both_workers_is_exact(kv_stack: Stack, app: str) -> None:
    host = kv_stack.host(app)
    key = "counter-" + uuid.uuid4().hex[:6]
    paths = [f"/{'py' if i % 2 else 'js'}/incr?key={key}" for i in range(240)]

    def hit(path: str) -> dict:
        response = kv_stack.get(host, path)
        assert response.status_code == 200, response.text
        return response.json()

    with ThreadPoolExecutor(max_workers=12) as pool:
        results = list(pool.map(hit, paths))
    assert sorted(r["n"] for r in results) == list(range(1, 241))  # none lost, none doubled
    assert call(kv_stack, host, f"/py/get?key={key}") == {"value": "240"}
    # Each worker has its own template of the function: both workers served some.
    assert len({r["template"] for r in results if "template" in r}) == 2


def test_other_apps_and_previews_see_nothing(kv_stack: Stack, app: str, tmp_path: Path) -> None:
    call(kv_stack, kv_stack.host(app), "/py/put?key=private", "production only")
    other = "kvo-" + uuid.uuid4().hex[:6]
    deploy(kv_stack, tmp_path, other)
    deploy(kv_stack, tmp_path, app, branch="preview")
    for host in (kv_stack.host(other), kv_stack.host(app, "preview")):
        assert call(kv_stack, host, "/py/get?key=private") == {"value": None}
        assert call(kv_stack, host, "/js/get?key=private") == {"value": None}
        assert call(kv_stack, host, "/py/list") == {"keys": []}
    call(kv_stack, kv_stack.host(app, "preview"), "/py/put?key=private", "preview's own")
    assert call(kv_stack, kv_stack.host(app), "/py/get?key=private") == {"value": "production only"}


def test_oversized_values_and_keys_fail_catchably_and_store_nothing(
    kv_stack: Stack, app: str
) -> None:
    host = kv_stack.host(app)
    got = call(kv_stack, host, "/py/big?key=huge&mb=1")
    assert got["caught"] == "limit" and "EDGE_KV_MAX_VALUE_MB" in got["message"], got
    got = call(kv_stack, host, "/js/big?key=huge-js")
    assert got["caught"] == "limit" and "EDGE_KV_MAX_VALUE_MB" in got["message"], got
    got = call(kv_stack, host, "/py/longkey")
    assert got["caught"] == "limit" and "512" in got["message"], got
    assert call(kv_stack, host, "/py/list?prefix=huge") == {"keys": []}
    client = redis.Redis.from_url(kv_stack.config.redis_url)
    try:
        assert not list(client.scan_iter(match=f"edge:kv:{app}:*huge*"))
    finally:
        client.close()


def edge_cli(stack: Stack, *args: str, stdin: str = "") -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "edge.cli", *args],
        input=stdin,
        env={**stack.env, "EDGE_TOKEN": stack.token},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_cli_and_api_share_the_functions_namespace(kv_stack: Stack, app: str) -> None:
    host = kv_stack.host(app)
    put = edge_cli(kv_stack, "kv", "put", app, "motd", "set by the cli")
    assert put.returncode == 0 and "stored motd (production)" in put.stdout, put.stderr
    assert call(kv_stack, host, "/py/get?key=motd") == {"value": "set by the cli"}
    assert call(kv_stack, host, "/js/get?key=motd") == {"value": "set by the cli"}

    call(kv_stack, host, "/py/put?key=cli:from-fn", "written by a function")
    got = edge_cli(kv_stack, "kv", "get", app, "cli:from-fn")
    assert got.returncode == 0 and got.stdout == "written by a function", got.stderr
    listed = edge_cli(kv_stack, "kv", "list", app, "cli:")
    assert listed.stdout.split() == ["cli:from-fn"], listed
    piped = edge_cli(kv_stack, "kv", "put", app, "piped", "--env", "preview", stdin="from stdin")
    assert "stored piped (preview)" in piped.stdout, piped.stderr
    preview = edge_cli(kv_stack, "kv", "get", app, "piped", "--env", "preview")
    assert preview.stdout == "from stdin", preview.stderr
    assert edge_cli(kv_stack, "kv", "get", app, "piped").returncode == 1  # not in production

    assert edge_cli(kv_stack, "kv", "delete", app, "cli:from-fn").returncode == 0
    missing = edge_cli(kv_stack, "kv", "get", app, "cli:from-fn")
    assert missing.returncode == 1 and "404" in missing.stderr, missing
    assert call(kv_stack, host, "/py/get?key=cli:from-fn") == {"value": None}

    api = f"http://127.0.0.1:{kv_stack.config.platform_port}"
    auth = {"Authorization": f"Bearer {kv_stack.token}"}
    big = kv_stack.http.put(
        f"{api}/v1/apps/{app}/kv/too-big", headers=auth, json={"value": "x" * (1 << 20 | 1)}
    )
    assert big.status_code == 413 and "EDGE_KV_MAX_VALUE_MB" in big.json()["error"], big.text
    slash = kv_stack.http.put(f"{api}/v1/apps/{app}/kv/a/b%20c", headers=auth, json={"value": "1"})
    assert slash.status_code == 200, slash.text
    assert call(kv_stack, host, "/py/get?key=a/b%20c") == {"value": "1"}
    assert kv_stack.http.get(f"{api}/v1/apps/{app}/kv", headers={}).status_code == 401
    spec = kv_stack.http.get(f"{api}/v1/openapi.json").json()
    assert {"/v1/apps/{app}/kv", "/v1/apps/{app}/kv/{key}"} <= set(spec["paths"])


def test_metrics_count_kv_operations_and_errors(kv_stack: Stack, app: str) -> None:
    host = kv_stack.host(app)
    call(kv_stack, host, "/py/get?key=anything")
    call(kv_stack, host, "/py/longkey")

    def figures() -> dict | None:
        out = edge_cli(kv_stack, "metrics", app, "--json").stdout
        rows = {
            r["function"]: r
            for r in json.loads(out)["functions"]
            if r["environment"] == "production"
        }
        py = rows.get("py")
        return rows if py and py["kv_ops"] >= 2 and py["kv_errors"] >= 1 else None

    rows = wait_for(figures, timeout=10, message="kv_ops and kv_errors in `edge metrics`")
    assert isinstance(rows, dict) and rows["js"]["kv_ops"] >= 1


def test_kv_time_counts_against_the_deadline(kv_stack: Stack, app: str) -> None:
    host = kv_stack.host(app)
    for path in ("/spin/py", "/spin/js"):
        response = kv_stack.get(host, path)
        assert response.status_code == 504, (path, response.text)
        assert response.json()["error"] == "timeout"
    spins = call(kv_stack, host, "/py/get?key=spins")["value"]
    assert spins is not None and int(spins) > 1  # it really was doing KV until stopped
    assert int(call(kv_stack, host, "/py/get?key=spins-js")["value"]) > 1
