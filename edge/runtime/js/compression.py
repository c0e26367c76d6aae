"""CompressionStream/DecompressionStream's zlib, on the V8 host's side of the bridge.

Each stream a function opens gets a zlib object here, kept in its isolate's
:class:`ZlibStreams`, and every chunk goes through it as it is written
(``js/transform.js``), so output flows as input arrives and a corrupt chunk
errors the stream at that chunk. A stream ends with ``end`` (its writable side
closed), ``drop`` (cancelled, or garbage-collected in JavaScript), or with its
isolate.

APPSEC: a function may hold at most :data:`MAX_OPEN` streams, and one chunk may
inflate to at most :data:`MAX_INFLATE` bytes (a zip bomb is an error, not the
host's memory).
"""

from __future__ import annotations

import itertools
import zlib
from typing import Any

from edge.runtime.js.keyformats import CryptoError

MAX_OPEN = 64
MAX_INFLATE = 64 * 1024 * 1024
WBITS = {"deflate": zlib.MAX_WBITS, "deflate-raw": -zlib.MAX_WBITS, "gzip": 16 + zlib.MAX_WBITS}


class ZlibStreams:
    """One isolate's open (de)compression streams, by id."""

    def __init__(self) -> None:
        self._open: dict[int, tuple[str, str, Any]] = {}
        self._ids = itertools.count(1)

    def open(self, mode: Any, fmt: Any) -> int:
        if fmt not in WBITS or mode not in ("compress", "decompress"):
            raise CryptoError("TypeError", f"unsupported compression format {fmt!r}")
        if len(self._open) >= MAX_OPEN:
            raise CryptoError("RangeError", f"more than {MAX_OPEN} compression streams open")
        obj = (
            zlib.compressobj(wbits=WBITS[fmt])
            if mode == "compress"
            else zlib.decompressobj(wbits=WBITS[fmt])
        )
        sid = next(self._ids)
        self._open[sid] = (mode, fmt, obj)
        return sid

    def push(self, sid: Any, data: Any) -> bytes:
        mode, fmt, obj = self._get(sid)
        if not isinstance(data, bytes):
            raise CryptoError("TypeError", "a chunk must be bytes")
        if mode == "compress":
            return bytes(obj.compress(data))
        try:
            if obj.eof and data:
                raise zlib.error("data after the end of the stream")
            out = obj.decompress(data, MAX_INFLATE)
        except zlib.error as exc:
            self.drop(sid)
            raise CryptoError("TypeError", f"invalid {fmt} data: {exc}") from None
        if obj.unconsumed_tail:
            self.drop(sid)
            raise CryptoError("RangeError", f"a chunk inflates past {MAX_INFLATE} bytes")
        if obj.unused_data:
            self.drop(sid)
            raise CryptoError("TypeError", f"invalid {fmt} data: trailing bytes")
        return bytes(out)

    def end(self, sid: Any) -> bytes:
        mode, fmt, obj = self._get(sid)
        self.drop(sid)
        if mode == "compress":
            return bytes(obj.flush())
        if not obj.eof:
            raise CryptoError("TypeError", f"invalid {fmt} data: truncated")
        return b""

    def drop(self, sid: Any) -> None:
        self._open.pop(sid, None)

    def _get(self, sid: Any) -> tuple[str, str, Any]:
        found = self._open.get(sid) if type(sid) is int else None
        if found is None:
            raise CryptoError("TypeError", "this compression stream is closed")
        return found
