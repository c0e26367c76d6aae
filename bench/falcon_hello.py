"""The bare baseline: a falcon ASGI hello app (and a stream), served by ``gunicorn -k asgi``."""

from __future__ import annotations

from collections.abc import AsyncIterator

import falcon
import falcon.asgi


class Hello:
    """``GET /`` -> ``hello world``."""

    async def on_get(self, req: falcon.asgi.Request, resp: falcon.asgi.Response) -> None:
        resp.content_type = falcon.MEDIA_TEXT
        resp.text = "hello world"


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
app.add_route("/stream", Stream())
