"""The inflated size of a git object, read from its header alone.

APPSEC: a push may bring a blob that inflates a thousandfold (400 MB of zeros
arrive as 408 KB). The ``update`` step must know every blob's size before
anything reads it, so sizes come from headers and never from the object:

- a loose object starts with ``<type> <size>\\0``: we inflate that prefix only;
- a packed object's entry header holds its size as a varint;
- a deltified one starts its delta with the base size, then the target size:
  we inflate the first bytes of the delta only.
"""

from __future__ import annotations

import os
import zlib
from typing import Any

OFS_DELTA = 6
REF_DELTA = 7
HEADER_BYTES = 64  # a pack entry header, a delta base offset and a 20-byte id fit
ZLIB_PREFIX = 256  # compressed bytes read to reach a delta's or loose object's size


def object_size(store: Any, sha: bytes) -> int:
    """The inflated size of object ``sha`` (hex) in a dulwich object store.

    Raises:
        KeyError: the object is in none of the store's packs or loose objects.
    """
    for disk in _disk_stores(store):
        for pack in disk.packs:
            try:
                offset = pack.index.object_offset(sha)
            except KeyError:
                continue
            # the .pack beside the .idx: reading it ourselves maps no pack data
            return _packed_size(pack.index.path.removesuffix(".idx") + ".pack", offset)
        size = _loose_size(os.path.join(os.fspath(disk.path), sha[:2].decode(), sha[2:].decode()))
        if size is not None:
            return size
    raise KeyError(sha)


def _disk_stores(store: Any) -> list[Any]:
    """The on-disk stores behind ``store`` (an overlay of quarantine + repo, or one store)."""
    bases = getattr(store, "bases", None)
    if bases is not None:
        return [disk for base in bases for disk in _disk_stores(base)]
    return [store]


def _loose_size(path: str) -> int | None:
    try:
        with open(path, "rb") as handle:
            compressed = handle.read(ZLIB_PREFIX)
    except FileNotFoundError:
        return None
    header = zlib.decompressobj().decompress(compressed, HEADER_BYTES)
    kind_and_size = header.split(b"\0", 1)[0]
    return int(kind_and_size.split(b" ", 1)[1])


def _packed_size(path: str, offset: int) -> int:
    with open(path, "rb") as handle:
        handle.seek(offset)
        data = handle.read(HEADER_BYTES + ZLIB_PREFIX)
    kind = (data[0] >> 4) & 0x07
    size, pos = data[0] & 0x0F, 1
    shift = 4
    while data[pos - 1] & 0x80:
        size |= (data[pos] & 0x7F) << shift
        shift += 7
        pos += 1
    if kind == OFS_DELTA:
        while data[pos] & 0x80:  # the base's negative offset
            pos += 1
        pos += 1
    elif kind == REF_DELTA:
        pos += 20
    else:
        return size
    delta = zlib.decompressobj().decompress(data[pos:], 32)
    _base_size, at = _varint(delta, 0)
    target_size, _ = _varint(delta, at)
    return target_size


def _varint(data: bytes, pos: int) -> tuple[int, int]:
    """A delta header's little-endian base-128 number at ``pos``; returns it and the next pos."""
    value, shift = 0, 0
    while True:
        byte = data[pos]
        value |= (byte & 0x7F) << shift
        shift += 7
        pos += 1
        if not byte & 0x80:
            return value, pos
