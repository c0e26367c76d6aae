"""A Python thread state kept on each isolate's thread for its V8 callbacks.

Runs in the V8 host process (:mod:`edge.runtime.js.host`). mini-racer runs
every isolate on a C++ thread of its own and reports each result (every
``__edge.d()`` batch, every ping) by calling into Python from that thread, a
ctypes callback. CPython has no thread state for a thread it did not start, so
each callback makes one and deletes it again (``PyGILState_Ensure`` and
``PyGILState_Release``): measured, 93 us of CPU per ``eval_cancelable`` round
trip against 62 us with the state kept, and under load the host makes two
such round trips per batch (README.md, Benchmarks).

A :class:`Pin` keeps the state the first callback on its context's thread
made: one more ``PyGILState_Ensure`` there, never released on that thread, so
the callbacks after it find the state and only take the GIL. The thread ends
when its context is freed; the state is then cleared and deleted from the
host's loop thread (``PyThreadState_Clear`` and ``PyThreadState_Delete``,
which CPython allows for a thread state that is not current), so that a host
that replaces isolates for weeks keeps no state of a thread that is gone.
"""

from __future__ import annotations

import ctypes
import threading
from typing import Any

from py_mini_racer import MiniRacer
from py_mini_racer._context import Context

_api = ctypes.pythonapi

# id(Context) -> its Pin, for the contexts whose thread keeps its state.
_pins: dict[int, Pin] = {}
_lock = threading.Lock()
_original: Any = None


class Pin:
    """The thread state kept on one context's isolate thread (see the module docstring).

    ``attach`` it to the context right after creating it, and ``release`` it
    once the context is freed (its thread joined), never before.
    """

    def __init__(self) -> None:
        self._key = 0
        self._thread = 0  # the isolate thread's ident, once its state is kept
        self._state = 0  # that state's address

    def attach(self, mr: MiniRacer) -> None:
        """Keep the state of ``mr``'s thread from its next callback on."""
        _install()
        self._key = id(mr._ctx)
        _pins[self._key] = self

    def release(self) -> None:
        """Delete the kept state (the context must be freed, its thread gone)."""
        if _pins.get(self._key) is self:
            del _pins[self._key]
        state, self._state = self._state, 0
        if state:
            _api.PyThreadState_Clear(state)
            _api.PyThreadState_Delete(state)

    def _keep(self) -> None:
        """On the isolate's thread, in a callback: make its thread state stay."""
        if not self._thread:
            self._thread = threading.get_ident()
            _api.PyGILState_Ensure()  # never released here: the state outlives the callback
            self._state = _api.PyGILState_GetThisThreadState()


def foreign_states() -> int:
    """Thread states of threads Python did not start: the isolates' threads that
    keep one (read without the interpreter's lock, so only while the host is idle)."""
    _install()
    count = 0
    state = _api.PyInterpreterState_ThreadHead(_api.PyInterpreterState_Get())
    while state:
        count += 1
        state = _api.PyThreadState_Next(state)
    return count - threading.active_count()


def _install() -> None:
    """Declare the C API's signatures and wrap mini-racer's callback entry, once
    per process, on first use (mini-racer 0.14, pinned in pyproject.toml, has no
    hook for it)."""
    global _original  # noqa: PLW0603 - one wrapper per process, installed on first use
    with _lock:
        if _original is not None:
            return
        _api.PyGILState_GetThisThreadState.restype = ctypes.c_void_p
        _api.PyThreadState_Clear.argtypes = [ctypes.c_void_p]
        _api.PyThreadState_Delete.argtypes = [ctypes.c_void_p]
        _api.PyInterpreterState_Get.restype = ctypes.c_void_p
        _api.PyInterpreterState_ThreadHead.argtypes = [ctypes.c_void_p]
        _api.PyInterpreterState_ThreadHead.restype = ctypes.c_void_p
        _api.PyThreadState_Next.argtypes = [ctypes.c_void_p]
        _api.PyThreadState_Next.restype = ctypes.c_void_p
        _original = Context.handle_callback_from_v8

        def handle_callback_from_v8(self: Context, callback_id: int, raw: Any) -> None:
            pin = _pins.get(id(self))
            if pin is not None and not pin._thread:
                pin._keep()
            _original(self, callback_id, raw)

        Context.handle_callback_from_v8 = handle_callback_from_v8  # type: ignore[method-assign,assignment]
