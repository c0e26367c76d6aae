"""Host calls: the Python work a function's JavaScript asks the V8 host for.

V8 has no synchronous way into Python here (mini-racer's JS->Python callbacks
are notifications delivered on the host's loop), and Web Crypto is promise-based
anyway, so the bridge rides the ``d()`` contract (``js/dispatch.js``): JavaScript
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
import zlib
from collections.abc import Callable
from concurrent.futures import Executor
from typing import Any

from edge.runtime.js import keyformats, webcrypto
from edge.runtime.js.keyformats import CryptoError

logger = logging.getLogger(__name__)

MAX_DEPTH = 8
MAX_INFLATE = 64 * 1024 * 1024
WBITS = {"deflate": zlib.MAX_WBITS, "deflate-raw": -zlib.MAX_WBITS, "gzip": 16 + zlib.MAX_WBITS}


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


def _compress(fmt: Any, data: Any) -> bytes:
    """All of ``data`` compressed as ``fmt`` (CompressionStream buffers its input)."""
    if fmt not in WBITS or not isinstance(data, bytes):
        raise CryptoError("TypeError", f"unsupported compression format {fmt!r}")
    obj = zlib.compressobj(wbits=WBITS[fmt])
    return obj.compress(data) + obj.flush()


def _decompress(fmt: Any, data: Any) -> bytes:
    """``data`` decompressed; trailing or truncated input is an error, as in the spec."""
    if fmt not in WBITS or not isinstance(data, bytes):
        raise CryptoError("TypeError", f"unsupported compression format {fmt!r}")
    obj = zlib.decompressobj(wbits=WBITS[fmt])
    try:
        out = obj.decompress(data, MAX_INFLATE)
    except zlib.error as exc:
        raise CryptoError("TypeError", f"invalid {fmt} data: {exc}") from None
    if obj.unconsumed_tail:
        raise CryptoError("RangeError", f"decompressed data exceeds {MAX_INFLATE} bytes")
    if not obj.eof or obj.unused_data:
        raise CryptoError("TypeError", f"invalid {fmt} data: truncated or trailing bytes")
    return out


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
    "compress": _compress,
    "decompress": _decompress,
}


async def run_all(pool: Executor | None, asked: list[Any]) -> list[Any]:
    """Answers ``[id, ok, value]`` to ``[id, op, args]`` calls, each in a thread of ``pool``."""
    loop = asyncio.get_running_loop()
    results = await asyncio.gather(
        *(loop.run_in_executor(pool, perform, op, args) for _, op, args in asked)
    )
    return [[cid, *result] for (cid, _, _), result in zip(asked, results, strict=True)]


def perform(op: Any, args: Any) -> list[Any]:
    """``[1, value]`` or ``[0, [error name, message]]`` for one call."""
    try:
        func = OPS.get(op) if isinstance(op, str) else None
        if func is None or not isinstance(args, list):
            raise CryptoError("NotSupportedError", f"unknown host call {op!r}")
        return [1, encode(func(*decode(args)))]
    except CryptoError as exc:
        return [0, [exc.name, str(exc)]]
    except (TypeError, ValueError, binascii.Error, OverflowError) as exc:
        return [0, ["OperationError", str(exc) or type(exc).__name__]]
