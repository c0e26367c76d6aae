"""Python function pools: the warm instances of one function version, per worker.

A worker holds one :class:`~edge.runtime.link.Zygote` and a :class:`Pools`
registry of :class:`PythonPool` (and JavaScript pools from an injected
factory). A pool asks the zygote for a template (which imports the function;
a failure raises :class:`~edge.runtime.invocation.FunctionLoadError`), then
forks instances from it: pre-warmed (``min_warm``), on demand (the cold
start), up to ``max_instances`` at once. Beyond that requests wait in a
bounded queue, then get 503. Every limit is enforced from here, outside the
function: the timeout (SIGKILL and 504), memory (502), crashes (502, the
instance is replaced on the next request), malformed replies (502).

All bookkeeping happens on the worker's event loop; nothing here blocks.
"""

from __future__ import annotations

import asyncio
import collections
import logging
import time
from collections.abc import Callable
from typing import Any

from edge.runtime.channel import CallTimeout, ExitInfo, InstanceChannel, SpawnError
from edge.runtime.invocation import (
    FunctionLoadError,
    FunctionPool,
    FunctionVersion,
    Invocation,
    LogRecord,
    Outcome,
)
from edge.runtime.limits import Limits
from edge.runtime.link import TemplateLink, TemplateSource, Zygote
from edge.runtime.protocol import PeerClosed, ProtocolError
from edge.runtime.reply import InvalidReply, error_outcome, parse_reply, request_frame

__all__ = ["Pools", "PythonPool", "Zygote"]

logger = logging.getLogger(__name__)

# VmHWM costs a ~12 us pread of /proc: read on an instance's first call and
# every SAMPLE_EVERY-th after it; its exit report (ru_maxrss) has the final peak.
SAMPLE_EVERY = 16
EXIT_REPORT_WAIT_S = 1.0
TEMPLATE_EXIT_WAIT_S = 2.0
MIN_TEMPLATE_LIFE_S = 1.0
_EXPIRED = object()
_CLOSED = object()


class _Refused(Exception):
    """No instance for this request; ``outcome`` is the answer instead."""

    def __init__(self, outcome: Outcome) -> None:
        super().__init__(outcome.status)
        self.outcome = outcome


class PythonPool:
    """The instances of one Python :class:`FunctionVersion` in this worker.

    Implements :class:`~edge.runtime.invocation.FunctionPool`. ``last_used``
    and the ``now`` given to :meth:`reap_idle` are ``time.monotonic()``.

    Args:
        version: the function version.
        zygote: the worker's zygote.
        limits: process and file limits of its processes.
        load_timeout: seconds the template may take to import the function.
        queue_limit: requests that may wait for an instance (default
            ``2 * max_instances``).
    """

    def __init__(
        self,
        version: FunctionVersion,
        zygote: Zygote,
        *,
        limits: Limits | None = None,
        load_timeout: float = 10.0,
        queue_limit: int | None = None,
    ) -> None:
        self.version = version
        self.last_used = time.monotonic()
        self._queue_limit = 2 * version.max_instances if queue_limit is None else queue_limit
        self._label = f"{version.app}/{version.environment}/{version.name}"
        self._templates = TemplateSource(
            version,
            zygote,
            limits=limits or Limits(),
            load_timeout=load_timeout,
            on_exit=self._on_instance_exit,
            on_lost=self._on_template_lost,
        )
        self._idle: list[InstanceChannel] = []
        self._busy: set[InstanceChannel] = set()
        self._starting = 0
        self._waiters: collections.deque[asyncio.Future[Any]] = collections.deque()
        self._by_pid: dict[int, InstanceChannel] = {}
        self._inflight = 0
        self._drained = asyncio.Event()
        self._closing = False
        self._close_task: asyncio.Task[None] | None = None
        self._tasks: set[asyncio.Task[None]] = set()

    # -- FunctionPool --------------------------------------------------------

    async def start(self) -> None:
        """Load the function (raises FunctionLoadError) and pre-warm ``min_warm``."""
        await self._templates.get()
        warm = min(self.version.min_warm, self.version.max_instances)
        self._starting += warm
        await asyncio.gather(*(self._prewarm() for _ in range(warm)))

    async def invoke(self, invocation: Invocation) -> Outcome:
        """Run one request; function faults become 5xx Outcomes, never exceptions."""
        self.last_used = time.monotonic()
        if self._closing:
            return self._shutting_down(invocation)
        self._inflight += 1
        try:
            try:
                instance, cold_ms = await self._lease(invocation)
            except _Refused as refused:
                return refused.outcome
            outcome = await self._run(instance, invocation)
            outcome.cold, outcome.cold_ms = cold_ms is not None, cold_ms or 0.0
            return outcome
        finally:
            self._inflight -= 1
            if not self._inflight:
                self._drained.set()

    def reap_idle(self, now: float, ttl: float) -> int:
        """Stop instances idle longer than ``ttl`` seconds, keeping ``min_warm``."""
        surplus = len(self._idle) + len(self._busy) - self.version.min_warm
        idle = sorted(self._idle, key=lambda instance: instance.last_used)
        victims = [i for i in idle if now - i.last_used > ttl][: max(surplus, 0)]
        for instance in victims:
            instance.kill()
        return len(victims)

    async def close(self, drain: bool = True) -> None:
        """Stop taking requests; with ``drain`` let in-flight (and queued) ones finish.

        Concurrent calls share one close (shielded from their cancellation).
        """
        if self._close_task is None:
            self._closing = True
            self._close_task = asyncio.get_running_loop().create_task(self._close(drain))
        await asyncio.shield(self._close_task)

    async def _close(self, drain: bool) -> None:
        while drain and self._inflight:
            self._drained.clear()
            await self._drained.wait()
        while self._waiters:
            waiter = self._waiters.popleft()
            if not waiter.done():
                waiter.set_result(_CLOSED)
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        for instance in [*self._idle, *self._busy]:
            instance.kill()
        await self._templates.stop(TEMPLATE_EXIT_WAIT_S)

    # -- views ---------------------------------------------------------------

    def instance_pids(self) -> list[int]:
        """Pids of the live instances (idle and busy)."""
        return sorted(i.pid for i in (*self._idle, *self._busy))

    @property
    def template_pid(self) -> int | None:
        """The template's pid while it runs."""
        return self._templates.pid

    @property
    def load_logs(self) -> list[LogRecord]:
        """What the function's module printed or logged while it was imported."""
        return self._templates.load_logs

    # -- leasing -------------------------------------------------------------

    def _total(self) -> int:
        return len(self._idle) + len(self._busy) + self._starting

    async def _lease(self, invocation: Invocation) -> tuple[InstanceChannel, float | None]:
        if self._idle:
            instance = self._idle.pop()
            self._busy.add(instance)
            return instance, None
        if self._total() < self.version.max_instances:
            return await self._cold(invocation, reserved=False)
        if len(self._waiters) >= self._queue_limit:
            raise _Refused(self._overloaded(invocation))
        return await self._queue(invocation)

    async def _queue(self, invocation: Invocation) -> tuple[InstanceChannel, float | None]:
        loop = asyncio.get_running_loop()
        waiter = loop.create_future()
        self._waiters.append(waiter)
        timer = loop.call_later(self.version.timeout_ms / 1000, self._expire, waiter)
        try:
            got = await waiter
        except asyncio.CancelledError:
            self._abandon(waiter)
            raise
        finally:
            timer.cancel()
        if got is _EXPIRED:
            raise _Refused(self._overloaded(invocation))
        if got is _CLOSED:
            raise _Refused(self._shutting_down(invocation))
        if got is None:  # a slot was freed and reserved for us: start an instance
            return await self._cold(invocation, reserved=True)
        return got, None

    def _expire(self, waiter: asyncio.Future[Any]) -> None:
        if not waiter.done():
            waiter.set_result(_EXPIRED)
            self._waiters.remove(waiter)

    def _abandon(self, waiter: asyncio.Future[Any]) -> None:
        """A queued request was cancelled: pass on what it may have been handed."""
        if waiter in self._waiters:
            self._waiters.remove(waiter)
        if waiter.done() and not waiter.cancelled():
            got = waiter.result()
            if isinstance(got, InstanceChannel):
                self._release(got, answered=False)
            elif got is None:
                self._starting -= 1
                self._slot_freed()

    async def _cold(
        self, invocation: Invocation, *, reserved: bool
    ) -> tuple[InstanceChannel, float]:
        if not reserved:
            self._starting += 1
        started = time.perf_counter()
        try:
            instance = await self._spawn()
        except (SpawnError, PeerClosed, FunctionLoadError) as exc:
            self._starting -= 1
            self._slot_freed()
            raise _Refused(
                error_outcome(
                    invocation,
                    503,
                    "unavailable",
                    f"function {self.version.name} could not start an instance: {exc}",
                )
            ) from None
        except BaseException:
            self._starting -= 1
            self._slot_freed()
            raise
        self._starting -= 1
        self._busy.add(instance)
        return instance, (time.perf_counter() - started) * 1000

    def _release(self, instance: InstanceChannel, *, answered: bool = True) -> None:
        self._busy.discard(instance)
        if not instance.alive:
            return
        if answered:
            instance.calls += 1
            instance.last_used = time.monotonic()
        while self._waiters:
            waiter = self._waiters.popleft()
            if not waiter.done():
                self._busy.add(instance)
                waiter.set_result(instance)
                return
        self._idle.append(instance)

    def _slot_freed(self) -> None:
        """Room for one more instance: give it to a queued request, or top up."""
        while self._waiters:
            waiter = self._waiters.popleft()
            if not waiter.done():
                self._starting += 1  # reserved for that request
                waiter.set_result(None)
                return
        self._top_up()

    def _top_up(self) -> None:
        """Start instances in the background until ``min_warm`` are live."""
        for _ in range(self.version.min_warm - self._total()):
            if self._closing:
                return
            self._starting += 1  # reserved now, so a second top-up does not overshoot
            task = asyncio.get_running_loop().create_task(self._prewarm())
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    # -- calls ---------------------------------------------------------------

    async def _run(self, instance: InstanceChannel, invocation: Invocation) -> Outcome:
        timeout_ms = self.version.timeout_ms
        started = time.perf_counter()
        try:
            reply = await instance.call(request_frame(invocation), timeout_ms / 1000)
        except CallTimeout:
            instance.kill()
            logger.warning(
                "function %s: instance %d killed: timed out after %d ms",
                self._label,
                instance.pid,
                timeout_ms,
            )
            return error_outcome(
                invocation,
                504,
                "timeout",
                f"function {self.version.name} timed out after {timeout_ms} ms",
            )
        except PeerClosed:
            return await self._died(instance, invocation)
        except ProtocolError as exc:
            return self._invalid(instance, invocation, str(exc))
        except asyncio.CancelledError:
            instance.kill()  # it may still be running the request: never reuse it
            raise
        duration_ms = (time.perf_counter() - started) * 1000
        try:
            status, headers, body, error, logs = parse_reply(reply)
        except InvalidReply as exc:
            return self._invalid(instance, invocation, str(exc))
        if error == "memory":
            instance.kill()
            return self._memory(instance, invocation, logs)
        if instance.calls % SAMPLE_EVERY == 0:
            instance.sample_memory()
        self._release(instance)
        return Outcome(
            status,
            headers,
            body,
            duration_ms=duration_ms,
            error=error,
            logs=logs,
            memory_peak_kb=instance.memory_peak_kb,
        )

    async def _died(self, instance: InstanceChannel, invocation: Invocation) -> Outcome:
        if self._closing:
            return self._shutting_down(invocation)
        info = await instance.wait_exit(EXIT_REPORT_WAIT_S)
        if info is not None and info.out_of_memory(instance.base_rss_kb, self.version.memory_mb):
            return self._memory(instance, invocation, [])
        reason = info.describe() if info is not None else "closed its connection"
        logger.warning("function %s: instance %d %s", self._label, instance.pid, reason)
        outcome = error_outcome(invocation, 502, "crash", f"function {self.version.name} {reason}")
        outcome.memory_peak_kb = instance.memory_peak_kb
        return outcome

    def _memory(
        self, instance: InstanceChannel, invocation: Invocation, logs: list[LogRecord]
    ) -> Outcome:
        limit = self.version.memory_mb
        logger.warning(
            "function %s: instance %d killed: memory limit %d MB exceeded",
            self._label,
            instance.pid,
            limit,
        )
        outcome = error_outcome(
            invocation,
            502,
            "memory",
            f"function {self.version.name}: memory limit of {limit} MB exceeded",
        )
        outcome.logs = logs
        outcome.memory_peak_kb = instance.memory_peak_kb
        return outcome

    def _invalid(self, instance: InstanceChannel, invocation: Invocation, why: str) -> Outcome:
        instance.kill()
        logger.warning(
            "function %s: instance %d killed: invalid response: %s", self._label, instance.pid, why
        )
        outcome = error_outcome(
            invocation, 502, "crash", f"invalid response from function {self.version.name}"
        )
        outcome.logs = [LogRecord(time.time(), "error", f"invalid response: {why}")]
        return outcome

    def _shutting_down(self, invocation: Invocation) -> Outcome:
        return error_outcome(
            invocation, 503, "unavailable", f"function {self.version.name} is shutting down"
        )

    def _overloaded(self, invocation: Invocation) -> Outcome:
        return error_outcome(
            invocation,
            503,
            "overloaded",
            f"function {self.version.name} is at its limit of {self.version.max_instances} "
            "instances; retry later",
            [("retry-after", "1")],
        )

    # -- processes -----------------------------------------------------------

    async def _prewarm(self) -> None:
        """Start one instance into the idle list (its slot is already reserved)."""
        try:
            instance = await self._spawn()
        except (SpawnError, PeerClosed, FunctionLoadError) as exc:
            logger.warning("function %s: could not pre-warm an instance: %s", self._label, exc)
            return
        finally:
            self._starting -= 1
        self._release(instance, answered=False)
        instance.last_used = time.monotonic()

    async def _spawn(self) -> InstanceChannel:
        template = await self._templates.get()
        sock, pid = await template.spawn()
        try:
            instance = await InstanceChannel.attach(sock, pid, template.pid, self._on_lost)
        except BaseException:
            sock.close()  # the instance reads EOF and exits
            raise
        instance.last_used = time.monotonic()
        self._by_pid[pid] = instance
        return instance

    def _on_lost(self, instance: InstanceChannel) -> None:
        if instance in self._idle:
            self._idle.remove(instance)
        elif instance not in self._busy:
            return
        self._busy.discard(instance)
        self._slot_freed()

    def _on_instance_exit(self, info: ExitInfo) -> None:
        instance = self._by_pid.pop(info.pid, None)
        if instance is not None:
            instance.set_exit(info)

    def _on_template_lost(self, template: TemplateLink) -> None:
        for pid, instance in list(self._by_pid.items()):
            if not instance.alive:
                del self._by_pid[pid]
        if self._closing:
            return
        logger.warning(
            "function %s: template %d exited; restarting it on demand", self._label, template.pid
        )
        # Pre-warm again from a new template, unless this one died young: a
        # template that cannot stay up waits for demand instead of crash-looping.
        if time.monotonic() - template.started >= MIN_TEMPLATE_LIFE_S:
            self._top_up()


PoolFactory = Callable[[FunctionVersion], FunctionPool]


class Pools:
    """One worker's pools, keyed by :attr:`FunctionVersion.key`.

    Args:
        zygote: the worker's :class:`Zygote`, or a factory building it on first need.
        max_pools: warm pools kept; past it the least recently used one is retired.
        idle_ttl: seconds an instance may idle before :meth:`reap` stops it.
        js_factory: builds the pool of a ``"js"`` version (``edge.runtime.isolate``).
        on_evict: told of each version whose pool goes to make room (a platform event).
        limits: process and file limits of Python function processes.
    """

    def __init__(
        self,
        zygote: Zygote | Callable[[], Zygote],
        *,
        max_pools: int = 50,
        idle_ttl: float = 300.0,
        js_factory: PoolFactory | None = None,
        limits: Limits | None = None,
        on_evict: Callable[[FunctionVersion], None] | None = None,
    ) -> None:
        self._zygote = zygote if isinstance(zygote, Zygote) else None
        self._zygote_factory = None if isinstance(zygote, Zygote) else zygote
        self.max_pools = max_pools
        self.idle_ttl = idle_ttl
        self._js_factory = js_factory
        self._on_evict = on_evict
        self._limits = limits
        self._pools: dict[str, FunctionPool] = {}
        self._starting: dict[str, asyncio.Task[FunctionPool]] = {}
        self._retiring: set[asyncio.Task[None]] = set()
        self._closed = False

    @property
    def zygote(self) -> Zygote:
        """The worker's zygote (built on first use when given a factory)."""
        if self._zygote is None:
            assert self._zygote_factory is not None
            self._zygote = self._zygote_factory()
        return self._zygote

    async def get_or_start(self, version: FunctionVersion) -> FunctionPool:
        """The started pool of ``version``; concurrent callers share one start.

        Raises:
            FunctionLoadError: the function could not be loaded.
        """
        pool = self._pools.get(version.key)
        if pool is not None:
            return pool
        if self._closed:
            raise FunctionLoadError("the runtime worker is shutting down")
        task = self._starting.get(version.key)
        if task is None:
            task = asyncio.get_running_loop().create_task(self._start(version))
            self._starting[version.key] = task
            task.add_done_callback(lambda done: self._started(version.key, done))
        return await asyncio.shield(task)

    def get(self, key: str) -> FunctionPool | None:
        """The started pool with this key, if any."""
        return self._pools.get(key)

    def keys(self) -> list[str]:
        """Keys of the started pools."""
        return list(self._pools)

    async def retire(self, key: str) -> None:
        """Drain and close a pool (shielded: a cancelled caller does not stop it)."""
        task = self._retire_in_background(key)
        if task is not None:
            await asyncio.shield(task)

    async def reap(self, now: float) -> int:
        """Stop instances idle past ``idle_ttl`` in every pool; returns how many."""
        return sum(pool.reap_idle(now, self.idle_ttl) for pool in list(self._pools.values()))

    async def close(self) -> None:
        """Close every pool (letting in-flight requests finish), then the zygote."""
        self._closed = True
        for task in list(self._starting.values()):
            task.cancel()
        await asyncio.gather(*self._starting.values(), return_exceptions=True)
        for key in list(self._pools):
            self._retire_in_background(key)
        while self._retiring:
            await asyncio.gather(*self._retiring, return_exceptions=True)
        if self._zygote is not None:
            await self._zygote.close()

    async def _start(self, version: FunctionVersion) -> FunctionPool:
        pool = self._make(version)
        try:
            await pool.start()
        except BaseException:
            await pool.close(drain=False)
            raise
        self._pools[version.key] = pool
        self._evict(keep=version.key)
        return pool

    def _started(self, key: str, task: asyncio.Task[FunctionPool]) -> None:
        self._starting.pop(key, None)
        if not task.cancelled():
            task.exception()  # retrieved here even if every caller was cancelled

    def _make(self, version: FunctionVersion) -> FunctionPool:
        if version.runtime == "python":
            return PythonPool(version, self.zygote, limits=self._limits)
        if version.runtime == "js" and self._js_factory is not None:
            return self._js_factory(version)
        raise FunctionLoadError(f"{version.path}: no runtime for {version.runtime!r} functions")

    def _evict(self, keep: str) -> None:
        """Past ``max_pools``, retire the least recently used pools (not ``keep``)."""
        while len(self._pools) > self.max_pools:
            victim = min(
                (k for k in self._pools if k != keep), key=lambda k: self._pools[k].last_used
            )
            logger.info("retiring the least recently used pool %s", victim)
            if self._on_evict is not None:
                self._on_evict(self._pools[victim].version)
            self._retire_in_background(victim)

    def _retire_in_background(self, key: str) -> asyncio.Task[None] | None:
        pool = self._pools.pop(key, None)
        if pool is None:
            return None
        task = asyncio.get_running_loop().create_task(pool.close(drain=True))
        self._retiring.add(task)
        task.add_done_callback(self._retiring.discard)
        return task
