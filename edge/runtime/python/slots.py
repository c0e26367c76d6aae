"""The instance slots of one Python pool, and the requests waiting for them.

A slot holds an instance that is idle, busy, or starting; there are at most
``max_instances``. A busy instance is *leased* to the request it runs and,
when every instance is busy and none may start, to up to
:data:`PIPELINE_DEPTH` requests queued behind it in its socket (pipelining,
see :mod:`edge.runtime.python.pool`). A request that finds no place waits, in
arrival order, for a whole instance: the places behind running requests go to
newcomers only while nobody waits. So a request waits at most ``timeout_ms``
for a place, and a place in a socket at most the time limit of the request
ahead of it. A fast function's waiting requests (not retries, which wait for a
whole instance) also get places behind a running one as its instance moves on
to its next request, in arrival order: without that, a fast function that once
had requests waiting kept them waiting, each for a whole instance, for as long
as the load lasted (one request per instance at a time, all instances awake).

A *fast* function (its calls take under :data:`FAST_S` on average) is
pipelined before its idle instances are woken, once it has ``parallel``
instances running (the worker's share of the node's CPUs: more would not run
at once anyway): a request queues behind a running one that started less
than :data:`FAST_S` ago, up to as many as fit in :data:`FAST_S` of the
function's average time (at most :data:`FAST_DEPTH`). Waking an idle
instance costs two process wake-ups and their cache misses, more than a
hello request's own work; an instance that finds its next request already in
its socket runs it without sleeping, and its replies come back several per
wake-up of the worker (README.md, Benchmarks, has the figures). Like a
Workers isolate, a fast function's instance then serves a burst in turn; a
request that turns out slow holds up at most the few queued behind it in its
first :data:`FAST_S`, and no more are queued behind it after that.

Everything here runs on the worker's event loop and never blocks.
"""

from __future__ import annotations

import asyncio
import collections
import math
import time
from collections.abc import Callable
from typing import Any

from edge.runtime.python.sockets import InstanceChannel

# Requests that may be queued in a busy instance's socket behind the running one.
PIPELINE_DEPTH = 1
# A function whose calls take less than this on average is fast (see above);
# until its first calls are in it counts as taking a second.
FAST_S = 0.005
# Paired python -m bench.quick runs (2026-11-28 17:25-17:45 UTC): hello Python
# 0.42x bare falcon at 4, 0.51x / 0.50x at 12, 0.52x at 24; realistic 0.60x,
# 0.66x / 0.64x, 0.65x; the hello p99 29 / 30 / 4.9 / 5.1 ms, noise on either side.
# Fewer instances woken per burst is the gain; 12 bounds what one stalled
# instance holds up.
FAST_DEPTH = 12
UNKNOWN_S = 1.0
# The weight of the last call in the running average of a call's time.
AVERAGE_WEIGHT = 1 / 8
# What a waiting request is handed instead of an instance.
EXPIRED = object()  # it waited its time out
CLOSED = object()  # the pool closed
RESERVED = None  # a slot was reserved for it: it starts an instance itself


class Slots:
    """The slots and leases of one pool.

    Args:
        max_instances: the slot count.
        unreserve: gives back a reserved slot nobody will fill (the pool's,
            which then hands it on).
        depth: requests that may be queued behind a running one (0: no pipelining).
        parallel: instances of a fast function that run at once before its
            requests queue behind running ones.

    Attributes:
        idle: live instances with nothing to run (last released last).
        busy: instances leased to at least one request.
        starting: reserved slots whose instance is starting.
        pipelined: requests queued behind a running one so far.
        call_s: the running average of a call's handler time, as its instances report it.
    """

    def __init__(
        self,
        max_instances: int,
        unreserve: Callable[[], None],
        depth: int = PIPELINE_DEPTH,
        parallel: int = 1,
    ) -> None:
        self._max = max_instances
        self._depth = depth
        self._parallel = parallel
        self._unreserve = unreserve
        self.idle: list[InstanceChannel] = []
        self.busy: set[InstanceChannel] = set()
        self.starting = 0
        self.pipelined = 0
        self._waiters: collections.deque[asyncio.Future[Any]] = collections.deque()
        self._whole: set[asyncio.Future[Any]] = set()  # waiting retries: no place behind
        self._leased = 0  # leases of busy instances: running plus queued requests
        self.streams_seen = False
        self.call_s = UNKNOWN_S

    def total(self) -> int:
        """Instances idle, busy and starting."""
        return len(self.idle) + len(self.busy) + self.starting

    def waiting(self) -> int:
        """Requests without a running instance: queued in sockets or waiting."""
        return len(self._waiters) + self._leased - len(self.busy)

    def full(self) -> bool:
        """Whether ``max_instances`` are running or starting: none may start."""
        return self.total() >= self._max

    def reserve(self) -> bool:
        """Take a slot for an instance about to start, if ``max_instances`` allows."""
        if self.full():
            return False
        self.starting += 1
        return True

    def take(self, instance: InstanceChannel) -> None:
        """Lease ``instance`` to one more request."""
        instance.leases += 1
        self._leased += 1
        self.busy.add(instance)

    def lease_idle(self) -> InstanceChannel | None:
        """The most recently used idle instance, leased; ``None`` if none is idle."""
        if not self.idle:
            return None
        instance = self.idle.pop()
        self.take(instance)
        return instance

    def lease_behind(self) -> InstanceChannel | None:
        """A busy instance to queue a request behind, leased; ``None`` if nobody
        waits before it, no instance has room, or the function streams (a stream
        may hold its instance for minutes). Of those with room, the one whose
        running request started first."""
        if self._waiters or self.streams_seen:
            return None
        best, best_started = None, math.inf
        for instance in self.busy:
            if instance.leases <= self._depth and not instance.streaming:
                started = instance.started or math.inf  # 0: its request is not written yet
                if best is None or started < best_started:
                    best, best_started = instance, started
        if best is not None:
            self.take(best)
            self.pipelined += 1
        return best

    def lease_fast(self, queue_limit: int) -> InstanceChannel | None:
        """For a fast function, a busy instance to queue a request behind before
        an idle one is woken (leased); ``None`` if the function is not fast,
        streams, runs fewer than ``parallel`` instances, has requests waiting or
        ``queue_limit`` queued, or no running request is young enough to have
        room behind it. Of those with room, the
        one with the fewest queued, then the oldest running request."""
        depth = self._fast_depth()
        if (
            not depth
            or len(self.busy) < self._parallel
            or self._waiters
            or self.waiting() >= queue_limit
        ):
            return None
        young = time.perf_counter() - FAST_S
        best = None
        for instance in self.busy:
            started = instance.started
            if (
                started > young
                and instance.leases <= depth
                and not instance.streaming
                and (best is None or (instance.leases, started) < (best.leases, best.started))
            ):
                best = instance
        if best is not None:
            self.take(best)
            self.pipelined += 1
        return best

    def _fast_depth(self) -> int:
        """How many requests may queue behind a running one of a fast function:
        as many as fit in :data:`FAST_S` of its average call, at most
        :data:`FAST_DEPTH`; 0 if it is not fast, streams, or is not pipelined."""
        if self.call_s >= FAST_S or not self._depth or self.streams_seen:
            return 0
        return min(FAST_DEPTH, int(FAST_S / self.call_s))  # >= 1: call_s < FAST_S

    def observe(self, seconds: float) -> None:
        """Count one answered call's handler time in :attr:`call_s`."""
        self.call_s += (seconds - self.call_s) * AVERAGE_WEIGHT

    def release(self, instance: InstanceChannel, *, answered: bool = True) -> None:
        """One request of ``instance`` is over (a dead one's leases went in :meth:`lost`)."""
        if not instance.alive:
            return
        instance.leases -= 1
        self._leased -= 1
        if answered:
            instance.calls += 1
            instance.last_used = time.monotonic()
        self.hand_on(instance)

    def hand_on(self, instance: InstanceChannel) -> None:
        """A live instance with nothing left to run goes to the first waiting
        request, else idle; for a fast function, more waiting requests queue behind."""
        if instance.leases:
            self._queue_waiters(instance)
            return
        while self._waiters:
            waiter = self._waiters.popleft()
            if not waiter.done():
                self.take(instance)
                waiter.set_result(instance)
                self._queue_waiters(instance)
                return
        self.busy.discard(instance)
        self.idle.append(instance)

    def _queue_waiters(self, instance: InstanceChannel) -> None:
        """A fast function's waiting requests, first come first, queued behind
        ``instance`` (which starts its next request now) while it has room; a
        retry at the head of the line waits for a whole instance."""
        depth = self._fast_depth()
        if not depth or instance.streaming:
            return
        while self._waiters and instance.leases <= depth:
            waiter = self._waiters[0]
            if waiter in self._whole:
                return
            self._waiters.popleft()
            if not waiter.done():
                self.take(instance)
                self.pipelined += 1
                waiter.set_result(instance)

    def lost(self, instance: InstanceChannel) -> bool:
        """Forget a dead instance; whether it held a slot."""
        self._leased -= instance.leases
        instance.leases = 0
        if instance in self.idle:
            self.idle.remove(instance)
            return True
        if instance in self.busy:
            self.busy.discard(instance)
            return True
        return False

    # -- waiting -------------------------------------------------------------

    async def wait(self, timeout: float, *, first: bool = False) -> Any:
        """Wait for an instance (leased), :data:`RESERVED`, :data:`EXPIRED` after
        ``timeout`` seconds, or :data:`CLOSED`. ``first``: ahead of the others
        (a retry, which waited once already)."""
        loop = asyncio.get_running_loop()
        waiter = loop.create_future()
        if first:
            self._waiters.appendleft(waiter)
            self._whole.add(waiter)
        else:
            self._waiters.append(waiter)
        timer = loop.call_later(timeout, self._expire, waiter)
        try:
            return await waiter
        except asyncio.CancelledError:
            self._abandon(waiter)
            raise
        finally:
            timer.cancel()
            self._whole.discard(waiter)

    def grant(self) -> None:
        """Reserve free slots for waiting requests (each starts an instance)."""
        while self._waiters:
            if self._waiters[0].done():
                self._waiters.popleft()
            elif self.reserve():
                self._waiters.popleft().set_result(RESERVED)
            else:
                break

    def close(self) -> None:
        """Tell every waiting request that the pool closed."""
        while self._waiters:
            waiter = self._waiters.popleft()
            if not waiter.done():
                waiter.set_result(CLOSED)

    def _expire(self, waiter: asyncio.Future[Any]) -> None:
        if not waiter.done():
            waiter.set_result(EXPIRED)
            self._waiters.remove(waiter)

    def _abandon(self, waiter: asyncio.Future[Any]) -> None:
        """A waiting request was cancelled: pass on what it may have been handed."""
        if waiter in self._waiters:
            self._waiters.remove(waiter)
        if waiter.done() and not waiter.cancelled():
            got = waiter.result()
            if isinstance(got, InstanceChannel):
                self.release(got, answered=False)
            elif got is RESERVED:
                self._unreserve()
