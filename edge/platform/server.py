"""``edge platform``: the control plane (git + API) under gunicorn."""

from __future__ import annotations

import logging

from edge.config import Config
from edge.serving import serve

logger = logging.getLogger(__name__)


def load_app(config: Config) -> object:
    from edge.platform.app import create_app  # noqa: PLC0415 - built in each worker
    from edge.platform.services import build_platform  # noqa: PLC0415

    return create_app(build_platform(config))


def run(config: Config, workers: int = 2) -> None:
    """Migrate the store, then serve on EDGE_BIND:EDGE_PLATFORM_PORT.

    gthread workers: a push holds its request while it waits for the runtime
    to acknowledge, and log tails stream; threads keep the rest responsive.
    """
    from edge.platform.services import save_settings  # noqa: PLC0415
    from edge.platform.store import Store  # noqa: PLC0415

    config.prepare_home()
    store = Store.from_url(config.database_url)
    store.migrate()
    store.close()
    save_settings(config)
    serve(
        lambda: load_app(config),
        {
            "bind": f"{config.bind}:{config.platform_port}",
            "workers": workers,
            "worker_class": "gthread",
            "threads": 16,
            "timeout": 120,
            "graceful_timeout": 30,
            "keepalive": 5,
            "accesslog": None,
            "loglevel": "warning",
            "proc_name": "edge-platform",
            "limit_request_line": 8190,
        },
    )
