"""The worker's asyncio ends of the sockets to function processes.

The control sockets (to the zygote and templates) are
:mod:`edge.runtime.python.control`.

* :class:`InstanceChannel`: the stream socket to one instance, an
  ``asyncio.Protocol``: frames written in one turn of the event loop leave in
  one write at its end (a burst pipelined into an instance costs one system
  call and one wake-up of the instance), and its one persistent reader
  notices an idle instance's EOF at once. Measured against
  ``loop.sock_sendall``/``sock_recv`` with a per-call reader for the whole
  pool round trip, they tie (95 vs 92 us p50, within noise; see
  ``bench/pool_roundtrip.py``). Plus a pidfd to kill the instance without pid
  races and an open ``/proc/<pid>/status`` to read its memory peak with one
  ``pread``.

APPSEC: everything read here comes from untrusted processes; messages are
decoded by msgpack only and checked by the caller.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import socket
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, cast

from edge.runtime.python.calls import Call, CallQueue, CallTimeout, NotStarted
from edge.runtime.python.control import ExitInfo, SpawnError
from edge.runtime.wire import (
    CHUNK_MAX,
    WINDOW,
    FrameBuffer,
    PeerClosed,
    ProtocolError,
    close_fds,
    decode,
    encode,
)

__all__ = ["CallTimeout", "InstanceChannel", "NotStarted", "Verified", "verify"]

logger = logging.getLogger(__name__)

# Frames of a streamed reply that may arrive before its sink is attached.
MAX_HELD = WINDOW + 2 * CHUNK_MAX
# The kinds ``k`` of a streamed reply's frames (edge.runtime.python.process.stream);
# other kinds go to the handler registered with InstanceChannel.handle().
STREAM_KINDS = frozenset({"head", "chunk", "end"})


@dataclass(frozen=True)
class Verified:
    """An instance socket from a template, with its pid checked (APPSEC: the pid
    comes from an untrusted template, and must name a live child of it, else we
    would signal or measure a stranger) and pinned by a pidfd.

    Made by :func:`verify` when the template sends the socket, so that a cold
    start that takes a held spare makes no system call for it: opening the
    pidfd and ``/proc/<pid>/status`` stalled the worker for 7-18 ms now and
    then, right after a fork or exit elsewhere (``perf trace``, 2026-11-29).
    """

    sock: socket.socket
    pid: int
    pidfd: int
    status_fd: int
    rss_kb: int
    peak_kb: int

    def close(self) -> None:
        """Give it up unused: the instance reads EOF and exits."""
        self.sock.close()
        close_fds([self.pidfd, self.status_fd])


def verify(sock: socket.socket, pid: int, parent: int) -> Verified:
    """Check that ``pid`` is a live child of template ``parent``; ``sock`` is
    closed if not.

    Raises:
        SpawnError: the pid is not the template's child, or it is gone.
    """
    pidfd = status_fd = -1
    try:
        pidfd = os.pidfd_open(pid)
        status_fd = os.open(f"/proc/{pid}/status", os.O_RDONLY | os.O_CLOEXEC)
        status = _read_status(status_fd)
        if status.get(b"Tgid") != pid or status.get(b"PPid") != parent:
            raise SpawnError(f"pid {pid} is not an instance of template {parent}")
    except (OSError, SpawnError) as exc:
        close_fds([fd for fd in (pidfd, status_fd) if fd >= 0])
        sock.close()
        raise SpawnError(str(exc)) from None
    return Verified(sock, pid, pidfd, status_fd, status.get(b"VmRSS", 0), status.get(b"VmHWM", 0))


class InstanceChannel(asyncio.Protocol):
    """One instance: its socket as a protocol, a pidfd, its ``/proc`` status.

    Created by :meth:`attach`. The instance runs one call at a time; more may
    be queued behind it in the socket (:mod:`edge.runtime.python.calls`). A
    reply nobody asked for, an oversized or undecodable frame, or EOF fails
    the running call (and the queued ones, as not started). Frames
    tagged with a kind ``k``: a streamed reply's ``head`` switches the channel
    to stream mode (the ``chunk`` and ``end`` frames after it go to the sink
    :meth:`stream_to` attaches, held until then; EOF reaches the sink as
    ``None``); any other kind goes to the handler :meth:`handle` registered
    for it, or is a protocol error. An untagged frame is a reply: the one-frame
    fast path.

    Attributes:
        pid: the instance's pid (verified to be a child of its template).
        last_used: ``time.monotonic()`` of its last release.
        calls: how many calls it answered.
        leases: requests its pool gave it that are not over (running or queued).
        memory_peak_kb: the last known ``VmHWM`` (or ``ru_maxrss`` at exit).
        base_rss_kb: its resident memory when it started (shared pages included).
        exit: how it ended, once its template reported it.
    """

    def __init__(
        self,
        pid: int,
        pidfd: int,
        status_fd: int,
        on_lost: Callable[[InstanceChannel], None],
        limit: int | None = None,
    ) -> None:
        self.pid = pid
        self._pidfd = pidfd
        self._status_fd = status_fd
        self._on_lost = on_lost
        self._transport: asyncio.Transport | None = None
        self._out: list[bytes] = []  # frames to write at the end of this loop turn
        self._frames = FrameBuffer() if limit is None else FrameBuffer(limit)
        self._sink: Callable[[Any], None] | None = None
        self._held: list[Any] | None = None
        self._held_bytes = 0
        self._streaming = False  # between a streamed reply's head and its end
        self._handlers: dict[str, Callable[[dict[str, Any]], None]] = {}
        self._calls = CallQueue(self._dropped_timeout)
        self._exit_waiter: asyncio.Future[ExitInfo | None] | None = None
        self.alive = True
        self.last_used = 0.0
        self.calls = 0
        self.leases = 0
        self.memory_peak_kb = 0
        self.base_rss_kb = 0
        self.exit: ExitInfo | None = None
        self.orphaned = False  # its template died: no exit report will come

    @classmethod
    async def attach(
        cls,
        instance: Verified,
        on_lost: Callable[[InstanceChannel], None],
        limit: int | None = None,
    ) -> InstanceChannel:
        """Take over a verified instance socket (``limit``: the largest frame
        accepted from it). Its descriptors are the channel's from here on, even
        if this raises."""
        channel = cls(instance.pid, instance.pidfd, instance.status_fd, on_lost, limit)
        channel.base_rss_kb = instance.rss_kb
        channel.memory_peak_kb = instance.peak_kb
        loop = asyncio.get_running_loop()
        try:
            await loop.connect_accepted_socket(lambda: channel, instance.sock)
        except BaseException:
            instance.close()
            raise
        return channel

    # -- asyncio.Protocol ----------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports are not asyncio.Transport subclasses, but quack alike.
        self._transport = cast(asyncio.Transport, transport)

    def data_received(self, data: bytes) -> None:
        frames = self._frames
        try:
            payloads = frames.split(data)
        except ProtocolError as exc:
            self._fail(exc)
            return
        if not payloads:
            return
        call = self._calls.current
        if len(payloads) > 1 or frames.pending or call is None or call.answered:
            self._receive_many(payloads)  # several frames (replies, pipelined) or a stream
            return
        payload = payloads[0]
        try:
            reply = decode(payload)
            if reply.__class__ is not dict or "k" in reply:
                self._receive(reply, len(payload))  # a tagged frame: the slow path
                return
        except ProtocolError as exc:
            self._fail(exc)
            return
        self._calls.answer(reply, over=True)

    def _receive_many(self, payloads: list[memoryview] | list[bytes]) -> None:
        """The slow path: several frames at once, or a streamed reply."""
        try:
            for payload in payloads:
                if not self.alive:
                    return
                self._receive(decode(payload), len(payload))
        except ProtocolError as exc:
            self._fail(exc)

    def _receive(self, message: Any, size: int) -> None:
        kind = message.get("k") if message.__class__ is dict else None
        if kind is not None and kind not in STREAM_KINDS:
            handler = self._handlers.get(kind)
            if handler is None:
                raise ProtocolError(f"unknown frame kind {str(kind)[:20]!r}")
            handler(message)  # e.g. a request the function makes of the worker
        elif self._streaming:
            self._stream_frame(message, kind, size)
        else:
            self._reply(message, kind)

    def _stream_frame(self, message: Any, kind: str | None, size: int) -> None:
        """A frame after a head: to the sink, or held until it is attached."""
        if kind != "chunk":  # its end (or last words, or garbage the sink refuses)
            self._streaming = False
            if kind == "end":
                self._calls.end()  # the instance starts the request queued behind, if any
        if self._sink is not None:
            self._sink(message)
        elif self._held is not None:
            self._held.append(message)
            self._held_bytes += size
            if self._held_bytes > MAX_HELD:
                raise ProtocolError("the instance sent past its stream window")

    def _reply(self, message: Any, kind: str | None) -> None:
        """A reply (or a stream's head) for the running call."""
        call = self._calls.current
        if call is None or call.answered:
            raise ProtocolError("unsolicited data from the instance")
        if kind == "head":
            if self._held is not None:
                # The stream ahead ended before its sink was attached: a second
                # one cannot be told apart (the pool stops pipelining into a
                # function once it streams, so this is rare).
                raise ProtocolError("a pipelined stream before the one ahead was claimed")
            self._streaming = True
            self._held = []  # hold what follows for its sink
        elif kind is not None:
            raise ProtocolError(f"a stream {kind} before its head")
        if call.dropped and kind == "head":
            logger.info("instance %d killed: it streams a reply nobody waits for", self.pid)
            self.kill()
            return
        self._calls.answer(message, over=kind is None)

    def stream_to(self, sink: Callable[[Any], None] | None) -> None:
        """Send the frames of the streamed reply under way to ``sink`` (held
        ones first); ``None`` ends stream mode."""
        held, self._held, self._held_bytes = self._held, None, 0
        self._sink = sink
        if sink is not None:
            for message in held or ():
                sink(message)
            if not self.alive:
                sink(None)

    def handle(self, kind: str, handler: Callable[[dict[str, Any]], None]) -> None:
        """Pass frames of ``kind`` (other than a reply's) to ``handler``, whenever
        they come: before a reply, between its chunks, or while it streams."""
        self._handlers[kind] = handler

    def send_ack(self, size: int) -> None:
        """Give the instance ``size`` bytes of stream credit."""
        if self.alive and self._transport is not None:
            self._write(encode({"k": "ack", "n": size}))

    def send_frame(self, frame: bytes) -> None:
        """Answer a side request of the running call (dropped if the instance is gone)."""
        if self.alive and self._transport is not None:
            self._write(frame)

    def connection_lost(self, exc: Exception | None) -> None:
        self._fail(PeerClosed("the instance closed its connection"))

    # -- calls ---------------------------------------------------------------

    @property
    def queued(self) -> int:
        """Calls written to the instance and not yet answered (running or queued)."""
        return len(self._calls)

    @property
    def streaming(self) -> bool:
        """Whether a streamed reply is under way (the instance is busy until its end)."""
        return self._streaming

    @property
    def started(self) -> float:
        """``time.perf_counter()`` when the running call started (0: none runs)."""
        call = self._calls.current
        return call.started if call is not None else 0.0

    async def call(self, frame: bytes, timeout: float) -> tuple[Any, float]:
        """Send one request frame, possibly behind calls under way, and wait for the
        decoded reply; returns it and the ``time.perf_counter()`` the call started at.

        ``timeout`` counts from the start: when the replies ahead are in. If the
        caller is cancelled, a running call kills the instance (it may be anywhere
        in function code) and a queued one is dropped (it will run; its reply is
        thrown away, so the socket stays in step).

        Raises:
            CallTimeout: no reply within ``timeout`` seconds of its start.
            NotStarted: the instance went away before it started the call.
            PeerClosed: the instance went away while running it.
            ProtocolError: it sent something that is not one reply frame.
        """
        call = self.submit(frame, timeout)
        try:
            reply = await call.future
        except asyncio.CancelledError:
            self._abandon(call)
            raise
        return reply, call.started

    def submit(self, frame: bytes, timeout: float) -> Call:
        """:meth:`call` without a coroutine: the call, whose future settles as
        :meth:`call` would return or raise. Nobody can cancel it: it runs to its
        reply or its time limit.

        Raises:
            NotStarted: the instance is gone (nothing was written).
        """
        if not self.alive or self._transport is None:
            raise NotStarted("the instance is gone")
        call = self._calls.add(timeout)
        self._write(frame)
        return call

    def _write(self, frame: bytes) -> None:
        if not self._out:
            asyncio.get_running_loop().call_soon(self._flush)
        self._out.append(frame)

    def _flush(self) -> None:
        out, self._out = self._out, []
        if self.alive and self._transport is not None:
            self._transport.writelines(out)

    def _abandon(self, call: Call) -> None:
        if not call.started:
            call.dropped = True
        elif not call.answered or self._calls.current is call:
            self.kill()  # it may still run the request (or stream it): never reuse it

    def _dropped_timeout(self) -> None:
        logger.warning("instance %d killed: a dropped request ran past its time limit", self.pid)
        self.kill()

    def kill(self) -> None:
        """SIGKILL the instance (through its pidfd: no pid reuse race) and close."""
        if self._pidfd >= 0:
            with contextlib.suppress(OSError):
                signal.pidfd_send_signal(self._pidfd, signal.SIGKILL)
        self._fail(PeerClosed("the instance was stopped"))

    def sample_memory(self) -> int:
        """Refresh :attr:`memory_peak_kb` from ``VmHWM`` (one ``pread``, ~12 us)."""
        if self._status_fd >= 0:
            with contextlib.suppress(OSError):
                peak = _read_status(self._status_fd).get(b"VmHWM", 0)
                self.memory_peak_kb = max(self.memory_peak_kb, peak)
        return self.memory_peak_kb

    def set_exit(self, info: ExitInfo) -> None:
        """Record the exit its template reported."""
        self.exit = info
        self.memory_peak_kb = max(self.memory_peak_kb, info.maxrss_kb)
        if self._exit_waiter is not None and not self._exit_waiter.done():
            self._exit_waiter.set_result(info)

    def orphan(self) -> None:
        """Its template died (the instance dies with it): stop waiting for a report."""
        self.orphaned = True
        if self._exit_waiter is not None and not self._exit_waiter.done():
            self._exit_waiter.set_result(None)

    async def wait_exit(self, timeout: float) -> ExitInfo | None:
        """The exit report, waiting up to ``timeout`` seconds for it (not at all
        once the template that would send it is gone)."""
        if self.exit is None and timeout > 0 and not self.orphaned:
            self._exit_waiter = asyncio.get_running_loop().create_future()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._exit_waiter, timeout)
        return self.exit

    def _fail(self, exc: Exception) -> None:
        """Fail the calls under way with ``exc`` (the queued ones as not started)
        and release every resource, once."""
        self._calls.fail(exc)
        if not self.alive:
            return
        self.alive = False
        if self._sink is not None:
            self._sink(None)
        if not isinstance(exc, PeerClosed) and self._pidfd >= 0:
            with contextlib.suppress(OSError):  # a misbehaving instance is not reused
                signal.pidfd_send_signal(self._pidfd, signal.SIGKILL)
        if self._transport is not None:
            self._transport.abort()
        self.sample_memory()
        close_fds([self._pidfd, self._status_fd])
        self._pidfd = self._status_fd = -1
        self._on_lost(self)


def _read_status(fd: int) -> dict[bytes, int]:
    """The numeric fields of a ``/proc/<pid>/status`` we use, in kB or as ids."""
    fields: dict[bytes, int] = {}
    for line in os.pread(fd, 4096, 0).splitlines():
        name, _, rest = line.partition(b":")
        if name in (b"Tgid", b"PPid", b"VmRSS", b"VmHWM"):
            fields[name] = int(rest.split()[0])
    return fields
