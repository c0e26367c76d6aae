"""The socket between a runtime worker and its V8 host: frames both ways.

Both ends speak :class:`FrameProtocol` (the worker in :mod:`edge.runtime.js.client`,
the host in :mod:`edge.runtime.js.host`); what the frames say is listed in the
client's module docstring, their format in :mod:`edge.runtime.wire`.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import Any, cast

from edge.runtime.wire import FrameBuffer, ProtocolError, decode, encode

logger = logging.getLogger(__name__)


class FrameProtocol(asyncio.Protocol):
    """Length-prefixed msgpack frames over a stream socket, both directions.

    APPSEC: peers are untrusted; frames are size-capped and decoded with msgpack
    only, and a malformed frame closes the connection.

    Frames sent in one turn of the event loop leave in one write, at the end of
    that turn: a batch of responses (or of invocations) costs one system call
    here and one wake-up of the peer, not one per frame. Call ``send`` on the
    loop's thread only.
    """

    def __init__(self, on_frame: Callable[[Any], None], on_lost: Callable[[], None]) -> None:
        self._on_frame = on_frame
        self._on_lost = on_lost
        self._frames = FrameBuffer()
        self._out: list[bytes] = []  # frames to write at the end of this turn
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)  # uvloop's is not a subclass
        self.loop = asyncio.get_running_loop()

    def data_received(self, data: bytes) -> None:
        try:
            for payload in self._frames.split(data):
                self._on_frame(decode(payload))
        except ProtocolError as exc:
            logger.error("closing connection: %s", exc)
            self.close()

    def send(self, message: Any) -> None:
        if self.transport is not None and not self.transport.is_closing():
            if not self._out:
                self.loop.call_soon(self._flush)
            self._out.append(encode(message))

    def _flush(self) -> None:
        out, self._out = self._out, []
        if out and self.transport is not None and not self.transport.is_closing():
            self.transport.writelines(out)

    def close(self) -> None:
        if self.transport is not None:
            self._flush()
            self.transport.close()

    def connection_lost(self, exc: Exception | None) -> None:
        self.transport = None
        self._out = []
        self._on_lost()
