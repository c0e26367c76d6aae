"""Starting the baseline servers: bare falcon on gunicorn, and Cloudflare's workerd."""

from __future__ import annotations

import shutil
import socket
import subprocess
import sys
import time
from contextlib import ExitStack
from pathlib import Path

from bench.client import free_port
from bench.procs import Processes, wait_ready

BENCH_DIR = Path(__file__).resolve().parent
WORKERD_CONFIG = BENCH_DIR / "workerd-hello.capnp"
WORKERD_DIR = BENCH_DIR / ".workerd"


class Unavailable(Exception):
    """A baseline cannot run on this machine; the message says why."""


def start_falcon(
    procs: Processes, workers: int, app: str = "bench.falcon_hello:app"
) -> tuple[int, float]:
    """``gunicorn -k asgi`` (uvloop) with ``workers`` workers, the runtime's own settings,
    serving ``app`` (bare falcon; ``bench.falcon_hello:raw`` is a bare ASGI callable).

    Returns:
        The port, and milliseconds from start to the first 200.
    """
    port = free_port()
    argv = [
        sys.executable,
        "-m",
        "gunicorn",
        "-k",
        "asgi",
        "--asgi-loop",
        "uvloop",
        "-w",
        str(workers),
        "-b",
        f"127.0.0.1:{port}",
        "--reuse-port",
        "--keep-alive",
        "5",
        "--worker-connections",
        "2000",
        "--backlog",
        "2048",
        "--log-level",
        "warning",
        "--chdir",
        str(BENCH_DIR.parent),
        app,
    ]
    began = time.perf_counter()
    wait_ready(port, proc=procs.start("falcon", argv))
    return port, (time.perf_counter() - began) * 1000


def reuseport_sockets(count: int) -> list[socket.socket]:
    """``count`` listening sockets on one loopback port, each with SO_REUSEPORT.

    The kernel spreads new connections over them, so each process gets its own
    accept queue (one shared queue lets a single process take every connection).
    """
    sockets: list[socket.socket] = []
    port = 0
    with ExitStack() as on_error:
        for _ in range(count):
            sock = on_error.enter_context(socket.socket(socket.AF_INET, socket.SOCK_STREAM))
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
            sock.bind(("127.0.0.1", port))
            sock.listen(2048)
            port = sock.getsockname()[1]
            sockets.append(sock)
        on_error.pop_all()
    return sockets


def start_workerd(procs: Processes, binary: Path, processes: int) -> tuple[int, float]:
    """``processes`` times ``workerd serve workerd-hello.capnp``, one SO_REUSEPORT socket each.

    Returns:
        The port, and milliseconds from start to the first 200.
    """
    sockets = reuseport_sockets(processes)
    port = int(sockets[0].getsockname()[1])
    began = time.perf_counter()
    try:
        started = [
            procs.start(
                f"workerd-{i}",
                [str(binary), "serve", str(WORKERD_CONFIG), "--socket-fd", f"http={sock.fileno()}"],
                pass_fds=[sock.fileno()],
            )
            for i, sock in enumerate(sockets)
        ]
    finally:
        for sock in sockets:
            sock.close()  # each workerd holds its own copy now
    for proc in started:
        wait_ready(port, proc=proc)
    return port, (time.perf_counter() - began) * 1000


def workerd_binary(folder: Path = WORKERD_DIR) -> Path | None:
    """The native workerd executable npm put under ``folder``, if any."""
    modules = folder / "node_modules"
    # Prefer the platform package's binary: the generic bin/ may be a node launcher.
    for candidate in [
        *sorted(modules.glob("@cloudflare/workerd-*/bin/workerd")),
        modules / "workerd" / "bin" / "workerd",
    ]:
        if candidate.is_file():
            return candidate
    return None


def install_workerd(folder: Path = WORKERD_DIR) -> tuple[Path, str]:
    """``npm install workerd`` into ``folder`` unless it is there already.

    Returns:
        The binary and its version (``2026-11-17``).

    Raises:
        Unavailable: npm is missing, the install failed, or the binary does not run.
    """
    if workerd_binary(folder) is None:
        npm = shutil.which("npm")
        if npm is None:
            raise Unavailable("npm not found")
        folder.mkdir(exist_ok=True)
        result = subprocess.run(
            [
                npm,
                "install",
                "--prefix",
                str(folder),
                "--no-audit",
                "--no-fund",
                "--loglevel=error",
                "workerd",
            ],
            capture_output=True,
            text=True,
            timeout=600,
            check=False,
        )
        if result.returncode != 0:
            lines = (result.stderr or result.stdout).strip().splitlines() or ["no output"]
            raise Unavailable(f"npm install workerd failed: {lines[-1]}")
    binary = workerd_binary(folder)
    if binary is None:
        raise Unavailable(f"npm installed no workerd binary under {folder}")
    try:
        out = subprocess.run(
            [str(binary), "--version"], capture_output=True, text=True, timeout=30, check=True
        )
    except (OSError, subprocess.SubprocessError) as exc:
        raise Unavailable(f"{binary} does not run: {exc}") from None
    return binary, out.stdout.strip().removeprefix("workerd ")
