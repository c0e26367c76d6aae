"""Per-minute series of each function, read back for charts and the API.

The runtime's :class:`edge.metrics.MetricsRecorder` merges every flush into one
Redis hash per function and hour (:func:`edge.metrics.series_key`) and one per
app and hour (:func:`edge.metrics.series_app_key`), in the same transaction as
the totals, so the series add up across workers and nodes exactly like
``edge metrics`` does. Hashes expire :data:`edge.metrics.SERIES_TTL` after their
last write: at least the last 24 hours are kept, nothing older piles up.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import redis

from edge.metrics import (
    INDEX_KEY,
    bucket_upper_ms,
    current_minute,
    index_labels,
    quantile_ms,
    series_app_key,
    series_key,
)

MAX_MINUTES = 24 * 60


@dataclass
class Minute:
    """One minute of one function (or, without buckets, of a whole app)."""

    counts: dict[str, int] = field(default_factory=dict)
    buckets: dict[int, int] = field(default_factory=dict)

    def add(self, name: str, value: int) -> None:
        if name.startswith("b:"):
            index = int(name[2:])
            self.buckets[index] = self.buckets.get(index, 0) + value
        else:
            self.counts[name] = self.counts.get(name, 0) + value

    def point(self, minute: int, histogram: bool = False) -> dict[str, Any]:
        n = self.counts.get("invocations", 0)
        point: dict[str, Any] = {
            "t": minute * 60,
            "requests": n,
            "errors": self.counts.get("errors", 0),
            "cold_starts": self.counts.get("cold_starts", 0),
            "avg_ms": round(self.counts.get("duration_us", 0) / 1000 / n, 3) if n else 0.0,
            "p50_ms": round(quantile_ms(self.buckets, 0.50), 3),
            "p95_ms": round(quantile_ms(self.buckets, 0.95), 3),
            "p99_ms": round(quantile_ms(self.buckets, 0.99), 3),
        }
        if histogram:  # upper bound (ms) -> count, non-empty buckets only
            point["histogram"] = {
                f"{bucket_upper_ms(i):.4g}": count
                for i, count in sorted(self.buckets.items())
                if count
            }
        return point


def _window(minutes: int, now: int | None) -> tuple[int, int]:
    """The first and last minute of the last ``minutes`` minutes."""
    last = current_minute() if now is None else now
    return last - max(1, min(minutes, MAX_MINUTES)) + 1, last


def _hours(first: int, last: int) -> range:
    return range(first // 60, last // 60 + 1)


def _minutes(
    hashes: Iterable[tuple[int, Mapping[Any, Any]]], first: int, last: int
) -> dict[int, Minute]:
    found: dict[int, Minute] = {}
    for hour, raw in hashes:
        for name, value in raw.items():
            text = name.decode() if isinstance(name, bytes) else str(name)
            offset, _, counter = text.partition(":")
            minute = hour * 60 + int(offset)
            if first <= minute <= last:
                found.setdefault(minute, Minute()).add(counter, int(value))
    return found


def read_series(
    client: redis.Redis,
    app: str,
    *,
    environment: str | None = None,
    function: str | None = None,
    minutes: int = 60,
    now: int | None = None,
    histogram: bool = False,
) -> list[dict[str, Any]]:
    """Each function's per-minute figures over the last ``minutes`` minutes.

    Args:
        client: a synchronous Redis client.
        app: whose functions.
        environment, function: only these (default: all).
        minutes: how far back, 1 .. 1440 (24 hours).
        now: the last minute (epoch minutes; default: the current one).
        histogram: also give each point its latency histogram, ``histogram``:
            bucket upper bound in ms (text) -> count, empty buckets left out.

    Returns:
        One dict per function, sorted by environment and function:
        ``environment``, ``function`` and ``points``, one per minute, oldest
        first, zeros included: ``t`` (epoch seconds), ``requests``, ``errors``,
        ``cold_starts``, ``avg_ms``, ``p50_ms``, ``p95_ms``, ``p99_ms``.

    Raises:
        redis.RedisError: Redis is unreachable.
    """
    first, last = _window(minutes, now)
    members: Any = client.smembers(INDEX_KEY)
    wanted = [
        labels
        for labels in index_labels(members, app, environment)
        if function in (None, labels[2])
    ]
    hours = _hours(first, last)
    pipe = client.pipeline(transaction=False)
    for labels in wanted:
        for hour in hours:
            pipe.hgetall(series_key(*labels, hour))
    replies = iter(pipe.execute() if wanted else [])
    result = []
    for _app, env, name in wanted:
        found = _minutes(((hour, next(replies)) for hour in hours), first, last)
        points = [found.get(m, Minute()).point(m, histogram) for m in range(first, last + 1)]
        result.append({"environment": env, "function": name, "points": points})
    return result


def read_app_series(
    client: redis.Redis, apps: list[str], *, minutes: int = 60, now: int | None = None
) -> dict[str, list[tuple[int, int]]]:
    """Per app, the last ``minutes`` minutes as ``(requests, errors)``, oldest first.

    Two hash reads per app in one round trip, whatever the number of functions.

    Raises:
        redis.RedisError: Redis is unreachable.
    """
    first, last = _window(minutes, now)
    hours = _hours(first, last)
    pipe = client.pipeline(transaction=False)
    for app in apps:
        for hour in hours:
            pipe.hgetall(series_app_key(app, hour))
    replies = iter(pipe.execute() if apps else [])
    result = {}
    for app in apps:
        found = _minutes(((hour, next(replies)) for hour in hours), first, last)
        result[app] = [
            (
                found[m].counts.get("invocations", 0) if m in found else 0,
                found[m].counts.get("errors", 0) if m in found else 0,
            )
            for m in range(first, last + 1)
        ]
    return result
