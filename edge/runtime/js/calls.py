"""Host calls: the Python work a function's JavaScript asks the V8 host for.

V8 has no synchronous way into Python here (mini-racer's JS->Python callbacks
are notifications delivered on the host's loop), and Web Crypto is promise-based
anyway. mini-racer 0.14's ``MiniRacer.wrap_py_function`` would expose a Python
coroutine as a JS async function, but it settles each promise with a blocking,
uncancelable ``call_function`` from the loop: while the isolate runs a long
batch (or a runaway loop) the host's loop would stall, and with it the timers
that enforce every isolate's timeout. So the bridge rides the ``d()`` contract
(``js/dispatch.js``) instead: JavaScript
queues ``[id, op, args]`` and pings; the next ``d()`` returns the queue; the
host runs each op off its loop (:func:`perform`, in a thread: RSA key generation
takes a while) and hands ``[id, ok, value]`` to the ``d()`` after that, which
settles the promise. The loop never waits for the isolate, nor the isolate for
Python.

Values cross as JSON; bytes as ``{"$b": "<base64>"}`` both ways.

APPSEC: ops and arguments are untrusted (the function's JavaScript chose them):
an unknown op or a malformed argument is an error answer, never an exception
in the host; nothing is evaluated or unpickled.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import logging
from collections.abc import Callable
from concurrent.futures import Executor
from typing import Any

from edge.runtime.js import keyformats, webcrypto
from edge.runtime.js.compression import ZlibStreams
from edge.runtime.js.keyformats import CryptoError

logger = logging.getLogger(__name__)

MAX_DEPTH = 8


def decode(value: Any, depth: int = 0) -> Any:
    """JSON from JavaScript with ``{"$b": ...}`` turned into bytes."""
    if depth > MAX_DEPTH:
        raise CryptoError("TypeError", "arguments nested too deeply")
    if isinstance(value, dict):
        if set(value) == {"$b"} and isinstance(value["$b"], str):
            return base64.b64decode(value["$b"], validate=True)
        return {str(k): decode(v, depth + 1) for k, v in value.items()}
    if isinstance(value, list):
        return [decode(v, depth + 1) for v in value]
    return value


def encode(value: Any) -> Any:
    """A result for JavaScript, bytes as ``{"$b": ...}``."""
    if isinstance(value, bytes):
        return {"$b": base64.b64encode(value).decode("ascii")}
    if isinstance(value, dict):
        return {k: encode(v) for k, v in value.items()}
    if isinstance(value, list):
        return [encode(v) for v in value]
    return value


def _export(fmt: Any, key: dict[str, Any]) -> Any:
    return keyformats.export_key(fmt, webcrypto.load_key(key))


OPS: dict[str, Callable[..., Any]] = {
    "digest": webcrypto.digest,
    "sign": webcrypto.sign,
    "verify": webcrypto.verify,
    "encrypt": webcrypto.encrypt,
    "decrypt": webcrypto.decrypt,
    "deriveBits": webcrypto.derive_bits,
    "generatePair": webcrypto.generate_pair,
    "random": webcrypto.random_bytes,
    "importKey": keyformats.import_key,
    "exportKey": _export,
}
STREAM_OPS = {"zlib.open": "open", "zlib.push": "push", "zlib.end": "end", "zlib.drop": "drop"}


async def run_all(pool: Executor | None, streams: ZlibStreams, asked: list[Any]) -> list[Any]:
    """Answers ``[id, ok, value]`` to ``[id, op, args]`` calls, each in a thread of ``pool``."""
    loop = asyncio.get_running_loop()
    results = await asyncio.gather(
        *(loop.run_in_executor(pool, perform, op, args, streams) for _, op, args in asked)
    )
    return [[cid, *result] for (cid, _, _), result in zip(asked, results, strict=True)]


def perform(op: Any, args: Any, streams: ZlibStreams) -> list[Any]:
    """``[1, value]`` or ``[0, [error name, message]]`` for one call of an isolate."""
    try:
        func = OPS.get(op) if isinstance(op, str) else None
        if isinstance(op, str) and op in STREAM_OPS:
            func = getattr(streams, STREAM_OPS[op])
        if func is None or not isinstance(args, list):
            raise CryptoError("NotSupportedError", f"unknown host call {op!r}")
        return [1, encode(func(*decode(args)))]
    except CryptoError as exc:
        return [0, [exc.name, str(exc)]]
    except (TypeError, ValueError, binascii.Error, OverflowError) as exc:
        return [0, ["OperationError", str(exc) or type(exc).__name__]]
