"""The shapes the ``/v1`` API answers with: JSON Schema for the OpenAPI document.

Each mirrors what :mod:`edge.platform.api` (and ``kvapi``) put in ``resp.media``;
the schemathesis run in the test suite checks every answer against them.
"""

from __future__ import annotations

from typing import Any


def ref(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{name}"}


def obj(properties: dict[str, Any], *, optional: tuple[str, ...] = ()) -> dict[str, Any]:
    """An object schema whose properties are all required unless named in ``optional``."""
    return {
        "type": "object",
        "required": [name for name in properties if name not in optional],
        "properties": properties,
    }


STR: dict[str, Any] = {"type": "string"}
INT: dict[str, Any] = {"type": "integer"}
NUM: dict[str, Any] = {"type": "number"}
TIME: dict[str, Any] = {"type": "string", "format": "date-time"}
MAYBE_INT: dict[str, Any] = {"type": ["integer", "null"]}
LIST_STR: dict[str, Any] = {"type": "array", "items": STR}

SCHEMAS: dict[str, Any] = {
    "Error": obj({"error": STR}),
    "Environment": obj(
        {
            "id": INT,
            "app": STR,
            "name": STR,
            "branch": STR,
            "active_release_id": MAYBE_INT,
            "active_version": MAYBE_INT,
            "last_version": INT,
            "created_at": TIME,
            "deleted_at": {"type": ["string", "null"], "format": "date-time"},
        }
    ),
    "App": obj(
        {
            "id": INT,
            "name": STR,
            "created_at": TIME,
            "created_by": STR,
            "environments": {"type": "array", "items": ref("Environment")},
        }
    ),
    "Function": obj(
        {
            "name": STR,
            "runtime": {"type": "string", "enum": ["python", "js"]},
            "entry": STR,
            "path": STR,
            "handler": STR,
            "memory_mb": INT,
            "timeout_ms": INT,
            "regions": LIST_STR,
            "env": {"type": "object", "additionalProperties": STR},
            "min_warm": INT,
            "max_instances": INT,
            "content_hash": STR,
            "routes": LIST_STR,
        }
    ),
    "Release": obj(
        {
            "id": INT,
            "app": STR,
            "environment": STR,
            "version": INT,
            "commit_sha": STR,
            "artifact": STR,
            "manifest_json": STR,
            "status": {
                "type": "string",
                "enum": ["deploying", "active", "failed", "superseded", "disabled"],
            },
            "status_reason": {"type": ["string", "null"]},
            "created_at": TIME,
            "created_by": STR,
            "author": STR,
            "message": STR,
            "rollback_of": MAYBE_INT,
            "functions": {"type": "array", "items": ref("Function")},
        }
    ),
    "Secret": obj({"name": STR, "environment": STR, "updated_at": TIME, "updated_by": STR}),
    "SecretChange": obj(
        {
            "app": STR,
            "environment": STR,
            "name": STR,
            "release": {"oneOf": [ref("Release"), {"type": "null"}]},
            "progress": LIST_STR,
        }
    ),
    "LogRecord": {
        **obj(
            {
                "id": {"type": "string", "pattern": "^[0-9]+-[0-9]+$"},
                "ts": NUM,
                "app": STR,
                "environment": STR,
                "release": INT,
                "function": STR,
                "request_id": STR,
                "level": STR,
                "message": STR,
                "kind": STR,
            }
        ),
        "additionalProperties": True,
    },
    "FunctionMetrics": {
        **obj(
            {
                "app": STR,
                "environment": STR,
                "function": STR,
                "invocations": INT,
                "errors": INT,
                "cold_starts": INT,
                "warm_hit_ratio": NUM,
                "avg_ms": NUM,
                "p50_ms": NUM,
                "p95_ms": NUM,
                "p99_ms": NUM,
                "memory_peak_kb": INT,
                "timeouts": INT,
                "memory_kills": INT,
                "status_classes": {"type": "object", "additionalProperties": INT},
            }
        ),
    },
    "Node": obj(
        {
            "node": STR,
            "region": STR,
            "url": STR,
            "version": INT,
            "last_heartbeat": NUM,
            "health": {"type": "string", "enum": ["live", "gone"]},
            "workers": INT,
            "seconds_since_heartbeat": NUM,
        }
    ),
    "Point": obj(
        {
            "t": INT,
            "requests": INT,
            "errors": INT,
            "cold_starts": INT,
            "avg_ms": NUM,
            "p50_ms": NUM,
            "p95_ms": NUM,
            "p99_ms": NUM,
            "histogram": {"type": "object", "additionalProperties": INT},
        },
        optional=("histogram",),
    ),
    "FunctionSeries": obj(
        {
            "environment": STR,
            "function": STR,
            "points": {"type": "array", "items": ref("Point")},
        }
    ),
}
