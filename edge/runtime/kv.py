"""The worker's side of function KV: it runs the operations functions send.

A Python instance sends ``{"k": "kv", "op": ...}`` frames on its instance
socket mid-request; a V8 host relays ``env.KV`` calls the same way (see
:mod:`edge.runtime.wire` for the shapes). Either way the worker checks the
operation (:func:`edge.kvstore.plan`), runs it in the calling function's
namespace on its own Redis client, and answers with a ``kv`` reply frame.
Function processes never see a Redis address or credential.

An operation is bounded by the function's timeout, and the caller's deadline
keeps running while it waits, so KV time counts against ``timeout_ms``.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import Any

import redis.asyncio as redis_async
from redis.exceptions import RedisError, ResponseError

from edge.kvstore import KVError, Limits, Namespace, plan
from edge.runtime.invocation import FunctionVersion
from edge.runtime.wire import encode

logger = logging.getLogger(__name__)

Counter = Callable[[FunctionVersion, str], None]
# APPSEC: edge.kv sends one operation at a time per instance; a process that
# floods the worker with more gets refusals, not more Redis work. Counted per
# instance: a pool's instances each have one operation under way at most.
MAX_PENDING = 4


def reply_ok(value: Any) -> dict[str, Any]:
    return {"k": "kv", "ok": True, "value": value}


def reply_error(code: str, message: str) -> dict[str, Any]:
    return {"k": "kv", "ok": False, "error": code, "message": message}


class KVService:
    """Runs checked KV operations for the worker's functions.

    Args:
        client: the worker's Redis client.
        limits: the operator's limits.
        count: told ``(version, "kv_ops" | "kv_errors")`` for every operation.
    """

    def __init__(
        self, client: redis_async.Redis, limits: Limits, count: Counter | None = None
    ) -> None:
        self._client = client
        self._limits = limits
        self._count = count

    async def answer(self, version: FunctionVersion, message: Any) -> dict[str, Any]:
        """The reply frame to one untrusted ``kv`` frame from ``version``'s code."""
        self.tally(version, "kv_ops")
        try:
            op = plan(Namespace(version.app, version.environment), message, self._limits)
            raw = await asyncio.wait_for(
                self._client.execute_command(*op.command), version.timeout_ms / 1000
            )
            return reply_ok(op.result(raw))
        except KVError as exc:
            self.tally(version, "kv_errors")
            return reply_error(exc.code, str(exc))
        except ResponseError as exc:  # e.g. INCRBY past 64 bits
            self.tally(version, "kv_errors")
            return reply_error("invalid", f"KV operation refused: {exc}")
        except (RedisError, OSError, TimeoutError) as exc:
            self.tally(version, "kv_errors")
            logger.warning("KV for %s/%s unavailable: %s", version.app, version.environment, exc)
            return reply_error("unavailable", "KV is unavailable right now; try again")

    def tally(self, version: FunctionVersion, name: str) -> None:
        if self._count is not None:
            self._count(version, name)


class SideRequests:
    """Answers the ``kv`` frames one Python instance sends while it runs a request.

    Registered for ``kv`` frames on each instance channel (see
    :meth:`~edge.runtime.python.sockets.InstanceChannel.handle`).
    """

    def __init__(self, service: KVService, version: FunctionVersion) -> None:
        self._service = service
        self._version = version
        self._tasks: set[asyncio.Task[None]] = set()

    def handler(self, send: Callable[[bytes], None]) -> Callable[[dict[str, Any]], None]:
        """The ``kv`` frame handler of a channel whose answers go to ``send``."""

        pending: set[asyncio.Task[None]] = set()  # this instance's, not the pool's

        def on_kv(message: dict[str, Any]) -> None:
            if len(pending) >= MAX_PENDING:  # the client sends one at a time
                send(encode(reply_error("limit", "too many KV operations at once")))
                return
            task = asyncio.get_running_loop().create_task(self._answer(message, send))
            for tasks in (pending, self._tasks):
                tasks.add(task)
                task.add_done_callback(tasks.discard)

        return on_kv

    async def _answer(self, message: dict[str, Any], send: Callable[[bytes], None]) -> None:
        send(encode(await self._service.answer(self._version, message)))
