"""The runtime's HTTP protocol parses with gunicorn's C parser (holding what
queues behind a request), and bounds a stalled body on the direct path."""

from __future__ import annotations

import asyncio
import logging
from types import SimpleNamespace
from typing import Any

from gunicorn.config import Config

from edge.runtime.connection import C_PARSER_TAIL, EdgeProtocol, HeldParser, prefer_c_parser
from edge.runtime.direct import DirectCall


def edge_protocol(loop: asyncio.AbstractEventLoop | None = None) -> EdgeProtocol:
    """A runtime protocol as a worker builds it (no connection yet)."""
    worker = SimpleNamespace(
        cfg=Config(), log=logging.getLogger(__name__), asgi=None, loop=loop, state={}
    )
    return EdgeProtocol(worker)  # type: ignore[arg-type]


class Transport:
    """What closing a connection calls on its transport."""

    def __init__(self) -> None:
        self.closed = False

    def can_write_eof(self) -> bool:
        return True

    def write_eof(self) -> None:
        pass

    def close(self) -> None:
        self.closed = True

    def get_extra_info(self, name: str) -> Any:
        return None


def test_the_runtime_protocol_parses_http_with_the_c_parser() -> None:
    assert prefer_c_parser()
    protocol = edge_protocol()
    protocol._setup_callback_parser()
    assert isinstance(protocol._callback_parser, HeldParser)


def test_a_large_request_behind_a_finished_one_is_held_whole() -> None:
    """Behind a finished request (still being answered), the next one's bytes are
    kept whole, however large, and handed back in order: nothing is dropped."""
    prefer_c_parser()
    protocol = edge_protocol()
    bodies: list[bytes] = []
    protocol._callback_parser = HeldParser(
        on_headers_complete=lambda: False,
        on_body=lambda chunk: bodies.append(bytes(chunk)),
        on_message_complete=lambda: None,
    )
    first = b"POST /a HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nhello"
    second = b"POST /b HTTP/1.1\r\nHost: x\r\nContent-Length: 200000\r\n\r\n" + b"y" * 200_000
    # One read with both (the tail of the first past the C parser's 64 KB), then more.
    assert protocol._feed_callback_parser(first + second[:150_000])
    assert protocol._feed_callback_parser(second[150_000:])
    parser = protocol._callback_parser
    assert parser.is_complete and not parser.remaining_truncated
    assert b"".join(bodies) == b"hello"
    assert protocol._http1_buffered() >= len(second) - C_PARSER_TAIL
    assert parser.remaining() == second
    parser.reset()
    assert parser.remaining() == b"" and protocol._http1_buffered() == 0


def test_a_direct_request_whose_body_stalls_is_closed_unanswered() -> None:
    """Body bytes that keep coming keep the request alive past the bound; a gap
    as long as the bound closes the connection (gunicorn's own path bounds it
    the same way)."""
    loop = asyncio.new_event_loop()
    try:
        protocol = edge_protocol(loop)
        transport = Transport()
        protocol.transport = transport
        protocol._request_ready = asyncio.Event()
        protocol._body_timeout = 0.1
        protocol._direct = DirectCall(None, "http", "")  # type: ignore[arg-type]
        protocol._watch_body()
        for _ in range(6):  # 0.24 s in all, a byte every 0.04 s
            loop.run_until_complete(asyncio.sleep(0.04))
            protocol._on_body(b"x")
        assert not transport.closed and protocol._direct is not None
        loop.run_until_complete(asyncio.sleep(0.2))
        assert transport.closed and protocol._direct is None
        assert protocol._request_ready.is_set()  # gunicorn's loop wakes to end
    finally:
        loop.close()
