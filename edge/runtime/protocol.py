"""Frames between the runtime worker and function processes.

A frame is a 4-byte big-endian length followed by that many bytes of msgpack.
APPSEC: frames from function processes are untrusted; they are decoded with
msgpack only (never pickle or eval), size-capped, and every field is
type-checked by the receiver before use.
"""

from __future__ import annotations

import asyncio
import socket
import struct
from typing import Any

import msgpack

HEADER = struct.Struct("!I")
MAX_FRAME = 64 * 1024 * 1024


class ProtocolError(Exception):
    """A peer sent a malformed or oversized frame, or closed mid-frame."""


def encode(message: Any) -> bytes:
    payload = msgpack.packb(message, use_bin_type=True)
    return HEADER.pack(len(payload)) + payload


def decode(payload: bytes) -> Any:
    try:
        return msgpack.unpackb(payload, raw=False, strict_map_key=True)
    except (ValueError, msgpack.ExtraData, msgpack.FormatError, msgpack.StackError) as exc:
        raise ProtocolError(f"undecodable frame: {exc}") from None


async def read_frame(reader: asyncio.StreamReader, limit: int = MAX_FRAME) -> Any:
    """Read one frame; raises ``ProtocolError`` on EOF or a frame over ``limit``."""
    try:
        header = await reader.readexactly(HEADER.size)
        (size,) = HEADER.unpack(header)
        if size > limit:
            raise ProtocolError(f"frame of {size} bytes exceeds the {limit}-byte limit")
        return decode(await reader.readexactly(size))
    except asyncio.IncompleteReadError:
        raise ProtocolError("peer closed the connection") from None


def recv_frame(sock: socket.socket, limit: int = MAX_FRAME) -> Any:
    """Blocking read of one frame (used inside function processes)."""
    header = _recv_exactly(sock, HEADER.size)
    (size,) = HEADER.unpack(header)
    if size > limit:
        raise ProtocolError(f"frame of {size} bytes exceeds the {limit}-byte limit")
    return decode(_recv_exactly(sock, size))


def send_frame(sock: socket.socket, message: Any) -> None:
    sock.sendall(encode(message))


def _recv_exactly(sock: socket.socket, size: int) -> bytes:
    buf = bytearray()
    while len(buf) < size:
        chunk = sock.recv(size - len(buf))
        if not chunk:
            raise ProtocolError("peer closed the connection")
        buf += chunk
    return bytes(buf)
