"""Who may read a runtime node's ``/metrics``.

APPSEC: ``/metrics`` names every app, preview branch and function of the node
with its traffic, so the function port (open to anyone who may call a
function) serves it only to a bearer of the node's token (``EDGE_TOKEN`` or
``$EDGE_HOME/admin.token``). ``EDGE_METRICS_BIND=host:port`` adds a socket
meant for a private network: it serves ``/metrics`` and ``/healthz`` without a
token, and no function traffic.
"""

from __future__ import annotations

import hmac
from collections.abc import Mapping
from typing import Any

from edge.config import Config
from edge.runtime.bundles import node_token

SCRAPE_PATHS = frozenset({"/metrics", "/healthz"})


def metrics_binds(config: Config) -> list[str]:
    """The extra gunicorn bind of ``EDGE_METRICS_BIND``, if set (IPv6 in brackets)."""
    if config.metrics_bind is None:
        return []
    host, port = config.metrics_bind
    return [f"[{host}]:{port}" if ":" in host else f"{host}:{port}"]


def on_metrics_socket(scope: Mapping[str, Any], config: Config) -> bool:
    """Whether the request came in on the ``EDGE_METRICS_BIND`` socket.

    The ASGI scope's ``server`` is the accepting socket's own address; its port
    tells the two sockets apart (they cannot share one).
    """
    if config.metrics_bind is None:
        return False
    server = scope.get("server") or (None, None)
    return bool(server[1] == config.metrics_bind[1])


def bearer_allowed(authorization: str | None, config: Config) -> bool:
    """Whether ``Authorization: Bearer <token>`` carries the node's token."""
    token = node_token(config)
    scheme, _, given = (authorization or "").partition(" ")
    if not token or scheme.lower() != "bearer":
        return False
    return hmac.compare_digest(given.strip().encode(), token.encode())
