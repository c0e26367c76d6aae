"""Host calls (Web Crypto, compression) through JsPool and a real V8 host process.

They ride the d() contract (edge/runtime/js/calls.py): these tests cover the
paths the end-to-end apps do not: a call made while the module is evaluated,
errors arriving as DOMExceptions with their names, many requests with calls in
flight at once, and an isolate replaced while a call is out.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
from pathlib import Path

from test_isolate import request, run, started

from edge.runtime.js.client import V8Host

TOP_LEVEL = """\
const key = await crypto.subtle.importKey("raw", new TextEncoder().encode("module key"),
  { name: "HMAC", hash: "SHA-256" }, false, ["sign"]);
const hex = (b) => [...new Uint8Array(b)].map((x) => x.toString(16).padStart(2, "0")).join("");
export default {
  async fetch(request) {
    const body = await request.arrayBuffer();
    return new Response(hex(await crypto.subtle.sign("HMAC", key, body)));
  },
};
"""
ERRORS = """\
export default {
  async fetch() {
    const names = [];
    const attempt = async (p) => { try { await p(); names.push("none"); } catch (e) {
      names.push(`${e.constructor.name}:${e.name}`); } };
    await attempt(() => crypto.subtle.digest("MD5", new Uint8Array(1)));
    const bytes = (n) => new Uint8Array(n);
    await attempt(() => crypto.subtle.importKey("raw", bytes(3), "AES-GCM", false, ["encrypt"]));
    const usages = ["encrypt", "decrypt"];
    const key = await crypto.subtle.generateKey({ name: "AES-GCM", length: 128 }, false, usages);
    await attempt(() => crypto.subtle.decrypt({ name: "AES-GCM", iv: bytes(12) }, key, bytes(40)));
    await attempt(() => crypto.subtle.sign("HMAC", key, new Uint8Array(1)));
    await attempt(() => new Response(new Uint8Array([1, 2, 3])).body
      .pipeThrough(new DecompressionStream("gzip")).getReader().read());
    return Response.json(names);
  },
};
"""
FLOOD = """\
export default {
  async fetch() {
    const data = new Uint8Array(1024);
    const digest = () => crypto.subtle.digest("SHA-256", data);
    const all = await Promise.allSettled(Array.from({ length: 300 }, digest));
    const refused = all.filter((r) => r.status === "rejected");
    const names = [...new Set(refused.map((r) => `${r.reason.name}: ${r.reason.message}`))];
    const after = await crypto.subtle.digest("SHA-256", data);
    return Response.json({ ok: all.length - refused.length, names, after: after.byteLength });
  },
};
"""
STUCK = """\
export default {
  async fetch(request) {
    if (new URL(request.url).pathname === "/spin") {
      const digest = crypto.subtle.digest("SHA-256", new Uint8Array(1 << 20));
      while (true) {}
    }
    return new Response("alive");
  },
};
"""


def test_a_host_call_at_module_evaluation(tmp_path: Path) -> None:
    async def scenario(host: V8Host) -> list[bytes]:
        pool = await started(tmp_path, "top.js", TOP_LEVEL, host)
        bodies = [f"message {n}".encode() for n in range(20)]
        outcomes = await asyncio.gather(
            *(pool.invoke(request(method="POST", body=body)) for body in bodies)
        )
        return [o.body for o in outcomes]

    got = run(scenario)
    want = [
        hmac.new(b"module key", f"message {n}".encode(), hashlib.sha256).hexdigest().encode()
        for n in range(20)
    ]
    assert got == want


def test_failures_are_dom_exceptions_with_their_names(tmp_path: Path) -> None:
    async def scenario(host: V8Host) -> bytes:
        pool = await started(tmp_path, "errors.js", ERRORS, host)
        return (await pool.invoke(request())).body

    assert json.loads(run(scenario)) == [
        "DOMException:NotSupportedError",
        "DOMException:DataError",
        "DOMException:OperationError",
        "DOMException:InvalidAccessError",
        "TypeError:TypeError",
    ]


def test_an_isolate_replaced_with_a_call_out_keeps_serving(tmp_path: Path) -> None:
    async def scenario(host: V8Host) -> tuple[int, bytes]:
        pool = await started(tmp_path, "stuck.js", STUCK, host, timeout_ms=300)
        spun = await pool.invoke(request("/spin"))
        after = await pool.invoke(request())
        return spun.status, after.body

    status, body = run(scenario)
    assert status == 504 and body == b"alive"


def test_too_many_calls_at_once_are_refused_not_queued(tmp_path: Path) -> None:
    async def scenario(host: V8Host) -> bytes:
        pool = await started(tmp_path, "flood.js", FLOOD, host)
        return (await pool.invoke(request())).body

    got = json.loads(run(scenario))
    assert got["ok"] >= 64 and got["after"] == 32
    assert got["names"] == ["OperationError: more than 64 Web Crypto or compression calls at once"]
