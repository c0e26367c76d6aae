"""``edge runtime``: function traffic under gunicorn's asgi worker (uvloop)."""

from __future__ import annotations

from edge.config import Config
from edge.server import serve


def load_app(config: Config) -> object:
    """Build one worker's app: its own store engine, Redis client, pools and node."""
    from edge.platform.store import Store  # noqa: PLC0415 - built in each worker
    from edge.runtime.app import create_app  # noqa: PLC0415
    from edge.runtime.node import Node, async_redis  # noqa: PLC0415

    pools, v8host = build_pools(config)
    node = Node(config, Store.from_url(config.database_url), async_redis(config.redis_url),
                pools, closing=[v8host.close])  # type: ignore[attr-defined]
    return create_app(config, node)


def build_pools(config: Config) -> tuple[object, object]:
    """The worker's pool registry and the V8 host its JavaScript pools share."""
    from edge.runtime.isolate import JsPool, V8Host  # noqa: PLC0415
    from edge.runtime.link import Zygote  # noqa: PLC0415
    from edge.runtime.pool import Pools  # noqa: PLC0415

    host = V8Host()
    pools = Pools(Zygote, max_pools=config.max_warm_pools, idle_ttl=config.idle_ttl,
                  js_factory=lambda version: JsPool(version, host))
    return pools, host


def run(config: Config) -> None:
    config.prepare_home()
    serve(lambda: load_app(config), {
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
    })
