"""The loop shared by the zygote and templates: one control socket, children.

Shaped like gunicorn's Arbiter at a small size: the SIGCHLD handler only
wakes the loop (``signal.set_wakeup_fd``); the loop then reaps every exited
child and reports it; messages from the worker are dispatched to
``handle_<op>`` methods. Single-threaded, blocking, no asyncio: this code runs
in the processes that fork, and must stay lean.
"""

from __future__ import annotations

import contextlib
import os
import select
import signal
import socket
from typing import Any

from edge.runtime.wire import (
    PeerClosed,
    ProtocolError,
    close_fds,
    recv_control,
    send_control,
)


def _wake(signum: int, frame: object) -> None:
    """SIGCHLD handler: nothing; the wakeup fd already woke the loop."""


class Supervisor:
    """A parent process serving one control socket and reaping its children.

    Args:
        sock: the seqpacket control socket to the worker.

    Attributes:
        children: live children this process forked and reports on.
    """

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.children: set[int] = set()
        self._wake_r = -1
        self._wake_w = -1

    def install_signals(self) -> None:
        """Route SIGCHLD to the loop's wakeup pipe."""
        self._wake_r, self._wake_w = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)
        signal.set_wakeup_fd(self._wake_w, warn_on_full_buffer=False)
        signal.signal(signal.SIGCHLD, _wake)

    def forget_signals(self) -> None:
        """In a forked child: drop the parent's loop plumbing."""
        signal.set_wakeup_fd(-1)
        signal.signal(signal.SIGCHLD, signal.SIG_DFL)
        close_fds([self._wake_r, self._wake_w])
        self._wake_r = self._wake_w = -1
        self.sock.close()
        self.children.clear()

    def run(self) -> None:
        """Serve until the worker closes the socket, then kill and reap the children."""
        poller = select.poll()
        poller.register(self.sock, select.POLLIN)
        poller.register(self._wake_r, select.POLLIN)
        try:
            while self._step(poller):
                pass
        finally:
            self.shutdown()

    def _step(self, poller: select.poll) -> bool:
        events = poller.poll(self.idle_timeout_ms())
        if not events:
            self.on_idle()
        for fd, _ in events:
            if fd == self._wake_r:
                with contextlib.suppress(BlockingIOError):
                    os.read(self._wake_r, 4096)
                self.reap()
                continue
            try:
                message, fds = recv_control(self.sock)
            except (PeerClosed, ProtocolError, ConnectionError):
                return False  # the worker is gone (or broken): shut down
            self.dispatch(message, fds)
        return True

    def dispatch(self, message: Any, fds: list[int]) -> None:
        """Call ``handle_<op>(message)``; unknown or malformed messages are dropped."""
        close_fds(fds)
        op = message.get("op") if isinstance(message, dict) else None
        handler = getattr(self, f"handle_{op}", None) if isinstance(op, str) else None
        if handler is not None:
            handler(message)

    def send(self, message: dict[str, Any], fds: list[int] | None = None) -> None:
        """Send to the worker; a worker that went away ends the loop at its EOF."""
        with contextlib.suppress(OSError):
            send_control(self.sock, message, fds or ())

    def reap(self) -> None:
        """Reap every exited child; kill what is left of its process group first."""
        while True:
            try:
                info = os.waitid(os.P_ALL, 0, os.WEXITED | os.WNOHANG | os.WNOWAIT)
            except ChildProcessError:
                return
            if info is None or info.si_pid == 0:
                return
            pid = info.si_pid
            if pid in self.children:
                # The zombie still holds its pid, so the group id cannot be reused yet.
                with contextlib.suppress(OSError):
                    os.killpg(pid, signal.SIGKILL)
            _, status, usage = os.wait4(pid, 0)
            if pid in self.children:
                self.children.discard(pid)
                self.on_exit(pid, status, usage.ru_maxrss)
            else:
                self.on_other_exit(pid)

    def on_exit(self, pid: int, status: int, maxrss_kb: int) -> None:
        """Report one child's exit to the worker."""
        code = os.waitstatus_to_exitcode(status)
        self.send(
            {
                "op": "exit",
                "pid": pid,
                "code": code if code >= 0 else None,
                "signal": -code if code < 0 else None,
                "maxrss_kb": maxrss_kb,
            }
        )

    def idle_timeout_ms(self) -> int | None:
        """How long the loop may sleep before :meth:`on_idle` (``None``: forever)."""
        return None

    def on_idle(self) -> None:
        """Called when the loop slept ``idle_timeout_ms()`` with nothing to do."""

    def on_other_exit(self, pid: int) -> None:
        """A process we do not report on was reaped (e.g. an adopted orphan)."""

    def shutdown(self) -> None:
        """Kill every child (and its process group) and reap them all."""
        for pid in self.children:
            with contextlib.suppress(OSError):
                os.killpg(pid, signal.SIGKILL)
            with contextlib.suppress(OSError):
                os.kill(pid, signal.SIGKILL)
        for pid in list(self.children):
            with contextlib.suppress(ChildProcessError):
                os.waitpid(pid, 0)
        self.children.clear()
        with contextlib.suppress(ChildProcessError):
            while os.waitpid(-1, os.WNOHANG)[0]:
                pass
