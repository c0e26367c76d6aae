"""Log streams against a real Redis: write, read, filter, cap, follow, and outages."""

from __future__ import annotations

import asyncio
import queue
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import redis
import redis.asyncio as redis_async

from edge.logstream import (
    LogEntry,
    LogWriter,
    emit_sync,
    follow_batches,
    follow_logs,
    format_record,
    outcome_entries,
    platform_event,
    read_logs,
    stream_key,
)
from edge.redisserver import RedisServer
from edge.runtime.faults import fault_outcome
from edge.runtime.invocation import FunctionVersion, LogRecord, Outcome


@pytest.fixture
def client(redis_server: RedisServer) -> Iterator[redis.Redis]:
    sync = redis.Redis.from_url(redis_server.url)
    yield sync
    sync.close()


def entry(
    function: str = "users",
    message: str = "hello",
    *,
    environment: str = "production",
    level: str = "info",
    request_id: str = "r1",
) -> LogEntry:
    return LogEntry(time.time(), "shop", environment, 3, function, request_id, level, message)


def messages(records: list[dict[str, Any]]) -> list[str]:
    return [record["message"] for record in records]


def test_records_read_back_oldest_first_with_their_fields(client: redis.Redis) -> None:
    first = emit_sync(client, entry(message="one", level="warning"), 1000)
    emit_sync(client, entry(message="two"), 1000)
    emit_sync(client, platform_event("shop", "production", "v3 live", release=3), 1000)

    records = read_logs(client, "shop")

    assert messages(records) == ["one", "two", "v3 live"]
    one = records[0]
    assert one["id"] == first
    assert isinstance(one["ts"], float) and abs(one["ts"] - time.time()) < 60
    assert {
        k: one[k]
        for k in ("app", "environment", "release", "function", "request_id", "level", "kind")
    } == {
        "app": "shop",
        "environment": "production",
        "release": 3,
        "function": "users",
        "request_id": "r1",
        "level": "warning",
        "kind": "function",
    }
    assert records[2]["kind"] == "platform" and records[2]["function"] == ""
    assert read_logs(client, "other-app") == []


def test_filters_by_function_environment_and_since(client: redis.Redis) -> None:
    old: Any = entry("users", "an hour ago").to_fields()
    client.xadd(stream_key("shop"), old, id=f"{int((time.time() - 3600) * 1000)}-0")
    emit_sync(client, entry("users", "u1"), 1000)
    emit_sync(client, entry("cart", "c1"), 1000)
    emit_sync(client, entry("users", "u2", environment="feature-x"), 1000)

    assert messages(read_logs(client, "shop", function="users")) == ["an hour ago", "u1", "u2"]
    assert messages(read_logs(client, "shop", function="users", since_seconds=60)) == ["u1", "u2"]
    assert messages(read_logs(client, "shop", environment="feature-x")) == ["u2"]
    assert messages(read_logs(client, "shop", since_seconds=7200)) == [
        "an hour ago",
        "u1",
        "c1",
        "u2",
    ]


def test_limit_keeps_the_latest_matches_across_pages(client: redis.Redis) -> None:
    pipe = client.pipeline(transaction=False)
    for i in range(2500):
        fields: Any = entry("users" if i % 2 else "cart", str(i)).to_fields()
        pipe.xadd(stream_key("shop"), fields)
    pipe.execute()

    records = read_logs(client, "shop", function="users", limit=1100)

    assert messages(records) == [str(i) for i in range(2499 - 2 * 1099, 2500, 2)]
    assert messages(read_logs(client, "shop", limit=3)) == ["2497", "2498", "2499"]


def test_streams_stay_capped(redis_server: RedisServer, client: redis.Redis) -> None:
    maxlen = 100
    for i in range(1000):
        emit_sync(client, entry(message=str(i)), maxlen)

    async def through_writer() -> None:
        async_client = redis_async.Redis.from_url(redis_server.url)
        writer = LogWriter(async_client, maxlen)
        try:
            for i in range(1000):
                writer.emit(LogEntry(time.time(), "cart", "production", 1, "f", "", "info", str(i)))
            assert await writer.flush() == 1000
        finally:
            await async_client.aclose()

    asyncio.run(through_writer())
    # MAXLEN ~ trims whole radix-tree nodes (100 entries by default): never below maxlen.
    for app in ("shop", "cart"):
        assert maxlen <= client.xlen(stream_key(app)) <= maxlen + 100
    assert read_logs(client, "shop")[-1]["message"] == "999"


def test_follow_gets_new_records_within_a_second_filtered(
    redis_server: RedisServer, client: redis.Redis
) -> None:
    start = emit_sync(client, entry("users", "before"), 1000)
    assert start is not None
    received: queue.Queue[dict[str, Any]] = queue.Queue()
    seen_functions: set[str] = set()

    def consume() -> None:
        follower = redis.Redis.from_url(redis_server.url)
        try:
            for record in follow_logs(
                follower, "shop", function="users", last_id=start, block_ms=200
            ):
                seen_functions.add(record["function"])
                received.put(record)
                if record["message"] == "stop":
                    return
        finally:
            follower.close()

    thread = threading.Thread(target=consume, daemon=True)
    thread.start()
    for message in ("u1", "u2"):
        sent = time.monotonic()
        emit_sync(client, entry("cart", "not for this follower"), 1000)
        emit_sync(client, entry("users", message), 1000)
        assert received.get(timeout=1.0)["message"] == message
        assert time.monotonic() - sent < 1.0
    emit_sync(client, entry("users", "stop"), 1000)
    assert received.get(timeout=1.0)["message"] == "stop"
    thread.join(timeout=5)
    assert not thread.is_alive()
    assert seen_functions == {"users"}


def test_following_from_now_skips_history_but_never_a_line_between_reads(
    client: redis.Redis,
) -> None:
    emit_sync(client, entry(message="history"), 1000)
    batches = follow_batches(client, "shop", block_ms=100)

    assert next(batches) == []  # idle: nothing new, the history is not replayed
    emit_sync(client, entry(message="a"), 1000)  # written while nobody is blocked reading
    emit_sync(client, entry(message="b"), 1000)
    assert messages(next(batches)) == ["a", "b"]
    batches.close()


def test_writer_delivers_a_line_within_a_second(
    redis_server: RedisServer, client: redis.Redis
) -> None:
    async def scenario() -> float:
        async_client = redis_async.Redis.from_url(redis_server.url)
        writer = LogWriter(async_client, 1000)
        writer.start()
        try:
            sent = time.monotonic()
            writer.emit(entry(message="printed"))
            while time.monotonic() - sent < 1.0:
                if await async_client.xlen(stream_key("shop")):
                    return time.monotonic() - sent
                await asyncio.sleep(0.01)
            raise AssertionError("the line did not reach Redis within a second")
        finally:
            writer.emit(entry(message="at shutdown"))
            await writer.aclose()
            await async_client.aclose()

    assert asyncio.run(scenario()) < 1.0
    assert messages(read_logs(client, "shop")) == ["printed", "at shutdown"]


def test_writer_drops_instead_of_blocking_while_redis_is_down(
    redis_server: RedisServer, client: redis.Redis
) -> None:
    async def scenario() -> None:
        async_client = redis_async.Redis.from_url(redis_server.url, socket_connect_timeout=1)
        writer = LogWriter(async_client, 1000, buffer_size=100, interval=0.01)
        writer.start()
        try:
            writer.emit(entry(message="while up"))
            await wait_for(lambda: writer.written == 1)
            redis_server.stop()
            started = time.monotonic()
            for i in range(150):
                writer.emit(entry(message=f"down {i}"))
            assert time.monotonic() - started < 0.5  # emit never waits on Redis
            assert writer.dropped == 50
            assert await writer.flush() == 0  # fails quietly, keeps the buffer
            assert writer.buffered == 100
            redis_server.start()
            writer.emit(entry(message="back"))  # dropped: the buffer is still full
            await wait_for(lambda: writer.buffered == 0, timeout=10.0)
            assert writer.dropped == 51
        finally:
            await writer.aclose()
            await async_client.aclose()

    asyncio.run(scenario())
    # The restarted server has no persistence: only what was buffered is there.
    assert messages(read_logs(client, "shop")) == [f"down {i}" for i in range(100)]


async def wait_for(condition: Any, timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "condition not met in time"
        await asyncio.sleep(0.01)


def test_outcome_entries_carry_logs_and_platform_events(tmp_path: Path) -> None:
    version = FunctionVersion(
        "k",
        "shop",
        "production",
        4,
        "users",
        "python",
        tmp_path,
        "f.py",
        "handle",
        {},
        memory_mb=64,
        timeout_ms=5000,
    )
    outcome = fault_outcome(
        "timeout",
        version,
        "req-9",
        logs=[LogRecord(1.5, "info", "starting"), LogRecord(2.0, "error", "x")],
    )

    entries = outcome_entries(version, "req-9", outcome)

    assert [(e.kind, e.level, e.message) for e in entries] == [
        ("function", "info", "starting"),
        ("function", "error", "x"),
        ("platform", "error", "function users timed out after 5000 ms (504)"),
    ]
    assert all(
        (e.app, e.environment, e.release, e.function, e.request_id)
        == ("shop", "production", 4, "users", "req-9")
        for e in entries
    )
    assert outcome_entries(version, "r", Outcome(200, [], b"")) == []


def test_format_record_is_one_readable_line() -> None:
    ts = time.mktime((2024, 5, 1, 12, 30, 15, 0, 0, -1)) + 0.25
    record = {
        "ts": ts,
        "level": "error",
        "function": "users",
        "request_id": "ab12",
        "message": "boom",
        "kind": "function",
    }
    assert format_record(record) == "2024-05-01 12:30:15.250 ERROR   users ab12 boom"
    event = {
        "ts": ts,
        "level": "info",
        "function": "",
        "request_id": "",
        "message": "v4 live",
        "kind": "platform",
    }
    assert format_record(event) == "2024-05-01 12:30:15.250 INFO    [platform] - v4 live"


def test_oversized_messages_and_unknown_levels_are_normalised(client: redis.Redis) -> None:
    emit_sync(client, entry(message="x" * 100_000, level="shout"), 1000)
    (record,) = read_logs(client, "shop")
    assert record["level"] == "info"
    assert len(record["message"]) < 9000 and record["message"].endswith("[truncated]")
