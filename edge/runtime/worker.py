"""One runtime worker's state: the route table, its pools, its link to the platform.

One :class:`Worker` per gunicorn worker process, built by its composition root
(:func:`edge.runtime.server.load_app`).

A deploy is a new generation, not an edit: :meth:`Worker.reload` reads the
store's routing snapshot, starts (and pre-warms) pools for function versions it
does not run yet, switches the table by reference, acknowledges, then drains
and closes the pools nothing routes to any more. Unchanged functions keep
their warm pools. If Redis or the database is down, the worker keeps serving the
table it has and catches up when they return (a periodic check of the store's
routes version covers lost events).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
import time
from collections.abc import Awaitable, Callable

import redis.asyncio as redis_async
from redis.exceptions import RedisError

from edge import commands
from edge.config import Config
from edge.keyring import Keyring
from edge.logstream import LogWriter, platform_event
from edge.metrics import MetricsRecorder
from edge.nodes import NodeRecord, register
from edge.runtime.accesslog import AccessLog
from edge.runtime.bundles import ensure_local
from edge.runtime.fallback import Fallback
from edge.runtime.invocation import FunctionLoadError, FunctionPool, FunctionVersion
from edge.runtime.registry import PoolRegistry
from edge.runtime.table import RouteTable
from edge.secretenv import unseal
from edge.snapshot import RoutingSource

logger = logging.getLogger(__name__)

HEARTBEAT_S = commands.WORKER_TTL / 3
POLL_S = 5.0
REAP_S = 1.0
ACCESS_FLUSH_S = 0.5


def async_redis(url: str) -> redis_async.Redis:
    """A client whose connects time out quickly: a down Redis never stalls a worker."""
    return redis_async.Redis.from_url(url, socket_connect_timeout=2, health_check_interval=15)


class Worker:
    """The per-worker composition of route table, pools and background tasks.

    Args:
        config: runtime configuration.
        store: read access to the routing snapshot (the control plane's store).
        redis_client: for commands, heartbeats and acks.
        pools: the worker's pool registry .
        fallback: forwards requests for other regions' functions (none: answer 404).
    """

    def __init__(
        self,
        config: Config,
        store: RoutingSource,
        redis_client: redis_async.Redis,
        pools: PoolRegistry,
        *,
        clock: Callable[[], float] = time.monotonic,
        closing: list[Callable[[], Awaitable[None]]] | None = None,
        logs: LogWriter | None = None,
        fallback: Fallback | None = None,
    ) -> None:
        self.config = config
        self.store = store
        self.redis = redis_client
        self.pools = pools
        self.clock = clock
        self.table = RouteTable.empty()
        self.node_name = f"{socket.gethostname()}:{config.runtime_port}"
        self.worker_id = f"{self.node_name}:{os.getpid()}"
        # Requests answered on the direct path (edge.runtime.connection), and of
        # them those answered with no task (FunctionPath.answer_soon), in /healthz.
        self.direct_requests = 0
        self.direct_callbacks = 0
        self.logs = logs if logs is not None else LogWriter(redis_client, config.log_stream_len)
        self.metrics = MetricsRecorder(redis_client, self.node_name)
        self.access = AccessLog(config.access_log)
        self.keyring = Keyring.from_config(config)  # opens secrets, signs reports
        self._closing = list(closing or ())
        self.fallback = fallback
        self.failed: dict[str, str] = {}
        self._wanted = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []
        self._retiring: set[asyncio.Task[None]] = set()

    async def start(self) -> None:
        """Load the current routes (if the store answers) and start the background loops."""
        self.logs.start()
        self.metrics.start()
        await self._reload_once()
        for loop in (
            self._reloader,
            self._listen,
            self._heartbeat,
            self._reaper,
            self._poll,
            self._flush_access,
        ):
            self._tasks.append(asyncio.create_task(loop()))
        if self.fallback is not None:
            self._tasks.append(asyncio.create_task(self.fallback.run()))

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        with contextlib.suppress(RedisError, OSError):
            await commands.forget_worker(self.redis, self.worker_id)
        await self.pools.close()
        if self.fallback is not None:
            await self.fallback.close()
        for close in self._closing:
            await close()
        self.access.close()
        await self.logs.aclose()
        await self.metrics.aclose()
        with contextlib.suppress(RedisError, OSError):
            await self.redis.aclose()
        self.store.close()

    async def pool(self, version: FunctionVersion) -> FunctionPool:
        """The warm pool of ``version``, started on demand (e.g. after LRU eviction)."""
        return await self.pools.get_or_start(version)

    def request_reload(self) -> None:
        self._wanted.set()

    # -- generations ---------------------------------------------------------

    async def _reloader(self) -> None:
        while True:
            await self._wanted.wait()
            self._wanted.clear()
            try:
                await self._reload_once()
            except Exception:  # keep serving the old table whatever went wrong
                logger.exception("reload failed; still serving routes v%s", self.table.version)

    async def _reload_once(self) -> None:
        loop = asyncio.get_running_loop()
        try:
            snapshot = await loop.run_in_executor(None, self.store.routing_snapshot)
        except Exception as exc:  # the database is down: keep what we have
            logger.warning("store unreachable (%s); serving routes v%s", exc, self.table.version)
            return
        if snapshot.version == self.table.version and self.table.sites:
            return
        snapshot, sealed = unseal(snapshot, self.keyring)  # secrets join the functions' env
        # A node on another host fetches the releases it does not have yet.
        missing = await loop.run_in_executor(None, ensure_local, self.config, snapshot)
        table = RouteTable.build(snapshot, self.config, self.table)
        failures = await self._start_pools(table)
        failures.update(sealed)
        failures.update({f"{site}/(release bundle)": error for site, error in missing.items()})
        table = self._without_failed(table, failures)
        old = self.table
        self.table = table  # the swap: requests from now on see the new generation
        self.failed = failures
        logger.info("serving routes v%s (%d sites)", table.version, len(table.sites))
        self._retire(old, table)
        await self._report(announce=True)

    async def _start_pools(self, table: RouteTable) -> dict[str, str]:
        wanted = list(table.versions().values())
        results = await asyncio.gather(
            *(self.pools.get_or_start(v) for v in wanted),
            return_exceptions=True,
        )
        failures: dict[str, str] = {}
        for version, result in zip(wanted, results, strict=True):
            if isinstance(result, BaseException):
                message = str(result) if isinstance(result, FunctionLoadError) else repr(result)
                failures[f"{version.app}/{version.environment}/{version.name}"] = message
                self.logs.emit(
                    platform_event(
                        version.app,
                        version.environment,
                        f"failed to start: {message}",
                        release=version.release,
                        level="error",
                        function=version.name,
                    )
                )
        return failures

    def _without_failed(self, table: RouteTable, failures: dict[str, str]) -> RouteTable:
        """Sites with a function that failed to start keep their previous generation."""
        if not failures:
            return table
        broken = {key.rsplit("/", 1)[0] for key in failures}
        sites = dict(table.sites)
        for host, site in table.sites.items():
            if f"{site.app}/{site.environment}" in broken:
                previous = self.table.site(host)
                if previous is None:
                    del sites[host]
                else:
                    sites[host] = previous
        return RouteTable(table.version, sites)

    def _retire(self, old: RouteTable, new: RouteTable) -> None:
        keep = new.versions()
        for key in old.versions():
            if key not in keep:
                task = asyncio.create_task(self.pools.retire(key))
                self._retiring.add(task)
                task.add_done_callback(self._retiring.discard)

    # -- background loops ----------------------------------------------------

    async def _report(self, *, announce: bool) -> None:
        status = commands.WorkerStatus(
            self.worker_id, self.config.region, self.table.version, self.failed
        )
        node = NodeRecord(
            self.node_name,
            self.config.region,
            self.config.public_url,
            self.table.version,
            time.time(),
        )
        try:
            await commands.report_status(self.redis, status, self.keyring, announce=announce)
            await register(self.redis, node, self.keyring)
        except (RedisError, OSError) as exc:
            logger.warning("could not report to redis: %s", exc)

    async def _listen(self) -> None:
        backoff = 0.5
        while True:
            pubsub = self.redis.pubsub(ignore_subscribe_messages=True)
            try:
                await pubsub.subscribe(commands.COMMANDS)
                self.request_reload()  # catch up on anything missed while disconnected
                backoff = 0.5
                async for message in pubsub.listen():
                    self.handle_payload(message.get("data"))
            except (RedisError, OSError) as exc:
                logger.warning("redis unreachable (%s); retrying in %.1fs", exc, backoff)
            finally:
                with contextlib.suppress(RedisError, OSError):
                    await pubsub.aclose()
            await asyncio.sleep(backoff)
            backoff = min(backoff * 2, 5.0)

    def handle_payload(self, data: object) -> None:
        """Dispatch one command from the control plane."""
        if not isinstance(data, bytes | str):
            return
        payload = commands.parse_command(data)
        if payload is None:
            logger.warning("ignoring malformed command %r", data[:200])
            return
        if payload["cmd"] == "routes":
            version = payload.get("version")
            if not isinstance(version, int) or version != self.table.version:
                self.request_reload()

    async def _heartbeat(self) -> None:
        while True:
            await asyncio.sleep(HEARTBEAT_S)
            await self._report(announce=False)

    async def _poll(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            await asyncio.sleep(POLL_S)
            try:
                version = await loop.run_in_executor(None, self.store.routes_version)
            except Exception as exc:  # database down: keep serving, try again later
                logger.debug("routes version check failed: %s", exc)
                continue
            if version != self.table.version:
                self.request_reload()

    async def _flush_access(self) -> None:
        while True:
            await asyncio.sleep(ACCESS_FLUSH_S)
            try:
                self.access.flush()
            except OSError as exc:
                logger.warning("could not write the access log: %s", exc)

    async def _reaper(self) -> None:
        while True:
            await asyncio.sleep(REAP_S)
            try:
                await self.pools.reap(self.clock())
            except Exception:
                logger.exception("reaping idle instances failed")
