"""What crosses the instance socket: request frames out, untrusted replies in.

APPSEC: a reply comes from function code. It is decoded by msgpack only and
checked here field by field before any of it reaches the HTTP response.
"""

from __future__ import annotations

from typing import Any

from edge.runtime.headers import header_passes
from edge.runtime.invocation import Invocation, LogRecord
from edge.runtime.wire import encode

_LEVELS = frozenset({"debug", "info", "warning", "error", "critical"})
MAX_LOG_RECORDS = 1000
MAX_LOG_MESSAGE = 16 * 1024


class InvalidReply(Exception):
    """An instance's reply frame is not a valid response."""


def parse_reply(
    reply: Any,
) -> tuple[int, list[tuple[str, str]], bytes, str | None, list[LogRecord]]:
    """Check an untrusted reply: ``(status, headers, body, error, logs)``.

    APPSEC: exact types only; headers as :func:`edge.runtime.headers.check_header`
    allows them.

    Raises:
        InvalidReply: saying what is wrong.
    """
    if not isinstance(reply, dict):
        raise InvalidReply("the reply is not a map")
    status, body, error = reply.get("status"), reply.get("body"), reply.get("error")
    if type(status) is not int or not 100 <= status <= 599:
        raise InvalidReply(f"status {status!r} is not an HTTP status (100-599)")
    if not isinstance(body, bytes):
        raise InvalidReply("the body is not bytes")
    if error not in (None, "exception", "memory"):
        raise InvalidReply("unknown error kind")
    return status, _parse_headers(reply.get("headers")), body, error, parse_logs(reply.get("logs"))


def reply_time(reply: dict[str, Any]) -> float | None:
    """How long the instance says the handler took (seconds), if it says so plausibly.

    Only the function's own pool uses it (to pipeline a fast function, see
    :mod:`edge.runtime.python.slots`): a function that lies about it only
    delays its own requests.
    """
    took = reply.get("t")
    return took if took.__class__ is float and 0.0 <= took < 3600.0 else None


def parse_head(reply: dict[str, Any]) -> tuple[int, list[tuple[str, str]]]:
    """Check a streamed reply's head frame: ``(status, headers)``.

    Raises:
        InvalidReply: it is not a head, or its status or headers are invalid.
    """
    status = reply.get("status")
    if reply.get("k") != "head":
        raise InvalidReply(f"unknown frame kind {str(reply.get('k'))[:20]!r}")
    if type(status) is not int or not 200 <= status <= 599:
        raise InvalidReply(f"status {status!r} is not an HTTP status (200-599)")
    return status, _parse_headers(reply.get("headers"))


def parse_stream_frame(frame: Any) -> tuple[str, bytes, str | None, list[LogRecord]]:
    """Check a frame that follows a head: ``(kind, data, error, logs)``.

    ``kind`` is ``"chunk"`` (``data`` is set) or ``"end"`` (``error`` and
    ``logs`` are); a plain reply with ``error == "memory"`` (the instance's
    last words when it ran out of memory) counts as an end.

    Raises:
        InvalidReply: anything else.
    """
    if not isinstance(frame, dict):
        raise InvalidReply("a stream frame is not a map")
    kind = frame.get("k")
    if kind == "chunk":
        data = frame.get("d")
        if not isinstance(data, bytes):
            raise InvalidReply("a stream chunk is not bytes")
        return "chunk", data, None, []
    error = frame.get("error")
    if (kind == "end" and error in (None, "exception")) or (kind is None and error == "memory"):
        return "end", b"", error, parse_logs(frame.get("logs"))
    raise InvalidReply("a stream frame is neither a chunk nor its end")


def _parse_headers(raw: Any) -> list[tuple[str, str]]:
    if not isinstance(raw, list):
        raise InvalidReply("headers are not a list")
    headers = []
    for item in raw:
        if not (
            isinstance(item, list)
            and len(item) == 2
            and isinstance(item[0], str)
            and isinstance(item[1], str)
        ):
            raise InvalidReply("a header is not a [name, value] pair of strings")
        name, value = item
        try:
            passes = header_passes(name, value)
        except ValueError as exc:
            raise InvalidReply(str(exc)) from None
        if passes:
            headers.append((name, value))
    return headers


def request_frame(invocation: Invocation) -> bytes:
    """The frame an instance receives for ``invocation``."""
    return encode(
        {
            "method": invocation.method,
            "url": invocation.url,
            "path": invocation.path,
            "query": invocation.query_string,
            "headers": invocation.headers,
            "body": invocation.body,
            "params": invocation.params,
            "id": invocation.request_id,
        }
    )


def parse_logs(raw: object) -> list[LogRecord]:
    """Untrusted ``[[ts, level, message], ...]`` as LogRecords; bad entries are dropped."""
    if not isinstance(raw, list):
        return []
    records = []
    for item in raw[:MAX_LOG_RECORDS]:
        if isinstance(item, list) and len(item) == 3:
            ts, level, message = item
            if isinstance(ts, int | float) and isinstance(message, str):
                level = level if level in _LEVELS else "info"
                records.append(LogRecord(float(ts), level, message[:MAX_LOG_MESSAGE]))
    return records
