"""A real stack per test module and database backend (apps differ per test)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from stack import Stack, fresh_postgres_database, make_stack

from edge.redisserver import RedisServer


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def stack(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Stack]:
    """Control plane + runtime (gunicorn), real Redis, SQLite or PostgreSQL."""
    tmp = Path(tmp_path_factory.mktemp(f"stack-{request.param}"))
    redis = RedisServer(tmp / "redis.sock", tmp / "redis")
    redis.start()
    try:
        if request.param == "sqlite":
            yield from _running(tmp, f"sqlite:///{tmp / 'edge.db'}", redis.url)
        else:
            with fresh_postgres_database() as url:
                yield from _running(tmp, url, redis.url)
    finally:
        redis.stop()


def _running(tmp: Path, database_url: str, redis_url: str, **settings: str) -> Iterator[Stack]:
    stack = make_stack(tmp, database_url, redis_url, **settings)
    try:
        stack.start("platform")
        stack.start("runtime")
        yield stack
    finally:
        stack.close()


@pytest.fixture(scope="module")
def runtime_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    """One stack on SQLite for the runtime tests of a module."""
    tmp = Path(tmp_path_factory.mktemp("runtime-stack"))
    redis = RedisServer(tmp / "redis.sock", tmp / "redis")
    redis.start()
    try:
        yield from _running(tmp, f"sqlite:///{tmp / 'edge.db'}", redis.url)
    finally:
        redis.stop()


@pytest.fixture
def own_stack(tmp_path: Path) -> Iterator[tuple[Stack, RedisServer]]:
    """A stack of the test's own (not started), with its Redis, for tests that break things."""
    redis = RedisServer(tmp_path / "redis.sock", tmp_path / "redis")
    redis.start()
    stack = make_stack(tmp_path, f"sqlite:///{tmp_path / 'edge.db'}", redis.url)
    try:
        yield stack, redis
    finally:
        stack.close()
        redis.stop()
