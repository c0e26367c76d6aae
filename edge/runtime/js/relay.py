"""The V8 host's streamed responses: chunks out of ``d()`` to the worker, credit back.

``js/dispatch.js`` describes the ``d()`` side: a streamed response's head comes
with body kind 3, its chunks and its end come in ``d()``'s fifth result (a chunk's
bytes in one ArrayBuffer beside it, see :func:`modules.stream_chunks`), and
the credit the worker grants (or ``-1`` to stop) goes into ``d()``'s fourth
argument. The worker side is ``edge.runtime.js.client``; this relay keeps
nothing but which streams are open and the credit not yet handed to V8 (the
window lives in V8, so the host buffers no chunks).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Any

from edge.runtime.js import modules

logger = logging.getLogger(__name__)


class StreamRelay:
    """The open streams of one isolate.

    Args:
        name: the function, as log lines name it.
        send: sends one frame to the worker.
        kind: maps a d() error to the fault it is reported as.
    """

    def __init__(
        self, name: str, send: Callable[[list[Any]], None], kind: Callable[[str], str]
    ) -> None:
        self._name = name
        self._send = send
        self._kind = kind
        self.open: set[int] = set()
        self.credit: list[list[int]] = []

    def opened(self, rid: int) -> None:
        """Request ``rid`` answered with a streamed head."""
        self.open.add(rid)

    def grant(self, rid: int, size: int) -> bool:
        """The client took ``size`` bytes of ``rid`` (-1: stop it); whether V8 must hear it."""
        if rid not in self.open:
            return False
        if size < 0:
            self.open.discard(rid)
        self.credit.append([rid, size])
        return True

    def take_credit(self) -> list[list[int]]:
        """The credit for the next ``d()`` call (and none after it)."""
        credit, self.credit = self.credit, []
        return credit

    def relay(self, item: list[Any]) -> None:
        """Forward one chunk (``[id, bytes]``, see :func:`modules.stream_chunks`) or
        end from ``d()`` (APPSEC: checked, it comes from V8)."""
        try:
            rid, data, *end = item
            if rid not in self.open:
                return  # stopped by the worker meanwhile
            if isinstance(data, bytes):
                self._send(["chunk", rid, data])
                return
            if data is not None:
                raise ValueError("a stream chunk's bytes are missing or of the wrong length")
            error, logs = end
            self.open.discard(rid)
            self._send(["end", rid, error and self._kind(str(error)), modules.log_records(logs)])
        except modules.RESPONSE_ERRORS as exc:
            logger.error("%s: invalid stream item from JavaScript: %s", self._name, exc)
            self.open.discard(item[0])
            self.credit.append([item[0], -1])
            self._send(["end", item[0], "invalid_response", []])

    def end_all(self, error: str) -> None:
        """The isolate is gone: every open stream ends in ``error``."""
        for rid in self.open:
            self._send(["end", rid, error, [[time.time(), "error", f"stream ended: {error}"]]])
        self.open.clear()
        self.credit = []
