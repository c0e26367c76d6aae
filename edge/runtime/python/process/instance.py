"""A function instance: the forked process that runs one request at a time.

Runs in a child forked from a template (see ``edge.runtime.python.process.template``), which
already imported the function and set up the sandbox. Frames on the instance
socket are length-prefixed msgpack (``edge.runtime.wire``):

* request: ``{method, url, path, query, headers, body, params, id}``; the
  worker may write the next request before this one is answered (pipelining):
  it is run right after the reply, and one found while reading a tagged frame
  mid-request (a KV answer, a stream ack) is kept for then;
* reply: ``{status, headers, body, logs, error, t}`` where ``logs`` is a list of
  ``[ts, level, message]``, ``error`` is ``None``, ``"exception"`` (an
  uncaught exception, answered 500 with a generic body) or ``"memory"`` (the
  instance then exits with :data:`EXIT_MEMORY`), and ``t`` the handler's
  wall time in seconds (how the worker tells a fast function, which it
  pipelines: ``edge.runtime.python.slots``);
* or, when the handler returns a generator, a streamed reply: ``head``,
  ``chunk`` frames and an ``end`` frame, each tagged with a kind ``k``, paced
  by the worker's ``ack`` frames (``edge.runtime.python.process.stream``).

Everything written to ``sys.stdout`` (level ``info``), ``sys.stderr``
(``error``) and Python ``logging`` (``debug``, ``info``, ``warning``,
``error``, ``critical``) during a call is sent back with its reply.
"""

from __future__ import annotations

import collections
import io
import logging
import os
import select
import socket
import time
import traceback
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

from edge import kv
from edge.function import Request, to_response
from edge.runtime.python.process.stream import ClientGone, StreamSender, is_ack, streamed
from edge.runtime.wire import FrameBuffer, ProtocolError, decode, encode

# Reserved exit code: the instance hit its memory limit (cf. gunicorn's
# WORKER_BOOT_ERROR for a reserved "failed to boot" code).
EXIT_MEMORY = 4

MAX_RECORDS = 1000
MAX_MESSAGE = 16 * 1024
# Freed on MemoryError, so that reporting it does not need new memory. Made
# with bytes(), i.e. calloc: it counts against RLIMIT_DATA but its pages are
# never touched, so it costs no time at fork.
BALLAST_BYTES = 256 * 1024
# Bytes asked of each recv(). Below glibc's mmap threshold (128 KiB) on
# purpose: recv(n) allocates n bytes and then shrinks them, and an mmap'ed
# buffer costs an mmap, a page fault, an mremap and a munmap on every call
# (~12 us, measured, for a 300-byte request).
RECV_BYTES = 64 * 1024
# The request :meth:`Instance.rehearse` runs through the platform's request path.
REHEARSAL = {
    "method": "GET",
    "url": "http://rehearsal.invalid/a?b=c",
    "path": "/a",
    "query_string": "b=c",
    "headers": [("accept", "*/*"), ("user-agent", "rehearsal")],
    "body": b"",
    "params": {"id": "1"},
    "request_id": "0" * 16,
}
# An uncaught exception: the worker answers it from its fault table.
_INTERNAL_ERROR = {"status": 500, "headers": [], "body": b"", "error": "exception"}

Handler = Callable[[Request], Any]


def _level(levelno: int) -> str:
    if levelno >= logging.CRITICAL:
        return "critical"
    if levelno >= logging.ERROR:
        return "error"
    if levelno >= logging.WARNING:
        return "warning"
    return "info" if levelno >= logging.INFO else "debug"


class _Stream(io.TextIOBase):
    """``sys.stdout``/``sys.stderr`` replacement: one log record per line."""

    def __init__(self, capture: Capture, level: str) -> None:
        super().__init__()
        self._capture = capture
        self._level = level
        self._partial = ""

    @property
    def encoding(self) -> str:  # type: ignore[override]
        return "utf-8"

    def writable(self) -> bool:
        return True

    def write(self, text: str) -> int:
        if not isinstance(text, str):
            raise TypeError(f"write() argument must be str, not {type(text).__name__}")
        lines = (self._partial + text).split("\n")
        self._partial = lines.pop()
        for line in lines:
            self._capture.add(self._level, line)
        return len(text)

    def flush(self) -> None:
        if self._partial:
            self._capture.add(self._level, self._partial)
            self._partial = ""


class _LogHandler(logging.Handler):
    def __init__(self, capture: Capture) -> None:
        super().__init__(logging.DEBUG)
        self._capture = capture
        self.setFormatter(logging.Formatter("%(message)s"))

    def emit(self, record: logging.LogRecord) -> None:
        try:
            self._capture.add(_level(record.levelno), self.format(record), record.created)
        except Exception:  # a bad log call must not fail the request
            self.handleError(record)


class Capture:
    """Collects what a function writes, as ``[ts, level, message]`` records."""

    def __init__(self) -> None:
        self.records: list[list[Any]] = []
        self.dropped = 0
        self._streams: list[_Stream] = []

    def install(self) -> None:
        """Replace ``sys.stdout``/``sys.stderr`` and attach to the root logger."""
        import sys  # noqa: PLC0415 - keep module globals free of the real streams

        self._streams = [_Stream(self, "info"), _Stream(self, "error")]
        sys.stdout, sys.stderr = self._streams
        root = logging.getLogger()
        for handler in list(root.handlers):
            root.removeHandler(handler)
        root.addHandler(_LogHandler(self))
        root.setLevel(logging.INFO)
        logging.lastResort = None

    def add(self, level: str, message: str, ts: float | None = None) -> None:
        if len(self.records) >= MAX_RECORDS:
            self.dropped += 1
            return
        if len(message) > MAX_MESSAGE:
            message = message[:MAX_MESSAGE] + " [truncated]"
        self.records.append([time.time() if ts is None else ts, level, message])

    def take(self) -> list[list[Any]]:
        """The records so far (flushing partial lines); starts a new batch."""
        for stream in self._streams:
            stream.flush()
        records = self.records
        if self.dropped:
            records.append([time.time(), "warning", f"{self.dropped} more log lines dropped"])
        self.records = []
        self.dropped = 0
        return records


class Instance:
    """The request loop of one forked instance.

    Args:
        sock: the connected stream socket to the worker.
        handler: the function's callable (sync or async).
        env: the function's variables, passed as ``request.env``.
        capture: the installed output capture.
    """

    def __init__(
        self, sock: socket.socket, handler: Handler, env: Mapping[str, str], capture: Capture
    ) -> None:
        self.sock = sock
        self.handler = handler
        self.env = dict(env)
        self.capture = capture
        self.pid = os.getpid()
        self._frames = FrameBuffer()
        self._queued: collections.deque[Any] = collections.deque()  # requests read early
        # Wait for a request in poll(), not in a blocking recv(): the worker
        # reading our reply frees socket buffer space, and the kernel then wakes
        # every task sleeping in recv() on this socket (unix_write_space), only
        # for it to find no data and sleep again: a wasted context switch per
        # request. poll() waiters are woken for POLLIN only.
        self._poller = select.poll()
        self._poller.register(sock, select.POLLIN)
        self._loop: Any = None
        self._ballast: bytes | None = None
        self._sender: StreamSender | None = None  # the streamed reply under way

    def run(self) -> int:
        """Serve requests until the worker closes the socket; returns the exit code."""
        self._ballast = bytes(BALLAST_BYTES)
        os.register_at_fork(after_in_child=self._forked)
        kv.bind(self.side_call)
        self.rehearse()
        try:
            return self._serve()
        except MemoryError:
            self._ballast = None
            self._reply_memory()
            return EXIT_MEMORY

    def rehearse(self) -> None:
        """Run the platform's part of a request (never the handler) before the
        first real one.

        Forked from the template, this process shares its pages until it
        writes them, and CPython writes every object it touches (reference
        counts) and grows its allocator's arenas: the first request paid ~150
        page faults (~0.5 ms, measured) that this moves to the spare's idle time.
        """
        frames = FrameBuffer()
        frames.feed(encode(REHEARSAL))
        request = Request(**decode(frames.next() or b""), env=self.env)
        self.capture.add("info", request.path)
        self.capture.take()
        for result in ({"ok": True}, "text", b"bytes", None):
            status, headers, body = to_response(result).encode()
            encode({"status": status, "headers": headers, "body": body, "logs": []})

    def _serve(self) -> int:
        while True:
            try:
                message = self._next_request()
            except (ProtocolError, OSError):
                return 1
            if message is None:
                return 0
            try:
                reply = self._answer(message)
            except ClientGone:
                return 0  # the worker hung up mid-stream: it kills us anyway
            if os.getpid() != self.pid:
                return 0  # a child the function forked came back here: never reply twice
            if reply:
                self.sock.sendall(reply)

    def _forked(self) -> None:
        """In a process the function forked: let go of the instance socket."""
        kv.bind(None)
        self.sock.close()

    def side_call(self, message: dict[str, Any]) -> Any:
        """Mid-request: send a tagged frame (e.g. ``kind: kv``), return the worker's answer.

        Stream acks met on the way are credit for the stream under way (or late
        ones for a stream that ended), not the answer.
        """
        try:
            self.sock.sendall(encode(message))
            while (answer := self._next_tagged()) is not None:
                if not is_ack(answer):
                    return answer
                if self._sender is not None:
                    self._sender.credit(answer)
        except (ProtocolError, OSError):
            pass
        return None

    def _next_request(self) -> Any:
        """The next request, decoded; ``None`` when the worker closed the socket.

        Late stream acks (credit for a stream that ended) are skipped.
        """
        if self._queued:
            return self._queued.popleft()
        while (payload := self._read_frame()) is not None:
            message = decode(payload)
            if not is_ack(message):
                return message
        return None

    def _next_tagged(self) -> Any:
        """Mid-request: the worker's next tagged frame (a KV answer, a stream ack),
        decoded; requests queued behind this one are kept for later."""
        while (payload := self._read_frame()) is not None:
            message = decode(payload)
            if message.__class__ is dict and "k" in message:
                return message
            self._queued.append(message)
        return None

    def _read_frame(self) -> bytes | None:
        """The next frame's payload; ``None`` when the worker closed the socket."""
        frames = self._frames
        while (payload := frames.next()) is None:
            self._poller.poll()
            chunk = self.sock.recv(RECV_BYTES)
            if not chunk:
                return None
            frames.feed(chunk)
        return payload

    def _answer(self, message: Any) -> bytes:
        request = Request(
            method=message["method"],
            url=message["url"],
            path=message["path"],
            query_string=message["query"],
            headers=[tuple(h) for h in message["headers"]],
            params=message["params"],
            body=message["body"],
            env=self.env,
            request_id=message["id"],
        )
        self.capture.take()
        started = time.perf_counter()
        try:
            reply = self._call(request)
            if isinstance(reply, bytes):
                return reply  # a streamed reply's end frame
            took = time.perf_counter() - started  # the worker's pipelining uses it
            return encode({**reply, "logs": self.capture.take(), "t": took})
        except (MemoryError, ClientGone):
            raise
        except BaseException:  # any failure of function code is a 500
            self.capture.add("error", traceback.format_exc())
            return encode({**_INTERNAL_ERROR, "logs": self.capture.take()})

    def _call(self, request: Request) -> dict[str, Any] | bytes:
        result = self.handler(request)
        if isinstance(result, Awaitable):
            result = self._await(result)
        stream = streamed(result)
        if stream is not None:
            return self._stream(*stream)
        status, headers, body = to_response(result).encode()
        return {"status": status, "headers": headers, "body": body, "error": None}

    def _stream(self, response: Any, chunks: Any) -> bytes:
        """Send a streamed reply; returns its end frame. An error before the first
        chunk propagates (a plain 500); after it, the end frame carries it."""
        sender = self._sender = StreamSender(self.sock, self._next_tagged, self._await)
        try:
            first = sender.first(chunks)
            error = None
            try:
                sender.send(response, first, chunks)
            except (MemoryError, ClientGone):
                raise
            except BaseException:
                self.capture.add("error", traceback.format_exc())
                error = "exception"
            return sender.end(error, self.capture.take())
        finally:
            self._sender = None

    def _await(self, awaitable: Awaitable[Any]) -> Any:
        """Run an async handler's awaitable on this instance's one event loop."""
        import asyncio  # noqa: PLC0415 - only async functions pay for asyncio

        if self._loop is None:
            self._loop = asyncio.new_event_loop()
            asyncio.set_event_loop(self._loop)

        async def wrapper() -> Any:
            return await awaitable

        return self._loop.run_until_complete(wrapper())

    def _reply_memory(self) -> None:
        try:
            self.capture.records = []
            self.sock.sendall(
                encode({"status": 502, "headers": [], "body": b"", "logs": [], "error": "memory"})
            )
        except BaseException:  # the worker sees the exit status instead
            return
