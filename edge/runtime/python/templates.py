"""The worker's handles on function templates.

* :class:`TemplateLink`: one template's control socket: the load result, the
  spare instance the template forks ahead (attached to the loop as it comes,
  so that a cold start taking it awaits nothing), and instance sockets for
  ``spawn`` requests, received by ``SCM_RIGHTS``.
* :class:`TemplateSource`: a pool's template, started on first need (by the
  worker's :class:`~edge.runtime.python.client.Zygote`) and restarted on demand
  after it died.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import logging
import socket
import time
from collections.abc import Callable, Coroutine
from typing import Any

from edge.runtime.invocation import FunctionLoadError, FunctionVersion, LogRecord
from edge.runtime.python.cgroups import Cgroups, Group
from edge.runtime.python.client import Zygote, ZygoteError
from edge.runtime.python.control import ControlChannel, ExitInfo, SpawnError
from edge.runtime.python.frames import parse_logs
from edge.runtime.python.process.sandbox import Limits
from edge.runtime.python.sockets import InstanceChannel, Verified, verify
from edge.runtime.wire import PeerClosed, close_fds
from edge.uids import function_ids

logger = logging.getLogger(__name__)

# How long the instances a closing pool just SIGKILLed get to leave its cgroup
# before what is left counts as left behind by the function.
EXIT_GRACE_S = 0.25


# Makes a verified instance socket a channel on the loop (the pool's
# InstanceChannel.attach, with its callbacks); owns its descriptors from the call on.
Attach = Callable[[Verified], Coroutine[Any, Any, InstanceChannel]]


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
        attach: makes the spare a channel as it comes (see :data:`Attach`).
    """

    def __init__(
        self,
        sock: socket.socket,
        pid: int,
        on_exit: Callable[[ExitInfo], None],
        on_lost: Callable[[TemplateLink], None],
        attach: Attach,
    ) -> None:
        self.pid = pid
        self.alive = True
        self.started = time.monotonic()
        self._on_exit = on_exit
        self._on_lost = on_lost
        self._channel = ControlChannel(sock, self._message, self._closed, maxfds=1)
        self._ready: asyncio.Future[list[LogRecord]] | None = None
        self._spawns: collections.deque[asyncio.Future[Verified]] = collections.deque()
        self._attach = attach
        self._spare: Verified | None = None
        self._attached: asyncio.Task[InstanceChannel] | None = None  # the spare's channel

    @property
    def spare_pid(self) -> int | None:
        """The pid of the spare instance held here and attached, if any."""
        spare, attached = self._spare, self._attached
        return spare.pid if spare is not None and attached is not None and attached.done() else None

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

    def take_spare(self) -> asyncio.Task[InstanceChannel] | None:
        """The spare instance held here, if any, as the task that attached it to
        the loop when it came (done by then, unless the cold start follows its
        arrival within a loop turn): a cold start with no message to wait for,
        no loop turn, and no system call but the peek below. The template is
        told after the request is on its way, and forks the next.

        Raises:
            PeerClosed: the template is gone.
        """
        spare, attached = self._spare, self._attached
        self._spare = self._attached = None
        if spare is None or attached is None:
            return None
        # Its EOF may be in the socket, its channel not told yet: it died before
        # its exit report came. (Once its channel closed, the socket is detached
        # and the peek fails alike.)
        if _hung_up(spare.sock):
            discard(attached)
            return None
        if not self.alive:
            discard(attached)
            raise PeerClosed("the template exited")
        # Tell the template after the request's frame is written (the instance
        # flushes at the end of this loop turn; this goes one turn later): the
        # message wakes the template, a system call that took the worker up to
        # 0.8 ms when the template's CPU was idle, and the instance comes first.
        loop = asyncio.get_running_loop()
        loop.call_soon(loop.call_soon, self._spare_taken)
        return attached

    def _spare_taken(self) -> None:
        with contextlib.suppress(PeerClosed):  # its instances go with it: on_lost says so
            self._channel.send({"op": "spare_taken"})

    async def instance(self) -> InstanceChannel:
        """An instance on the loop: the held spare (attached when it came, so this
        awaits nothing), or, with none held, one forked now and attached.

        Raises:
            SpawnError: the template could not fork.
            PeerClosed: the template is gone.
        """
        spare = self.take_spare()
        if spare is None:
            return await self._attach(await self.spawn())
        if spare.done():  # the rule
            return spare.result()
        try:  # it came within this loop turn
            return await asyncio.shield(spare)
        except asyncio.CancelledError:
            discard(spare)
            raise

    async def spawn(self) -> Verified:
        """Fork an instance; returns its (worker-side) socket, verified.

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
                future.result().close()  # cancelled as it arrived: the instance gets EOF
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
            if info is not None and self._spare is not None and info.pid == self._spare.pid:
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
        try:
            future.set_result(verify(sock, pid, self.pid))
        except SpawnError as exc:
            future.set_exception(exc)

    def _keep_spare(self, message: dict[str, Any], fd: int) -> None:
        """Hold the spare the template sent, verified now (APPSEC: its pid must be
        the template's child; one spare at a time, a second one is refused)."""
        pid = message.get("pid")
        try:
            sock = _wrap_stream_socket(fd)
        except SpawnError as exc:
            logger.warning("template %d: refused its spare: %s", self.pid, exc)
            return
        if self._spare is not None or not isinstance(pid, int) or pid <= 0:
            sock.close()  # the instance gets EOF and exits
            return
        try:
            spare = verify(sock, pid, self.pid)
        except SpawnError as exc:
            logger.warning("template %d: refused its spare: %s", self.pid, exc)
            return
        self._spare = spare
        self._attached = asyncio.get_running_loop().create_task(self._attach(spare))

    def _drop_spare(self) -> None:
        if self._attached is not None:
            discard(self._attached)
        self._spare = self._attached = None

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


def discard(attached: asyncio.Task[InstanceChannel]) -> None:
    """Stop a spare that will not be used, once its attaching is over (not
    cancelled: the task owns the descriptors, and would leak them if it were
    cancelled before it ran)."""

    def stop(task: asyncio.Task[InstanceChannel]) -> None:
        if not task.cancelled() and task.exception() is None:
            task.result().kill()

    attached.add_done_callback(stop)


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
        attach: makes each spare instance a channel as it comes (:data:`Attach`).
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
        attach: Attach,
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
        self._attach = attach
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
            left = await self._left_behind(self.group)
            if left:
                v = self.version
                logger.warning(
                    "function %s/%s/%s: killing %d processes it left behind (its cgroup)",
                    *(v.app, v.environment, v.name, len(left)),
                )
            await asyncio.to_thread(self.group.remove)

    @staticmethod
    async def _left_behind(group: Group) -> set[int]:
        """The processes still in ``group`` once the instances just killed had
        ``EXIT_GRACE_S`` to leave it (SIGKILL is not instant; without the wait,
        every pool closed with live instances reported them as left behind)."""
        deadline = time.monotonic() + EXIT_GRACE_S
        while (left := await asyncio.to_thread(group.pids)) and time.monotonic() < deadline:
            await asyncio.sleep(0.01)
        return left

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
        template = TemplateLink(sock, pid, self._on_exit, self._lost, self._attach)
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
