"""Push-to-live: from ``git push`` of a small change until the runtime serves it."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from bench.apps import live_app
from bench.client import get
from bench.edgestack import EdgeStack
from bench.gitwork import Workdir

POLL_S = 0.002
LIVE_TIMEOUT_S = 60.0


@dataclass
class PushSamples:
    """One entry per push.

    Attributes:
        push_ms: until ``git push`` returned (the platform waits for the runtime's acks).
        live_ms: until a fresh connection got the new answer.
    """

    push_ms: list[float] = field(default_factory=list)
    live_ms: list[float] = field(default_factory=list)


def measure_push(
    stack: EdgeStack,
    workdir: Workdir,
    pushes: int,
    first: int = 1,
    *,
    app: str = "live",
    files: Callable[[int], dict[str, str]] = live_app,
) -> PushSamples:
    """Push ``pushes`` changes to ``app`` (default ``live``), numbered from ``first``."""
    samples = PushSamples()
    for number in range(first, first + pushes):
        workdir.commit(f"push {number}", files(number))
        began = time.perf_counter()
        workdir.push(stack.remote(app))
        samples.push_ms.append((time.perf_counter() - began) * 1000)
        _wait_for_answer(stack, number, app)
        samples.live_ms.append((time.perf_counter() - began) * 1000)
    return samples


def _wait_for_answer(stack: EdgeStack, number: int, app: str) -> None:
    deadline = time.monotonic() + LIVE_TIMEOUT_S
    while time.monotonic() < deadline:
        reply = get(stack.runtime_port, "/", host=stack.host(app))
        if reply.status == 200 and json.loads(reply.body) == {"push": number}:
            return
        time.sleep(POLL_S)
    raise RuntimeError(f"push {number} was not served within {LIVE_TIMEOUT_S:.0f}s")
