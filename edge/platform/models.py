"""The control plane's data: its tables, its engine, and the records the store returns.

The tables are SQLAlchemy 2 typed declarative models; only
:mod:`edge.platform.store` and the alembic migrations use them, both through an
engine from :func:`make_engine` (which sets SQLite up for concurrency). Migration
``0001_initial`` creates exactly this schema (a test compares them). Everything
else sees the records (``*Info`` here; :class:`~edge.snapshot.FunctionRecord` and the
routing snapshot in :mod:`edge.snapshot`), plain frozen dataclasses that hold no session.

::

    apps ─< environments ─< releases ─< functions ─< routes
                 └── active_release_id ──> releases
    tokens ─< token_apps (app names, not ids: a token may name an app before
                          its first push creates it)
    platform_state      one row: routes_version, bumped whenever what the
                        runtime must serve changes
"""

from __future__ import annotations

import sqlite3
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import partial
from typing import Any

import sqlalchemy as sa
from sqlalchemy import (
    JSON,
    BigInteger,
    CheckConstraint,
    DateTime,
    ForeignKey,
    ForeignKeyConstraint,
    Integer,
    MetaData,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.engine import Engine
from sqlalchemy.exc import ArgumentError
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from edge.errors import ConfigError
from edge.snapshot import FunctionRecord

# Constraint names are spelled out so migrations can drop them on every database.
NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

RELEASE_STATUSES = ("deploying", "active", "failed", "superseded", "disabled")
RUNTIMES = ("python", "js")
PLATFORM_STATE_ID = 1
SQLITE_BUSY_TIMEOUT_MS = 30_000


def utcnow() -> datetime:
    """The current time, timezone-aware UTC (what every timestamp column holds)."""
    return datetime.now(UTC)


def as_utc(moment: datetime) -> datetime:
    """``moment`` as aware UTC (SQLite hands timestamps back naive; they were UTC)."""
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


def _in(column: str, values: tuple[str, ...]) -> str:
    return f"{column} IN ({', '.join(repr(v) for v in values)})"


def make_engine(url: str, *, foreign_keys: bool = True, **kwargs: Any) -> Engine:
    """An engine for ``url``, with SQLite set up for many concurrent processes.

    Args:
        url: a SQLAlchemy URL; ``postgresql://`` means the psycopg 3 driver.
        foreign_keys: enforce foreign keys on SQLite (migrations turn it off,
            because recreating a table in batch mode would cascade deletes).
        **kwargs: passed to :func:`sqlalchemy.create_engine`.

    Raises:
        ConfigError: ``url`` is not a database URL.
    """
    try:
        parsed = sa.make_url(url)
    except ArgumentError:
        raise ConfigError(f"EDGE_DATABASE_URL={url!r}: not a database URL") from None
    if parsed.drivername in ("postgresql", "postgres"):
        parsed = parsed.set(drivername="postgresql+psycopg")
    engine = sa.create_engine(parsed, pool_pre_ping=True, **kwargs)
    if engine.dialect.name == "sqlite":
        sa.event.listen(engine, "connect", partial(_sqlite_connect, foreign_keys=foreign_keys))
        sa.event.listen(engine, "begin", _sqlite_begin)
    return engine


def _sqlite_connect(dbapi_connection: Any, _record: Any, *, foreign_keys: bool) -> None:
    # pysqlite's own transaction handling skips BEGIN before SELECT and DDL, which
    # breaks consistent reads and savepoints: we emit BEGIN ourselves (_sqlite_begin).
    dbapi_connection.isolation_level = None
    cursor = dbapi_connection.cursor()
    cursor.execute(f"PRAGMA busy_timeout = {SQLITE_BUSY_TIMEOUT_MS}")
    _set_wal(cursor)
    cursor.execute("PRAGMA synchronous = NORMAL")
    cursor.execute(f"PRAGMA foreign_keys = {'ON' if foreign_keys else 'OFF'}")
    cursor.close()


def _set_wal(cursor: Any) -> None:
    """Switch the database to WAL (persistent: a no-op once any connection did it).

    The switch reads the header under a shared lock, then upgrades to a write
    lock; SQLite never calls the busy handler for that upgrade (waiting could
    deadlock against another connection doing the same), so processes opening a
    fresh database together get "database is locked" at once. We retry, as the
    busy handler would, until ``busy_timeout`` runs out.
    """
    deadline = time.monotonic() + SQLITE_BUSY_TIMEOUT_MS / 1000
    pause = 0.001
    while True:
        try:
            cursor.execute("PRAGMA journal_mode = WAL")
        except sqlite3.OperationalError as error:
            if error.sqlite_errorcode & 0xFF != sqlite3.SQLITE_BUSY or time.monotonic() > deadline:
                raise
            time.sleep(pause)
            pause = min(pause * 2, 0.05)
        else:
            return


def _sqlite_begin(conn: sa.Connection) -> None:
    # IMMEDIATE takes the write lock up front: a deferred transaction that reads
    # and then writes fails with SQLITE_BUSY instead of waiting for busy_timeout.
    write = conn.get_execution_options().get("edge_write", False)
    conn.exec_driver_sql("BEGIN IMMEDIATE" if write else "BEGIN")


class Base(DeclarativeBase):
    """Declarative base carrying the shared metadata and naming convention."""

    metadata = MetaData(naming_convention=NAMING_CONVENTION)
    type_annotation_map: dict[Any, Any] = {  # noqa: RUF012  (SQLAlchemy reads it once)
        datetime: DateTime(timezone=True),
        dict[str, str]: JSON,
        list[str]: JSON,
    }


class App(Base):
    """An application: one git repository, many environments."""

    __tablename__ = "apps"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(63), unique=True)
    created_at: Mapped[datetime]
    created_by: Mapped[str] = mapped_column(String(200))


class Environment(Base):
    """Production (branch ``main``) or a preview of one branch."""

    __tablename__ = "environments"
    __table_args__ = (UniqueConstraint("app_id", "name"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    app_id: Mapped[int] = mapped_column(ForeignKey("apps.id"))
    name: Mapped[str] = mapped_column(String(63))
    branch: Mapped[str] = mapped_column(String(255))
    # A cycle with releases.environment_id: created by ALTER after both tables.
    active_release_id: Mapped[int | None] = mapped_column(ForeignKey("releases.id", use_alter=True))
    last_version: Mapped[int] = mapped_column(Integer, default=0)
    created_at: Mapped[datetime]
    deleted_at: Mapped[datetime | None]


class Release(Base):
    """Version N of one environment: a commit, its artifact and its functions."""

    __tablename__ = "releases"
    __table_args__ = (
        UniqueConstraint("environment_id", "version"),
        CheckConstraint(_in("status", RELEASE_STATUSES), name="status"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    environment_id: Mapped[int] = mapped_column(ForeignKey("environments.id"))
    version: Mapped[int]
    commit_sha: Mapped[str] = mapped_column(String(64))
    artifact: Mapped[str] = mapped_column(String(64))
    # The Python package environment (edge.packages digest), "" when the app has none.
    packages: Mapped[str] = mapped_column(String(64), default="", server_default="")
    manifest: Mapped[str] = mapped_column(Text)
    status: Mapped[str] = mapped_column(String(16))
    status_reason: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime]
    created_by: Mapped[str] = mapped_column(String(200))
    author: Mapped[str] = mapped_column(String(500))
    message: Mapped[str] = mapped_column(Text)
    rollback_of: Mapped[int | None]


class Function(Base):
    """One function of one release, with its limits and policy."""

    __tablename__ = "functions"
    __table_args__ = (
        UniqueConstraint("release_id", "name"),
        CheckConstraint(_in("runtime", RUNTIMES), name="runtime"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    release_id: Mapped[int] = mapped_column(ForeignKey("releases.id"))
    name: Mapped[str] = mapped_column(String(63))
    runtime: Mapped[str] = mapped_column(String(16))
    entry: Mapped[str] = mapped_column(String(1024))
    path: Mapped[str] = mapped_column(String(1024))
    handler: Mapped[str] = mapped_column(String(255))
    memory_mb: Mapped[int]
    timeout_ms: Mapped[int]
    regions: Mapped[list[str]]
    env: Mapped[dict[str, str]]
    min_warm: Mapped[int]
    max_instances: Mapped[int]
    content_hash: Mapped[str] = mapped_column(String(128))
    # "" (detect at load), "handler", "wsgi" or "asgi" (edge.toml's functions.X.kind).
    kind: Mapped[str] = mapped_column(String(8), default="", server_default="")


class Route(Base):
    """One route pattern of one function of one release."""

    __tablename__ = "routes"
    __table_args__ = (
        ForeignKeyConstraint(
            ["release_id", "function_name"], ["functions.release_id", "functions.name"]
        ),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    release_id: Mapped[int] = mapped_column(index=True)
    function_name: Mapped[str] = mapped_column(String(63))
    position: Mapped[int]
    pattern: Mapped[str] = mapped_column(String(1024))
    method: Mapped[str | None] = mapped_column(String(16))
    path: Mapped[str] = mapped_column(String(1024))


class Token(Base):
    """An API token; only the sha256 of its secret is stored."""

    __tablename__ = "tokens"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    admin: Mapped[bool]
    created_at: Mapped[datetime]
    last_used_at: Mapped[datetime | None]


class TokenApp(Base):
    """The apps a non-admin token may act on."""

    __tablename__ = "token_apps"

    token_id: Mapped[int] = mapped_column(
        ForeignKey("tokens.id", ondelete="CASCADE"), primary_key=True
    )
    app: Mapped[str] = mapped_column(String(63), primary_key=True)


class Secret(Base):
    """One secret of one app environment, sealed (see :mod:`edge.keyring`).

    Keyed by the environment's name, not its row, so a secret can be set before
    the branch's first push.
    """

    __tablename__ = "secrets"
    __table_args__ = (UniqueConstraint("app_id", "environment", "name"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    app_id: Mapped[int] = mapped_column(ForeignKey("apps.id"))
    environment: Mapped[str] = mapped_column(String(63))
    name: Mapped[str] = mapped_column(String(255))
    sealed: Mapped[str] = mapped_column(Text)
    updated_at: Mapped[datetime]
    updated_by: Mapped[str] = mapped_column(String(200))


class PlatformState(Base):
    """The single row of platform-wide counters."""

    __tablename__ = "platform_state"
    __table_args__ = (CheckConstraint(f"id = {PLATFORM_STATE_ID}", name="single_row"),)

    id: Mapped[int] = mapped_column(primary_key=True, autoincrement=False)
    routes_version: Mapped[int] = mapped_column(BigInteger)


# -- records: what the store returns -------------------------------------------


@dataclass(frozen=True)
class TokenInfo:
    """An authenticated API token.

    Attributes:
        id: the token's id (for ``revoke_token``).
        name: what the token was created for; recorded as releases' ``created_by``.
        admin: may act on every app and manage tokens.
        apps: the apps a non-admin token may act on.
    """

    id: int
    name: str
    admin: bool
    apps: frozenset[str]

    def can_access(self, app: str) -> bool:
        """Whether this token may push to, inspect or change ``app``."""
        return self.admin or app in self.apps


def function_record(row: Function, routes: tuple[str, ...]) -> FunctionRecord:
    """The :class:`FunctionRecord` of a stored function row."""
    return FunctionRecord(
        name=row.name,
        runtime=row.runtime,
        entry=row.entry,
        path=row.path,
        handler=row.handler,
        memory_mb=row.memory_mb,
        timeout_ms=row.timeout_ms,
        regions=list(row.regions),
        env=dict(row.env),
        min_warm=row.min_warm,
        max_instances=row.max_instances,
        content_hash=row.content_hash,
        routes=routes,
        kind=row.kind,
    )


@dataclass(frozen=True)
class EnvironmentInfo:
    """Production or a preview of one app.

    Attributes:
        app: the app's name.
        name: ``"production"`` or the preview's branch label.
        branch: the git branch it serves.
        active_release_id, active_version: what it serves (``None`` before the
            first activation and after deletion).
        last_version: the newest version allocated (0 before the first release).
        deleted_at: when the preview was deleted, or ``None`` while it is live.
    """

    id: int
    app: str
    name: str
    branch: str
    active_release_id: int | None
    active_version: int | None
    last_version: int
    created_at: datetime
    deleted_at: datetime | None = None

    @classmethod
    def from_row(cls, app: str, row: Environment, active_version: int | None) -> EnvironmentInfo:
        return cls(
            id=row.id,
            app=app,
            name=row.name,
            branch=row.branch,
            active_release_id=row.active_release_id,
            active_version=active_version,
            last_version=row.last_version,
            created_at=as_utc(row.created_at),
            deleted_at=None if row.deleted_at is None else as_utc(row.deleted_at),
        )


@dataclass(frozen=True)
class AppInfo:
    """An app and its live environments (sorted by name)."""

    id: int
    name: str
    created_at: datetime
    created_by: str
    environments: tuple[EnvironmentInfo, ...] = field(default=())


@dataclass(frozen=True)
class ReleaseInfo:
    """Version ``version`` of environment ``environment`` of ``app``.

    Attributes:
        status: ``deploying``, ``active``, ``failed``, ``superseded`` or ``disabled``.
        status_reason: why it failed, for ``failed`` releases.
        created_by: the name of the token that created it.
        author, message: the commit's author and subject.
        rollback_of: the version this release brought back, if it is a rollback.
        functions: its functions, sorted by name, each with its routes.
        packages: its Python package environment's digest (``""``: none).
    """

    id: int
    app: str
    environment: str
    version: int
    commit_sha: str
    artifact: str
    manifest_json: str
    status: str
    status_reason: str | None
    created_at: datetime
    created_by: str
    author: str
    message: str
    rollback_of: int | None
    functions: tuple[FunctionRecord, ...]
    packages: str = ""

    @classmethod
    def from_row(
        cls, app: str, environment: str, row: Release, functions: tuple[FunctionRecord, ...]
    ) -> ReleaseInfo:
        return cls(
            id=row.id,
            app=app,
            environment=environment,
            version=row.version,
            commit_sha=row.commit_sha,
            artifact=row.artifact,
            manifest_json=row.manifest,
            status=row.status,
            status_reason=row.status_reason,
            created_at=as_utc(row.created_at),
            created_by=row.created_by,
            author=row.author,
            message=row.message,
            rollback_of=row.rollback_of,
            functions=functions,
            packages=row.packages,
        )
