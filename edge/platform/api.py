"""The control plane's HTTP API under ``/v1``, and the one place errors become HTTP."""

from __future__ import annotations

import dataclasses
import json
import logging
import re
import time
from collections.abc import Iterator
from typing import Any

import falcon
import redis

from edge.errors import (
    AuthError,
    EdgeError,
    ForbiddenError,
    NotFoundError,
    TooManyRequestsError,
    UnavailableError,
)
from edge.logstream import follow_batches, read_logs
from edge.metrics import read_metrics
from edge.nodes import list_nodes
from edge.platform.auth import token_from_header
from edge.platform.dashboard import add_dashboard
from edge.platform.environments import public_url
from edge.platform.follows import FollowGate, FollowLease
from edge.platform.kvapi import add_kv_routes
from edge.platform.openapi import OPENAPI
from edge.platform.params import (
    bool_param,
    env_param,
    int_field,
    int_param,
    json_object,
    label_param,
    since_param,
)
from edge.platform.repos import check_app_name
from edge.platform.secretswap import change_secret
from edge.platform.services import Platform
from edge.platform.sessions import SESSION_COOKIE
from edge.platform.store import TokenInfo
from edge.platform.vault import check_secret_name
from edge.prometheus import PROMETHEUS_CONTENT_TYPE, prometheus_text
from edge.series import MAX_MINUTES, read_series
from edge.snapshot import PRODUCTION

logger = logging.getLogger(__name__)
STREAM_ID = re.compile(r"^[0-9]{1,20}-[0-9]{1,20}$")
MAX_VERSION = 2**31 - 1  # release versions are 32-bit integers in the store


def _identity(platform: Platform, req: falcon.Request) -> TokenInfo:
    token = token_from_header(req.get_header("Authorization"))
    identity = platform.store.authenticate(token) if token else None
    if token is None and req.method in ("GET", "HEAD"):
        # APPSEC: a dashboard session may read (the live log, the series); every
        # state change through the API still needs the token itself, so a
        # cross-site form cannot ride the cookie (which is SameSite=Strict anyway).
        found = platform.sessions.signed_in(
            req.cookies.get(SESSION_COOKIE), platform.store.authenticate_hash
        )
        identity = found[1] if found else None
    if identity is None:
        raise AuthError(
            "missing or invalid API token: send `Authorization: Bearer <token>` "
            "(create one with `edge token create`)"
        )
    return identity


def _require(platform: Platform, req: falcon.Request, app: str) -> TokenInfo:
    identity = _identity(platform, req)
    check_app_name(app)
    if not identity.can_access(app):
        raise ForbiddenError(f"token {identity.name!r} has no access to app {app!r}")
    return identity


def _jsonable(value: Any) -> Any:
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {k: _jsonable(v) for k, v in dataclasses.asdict(value).items()}
    if isinstance(value, list | tuple | frozenset | set):
        return [_jsonable(v) for v in value]
    if isinstance(value, dict):
        return {k: _jsonable(v) for k, v in value.items()}
    if hasattr(value, "isoformat"):
        return value.isoformat()
    return value


class Health:
    def __init__(self, platform: Platform) -> None:
        self.platform = platform

    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        checks = {"database": True, "redis": True}
        try:
            self.platform.store.routes_version()
        except Exception:  # any driver error means "down" here
            checks["database"] = False
        try:
            self.platform.redis.ping()
        except redis.RedisError:
            checks["redis"] = False
        resp.media = {"ok": all(checks.values()), **checks}
        resp.status = falcon.HTTP_200 if all(checks.values()) else falcon.HTTP_503


class OpenAPI:
    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        resp.media = OPENAPI


class Apps:
    def __init__(self, platform: Platform) -> None:
        self.platform = platform

    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        identity = _identity(self.platform, req)
        apps = [a for a in self.platform.store.list_apps() if identity.can_access(a.name)]
        resp.media = {"apps": _jsonable(apps)}


class Nodes:
    """``/v1/nodes``: the runtime nodes, their regions, URLs, routes versions and health."""

    def __init__(self, platform: Platform) -> None:
        self.platform = platform

    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        if not _identity(self.platform, req).admin:
            raise ForbiddenError("the node list is for operators: use an admin token")
        found = list_nodes(self.platform.redis, self.platform.deployer.keyring)
        now = time.time()
        resp.media = {
            "nodes": [
                {**node.as_dict(), "seconds_since_heartbeat": round(now - node.last_heartbeat, 1)}
                for node in found
            ]
        }


class Releases:
    def __init__(self, platform: Platform) -> None:
        self.platform = platform

    def on_get(self, req: falcon.Request, resp: falcon.Response, app: str) -> None:
        _require(self.platform, req, app)
        env = env_param(req, app) or PRODUCTION
        limit = int_param(req, "limit", 50, 1, 1000)
        self.platform.store.get_app(app)
        releases = self.platform.store.list_releases(app, env, limit=limit)
        resp.media = {"app": app, "environment": env, "releases": _jsonable(releases)}


class Rollback:
    def __init__(self, platform: Platform) -> None:
        self.platform = platform

    def on_post(self, req: falcon.Request, resp: falcon.Response, app: str) -> None:
        identity = _require(self.platform, req, app)
        body = json_object(req, {"to": "<release version, default: the previous one>"})
        to = int_field(body, "to", 1, MAX_VERSION)
        lines: list[str] = []
        release = self.platform.deployer.rollback(
            app, to=to, by=identity.name, progress=lines.append
        )
        resp.media = {
            "release": _jsonable(release),
            "progress": lines,
            "url": public_url(self.platform.config, app, PRODUCTION),
        }


class Secrets:
    """An environment's secrets: names and when they changed, never values."""

    def __init__(self, platform: Platform) -> None:
        self.platform = platform

    def on_get(self, req: falcon.Request, resp: falcon.Response, app: str) -> None:
        _require(self.platform, req, app)
        env = env_param(req, app) or PRODUCTION
        secrets = self.platform.store.list_secrets(app, env)
        resp.media = {"app": app, "environment": env, "secrets": _jsonable(secrets)}


class Secret:
    """Set (PUT ``{"value": ...}``) or unset (DELETE) one secret, then hot-swap onto it."""

    def __init__(self, platform: Platform) -> None:
        self.platform = platform

    def on_put(self, req: falcon.Request, resp: falcon.Response, app: str, name: str) -> None:
        identity = _require(self.platform, req, app)
        value = json_object(req, {"value": '"..."'}).get("value")
        if not isinstance(value, str):
            raise EdgeError('\'value\': send the secret as JSON: {"value": "..."} (a string)')
        self._change(req, resp, identity, app=app, name=name, value=value)

    def on_delete(self, req: falcon.Request, resp: falcon.Response, app: str, name: str) -> None:
        identity = _require(self.platform, req, app)
        self._change(req, resp, identity, app=app, name=name, value=None)

    def _change(
        self,
        req: falcon.Request,
        resp: falcon.Response,
        identity: TokenInfo,
        *,
        app: str,
        name: str,
        value: str | None,
    ) -> None:
        check_secret_name(name)
        env = env_param(req, app) or PRODUCTION
        lines: list[str] = []
        release = change_secret(
            self.platform.deployer, app, env, name, value, by=identity.name, progress=lines.append
        )
        resp.media = {
            "app": app,
            "environment": env,
            "name": name,
            "release": None if release is None else _jsonable(release),
            "progress": lines,
        }


class Bundle:
    """Release bundles for runtime nodes on other hosts (verified by sha256 there)."""

    def __init__(self, platform: Platform) -> None:
        self.platform = platform

    def on_get(self, req: falcon.Request, resp: falcon.Response, app: str, digest: str) -> None:
        identity = _identity(self.platform, req)
        if not identity.admin:
            raise ForbiddenError("bundles are served to runtime nodes: use an admin token")
        check_app_name(app)
        if len(digest) != 64 or not all(c in "0123456789abcdef" for c in digest):
            raise EdgeError(f"digest {digest[:80]!r}: must be 64 lowercase hex digits (a sha256)")
        path = self.platform.artifacts.bundle_path(app, digest)
        if not path.is_file():
            raise NotFoundError(f"no release bundle {digest!r}")
        resp.content_type = "application/x-tar"
        resp.data = path.read_bytes()


class Logs:
    """An app's logs; ``?follow=1`` streams new records as Server-Sent Events.

    A stream is admitted by the :class:`FollowGate` (429 past its caps), sends
    a heartbeat every second without records, and ends after
    ``EDGE_MAX_STREAM_S`` with an ``end`` event; the client reconnects with
    ``Last-Event-ID`` and misses nothing.
    """

    def __init__(self, platform: Platform, gate: FollowGate) -> None:
        self.platform = platform
        self.gate = gate

    def on_get(self, req: falcon.Request, resp: falcon.Response, app: str) -> None:
        identity = _require(self.platform, req, app)
        self.platform.store.get_app(app)
        function = label_param(req, "function")
        environment = env_param(req, app)
        follow = bool_param(req, "follow")
        resume = req.get_header("Last-Event-ID")
        if resume is not None and not STREAM_ID.match(resume):
            raise EdgeError(f"Last-Event-ID {resume[:40]!r}: expected a log record id like 1712-0")
        resume = resume if follow else None
        limit = int_param(req, "limit", 1000, 1, 10_000)
        since = since_param(req)
        records = (
            []
            if resume
            else read_logs(
                self.platform.redis,
                app,
                function=function,
                environment=environment,
                since_seconds=since,
                limit=limit,
            )
        )
        if not follow:
            resp.media = {"app": app, "records": records}
            return
        lease = self.gate.admit(identity)
        last_id = resume or (records[-1]["id"] if records else "$")
        resp.content_type = "text/event-stream"
        resp.set_header("Cache-Control", "no-store")
        resp.stream = _Leased(
            self._events(records, app, function, environment, last_id=last_id, lease=lease),
            lease,
        )

    def _events(
        self,
        backlog: list[dict[str, Any]],
        app: str,
        function: str | None,
        environment: str | None,
        *,
        last_id: str,
        lease: FollowLease,
    ) -> Iterator[bytes]:
        try:
            yield b"retry: 1000\n: following\n\n"
            for record in backlog:
                yield _sse(record)
            # A client that goes away makes the next write fail, which ends this generator.
            for batch in follow_batches(
                self.platform.redis,
                app,
                function=function,
                environment=environment,
                last_id=last_id,
            ):
                if lease.expired:
                    yield b'event: end\ndata: {"reason": "maximum stream age (EDGE_MAX_STREAM_S)'
                    yield b' reached: reconnect with Last-Event-ID"}\n\n'
                    return
                lease.renew()
                if not batch:
                    yield b": keep-alive\n\n"
                for record in batch:
                    yield _sse(record)
        finally:
            lease.release()


class _Leased:
    """A response stream that gives its follow lease back when the server closes it,
    even if it was never iterated (the client left before the first byte)."""

    def __init__(self, events: Iterator[bytes], lease: FollowLease) -> None:
        self.events = events
        self.lease = lease

    def __iter__(self) -> Iterator[bytes]:
        return self.events

    def close(self) -> None:
        try:
            close = getattr(self.events, "close", None)
            if close is not None:
                close()
        finally:
            self.lease.release()


def _sse(record: dict[str, Any]) -> bytes:
    return f"id: {record['id']}\ndata: {json.dumps(record)}\n\n".encode()


class Metrics:
    """Per-function figures of an app, aggregated over every runtime node."""

    def __init__(self, platform: Platform) -> None:
        self.platform = platform

    def on_get(self, req: falcon.Request, resp: falcon.Response, app: str) -> None:
        _require(self.platform, req, app)
        self.platform.store.get_app(app)
        rows = read_metrics(self.platform.redis, app, env_param(req, app))
        resp.media = {"app": app, "functions": rows}


class MetricsSeries:
    """Per-function, per-minute figures of an app over the last hour (up to 24 hours)."""

    def __init__(self, platform: Platform) -> None:
        self.platform = platform

    def on_get(self, req: falcon.Request, resp: falcon.Response, app: str) -> None:
        _require(self.platform, req, app)
        self.platform.store.get_app(app)
        minutes = int_param(req, "minutes", 60, 1, MAX_MINUTES)
        functions = read_series(
            self.platform.redis,
            app,
            environment=env_param(req, app),
            function=label_param(req, "function"),
            minutes=minutes,
            histogram=bool_param(req, "histogram"),
        )
        resp.media = {"app": app, "minutes": minutes, "functions": functions}


class Prometheus:
    """``/metrics``: every function's figures, cluster-wide, for Prometheus.

    APPSEC: it names every app, preview branch and function with its traffic,
    so only an admin token may read it (Prometheus's ``authorization`` setting).
    """

    def __init__(self, platform: Platform) -> None:
        self.platform = platform

    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        if not _identity(self.platform, req).admin:
            raise ForbiddenError("/metrics covers every app: use an admin token")
        try:
            resp.data = prometheus_text(self.platform.redis)
        except redis.RedisError as exc:
            raise EdgeError(f"metrics unavailable: redis unreachable ({exc})") from None
        resp.content_type = PROMETHEUS_CONTENT_TYPE


def handle_edge_error(
    req: falcon.Request, resp: falcon.Response, ex: EdgeError, params: dict[str, Any]
) -> None:
    """The one translation of platform errors to HTTP."""
    resp.status = falcon.code_to_http_status(ex.http_status)
    render = getattr(req.context, "render_error", None)
    if render is not None:  # a dashboard page: an HTML page, not JSON
        render(resp, ex)
        return
    resp.media = {"error": str(ex)}
    if isinstance(ex, TooManyRequestsError):
        resp.set_header("Retry-After", str(ex.retry_after))
    if isinstance(ex, AuthError) and not isinstance(ex, ForbiddenError):
        resp.set_header("WWW-Authenticate", 'Bearer realm="edge"')


def handle_redis_error(
    req: falcon.Request, resp: falcon.Response, ex: redis.RedisError, params: dict[str, Any]
) -> None:
    """Redis down: 503 with the reason (the store's answers need no Redis)."""
    logger.warning("request %s %s failed: Redis unreachable (%s)", req.method, req.path, ex)
    handle_edge_error(
        req, resp, UnavailableError(f"Redis is unreachable ({ex}); try again shortly"), params
    )


def create_api(platform: Platform) -> falcon.App:
    app = falcon.App()
    app.add_error_handler(EdgeError, handle_edge_error)
    app.add_error_handler(redis.RedisError, handle_redis_error)
    app.add_route("/healthz", Health(platform))
    app.add_route("/v1/openapi.json", OpenAPI())
    app.add_route("/v1/apps", Apps(platform))
    app.add_route("/v1/nodes", Nodes(platform))
    app.add_route("/v1/apps/{app}/releases", Releases(platform))
    app.add_route("/v1/apps/{app}/rollback", Rollback(platform))
    app.add_route("/v1/apps/{app}/secrets", Secrets(platform))
    app.add_route("/v1/apps/{app}/secrets/{name}", Secret(platform))
    add_kv_routes(app, platform, _require)
    app.add_route("/v1/bundles/{app}/{digest}", Bundle(platform))
    config = platform.config
    gate = FollowGate(
        platform.redis, config.max_follows, config.max_follows_per_token, config.max_stream_s
    )
    app.add_route("/v1/apps/{app}/logs", Logs(platform, gate))
    app.add_route("/v1/apps/{app}/metrics", Metrics(platform))
    app.add_route("/v1/apps/{app}/metrics/series", MetricsSeries(platform))
    app.add_route("/metrics", Prometheus(platform))
    add_dashboard(app, platform)
    return app
