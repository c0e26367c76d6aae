"""Function logs and platform events, in one capped Redis stream per app.

Every app has a stream ``edge:logs:<app>`` (see :func:`stream_key`), trimmed
with ``XADD ... MAXLEN ~ <config.log_stream_len>`` so a chatty function can
never grow Redis without bound. One entry is one :class:`LogEntry`:

- ``ts``: wall-clock seconds (float) when the line was written;
- ``app``, ``environment`` (``"production"`` or a preview), ``release`` (int;
  0 when not tied to one), ``function`` (``""`` for app-wide events);
- ``request_id``: the request it belongs to (``""`` when none);
- ``level``: ``debug``, ``info``, ``warning`` or ``error``;
- ``message``: the text (capped at :data:`MAX_MESSAGE_CHARS`);
- ``kind``: ``function`` (what a function wrote), ``platform`` (deploys,
  rejects, timeouts, memory kills, crashes, evictions) or ``access``.

Writers:

- the runtime worker owns one :class:`LogWriter`; ``emit()`` only appends to a
  bounded in-memory buffer (it never awaits, blocks or raises), and a background
  task pipelines the buffer to Redis at most every ~100 ms;
- the control plane calls :func:`emit_sync` for deploy events.

Readers (control plane, on behalf of ``edge logs``) get plain dicts: the entry's
fields plus ``id``, the stream id. :func:`read_logs` pages backwards through the
stream; :func:`follow_logs` tails it with ``XREAD BLOCK``. Both filter in the
platform process, so a client only ever receives the records it asked for.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import deque
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, cast

import redis
import redis.asyncio as redis_async

from edge.flusher import Flusher

if TYPE_CHECKING:
    from edge.runtime.invocation import FunctionVersion, Outcome

logger = logging.getLogger(__name__)

STREAM_PREFIX = "edge:logs:"
LEVELS = ("debug", "info", "warning", "error")
KINDS = ("function", "platform", "access")
# APPSEC: the message is written by untrusted function code; one huge print
# must not take a large bite of the shared Redis.
MAX_MESSAGE_CHARS = 8192
READ_PAGE = 1000
MAX_BACKOFF = 2.0  # seconds between write attempts while Redis is down

_REDIS_DOWN = (redis.RedisError, OSError)


def stream_key(app: str) -> str:
    """The Redis key of ``app``'s log stream."""
    return STREAM_PREFIX + app


@dataclass(frozen=True, slots=True)
class LogEntry:
    """One log line or platform event (see the module docstring for fields)."""

    ts: float
    app: str
    environment: str
    release: int
    function: str
    request_id: str
    level: str
    message: str
    kind: str = "function"

    def to_fields(self) -> dict[str, str]:
        """The stream entry's fields: strings, level and kind normalised, message capped."""
        message = str(self.message)
        if len(message) > MAX_MESSAGE_CHARS:
            message = message[:MAX_MESSAGE_CHARS] + " ...[truncated]"
        return {
            "ts": repr(float(self.ts)),
            "app": self.app,
            "environment": self.environment,
            "release": str(int(self.release)),
            "function": self.function,
            "request_id": self.request_id,
            "level": self.level if self.level in LEVELS else "info",
            "message": message,
            "kind": self.kind if self.kind in KINDS else "platform",
        }


def platform_event(
    app: str,
    environment: str,
    message: str,
    *,
    release: int = 0,
    level: str = "info",
    function: str = "",
    request_id: str = "",
) -> LogEntry:
    """A ``kind="platform"`` entry stamped now, e.g. ``"v3 live"`` after a deploy."""
    return LogEntry(
        time.time(), app, environment, release, function, request_id, level, message, "platform"
    )


# Platform faults that are also platform events in the app's log, at this level;
# the event's text is the fault's own message (edge.runtime.faults).
_EVENT_LEVELS = {
    "timeout": "error",
    "memory": "error",
    "crash": "error",
    "invalid_response": "error",
    "load": "error",
    "overloaded": "warning",
    "unavailable": "error",
}


def outcome_entries(version: FunctionVersion, request_id: str, outcome: Outcome) -> list[LogEntry]:
    """The entries one invocation produces: its log lines, then any platform event.

    Args:
        version: the function version that ran.
        request_id: the request's id (the ``x-edge-request-id`` header).
        outcome: what the pool answered; its ``logs`` become ``kind="function"``
            entries and a timeout, memory kill, crash, overload or unavailability
            becomes one ``kind="platform"`` entry.

    Returns:
        Entries ready for :meth:`LogWriter.emit`.
    """
    entries = [
        LogEntry(
            line.ts,
            version.app,
            version.environment,
            version.release,
            version.name,
            request_id,
            line.level,
            line.message,
        )
        for line in outcome.logs
    ]
    level = _EVENT_LEVELS.get(outcome.error or "")
    if level is not None:
        entries.append(
            platform_event(
                version.app,
                version.environment,
                f"{outcome.message} ({outcome.status})",
                release=version.release,
                level=level,
                function=version.name,
                request_id=request_id,
            )
        )
    return entries


class LogWriter(Flusher):
    """The runtime worker's batching, non-blocking writer.

    Call :meth:`emit` on the request path: it appends to a bounded buffer and
    returns at once. :meth:`start` launches a task that, whenever the buffer
    is non-empty, waits ``interval`` seconds to gather a batch and pipelines
    the XADDs, so a ``print`` reaches ``edge logs`` well within a second.

    While Redis is unreachable the buffer keeps the oldest ``buffer_size``
    entries (delivered once Redis is back); newer ones are dropped and counted
    in :attr:`dropped`. Not thread-safe: use it from its event loop only.

    Args:
        client: an asyncio Redis client, owned (and closed) by the caller.
        maxlen: the approximate cap of each app's stream (``config.log_stream_len``).
        buffer_size: the most entries held in memory.
        interval: seconds to gather a batch before writing it.
    """

    task_name = "edge-logs"

    def __init__(
        self,
        client: redis_async.Redis,
        maxlen: int,
        *,
        buffer_size: int = 10_000,
        interval: float = 0.1,
    ) -> None:
        super().__init__()
        self.client = client
        self.maxlen = maxlen
        self.buffer_size = buffer_size
        self.interval = interval
        self.dropped = 0
        self.written = 0
        self._buffer: deque[LogEntry] = deque()
        self._pending = asyncio.Event()
        self._failing = False

    def emit(self, entry: LogEntry) -> None:
        """Queue one entry; never blocks, awaits or raises (drops when full)."""
        if len(self._buffer) >= self.buffer_size:
            self.dropped += 1
            return
        self._buffer.append(entry)
        self._pending.set()

    def emit_many(self, entries: list[LogEntry]) -> None:
        """Queue several entries, e.g. :func:`outcome_entries`' result."""
        for entry in entries:
            self.emit(entry)

    @property
    def buffered(self) -> int:
        """How many entries wait to be written."""
        return len(self._buffer)

    async def flush(self, batch_size: int = 1000) -> int:
        """Write everything buffered, one pipeline per ``batch_size`` entries.

        Returns:
            How many entries were written; never raises for a Redis failure (the
            unwritten entries stay buffered for the next attempt).
        """
        written = 0
        while self._buffer:
            batch = [self._buffer.popleft() for _ in range(min(batch_size, len(self._buffer)))]
            if not await self._write(batch):
                self._requeue(batch)
                break
            written += len(batch)
        self.written += written
        return written

    async def _write(self, batch: list[LogEntry]) -> bool:
        pipe = self.client.pipeline(transaction=False)
        for entry in batch:
            pipe.xadd(
                stream_key(entry.app),
                entry.to_fields(),  # type: ignore[arg-type]
                maxlen=self.maxlen,
                approximate=True,
            )
        try:
            await pipe.execute()
        except _REDIS_DOWN as exc:
            if not self._failing:
                logger.warning(
                    "log stream unreachable (%s): buffering up to %d lines", exc, self.buffer_size
                )
            self._failing = True
            return False
        if self._failing:
            logger.warning("log stream reachable again; %d lines dropped so far", self.dropped)
        self._failing = False
        return True

    def _requeue(self, batch: list[LogEntry]) -> None:
        self._buffer.extendleft(reversed(batch))
        while len(self._buffer) > self.buffer_size:
            self._buffer.pop()
            self.dropped += 1
        self._pending.set()  # so run() retries even if this was a manual flush

    async def run(self) -> None:
        """Write batches until :meth:`aclose`, then what is left; backs off while Redis is down."""
        backoff = self.interval
        while not self._closing.is_set():
            await self._pending.wait()
            with contextlib.suppress(TimeoutError):  # gather a batch; aclose() cuts it short
                await asyncio.wait_for(self._closing.wait(), backoff)
            self._pending.clear()
            await self.flush()
            if self._buffer:  # Redis is failing: retry later, not in a tight loop
                self._pending.set()
                backoff = min(backoff * 2, MAX_BACKOFF)
            else:
                backoff = self.interval

    def _wake(self) -> None:
        self._pending.set()


def emit_sync(client: redis.Redis, entry: LogEntry, maxlen: int) -> str | None:
    """Append one entry now (control plane: deploy events, rejects).

    Args:
        client: a synchronous Redis client.
        entry: what to write, e.g. from :func:`platform_event`.
        maxlen: the approximate cap of the stream (``config.log_stream_len``).

    Returns:
        The new stream id, or ``None`` if Redis was unreachable (logged, not
        raised: a log line must never fail a deploy).
    """
    try:
        entry_id = client.xadd(
            stream_key(entry.app),
            entry.to_fields(),  # type: ignore[arg-type]
            maxlen=maxlen,
            approximate=True,
        )
    except _REDIS_DOWN as exc:
        logger.warning("could not write log event for %s: %s", entry.app, exc)
        return None
    return _text(entry_id)


def _text(value: bytes | str) -> str:
    return value.decode("utf-8", "replace") if isinstance(value, bytes) else value


def _decode(entry_id: bytes | str, fields: Mapping[Any, Any]) -> dict[str, Any]:
    record: dict[str, Any] = {_text(k): _text(v) for k, v in fields.items()}
    record["id"] = _text(entry_id)
    try:
        record["ts"] = float(record.get("ts", 0.0))
        record["release"] = int(record.get("release", 0))
    except ValueError:
        record["ts"], record["release"] = 0.0, 0
    for name in ("app", "environment", "function", "request_id", "message"):
        record.setdefault(name, "")
    record.setdefault("level", "info")
    record.setdefault("kind", "function")
    return record


def _matches(record: Mapping[str, Any], function: str | None, environment: str | None) -> bool:
    return (function is None or record["function"] == function) and (
        environment is None or record["environment"] == environment
    )


def read_logs(
    client: redis.Redis,
    app: str,
    *,
    function: str | None = None,
    environment: str | None = None,
    since_seconds: float | None = None,
    limit: int = 1000,
) -> list[dict[str, Any]]:
    """The latest ``limit`` matching records of ``app``, oldest first.

    Args:
        client: a synchronous Redis client.
        app: whose stream to read.
        function: only this function's records (platform events name theirs too).
        environment: only this environment's records.
        since_seconds: only records added within the last ``since_seconds``
            (by the stream id's time, i.e. the Redis server's clock).
        limit: the most records returned.

    Returns:
        Dicts with the :class:`LogEntry` fields (``ts`` float, ``release`` int)
        and ``id``; pass the last ``id`` to :func:`follow_logs` to continue.

    Raises:
        redis.RedisError: Redis is unreachable.
    """
    low = "-"
    if since_seconds is not None:
        now_s, now_us = client.time()  # the stream ids' clock, not ours
        low = f"{int((now_s + now_us / 1e6 - since_seconds) * 1000)}-0"
    found: list[dict[str, Any]] = []
    high = "+"
    while len(found) < limit:
        page = cast(
            list[Any], client.xrevrange(stream_key(app), max=high, min=low, count=READ_PAGE)
        )
        for entry_id, fields in page:
            record = _decode(entry_id, fields)
            if _matches(record, function, environment):
                found.append(record)
        if len(page) < READ_PAGE:
            break
        high = "(" + _text(page[-1][0])
    found = found[: max(limit, 0)]
    found.reverse()
    return found


def follow_batches(
    client: redis.Redis,
    app: str,
    *,
    function: str | None = None,
    environment: str | None = None,
    last_id: str = "$",
    block_ms: int = 1000,
) -> Iterator[list[dict[str, Any]]]:
    """Tail ``app``'s stream: one list of matching records per ``XREAD BLOCK``.

    An empty list means ``block_ms`` passed with nothing new: a streaming HTTP
    handler can use it to write a keep-alive and notice a client that left.
    Same arguments as :func:`follow_logs`.
    """
    key = stream_key(app)
    if last_id == "$":  # pin "now" once: a later XREAD with "$" would skip lines
        newest = cast(list[Any], client.xrevrange(key, count=1))
        last_id = _text(newest[0][0]) if newest else "0-0"
    while True:
        reply: Any = client.xread({key: last_id}, count=READ_PAGE, block=block_ms)
        batch: list[dict[str, Any]] = []
        for _, entries in reply or ():
            for entry_id, fields in entries:
                last_id = _text(entry_id)
                record = _decode(entry_id, fields)
                if _matches(record, function, environment):
                    batch.append(record)
        yield batch


def follow_logs(
    client: redis.Redis,
    app: str,
    *,
    function: str | None = None,
    environment: str | None = None,
    last_id: str = "$",
    block_ms: int = 1000,
) -> Iterator[dict[str, Any]]:
    """Yield ``app``'s matching records as they arrive, forever.

    Args:
        client: a synchronous Redis client whose ``socket_timeout`` (if any)
            exceeds ``block_ms``.
        app: whose stream to follow.
        function: only this function's records.
        environment: only this environment's records.
        last_id: start after this stream id; ``"$"`` means "from now on".
        block_ms: how long one ``XREAD BLOCK`` waits.

    Yields:
        Records shaped as :func:`read_logs` returns them.

    Raises:
        redis.RedisError: Redis became unreachable.
    """
    for batch in follow_batches(
        client, app, function=function, environment=environment, last_id=last_id, block_ms=block_ms
    ):
        yield from batch


def format_record(record: Mapping[str, Any]) -> str:
    """One readable line: local time, level, function, request id, message.

    Platform events without a function show ``[platform]``; continuation lines
    of a multi-line message (a traceback) are indented under it.
    """
    ts = float(record.get("ts") or 0.0)
    stamp = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(ts))
    millis = int((ts % 1) * 1000)
    who = record.get("function") or f"[{record.get('kind') or 'platform'}]"
    request_id = record.get("request_id") or "-"
    level = str(record.get("level") or "info").upper()
    message = str(record.get("message") or "").rstrip("\n").replace("\n", "\n    ")
    return f"{stamp}.{millis:03d} {level:<7} {who} {request_id} {message}"
