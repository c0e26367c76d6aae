"""Admission of log follow streams, so that they cannot starve git and the API.

A follow stream (``GET /v1/apps/<app>/logs?follow=1``) holds one of a
control-plane worker's threads for as long as it lasts. Three bounds keep
git and the API answering however many streams are asked for:

- a cap per worker process (``EDGE_MAX_FOLLOWS``, below its thread count),
  so some threads are always left for everything else;
- a cap per token across all workers and hosts (``EDGE_MAX_FOLLOWS_PER_TOKEN``),
  counted in Redis as leases that the stream renews with every heartbeat
  and that expire on their own if a worker dies;
- a maximum age (``EDGE_MAX_STREAM_S``), after which the stream ends and the
  client reconnects with ``Last-Event-ID``.

Past a cap the request gets 429 with ``Retry-After`` at once.
"""

from __future__ import annotations

import contextlib
import threading
import time
import uuid
from typing import Any

import redis

from edge.errors import TooManyRequestsError
from edge.platform.store import TokenInfo

LEASE_S = 10.0  # a lease not renewed for this long (a dead worker's) no longer counts
RETRY_AFTER_S = 5
# KEYS[1] the token's lease set; ARGV: now, lease expiry, cap, stream id.
ADMIT = """
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', ARGV[1])
if redis.call('ZCARD', KEYS[1]) >= tonumber(ARGV[3]) then return 0 end
redis.call('ZADD', KEYS[1], ARGV[2], ARGV[4])
redis.call('EXPIRE', KEYS[1], 3600)
return 1
"""


def _key(token: TokenInfo) -> str:
    return f"edge:follows:{token.id}"


class FollowLease:
    """One admitted stream: renew it on each heartbeat, release it at the end."""

    def __init__(self, gate: FollowGate, token: TokenInfo, max_age_s: float) -> None:
        self.gate = gate
        self.token = token
        self.id = uuid.uuid4().hex
        self.deadline = time.monotonic() + max_age_s
        self.released = False

    @property
    def expired(self) -> bool:
        """Whether the stream reached its maximum age."""
        return time.monotonic() >= self.deadline

    def renew(self) -> None:
        self.gate.redis.zadd(_key(self.token), {self.id: time.time() + LEASE_S})

    def release(self) -> None:
        if self.released:
            return
        self.released = True
        self.gate.slots.release()
        with contextlib.suppress(redis.RedisError):  # else the lease expires on its own
            self.gate.redis.zrem(_key(self.token), self.id)


class FollowGate:
    """Admits follow streams within the caps of one control-plane worker.

    Args:
        redis_client: where the per-token leases are counted.
        per_worker: streams this worker process serves at once.
        per_token: streams one token may hold at once, cluster-wide.
        max_age_s: how long one stream may last.
    """

    def __init__(
        self, redis_client: redis.Redis, per_worker: int, per_token: int, max_age_s: float
    ) -> None:
        self.redis = redis_client
        self.per_worker = per_worker
        self.per_token = per_token
        self.max_age_s = max_age_s
        self.slots = threading.BoundedSemaphore(per_worker)
        self._admit: Any = redis_client.register_script(ADMIT)

    def admit(self, token: TokenInfo) -> FollowLease:
        """A lease for a new stream of ``token``.

        Raises:
            TooManyRequestsError: a cap is reached (429, with ``Retry-After``).
        """
        if not self.slots.acquire(blocking=False):
            raise TooManyRequestsError(
                f"this control-plane worker already serves {self.per_worker} log streams "
                f"(EDGE_MAX_FOLLOWS); retry in {RETRY_AFTER_S}s, or read logs without follow=1",
                RETRY_AFTER_S,
            )
        lease = FollowLease(self, token, self.max_age_s)
        try:
            now = time.time()
            admitted = self._admit(
                keys=[_key(token)], args=[now, now + LEASE_S, self.per_token, lease.id]
            )
        except BaseException:
            self.slots.release()
            raise
        if not admitted:
            self.slots.release()
            raise TooManyRequestsError(
                f"token {token.name!r} already follows {self.per_token} log streams "
                f"(EDGE_MAX_FOLLOWS_PER_TOKEN); close one, or retry in {RETRY_AFTER_S}s",
                RETRY_AFTER_S,
            )
        return lease
