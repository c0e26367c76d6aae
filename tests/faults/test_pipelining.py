"""Pipelining into busy Python instances, with real processes.

When every instance is busy and none may start, a request is queued in a busy
instance's socket. It runs after the request ahead (one at a time), its time
limit starts with it, and if its instance dies before starting it, it runs
once on another instance: never lost, never run twice. Every run is counted
in a file the function appends to, so "once" is checked from outside.
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import signal
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis.asyncio as redis_async
from function_harness import Functions, async_wait_for, invocation

from edge.kvstore import Limits
from edge.redisserver import RedisServer
from edge.runtime.invocation import FunctionVersion, Outcome
from edge.runtime.kv import KVService
from edge.runtime.python.pool import PythonPool
from edge.runtime.registry import PoolRegistry

COUNTED = """
import os, time
from edge import kv

def handle(request):
    name = request.query["name"]
    with open(os.path.join(request.env["RUNS"], name), "a") as runs:
        runs.write(f"{os.getpid()}\\n")
    do = request.query.get("do")
    if do == "sleep":
        time.sleep(float(request.query["s"]))
    elif do == "spin":
        while True:
            pass
    elif do == "exit":
        os._exit(1)
    elif do == "bomb":
        time.sleep(float(request.query["s"]))
        hoard = [bytearray(1024 * 1024) for _ in range(1024)]
    elif do == "kv":
        for i in range(20):
            kv.incr(name)
            time.sleep(0.005)
        return {"pid": os.getpid(), "name": name, "count": kv.get_json(name)}
    elif do == "stream":
        time.sleep(float(request.query.get("s", "0")))
        return (b"x" * 65536 for _ in range(16))  # 1 MiB: four windows, so it waits for credit
    return {"pid": os.getpid(), "name": name}
"""


@pytest.fixture
def functions(tmp_path: Path) -> Functions:
    return Functions(tmp_path)


@pytest.fixture
def runs() -> Iterator[Path]:
    """A folder every function uid may write its run records into."""
    folder = Path(tempfile.mkdtemp(prefix="edge-runs-", dir="/tmp"))
    folder.chmod(0o777)
    yield folder
    shutil.rmtree(folder, ignore_errors=True)


def counted(functions: Functions, runs: Path, **overrides: object) -> FunctionVersion:
    return functions.version(COUNTED, env={"RUNS": str(runs)}, **overrides)


def ran(runs: Path, name: str) -> list[int]:
    """The pids that ran request ``name``, one per run."""
    path = runs / name
    return [int(line) for line in path.read_text().split()] if path.exists() else []


def body(outcome: Outcome) -> dict:
    assert outcome.status == 200, outcome.body
    return dict(json.loads(outcome.body))


async def python_pool(pools: PoolRegistry, version: FunctionVersion) -> PythonPool:
    pool = await pools.get_or_start(version)
    assert isinstance(pool, PythonPool)
    return pool


# The two ways in: the awaited one (PythonPool.invoke, in a task) and the one with
# no task (PythonPool.submit, which the direct path tries first). Tests of a
# request's fate run both; a "submitted" request must be taken by submit.
WAYS = pytest.mark.parametrize("way", ["awaited", "submitted"])


def started(pool: PythonPool, query: str, way: str = "awaited") -> asyncio.Future[Outcome]:
    if way == "awaited":
        return asyncio.ensure_future(pool.invoke(invocation(query=query)))
    answered: asyncio.Future[Outcome] = asyncio.get_running_loop().create_future()
    assert pool.submit(invocation(query=query), answered.set_result), f"{query}: not submitted"
    return answered


def test_concurrent_requests_are_pipelined_and_each_gets_its_own_answer(
    functions: Functions, runs: Path
) -> None:
    version = counted(functions, runs, min_warm=2, max_instances=2)

    async def scenario(pools: PoolRegistry) -> None:
        pool = await python_pool(pools, version)
        for batch in range(5):
            names = [f"b{batch}r{i}" for i in range(4)]
            outcomes = await asyncio.gather(
                *(pool.invoke(invocation(query=f"name={n}&do=sleep&s=0.05")) for n in names)
            )
            assert [body(o)["name"] for o in outcomes] == names  # no reply went astray
            for name, outcome in zip(names, outcomes, strict=True):
                assert ran(runs, name) == [body(outcome)["pid"]]
        # 2 run at once and 2 wait in the instances' sockets, in every batch.
        assert pool.pipelined == 10 and pool.retried == 0
        assert len(pool.instance_pids()) == 2

    functions.run(scenario)


@WAYS
def test_a_pipelined_requests_time_limit_starts_when_it_starts(
    functions: Functions, runs: Path, way: str
) -> None:
    version = counted(functions, runs, min_warm=1, max_instances=1, timeout_ms=1000)

    async def scenario(pools: PoolRegistry) -> None:
        pool = await python_pool(pools, version)
        ahead = started(pool, "name=a&do=sleep&s=0.7", way)
        await async_wait_for(lambda: ran(runs, "a"), message="the first request to start")
        behind = started(pool, "name=b&do=sleep&s=0.7", way)
        # b waits ~0.7 s in the socket, then runs 0.7 s: 1.4 s after it was queued.
        first, second = await asyncio.gather(ahead, behind)
        assert body(first)["pid"] == body(second)["pid"]
        assert pool.pipelined == 1

    functions.run(scenario)


@WAYS
@pytest.mark.parametrize("fault", ["timeout", "killed", "memory"])
def test_a_pipelined_request_whose_instance_dies_first_runs_once_elsewhere(
    functions: Functions, runs: Path, fault: str, way: str
) -> None:
    version = counted(functions, runs, min_warm=2, max_instances=2, timeout_ms=1000)
    doomed_query = {"timeout": "do=spin", "killed": "do=sleep&s=5", "memory": "do=bomb&s=0.3"}

    async def scenario(pools: PoolRegistry) -> None:
        pool = await python_pool(pools, version)
        # The doomed request starts first, so the queued one goes behind it.
        doomed = started(pool, f"name=doomed&{doomed_query[fault]}", way)
        await async_wait_for(lambda: ran(runs, "doomed"), message="the doomed request to start")
        # Long enough to still be running when `queued` comes on a loaded machine
        # (if it were done, `queued` would find an idle instance), short of the timeout.
        other = started(pool, "name=other&do=sleep&s=0.6", way)
        await async_wait_for(lambda: ran(runs, "other"), message="the other request to start")
        queued = started(pool, "name=queued", way)
        await async_wait_for(lambda: pool.pipelined == 1, message="the request to be pipelined")
        (doomed_pid,) = ran(runs, "doomed")
        if fault == "killed":
            os.kill(doomed_pid, signal.SIGKILL)  # from outside, before it replied
        doomed_outcome, other_outcome, queued_outcome = await asyncio.gather(doomed, other, queued)
        expected = {"timeout": "timeout", "killed": "crash", "memory": "memory"}[fault]
        assert doomed_outcome.error == expected
        answer = body(queued_outcome)
        assert answer["name"] == "queued" and answer["pid"] != doomed_pid
        assert ran(runs, "queued") == [answer["pid"]]  # it ran exactly once
        assert pool.retried == 1
        assert body(other_outcome)["name"] == "other"

    functions.run(scenario)


@WAYS
@pytest.mark.parametrize(("fault", "error"), [("exit", "crash"), ("spin", "timeout")])
def test_a_pipelined_request_that_started_gets_the_fault_and_is_never_run_twice(
    functions: Functions, runs: Path, fault: str, error: str, way: str
) -> None:
    version = counted(functions, runs, min_warm=1, max_instances=1, timeout_ms=1000)

    async def scenario(pools: PoolRegistry) -> None:
        pool = await python_pool(pools, version)
        ahead = started(pool, "name=ahead&do=sleep&s=0.3", way)
        await async_wait_for(lambda: ran(runs, "ahead"), message="the first request to start")
        behind = started(pool, f"name=behind&do={fault}", way)
        first, second = await asyncio.gather(ahead, behind)
        assert body(first)["name"] == "ahead"
        assert second.error == error
        assert ran(runs, "behind") == [body(first)["pid"]]  # it ran, once, behind the first
        assert pool.pipelined == 1 and pool.retried == 0
        assert body(await pool.invoke(invocation(query="name=after")))["name"] == "after"

    functions.run(scenario)


def test_a_request_queued_behind_a_stream_waiting_for_credit_runs_after_it(
    functions: Functions, runs: Path
) -> None:
    version = counted(functions, runs, min_warm=1, max_instances=1)

    async def scenario(pools: PoolRegistry) -> None:
        pool = await python_pool(pools, version)
        ahead = started(pool, "name=ahead&do=stream&s=0.3")
        await async_wait_for(lambda: ran(runs, "ahead"), message="the stream to start")
        behind = started(pool, "name=behind")
        await async_wait_for(lambda: pool.pipelined == 1, message="the request to be pipelined")
        stream = (await ahead).stream
        assert stream is not None
        received = b"".join([chunk async for chunk in stream])
        await stream.close()
        assert received == b"x" * 16 * 65536 and stream.error is None
        answer = body(await behind)
        assert answer["name"] == "behind" and ran(runs, "behind") == [answer["pid"]]
        # A function that streams is not pipelined into any more.
        again = [started(pool, f"name=c{i}") for i in range(2)]
        assert [body(o)["name"] for o in await asyncio.gather(*again)] == ["c0", "c1"]
        assert pool.pipelined == 1

    functions.run(scenario)


def test_a_request_queued_behind_kv_calls_runs_after_them(
    functions: Functions, runs: Path, redis_server: RedisServer
) -> None:
    version = counted(functions, runs, min_warm=1, max_instances=1)
    client = redis_async.Redis.from_url(redis_server.url)

    async def scenario(pools: PoolRegistry) -> None:
        pool = await python_pool(pools, version)
        ahead = started(pool, "name=ahead&do=kv")
        await async_wait_for(lambda: ran(runs, "ahead"), message="the first request to start")
        behind = started(pool, "name=behind")
        await async_wait_for(lambda: pool.pipelined == 1, message="the request to be pipelined")
        try:
            first, second = await asyncio.gather(ahead, behind)
        finally:
            await client.aclose()
        assert body(first)["count"] == 20
        assert body(second)["name"] == "behind"
        assert ran(runs, "behind") == [body(first)["pid"]]

    functions.run(scenario, kv=KVService(client, Limits()))


def test_a_queued_request_whose_client_left_runs_and_its_reply_is_dropped(
    functions: Functions, runs: Path
) -> None:
    version = counted(functions, runs, min_warm=1, max_instances=1)

    async def scenario(pools: PoolRegistry) -> None:
        pool = await python_pool(pools, version)
        ahead = started(pool, "name=ahead&do=sleep&s=0.3")
        await async_wait_for(lambda: ran(runs, "ahead"), message="the first request to start")
        left = started(pool, "name=left&do=sleep&s=0.2")
        await async_wait_for(lambda: pool.pipelined == 1, message="the request to be pipelined")
        left.cancel()  # its client went away while it waited in the socket
        pid = body(await ahead)["pid"]
        # The instance is kept: the next request gets its own reply, not the dropped one.
        answer = body(await pool.invoke(invocation(query="name=next")))
        assert answer == {"pid": pid, "name": "next"}
        assert ran(runs, "left") == [pid]
        assert pool.instance_pids() == [pid]

    functions.run(scenario)


async def settled_pool(
    pools: PoolRegistry, version: FunctionVersion, query: str, calls: int
) -> PythonPool:
    """The version's pool after ``calls`` sequential requests, so that its average
    call time is the function's own (it starts as unknown: slow)."""
    pool = await python_pool(pools, version)
    for i in range(calls):
        body(await pool.invoke(invocation(query=f"name=warm{i}&{query}")))
    return pool


async def burst(pool: PythonPool, queries: list[str]) -> list[dict]:
    """Send every query at once; their answers, in order."""
    outcomes = await asyncio.gather(*(pool.invoke(invocation(query=q)) for q in queries))
    return [body(o) for o in outcomes]


def test_a_fast_functions_burst_queues_behind_a_running_request_before_idle_instances_wake(
    functions: Functions, runs: Path
) -> None:
    version = counted(functions, runs, min_warm=4, max_instances=4)

    async def scenario(pools: PoolRegistry) -> None:
        pool = await settled_pool(pools, version, "do=none", 100)
        assert pool.pipelined == 0  # one at a time: nothing to queue behind
        names = [f"burst{i}" for i in range(4)]
        answers = await burst(pool, [f"name={n}" for n in names])
        assert [a["name"] for a in answers] == names  # no reply went astray
        for name, answer in zip(names, answers, strict=True):
            assert ran(runs, name) == [answer["pid"]]  # each ran once, where it says
        pids = {a["pid"] for a in answers}
        # Each request either woke an instance or queued behind a running one,
        # and the fast function's burst did queue, with three instances idle.
        assert pool.pipelined == len(names) - len(pids) >= 1
        assert pool.retried == 0

    functions.run(scenario)


def test_a_fast_functions_request_that_turns_slow_holds_up_nobody_sent_after_it(
    functions: Functions, runs: Path
) -> None:
    version = counted(functions, runs, min_warm=2, max_instances=2)

    async def scenario(pools: PoolRegistry) -> None:
        pool = await settled_pool(pools, version, "do=none", 100)
        slow = started(pool, "name=slow&do=sleep&s=1")
        await async_wait_for(lambda: ran(runs, "slow"), message="the slow request to start")
        await asyncio.sleep(0.05)  # it has run well past the fast-function window (5 ms)
        quick = body(await pool.invoke(invocation(query="name=quick")))
        assert not slow.done()  # answered on the idle instance, not queued behind it
        assert quick["pid"] != body(await slow)["pid"]
        assert pool.pipelined == 0

    functions.run(scenario)


def test_a_slow_function_wakes_an_idle_instance_rather_than_queue(
    functions: Functions, runs: Path
) -> None:
    version = counted(functions, runs, min_warm=2, max_instances=2)

    async def scenario(pools: PoolRegistry) -> None:
        pool = await settled_pool(pools, version, "do=sleep&s=0.01", 40)
        answers = await burst(pool, [f"name=s{i}&do=sleep&s=0.01" for i in range(2)])
        assert len({a["pid"] for a in answers}) == 2
        assert pool.pipelined == 0

    functions.run(scenario)


def test_a_fast_function_runs_its_workers_share_of_cpus_at_once_before_it_queues(
    functions: Functions, runs: Path
) -> None:
    version = counted(functions, runs, min_warm=4, max_instances=4)

    async def scenario(pools: PoolRegistry) -> None:
        pool = await settled_pool(pools, version, "do=none", 100)
        names = [f"burst{i}" for i in range(4)]
        pids = {a["pid"] for a in await burst(pool, [f"name={n}" for n in names])}
        assert len(pids) >= 2  # two run at once: the share of this worker
        assert pool.pipelined == len(names) - len(pids) >= 1

    functions.run(scenario, parallel=2)
