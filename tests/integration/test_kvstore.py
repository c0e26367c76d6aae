"""The KV script on a real Redis: limits hold, refusals store nothing, TTLs give bytes back."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
import redis
from stack import wait_for

from edge.kvstore import KVError, Limits, Namespace, plan
from edge.redisserver import RedisServer

LIMITS = Limits(max_value_bytes=64, max_app_bytes=100, max_keys=3)
PROD = Namespace("shop", "production")
PREVIEW = Namespace("shop", "feature-x")


@pytest.fixture
def client(redis_server: RedisServer) -> Iterator[redis.Redis]:
    sync = redis.Redis.from_url(redis_server.url)
    yield sync
    sync.close()


def run(client: redis.Redis, ns: Namespace, **message: Any) -> Any:
    op = plan(ns, message, LIMITS)
    return op.result(client.execute_command(*op.command))


def refused(client: redis.Redis, ns: Namespace, **message: Any) -> KVError:
    with pytest.raises(KVError) as caught:
        run(client, ns, **message)
    return caught.value


def charged(client: redis.Redis) -> int:
    return int(client.get("edge:kv-bytes:shop") or 0)


def test_keys_per_namespace_and_bytes_per_app(client: redis.Redis) -> None:
    for key in ("a", "b", "c"):
        run(client, PROD, op="put", key=key, value=b"1234567890")
    assert charged(client) == 33  # key + value bytes
    error = refused(client, PROD, op="put", key="d", value=b"x")
    assert error.code == "limit" and "3 keys" in str(error)
    run(client, PROD, op="put", key="a", value=b"overwrite is no new key")
    assert run(client, PROD, op="get", key="a") == b"overwrite is no new key"

    run(client, PREVIEW, op="put", key="p", value=b"x" * 40)  # bytes count per app
    error = refused(client, PREVIEW, op="put", key="q", value=b"x" * 30)
    assert error.code == "limit" and "EDGE_KV_MAX_MB" in str(error)
    assert run(client, PREVIEW, op="get", key="q") is None  # nothing stored
    before = charged(client)
    run(client, PROD, op="delete", key="a")
    assert charged(client) == before - len("a") - len("overwrite is no new key")
    run(client, PREVIEW, op="put", key="q", value=b"x" * 30)  # room again


def test_expired_keys_give_their_bytes_back(client: redis.Redis) -> None:
    run(client, PROD, op="put", key="soon", value=b"x" * 50, ttl=0.05)
    assert charged(client) == 54
    wait_for(
        lambda: run(client, PROD, op="list")["keys"] == [] and charged(client) == 0,
        timeout=5,
        message="the expired key to leave the index and give its bytes back",
    )


def test_incr_is_exact_and_refuses_non_integers(client: redis.Redis) -> None:
    assert [run(client, PROD, op="incr", key="n", by=by) for by in (1, 41, -2)] == [1, 42, 40]
    assert run(client, PROD, op="get", key="n") == b"40"
    run(client, PROD, op="put", key="word", value=b"forty")
    assert refused(client, PROD, op="incr", key="word").code == "type"
    assert run(client, PROD, op="get", key="word") == b"forty"


def test_list_pages_by_cursor_within_a_prefix(client: redis.Redis) -> None:
    wide = Limits(max_keys=100, max_app_bytes=10_000)
    for key in ("u:1", "u:2", "u:3", "v:1", "u"):
        op = plan(PROD, {"op": "put", "key": key, "value": b"."}, wide)
        client.execute_command(*op.command)
    first = run(client, PROD, op="list", prefix="u:", limit=2)
    assert first == {"keys": ["u:1", "u:2"], "cursor": "u:2"}
    rest = run(client, PROD, op="list", prefix="u:", limit=2, cursor=first["cursor"])
    assert rest == {"keys": ["u:3"], "cursor": None}
    assert run(client, PREVIEW, op="list") == {"keys": [], "cursor": None}
