"""The Logs and Deploys pages: rendered now, then kept live by Server-Sent Events."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any
from urllib.parse import urlencode

import falcon

from edge.logstream import read_logs
from edge.platform.dashboard.web import STATIC, Web
from edge.platform.deploylog import follow_deploys, last_id, read_deploys

LOG_LINES = 200
STATIC_TYPES = {".js": "text/javascript; charset=utf-8", ".css": "text/css; charset=utf-8"}


def _function_names(web: Web, app: str) -> list[str]:
    info = web.platform.store.get_app(app)
    names: set[str] = set()
    for env in info.environments:
        if env.active_release_id is not None:
            release = web.platform.store.active_release(app, env.name)
            if release is not None:
                names.update(f.name for f in release.functions)
    return sorted(names)


class LogsPage:
    """``/apps/{app}/logs``: the latest lines, then a live tail of the log stream."""

    def __init__(self, web: Web) -> None:
        self.web = web

    def on_get(self, req: falcon.Request, resp: falcon.Response, app: str) -> None:
        viewer = self.web.require(req, app)
        function = req.get_param("function") or None
        records = read_logs(self.web.platform.redis, app, function=function, limit=LOG_LINES)
        query = {"follow": "1", "limit": "1"}
        if function:
            query["function"] = function
        self.web.render(
            resp,
            "logs.html",
            viewer=viewer,
            title=f"{app} logs",
            app=app,
            function=function,
            functions=_function_names(self.web, app),
            records=records,
            stream=f"/v1/apps/{app}/logs?{urlencode(query)}",
            last_id=records[-1]["id"] if records else "0-0",
        )


class DeploysPage:
    """``/apps/{app}/deploys``: recent deploys with their steps; new ones stream in."""

    def __init__(self, web: Web) -> None:
        self.web = web

    def on_get(self, req: falcon.Request, resp: falcon.Response, app: str) -> None:
        viewer = self.web.require(req, app)
        self.web.platform.store.get_app(app)
        client = self.web.platform.redis
        self.web.render(
            resp,
            "deploys.html",
            viewer=viewer,
            title=f"{app} deploys",
            app=app,
            deploys=read_deploys(client, app),
            stream=f"/apps/{app}/deploys/stream?after={last_id(client, app)}",
        )


class DeployStream:
    """``/apps/{app}/deploys/stream?after=ID``: deploy steps as Server-Sent Events."""

    def __init__(self, web: Web) -> None:
        self.web = web

    def on_get(self, req: falcon.Request, resp: falcon.Response, app: str) -> None:
        self.web.require(req, app)
        after = req.get_param("after") or "0-0"
        if not all(part.isdigit() for part in after.split("-", 1)):
            after = "0-0"
        resp.content_type = "text/event-stream"
        resp.set_header("Cache-Control", "no-store")
        resp.stream = self._events(app, after)

    def _events(self, app: str, after: str) -> Iterator[bytes]:
        for batch in follow_deploys(self.web.platform.redis, app, after):
            if not batch:
                yield b": keep-alive\n\n"
            for record in batch:
                yield f"id: {record['id']}\ndata: {json.dumps(record)}\n\n".encode()


class Static:
    """``/static/{name}``: the dashboard's one script and one stylesheet."""

    def on_get(self, req: falcon.Request, resp: falcon.Response, name: str) -> None:
        path = STATIC / name
        kind = STATIC_TYPES.get(path.suffix)
        # APPSEC: only plain file names of this folder, never a path out of it.
        if kind is None or "/" in name or name.startswith(".") or not path.is_file():
            raise falcon.HTTPNotFound()
        resp.content_type = kind
        resp.set_header("Cache-Control", "max-age=300")
        resp.set_header("X-Content-Type-Options", "nosniff")
        resp.data = path.read_bytes()


def log_classes(record: dict[str, Any]) -> str:
    """CSS classes of a log line: its kind and level (platform events stand out)."""
    return f"kind-{record.get('kind', 'function')} level-{record.get('level', 'info')}"
