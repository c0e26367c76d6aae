"""The wire format between runtime workers and function processes.

Stream sockets (worker <-> instance, worker <-> V8 host) carry frames: a 4-byte
big-endian length followed by that many bytes of msgpack. :class:`FrameBuffer`
is the one parser of that format, used by both asyncio protocols on the worker
side, by the V8 host, and by the blocking reader inside instances.

Tagged side frames. While an instance runs a request it may send frames with
an explicit kind ``k`` before its reply; the worker answers each with a frame of
the same kind (one at a time: the instance waits for the answer). Reply
frames carry no ``k``. Today there is one kind, ``kv`` (:mod:`edge.kv` in
the instance, :mod:`edge.runtime.kv` in the worker)::

    instance -> worker  {"k": "kv", "op": "get",    "key": str}
                        {"k": "kv", "op": "put",    "key": str, "value": bytes,
                                                       "ttl": float | None}
                        {"k": "kv", "op": "delete", "key": str}
                        {"k": "kv", "op": "list",   "prefix": str, "limit": int,
                                                       "cursor": str (optional)}
                        {"k": "kv", "op": "incr",   "key": str, "by": int}
    worker -> instance  {"k": "kv", "ok": True,  "value": bytes | None | int |
                                                    {"keys": [str], "cursor": str | None}}
                        {"k": "kv", "ok": False, "error": "limit" | "invalid" |
                                                    "type" | "unavailable", "message": str}

The V8 host relays ``env.KV`` and ``fetch()`` the same way, as ``["call", ...]``
and ``["callr", ...]`` frames (see :mod:`edge.runtime.js.client`).

Control messages (worker <-> zygote, worker <-> template) travel on
``SOCK_SEQPACKET`` sockets instead: one msgpack message per packet, so the
kernel keeps message boundaries and attaches passed file descriptors
(``SCM_RIGHTS``) to exactly the message they belong to. No length prefix.

APPSEC: frames from function processes are untrusted; they are decoded with
msgpack only (never pickle or eval), size-capped, and every field is
type-checked by the receiver before use. This module imports no event loop:
function processes import it.
"""

from __future__ import annotations

import os
import socket
import struct
from collections.abc import Sequence
from typing import Any

import msgpack

HEADER = struct.Struct("!I")
MIB = 1024 * 1024
MAX_FRAME = 64 * MIB
MAX_CONTROL = 64 * 1024
# Streamed responses (both languages): a producer may have at most WINDOW bytes
# the client has not taken yet, sent in chunk frames of at most CHUNK_MAX bytes
# (see edge.runtime.streaming).
WINDOW = 256 * 1024
CHUNK_MAX = 64 * 1024


class ProtocolError(Exception):
    """A peer sent a malformed or oversized frame, or closed mid-frame."""


class FrameTooLarge(ProtocolError):
    """A frame's length prefix is over the reader's limit (nothing of it was read)."""


class PeerClosed(ProtocolError):
    """The peer closed its end of the socket (EOF)."""


def encode(message: Any) -> bytes:
    """One frame: the length prefix and the msgpack payload."""
    payload = msgpack.packb(message, use_bin_type=True)
    return HEADER.pack(len(payload)) + payload


def decode(payload: bytes | memoryview) -> Any:
    """A frame's payload as Python data (maps, lists, str, bytes, numbers only)."""
    try:
        return msgpack.unpackb(payload, raw=False, strict_map_key=True)
    except (ValueError, msgpack.ExtraData, msgpack.FormatError, msgpack.StackError) as exc:
        raise ProtocolError(f"undecodable frame: {exc}") from None


class FrameBuffer:
    """Bytes read from a stream socket, cut into frame payloads.

    Args:
        limit: the largest payload accepted; a bigger length prefix is a
            :class:`ProtocolError` (the peer must not make us buffer it).
    """

    def __init__(self, limit: int = MAX_FRAME) -> None:
        self._buf = bytearray()
        self._limit = limit

    def feed(self, data: bytes) -> None:
        """Append bytes as they arrive."""
        self._buf += data

    def next(self) -> bytes | None:
        """The next complete payload (removed from the buffer), or ``None`` for now.

        Raises:
            ProtocolError: the next frame announces more than ``limit`` bytes.
        """
        buf = self._buf
        if len(buf) < HEADER.size:
            return None
        (size,) = HEADER.unpack_from(buf)
        if size > self._limit:
            raise FrameTooLarge(f"frame of {size} bytes exceeds the {self._limit}-byte limit")
        end = HEADER.size + size
        if len(buf) < end:
            return None
        payload = bytes(buf[HEADER.size : end])
        del buf[:end]  # front deletion of a bytearray is amortised O(1) in CPython
        return payload

    def split(self, data: bytes) -> list[memoryview] | list[bytes]:
        """Feed ``data`` and take every complete payload out at once.

        With nothing buffered (the usual case: a peer's write arrives whole),
        the payloads are views of ``data`` itself, not copies, and only a
        partial frame at its end is buffered: a 10 KB reply was copied three
        times on its way to the decoder.

        Raises:
            ProtocolError: a frame announces more than ``limit`` bytes (the
                payloads before it in ``data`` are dropped with the connection).
        """
        if self._buf:
            self._buf += data
            payloads = []
            while (payload := self.next()) is not None:
                payloads.append(payload)
            return payloads
        view = memoryview(data)
        views = []
        at, total, limit = 0, len(data), self._limit
        unpack, header = HEADER.unpack_from, HEADER.size
        while total - at >= header:
            (size,) = unpack(data, at)
            if size > limit:
                raise FrameTooLarge(f"frame of {size} bytes exceeds the {limit}-byte limit")
            end = at + header + size
            if end > total:
                break
            views.append(view[at + header : end])
            at = end
        if at < total:
            self._buf += view[at:]
        return views

    @property
    def pending(self) -> int:
        """Bytes buffered that are not yet a whole frame."""
        return len(self._buf)


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
