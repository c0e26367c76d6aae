"""WSGI and ASGI applications as function entries (Flask, falcon, FastAPI, Starlette).

``entry = "app.py:app"`` may name a plain handler (``handle(request)``), a WSGI
callable (``app(environ, start_response)``) or an ASGI app (``async
app(scope, receive, send)``). :func:`as_handler` tells them apart by their
call signature, unless edge.toml says ``kind``, and wraps an app into an
ordinary handler: one request in, one :class:`edge.Response` out, in the
instance process. One request runs per instance, as for plain handlers; an
ASGI app runs on the instance's own event loop (created on first use, as for
``async def`` handlers), and its lifespan ``startup`` runs once per instance
before its first request.

Runs inside function processes: standard library only, no asyncio at import.
"""

from __future__ import annotations

import inspect
import io
import sys
from collections.abc import Callable, Iterable
from typing import Any
from urllib.parse import urlsplit

from edge.function import Request, Response

Handler = Callable[[Request], Any]
_POSITIONAL = (inspect.Parameter.POSITIONAL_ONLY, inspect.Parameter.POSITIONAL_OR_KEYWORD)


class AppError(Exception):
    """The entry is neither a handler nor an app this module can serve."""


def detect(target: object) -> str:
    """``"handler"``, ``"wsgi"`` or ``"asgi"``, from how ``target`` is called.

    Raises:
        AppError: the signature does not say (then edge.toml must set ``kind``).
    """
    call = target if inspect.isroutine(target) else getattr(target, "__call__", None)  # noqa: B004
    try:
        signature = inspect.signature(target)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        raise AppError("its call signature cannot be read; set kind in edge.toml") from None
    required = [
        p
        for p in signature.parameters.values()
        if p.kind in _POSITIONAL and p.default is inspect.Parameter.empty
    ]
    is_async = inspect.iscoroutinefunction(call)
    if len(required) == 1:
        return "handler"
    if len(required) == 2 and not is_async:
        return "wsgi"
    if len(required) == 3 and is_async:
        return "asgi"
    raise AppError(
        f"takes {len(required)} argument(s){' (async)' if is_async else ''}: not a handler "
        "(request), a WSGI app (environ, start_response) or an ASGI app (async: scope, "
        'receive, send); set kind = "handler", "wsgi" or "asgi" in edge.toml'
    )


def as_handler(target: Any, kind: str) -> Handler:
    """A handler for ``target`` (an app is wrapped; a handler is returned as is)."""
    kind = kind or detect(target)
    if kind == "wsgi":
        return WsgiAdapter(target)
    if kind == "asgi":
        return AsgiAdapter(target)
    return target


def _url(request: Request) -> tuple[str, str, str, str]:
    """scheme, host, port, and the raw path of ``request.url``."""
    parts = urlsplit(request.url)
    scheme = parts.scheme or "http"
    port = str(parts.port or (443 if scheme == "https" else 80))
    return scheme, parts.hostname or "localhost", port, parts.path or request.path


def _header_pairs(request: Request) -> list[tuple[str, str]]:
    return [(name, value) for name in request.headers for value in request.headers.get_all(name)]


class WsgiAdapter:
    """Serves a WSGI app (PEP 3333) as a handler."""

    def __init__(self, app: Callable[..., Iterable[bytes]]) -> None:
        self.app = app

    def __call__(self, request: Request) -> Response:
        started: list[Any] = []
        chunks: list[bytes] = []

        def start_response(status: str, headers: list[tuple[str, str]], exc_info: Any = None):
            if exc_info is not None and started and chunks:
                raise exc_info[1].with_traceback(exc_info[2])
            started[:] = [status, headers]
            return chunks.append

        result = self.app(self.environ(request), start_response)
        try:
            chunks.extend(chunk for chunk in result if chunk)
        finally:
            close = getattr(result, "close", None)
            if close is not None:
                close()
        if not started:
            raise AppError("the WSGI app returned without calling start_response")
        status, headers = started
        return Response(b"".join(chunks), status=int(status.split()[0]), headers=list(headers))

    @staticmethod
    def environ(request: Request) -> dict[str, Any]:
        scheme, host, port, _raw = _url(request)
        environ: dict[str, Any] = {
            "REQUEST_METHOD": request.method,
            "SCRIPT_NAME": "",
            # PEP 3333: the path's bytes, decoded as latin-1.
            "PATH_INFO": request.path.encode("utf-8").decode("latin-1"),
            "QUERY_STRING": request.query_string,
            "SERVER_NAME": host,
            "SERVER_PORT": port,
            "SERVER_PROTOCOL": "HTTP/1.1",
            "REMOTE_ADDR": "",
            "wsgi.version": (1, 0),
            "wsgi.url_scheme": scheme,
            "wsgi.input": io.BytesIO(request.body),
            "wsgi.errors": sys.stderr,
            "wsgi.multithread": False,
            "wsgi.multiprocess": True,
            "wsgi.run_once": False,
        }
        for name in request.headers:
            value = request.headers[name]
            key = name.upper().replace("-", "_")
            if key in ("CONTENT_TYPE", "CONTENT_LENGTH"):
                environ[key] = value
            else:
                environ[f"HTTP_{key}"] = value
        environ.setdefault("CONTENT_LENGTH", str(len(request.body)))
        return environ


class AsgiAdapter:
    """Serves an ASGI 3 app as an async handler, one request at a time."""

    def __init__(self, app: Callable[..., Any]) -> None:
        self.app = app
        self.state: dict[str, Any] = {}
        self._lifespan: Any = None

    async def __call__(self, request: Request) -> Response:
        if self._lifespan is None:
            await self._startup()
        scope = self.scope(request)
        sent = False

        async def receive() -> dict[str, Any]:
            nonlocal sent
            if not sent:
                sent = True
                return {"type": "http.request", "body": request.body, "more_body": False}
            return {"type": "http.disconnect"}

        start: dict[str, Any] = {}
        chunks: list[bytes] = []

        async def send(message: dict[str, Any]) -> None:
            if message["type"] == "http.response.start":
                start.update(message)
            elif message["type"] == "http.response.body":
                chunks.append(bytes(message.get("body", b"")))

        await self.app(scope, receive, send)
        if not start:
            raise AppError("the ASGI app finished without sending http.response.start")
        headers = [
            (bytes(k).decode("latin-1"), bytes(v).decode("latin-1"))
            for k, v in start.get("headers", [])
        ]
        return Response(b"".join(chunks), status=int(start["status"]), headers=headers)

    def scope(self, request: Request) -> dict[str, Any]:
        scheme, host, port, raw_path = _url(request)
        return {
            "type": "http",
            "asgi": {"version": "3.0", "spec_version": "2.3"},
            "http_version": "1.1",
            "method": request.method,
            "scheme": scheme,
            "path": request.path,
            "raw_path": raw_path.encode("latin-1", "replace"),
            "query_string": request.query_string.encode("latin-1", "replace"),
            "root_path": "",
            "headers": [
                (name.lower().encode("latin-1"), value.encode("latin-1", "replace"))
                for name, value in _header_pairs(request)
            ],
            "server": (host, int(port)),
            "client": None,
            "state": dict(self.state),
        }

    async def _startup(self) -> None:
        """Run the app's lifespan startup (if it speaks lifespan) on this loop."""
        import asyncio  # noqa: PLC0415 - only in the instance, once it serves an ASGI app

        loop = asyncio.get_running_loop()
        started = loop.create_future()
        forever = loop.create_future()  # shutdown never comes: the instance is killed
        messages = [{"type": "lifespan.startup"}]

        async def receive() -> dict[str, Any]:
            if messages:
                return messages.pop()
            return await forever

        async def send(message: dict[str, Any]) -> None:
            if not started.done():
                started.set_result(message)

        scope = {"type": "lifespan", "asgi": {"version": "3.0"}, "state": self.state}

        def ended(task: Any) -> None:  # an app without lifespan support raises: that is fine
            if not task.cancelled():
                task.exception()
            if not started.done():
                started.set_result(None)

        self._lifespan = loop.create_task(self.app(scope, receive, send))
        self._lifespan.add_done_callback(ended)
        message = await started
        if message is not None and message.get("type") == "lifespan.startup.failed":
            raise AppError(f"lifespan startup failed: {message.get('message', '')}")
