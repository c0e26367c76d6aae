"""The worker's handles on its zygote and on function templates.

* :class:`Zygote`: starts ``python -P -m edge.runtime.python.process.zygote`` with
  ``subprocess`` (never ``os.fork``: the worker has threads), a scrubbed
  environment and only the control socket open; asks it for templates;
  restarts it on demand after it died.
* :class:`TemplateLink`: one template's control socket: the load result, the
  spare instance the template forks ahead, and instance sockets for ``spawn``
  requests, received by ``SCM_RIGHTS``.
* :class:`TemplateSource`: a pool's template, started on first need and
  restarted on demand after it died.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import logging
import os
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import msgpack

import edge
from edge.runtime.invocation import FunctionLoadError, FunctionVersion, LogRecord
from edge.runtime.python.cgroups import Cgroups, Group
from edge.runtime.python.frames import parse_logs
from edge.runtime.python.process.sandbox import Limits, zygote_env
from edge.runtime.python.sockets import ControlChannel, ExitInfo, SpawnError
from edge.runtime.wire import PeerClosed, close_fds
from edge.uids import function_ids

logger = logging.getLogger(__name__)


def process_imports() -> list[Path]:
    """Folders the function processes import from besides ``edge`` and the stdlib.

    The zygote runs without ``site`` (``-S``), so it sees no site-packages;
    the process code needs msgpack (``edge.runtime.wire``) and nothing else.
    """
    return [Path(msgpack.__file__).resolve().parent.parent]


class ZygoteError(Exception):
    """The zygote could not be started, or died while we waited for it."""


class LoadFailed(Exception):
    """A template reported that the function failed to load (the message says why)."""


def _wrap_stream_socket(fd: int) -> socket.socket:
    """An fd received from a template, if it is a Unix stream socket (else closed)."""
    try:
        sock = socket.socket(fileno=fd)
    except OSError:
        close_fds([fd])
        raise SpawnError("the template sent something that is not a socket") from None
    if sock.family != socket.AF_UNIX or sock.type != socket.SOCK_STREAM:
        sock.close()
        raise SpawnError("the template sent a socket of the wrong kind")
    return sock


def _hung_up(sock: socket.socket) -> bool:
    """Whether an unused instance's socket is readable: it never speaks first,
    so that is its EOF (it died) or a misbehaviour."""
    try:
        sock.recv(1, socket.MSG_PEEK | socket.MSG_DONTWAIT)
    except BlockingIOError:
        return False
    except OSError:
        return True
    return True


class TemplateLink:
    """The worker's end of one template.

    Args:
        sock: the template's control socket (from the zygote).
        pid: the template's pid (trusted: the zygote forked it).
        on_exit: called with each instance exit the template reports.
        on_lost: called once when the template's socket closes.
    """

    def __init__(
        self,
        sock: socket.socket,
        pid: int,
        on_exit: Callable[[ExitInfo], None],
        on_lost: Callable[[TemplateLink], None],
    ) -> None:
        self.pid = pid
        self.alive = True
        self.started = time.monotonic()
        self._on_exit = on_exit
        self._on_lost = on_lost
        self._channel = ControlChannel(sock, self._message, self._closed, maxfds=1)
        self._ready: asyncio.Future[list[LogRecord]] | None = None
        self._spawns: collections.deque[asyncio.Future[tuple[socket.socket, int]]] = (
            collections.deque()
        )
        self._spare: tuple[socket.socket, int] | None = None

    @property
    def spare_pid(self) -> int | None:
        """The pid of the spare instance held here, if any."""
        return self._spare[1] if self._spare is not None else None

    def start(self) -> None:
        self._ready = asyncio.get_running_loop().create_future()
        self._channel.start()

    async def wait_ready(self, timeout: float) -> list[LogRecord]:
        """The import-time logs once loaded.

        Raises:
            LoadFailed: the function failed to load.
            PeerClosed: the template died first.
            TimeoutError: it did not finish loading within ``timeout`` seconds.
        """
        assert self._ready is not None
        return await asyncio.wait_for(asyncio.shield(self._ready), timeout)

    def take_spare(self) -> tuple[socket.socket, int] | None:
        """The spare instance held here (its socket and pid), if any: a cold
        start with no message to wait for. The template then forks the next.

        Raises:
            PeerClosed: the template is gone.
        """
        spare, self._spare = self._spare, None
        if spare is None:
            return None
        if _hung_up(spare[0]):  # it died before its exit report came
            spare[0].close()
            return None
        try:
            self._channel.send({"op": "spare_taken"})
        except PeerClosed:
            spare[0].close()
            raise
        return spare

    async def spawn(self) -> tuple[socket.socket, int]:
        """Fork an instance; returns its (worker-side) socket and pid.

        Raises:
            SpawnError: the template could not fork.
            PeerClosed: the template is gone.
        """
        future = asyncio.get_running_loop().create_future()
        self._channel.send({"op": "spawn"})
        self._spawns.append(future)
        try:
            return await future
        except asyncio.CancelledError:
            if future.done() and not future.cancelled() and future.exception() is None:
                future.result()[0].close()  # cancelled as it arrived: the instance gets EOF
            raise

    def close(self) -> None:
        self._channel.close()

    def _message(self, message: Any, fds: list[int]) -> None:
        op = message.get("op") if isinstance(message, dict) else None
        if op == "spawned" and len(fds) == 1:
            self._spawned(message, fds[0])
            return
        if op == "spare" and len(fds) == 1:
            self._keep_spare(message, fds[0])
            return
        close_fds(fds)
        if op == "spawn_failed" and self._spawns:
            future = self._spawns.popleft()
            if not future.done():
                future.set_exception(SpawnError(str(message.get("message"))[:500]))
        elif op == "exit":
            info = ExitInfo.parse(message)
            if info is not None and self._spare is not None and info.pid == self._spare[1]:
                self._drop_spare()
            elif info is not None:
                self._on_exit(info)
        elif op in ("ready", "error") and self._ready is not None and not self._ready.done():
            if op == "ready":
                self._ready.set_result(parse_logs(message.get("logs")))
            else:
                self._ready.set_exception(LoadFailed(str(message.get("message"))))

    def _spawned(self, message: dict[str, Any], fd: int) -> None:
        pid = message.get("pid")
        future = self._spawns.popleft() if self._spawns else None
        try:
            sock = _wrap_stream_socket(fd)
        except SpawnError as exc:
            if future is not None and not future.done():
                future.set_exception(exc)
            return
        if future is None or future.done() or not isinstance(pid, int) or pid <= 0:
            sock.close()  # nobody waits (cancelled) or a lie: the instance gets EOF and exits
            return
        future.set_result((sock, pid))

    def _keep_spare(self, message: dict[str, Any], fd: int) -> None:
        """Hold the spare the template sent (APPSEC: its pid is checked when it is
        attached; one spare at a time, a second one is refused)."""
        pid = message.get("pid")
        try:
            sock = _wrap_stream_socket(fd)
        except SpawnError as exc:
            logger.warning("template %d: refused its spare: %s", self.pid, exc)
            return
        if self._spare is not None or not isinstance(pid, int) or pid <= 0:
            sock.close()  # the instance gets EOF and exits
            return
        self._spare = (sock, pid)

    def _drop_spare(self) -> None:
        if self._spare is not None:
            self._spare[0].close()
            self._spare = None

    def _closed(self) -> None:
        self.alive = False
        self._drop_spare()
        while self._spawns:
            future = self._spawns.popleft()
            if not future.done():
                future.set_exception(PeerClosed("the template exited"))
        if self._ready is not None and not self._ready.done():
            self._ready.set_exception(PeerClosed("the template exited"))
        self._on_lost(self)


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


class TemplateSource:
    """Keeps one live template for a function version: started on first need
    (raising :class:`FunctionLoadError`), restarted on demand after it died.

    Args:
        version: the function version.
        zygote: the worker's zygote.
        limits: process and file limits of its processes.
        load_timeout: seconds the import may take.
        on_exit: called with each instance exit the template reports.
        on_lost: called when a running template's socket closes.
        cgroups: the install's cgroups; the version gets a group of its own
            that its template joins (None, or a host without them: no group).
    """

    def __init__(
        self,
        version: FunctionVersion,
        zygote: Zygote,
        *,
        limits: Limits,
        load_timeout: float,
        on_exit: Callable[[ExitInfo], None],
        on_lost: Callable[[TemplateLink], None],
        cgroups: Cgroups | None = None,
    ) -> None:
        self.version = version
        self.load_logs: list[LogRecord] = []
        self.closed = False
        self._zygote = zygote
        self._limits = limits
        self._load_timeout = load_timeout
        self._on_exit = on_exit
        self._on_lost = on_lost
        self._template: TemplateLink | None = None
        self._lock = asyncio.Lock()
        self._cgroups = cgroups
        self.group: Group | None = None

    @property
    def pid(self) -> int | None:
        """The running template's pid."""
        return self._template.pid if self._template is not None else None

    @property
    def spare_pid(self) -> int | None:
        """The pid of the spare instance the running template sent ahead, if any."""
        return self._template.spare_pid if self._template is not None else None

    @property
    def entry(self) -> str:
        """``path:handler``, as error messages name the function."""
        return f"{self.version.path}:{self.version.handler or 'handle'}"

    async def get(self) -> TemplateLink:
        """The running template, starting one if needed (single-flight).

        Raises:
            FunctionLoadError: the function failed to load (or the zygote to start).
            PeerClosed: this source was stopped.
        """
        template = self._template
        if template is not None and template.alive:
            return template
        async with self._lock:
            if self.closed:
                raise PeerClosed("the pool is closed")
            if self._template is None or not self._template.alive:
                self._template = await self._start()
            return self._template

    async def stop(self, wait: float = 2.0) -> None:
        """Close the template's socket (it then kills its instances and exits),
        have the zygote SIGKILL it too, and wait up to ``wait`` s for its exit."""
        self.closed = True
        template, self._template = self._template, None
        if template is not None:
            template.close()
            self._zygote.kill_template(template.pid)
            await self._zygote.template_exit(template.pid, wait)
        if self.group is not None:
            # APPSEC: whatever the function left behind (a setsid'ed daemon, a
            # spinning thread) dies with its version, not by its good will.
            left = await asyncio.to_thread(self.group.pids)
            if left:
                v = self.version
                logger.warning(
                    "function %s/%s/%s: killing %d processes it left behind (its cgroup)",
                    *(v.app, v.environment, v.name, len(left)),
                )
            await asyncio.to_thread(self.group.remove)

    async def _start(self) -> TemplateLink:
        spec = self._spec()
        try:
            spec["cgroups"] = await self._join()
        except OSError as exc:
            raise FunctionLoadError(f"{self.entry}: could not create its cgroup: {exc}") from None
        try:
            sock, pid = await self._zygote.spawn_template(spec)
        except (ZygoteError, SpawnError) as exc:
            raise FunctionLoadError(f"{self.entry}: {exc}") from None
        template = TemplateLink(sock, pid, self._on_exit, self._lost)
        template.start()
        try:
            self.load_logs = await template.wait_ready(self._load_timeout)
        except BaseException as exc:
            template.close()
            self._zygote.kill_template(pid)
            raise await self._load_error(exc, pid) from None
        return template

    async def _join(self) -> list[str]:
        """The cgroup.procs files the new template joins; a dead template's leftovers die."""
        if self.group is None and self._cgroups is not None:
            v = self.version
            uid = v.uid or function_ids(v.app)[0]
            processes = v.max_instances + 2  # the template and its spare
            self.group = self._cgroups.version_group(uid, v.key, v.memory_mb, processes)
        if self.group is None:
            return []
        await asyncio.to_thread(self.group.kill)
        return self.group.procs_files

    def _lost(self, template: TemplateLink) -> None:
        if self._template is template:
            self._template = None
            self._on_lost(template)

    async def _load_error(self, exc: BaseException, pid: int) -> BaseException:
        if isinstance(exc, LoadFailed):
            return FunctionLoadError(f"{self.entry} failed to load:\n{exc}")
        if isinstance(exc, TimeoutError):
            return FunctionLoadError(f"{self.entry} did not load within {self._load_timeout:g} s")
        if isinstance(exc, PeerClosed):
            info = await self._zygote.template_exit(pid, 1.0)
            why = info.describe() if info is not None else "it exited"
            return FunctionLoadError(f"{self.entry} failed to boot: {why}")
        return exc

    def _spec(self) -> dict[str, Any]:
        v = self.version
        return {
            "key": v.key,
            "app": v.app,
            "uid": v.uid,
            "name": v.name,
            "root": str(v.root),
            "path": v.path,
            "handler": v.handler or "handle",
            "env": dict(v.env),
            "memory_mb": v.memory_mb,
            "nofile": self._limits.nofile,
            "nproc": self._limits.nproc,
            "packages": str(v.packages) if v.packages is not None else "",
            "kind": v.kind,
            "cgroups": [],
        }


def _set_done(future: asyncio.Future[None]) -> None:
    if not future.done():
        future.set_result(None)
