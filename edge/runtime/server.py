"""``edge runtime``: function traffic under gunicorn's asgi worker (uvloop).

The composition root of a runtime worker: :func:`load_app` runs in each worker
after the fork and builds its Redis client, pools, V8 host and
:class:`~edge.runtime.worker.Worker`. What to serve comes from a
:class:`~edge.snapshot.RoutingSource` made by the ``source`` factory the caller
passes in (the control plane's store, in ``edge runtime``), so the runtime
never imports the control plane.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from edge.config import Config
from edge.logstream import LogWriter, platform_event
from edge.runtime.invocation import FunctionVersion
from edge.serving import serve
from edge.snapshot import RoutingSource

if TYPE_CHECKING:
    from edge.runtime.js.client import V8Hosts
    from edge.runtime.registry import PoolRegistry

SourceFactory = Callable[[Config], RoutingSource]


def load_app(config: Config, source: SourceFactory) -> object:
    """Build one worker's app: its own routing source, Redis client, pools and worker state."""
    from edge.runtime.app import create_app  # noqa: PLC0415 - built in each worker
    from edge.runtime.worker import Worker, async_redis  # noqa: PLC0415

    redis = async_redis(config.redis_url)
    logs = LogWriter(redis, config.log_stream_len)
    pools, v8hosts = build_pools(config, logs)
    worker = Worker(config, source(config), redis, pools, closing=[v8hosts.close], logs=logs)
    return create_app(config, worker)


def build_pools(config: Config, logs: LogWriter) -> tuple[PoolRegistry, V8Hosts]:
    """The worker's pool registry and the V8 hosts (one per app) of its JavaScript pools."""
    from edge.runtime.js.client import V8Hosts  # noqa: PLC0415
    from edge.runtime.js.pool import JsPool  # noqa: PLC0415
    from edge.runtime.python.client import Zygote  # noqa: PLC0415
    from edge.runtime.registry import PoolRegistry  # noqa: PLC0415

    hosts = V8Hosts()

    def evicted(version: FunctionVersion) -> None:
        logs.emit(
            platform_event(
                version.app,
                version.environment,
                f"warm pool of {version.name} evicted "
                f"(over EDGE_MAX_WARM_POOLS={config.max_warm_pools}); its next request starts cold",
                release=version.release,
                function=version.name,
            )
        )

    pools = PoolRegistry(
        Zygote,
        max_pools=config.max_warm_pools,
        idle_ttl=config.idle_ttl,
        js_factory=lambda version: JsPool(version, hosts.for_app(version.app, version.uid)),
        on_evict=evicted,
    )
    return pools, hosts


def pin_cpus(workers: int) -> bool:
    """Whether to pin each worker (and the function processes it starts) to one CPU.

    A request crosses from the worker to a function process and back; on the
    same CPU that hand-off is a cheaper wake-up (measured: +6% req/s, p99 13.7 ->
    10.6 ms for hello on 2 CPUs). Off by default (``EDGE_PIN_CPUS=1`` turns it
    on, given at least as many CPUs as workers): pinned, a function that spins
    until its timeout shares its worker's CPU, slowing that worker's other
    requests, where unpinned the scheduler moves the worker away.
    """
    wanted = os.environ.get("EDGE_PIN_CPUS", "0") == "1"
    return wanted and workers <= len(os.sched_getaffinity(0))


def pre_fork(server: Any, worker: Any) -> None:
    """In the master: give the new worker a CPU no live worker is pinned to."""
    cpus = sorted(os.sched_getaffinity(0))
    taken = [getattr(w, "edge_cpu", None) for w in server.WORKERS.values()]
    worker.edge_cpu = next((c for c in cpus if c not in taken), cpus[worker.age % len(cpus)])


def post_fork(server: Any, worker: Any) -> None:
    """In the worker: stay on its CPU; the zygote and V8 host it starts inherit it."""
    os.sched_setaffinity(0, {worker.edge_cpu})


def run(config: Config, source: SourceFactory) -> None:
    """Run the runtime's gunicorn master in the foreground until SIGTERM/SIGINT."""
    config.prepare_home()
    hooks = (
        {"pre_fork": pre_fork, "post_fork": post_fork} if pin_cpus(config.runtime_workers) else {}
    )
    serve(
        lambda: load_app(config, source),
        {
            **hooks,
            "bind": f"{config.bind}:{config.runtime_port}",
            "workers": config.runtime_workers,
            "worker_class": "asgi",
            "worker_connections": 2000,
            "backlog": 2048,
            "timeout": 60,
            "graceful_timeout": 35,  # > the 30 s function timeout: in-flight requests finish
            "keepalive": 5,
            "accesslog": None,
            "loglevel": "warning",
            "proc_name": "edge-runtime",
            "reuse_port": True,
        },
    )
