"""What every dashboard page shares: templates, the signed-in viewer, CSRF, headers."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import quote

import falcon
import jinja2

from edge.errors import ForbiddenError
from edge.platform.services import Platform
from edge.platform.sessions import SESSION_COOKIE, Session
from edge.platform.store import TokenInfo

STATIC = Path(__file__).parent / "static"
# APPSEC: scripts and styles only from our own files (no inline code can run), no
# framing (clickjacking a rollback button), no referrer leaking app names.
SECURITY_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; "
        "object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
    ),
    "X-Frame-Options": "DENY",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
    "Cache-Control": "no-store",
}


@dataclass(frozen=True)
class Viewer:
    """A signed-in browser: its session and its token's identity."""

    session: Session
    identity: TokenInfo

    @property
    def csrf(self) -> str:
        return self.session.csrf


def ago(moment: datetime | float | None) -> str:
    """``"5 min ago"``-style text for a time (UTC datetime or epoch seconds)."""
    if moment is None:
        return "never"
    then = moment if isinstance(moment, datetime) else datetime.fromtimestamp(moment, UTC)
    seconds = (datetime.now(UTC) - then).total_seconds()
    for size, unit in ((86400, "d"), (3600, "h"), (60, "min")):
        if seconds >= size:
            return f"{int(seconds // size)} {unit} ago"
    return "just now"


def iso(moment: datetime | float | None) -> str:
    if moment is None:
        return ""
    then = moment if isinstance(moment, datetime) else datetime.fromtimestamp(moment, UTC)
    return then.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


class Web:
    """Templates and the viewer, shared by every dashboard resource."""

    def __init__(self, platform: Platform) -> None:
        self.platform = platform
        self.templates = jinja2.Environment(
            loader=jinja2.PackageLoader("edge.platform.dashboard", "templates"),
            autoescape=True,
            undefined=jinja2.StrictUndefined,
        )
        self.templates.filters["ago"] = ago
        self.templates.filters["iso"] = iso

    def html(self, template: str, **context: Any) -> str:
        return self.templates.get_template(template).render(**context)

    def render(self, resp: falcon.Response, template: str, **context: Any) -> None:
        resp.content_type = falcon.MEDIA_HTML
        resp.set_headers(SECURITY_HEADERS)
        context.setdefault("viewer", None)
        resp.text = self.html(template, **context)

    def viewer(self, req: falcon.Request) -> Viewer | None:
        found = self.platform.sessions.signed_in(
            req.cookies.get(SESSION_COOKIE), self.platform.store.authenticate_hash
        )
        return Viewer(*found) if found else None

    def require(self, req: falcon.Request, app: str | None = None) -> Viewer:
        """The viewer, or a redirect to the sign-in page; errors become HTML pages."""
        self._errors_as_html(req, None)
        viewer = self.viewer(req)
        self._errors_as_html(req, viewer)
        if viewer is None:
            raise falcon.HTTPSeeOther("/login?next=" + quote(req.relative_uri, safe=""))
        if app is not None and not viewer.identity.can_access(app):
            raise ForbiddenError(f"token {viewer.identity.name!r} has no access to app {app!r}")
        return viewer

    def _errors_as_html(self, req: falcon.Request, viewer: Viewer | None) -> None:
        req.context.render_error = lambda resp, ex: self.render(
            resp, "error.html", viewer=viewer, title="Error", error=str(ex)
        )

    def check_csrf(self, req: falcon.Request, viewer: Viewer, form: dict[str, Any]) -> None:
        """APPSEC: every state-changing form carries the session's CSRF token."""
        if not viewer.session.csrf_ok(form.get("csrf")):
            raise ForbiddenError("this form is missing its CSRF token: reload the page and retry")


def form_of(req: falcon.Request) -> dict[str, Any]:
    """The posted form fields (URL-encoded), or an empty dict."""
    if not (req.content_type or "").startswith("application/x-www-form-urlencoded"):
        return {}
    media = req.get_media(default_when_empty={})
    return media if isinstance(media, dict) else {}


def see_other(resp: falcon.Response, location: str) -> None:
    """Answer 303 (keeping any cookies set on ``resp``)."""
    resp.status = falcon.HTTP_303
    resp.location = location
    resp.text = ""
