"""How the V8 host frees contexts (spare.Freer): off its loop, one at a time,
never beside a cold start for longer than MAX_WAIT_S."""

from __future__ import annotations

import asyncio
import threading
from contextlib import ExitStack

import pytest

from edge.runtime.js.spare import Freer


class Frees:
    """Stacks whose closing records which thread closed them, and when."""

    def __init__(self) -> None:
        self.events: list[tuple[str, str]] = []
        self.threads: set[int] = set()
        self.started = {name: threading.Event() for name in "abc"}
        self.gate = threading.Event()  # holds "a" in its close until set

    def stack(self, name: str) -> ExitStack:
        stack = ExitStack()
        stack.callback(self._close, name)
        return stack

    def _close(self, name: str) -> None:
        self.threads.add(threading.get_ident())
        self.events.append((name, "start"))
        self.started[name].set()
        if name == "a":
            self.gate.wait(10)
        self.events.append((name, "end"))


async def wait_thread_event(event: threading.Event) -> None:
    assert await asyncio.get_running_loop().run_in_executor(None, event.wait, 10)


def test_contexts_are_freed_one_at_a_time_off_the_loop() -> None:
    async def scenario() -> Frees:
        frees, freer = Frees(), Freer()
        done = [freer.free(frees.stack(name)) for name in "abc"]
        await wait_thread_event(frees.started["a"])
        assert frees.events == [("a", "start")], "b and c wait while a is being freed"
        frees.gate.set()
        await asyncio.wait_for(asyncio.gather(*done), 10)
        freer.close()
        return frees

    frees = asyncio.run(scenario())
    assert frees.events == [(n, e) for n in "abc" for e in ("start", "end")]
    assert threading.get_ident() not in frees.threads
    assert len(frees.threads) == 1


def test_a_free_waits_for_the_cold_start_under_way(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(Freer, "MAX_WAIT_S", 30.0)

    async def scenario() -> tuple[list[tuple[str, str]], list[tuple[str, str]]]:
        frees, freer = Frees(), Freer()
        frees.gate.set()
        with freer.starting():
            done = freer.free(frees.stack("b"))
            await asyncio.sleep(0.3)  # a free, had it begun, takes microseconds here
            during = list(frees.events)
        await asyncio.wait_for(done, 10)
        freer.close()
        return during, frees.events

    during, after = asyncio.run(scenario())
    assert during == []
    assert after == [("b", "start"), ("b", "end")]


def test_a_free_waits_for_cold_starts_at_most_max_wait(monkeypatch: pytest.MonkeyPatch) -> None:
    """Closed isolates hold memory the host's budget counts: cold starts one
    after another must not keep it from being freed."""
    monkeypatch.setattr(Freer, "MAX_WAIT_S", 0.05)

    async def scenario() -> list[tuple[str, str]]:
        frees, freer = Frees(), Freer()
        frees.gate.set()
        with freer.starting():
            await asyncio.wait_for(freer.free(frees.stack("c")), 10)
            events = list(frees.events)
        freer.close()
        return events

    assert asyncio.run(scenario()) == [("c", "start"), ("c", "end")]
