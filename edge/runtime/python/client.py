"""The worker's handle on its zygote.

:class:`Zygote` starts ``python -P -m edge.runtime.python.process.zygote`` with
``subprocess`` (never ``os.fork``: the worker has threads), a scrubbed
environment and only the control socket open; asks it for templates; restarts
it on demand after it died. The templates themselves are
:mod:`edge.runtime.python.templates`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
import subprocess
import sys
from pathlib import Path
from typing import Any

import msgpack

import edge
from edge.runtime.python.control import ControlChannel, ExitInfo, SpawnError
from edge.runtime.python.process.sandbox import zygote_env
from edge.runtime.wire import PeerClosed, close_fds

logger = logging.getLogger(__name__)


def process_imports() -> list[Path]:
    """Folders the function processes import from besides ``edge`` and the stdlib.

    The zygote runs without ``site`` (``-S``), so it sees no site-packages;
    the process code needs msgpack (``edge.runtime.wire``) and nothing else.
    """
    return [Path(msgpack.__file__).resolve().parent.parent]


class ZygoteError(Exception):
    """The zygote could not be started, or died while we waited for it."""


class Zygote:
    """The worker's zygote process, started on demand and restarted after a death.

    Args:
        python: the interpreter to exec (default: this one).
        start_timeout: seconds to wait for the zygote's hello.
    """

    def __init__(self, *, python: str | None = None, start_timeout: float = 10.0) -> None:
        self._python = python or sys.executable
        self._start_timeout = start_timeout
        self._proc: subprocess.Popen[bytes] | None = None
        self._channel: ControlChannel | None = None
        self._hello: asyncio.Future[int] | None = None
        self._lock = asyncio.Lock()
        self._next_id = 0
        self._requests: dict[int, asyncio.Future[tuple[socket.socket, int]]] = {}
        self._exits: dict[int, asyncio.Future[ExitInfo | None]] = {}
        self._reapers: set[asyncio.Task[None]] = set()

    @property
    def pid(self) -> int | None:
        """The running zygote's pid, or ``None``."""
        return self._proc.pid if self.alive and self._proc is not None else None

    @property
    def alive(self) -> bool:
        return self._channel is not None and not self._channel.closed

    async def start(self) -> None:
        """Start the zygote if it is not running (single-flight).

        Raises:
            ZygoteError: it did not say hello within ``start_timeout``.
        """
        async with self._lock:
            if not self.alive:
                await self._start()

    async def _start(self) -> None:
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        import_root = Path(edge.__file__).resolve().parent.parent
        try:
            # APPSEC: exec'ed (fork+exec in C, no Python runs in the child) with
            # a scrubbed env and only its socket: nothing of the worker leaks in.
            self._proc = subprocess.Popen(
                [
                    self._python,
                    "-S",
                    "-P",
                    "-m",
                    "edge.runtime.python.process.zygote",
                    str(theirs.fileno()),
                    str(os.getpid()),
                ],
                pass_fds=[theirs.fileno()],
                close_fds=True,
                stdin=subprocess.DEVNULL,
                env=zygote_env(os.environ, import_root, process_imports()),
                cwd="/",
                start_new_session=True,
            )
        except OSError as exc:
            ours.close()
            raise ZygoteError(f"could not start the zygote: {exc}") from None
        finally:
            theirs.close()
        self._hello = asyncio.get_running_loop().create_future()
        self._channel = ControlChannel(ours, self._message, self._closed, maxfds=1)
        self._channel.start()
        try:
            await asyncio.wait_for(asyncio.shield(self._hello), self._start_timeout)
        except (TimeoutError, PeerClosed) as exc:
            self._channel.close()
            raise ZygoteError(f"the zygote did not start: {exc or 'timed out'}") from None
        logger.info("zygote %d started", self._proc.pid)

    async def spawn_template(self, spec: dict[str, Any]) -> tuple[socket.socket, int]:
        """Fork a template for ``spec``; returns its control socket and pid.

        Raises:
            ZygoteError: the zygote could not be started or died meanwhile.
            SpawnError: the zygote could not fork.
        """
        await self.start()
        assert self._channel is not None
        self._next_id += 1
        request_id = self._next_id
        future = self._requests[request_id] = asyncio.get_running_loop().create_future()
        try:
            self._channel.send({"op": "template", "id": request_id, "spec": spec})
            sock, pid = await future
        except PeerClosed:
            raise ZygoteError("the zygote exited") from None
        finally:
            self._requests.pop(request_id, None)
        self._exits[pid] = asyncio.get_running_loop().create_future()
        return sock, pid

    async def template_exit(self, pid: int, timeout: float) -> ExitInfo | None:
        """How template ``pid`` ended, waiting up to ``timeout`` seconds to learn it."""
        future = self._exits.get(pid)
        if future is None:
            return None
        try:
            return await asyncio.wait_for(asyncio.shield(future), timeout)
        except TimeoutError:
            return None
        finally:
            if future.done():
                self._exits.pop(pid, None)

    def kill_template(self, pid: int) -> None:
        """SIGKILL template ``pid`` (the zygote only does so if it is its child)."""
        if self._channel is not None and not self._channel.closed:
            with contextlib.suppress(PeerClosed):
                self._channel.send({"op": "kill", "pid": pid})

    async def close(self) -> None:
        """Stop the zygote: it kills and reaps its templates, then exits."""
        if self._channel is not None:
            self._channel.close()
        while self._reapers:
            await asyncio.gather(*self._reapers)

    def _message(self, message: Any, fds: list[int]) -> None:
        op = message.get("op") if isinstance(message, dict) else None
        if op == "template" and len(fds) == 1:
            future = self._requests.get(message.get("id"))
            sock = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET, fileno=fds[0])
            if future is None or future.done():
                sock.close()  # the template sees EOF and exits
            else:
                future.set_result((sock, int(message["pid"])))
            return
        close_fds(fds)
        if op == "hello" and self._hello is not None and not self._hello.done():
            self._hello.set_result(int(message["pid"]))
        elif op == "template_failed":
            future = self._requests.get(message.get("id"))
            if future is not None and not future.done():
                future.set_exception(SpawnError(str(message.get("message"))))
        elif op == "exit":
            info = ExitInfo.parse(message)
            exit_future = self._exits.get(info.pid) if info is not None else None
            if exit_future is not None and not exit_future.done():
                exit_future.set_result(info)

    def _closed(self) -> None:
        for future in [*self._requests.values(), self._hello]:
            if future is not None and not future.done():
                future.set_exception(PeerClosed("the zygote exited"))
        for exit_future in self._exits.values():
            if not exit_future.done():
                exit_future.set_result(None)
        self._exits.clear()
        if self._proc is not None:
            task = asyncio.get_running_loop().create_task(_reap(self._proc))
            self._reapers.add(task)
            task.add_done_callback(self._reapers.discard)
            self._proc = None


async def _reap(proc: subprocess.Popen[bytes], timeout: float = 5.0) -> None:
    """Wait (without blocking the loop) for ``proc`` to exit, killing it after ``timeout``."""
    if proc.poll() is None:
        loop = asyncio.get_running_loop()
        exited = loop.create_future()
        pidfd = os.pidfd_open(proc.pid)
        loop.add_reader(pidfd, _set_done, exited)
        try:
            await asyncio.wait_for(exited, timeout)
        except TimeoutError:
            logger.warning("zygote %d did not exit; killing it", proc.pid)
            proc.kill()
        finally:
            loop.remove_reader(pidfd)
            os.close(pidfd)
    code = proc.wait()
    if code not in (0, None):
        logger.warning("zygote %d exited with status %s", proc.pid, code)


def _set_done(future: asyncio.Future[None]) -> None:
    if not future.done():
        future.set_result(None)
