"""The WSGI/ASGI adapter: detection by signature and faithful mapping (pure, in process)."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from edge.function import Request, Response
from edge.runtime.python.process.apps import AppError, AsgiAdapter, WsgiAdapter, as_handler, detect


def request(method: str = "GET", body: bytes = b"") -> Request:
    return Request(
        method=method,
        url="http://shop.edge.localhost:8080/caf%C3%A9/x?q=1&q=2",
        path="/café/x",
        query_string="q=1&q=2",
        headers=[("X-Tag", "a"), ("X-Tag", "b"), ("Content-Type", "text/plain")],
        body=body,
    )


def wsgi_app(environ: dict[str, Any], start_response: Any) -> list[bytes]:
    seen = (
        f"{environ['REQUEST_METHOD']} {environ['PATH_INFO']} {environ['QUERY_STRING']} "
        f"{environ['HTTP_X_TAG']} {environ['CONTENT_TYPE']} {environ['wsgi.input'].read()!r}"
    )
    start_response("418 I'm a teapot", [("Set-Cookie", "a=1"), ("Set-Cookie", "b=2")])
    return [seen.encode("latin-1")]


async def asgi_app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    if scope["type"] == "lifespan":
        await receive()
        await send({"type": "lifespan.startup.complete"})
        scope["state"]["started"] = True
        await receive()
        return
    message = await receive()
    seen = (
        f"{scope['method']} {scope['path']} {scope['query_string']!r} "
        f"{[v for k, v in scope['headers'] if k == b'x-tag']} {message['body']!r} "
        f"{scope['state'].get('started')}"
    )
    await send({"type": "http.response.start", "status": 201, "headers": [(b"x-a", b"1")]})
    await send({"type": "http.response.body", "body": seen.encode(), "more_body": True})
    await send({"type": "http.response.body", "body": b"!"})


def handler(request: Request) -> str:
    return "plain"


class AsgiClass:
    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        return None


def test_detect_by_signature() -> None:
    assert detect(handler) == "handler"
    assert detect(wsgi_app) == "wsgi"
    assert detect(asgi_app) == "asgi"
    assert detect(AsgiClass()) == "asgi"
    with pytest.raises(AppError, match='set kind = "handler", "wsgi" or "asgi"'):
        detect(lambda a, b, c: None)
    assert as_handler(handler, "") is handler


def test_wsgi_maps_path_query_headers_body_and_status() -> None:
    response = WsgiAdapter(wsgi_app)(request("POST", b"hi"))
    assert isinstance(response, Response)
    status, headers, body = response.encode()
    assert status == 418
    assert [v for k, v in headers if k == "Set-Cookie"] == ["a=1", "b=2"]
    # PATH_INFO carries the path's UTF-8 bytes as latin-1 (PEP 3333).
    assert body.decode("latin-1") == "POST /café/x q=1&q=2 a, b text/plain b'hi'".encode().decode(
        "latin-1"
    )


def test_asgi_maps_scope_body_and_runs_lifespan_once() -> None:
    adapter = AsgiAdapter(asgi_app)

    async def twice() -> list[Response]:
        return [await adapter(request("PUT", b"x")), await adapter(request())]

    first, second = asyncio.run(twice())
    status, headers, body = first.encode()
    assert status == 201 and ("x-a", "1") in headers
    assert body == b"PUT /caf\xc3\xa9/x b'q=1&q=2' [b'a', b'b'] b'x' True!"
    assert second.encode()[2].startswith(b"GET ")
