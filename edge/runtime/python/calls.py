"""The calls in flight on one instance socket: the one running, the ones queued.

An instance runs one request at a time, but the worker may write the next
request into its socket before the running one is answered (pipelining, see
:mod:`edge.runtime.python.pool`): the instance reads it right after replying,
without sleeping in ``poll()``. :class:`CallQueue` keeps those calls in the
order their frames were written, and knows which one the instance is running:

* the first call *starts* when it is written; a queued call starts when the
  reply ahead of it is in (or, for a streamed reply, its ``end`` frame);
* a call's time limit counts from its start, not from when it was queued;
* when the instance goes away, the running call fails with the reason, and
  every call that had not started fails with :class:`NotStarted`: the
  instance never saw it run, so the pool may run it elsewhere (never twice).

A reply with ``error == "memory"`` is the instance's last words (it exits
right after): nothing queued behind it starts.

Time limits are checked by one timer per instance, not one per call: it is
armed for the running call's deadline and, when it fires, expires that call or
(a later call is running by then) is armed again for the later deadline. A
call that ends in time then costs no timer handle to create and cancel, and
the timer fires at most once per time limit.
"""

from __future__ import annotations

import asyncio
import collections
import time
from collections.abc import Callable
from typing import Any

from edge.runtime.wire import PeerClosed


class CallTimeout(Exception):
    """The instance did not answer within the function's timeout."""


class NotStarted(PeerClosed):
    """A queued call never started: its instance went away first (safe to retry)."""


class Call:
    """One request written to an instance.

    Attributes:
        future: resolved with the reply (or a stream's head), or failed.
        timeout: seconds it may run, counted from ``started``.
        started: ``time.perf_counter()`` when the instance started it (0: queued).
        answered: its reply (or head) is in.
        dropped: its caller went away while it was queued: its reply is
            read and thrown away when it comes.
    """

    __slots__ = ("answered", "dropped", "future", "started", "timeout")

    def __init__(self, future: asyncio.Future[Any], timeout: float) -> None:
        self.future = future
        self.timeout = timeout
        self.started = 0.0
        self.answered = False
        self.dropped = False


class CallQueue:
    """The calls of one instance, oldest (the running one) first.

    Args:
        on_dropped_timeout: called when a dropped call runs past its time limit
            (nobody waits for it; the channel must kill the instance itself).
    """

    def __init__(self, on_dropped_timeout: Callable[[], None]) -> None:
        self._calls: collections.deque[Call] = collections.deque()
        self._on_dropped_timeout = on_dropped_timeout
        self._last_words = False
        self._timer: asyncio.TimerHandle | None = None
        self._deadline = 0.0  # ``time.perf_counter()`` the timer is armed for

    def __len__(self) -> int:
        return len(self._calls)

    @property
    def current(self) -> Call | None:
        """The call the instance is running, if any."""
        calls = self._calls
        return calls[0] if calls and calls[0].started else None

    def add(self, timeout: float) -> Call:
        """A call whose frame is being written; it starts now if nothing is ahead."""
        call = Call(asyncio.get_running_loop().create_future(), timeout)
        self._calls.append(call)
        if len(self._calls) == 1 and not self._last_words:
            self._start(call)
        return call

    def answer(self, message: Any, *, over: bool) -> Call:
        """The current call's reply (``over``) or its stream's head (not over:
        it stays current until :meth:`end`). Returns the call."""
        call = self._calls[0]
        call.answered = True
        if not call.future.done():
            call.future.set_result(message)
        if message.__class__ is dict and message.get("error") == "memory":
            self._last_words = True
        if over:
            self.end()
        return call

    def end(self) -> None:
        """The current call is over: the next one (if any) starts."""
        if self._calls and self._calls[0].started:
            self._calls.popleft()
        if self._calls and not self._last_words:
            self._start(self._calls[0])

    def fail(self, exc: Exception) -> None:
        """The instance is gone: the running call gets ``exc``, the queued ones
        :class:`NotStarted`."""
        calls, self._calls = self._calls, collections.deque()
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        for call in calls:
            if not call.future.done():
                call.future.set_exception(exc if call.started else NotStarted(str(exc)))

    def _start(self, call: Call) -> None:
        call.started = now = time.perf_counter()
        deadline = now + call.timeout
        if self._timer is None or deadline < self._deadline:  # else armed in time
            if self._timer is not None:
                self._timer.cancel()
            self._deadline = deadline
            self._timer = asyncio.get_running_loop().call_later(call.timeout, self._check)

    def _check(self) -> None:
        """The timer fired: expire the running call if it is past its deadline,
        else wait for that deadline."""
        self._timer = None
        call = self.current
        if call is None or call.answered:
            return  # nothing runs (the next call to start arms the timer)
        left = call.started + call.timeout - time.perf_counter()
        if left > 0:
            self._deadline = call.started + call.timeout
            self._timer = asyncio.get_running_loop().call_later(left, self._check)
        elif call.dropped:
            self._on_dropped_timeout()
        elif not call.future.done():
            call.future.set_exception(CallTimeout())
