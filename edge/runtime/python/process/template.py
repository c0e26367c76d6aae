"""A function template: the forked process that imported one function version.

Forked by the zygote per :class:`~edge.runtime.invocation.FunctionVersion`. It
enters the sandbox (``edge.runtime.python.process.sandbox``), imports the entry module and
resolves the handler, tells the worker ``ready`` (or ``error`` with the
traceback, then exits with :data:`EXIT_BOOT_ERROR`), and from then on forks the
worker's instances (a spare ahead, or one per ``spawn``). The worker gets each
instance's socket by ``SCM_RIGHTS`` and talks to it directly; the template
reaps instances and reports each exit.

To keep the fork, the instance's setup and the template itself off the cold
path, the template forks one spare instance ahead (sandboxed, blocked reading
its socket) and sends its socket to the worker at once (``spare``): a cold
start then takes the spare the worker already holds, with no message to the
template and back, which is two process wake-ups, the tail of the cold start
on a busy machine. The worker says ``spare_taken``; the next spare is forked
once the template has been idle for ``SPARE_DELAY_MS``, so that fork does not
compete for CPU with the first request of the instance just taken. A
``spawn`` (the worker holds no spare: a burst) forks an instance there and then.

Control messages (seqpacket, see ``edge.runtime.wire``):

* template -> worker: ``{op: ready, logs}`` | ``{op: error, message, logs}``,
  ``{op: spare, pid}`` + the spare's socket (unasked),
  ``{op: spawned, pid}`` + the instance socket, ``{op: spawn_failed, message}``,
  ``{op: exit, pid, code, signal, maxrss_kb}`` (spares included).
* worker -> template: ``{op: spawn}``, ``{op: spare_taken}``. EOF means: kill
  the instances and exit.

APPSEC: from the moment it imports function code, a template is untrusted:
the worker validates everything it sends and never signals a pid it names.
"""

from __future__ import annotations

import gc
import importlib.util
import inspect
import os
import socket
import sys
import traceback
from pathlib import PurePosixPath
from types import ModuleType
from typing import Any

from edge.runtime.python.process import imports, sandbox
from edge.runtime.python.process.apps import AppError, as_handler
from edge.runtime.python.process.instance import Capture, Handler, Instance
from edge.runtime.python.process.supervisor import Supervisor
from edge.uids import function_ids

# Reserved exit code: the function failed to boot (gunicorn's WORKER_BOOT_ERROR).
EXIT_BOOT_ERROR = 3
MAX_ERROR_TEXT = 32 * 1024
SPARE_DELAY_MS = 5
# What a template may allocate while importing, beyond memory_mb: libraries
# (numpy, a model) live in the template and are shared by its instances
# through fork, so they do not count against memory_mb; each instance's
# limit is then its own size at fork plus memory_mb.
IMPORT_ALLOWANCE_MB = 1024
_IMPORT_FRAMES = ("<frozen importlib._bootstrap", __file__)


class LoadError(Exception):
    """The function's module or handler could not be loaded."""


class Template(Supervisor):
    """One function version, imported, forking instances on request.

    Args:
        sock: the seqpacket socket to the worker.
        spec: the version as the zygote received it (``key``, ``app``,
            ``name``, ``root``, ``path``, ``handler``, ``env``, ``memory_mb``,
            ``nofile``, ``nproc``).
    """

    def __init__(self, sock: socket.socket, spec: dict[str, Any], parent: int) -> None:
        super().__init__(sock)
        self.spec = spec
        self.parent = parent  # the zygote's pid, read before the fork
        self.capture = Capture()
        self.pins = sandbox.PathPins()
        self.handler: Handler | None = None
        self.spare: int | None = None  # the pid of the spare the worker holds

    def main(self) -> int:
        """Sandbox, load, serve; returns the exit code."""
        try:
            self.enter_sandbox()
            self.handler = self.load()
        except BaseException as exc:  # every boot failure is reported
            self.send(
                {
                    "op": "error",
                    "message": self.describe(exc),
                    "logs": self.capture.take()[-100:],
                }
            )
            return EXIT_BOOT_ERROR
        self.send({"op": "ready", "logs": self.capture.take()[-100:]})
        # Everything imported so far outlives every instance: out of the
        # collector's sight, an instance's collections never write (copy) its
        # pages. Measured with falcon imported: a full collection in a forked
        # child took 1,250 page faults and 7 ms; frozen, 75 and 0.3 ms.
        gc.freeze()
        self.install_signals()
        self._hand_over("spare")
        self.run()
        return 0

    @staticmethod
    def describe(exc: BaseException) -> str:
        """A load failure as the pusher and the logs see it (bounded)."""
        return _describe(exc)[-MAX_ERROR_TEXT:]

    def enter_sandbox(self) -> None:
        """Everything before function code runs. APPSEC: order matters."""
        spec = self.spec
        os.setsid()  # own session: terminal signals to the platform do not reach it
        # SCHED_BATCH (inherited by every instance): a function process woken by
        # the worker's request does not preempt the worker at once; it runs when
        # the worker waits or on the next tick. The worker then writes several
        # requests and reads several replies per wake-up instead of being switched
        # out at every write, and no tenant's process preempts the router.
        os.sched_setscheduler(0, os.SCHED_BATCH, os.sched_param(0))
        sandbox.redirect_stdio()
        root = spec["root"]
        path = imports.import_path(root, spec["packages"])
        self.pins.pin(path)
        sandbox.close_inherited_fds([self.sock.fileno(), *self.pins.fds()])
        os.chdir(root)
        separate = sandbox.privileged()
        limits = sandbox.Limits(spec["nofile"], spec["nproc"])
        sandbox.limit_resources(limits, separate_uid=separate)
        if separate:
            uid = spec["uid"] or function_ids(spec["app"])[0]
            sandbox.drop_privileges(uid, uid)
        sandbox.harden()
        sandbox.die_with_parent(self.parent)
        sandbox.become_subreaper()
        imports.restrict(path)
        self.pins.apply()
        sys.dont_write_bytecode = True
        os.environ.clear()
        os.environ.update(spec["env"])

    def load(self) -> Handler:
        """Import the entry module under the memory limit and resolve the handler."""
        spec = self.spec
        self.capture.install()
        sandbox.limit_memory(spec["memory_mb"] + IMPORT_ALLOWANCE_MB)
        if spec["packages"]:
            import site  # noqa: PLC0415 - -S: importing it runs nothing; this runs .pth files

            site.addsitedir(sys.path[1])
        module = _import_entry(sys.path[0], spec["path"])
        target = getattr(module, spec["handler"], None)
        where = f"{spec['path']}:{spec['handler']}"
        if target is None:
            raise LoadError(f"{where}: {spec['path']} defines no {spec['handler']!r}")
        if not callable(target):
            raise LoadError(f"{where} is a {type(target).__name__}, not a function")
        try:
            handler = as_handler(target, spec["kind"])
        except AppError as exc:
            raise LoadError(f"{where}: {exc}") from None
        if inspect.iscoroutinefunction(handler) or inspect.iscoroutinefunction(
            getattr(handler, "__call__", None)  # noqa: B004
        ):
            import asyncio  # noqa: F401, PLC0415 - instances then fork with it imported
        return handler

    def handle_spawn(self, message: dict[str, Any]) -> None:
        """Fork an instance for the worker now (it holds no spare)."""
        if not self._hand_over("spawned"):
            self.send({"op": "spawn_failed", "message": "fork failed (process limit reached?)"})

    def handle_spare_taken(self, message: dict[str, Any]) -> None:
        """The worker started an instance from its spare: fork the next when idle."""
        self.spare = None

    def idle_timeout_ms(self) -> int | None:
        return None if self.spare is not None else SPARE_DELAY_MS

    def on_idle(self) -> None:
        self._hand_over("spare")  # a failed fork is tried again when next idle

    def on_exit(self, pid: int, status: int, maxrss_kb: int) -> None:
        if pid == self.spare:  # the worker drops it on this report
            self.spare = None
        super().on_exit(pid, status, maxrss_kb)

    def _hand_over(self, op: str) -> bool:
        """Fork an instance and send its socket as ``op``; False if the fork failed."""
        instance = self._fork_instance()
        if instance is None:
            return False
        pid, ours = instance
        self.children.add(pid)
        if op == "spare":
            self.spare = pid
        self.send({"op": op, "pid": pid}, [ours.fileno()])
        ours.close()
        return True

    def _fork_instance(self) -> tuple[int, socket.socket] | None:
        """Fork an instance; returns its pid and our end of its socket."""
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
        # Read before the fork: a child that asked getppid() after its parent had
        # died would take init for its parent and outlive the template.
        parent = os.getpid()
        try:
            pid = os.fork()
        except OSError:  # e.g. RLIMIT_NPROC reached
            ours.close()
            theirs.close()
            return None
        if pid == 0:
            code = 1
            try:
                ours.close()
                code = self._instance(theirs, parent)
            finally:
                os._exit(code)
        theirs.close()
        return pid, ours

    def _instance(self, sock: socket.socket, parent: int) -> int:
        self.forget_signals()
        os.setpgid(0, 0)  # its own group: killing it kills what it forked
        sandbox.close_inherited_fds([sock.fileno(), *self.pins.fds()])
        sandbox.die_with_parent(parent)
        # APPSEC: memory_mb counts what the instance allocates beyond its template.
        sandbox.limit_memory(self.spec["memory_mb"])
        assert self.handler is not None
        return Instance(sock, self.handler, self.spec["env"], self.capture).run()


def _import_entry(root: str, path: str) -> ModuleType:
    """Execute ``root/path`` as a module named after its path (``functions.users``)."""
    parts = PurePosixPath(path).with_suffix("").parts
    name = ".".join(parts) if all(p.isidentifier() for p in parts) else "edge_function"
    if name in sys.modules:  # e.g. an entry named json.py must not shadow the stdlib
        name = "edge_function"
    location = os.path.join(root, path)
    if not os.path.isfile(location):
        raise LoadError(f"{path}: no such file in the release")
    spec = importlib.util.spec_from_file_location(name, location)
    if spec is None or spec.loader is None:
        raise LoadError(f"{path}: not a Python file")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


def _describe(exc: BaseException) -> str:
    """The traceback of a load failure, without the platform's own frames."""
    if isinstance(exc, LoadError | sandbox.SandboxError | AppError):
        return str(exc)
    info = traceback.TracebackException.from_exception(exc)
    info.stack = traceback.StackSummary.from_list(
        [frame for frame in info.stack if not frame.filename.startswith(_IMPORT_FRAMES)]
    )
    return "".join(info.format()).rstrip()
