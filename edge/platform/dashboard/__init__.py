"""The web dashboard, served at ``/`` on the control plane's port.

Server-rendered (Jinja2) pages, SVG charts drawn on the server, and one small
plain-JavaScript file for the live parts (log tail, deploy steps, pause). Every
page reads fine without JavaScript. Sign-in trades an API token for a session
cookie (:mod:`edge.platform.sessions`); every form that changes something
carries the session's CSRF token.
"""

from __future__ import annotations

import falcon

from edge.platform.dashboard.live import DeploysPage, DeployStream, LogsPage, Static, log_classes
from edge.platform.dashboard.nodes import NodesPage
from edge.platform.dashboard.pages import AppPage, AppsPage, RollbackPage, rollback_eligible
from edge.platform.dashboard.signin import Login, Logout
from edge.platform.dashboard.web import Web
from edge.platform.services import Platform


def add_dashboard(app: falcon.App, platform: Platform) -> None:
    """Mount the dashboard's pages on the control plane's falcon app."""
    web = Web(platform)
    web.templates.globals["log_classes"] = log_classes
    web.templates.globals["rollback_eligible"] = rollback_eligible
    app.add_route("/", AppsPage(web))
    app.add_route("/nodes", NodesPage(web))
    app.add_route("/login", Login(web))
    app.add_route("/logout", Logout(web))
    app.add_route("/apps/{app}", AppPage(web))
    app.add_route("/apps/{app}/rollback", RollbackPage(web))
    app.add_route("/apps/{app}/logs", LogsPage(web))
    app.add_route("/apps/{app}/deploys", DeploysPage(web))
    app.add_route("/apps/{app}/deploys/stream", DeployStream(web))
    app.add_route("/static/{name}", Static())
