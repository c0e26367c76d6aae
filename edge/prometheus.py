"""Prometheus exposition of the function metrics kept in Redis (``/metrics``).

Multi-process safe under gunicorn because nothing is counted here: every
runtime worker flushes its counts to Redis (:mod:`edge.metrics`), and this
module renders what Redis holds, for one node or for the whole cluster.
"""

from __future__ import annotations

from collections.abc import Iterator

import redis
import redis.asyncio as redis_async
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from prometheus_client.metrics_core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.registry import Collector

from edge.metrics import LABELS, OVERFLOW, Series, aload_series, bucket_upper_ms, load_series

PROMETHEUS_CONTENT_TYPE = CONTENT_TYPE_LATEST
EXPOSED_SECONDS = (
    0.0005,
    0.001,
    0.0025,
    0.005,
    0.01,
    0.025,
    0.05,
    0.1,
    0.25,
    0.5,
    1.0,
    2.5,
    5.0,
    10.0,
    30.0,
    60.0,
)


class _Exposition(Collector):
    """Prometheus metric families built from stored series."""

    def __init__(self, series: list[Series]) -> None:
        self.series = series

    def collect(self) -> Iterator[Metric]:
        invocations = CounterMetricFamily(
            "edge_function_invocations",
            "Function invocations by HTTP status class.",
            labels=[*LABELS, "status_class"],
        )
        simple = {
            name: CounterMetricFamily(f"edge_function_{name}", doc, labels=LABELS)
            for name, doc in _SIMPLE_COUNTERS.items()
        }
        duration = HistogramMetricFamily(
            "edge_function_duration_seconds",
            "Invocation duration, dispatch to reply.",
            labels=LABELS,
        )
        memory = GaugeMetricFamily(
            "edge_function_memory_peak_bytes",
            "Highest resident memory of any instance.",
            labels=LABELS,
        )
        for series in self.series:
            labels = [series.app, series.environment, series.function]
            for status_class, count in series.status_classes().items():
                invocations.add_metric([*labels, status_class], count)
            for name, family in simple.items():
                family.add_metric(labels, series.counts.get(name, 0))
            duration.add_metric(
                labels, _exposed_buckets(series), series.counts.get("duration_us", 0) / 1e6
            )
            memory.add_metric(labels, series.counts.get("memory_peak_kb", 0) * 1024)
        yield invocations
        yield from simple.values()
        yield duration
        yield memory


_SIMPLE_COUNTERS = {
    "errors": "Invocations answered 5xx or ended by a function fault.",
    "cold_starts": "Invocations that had to start a new instance.",
    "timeouts": "Invocations killed at the function's timeout.",
    "memory_kills": "Invocations killed for exceeding the memory limit.",
    "kv_ops": "KV operations the function asked for.",
    "kv_errors": "KV operations refused (limits, bad input) or failed (Redis down).",
    "subrequests": "Outbound fetch() calls made by the platform for the function.",
    "subrequest_errors": "Outbound fetch() calls refused by the egress policy or failed.",
    "response_bytes": "Response body bytes sent (a stream counted when it is over).",
}


def _exposed_index(fine: int) -> int:
    """Which exposition bucket a fine bucket's counts go to (len(...) = +Inf)."""
    if fine >= OVERFLOW:
        return len(EXPOSED_SECONDS)
    upper_s = bucket_upper_ms(fine) / 1000 * (1 - 1e-9)
    return next((i for i, le in enumerate(EXPOSED_SECONDS) if upper_s <= le), len(EXPOSED_SECONDS))


_FINE_TO_EXPOSED = tuple(_exposed_index(i) for i in range(OVERFLOW + 1))


def _exposed_buckets(series: Series) -> list[tuple[str, float]]:
    counts = [0] * (len(EXPOSED_SECONDS) + 1)
    for fine, count in series.buckets.items():
        counts[_FINE_TO_EXPOSED[min(max(fine, 0), OVERFLOW)]] += count
    bounds = [*(repr(le) for le in EXPOSED_SECONDS), "+Inf"]
    cumulative = 0
    buckets = []
    for bound, count in zip(bounds, counts, strict=True):
        cumulative += count
        buckets.append((bound, float(cumulative)))
    return buckets


def prometheus_text(client: redis.Redis, node: str | None = None) -> bytes:
    """The Prometheus text exposition of every function's figures.

    Serve it with ``Content-Type: PROMETHEUS_CONTENT_TYPE``. Safe under
    gunicorn with any number of workers: it reads Redis, where all of them
    flush (see the module docstring).

    Args:
        client: a synchronous Redis client.
        node: ``None`` for cluster-wide totals (the control plane's
            ``/metrics``); a node's name for that node's share (a runtime
            node's ``/metrics``).

    Returns:
        ``edge_function_invocations_total{app,environment,function,status_class}``,
        ``edge_function_{errors,cold_starts,timeouts,memory_kills,response_bytes}_total``,
        ``edge_function_duration_seconds`` (histogram, ``_bucket{le}``/``_sum``/
        ``_count``) and ``edge_function_memory_peak_bytes`` (gauge), all labelled
        ``app``, ``environment``, ``function``.

    Raises:
        redis.RedisError: Redis is unreachable.
    """
    return generate_latest(_Exposition(load_series(client, node)))


async def aprometheus_text(client: redis_async.Redis, node: str | None = None) -> bytes:
    """:func:`prometheus_text` for an asyncio client (the runtime's ASGI workers)."""
    return generate_latest(_Exposition(await aload_series(client, node)))
