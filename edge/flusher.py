"""The background-flush life cycle shared by the runtime's log writer and metrics recorder."""

from __future__ import annotations

import asyncio
import logging

logger = logging.getLogger(__name__)


class Flusher:
    """Something that buffers in memory and flushes to Redis from a background task.

    Subclasses implement :meth:`run` (the loop; it ends once ``_closing`` is set)
    and :meth:`flush` (never raises for a Redis failure), and may override
    :meth:`_wake` to cut a wait in :meth:`run` short when closing.
    """

    task_name = "edge-flusher"

    def __init__(self) -> None:
        self._closing = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    async def run(self) -> None:
        raise NotImplementedError

    async def flush(self) -> int:
        raise NotImplementedError

    def _wake(self) -> None:
        """Called by :meth:`aclose` after setting ``_closing``."""

    def start(self) -> None:
        """Launch :meth:`run` as a task of the running event loop."""
        if self._task is None:
            loop = asyncio.get_running_loop()
            self._task = loop.create_task(self.run(), name=self.task_name)

    async def aclose(self, timeout: float = 2.0) -> None:
        """Stop :meth:`run` after one last flush, giving up after ``timeout`` seconds.

        A flush is never cancelled half-way (its batch could be lost or counted
        twice), except at the timeout. Does not close the Redis client.
        """
        self._closing.set()
        self._wake()
        task, self._task = self._task, None
        try:
            async with asyncio.timeout(timeout):
                if task is not None:
                    await task
                await self.flush()  # what arrived during run()'s last flush
        except TimeoutError:
            logger.warning("%s closed before its last flush finished", self.task_name)
