"""``python -m bench.cold``: only the cold-start rows of ``make bench``, in a minute.

Starts the platform as ``make bench`` does (:func:`bench.edgestack.start_edge`),
deploys app ``bench`` by ``git push``, then measures its cold-start functions
twice: first requests ``BENCH_COLD_GAP`` seconds apart (sporadic traffic), then
back to back (a burst). Prints those rows of the table; ``BENCH_COLD_PASSES``,
``BENCH_COLD_FUNCTIONS``, ``BENCH_WORKERS`` and ``BENCH_IDLE_TTL`` apply.
"""

from __future__ import annotations

import sys
from pathlib import Path

from bench.__main__ import say
from bench.apps import bench_app, cold_paths
from bench.coldstart import spaced_and_burst
from bench.edgestack import EdgeStack, scratch_stack
from bench.facts import load_average
from bench.gitwork import Workdir
from bench.procs import exit_on_signals
from bench.report import cold_rows
from bench.settings import Settings


def measure(settings: Settings, stack: EdgeStack, tmp: Path) -> list[str]:
    """Deploy ``bench`` and return the cold rows, spaced then back to back."""
    bench = bench_app(settings.min_warm, settings.cold_functions)
    stack.deploy(Workdir(tmp / "work-bench"), "bench", bench, "Bench functions")
    paths = {
        "Python": cold_paths("py", settings.cold_functions),
        "JS": cold_paths("js", settings.cold_functions),
    }
    say(f"cold starts, {settings.cold_gap:g} s apart then back to back ...")
    cold = spaced_and_burst(
        stack.runtime_port,
        stack.host("bench"),
        paths,
        settings.cold_passes,
        settings.idle_ttl,
        settings.cold_gap,
    )
    lines = [line for language, samples in cold.items() for line in cold_rows(language, samples)]
    return lines


def main() -> int:
    exit_on_signals()
    settings = Settings.from_env()
    say(f"load average at start: {load_average()}")
    with scratch_stack(settings) as (stack, tmp, _):
        lines = measure(settings, stack, tmp)
    print("\n".join(lines))
    say(f"load average at end: {load_average()}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
