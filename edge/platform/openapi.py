"""The OpenAPI document served at ``/v1/openapi.json``."""

from __future__ import annotations

from typing import Any

_ERROR = {
    "description": "error",
    "content": {
        "application/json": {
            "schema": {"type": "object", "properties": {"error": {"type": "string"}}}
        }
    },
}
_AUTH: list[dict[str, list[str]]] = [{"token": []}]


def _op(
    summary: str, params: list[dict[str, Any]] | None = None, body: dict[str, Any] | None = None
) -> dict[str, Any]:
    op: dict[str, Any] = {
        "summary": summary,
        "security": _AUTH,
        "parameters": params or [],
        "responses": {
            "200": {"description": "ok", "content": {"application/json": {}}},
            "401": _ERROR,
            "403": _ERROR,
            "404": _ERROR,
        },
    }
    if body is not None:
        op["requestBody"] = {"content": {"application/json": {"schema": body}}}
    return op


def _with_429(op: dict[str, Any]) -> dict[str, Any]:
    """An operation that may answer 429 with Retry-After (a cap on concurrent use)."""
    op["responses"]["429"] = _ERROR | {"headers": {"Retry-After": {"schema": {"type": "integer"}}}}
    return op


_APP = {"name": "app", "in": "path", "required": True, "schema": {"type": "string"}}
_SECRET = {"name": "name", "in": "path", "required": True, "schema": {"type": "string"}}
_KV_KEY = {"name": "key", "in": "path", "required": True, "schema": {"type": "string"}}
_SECRET_ENV = {
    "name": "env",
    "in": "query",
    "schema": {"type": "string", "default": "production"},
    "description": "production (or main), or a preview by its branch",
}

OPENAPI: dict[str, Any] = {
    "openapi": "3.1.0",
    "info": {"title": "Edge control plane", "version": "1"},
    "components": {"securitySchemes": {"token": {"type": "http", "scheme": "bearer"}}},
    "paths": {
        "/v1/apps": {"get": _op("List apps and their environments")},
        "/v1/apps/{app}/releases": {
            "get": _op(
                "List releases of an environment",
                [
                    _APP,
                    {
                        "name": "env",
                        "in": "query",
                        "schema": {"type": "string", "default": "production"},
                    },
                    {"name": "limit", "in": "query", "schema": {"type": "integer", "default": 50}},
                ],
            )
        },
        "/v1/apps/{app}/rollback": {
            "post": _op(
                "Repoint production to an earlier release (default: the previous one)",
                [_APP],
                {"type": "object", "properties": {"to": {"type": "integer", "minimum": 1}}},
            )
        },
        "/v1/apps/{app}/secrets": {
            "get": _op(
                "An environment's secrets: names and when they changed, never values",
                [_APP, _SECRET_ENV],
            )
        },
        "/v1/apps/{app}/secrets/{name}": {
            "put": _op(
                "Set a secret (encrypted at rest); the environment hot-swaps onto it as a "
                'new release, "secrets changed"',
                [_APP, _SECRET, _SECRET_ENV],
                {
                    "type": "object",
                    "required": ["value"],
                    "properties": {"value": {"type": "string"}},
                },
            ),
            "delete": _op(
                'Unset a secret; the environment hot-swaps as a new release, "secrets changed"',
                [_APP, _SECRET, _SECRET_ENV],
            ),
        },
        "/v1/apps/{app}/kv": {
            "get": _op(
                "An environment's function KV keys, by prefix; a page at a time "
                "(cursor: the last key of the previous page)",
                [
                    _APP,
                    _SECRET_ENV,
                    {"name": "prefix", "in": "query", "schema": {"type": "string"}},
                    {"name": "limit", "in": "query", "schema": {"type": "integer"}},
                    {"name": "cursor", "in": "query", "schema": {"type": "string"}},
                ],
            )
        },
        "/v1/apps/{app}/kv/{key}": {
            "get": _op(
                "One KV value: value (UTF-8 text, or null) and value_base64",
                [_APP, _KV_KEY, _SECRET_ENV],
            ),
            "put": _op(
                "Store a KV value (text or base64), with an optional ttl in seconds",
                [_APP, _KV_KEY, _SECRET_ENV],
                {
                    "type": "object",
                    "properties": {
                        "value": {"type": "string"},
                        "value_base64": {"type": "string"},
                        "ttl": {"type": "number", "exclusiveMinimum": 0},
                    },
                },
            ),
            "delete": _op("Delete a KV key", [_APP, _KV_KEY, _SECRET_ENV]),
        },
        "/v1/apps/{app}/logs": {
            "get": _with_429(
                _op(
                    "An app's function logs and platform events; "
                    "follow=1 streams Server-Sent Events",
                    [
                        _APP,
                        {"name": "function", "in": "query", "schema": {"type": "string"}},
                        {"name": "env", "in": "query", "schema": {"type": "string"}},
                        {
                            "name": "since",
                            "in": "query",
                            "schema": {"type": "string"},
                            "description": "e.g. 30s, 10m, 2h, 1d",
                        },
                        {
                            "name": "limit",
                            "in": "query",
                            "schema": {"type": "integer", "default": 1000},
                        },
                        {"name": "follow", "in": "query", "schema": {"type": "boolean"}},
                        {
                            "name": "Last-Event-ID",
                            "in": "header",
                            "schema": {"type": "string", "pattern": "^[0-9]+-[0-9]+$"},
                            "description": "with follow=1: resume after this record id",
                        },
                    ],
                )
            )
        },
        "/v1/apps/{app}/metrics": {
            "get": _op(
                "Per-function invocations, errors, cold starts, latency quantiles, memory peak",
                [_APP, {"name": "env", "in": "query", "schema": {"type": "string"}}],
            )
        },
        "/v1/apps/{app}/metrics/series": {
            "get": _op(
                "Per-function, per-minute requests, errors, cold starts and latency "
                "(avg/p50/p95/p99 from a histogram), summed over every runtime node; "
                "kept 24 hours",
                [
                    _APP,
                    {"name": "env", "in": "query", "schema": {"type": "string"}},
                    {"name": "function", "in": "query", "schema": {"type": "string"}},
                    {
                        "name": "minutes",
                        "in": "query",
                        "schema": {
                            "type": "integer",
                            "default": 60,
                            "minimum": 1,
                            "maximum": 1440,
                        },
                    },
                    {
                        "name": "histogram",
                        "in": "query",
                        "schema": {"type": "boolean"},
                        "description": "add each minute's latency histogram (ms bound -> count)",
                    },
                ],
            )
        },
        "/v1/bundles/{app}/{digest}": {
            "get": _op(
                "A release bundle (tar) for runtime nodes",
                [
                    _APP,
                    {
                        "name": "digest",
                        "in": "path",
                        "required": True,
                        "schema": {"type": "string"},
                    },
                ],
            )
        },
    },
}
