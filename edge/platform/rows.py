"""Queries inside a store session: rows by name, counters, function rows.

Helpers of :class:`edge.platform.store.Store`; each takes the open session
and never commits (the store's transaction does).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Session

from edge.errors import NotFoundError
from edge.platform.models import (
    PLATFORM_STATE_ID,
    App,
    AppInfo,
    Environment,
    EnvironmentInfo,
    Function,
    PlatformState,
    Release,
    ReleaseInfo,
    Route,
    as_utc,
    function_record,
)
from edge.snapshot import FunctionRecord


def app_row(session: Session, name: str) -> App:
    row = session.scalar(sa.select(App).where(App.name == name))
    if row is None:
        raise NotFoundError(f"app {name!r} not found; `edge apps` lists them")
    return row


def env_row(
    session: Session, app: str, name: str, *, live: bool = False, lock: bool = False
) -> Environment:
    query = (
        sa.select(Environment)
        .join(App, App.id == Environment.app_id)
        .where(App.name == app, Environment.name == name)
    )
    if live:
        query = query.where(Environment.deleted_at.is_(None))
    if lock:
        query = query.with_for_update(of=Environment)
    env = session.scalar(query)
    if env is None:
        app_row(session, app)
        raise NotFoundError(
            f"environment {name!r} of app {app!r} not found; "
            f"`edge apps` lists the environments of each app"
        )
    return env


def release_row(session: Session, app: str, env: Environment, version: int) -> Release:
    release = session.scalar(
        sa.select(Release).where(Release.environment_id == env.id, Release.version == version)
    )
    if release is None:
        raise NotFoundError(
            f"release v{version} of {app}/{env.name} not found; `edge releases {app}` lists them"
        )
    return release


def release_by_id(session: Session, release_id: int) -> tuple[Release, Environment, str]:
    row = session.execute(
        sa.select(Release, Environment, App.name)
        .join(Environment, Environment.id == Release.environment_id)
        .join(App, App.id == Environment.app_id)
        .where(Release.id == release_id)
    ).one_or_none()
    if row is None:
        raise NotFoundError(f"release #{release_id} not found")
    release, env, app = row
    return release, env, app


def routes_version(session: Session) -> int:
    return session.execute(
        sa.select(PlatformState.routes_version).where(PlatformState.id == PLATFORM_STATE_ID)
    ).scalar_one()


def bump_routes_version(session: Session) -> int:
    return session.execute(
        sa.update(PlatformState)
        .where(PlatformState.id == PLATFORM_STATE_ID)
        .values(routes_version=PlatformState.routes_version + 1)
        .returning(PlatformState.routes_version)
    ).scalar_one()


def insert_functions(
    session: Session, release_id: int, functions: Iterable[FunctionRecord]
) -> None:
    functions = list(functions)
    if not functions:
        return
    session.execute(
        sa.insert(Function),
        [
            {
                "release_id": release_id,
                "name": f.name,
                "runtime": f.runtime,
                "entry": f.entry,
                "path": f.path,
                "handler": f.handler,
                "memory_mb": f.memory_mb,
                "timeout_ms": f.timeout_ms,
                "regions": list(f.regions),
                "env": dict(f.env),
                "min_warm": f.min_warm,
                "max_instances": f.max_instances,
                "content_hash": f.content_hash,
                "kind": f.kind,
            }
            for f in functions
        ],
    )
    routes = [
        {
            "release_id": release_id,
            "function_name": f.name,
            "position": position,
            "pattern": pattern,
            "method": method,
            "path": path,
        }
        for f in functions
        for position, pattern in enumerate(f.routes)
        for method, path in [split_pattern(pattern)]
    ]
    if routes:
        session.execute(sa.insert(Route), routes)


def split_pattern(text: str) -> tuple[str | None, str]:
    """``"GET /x"`` -> ``("GET", "/x")``; ``"/x"`` -> ``(None, "/x")``."""
    text = text.strip()
    if text.startswith("/"):
        return None, text
    method, _, path = text.partition(" ")
    return method.upper(), path.strip()


def functions(
    session: Session, release_ids: Iterable[int] | sa.Select[Any]
) -> defaultdict[int, tuple[FunctionRecord, ...]]:
    """The functions of many releases, with their routes, in two queries."""
    ids = release_ids if isinstance(release_ids, sa.Select) else list(release_ids)
    patterns: defaultdict[tuple[int, str], list[str]] = defaultdict(list)
    for release_id, name, pattern in session.execute(
        sa.select(Route.release_id, Route.function_name, Route.pattern)
        .where(Route.release_id.in_(ids))
        .order_by(Route.release_id, Route.function_name, Route.position)
    ):
        patterns[release_id, name].append(pattern)
    grouped: defaultdict[int, list[FunctionRecord]] = defaultdict(list)
    for row in session.scalars(
        sa.select(Function)
        .where(Function.release_id.in_(ids))
        .order_by(Function.release_id, Function.name)
    ):
        grouped[row.release_id].append(
            function_record(row, tuple(patterns[row.release_id, row.name]))
        )
    return defaultdict(tuple, {key: tuple(value) for key, value in grouped.items()})


def release_info(session: Session, app: str, env_name: str, row: Release) -> ReleaseInfo:
    return ReleaseInfo.from_row(app, env_name, row, functions(session, [row.id])[row.id])


def app_infos(session: Session, apps: Iterable[App]) -> list[AppInfo]:
    """Apps with their live environments, in one query for all the environments."""
    apps = list(apps)
    names = {app.id: app.name for app in apps}
    envs: defaultdict[int, list[EnvironmentInfo]] = defaultdict(list)
    for env, version in session.execute(
        sa.select(Environment, Release.version)
        .outerjoin(Release, Release.id == Environment.active_release_id)
        .where(Environment.app_id.in_(names), Environment.deleted_at.is_(None))
        .order_by(Environment.name)
    ):
        envs[env.app_id].append(EnvironmentInfo.from_row(names[env.app_id], env, version))
    return [
        AppInfo(
            id=app.id,
            name=app.name,
            created_at=as_utc(app.created_at),
            created_by=app.created_by,
            environments=tuple(envs[app.id]),
        )
        for app in apps
    ]
