"""Spare contexts: a fresh V8 isolate with the Web API prelude evaluated ahead.

Runs in the V8 host process (:mod:`edge.runtime.js.host`), on its event loop.
Most of a JavaScript cold start is not the function's module but what comes
before it: a new ``MiniRacer`` (an isolate and its thread) and the ~190 KB Web
API prelude (``modules.RUNTIME_FILES``). As a Python template keeps an
instance forked ahead, the host keeps one :class:`Racer` ready: a cold start
takes it and evaluates only its module; the next spare is prepared
``REFILL_DELAY_S`` later, so its work (~10 ms of CPU) competes neither with the
cold start nor with the requests that usually follow it at once.

APPSEC: a spare has run nothing but the platform's prelude. Each is a new
isolate, taken by exactly one function version and never given back, so no
function's state can reach another through it. Until it is taken its V8 hard
heap limit and its ArrayBuffer limit (:mod:`edge.runtime.js.buffers`) are the
smallest any function may have (``MIN_MEMORY_MB``); the taker sets its own
(``memory_mb``) before running any of its code.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import deque
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack
from dataclasses import dataclass
from typing import Any

from py_mini_racer import JSEvalException, JSMappedObject, MiniRacer, mini_racer

from edge.manifest import MIN_MEMORY_MB
from edge.runtime.js.buffers import BufferLimits, BufferWatch
from edge.runtime.js.entry import Entry
from edge.runtime.js.modules import LoadError, first_line
from edge.runtime.js.threadstate import Pin

logger = logging.getLogger(__name__)

MIB = 1024 * 1024
SPARE_MEMORY_MB = MIN_MEMORY_MB  # a spare's hard heap limit until it is taken
PRELUDE_TIMEOUT_S = 10.0
# Platform requests through the dispatcher, so that a function's first request
# does not pay for compiling it (js/dispatch.js, internal.rehearse).
REHEARSAL = "__edgeInternal.rehearse()"
# How long after a spare is taken the next one is prepared. Sooner, and it ran
# beside the request after a cold start (+1 ms p50 on it, measured with
# bench.cold); cold starts closer together than this find no spare ready.
REFILL_DELAY_S = 0.05


@dataclass(eq=False)
class Racer:
    """A context with the prelude evaluated, not yet any function's.

    Attributes:
        mr: the context (its own isolate).
        stack: closes it (and whatever its owner registers on it later).
        internal: the prelude's ``__edgeInternal`` object, whose ``ping`` (the
            JS->Python notification ``js/dispatch.js`` announces results with)
            is registered already and calls :attr:`on_ping`.
        prelude_kb: V8 heap in use after the prelude, before any function code.
        entry: how batches enter it (:mod:`edge.runtime.js.entry`).
        buffers: its ArrayBuffer limit (``None``: unwatched, see :mod:`edge.runtime.js.buffers`).
        on_ping: set by the taker.
    """

    mr: MiniRacer
    stack: ExitStack
    internal: JSMappedObject
    prelude_kb: int
    entry: Entry
    buffers: BufferWatch | None = None
    on_ping: Callable[[Any], None] | None = None

    def ping(self, handle: Any) -> None:
        if self.on_ping is not None:
            self.on_ping(handle)


def _new_racer(
    stack: ExitStack, loop: asyncio.AbstractEventLoop, buffers: BufferLimits
) -> tuple[MiniRacer, BufferWatch | None]:
    """A context whose callbacks land on ``loop``, and its ArrayBuffer limit
    (called in a thread: it blocks ~3 ms)."""
    pin = Pin()
    stack.callback(pin.release)  # once the context is freed (the stack unwinds LIFO)
    mr = stack.enter_context(mini_racer(event_loop=loop))
    pin.attach(mr)
    # APPSEC: watched before any code but the platform's runs in it.
    watch = buffers.watch(mr, SPARE_MEMORY_MB * MIB)
    if watch is not None:
        stack.callback(watch.close)  # before the context is freed (the stack unwinds LIFO)
    return mr, watch


async def prepare(runtime_js: str, buffers: BufferLimits) -> Racer:
    """Create a context and evaluate the prelude in it.

    Raises:
        LoadError: the prelude did not evaluate (its message is one line).
    """
    loop = asyncio.get_running_loop()
    stack = ExitStack()
    try:
        creating = loop.run_in_executor(None, _new_racer, stack, loop, buffers)
        try:
            mr, watch = await asyncio.shield(creating)
        except asyncio.CancelledError:
            await asyncio.wait({creating})  # let the thread finish entering the stack
            raise
        # APPSEC: always a hard heap limit; without one a memory bomb aborts the process.
        mr.set_hard_memory_limit(SPARE_MEMORY_MB * MIB)
        internal = await asyncio.wait_for(mr.eval_cancelable(runtime_js), PRELUDE_TIMEOUT_S)
        assert isinstance(internal, JSMappedObject) and mr._ctx is not None
        await asyncio.wait_for(mr.eval_cancelable(REHEARSAL), PRELUDE_TIMEOUT_S)
        entry = await asyncio.wait_for(Entry.take(mr), PRELUDE_TIMEOUT_S)
        stack.callback(entry.close)  # before the context is freed (the stack unwinds LIFO)
        used_kb = int(mr.heap_stats()["used_heap_size"]) // 1024
        racer = Racer(mr, stack, internal, used_kb, entry, buffers=watch)
        # mini-racer 0.14 (pinned in pyproject) has no public API for a JS->Python
        # notification that does not block its loop; this private one is the same
        # mechanism its Promise support uses.
        notify = mr._ctx._register_js_notification(racer.ping)
        internal["ping"] = stack.enter_context(notify)
    except TimeoutError:
        stack.close()
        raise LoadError(f"the Web API prelude took over {PRELUDE_TIMEOUT_S:g} s") from None
    except JSEvalException as exc:
        stack.close()
        raise LoadError(f"the Web API prelude failed: {first_line(str(exc))}") from None
    except BaseException:
        stack.close()
        raise
    return racer


class Freer:
    """Frees contexts one at a time, on a thread of its own, out of cold starts' way.

    Freeing a context (TerminateExecution, joining its thread, disposing of its
    isolate) took ~0.9 ms a hello isolate on the host's loop, which served
    nothing meanwhile: the reaper unloading ten idle functions at once held a cold
    start of the same app up to 6.2 ms p50, 9.2 ms max, against 1.7 ms alone
    (measured in-process). Off the loop, frees still slow the evaluations running
    beside them, several at once the most, so they go one at a time, and one
    waits while a cold start is under way (:meth:`starting`), for at most
    ``MAX_WAIT_S``: memory a closed isolate holds is counted in the host's
    budget until it is freed (:meth:`edge.runtime.js.host.Host.budget`).
    """

    MAX_WAIT_S = 0.1

    def __init__(self) -> None:
        self._thread = ThreadPoolExecutor(1, thread_name_prefix="v8-free")
        self._queue: deque[tuple[ExitStack, asyncio.Future[None]]] = deque()
        self._busy = False
        self._starts = 0  # cold starts under way
        self._overdue: asyncio.TimerHandle | None = None

    def free(self, stack: ExitStack) -> asyncio.Future[None]:
        """Close ``stack`` (a context's) soon; the future is done once it is."""
        done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._queue.append((stack, done))
        self._next()
        return done

    @contextlib.contextmanager
    def starting(self) -> Iterator[None]:
        """A cold start: no free begins until it is over (or ``MAX_WAIT_S``)."""
        self._starts += 1
        try:
            yield
        finally:
            self._starts -= 1
            self._next()

    def _next(self, overdue: bool = False) -> None:
        """Start the next free unless one runs or a cold start holds them (not
        past ``MAX_WAIT_S``); keep the overdue timer set while any waits."""
        loop = asyncio.get_running_loop()
        if overdue:
            self._overdue = None
        held = self._starts and not overdue
        if self._queue and not self._busy and not held:
            stack, done = self._queue.popleft()
            self._busy = True
            running = loop.run_in_executor(self._thread, stack.close)
            running.add_done_callback(lambda r: self._freed(r, done))
        if self._queue and self._overdue is None:
            self._overdue = loop.call_later(self.MAX_WAIT_S, self._next, True)
        elif not self._queue and self._overdue is not None:
            self._overdue.cancel()
            self._overdue = None

    def _freed(self, running: asyncio.Future[None], done: asyncio.Future[None]) -> None:
        self._busy = False
        if not done.done():
            error = running.exception()
            if error is None:
                done.set_result(None)
            else:
                done.set_exception(error)
        self._next()

    def close(self) -> None:
        """Once nothing is queued: let the thread go."""
        if self._overdue is not None:
            self._overdue.cancel()
        self._thread.shutdown(wait=False)


class Spares:
    """The host's spare :class:`Racer`: one ready or on its way, taken by cold starts.

    Args:
        runtime_js: the prelude (``modules.runtime_script()``).
        buffers: the host's ArrayBuffer limits, which watch every new context.
    """

    def __init__(self, runtime_js: str, buffers: BufferLimits) -> None:
        self._runtime_js = runtime_js
        self._buffers = buffers
        self._next: asyncio.Task[Racer] | None = None
        self._refill: asyncio.TimerHandle | None = None
        self._closed = False
        self.freer = Freer()  # for the contexts of the isolates made from spares
        self.taken = 0  # spares taken, and of those ...
        self.taken_ready = 0  # ... how many had the prelude evaluated already

    @property
    def ready(self) -> bool:
        """A spare is prepared and waiting."""
        task = self._next
        return task is not None and task.done() and not task.cancelled() and not task.exception()

    def fill(self) -> None:
        """Start preparing a spare unless one is ready or on its way."""
        if self._refill is not None:
            self._refill.cancel()
            self._refill = None
        if self._closed or self._next is not None:
            return
        self._next = asyncio.ensure_future(prepare(self._runtime_js, self._buffers))
        self._next.add_done_callback(_log_failure)

    async def take(self) -> tuple[Racer, bool]:
        """The spare (prepared now if there is none), and whether it was ready.

        The next spare is prepared ``REFILL_DELAY_S`` later.

        Raises:
            LoadError: the prelude did not evaluate.
        """
        task, self._next = self._next, None
        spare = task is not None and not (task.done() and (task.cancelled() or task.exception()))
        ready = spare and task is not None and task.done()
        self.taken += 1
        self.taken_ready += ready
        if self._refill is None and not self._closed:
            loop = asyncio.get_running_loop()
            self._refill = loop.call_later(REFILL_DELAY_S, self.fill)
        if spare and task is not None:
            try:
                return await _await_racer(task), ready
            except (LoadError, MemoryError):
                # A spare failed while this load waited for it (the host was out of
                # memory, say): its failure is logged; the load gets a fresh try.
                pass
        fresh = asyncio.ensure_future(prepare(self._runtime_js, self._buffers))
        return await _await_racer(fresh), False

    async def close(self) -> None:
        """Dispose of the spare, waiting for one being prepared."""
        self._closed = True
        self.freer.close()
        if self._refill is not None:
            self._refill.cancel()
        task, self._next = self._next, None
        if task is None:
            return
        task.cancel()
        await asyncio.wait({task})
        _dispose(task)


async def _await_racer(task: asyncio.Task[Racer]) -> Racer:
    try:
        return await asyncio.shield(task)
    except asyncio.CancelledError:
        task.add_done_callback(_dispose)  # the taker gave up; nobody else may have it
        raise


def _log_failure(task: asyncio.Task[Racer]) -> None:
    if not task.cancelled() and task.exception() is not None:
        logger.error("spare isolate failed: %s", task.exception())


def _dispose(task: asyncio.Task[Racer]) -> None:
    if not task.cancelled() and task.exception() is None:
        task.result().stack.close()
