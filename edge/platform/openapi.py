"""The OpenAPI document served at ``/v1/openapi.json``.

Parameters carry the rules :mod:`edge.platform.params` enforces and responses
the shapes the API returns, so a client (and the schemathesis run in the test
suite) can rely on both. Links chain calls for stateful testing: the apps list
leads to each app's endpoints, a secret set leads to its unset.
"""

from __future__ import annotations

from typing import Any

from edge.platform.apitypes import (
    INT,
    LIST_STR,
    SCHEMAS,
    STR,
    obj,
    ref,
)
from edge.platform.params import MAX_TEXT
from edge.snapshot import LABEL_RULE

_LABEL = "^[a-z0-9]+(-[a-z0-9]+)*$"  # a DNS label without '--' (an app name)
_FUNCTION_LABEL = "^([a-z0-9]([a-z0-9-]*[a-z0-9])?)?$"  # empty: every function


_ERROR = {"description": "error", "content": {"application/json": {"schema": ref("Error")}}}
_AUTH: list[dict[str, list[str]]] = [{"token": []}]


def _op(
    op_id: str,
    summary: str,
    result: dict[str, Any],
    params: list[dict[str, Any]] | None = None,
    *,
    body: dict[str, Any] | None = None,
    links: dict[str, Any] | None = None,
    errors: tuple[str, ...] = (),
) -> dict[str, Any]:
    """An operation answering 200 with JSON ``result``; 400/401/403/404 and ``errors``."""
    ok: dict[str, Any] = {"description": "ok", "content": {"application/json": {"schema": result}}}
    if links:
        ok["links"] = links
    op: dict[str, Any] = {
        "operationId": op_id,
        "summary": summary,
        "security": _AUTH,
        "parameters": params or [],
        "responses": {"200": ok} | {code: _ERROR for code in ("400", "401", "403", "404", *errors)},
    }
    if body is not None:
        op["requestBody"] = {
            "required": "required" in body,
            "content": {"application/json": {"schema": body}},
        }
    return op


def _with_429(op: dict[str, Any]) -> dict[str, Any]:
    """An operation that may answer 429 with Retry-After (a cap on concurrent use)."""
    op["responses"]["429"] = _ERROR | {"headers": {"Retry-After": {"schema": {"type": "integer"}}}}
    return op


def _query(name: str, schema: dict[str, Any], description: str = "") -> dict[str, Any]:
    param = {"name": name, "in": "query", "schema": schema}
    return param | ({"description": description} if description else {})


def _link(operation: str, **parameters: str) -> dict[str, Any]:
    return {"operationId": operation, "parameters": parameters}


_APP = {
    "name": "app",
    "in": "path",
    "required": True,
    "schema": {"type": "string", "pattern": _LABEL, "maxLength": 63},
    "description": f"an app name: {LABEL_RULE}, no '--'",
}
_SECRET = {
    "name": "name",
    "in": "path",
    "required": True,
    "schema": {"type": "string", "pattern": "^[A-Za-z_][A-Za-z0-9_]{0,254}$"},
}
_KV_KEY = {
    "name": "key",
    "in": "path",
    "required": True,
    "schema": {"type": "string", "minLength": 1, "maxLength": 512},
    "description": "any text of at most 512 bytes (UTF-8), no NUL; '/' is allowed",
}
_ENV = _query(
    "env",
    {"type": "string", "maxLength": MAX_TEXT},
    "production (or main), or a preview by its branch or its name; empty: the default",
)
_FUNCTION = _query("function", {"type": "string", "pattern": _FUNCTION_LABEL, "maxLength": 63})
_FROM_APPS = "$response.body#/apps/0/name"
_APP_LINKS = {
    "releases": _link("listReleases", app=_FROM_APPS),
    "logs": _link("readLogs", app=_FROM_APPS),
    "metrics": _link("readMetrics", app=_FROM_APPS),
    "series": _link("readSeries", app=_FROM_APPS),
    "secrets": _link("listSecrets", app=_FROM_APPS),
    "rollback": _link("rollback", app=_FROM_APPS),
}
_SECRET_LINKS = {
    "list": _link("listSecrets", app="$request.path.app", env="$response.body#/environment"),
    "unset": _link("unsetSecret", app="$request.path.app", name="$request.path.name"),
}


def _list(name: str) -> dict[str, Any]:
    return {"type": "array", "items": ref(name)}


_LIMIT = {"type": "integer", "minimum": 1}
_BOOL = {"type": "boolean"}
_DIGEST = {"type": "string", "pattern": "^[0-9a-f]{64}$"}

PATHS: dict[str, Any] = {
    "/v1/apps": {
        "get": _op(
            "listApps",
            "List apps and their environments",
            obj({"apps": _list("App")}),
            links=_APP_LINKS,
        )
    },
    "/v1/nodes": {
        "get": _op(
            "listNodes",
            "List runtime nodes (admin): region, public URL, routes version, workers, "
            "last heartbeat and health (live, or gone when no worker heartbeats)",
            obj({"nodes": _list("Node")}),
        )
    },
    "/v1/apps/{app}/releases": {
        "get": _op(
            "listReleases",
            "List releases of an environment, newest first",
            obj({"app": STR, "environment": STR, "releases": _list("Release")}),
            [_APP, _ENV, _query("limit", _LIMIT | {"default": 50, "maximum": 1000})],
            links={
                "rollback": {
                    "operationId": "rollback",
                    "parameters": {"app": "$request.path.app"},
                    "requestBody": {"to": "$response.body#/releases/0/version"},
                }
            },
        )
    },
    "/v1/apps/{app}/rollback": {
        "post": _op(
            "rollback",
            "Repoint production to an earlier release (default: the previous one)",
            obj({"release": ref("Release"), "progress": LIST_STR, "url": STR}),
            [_APP],
            body={
                "type": "object",
                "properties": {
                    "to": {
                        "type": ["integer", "null"],
                        "minimum": 1,
                        "maximum": 2**31 - 1,
                        "description": "release version; null or absent: the previous one",
                    }
                },
                "additionalProperties": False,
            },
            links={"releases": _link("listReleases", app="$request.path.app")},
            errors=("409",),
        )
    },
    "/v1/apps/{app}/secrets": {
        "get": _op(
            "listSecrets",
            "An environment's secrets: names and when they changed, never values",
            obj({"app": STR, "environment": STR, "secrets": _list("Secret")}),
            [_APP, _ENV],
        )
    },
    "/v1/apps/{app}/secrets/{name}": {
        "put": _op(
            "setSecret",
            "Set a secret (encrypted at rest); the environment hot-swaps onto it as a "
            'new release, "secrets changed"',
            ref("SecretChange"),
            [_APP, _SECRET, _ENV],
            body={
                "type": "object",
                "required": ["value"],
                "properties": {"value": {"type": "string", "minLength": 1}},
                "additionalProperties": False,
            },
            links=_SECRET_LINKS,
            errors=("409",),
        ),
        "delete": _op(
            "unsetSecret",
            'Unset a secret; the environment hot-swaps as a new release, "secrets changed"',
            ref("SecretChange"),
            [_APP, _SECRET, _ENV],
            links={"list": _SECRET_LINKS["list"]},
            errors=("409",),
        ),
    },
    "/v1/apps/{app}/kv": {
        "get": _op(
            "listKV",
            "An environment's function KV keys, by prefix; a page at a time "
            "(cursor: the last key of the previous page, null after the last page)",
            obj(
                {
                    "app": STR,
                    "environment": STR,
                    "keys": LIST_STR,
                    "cursor": {"type": ["string", "null"]},
                }
            ),
            [
                _APP,
                _ENV,
                _query("prefix", {"type": "string"}),
                _query("limit", _LIMIT | {"default": 1000, "maximum": 1000}),
                _query("cursor", {"type": "string"}),
            ],
            links={"read": _link("readKV", app="$request.path.app", key="$response.body#/keys/0")},
        )
    },
    "/v1/apps/{app}/kv/{key}": {
        "get": _op(
            "readKV",
            "One KV value: value (UTF-8 text, or null) and value_base64",
            obj({"key": STR, "value": {"type": ["string", "null"]}, "value_base64": STR}),
            [_APP, _KV_KEY, _ENV],
        ),
        "put": _op(
            "writeKV",
            "Store a KV value (text or base64), with an optional ttl in seconds",
            obj({"key": STR, "environment": STR, "stored": {"const": True}}),
            [_APP, _KV_KEY, _ENV],
            body={
                "type": "object",
                "properties": {
                    "value": STR,
                    "value_base64": {"type": "string", "contentEncoding": "base64"},
                    "ttl": {"type": ["number", "null"], "exclusiveMinimum": 0},
                },
                "additionalProperties": False,
            },
            links={
                "read": _link("readKV", app="$request.path.app", key="$request.path.key"),
                "delete": _link("deleteKV", app="$request.path.app", key="$request.path.key"),
            },
            errors=("413",),
        ),
        "delete": _op(
            "deleteKV",
            "Delete a KV key",
            obj({"key": STR, "environment": STR, "deleted": {"const": True}}),
            [_APP, _KV_KEY, _ENV],
        ),
    },
    "/v1/apps/{app}/logs": {
        "get": _with_429(
            _op(
                "readLogs",
                "An app's function logs and platform events; follow=1 streams "
                "Server-Sent Events (text/event-stream) until EDGE_MAX_STREAM_S",
                obj({"app": STR, "records": _list("LogRecord")}),
                [
                    _APP,
                    _FUNCTION,
                    _ENV,
                    _query(
                        "since",
                        {"type": "string", "pattern": "^([0-9]+(\\.[0-9]+)?[smhd]?)?$"},
                        "a positive duration up to 366d, e.g. 30s, 10m, 2h, 1d",
                    ),
                    _query("limit", _LIMIT | {"default": 1000, "maximum": 10_000}),
                    _query("follow", _BOOL),
                    {
                        "name": "Last-Event-ID",
                        "in": "header",
                        "schema": {"type": "string", "pattern": "^[0-9]{1,20}-[0-9]{1,20}$"},
                        "description": "with follow=1: resume after this record id",
                    },
                ],
            )
        )
    },
    "/v1/apps/{app}/metrics": {
        "get": _op(
            "readMetrics",
            "Per-function invocations, errors, cold starts, latency quantiles, memory peak",
            obj({"app": STR, "functions": _list("FunctionMetrics")}),
            [_APP, _ENV],
        )
    },
    "/v1/apps/{app}/metrics/series": {
        "get": _op(
            "readSeries",
            "Per-function, per-minute requests, errors, cold starts and latency "
            "(avg/p50/p95/p99 from a histogram), summed over every runtime node; kept 24 hours",
            obj({"app": STR, "minutes": INT, "functions": _list("FunctionSeries")}),
            [
                _APP,
                _ENV,
                _FUNCTION,
                _query("minutes", _LIMIT | {"default": 60, "maximum": 1440}),
                _query(
                    "histogram", _BOOL, "add each minute's latency histogram (ms bound -> count)"
                ),
            ],
        )
    },
    "/v1/bundles/{app}/{digest}": {
        "get": _op(
            "getBundle",
            "A release bundle (tar) for runtime nodes (admin token)",
            {},
            [_APP, {"name": "digest", "in": "path", "required": True, "schema": _DIGEST}],
        )
    },
}
# follow=1: each event is a log record (``id`` its record id, ``data`` its JSON) or,
# when the stream reaches EDGE_MAX_STREAM_S, ``event: end`` with the reason.
PATHS["/v1/apps/{app}/logs"]["get"]["responses"]["200"]["content"]["text/event-stream"] = {
    "schema": {
        "type": "object",
        "required": ["data"],
        "properties": {
            "id": {"type": "string", "pattern": "^[0-9]+-[0-9]+$"},
            "event": {"type": "string", "enum": ["message", "end"]},
            "data": {"type": "string", "contentMediaType": "application/json"},
        },
    }
}
PATHS["/v1/bundles/{app}/{digest}"]["get"]["responses"]["200"]["content"] = {
    "application/x-tar": {"schema": {"type": "string", "format": "binary"}}
}

OPENAPI: dict[str, Any] = {
    "openapi": "3.1.0",
    "info": {"title": "Edge control plane", "version": "1"},
    "components": {
        "securitySchemes": {"token": {"type": "http", "scheme": "bearer"}},
        "schemas": SCHEMAS,
    },
    "paths": PATHS,
}
