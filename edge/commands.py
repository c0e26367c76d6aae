"""Control plane -> runtime commands, and the runtime's acknowledgements.

The platform publishes small JSON payloads on one Redis channel with the
``send_*`` functions; every runtime worker dispatches them in its own
``handle_payload``. Workers advertise what they serve in a key per worker with
a TTL (a heartbeat), and announce each swap on an ack channel so a push can say
"live" as soon as every worker has the new routes.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from typing import Any

import redis
import redis.asyncio as redis_async

COMMANDS = "edge:commands"
ACKS = "edge:acks"
WORKER_PREFIX = "edge:worker:"
WORKER_TTL = 15  # seconds; a worker heartbeats every WORKER_TTL / 3


def send_routes_changed(client: redis.Redis, version: int) -> int:
    """Tell every runtime worker that routes version ``version`` is in the store."""
    return int(client.publish(COMMANDS, json.dumps({"cmd": "routes", "version": version})))


def parse_command(data: bytes | str) -> dict[str, Any] | None:
    """Decode a command payload; ``None`` for anything malformed."""
    try:
        payload = json.loads(data)
    except ValueError:
        return None
    if not isinstance(payload, dict) or not isinstance(payload.get("cmd"), str):
        return None
    return payload


@dataclass
class WorkerStatus:
    """What one runtime worker serves, as it last reported."""

    worker: str
    region: str
    version: int
    failed: dict[str, str] = field(default_factory=dict)


async def report_status(client: redis_async.Redis, status: WorkerStatus, *, announce: bool) -> None:
    """Heartbeat (and, after a swap, announce) a worker's served routes version."""
    body = json.dumps(status.__dict__)
    await client.set(WORKER_PREFIX + status.worker, body, ex=WORKER_TTL)
    if announce:
        await client.publish(ACKS, body)


async def forget_worker(client: redis_async.Redis, worker: str) -> None:
    await client.delete(WORKER_PREFIX + worker)


def live_workers(client: redis.Redis) -> list[WorkerStatus]:
    keys = list(client.scan_iter(match=WORKER_PREFIX + "*", count=500))
    if not keys:
        return []
    statuses = []
    for raw in client.mget(keys):
        if raw is None:
            continue
        try:
            data = json.loads(raw)
            statuses.append(
                WorkerStatus(
                    str(data["worker"]),
                    str(data["region"]),
                    int(data["version"]),
                    dict(data.get("failed") or {}),
                )
            )
        except (ValueError, KeyError, TypeError):
            continue
    return statuses


@dataclass
class AckResult:
    """How a wait for the runtime ended."""

    live: bool
    workers: list[WorkerStatus]
    waiting: list[str]

    def failures(self) -> dict[str, str]:
        failed: dict[str, str] = {}
        for worker in self.workers:
            failed.update(worker.failed)
        return failed


def wait_for_version(client: redis.Redis, version: int, timeout: float) -> AckResult:
    """Block until every live worker serves ``version`` (or later), up to ``timeout`` s.

    With no live worker at all the wait ends at once (nothing can acknowledge).
    """
    pubsub = client.pubsub(ignore_subscribe_messages=True)
    pubsub.subscribe(ACKS)
    deadline = time.monotonic() + timeout
    try:
        while True:
            workers = live_workers(client)
            waiting = [w.worker for w in workers if w.version < version]
            if not workers or not waiting:
                done = [w for w in workers if w.version >= version]
                return AckResult(bool(workers), done, waiting)
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                done = [w for w in workers if w.version >= version]
                return AckResult(False, done, waiting)
            pubsub.get_message(timeout=min(remaining, 0.25))
    finally:
        pubsub.close()
