"""Metrics against a real Redis: several recorders (workers on two nodes) merge exactly."""

from __future__ import annotations

import asyncio
import math
import random
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import redis
import redis.asyncio as redis_async
from prometheus_client.parser import text_string_to_metric_families

from edge.metrics import MetricsRecorder, metrics_key, read_metrics
from edge.prometheus import aprometheus_text, prometheus_text
from edge.redisserver import RedisServer
from edge.runtime.invocation import FunctionVersion, Outcome


@pytest.fixture
def client(redis_server: RedisServer) -> Iterator[redis.Redis]:
    sync = redis.Redis.from_url(redis_server.url)
    yield sync
    sync.close()


def exact_quantile(samples: list[float], q: float) -> float:
    """Nearest-rank quantile of the raw samples."""
    ordered = sorted(samples)
    return ordered[max(math.ceil(q * len(ordered)) - 1, 0)]


async def record(url: str, plan: list[tuple[str, list[dict[str, Any]]]]) -> int:
    """Run one recorder per (node, observations) entry, flush them all; returns merged count."""
    clients = [redis_async.Redis.from_url(url) for _ in plan]
    try:
        recorders = [MetricsRecorder(c, node) for c, (node, _) in zip(clients, plan, strict=True)]
        for recorder, (_, observations) in zip(recorders, plan, strict=True):
            for obs in observations:
                recorder.observe(
                    obs["app"],
                    obs["env"],
                    obs["fn"],
                    status=obs["status"],
                    duration_ms=obs["ms"],
                    cold=obs["cold"],
                    error=obs["error"],
                    memory_peak_kb=obs["mem"],
                )
        merged = await asyncio.gather(*(r.flush() for r in recorders))
        return sum(merged)
    finally:
        for c in clients:
            await c.aclose()


def obs(
    fn: str = "users",
    *,
    env: str = "production",
    status: int = 200,
    ms: float = 5.0,
    cold: bool = False,
    error: str | None = None,
    mem: int = 0,
) -> dict[str, Any]:
    return {
        "app": "shop",
        "env": env,
        "fn": fn,
        "status": status,
        "ms": ms,
        "cold": cold,
        "error": error,
        "mem": mem,
    }


def by_function(rows: list[dict[str, Any]]) -> dict[tuple[str, str], dict[str, Any]]:
    return {(row["environment"], row["function"]): row for row in rows}


def test_counters_are_exact_across_workers_and_nodes(
    redis_server: RedisServer, client: redis.Redis
) -> None:
    worker_a = [obs(cold=True, mem=30_000)] + [obs() for _ in range(299)]
    worker_b = (
        [obs(status=500, error="exception", mem=45_000)]
        + [obs(status=504, error="timeout", ms=5000.0) for _ in range(3)]
        + [obs(status=502, error="memory", cold=True) for _ in range(2)]
        + [obs(status=404) for _ in range(4)]
        + [obs() for _ in range(190)]
    )
    worker_c = [obs(cold=True, mem=12_000)] + [obs(env="feature-x") for _ in range(49)]
    worker_c += [obs("cart", status=201) for _ in range(7)]
    plan = [("node-1", worker_a), ("node-1", worker_b), ("node-2", worker_c)]

    assert asyncio.run(record(redis_server.url, plan)) == 300 + 200 + 57

    rows = by_function(read_metrics(client, "shop"))
    users = rows[("production", "users")]
    assert users["invocations"] == 300 + 200 + 1
    assert users["errors"] == 1 + 3 + 2
    assert users["timeouts"] == 3
    assert users["memory_kills"] == 2
    assert users["cold_starts"] == 1 + 2 + 1
    assert users["warm_hit_ratio"] == pytest.approx((501 - 4) / 501, abs=1e-4)
    assert users["memory_peak_kb"] == 45_000
    assert users["status_classes"] == {"2xx": 491, "4xx": 4, "5xx": 6}
    assert rows[("feature-x", "users")]["invocations"] == 49
    assert rows[("production", "cart")]["status_classes"] == {"2xx": 7}
    assert [row["function"] for row in read_metrics(client, "shop", "feature-x")] == ["users"]
    assert read_metrics(client, "other-app") == []


def test_a_second_flush_adds_and_an_empty_flush_changes_nothing(
    redis_server: RedisServer, client: redis.Redis
) -> None:
    async def scenario() -> None:
        async_client = redis_async.Redis.from_url(redis_server.url)
        try:
            recorder = MetricsRecorder(async_client, "node-1")
            for _ in range(10):
                recorder.observe("shop", "production", "users", status=200, duration_ms=1.0)
            assert client.exists("edge:metrics:shop:production:users") == 0  # observe: no I/O
            assert await recorder.flush() == 10
            assert await recorder.flush() == 0
            recorder.observe(
                "shop", "production", "users", status=200, duration_ms=1.0, memory_peak_kb=10
            )
            recorder.observe(
                "shop", "production", "users", status=200, duration_ms=float("nan")
            )  # a clock glitch still counts
            await recorder.flush()
        finally:
            await async_client.aclose()

    asyncio.run(scenario())
    (row,) = read_metrics(client, "shop")
    assert row["invocations"] == 12
    assert row["memory_peak_kb"] == 10


def test_background_task_flushes_and_close_flushes_the_rest(
    redis_server: RedisServer, client: redis.Redis, tmp_path: Path
) -> None:
    version = FunctionVersion(
        "k",
        "shop",
        "production",
        2,
        "users",
        "python",
        tmp_path,
        "f.py",
        "handle",
        {},
        memory_mb=64,
        timeout_ms=1000,
    )

    async def scenario() -> None:
        async_client = redis_async.Redis.from_url(redis_server.url)
        recorder = MetricsRecorder(async_client, "node-1", interval=0.05)
        recorder.start()
        try:
            recorder.observe_outcome(
                version, Outcome(200, [], b"", cold=True, duration_ms=3.0, memory_peak_kb=900)
            )
            deadline = time.monotonic() + 5.0
            while not await async_client.exists(metrics_key("shop", "production", "users")):
                assert time.monotonic() < deadline, "the background flush never happened"
                await asyncio.sleep(0.01)
            recorder.observe_outcome(
                version, Outcome(504, [], b"", error="timeout", duration_ms=1000.0)
            )
        finally:
            await recorder.aclose()
            await async_client.aclose()

    asyncio.run(scenario())
    (row,) = read_metrics(client, "shop")
    assert (row["invocations"], row["cold_starts"], row["timeouts"]) == (2, 1, 1)
    assert row["memory_peak_kb"] == 900


def test_latency_quantiles_are_within_ten_percent(
    redis_server: RedisServer, client: redis.Redis
) -> None:
    rng = random.Random(20240501)
    samples = [rng.lognormvariate(math.log(20.0), 1.0) for _ in range(10_000)]
    plan = [(f"node-{i % 2}", [obs(ms=ms) for ms in samples[i::3]]) for i in range(3)]

    asyncio.run(record(redis_server.url, plan))

    (row,) = read_metrics(client, "shop")
    assert row["invocations"] == 10_000
    for name, q in (("p50_ms", 0.50), ("p95_ms", 0.95), ("p99_ms", 0.99)):
        exact = exact_quantile(samples, q)
        assert abs(row[name] - exact) / exact < 0.10, (name, row[name], exact)
    assert row["avg_ms"] == pytest.approx(sum(samples) / len(samples), rel=1e-3)
    assert row["p50_ms"] < row["p95_ms"] < row["p99_ms"]


def test_flush_while_redis_is_down_keeps_counts_until_it_returns(
    redis_server: RedisServer, client: redis.Redis
) -> None:
    async def scenario() -> None:
        async_client = redis_async.Redis.from_url(redis_server.url, socket_connect_timeout=1)
        try:
            recorder = MetricsRecorder(async_client, "node-1")
            for _ in range(25):
                recorder.observe("shop", "production", "users", status=200, duration_ms=2.0)
            redis_server.stop()
            assert await recorder.flush() == 0  # no exception, nothing lost
            for _ in range(5):
                recorder.observe("shop", "production", "users", status=200, duration_ms=2.0)
            redis_server.start()
            assert await recorder.flush() == 30
        finally:
            await async_client.aclose()

    asyncio.run(scenario())
    (row,) = read_metrics(client, "shop")
    assert row["invocations"] == 30


def families(text: bytes) -> dict[str, Any]:
    return {family.name: family for family in text_string_to_metric_families(text.decode())}


def samples_of(family: Any, suffix: str = "", **labels: str) -> list[Any]:
    return [
        s
        for s in family.samples
        if s.name == family.name + suffix and all(s.labels.get(k) == v for k, v in labels.items())
    ]


def test_prometheus_exposition_parses_and_matches(
    redis_server: RedisServer, client: redis.Redis
) -> None:
    node1 = [obs(ms=0.7, cold=True, mem=2048)] + [obs(ms=30.0) for _ in range(8)]
    node1 += [obs(status=504, error="timeout", ms=70_000.0)]
    node2 = [obs(status=502, error="memory", ms=3.0, mem=4096), obs(ms=30.0)]
    asyncio.run(record(redis_server.url, [("node-1", node1), ("node-2", node2)]))

    parsed = families(prometheus_text(client))
    users = {"app": "shop", "environment": "production", "function": "users"}
    by_class = {
        s.labels["status_class"]: s.value
        for s in samples_of(parsed["edge_function_invocations"], "_total", **users)
    }
    assert by_class == {"2xx": 10.0, "5xx": 2.0}
    assert samples_of(parsed["edge_function_errors"], "_total", **users)[0].value == 2
    assert samples_of(parsed["edge_function_cold_starts"], "_total", **users)[0].value == 1
    assert samples_of(parsed["edge_function_timeouts"], "_total", **users)[0].value == 1
    assert samples_of(parsed["edge_function_memory_kills"], "_total", **users)[0].value == 1
    assert samples_of(parsed["edge_function_memory_peak_bytes"], **users)[0].value == 4096 * 1024

    duration = parsed["edge_function_duration_seconds"]
    assert duration.type == "histogram"
    assert samples_of(duration, "_count", **users)[0].value == 12
    total_s = (0.7 + 8 * 30.0 + 70_000.0 + 3.0 + 30.0) / 1000
    assert samples_of(duration, "_sum", **users)[0].value == pytest.approx(total_s)
    buckets = {s.labels["le"]: s.value for s in samples_of(duration, "_bucket", **users)}
    assert buckets["0.001"] == 1  # the 0.7 ms call
    assert buckets["0.005"] == 2  # ... and the 3 ms one
    assert buckets["0.05"] == 11  # ... and the ten 30 ms ones
    assert buckets["60.0"] == 11  # the 70 s timeout only counts in +Inf
    assert buckets["+Inf"] == 12
    values = list(buckets.values())
    assert values == sorted(values)


def test_node_exposition_shows_only_that_nodes_share(
    redis_server: RedisServer, client: redis.Redis
) -> None:
    asyncio.run(
        record(
            redis_server.url,
            [("node-1", [obs() for _ in range(4)]), ("node-2", [obs() for _ in range(6)])],
        )
    )

    async def node_text(node: str) -> bytes:
        async_client = redis_async.Redis.from_url(redis_server.url)
        try:
            return await aprometheus_text(async_client, node)
        finally:
            await async_client.aclose()

    def count(text: bytes) -> float:
        family = families(text)["edge_function_duration_seconds"]
        return float(sum(s.value for s in samples_of(family, "_count")))

    assert count(asyncio.run(node_text("node-1"))) == 4
    assert count(asyncio.run(node_text("node-2"))) == 6
    assert count(prometheus_text(client, "node-2")) == 6
    assert count(prometheus_text(client)) == 10
    assert count(prometheus_text(client, "node-unknown")) == 0
