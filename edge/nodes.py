"""The node registry: which runtime nodes exist, where they are, and whether they live.

Every runtime worker, on each heartbeat (see :mod:`edge.commands`), also writes
its node's record into one Redis hash: the node's name, region, public URL and
routes version, and the time. A node is *live* while at least one of its
workers has a live, genuine report (``edge:worker:<node>:<pid>``, which expires
``WORKER_TTL`` seconds after the last heartbeat and is deleted when a worker
stops); otherwise it is *gone*, and stays listed as gone for ``GONE_KEEP_S``
after its last heartbeat.

APPSEC: the registry decides where a runtime node forwards function traffic
(:mod:`edge.runtime.fallback`), so a record is signed with the platform key
like the worker reports, and one that is unsigned, signed with another key or
filed under another node's name is ignored.
"""

from __future__ import annotations

import json
import time
from collections.abc import Mapping
from dataclasses import asdict, dataclass

import redis
import redis.asyncio as redis_async

from edge import commands
from edge.keyring import Keyring

NODES = "edge:nodes"
GONE_KEEP_S = 24 * 3600.0
LIVE = "live"
GONE = "gone"


@dataclass(frozen=True)
class NodeRecord:
    """What a node last said about itself."""

    node: str
    region: str
    url: str
    version: int
    ts: float


@dataclass(frozen=True)
class Node:
    """A node as listed: its record, its health and how many workers are live."""

    node: str
    region: str
    url: str
    version: int
    last_heartbeat: float
    health: str
    workers: int

    def as_dict(self) -> dict[str, object]:
        return asdict(self)


def node_of(worker: str) -> str:
    """The node a worker id (``<host>:<port>:<pid>``) belongs to."""
    return worker.rsplit(":", 1)[0]


def seal_node(record: NodeRecord, keyring: Keyring) -> str:
    """A node record as stored in the registry hash: the JSON body and its signature."""
    body = json.dumps(asdict(record), sort_keys=True)
    return json.dumps({"body": body, "sig": keyring.sign(body.encode())})


def open_node(raw: bytes | str, name: str, keyring: Keyring) -> NodeRecord | None:
    """The record filed under ``name`` if it is genuine, else ``None``."""
    try:
        envelope = json.loads(raw)
        body, sig = str(envelope["body"]), str(envelope["sig"])
        if not keyring.verify(body.encode(), sig):
            return None
        data = json.loads(body)
        record = NodeRecord(
            str(data["node"]),
            str(data["region"]),
            str(data["url"]),
            int(data["version"]),
            float(data["ts"]),
        )
    except (ValueError, KeyError, TypeError):
        return None
    return record if record.node == name else None


async def register(client: redis_async.Redis, record: NodeRecord, keyring: Keyring) -> None:
    """File (or refresh) a node's record in the registry."""
    await client.hset(NODES, record.node, seal_node(record, keyring))


def assemble(
    raw: Mapping[bytes | str, bytes | str],
    workers: list[commands.WorkerStatus],
    keyring: Keyring,
    now: float,
) -> tuple[list[Node], list[str]]:
    """Nodes with their health from the registry hash and the live worker reports.

    Returns:
        the nodes, by region then name; and the names of records past
        ``GONE_KEEP_S`` (to delete).
    """
    live: dict[str, list[commands.WorkerStatus]] = {}
    for worker in workers:
        live.setdefault(node_of(worker.worker), []).append(worker)
    nodes: list[Node] = []
    expired: list[str] = []
    for key, value in raw.items():
        name = key.decode() if isinstance(key, bytes) else str(key)
        record = open_node(value, name, keyring)
        if record is None:
            continue
        mine = live.get(name, [])
        if not mine and now - record.ts > GONE_KEEP_S:
            expired.append(name)
            continue
        version = max((w.version for w in mine), default=record.version)
        health = LIVE if mine else GONE
        nodes.append(Node(name, record.region, record.url, version, record.ts, health, len(mine)))
    nodes.sort(key=lambda n: (n.region, n.node))
    return nodes, expired


def list_nodes(client: redis.Redis, keyring: Keyring) -> list[Node]:
    """Every registered node with its health (the control plane's view)."""
    raw = client.hgetall(NODES)
    workers = commands.live_workers(client, keyring).workers
    nodes, expired = assemble(raw, workers, keyring, time.time())
    if expired:
        client.hdel(NODES, *expired)
    return nodes


async def live_nodes(client: redis_async.Redis, keyring: Keyring) -> list[Node]:
    """The nodes that are live now (a runtime worker's view, for fallback)."""
    keys = [
        k.decode() if isinstance(k, bytes) else str(k)
        async for k in client.scan_iter(match=commands.WORKER_PREFIX + "*", count=500)
    ]
    now = time.time()
    workers = []
    if keys:
        for key, value in zip(keys, await client.mget(keys), strict=True):
            status = None if value is None else commands.open_status(value, key, keyring, now)
            if status is not None:
                workers.append(status)
    nodes, _ = assemble(await client.hgetall(NODES), workers, keyring, now)
    return [node for node in nodes if node.health == LIVE]
