"""JavaScript function pools, served by one V8 host process per worker.

A runtime worker is a multi-threaded asyncio process that may fork, so it never
initialises V8 itself. :class:`V8Host` starts ``python -m edge.runtime.v8host``
(a fresh interpreter with a scrubbed environment) and talks to it over a
socketpair with length-prefixed msgpack frames (:mod:`edge.runtime.protocol`)
tagged with request ids, so any number of requests are in flight at once. The
host keeps one V8 isolate per function version. If the host dies, in-flight JS
requests fail with 502 and the next request starts a new host, whose isolates
are recreated on demand (a cold start).

Frames, worker to host::

    ["load", rid, key, {name, filename, source, memory_mb, timeout_ms, env}]
    ["invoke", rid, key, method, url, [[name, value], ...], body, params]
    ["unload", rid, key]

and host to worker::

    ["ok", rid, {"cold_ms": float, "memory_peak_kb": int}] | ["err", rid, message]
    ["resp", rid, status, headers, body, [[ts, level, msg], ...], error, memory_peak_kb, cold_ms]

:class:`JsPool` is the :class:`~edge.runtime.invocation.FunctionPool` of one
``runtime = "js"`` function version. One isolate serves all of a version's
concurrent requests, so ``max_instances`` does not apply; instead a pool admits
at most :data:`MAX_INFLIGHT` requests at once and answers 503 beyond that.
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, cast

import edge
from edge.runtime.invocation import (
    FunctionLoadError,
    FunctionVersion,
    Invocation,
    LogRecord,
    Outcome,
)
from edge.runtime.protocol import HEADER, MAX_FRAME, ProtocolError, decode, encode

logger = logging.getLogger(__name__)

MAX_INFLIGHT = 1024
ERRORS = frozenset({None, "exception", "timeout", "memory", "crash", "unavailable"})
TEXT = [("content-type", "text/plain; charset=utf-8")]


class HostDiedError(Exception):
    """The V8 host process exited or closed its socket."""


def host_command(*args: str) -> list[str]:
    """The argv that starts a V8 host (or checker) in a fresh interpreter."""
    return [sys.executable, "-m", "edge.runtime.v8host", *args]


def host_env() -> dict[str, str]:
    """The V8 host's whole environment.

    APPSEC: nothing is inherited from the worker (no EDGE_* settings, tokens or
    database URLs): the host runs untrusted code and only needs to find Python
    and the ``edge`` package.
    """
    package_root = str(Path(edge.__file__).resolve().parent.parent)
    return {
        "PATH": os.defpath,
        "LANG": "C.UTF-8",
        "PYTHONPATH": package_root,
        "PYTHONDONTWRITEBYTECODE": "1",
    }


class FrameProtocol(asyncio.Protocol):
    """Length-prefixed msgpack frames over a stream socket, both directions.

    APPSEC: peers are untrusted; frames are size-capped and decoded with msgpack
    only, and a malformed frame closes the connection.
    """

    def __init__(self, on_frame: Callable[[Any], None], on_lost: Callable[[], None]) -> None:
        self._on_frame = on_frame
        self._on_lost = on_lost
        self._buf = bytearray()
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)  # uvloop's is not a subclass

    def data_received(self, data: bytes) -> None:
        buf = self._buf
        buf += data
        start = 0
        try:
            while len(buf) - start >= HEADER.size:
                (size,) = HEADER.unpack_from(buf, start)
                if size > MAX_FRAME:
                    raise ProtocolError(f"frame of {size} bytes exceeds the limit")
                end = start + HEADER.size + size
                if len(buf) < end:
                    break
                frame = decode(bytes(buf[start + HEADER.size : end]))
                start = end
                self._on_frame(frame)
        except ProtocolError as exc:
            logger.error("closing connection: %s", exc)
            self.close()
        del buf[:start]

    def send(self, message: Any) -> None:
        if self.transport is not None and not self.transport.is_closing():
            self.transport.write(encode(message))

    def close(self) -> None:
        if self.transport is not None:
            self.transport.close()

    def connection_lost(self, exc: Exception | None) -> None:
        self.transport = None
        self._on_lost()


class V8Host:
    """The worker's client of its V8 host process (started on demand).

    Function versions are registered with their load spec; a version is loaded
    into the current host on first use, and again after a host restart.
    """

    def __init__(self) -> None:
        self._proc: asyncio.subprocess.Process | None = None
        self._conn: FrameProtocol | None = None
        self._starting: asyncio.Future[FrameProtocol] | None = None
        self._pending: dict[int, asyncio.Future[Any]] = {}
        self._next_id = 0
        self._specs: dict[str, tuple[dict[str, Any], int]] = {}
        self._loaded: dict[str, asyncio.Future[dict[str, Any]]] = {}
        self._reapers: set[asyncio.Task[None]] = set()
        self._closed = False
        self.restarts = 0

    @property
    def pid(self) -> int | None:
        """The current host's process id (``None`` when none is running)."""
        return self._proc.pid if self._proc is not None and self._conn is not None else None

    def register(self, key: str, spec: dict[str, Any]) -> None:
        """Make a function version known (reference-counted by key)."""
        _, refs = self._specs.get(key, (spec, 0))
        self._specs[key] = (spec, refs + 1)

    def unregister(self, key: str) -> None:
        """Drop one reference; the last one unloads the version's isolate."""
        spec, refs = self._specs.get(key, ({}, 1))
        if refs > 1:
            self._specs[key] = (spec, refs - 1)
            return
        self._specs.pop(key, None)
        self.unload(key)

    def unload(self, key: str) -> None:
        """Drop the version's isolate from the host (it reloads on next use)."""
        if self._loaded.pop(key, None) is not None and self._conn is not None:
            self._conn.send(["unload", self._new_id(), key])

    def is_loaded(self, key: str) -> bool:
        fut = self._loaded.get(key)
        return fut is not None and fut.done() and fut.exception() is None

    async def load(self, key: str) -> tuple[dict[str, Any], bool]:
        """Load ``key`` into the current host if needed.

        Returns:
            The host's load info and whether this call did the load (a cold start).

        Raises:
            FunctionLoadError: the module failed to compile or evaluate.
        """
        fut = self._loaded.get(key)
        if fut is not None:
            return (fut.result() if fut.done() else await asyncio.shield(fut)), False
        fut = asyncio.get_running_loop().create_future()
        self._loaded[key] = fut
        try:
            reply = await self._call(["load", 0, key, self._specs[key][0]])
        except BaseException as exc:
            self._loaded.pop(key, None)
            fut.set_exception(exc)
            fut.exception()
            raise
        if reply[0] != "ok":
            self._loaded.pop(key, None)
            error = FunctionLoadError(str(reply[2]))
            fut.set_exception(error)
            fut.exception()
            raise error
        fut.set_result(dict(reply[2]))
        return fut.result(), True

    async def invoke(self, key: str, frame: list[Any]) -> list[Any]:
        """Send one ``invoke`` frame (its rid is filled in) and await the reply."""
        return await self._call(["invoke", 0, key, *frame])

    async def _call(self, frame: list[Any]) -> list[Any]:
        conn = self._conn or await self._connection()
        rid = frame[1] = self._new_id()
        fut: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self._pending[rid] = fut
        try:
            conn.send(frame)
            return list(await fut)
        finally:
            self._pending.pop(rid, None)

    def _new_id(self) -> int:
        self._next_id += 1
        return self._next_id

    async def _connection(self) -> FrameProtocol:
        if self._conn is not None:
            return self._conn
        if self._starting is None:
            self._starting = asyncio.ensure_future(self._spawn())
        try:
            return await asyncio.shield(self._starting)
        finally:
            if self._starting is not None and self._starting.done():
                self._starting = None

    async def _spawn(self) -> FrameProtocol:
        ours, theirs = socket.socketpair()
        try:
            self._proc = await asyncio.create_subprocess_exec(
                *host_command("--fd", str(theirs.fileno())),
                pass_fds=(theirs.fileno(),),
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                env=host_env(),
                cwd="/",
            )
        except BaseException:
            ours.close()
            raise
        finally:
            theirs.close()
        loop = asyncio.get_running_loop()
        try:
            _, conn = await loop.create_connection(
                lambda: FrameProtocol(self._on_frame, self._on_lost), sock=ours
            )
        except BaseException:
            ours.close()
            raise
        self._conn = conn
        logger.info("started V8 host pid %s", self._proc.pid)
        return conn

    def _on_frame(self, frame: Any) -> None:
        if isinstance(frame, list) and len(frame) >= 2 and isinstance(frame[1], int):
            fut = self._pending.pop(frame[1], None)
            if fut is not None and not fut.done():
                fut.set_result(frame)

    def _on_lost(self) -> None:
        self._conn = None
        self._loaded.clear()
        pending, self._pending = self._pending, {}
        for fut in pending.values():
            if not fut.done():
                fut.set_exception(HostDiedError("the V8 host process died"))
        proc, self._proc = self._proc, None
        if proc is not None:
            self.restarts += 1
            task = asyncio.ensure_future(self._reap(proc))
            self._reapers.add(task)
            task.add_done_callback(self._reapers.discard)

    async def _reap(self, proc: asyncio.subprocess.Process) -> None:
        if proc.returncode is None:
            proc.kill()
        code = await proc.wait()
        if not self._closed:
            logger.warning(
                "V8 host pid %s died (%s); in-flight JavaScript requests failed",
                proc.pid,
                f"signal {-code}" if code < 0 else f"status {code}",
            )

    async def close(self) -> None:
        """Stop the host process and wait for it."""
        self._closed = True
        if self._starting is not None:
            self._starting.cancel()
            await asyncio.wait({self._starting})  # so a host being started is seen below
        conn, proc = self._conn, self._proc
        if conn is not None:
            conn.close()
        if proc is not None and proc.returncode is None:
            proc.kill()
            await proc.wait()
        if self._reapers:
            await asyncio.gather(*self._reapers, return_exceptions=True)


def _request_url(inv: Invocation) -> str:
    if "://" in inv.url:
        return inv.url
    host = next((v for k, v in inv.headers if k.lower() == "host"), "localhost")
    query = f"?{inv.query_string}" if inv.query_string else ""
    return f"http://{host}{inv.path}{query}"


class JsPool:
    """The :class:`~edge.runtime.invocation.FunctionPool` of one JS function version.

    Args:
        version: the function version (``runtime == "js"``).
        host: the worker's shared :class:`V8Host`.
    """

    def __init__(self, version: FunctionVersion, host: V8Host) -> None:
        self.version = version
        self.last_used = time.monotonic()
        self._host = host
        self._inflight = 0
        self._closed = False
        self._registered = False
        self._idle = asyncio.Event()
        self._idle.set()

    def _spec(self) -> dict[str, Any]:
        v = self.version
        try:
            source = (v.root / v.path).read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            raise FunctionLoadError(f"{v.path}: cannot read the module: {exc}") from None
        return {
            "name": v.name,
            "filename": v.path,
            "source": source,
            "memory_mb": v.memory_mb,
            "timeout_ms": v.timeout_ms,
            "env": dict(v.env),
        }

    async def start(self) -> None:
        """Read the module and create its isolate (pre-warm).

        Raises:
            FunctionLoadError: the module does not compile or evaluate, with V8's message.
        """
        self._register()
        try:
            await self._host.load(self.version.key)
        except HostDiedError as exc:
            raise FunctionLoadError(f"{self.version.path}: {exc}") from None

    def _register(self) -> None:
        if not self._registered:
            self._host.register(self.version.key, self._spec())
            self._registered = True

    async def invoke(self, invocation: Invocation) -> Outcome:
        """Run one request in the version's isolate (loading it on first use);
        faults become 5xx outcomes."""
        started = time.perf_counter()
        self.last_used = time.monotonic()
        if self._closed:
            return self._fail(503, "unavailable", "is not available", started)
        if self._inflight >= MAX_INFLIGHT:
            return self._fail(503, "overloaded", "is overloaded", started)
        self._inflight += 1
        self._idle.clear()
        try:
            return await self._invoke(invocation, started)
        finally:
            self._inflight -= 1
            if self._inflight == 0:
                self._idle.set()

    async def _invoke(self, inv: Invocation, started: float) -> Outcome:
        key = self.version.key
        headers = [[k.lower(), v] for k, v in inv.headers]
        frame = [inv.method, _request_url(inv), headers, inv.body, inv.params]
        try:
            self._register()
            info, cold = await self._host.load(key)
            reply = await self._host.invoke(key, frame)
        except FunctionLoadError as exc:
            logger.error("%s: load failed: %s", self.version.name, exc)
            return self._fail(502, "crash", "failed to load", started)
        except HostDiedError:
            return self._fail(502, "crash", "crashed (the V8 host process died)", started)
        return self._outcome(reply, info["cold_ms"] if cold else 0.0, started)

    def _outcome(self, reply: list[Any], load_ms: float, started: float) -> Outcome:
        # APPSEC: the host runs untrusted code, so its frames are checked like input.
        try:
            _, _, status, headers, body, logs, error, peak_kb, cold_ms = reply
            if not (isinstance(status, int) and isinstance(body, bytes) and error in ERRORS):
                raise TypeError("bad reply")
            cold_ms = max(float(cold_ms), load_ms)
            return Outcome(
                status=status,
                headers=[(str(k), str(v)) for k, v in headers],
                body=body,
                cold=cold_ms > 0,
                cold_ms=cold_ms,
                duration_ms=(time.perf_counter() - started) * 1000,
                error=error,
                logs=[LogRecord(float(ts), str(level), str(msg)) for ts, level, msg in logs],
                memory_peak_kb=int(peak_kb),
            )
        except (TypeError, ValueError) as exc:
            logger.error("%s: malformed reply from the V8 host: %s", self.version.name, exc)
            return self._fail(502, "crash", "crashed (malformed reply)", started)

    def _fail(self, status: int, error: str, what: str, started: float) -> Outcome:
        body = f"function '{self.version.name}' {what}\n".encode()
        return Outcome(
            status=status,
            headers=list(TEXT),
            body=body,
            error=error,
            duration_ms=(time.perf_counter() - started) * 1000,
        )

    def reap_idle(self, now: float, ttl: float) -> int:
        """Unload the isolate when idle past ``ttl`` and ``min_warm`` is 0."""
        idle = now - self.last_used > ttl and self._inflight == 0
        if idle and self.version.min_warm == 0 and self._host.is_loaded(self.version.key):
            self._host.unload(self.version.key)
            return 1
        return 0

    async def close(self, drain: bool = True) -> None:
        """Stop taking requests; with ``drain``, wait (bounded) for in-flight ones."""
        self._closed = True
        if drain and self._inflight:
            bound = self.version.timeout_ms / 1000 + 1.0
            try:
                await asyncio.wait_for(self._idle.wait(), bound)
            except TimeoutError:
                logger.warning(
                    "%s: closing with %d requests in flight", self.version.name, self._inflight
                )
        if self._registered:
            self._registered = False
            self._host.unregister(self.version.key)
