"""The bare baseline: a falcon ASGI app served by ``gunicorn -k asgi``.

``GET /`` is hello world; ``POST /real`` does the realistic work of
:mod:`bench.realistic` (parse a 2 KB JSON order, answer 10 KB of JSON);
``GET /stream?n=N`` streams N blocks of 64 KiB (the stream baseline).
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

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


class Stream:
    """``GET /stream?n=N`` -> N blocks of 64 KiB, streamed (the stream baseline)."""

    async def on_get(self, req: falcon.asgi.Request, resp: falcon.asgi.Response) -> None:
        blocks = req.get_param_as_int("n", default=1)
        block = b"x" * 65536

        async def body() -> AsyncIterator[bytes]:
            for _ in range(blocks):
                yield block

        resp.content_type = "application/octet-stream"
        resp.stream = body()


app = falcon.asgi.App()
app.add_route("/", Hello())
app.add_route("/real", Realistic())
app.add_route("/stream", Stream())


async def raw(scope: dict[str, Any], receive: Any, send: Any) -> None:
    """The same hello world as a bare ASGI callable: gunicorn's own share of a request."""
    if scope["type"] != "http":
        return
    await send(
        {
            "type": "http.response.start",
            "status": 200,
            "headers": [(b"content-type", b"text/plain"), (b"content-length", b"11")],
        }
    )
    await send({"type": "http.response.body", "body": b"hello world"})
