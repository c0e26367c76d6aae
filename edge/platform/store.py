"""The control plane's store: apps, environments, releases, functions, routes, tokens.

One :class:`Store` per process, built in the composition root from
``EDGE_DATABASE_URL`` (SQLite by default, PostgreSQL at scale; the same code runs
on both). Every method runs one short transaction and returns frozen records,
never ORM objects, so callers never hold a session.

Concurrency is left to the database, never to a Python lock, because writers
live in several processes: on SQLite every write transaction starts with
``BEGIN IMMEDIATE`` (one writer at a time, the others wait up to
``busy_timeout``); on PostgreSQL writers serialise on row locks (``UPDATE ...
RETURNING`` on an environment's version counter, ``FOR UPDATE`` on activation,
the single ``platform_state`` row for ``routes_version``).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING

import sqlalchemy as sa
from sqlalchemy.engine import Engine
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

import edge
from edge.errors import ConflictError, NotFoundError
from edge.platform import rows as q
from edge.platform.models import (
    App,
    AppInfo,
    Environment,
    EnvironmentInfo,
    Release,
    ReleaseInfo,
    TokenInfo,
    make_engine,
    utcnow,
)
from edge.platform.overview import OverviewMethods
from edge.platform.releasereads import ReleaseReads
from edge.platform.tokens import TokenMethods
from edge.platform.vault import SecretMethods, sealed_secrets
from edge.snapshot import (
    PRODUCTION,
    FunctionRecord,
    LiveEnvironment,
    RoutingSnapshot,
    check_label,
)

if TYPE_CHECKING:
    from alembic.config import Config as AlembicConfig

__all__ = [
    "AppInfo",
    "EnvironmentInfo",
    "FunctionRecord",
    "LiveEnvironment",
    "ReleaseInfo",
    "RoutingSnapshot",
    "Store",
    "TokenInfo",
]

ALEMBIC_INI = Path(edge.__file__).resolve().parents[1] / "alembic.ini"


def alembic_config(url: str) -> AlembicConfig:
    """The alembic configuration that migrates the database at ``url``."""
    from alembic.config import Config as AlembicConfig  # noqa: PLC0415 - see below

    config = AlembicConfig(str(ALEMBIC_INI))
    config.attributes["url"] = url
    config.attributes["configure_logging"] = False
    return config


class Store(TokenMethods, OverviewMethods, SecretMethods, ReleaseReads):
    """The control plane's database, behind methods that return frozen records."""

    def __init__(self, engine: Engine, url: str) -> None:
        self._engine = engine
        self._write_engine = engine.execution_options(edge_write=True)
        self._url = url
        self._postgres = engine.dialect.name == "postgresql"

    @classmethod
    def from_url(cls, url: str) -> Store:
        """Connect to ``url`` (nothing is created: call :meth:`migrate` for that)."""
        return cls(make_engine(url), url)

    def migrate(self) -> None:
        """Upgrade the schema to the newest migration (a no-op when already there).

        Safe when several processes start together (the migration takes a
        database lock), but not from two threads of one process at once:
        alembic's context is process-global. Call it from the composition root.
        """
        from alembic import command  # noqa: PLC0415 - runtime workers never load alembic

        command.upgrade(alembic_config(self._url), "head")
        self._make_private()

    def _make_private(self) -> None:
        """APPSEC: a SQLite database (and its WAL and shared-memory files, which
        SQLite creates with the database's mode) is readable by the platform
        user only: it holds token hashes and every app's configuration."""
        database = self._engine.url.database
        if self._engine.dialect.name != "sqlite" or not database or database == ":memory:":
            return
        for suffix in ("", "-wal", "-shm"):
            path = Path(database + suffix)
            if path.exists():
                path.chmod(0o600)

    def close(self) -> None:
        """Close every pooled connection."""
        self._engine.dispose()

    @contextmanager
    def _read(self, *, snapshot: bool = False) -> Iterator[Session]:
        with Session(self._engine, expire_on_commit=False) as session, session.begin():
            if snapshot and self._postgres:
                # One snapshot for every statement, not one per statement.
                session.connection(execution_options={"isolation_level": "REPEATABLE READ"})
            yield session

    @contextmanager
    def _write(self) -> Iterator[Session]:
        with Session(self._write_engine, expire_on_commit=False) as session, session.begin():
            yield session

    # -- apps and environments --------------------------------------------------

    def get_or_create_app(self, name: str, created_by: str) -> AppInfo:
        """The app called ``name``, created (by ``created_by``) if it does not exist."""
        check_label("app", name)
        try:
            return self._get_or_create_app(name, created_by)
        except IntegrityError:
            # A concurrent caller created it between our read and our insert.
            return self.get_app(name)

    def _get_or_create_app(self, name: str, created_by: str) -> AppInfo:
        with self._write() as session:
            row = session.scalar(sa.select(App).where(App.name == name))
            if row is None:
                row = App(name=name, created_by=created_by, created_at=utcnow())
                session.add(row)
                session.flush()
            return q.app_infos(session, [row])[0]

    def get_app(self, name: str) -> AppInfo:
        """The app and its live environments.

        Raises:
            NotFoundError: there is no such app.
        """
        with self._read() as session:
            return q.app_infos(session, [q.app_row(session, name)])[0]

    def list_apps(self) -> list[AppInfo]:
        """Every app, by name, with its live environments and their active versions."""
        with self._read() as session:
            return q.app_infos(session, session.scalars(sa.select(App).order_by(App.name)))

    def get_or_create_environment(self, app: str, name: str, branch: str) -> EnvironmentInfo:
        """The live environment ``name`` of ``app``, created or undeleted as needed.

        Args:
            app: the app's name.
            name: ``"production"`` or the preview's sanitised branch label.
            branch: the git branch it serves.

        Raises:
            NotFoundError: there is no such app.
            ConflictError: a live environment of that name serves another branch.
        """
        check_label("environment", name)
        try:
            return self._get_or_create_environment(app, name, branch)
        except IntegrityError:
            return self._get_or_create_environment(app, name, branch)

    def _get_or_create_environment(self, app: str, name: str, branch: str) -> EnvironmentInfo:
        with self._write() as session:
            app_row = q.app_row(session, app)
            env = session.scalar(
                sa.select(Environment).where(
                    Environment.app_id == app_row.id, Environment.name == name
                )
            )
            if env is None:
                env = Environment(
                    app_id=app_row.id, name=name, branch=branch, last_version=0, created_at=utcnow()
                )
                session.add(env)
            elif env.deleted_at is not None:
                env.deleted_at, env.branch = None, branch
            elif env.branch != branch:
                raise ConflictError(
                    f"environment {app}/{name} already serves branch {env.branch!r}; "
                    f"rename branch {branch!r} so its preview name differs"
                )
            session.flush()
            active = (
                None
                if env.active_release_id is None
                else session.get_one(Release, env.active_release_id).version
            )
            return EnvironmentInfo.from_row(app, env, active)

    def delete_environment(self, app: str, name: str) -> int:
        """Tear a preview down: it stops serving and its active release is disabled.

        Returns:
            The new ``routes_version``.

        Raises:
            NotFoundError: there is no such live environment.
            ConflictError: ``name`` is production, which is never deleted.
        """
        if name == PRODUCTION:
            raise ConflictError(f"{app}/{PRODUCTION} cannot be deleted; only previews can")
        with self._write() as session:
            env = q.env_row(session, app, name, live=True, lock=True)
            if env.active_release_id is not None:
                session.execute(
                    sa.update(Release)
                    .where(Release.id == env.active_release_id)
                    .values(status="disabled")
                )
            env.active_release_id = None
            env.deleted_at = utcnow()
            return q.bump_routes_version(session)

    def list_environments(self, app: str) -> list[EnvironmentInfo]:
        """The live environments of ``app``, by name.

        Raises:
            NotFoundError: there is no such app.
        """
        return list(self.get_app(app).environments)

    # -- releases ---------------------------------------------------------------

    def create_release(
        self,
        app: str,
        env_name: str,
        *,
        commit_sha: str,
        artifact: str,
        manifest_json: str,
        functions: list[FunctionRecord],
        created_by: str,
        author: str,
        message: str,
        rollback_of: int | None = None,
        packages: str = "",
    ) -> ReleaseInfo:
        """Record the next version of an environment, with status ``deploying``.

        The version comes from the environment's counter, incremented in the same
        transaction as the insert: concurrent callers get distinct versions and a
        failed insert leaves no gap.

        Args:
            app: the app's name.
            env_name: a live environment of the app.
            commit_sha: the git commit deployed.
            artifact: sha256 hex of the release bundle.
            manifest_json: the validated manifest, as JSON text.
            functions: the functions, each with its route patterns.
            created_by: the name of the token that pushed.
            author: the commit's author.
            message: the commit's subject.
            rollback_of: the version this release brings back, if it is a rollback.
            packages: the digest of its Python package environment (``""``: none).

        Raises:
            NotFoundError: the app, the environment or ``rollback_of`` is unknown.
        """
        with self._write() as session:
            env = q.env_row(session, app, env_name, live=True, lock=True)
            if rollback_of is not None:
                q.release_row(session, app, env, rollback_of)
            version = session.execute(
                sa.update(Environment)
                .where(Environment.id == env.id)
                .values(last_version=Environment.last_version + 1)
                .returning(Environment.last_version)
            ).scalar_one()
            release = Release(
                environment_id=env.id,
                version=version,
                commit_sha=commit_sha,
                artifact=artifact,
                manifest=manifest_json,
                status="deploying",
                created_at=utcnow(),
                created_by=created_by,
                author=author,
                message=message,
                rollback_of=rollback_of,
                packages=packages,
            )
            session.add(release)
            session.flush()
            q.insert_functions(session, release.id, functions)
            return q.release_info(session, app, env_name, release)

    def activate_release(self, release_id: int) -> ReleaseInfo:
        """Point the environment at a release and mark it active, in one step."""
        self.point_environment(release_id)
        return self.mark_active(release_id)

    def point_environment(self, release_id: int) -> int:
        """Make a release what its environment serves; returns the new routes_version.

        The release's status is left as it is: a deploy marks it ``active`` once
        the runtime has acknowledged (:meth:`mark_active`). Pointing at the
        release already served changes nothing.

        Raises:
            NotFoundError: no release has that id.
            ConflictError: the release failed, or its environment was deleted.
        """
        with self._write() as session:
            release, env, app = q.release_by_id(session, release_id)
            # Lock the environment, then re-read the release under that lock.
            session.refresh(env, with_for_update=True)
            session.refresh(release)
            if release.status == "failed":
                raise ConflictError(
                    f"release v{release.version} of {app}/{env.name} failed "
                    f"({release.status_reason}); it cannot be activated"
                )
            if env.deleted_at is not None:
                raise ConflictError(
                    f"environment {app}/{env.name} was deleted; "
                    "push its branch again to recreate it"
                )
            if env.active_release_id == release.id:
                return q.routes_version(session)
            env.active_release_id = release.id
            return q.bump_routes_version(session)

    def mark_active(self, release_id: int) -> ReleaseInfo:
        """Record that the runtime serves a release: it becomes ``active`` and the
        environment's previously active release ``superseded``, as does any older
        release still ``deploying`` (one the runtime never confirmed in time).

        Raises:
            NotFoundError: no release has that id.
        """
        with self._write() as session:
            release, env, app = q.release_by_id(session, release_id)
            session.refresh(env, with_for_update=True)
            session.execute(
                sa.update(Release)
                .where(
                    Release.environment_id == env.id,
                    sa.or_(
                        Release.status == "active",
                        sa.and_(Release.status == "deploying", Release.version < release.version),
                    ),
                    Release.id != release.id,
                )
                .values(status="superseded")
            )
            release.status, release.status_reason = "active", None
            return q.release_info(session, app, env.name, release)

    def mark_failed(self, release_id: int, reason: str) -> None:
        """Record that a release could not be deployed, and why.

        What the environment serves does not change: if the release was already
        activated, activate the previous one to bring it back.

        Raises:
            NotFoundError: no release has that id.
        """
        with self._write() as session:
            release = session.get(Release, release_id)
            if release is None:
                raise NotFoundError(f"release #{release_id} not found")
            release.status, release.status_reason = "failed", reason

    # -- runtime ----------------------------------------------------------------

    def routes_version(self) -> int:
        """The counter bumped whenever what the runtime must serve changes."""
        with self._read() as session:
            return q.routes_version(session)

    def routing_snapshot(self) -> RoutingSnapshot:
        """Everything the runtime serves, read in one consistent transaction.

        Four queries, whatever the number of apps: environments, functions, routes,
        and secrets (sealed: the runtime opens them, see :func:`edge.secretenv.unseal`).
        """
        with self._read(snapshot=True) as session:
            version = q.routes_version(session)
            rows = session.execute(
                sa.select(
                    App.name,
                    Environment.name,
                    Release.id,
                    Release.version,
                    Release.artifact,
                    App.id,
                    Release.packages,
                )
                .join(Environment, Environment.app_id == App.id)
                .join(Release, Release.id == Environment.active_release_id)
                .where(Environment.deleted_at.is_(None))
                .order_by(App.name, Environment.name)
            ).all()
            live = sa.select(Environment.active_release_id).where(Environment.deleted_at.is_(None))
            functions = q.functions(session, live)
            secrets = sealed_secrets(session)
        return RoutingSnapshot(
            version=version,
            environments=tuple(
                LiveEnvironment(
                    app=app,
                    environment=env,
                    release_id=release_id,
                    version=number,
                    artifact=artifact,
                    functions=functions[release_id],
                    app_id=app_id,
                    secrets=secrets.get((app_id, env), ()),
                    packages=packages,
                )
                for app, env, release_id, number, artifact, app_id, packages in rows
            ),
        )
