"""``edge runtime``: function traffic under gunicorn's asgi worker (uvloop)."""

from __future__ import annotations

from edge.config import Config
from edge.server import serve


def load_app(config: Config) -> object:
    """Build one worker's app: its own store engine, Redis client, pools and node."""
    from edge.platform.store import Store  # noqa: PLC0415 - built in each worker
    from edge.runtime.app import create_app  # noqa: PLC0415
    from edge.runtime.node import Node, async_redis  # noqa: PLC0415

    node = Node(config, Store.from_url(config.database_url), async_redis(config.redis_url),
                build_pools(config))
    return create_app(config, node)


def build_pools(config: Config) -> object:
    raise NotImplementedError


def run(config: Config) -> None:
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
