"""The bytes a direct reply writes: HTTP/1.1 framing by status, whole and streamed."""

from __future__ import annotations

import asyncio
from typing import Any

from edge.runtime.replies import DirectReply
from edge.runtime.streaming import BodyStream

HEAD = [(b"x-kind", b"test")]


class Transport:
    def __init__(self) -> None:
        self.writes: list[bytes] = []

    def write(self, data: bytes) -> None:
        self.writes.append(bytes(data))

    def writelines(self, parts: Any) -> None:
        self.writes.append(b"".join(parts))


class Connection:
    """What DirectReply needs of a connection, recording what it writes."""

    def __init__(self) -> None:
        self.transport = Transport()
        self.closed_future = None

    def abort(self) -> None:
        raise AssertionError("not aborted in these tests")

    def is_closed(self) -> bool:
        return False

    def will_close(self) -> bool:
        return False

    async def drain(self) -> None:
        pass

    def write_paused(self) -> bool:
        return False


def parse(data: bytes) -> tuple[str, dict[str, str], bytes]:
    head, _, body = data.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    fields = dict(line.lower().split(": ", 1) for line in lines[1:])
    return lines[0], fields, body


def whole(status: int, body: bytes) -> tuple[str, dict[str, str], bytes]:
    conn = Connection()
    asyncio.run(DirectReply(conn).send(status, list(HEAD), body))  # type: ignore[arg-type]
    assert len(conn.transport.writes) == 1
    return parse(conn.transport.writes[0])


def streamed(status: int, chunks: list[bytes]) -> tuple[list[bytes], BodyStream]:
    conn = Connection()
    cancelled: list[str] = []
    stream = BodyStream(lambda size: None, cancelled.append)
    for chunk in chunks:
        stream.feed(chunk)
    stream.end()
    asyncio.run(DirectReply(conn).send_stream(status, list(HEAD), stream))  # type: ignore[arg-type]
    return conn.transport.writes, stream


def test_a_whole_body_is_framed_by_its_length_in_one_write() -> None:
    line, fields, body = whole(200, b"hello")
    assert line == "HTTP/1.1 200 OK"
    assert fields["content-length"] == "5" and fields["x-kind"] == "test"
    assert "date" in fields and "server" in fields and "connection" not in fields
    assert body == b"hello"


def test_204_has_no_length_and_304_no_body() -> None:
    line, fields, body = whole(204, b"")
    assert line.startswith("HTTP/1.1 204") and "content-length" not in fields and body == b""
    line, fields, body = whole(304, b"x")
    assert line.startswith("HTTP/1.1 304") and fields["content-length"] == "1" and body == b""


def test_a_large_body_is_not_copied_into_its_head() -> None:
    _, fields, body = whole(200, b"y" * 300_000)
    assert fields["content-length"] == "300000" and body == b"y" * 300_000


def test_a_stream_is_chunked_with_its_head_in_the_first_write() -> None:
    writes, stream = streamed(200, [b"one", b"two"])
    _, fields, first = parse(writes[0])
    assert fields["transfer-encoding"] == "chunked" and "content-length" not in fields
    assert first == b"3\r\none\r\n"
    assert b"".join(writes[1:]) == b"3\r\ntwo\r\n0\r\n\r\n"
    assert stream.closed


def test_an_empty_stream_is_its_head_and_the_last_chunk() -> None:
    writes, _ = streamed(200, [])
    assert len(writes) == 1 and writes[0].endswith(b"\r\n\r\n0\r\n\r\n")


def test_a_stream_under_a_status_without_a_body_sends_the_head_alone() -> None:
    writes, stream = streamed(204, [b"ignored"])
    line, fields, body = parse(b"".join(writes))
    assert line.startswith("HTTP/1.1 204") and body == b""
    assert "transfer-encoding" not in fields and "content-length" not in fields
    assert stream.closed
