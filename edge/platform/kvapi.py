"""``/v1/apps/{app}/kv``: an app environment's function KV, for people and scripts.

The same namespaces, limits and Lua script as functions use (:mod:`edge.kvstore`),
run on the control plane's Redis client. Values travel as JSON: ``value`` (text)
or ``value_base64`` (any bytes).
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Callable
from typing import Any

import falcon

from edge.errors import EdgeError, NotFoundError
from edge.kvstore import MAX_LIST, KVError, Limits, Namespace, plan
from edge.platform.deploy import environment_for_branch
from edge.platform.repos import check_app_name
from edge.platform.services import Platform
from edge.snapshot import PRODUCTION

Require = Callable[[Platform, falcon.Request, str], Any]


class KVLimitError(EdgeError):
    """A KV limit refused the value (413)."""

    http_status = 413


def _namespace(req: falcon.Request, app: str) -> Namespace:
    check_app_name(app)
    raw = req.get_param("env") or PRODUCTION
    env = PRODUCTION if raw in ("main", PRODUCTION) else environment_for_branch(raw, app)
    return Namespace(app, env)


class _Base:
    def __init__(self, platform: Platform, require: Require) -> None:
        self.platform = platform
        self.require = require
        config = platform.config
        self.limits = Limits(config.kv_max_value_bytes, config.kv_max_bytes)

    def run(self, ns: Namespace, message: dict[str, Any]) -> Any:
        try:
            op = plan(ns, message, self.limits)
            return op.result(self.platform.redis.execute_command(*op.command))
        except KVError as exc:
            raise (KVLimitError if exc.code == "limit" else EdgeError)(str(exc)) from None


class KVKeys(_Base):
    """``GET``: the keys of a namespace, by prefix, a page at a time."""

    def on_get(self, req: falcon.Request, resp: falcon.Response, app: str) -> None:
        self.require(self.platform, req, app)
        ns = _namespace(req, app)
        limit = req.get_param_as_int("limit", min_value=1, max_value=MAX_LIST) or MAX_LIST
        message = {"op": "list", "prefix": req.get_param("prefix") or "", "limit": limit}
        if req.get_param("cursor"):
            message["cursor"] = req.get_param("cursor")
        page = self.run(ns, message)
        resp.media = {"app": app, "environment": ns.environment, **page}


class KVValue(_Base):
    """``GET``, ``PUT`` (``{"value"|"value_base64", "ttl"}``) and ``DELETE`` one key."""

    def on_get(self, req: falcon.Request, resp: falcon.Response, app: str, key: str) -> None:
        self.require(self.platform, req, app)
        ns = _namespace(req, app)
        value = self.run(ns, {"op": "get", "key": key})
        if value is None:
            raise NotFoundError(f"no KV key {key!r} in {app} ({ns.environment})")
        try:
            text: str | None = value.decode("utf-8")
        except UnicodeDecodeError:
            text = None
        resp.media = {
            "key": key,
            "value": text,
            "value_base64": base64.b64encode(value).decode("ascii"),
        }

    def on_put(self, req: falcon.Request, resp: falcon.Response, app: str, key: str) -> None:
        self.require(self.platform, req, app)
        ns = _namespace(req, app)
        body = req.get_media(default_when_empty={}) or {}
        if not isinstance(body, dict):
            raise EdgeError('send JSON: {"value": "text"} or {"value_base64": "..."}')
        self.run(ns, {"op": "put", "key": key, "value": _value(body), "ttl": body.get("ttl")})
        resp.media = {"key": key, "environment": ns.environment, "stored": True}

    def on_delete(self, req: falcon.Request, resp: falcon.Response, app: str, key: str) -> None:
        self.require(self.platform, req, app)
        ns = _namespace(req, app)
        self.run(ns, {"op": "delete", "key": key})
        resp.media = {"key": key, "environment": ns.environment, "deleted": True}


def _value(body: dict[str, Any]) -> bytes:
    if isinstance(body.get("value"), str):
        return str(body["value"]).encode("utf-8")
    if isinstance(body.get("value_base64"), str):
        try:
            return base64.b64decode(body["value_base64"], validate=True)
        except (binascii.Error, ValueError):
            raise EdgeError("value_base64 is not valid base64") from None
    raise EdgeError('send JSON: {"value": "text"} or {"value_base64": "..."}')


def add_kv_routes(app: falcon.App, platform: Platform, require: Require) -> None:
    app.add_route("/v1/apps/{app}/kv", KVKeys(platform, require))
    app.add_route("/v1/apps/{app}/kv/{key:path}", KVValue(platform, require))
