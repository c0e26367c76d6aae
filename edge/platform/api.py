"""The control plane's HTTP API under ``/v1``, and the one place errors become HTTP."""

from __future__ import annotations

import dataclasses
import json
import logging
import re
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
from edge.platform.auth import token_from_header
from edge.platform.dashboard import add_dashboard
from edge.platform.deploy import environment_for_branch, public_url
from edge.platform.follows import FollowGate, FollowLease
from edge.platform.kvapi import add_kv_routes
from edge.platform.openapi import OPENAPI
from edge.platform.repos import check_app_name
from edge.platform.secretswap import change_secret
from edge.platform.services import Platform
from edge.platform.sessions import SESSION_COOKIE
from edge.platform.store import TokenInfo
from edge.prometheus import PROMETHEUS_CONTENT_TYPE, prometheus_text
from edge.series import MAX_MINUTES, read_series
from edge.snapshot import PRODUCTION

logger = logging.getLogger(__name__)
STREAM_ID = re.compile(r"^[0-9]{1,20}-[0-9]{1,20}$")


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


class Releases:
    def __init__(self, platform: Platform) -> None:
        self.platform = platform

    def on_get(self, req: falcon.Request, resp: falcon.Response, app: str) -> None:
        _require(self.platform, req, app)
        env = req.get_param("env") or PRODUCTION
        limit = req.get_param_as_int("limit", min_value=1, max_value=1000) or 50
        self.platform.store.get_app(app)
        releases = self.platform.store.list_releases(app, env, limit=limit)
        resp.media = {"app": app, "environment": env, "releases": _jsonable(releases)}


class Rollback:
    def __init__(self, platform: Platform) -> None:
        self.platform = platform

    def on_post(self, req: falcon.Request, resp: falcon.Response, app: str) -> None:
        identity = _require(self.platform, req, app)
        body = req.get_media(default_when_empty={}) or {}
        to = body.get("to") if isinstance(body, dict) else None
        if to is not None and (not isinstance(to, int) or isinstance(to, bool) or to < 1):
            raise EdgeError(f"'to' must be a release version number (got {to!r})")
        lines: list[str] = []
        release = self.platform.deployer.rollback(
            app, to=to, by=identity.name, progress=lines.append
        )
        resp.media = {
            "release": _jsonable(release),
            "progress": lines,
            "url": public_url(self.platform.config, app, PRODUCTION),
        }


def _secrets_env(req: falcon.Request, app: str) -> str:
    """``?env=``: production (also ``main``), or a preview by its branch or its name."""
    raw = req.get_param("env") or PRODUCTION
    return PRODUCTION if raw in ("main", PRODUCTION) else environment_for_branch(raw, app)


class Secrets:
    """An environment's secrets: names and when they changed, never values."""

    def __init__(self, platform: Platform) -> None:
        self.platform = platform

    def on_get(self, req: falcon.Request, resp: falcon.Response, app: str) -> None:
        _require(self.platform, req, app)
        env = _secrets_env(req, app)
        secrets = self.platform.store.list_secrets(app, env)
        resp.media = {"app": app, "environment": env, "secrets": _jsonable(secrets)}


class Secret:
    """Set (PUT ``{"value": ...}``) or unset (DELETE) one secret, then hot-swap onto it."""

    def __init__(self, platform: Platform) -> None:
        self.platform = platform

    def on_put(self, req: falcon.Request, resp: falcon.Response, app: str, name: str) -> None:
        body = req.get_media(default_when_empty={}) or {}
        value = body.get("value") if isinstance(body, dict) else None
        if not isinstance(value, str):
            raise EdgeError('send the secret as JSON: {"value": "..."} (a string)')
        self._change(req, resp, app, name, value)

    def on_delete(self, req: falcon.Request, resp: falcon.Response, app: str, name: str) -> None:
        self._change(req, resp, app, name, None)

    def _change(
        self, req: falcon.Request, resp: falcon.Response, app: str, name: str, value: str | None
    ) -> None:
        identity = _require(self.platform, req, app)
        check_app_name(app)
        env = _secrets_env(req, app)
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
        path = self.platform.artifacts.bundle_path(app, digest)
        if (
            len(digest) != 64
            or not all(c in "0123456789abcdef" for c in digest)
            or not path.is_file()
        ):
            raise NotFoundError(f"no release bundle {digest!r}")
        resp.content_type = "application/x-tar"
        resp.data = path.read_bytes()


def parse_since(text: str | None) -> float | None:
    """``"90s"``, ``"10m"``, ``"2h"``, ``"1d"`` or plain seconds -> seconds."""
    if not text:
        return None
    units = {"s": 1, "m": 60, "h": 3600, "d": 86400}
    number, unit = (text[:-1], text[-1]) if text[-1] in units else (text, "s")
    try:
        value = float(number) * units[unit]
    except ValueError:
        raise EdgeError(f"since={text!r}: use a duration like 30s, 10m, 2h or 1d") from None
    if value <= 0:
        raise EdgeError(f"since={text!r}: must be positive")
    return value


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
        function = req.get_param("function") or None
        environment = req.get_param("env") or None
        resume = req.get_header("Last-Event-ID") if req.get_param_as_bool("follow") else None
        if resume is not None and not STREAM_ID.match(resume):
            raise EdgeError(f"Last-Event-ID {resume!r}: expected a log record id like 1712-0")
        limit = req.get_param_as_int("limit", min_value=1, max_value=10_000) or 1000
        records = (
            []
            if resume
            else read_logs(
                self.platform.redis,
                app,
                function=function,
                environment=environment,
                since_seconds=parse_since(req.get_param("since")),
                limit=limit,
            )
        )
        if not req.get_param_as_bool("follow"):
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
        rows = read_metrics(self.platform.redis, app, req.get_param("env") or None)
        resp.media = {"app": app, "functions": rows}


class MetricsSeries:
    """Per-function, per-minute figures of an app over the last hour (up to 24 hours)."""

    def __init__(self, platform: Platform) -> None:
        self.platform = platform

    def on_get(self, req: falcon.Request, resp: falcon.Response, app: str) -> None:
        _require(self.platform, req, app)
        self.platform.store.get_app(app)
        minutes = req.get_param_as_int("minutes", min_value=1, max_value=MAX_MINUTES) or 60
        functions = read_series(
            self.platform.redis,
            app,
            environment=req.get_param("env") or None,
            function=req.get_param("function") or None,
            minutes=minutes,
            histogram=bool(req.get_param_as_bool("histogram")),
        )
        resp.media = {"app": app, "minutes": minutes, "functions": functions}


class Prometheus:
    """``/metrics``: every function's figures, cluster-wide, for Prometheus."""

    def __init__(self, platform: Platform) -> None:
        self.platform = platform

    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
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
