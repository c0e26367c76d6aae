"""The zygote: a fresh, single-threaded interpreter that forks function templates.

A runtime worker (asyncio, with threads: it must never fork) starts one with
``python -S -P -m edge.runtime.python.process.zygote <fd> <worker-pid>`` (no
``site``: see ``edge.runtime.python.process.imports``) (see
``edge.runtime.python.pool.Zygote``), exec'ed with a scrubbed environment and only
the control socket ``<fd>`` open. Per function version the worker asks for a
template; the zygote forks it with a socketpair of its own and passes the
worker that socket's other end, so instances are then spawned without the
zygote in the path.

Control messages (seqpacket, see ``edge.runtime.wire``):

* worker -> zygote: ``{op: template, id, spec}`` (``spec.cgroups``: the
  ``cgroup.procs`` files the template joins first, maybe none), ``{op: kill, pid}``.
* zygote -> worker: ``{op: hello, pid}`` once; ``{op: template, id, pid}`` +
  the template's socket; ``{op: template_failed, id, message}``;
  ``{op: exit, pid, code, signal, maxrss_kb}`` when a template exits.

EOF on the control socket (the worker closed it or died) makes the zygote
kill its templates, reap them and exit; it also dies with the worker
(``PR_SET_PDEATHSIG``), and so do templates with it and instances with them.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import sys
from typing import Any

import edge  # noqa: F401 - imported once here, inherited by every template
from edge.runtime.python.process import sandbox
from edge.runtime.python.process.supervisor import Supervisor
from edge.runtime.python.process.template import EXIT_BOOT_ERROR, Template
from edge.runtime.wire import send_control

_SPEC_FIELDS = {
    "key": str,
    "app": str,
    "uid": int,
    "name": str,
    "root": str,
    "path": str,
    "handler": str,
    "env": dict,
    "memory_mb": int,
    "nofile": int,
    "nproc": int,
    "packages": str,
    "kind": str,
    "cgroups": list,
}


class ZygoteServer(Supervisor):
    """The zygote's loop: forks templates on request and reports their exits."""

    def handle_template(self, message: dict[str, Any]) -> None:
        spec = message.get("spec")
        request_id = message.get("id")
        problem = check_spec(spec)
        if problem:
            self.send({"op": "template_failed", "id": request_id, "message": problem})
            return
        assert isinstance(spec, dict)
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        me = os.getpid()  # the template's parent, read before the fork (see Template)
        try:
            pid = os.fork()
        except OSError as exc:
            ours.close()
            theirs.close()
            self.send(
                {
                    "op": "template_failed",
                    "id": request_id,
                    "message": f"fork failed: {exc.strerror}",
                }
            )
            return
        if pid == 0:
            code = EXIT_BOOT_ERROR
            try:
                ours.close()
                self.forget_signals()
                join_cgroups(theirs, spec["cgroups"])
                code = Template(theirs, spec, me).main()
            finally:
                os._exit(code)
        theirs.close()
        self.children.add(pid)
        self.send({"op": "template", "id": request_id, "pid": pid}, [ours.fileno()])
        ours.close()

    def handle_kill(self, message: dict[str, Any]) -> None:
        """SIGKILL a template (and its process group), if it is still ours."""
        pid = message.get("pid")
        if isinstance(pid, int) and pid in self.children:
            with contextlib.suppress(OSError):
                os.killpg(pid, signal.SIGKILL)
            with contextlib.suppress(OSError):  # not yet a group leader (setsid pending)
                os.kill(pid, signal.SIGKILL)

    def on_exit(self, pid: int, status: int, maxrss_kb: int) -> None:
        """Report a template's exit, then kill what it left behind."""
        super().on_exit(pid, status, maxrss_kb)
        self.kill_orphans()

    def shutdown(self) -> None:
        super().shutdown()
        self.kill_orphans()

    def on_other_exit(self, pid: int) -> None:
        self.kill_orphans()  # what the killed orphan had forked is ours now

    def kill_orphans(self) -> None:
        """SIGKILL every adopted child: what a dead template's processes left behind.

        APPSEC: the zygote is a subreaper, so a daemon a function made (fork,
        setsid, fork) becomes its child when the template dies. With cgroups
        the worker kills the version's group anyway; without them this is
        what ends such a daemon with its version.
        """
        me = str(os.getpid())
        for entry in os.listdir("/proc"):
            if entry.isdigit() and int(entry) not in self.children and _ppid(entry) == me:
                with contextlib.suppress(OSError):
                    os.kill(int(entry), signal.SIGKILL)


def _ppid(pid: str) -> str:
    try:
        with open(f"/proc/{pid}/stat", "rb") as stat:
            return stat.read().rsplit(b")", 1)[1].split()[1].decode()
    except (OSError, IndexError):
        return ""


def join_cgroups(sock: socket.socket, procs_files: list[str]) -> None:
    """In a forked template, before anything else: enter its version's cgroups.

    APPSEC: the template is still root and runs only platform code here, so
    every process the function ever makes is born inside its group (see
    ``edge.runtime.python.cgroups``). A template that cannot join does not boot.
    """
    try:
        for path in procs_files:
            with open(path, "w") as procs:
                procs.write(str(os.getpid()))
    except OSError as exc:
        with contextlib.suppress(OSError):
            send_control(sock, {"op": "error", "message": f"could not join its cgroup: {exc}"})
        os._exit(EXIT_BOOT_ERROR)


def check_spec(spec: object) -> str:
    """What is wrong with a template spec from the worker (``""``: nothing)."""
    if not isinstance(spec, dict):
        return "template spec must be a map"
    for field, kind in _SPEC_FIELDS.items():
        if not isinstance(spec.get(field), kind):
            return f"template spec: {field} must be {kind.__name__}"
    if not all(isinstance(p, str) and p.endswith("/cgroup.procs") for p in spec["cgroups"]):
        return "template spec: cgroups must be cgroup.procs paths"
    return ""


def main(argv: list[str] | None = None) -> None:
    """Entry point: ``python -P -m edge.runtime.python.process.zygote <fd> <worker-pid>``."""
    args = sys.argv[1:] if argv is None else argv
    fd, parent = int(args[0]), int(args[1])
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the worker decides when we stop
    sandbox.die_with_parent(parent)
    sandbox.become_subreaper()
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET, fileno=fd)
    server = ZygoteServer(sock)
    server.install_signals()
    server.send({"op": "hello", "pid": os.getpid()})
    server.run()


if __name__ == "__main__":
    main()
