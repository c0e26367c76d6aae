"""An app's environments by name and address: which environment a branch deploys
to, and the host and URL it is served at."""

from __future__ import annotations

import hashlib
import re

from edge.config import Config
from edge.snapshot import PRODUCTION, PRODUCTION_BRANCH, site_host


def environment_for_branch(branch: str, app: str) -> str:
    """``main`` is production; any other branch becomes a DNS-label preview name."""
    if branch == PRODUCTION_BRANCH:
        return PRODUCTION
    label = re.sub(r"-+", "-", re.sub(r"[^a-z0-9-]", "-", branch.lower())).strip("-")
    label = label[: max(1, 63 - len(app) - 2)].strip("-")
    if not label:
        label = "branch-" + hashlib.sha256(branch.encode()).hexdigest()[:8]
    return "production-preview" if label == PRODUCTION else label


def hostname(config: Config, app: str, environment: str) -> str:
    return site_host(app, environment, config.domain)


def public_url(config: Config, app: str, environment: str) -> str:
    port = "" if config.runtime_port == 80 else f":{config.runtime_port}"
    return f"http://{hostname(config, app, environment)}{port}/"
