"""The push-time load check: import one Python entry in a template's sandbox, report, exit.

The control plane's ``update`` step runs ``python -S -P -m
edge.runtime.python.process.check <fd>`` (see ``edge.platform.loadcheck``),
exec'ed exactly like the zygote: scrubbed environment, only the socket ``<fd>``
open. It reads one ``{op: check, spec}`` message, then does what a template
does before it serves (sandbox, uid drop when root, limits, import isolation,
import the entry, resolve the handler or app) and answers the template's own
``{op: ready}`` or ``{op: error, message}``. The caller enforces the time limit.
"""

from __future__ import annotations

import os
import socket
import sys

import edge  # noqa: F401 - as in the zygote: the function API is already imported
from edge.runtime.python.process.template import EXIT_BOOT_ERROR, Template
from edge.runtime.python.process.zygote import check_spec
from edge.runtime.wire import recv_control


class LoadCheck(Template):
    """A template that stops after loading: it reports and exits."""

    def check(self) -> int:
        message, _fds = recv_control(self.sock)
        spec = message.get("spec") if isinstance(message, dict) else None
        problem = check_spec(spec)
        if problem:
            self.send({"op": "error", "message": problem, "logs": []})
            return EXIT_BOOT_ERROR
        assert isinstance(spec, dict)
        self.spec = spec
        try:
            self.enter_sandbox()
            self.load()
        except BaseException as exc:  # every load failure is the answer
            self.send({"op": "error", "message": self.describe(exc), "logs": []})
            return EXIT_BOOT_ERROR
        self.send({"op": "ready", "logs": self.capture.take()[-20:]})
        return 0


def main(argv: list[str] | None = None) -> None:
    """Entry point: ``python -S -P -m edge.runtime.python.process.check <fd>``."""
    args = sys.argv[1:] if argv is None else argv
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET, fileno=int(args[0]))
    sys.exit(LoadCheck(sock, {}, os.getppid()).check())


if __name__ == "__main__":
    main()
