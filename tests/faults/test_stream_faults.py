"""Streamed replies from hostile function code: forged frames are refused.

APPSEC: a function can write anything on its instance socket. Frames it forges
(a chunk before any head, an unknown kind, chunks past its flow-control window)
end in ``invalid_response`` with the instance killed, and never make the worker
buffer more than the window.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from function_harness import Functions, async_wait_for, invocation

from edge.runtime.python.pool import PythonPool
from edge.runtime.registry import PoolRegistry
from edge.runtime.streaming import CHUNK_MAX, WINDOW, StreamAborted

FORGERS = """
import os, struct, time

def frame(payload):
    return struct.pack("!I", len(payload)) + payload

HEAD = frame(b"\\x83\\xa1k\\xa4head\\xa6status\\xcc\\xc8\\xa7headers\\x90")
KV = frame(b"\\x81\\xa1k\\xa2kv")

def chunk(data):
    return frame(b"\\x82\\xa1k\\xa5chunk\\xa1d\\xc6" + struct.pack("!I", len(data)) + data)

def sock():
    for fd in range(3, 64):
        try:
            if os.readlink(f"/proc/self/fd/{fd}").startswith("socket:"):
                return fd
        except OSError:
            pass

def write(data):
    fd = sock()
    while data:
        data = data[os.write(fd, data):]

def stray_kind(request):
    write(KV)
    time.sleep(5)

def chunk_first(request):
    write(chunk(b"x"))
    time.sleep(5)

def flood(request):
    write(HEAD + chunk(b"y" * 65536) * 32)  # 2 MiB, never waiting for credit
    time.sleep(5)
"""


@pytest.fixture
def functions(tmp_path: Path) -> Functions:
    return Functions(tmp_path)


@pytest.mark.parametrize(
    ("handler", "why"),
    [("stray_kind", "unknown frame kind 'kv'"), ("chunk_first", "a stream chunk before its head")],
)
def test_a_forged_frame_before_the_head_is_502(
    functions: Functions, handler: str, why: str
) -> None:
    version = functions.version(FORGERS, name="forger", handler=handler)

    async def scenario(pools: PoolRegistry) -> None:
        pool = await pools.get_or_start(version)
        assert isinstance(pool, PythonPool)
        outcome = await pool.invoke(invocation())
        assert (outcome.status, outcome.error) == (502, "invalid_response")
        assert json.loads(outcome.body)["error"] == "invalid_response"
        assert why in outcome.logs[-1].message
        assert pool.instance_pids() == []

    functions.run(scenario)


def test_chunks_past_the_window_cut_the_stream(functions: Functions) -> None:
    version = functions.version(FORGERS, name="forger", handler="flood")

    async def scenario(pools: PoolRegistry) -> None:
        pool = await pools.get_or_start(version)
        assert isinstance(pool, PythonPool)
        outcome = await pool.invoke(invocation())
        assert outcome.status == 200 and outcome.stream is not None
        # A client that reads nothing yet: the worker must not buffer the flood.
        await async_wait_for(lambda: pool.instance_pids() == [], message="the instance killed")
        received = 0
        with pytest.raises(StreamAborted):
            async for chunk in outcome.stream:
                received += len(chunk)
        await outcome.stream.close()
        assert received <= WINDOW + CHUNK_MAX  # what was queued when it was cut off
        assert outcome.stream.error == "invalid_response"

    functions.run(scenario)
