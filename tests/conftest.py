"""Shared fixtures: real services only (Redis server, SQLite, PostgreSQL)."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa

from edge.redisserver import RedisServer


@pytest.fixture
def redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    """A fresh, real redis-server on a Unix socket, stopped after the test."""
    folder = Path(tmp_path_factory.mktemp("redis"))
    server = RedisServer(folder / "r.sock", folder)
    server.start()
    yield server
    server.stop()


def _postgres_admin_url() -> str:
    url = os.environ.get("EDGE_TEST_POSTGRES_URL")
    if not url:
        pytest.fail("EDGE_TEST_POSTGRES_URL is not set: run the suite with `make test`, "
                    "which starts a private PostgreSQL server")
    return url


@pytest.fixture
def postgres_url() -> Iterator[str]:
    """A URL to a brand-new, empty PostgreSQL database, dropped after the test."""
    admin_url = _postgres_admin_url()
    name = f"edge_test_{uuid.uuid4().hex[:12]}"
    admin = sa.create_engine(admin_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
    url = admin_url.rsplit("/", 1)[0] + f"/{name}"
    yield url
    with admin.connect() as conn:
        conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    admin.dispose()


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'edge.db'}"


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request: pytest.FixtureRequest) -> str:
    """Runs the test once on SQLite and once on PostgreSQL, each on an empty database."""
    name = "sqlite_url" if request.param == "sqlite" else "postgres_url"
    return str(request.getfixturevalue(name))
