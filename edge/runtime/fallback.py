"""Cross-region fallback: a request for a function of another region goes to the nearest node.

A node serves only the functions of its region (``EDGE_REGION``). A request
that reaches it for a function that runs elsewhere is forwarded to the live
node, among those of the function's regions, with the smallest round-trip
time from here; its answer (with ``x-edge-region`` naming where the function
ran) goes back to the client as is. The round-trip times come from timing
``GET /healthz`` of every other live node in the registry (:mod:`edge.nodes`)
every ``PROBE_S`` seconds, from each worker's own loop; a node that does not
answer is left out until it answers again, so traffic moves to the next node
when the nearest goes down and comes back when it returns.

A forwarded request carries ``x-edge-forwarded`` (the region it came from) and
is never forwarded again: a loop, or two nodes that disagree about the routes
mid-deploy, ends in the 404 ``wrong_region`` fault instead of ping-pong.

One pooled :class:`httpx.AsyncClient` per worker, built in the composition
root (:func:`edge.runtime.server.load_app`), keeps connections to the other
nodes open between requests (and the probes keep them warm), so a forwarded
request costs one round trip to the other node, not a new TCP handshake.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass

import falcon.asgi
import httpx
import redis.asyncio as redis_async
from redis.exceptions import RedisError

from edge.keyring import Keyring
from edge.nodes import Node, live_nodes
from edge.runtime.faults import fault_message, fault_response
from edge.runtime.replies import ABORT_KEY

logger = logging.getLogger(__name__)

FORWARDED = "x-edge-forwarded"
REGION = "x-edge-region"
VIA = "x-edge-via"
PROBE_S = 2.0
PROBE_TIMEOUT_S = 2.0
REFRESH_MIN_S = 0.5  # a request finding no candidate re-probes at most this often
FORWARD_TIMEOUT = httpx.Timeout(35.0, connect=3.0)  # > the 30 s function time limit
BUFFER_BYTES = 256 * 1024  # a body up to this size with a length is read whole, then sent
HOP_BY_HOP = frozenset(
    {
        "connection",
        "keep-alive",
        "proxy-authenticate",
        "proxy-authorization",
        "te",
        "trailer",
        "transfer-encoding",
        "upgrade",
        "content-length",
        "date",
        "server",
    }
)
# The request never reached the node: always safe to try the next one.
NOT_SENT = (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout)
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


@dataclass(frozen=True)
class Peer:
    """Another live node and the round-trip time to it (``None``: did not answer)."""

    node: str
    region: str
    url: str
    rtt_ms: float | None


class Fallback:
    """The forwarding side of one worker: peers, their round-trip times, the forward.

    Args:
        region: this node's region.
        node: this node's name (left out of the peers).
        client: the worker's pooled HTTP client.
        redis_client: where the node registry is.
        keyring: verifies the registry's records.
    """

    def __init__(
        self,
        region: str,
        node: str,
        client: httpx.AsyncClient,
        redis_client: redis_async.Redis,
        keyring: Keyring,
        *,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.region = region
        self.node = node
        self.client = client
        self.redis = redis_client
        self.keyring = keyring
        self.clock = clock
        self.peers: tuple[Peer, ...] = ()
        self._refreshed = float("-inf")
        self._refreshing: asyncio.Lock | None = None

    async def run(self) -> None:
        """The background loop: refresh the peers and their round-trip times."""
        while True:
            await self.refresh()
            await asyncio.sleep(PROBE_S)

    async def close(self) -> None:
        await self.client.aclose()

    # -- peers ----------------------------------------------------------------

    async def refresh(self) -> None:
        """Read the live nodes from the registry and time ``/healthz`` of each other one."""
        if self._refreshing is None:
            self._refreshing = asyncio.Lock()
        async with self._refreshing:
            if self.clock() - self._refreshed < REFRESH_MIN_S:
                return  # another request just did it
            self._refreshed = self.clock()
            try:
                nodes = await live_nodes(self.redis, self.keyring)
            except (RedisError, OSError) as exc:  # keep the peers we know
                logger.debug("node registry unreachable: %s", exc)
                return
            others = [n for n in nodes if n.node != self.node]
            self.peers = tuple(await asyncio.gather(*(self._probe(n) for n in others)))

    async def _probe(self, node: Node) -> Peer:
        started = time.perf_counter()
        try:
            answer = await self.client.get(f"{node.url}/healthz", timeout=PROBE_TIMEOUT_S)
            await answer.aread()
            ok = answer.status_code == 200
        except httpx.HTTPError as exc:
            logger.debug("node %s (%s) did not answer: %s", node.node, node.url, exc)
            ok = False
        rtt = (time.perf_counter() - started) * 1000 if ok else None
        return Peer(node.node, node.region, node.url, rtt)

    def candidates(self, regions: Sequence[str]) -> list[Peer]:
        """The answering peers of ``regions``, nearest first."""
        found = [p for p in self.peers if p.region in regions and p.rtt_ms is not None]
        return sorted(found, key=lambda p: p.rtt_ms or 0.0)

    def _down(self, peer: Peer) -> None:
        self.peers = tuple(
            Peer(p.node, p.region, p.url, None) if p.url == peer.url else p for p in self.peers
        )

    # -- forwarding -------------------------------------------------------------

    async def forward(
        self,
        req: falcon.asgi.Request,
        resp: falcon.asgi.Response,
        function: str,
        regions: Sequence[str],
        body: bytes,
    ) -> bool:
        """Answer ``req`` from the nearest live node of ``regions``; ``False`` if none can.

        A request that was already forwarded once is never forwarded again. A
        node that cannot be reached is skipped for the next one; one that fails
        after the request reached it is skipped too for safe methods, but an
        unsafe request (it may have run) is answered 503 rather than run twice.
        """
        if req.get_header(FORWARDED) is not None:
            return False
        tried: set[str] = set()
        while True:
            for peer in self.candidates(regions):
                if peer.url in tried:
                    continue
                tried.add(peer.url)
                answered = await self._try(peer, req, resp, function, body)
                if answered:
                    return True
            # None left: a node may have come back (or moved) since the last probe.
            if self.clock() - self._refreshed < REFRESH_MIN_S:
                return False
            await self.refresh()

    async def _try(
        self,
        peer: Peer,
        req: falcon.asgi.Request,
        resp: falcon.asgi.Response,
        function: str,
        body: bytes,
    ) -> bool:
        """Forward to ``peer``; ``False`` if it cannot answer and the next may be tried."""
        try:
            await self._send(peer, req, resp, body)
        except NOT_SENT as exc:
            logger.info("node %s unreachable (%s): trying the next", peer.node, exc)
            self._down(peer)
            return False
        except httpx.HTTPError as exc:
            logger.warning("forwarding to node %s failed: %s", peer.node, exc)
            self._down(peer)
            if req.method in SAFE_METHODS:
                return False
            reason = (
                f"node {peer.node} ({peer.region}) failed mid-request ({exc}); "
                "it may have run, so it is not retried elsewhere"
            )
            _unavailable(resp, function, reason)
        return True

    async def _send(
        self, peer: Peer, req: falcon.asgi.Request, resp: falcon.asgi.Response, body: bytes
    ) -> None:
        raw = req.scope.get("raw_path") or req.path.encode()
        target = peer.url + raw.decode("latin-1")
        if req.query_string:
            target += "?" + req.query_string
        headers = [
            (name.decode("latin-1"), value.decode("latin-1"))
            for name, value in req.scope.get("headers", ())
            if name.decode("latin-1").lower() not in HOP_BY_HOP
        ]
        headers.append((FORWARDED, self.region))
        request = self.client.build_request(
            req.method, target, headers=headers, content=body, timeout=FORWARD_TIMEOUT
        )
        answer = await self.client.send(request, stream=True)
        try:
            size = int(answer.headers.get("content-length", "-1"))
        except ValueError:
            size = -1
        if 0 <= size <= BUFFER_BYTES:  # small and whole: read it, then answer
            try:
                data = b"".join([chunk async for chunk in answer.aiter_raw()])
            finally:
                with contextlib.suppress(httpx.HTTPError):
                    await answer.aclose()
            self._head(resp, answer)
            resp.data = data
            return
        # A stream (or a big body): passed on as it comes, with backpressure.
        self._head(resp, answer)
        resp.stream = _relay(answer, req.scope.get(ABORT_KEY))

    def _head(self, resp: falcon.asgi.Response, answer: httpx.Response) -> None:
        resp.status = answer.status_code
        seen: set[str] = set()
        for name, value in answer.headers.multi_items():
            lower = name.lower()
            if lower in HOP_BY_HOP:
                continue
            if lower in seen:
                resp.append_header(name, value)
            else:  # replaces what this node set (request id, release)
                resp.set_header(name, value)
                seen.add(lower)
        resp.set_header(VIA, self.region)


async def _relay(answer: httpx.Response, abort: Callable[[], None] | None) -> AsyncIterator[bytes]:
    """The other node's body, chunk by chunk; if that node fails mid-body, the
    client's connection is reset (the head is out: no fault can be answered)."""
    try:
        async for chunk in answer.aiter_raw():
            yield chunk
    except httpx.HTTPError as exc:
        logger.warning("forwarded stream cut by the other node: %s", exc)
        if abort is not None:
            abort()
    finally:
        with contextlib.suppress(httpx.HTTPError):
            await answer.aclose()


def _unavailable(resp: falcon.asgi.Response, function: str, reason: str) -> None:
    request_id = resp.get_header("x-edge-request-id") or ""
    message = fault_message("unavailable", function=function, reason=reason)
    resp.status, headers, resp.data = fault_response("unavailable", request_id, message)
    for name, value in headers:
        resp.set_header(name, value)
