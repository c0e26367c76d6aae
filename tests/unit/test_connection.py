"""The runtime's HTTP protocol parses with gunicorn's C parser (holding what
queues behind a request)."""

from __future__ import annotations

import logging
from types import SimpleNamespace

from gunicorn.config import Config

from edge.runtime.connection import C_PARSER_TAIL, EdgeProtocol, HeldParser, prefer_c_parser


def edge_protocol() -> EdgeProtocol:
    """A runtime protocol as a worker builds it (no connection yet)."""
    worker = SimpleNamespace(
        cfg=Config(), log=logging.getLogger(__name__), asgi=None, loop=None, state={}
    )
    return EdgeProtocol(worker)  # type: ignore[arg-type]


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
