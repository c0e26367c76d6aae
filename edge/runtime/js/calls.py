"""Host calls: the Python work a function's JavaScript asks the V8 host for.

V8 has no synchronous way into Python here (mini-racer's JS->Python callbacks
are notifications delivered on the host's loop), and Web Crypto is promise-based
anyway. mini-racer 0.14's ``MiniRacer.wrap_py_function`` would expose a Python
coroutine as a JS async function, but it settles each promise with a blocking,
uncancelable ``call_function`` from the loop: while the isolate runs a long
batch (or a runaway loop) the host's loop would stall, and with it the timers
that enforce every isolate's timeout. So the bridge rides the ``d()`` contract
(``js/dispatch.js``) instead: JavaScript calls ``internal.localCall(op, args)``,
a host call of kind ``"host"``. It is queued and pinged like the worker's calls
(KV, fetch), the next ``d()`` returns it, the host runs the op off its loop
(:func:`perform_local`, in a thread: RSA key generation takes a while), and the
``d()`` after that gets ``[ok, value]`` and settles the promise. The loop never
waits for the isolate, nor the isolate for Python.

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
LOCAL = "host"  # the kind of host call this host answers itself (others go to the worker)
NO_REQUEST = "{kind} is not available while the module is evaluated; use it inside fetch()"


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
    """``settle`` pairs ``[id, reply]`` for the host calls made while a module evaluates.

    This host's own calls run in threads of ``pool``; the worker's (KV, fetch)
    are refused: they belong to a request.
    """
    loop = asyncio.get_running_loop()

    async def one(kind: Any, args: Any) -> Any:
        if kind == LOCAL:
            return await loop.run_in_executor(pool, perform_local, args, streams)
        return {"ok": False, "error": "unavailable", "message": NO_REQUEST.format(kind=kind)}

    replies = await asyncio.gather(*(one(kind, args) for _, _, kind, args in asked))
    return [[call[0], reply] for call, reply in zip(asked, replies, strict=True)]


def perform_local(args: Any, streams: ZlibStreams) -> list[Any]:
    """A ``host`` call's reply: its args are ``[op, op args]``."""
    if not (isinstance(args, list) and len(args) == 2):
        return [0, ["TypeError", "a host call takes [op, args]"]]
    return perform(args[0], args[1], streams)


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
