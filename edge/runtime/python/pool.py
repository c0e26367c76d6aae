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
``manage_workers``: :meth:`~edge.runtime.python.slots.Slots.reserve` takes a slot (up to
``max_instances``), :meth:`PythonPool._fill` turns it into an instance or
:meth:`PythonPool._unreserve` gives it back, and :meth:`PythonPool._converge`
hands free slots to queued requests first, then tops the pool up to ``min_warm``.

Pipelining (:mod:`edge.runtime.python.slots`). When every instance is busy
and no new one may start, a newcomer is written straight into the socket of
the busy instance whose request started first, so that the instance runs it
right after replying instead of sleeping in ``poll()``, and several replies
come back per wake-up. It still runs one request at a time; its time limit
starts when it starts (:mod:`edge.runtime.python.calls`). If its instance
dies before the reply ahead of it came in, it never started: it is run once
more on another instance, never lost. If the reply ahead had come in, it may
have started: it gets the instance's fault answer, never run twice. Requests
queued in sockets count against ``queue_limit`` like those waiting. A fast
function (its handler takes under 5 ms on average, as its instances report)
is pipelined sooner: once it runs its worker's share of the CPUs, a request
queues behind a young running one before an idle instance is woken.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Coroutine
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
from edge.runtime.python.client import Zygote
from edge.runtime.python.control import ExitInfo, SpawnError
from edge.runtime.python.failures import FaultAnswers
from edge.runtime.python.frames import (
    InvalidReply,
    parse_head,
    parse_reply,
    reply_time,
    request_frame,
)
from edge.runtime.python.process.sandbox import Limits
from edge.runtime.python.slots import CLOSED, EXPIRED, PIPELINE_DEPTH, RESERVED, Slots
from edge.runtime.python.sockets import CallTimeout, InstanceChannel, NotStarted, Verified
from edge.runtime.python.streamed import InstanceStream
from edge.runtime.python.templates import TemplateLink, TemplateSource
from edge.runtime.streaming import BodyStream
from edge.runtime.wire import MIB, PeerClosed, ProtocolError

__all__ = ["PythonPool", "Zygote"]

logger = logging.getLogger(__name__)

# VmHWM costs a ~12 us pread of /proc: read on an instance's first call and
# every SAMPLE_EVERY-th after it, but at most once per SAMPLE_GAP_S per pool (at
# 7,000 requests/s a worker read it 440 times a second, ~0.8 us per request);
# its exit report (ru_maxrss) has the final peak, and the cgroup's peak counts
# every process of the version whichever instance samples it.
SAMPLE_EVERY = 16
SAMPLE_GAP_S = 0.05
TEMPLATE_EXIT_WAIT_S = 2.0
MIN_TEMPLATE_LIFE_S = 1.0
# A reply frame holds the body plus headers and up to 1000 log lines of 16 KiB.
REPLY_SLACK = 20 * MIB


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
        pipeline_depth: requests that may be queued in a busy instance's socket
            behind its running one (0: none).
        parallel: instances of a fast function that run at once before its
            requests queue behind running ones.

    Attributes:
        retried: pipelined requests run again elsewhere, their instance
            having gone before starting them.
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
        pipeline_depth: int = PIPELINE_DEPTH,
        parallel: int = 1,
    ) -> None:
        self.version = version
        self._max_response = max_response
        self._faults = FaultAnswers(version, max_response, lambda: self._templates.group)
        self._side = SideRequests(kv, version) if kv is not None else None
        self.last_used = time.monotonic()
        self._queue_limit = 2 * version.max_instances if queue_limit is None else queue_limit
        self._label = self._faults.label
        self._templates = TemplateSource(
            version,
            zygote,
            limits=limits or Limits(),
            load_timeout=load_timeout,
            on_exit=self._on_instance_exit,
            on_lost=self._on_template_lost,
            attach=self._attach,
            cgroups=cgroups,
        )
        self._slots = Slots(version.max_instances, self._unreserve, pipeline_depth, parallel)
        self.retried = 0
        self._by_pid: dict[int, InstanceChannel] = {}
        self._inflight = 0
        self._drained = asyncio.Event()
        self._closing = False
        self._killing = False
        self._close_task: asyncio.Task[None] | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self._finishing: set[asyncio.Task[None]] = set()  # submitted requests' faults
        self._young_deaths = 0
        self._group_peak_kb = 0
        self._sample_due = 0.0  # time.monotonic() from which to sample memory again

    # -- FunctionPool --------------------------------------------------------

    async def start(self) -> None:
        """Load the function (raises FunctionLoadError) and pre-warm ``min_warm``."""
        await self._templates.get()
        warm: list[Coroutine[Any, Any, None]] = []
        while len(warm) < self.version.min_warm and self._slots.reserve():
            warm.append(self._prewarm())
        await asyncio.gather(*warm)

    def submit(self, invocation: Invocation, done: Callable[[Outcome], None]) -> bool:
        """:meth:`invoke` without a task, when an instance takes the request at once
        (idle; a busy one with room behind, as :meth:`_lease` picks): its reply's future
        calls back, and ``done`` gets the outcome. A fault that must wait (a crash's
        exit report, a retry elsewhere) finishes in a task. False, and nothing
        done, when no instance is at hand: :meth:`invoke` then waits or starts one.

        Nobody cancels such a request: a client that leaves does not stop it; it
        runs to its reply or its time limit (as a JavaScript request does).
        """
        if self._closing:
            return False
        slots = self._slots
        instance = slots.lease_fast(self._queue_limit) or slots.lease_idle()
        if instance is None and slots.full() and slots.waiting() < self._queue_limit:
            instance = slots.lease_behind()  # as _lease does once no instance may start
        if instance is None:
            return False
        try:
            call = instance.submit(request_frame(invocation), self.version.timeout_ms / 1000)
        except NotStarted:
            slots.release(instance, answered=False)
            return False
        self.last_used = time.monotonic()
        self._inflight += 1

        def settled(future: asyncio.Future[Any]) -> None:
            exc = future.exception()
            if exc is not None:
                self._finish(self._submitted_failed(instance, invocation, exc), invocation, done)
                return
            duration_ms = (time.perf_counter() - call.started) * 1000
            try:
                outcome = self._answer(instance, invocation, future.result(), duration_ms)
            except Exception:
                outcome = self._broken(invocation, "reading its reply")
            self._leave()
            done(outcome)

        call.future.add_done_callback(settled)
        return True

    async def _submitted_failed(
        self, instance: InstanceChannel, invocation: Invocation, exc: BaseException
    ) -> Outcome:
        if isinstance(exc, NotStarted):
            return await self._retry(instance, invocation, retried=False)
        return await self._faults.of_call(instance, invocation, exc, closing=self._closing)

    def _finish(
        self,
        finishing: Coroutine[Any, Any, Outcome],
        invocation: Invocation,
        done: Callable[[Outcome], None],
    ) -> None:
        """Await a submitted request's fault in a task, then call ``done``."""

        async def finish() -> None:
            try:
                outcome = await finishing
            except Exception:
                outcome = self._broken(invocation, "answering its failed call")
            self._leave()
            done(outcome)

        task = asyncio.get_running_loop().create_task(finish())
        self._finishing.add(task)
        task.add_done_callback(self._finishing.discard)

    def _broken(self, invocation: Invocation, doing: str) -> Outcome:
        """Log the exception being handled (a bug of ours, not the function's) and
        answer 503 for the submitted request it stopped."""
        logger.exception("function %s: %s", self._label, doing)
        return self._faults.unavailable(invocation, f"the worker failed {doing}")

    def _leave(self) -> None:
        self._inflight -= 1
        if not self._inflight:
            self._drained.set()

    async def invoke(self, invocation: Invocation) -> Outcome:
        """Run one request; function faults become 5xx Outcomes, never exceptions."""
        self.last_used = time.monotonic()
        if self._closing:
            return self._faults.shutting_down(invocation)
        self._inflight += 1
        try:
            return await self._attempt(invocation)
        finally:
            self._leave()

    async def _attempt(self, invocation: Invocation, *, retry: bool = False) -> Outcome:
        try:
            instance, cold_ms = await self._lease(invocation, pipeline=not retry)
        except _Refused as refused:
            return refused.outcome
        try:
            outcome = await self._run(instance, invocation)
        except NotStarted:
            return await self._retry(instance, invocation, retried=retry)
        outcome.cold, outcome.cold_ms = cold_ms is not None, cold_ms or 0.0
        return outcome

    async def _retry(
        self, instance: InstanceChannel, invocation: Invocation, *, retried: bool
    ) -> Outcome:
        """A request queued in an instance that went away before starting it:
        run it once more, on another instance, not pipelined."""
        if retried or self._killing:
            reason = "its instance stopped before it could start the request"
            return self._faults.unavailable(invocation, reason)
        self.retried += 1
        logger.info(
            "function %s: instance %d went away before starting request %s; running it elsewhere",
            self._label,
            instance.pid,
            invocation.request_id,
        )
        return await self._attempt(invocation, retry=True)

    def reap_idle(self, now: float, ttl: float) -> int:
        """Stop instances idle longer than ``ttl`` seconds, keeping ``min_warm``."""
        surplus = len(self._slots.idle) + len(self._slots.busy) - self.version.min_warm
        idle = sorted(self._slots.idle, key=lambda instance: instance.last_used)
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
        self._slots.close()
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self._killing = True  # what is queued in their sockets is not retried
        for instance in [*self._slots.idle, *self._slots.busy]:
            instance.kill()
        await self._templates.stop(TEMPLATE_EXIT_WAIT_S)

    # -- views ---------------------------------------------------------------

    @property
    def pipelined(self) -> int:
        """Requests queued in a busy instance's socket so far."""
        return self._slots.pipelined

    def instance_pids(self) -> list[int]:
        """Pids of the live instances (idle and busy)."""
        return sorted(i.pid for i in (*self._slots.idle, *self._slots.busy))

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

    async def _fill(self) -> InstanceChannel:
        """Start an instance in a reserved slot; the caller takes it or hands it on.

        If it cannot start, the slot goes to a queued request, if any; it is not
        refilled at once, so a function that cannot start does not crash-loop.
        """
        try:
            instance = await self._spawn()
        except BaseException:
            self._unreserve(top_up=False)
            raise
        self._slots.starting -= 1  # the slot now holds the instance
        return instance

    def _unreserve(self, *, top_up: bool = True) -> None:
        """Give back a reserved slot that no instance filled."""
        self._slots.starting -= 1
        self._converge(top_up=top_up)

    def _converge(self, *, top_up: bool = True) -> None:
        """The one step that uses free slots: queued requests first, then ``min_warm``."""
        slots = self._slots
        slots.grant()
        # Two young template deaths in a row: wait for demand, do not crash-loop.
        top_up = top_up and not self._closing and self._young_deaths < 2
        while top_up and slots.total() < self.version.min_warm:
            if not slots.reserve():
                return
            task = asyncio.get_running_loop().create_task(self._prewarm())
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    async def _lease(
        self, invocation: Invocation, *, pipeline: bool = True
    ) -> tuple[InstanceChannel, float | None]:
        """An instance for this request: for a fast function, a busy one with room
        behind its young running request; else idle, new, busy (queued behind its
        running request), or the first whole one to free up. A retry (not
        ``pipeline``) is neither pipelined nor refused for a full queue."""
        slots = self._slots
        instance = (pipeline and slots.lease_fast(self._queue_limit)) or slots.lease_idle()
        if instance is not None:
            return instance, None
        if slots.reserve():
            return await self._cold(invocation)
        if pipeline:
            if slots.waiting() >= self._queue_limit:
                raise _Refused(self._faults.overloaded(invocation))
            instance = slots.lease_behind()
            if instance is not None:
                return instance, None
        got = await slots.wait(self.version.timeout_ms / 1000, first=not pipeline)
        if got is EXPIRED:
            raise _Refused(self._faults.overloaded(invocation))
        if got is CLOSED:
            raise _Refused(self._faults.shutting_down(invocation))
        if got is RESERVED:  # a slot was reserved for us: start an instance in it
            return await self._cold(invocation)
        return got, None

    async def _cold(self, invocation: Invocation) -> tuple[InstanceChannel, float]:
        """Start an instance for this request in the slot reserved for it."""
        started = time.perf_counter()
        try:
            instance = await self._fill()
        except (SpawnError, PeerClosed, FunctionLoadError) as exc:
            reason = f"could not start an instance: {exc}"
            raise _Refused(self._faults.unavailable(invocation, reason)) from None
        self._slots.take(instance)
        return instance, (time.perf_counter() - started) * 1000

    # -- calls ---------------------------------------------------------------

    async def _run(self, instance: InstanceChannel, invocation: Invocation) -> Outcome:
        """Call the instance; raises NotStarted if it went before starting the request."""
        try:
            reply, started = await instance.call(
                request_frame(invocation), self.version.timeout_ms / 1000
            )
        except NotStarted:
            raise
        except (CallTimeout, ProtocolError) as exc:  # PeerClosed is a ProtocolError
            return await self._faults.of_call(instance, invocation, exc, closing=self._closing)
        except asyncio.CancelledError:
            # The channel killed it (the request had started) or will drop the
            # reply (it was queued): either way this request's place is free.
            self._slots.release(instance, answered=False)
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
            return self._faults.invalid(instance, invocation, str(exc))
        if len(body) > self._max_response:
            return self._faults.too_large(instance, invocation)
        if error == "memory":
            instance.kill()
            return self._faults.memory(instance, invocation, logs)
        if instance.calls % SAMPLE_EVERY == 0:
            now = time.monotonic()
            if not instance.calls or now >= self._sample_due:
                self._sample_due = now + SAMPLE_GAP_S
                self._sample_memory(instance)
        took = reply_time(reply)
        if took is not None:
            self._slots.observe(took)
        self._slots.release(instance)
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
        self._slots.streams_seen = True
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
            self._slots.release(instance)
        elif instance.alive:
            instance.kill()

    def _sample_memory(self, instance: InstanceChannel) -> None:
        """The instance's VmHWM, and the peak of its version's cgroup: every process
        the function made, with the shared memory and files RLIMIT_DATA misses."""
        instance.sample_memory()
        if self.group is not None:
            self._group_peak_kb = self.group.memory_peak_kb()

    # -- processes -----------------------------------------------------------

    async def _prewarm(self) -> None:
        """Start one instance in a reserved slot, into the idle list (or to a waiter)."""
        try:
            instance = await self._fill()
        except (SpawnError, PeerClosed, FunctionLoadError) as exc:
            logger.warning("function %s: could not pre-warm an instance: %s", self._label, exc)
            return
        instance.last_used = time.monotonic()
        self._slots.hand_on(instance)

    async def _spawn(self) -> InstanceChannel:
        instance = await (await self._templates.get()).instance()
        instance.last_used = time.monotonic()
        if self._side is not None:
            instance.handle("kv", self._side.handler(instance.send_frame))
        self._by_pid[instance.pid] = instance
        return instance

    def _attach(self, instance: Verified) -> Coroutine[Any, Any, InstanceChannel]:
        return InstanceChannel.attach(instance, self._on_lost, self._max_response + REPLY_SLACK)

    def _on_lost(self, instance: InstanceChannel) -> None:
        if self._slots.lost(instance):
            self._converge()

    def _on_instance_exit(self, info: ExitInfo) -> None:
        instance = self._by_pid.pop(info.pid, None)
        if instance is not None:
            instance.set_exit(info)

    def _on_template_lost(self, template: TemplateLink) -> None:
        # Its instances die with it, and nobody is left to report how.
        for instance in self._by_pid.values():
            instance.orphan()
        self._by_pid.clear()
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
