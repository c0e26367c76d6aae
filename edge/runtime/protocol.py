"""Frames between the runtime worker and function processes.

A frame is a 4-byte big-endian length followed by that many bytes of msgpack.
APPSEC: frames from function processes are untrusted; they are decoded with
msgpack only (never pickle or eval), size-capped, and every field is
type-checked by the receiver before use.

Control messages (worker <-> zygote, worker <-> template) travel on
``SOCK_SEQPACKET`` sockets instead: one msgpack message per packet, so the
kernel keeps message boundaries and attaches passed file descriptors
(``SCM_RIGHTS``) to exactly the message they belong to. No length prefix.

``asyncio`` is imported lazily: function processes import this module and
should not pay for (or fork) an event loop package they do not use.
"""

from __future__ import annotations

import os
import socket
import struct
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import msgpack

if TYPE_CHECKING:
    import asyncio

HEADER = struct.Struct("!I")
MAX_FRAME = 64 * 1024 * 1024
MAX_CONTROL = 64 * 1024


class ProtocolError(Exception):
    """A peer sent a malformed or oversized frame, or closed mid-frame."""


class PeerClosed(ProtocolError):
    """The peer closed its end of the socket (EOF)."""


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
    import asyncio  # noqa: PLC0415 - see the module docstring

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


def send_control(sock: socket.socket, message: Any, fds: Sequence[int] = ()) -> None:
    """Send one control message (and ``fds``, by ``SCM_RIGHTS``) on a seqpacket socket.

    Raises ``ProtocolError`` if the message is larger than ``MAX_CONTROL``.
    """
    data = msgpack.packb(message, use_bin_type=True)
    if len(data) > MAX_CONTROL:
        raise ProtocolError(f"control message of {len(data)} bytes exceeds {MAX_CONTROL}")
    if fds:
        socket.send_fds(sock, [data], list(fds))
    else:
        sock.send(data)


def recv_control(sock: socket.socket, maxfds: int = 0) -> tuple[Any, list[int]]:
    """Receive one control message and the fds passed with it.

    Received fds are close-on-exec. On any error the fds are closed before
    raising. ``BlockingIOError`` passes through for non-blocking sockets.

    Raises:
        PeerClosed: on EOF.
        ProtocolError: if the message or its fds were truncated, or it does
            not decode.
    """
    data, fds, flags, _ = socket.recv_fds(sock, MAX_CONTROL, maxfds, socket.MSG_CMSG_CLOEXEC)
    try:
        if not data:
            raise PeerClosed("peer closed the connection")
        if flags & (socket.MSG_TRUNC | socket.MSG_CTRUNC):
            raise ProtocolError("truncated control message (too large, or too many fds)")
        return decode(data), fds
    except BaseException:
        close_fds(fds)
        raise


def close_fds(fds: Sequence[int]) -> None:
    """Close every fd in ``fds``, ignoring ones already closed."""
    for fd in fds:
        try:
            os.close(fd)
        except OSError:
            continue
