"""How the ASGI function path reads a request body: whole, over the limit, or
abandoned by its client (gunicorn then hands it ``http.disconnect``)."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from types import SimpleNamespace
from typing import Any

import pytest

from edge.runtime.dispatch import ClientGone, FunctionPath, RequestIds


def read_body(messages: list[dict[str, Any]], length: int, limit: int = 1024) -> bytes | None:
    config = SimpleNamespace(region="local", max_body_bytes=limit)
    path = FunctionPath(config, None, None, RequestIds())  # type: ignore[arg-type]
    queue = iter(messages)

    async def receive() -> Mapping[str, Any]:
        return next(queue)

    return asyncio.run(path._body(receive, [("content-length", str(length))]))


def chunk(data: bytes, more: bool) -> dict[str, Any]:
    return {"type": "http.request", "body": data, "more_body": more}


def test_a_body_in_chunks_is_read_whole() -> None:
    assert read_body([chunk(b"ab", True), chunk(b"cd", False)], 4) == b"abcd"


def test_a_body_over_the_limit_is_refused() -> None:
    assert read_body([chunk(b"x" * 600, True), chunk(b"x" * 600, False)], 1000) is None


def test_a_body_its_client_abandoned_never_reaches_the_function() -> None:
    """Before, the disconnect ended the loop like a last chunk: the function ran on
    the part that had come (after a 60 s stall, gunicorn's worker timeout)."""
    with pytest.raises(ClientGone):
        read_body([chunk(b"part", True), {"type": "http.disconnect"}], 100)
