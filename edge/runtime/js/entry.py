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

import json
from collections.abc import Awaitable
from typing import Any

from py_mini_racer import JSUndefined, MiniRacer

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
    """One context's inbox and its two entry functions (see the module docstring)."""

    def __init__(
        self, mr: MiniRacer, inbox: memoryview, from_inbox: Any, collect: Any, no_args: Any
    ) -> None:
        # mini-racer 0.14 (pinned in pyproject.toml) calls a function with a
        # handle to its arguments array; its public call makes that array anew
        # (two blocking round trips to the isolate's thread) on every call.
        ctx = mr._ctx
        assert ctx is not None
        self._run = ctx._run_cancelable_mr_task
        self._call = ctx._dll.mr_call_function
        self._from_inbox = ctx._python_to_value_handle(from_inbox)
        self._collect = ctx._python_to_value_handle(collect)
        self._this = ctx._python_to_value_handle(JSUndefined)
        self._no_args = ctx._python_to_value_handle(no_args)
        self._inbox: memoryview | None = inbox

    @classmethod
    async def take(cls, mr: MiniRacer) -> Entry:
        """Take the entry of a context whose prelude (with the dispatcher) ran,
        before any function code runs in it."""
        inbox, from_inbox, collect, no_args = [await mr.eval_cancelable(code) for code in TAKE]
        if not isinstance(inbox, memoryview) or len(inbox) != INBOX_BYTES:
            raise RuntimeError("the dispatcher's inbox is not the ArrayBuffer expected")
        return cls(mr, inbox, from_inbox, collect, no_args)

    def d(self, payload: list[Any]) -> Awaitable[Any] | None:
        """Run d() on ``payload``; ``None`` if it does not fit the inbox (eval it)."""
        data = "".join(_encode_ascii(payload, 0)).encode("ascii")
        size = len(data)
        inbox = self._inbox
        if inbox is None or size > INBOX_BYTES - HEADER:
            return None
        inbox[:HEADER] = size.to_bytes(HEADER, "little")
        inbox[HEADER : HEADER + size] = data
        return self._run(self._call, self._from_inbox.raw, self._this.raw, self._no_args.raw)

    def collect(self) -> Awaitable[Any]:
        """Run d() on an empty batch."""
        return self._run(self._call, self._collect.raw, self._this.raw, self._no_args.raw)

    def close(self) -> None:
        """Drop the inbox (before the context is freed: it is the context's memory)."""
        inbox, self._inbox = self._inbox, None
        if inbox is not None:
            inbox.release()


def eval_code(payload: list[Any]) -> str:
    """The script that runs d() on a payload too large for the inbox."""
    return f"__edge.d({_JSON.encode(_JSON.encode(payload))})"
