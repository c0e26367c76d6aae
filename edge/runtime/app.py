"""The runtime's ASGI application: falcon with one sink that routes every request.

Host -> app environment (``<app>.<domain>``, ``<branch>--<app>.<domain>``),
method + path -> function through the current :class:`RouteTable` snapshot,
then the function's pool runs it in a separate process (or V8 isolate).
"""

from __future__ import annotations

import itertools
import logging
import os
import time
from collections.abc import Mapping
from typing import Any

import falcon
import falcon.asgi
from redis.exceptions import RedisError

from edge.config import Config
from edge.logstream import outcome_entries
from edge.prometheus import PROMETHEUS_CONTENT_TYPE, aprometheus_text
from edge.runtime.connection import ABORT_KEY, CLOSED_KEY
from edge.runtime.faults import fault_message, fault_response
from edge.runtime.invocation import (
    FunctionLoadError,
    FunctionVersion,
    Invocation,
    LogRecord,
    Outcome,
)
from edge.runtime.streaming import DISCONNECTED, BodyStream
from edge.runtime.worker import Worker

logger = logging.getLogger(__name__)

RESERVED_HEADERS = frozenset(
    {"content-length", "transfer-encoding", "connection", "keep-alive", "upgrade", "date", "server"}
)
# A buffered body past this is sent in slices of it, so the socket's write
# buffer (and with it the worker's memory) stays bounded for a slow client.
SLICE = 256 * 1024


async def _slices(body: bytes) -> Any:
    view = memoryview(body)
    for start in range(0, len(view), SLICE):
        yield view[start : start + SLICE]


def _fault(
    resp: falcon.asgi.Response,
    fault: str,
    message: str,
    extra: dict[str, Any] | None = None,
) -> None:
    """Answer with a platform fault (one JSON shape, see ``edge.runtime.faults``)."""
    request_id = resp.get_header("x-edge-request-id") or ""
    resp.status, headers, resp.data = fault_response(fault, request_id, message, extra)
    for name, value in headers:
        resp.set_header(name, value)


class Dispatcher:
    """The sink: every request that reaches the runtime goes through here."""

    def __init__(self, config: Config, worker: Worker) -> None:
        self.config = config
        self.worker = worker
        self.suffix = "." + config.domain
        # Request ids: a random per-worker prefix and a counter (16 hex digits)
        # instead of os.urandom per request. Built in each worker after the fork.
        self._id_prefix = os.urandom(4).hex()
        self._ids = itertools.count()

    def _request_id(self) -> str:
        number = next(self._ids)
        if number > 0xFFFFFFFF:  # wrapped: a new prefix keeps ids unique
            self._id_prefix, self._ids = os.urandom(4).hex(), itertools.count(1)
            number = 0
        return f"{self._id_prefix}{number:08x}"

    async def __call__(
        self, req: falcon.asgi.Request, resp: falcon.asgi.Response | None, **_: Any
    ) -> None:
        assert resp is not None  # falcon always passes one to a sink
        request_id = self._request_id()
        resp.set_header("x-edge-request-id", request_id)
        host = req.host.lower()
        site = self.worker.table.site(host)
        if site is None:
            await self._platform_path(req, resp, host)
            return
        # The router wants the raw (still percent-encoded) path: it decodes params itself.
        scope = req.scope
        raw = scope.get("raw_path")
        method, path = req.method, req.path
        match = site.router.match(method, raw.decode("latin-1") if raw else path)
        if match is None:
            _fault(
                resp,
                "not_found",
                f"no route for {method} {path} in {site.app} ({site.environment}, v{site.release})",
            )
            return
        target, params = match
        version = target.version
        resp.set_header("x-edge-release", f"v{target.release}")
        if version is None:
            message = fault_message(
                "wrong_region",
                function=target.name,
                region=self.config.region,
                regions=", ".join(target.regions),
            )
            _fault(resp, "wrong_region", message, {"regions": list(target.regions)})
            return
        body = await self._body(req, resp)
        if body is None:
            return
        headers = [
            (name.decode("latin-1"), value.decode("latin-1"))
            for name, value in scope.get("headers", ())
        ]
        invocation = Invocation(
            method, req.url, path, req.query_string, headers, body, params, request_id
        )
        try:
            pool = await self.worker.pool(version)
        except FunctionLoadError as exc:
            message = fault_message("load", function=target.name, reason=exc)
            _fault(resp, "load", message)
            return
        outcome = await pool.invoke(invocation)
        self._respond(resp, outcome)
        where = (request_id, host, method, path, site.app, site.environment, target)
        stream = outcome.stream
        if stream is None:
            self._record(version, where, outcome, len(outcome.body))
            return
        stream.start(self.config.max_stream_s, scope.get(CLOSED_KEY), scope.get(ABORT_KEY))
        stream.on_done(lambda body: self._stream_over(version, where, outcome, body))

    def _stream_over(
        self, version: FunctionVersion, where: tuple[Any, ...], outcome: Outcome, body: BodyStream
    ) -> None:
        """Count a streamed request once it is over: full duration, bytes, logs."""
        outcome.duration_ms += body.duration_ms
        outcome.logs = body.logs
        if body.error == "stream_limit":
            limit = self.config.max_stream_s
            outcome.logs.append(
                LogRecord(time.time(), "error", f"stream stopped at EDGE_MAX_STREAM_S={limit:g} s")
            )
        outcome.error = None if body.error == DISCONNECTED else body.error
        self._record(version, where, outcome, body.bytes, body.error)

    def _record(
        self,
        version: FunctionVersion,
        where: tuple[Any, ...],
        outcome: Outcome,
        size: int,
        error: str | None = None,
    ) -> None:
        request_id, host, method, path, app, environment, target = where
        self.worker.metrics.observe_outcome(version, outcome, size)
        if outcome.logs or outcome.error:
            self.worker.logs.emit_many(outcome_entries(version, request_id, outcome))
        self.worker.access.record(
            (
                time.time(),
                request_id,
                host,
                method,
                path,
                outcome.status,
                round(outcome.duration_ms, 3),
                outcome.cold,
                self.config.region,
                app,
                environment,
                target.release,
                target.name,
                error or outcome.error,
                size,
            )
        )

    async def _body(self, req: falcon.asgi.Request, resp: falcon.asgi.Response) -> bytes | None:
        limit = self.config.max_body_bytes
        too_large = (req.content_length or 0) > limit
        data = b""
        if not too_large and req.content_length != 0:
            data = await req.stream.read(limit + 1)
            too_large = len(data) > limit
        if too_large:
            message = fault_message("too_large", limit_mb=limit // (1024 * 1024))
            _fault(resp, "too_large", message)
            # The rest of the body stays unread, so this connection cannot carry
            # another request: say so, or a keep-alive client would reuse it.
            resp.set_header("Connection", "close")
            return None
        return bytes(data)

    def _respond(self, resp: falcon.asgi.Response, outcome: Outcome) -> None:
        resp.status = outcome.status
        for name, value in outcome.headers:
            if name.lower() not in RESERVED_HEADERS:
                resp.append_header(name, value)
        resp.set_header("x-edge-cold-start", "true" if outcome.cold else "false")
        if outcome.cold:
            resp.set_header("x-edge-cold-start-ms", f"{outcome.cold_ms:.2f}")
        resp.set_header("x-edge-duration-ms", f"{outcome.duration_ms:.2f}")
        body = outcome.body
        if outcome.stream is not None:
            resp.stream = outcome.stream
        elif len(body) <= SLICE:
            resp.data = body
        else:
            resp.content_length = len(body)
            resp.stream = _slices(body)

    async def _platform_path(
        self, req: falcon.asgi.Request, resp: falcon.asgi.Response, host: str
    ) -> None:
        if req.path == "/healthz":
            resp.media = {
                "ok": True,
                "routes_version": self.worker.table.version,
                "region": self.config.region,
                "worker": self.worker.worker_id,
                "sites": len(self.worker.table.sites),
            }
            return
        if req.path == "/metrics":
            try:
                resp.data = await aprometheus_text(self.worker.redis, self.worker.node_name)
                resp.content_type = PROMETHEUS_CONTENT_TYPE
            except (RedisError, OSError) as exc:
                resp.status = 503
                resp.media = {"error": "unavailable", "message": f"redis unreachable ({exc})"}
            return
        if host.endswith(self.suffix):
            _fault(
                resp,
                "not_found",
                f"no app is deployed at {host}: push one with "
                f"`git push edge main`, or check the app and branch name",
            )
        else:
            _fault(
                resp,
                "not_found",
                f"unknown host {host!r}: apps live at "
                f"<app>{self.suffix} and <branch>--<app>{self.suffix}",
            )


class Lifespan:
    """Starts the worker (pools, Redis link) when a worker boots; stops it on exit."""

    def __init__(self, worker: Worker) -> None:
        self.worker = worker

    async def process_startup(self, scope: Mapping[str, Any], event: Mapping[str, Any]) -> None:
        await self.worker.start()

    async def process_shutdown(self, scope: Mapping[str, Any], event: Mapping[str, Any]) -> None:
        await self.worker.stop()


def create_app(config: Config, worker: Worker) -> falcon.asgi.App:
    app = falcon.asgi.App(middleware=Lifespan(worker))
    app.add_sink(Dispatcher(config, worker), prefix="/")
    return app
