"""The Apps and App pages, and the rollback confirmation."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import falcon

from edge.errors import EdgeError, NotFoundError
from edge.metrics import read_metrics
from edge.platform.dashboard.charts import bars
from edge.platform.dashboard.web import Viewer, Web, form_of, see_other
from edge.platform.environments import public_url
from edge.platform.models import AppInfo, EnvironmentInfo, ReleaseInfo
from edge.series import read_app_series, read_series
from edge.snapshot import PRODUCTION

RELEASES_SHOWN = 50
FN_CHART = 120  # px: three charts per function row


@dataclass(frozen=True)
class Link:
    label: str
    url: str


def _environment(info: AppInfo, name: str) -> EnvironmentInfo:
    for env in info.environments:
        if env.name == name:
            return env
    raise NotFoundError(f"app {info.name!r} has no environment {name!r}")


class AppsPage:
    """``/``: every app the viewer may see, with its releases and last hour."""

    def __init__(self, web: Web) -> None:
        self.web = web

    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        viewer = self.web.require(req)
        platform = self.web.platform
        apps = [a for a in platform.store.list_apps() if viewer.identity.can_access(a.name)]
        last = platform.store.last_deploys()
        series = read_app_series(platform.redis, [a.name for a in apps])
        rows = [self._row(app, last.get(app.name), series.get(app.name, [])) for app in apps]
        self.web.render(resp, "apps.html", viewer=viewer, title="Apps", rows=rows)

    def _row(self, app: AppInfo, last: Any, minutes: list[tuple[int, int]]) -> dict[str, Any]:
        config = self.web.platform.config
        production = next((e for e in app.environments if e.name == PRODUCTION), None)
        previews = [
            Link(e.name, public_url(config, app.name, e.name))
            for e in app.environments
            if e.name != PRODUCTION
        ]
        requests = [r for r, _ in minutes] or [0] * 60
        errors = [e for _, e in minutes] or [0] * 60
        return {
            "app": app,
            "production": production,
            "production_url": public_url(config, app.name, PRODUCTION),
            "previews": previews,
            "last": last,
            "requests": sum(requests),
            "errors": sum(errors),
            "requests_chart": bars(requests, label="requests per minute"),
            "errors_chart": bars(errors, label="errors per minute", kind="errors"),
        }


def _function_rows(
    release: ReleaseInfo | None, metrics: list[dict[str, Any]], series: list[dict[str, Any]]
) -> list[dict[str, Any]]:
    names = [f.name for f in release.functions] if release else []
    names += sorted({m["function"] for m in metrics} - set(names))
    by_name = {m["function"]: m for m in metrics}
    points = {s["function"]: s["points"] for s in series}
    rows = []
    for name in names:
        minutes = points.get(name) or [{"requests": 0, "errors": 0, "p99_ms": 0}] * 60
        requests = [p["requests"] for p in minutes]
        p99 = [p["p99_ms"] for p in minutes]
        errors = [p["errors"] for p in minutes]
        rows.append(
            {
                "name": name,
                "metrics": by_name.get(name),
                "requests": sum(requests),
                "p99_peak": max(p99),
                "errors": sum(errors),
                "requests_chart": bars(requests, label="requests/min", width=FN_CHART),
                "p99_chart": bars(
                    p99, label="p99 latency", unit=" ms", kind="latency", width=FN_CHART
                ),
                "errors_chart": bars(errors, label="errors/min", kind="errors", width=FN_CHART),
            }
        )
    return rows


class AppPage:
    """``/apps/{app}``: environments, functions with their last hour, releases."""

    def __init__(self, web: Web) -> None:
        self.web = web

    def on_get(self, req: falcon.Request, resp: falcon.Response, app: str) -> None:
        viewer = self.web.require(req, app)
        platform = self.web.platform
        info = platform.store.get_app(app)
        env = _environment(info, req.get_param("env") or PRODUCTION) if info.environments else None
        env_name = env.name if env else PRODUCTION
        releases = platform.store.list_releases(app, env_name, limit=RELEASES_SHOWN) if env else []
        active = next((r for r in releases if env and r.id == env.active_release_id), None)
        if active is None and env is not None and env.active_release_id is not None:
            active = platform.store.active_release(app, env_name)
        # Redis down: the session lookup already failed with a 503 page.
        metrics = read_metrics(platform.redis, app, env_name)
        series = read_series(platform.redis, app, environment=env_name)
        rolled = req.get_param_as_int("rolled_back")
        self.web.render(
            resp,
            "app.html",
            viewer=viewer,
            title=app,
            app=info,
            env=env,
            env_name=env_name,
            urls={e.name: public_url(platform.config, app, e.name) for e in info.environments},
            releases=releases,
            active=active,
            can_roll_back=env_name == PRODUCTION,
            functions=_function_rows(active, metrics, series),
            rolled_back=rolled,
        )


def rollback_eligible(release: ReleaseInfo, active: ReleaseInfo | None) -> bool:
    """A release production can go back to: it deployed, and it is not what serves now."""
    return release.status not in ("failed", "deploying") and (
        active is None or (release.id != active.id and release.artifact != active.artifact)
    )


class RollbackPage:
    """``/apps/{app}/rollback?to=N``: confirm first (GET), then roll back (POST)."""

    def __init__(self, web: Web) -> None:
        self.web = web

    def _target(self, req: falcon.Request, form: dict[str, Any], app: str) -> ReleaseInfo:
        raw = form.get("to") if form else req.get_param("to")
        try:
            version = int(str(raw))
        except ValueError:
            raise EdgeError(f"'to' must be a release version number (got {raw!r})") from None
        return self.web.platform.store.get_release(app, PRODUCTION, version)

    def on_get(self, req: falcon.Request, resp: falcon.Response, app: str) -> None:
        viewer = self.web.require(req, app)
        target = self._target(req, {}, app)
        active = self.web.platform.store.active_release(app, PRODUCTION)
        self.web.render(
            resp,
            "rollback.html",
            viewer=viewer,
            title=f"Roll back {app}",
            app=app,
            target=target,
            active=active,
            eligible=rollback_eligible(target, active),
        )

    def on_post(self, req: falcon.Request, resp: falcon.Response, app: str) -> None:
        viewer: Viewer = self.web.require(req, app)
        form = form_of(req)
        self.web.check_csrf(req, viewer, form)
        target = self._target(req, form, app)
        release = self.web.platform.deployer.rollback(
            app, to=target.version, by=viewer.identity.name, progress=lambda _line: None
        )
        if release.status == "failed":
            raise EdgeError(f"rollback failed: {release.status_reason}")
        see_other(resp, f"/apps/{app}?rolled_back={target.version}")
