"""The Python function API: what a handler receives and may return.

This module runs inside function processes, so it imports only the standard
library. The contract (see the README, "Function API")::

    from edge import Response

    def handle(request):
        return {"id": request.params["id"]}       # dict/list -> JSON
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Iterator, Mapping
from typing import Any
from urllib.parse import parse_qsl


class Headers(Mapping[str, str]):
    """A read-only, case-insensitive view of request headers.

    Repeated headers are joined with ``", "`` as HTTP allows; ``get_all``
    returns them separately.
    """

    __slots__ = ("_items", "_map")

    def __init__(self, items: list[tuple[str, str]] | None = None) -> None:
        self._items = list(items or ())
        joined: dict[str, str] = {}
        for name, value in self._items:
            key = name.lower()
            joined[key] = f"{joined[key]}, {value}" if key in joined else value
        self._map = joined

    def __getitem__(self, name: str) -> str:
        return self._map[name.lower()]

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and name.lower() in self._map

    def __iter__(self) -> Iterator[str]:
        return iter(self._map)

    def __len__(self) -> int:
        return len(self._map)

    def get_all(self, name: str) -> list[str]:
        key = name.lower()
        return [value for item, value in self._items if item.lower() == key]

    def __repr__(self) -> str:
        return f"Headers({self._map!r})"


class Request:
    """One HTTP request as a function sees it.

    Attributes:
        method: ``"GET"``, ``"POST"``, ...
        url: the full URL as the client asked for it.
        path: the path part, percent-decoded.
        query: query parameters, the last value winning for repeated names.
        headers: case-insensitive :class:`Headers`.
        params: route parameters, e.g. ``{"id": "42"}``; ``{"*": "a/b"}`` for
            a wildcard tail.
        body: the raw body bytes.
        env: the function's variables (``[env]`` merged with ``functions.X.env``).
    """

    __slots__ = (
        "_query_pairs",
        "body",
        "env",
        "headers",
        "method",
        "params",
        "path",
        "query",
        "query_string",
        "request_id",
        "url",
    )

    def __init__(
        self,
        *,
        method: str,
        url: str,
        path: str,
        query_string: str = "",
        headers: list[tuple[str, str]] | None = None,
        params: dict[str, str] | None = None,
        body: bytes = b"",
        env: Mapping[str, str] | None = None,
        request_id: str = "",
    ) -> None:
        self.method = method
        self.url = url
        self.path = path
        self.query_string = query_string
        self._query_pairs = parse_qsl(query_string, keep_blank_values=True) if query_string else []
        self.query: dict[str, str] = dict(self._query_pairs)
        self.headers = Headers(headers)
        self.params: dict[str, str] = dict(params or {})
        self.body = body
        self.env: Mapping[str, str] = dict(env or {})
        self.request_id = request_id

    def query_all(self, name: str) -> list[str]:
        """Every value of a repeated query parameter, in order."""
        return [value for key, value in self._query_pairs if key == name]

    def text(self, encoding: str = "utf-8") -> str:
        return self.body.decode(encoding, errors="replace")

    def json(self) -> Any:
        """The body parsed as JSON (raises ``ValueError`` if it is not JSON)."""
        return json.loads(self.body or b"null")

    def __repr__(self) -> str:
        return f"<Request {self.method} {self.url}>"


class Response:
    """An explicit response: body, status and headers.

    ``body`` may be ``str`` (text/plain), ``bytes`` (application/octet-stream),
    or a ``dict``/``list`` (JSON); a ``content-type`` header overrides the default.
    A generator or async generator of ``str``/``bytes`` is streamed: each chunk
    is sent as it is yielded.
    """

    __slots__ = ("body", "headers", "status")

    def __init__(
        self,
        body: str
        | bytes
        | dict[str, Any]
        | list[Any]
        | Iterator[str | bytes]
        | AsyncIterator[str | bytes]
        | None = b"",
        status: int = 200,
        headers: Mapping[str, str] | list[tuple[str, str]] | None = None,
    ) -> None:
        self.body = b"" if body is None else body
        self.status = int(status)
        pairs = headers.items() if isinstance(headers, Mapping) else (headers or [])
        self.headers: list[tuple[str, str]] = [(str(k), str(v)) for k, v in pairs]

    @classmethod
    def json(
        cls, data: Any, status: int = 200, headers: Mapping[str, str] | None = None
    ) -> Response:
        merged = {"content-type": "application/json", **(headers or {})}
        return cls(json.dumps(data), status, merged)

    def encode(self) -> tuple[int, list[tuple[str, str]], bytes]:
        """The status, headers (with a content-type) and body bytes to send."""
        body = self.body
        if isinstance(body, bytes | bytearray | memoryview):
            data, ctype = bytes(body), "application/octet-stream"
        elif isinstance(body, str):
            data, ctype = body.encode(), "text/plain; charset=utf-8"
        else:
            data, ctype = json.dumps(body, default=str).encode(), "application/json"
        headers = self.headers
        if not any(name.lower() == "content-type" for name, _ in headers):
            headers = [*headers, ("content-type", ctype)]
        return self.status, headers, data


def to_response(result: Any) -> Response:
    """Turn whatever a handler returned into a :class:`Response`."""
    if isinstance(result, Response):
        return result
    if result is None:
        return Response(b"", status=204)
    if isinstance(result, bytearray):
        return Response(bytes(result))
    if isinstance(result, dict | list | str | bytes):
        return Response(result)
    raise TypeError(
        f"handler returned {type(result).__name__}; return a dict, list, str, bytes "
        "or edge.Response"
    )
