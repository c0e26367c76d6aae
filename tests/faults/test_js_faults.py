"""JavaScript faults: time and memory limits, runaway continuations, a killed host.

Each scenario runs a misbehaving function next to a well-behaved neighbour in
the same V8 host, concurrently, and checks that the neighbour keeps serving.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest

from edge.runtime.invocation import FunctionVersion, Invocation, Outcome
from edge.runtime.js.client import V8Host
from edge.runtime.js.pool import JsPool

BAD = """\
export default {
  async fetch(request) {
    const path = new URL(request.url).pathname;
    if (path === "/loop") { while (true) {} }
    const keep = [];
    if (path === "/bomb") { while (true) keep.push(new Array(100000).fill(keep.length)); }
    if (path === "/later-loop") { await null; while (true) {} }
    if (path === "/later-bomb") { await null; while (true) keep.push(new Array(100000).fill(1)); }
    if (path === "/buffers") { while (true) keep.push(new Uint8Array(32 << 20)); }
    if (path === "/small-buffers") { while (true) keep.push(new ArrayBuffer(64 << 10)); }
    if (path === "/huge-buffer") { keep.push(new ArrayBuffer(4 * 1024 ** 3)); }
    if (path === "/hang") { await new Promise(() => {}); }
    if (path === "/slow") { await new Promise((r) => setTimeout(r, 5000)); }
    return new Response("fine");
  },
};
"""
NEIGHBOUR = 'export default { async fetch() { return new Response("neighbour") } };\n'
# A neighbour that needs memory on every request: ArrayBuffers and heap.
HUNGRY_NEIGHBOUR = """\
const kept = [];
export default {
  async fetch() {
    kept.push(new Uint8Array(1 << 20).fill(kept.length));
    if (kept.length > 16) kept.splice(0, 8);
    const objects = Array.from({ length: 20000 }, (_, i) => ({ i }));
    return new Response(objects.length ? "neighbour" : "");
  },
};
"""


def version(root: Path, name: str, source: str, **overrides: Any) -> FunctionVersion:
    (root / f"{name}.js").write_text(source)
    fields: dict[str, Any] = {
        "key": name,
        "app": "shop",
        "environment": "production",
        "release": 1,
        "name": name,
        "runtime": "js",
        "root": root,
        "path": f"{name}.js",
        "handler": "",
        "env": {},
        "memory_mb": 64,
        "timeout_ms": 2000,
    }
    fields.update(overrides)
    return FunctionVersion(**fields)


def request(path: str) -> Invocation:
    return Invocation(
        method="GET",
        url=f"http://shop.edge.localhost{path}",
        path=path,
        query_string="",
        headers=[],
        body=b"",
        params={},
        request_id="r",
    )


def run(
    root: Path,
    scenario: Callable[[JsPool, JsPool, V8Host], Awaitable[Any]],
    neighbour_source: str = NEIGHBOUR,
) -> Any:
    async def main() -> Any:
        host = V8Host()
        bad = JsPool(version(root, "bad", BAD), host)
        neighbour = JsPool(version(root, "neighbour", neighbour_source), host)
        try:
            await bad.start()
            await neighbour.start()
            return await scenario(bad, neighbour, host)
        finally:
            await host.close()

    return asyncio.run(main())


async def while_serving(neighbour: JsPool, fault: Awaitable[Outcome]) -> tuple[Outcome, int]:
    """Run ``fault`` while the neighbour is called back to back; both must finish."""
    task = asyncio.ensure_future(fault)
    served = 0
    while not task.done():
        outcome = await neighbour.invoke(request("/"))
        assert (outcome.status, outcome.body) == (200, b"neighbour"), outcome
        served += 1
    return task.result(), served


def assert_killed(outcome: Outcome, status: int, error: str, text: str) -> None:
    assert (outcome.status, outcome.error) == (status, error), outcome
    assert text in outcome.body.decode(), outcome.body
    assert any(text in log.message for log in outcome.logs)


def test_infinite_loop_is_504_and_the_neighbour_keeps_serving(tmp_path: Path) -> None:
    async def scenario(bad: JsPool, neighbour: JsPool, host: V8Host) -> Any:
        began = time.monotonic()
        outcome, served = await while_serving(neighbour, bad.invoke(request("/loop")))
        elapsed = time.monotonic() - began
        return outcome, served, elapsed, await bad.invoke(request("/"))

    outcome, served, elapsed, after = run(tmp_path, scenario)
    assert_killed(outcome, 504, "timeout", "timed out after 2000 ms")
    assert "function bad " in outcome.body.decode(), "the body names the function"
    assert 1.9 < elapsed < 10
    assert served > 10, "the neighbour was served while the loop ran"
    assert (after.status, after.body) == (200, b"fine"), "the isolate still serves"


def test_memory_bomb_is_502_and_the_neighbour_keeps_serving(tmp_path: Path) -> None:
    async def scenario(bad: JsPool, neighbour: JsPool, host: V8Host) -> Any:
        outcome, served = await while_serving(neighbour, bad.invoke(request("/bomb")))
        return outcome, served, await bad.invoke(request("/"))

    outcome, served, after = run(tmp_path, scenario)
    assert_killed(outcome, 502, "memory", "memory limit of 64 MB exceeded")
    assert outcome.memory_peak_kb >= 64 * 1024
    assert served >= 1
    assert (after.status, after.body) == (200, b"fine"), "a fresh isolate replaced it"


def test_array_buffer_bomb_is_502_and_the_host_stays_small(tmp_path: Path) -> None:
    """ArrayBuffers live outside V8's heap limit; the isolate's own ArrayBuffer limit stops them."""

    async def scenario(bad: JsPool, neighbour: JsPool, host: V8Host) -> Any:
        outcome, served = await while_serving(neighbour, bad.invoke(request("/buffers")))
        status = Path(f"/proc/{host.pid}/status").read_text()
        vm_data_kb = int(next(x for x in status.splitlines() if x.startswith("VmData:")).split()[1])
        return outcome, served, vm_data_kb, await bad.invoke(request("/")), host.restarts

    outcome, served, vm_data_kb, after, restarts = run(tmp_path, scenario)
    assert_killed(outcome, 502, "memory", "memory limit of 64 MB exceeded")
    assert served >= 1
    assert restarts == 0, "the host survived the bomb"
    assert vm_data_kb < 2 * 1024 * 1024, "the bomb was stopped well before 2 GiB"
    assert (after.status, after.body) == (200, b"fine")


def test_array_buffer_bombs_only_ever_take_down_themselves(tmp_path: Path) -> None:
    """Bomb after bomb, of large, small and one huge buffer, beside a neighbour
    that itself needs ArrayBuffers and heap on every request: each bomb is the
    bomb's own memory fault, and the neighbour is served throughout by the same host."""

    async def scenario(bad: JsPool, neighbour: JsPool, host: V8Host) -> Any:
        pid, outcomes, served = host.pid, [], 0
        for path in ["/buffers", "/small-buffers", "/huge-buffer"] * 3:
            outcome, count = await while_serving(neighbour, bad.invoke(request(path)))
            outcomes.append(outcome)
            served += count
        last = await neighbour.invoke(request("/"))
        return outcomes, served, last, await bad.invoke(request("/")), (pid, host.pid)

    outcomes, served, last, after, (pid, pid_after) = run(tmp_path, scenario, HUNGRY_NEIGHBOUR)
    for outcome in outcomes:
        assert_killed(outcome, 502, "memory", "memory limit of 64 MB exceeded")
    # The one allocation larger than the host's whole budget fails in V8 (the backstop).
    assert all("Array buffer allocation failed" in o.logs[0].message for o in outcomes[2::3])
    assert served >= 3
    assert (last.status, last.body) == (200, b"neighbour")
    assert pid is not None and pid_after == pid, "the V8 host was never restarted"
    assert (after.status, after.body) == (200, b"fine")


# Every route to shared memory, each tried by the function and reported as
# [route, error name, message], or [route, "ok", value] where it went through.
SHARED_MEMORY = r"""
const bin = (text) => Uint8Array.from(text, (c) => c.charCodeAt(0));
const HEADER = "\0asm\x01\0\0\0";
// One memory, flags 3 (shared, with a maximum), minimum 1, maximum 1.
const DECLARES = bin(HEADER + "\x05\x04\x01\x03\x01\x01");
// A type () -> (), then imports m.f (a function) and m.m (a shared memory).
const IMPORTS = bin(HEADER + "\x01\x04\x01\x60\x00\x00"
  + "\x02\x0f\x02\x01m\x01f\x00\x00\x01m\x01m\x02\x03\x01\x01");
// One unshared memory of one page, exported as "mem".
const PLAIN = bin(HEADER + "\x05\x03\x01\x00\x01" + "\x07\x07\x01\x03mem\x02\x00");
const SHARED = { initial: 1, maximum: 1, shared: true };
const ROUTES = {
  global: () => new SharedArrayBuffer(8),
  memory: () => new WebAssembly.Memory(SHARED),
  constructorTrick: () => new (new WebAssembly.Memory(SHARED).buffer.constructor)(8),
  prototypeTrick: () => new WebAssembly.Memory.prototype.constructor(SHARED),
  declaring: () => new WebAssembly.Module(DECLARES),
  linking: () => new WebAssembly.Module(IMPORTS),
  compile: () => WebAssembly.compile(DECLARES),
  instantiate: () => WebAssembly.instantiate(IMPORTS),
  validate: () => [DECLARES, IMPORTS, PLAIN].map((bytes) => WebAssembly.validate(bytes)),
  plain: async () => {
    const { instance } = await WebAssembly.instantiate(PLAIN);
    const memory = instance.exports.mem;
    return [memory instanceof WebAssembly.Memory, memory.buffer.byteLength,
      new WebAssembly.Memory({ initial: 2 }).buffer.byteLength];
  },
};
export default {
  async fetch() {
    const results = [];
    for (const [route, attempt] of Object.entries(ROUTES)) {
      try { results.push([route, "ok", await attempt()]); }
      catch (e) { results.push([route, e.name, e.message]); }
    }
    await new Promise((resolve) => setTimeout(resolve, 1));  // timers still run
    return Response.json(results);
  },
};
"""
REFUSED = "shared memory is not available to Edge functions: they run single-threaded"


def test_shared_memory_is_refused_by_every_route(tmp_path: Path) -> None:
    """V8 counts shared memory as no isolate's, so no memory limit would hold it."""

    async def main() -> Outcome:
        host = V8Host()
        pool = JsPool(version(tmp_path, "shared", SHARED_MEMORY), host)
        try:
            await pool.start()
            return await pool.invoke(request("/"))
        finally:
            await host.close()

    outcome = asyncio.run(main())
    assert outcome.status == 200, outcome
    results = {route: (kind, value) for route, kind, value in json.loads(outcome.body)}
    assert results["global"] == ("ReferenceError", "SharedArrayBuffer is not defined")
    for route in ("memory", "constructorTrick", "prototypeTrick"):
        assert results[route] == ("TypeError", REFUSED), route
    for route in ("declaring", "linking", "compile", "instantiate"):
        assert results[route] == ("CompileError", REFUSED), route
    assert results["validate"] == ("ok", [False, False, True])
    assert results["plain"] == ("ok", [True, 65536, 131072]), "unshared memory still works"


def test_runaway_promise_continuations_are_stopped(tmp_path: Path) -> None:
    async def scenario(bad: JsPool, neighbour: JsPool, host: V8Host) -> Any:
        outcomes = []
        for path in ("/later-loop", "/later-bomb", "/hang"):
            outcome, _ = await while_serving(neighbour, bad.invoke(request(path)))
            outcomes.append(outcome)
            outcomes.append(await bad.invoke(request("/")))
        return outcomes

    loop, after_loop, bomb, after_bomb, hang, after_hang = run(tmp_path, scenario)
    assert_killed(loop, 504, "timeout", "timed out after 2000 ms")
    assert_killed(bomb, 502, "memory", "memory limit of 64 MB exceeded")
    assert_killed(hang, 504, "timeout", "timed out after 2000 ms")
    for after in (after_loop, after_bomb, after_hang):
        assert (after.status, after.body) == (200, b"fine")


def test_requests_queued_behind_a_loop_are_served_after_it(tmp_path: Path) -> None:
    async def scenario(bad: JsPool, neighbour: JsPool, host: V8Host) -> list[Outcome]:
        looping = asyncio.ensure_future(bad.invoke(request("/loop")))
        await asyncio.sleep(0.3)  # the loop runs; these queue with later deadlines
        queued = [bad.invoke(request("/")) for _ in range(5)]
        return await asyncio.gather(looping, *queued)

    looping, *queued = run(tmp_path, scenario)
    assert looping.status == 504
    assert [(o.status, o.body) for o in queued] == [(200, b"fine")] * 5


def test_loop_inside_a_busy_batch_is_stopped(tmp_path: Path) -> None:
    """A runaway among concurrent requests (one V8 batch, collected in a pipeline)."""

    async def scenario(bad: JsPool, neighbour: JsPool, host: V8Host) -> Any:
        warm = await asyncio.gather(*(bad.invoke(request("/")) for _ in range(10)))
        mixed = await asyncio.gather(
            bad.invoke(request("/loop")), *(bad.invoke(request("/")) for _ in range(10))
        )
        return warm, mixed, await bad.invoke(request("/"))

    warm, (looping, *others), after = run(tmp_path, scenario)
    assert {o.status for o in warm} == {200}
    assert looping.status == 504
    # Those queued behind the loop in its batch share its deadline: served or 504, never lost.
    assert {o.status for o in others} <= {200, 504}
    assert (after.status, after.body) == (200, b"fine")


@pytest.mark.parametrize("how", ["awaited", "callback"])
def test_killed_host_fails_in_flight_requests_and_restarts(tmp_path: Path, how: str) -> None:
    """Whether the request is awaited (JsPool.invoke) or answered to a callback
    (JsPool.submit, the direct path's way for a loaded isolate)."""

    async def scenario(bad: JsPool, neighbour: JsPool, host: V8Host) -> Any:
        first_pid = host.pid
        assert first_pid is not None
        if how == "awaited":
            in_flight = asyncio.ensure_future(bad.invoke(request("/slow")))
        else:
            in_flight = asyncio.get_running_loop().create_future()
            assert bad.submit(request("/slow"), in_flight.set_result)
        await asyncio.sleep(0.1)
        os.kill(first_pid, signal.SIGKILL)
        failed = await asyncio.wait_for(in_flight, 10)
        deadline = time.monotonic() + 10
        while host.pid is not None:  # the worker notices the host is gone
            assert time.monotonic() < deadline, "the worker never noticed the dead host"
            await asyncio.sleep(0.01)
        again = await neighbour.invoke(request("/"))
        return failed, again, host.pid, first_pid, host.restarts

    failed, again, pid, first_pid, restarts = run(tmp_path, scenario)
    assert (failed.status, failed.error) == (502, "crash")
    assert (again.status, again.body) == (200, b"neighbour")
    assert again.cold and again.cold_ms > 0, "the isolate was recreated in the new host"
    assert pid is not None and pid != first_pid and restarts == 1


def test_a_reply_callback_that_raises_stops_no_other_reply(tmp_path: Path) -> None:
    """A callback of JsPool.submit runs as the host's frames are read: what it
    raises is logged, and the replies read after it still reach theirs."""

    def fails(_: Outcome) -> None:
        raise RuntimeError("a callback failed")

    async def scenario(bad: JsPool, neighbour: JsPool, host: V8Host) -> Any:
        answered = asyncio.get_running_loop().create_future()
        assert neighbour.submit(request("/"), fails)
        assert neighbour.submit(request("/"), answered.set_result)
        outcome = await asyncio.wait_for(answered, 10)
        return outcome, await neighbour.invoke(request("/"))

    outcome, again = run(tmp_path, scenario)
    assert (outcome.status, outcome.body) == (200, b"neighbour")
    assert (again.status, again.body) == (200, b"neighbour")
