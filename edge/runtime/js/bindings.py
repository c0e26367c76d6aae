"""The worker's answers to host calls from JavaScript: ``env.KV`` and ``fetch()``.

The V8 host relays each call as ``["call", id, key, rid, kind, args]``
(:mod:`edge.runtime.js.client`); :meth:`JsBindings.call` answers it with a
JSON-able reply (the host embeds it in JavaScript source), so binary data
travels as base64 both ways.

APPSEC: ``args`` come from untrusted JavaScript: base64 is decoded strictly,
and sizes are checked before decoding.
"""

from __future__ import annotations

import base64
import binascii
from typing import Any

from edge.kvstore import KVError
from edge.runtime.fetcher import Fetcher
from edge.runtime.invocation import FunctionVersion
from edge.runtime.kv import KVService, reply_error


def _b64decode(text: Any, limit: int) -> bytes:
    if not isinstance(text, str):
        raise KVError("invalid", "a KV value must be a string, ArrayBuffer or ArrayBufferView")
    if len(text) > (limit + 2) // 3 * 4:
        raise KVError("limit", f"KV value is over {limit} bytes, the limit (EDGE_KV_MAX_VALUE_MB)")
    try:
        return base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        raise KVError("invalid", "a KV value must be valid base64") from None


class JsBindings:
    """Dispatches host calls by kind.

    Args:
        kv: the worker's KV service.
        fetcher: performs ``fetch()`` under the egress policy.
        max_value_bytes: ``EDGE_KV_MAX_VALUE_MB`` in bytes.
    """

    def __init__(self, kv: KVService, fetcher: Fetcher, max_value_bytes: int) -> None:
        self._kv = kv
        self._fetcher = fetcher
        self._max_value = max_value_bytes

    async def call(self, version: FunctionVersion, rid: int, kind: str, args: Any) -> Any:
        """The reply to one host call of ``version``'s code in request ``rid``."""
        if kind == "fetch":
            return await self._fetcher.fetch(version, rid, args)
        if kind == "kv":
            return await self._call_kv(version, args)
        return {"ok": False, "error": "invalid", "message": f"unknown host call {kind[:40]!r}"}

    async def _call_kv(self, version: FunctionVersion, args: Any) -> Any:
        if isinstance(args, dict) and args.get("op") == "put":
            try:
                args = {**args, "value": _b64decode(args.get("value"), self._max_value)}
            except KVError as exc:
                self._kv.tally(version, "kv_ops")
                self._kv.tally(version, "kv_errors")
                return reply_error(exc.code, str(exc))
        reply = await self._kv.answer(version, args)
        value = reply.get("value")
        if isinstance(value, bytes):
            reply["value"] = base64.b64encode(value).decode("ascii")
        return reply
