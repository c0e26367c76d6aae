"""A real Edge stack for end-to-end tests: gunicorn subprocesses, real Redis, real git.

Each stack gets its own EDGE_HOME, free loopback ports and database; every
process is started in its own process group and killed with the group on
teardown.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest
import sqlalchemy as sa

from edge.config import Config
from edge.platform.store import Store

ROOT = Path(__file__).resolve().parents[1]


def _postgres_admin_url() -> str:
    url = os.environ.get("EDGE_TEST_POSTGRES_URL")
    if not url:
        pytest.fail(
            "EDGE_TEST_POSTGRES_URL is not set: run the suite with `make test`, "
            "which starts a private PostgreSQL server"
        )
    return url


@contextmanager
def fresh_postgres_database() -> Iterator[str]:
    """Create a brand-new, empty PostgreSQL database; drop it afterwards."""
    admin_url = _postgres_admin_url()
    name = f"edge_test_{uuid.uuid4().hex[:12]}"
    admin = sa.create_engine(admin_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
    url = admin_url.rsplit("/", 1)[0] + f"/{name}"
    yield url
    with admin.connect() as conn:
        conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    admin.dispose()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_for(
    condition: Callable[[], object],
    timeout: float = 20.0,
    interval: float = 0.02,
    message: str = "condition",
) -> object:
    """Poll ``condition`` until it returns something truthy, or fail after ``timeout``."""
    deadline = time.monotonic() + timeout
    last_error: Exception | None = None
    while time.monotonic() < deadline:
        try:
            value = condition()
            if value:
                return value
        except Exception as exc:
            last_error = exc
        time.sleep(interval)
    raise AssertionError(
        f"timed out after {timeout}s waiting for {message}"
        + (f" (last error: {last_error!r})" if last_error else "")
    )


@dataclass
class Stack:
    """A running platform + runtime; helpers to push and to call functions."""

    home: Path
    env: dict[str, str]
    config: Config
    token: str
    processes: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)
    http: httpx.Client = field(default_factory=lambda: httpx.Client(timeout=30))

    @property
    def runtime_url(self) -> str:
        return f"http://127.0.0.1:{self.config.runtime_port}"

    def remote(self, app: str, token: str | None = None) -> str:
        return f"http://x:{token or self.token}@127.0.0.1:{self.config.platform_port}/git/{app}.git"

    def start(self, side: str) -> subprocess.Popen[bytes]:
        log = open(self.home / f"{side}.log", "ab")  # noqa: SIM115 - closed in stop()
        proc = subprocess.Popen(
            [sys.executable, "-m", "edge.cli", side],
            env=self.env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        log.close()
        self.processes[side] = proc
        url = (
            f"http://127.0.0.1:{self.config.platform_port}/healthz"
            if side == "platform"
            else f"{self.runtime_url}/healthz"
        )
        wait_for(
            lambda: proc.poll() is None and self.http.get(url).status_code == 200,
            timeout=60,
            message=f"{side} to become healthy (see {self.home}/{side}.log)",
        )
        return proc

    def stop(self, side: str, sig: int = signal.SIGTERM) -> None:
        proc = self.processes.pop(side, None)
        if proc is None:
            return
        if proc.poll() is None:
            os.killpg(proc.pid, sig)
            try:
                proc.wait(timeout=40)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
        # Function processes may outlive a crashed master: kill the whole group.
        with suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)

    def close(self) -> None:
        for side in list(self.processes):
            self.stop(side)
        self.http.close()

    def get(self, host: str, path: str, **kwargs: object) -> httpx.Response:
        return self.call("GET", host, path, **kwargs)

    def call(self, method: str, host: str, path: str, **kwargs: object) -> httpx.Response:
        headers = dict(kwargs.pop("headers", {}) or {})  # type: ignore[call-overload]
        headers["Host"] = host
        return self.http.request(method, self.runtime_url + path, headers=headers, **kwargs)  # type: ignore[arg-type]

    def host(self, app: str, branch: str | None = None) -> str:
        return (
            f"{app}.{self.config.domain}"
            if branch is None
            else f"{branch}--{app}.{self.config.domain}"
        )

    def log(self, side: str) -> str:
        path = self.home / f"{side}.log"
        return path.read_text(errors="replace") if path.exists() else ""


def make_stack(tmp: Path, database_url: str, redis_url: str, **settings: str) -> Stack:
    home = tmp / "home"
    home.mkdir(parents=True, exist_ok=True)
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("EDGE_")},
        "EDGE_HOME": str(home),
        "EDGE_DATABASE_URL": database_url,
        "EDGE_REDIS_URL": redis_url,
        "EDGE_RUNTIME_PORT": str(free_port()),
        "EDGE_PLATFORM_PORT": str(free_port()),
        "EDGE_RUNTIME_WORKERS": "2",
        "EDGE_DEPLOY_TIMEOUT": "20",
        "EDGE_LOG_LEVEL": "INFO",
        **settings,
    }
    config = Config.from_env(env)
    store = Store.from_url(database_url)
    try:
        store.migrate()
        token = store.create_token("tester", admin=True)
    finally:
        store.close()
    return Stack(home, env, config, token)


def runtime_node(east: Stack, home: Path, region: str, **settings: str) -> Stack:
    """Another runtime node (not started) of ``east``'s platform, as on another host:
    its own home and port, the shared database and Redis, the platform's key."""
    home.mkdir(parents=True, exist_ok=True)
    env = {
        **east.env,
        "EDGE_HOME": str(home),
        "EDGE_REGION": region,
        "EDGE_RUNTIME_PORT": str(free_port()),
        "EDGE_TOKEN": east.token,
        "EDGE_PLATFORM_URL": f"http://127.0.0.1:{east.config.platform_port}",
        "EDGE_SECRET_KEY": (east.home / "secret.key").read_text().strip(),
        **settings,
    }
    return Stack(home, env, Config.from_env(env), east.token)


class Workdir:
    """A local git working copy of an app, driven with the real git client."""

    def __init__(self, path: Path, env: dict[str, str] | None = None, *, init: bool = True) -> None:
        self.path = path
        self.env = {**os.environ, "GIT_TERMINAL_PROMPT": "0", **(env or {})}
        path.mkdir(parents=True, exist_ok=True)
        if init:
            self.git("init", "-q", "-b", "main")
        self.git("config", "user.name", "Test Pusher")
        self.git("config", "user.email", "pusher@example.com")

    @classmethod
    def clone(cls, source: str, path: Path, *args: str) -> Workdir:
        """A working copy made by ``git clone <args> <source> <path>``."""
        subprocess.run(
            ["git", "clone", "-q", *args, source, str(path)],
            check=True,
            capture_output=True,
            timeout=120,
            env={**os.environ, "GIT_TERMINAL_PROMPT": "0"},
        )
        return cls(path, init=False)

    def git(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        result = subprocess.run(
            ["git", *args],
            check=False,
            cwd=self.path,
            env=self.env,
            capture_output=True,
            text=True,
            timeout=120,
        )
        if check and result.returncode != 0:
            raise AssertionError(
                f"git {' '.join(args)} failed ({result.returncode}):\n"
                f"{result.stdout}\n{result.stderr}"
            )
        return result

    def write(self, files: dict[str, str]) -> None:
        for name, text in files.items():
            target = self.path / name
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_text(text)

    def remove(self, name: str) -> None:
        (self.path / name).unlink()

    def commit(self, message: str, files: dict[str, str] | None = None) -> str:
        if files:
            self.write(files)
        self.git("add", "-A")
        self.git("commit", "-q", "-m", message)
        return self.git("rev-parse", "HEAD").stdout.strip()

    def push(
        self, remote: str, *refspecs: str, check: bool = True
    ) -> subprocess.CompletedProcess[str]:
        return self.git("push", remote, *(refspecs or ("main",)), check=check)

    def copy_from(self, folder: Path) -> None:
        shutil.copytree(folder, self.path, dirs_exist_ok=True)


def descendants(pid: int) -> set[int]:
    """Every live (not zombie) process below ``pid``: for ``edge up`` its servers,
    for a runtime worker its zygote, templates, instances and V8 host."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            except (OSError, IndexError):
                continue
            if fields[0] != "Z":
                children.setdefault(int(fields[1]), []).append(int(entry.name))
    found, todo = set(), [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            found.add(child)
            todo.append(child)
    return found


def running(pid: int) -> bool:
    """Alive and not a zombie."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state != "Z"


def local_env(home: Path, **settings: str) -> dict[str, str]:
    """This process's environment without EDGE_*, plus a fresh home and free ports."""
    return {
        **{k: v for k, v in os.environ.items() if not k.startswith("EDGE_")},
        "EDGE_HOME": str(home),
        "EDGE_RUNTIME_PORT": str(free_port()),
        "EDGE_PLATFORM_PORT": str(free_port()),
        **settings,
    }


class Foreground:
    """`edge <args>` running in the foreground as a user would, in its own session.

    Its output is collected line by line; the whole process group is killed on exit.
    """

    def __init__(self, args: list[str], cwd: Path, env: dict[str, str]) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "edge.cli", *args],
            cwd=cwd,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            start_new_session=True,
        )
        self.lines: list[str] = []
        stdout = self.proc.stdout
        assert stdout is not None
        self._reader = threading.Thread(
            target=lambda: self.lines.extend(iter(stdout.readline, "")), daemon=True
        )
        self._reader.start()

    @property
    def output(self) -> str:
        return "".join(self.lines)

    def wait_for_line(self, text: str, timeout: float) -> None:
        wait_for(
            lambda: any(text in line for line in self.lines),
            timeout=timeout,
            message=f"{text!r} in the output",
        )

    def interrupt(self, timeout: float = 60) -> int:
        """Ctrl-C, as a terminal sends it to the whole group; returns the exit code."""
        os.killpg(self.proc.pid, signal.SIGINT)
        return self.proc.wait(timeout=timeout)

    def __enter__(self) -> Foreground:
        return self

    def __exit__(self, *exc: object) -> None:
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait()
        # edge up's children (process groups of their own) stop when it dies; the
        # output ends when the last of them has.
        self._reader.join(timeout=60)
        if self.proc.stdout:
            self.proc.stdout.close()
