"""The worker's client of its V8 host process: one per worker, started on demand.

A runtime worker is a multi-threaded asyncio process that may fork, so it never
initialises V8 itself. :class:`V8Host` starts ``python -m edge.runtime.js.host``
(a fresh interpreter with a scrubbed environment) and talks to it over a
socketpair with frames (:mod:`edge.runtime.wire`) tagged with request ids, so
any number of requests are in flight at once. The host keeps one V8 isolate
per function version. If the host dies, in-flight JS requests fail with 502
and the next request starts a new host, whose isolates are recreated on demand
(a cold start).

Frames, worker to host::

    ["load", rid, key, {name, filename, source, memory_mb, timeout_ms, env}]
    ["invoke", rid, key, method, url, [[name, value], ...], body, params]
    ["unload", rid, key]
    ["stats", rid, ""]

and host to worker::

    ["ok", rid, {"cold_ms": float, "memory_peak_kb": int, "spare": bool}] | ["err", rid, message]
    ["ok", rid, {"isolates": int, "spare_ready": bool, "spares_taken": int,
                 "spares_taken_ready": int}]                    (the answer to "stats")
    ["resp", rid, status, headers, body, [[ts, level, msg], ...], error, memory_peak_kb, cold_ms]

A ``resp`` whose body is ``None`` is the head of a streamed response; its body
follows as ``["chunk", rid, bytes]`` frames and one ``["end", rid, error, logs]``,
paced by the worker's ``["ack", rid, key, bytes]`` (bytes the client took) and
stopped by ``["cancel", rid, key]`` (see ``edge.runtime.streaming``).

Host calls, made by a function mid-request (``env.KV``, ``fetch()``; see
:mod:`edge.runtime.js.bindings`)::

    host to worker: ["call", call_id, key, rid, kind, args]     kind: "kv" | "fetch"
    worker to host: ["callr", call_id, reply]                   reply: JSON-able
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
import subprocess
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import edge
from edge.runtime.invocation import FunctionLoadError, FunctionVersion
from edge.runtime.js.link import FrameProtocol

logger = logging.getLogger(__name__)

# The details of the faults the V8 host reports: it sends a fault's kind, and
# the worker words it (edge.runtime.faults).
HOST_REASONS = {"crash": "crashed: its isolate was replaced", "unavailable": "it is not loaded"}


# APPSEC: calls in flight from one worker's V8 host (every app's isolates); past
# this, calls are refused at once rather than queued (a Promise.all of a million
# fetches must not grow the worker).
MAX_HOST_CALLS = 4096


class HostDiedError(Exception):
    """The V8 host process exited or closed its socket."""


def host_command(*args: str) -> list[str]:
    """The argv that starts a V8 host (or checker) in a fresh interpreter."""
    return [sys.executable, "-m", "edge.runtime.js.host", *args]


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


HostCall = Callable[[FunctionVersion, int, str, Any], Awaitable[Any]]


class V8Host:
    """The worker's client of one app's V8 host process (started on demand).

    Function versions are registered with their load spec; a version is loaded
    into the current host on first use, and again after a host restart.

    Args:
        uid: the uid (and gid) the host drops to when the platform is root: its
            app's function uid; 0 for ``nobody``.
        on_empty: called once the last registered version is unregistered.
        on_call: answers host calls (KV, fetch) of a version's code; without
            it every host call is refused.
    """

    def __init__(
        self,
        uid: int = 0,
        on_empty: Callable[[], None] | None = None,
        on_call: HostCall | None = None,
    ) -> None:
        self.uid = uid
        self._on_empty = on_empty
        self._on_call = on_call
        self._versions: dict[str, FunctionVersion] = {}
        self._call_tasks: set[asyncio.Task[None]] = set()
        self._proc: asyncio.subprocess.Process | None = None
        self._conn: FrameProtocol | None = None
        self._starting: asyncio.Future[FrameProtocol] | None = None
        self._pending: dict[int, asyncio.Future[Any]] = {}
        # Requests sent by submit(): the callback of each, called with its reply.
        self._callbacks: dict[int, Callable[[list[Any] | None], None]] = {}
        self._next_id = 0
        self._specs: dict[str, tuple[dict[str, Any], int]] = {}
        self._loaded: dict[str, asyncio.Future[dict[str, Any]]] = {}
        self._reapers: set[asyncio.Task[None]] = set()
        self._closed = False
        self.restarts = 0
        # Streamed responses: the sink of each, or the frames held until it is set.
        self._streams: dict[int, Callable[[list[Any] | None], None] | list[list[Any]]] = {}

    @property
    def pid(self) -> int | None:
        """The current host's process id (``None`` when none is running)."""
        return self._proc.pid if self._proc is not None and self._conn is not None else None

    def register(
        self, key: str, spec: dict[str, Any], version: FunctionVersion | None = None
    ) -> None:
        """Make a function version known (reference-counted by key)."""
        _, refs = self._specs.get(key, (spec, 0))
        self._specs[key] = (spec, refs + 1)
        if version is not None:
            self._versions[key] = version

    def unregister(self, key: str) -> None:
        """Drop one reference; the last one unloads the version's isolate."""
        spec, refs = self._specs.get(key, ({}, 1))
        if refs > 1:
            self._specs[key] = (spec, refs - 1)
            return
        self._specs.pop(key, None)
        self._versions.pop(key, None)
        self.unload(key)
        if not self._specs and self._on_empty is not None:
            self._on_empty()

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

    async def stats(self) -> dict[str, Any]:
        """The host's isolates and spare (see the ``stats`` frame); starts a host if none."""
        reply = await self._call(["stats", 0, ""])
        return dict(reply[2])

    async def invoke(self, key: str, frame: list[Any]) -> list[Any]:
        """Send one ``invoke`` frame (its rid is filled in) and await the reply."""
        return await self._call(["invoke", 0, key, *frame])

    def submit(
        self, key: str, frame: list[Any], on_reply: Callable[[list[Any] | None], None]
    ) -> bool:
        """:meth:`invoke` without a future, for a version loaded in a running host:
        ``on_reply`` is called with the reply frame as it is read (``None``: the
        host died first). False, and nothing sent, when ``key`` is not loaded or
        no host is connected: :meth:`invoke` loads it."""
        conn = self._conn
        if conn is None or not self.is_loaded(key):
            return False
        rid = self._new_id()
        self._callbacks[rid] = on_reply
        conn.send(["invoke", rid, key, *frame])
        return True

    async def _call(self, frame: list[Any]) -> list[Any]:
        conn = self._conn or await self._connection()
        rid = frame[1] = self._new_id()
        # The connection's loop: 3.11's asyncio.get_running_loop() calls getpid().
        fut: asyncio.Future[Any] = conn.loop.create_future()
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
                *host_command("--fd", str(theirs.fileno()), "--uid", str(self.uid)),
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

    def stream_to(self, rid: int, sink: Callable[[list[Any] | None], None]) -> None:
        """Send the ``chunk``/``end`` frames of stream ``rid`` to ``sink`` (held ones
        first); ``sink(None)`` if the host dies first."""
        held = self._streams.get(rid)
        self._streams[rid] = sink
        for frame in held if isinstance(held, list) else ():
            sink(frame)
        if isinstance(held, list) and held and held[-1][0] == "end":
            self._streams.pop(rid, None)
        elif self._conn is None:
            self._stream_lost(rid)

    def ack(self, key: str, rid: int, size: int) -> None:
        """Stream ``rid``'s client took ``size`` more bytes."""
        if self._conn is not None and rid in self._streams:
            self._conn.send(["ack", rid, key, size])

    def cancel(self, key: str, rid: int) -> None:
        """Stop stream ``rid`` (its client is gone, or it ran too long)."""
        if self._streams.pop(rid, None) is not None and self._conn is not None:
            self._conn.send(["cancel", rid, key])

    def _on_frame(self, frame: Any) -> None:
        if isinstance(frame, list) and len(frame) == 6 and frame[0] == "call":
            task = asyncio.ensure_future(self._host_call(*frame[1:]))
            self._call_tasks.add(task)
            task.add_done_callback(self._call_tasks.discard)
            return
        if not (isinstance(frame, list) and len(frame) >= 2 and isinstance(frame[1], int)):
            return
        rid = frame[1]
        if frame[0] in ("chunk", "end"):
            self._stream_frame(rid, frame)
            return
        callback = self._callbacks.pop(rid, None)
        fut = self._pending.pop(rid, None) if callback is None else None
        if callback is not None or (fut is not None and not fut.done()):
            if frame[0] == "resp" and len(frame) > 4 and frame[4] is None:
                self._streams[rid] = []  # a streamed head: hold its frames for the sink
            if fut is not None:
                fut.set_result(frame)
            elif callback is not None:
                _called_back(callback, frame)

    def _stream_frame(self, rid: int, frame: list[Any]) -> None:
        target = self._streams.get(rid)
        if frame[0] == "end":
            self._streams.pop(rid, None)
        if isinstance(target, list):
            target.append(frame)
            if frame[0] == "end":
                self._streams[rid] = target  # still held: the sink takes the end too
        elif target is not None:
            target(frame)

    def _stream_lost(self, rid: int) -> None:
        target = self._streams.pop(rid, None)
        if target is not None and not isinstance(target, list):
            target(None)

    async def _host_call(self, call_id: Any, key: Any, rid: Any, kind: Any, args: Any) -> None:
        """Answer one host call. APPSEC: the host runs untrusted code; the version
        is the one registered under ``key`` (never named by the call itself), and
        the bindings check ``kind`` and ``args``."""
        version = self._versions.get(key) if isinstance(key, str) else None
        reply: Any = {"ok": False, "error": "unavailable", "message": "no bindings in this runtime"}
        if len(self._call_tasks) > MAX_HOST_CALLS:
            reply = {"ok": False, "error": "limit", "message": "too many KV or fetch calls at once"}
        elif version is not None and self._on_call is not None and isinstance(rid, int):
            try:
                reply = await self._on_call(version, rid, str(kind), args)
            except Exception:  # every call gets an answer, or its promise would hang
                logger.exception("host call %s of %s failed", kind, version.name)
                reply = {"ok": False, "error": "unavailable", "message": "internal error"}
        if self._conn is not None:
            self._conn.send(["callr", call_id, reply])

    def _on_lost(self) -> None:
        self._conn = None
        self._loaded.clear()
        for rid in list(self._streams):
            self._stream_lost(rid)
        pending, self._pending = self._pending, {}
        for fut in pending.values():
            if not fut.done():
                fut.set_exception(HostDiedError("the V8 host process died"))
        callbacks, self._callbacks = self._callbacks, {}
        for callback in callbacks.values():
            _called_back(callback, None)
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
        for task in self._call_tasks:
            task.cancel()
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


def _called_back(callback: Callable[[list[Any] | None], None], frame: list[Any] | None) -> None:
    """Call a :meth:`V8Host.submit` callback; what it raises is logged, never let
    into the host connection's frame reading."""
    try:
        callback(frame)
    except Exception:
        logger.exception("a V8 host reply's callback failed")


class V8Hosts:
    """A worker's V8 hosts: one per app, started on demand, stopped when unused.

    APPSEC: an app's isolates share a process with no other app's. A host's
    ArrayBuffer budget (RLIMIT_DATA), its crashes and its uid (the app's function
    uid, when root) are its app's alone, so one app holding ArrayBuffers can
    never make another app's allocations fail, and a V8 escape reaches only its
    own app's files and processes.
    """

    def __init__(self, on_call: HostCall | None = None) -> None:
        self._hosts: dict[str, V8Host] = {}
        self._closing: set[asyncio.Task[None]] = set()
        self._on_call = on_call

    def for_app(self, app: str, uid: int) -> V8Host:
        """The host of ``app`` (created on first use, its process on first request)."""
        host = self._hosts.get(app)
        if host is None:
            host = self._hosts[app] = V8Host(
                uid, on_empty=lambda: self._retire(app), on_call=self._on_call
            )
        return host

    def pids(self) -> dict[str, int]:
        """The running hosts' pids, by app."""
        return {app: host.pid for app, host in self._hosts.items() if host.pid is not None}

    def _retire(self, app: str) -> None:
        host = self._hosts.pop(app, None)
        if host is not None:
            task = asyncio.get_running_loop().create_task(host.close())
            self._closing.add(task)
            task.add_done_callback(self._closing.discard)

    async def close(self) -> None:
        """Stop every host and wait for them."""
        hosts, self._hosts = list(self._hosts.values()), {}
        await asyncio.gather(*(host.close() for host in hosts), *self._closing)
