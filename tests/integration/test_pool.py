"""Python function pools with real processes: zygote, templates, instances.

The function API as a user sees it (returns, request fields, env, state,
async, logs, errors) and the pool policy (cold/warm, max_instances and the
queue, reaping, LRU eviction, draining). Fault cases live in
``tests/faults/test_python_faults.py``.
"""

from __future__ import annotations

import asyncio
import json
import os
import time
from pathlib import Path

import pytest
import redis.asyncio as redis_async
from function_harness import AS_ROOT, Functions, alive, async_wait_for, invocation

from edge.kvstore import Limits
from edge.redisserver import RedisServer
from edge.runtime.invocation import FunctionVersion, Outcome
from edge.runtime.kv import KVService
from edge.runtime.python.pool import PythonPool
from edge.runtime.registry import PoolRegistry
from edge.uids import function_ids


@pytest.fixture
def functions(tmp_path: Path) -> Functions:
    return Functions(tmp_path)


async def call(pools: PoolRegistry, version: FunctionVersion, **request: object) -> Outcome:
    pool = await pools.get_or_start(version)
    return await pool.invoke(invocation(**request))  # type: ignore[arg-type]


def as_json(outcome: Outcome) -> object:
    assert outcome.status == 200, outcome.body
    return json.loads(outcome.body)


KINDS = """
from edge import Response

def as_dict(request):
    return {"hello": "world"}

def as_list(request):
    return [1, 2, 3]

def as_str(request):
    return "plain text"

def as_bytes(request):
    return b"\\x00\\x01"

def as_response(request):
    return Response({"created": True}, status=201, headers={"x-kind": "response"})

def as_none(request):
    return None
"""


def test_each_kind_of_return_value_becomes_its_response(functions: Functions) -> None:
    expected = {
        "as_dict": (200, "application/json", b'{"hello": "world"}'),
        "as_list": (200, "application/json", b"[1, 2, 3]"),
        "as_str": (200, "text/plain; charset=utf-8", b"plain text"),
        "as_bytes": (200, "application/octet-stream", b"\x00\x01"),
        "as_response": (201, "application/json", b'{"created": true}'),
    }

    async def scenario(pools: PoolRegistry) -> None:
        for handler, (status, ctype, body) in expected.items():
            outcome = await call(pools, functions.version(KINDS, name="kinds", handler=handler))
            assert (outcome.status, outcome.body, outcome.error) == (status, body, None)
            assert ("content-type", ctype) in outcome.headers
        made = await call(pools, functions.version(KINDS, name="kinds", handler="as_response"))
        assert ("x-kind", "response") in made.headers
        empty = await call(pools, functions.version(KINDS, name="kinds", handler="as_none"))
        assert (empty.status, empty.body) == (204, b"")

    functions.run(scenario)


ECHO = """
import os

def handle(request):
    return {
        "method": request.method, "url": request.url, "path": request.path,
        "query": request.query, "tags": request.query_all("tag"),
        "agent": request.headers["USER-AGENT"], "params": request.params,
        "json": request.json(), "env": dict(request.env), "environ": dict(os.environ),
        "request_id": request.request_id, "cwd": os.getcwd(),
    }
"""


def test_the_function_receives_the_request_and_its_env(functions: Functions) -> None:
    version = functions.version(ECHO, env={"TABLE": "users"})

    async def scenario(pools: PoolRegistry) -> None:
        pool = await pools.get_or_start(version)
        request = invocation(
            "/api/users/42",
            method="POST",
            query="tag=a&tag=b&page=2",
            headers=[("user-agent", "pytest")],
            body=b'{"x": 1}',
            params={"id": "42"},
        )
        got = as_json(await pool.invoke(request))
        assert got == {
            "method": "POST",
            "url": request.url,
            "path": "/api/users/42",
            "query": {"tag": "b", "page": "2"},
            "tags": ["a", "b"],
            "agent": "pytest",
            "params": {"id": "42"},
            "json": {"x": 1},
            "env": {"TABLE": "users"},
            "environ": {"TABLE": "users"},
            "request_id": request.request_id,
            "cwd": str(version.root),
        }

    functions.run(scenario)


SNOOP = """
import os

def handle(request):
    try:
        own = open("/proc/self/environ", "rb").read().decode()
    except OSError as exc:
        own = type(exc).__name__
    return {"pid": os.getpid(), "environ": dict(os.environ), "own": own, "uid": os.getuid()}
"""


def test_platform_secrets_are_invisible_to_functions(
    functions: Functions, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("EDGE_DATABASE_URL", "postgresql://platform:s3cret@db/edge")
    monkeypatch.setenv("EDGE_TOKEN", "tok-s3cret")
    version = functions.version(SNOOP, app="snoop")

    async def scenario(pools: PoolRegistry) -> None:
        got = as_json(await call(pools, version))
        assert got["environ"] == {"GREETING": "hi"}
        assert "s3cret" not in got["own"]
        # What any process of the same uid could read from outside: the
        # exec-time environment of the zygote, scrubbed.
        environ = Path(f"/proc/{got['pid']}/environ").read_bytes()
        assert environ and b"s3cret" not in environ and b"EDGE_" not in environ
        if AS_ROOT:
            assert got["uid"] == function_ids("snoop")[0]

    functions.run(scenario)


COUNTER = """
import os
count = 0

def handle(request):
    global count
    count += 1
    return {"count": count, "pid": os.getpid()}
"""


def test_first_call_is_cold_then_module_state_persists_warm(functions: Functions) -> None:
    version = functions.version(COUNTER)

    async def scenario(pools: PoolRegistry) -> None:
        pool = await pools.get_or_start(version)
        outcomes = [await pool.invoke(invocation()) for _ in range(3)]
        answers = [as_json(o) for o in outcomes]
        assert [a["count"] for a in answers] == [1, 2, 3]  # type: ignore[index]
        assert len({a["pid"] for a in answers}) == 1  # type: ignore[index]
        assert [o.cold for o in outcomes] == [True, False, False]
        assert outcomes[0].cold_ms > 0 and outcomes[1].cold_ms == 0
        assert all(o.duration_ms > 0 and o.memory_peak_kb > 0 for o in outcomes)
        assert isinstance(pool, PythonPool) and pool.instance_pids() == [answers[0]["pid"]]  # type: ignore[index]

    functions.run(scenario)


ASYNC = """
import asyncio
calls = 0

async def handle(request):
    global calls
    calls += 1
    await asyncio.sleep(0.01)
    loop = id(asyncio.get_running_loop())
    return {"calls": calls, "loop": loop}
"""


def test_async_handlers_run_on_one_event_loop_per_instance(functions: Functions) -> None:
    version = functions.version(ASYNC)

    async def scenario(pools: PoolRegistry) -> None:
        first = as_json(await call(pools, version))
        second = as_json(await call(pools, version))
        assert (first["calls"], second["calls"]) == (1, 2)  # type: ignore[index]
        assert first["loop"] == second["loop"]  # type: ignore[index]

    functions.run(scenario)


LOGS = """
import logging, sys
log = logging.getLogger("users")

def handle(request):
    print("to stdout", request.query.get("n"))
    print("to stderr", file=sys.stderr)
    sys.stdout.write("no newline")
    log.info("info line")
    log.warning("careful")
    log.debug("hidden by default")
    return "ok"
"""


def test_stdout_stderr_and_logging_are_captured_per_call(functions: Functions) -> None:
    version = functions.version(LOGS)

    async def scenario(pools: PoolRegistry) -> None:
        for n in ("1", "2"):
            outcome = await call(pools, version, query=f"n={n}")
            lines = [(r.level, r.message) for r in outcome.logs]
            assert lines == [
                ("info", f"to stdout {n}"),
                ("error", "to stderr"),
                ("info", "info line"),
                ("warning", "careful"),
                ("info", "no newline"),
            ]
            assert all(r.ts > 1e9 for r in outcome.logs)

    functions.run(scenario)


BOOM = """
def handle(request):
    print("about to fail")
    return 1 / 0
"""


def test_an_uncaught_exception_is_a_generic_500_with_the_traceback_in_logs(
    functions: Functions,
) -> None:
    version = functions.version(BOOM, name="boom")

    async def scenario(pools: PoolRegistry) -> None:
        pool = await pools.get_or_start(version)
        request = invocation()
        outcome = await pool.invoke(request)
        assert outcome.status == 500 and outcome.error == "exception"
        assert json.loads(outcome.body) == {
            "error": "exception",
            "message": "function boom raised an uncaught exception (the traceback is in its logs)",
            "request_id": request.request_id,
        }
        assert b"ZeroDivision" not in outcome.body
        assert outcome.logs[0].message == "about to fail"
        trace = outcome.logs[-1]
        assert trace.level == "error" and "ZeroDivisionError" in trace.message
        assert "boom.py" in trace.message and "return 1 / 0" in trace.message
        again = await pool.invoke(invocation())  # the instance survives its exception
        assert again.status == 500 and not again.cold

    functions.run(scenario)


def test_works_on_uvloop(functions: Functions) -> None:
    version = functions.version(COUNTER)

    async def scenario(pools: PoolRegistry) -> list[int]:
        return [as_json(await call(pools, version))["count"] for _ in range(3)]  # type: ignore[index]

    assert functions.run(scenario, uvloop=True) == [1, 2, 3]


SLOW = """
import os, time

def handle(request):
    time.sleep(float(request.query.get("s", "0.3")))
    return {"pid": os.getpid()}
"""


def test_max_instances_then_a_bounded_queue_then_503(functions: Functions) -> None:
    version = functions.version(SLOW, max_instances=2)

    async def scenario(pools: PoolRegistry) -> None:
        pool = await pools.get_or_start(version)
        # 2 run, 4 (2 x max_instances) queue, the 7th and 8th are refused at once.
        outcomes = await asyncio.gather(*(pool.invoke(invocation(query="s=0.3")) for _ in range(8)))
        statuses = sorted(o.status for o in outcomes)
        assert statuses == [200] * 6 + [503] * 2
        refused = next(o for o in outcomes if o.status == 503)
        assert refused.error == "overloaded" and ("retry-after", "1") in refused.headers
        assert len({json.loads(o.body)["pid"] for o in outcomes if o.status == 200}) == 2
        assert isinstance(pool, PythonPool) and len(pool.instance_pids()) == 2

    functions.run(scenario)


def test_a_queued_request_waits_at_most_the_timeout_then_gets_503(functions: Functions) -> None:
    version = functions.version(SLOW, max_instances=1, timeout_ms=1000)

    async def timed(pool: PythonPool) -> tuple[Outcome, float]:
        started = time.monotonic()
        outcome = await pool.invoke(invocation(query="s=0.8"))
        return outcome, time.monotonic() - started

    async def scenario(pools: PoolRegistry) -> None:
        pool = await pools.get_or_start(version)
        assert isinstance(pool, PythonPool)
        # A runs 0-0.8 s; B waits, then runs 0.8-1.6 s; C is still waiting at 1 s.
        (a, _), (b, b_took), (c, c_took) = await asyncio.gather(
            timed(pool), timed(pool), timed(pool)
        )
        assert (a.status, b.status) == (200, 200) and 1.5 < b_took < 2.5
        assert c.status == 503 and c.error == "overloaded" and 1.0 <= c_took < 1.5

    functions.run(scenario)


def test_reap_idle_stops_idle_instances_but_keeps_min_warm(functions: Functions) -> None:
    version = functions.version(SLOW, min_warm=1, max_instances=3)

    async def scenario(pools: PoolRegistry) -> None:
        pool = await pools.get_or_start(version)
        assert isinstance(pool, PythonPool)
        assert len(pool.instance_pids()) == 1  # pre-warmed at start
        await asyncio.gather(*(pool.invoke(invocation(query="s=0.2")) for _ in range(3)))
        pids = pool.instance_pids()
        assert len(pids) == 3
        assert pool.reap_idle(time.monotonic(), ttl=60) == 0  # nobody idle that long
        assert pool.reap_idle(time.monotonic() + 120, ttl=60) == 2
        assert len(pool.instance_pids()) == 1
        await async_wait_for(
            lambda: sum(alive(p) for p in pids) == 1, message="two reaped instances to exit"
        )
        assert (await pool.invoke(invocation(query="s=0"))).cold is False

    functions.run(scenario)


def test_pools_reap_uses_the_idle_ttl(functions: Functions) -> None:
    version = functions.version(COUNTER)

    async def scenario(pools: PoolRegistry) -> None:
        first = as_json(await call(pools, version))
        assert await pools.reap(time.monotonic()) == 0
        assert await pools.reap(time.monotonic() + 2) == 1
        second = await call(pools, version)
        assert second.cold and as_json(second)["count"] == 1  # type: ignore[index]
        await async_wait_for(
            lambda: not alive(first["pid"]),  # type: ignore[index]
            message="the reaped instance to exit",
        )

    functions.run(scenario, idle_ttl=1.0)


def test_least_recently_used_pool_is_evicted_past_max_pools(functions: Functions) -> None:
    versions = [functions.version(COUNTER, name=f"f{i}") for i in range(3)]

    async def scenario(pools: PoolRegistry) -> None:
        started = [await pools.get_or_start(v) for v in versions[:2]]
        for pool in reversed(started):  # f1 then f0: f1 is now the least recently used
            await pool.invoke(invocation())
        template = started[1].template_pid  # type: ignore[attr-defined]
        await pools.get_or_start(versions[2])
        assert set(pools.keys()) == {versions[0].key, versions[2].key}
        assert pools.get(versions[1].key) is None
        await async_wait_for(lambda: not alive(template), message="the evicted template to exit")
        again = await call(pools, versions[1])  # evicted pools start again on demand
        assert again.cold

    functions.run(scenario, max_pools=2)


def test_get_or_start_is_single_flight(functions: Functions) -> None:
    version = functions.version(COUNTER)

    async def scenario(pools: PoolRegistry) -> None:
        started = await asyncio.gather(*(pools.get_or_start(version) for _ in range(5)))
        assert all(pool is started[0] for pool in started)
        assert pools.keys() == [version.key]

    functions.run(scenario)


def test_retire_drains_in_flight_requests_then_kills_everything(functions: Functions) -> None:
    version = functions.version(SLOW, min_warm=1)

    async def scenario(pools: PoolRegistry) -> None:
        pool = await pools.get_or_start(version)
        assert isinstance(pool, PythonPool)
        template, instance = pool.template_pid, pool.instance_pids()[0]
        in_flight = asyncio.ensure_future(pool.invoke(invocation(query="s=0.3")))
        await async_wait_for(lambda: pool.instance_pids() and not pool._slots.idle)
        await pools.retire(version.key)
        assert (await in_flight).status == 200
        assert pools.get(version.key) is None
        late = await pool.invoke(invocation())
        assert late.status == 503 and late.error == "unavailable"
        await async_wait_for(
            lambda: not alive(template) and not alive(instance),
            message="the retired pool's processes to exit",
        )

    functions.run(scenario)


BIG = """
chunks = []

def handle(request):
    chunks.append(bytearray(20 * 1024 * 1024))
    return "ok"
"""


def test_memory_peak_is_measured_from_outside(functions: Functions) -> None:
    version = functions.version(BIG)

    async def scenario(pools: PoolRegistry) -> None:
        first = await call(pools, version)
        assert first.status == 200 and first.memory_peak_kb > 20 * 1024

    functions.run(scenario)


def test_pre_warmed_instances_answer_warm(functions: Functions) -> None:
    version = functions.version(COUNTER, min_warm=2)

    async def scenario(pools: PoolRegistry) -> None:
        pool = await pools.get_or_start(version)
        assert isinstance(pool, PythonPool) and len(pool.instance_pids()) == 2
        outcome = await pool.invoke(invocation())
        assert outcome.status == 200 and not outcome.cold

    functions.run(scenario)


def test_zygote_is_exec_time_scrubbed(
    functions: Functions, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("EDGE_REDIS_URL", "redis://:s3cret@localhost")

    async def scenario(pools: PoolRegistry) -> None:
        pid = pools.zygote.pid
        assert pid is not None
        env = dict(
            line.split(b"=", 1)
            for line in Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
            if line
        )
        assert set(env) <= {
            b"PATH",
            b"LANG",
            b"LC_ALL",
            b"LC_CTYPE",
            b"TZ",
            b"PYTHONPATH",
            b"PYTHONHOME",
        }
        # Only its control socket and its SIGCHLD wakeup pipe: no fd of the worker.
        kinds = sorted(
            os.readlink(f"/proc/{pid}/fd/{fd}").split(":")[0]
            for fd in os.listdir(f"/proc/{pid}/fd")
            if int(fd) > 2
        )
        assert kinds == ["pipe", "pipe", "socket"]

    functions.run(scenario)


KV_COUNTER = """
from edge import kv

def handle(request):
    return {"n": kv.incr("hits")}
"""


def test_every_instance_may_have_a_kv_operation_under_way(
    functions: Functions, redis_server: RedisServer
) -> None:
    """The KV flood limit counts one instance's operations, not its pool's: six
    instances each waiting for an answer are not "too many at once"."""
    version = functions.version(KV_COUNTER, max_instances=8)
    client = redis_async.Redis.from_url(redis_server.url)

    async def scenario(pools: PoolRegistry) -> None:
        pool = await pools.get_or_start(version)

        async def caller() -> list[int]:
            outcomes = [await pool.invoke(invocation()) for _ in range(20)]
            assert all(o.status == 200 for o in outcomes), [o.logs for o in outcomes][:1]
            return [json.loads(o.body)["n"] for o in outcomes]

        try:
            counts = await asyncio.gather(*(caller() for _ in range(6)))
        finally:
            await client.aclose()
        assert sorted(n for ns in counts for n in ns) == list(range(1, 121))

    functions.run(scenario, kv=KVService(client, Limits()))
