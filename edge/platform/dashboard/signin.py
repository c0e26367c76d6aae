"""Signing in with an API token, and out."""

from __future__ import annotations

import hmac
import secrets

import falcon

from edge.platform.dashboard.web import Web, form_of, see_other
from edge.platform.sessions import LOGIN_CSRF_COOKIE, SESSION_COOKIE, SESSION_TTL
from edge.platform.tokens import hash_token


def _next(target: str | None) -> str:
    """Where to go after signing in: a path on this site only (no open redirect)."""
    if target and target.startswith("/") and not target.startswith("//") and "\\" not in target:
        return target
    return "/"


class Login:
    """``/login``: a form to paste a token into; a good token starts a session."""

    def __init__(self, web: Web) -> None:
        self.web = web

    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        if self.web.viewer(req) is not None:
            raise falcon.HTTPSeeOther(_next(req.get_param("next")))
        self._form(req, resp, error=None)

    def _form(self, req: falcon.Request, resp: falcon.Response, error: str | None) -> None:
        # APPSEC: login CSRF (signing a victim into the attacker's token) is stopped
        # by a double-submit token: the form's value must match this cookie.
        csrf = secrets.token_urlsafe(24)
        resp.set_cookie(
            LOGIN_CSRF_COOKIE,
            csrf,
            max_age=3600,
            path="/login",
            secure=req.scheme == "https",
            http_only=True,
            same_site="Strict",
        )
        self.web.render(
            resp,
            "login.html",
            title="Sign in",
            csrf=csrf,
            error=error,
            next=_next(req.get_param("next")),
        )

    def on_post(self, req: falcon.Request, resp: falcon.Response) -> None:
        form = form_of(req)
        expected = req.cookies.get(LOGIN_CSRF_COOKIE) or ""
        submitted = str(form.get("csrf") or "")
        if not expected or not hmac.compare_digest(expected, submitted):
            resp.status = falcon.HTTP_403
            self._form(req, resp, error="The sign-in form expired: paste the token again.")
            return
        token = str(form.get("token") or "").strip()
        identity = self.web.platform.store.authenticate(token) if token else None
        if identity is None:
            resp.status = falcon.HTTP_401
            self._form(req, resp, error="That token is not valid (unknown or revoked).")
            return
        session = self.web.platform.sessions.create(hash_token(token))
        resp.set_cookie(
            SESSION_COOKIE,
            session.id,
            max_age=SESSION_TTL,
            path="/",
            secure=req.scheme == "https",
            http_only=True,
            same_site="Strict",
        )
        resp.unset_cookie(LOGIN_CSRF_COOKIE, path="/login")
        see_other(resp, _next(str(form.get("next") or "/")))


class Logout:
    """``POST /logout``: ends the session (CSRF-checked like every other form)."""

    def __init__(self, web: Web) -> None:
        self.web = web

    def on_post(self, req: falcon.Request, resp: falcon.Response) -> None:
        viewer = self.web.require(req)
        self.web.check_csrf(req, viewer, form_of(req))
        self.web.platform.sessions.delete(viewer.session.id)
        resp.unset_cookie(SESSION_COOKIE, path="/")
        see_other(resp, "/login")
