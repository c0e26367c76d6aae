"""The bench's child processes: each leads its own session and dies with its group.

Servers fork (gunicorn workers, zygotes, function instances, V8 hosts), so a
child is stopped by signalling its whole process group: SIGTERM, a grace
period, then SIGKILL for whatever is left.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from types import FrameType, TracebackType

from bench.client import get

GRACE_S = 15.0


class Processes:
    """Starts servers in their own sessions; :meth:`close` kills every group."""

    def __init__(self, logs: Path) -> None:
        self.logs = logs
        self._children: list[subprocess.Popen[bytes]] = []

    def start(
        self,
        name: str,
        argv: Sequence[str],
        *,
        env: dict[str, str] | None = None,
        cwd: Path | None = None,
        pass_fds: Sequence[int] = (),
    ) -> subprocess.Popen[bytes]:
        """Start ``argv`` with its output in ``<logs>/<name>.log``."""
        with open(self.logs / f"{name}.log", "ab") as log:
            proc = subprocess.Popen(
                list(argv),
                env=env,
                cwd=cwd,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                pass_fds=pass_fds,
                start_new_session=True,
            )
        self._children.append(proc)
        return proc

    def stop(self, proc: subprocess.Popen[bytes]) -> None:
        """SIGTERM the group, wait up to ``GRACE_S``, then SIGKILL the group."""
        if proc.poll() is None:
            _signal_group(proc.pid, signal.SIGTERM)
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(timeout=GRACE_S)
        # Grandchildren may outlive their parent: the group goes either way.
        _signal_group(proc.pid, signal.SIGKILL)
        proc.wait()

    def close(self) -> None:
        """Stop every child, the most recently started first."""
        while self._children:
            self.stop(self._children.pop())

    def __enter__(self) -> Processes:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()


def _signal_group(pgid: int, signum: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, signum)


def wait_ready(
    port: int,
    path: str = "/",
    *,
    proc: subprocess.Popen[bytes],
    host: str | None = None,
    timeout: float = 60.0,
) -> None:
    """Poll ``GET path`` until it answers 200.

    Raises:
        RuntimeError: the process exited, or no 200 came within ``timeout``.
    """
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"{proc.args[0]} exited with {proc.returncode}")
        try:
            if get(port, path, host=host, timeout=2).status == 200:
                return
        except OSError:
            pass
        time.sleep(0.01)
    raise RuntimeError(f"nothing answered 200 on :{port}{path} within {timeout:.0f}s")


def exit_on_signals(signums: Sequence[int] = (signal.SIGTERM, signal.SIGHUP)) -> None:
    """Turn SIGTERM/SIGHUP into ``SystemExit`` and SIGINT into ``KeyboardInterrupt``.

    Either unwinds through the ``with`` blocks that stop the children. SIGINT
    is set explicitly because a shell starts background jobs with it ignored.
    """
    handler: Callable[[int, FrameType | None], None] = _raise_exit
    for signum in signums:
        signal.signal(signum, handler)
    signal.signal(signal.SIGINT, signal.default_int_handler)


def _raise_exit(signum: int, frame: FrameType | None) -> None:
    raise SystemExit(128 + signum)
