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

* worker -> zygote: ``{op: template, id, spec}``, ``{op: kill, pid}``.
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
                code = Template(theirs, spec).main()
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


def check_spec(spec: object) -> str:
    """What is wrong with a template spec from the worker (``""``: nothing)."""
    if not isinstance(spec, dict):
        return "template spec must be a map"
    for field, kind in _SPEC_FIELDS.items():
        if not isinstance(spec.get(field), kind):
            return f"template spec: {field} must be {kind.__name__}"
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
