"""One isolate's memory, seen from the V8 host: its peak and its limits.

Runs in the V8 host process, for :class:`edge.runtime.js.isolate.Isolate`.

The heap peak is tracked without ever blocking on the isolate: mini-racer's
``heap_stats()`` waits for the isolate's thread, which a runaway promise
continuation can hold forever (and a waiter then keeps the context alive, so it
can never be terminated). ``heap_stats()`` is read once, right after the
prelude (by the spare), when only our code has run; after that V8's soft memory
limit (checked after every GC, readable without blocking) is a ratchet: each
time the heap passes the mark, the peak is at least the mark and the mark rises.

The limits are V8's hard heap limit and the same limit on the isolate's
ArrayBuffers (:mod:`edge.runtime.js.buffers`); an ArrayBuffer allocation that
failed against the host's process-wide budget counts as past them too.
"""

from __future__ import annotations

from py_mini_racer import MiniRacer

from edge.runtime.js.spare import Racer

PEAK_STEP = 1.25


class IsolateMemory:
    """The memory of one function version's isolate, across its contexts.

    Args:
        limit_kb: the function's ``memory_mb``, in KiB.

    Attributes:
        peak_kb: the highest heap use seen (at least the limit after a memory kill).
        buffers_failed: an ArrayBuffer allocation failed against the host's budget
            in the current context: it must be replaced at once, freeing its buffers.
    """

    def __init__(self, limit_kb: int) -> None:
        self.limit_kb = limit_kb
        self.peak_kb = 0
        self.buffers_failed = False
        self._mark_kb = 0

    def watch(self, mr: MiniRacer, used_kb: int) -> None:
        """Start the ratchet on a new context that uses ``used_kb`` so far."""
        self.peak_kb = max(self.peak_kb, used_kb)
        self._mark_kb = int(self.peak_kb * PEAK_STEP)
        mr.set_soft_memory_limit(self._mark_kb * 1024)

    def track(self, mr: MiniRacer) -> None:
        """After a batch: raise the peak and the mark if the heap passed the mark."""
        if mr.was_soft_memory_limit_reached():
            self.peak_kb = max(self.peak_kb, self._mark_kb)
            self._mark_kb = min(int(self._mark_kb * PEAK_STEP), self.limit_kb)
            mr.set_soft_memory_limit(self._mark_kb * 1024)

    def killed(self) -> None:
        """The context was replaced for memory: it reached its limit."""
        self.peak_kb = max(self.peak_kb, self.limit_kb)

    @staticmethod
    def over_limit(racer: Racer | None) -> bool:
        """Whether ``racer``'s isolate went past its heap limit or its ArrayBuffer limit."""
        if racer is None:
            return False
        return racer.mr.was_hard_memory_limit_reached() or bool(
            racer.buffers is not None and racer.buffers.reached
        )
