"""The whole Edge platform on loopback: embedded Redis, SQLite, control plane, runtime.

Everything lives in one temporary ``EDGE_HOME``; apps are deployed by a real
``git push`` with an admin token made through the store, as a user would.
"""

from __future__ import annotations

import os
import sys
import tempfile
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple

from bench.client import free_port
from bench.gitwork import Workdir
from bench.procs import Processes, wait_ready
from bench.settings import Settings
from edge.config import Config
from edge.platform.store import Store
from edge.redisserver import RedisServer


@dataclass(frozen=True)
class EdgeStack:
    """A running platform: where it listens and how to push to it."""

    config: Config
    token: str

    @property
    def runtime_port(self) -> int:
        return self.config.runtime_port

    def host(self, app: str) -> str:
        """The production hostname of ``app``."""
        return f"{app}.{self.config.domain}"

    def remote(self, app: str) -> str:
        """The authenticated git remote URL of ``app``."""
        return f"http://x:{self.token}@127.0.0.1:{self.config.platform_port}/git/{app}.git"

    def deploy(self, workdir: Workdir, app: str, files: dict[str, str], message: str) -> None:
        """Commit ``files`` in ``workdir`` and push them to ``app``; live when it returns."""
        workdir.commit(message, files)
        workdir.push(self.remote(app))


# Runtime knobs a bench run may set for an A/B comparison (e.g. EDGE_PIN_CPUS=1).
PASSED_THROUGH = frozenset({"EDGE_PIN_CPUS"})


def node_cpu_ms() -> str:
    """The app's CPU quota: the whole node (100 per CPU), unless ``EDGE_APP_CPU_MS`` says.

    A bench node runs one app, as bare falcon does, so the app may use every
    CPU falcon may. The runtime's default (one CPU per app) is a shared node's
    cap: on this 2-CPU machine it held the realistic Python function's
    processes to 1.00 CPU (5,976 req/s x 168 us), 0.64x falcon, against 0.82x
    with the node (measured with ``bench.cpu``).
    """
    return os.environ.get("EDGE_APP_CPU_MS") or str(100 * len(os.sched_getaffinity(0)))


def stack_env(home: Path, redis_url: str, settings: Settings) -> dict[str, str]:
    """The runtime's and control plane's environment: ours minus any ``EDGE_*``, plus these."""
    inherited = {
        k: v for k, v in os.environ.items() if not k.startswith("EDGE_") or k in PASSED_THROUGH
    }
    return {
        **inherited,
        "EDGE_HOME": str(home),
        "EDGE_DATABASE_URL": f"sqlite:///{home / 'edge.db'}",
        "EDGE_REDIS_URL": redis_url,
        "EDGE_RUNTIME_PORT": str(free_port()),
        "EDGE_PLATFORM_PORT": str(free_port()),
        "EDGE_RUNTIME_WORKERS": str(settings.workers),
        "EDGE_APP_CPU_MS": node_cpu_ms(),
        "EDGE_IDLE_TTL": str(settings.idle_ttl),
        "EDGE_DEPLOY_TIMEOUT": "60",
        "EDGE_LOG_LEVEL": "WARNING",
        # bench.packages serves a wheel of its own from here; the ML example's
        # packages come from EDGE_PYTHON_INDEX_URL if set, else uv's default index.
        "EDGE_PYTHON_FIND_LINKS": str(home.parent / "wheels"),
        "EDGE_PYTHON_INDEX_URL": os.environ.get("EDGE_PYTHON_INDEX_URL", ""),
    }


def admin_token(config: Config) -> str:
    """Migrate the database and create an admin API token in it."""
    store = Store.from_url(config.database_url)
    try:
        store.migrate()
        return store.create_token("bench", admin=True)
    finally:
        store.close()


def start_edge(tmp: Path, settings: Settings, procs: Processes, cleanup: ExitStack) -> EdgeStack:
    """Start Redis, then the control plane, then the runtime; wait until both are healthy.

    Redis is stopped by ``cleanup``; the gunicorn masters (and everything they
    fork) by ``procs``.
    """
    home = tmp / "home"
    home.mkdir()
    # Function processes run as per-app users when we are root: they must be
    # able to reach their files under EDGE_HOME.
    os.chmod(tmp, 0o711)
    os.chmod(home, 0o711)
    redis = RedisServer(tmp / "redis.sock", tmp / "redis")
    redis.start()
    cleanup.callback(redis.stop)
    (tmp / "wheels").mkdir()
    env = stack_env(home, redis.url, settings)
    config = Config.from_env(env)
    token = admin_token(config)
    for side, port in (("platform", config.platform_port), ("runtime", config.runtime_port)):
        proc = procs.start(side, [sys.executable, "-m", "edge.cli", side], env=env)
        wait_ready(port, "/healthz", proc=proc)
    return EdgeStack(config, token)


class Scratch(NamedTuple):
    """What :func:`scratch_stack` yields."""

    stack: EdgeStack
    tmp: Path
    procs: Processes  # to start baselines that go with the stack


@contextmanager
def scratch_stack(settings: Settings) -> Iterator[Scratch]:
    """A platform in a temporary folder for a one-part runner (``python -m bench.X``);
    every process and the folder go on exit."""
    with ExitStack() as cleanup:
        tmp = Path(
            cleanup.enter_context(
                tempfile.TemporaryDirectory(prefix="edge-bench-", ignore_cleanup_errors=True)
            )
        )
        services = cleanup.enter_context(ExitStack())  # closed after the processes
        procs = cleanup.enter_context(Processes(tmp))
        yield Scratch(start_edge(tmp, settings, procs, services), tmp, procs)
