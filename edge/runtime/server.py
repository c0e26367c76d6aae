"""``edge runtime``: function traffic under gunicorn's asgi worker (uvloop).

The composition root of a runtime worker: :func:`load_app` runs in each worker
after the fork and builds its Redis client, pools, V8 host and
:class:`~edge.runtime.worker.Worker`. What to serve comes from a
:class:`~edge.snapshot.RoutingSource` made by the ``source`` factory the caller
passes in (the control plane's store, in ``edge runtime``), so the runtime
never imports the control plane.
"""

from __future__ import annotations

import gc
import os
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from edge.config import Config
from edge.egress import EgressPolicy
from edge.kvstore import Limits as KVLimits
from edge.logstream import LogWriter, platform_event
from edge.runtime import firewall
from edge.runtime.connection import worker_class
from edge.runtime.invocation import FunctionVersion
from edge.runtime.python.cgroups import AppLimits, Cgroups
from edge.runtime.scrape import metrics_binds
from edge.serving import serve
from edge.snapshot import RoutingSource

if TYPE_CHECKING:
    from edge.runtime.fallback import Fallback
    from edge.runtime.js.client import HostCall, V8Hosts
    from edge.runtime.kv import KVService
    from edge.runtime.registry import PoolRegistry
    from edge.runtime.worker import Worker

SourceFactory = Callable[[Config], RoutingSource]


def load_app(config: Config, source: SourceFactory) -> object:
    """Build one worker's app: its own routing source, Redis client, pools and worker state."""
    from edge.runtime.app import create_app  # noqa: PLC0415 - built in each worker
    from edge.runtime.fetcher import Fetcher  # noqa: PLC0415
    from edge.runtime.js.bindings import JsBindings  # noqa: PLC0415
    from edge.runtime.kv import KVService  # noqa: PLC0415
    from edge.runtime.worker import Worker, async_redis  # noqa: PLC0415

    redis = async_redis(config.redis_url)
    logs = LogWriter(redis, config.log_stream_len)
    worker: Worker | None = None

    def count(version: FunctionVersion, name: str) -> None:
        if worker is not None:
            worker.metrics.count(version, name)

    kv = KVService(redis, kv_limits(config), count)
    bindings = JsBindings(kv, Fetcher(egress_policy(config), count), config.kv_max_value_bytes)
    pools, v8hosts = build_pools(config, logs, kv, bindings.call)
    worker = Worker(config, source(config), redis, pools, closing=[v8hosts.close], logs=logs)
    worker.fallback = build_fallback(config, worker)
    app = create_app(config, worker)
    # What the worker has built by now lives as long as it does: out of the
    # collector's reach, a full collection scans the objects requests make, not
    # ~100,000 of startup's (measured under wrk: 40-47 ms per full collection,
    # every worker's connections stalled, against ~2 ms frozen).
    gc.freeze()
    return app


def build_fallback(config: Config, worker: Worker) -> Fallback:
    """Cross-region forwarding with the worker's one pooled HTTP client."""
    import httpx  # noqa: PLC0415 - built in each worker

    from edge.runtime.fallback import Fallback  # noqa: PLC0415

    client = httpx.AsyncClient(
        limits=httpx.Limits(max_connections=200, max_keepalive_connections=50),
        follow_redirects=False,
        trust_env=False,  # APPSEC: node to node traffic never goes through a proxy from env
    )
    client.headers = httpx.Headers()  # forward the client's headers, and only them
    return Fallback(config.region, worker.node_name, client, worker.redis, worker.keyring)


def egress_policy(config: Config) -> EgressPolicy:
    """``EDGE_EGRESS_ALLOW``, and never this platform's Redis or control plane."""
    plane = (config.platform_url, config.bind, config.platform_port)
    return EgressPolicy.for_platform(config.egress_allow, config.redis_url, *plane)


def kv_limits(config: Config) -> KVLimits:
    return KVLimits(config.kv_max_value_bytes, config.kv_max_bytes)


def build_pools(
    config: Config,
    logs: LogWriter,
    kv: KVService | None = None,
    host_call: HostCall | None = None,
) -> tuple[PoolRegistry, V8Hosts]:
    """The worker's pool registry and the V8 hosts (one per app) of its JavaScript pools."""
    from edge.runtime.js.client import V8Hosts  # noqa: PLC0415
    from edge.runtime.js.pool import JsPool  # noqa: PLC0415
    from edge.runtime.python.client import Zygote  # noqa: PLC0415
    from edge.runtime.registry import PoolRegistry  # noqa: PLC0415

    hosts = V8Hosts(host_call)
    cgroups = install_cgroups(config)
    cgroups.sweep_dead_workers()  # what a SIGKILLed worker before us left behind

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
        js_factory=lambda version: JsPool(
            version, hosts.for_app(version.app, version.uid), config.max_response_bytes
        ),
        on_evict=evicted,
        max_response=config.max_response_bytes,
        cgroups=cgroups,
        kv=kv,
        parallel=max(1, len(os.sched_getaffinity(0)) // config.runtime_workers),
    )
    return pools, hosts


def install_cgroups(config: Config) -> Cgroups:
    """This install's cgroups on this node, with every app's CPU quota and pids limit."""
    limits = AppLimits(cpu_ms=config.app_cpu_ms, pids=config.app_pids)
    return Cgroups.for_host(Path(config.cgroup_root), config.function_uid_base, limits)


def sweep(config: Config) -> None:
    """Kill every function process of this install (cgroups, else by uid).

    APPSEC: a function's daemons must not outlive the runtime, nor survive a
    crash of it into the next start.
    """
    install_cgroups(config).sweep()


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
    sweep(config)
    hooks = (
        {"pre_fork": pre_fork, "post_fork": post_fork} if pin_cpus(config.runtime_workers) else {}
    )
    master = os.getpid()
    try:
        with firewall.installed(config, egress_policy(config)):
            _serve(config, source, hooks)
    finally:
        # gunicorn's workers are forked in _serve() and leave by SystemExit, up
        # through this frame: only the master may sweep the node's functions
        # (a worker's exit killed every other worker's templates).
        if os.getpid() == master:
            sweep(config)


def _serve(config: Config, source: SourceFactory, hooks: dict[str, Any]) -> None:
    serve(
        lambda: load_app(config, source),
        {
            **hooks,
            "bind": [f"{config.bind}:{config.runtime_port}", *metrics_binds(config)],
            "workers": config.runtime_workers,
            # gunicorn's asgi worker with send and header timeouts (edge.runtime.connection)
            "worker_class": worker_class(config.send_timeout, config.header_timeout),
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
