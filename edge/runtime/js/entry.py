"""How a batch enters an isolate: d()'s text in an ArrayBuffer, d() called as a function.

Runs in the V8 host process, for :class:`edge.runtime.js.isolate.Isolate`. An
``eval`` of ``__edge.d("...")`` compiled a new script for every batch, its text
inlined as a string literal: 11% of the host's CPU under wrk load (perf, hello
JS), and per batch of ten 42 against 24 us for a script that compiles to
nothing new (in-process, one CPU). Instead, the dispatcher (``js/dispatch.js``)
keeps an ``inbox`` ArrayBuffer and two functions, which the host takes handles
to when it prepares the context, before any function code runs:

* ``fromInbox()`` reads the batch text from the inbox (its length, 4 bytes
  little-endian, then ASCII) and runs ``d()`` on it;
* ``collect()`` runs ``d()`` on an empty batch, collecting what finished since.

Per batch the host writes the text into the inbox (its memory, seen through a
``memoryview``) and calls ``fromInbox`` through mini-racer's cancelable
function call, with no argument: nothing to compile, nothing to convert. A
batch too large for the inbox (request bodies past ``INBOX_BYTES`` together)
goes the old way, by ``eval``.

The inbox is written only while no call of ``fromInbox`` is in flight (an
isolate runs one batch at a time; ``collect`` never reads it), and never after
its context is freed: the memoryview is V8's memory, valid as long as the
context. Nothing is ever read back from it: what JavaScript returns still comes
as d()'s result, untrusted.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Generator
from typing import Any

from py_mini_racer import JSEvalException, JSUndefined, MiniRacer

INBOX_BYTES = 64 * 1024  # js/dispatch.js INBOX_BYTES
HEADER = 4
TAKE = (
    "__edgeInternal.entries[0]",
    "__edgeInternal.entries[1]",
    "(() => { const e = __edgeInternal.entries; delete __edgeInternal.entries; return e[2]; })()",
    "[]",  # the arguments array of every call: none
)
# ASCII JSON (escapes carry the rest), from an encoder built once: json.dumps
# with any option builds one on every call, and JSONEncoder.encode builds its C
# encoder on every call too (12 against 8 us for a batch of ten requests).
# No circular-reference markers: payloads are the host's own lists.
_JSON = json.JSONEncoder(separators=(",", ":"))
_encode_ascii = json.encoder.c_make_encoder(  # type: ignore[attr-defined]
    None, _JSON.default, json.encoder.encode_basestring_ascii, None, ":", ",", False, False, True
)


class Entry:
    """One context's inbox and its two entry functions (see the module docstring).

    A call starts in the isolate when :meth:`d` or :meth:`collect` is called,
    not when its result is first awaited: that saves the loop the turns of a
    task starting it (and V8 the wait). The :class:`Running` returned is
    awaited for the result; cancelling it, or the task awaiting it, cancels the
    call (TerminateExecution if it is running) and forgets its callback at once.
    :meth:`close` forgets every call still out, before the context is freed:
    mini-racer reads a result's memory when its callback runs, and a freed
    context's memory is gone.
    """

    def __init__(
        self, mr: MiniRacer, inbox: memoryview, from_inbox: Any, collect: Any, no_args: Any
    ) -> None:
        # mini-racer 0.14 (pinned in pyproject.toml) calls a function with a
        # handle to its arguments array; its public call makes that array anew
        # (two blocking round trips to the isolate's thread) on every call, and
        # starts it only once its coroutine runs. Its cancelable tasks are
        # driven here the way its _run_cancelable_mr_task drives them.
        ctx = mr._ctx
        assert ctx is not None
        self._ctx = ctx
        self._loop = ctx.event_loop
        self._callbacks = ctx._active_cancelable_mr_task_callbacks
        self._ids = ctx._next_async_callback_id
        self._call = ctx._dll.mr_call_function
        self._eval = ctx._dll.mr_eval
        self._cancel = ctx._dll.mr_cancel_task
        self._from_inbox = ctx._python_to_value_handle(from_inbox)
        self._collect = ctx._python_to_value_handle(collect)
        self._this = ctx._python_to_value_handle(JSUndefined)
        self._no_args = ctx._python_to_value_handle(no_args)
        self._inbox: memoryview | None = inbox
        self._out: dict[int, Any] = {}  # callback id -> task id, of calls not yet over

    @classmethod
    async def take(cls, mr: MiniRacer) -> Entry:
        """Take the entry of a context whose prelude (with the dispatcher) ran,
        before any function code runs in it."""
        inbox, from_inbox, collect, no_args = [await mr.eval_cancelable(code) for code in TAKE]
        if not isinstance(inbox, memoryview) or len(inbox) != INBOX_BYTES:
            raise RuntimeError("the dispatcher's inbox is not the ArrayBuffer expected")
        return cls(mr, inbox, from_inbox, collect, no_args)

    def d(self, payload: list[Any]) -> Running:
        """Start d() on ``payload``: through the inbox, or as a script if it does
        not fit there."""
        data = "".join(_encode_ascii(payload, 0)).encode("ascii")
        size = len(data)
        inbox = self._inbox
        if inbox is None or size > INBOX_BYTES - HEADER:
            code = self._ctx._python_to_value_handle(f"__edge.d({_JSON.encode(data.decode())})")
            return self._start(self._eval, code)
        inbox[:HEADER] = size.to_bytes(HEADER, "little")
        inbox[HEADER : HEADER + size] = data
        return self._start(self._call, self._from_inbox, self._this, self._no_args)

    def collect(self) -> Running:
        """Start d() on an empty batch."""
        return self._start(self._call, self._collect, self._this, self._no_args)

    def _start(self, method: Any, *handles: Any) -> Running:
        future = self._loop.create_future()
        callback_id = next(self._ids)

        def done(handle: Any) -> None:
            if future.done():
                return
            try:
                future.set_result(self._ctx._value_handle_to_python(handle))
            except JSEvalException as exc:
                future.set_exception(exc)

        self._callbacks[callback_id] = done
        task_id = method(self._ctx._ctx, *(h.raw for h in handles), callback_id)
        self._out[callback_id] = task_id
        return Running(self, future, callback_id, handles)

    def _forget(self, callback_id: int) -> None:
        """Stop waiting for a call; cancel it in V8 unless it is over (ignored then)."""
        self._callbacks.pop(callback_id, None)
        task_id = self._out.pop(callback_id, None)
        if task_id is not None:
            self._cancel(self._ctx._ctx, task_id)

    def close(self) -> None:
        """Forget the calls still out and drop the inbox (before the context is
        freed: both are the context's memory)."""
        for callback_id in list(self._out):
            self._forget(callback_id)
        inbox, self._inbox = self._inbox, None
        if inbox is not None:
            inbox.release()


class Running:
    """A call started in an isolate. Await it (once) for its result; cancel it
    (before or while awaited) to stop it: TerminateExecution if it is running."""

    __slots__ = ("_entry", "_future", "_handles", "_id")

    def __init__(
        self, entry: Entry, future: asyncio.Future[Any], callback_id: int, handles: Any
    ) -> None:
        self._entry = entry
        self._future = future
        self._id = callback_id
        self._handles = handles  # the values V8 reads: alive until the call is over

    def __await__(self) -> Generator[Any, None, Any]:
        try:
            return (yield from self._future.__await__())
        finally:
            self._entry._forget(self._id)

    def done(self) -> bool:
        return self._future.done()

    def cancel(self) -> None:
        self._entry._forget(self._id)
        self._future.cancel()
