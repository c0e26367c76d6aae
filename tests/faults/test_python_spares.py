"""The spare instance a template forks ahead and sends to the worker.

A cold start takes the spare the worker holds, with nothing asked of the template
and nothing awaited (the worker attached it to its loop as it came); a spare that
died before its exit was reported is never given a request; a burst of cold starts
beyond the one spare still gets an instance each. Real processes throughout; the
template is stopped with SIGSTOP to show what does and does not depend on it.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import socket
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import NoReturn

import pytest
from function_harness import Functions, async_wait_for, invocation

from edge.runtime.invocation import Outcome
from edge.runtime.python.control import SpawnError
from edge.runtime.python.pool import PythonPool
from edge.runtime.python.sockets import verify
from edge.runtime.registry import PoolRegistry

PID = """
import os, time

def handle(request):
    time.sleep(float(request.query.get("s", "0")))
    return {"pid": os.getpid()}
"""


@pytest.fixture
def functions(tmp_path: Path) -> Functions:
    return Functions(tmp_path)


def pid_of(outcome: Outcome) -> int:
    assert outcome.status == 200, outcome.body
    return int(json.loads(outcome.body)["pid"])


def state(pid: int) -> str:
    """The one-letter state of ``pid`` (``Z``: a zombie nobody reaped yet)."""
    with open(f"/proc/{pid}/stat") as stat:
        return stat.read().rpartition(")")[2].split()[0]


@contextlib.contextmanager
def stopped(pid: int) -> Iterator[None]:
    """``pid`` stopped (SIGSTOP) for the block, continued whatever happens."""
    os.kill(pid, signal.SIGSTOP)
    try:
        yield
    finally:
        os.kill(pid, signal.SIGCONT)


async def held_spare(pool: PythonPool) -> int:
    spare = await async_wait_for(lambda: pool.spare_pid, message="the template's spare")
    assert isinstance(spare, int)
    return spare


def test_a_cold_start_takes_the_held_spare_without_the_template(
    functions: Functions, monkeypatch: pytest.MonkeyPatch
) -> None:
    version = functions.version(PID, min_warm=0)

    def forbidden(*_: object) -> NoReturn:
        raise AssertionError("the spare was verified when it came, not on the cold start")

    async def scenario(pools: PoolRegistry) -> None:
        pool = await pools.get_or_start(version)
        assert isinstance(pool, PythonPool) and pool.template_pid is not None
        spare = await held_spare(pool)
        with stopped(pool.template_pid), monkeypatch.context() as patch:
            patch.setattr(os, "pidfd_open", forbidden)  # nor /proc: verify() opens both
            outcome = await asyncio.wait_for(pool.invoke(invocation()), 5)
        assert outcome.cold and pid_of(outcome) == spare
        # The template forks the next spare, and the next cold start takes it.
        next_spare = await async_wait_for(
            lambda: pool.spare_pid not in (None, spare) and pool.spare_pid,
            message="the next spare",
        )
        assert pool.reap_idle(float("inf"), ttl=0) == 1
        again = await pool.invoke(invocation())
        assert again.cold and pid_of(again) == next_spare

    functions.run(scenario)


def test_a_cold_start_that_takes_the_spare_does_not_wait_for_the_loop(
    functions: Functions,
) -> None:
    """The spare was made a channel on the loop when it came: the request that
    takes it is leased to it, and its frame on the way, in the request's first step."""
    version = functions.version(PID, min_warm=0)

    async def scenario(pools: PoolRegistry) -> None:
        pool = await pools.get_or_start(version)
        assert isinstance(pool, PythonPool)
        spare = await held_spare(pool)
        call = asyncio.ensure_future(pool.invoke(invocation()))
        await asyncio.sleep(0)  # one loop turn: the call's first step, no more
        assert pool.instance_pids() == [spare]
        outcome = await asyncio.wait_for(call, 5)
        assert outcome.cold and pid_of(outcome) == spare

    functions.run(scenario)


def test_a_spare_that_died_unreported_is_not_given_a_request(functions: Functions) -> None:
    version = functions.version(PID, min_warm=0)

    async def scenario(pools: PoolRegistry) -> None:
        pool = await pools.get_or_start(version)
        assert isinstance(pool, PythonPool) and pool.template_pid is not None
        spare = await held_spare(pool)
        with stopped(pool.template_pid):  # it can neither reap the spare nor report it
            os.kill(spare, signal.SIGKILL)
            await async_wait_for(lambda: state(spare) == "Z", message="the spare to die")
            call = asyncio.ensure_future(pool.invoke(invocation()))
            for _ in range(3):  # let the call take (or refuse) the spare first
                await asyncio.sleep(0)
        outcome = await asyncio.wait_for(call, 5)
        assert outcome.status == 200 and outcome.cold and pid_of(outcome) != spare

    functions.run(scenario)


def test_a_burst_of_cold_starts_gets_an_instance_each(functions: Functions) -> None:
    version = functions.version(PID, min_warm=0, max_instances=4)

    async def scenario(pools: PoolRegistry) -> None:
        pool = await pools.get_or_start(version)
        assert isinstance(pool, PythonPool)
        spare = await held_spare(pool)
        outcomes = await asyncio.gather(*(pool.invoke(invocation(query="s=0.2")) for _ in range(4)))
        pids = {pid_of(o) for o in outcomes}
        assert len(pids) == 4 and spare in pids and all(o.cold for o in outcomes)
        assert sorted(pool.instance_pids()) == sorted(pids)

    functions.run(scenario)


def test_an_instance_pid_that_is_not_the_templates_child_is_refused() -> None:
    """APPSEC: a template names the pid of each instance it sends; the worker
    would signal and measure that pid, so it must be a live child of the template."""
    child = subprocess.Popen(["sleep", "30"])
    try:
        ours, theirs = socket.socketpair()
        verified = verify(ours, child.pid, parent=os.getpid())
        assert verified.pid == child.pid and verified.rss_kb > 0
        verified.close()
        theirs.close()
        for pid, parent in ((child.pid, 1), (os.getpid(), child.pid), (2**22 + 7, os.getpid())):
            ours, theirs = socket.socketpair()
            with pytest.raises(SpawnError):
                verify(ours, pid, parent)
            assert ours.fileno() == -1  # closed: the instance would read EOF and exit
            theirs.close()
    finally:
        child.kill()
        child.wait()
