"""``edge up``: the whole platform on one machine, in the foreground.

Starts the embedded Redis (unless EDGE_REDIS_URL points elsewhere), migrates
the database, makes sure an admin token exists in ``$EDGE_HOME/admin.token``,
starts the control plane and the runtime as gunicorn children, and with
``--demo`` deploys ``sample-app/`` by a real ``git push``. A child that dies is
started again (:class:`ProcessGroup`). Ctrl-C or SIGTERM stops everything.
"""

from __future__ import annotations

import collections
import ctypes
import logging
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

from edge.config import Config
from edge.platform.environments import public_url
from edge.platform.store import Store
from edge.redisserver import RedisServer
from edge.snapshot import PRODUCTION

logger = logging.getLogger(__name__)

SAMPLE_APP = Path(__file__).resolve().parents[1] / "sample-app"
SIDES = ("platform", "runtime")
POLL_S = 0.1
RESTART_WINDOW_S = 60.0
MAX_RESTARTS = 10
PR_SET_PDEATHSIG = 1  # prctl(2)


def admin_token(config: Config, store: Store) -> str:
    """The local admin token, created on first start (file readable by its owner only)."""
    path = config.home / "admin.token"
    if path.is_file():
        token = path.read_text().strip()
        if store.authenticate(token) is not None:
            return token
    token = store.create_token("admin", admin=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write(token + "\n")
    return token


def wait_healthy(url: str, timeout: float, process: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"{url} did not start: the process exited with {process.returncode}")
        try:
            with urllib.request.urlopen(url, timeout=2) as resp:  # noqa: S310 - our own URL
                if resp.status == 200:
                    return
        except (urllib.error.URLError, OSError):
            pass
        time.sleep(0.05)
    raise RuntimeError(f"{url} did not become healthy in {timeout:.0f}s")


class ProcessGroup:
    """Owns the child processes of ``edge up``: starts them, restarts one that
    dies, and stops them all on exit.

    Shaped like gunicorn's arbiter one level up: the signal handlers only set a
    flag; :meth:`wait` polls the children, and a control plane, runtime or
    embedded Redis that died (SIGKILL, OOM) is started again, unless
    :data:`MAX_RESTARTS` restarts within :data:`RESTART_WINDOW_S` say it is
    crash-looping, in which case everything stops.
    """

    def __init__(self, config: Config) -> None:
        self.config = config
        self.redis: RedisServer | None = None
        self.children: dict[str, subprocess.Popen[bytes]] = {}
        self.stopping = threading.Event()
        self._restarts: collections.deque[float] = collections.deque()

    def start(self) -> str:
        config = self.config
        config.prepare_home()
        if config.embedded_redis:
            self.redis = RedisServer(config.redis_socket, config.home / "redis", own_group())
            self.redis.start()
        store = Store.from_url(config.database_url)
        try:
            store.migrate()
            token = admin_token(config, store)
        finally:
            store.close()
        for side in SIDES:
            self._spawn(side)
        for side in SIDES:
            wait_healthy(self._health_url(side), 60, self.children[side])
        return token

    def _spawn(self, side: str) -> None:
        env = {**os.environ, **self.config.to_env()}
        self.children[side] = subprocess.Popen(
            [sys.executable, "-m", "edge.cli", side],
            env=env,
            stdin=subprocess.DEVNULL,
            **own_group(),
        )

    def _health_url(self, side: str) -> str:
        config = self.config
        if side == "platform":
            return f"{config.platform_url}/healthz"
        local = "127.0.0.1" if config.bind in ("0.0.0.0", "::") else config.bind  # noqa: S104
        return f"http://{local}:{config.runtime_port}/healthz"

    def install_signal_handlers(self) -> None:
        """Ctrl-C and SIGTERM end :meth:`wait` (handlers only set a flag); a
        second one while stopping makes the servers quit without waiting for
        their requests (gunicorn's SIGQUIT)."""

        def on_signal(signum: int, frame: object) -> None:
            if self.stopping.is_set():
                for child in list(self.children.values()):
                    if child.poll() is None:
                        child.send_signal(signal.SIGQUIT)
            self.stopping.set()

        signal.signal(signal.SIGTERM, on_signal)
        signal.signal(signal.SIGINT, on_signal)

    def wait(self) -> None:
        """Keep everything running until a signal arrives (or a crash loop)."""
        while not self.stopping.is_set():
            try:
                self._revive()
            except RuntimeError as exc:
                logger.error("%s; stopping", exc)
                return
            self.stopping.wait(POLL_S)

    def _revive(self) -> None:
        """Start again whatever died. Raises RuntimeError when it keeps dying."""
        redis = self.redis
        if redis is not None and redis.process is not None and redis.process.poll() is not None:
            self._restarting("the embedded redis", redis.process.returncode)
            redis.start()
        for side, child in list(self.children.items()):
            if child.poll() is None or self.stopping.is_set():
                continue
            self._restarting(f"the {side}", child.returncode)
            began = time.monotonic()
            self._spawn(side)
            wait_healthy(self._health_url(side), 60, self.children[side])
            logger.warning("the %s is back in %.0f ms", side, (time.monotonic() - began) * 1000)

    def _restarting(self, what: str, code: int | None) -> None:
        now = time.monotonic()
        while self._restarts and now - self._restarts[0] > RESTART_WINDOW_S:
            self._restarts.popleft()
        if len(self._restarts) >= MAX_RESTARTS:
            raise RuntimeError(
                f"{what} exited ({_exit_text(code)}) after {MAX_RESTARTS} restarts "
                f"in {RESTART_WINDOW_S:.0f} s"
            )
        self._restarts.append(now)
        logger.warning("%s exited (%s); starting it again", what, _exit_text(code))

    def stop(self) -> None:
        children = list(self.children.values())
        for child in children:
            if child.poll() is None:
                child.send_signal(signal.SIGTERM)
        for child in children:
            try:
                child.wait(timeout=40)
            except subprocess.TimeoutExpired:
                child.kill()
                child.wait()
        self.children.clear()
        if self.redis is not None:
            self.redis.stop()
            self.redis = None


def own_group() -> dict[str, Any]:
    """``Popen`` arguments for a child of ``edge up``: its own process group, so a
    terminal's Ctrl-C reaches ``edge up`` alone, which then stops the servers in
    order (runtime and control plane with SIGTERM, gracefully, then Redis, which
    they flush their last metrics and logs to); and SIGTERM when ``edge up``
    dies, however it dies, so no child outlives it.

    Without the group, Ctrl-C reached every process at once: gunicorn dropped
    in-flight requests (SIGINT is its quick stop), Redis was gone before the
    runtime's last flush, and function templates died under live pools.
    """
    prctl = ctypes.CDLL(None, use_errno=True).prctl
    parent = os.getpid()

    def die_with_parent() -> None:  # in the child, between fork and exec
        prctl(PR_SET_PDEATHSIG, signal.SIGTERM)
        if os.getppid() != parent:  # edge up died before prctl: nobody would signal
            os.kill(os.getpid(), signal.SIGTERM)

    return {"process_group": 0, "preexec_fn": die_with_parent}


def _exit_text(code: int | None) -> str:
    if code is not None and code < 0:
        try:
            return signal.Signals(-code).name
        except ValueError:
            return f"signal {-code}"
    return f"status {code}"


def deploy_demo(config: Config, token: str, source: Path = SAMPLE_APP) -> str:
    """Deploy ``sample-app/`` as app ``shop`` by a real git push; returns git's output."""
    work = Path(tempfile.mkdtemp(prefix="edge-demo-"))
    try:
        shutil.copytree(source, work, dirs_exist_ok=True)
        remote = config.platform_url.replace("://", f"://x:{token}@") + "/git/shop.git"
        git = [
            "git",
            "-c",
            "user.name=Edge Demo",
            "-c",
            "user.email=demo@edge.localhost",
            "-c",
            "init.defaultBranch=main",
        ]
        subprocess.run([*git, "init", "-q"], cwd=work, check=True)
        subprocess.run([*git, "add", "-A"], cwd=work, check=True)
        subprocess.run([*git, "commit", "-q", "-m", "Deploy the sample app"], cwd=work, check=True)
        result = subprocess.run(
            [*git, "push", "--force", remote, "HEAD:main"],
            cwd=work,
            capture_output=True,
            text=True,
            check=False,
        )
        if result.returncode != 0:
            raise RuntimeError(f"demo push failed:\n{result.stderr}")
        return result.stderr.replace(token, "***")
    finally:
        shutil.rmtree(work, ignore_errors=True)


def banner(config: Config, token_path: Path, demo: bool) -> str:
    shop = public_url(config, "shop", PRODUCTION).rstrip("/")
    found = shutil.which("edge")
    edge = (
        "edge"
        if found and Path(found).parent == Path(sys.executable).parent
        else (os.path.relpath(Path(sys.executable).parent / "edge"))
    )
    lines = [
        "",
        "Edge is running.",
        f"  runtime (functions)  http://{config.bind}:{config.runtime_port}",
        f"  control plane        {config.platform_url}"
        f"   (git: {config.platform_url}/git/<app>.git)",
        f"  dashboard            {config.platform_url}/   (sign in with the admin token)",
        f"  admin token          {token_path}",
    ]
    if demo:
        lines += [
            "",
            "Try the sample app:",
            f"  curl {shop}/",
            f"  curl {shop}/api/users/42",
            f'  curl -X POST {shop}/api/echo -d \'{{"hello": "edge"}}\'',
            f"  curl {shop}/js/hello?name=edge",
            "",
            f"  {edge} releases shop     {edge} logs shop -f     {edge} metrics shop",
        ]
    lines += ["", "Ctrl-C stops everything."]
    return "\n".join(lines)


def run(config: Config, *, demo: bool) -> int:
    processes = ProcessGroup(config)
    processes.install_signal_handlers()
    try:
        token = processes.start()
        if demo:
            print(deploy_demo(config, token), file=sys.stderr)
        print(banner(config, config.home / "admin.token", demo), flush=True)
        processes.wait()
    finally:
        processes.stop()
    return 0
