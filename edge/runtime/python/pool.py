"""Python function pools: the warm instances of one function version, per worker.

A worker holds one :class:`~edge.runtime.python.client.Zygote`; its
:class:`~edge.runtime.registry.PoolRegistry` holds a :class:`PythonPool` per
Python function version. A pool asks the zygote for a template (which imports the function;
a failure raises :class:`~edge.runtime.invocation.FunctionLoadError`), then
forks instances from it: pre-warmed (``min_warm``), on demand (the cold
start), up to ``max_instances`` at once. Beyond that requests wait in a
bounded queue, then get 503. Every limit is enforced from here, outside the
function: the timeout (SIGKILL and 504), memory (502), crashes (502, the
instance is replaced on the next request), malformed replies (502), each
answered through the fault table (:mod:`edge.runtime.faults`).

Instance slots are counted in one place, shaped like gunicorn's
``manage_workers``: :meth:`PythonPool._reserve` takes a slot (up to
``max_instances``), :meth:`PythonPool._fill` turns it into an instance or
:meth:`PythonPool._unreserve` gives it back, and :meth:`PythonPool._converge`
hands free slots to queued requests first, then tops the pool up to ``min_warm``.

All bookkeeping happens on the worker's event loop; nothing here blocks.
"""

from __future__ import annotations

import asyncio
import collections
import logging
import time
from collections.abc import Coroutine
from typing import Any

from edge.runtime.faults import fault_outcome
from edge.runtime.invocation import (
    FunctionLoadError,
    FunctionVersion,
    Invocation,
    LogRecord,
    Outcome,
)
from edge.runtime.kv import KVService, SideRequests
from edge.runtime.python.cgroups import Cgroups, Group
from edge.runtime.python.client import TemplateLink, TemplateSource, Zygote
from edge.runtime.python.frames import InvalidReply, parse_head, parse_reply, request_frame
from edge.runtime.python.process.sandbox import Limits
from edge.runtime.python.sockets import CallTimeout, ExitInfo, InstanceChannel, SpawnError
from edge.runtime.python.streamed import InstanceStream
from edge.runtime.streaming import BodyStream
from edge.runtime.wire import MIB, FrameTooLarge, PeerClosed, ProtocolError

__all__ = ["PythonPool", "Zygote"]

logger = logging.getLogger(__name__)

# VmHWM costs a ~12 us pread of /proc: read on an instance's first call and
# every SAMPLE_EVERY-th after it; its exit report (ru_maxrss) has the final peak.
SAMPLE_EVERY = 16
EXIT_REPORT_WAIT_S = 1.0
TEMPLATE_EXIT_WAIT_S = 2.0
MIN_TEMPLATE_LIFE_S = 1.0
# A reply frame holds the body plus headers and up to 1000 log lines of 16 KiB.
REPLY_SLACK = 20 * MIB
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
        max_response: the largest buffered response body, in bytes; a bigger
            one is answered 502 (stream large bodies instead).
        cgroups: the install's cgroups (:mod:`edge.runtime.python.cgroups`):
            closing the pool kills every process of its version's group.
        kv: runs the KV operations its instances send mid-request.
    """

    def __init__(
        self,
        version: FunctionVersion,
        zygote: Zygote,
        *,
        limits: Limits | None = None,
        load_timeout: float = 10.0,
        queue_limit: int | None = None,
        max_response: int = 32 * MIB,
        cgroups: Cgroups | None = None,
        kv: KVService | None = None,
    ) -> None:
        self.version = version
        self._max_response = max_response
        self._side = SideRequests(kv, version) if kv is not None else None
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
            cgroups=cgroups,
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
        self._young_deaths = 0
        self._group_peak_kb = 0
        self._oom_kills = 0

    # -- FunctionPool --------------------------------------------------------

    async def start(self) -> None:
        """Load the function (raises FunctionLoadError) and pre-warm ``min_warm``."""
        await self._templates.get()
        warm: list[Coroutine[Any, Any, None]] = []
        while len(warm) < self.version.min_warm and self._reserve():
            warm.append(self._prewarm())
        await asyncio.gather(*warm)

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
    def group(self) -> Group | None:
        """The cgroup of this version in this worker, once its template started."""
        return self._templates.group

    @property
    def template_pid(self) -> int | None:
        """The template's pid while it runs."""
        return self._templates.pid

    @property
    def spare_pid(self) -> int | None:
        """The spare instance held for the next cold start, if any (not counted
        in :meth:`instance_pids`: it has not started)."""
        return self._templates.spare_pid

    @property
    def load_logs(self) -> list[LogRecord]:
        """What the function's module printed or logged while it was imported."""
        return self._templates.load_logs

    # -- leasing: every instance slot is reserved and freed here -------------

    def _total(self) -> int:
        return len(self._idle) + len(self._busy) + self._starting

    def _reserve(self) -> bool:
        """Take a slot for an instance about to start, if ``max_instances`` allows."""
        if self._total() >= self.version.max_instances:
            return False
        self._starting += 1
        return True

    async def _fill(self) -> InstanceChannel:
        """Start an instance in a reserved slot; it comes back busy.

        If it cannot start, the slot goes to a queued request, if any; it is not
        refilled at once, so a function that cannot start does not crash-loop.
        """
        try:
            instance = await self._spawn()
        except BaseException:
            self._unreserve(top_up=False)
            raise
        self._starting -= 1  # the slot now holds the instance
        self._busy.add(instance)
        return instance

    def _unreserve(self, *, top_up: bool = True) -> None:
        """Give back a reserved slot that no instance filled."""
        self._starting -= 1
        self._converge(top_up=top_up)

    def _converge(self, *, top_up: bool = True) -> None:
        """The one step that uses free slots: queued requests first, then ``min_warm``."""
        while self._waiters:
            if self._waiters[0].done():
                self._waiters.popleft()
            elif self._reserve():
                self._waiters.popleft().set_result(None)  # it starts an instance itself
            else:
                break
        # Two young template deaths in a row: wait for demand, do not crash-loop.
        top_up = top_up and not self._closing and self._young_deaths < 2
        while top_up and self._total() < self.version.min_warm:
            if not self._reserve():
                return
            task = asyncio.get_running_loop().create_task(self._prewarm())
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    async def _lease(self, invocation: Invocation) -> tuple[InstanceChannel, float | None]:
        if self._idle:
            instance = self._idle.pop()
            self._busy.add(instance)
            return instance, None
        if self._reserve():
            return await self._cold(invocation)
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
        if got is None:  # a slot was reserved for us: start an instance in it
            return await self._cold(invocation)
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
                self._unreserve()

    async def _cold(self, invocation: Invocation) -> tuple[InstanceChannel, float]:
        """Start an instance for this request in the slot reserved for it."""
        started = time.perf_counter()
        try:
            instance = await self._fill()
        except (SpawnError, PeerClosed, FunctionLoadError) as exc:
            raise _Refused(
                fault_outcome(
                    "unavailable",
                    self.version,
                    invocation.request_id,
                    reason=f"could not start an instance: {exc}",
                )
            ) from None
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
            return fault_outcome("timeout", self.version, invocation.request_id)
        except PeerClosed:
            return await self._died(instance, invocation)
        except FrameTooLarge:
            return self._too_large(instance, invocation)
        except ProtocolError as exc:
            return self._invalid(instance, invocation, str(exc))
        except asyncio.CancelledError:
            instance.kill()  # it may still be running the request: never reuse it
            raise
        return self._answer(instance, invocation, reply, (time.perf_counter() - started) * 1000)

    def _answer(
        self, instance: InstanceChannel, invocation: Invocation, reply: Any, duration_ms: float
    ) -> Outcome:
        """Check an instance's reply (APPSEC: untrusted) and release the instance."""
        try:
            if reply.__class__ is dict and "k" in reply:
                return self._streamed(instance, parse_head(reply), duration_ms)
            status, headers, body, error, logs = parse_reply(reply)
        except InvalidReply as exc:
            return self._invalid(instance, invocation, str(exc))
        if len(body) > self._max_response:
            return self._too_large(instance, invocation)
        if error == "memory":
            instance.kill()
            return self._memory(instance, invocation, logs)
        if instance.calls % SAMPLE_EVERY == 0:
            self._sample_memory(instance)
        self._release(instance)
        if error == "exception":
            outcome = fault_outcome("exception", self.version, invocation.request_id, logs=logs)
        else:
            outcome = Outcome(status, headers, body, logs=logs)
        outcome.duration_ms = duration_ms
        outcome.memory_peak_kb = max(instance.memory_peak_kb, self._group_peak_kb)
        return outcome

    def _streamed(
        self, instance: InstanceChannel, head: tuple[int, list[tuple[str, str]]], ttfb_ms: float
    ) -> Outcome:
        """A streamed reply: the instance stays busy (and counted in flight)
        until the stream is over."""
        self._inflight += 1
        stream = InstanceStream(instance, self._label, self._stream_over)
        outcome = Outcome(*head, b"", stream=stream.body)
        outcome.duration_ms = ttfb_ms
        outcome.memory_peak_kb = max(instance.memory_peak_kb, self._group_peak_kb)
        return outcome

    def _stream_over(self, instance: InstanceChannel, body: BodyStream) -> None:
        self._inflight -= 1
        if not self._inflight:
            self._drained.set()
        if body.error in (None, "exception") and instance.alive:  # it sent its end frame
            self._release(instance)
        elif instance.alive:
            instance.kill()

    def _too_large(self, instance: InstanceChannel, invocation: Invocation) -> Outcome:
        instance.kill()  # its reply is unread (or dropped): the socket is out of step
        limit_mb = self._max_response // MIB
        logger.warning(
            "function %s: instance %d killed: response over %d MB",
            self._label,
            instance.pid,
            limit_mb,
        )
        return fault_outcome(
            "response_too_large", self.version, invocation.request_id, limit_mb=limit_mb
        )

    def _sample_memory(self, instance: InstanceChannel) -> None:
        """The instance's VmHWM, and the peak of its version's cgroup: every process
        the function made, with the shared memory and files RLIMIT_DATA misses."""
        instance.sample_memory()
        if self.group is not None:
            self._group_peak_kb = self.group.memory_peak_kb()

    async def _died(self, instance: InstanceChannel, invocation: Invocation) -> Outcome:
        if self._closing:
            return self._shutting_down(invocation)
        info = await instance.wait_exit(EXIT_REPORT_WAIT_S)
        if info is not None and info.out_of_memory(instance.base_rss_kb, self.version.memory_mb):
            return self._memory(instance, invocation, [])
        if self._oom_killed():
            return self._memory(instance, invocation, [])
        reason = info.describe() if info is not None else "closed its connection"
        logger.warning("function %s: instance %d %s", self._label, instance.pid, reason)
        return fault_outcome(
            "crash",
            self.version,
            invocation.request_id,
            memory_peak_kb=instance.memory_peak_kb,
            reason=reason,
        )

    def _oom_killed(self) -> bool:
        """Whether the kernel killed a process for the version cgroup's memory limit."""
        kills = self.group.oom_kills() if self.group is not None else 0
        killed, self._oom_kills = kills > self._oom_kills, kills
        return killed

    def _memory(
        self, instance: InstanceChannel, invocation: Invocation, logs: list[LogRecord]
    ) -> Outcome:
        logger.warning(
            "function %s: instance %d killed: memory limit %d MB exceeded",
            self._label,
            instance.pid,
            self.version.memory_mb,
        )
        return fault_outcome(
            "memory",
            self.version,
            invocation.request_id,
            logs=logs,
            memory_peak_kb=instance.memory_peak_kb,
        )

    def _invalid(self, instance: InstanceChannel, invocation: Invocation, why: str) -> Outcome:
        instance.kill()
        logger.warning(
            "function %s: instance %d killed: invalid response: %s", self._label, instance.pid, why
        )
        return fault_outcome(
            "invalid_response",
            self.version,
            invocation.request_id,
            logs=[LogRecord(time.time(), "error", f"invalid response: {why}")],
        )

    def _shutting_down(self, invocation: Invocation) -> Outcome:
        return fault_outcome(
            "unavailable", self.version, invocation.request_id, reason="it is shutting down"
        )

    def _overloaded(self, invocation: Invocation) -> Outcome:
        return fault_outcome(
            "overloaded", self.version, invocation.request_id, limit=self.version.max_instances
        )

    # -- processes -----------------------------------------------------------

    async def _prewarm(self) -> None:
        """Start one instance in a reserved slot, into the idle list (or to a waiter)."""
        try:
            instance = await self._fill()
        except (SpawnError, PeerClosed, FunctionLoadError) as exc:
            logger.warning("function %s: could not pre-warm an instance: %s", self._label, exc)
            return
        self._release(instance, answered=False)
        instance.last_used = time.monotonic()

    async def _spawn(self) -> InstanceChannel:
        template = await self._templates.get()
        sock, pid = template.take_spare() or await template.spawn()
        try:
            instance = await InstanceChannel.attach(
                sock, pid, template.pid, self._on_lost, self._max_response + REPLY_SLACK
            )
        except BaseException:
            sock.close()  # the instance reads EOF and exits
            raise
        instance.last_used = time.monotonic()
        if self._side is not None:
            instance.handle("kv", self._side.handler(instance.send_frame))
        self._by_pid[pid] = instance
        return instance

    def _on_lost(self, instance: InstanceChannel) -> None:
        if instance in self._idle:
            self._idle.remove(instance)
        elif instance not in self._busy:
            return
        self._busy.discard(instance)
        self._converge()

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
        # Pre-warm again from a new template, unless templates keep dying young
        # (see _converge). One young death is tolerated: a zygote killed right
        # after a deploy takes a fresh template with it.
        young = time.monotonic() - template.started < MIN_TEMPLATE_LIFE_S
        self._young_deaths = self._young_deaths + 1 if young else 0
        self._converge()
