"""Per-isolate ArrayBuffer limits, from V8's own count of each isolate's buffers.

Runs in the V8 host process (:mod:`edge.runtime.js.host`). V8's hard heap limit
(mini-racer's ``set_hard_memory_limit``) counts the JavaScript heap only:
ArrayBuffer backing stores live outside it, in one region every isolate of the
process allocates from. V8 does count them per isolate (its "external memory"),
and a growing count makes that isolate run full GCs: with V8 14.4 one at least
every ~160 MB of growth, measured. After each full GC, :class:`BufferLimits`
reads the count of the isolate that collected and, past that isolate's limit,
terminates its JavaScript; the host then replaces the isolate as for its heap
limit (502 "memory limit of N MB exceeded"). So an ArrayBuffer bomb is stopped by
its own limit, a bounded step past it, while the host's process-wide budget
(:meth:`edge.runtime.js.host.Host.budget`) still has room for every other
isolate: the budget is sized above the sum of the isolates' limits plus that step.

V8 counts shared memory (``SharedArrayBuffer``, shared ``WebAssembly.Memory``)
as no isolate's, so the runtime refuses it to function code
(``edge/runtime/js/sharedmemory.js``); the prelude's timers share one 4-byte cell.

The count is read after the GC has also swept the dead buffers only if V8 sweeps
them in the GC's pause: the host starts V8 with ``SWEEP_FLAG``. With concurrent
sweeping, a function that allocates and drops large buffers was measured
"over" its limit while holding far less.

mini-racer 0.14 (pinned in pyproject) has no API for any of this. These are
V8's own exported C++ functions, called with ctypes on the ``v8::Isolate*``
that ``v8::Isolate::TryGetCurrent`` returns inside one of the context's
callbacks (mini-racer runs them on the isolate's thread, isolate entered). If
a mini-racer build lacks them, isolates run unwatched, as before this module:
the process budget alone stops an ArrayBuffer bomb.
"""

from __future__ import annotations

import ctypes
import logging
from dataclasses import dataclass, field
from typing import Any

from py_mini_racer import MiniRacer

logger = logging.getLogger(__name__)

SWEEP_FLAG = "--no-concurrent-array-buffer-sweeping"
GC_FULL = 1 << 2  # v8::kGCTypeMarkSweepCompact: scavenges would take the GIL far more often
# V8 14.4's symbols (Itanium mangling) for the calls below.
_CURRENT = "_ZN2v87Isolate13TryGetCurrentEv"
_EXTERNAL = (
    "_ZN2v823ExternalMemoryAccounter49"
    "GetTotalAmountOfExternalAllocatedMemoryForTestingEPKNS_7IsolateE"
)
_TERMINATE = "_ZN2v87Isolate18TerminateExecutionEv"
_ADD_GC = "_ZN2v87Isolate21AddGCEpilogueCallbackEPFvPS0_NS_6GCTypeENS_15GCCallbackFlagsEPvES4_S2_"
_GC_CALLBACK = ctypes.CFUNCTYPE(None, ctypes.c_void_p, ctypes.c_int, ctypes.c_int, ctypes.c_void_p)


@dataclass(eq=False)
class BufferWatch:
    """One isolate's ArrayBuffer limit.

    Attributes:
        limit: bytes of ArrayBuffers the isolate may hold (after a full GC).
        reached: the isolate went past ``limit`` and was terminated; it must be replaced.
    """

    limit: int
    isolate: int = 0
    reached: bool = False
    _limits: BufferLimits | None = field(default=None, repr=False)

    def close(self) -> None:
        """Stop watching (before the context is freed: its address may be reused)."""
        if self._limits is not None:
            self._limits.forget(self)


class BufferLimits:
    """Every watched isolate of this host, and the one GC callback they share.

    Args:
        dll: mini-racer's library (``init_mini_racer()`` returns it).
    """

    def __init__(self, dll: ctypes.CDLL) -> None:
        self._watches: dict[int, BufferWatch] = {}
        try:
            self._current = dll[_CURRENT]
            self._external = dll[_EXTERNAL]
            self._terminate = dll[_TERMINATE]
            self._add_gc = dll[_ADD_GC]
        except AttributeError as exc:
            logger.warning("no per-isolate ArrayBuffer limits (only the host's budget): %s", exc)
            self.available = False
            return
        self.available = True
        self._current.restype = ctypes.c_void_p
        self._current.argtypes = []
        self._external.restype = ctypes.c_int64
        self._external.argtypes = [ctypes.c_void_p]
        self._terminate.restype = None
        self._terminate.argtypes = [ctypes.c_void_p]
        self._add_gc.restype = None
        self._add_gc.argtypes = [ctypes.c_void_p, _GC_CALLBACK, ctypes.c_void_p, ctypes.c_int]
        # Kept for the life of the host: V8 calls it until the last isolate is gone.
        self._on_gc_c = _GC_CALLBACK(self._on_gc)

    def watch(self, mr: MiniRacer, limit: int) -> BufferWatch | None:
        """Start watching ``mr``'s isolate; ``None`` if it cannot be.

        Blocks on one evaluation in ``mr``: call it off the event loop, before the
        context has run anything but the platform's code.
        """
        if not self.available:
            return None
        watch = BufferWatch(limit, _limits=self)
        ctx: Any = mr._ctx  # mini-racer's Context: its callbacks run on the isolate's thread

        def first_callback(callback_id: int, raw: Any) -> None:
            if not watch.isolate:
                watch.isolate = self._current() or 0
                if watch.isolate:
                    # On the isolate's thread, between tasks: no GC is running.
                    self._add_gc(watch.isolate, self._on_gc_c, None, GC_FULL)
            type(ctx).handle_callback_from_v8(ctx, callback_id, raw)

        object.__setattr__(ctx, "handle_callback_from_v8", first_callback)  # a frozen dataclass
        try:
            mr.eval("0")
        finally:
            object.__delattr__(ctx, "handle_callback_from_v8")
        if not watch.isolate:
            logger.warning("no isolate found for a new context: its ArrayBuffers are unwatched")
            return None
        self._watches[watch.isolate] = watch
        return watch

    def forget(self, watch: BufferWatch) -> None:
        if self._watches.get(watch.isolate) is watch:
            del self._watches[watch.isolate]

    def _on_gc(self, isolate: int | None, _type: int, _flags: int, _data: int | None) -> None:
        # On the isolate's thread, at the end of a full GC. No logging here: the
        # host logs the replacement.
        watch = self._watches.get(isolate or 0)
        if watch is None or watch.reached:
            return
        if self._external(isolate) > watch.limit:
            watch.reached = True
            self._terminate(isolate)  # APPSEC: its ArrayBuffers are over its memory limit
