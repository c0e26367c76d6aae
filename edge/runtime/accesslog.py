"""Structured access logs: one JSON line per request.

Entries are buffered in memory as tuples, then formatted and written in one
``write`` per flush (every half second, from the node's background loop), so
the request path neither waits on a disk nor pays for JSON encoding.
``EDGE_ACCESS_LOG`` chooses the file (default ``$EDGE_HOME/logs/access.log``),
``-`` for stderr, ``off`` to disable.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Any

MAX_BUFFERED = 50_000
# The keys of a line, in order; :meth:`AccessLog.record` takes their values.
FIELDS = ("ts", "request_id", "host", "method", "path", "status", "duration_ms", "cold",
          "region", "app", "environment", "release", "function", "error")
# One encoder for every line: json.dumps(..., separators=...) builds a new one per call.
_ENCODER = json.JSONEncoder(separators=(",", ":"))


class AccessLog:
    """An append-only JSON-lines sink shared by the workers of one node."""

    def __init__(self, target: str) -> None:
        self.enabled = target != "off"
        self._fd: int | None = None
        if self.enabled and target != "-":
            path = Path(target)
            path.parent.mkdir(parents=True, exist_ok=True)
            # O_APPEND: each flush is one write, so workers' lines never interleave.
            self._fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o640)
        self._entries: list[tuple[Any, ...]] = []

    def record(self, values: tuple[Any, ...]) -> None:
        """Buffer one request's line: the values of :data:`FIELDS`, in order."""
        if self.enabled and len(self._entries) < MAX_BUFFERED:
            self._entries.append(values)

    def flush(self) -> None:
        if not self._entries:
            return
        entries, self._entries = self._entries, []
        encode = _ENCODER.encode
        data = "".join([encode(dict(zip(FIELDS, values, strict=True))) + "\n"
                        for values in entries]).encode()
        if self._fd is None:
            sys.stderr.write(data.decode())
            sys.stderr.flush()
        else:
            os.write(self._fd, data)

    def close(self) -> None:
        self.flush()
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None
