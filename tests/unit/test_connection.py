"""The runtime's HTTP protocol parses with gunicorn's C parser."""

from __future__ import annotations

import logging
from types import SimpleNamespace

from gunicorn.config import Config
from gunicorn_h1c import H1CProtocol

from edge.runtime.connection import EdgeProtocol, prefer_c_parser


def test_the_runtime_protocol_parses_http_with_the_c_parser() -> None:
    assert prefer_c_parser()
    worker = SimpleNamespace(
        cfg=Config(), log=logging.getLogger(__name__), asgi=None, loop=None, state={}
    )
    protocol = EdgeProtocol(worker)  # type: ignore[arg-type]
    protocol._setup_callback_parser()
    assert isinstance(protocol._callback_parser, H1CProtocol)
