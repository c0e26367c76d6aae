"""A closing pool waits for the instances it killed to leave its cgroup before
it reports anything as left behind by the function."""

from __future__ import annotations

import asyncio
import time
from typing import Any

from edge.runtime.python.templates import EXIT_GRACE_S, TemplateSource


class Group:
    """A cgroup whose processes leave ``exiting`` reads after the first."""

    def __init__(self, exiting: set[int], staying: set[int], reads: int) -> None:
        self.exiting, self.staying, self.reads = exiting, staying, reads

    def pids(self) -> set[int]:
        self.reads -= 1
        return (self.exiting if self.reads > 0 else set()) | self.staying


def left_behind(group: Any) -> tuple[set[int], float]:
    started = time.monotonic()
    left = asyncio.run(TemplateSource._left_behind(group))
    return left, time.monotonic() - started


def test_instances_still_exiting_are_not_left_behind() -> None:
    left, took = left_behind(Group({101, 102}, set(), reads=3))
    assert left == set()
    assert took < EXIT_GRACE_S


def test_a_process_that_stays_is_left_behind_after_the_grace() -> None:
    left, took = left_behind(Group({101}, {202}, reads=3))
    assert left == {202}
    assert took >= EXIT_GRACE_S


def test_an_empty_group_is_not_waited_for() -> None:
    left, took = left_behind(Group(set(), set(), reads=1))
    assert left == set()
    assert took < 0.05
