"""Per-function metrics, aggregated across every worker and runtime node in Redis.

Each runtime worker owns one :class:`MetricsRecorder`. ``observe()`` updates
plain in-process counters (no I/O); ``flush()``, run every second by a
background task, merges them into Redis in one ``MULTI`` pipeline of small Lua
scripts (``HINCRBY`` per counter and latency bucket, a max for the memory peak).

Why Redis and not ``prometheus_client``'s registry: under gunicorn every worker
is its own process, so an in-process registry would show whichever worker
happened to answer ``/metrics``, and ``prometheus_client``'s multiprocess mode
only sums files on one host. Here every worker adds its counts to the same Redis
hashes, so any worker of any node, or the control plane, renders the same
totals; counters only ever grow (``HINCRBY``), which is what Prometheus'
``rate()`` expects; a worker that dies loses at most its last second.

Redis layout (hashes; ``<node>`` names a runtime node, shared by its workers):

- ``edge:metrics:<app>:<environment>:<function>``: cluster-wide totals;
- ``edge:metrics-node:<node>:<app>:<environment>:<function>``: one node's share
  (expires :data:`NODE_TTL` seconds after the node's last flush);
- ``edge:metrics-index`` and ``edge:metrics-index-node:<node>``: sets of JSON
  ``[app, environment, function]`` naming the hashes above (no ``SCAN``);
- the per-minute series of :mod:`edge.series`, merged by the same script.

Hash fields: ``invocations``, ``errors`` (status >= 500 or any function fault),
``cold_starts``, ``timeouts``, ``memory_kills``, ``response_bytes`` (body
bytes sent, a streamed body's whole length), ``status:<n>xx``,
``duration_us`` (sum, microseconds), ``memory_peak_kb`` (max) and ``b:<i>``,
the latency histogram: bucket ``i`` counts durations in
``(upper(i - 1), upper(i)]`` with ``upper(i) = 0.01 ms * 10 ** (i / 60)``, i.e.
60 log-spaced buckets per decade (3.9% wide) from 0.01 ms to 60 s, so a
quantile interpolated inside its bucket is within ~4% of the exact value.

:mod:`edge.prometheus` renders the same hashes for ``/metrics``.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import math
import time
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import redis
import redis.asyncio as redis_async

from edge.flusher import Flusher

if TYPE_CHECKING:
    from edge.runtime.invocation import FunctionVersion, Outcome

logger = logging.getLogger(__name__)

KEY_PREFIX = "edge:metrics:"
NODE_KEY_PREFIX = "edge:metrics-node:"
INDEX_KEY = "edge:metrics-index"
NODE_INDEX_PREFIX = "edge:metrics-index-node:"
NODE_TTL = 7 * 24 * 3600
SERIES_PREFIX = "edge:series:"
# An hour's hash is last written in its last minute: it outlives that by 25 hours,
# so the last 24 hours are always complete.
SERIES_TTL = 25 * 3600

MIN_MS = 0.01
MAX_MS = 60_000.0
PER_DECADE = 60
LAST_BUCKET = math.ceil(math.log10(MAX_MS / MIN_MS) * PER_DECADE)
OVERFLOW = LAST_BUCKET + 1  # durations past MAX_MS
# Exposition buckets (seconds): Prometheus does not need 400 of them.
LABELS = ("app", "environment", "function")

_REDIS_DOWN = (redis.RedisError, OSError)
BINDING_COUNTERS = ("kv_ops", "kv_errors", "subrequests", "subrequest_errors")
_COUNTERS = ("invocations", "errors", "cold_starts", "timeouts", "memory_kills")

# KEYS: cluster hash, node hash, index set, node index set, then the hour hashes
# of the per-minute series: the function's and the app's (see edge.series).
# ARGV: index member, memory peak (KB), node TTL, minute of the hour, series TTL,
# then field/increment pairs.
_MERGE = """
for k = 1, 2 do
  for i = 6, #ARGV, 2 do redis.call('HINCRBY', KEYS[k], ARGV[i], ARGV[i + 1]) end
  local peak = tonumber(ARGV[2])
  if peak > tonumber(redis.call('HGET', KEYS[k], 'memory_peak_kb') or '0') then
    redis.call('HSET', KEYS[k], 'memory_peak_kb', peak)
  end
end
redis.call('SADD', KEYS[3], ARGV[1])
redis.call('SADD', KEYS[4], ARGV[1])
redis.call('EXPIRE', KEYS[2], ARGV[3])
redis.call('EXPIRE', KEYS[4], ARGV[3])
for i = 6, #ARGV, 2 do
  local name = ARGV[i]
  if name == 'invocations' or name == 'errors' then
    redis.call('HINCRBY', KEYS[6], ARGV[4] .. ':' .. name, ARGV[i + 1])
  end
  if name == 'invocations' or name == 'errors' or name == 'cold_starts'
      or name == 'duration_us' or string.sub(name, 1, 2) == 'b:' then
    redis.call('HINCRBY', KEYS[5], ARGV[4] .. ':' .. name, ARGV[i + 1])
  end
end
redis.call('EXPIRE', KEYS[5], ARGV[5])
redis.call('EXPIRE', KEYS[6], ARGV[5])
return 1
"""


def metrics_key(app: str, environment: str, function: str) -> str:
    """The cluster-wide hash of one function in one environment."""
    return f"{KEY_PREFIX}{app}:{environment}:{function}"


def node_metrics_key(node: str, app: str, environment: str, function: str) -> str:
    """One runtime node's hash of one function in one environment."""
    return f"{NODE_KEY_PREFIX}{node}:{app}:{environment}:{function}"


def series_key(app: str, environment: str, function: str, hour: int) -> str:
    """One function's per-minute series for one hour (``hour`` = epoch minutes // 60).

    Fields are ``<minute of the hour>:<counter>``: ``invocations``, ``errors``,
    ``cold_starts``, ``duration_us`` and the latency buckets ``b:<i>``.
    """
    return f"{SERIES_PREFIX}{app}:{environment}:{function}:{hour}"


def series_app_key(app: str, hour: int) -> str:
    """An app's per-minute ``invocations`` and ``errors`` for one hour, all functions."""
    return f"{SERIES_PREFIX}{app}:{hour}"


def current_minute() -> int:
    """Minutes since the epoch, now."""
    return int(time.time()) // 60


def bucket_upper_ms(index: int) -> float:
    """The inclusive upper bound of histogram bucket ``index``, in ms."""
    return MIN_MS * 10 ** (index / PER_DECADE)


def bucket_index(duration_ms: float) -> int:
    """The histogram bucket a duration falls in (``OVERFLOW`` past 60 s)."""
    if not duration_ms > MIN_MS:  # also NaN
        return 0
    if duration_ms > MAX_MS * 10:
        return OVERFLOW
    index = math.ceil(math.log10(duration_ms / MIN_MS) * PER_DECADE - 1e-9)
    return min(index, OVERFLOW)


def quantile_ms(buckets: Mapping[int, int], q: float) -> float:
    """The ``q``-quantile (0..1) of a bucket histogram, interpolated in its bucket.

    Interpolation is geometric, matching the log-spaced buckets; 0 when empty.
    """
    total = sum(buckets.values())
    if total == 0:
        return 0.0
    rank = q * total
    seen = 0
    for index in sorted(buckets):
        count = buckets[index]
        if count and seen + count >= rank:
            return _interpolate(index, (rank - seen) / count)
        seen += count
    return _interpolate(max(buckets), 1.0)


def _interpolate(index: int, fraction: float) -> float:
    if index == 0:
        return MIN_MS * fraction
    if index >= OVERFLOW:
        return bucket_upper_ms(LAST_BUCKET)
    low = bucket_upper_ms(index - 1)
    return low * (bucket_upper_ms(index) / low) ** fraction


_BUCKET_FIELDS = tuple(f"b:{i}" for i in range(OVERFLOW + 1))
_STATUS_FIELDS = tuple(f"status:{i}xx" for i in range(6))


@dataclass
class _Cell:
    """Unflushed counts of one (app, environment, function)."""

    counts: Counter[str] = field(default_factory=Counter)
    memory_peak_kb: int = 0
    # The minute its first count arrived in: a cell lives one flush interval
    # (a second), so its counts land in the per-minute series at most that late.
    minute: int = field(default_factory=current_minute)

    def merge(self, other: _Cell) -> None:
        self.counts.update(other.counts)
        self.memory_peak_kb = max(self.memory_peak_kb, other.memory_peak_kb)


class MetricsRecorder(Flusher):
    """One worker's in-process metrics, merged into Redis by :meth:`flush`.

    Args:
        client: an asyncio Redis client, owned (and closed) by the caller.
        node: the runtime node's name, the same for all of its workers (e.g.
            ``f"{socket.gethostname()}:{config.runtime_port}"``); its
            ``/metrics`` shows that node's share.
        interval: seconds between background flushes.
    """

    task_name = "edge-metrics"

    def __init__(self, client: redis_async.Redis, node: str, *, interval: float = 1.0) -> None:
        super().__init__()
        self.client = client
        self.node = node
        self.interval = interval
        self._cells: dict[tuple[str, str, str], _Cell] = {}
        self._failing = False

    def observe(
        self,
        app: str,
        environment: str,
        function: str,
        *,
        status: int,
        duration_ms: float,
        cold: bool = False,
        error: str | None = None,
        memory_peak_kb: int = 0,
        response_bytes: int = 0,
    ) -> None:
        """Count one invocation: O(1), no I/O, never raises for odd values.

        Args:
            app, environment, function: what ran.
            status: the HTTP status sent.
            duration_ms: dispatch to reply.
            cold: whether it needed a new instance.
            error: the :class:`~edge.runtime.invocation.Outcome` error, if any;
                ``"timeout"`` and ``"memory"`` also count as timeouts / memory kills.
            memory_peak_kb: the instance's peak resident memory (0 if unknown).
            response_bytes: body bytes sent (a stream is counted once, when over).
        """
        if not 0.0 <= duration_ms < math.inf:  # NaN, negative or infinite: a clock glitch
            duration_ms = 0.0
        key = (app, environment, function)
        cell = self._cells.get(key)
        if cell is None:
            cell = self._cells[key] = _Cell()
        counts = cell.counts
        counts["invocations"] += 1
        counts[_STATUS_FIELDS[min(max(status // 100, 1), 5)]] += 1
        # Zero increments are skipped (a flush drops zero counts anyway): on the
        # hot path most of these are false.
        if status >= 500 or error is not None:
            counts["errors"] += 1
            if error == "timeout":
                counts["timeouts"] += 1
            elif error == "memory":
                counts["memory_kills"] += 1
        if cold:
            counts["cold_starts"] += 1
        if response_bytes > 0:
            counts["response_bytes"] += response_bytes
        counts["duration_us"] += round(duration_ms * 1000)
        counts[_BUCKET_FIELDS[bucket_index(duration_ms)]] += 1
        cell.memory_peak_kb = max(cell.memory_peak_kb, memory_peak_kb)

    def count(self, version: FunctionVersion, name: str, n: int = 1) -> None:
        """Add ``n`` to one of a function's binding counters (``kv_ops``,
        ``kv_errors``, ``subrequests``, ``subrequest_errors``)."""
        key = (version.app, version.environment, version.name)
        cell = self._cells.get(key)
        if cell is None:
            cell = self._cells[key] = _Cell()
        cell.counts[name] += n

    def observe_outcome(
        self, version: FunctionVersion, outcome: Outcome, response_bytes: int = 0
    ) -> None:
        """:meth:`observe` one pool answer for ``version`` (``response_bytes`` sent)."""
        self.observe(
            version.app,
            version.environment,
            version.name,
            status=outcome.status,
            duration_ms=outcome.duration_ms,
            cold=outcome.cold,
            error=outcome.error,
            memory_peak_kb=outcome.memory_peak_kb,
            response_bytes=response_bytes,
        )

    async def flush(self) -> int:
        """Merge the local counts into Redis in one transaction.

        Returns:
            How many invocations were merged. On a Redis failure nothing is
            merged and nothing is lost: the counts stay local for the next flush.
        """
        cells, self._cells = self._cells, {}
        if not cells:
            return 0
        try:
            async with self.client.pipeline(transaction=True) as pipe:
                for key, cell in cells.items():
                    self._queue(pipe, key, cell)
                await pipe.execute()
        except _REDIS_DOWN as exc:
            self._restore(cells)
            if not self._failing:
                logger.warning("metrics not flushed, Redis unreachable (%s); kept locally", exc)
            self._failing = True
            return 0
        self._failing = False
        return sum(cell.counts["invocations"] for cell in cells.values())

    def _queue(self, pipe: Any, key: tuple[str, str, str], cell: _Cell) -> None:
        hour, minute = divmod(cell.minute, 60)
        keys = (
            metrics_key(*key),
            node_metrics_key(self.node, *key),
            INDEX_KEY,
            NODE_INDEX_PREFIX + self.node,
            series_key(*key, hour),
            series_app_key(key[0], hour),
        )
        pairs = [part for name, count in cell.counts.items() if count for part in (name, count)]
        args = (json.dumps(key), cell.memory_peak_kb, NODE_TTL, minute, SERIES_TTL, *pairs)
        pipe.eval(_MERGE, len(keys), *keys, *args)

    def _restore(self, cells: dict[tuple[str, str, str], _Cell]) -> None:
        for key, cell in cells.items():
            current = self._cells.get(key)
            if current is None:
                self._cells[key] = cell
            else:
                current.merge(cell)

    async def run(self) -> None:
        """Flush every ``interval`` seconds until :meth:`aclose`, then a last time."""
        while not self._closing.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._closing.wait(), self.interval)
            await self.flush()


@dataclass(frozen=True)
class Series:
    """One function's stored figures, parsed."""

    app: str
    environment: str
    function: str
    counts: dict[str, int]
    buckets: dict[int, int]

    @classmethod
    def parse(cls, labels: tuple[str, str, str], raw: Mapping[Any, Any]) -> Series:
        counts: dict[str, int] = {}
        buckets: dict[int, int] = {}
        for name, value in raw.items():
            text = name.decode() if isinstance(name, bytes) else str(name)
            if text.startswith("b:"):
                buckets[int(text[2:])] = int(value)
            else:
                counts[text] = int(value)
        return cls(*labels, counts, buckets)

    @property
    def invocations(self) -> int:
        return self.counts.get("invocations", 0)

    def status_classes(self) -> dict[str, int]:
        return {
            name[7:]: count
            for name, count in sorted(self.counts.items())
            if name.startswith("status:")
        }


def index_labels(
    members: Iterable[Any], app: str | None, environment: str | None
) -> list[tuple[str, str, str]]:
    found = set()
    for member in members:
        try:
            labels = tuple(str(part) for part in json.loads(member))
        except (ValueError, TypeError):
            continue
        if len(labels) == 3 and app in (None, labels[0]) and environment in (None, labels[1]):
            found.add((labels[0], labels[1], labels[2]))
    return sorted(found)


def _key_of(node: str | None, labels: tuple[str, str, str]) -> str:
    return metrics_key(*labels) if node is None else node_metrics_key(node, *labels)


def _index_of(node: str | None) -> str:
    return INDEX_KEY if node is None else NODE_INDEX_PREFIX + node


def load_series(
    client: redis.Redis, node: str | None, app: str | None = None, environment: str | None = None
) -> list[Series]:
    members: Any = client.smembers(_index_of(node))
    wanted = index_labels(members, app, environment)
    pipe = client.pipeline(transaction=False)
    for labels in wanted:
        pipe.hgetall(_key_of(node, labels))
    hashes = pipe.execute() if wanted else []
    return [Series.parse(labels, raw) for labels, raw in zip(wanted, hashes, strict=True) if raw]


async def aload_series(client: redis_async.Redis, node: str | None) -> list[Series]:
    members: Any = await client.smembers(_index_of(node))
    wanted = index_labels(members, None, None)
    async with client.pipeline(transaction=False) as pipe:
        for labels in wanted:
            pipe.hgetall(_key_of(node, labels))
        hashes = await pipe.execute() if wanted else []
    return [Series.parse(labels, raw) for labels, raw in zip(wanted, hashes, strict=True) if raw]


def _row(series: Series) -> dict[str, Any]:
    n = series.invocations
    counts = series.counts
    return {
        "app": series.app,
        "environment": series.environment,
        "function": series.function,
        "invocations": n,
        "errors": counts.get("errors", 0),
        "cold_starts": counts.get("cold_starts", 0),
        "warm_hit_ratio": round((n - counts.get("cold_starts", 0)) / n, 4) if n else 0.0,
        "avg_ms": round(counts.get("duration_us", 0) / 1000 / n, 3) if n else 0.0,
        "p50_ms": round(quantile_ms(series.buckets, 0.50), 3),
        "p95_ms": round(quantile_ms(series.buckets, 0.95), 3),
        "p99_ms": round(quantile_ms(series.buckets, 0.99), 3),
        "memory_peak_kb": counts.get("memory_peak_kb", 0),
        "timeouts": counts.get("timeouts", 0),
        "memory_kills": counts.get("memory_kills", 0),
        **{name: counts.get(name, 0) for name in BINDING_COUNTERS},
        "status_classes": series.status_classes(),
    }


def read_metrics(
    client: redis.Redis, app: str, environment: str | None = None
) -> list[dict[str, Any]]:
    """Cluster-wide figures for each function of ``app``, sorted by environment, function.

    Args:
        client: a synchronous Redis client.
        app: whose functions.
        environment: only this environment (default: all of them).

    Returns:
        One dict per function: ``app``, ``environment``, ``function``,
        ``invocations``, ``errors``, ``cold_starts``, ``warm_hit_ratio``
        (0..1), ``avg_ms``, ``p50_ms``, ``p95_ms``, ``p99_ms`` (ms, 3 decimals),
        ``memory_peak_kb``, ``timeouts``, ``memory_kills`` and
        ``status_classes`` (e.g. ``{"2xx": 10, "5xx": 1}``).

    Raises:
        redis.RedisError: Redis is unreachable.
    """
    return [_row(series) for series in load_series(client, None, app, environment)]
