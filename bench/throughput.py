"""Requests/s and latency of every system, in rounds, with ratios per round."""

from __future__ import annotations

import statistics
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field

from bench.settings import Settings
from bench.wrk import WrkResult, run_wrk


@dataclass(frozen=True)
class Target:
    """One system under load.

    Attributes:
        key: short name, e.g. ``"workerd"``.
        label: what the table calls it.
        port: its loopback port.
        path: what wrk requests.
        host: the ``Host`` header to send, if not ``127.0.0.1:<port>``.
        start_ms: start to first 200, when it was measured.
        script: a wrk Lua script (e.g. a POST with a body), if any.
        baseline: the key of the target its ratio is taken against (default:
            the run's baseline, e.g. workerd for hello).
    """

    key: str
    label: str
    port: int
    path: str = "/"
    host: str | None = None
    start_ms: float | None = None
    script: str | None = None
    baseline: str | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}{self.path}"


@dataclass
class Measured:
    """The rounds of one target; ``ratios[i]`` is its req/s over the baseline's in round i."""

    target: Target
    rounds: list[WrkResult] = field(default_factory=list)
    ratios: list[float] = field(default_factory=list)

    def median(self, attribute: str) -> float:
        """The median over rounds of a :class:`WrkResult` attribute."""
        return statistics.median(getattr(r, attribute) for r in self.rounds)

    @property
    def ratio(self) -> float:
        """The median of the per-round ratios."""
        return statistics.median(self.ratios)

    @property
    def errors(self) -> int:
        return sum(r.errors for r in self.rounds)


def warm_up(targets: Sequence[Target], settings: Settings) -> None:
    """One short wrk run per target: instances, JITs and connections settle first."""
    for target in targets:
        if settings.warmup > 0:
            run_wrk(settings, target.url, target.host, settings.warmup, target.script)


def measure(targets: Sequence[Target], baseline: str, settings: Settings) -> list[Measured]:
    """``settings.rounds`` rounds of one wrk run per target, in a fixed order.

    Ratios are computed inside each round against the ``baseline`` target's run
    of that same round, so slow drift of the machine cancels out.
    """
    results = [Measured(t) for t in targets]
    for number in range(1, settings.rounds + 1):
        runs = {}
        for measured in results:
            target = measured.target
            print(
                f"  round {number}/{settings.rounds}: {target.key} ...",
                end="",
                flush=True,
                file=sys.stderr,
            )
            runs[target.key] = run_wrk(settings, target.url, target.host, script=target.script)
            print(f" {runs[target.key].rps:,.0f} req/s", file=sys.stderr)
        for measured in results:
            run = runs[measured.target.key]
            measured.rounds.append(run)
            against = runs[measured.target.baseline or baseline]
            measured.ratios.append(run.rps / against.rps)
    return results
