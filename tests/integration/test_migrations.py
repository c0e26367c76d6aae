"""Alembic migrations on real SQLite and PostgreSQL: up, down, up, and no drift."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext

from alembic import command
from edge.platform.models import Base
from edge.platform.store import Store, alembic_config

TABLES = {
    "apps",
    "environments",
    "releases",
    "functions",
    "routes",
    "tokens",
    "token_apps",
    "platform_state",
    "secrets",
}


def _tables(url: str) -> set[str]:
    engine = sa.create_engine(url)
    try:
        return set(sa.inspect(engine).get_table_names())
    finally:
        engine.dispose()


def _schema_diff(url: str) -> list[object]:
    engine = sa.create_engine(url)
    try:
        with engine.connect() as conn:
            return list(compare_metadata(MigrationContext.configure(conn), Base.metadata))
    finally:
        engine.dispose()


def test_upgrade_from_empty_creates_every_table(database_url: str) -> None:
    assert _tables(database_url) == set()
    store = Store.from_url(database_url)
    store.migrate()
    assert _tables(database_url) == TABLES | {"alembic_version"}
    assert store.routes_version() == 0
    store.close()


def test_migrated_schema_matches_the_models(database_url: str) -> None:
    command.upgrade(alembic_config(database_url), "head")
    assert _schema_diff(database_url) == []


def test_downgrade_to_base_then_upgrade_again(database_url: str) -> None:
    config = alembic_config(database_url)
    command.upgrade(config, "head")
    store = Store.from_url(database_url)
    store.get_or_create_app("shop", created_by="admin")
    store.close()

    command.downgrade(config, "base")
    assert _tables(database_url) == {"alembic_version"}

    command.upgrade(config, "head")
    assert _tables(database_url) == TABLES | {"alembic_version"}
    assert _schema_diff(database_url) == []
    store = Store.from_url(database_url)
    assert store.list_apps() == []
    store.close()


def test_migrate_twice_is_a_no_op(database_url: str) -> None:
    store = Store.from_url(database_url)
    store.migrate()
    store.get_or_create_app("shop", created_by="admin")
    store.migrate()
    assert [app.name for app in store.list_apps()] == ["shop"]
    store.close()


def test_processes_starting_together_migrate_once(database_url: str) -> None:
    code = (
        "import sys; from edge.platform.store import Store; "
        "s = Store.from_url(sys.argv[1]); s.migrate(); print(s.routes_version())"
    )
    children = [
        subprocess.Popen(
            [sys.executable, "-c", code, database_url],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(4)
    ]
    outcomes = [child.communicate(timeout=120) for child in children]
    assert [child.returncode for child in children] == [0] * 4, outcomes
    assert [out.strip() for out, _ in outcomes] == ["0"] * 4
    assert _schema_diff(database_url) == []


def test_processes_opening_a_fresh_sqlite_database_together(tmp_path: Path) -> None:
    """Switching to WAL skips SQLite's busy handler; make_engine retries it."""
    code = (
        "import sqlite3, sys; from edge.platform.models import make_engine; "
        # Everything but the first statement happens before the release, so that the
        # switches to WAL race (as alembic's did in CI).
        "raw = sqlite3.connect(sys.argv[2]); "
        "engine = make_engine(sys.argv[1], creator=lambda: raw); "
        "print('ready', flush=True); sys.stdin.read(); engine.connect().close()"
    )
    for round_ in range(3):
        path = tmp_path / f"fresh{round_}.db"
        children = [
            subprocess.Popen(
                [sys.executable, "-c", code, f"sqlite:///{path}", str(path)],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
            )
            for _ in range(8)
        ]
        for child in children:
            assert child.stdout.readline() == "ready\n"
        for child in children:  # release them all at once
            child.stdin.close()
        codes = [child.wait(timeout=60) for child in children]
        errors = [child.stderr.read() for child in children]
        for child in children:
            child.stdout.close()
            child.stderr.close()
        assert codes == [0] * 8, errors
