"""Per-minute series against a real Redis: merged across workers and nodes, kept 24 h."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import pytest
import redis
import redis.asyncio as redis_async

from edge.metrics import SERIES_TTL, MetricsRecorder, current_minute, series_app_key, series_key
from edge.redisserver import RedisServer
from edge.series import read_app_series, read_series


@pytest.fixture
def client(redis_server: RedisServer) -> Iterator[redis.Redis]:
    sync = redis.Redis.from_url(redis_server.url)
    yield sync
    sync.close()


async def burst(url: str, nodes: list[str], per_node: int) -> None:
    """One recorder per node, each observing ``per_node`` calls of shop/production/users."""
    clients = [redis_async.Redis.from_url(url) for _ in nodes]
    try:
        recorders = [MetricsRecorder(c, node) for c, node in zip(clients, nodes, strict=True)]
        for recorder in recorders:
            for i in range(per_node):
                recorder.observe(
                    "shop",
                    "production",
                    "users",
                    status=500 if i % 10 == 0 else 200,
                    duration_ms=float(i % 100 + 1),
                    cold=i == 0,
                )
        await asyncio.gather(*(r.flush() for r in recorders))
    finally:
        for c in clients:
            await c.aclose()


def test_workers_on_two_nodes_add_up_in_the_current_minute(
    redis_server: RedisServer, client: redis.Redis
) -> None:
    before = current_minute()
    asyncio.run(burst(redis_server.url, ["node-a:1", "node-a:1", "node-b:1"], 100))
    now = current_minute()
    [series] = read_series(client, "shop", now=now)
    assert (series["environment"], series["function"]) == ("production", "users")
    assert len(series["points"]) == 60
    assert series["points"][-1]["t"] == now * 60
    [point] = [p for p in series["points"] if p["requests"]]  # one minute (or a boundary)
    assert before * 60 <= point["t"] <= now * 60
    assert (point["requests"], point["errors"], point["cold_starts"]) == (300, 30, 3)
    assert point["p50_ms"] == pytest.approx(50.5, rel=0.05)
    assert point["p99_ms"] == pytest.approx(99, rel=0.05)
    [detailed] = read_series(client, "shop", now=now, histogram=True)
    [histogram] = [p["histogram"] for p in detailed["points"] if p["requests"]]
    assert sum(histogram.values()) == 300
    assert all(p["histogram"] == {} for p in detailed["points"] if not p["requests"])
    apps = read_app_series(client, ["shop", "none"], now=now)
    assert [p for p in apps["shop"] if p != (0, 0)] == [(300, 30)]
    assert apps["none"] == [(0, 0)] * 60


def test_series_are_kept_a_day_and_then_expire(
    redis_server: RedisServer, client: redis.Redis
) -> None:
    asyncio.run(burst(redis_server.url, ["n:1"], 5))
    hour = current_minute() // 60
    for key in (series_key("shop", "production", "users", hour), series_app_key("shop", hour)):
        ttl = client.ttl(key)
        assert 24 * 3600 < ttl <= SERIES_TTL  # type: ignore[operator]
    day = read_series(client, "shop", minutes=24 * 60)
    assert len(day[0]["points"]) == 24 * 60
    assert sum(p["requests"] for p in day[0]["points"]) == 5


def test_filters_and_an_unknown_app(redis_server: RedisServer, client: redis.Redis) -> None:
    asyncio.run(burst(redis_server.url, ["n:1"], 3))
    assert read_series(client, "shop", function="orders") == []
    assert read_series(client, "shop", environment="preview") == []
    assert read_series(client, "nobody") == []
    assert len(read_series(client, "shop", function="users", minutes=5)[0]["points"]) == 5
