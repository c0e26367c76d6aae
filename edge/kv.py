"""KV for Python functions: ``from edge import kv``.

Each app environment (production, each preview) has its own namespace, which
the function cannot choose::

    from edge import kv

    def handle(request):
        kv.put("greeting", "hello", ttl=60)        # str, bytes, or anything JSON-able
        kv.put("user:42", {"name": "Arthur"})
        return {"n": kv.incr("visits"), "user": kv.get_json("user:42"),
                "users": kv.list(prefix="user:")}

This module runs inside function processes and imports only the standard
library: an operation is a frame to the runtime worker over the instance's own
socket, and the worker runs it on Redis (the function never holds a Redis
connection or credential). A refused operation raises :class:`KVError`, which
the function may catch; ``error.code`` says why: ``"limit"`` (key over 512
bytes, value over ``EDGE_KV_MAX_VALUE_MB``, namespace or app full), ``"invalid"``,
``"type"`` (``incr`` on a non-integer) or ``"unavailable"``. Time spent waiting
counts against the function's ``timeout_ms``.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable
from typing import Any

__all__ = ["KVError", "delete", "get", "get_bytes", "get_json", "incr", "list", "put"]

_builtin_list = list
Link = Callable[[dict[str, Any]], Any]


class KVError(Exception):
    """A KV operation was refused; ``code`` is ``limit``, ``invalid``, ``type`` or
    ``unavailable``."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code


class _Binding:
    """How this process reaches its worker: set by the instance, one call at a time."""

    def __init__(self) -> None:
        self.link: Link | None = None
        self.lock = threading.Lock()


_binding = _Binding()


def bind(link: Link | None) -> None:
    """Called by the function instance with its frame round trip (not by functions)."""
    _binding.link = link


def _call(message: dict[str, Any]) -> Any:
    link = _binding.link
    if link is None:
        raise KVError("unavailable", "KV is available only while a function handles a request")
    with _binding.lock:  # threads of one function share the instance socket
        reply = link({"k": "kv", **message})
    if not isinstance(reply, dict) or reply.get("k") != "kv":
        raise KVError("unavailable", "KV: no answer from the runtime")
    if not reply.get("ok"):
        raise KVError(str(reply.get("error", "invalid")), str(reply.get("message", "refused")))
    return reply.get("value")


def _key(key: Any) -> str:
    if not isinstance(key, str):
        raise TypeError(f"a KV key is a str, not {type(key).__name__}")
    return key


def get_bytes(key: str) -> bytes | None:
    """The value stored under ``key``, or ``None``."""
    value = _call({"op": "get", "key": _key(key)})
    return value if isinstance(value, bytes) else None


def get(key: str) -> str | None:
    """The value as text (UTF-8), or ``None``."""
    value = get_bytes(key)
    return None if value is None else value.decode("utf-8", errors="replace")


def get_json(key: str) -> Any:
    """The value parsed as JSON, or ``None`` when there is none."""
    value = get_bytes(key)
    return None if value is None else json.loads(value)


def put(key: str, value: Any, ttl: float | None = None) -> None:
    """Store ``value`` (``str`` as UTF-8, bytes as is, anything else as JSON).

    Args:
        key: at most 512 bytes of UTF-8.
        value: the value; at most ``EDGE_KV_MAX_VALUE_MB`` once encoded.
        ttl: seconds until it expires (``None``: never).
    """
    if isinstance(value, str):
        data = value.encode("utf-8")
    elif isinstance(value, bytes | bytearray | memoryview):
        data = bytes(value)
    else:
        data = json.dumps(value, separators=(",", ":")).encode()
    _call({"op": "put", "key": _key(key), "value": data, "ttl": ttl})


def delete(key: str) -> None:
    """Remove ``key`` (no error if it is absent)."""
    _call({"op": "delete", "key": _key(key)})


def list(prefix: str = "", limit: int = 1000) -> _builtin_list[str]:  # noqa: A001 - the contract's name
    """Keys starting with ``prefix``, in byte order, at most ``limit`` (<= 1000)."""
    value = _call({"op": "list", "prefix": prefix, "limit": limit})
    return [str(k) for k in value["keys"]] if isinstance(value, dict) else []


def incr(key: str, by: int = 1) -> int:
    """Add ``by`` to the integer stored under ``key`` (0 if absent), atomically."""
    return int(_call({"op": "incr", "key": _key(key), "by": by}))
