"""Workers-style JavaScript functions, end to end through a git push and the runtime."""

from __future__ import annotations

import threading
import uuid
from pathlib import Path

import httpx
import pytest
from stack import Stack, Workdir, wait_for

MANIFEST = """
[functions.api]
entry = "src/api.js"
routes = ["/api/items/:id", "POST /api/items"]
env = { STORE = "north" }

[functions.neighbour]
entry = "src/neighbour.mjs"
routes = ["/ok"]

[functions.spin]
entry = "src/spin.js"
routes = ["/spin"]
timeout_ms = 500

[functions.bomb]
entry = "src/bomb.js"
routes = ["/bomb"]
memory_mb = 64
"""
API = """
async function lookup(id) {
  await new Promise((resolve) => setTimeout(resolve, 1));
  return { id, name: `item ${id}` };
}

export default {
  async fetch(request, env, ctx) {
    if (request.method === "POST") {
      const body = await request.json();
      console.log("created", body.name);
      return Response.json({ created: body.name, store: env.STORE }, { status: 201,
        headers: { "x-store": env.STORE } });
    }
    const url = new URL(request.url);
    const item = await lookup(ctx.params.id);
    console.warn("looked up", ctx.params.id);
    return new Response(JSON.stringify({ ...item, q: url.searchParams.get("q"),
      agent: request.headers.get("x-agent") }), {
      status: 200, headers: { "content-type": "application/json", "x-item": item.id } });
  },
};
"""
NEIGHBOUR = "export default { fetch() { return new Response('fine'); } };\n"
SPIN = "export default { fetch() { while (true) {} } };\n"
BOMB = (
    "export default { fetch() { const keep = []; "
    "while (true) { keep.push(new Array(1e6).fill(1.5)); } } };\n"
)


@pytest.fixture(scope="module")
def app(runtime_stack: Stack, tmp_path_factory: pytest.TempPathFactory) -> tuple[str, Workdir]:
    name = "js-" + uuid.uuid4().hex[:8]
    work = Workdir(Path(tmp_path_factory.mktemp("js")) / name)
    work.commit(
        "js app",
        {
            "edge.toml": MANIFEST,
            "src/api.js": API,
            "src/neighbour.mjs": NEIGHBOUR,
            "src/spin.js": SPIN,
            "src/bomb.js": BOMB,
        },
    )
    out = work.push(runtime_stack.remote(name))
    assert "v1 live at" in out.stderr, out.stderr
    return name, work


def test_json_headers_status_params_env_async_and_console(
    runtime_stack: Stack, app: tuple[str, Workdir]
) -> None:
    name, _ = app
    host = runtime_stack.host(name)
    got = runtime_stack.get(host, "/api/items/7?q=shoes", headers={"x-agent": "tests"})
    assert got.status_code == 200
    assert got.headers["x-item"] == "7"
    assert got.json() == {"id": "7", "name": "item 7", "q": "shoes", "agent": "tests"}
    created = runtime_stack.call("POST", host, "/api/items", json={"name": "boots"})
    assert created.status_code == 201
    assert created.headers["x-store"] == "north"
    assert created.json() == {"created": "boots", "store": "north"}
    request_id = created.headers["x-edge-request-id"]

    def logged() -> list[dict]:
        records = runtime_stack.http.get(
            f"http://127.0.0.1:{runtime_stack.config.platform_port}/v1/apps/{name}/logs",
            params={"function": "api"},
            headers={"Authorization": f"Bearer {runtime_stack.token}"},
        ).json()["records"]
        return [r for r in records if r["request_id"] == request_id]

    records = wait_for(logged, timeout=5, message="console.log in the logs")
    assert records[0]["message"] == "created boots"  # type: ignore[index]


@pytest.mark.parametrize(
    ("path", "status", "text"),
    [
        ("/spin", 504, "500 ms"),
        ("/bomb", 502, "memory limit of 64 MB exceeded"),
    ],
)
def test_runaway_isolate_fails_alone(
    runtime_stack: Stack, app: tuple[str, Workdir], path: str, status: int, text: str
) -> None:
    name, _ = app
    host = runtime_stack.host(name)
    failures: list[str] = []
    served = 0
    stop = threading.Event()

    def neighbour_load() -> None:
        nonlocal served
        with httpx.Client(timeout=30) as client:
            while not stop.is_set():
                resp = client.get(f"{runtime_stack.runtime_url}/ok", headers={"Host": host})
                if resp.status_code != 200 or resp.text != "fine":
                    failures.append(f"{resp.status_code} {resp.text[:100]}")
                served += 1

    threads = [threading.Thread(target=neighbour_load) for _ in range(3)]
    for thread in threads:
        thread.start()
    try:
        for _ in range(2):
            resp = runtime_stack.get(host, path)
            assert resp.status_code == status, resp.text
            assert text in resp.text
    finally:
        stop.set()
        for thread in threads:
            thread.join()
    assert failures == []
    assert served > 0
    assert runtime_stack.get(host, "/api/items/1").status_code == 200


def test_js_syntax_error_is_rejected_at_push(
    runtime_stack: Stack, app: tuple[str, Workdir]
) -> None:
    name, work = app
    work.commit("broken js", {"src/neighbour.mjs": "export default { fetch() { return ( } };\n"})
    out = work.push(runtime_stack.remote(name), check=False)
    assert out.returncode != 0
    assert "! [remote rejected] main -> main (src/neighbour.mjs:1: SyntaxError" in out.stderr
    assert runtime_stack.get(runtime_stack.host(name), "/ok").text == "fine"
    work.git("reset", "-q", "--hard", "HEAD~1")
