"""All configuration, read once from ``EDGE_*`` environment variables.

Every process builds one :class:`Config` in its composition root and passes it
down; nothing else reads the environment. The defaults make ``make run`` work on
a fresh machine: state under ``./.edge``, SQLite, an embedded Redis on a Unix
socket, loopback ports 8080 (runtime) and 8081 (control plane).
"""

from __future__ import annotations

import functools
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from edge.errors import ConfigError
from edge.packages import Environments, Settings
from edge.uids import FUNCTION_ID_BASE, reserve_base

MIB = 1024 * 1024


def _int(environ: Mapping[str, str], name: str, default: int, low: int, high: int) -> int:
    raw = environ.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        raise ConfigError(f"{name}={raw!r}: must be a whole number") from None
    if not low <= value <= high:
        raise ConfigError(f"{name}={value}: must be between {low} and {high}")
    return value


def _float(environ: Mapping[str, str], name: str, default: float) -> float:
    raw = environ.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = float(raw)
    except ValueError:
        raise ConfigError(f"{name}={raw!r}: must be a number of seconds") from None
    if value < 0:
        raise ConfigError(f"{name}={value}: must not be negative")
    return value


def _host_port(environ: Mapping[str, str], name: str) -> tuple[str, int] | None:
    raw = environ.get(name) or ""
    if not raw:
        return None
    host, sep, port = raw.rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 < int(port) <= 65535:
        raise ConfigError(f"{name}={raw!r}: must be host:port, e.g. 127.0.0.1:9090")
    return host.strip("[]"), int(port)


def _url(environ: Mapping[str, str], name: str, default: str) -> str:
    raw = (environ.get(name) or "").strip().rstrip("/")
    if not raw:
        return default
    scheme, _, rest = raw.partition("://")
    if scheme not in ("http", "https") or not rest or "/" in rest:
        raise ConfigError(
            f"{name}={raw!r}: must be a base URL like http://10.0.0.5:8080 "
            "(scheme http or https, a host, an optional port, no path)"
        )
    return raw


def _egress_allow(raw: str) -> str:
    from edge.egress import parse_allow  # noqa: PLC0415 - only to validate it early

    parse_allow(raw)  # ConfigError names the bad entry
    return raw


@dataclass(frozen=True)
class Config:
    """The settings of one platform or runtime process.

    Attributes mirror the environment variables documented in the README.
    """

    home: Path
    database_url: str
    redis_url: str
    domain: str = "edge.localhost"
    region: str = "us-east"
    bind: str = "127.0.0.1"
    runtime_port: int = 8080
    platform_port: int = 8081
    platform_url: str = "http://127.0.0.1:8081"
    public_url: str = "http://127.0.0.1:8080"
    max_memory_mb: int = 512
    max_push_bytes: int = 100 * MIB
    max_body_bytes: int = 10 * MIB
    max_release_bytes: int = 512 * MIB
    max_file_bytes: int = 100 * MIB
    keep_releases: int = 20
    max_stream_s: float = 300.0
    max_follows: int = 8
    max_follows_per_token: int = 4
    max_response_bytes: int = 32 * MIB
    send_timeout: float = 30.0
    header_timeout: float = 10.0
    deploy_timeout: float = 10.0
    runtime_workers: int = 2
    idle_ttl: float = 300.0
    max_warm_pools: int = 50
    log_stream_len: int = 10_000
    access_log: str = ""
    token: str = ""
    python_index_url: str = ""
    python_find_links: str = ""
    max_env_mb: int = 2048
    env_install_timeout: float = 600.0
    kv_max_value_bytes: int = 1 * MIB
    kv_max_bytes: int = 100 * MIB
    egress_allow: str = ""
    # APPSEC: never in a repr (a logged Config must not carry the platform key).
    secret_key: str = field(default="", repr=False)
    uid_base: int = 0
    metrics_bind: tuple[str, int] | None = None
    cgroup_root: str = "/sys/fs/cgroup"
    app_cpu_ms: int = 100
    app_pids: int = 256

    @property
    def repos_dir(self) -> Path:
        return self.home / "repos"

    @property
    def releases_dir(self) -> Path:
        return self.home / "releases"

    @property
    def envs_dir(self) -> Path:
        """Python package environments, one read-only folder per digest (``edge.packages``)."""
        return self.home / "envs"

    def package_environments(self) -> Environments:
        """The package environments of this home, with the index settings and limits."""
        settings = Settings(
            index_url=self.python_index_url,
            find_links=self.python_find_links,
            max_mb=self.max_env_mb,
            timeout_s=self.env_install_timeout,
        )
        return Environments(self.envs_dir, settings, cache=self.home / "cache" / "uv")

    @property
    def redis_socket(self) -> Path:
        """Where ``edge up`` puts the embedded Redis server's Unix socket."""
        return self.home / "redis.sock"

    @property
    def embedded_redis(self) -> bool:
        return self.redis_url == f"unix://{self.redis_socket}"

    @functools.cached_property
    def function_uid_base(self) -> int:
        """This install's block of function uids (:mod:`edge.uids`).

        Reserved in the host's registry on first use when running as root
        (raising :class:`ConfigError` if ``EDGE_UID_BASE`` overlaps another
        install); without root there is no uid separation and no registry.
        """
        if os.geteuid() != 0:
            return FUNCTION_ID_BASE
        return reserve_base(self.home, self.uid_base)

    def prepare_home(self) -> None:
        """Create ``EDGE_HOME`` for a platform or runtime process, privately.

        APPSEC: every file the platform creates from here on (the database and
        its WAL, tokens, logs, repositories) is private to the platform user
        (umask 077). The home itself is traversable but not listable (0711), so
        a function's uid can reach its own release folder by path and nothing else.
        """
        os.umask(0o077)
        self.home.mkdir(parents=True, exist_ok=True)
        os.chmod(self.home, 0o711)  # noqa: S103 - see the APPSEC note above
        _ = self.function_uid_base  # refuse to start on an overlapping uid block

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Config:
        """Build the configuration from ``EDGE_*`` variables (``os.environ`` by default)."""
        env = os.environ if environ is None else environ
        home = Path(env.get("EDGE_HOME") or ".edge").expanduser().resolve()
        platform_port = _int(env, "EDGE_PLATFORM_PORT", 8081, 0, 65535)
        runtime_port = _int(env, "EDGE_RUNTIME_PORT", 8080, 0, 65535)
        bind = env.get("EDGE_BIND") or "127.0.0.1"
        local = "127.0.0.1" if bind in ("0.0.0.0", "::") else bind  # noqa: S104
        config = cls(
            home=home,
            database_url=env.get("EDGE_DATABASE_URL") or f"sqlite:///{home / 'edge.db'}",
            redis_url=env.get("EDGE_REDIS_URL") or f"unix://{home / 'redis.sock'}",
            domain=(env.get("EDGE_DOMAIN") or "edge.localhost").lower().strip("."),
            region=env.get("EDGE_REGION") or "us-east",
            bind=bind,
            runtime_port=runtime_port,
            platform_port=platform_port,
            platform_url=env.get("EDGE_PLATFORM_URL") or f"http://{local}:{platform_port}",
            public_url=_url(env, "EDGE_PUBLIC_URL", f"http://{local}:{runtime_port}"),
            max_memory_mb=_int(env, "EDGE_MAX_MEMORY_MB", 512, 16, 1 << 20),
            max_push_bytes=_int(env, "EDGE_MAX_PUSH_MB", 100, 1, 1 << 20) * MIB,
            max_body_bytes=_int(env, "EDGE_MAX_BODY_MB", 10, 1, 1 << 20) * MIB,
            max_release_bytes=_int(env, "EDGE_MAX_RELEASE_MB", 512, 1, 1 << 20) * MIB,
            max_file_bytes=_int(env, "EDGE_MAX_FILE_MB", 100, 1, 1 << 20) * MIB,
            keep_releases=_int(env, "EDGE_KEEP_RELEASES", 20, 1, 100_000),
            max_stream_s=_float(env, "EDGE_MAX_STREAM_S", 300.0),
            # A control-plane worker has 16 threads: some must stay for git and the API.
            max_follows=_int(env, "EDGE_MAX_FOLLOWS", 8, 1, 12),
            max_follows_per_token=_int(env, "EDGE_MAX_FOLLOWS_PER_TOKEN", 4, 1, 100_000),
            max_response_bytes=_int(env, "EDGE_MAX_RESPONSE_MB", 32, 1, 48) * MIB,
            send_timeout=_float(env, "EDGE_SEND_TIMEOUT_S", 30.0),
            header_timeout=_float(env, "EDGE_HEADER_TIMEOUT_S", 10.0),
            deploy_timeout=_float(env, "EDGE_DEPLOY_TIMEOUT", 10.0),
            runtime_workers=_int(env, "EDGE_RUNTIME_WORKERS", 2, 1, 256),
            idle_ttl=_float(env, "EDGE_IDLE_TTL", 300.0),
            max_warm_pools=_int(env, "EDGE_MAX_WARM_POOLS", 50, 1, 100_000),
            log_stream_len=_int(env, "EDGE_LOG_STREAM_LEN", 10_000, 10, 10_000_000),
            access_log=env.get("EDGE_ACCESS_LOG") or str(home / "logs" / "access.log"),
            token=env.get("EDGE_TOKEN") or "",
            python_index_url=env.get("EDGE_PYTHON_INDEX_URL") or "",
            python_find_links=env.get("EDGE_PYTHON_FIND_LINKS") or "",
            max_env_mb=_int(env, "EDGE_MAX_ENV_MB", 2048, 1, 1 << 20),
            env_install_timeout=_float(env, "EDGE_ENV_INSTALL_TIMEOUT", 600.0),
            kv_max_value_bytes=_int(env, "EDGE_KV_MAX_VALUE_MB", 1, 1, 512) * MIB,
            kv_max_bytes=_int(env, "EDGE_KV_MAX_MB", 100, 1, 1 << 20) * MIB,
            egress_allow=_egress_allow(env.get("EDGE_EGRESS_ALLOW") or ""),
            secret_key=env.get("EDGE_SECRET_KEY") or "",
            uid_base=_int(env, "EDGE_UID_BASE", 0, 0, 2**31),
            metrics_bind=_host_port(env, "EDGE_METRICS_BIND"),
            cgroup_root=env.get("EDGE_CGROUP_ROOT") or "/sys/fs/cgroup",
            app_cpu_ms=_int(env, "EDGE_APP_CPU_MS", 100, 1, 1_000_000),
            app_pids=_int(env, "EDGE_APP_PIDS", 256, 8, 1 << 22),
        )
        if config.metrics_bind and config.metrics_bind[1] in (runtime_port, platform_port):
            # The metrics socket is told apart by its port: it must have its own.
            raise ConfigError(
                f"EDGE_METRICS_BIND={env['EDGE_METRICS_BIND']!r}: its port must differ from "
                f"EDGE_RUNTIME_PORT ({runtime_port}) and EDGE_PLATFORM_PORT ({platform_port})"
            )
        return config

    def to_env(self) -> dict[str, str]:
        """The ``EDGE_*`` variables that reproduce this configuration in a child process."""
        key = {"EDGE_SECRET_KEY": self.secret_key} if self.secret_key else {}
        uids = {"EDGE_UID_BASE": str(self.uid_base)} if self.uid_base else {}
        metrics = (
            {"EDGE_METRICS_BIND": "{}:{}".format(*self.metrics_bind)} if self.metrics_bind else {}
        )
        return {
            **key,
            **uids,
            **metrics,
            "EDGE_HOME": str(self.home),
            "EDGE_DATABASE_URL": self.database_url,
            "EDGE_REDIS_URL": self.redis_url,
            "EDGE_DOMAIN": self.domain,
            "EDGE_REGION": self.region,
            "EDGE_BIND": self.bind,
            "EDGE_RUNTIME_PORT": str(self.runtime_port),
            "EDGE_PLATFORM_PORT": str(self.platform_port),
            "EDGE_PLATFORM_URL": self.platform_url,
            "EDGE_PUBLIC_URL": self.public_url,
            "EDGE_MAX_MEMORY_MB": str(self.max_memory_mb),
            "EDGE_MAX_PUSH_MB": str(self.max_push_bytes // MIB),
            "EDGE_MAX_BODY_MB": str(self.max_body_bytes // MIB),
            "EDGE_MAX_RELEASE_MB": str(self.max_release_bytes // MIB),
            "EDGE_MAX_FILE_MB": str(self.max_file_bytes // MIB),
            "EDGE_KEEP_RELEASES": str(self.keep_releases),
            "EDGE_MAX_STREAM_S": str(self.max_stream_s),
            "EDGE_MAX_FOLLOWS": str(self.max_follows),
            "EDGE_MAX_FOLLOWS_PER_TOKEN": str(self.max_follows_per_token),
            "EDGE_MAX_RESPONSE_MB": str(self.max_response_bytes // MIB),
            "EDGE_SEND_TIMEOUT_S": str(self.send_timeout),
            "EDGE_HEADER_TIMEOUT_S": str(self.header_timeout),
            "EDGE_DEPLOY_TIMEOUT": str(self.deploy_timeout),
            "EDGE_RUNTIME_WORKERS": str(self.runtime_workers),
            "EDGE_IDLE_TTL": str(self.idle_ttl),
            "EDGE_MAX_WARM_POOLS": str(self.max_warm_pools),
            "EDGE_LOG_STREAM_LEN": str(self.log_stream_len),
            "EDGE_ACCESS_LOG": self.access_log,
            "EDGE_PYTHON_INDEX_URL": self.python_index_url,
            "EDGE_PYTHON_FIND_LINKS": self.python_find_links,
            "EDGE_MAX_ENV_MB": str(self.max_env_mb),
            "EDGE_ENV_INSTALL_TIMEOUT": str(self.env_install_timeout),
            "EDGE_CGROUP_ROOT": self.cgroup_root,
            "EDGE_APP_CPU_MS": str(self.app_cpu_ms),
            "EDGE_APP_PIDS": str(self.app_pids),
            "EDGE_KV_MAX_VALUE_MB": str(self.kv_max_value_bytes // MIB),
            "EDGE_KV_MAX_MB": str(self.kv_max_bytes // MIB),
            "EDGE_EGRESS_ALLOW": self.egress_allow,
        }
