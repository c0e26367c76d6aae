"""Escaped processes and runaway CPU, with real processes in real cgroups.

A function that forks, calls ``setsid()`` and forks again leaves a daemon that
no process group or parent-death signal reaches; a thread left spinning after
the response keeps a CPU busy; a fork bomb takes every pid it can. Each test
runs a real zygote, template and instance in this machine's cgroups
(``edge.runtime.python.cgroups``), or without them (the uid fallback).
"""

from __future__ import annotations

import asyncio
import os
import signal
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from function_harness import Functions, alive, async_wait_for, invocation

from edge.runtime.invocation import FunctionVersion
from edge.runtime.python.cgroups import AppLimits, Cgroups, detect
from edge.runtime.python.pool import PythonPool
from edge.runtime.registry import PoolRegistry
from edge.uids import BLOCK, FUNCTION_ID_BASE

CGROUP_ROOT = Path("/sys/fs/cgroup")
pytestmark = pytest.mark.skipif(
    os.geteuid() != 0 or detect(CGROUP_ROOT) is None,
    reason="needs root and a writable cgroup hierarchy with memory, pids, cpu (and freezer on v1)",
)

ESCAPES = """
import os, threading, time

def daemon(request):
    r, w = os.pipe()
    child = os.fork()
    if child == 0:
        os.setsid()
        if os.fork() == 0:
            os.write(w, str(os.getpid()).encode())
            while True:
                time.sleep(1)
        os._exit(0)
    os.waitpid(child, 0)
    return {"daemon": int(os.read(r, 32))}

def spin(request):
    def burn():
        while True:
            pass
    threading.Thread(target=burn, daemon=True).start()
    return {"pid": os.getpid()}

def fork_bomb(request):
    forked = 0
    for _ in range(100):
        try:
            if os.fork() == 0:
                time.sleep(60)
                os._exit(0)
        except OSError:
            break
        forked += 1
    return {"forked": forked}
"""


@pytest.fixture
def base() -> int:
    """A uid block of this test's own, far from any real install's."""
    return FUNCTION_ID_BASE + BLOCK * (5000 + uuid.uuid4().int % 10_000)


@pytest.fixture
def functions(tmp_path: Path) -> Iterator[Functions]:
    functions = Functions(tmp_path)
    yield functions


def escapes(functions: Functions, base: int, handler: str) -> FunctionVersion:
    """The function, running as uid ``base + 1`` (so the uid fallback kills only ours)."""
    version = functions.version(ESCAPES, app="escapes", name="escapes", handler=handler)
    uid = base + 1
    for path in [version.root, *version.root.rglob("*")]:
        os.chown(path, 0, uid)
    return FunctionVersion(**{**version.__dict__, "uid": uid})


def cgroups(base: int, root: Path = CGROUP_ROOT, **limits: int) -> Cgroups:
    return Cgroups.for_host(root, base, AppLimits(**limits))


async def python_pool(pools: PoolRegistry, version: FunctionVersion) -> PythonPool:
    pool = await pools.get_or_start(version)
    assert isinstance(pool, PythonPool)
    return pool


def kill(pid: int) -> None:
    if alive(pid):
        os.kill(pid, signal.SIGKILL)


def test_a_setsid_daemon_dies_when_its_pool_is_retired(functions: Functions, base: int) -> None:
    version = escapes(functions, base, "daemon")
    install = cgroups(base)
    daemons: list[int] = []

    async def scenario(pools: PoolRegistry) -> None:
        pool = await python_pool(pools, version)
        outcome = await pool.invoke(invocation())
        assert outcome.status == 200, outcome.body
        daemons.append(int(outcome.body.split(b":")[1].strip(b" }")))
        assert alive(daemons[0])
        group = pool.group
        assert group is not None and daemons[0] in group.pids()
        await pools.retire(version.key)
        await async_wait_for(lambda: not alive(daemons[0]), message="the daemon to be killed")
        assert not any(Path(p).parent.exists() for p in group.procs_files)

    try:
        functions.run(scenario, cgroups=install)
    finally:
        for pid in daemons:
            kill(pid)
        install.sweep()


def test_a_thread_spinning_after_the_response_gets_only_the_apps_cpu_quota(
    functions: Functions, base: int
) -> None:
    version = escapes(functions, base, "spin")
    install = cgroups(base, cpu_ms=5)  # 5 ms per 100 ms: a twentieth of a CPU

    async def scenario(pools: PoolRegistry) -> float:
        pool = await python_pool(pools, version)
        assert (await pool.invoke(invocation())).status == 200
        group = pool.group
        assert group is not None
        start = group.cpu_usage_ns()
        await async_wait_for(lambda: group.cpu_usage_ns() > start, message="the thread to spin")
        begin, t0 = group.cpu_usage_ns(), asyncio.get_running_loop().time()
        await asyncio.sleep(2.0)  # the measurement window, not a synchronisation
        used, window = group.cpu_usage_ns() - begin, asyncio.get_running_loop().time() - t0
        return used / 1e9 / window

    try:
        share = functions.run(scenario, cgroups=install)
    finally:
        install.sweep()
    # Unlimited, the thread takes what the scheduler gives it (a whole idle CPU;
    # a quarter of one on this shared 2-core machine at load 11) until the pool goes.
    assert share < 0.08, f"the spinning thread used {share:.2f} CPU, over its 0.05"


def test_the_apps_pids_limit_stops_a_fork_bomb(functions: Functions, base: int) -> None:
    version = escapes(functions, base, "fork_bomb")
    install = cgroups(base, pids=24)

    async def scenario(pools: PoolRegistry) -> int:
        pool = await python_pool(pools, version)
        outcome = await pool.invoke(invocation())
        assert outcome.status == 200, outcome.body
        group = pool.group
        assert group is not None and len(group.pids()) <= 24
        await pools.retire(version.key)
        assert not group.pids()
        return int(outcome.body.split(b":")[1].strip(b" }"))

    try:
        forked = functions.run(scenario, cgroups=install)
    finally:
        install.sweep()
    # Without the cgroup only RLIMIT_NPROC (256) stops it: all 100 forks succeed.
    assert 0 < forked < 24


def test_without_cgroups_a_daemon_dies_with_its_template(
    functions: Functions, base: int, tmp_path: Path
) -> None:
    version = escapes(functions, base, "daemon")
    install = cgroups(base, root=tmp_path / "no-cgroup-mount")
    assert install.hierarchy is None
    daemons: list[int] = []

    async def scenario(pools: PoolRegistry) -> None:
        pool = await python_pool(pools, version)
        assert pool.group is None
        outcome = await pool.invoke(invocation())
        daemons.append(int(outcome.body.split(b":")[1].strip(b" }")))
        assert alive(daemons[0])
        await pools.retire(version.key)
        # The zygote (a subreaper) adopts it when the template exits, and kills it.
        await async_wait_for(lambda: not alive(daemons[0]), message="the daemon to be killed")

    try:
        functions.run(scenario, cgroups=install)
    finally:
        for pid in daemons:
            kill(pid)


def test_without_cgroups_the_sweep_kills_the_daemon_by_uid(
    functions: Functions, base: int, tmp_path: Path
) -> None:
    version = escapes(functions, base, "daemon")
    install = cgroups(base, root=tmp_path / "no-cgroup-mount")
    daemons: list[int] = []

    async def scenario(pools: PoolRegistry) -> None:
        pool = await python_pool(pools, version)
        outcome = await pool.invoke(invocation())
        daemons.append(int(outcome.body.split(b":")[1].strip(b" }")))
        # What the runtime does when it stops and starts, even with its zygote gone.
        await asyncio.to_thread(install.sweep)
        assert not alive(daemons[0])
        assert pool.template_pid is None or not alive(pool.template_pid)

    try:
        functions.run(scenario, cgroups=install)
    finally:
        for pid in daemons:
            kill(pid)


SHARED_BOMB = """
import mmap

def handle(request):
    # MAP_SHARED anonymous memory is not data: RLIMIT_DATA does not count it.
    block = mmap.mmap(-1, 512 << 20, flags=mmap.MAP_SHARED | mmap.MAP_ANONYMOUS)
    for offset in range(0, len(block), 4096):
        block[offset] = 1
    return {"held_mb": len(block) >> 20}
"""


def test_memory_rlimit_data_misses_is_stopped_by_the_cgroup(
    functions: Functions, base: int
) -> None:
    version = functions.version(SHARED_BOMB, app="escapes", name="shared", max_instances=1)
    uid = base + 1
    for path in [version.root, *version.root.rglob("*")]:
        os.chown(path, 0, uid)
    version = FunctionVersion(**{**version.__dict__, "uid": uid})  # 64 MB, backstop 384 MB
    install = cgroups(base)

    async def scenario(pools: PoolRegistry) -> None:
        pool = await python_pool(pools, version)
        outcome = await pool.invoke(invocation())
        # Without the cgroup: 200, {"held_mb": 512}, with memory_mb = 64.
        assert outcome.status == 502 and outcome.error == "memory", outcome.body
        group = pool.group
        assert group is not None and group.oom_kills() >= 1
        assert group.memory_peak_kb() > 300 * 1024  # charged though RLIMIT_DATA missed it

    try:
        functions.run(scenario, cgroups=install)
    finally:
        install.sweep()


HELPER = """
import os

def handle(request):
    child = os.fork()
    if child == 0:  # a helper process: the instance's own VmHWM never sees its memory
        held = b"x" * (96 << 20)
        os._exit(len(held) & 0)
    os.waitpid(child, 0)
    return "done"
"""


def test_the_memory_peak_counts_what_the_function_forked(functions: Functions, base: int) -> None:
    version = functions.version(HELPER, app="escapes", name="helper", memory_mb=128)
    uid = base + 1
    for path in [version.root, *version.root.rglob("*")]:
        os.chown(path, 0, uid)
    version = FunctionVersion(**{**version.__dict__, "uid": uid})
    install = cgroups(base)

    async def scenario(pools: PoolRegistry) -> int:
        pool = await python_pool(pools, version)
        outcome = await pool.invoke(invocation())
        assert outcome.status == 200, outcome.body
        return outcome.memory_peak_kb

    try:
        peak_kb = functions.run(scenario, cgroups=install)
    finally:
        install.sweep()
    # Without the cgroup the metric is the instance's VmHWM alone: 13 MB here.
    assert peak_kb > 96 * 1024, f"memory peak {peak_kb} kB misses the helper's 96 MB"
