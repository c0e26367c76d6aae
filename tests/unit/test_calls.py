"""The calls of one instance socket (edge.runtime.python.calls), on a real event loop.

Which call is running decides what happens to it when the instance dies:
the running one fails with the reason, the queued ones with NotStarted
(safe to run elsewhere). A queued call's time limit starts when it starts.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

import pytest

from edge.runtime.python.calls import CallQueue, CallTimeout, NotStarted
from edge.runtime.wire import PeerClosed


def run(scenario: Callable[[], Awaitable[Any]]) -> Any:
    return asyncio.run(scenario())  # type: ignore[arg-type]


def test_calls_start_one_at_a_time_in_the_order_they_were_written() -> None:
    async def scenario() -> None:
        calls = CallQueue(lambda: None)
        first, second = calls.add(5.0), calls.add(5.0)
        assert calls.current is first and first.started and not second.started
        calls.answer({"n": 1}, over=True)
        assert calls.current is second and second.started
        assert first.future.result() == {"n": 1} and not second.future.done()
        calls.answer({"n": 2}, over=True)
        assert calls.current is None and len(calls) == 0
        assert second.future.result() == {"n": 2}

    run(scenario)


def test_a_stream_keeps_its_call_running_until_its_end() -> None:
    async def scenario() -> None:
        calls = CallQueue(lambda: None)
        streamed, queued = calls.add(5.0), calls.add(5.0)
        calls.answer({"k": "head"}, over=False)
        assert streamed.future.done() and calls.current is streamed and not queued.started
        calls.end()
        assert calls.current is queued and queued.started

    run(scenario)


def test_when_the_instance_dies_only_the_running_call_gets_the_reason() -> None:
    async def scenario() -> None:
        calls = CallQueue(lambda: None)
        running, queued = calls.add(5.0), calls.add(5.0)
        calls.fail(PeerClosed("gone"))
        with pytest.raises(PeerClosed) as reason:
            running.future.result()
        assert not isinstance(reason.value, NotStarted)
        with pytest.raises(NotStarted):
            queued.future.result()

    run(scenario)


def test_a_queued_calls_time_limit_starts_when_it_starts() -> None:
    async def scenario() -> None:
        loop = asyncio.get_running_loop()
        calls = CallQueue(lambda: None)
        running, queued = calls.add(5.0), calls.add(0.2)
        await asyncio.sleep(0.3)  # queued for longer than its limit
        assert not queued.future.done()  # no clock runs while it is queued
        calls.answer({}, over=True)
        started = loop.time()
        with pytest.raises(CallTimeout):
            await queued.future
        assert loop.time() - started >= 0.19  # its whole limit, counted from its start
        assert running.future.result() == {}

    run(scenario)


def test_a_call_that_starts_as_another_ends_gets_its_whole_time_limit() -> None:
    """One timer per instance: armed for the first call's deadline, it finds the
    next call running when it fires and waits for that call's deadline."""

    async def scenario() -> None:
        loop = asyncio.get_running_loop()
        calls = CallQueue(lambda: None)
        first = calls.add(0.2)
        await asyncio.sleep(0.1)
        calls.answer({}, over=True)  # in time
        second = calls.add(0.2)
        started = loop.time()
        with pytest.raises(CallTimeout):
            await second.future
        assert loop.time() - started >= 0.19
        assert first.future.result() == {}

    run(scenario)


def test_nothing_starts_after_the_instances_last_words() -> None:
    async def scenario() -> None:
        calls = CallQueue(lambda: None)
        calls.add(5.0)
        queued = calls.add(5.0)
        calls.answer({"error": "memory"}, over=True)  # it exits right after this reply
        assert not queued.started
        calls.fail(PeerClosed("exited"))
        with pytest.raises(NotStarted):
            queued.future.result()

    run(scenario)


def test_a_dropped_call_past_its_time_limit_asks_for_a_kill() -> None:
    async def scenario() -> None:
        kills: list[bool] = []
        calls = CallQueue(lambda: kills.append(True))
        calls.add(5.0)
        dropped = calls.add(0.05)
        dropped.dropped = True
        dropped.future.cancel()
        calls.answer({}, over=True)
        await asyncio.sleep(0.2)
        assert kills == [True]

    run(scenario)
