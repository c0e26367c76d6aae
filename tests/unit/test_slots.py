"""The pool's slot policy: where a fast function's waiting requests go.

The policy reads a few attributes of each instance and nothing else, so these
tests drive :class:`~edge.runtime.python.slots.Slots` with plain objects
carrying them; what instances then do with the requests is in
``tests/faults/test_pipelining.py``, with real processes.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass
from typing import Any

from edge.runtime.python.slots import Slots


@dataclass(eq=False)
class Instance:
    """What Slots reads of an instance channel."""

    leases: int = 0
    started: float = 0.0
    streaming: bool = False
    alive: bool = True
    calls: int = 0
    last_used: float = 0.0


def fast_pool(instances: int) -> tuple[Slots, list[Any]]:
    """A fast function (0.2 ms calls) whose instances all run a request that
    started a second ago: none is young enough to be queued behind by a newcomer."""
    slots = Slots(instances, lambda: None, depth=1, parallel=instances)
    slots.call_s = 0.0002
    running = [Instance() for _ in range(instances)]
    slots.idle.extend(running)
    for _ in running:
        leased = slots.lease_idle()
        assert leased is not None
        leased.started = time.perf_counter() - 1
    return slots, running


def test_a_fast_functions_waiting_requests_queue_behind_an_instance_as_it_moves_on() -> None:
    async def scenario() -> None:
        slots, (a, b) = fast_pool(2)
        assert slots.lease_fast(queue_limit=16) is None  # nobody young to queue behind
        behind = slots.lease_behind()
        assert behind is not None  # one place behind each running request...
        assert slots.lease_behind() is not None
        waiting = [asyncio.ensure_future(slots.wait(5)) for _ in range(3)]
        await asyncio.sleep(0)  # ...and the next three wait
        assert slots.waiting() == 5 and not any(w.done() for w in waiting)
        # The request on `a` is answered and its queued one starts: the waiting
        # requests queue behind it, first come first, instead of each waiting
        # for a whole instance (which, under steady load, never comes empty).
        a.started = time.perf_counter()
        slots.release(a)
        got = await asyncio.gather(*waiting)
        assert got == [a, a, a]
        assert a.leases == 4 and b.leases == 2
        assert slots.pipelined == 2 + 3

    asyncio.run(scenario())


def test_a_retry_waiting_first_gets_a_whole_instance() -> None:
    async def scenario() -> None:
        slots, (a,) = fast_pool(1)
        assert slots.lease_behind() is a  # one request queued behind the running one
        retry = asyncio.ensure_future(slots.wait(5, first=True))
        later = asyncio.ensure_future(slots.wait(5))
        await asyncio.sleep(0)
        slots.release(a)  # the queued request starts; the retry must not queue behind it
        await asyncio.sleep(0)
        assert not retry.done() and not later.done()
        slots.release(a)  # empty: the retry gets it whole, the next one a place behind
        assert await retry is a and await later is a
        assert a.leases == 2

    asyncio.run(scenario())


def test_a_slow_functions_waiting_requests_wait_for_a_whole_instance() -> None:
    async def scenario() -> None:
        slots, (a,) = fast_pool(1)
        slots.call_s = 0.5  # slow: a request behind it could wait half a second
        waiting = [asyncio.ensure_future(slots.wait(5)) for _ in range(2)]
        await asyncio.sleep(0)
        slots.release(a)
        assert await waiting[0] is a
        await asyncio.sleep(0)
        assert not waiting[1].done() and a.leases == 1
        slots.release(a)
        assert await waiting[1] is a

    asyncio.run(scenario())
