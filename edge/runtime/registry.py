"""One worker's registry of warm pools: start on demand, LRU cap, idle reaping.

Python versions get a :class:`~edge.runtime.python.pool.PythonPool` on the worker's
zygote; JavaScript versions a pool from the injected ``js_factory``
(:class:`~edge.runtime.js.pool.JsPool`).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

from edge.runtime.invocation import FunctionLoadError, FunctionPool, FunctionVersion
from edge.runtime.kv import KVService
from edge.runtime.python.cgroups import Cgroups
from edge.runtime.python.client import Zygote
from edge.runtime.python.pool import PythonPool
from edge.runtime.python.process.sandbox import Limits

logger = logging.getLogger(__name__)


PoolFactory = Callable[[FunctionVersion], FunctionPool]


class PoolRegistry:
    """One worker's pools, keyed by :attr:`FunctionVersion.key`.

    Args:
        zygote: the worker's :class:`Zygote`, or a factory building it on first need.
        max_pools: warm pools kept; past it the least recently used one is retired.
        idle_ttl: seconds an instance may idle before :meth:`reap` stops it.
        js_factory: builds the pool of a ``"js"`` version (``edge.runtime.js.pool``).
        on_evict: told of each version whose pool goes to make room (a platform event).
        limits: process and file limits of Python function processes.
        max_response: the largest buffered Python response body, in bytes.
        cgroups: the install's cgroups; each Python version gets a group.
        kv: runs the KV operations of Python functions.
        parallel: instances of a fast Python function that run at once before
            its requests queue behind running ones (``edge.runtime.python.slots``):
            the worker's share of the node's CPUs.
    """

    def __init__(
        self,
        zygote: Zygote | Callable[[], Zygote],
        *,
        max_pools: int = 50,
        idle_ttl: float = 300.0,
        js_factory: PoolFactory | None = None,
        limits: Limits | None = None,
        kv: KVService | None = None,
        on_evict: Callable[[FunctionVersion], None] | None = None,
        max_response: int = 32 * 1024 * 1024,
        cgroups: Cgroups | None = None,
        parallel: int = 1,
    ) -> None:
        self._max_response = max_response
        self._parallel = parallel
        self._zygote = zygote if isinstance(zygote, Zygote) else None
        self._zygote_factory = None if isinstance(zygote, Zygote) else zygote
        self.max_pools = max_pools
        self.idle_ttl = idle_ttl
        self._js_factory = js_factory
        self._on_evict = on_evict
        self._limits = limits
        self._cgroups = cgroups
        self._kv = kv
        self._pools: dict[str, FunctionPool] = {}
        self._starting: dict[str, asyncio.Task[FunctionPool]] = {}
        self._retiring: set[asyncio.Task[None]] = set()
        self._closed = False

    @property
    def zygote(self) -> Zygote:
        """The worker's zygote (built on first use when given a factory)."""
        if self._zygote is None:
            assert self._zygote_factory is not None
            self._zygote = self._zygote_factory()
        return self._zygote

    async def get_or_start(self, version: FunctionVersion) -> FunctionPool:
        """The started pool of ``version``; concurrent callers share one start.

        Raises:
            FunctionLoadError: the function could not be loaded.
        """
        pool = self._pools.get(version.key)
        if pool is not None:
            return pool
        if self._closed:
            raise FunctionLoadError("the runtime worker is shutting down")
        task = self._starting.get(version.key)
        if task is None:
            task = asyncio.get_running_loop().create_task(self._start(version))
            self._starting[version.key] = task
            task.add_done_callback(lambda done: self._started(version.key, done))
        return await asyncio.shield(task)

    def get(self, key: str) -> FunctionPool | None:
        """The started pool with this key, if any."""
        return self._pools.get(key)

    def keys(self) -> list[str]:
        """Keys of the started pools."""
        return list(self._pools)

    async def retire(self, key: str) -> None:
        """Drain and close a pool (shielded: a cancelled caller does not stop it)."""
        task = self._retire_in_background(key)
        if task is not None:
            await asyncio.shield(task)

    async def reap(self, now: float) -> int:
        """Stop instances idle past ``idle_ttl`` in every pool; returns how many."""
        return sum(pool.reap_idle(now, self.idle_ttl) for pool in list(self._pools.values()))

    async def close(self) -> None:
        """Close every pool (letting in-flight requests finish), then the zygote."""
        self._closed = True
        for task in list(self._starting.values()):
            task.cancel()
        await asyncio.gather(*self._starting.values(), return_exceptions=True)
        for key in list(self._pools):
            self._retire_in_background(key)
        while self._retiring:
            await asyncio.gather(*self._retiring, return_exceptions=True)
        if self._zygote is not None:
            await self._zygote.close()

    async def _start(self, version: FunctionVersion) -> FunctionPool:
        pool = self._make(version)
        try:
            await pool.start()
        except BaseException:
            await pool.close(drain=False)
            raise
        self._pools[version.key] = pool
        self._evict(keep=version.key)
        return pool

    def _started(self, key: str, task: asyncio.Task[FunctionPool]) -> None:
        self._starting.pop(key, None)
        if not task.cancelled():
            task.exception()  # retrieved here even if every caller was cancelled

    def _make(self, version: FunctionVersion) -> FunctionPool:
        if version.runtime == "python":
            return PythonPool(
                version,
                self.zygote,
                limits=self._limits,
                kv=self._kv,
                max_response=self._max_response,
                cgroups=self._cgroups,
                parallel=self._parallel,
            )
        if version.runtime == "js" and self._js_factory is not None:
            return self._js_factory(version)
        raise FunctionLoadError(f"{version.path}: no runtime for {version.runtime!r} functions")

    def _evict(self, keep: str) -> None:
        """Past ``max_pools``, retire the least recently used pools (not ``keep``)."""
        while len(self._pools) > self.max_pools:
            victim = min(
                (k for k in self._pools if k != keep), key=lambda k: self._pools[k].last_used
            )
            logger.info("retiring the least recently used pool %s", victim)
            if self._on_evict is not None:
                self._on_evict(self._pools[victim].version)
            self._retire_in_background(victim)

    def _retire_in_background(self, key: str) -> asyncio.Task[None] | None:
        pool = self._pools.pop(key, None)
        if pool is None:
            return None
        task = asyncio.get_running_loop().create_task(pool.close(drain=True))
        self._retiring.add(task)
        task.add_done_callback(self._retiring.discard)
        return task
