"""Structured access logs: one JSON line per request.

Lines are buffered in memory and written in one ``write`` per flush (every
half second, from the node's background loop), so the request path never
waits on a disk. ``EDGE_ACCESS_LOG`` chooses the file (default
``$EDGE_HOME/logs/access.log``), ``-`` for stderr, ``off`` to disable.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Any

MAX_BUFFERED = 50_000


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
        self._lines: list[str] = []

    def record(self, entry: dict[str, Any]) -> None:
        if self.enabled and len(self._lines) < MAX_BUFFERED:
            self._lines.append(json.dumps(entry, separators=(",", ":")))

    def flush(self) -> None:
        if not self._lines:
            return
        data = ("\n".join(self._lines) + "\n").encode()
        self._lines.clear()
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
