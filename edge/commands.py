"""Control plane -> runtime commands, and the runtime's acknowledgements.

The platform publishes small JSON payloads on one Redis channel with the
``send_*`` functions; every runtime worker dispatches them in its own
``handle_payload``. Workers advertise what they serve in a key per worker with
a TTL (a heartbeat), and announce each swap on an ack channel so a push can say
"live" as soon as every worker has the new routes.

APPSEC: a worker's report decides whether a deploy is live or failed, and
anything that reaches Redis could write one. Reports are therefore signed with
the platform key (:class:`edge.keyring.Keyring`), which function processes
cannot read, and carry the time they were made; the control plane ignores a
report that is unsigned, signed with another key, stored under another
worker's name, or stale. The ack channel only wakes the waiter up: what counts
is read from the signed reports.
"""

from __future__ import annotations

import json
import time
from collections.abc import Collection
from dataclasses import dataclass, field
from typing import Any

import redis
import redis.asyncio as redis_async

from edge.keyring import Keyring

COMMANDS = "edge:commands"
ACKS = "edge:acks"
WORKER_PREFIX = "edge:worker:"
WORKER_TTL = 15  # seconds; a worker heartbeats every WORKER_TTL / 3
MAX_CLOCK_SKEW_S = 60.0  # a report older (or newer) than TTL + this is stale


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


def seal_status(status: WorkerStatus, keyring: Keyring, now: float) -> str:
    """A worker's report as stored in Redis: the JSON body and its signature."""
    body = json.dumps({**status.__dict__, "ts": now}, sort_keys=True)
    return json.dumps({"body": body, "sig": keyring.sign(body.encode())})


def open_status(raw: bytes | str, key: str, keyring: Keyring, now: float) -> WorkerStatus | None:
    """The report stored under ``key`` if it is genuine and fresh, else ``None``."""
    try:
        envelope = json.loads(raw)
        body, sig = str(envelope["body"]), str(envelope["sig"])
        if not keyring.verify(body.encode(), sig):
            return None
        data = json.loads(body)
        status = WorkerStatus(
            str(data["worker"]),
            str(data["region"]),
            int(data["version"]),
            {str(k): str(v) for k, v in dict(data.get("failed") or {}).items()},
        )
        fresh = abs(now - float(data["ts"])) <= WORKER_TTL + MAX_CLOCK_SKEW_S
    except (ValueError, KeyError, TypeError):
        return None
    return status if fresh and WORKER_PREFIX + status.worker == key else None


async def report_status(
    client: redis_async.Redis, status: WorkerStatus, keyring: Keyring, *, announce: bool
) -> None:
    """Heartbeat (and, after a swap, announce) a worker's served routes version, signed."""
    body = seal_status(status, keyring, time.time())
    await client.set(WORKER_PREFIX + status.worker, body, ex=WORKER_TTL)
    if announce:
        await client.publish(ACKS, status.worker)


async def forget_worker(client: redis_async.Redis, worker: str) -> None:
    await client.delete(WORKER_PREFIX + worker)


@dataclass
class Reports:
    """The workers' genuine reports, and the keys whose reports were ignored."""

    workers: list[WorkerStatus]
    ignored: list[str]


def live_workers(client: redis.Redis, keyring: Keyring) -> Reports:
    """Every live worker's report that is genuine; the names of those that are not."""
    keys = [
        k.decode() if isinstance(k, bytes) else str(k)
        for k in client.scan_iter(match=WORKER_PREFIX + "*", count=500)
    ]
    if not keys:
        return Reports([], [])
    now = time.time()
    reports = Reports([], [])
    for key, raw in zip(keys, client.mget(keys), strict=True):
        if raw is None:
            continue
        status = open_status(raw, key, keyring, now)
        if status is None:
            reports.ignored.append(key.removeprefix(WORKER_PREFIX))
        else:
            reports.workers.append(status)
    return reports


@dataclass
class AckResult:
    """How a wait for the runtime ended."""

    live: bool
    workers: list[WorkerStatus]
    waiting: list[str]
    ignored: list[str] = field(default_factory=list)

    def failures(self) -> dict[str, str]:
        failed: dict[str, str] = {}
        for worker in self.workers:
            failed.update(worker.failed)
        return failed


def wait_for_version(
    client: redis.Redis,
    version: int,
    timeout: float,
    keyring: Keyring,
    regions: Collection[str] | None = None,
) -> AckResult:
    """Block until every live worker serves ``version`` (or later), up to ``timeout`` s.

    Only genuine reports count (see the module's APPSEC note). With no live
    worker at all the wait ends at once (nothing can acknowledge). With
    ``regions``, only the workers of those regions are waited for: the others
    serve none of the change's functions (they forward requests for them).
    """
    pubsub = client.pubsub(ignore_subscribe_messages=True)
    pubsub.subscribe(ACKS)
    deadline = time.monotonic() + timeout
    try:
        while True:
            reports = live_workers(client, keyring)
            workers = [w for w in reports.workers if regions is None or w.region in regions]
            waiting = [w.worker for w in workers if w.version < version]
            done = [w for w in workers if w.version >= version]
            if not workers or not waiting:
                return AckResult(bool(workers), done, waiting, reports.ignored)
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return AckResult(False, done, waiting, reports.ignored)
            pubsub.get_message(timeout=min(remaining, 0.25))
    finally:
        pubsub.close()
