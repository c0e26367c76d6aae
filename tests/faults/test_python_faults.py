"""Faults of Python functions, with real processes: the platform keeps its promises.

Timeouts (504), memory bombs (502), crashes (502), malformed replies (502),
broken code (FunctionLoadError at start), fork bombs, and the death of the
template or the zygote itself. After each fault the next request works.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import time
from pathlib import Path

import pytest
from function_harness import (
    AS_ROOT,
    Functions,
    alive,
    async_wait_for,
    invocation,
    processes_of,
)

from edge.runtime.invocation import FunctionLoadError, FunctionVersion, Outcome
from edge.runtime.python.pool import PythonPool
from edge.runtime.python.process.sandbox import Limits
from edge.runtime.registry import PoolRegistry
from edge.uids import function_ids


@pytest.fixture
def functions(tmp_path: Path) -> Functions:
    return Functions(tmp_path)


async def python_pool(pools: PoolRegistry, version: FunctionVersion) -> PythonPool:
    pool = await pools.get_or_start(version)
    assert isinstance(pool, PythonPool)
    return pool


def message(outcome: Outcome) -> str:
    return str(json.loads(outcome.body)["message"])


FAULTY = """
import ctypes, os, time

def spin(request):
    while True:
        pass

def sleep(request):
    time.sleep(30)

def segfault(request):
    ctypes.string_at(0)

def exit1(request):
    os._exit(1)

def close_socket(request):
    for fd in range(3, 256):
        try:
            os.close(fd)
        except OSError:
            pass
    return "nobody will read this"

def bad_status(request):
    from edge import Response
    return Response("x", status=999)

def bad_header(request):
    from edge import Response
    return Response("x", headers={"x-evil": "a\\r\\nset-cookie: pwned=1"})

def bad_header_name(request):
    from edge import Response
    return Response("x", headers={"bad name": "x"})

def garbage(request):
    for fd in range(3, 64):
        try:
            if os.readlink(f"/proc/self/fd/{fd}").startswith("socket:"):
                os.write(fd, b"\\x00\\x00\\x00\\x05\\xc1\\xc1\\xc1\\xc1\\xc1")
        except OSError:
            pass
    time.sleep(5)

def ok(request):
    return {"pid": os.getpid()}
"""


def faulty(functions: Functions, handler: str, **overrides: object) -> FunctionVersion:
    return functions.version(FAULTY, name="faulty", handler=handler, **overrides)  # type: ignore[arg-type]


@pytest.mark.parametrize("handler", ["spin", "sleep"])
def test_a_function_past_its_timeout_is_killed_with_504(functions: Functions, handler: str) -> None:
    version = faulty(functions, handler, timeout_ms=1000)

    async def scenario(pools: PoolRegistry) -> None:
        pool = await python_pool(pools, version)
        started = time.monotonic()
        outcome = await pool.invoke(invocation())
        elapsed = time.monotonic() - started
        assert outcome.status == 504 and outcome.error == "timeout"
        assert message(outcome) == "function faulty timed out after 1000 ms"
        assert 1.0 <= elapsed < 2.0
        assert pool.instance_pids() == []
        second = await pool.invoke(invocation())  # a fresh instance, killed again
        assert second.status == 504 and second.cold

    functions.run(scenario)


def test_after_a_timeout_the_next_request_gets_a_new_instance(functions: Functions) -> None:
    version = functions.version(FAULTY_BY_QUERY, name="faulty", timeout_ms=1000)

    async def scenario(pools: PoolRegistry) -> None:
        pool = await python_pool(pools, version)
        first = json.loads((await pool.invoke(invocation())).body)["pid"]
        assert (await pool.invoke(invocation(query="do=spin"))).status == 504
        await async_wait_for(lambda: not alive(first), message="the spinning instance to die")
        after = await pool.invoke(invocation())
        assert after.status == 200 and after.cold
        assert json.loads(after.body)["pid"] != first

    functions.run(scenario)


FAULTY_BY_QUERY = """
import ctypes, os

def handle(request):
    do = request.query.get("do")
    if do == "spin":
        while True:
            pass
    if do == "segfault":
        ctypes.string_at(0)
    if do == "exit":
        os._exit(1)
    if do == "bomb":
        chunks = []
        while True:
            chunks.append(bytearray(1024 * 1024))
    if do == "bomb-abort":
        chunks = []
        try:
            while True:
                chunks.append(bytearray(1024 * 1024))
        except MemoryError:
            os.abort()  # stands for C code that cannot recover from a failed malloc
    return {"pid": os.getpid()}
"""


@pytest.mark.parametrize(
    ("do", "reason"),
    [
        ("segfault", "function faulty crashed: SIGSEGV"),
        ("exit", "function faulty exited with status 1"),
    ],
)
def test_a_crash_is_502_with_the_reason_and_the_instance_is_replaced(
    functions: Functions, do: str, reason: str
) -> None:
    version = functions.version(FAULTY_BY_QUERY, name="faulty")

    async def scenario(pools: PoolRegistry) -> None:
        pool = await python_pool(pools, version)
        first = json.loads((await pool.invoke(invocation())).body)["pid"]
        crashed = await pool.invoke(invocation(query=f"do={do}"))
        assert crashed.status == 502 and crashed.error == "crash"
        assert message(crashed) == reason
        after = await pool.invoke(invocation())
        assert after.status == 200 and after.cold
        assert json.loads(after.body)["pid"] != first

    functions.run(scenario)


@pytest.mark.parametrize("do", ["bomb", "bomb-abort"])
def test_a_memory_bomb_is_502_memory_limit_exceeded(functions: Functions, do: str) -> None:
    version = functions.version(FAULTY_BY_QUERY, name="faulty", memory_mb=64)

    async def scenario(pools: PoolRegistry) -> None:
        pool = await python_pool(pools, version)
        bombed = await pool.invoke(invocation(query=f"do={do}"))
        assert bombed.status == 502 and bombed.error == "memory"
        assert "memory limit of 64 MB exceeded" in message(bombed)
        after = await pool.invoke(invocation())
        assert after.status == 200 and after.cold

    functions.run(scenario)


BIG_TEMPLATE = """
BIG = bytearray(b"x" * (96 * 1024 * 1024))  # a library or model, loaded once per template

def handle(request):
    extra = bytearray(int(request.query.get("mb", "0")) * 1024 * 1024)
    return {"template_mb": len(BIG) >> 20, "extra_mb": len(extra) >> 20}
"""


def test_memory_mb_counts_what_an_instance_allocates_beyond_its_template(
    functions: Functions,
) -> None:
    version = functions.version(BIG_TEMPLATE, name="big", memory_mb=32)

    async def scenario(pools: PoolRegistry) -> None:
        pool = await python_pool(pools, version)
        fits = await pool.invoke(invocation(query="mb=16"))
        assert fits.status == 200, fits.body
        assert json.loads(fits.body) == {"template_mb": 96, "extra_mb": 16}
        over = await pool.invoke(invocation(query="mb=48"))
        assert over.status == 502 and over.error == "memory"
        assert "memory limit of 32 MB exceeded" in message(over)

    functions.run(scenario)


def test_a_closed_socket_is_502(functions: Functions) -> None:
    version = faulty(functions, "close_socket")

    async def scenario(pools: PoolRegistry) -> None:
        pool = await python_pool(pools, version)
        outcome = await pool.invoke(invocation())
        assert outcome.status == 502 and outcome.error == "crash"
        assert message(outcome).startswith("function faulty ")

    functions.run(scenario)


@pytest.mark.parametrize(
    ("handler", "why"),
    [
        ("bad_status", "status 999 is not an HTTP status"),
        ("bad_header", "header x-evil has a character HTTP cannot carry"),
        ("bad_header_name", "'bad name' is not a valid HTTP token"),
        ("garbage", "undecodable frame"),
    ],
)
def test_a_malformed_reply_is_502_invalid_response(
    functions: Functions, handler: str, why: str
) -> None:
    version = faulty(functions, handler)

    async def scenario(pools: PoolRegistry) -> None:
        pool = await python_pool(pools, version)
        outcome = await pool.invoke(invocation())
        assert (outcome.status, outcome.error) == (502, "invalid_response")
        assert (
            message(outcome)
            == "function faulty sent an invalid response (the reason is in its logs)"
        )
        assert b"pwned" not in outcome.body and not any("pwned" in v for _, v in outcome.headers)
        assert why in outcome.logs[-1].message
        assert pool.instance_pids() == []  # never reused

    functions.run(scenario)


@pytest.mark.parametrize(
    ("source", "handler", "expected"),
    [
        (
            "import no_such_module\n",
            "handle",
            "ModuleNotFoundError: No module named 'no_such_module'",
        ),
        ("def handle(request)\n    return 1\n", "handle", "SyntaxError"),
        ("def other(request):\n    return 1\n", "handle", "fn.py defines no 'handle'"),
        ("handle = 42\n", "handle", "fn.py:handle is a int, not a function"),
        ("raise RuntimeError('no config')\n", "handle", "RuntimeError: no config"),
    ],
)
def test_broken_code_raises_function_load_error_with_the_message(
    functions: Functions, source: str, handler: str, expected: str
) -> None:
    version = functions.version(source, handler=handler)

    async def scenario(pools: PoolRegistry) -> None:
        with pytest.raises(FunctionLoadError) as caught:
            await pools.get_or_start(version)
        assert expected in str(caught.value)
        assert str(caught.value).startswith("fn.py:handle failed to load")
        assert "template.py" not in str(caught.value)  # the user's frames only
        assert pools.keys() == []

    functions.run(scenario)


def test_a_module_that_exits_while_importing_failed_to_boot(functions: Functions) -> None:
    version = functions.version("import os\nos._exit(7)\n")

    async def scenario(pools: PoolRegistry) -> None:
        with pytest.raises(FunctionLoadError, match="failed to boot: exited with status 7"):
            await pools.get_or_start(version)

    functions.run(scenario)


def test_a_module_that_hangs_while_importing_is_given_up(functions: Functions) -> None:
    version = functions.version("while True:\n    pass\n")

    async def scenario(pools: PoolRegistry) -> None:
        pool = PythonPool(version, pools.zygote, load_timeout=0.5)
        with pytest.raises(FunctionLoadError, match=r"did not load within 0\.5 s"):
            await pool.start()
        await pool.close()

    functions.run(scenario)


def test_a_killed_template_is_recreated_on_demand(functions: Functions) -> None:
    version = functions.version(FAULTY_BY_QUERY, name="faulty", min_warm=1)

    async def scenario(pools: PoolRegistry) -> None:
        pool = await python_pool(pools, version)
        template, instance = pool.template_pid, pool.instance_pids()[0]
        assert template is not None
        os.kill(template, signal.SIGKILL)
        # Instances die with their template; the pool tops up min_warm from a new one.
        await async_wait_for(
            lambda: (
                not alive(instance)
                and pool.instance_pids()
                and pool.template_pid not in (None, template)
            ),
            message="a new template and instance",
        )
        after = await pool.invoke(invocation())
        assert after.status == 200 and json.loads(after.body)["pid"] != instance

    functions.run(scenario)


def test_a_killed_zygote_is_recreated_and_serving(functions: Functions) -> None:
    version = functions.version(FAULTY_BY_QUERY, name="faulty", min_warm=1)

    async def scenario(pools: PoolRegistry) -> None:
        pool = await python_pool(pools, version)
        zygote = pools.zygote.pid
        assert zygote is not None
        template, instance = pool.template_pid, pool.instance_pids()[0]
        os.kill(zygote, signal.SIGKILL)
        # Templates die with the zygote, instances with them; min_warm brings all back.
        await async_wait_for(
            lambda: (
                not alive(template)
                and not alive(instance)
                and pool.instance_pids()
                and pools.zygote.pid not in (None, zygote)
            ),
            timeout=30,  # a fresh interpreter, then a fork and an import: slow under load
            message="a new zygote, template and instance",
        )
        after = await pool.invoke(invocation())
        assert after.status == 200 and json.loads(after.body)["pid"] != instance
        other = await pools.get_or_start(functions.version(FAULTY_BY_QUERY, name="other"))
        assert (await other.invoke(invocation())).status == 200

    functions.run(scenario)


DIES_YOUNG = """
import os, threading

# The template dies 0.2 s after every import (its instances die with it).
threading.Timer(0.2, os._exit, (1,)).start()

def handle(request):
    return {"pid": os.getpid()}
"""


def test_templates_that_keep_dying_young_wait_for_demand(functions: Functions) -> None:
    version = functions.version(DIES_YOUNG, name="mayfly", min_warm=1)

    async def scenario(pools: PoolRegistry) -> None:
        pool = await python_pool(pools, version)
        first = pool.template_pid
        # The first young death is replaced (a killed zygote takes a fresh
        # template with it); the second in a row is not: no crash loop.
        await async_wait_for(
            lambda: pool.template_pid not in (None, first), message="a second template"
        )
        second = pool.template_pid
        await async_wait_for(lambda: not alive(second), message="the second template to die")
        await async_wait_for(
            lambda: pool.template_pid is None and not pool.instance_pids(),
            message="the pool to notice",
        )
        # An absence takes a window to observe: a template starts in ~50 ms, so
        # a crash loop would have started several within this second.
        await asyncio.sleep(1.0)
        assert pool.template_pid is None and pool.instance_pids() == []
        # Demand still gets an answer, from a new template.
        outcome = await pool.invoke(invocation())
        assert outcome.status == 200, outcome.body

    functions.run(scenario)


FORK_BOMB = """
import os

def handle(request):
    while True:
        try:
            os.fork()
        except OSError:
            pass
"""


@pytest.mark.skipif(not AS_ROOT, reason="RLIMIT_NPROC needs uid separation, hence root")
def test_a_fork_bomb_is_contained_and_the_neighbour_keeps_serving(functions: Functions) -> None:
    bomb = functions.version(FORK_BOMB, app="bomber", name="bomb", timeout_ms=1000)
    neighbour = functions.version(FAULTY_BY_QUERY, app="neighbour", name="ok")
    bomber_uid = function_ids("bomber")[0]

    async def scenario(pools: PoolRegistry) -> None:
        ok = await python_pool(pools, neighbour)
        bomb_pool = await python_pool(pools, bomb)
        bombing = asyncio.ensure_future(bomb_pool.invoke(invocation()))
        await async_wait_for(
            lambda: len(processes_of(bomber_uid)) >= 16, message="the bomb to go off"
        )
        during = await ok.invoke(invocation())
        assert during.status == 200
        assert len(processes_of(bomber_uid)) <= 32  # RLIMIT_NPROC, for the whole app
        assert (await bombing).status == 504
        # The instance's process group dies with it.
        # The template and its spare instance stay.
        await async_wait_for(
            lambda: len(processes_of(bomber_uid)) <= 2, message="the bomb's processes to be killed"
        )
        assert (await ok.invoke(invocation())).status == 200

    functions.run(scenario, limits=Limits(nproc=32))


@pytest.mark.skipif(not AS_ROOT, reason="uid separation needs root")
def test_a_function_cannot_read_another_apps_release(functions: Functions) -> None:
    secret = functions.version(
        "def handle(request):\n    return 'x'\n",
        app="victim",
        files={"secrets.txt": "the victim's data"},
    )
    thief = functions.version(
        "def handle(request):\n"
        "    try:\n"
        "        return open(request.query['path']).read()\n"
        "    except OSError as exc:\n"
        "        return type(exc).__name__\n",
        app="thief",
    )

    async def scenario(pools: PoolRegistry) -> None:
        pool = await python_pool(pools, thief)
        stolen = await pool.invoke(invocation(query=f"path={secret.root}/secrets.txt"))
        assert stolen.body == b"PermissionError"
        platform = await pool.invoke(invocation(query="path=/etc/shadow"))
        assert platform.body == b"PermissionError"

    functions.run(scenario)
