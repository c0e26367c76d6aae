"""The bare baseline: a falcon ASGI hello app, served by ``gunicorn -k asgi``."""

from __future__ import annotations

import falcon
import falcon.asgi


class Hello:
    """``GET /`` -> ``hello world``."""

    async def on_get(self, req: falcon.asgi.Request, resp: falcon.asgi.Response) -> None:
        resp.content_type = falcon.MEDIA_TEXT
        resp.text = "hello world"


app = falcon.asgi.App()
app.add_route("/", Hello())
