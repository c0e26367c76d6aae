"""Streamed replies: what the worker accepts from a function, and the credit window."""

from __future__ import annotations

import asyncio

import pytest

from edge.runtime.python.frames import InvalidReply, parse_head, parse_stream_frame
from edge.runtime.streaming import CHUNK_MAX, WINDOW, BodyStream, StreamAborted, WindowExceeded


def test_a_head_is_checked_like_a_reply() -> None:
    assert parse_head({"k": "head", "status": 200, "headers": [["x-a", "b"]]}) == (
        200,
        [("x-a", "b")],
    )
    with pytest.raises(InvalidReply, match="status"):
        parse_head({"k": "head", "status": 99, "headers": []})
    with pytest.raises(InvalidReply, match="cannot carry"):
        parse_head({"k": "head", "status": 200, "headers": [["x-a", "b\r\nSet-Cookie: x"]]})
    with pytest.raises(InvalidReply, match="frame kind"):
        parse_head({"k": "kv", "status": 200, "headers": []})


@pytest.mark.parametrize(
    "frame",
    [
        {"k": "chunk", "d": "text, not bytes"},
        {"k": "end", "error": "memory!"},
        {"k": "head", "status": 200, "headers": []},
        {"status": 200, "body": b"", "error": None},
        ["chunk", b"x"],
    ],
)
def test_anything_but_a_chunk_or_an_end_is_invalid(frame: object) -> None:
    with pytest.raises(InvalidReply):
        parse_stream_frame(frame)


def test_chunks_and_ends_parse() -> None:
    assert parse_stream_frame({"k": "chunk", "d": b"abc"})[:2] == ("chunk", b"abc")
    kind, _, error, logs = parse_stream_frame(
        {"k": "end", "error": "exception", "logs": [[1.0, "error", "boom"]]}
    )
    assert (kind, error, [r.message for r in logs]) == ("end", "exception", ["boom"])


def test_a_producer_past_its_window_is_refused() -> None:
    body = BodyStream(lambda _: None, lambda _: None)
    for _ in range(WINDOW // CHUNK_MAX):
        body.feed(b"x" * CHUNK_MAX)
    body.feed(b"x" * CHUNK_MAX)  # in flight while the credit for the first was on its way
    with pytest.raises(WindowExceeded):
        body.feed(b"x")


def test_credit_is_given_as_the_client_takes_chunks_and_a_fault_truncates() -> None:
    granted: list[int] = []

    async def scenario() -> list[bytes]:
        body = BodyStream(granted.append, lambda _: None)
        body.feed(b"one")
        taken = [await body.__anext__()]
        body.feed(b"two!")
        taken.append(await body.__anext__())  # asking for more: "one" was taken
        body.end("exception")
        with pytest.raises(StreamAborted):
            await body.__anext__()
        return taken

    assert asyncio.run(scenario()) == [b"one", b"two!"]
    assert granted == [3]  # no credit for "two!": its producer had ended


def test_stopping_a_stream_cancels_its_producer_once() -> None:
    cancels: list[str] = []
    body = BodyStream(lambda _: None, cancels.append)
    body.stop("disconnected")
    body.stop("stream_limit")
    asyncio.run(body.close())
    assert cancels == ["disconnected"] and body.error == "disconnected"
