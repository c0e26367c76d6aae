"""The bare baseline: a falcon ASGI app served by ``gunicorn -k asgi``.

``GET /`` is hello world; ``POST /real`` does the realistic work of
:mod:`bench.realistic` (parse a 2 KB JSON order, answer 10 KB of JSON).
"""

from __future__ import annotations

import json

import falcon
import falcon.asgi

from bench.realistic import respond


class Hello:
    """``GET /`` -> ``hello world``."""

    async def on_get(self, req: falcon.asgi.Request, resp: falcon.asgi.Response) -> None:
        resp.content_type = falcon.MEDIA_TEXT
        resp.text = "hello world"


class Realistic:
    """``POST /real`` -> the order's 10 KB JSON answer."""

    async def on_post(self, req: falcon.asgi.Request, resp: falcon.asgi.Response) -> None:
        order = json.loads(await req.stream.read())
        resp.content_type = falcon.MEDIA_JSON
        resp.data = json.dumps(respond(order)).encode()


app = falcon.asgi.App()
app.add_route("/", Hello())
app.add_route("/real", Realistic())
