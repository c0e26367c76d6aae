"""The read contract between the control plane and the runtime.

The runtime never imports ``edge.platform``: it reads what to serve through
:class:`RoutingSource` (which the store implements, as dulwich's
``FileSystemBackend`` implements its ``Backend``) and gets plain, frozen records
back. This module also holds the few facts both planes must agree on: what
"production" is called, the host name an environment is served at, and what a
valid app or environment name (a DNS label) looks like. Pure: no I/O.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Protocol

from edge.errors import EdgeError

if TYPE_CHECKING:
    from edge.manifest import FunctionSpec

PRODUCTION = "production"
PRODUCTION_BRANCH = "main"

LABEL = re.compile(r"[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?")
LABEL_RULE = "1-63 lowercase letters, digits and '-', not starting or ending with '-'"


def is_label(name: str) -> bool:
    """Whether ``name`` is a DNS label (a valid app, environment or function name)."""
    return LABEL.fullmatch(name) is not None


def check_label(kind: str, name: str) -> None:
    """Raise :class:`EdgeError` unless ``name`` is a DNS label.

    Args:
        kind: what the name names (``"app"``, ``"environment"``), for the message.
        name: the name to check.
    """
    if not is_label(name):
        raise EdgeError(f"{kind} name {name!r} is not a DNS label ({LABEL_RULE})")


def site_host(app: str, environment: str, domain: str) -> str:
    """The host an environment is served at: ``<app>.<domain>`` or ``<env>--<app>.<domain>``."""
    if environment == PRODUCTION:
        return f"{app}.{domain}"
    return f"{environment}--{app}.{domain}"


@dataclass(frozen=True)
class FunctionRecord:
    """One function of one release, as stored and as the runtime serves it.

    Attributes:
        name, runtime, entry, path, handler: as in :class:`edge.manifest.FunctionSpec`.
        memory_mb, timeout_ms, regions, env, min_warm, max_instances: limits,
            placement, variables and pool policy.
        content_hash: identifies the function's code and configuration: equal
            hashes in two releases mean a warm pool can be kept.
        routes: the route pattern texts, in manifest order (e.g. ``"GET /a/:id"``).
        kind: a Python entry's kind: ``""`` (detected at load), ``"handler"``,
            ``"wsgi"`` or ``"asgi"``.
    """

    name: str
    runtime: str
    entry: str
    path: str
    handler: str
    memory_mb: int
    timeout_ms: int
    regions: list[str]
    env: dict[str, str] = field(repr=False)  # APPSEC: holds secrets once unsealed
    min_warm: int
    max_instances: int
    content_hash: str
    routes: tuple[str, ...] = ()
    kind: str = ""

    @classmethod
    def from_spec(cls, spec: FunctionSpec, content_hash: str) -> FunctionRecord:
        """The record of a validated manifest function."""
        return cls(
            name=spec.name,
            runtime=spec.runtime,
            entry=spec.entry,
            path=spec.path,
            handler=spec.handler,
            memory_mb=spec.memory_mb,
            timeout_ms=spec.timeout_ms,
            regions=list(spec.regions),
            env=spec.env_dict(),
            min_warm=spec.min_warm,
            max_instances=spec.max_instances,
            content_hash=content_hash,
            routes=tuple(pattern.text for pattern in spec.routes),
            kind=spec.kind,
        )


@dataclass(frozen=True)
class LiveEnvironment:
    """One environment the runtime serves, with its active release's functions.

    ``secrets`` are (name, sealed value) pairs, opened on the runtime side by
    :func:`edge.secretenv.unseal`. ``packages`` is the digest of the release's
    Python package environment (``$EDGE_HOME/envs/<digest>``), ``""`` for none.
    """

    app: str
    environment: str
    release_id: int
    version: int
    artifact: str
    functions: tuple[FunctionRecord, ...]
    app_id: int = 0
    secrets: tuple[tuple[str, str], ...] = field(default=(), repr=False)
    packages: str = ""


@dataclass(frozen=True)
class RoutingSnapshot:
    """Everything the runtime serves, as of ``routes_version`` ``version``."""

    version: int
    environments: tuple[LiveEnvironment, ...]


class RoutingSource(Protocol):
    """What the runtime reads from the control plane's store (blocking calls)."""

    def routing_snapshot(self) -> RoutingSnapshot:
        """Everything to serve now, read consistently."""
        ...

    def routes_version(self) -> int:
        """The counter bumped whenever what must be served changes (a cheap check)."""
        ...

    def close(self) -> None:
        """Release connections."""
        ...
