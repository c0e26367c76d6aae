"""The route table: an immutable snapshot of what a runtime node serves.

Built from the store's routing snapshot on every deploy event and swapped in by
reference; requests in flight keep the table they started with.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from edge.config import Config
from edge.routes import RoutePattern, Router, parse_route
from edge.runtime.invocation import FunctionVersion
from edge.snapshot import FunctionRecord, RoutingSnapshot, site_host
from edge.uids import function_ids


@dataclass(frozen=True)
class Target:
    """A function as a route resolves to it.

    Attributes:
        version: the pool identity, or ``None`` when the function does not run
            in this node's region.
        regions: where the function runs (for the 404 message elsewhere).
    """

    name: str
    version: FunctionVersion | None
    regions: tuple[str, ...]
    release: int


@dataclass(frozen=True)
class Site:
    """One app environment reachable at one host name."""

    app: str
    environment: str
    release: int
    router: Router[Target]
    targets: tuple[Target, ...]
    release_id: int = 0


class RouteTable:
    """Host -> :class:`Site`, and through its router, path -> :class:`Target`."""

    __slots__ = ("sites", "version")

    def __init__(self, version: int, sites: dict[str, Site]) -> None:
        self.version = version
        self.sites = sites

    @classmethod
    def empty(cls) -> RouteTable:
        return cls(0, {})

    def site(self, host: str) -> Site | None:
        return self.sites.get(host)

    def versions(self) -> dict[str, FunctionVersion]:
        """Every function version this node must run, by pool key."""
        found: dict[str, FunctionVersion] = {}
        for site in self.sites.values():
            for target in site.targets:
                if target.version is not None:
                    found[target.version.key] = target.version
        return found

    @classmethod
    def build(
        cls, snapshot: RoutingSnapshot, config: Config, previous: RouteTable | None = None
    ) -> RouteTable:
        """The table of ``snapshot``; a site whose release is unchanged since
        ``previous`` is taken over as it is (parsing thousands of route patterns
        on every deploy would stall the worker's loop)."""
        sites: dict[str, Site] = {}
        for live in snapshot.environments:
            host = site_host(live.app, live.environment, config.domain)
            kept = previous.sites.get(host) if previous is not None else None
            if kept is not None and kept.release_id == live.release_id:
                sites[host] = kept
                continue
            entries: list[tuple[RoutePattern, Target]] = []
            targets = []
            for record in live.functions:
                target = _target(
                    record,
                    app=live.app,
                    uid=function_ids(live.app, live.app_id, config.function_uid_base)[0],
                    environment=live.environment,
                    release=live.version,
                    region=config.region,
                    root=config.releases_dir / live.app / live.artifact,
                    packages=config.envs_dir / live.packages if live.packages else None,
                )
                targets.append(target)
                entries.extend((parse_route(text), target) for text in record.routes)
            sites[host] = Site(
                live.app,
                live.environment,
                live.version,
                Router(entries),
                tuple(targets),
                live.release_id,
            )
        return cls(snapshot.version, sites)


def _target(
    record: FunctionRecord,
    *,
    app: str,
    uid: int,
    environment: str,
    release: int,
    root: Path,
    region: str,
    packages: Path | None = None,
) -> Target:
    regions = tuple(record.regions)
    version = None
    if region in regions:
        version = FunctionVersion(
            # The environment is part of the identity: a preview with the same code as
            # production must not share its pool (KV namespace, logs, metrics).
            key=f"{app}:{environment}:{record.content_hash}",
            app=app,
            environment=environment,
            release=release,
            name=record.name,
            runtime=record.runtime,
            root=root,
            path=record.path,
            handler=record.handler,
            env=dict(record.env),
            memory_mb=record.memory_mb,
            timeout_ms=record.timeout_ms,
            min_warm=record.min_warm,
            max_instances=record.max_instances,
            uid=uid,
            packages=packages,
            kind=record.kind,
        )
    return Target(record.name, version, regions, release)
