"""Read-only summaries for the dashboard, a few queries whatever the number of apps."""

from __future__ import annotations

from contextlib import AbstractContextManager
from dataclasses import dataclass
from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.orm import Session

from edge.platform.models import App, Environment, Release, as_utc


@dataclass(frozen=True)
class LastDeploy:
    """An app's newest release, in any environment."""

    app: str
    environment: str
    version: int
    status: str
    created_at: datetime
    created_by: str
    author: str


class OverviewMethods:
    """The dashboard part of :class:`edge.platform.store.Store` (which supplies the sessions)."""

    def _read(self, *, snapshot: bool = False) -> AbstractContextManager[Session]:
        raise NotImplementedError

    def last_deploys(self) -> dict[str, LastDeploy]:
        """Each app's newest release, by app name (apps never deployed are absent).

        One query: the highest release id per app, joined back to its row.
        """
        newest = (
            sa.select(sa.func.max(Release.id))
            .join(Environment, Environment.id == Release.environment_id)
            .group_by(Environment.app_id)
        )
        query = (
            sa.select(
                App.name,
                Environment.name,
                Release.version,
                Release.status,
                Release.created_at,
                Release.created_by,
                Release.author,
            )
            .join(Environment, Environment.id == Release.environment_id)
            .join(App, App.id == Environment.app_id)
            .where(Release.id.in_(newest))
        )
        with self._read() as session:
            return {
                app: LastDeploy(app, env, version, status, as_utc(at), by, author)
                for app, env, version, status, at, by, author in session.execute(query)
            }
