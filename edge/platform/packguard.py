"""A push's pack, scanned as it streams in, before dulwich inflates a single object.

APPSEC: ``EDGE_MAX_PUSH_MB`` counts compressed bytes, and 400 MB of zeros
arrive as 408 KB; dulwich's receive-pack then inflates every object whole, in
memory, to index it (a 256 MB blob costs the worker 320 MB). This guard reads
the same bytes dulwich reads, parses each pack entry's header (its inflated
size; for a delta, the target size at the start of the delta) and inflates
the entry in bounded chunks only to find where it ends. An object that would
inflate past ``EDGE_MAX_FILE_MB`` stops the push before dulwich sees it whole.
"""

from __future__ import annotations

import zlib
from collections.abc import Generator
from typing import Any

MIB = 1024 * 1024
OFS_DELTA = 6
REF_DELTA = 7
INFLATE_CHUNK = 1 << 20
Scanner = Generator[None, None, Any]


class PushRefused(OSError):
    """The push is refused (an OSError, so dulwich reports it as the unpack status
    and git prints it)."""


class ObjectTooLarge(PushRefused):
    """A pushed object inflates past the limit."""


class _Buffer:
    def __init__(self) -> None:
        self.data = bytearray()


def _take(buf: _Buffer, n: int) -> Scanner:
    """Wait (yield) until ``n`` bytes are buffered; return them."""
    while len(buf.data) < n:
        yield
    out = bytes(buf.data[:n])
    del buf.data[:n]
    return out


def _varint_msb(buf: _Buffer, value: int, shift: int, first: int) -> Scanner:
    """Continue a pack header's size varint after its ``first`` byte."""
    byte = first
    while byte & 0x80:
        byte = (yield from _take(buf, 1))[0]
        value |= (byte & 0x7F) << shift
        shift += 7
    return value


class PackGuard:
    """A ``wsgi.input`` wrapper for ``git-receive-pack`` requests.

    Args:
        stream: the request body (already gunzipped if it was gzip'ed).
        max_object_bytes: the largest inflated object accepted.
        on_refuse: called with the stream before the refusal is raised (to
            drain what the client is still sending).
    """

    def __init__(self, stream: Any, max_object_bytes: int, on_refuse: Any = None) -> None:
        self.stream = stream
        self.limit = max_object_bytes
        self.on_refuse = on_refuse
        self._buf = _Buffer()
        self._scanner: Scanner | None = self._scan()
        next(self._scanner)

    def read(self, size: int = -1) -> bytes:
        data = bytes(self.stream.read(size))
        if data and self._scanner is not None:
            self._buf.data += data
            try:
                next(self._scanner)
            except StopIteration:  # past the pack: nothing more to check
                self._scanner = None
            except PushRefused:
                if self.on_refuse is not None:
                    self.on_refuse(self.stream)
                raise
        return data

    def _scan(self) -> Scanner:
        buf = self._buf
        while True:  # the commands: pkt-lines up to a flush
            raw = yield from _take(buf, 4)
            try:
                length = int(raw, 16)
            except ValueError:
                raise PushRefused(f"malformed push: bad pkt-line length {raw!r}") from None
            if length == 0:
                break
            yield from _take(buf, max(0, length - 4))
        header = yield from _take(buf, 12)
        if header[:4] != b"PACK":
            return None
        for _ in range(int.from_bytes(header[8:12], "big")):
            yield from self._entry(buf)
        return None

    def _entry(self, buf: _Buffer) -> Scanner:
        first = (yield from _take(buf, 1))[0]
        kind = (first >> 4) & 0x07
        size = yield from _varint_msb(buf, first & 0x0F, 4, first)
        if kind == OFS_DELTA:
            byte = 0x80
            while byte & 0x80:
                byte = (yield from _take(buf, 1))[0]
        elif kind == REF_DELTA:
            yield from _take(buf, 20)
        else:
            self._check(size)
        head = yield from self._inflate(buf, delta=kind in (OFS_DELTA, REF_DELTA))
        if kind in (OFS_DELTA, REF_DELTA):
            self._check(_delta_target_size(head))

    def _inflate(self, buf: _Buffer, *, delta: bool) -> Scanner:
        """Inflate one zlib stream in bounded chunks; return its first bytes."""
        inflater = zlib.decompressobj()
        head = b""
        while not inflater.eof:
            while not buf.data:
                yield
            pending = bytes(buf.data)
            buf.data.clear()
            while pending and not inflater.eof:
                out = inflater.decompress(pending, INFLATE_CHUNK)
                if delta and len(head) < 32:
                    head += out[:32]
                    self._check(_delta_target_size(head, partial=True))
                pending = inflater.unconsumed_tail
            buf.data[:0] = inflater.unused_data + pending
        return head

    def _check(self, size: int) -> None:
        if size > self.limit:
            raise ObjectTooLarge(
                f"a pushed file inflates to {size / MIB:.1f} MB, over the "
                f"{self.limit // MIB} MB limit for one file (EDGE_MAX_FILE_MB); "
                "remove it from the branch's history (e.g. git filter-repo) and push again"
            )


def _delta_target_size(head: bytes, *, partial: bool = False) -> int:
    """The target size at the start of a delta (base size first, then target)."""
    pos, values = 0, []
    for _ in range(2):
        value, shift = 0, 0
        while True:
            if pos >= len(head):
                if partial:
                    return 0
                raise PushRefused("malformed push: a delta without its size header")
            byte = head[pos]
            pos += 1
            value |= (byte & 0x7F) << shift
            shift += 7
            if not byte & 0x80:
                break
        values.append(value)
    return values[1]
