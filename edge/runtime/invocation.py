"""What the runtime hands a function pool, and what comes back.

Shared by Python pools (``edge.runtime.python.pool``) and JavaScript pools
(``edge.runtime.js.pool``): both implement :class:`FunctionPool`.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from edge.runtime.streaming import BodyStream


@dataclass(frozen=True)
class FunctionVersion:
    """One function at one code+config version: the identity of a pool.

    Attributes:
        key: content hash of code and config; equal keys share a warm pool
            across releases.
        app, environment, release, name: where it is deployed (for logs/headers).
        runtime: ``"python"`` or ``"js"``.
        root: the read-only release artifact folder (the instance's cwd).
        path: the entry file, relative to ``root``.
        handler: the Python callable's name (``""`` for JS).
        env: the function's variables, and nothing else.
        memory_mb, timeout_ms, min_warm, max_instances: limits and pool policy.
        uid: the uid (and gid) its processes run as when the platform is root
            (:func:`edge.uids.function_ids`); 0 derives it from the app's name.
        packages: the release's Python package environment (on ``sys.path``), if any.
        kind: a Python entry's declared kind (``""``: detected at load).
    """

    key: str
    app: str
    environment: str
    release: int
    name: str
    runtime: str
    root: Path
    path: str
    handler: str
    env: Mapping[str, str] = field(repr=False)  # APPSEC: may hold secrets; never in a repr
    memory_mb: int
    timeout_ms: int
    min_warm: int = 0
    max_instances: int = 8
    uid: int = 0
    packages: Path | None = None
    kind: str = ""


@dataclass
class Invocation:
    """One request, as sent to a function instance."""

    method: str
    url: str
    path: str
    query_string: str
    headers: list[tuple[str, str]]
    body: bytes
    params: dict[str, str]
    request_id: str


@dataclass(frozen=True)
class LogRecord:
    """One line a function wrote: wall-clock seconds, level, text."""

    ts: float
    level: str
    message: str


@dataclass
class Outcome:
    """What a pool answers for one invocation.

    Attributes:
        status, headers, body: the HTTP response to send.
        cold: whether a new instance had to be started for it.
        cold_ms: how long that start took (0 when warm).
        duration_ms: from dispatch to reply.
        error: ``None`` on success, else the platform fault it ended in (a key
            of :data:`edge.runtime.faults.FAULTS`).
        logs: what the function wrote during this invocation.
        memory_peak_kb: the instance's peak resident memory so far (0 if unknown).
        message: for a platform fault, its message (``edge.runtime.faults``).
        stream: for a streamed response, its body (``body`` is then empty);
            ``duration_ms`` is then the time to the first chunk, and the
            request is logged and counted when the stream is over.
    """

    status: int
    headers: list[tuple[str, str]]
    body: bytes
    cold: bool = False
    cold_ms: float = 0.0
    duration_ms: float = 0.0
    error: str | None = None
    logs: list[LogRecord] = field(default_factory=list)
    memory_peak_kb: int = 0
    message: str = ""
    stream: BodyStream | None = None


class FunctionLoadError(Exception):
    """A function version could not be loaded (import error, syntax error, bad
    handler): the deploy reports it and the function is marked failed."""


class FunctionPool(Protocol):
    """The pool of warm instances (or isolates) of one :class:`FunctionVersion`."""

    version: FunctionVersion
    last_used: float

    async def start(self) -> None:
        """Load the code (raising :class:`FunctionLoadError`) and pre-warm ``min_warm``."""

    async def invoke(self, invocation: Invocation) -> Outcome:
        """Run one request; never raises for function faults (they become 5xx Outcomes)."""

    def submit(self, invocation: Invocation, done: Callable[[Outcome], None]) -> bool:
        """Start one request without a task if the pool can at once: ``done`` gets
        its outcome. False, and nothing started, when it cannot: await :meth:`invoke`."""

    def reap_idle(self, now: float, ttl: float) -> int:
        """Stop instances idle longer than ``ttl`` seconds, keeping ``min_warm``;
        returns how many were stopped."""

    async def close(self, drain: bool = True) -> None:
        """Stop taking requests; with ``drain`` let in-flight ones finish first."""
