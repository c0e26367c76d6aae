"""Release artifacts on runtime nodes that do not share the control plane's disk.

A node looks for ``$EDGE_HOME/releases/<app>/<digest>/``; when it is missing
(another host), it fetches ``GET /v1/bundles/<app>/<digest>`` from the control
plane with its token, verifies the sha256 against the digest the store
recorded, and unpacks it read-only exactly as the control plane does.

A release's Python package environment (``$EDGE_HOME/envs/<digest>/``) that
the node lacks is built here, the way the control plane built it: with uv,
from the release's own ``requirements.txt`` (inside the bundle just verified),
wheels only, from the node's ``EDGE_PYTHON_INDEX_URL``/``EDGE_PYTHON_FIND_LINKS``.
The node must reach the same digest, i.e. run the same Python on the same
platform; otherwise the environment's functions fail to start and the push
says why. Building rather than fetching keeps environments (up to
``EDGE_MAX_ENV_MB``) off the control plane's links and needs no new endpoint;
pin exact versions in ``requirements.txt`` for identical packages everywhere.
"""

from __future__ import annotations

import logging
import tarfile
import urllib.error
import urllib.request
from pathlib import Path

from edge.artifacts import Artifacts
from edge.config import Config
from edge.errors import ManifestError
from edge.packages import REQUIREMENTS, env_digest, interpreter_tag
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
        try:
            if not Path(artifacts.path(live.app, live.artifact)).is_dir():
                data = fetch_bundle(config, live.app, live.artifact)
                artifacts.install(live.artifact, data, live.app, live.app_id)
                logger.info("fetched release %s/%s", live.app, live.artifact[:12])
            if live.packages and not (config.envs_dir / live.packages).is_dir():
                build_packages(config, artifacts.path(live.app, live.artifact), live.packages)
        except (BundleError, ManifestError, ValueError, OSError, tarfile.TarError) as exc:
            problems[f"{live.app}/{live.environment}"] = str(exc)
    return problems


def build_packages(config: Config, release: Path, digest: str) -> None:
    """Build the package environment ``digest`` from the release's requirements.txt.

    Raises:
        BundleError: the release has none, or this node's Python differs.
        ManifestError: uv failed (its message).
    """
    requirements = release / REQUIREMENTS
    if not requirements.is_file():
        raise BundleError(f"release {release.name[:12]} has no {REQUIREMENTS} to build from")
    data = requirements.read_bytes()
    if env_digest(data) != digest:
        raise BundleError(
            f"package environment {digest[:12]} was built for another Python "
            f"({interpreter_tag()} here); run the same Python on every node"
        )
    config.package_environments().ensure(data, lambda line: logger.info("%s", line.strip()))
