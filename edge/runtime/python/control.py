"""The worker's control sockets to its zygote and templates, and what they report.

* :class:`ControlChannel`: a seqpacket control socket (to the zygote or a
  template), read with ``loop.add_reader`` and ``socket.recv_fds`` so passed
  file descriptors arrive with their message.
* :class:`ExitInfo`: how a child process ended, as its parent reported it.

APPSEC: everything read here comes from untrusted processes; messages are
decoded by msgpack only and checked by the caller.
"""

from __future__ import annotations

import asyncio
import logging
import signal
import socket
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from edge.runtime.python.process.instance import EXIT_MEMORY
from edge.runtime.wire import PeerClosed, ProtocolError, recv_control, send_control

logger = logging.getLogger(__name__)

MessageCallback = Callable[[Any, list[int]], None]


class SpawnError(Exception):
    """An instance or template could not be started."""


@dataclass(frozen=True)
class ExitInfo:
    """How a child process ended, as its parent reported it.

    Attributes:
        pid: the process id.
        code: the exit status, or ``None`` if a signal ended it.
        signal: the signal number, or ``None``.
        maxrss_kb: its peak resident memory (``ru_maxrss``).
    """

    pid: int
    code: int | None
    signal: int | None
    maxrss_kb: int = 0

    @classmethod
    def parse(cls, message: dict[str, Any]) -> ExitInfo | None:
        """Read an ``exit`` message; ``None`` if it is malformed."""
        pid, code, sig, rss = (message.get(k) for k in ("pid", "code", "signal", "maxrss_kb"))
        if not isinstance(pid, int) or not isinstance(rss, int):
            return None
        exited = isinstance(code, int) and sig is None
        if not exited and not (isinstance(sig, int) and code is None):
            return None
        return cls(pid, code, sig, max(rss, 0))

    def out_of_memory(self, base_rss_kb: int, memory_mb: int) -> bool:
        """Whether this death means "memory limit exceeded".

        The instance says so itself (``EXIT_MEMORY``) when it can catch the
        MemoryError; when it cannot (an abort or a crash in C code under memory
        pressure, the kernel's OOM killer), an abnormal death after growing by
        half its limit or more (from ``base_rss_kb`` at its start) counts too.
        """
        if self.code == EXIT_MEMORY:
            return True
        abnormal = self.signal is not None or self.code != 0
        return abnormal and self.maxrss_kb - base_rss_kb >= memory_mb * 1024 // 2

    def describe(self) -> str:
        """``"crashed: SIGSEGV"`` or ``"exited with status 1"``."""
        if self.signal is not None:
            try:
                return f"crashed: {signal.Signals(self.signal).name}"
            except ValueError:
                return f"crashed: signal {self.signal}"
        return f"exited with status {self.code}"


class ControlChannel:
    """The worker's end of a seqpacket control socket.

    Args:
        sock: the socket (made non-blocking here).
        on_message: called with each decoded message and the fds passed with
            it (the callee owns them).
        on_close: called once when the peer closes, misbehaves, or we close.
        maxfds: fds accepted per message; more is a protocol error.
    """

    def __init__(
        self,
        sock: socket.socket,
        on_message: MessageCallback,
        on_close: Callable[[], None],
        *,
        maxfds: int = 1,
    ) -> None:
        self.sock = sock
        self._on_message = on_message
        self._on_close = on_close
        self._maxfds = maxfds
        self._loop: asyncio.AbstractEventLoop | None = None
        self.closed = False

    def start(self) -> None:
        """Start reading on the running loop."""
        self.sock.setblocking(False)
        self._loop = asyncio.get_running_loop()
        self._loop.add_reader(self.sock.fileno(), self._readable)

    def send(self, message: dict[str, Any]) -> None:
        """Send one message; a peer that cannot take it is treated as gone.

        Raises:
            PeerClosed: the channel is (now) closed.
        """
        if self.closed:
            raise PeerClosed("channel closed")
        try:
            send_control(self.sock, message)
        except (OSError, ProtocolError) as exc:
            self.close()
            raise PeerClosed(f"could not send: {exc}") from None

    def _readable(self) -> None:
        while not self.closed:
            try:
                message, fds = recv_control(self.sock, self._maxfds)
            except (BlockingIOError, InterruptedError):
                return
            except (PeerClosed, ProtocolError, OSError) as exc:
                if not isinstance(exc, PeerClosed):
                    logger.warning("closing a control channel: %s", exc)
                self.close()
                return
            self._on_message(message, fds)

    def close(self) -> None:
        """Stop reading and close the socket; calls ``on_close`` once."""
        if self.closed:
            return
        self.closed = True
        if self._loop is not None and not self._loop.is_closed():
            self._loop.remove_reader(self.sock.fileno())
        self.sock.close()
        self._on_close()
