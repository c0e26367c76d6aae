"""Release artifacts on runtime nodes that do not share the control plane's disk.

A node looks for ``$EDGE_HOME/releases/<app>/<digest>/``; when it is missing
(another host), it fetches ``GET /v1/bundles/<app>/<digest>`` from the control
plane with its token, verifies the sha256 against the digest the store
recorded, and unpacks it read-only exactly as the control plane does.
"""

from __future__ import annotations

import logging
import urllib.error
import urllib.request
from pathlib import Path

from edge.artifacts import Artifacts
from edge.config import Config
from edge.snapshot import RoutingSnapshot

logger = logging.getLogger(__name__)

MAX_BUNDLE = 512 * 1024 * 1024


class BundleError(Exception):
    """A release bundle could not be fetched or did not match its digest."""


def node_token(config: Config) -> str | None:
    """The token a runtime node uses for the control plane (EDGE_TOKEN or admin.token)."""
    if config.token:
        return config.token
    path = config.home / "admin.token"
    return path.read_text().strip() if path.is_file() else None


def fetch_bundle(config: Config, app: str, digest: str) -> bytes:
    url = f"{config.platform_url}/v1/bundles/{app}/{digest}"
    token = node_token(config)
    if token is None:
        raise BundleError(
            f"release {app}/{digest[:12]} is not on this node and no token "
            "is configured to fetch it: set EDGE_TOKEN (an admin token)"
        )
    request = urllib.request.Request(url, headers={"Authorization": f"Bearer {token}"})  # noqa: S310
    try:
        with urllib.request.urlopen(request, timeout=60) as resp:  # noqa: S310 - operator's URL
            data: bytes = resp.read(MAX_BUNDLE + 1)
    except (urllib.error.URLError, OSError) as exc:
        raise BundleError(
            f"cannot fetch release {app}/{digest[:12]} from {config.platform_url}: {exc}"
        ) from None
    if len(data) > MAX_BUNDLE:
        raise BundleError(f"release {app}/{digest[:12]} is larger than {MAX_BUNDLE} bytes")
    return data


def ensure_local(config: Config, snapshot: RoutingSnapshot) -> dict[str, str]:
    """Fetch every live release missing on this node; returns ``{app/env: error}``."""
    artifacts = Artifacts(config.releases_dir, config.function_uid_base)
    problems: dict[str, str] = {}
    for live in snapshot.environments:
        if Path(artifacts.path(live.app, live.artifact)).is_dir():
            continue
        try:
            data = fetch_bundle(config, live.app, live.artifact)
            artifacts.install(live.artifact, data, live.app, live.app_id)
            logger.info("fetched release %s/%s", live.app, live.artifact[:12])
        except (BundleError, ValueError, OSError) as exc:
            problems[f"{live.app}/{live.environment}"] = str(exc)
    return problems
