"""What a Python pool answers when an instance fails a request, and what it logs.

Each method kills the instance where the failure leaves it unusable, logs what
the death means ("killed: memory limit 128 MB exceeded"), and returns the
fault table's answer (:mod:`edge.runtime.faults`). :class:`FaultAnswers` keeps
no instance bookkeeping: the pool's ``on_lost`` callback sees every death.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

from edge.runtime.faults import fault_outcome
from edge.runtime.invocation import FunctionVersion, Invocation, LogRecord, Outcome
from edge.runtime.python.calls import CallTimeout
from edge.runtime.python.cgroups import Group
from edge.runtime.python.sockets import InstanceChannel
from edge.runtime.wire import MIB, FrameTooLarge, PeerClosed, ProtocolError

logger = logging.getLogger(__name__)

EXIT_REPORT_WAIT_S = 1.0


class FaultAnswers:
    """The answers of one function version's pool to its instances' failures.

    Args:
        version: the function version.
        max_response: the largest buffered response body, in bytes.
        group: returns the version's cgroup in this worker, if it has one.
    """

    def __init__(
        self, version: FunctionVersion, max_response: int, group: Callable[[], Group | None]
    ) -> None:
        self.version = version
        self.label = f"{version.app}/{version.environment}/{version.name}"
        self._max_response = max_response
        self._group = group
        self._oom_kills = 0

    async def of_call(
        self,
        instance: InstanceChannel,
        invocation: Invocation,
        exc: BaseException,
        *,
        closing: bool,
    ) -> Outcome:
        """The answer for a call that raised ``exc`` (not a NotStarted, which is
        retried; ``closing``: the pool is, and killed it). Other exceptions re-raise."""
        if isinstance(exc, CallTimeout):
            return self.timeout(instance, invocation)
        if isinstance(exc, PeerClosed):
            return (
                self.shutting_down(invocation) if closing else await self.died(instance, invocation)
            )
        if isinstance(exc, FrameTooLarge):
            return self.too_large(instance, invocation)
        if isinstance(exc, ProtocolError):
            return self.invalid(instance, invocation, str(exc))
        raise exc

    def timeout(self, instance: InstanceChannel, invocation: Invocation) -> Outcome:
        """The request ran past ``timeout_ms``: 504, and the instance is killed."""
        instance.kill()
        logger.warning(
            "function %s: instance %d killed: timed out after %d ms",
            self.label,
            instance.pid,
            self.version.timeout_ms,
        )
        return fault_outcome("timeout", self.version, invocation.request_id)

    def too_large(self, instance: InstanceChannel, invocation: Invocation) -> Outcome:
        """A reply over ``max_response``: 502 (stream large bodies instead)."""
        instance.kill()  # its reply is unread (or dropped): the socket is out of step
        limit_mb = self._max_response // MIB
        logger.warning(
            "function %s: instance %d killed: response over %d MB",
            self.label,
            instance.pid,
            limit_mb,
        )
        return fault_outcome(
            "response_too_large", self.version, invocation.request_id, limit_mb=limit_mb
        )

    async def died(self, instance: InstanceChannel, invocation: Invocation) -> Outcome:
        """The instance went away mid-request: out of memory (502) or a crash (502)."""
        info = await instance.wait_exit(EXIT_REPORT_WAIT_S)
        if info is not None and info.out_of_memory(instance.base_rss_kb, self.version.memory_mb):
            return self.memory(instance, invocation, [])
        if self._oom_killed():
            return self.memory(instance, invocation, [])
        if info is not None:
            reason = info.describe()
        else:
            reason = "died with its template" if instance.orphaned else "closed its connection"
        logger.warning("function %s: instance %d %s", self.label, instance.pid, reason)
        return fault_outcome(
            "crash",
            self.version,
            invocation.request_id,
            memory_peak_kb=instance.memory_peak_kb,
            reason=reason,
        )

    def _oom_killed(self) -> bool:
        """Whether the kernel killed a process for the version cgroup's memory limit."""
        group = self._group()
        kills = group.oom_kills() if group is not None else 0
        killed, self._oom_kills = kills > self._oom_kills, kills
        return killed

    def memory(
        self, instance: InstanceChannel, invocation: Invocation, logs: list[LogRecord]
    ) -> Outcome:
        """Over ``memory_mb``: 502 "memory limit exceeded"."""
        logger.warning(
            "function %s: instance %d killed: memory limit %d MB exceeded",
            self.label,
            instance.pid,
            self.version.memory_mb,
        )
        return fault_outcome(
            "memory",
            self.version,
            invocation.request_id,
            logs=logs,
            memory_peak_kb=instance.memory_peak_kb,
        )

    def invalid(self, instance: InstanceChannel, invocation: Invocation, why: str) -> Outcome:
        """A reply that is not a valid response: 502, and the instance is killed."""
        instance.kill()
        logger.warning(
            "function %s: instance %d killed: invalid response: %s", self.label, instance.pid, why
        )
        return fault_outcome(
            "invalid_response",
            self.version,
            invocation.request_id,
            logs=[LogRecord(time.time(), "error", f"invalid response: {why}")],
        )

    def shutting_down(self, invocation: Invocation) -> Outcome:
        """The pool is closing: 503."""
        return fault_outcome(
            "unavailable", self.version, invocation.request_id, reason="it is shutting down"
        )

    def overloaded(self, invocation: Invocation) -> Outcome:
        """Every instance busy and the queue full (or waited out): 503."""
        return fault_outcome(
            "overloaded", self.version, invocation.request_id, limit=self.version.max_instances
        )

    def unavailable(self, invocation: Invocation, reason: str) -> Outcome:
        """No instance could take the request: 503 with ``reason``."""
        return fault_outcome("unavailable", self.version, invocation.request_id, reason=reason)
