"""The read side of releases: one, the served one, the list, a rollback's target.

Part of :class:`edge.platform.store.Store` (which supplies the sessions), as
:mod:`edge.platform.tokens` and :mod:`edge.platform.vault` are.
"""

from __future__ import annotations

from contextlib import AbstractContextManager

import sqlalchemy as sa
from sqlalchemy.orm import Session

from edge.errors import ConflictError
from edge.platform import rows as q
from edge.platform.models import Release, ReleaseInfo
from edge.snapshot import PRODUCTION


class ReleaseReads:
    """The release queries of :class:`edge.platform.store.Store`."""

    def _read(self, *, snapshot: bool = False) -> AbstractContextManager[Session]:
        raise NotImplementedError

    def rollback_target(self, app: str, env_name: str, version: int | None) -> ReleaseInfo:
        """The release a rollback brings back: ``version``, or the one before the
        release served now (skipping failed releases).

        Raises:
            NotFoundError: unknown app, environment or version.
            ConflictError: there is nothing earlier to go back to, or the
                release named failed.
        """
        with self._read() as session:
            env = q.env_row(session, app, env_name)
            row: Release | None
            if version is not None:
                row = q.release_row(session, app, env, version)
            else:
                current = env.active_release_id or 0
                active = session.get(Release, current)
                row = session.scalars(
                    sa.select(Release)
                    .where(
                        Release.environment_id == env.id,
                        Release.status != "failed",
                        Release.status != "deploying",
                        Release.version < (active.version if active else 1 << 62),
                        Release.artifact != (active.artifact if active else ""),
                    )
                    .order_by(Release.version.desc())
                    .limit(1)
                ).first()
                if row is None:
                    raise ConflictError(
                        f"{app}/{env_name} has no earlier release to roll "
                        f"back to; `edge releases {app}` lists them"
                    )
            if row.status == "failed":
                raise ConflictError(
                    f"release v{row.version} of {app}/{env_name} failed "
                    f"({row.status_reason}); pick another version"
                )
            return q.release_info(session, app, env_name, row)

    def get_release(self, app: str, env_name: str, version: int) -> ReleaseInfo:
        """Version ``version`` of an environment, with its functions.

        Raises:
            NotFoundError: the app, environment or version is unknown.
        """
        with self._read() as session:
            env = q.env_row(session, app, env_name)
            release = q.release_row(session, app, env, version)
            return q.release_info(session, app, env_name, release)

    def list_releases(
        self, app: str, env_name: str = PRODUCTION, limit: int = 50
    ) -> list[ReleaseInfo]:
        """The newest ``limit`` releases of an environment, newest first.

        Raises:
            NotFoundError: the app or environment is unknown.
        """
        with self._read() as session:
            env = q.env_row(session, app, env_name)
            rows = list(
                session.scalars(
                    sa.select(Release)
                    .where(Release.environment_id == env.id)
                    .order_by(Release.version.desc())
                    .limit(limit)
                )
            )
            functions = q.functions(session, [row.id for row in rows])
            return [ReleaseInfo.from_row(app, env_name, row, functions[row.id]) for row in rows]

    def active_release(self, app: str, env_name: str) -> ReleaseInfo | None:
        """The release an environment serves, or ``None`` before its first activation.

        Raises:
            NotFoundError: the app or environment is unknown.
        """
        with self._read() as session:
            env = q.env_row(session, app, env_name)
            if env.active_release_id is None:
                return None
            release = session.get_one(Release, env.active_release_id)
            return q.release_info(session, app, env_name, release)
