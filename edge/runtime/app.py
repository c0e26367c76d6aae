"""The runtime's ASGI application: the function path in front of a falcon app.

Requests for a deployed function take :class:`edge.runtime.dispatch.FunctionPath`,
the raw ASGI hot path. The rest reaches falcon's one sink here: ``/healthz``,
``/metrics``, unknown hosts and apps, and functions that run only in other
regions (forwarded to a node that runs them, ``edge.runtime.fallback``).
"""

from __future__ import annotations

import gc
import logging
from collections.abc import Mapping
from typing import Any

import falcon
import falcon.asgi
from redis.exceptions import RedisError

from edge.config import Config
from edge.prometheus import PROMETHEUS_CONTENT_TYPE, aprometheus_text
from edge.runtime.dispatch import TARGET_KEY, FunctionPath, RequestIds
from edge.runtime.faults import fault_message, fault_response
from edge.runtime.scrape import SCRAPE_PATHS, bearer_allowed, on_metrics_socket
from edge.runtime.table import Target
from edge.runtime.worker import Worker

logger = logging.getLogger(__name__)


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
    """The falcon sink: what is not a local function's request
    (:class:`edge.runtime.dispatch.FunctionPath` answers those)."""

    def __init__(self, config: Config, worker: Worker, ids: RequestIds) -> None:
        self.config = config
        self.worker = worker
        self.suffix = "." + config.domain
        self.ids = ids

    async def __call__(
        self, req: falcon.asgi.Request, resp: falcon.asgi.Response | None, **_: Any
    ) -> None:
        assert resp is not None  # falcon always passes one to a sink
        resp.set_header("x-edge-request-id", self.ids.next())
        target = req.scope.get(TARGET_KEY)
        if target is not None:
            resp.set_header("x-edge-release", f"v{target.release}")
            await self._elsewhere(req, resp, target)
            return
        scraper = on_metrics_socket(req.scope, self.config)
        await self._platform_path(req, resp, req.host.lower(), scraper)

    async def _elsewhere(
        self, req: falcon.asgi.Request, resp: falcon.asgi.Response, target: Target
    ) -> None:
        """A function of other regions: the nearest live node running it answers
        (``edge.runtime.fallback``), else the 404 naming its regions."""
        body = await self._body(req, resp)
        if body is None:
            return
        fallback = self.worker.fallback
        if fallback and await fallback.forward(req, resp, target.name, target.regions, body):
            return
        message = fault_message(
            "wrong_region",
            function=target.name,
            region=self.config.region,
            regions=", ".join(target.regions),
        )
        _fault(resp, "wrong_region", message, {"regions": list(target.regions)})

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

    async def _platform_path(
        self, req: falcon.asgi.Request, resp: falcon.asgi.Response, host: str, scraper: bool
    ) -> None:
        if scraper and req.path not in SCRAPE_PATHS:
            message = (
                f"this is the metrics socket (EDGE_METRICS_BIND): it serves only /metrics "
                f"and /healthz; functions are on port {self.config.runtime_port}"
            )
            _fault(resp, "not_found", message)
            return
        if req.path == "/healthz":
            resp.content_type = falcon.MEDIA_JSON
            resp.media = {
                "ok": True,
                "routes_version": self.worker.table.version,
                "region": self.config.region,
                "worker": self.worker.worker_id,
                "sites": len(self.worker.table.sites),
                "direct_requests": self.worker.direct_requests,
                "direct_callbacks": self.worker.direct_callbacks,
                "gc_frozen": gc.get_freeze_count(),
            }
            return
        if req.path == "/metrics":
            if not scraper and not bearer_allowed(req.get_header("Authorization"), self.config):
                message = (
                    "/metrics needs `Authorization: Bearer <token>` with this node's token "
                    "(EDGE_TOKEN or $EDGE_HOME/admin.token), or scrape the EDGE_METRICS_BIND socket"
                )
                _fault(resp, "unauthorized", message)
                resp.set_header("WWW-Authenticate", 'Bearer realm="edge-metrics"')
                return
            try:
                resp.data = await aprometheus_text(self.worker.redis, self.worker.node_name)
                resp.content_type = PROMETHEUS_CONTENT_TYPE
            except (RedisError, OSError) as exc:
                resp.status = 503
                resp.content_type = falcon.MEDIA_JSON
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


def create_app(config: Config, worker: Worker) -> FunctionPath:
    """The runtime's ASGI app: the function path, in front of falcon for the rest."""
    ids = RequestIds()
    app = falcon.asgi.App(middleware=Lifespan(worker))
    app.resp_options.default_media_type = None  # type: ignore[assignment]
    app.add_sink(Dispatcher(config, worker, ids), prefix="/")
    return FunctionPath(config, worker, app, ids)
