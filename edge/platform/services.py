"""The control plane's composition root: engines and clients, built once."""

from __future__ import annotations

import json
import os
from dataclasses import dataclass

import redis

from edge.artifacts import Artifacts
from edge.config import Config
from edge.keyring import Keyring
from edge.platform.deploy import Deployer
from edge.platform.repos import AppRepos
from edge.platform.sessions import Sessions
from edge.platform.store import Store


@dataclass
class Platform:
    """Everything a control-plane process needs, wired together."""

    config: Config
    store: Store
    redis: redis.Redis
    artifacts: Artifacts
    repos: AppRepos
    deployer: Deployer
    sessions: Sessions

    def close(self) -> None:
        self.redis.close()
        self.store.close()


def redis_client(url: str) -> redis.Redis:
    """A client with short timeouts: a down Redis must not hang a push or a request."""
    return redis.Redis.from_url(
        url, socket_timeout=5, socket_connect_timeout=2, health_check_interval=30
    )


def build_platform(config: Config) -> Platform:
    config.home.mkdir(parents=True, exist_ok=True)
    store = Store.from_url(config.database_url)
    client = redis_client(config.redis_url)
    artifacts = Artifacts(config.releases_dir, config.function_uid_base)
    repos = AppRepos(config.repos_dir, config.max_push_bytes)
    deployer = Deployer(config, store, client, artifacts, Keyring.from_config(config))
    return Platform(config, store, client, artifacts, repos, deployer, Sessions(client))


def save_settings(config: Config) -> None:
    """Write ``$EDGE_HOME/platform.json`` so git hooks run by stock git find the
    same database and Redis as the platform (readable by the platform user only)."""
    path = config.home / "platform.json"
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as handle:
        json.dump(config.to_env(), handle, indent=2)
