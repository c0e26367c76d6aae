"""``python -m bench.streamrun``: only the JS stream rows of ``make bench``.

Starts the platform and bare falcon as ``make bench`` does, deploys app
``bench`` by ``git push``, and measures one 64 MB JS stream download (and time
to first chunk) against bare falcon streaming the same blocks, ``BENCH_ROUNDS``
times; prints each round's rows (the ratio is taken within the round).
"""

from __future__ import annotations

import sys
from pathlib import Path

from bench.__main__ import say
from bench.apps import bench_app
from bench.baselines import start_falcon
from bench.edgestack import EdgeStack, scratch_stack
from bench.facts import load_average
from bench.gitwork import Workdir
from bench.procs import Processes, exit_on_signals
from bench.report import stream_rows
from bench.settings import Settings
from bench.streams import measure_streams

JS_MB = 64


def measure(settings: Settings, stack: EdgeStack, tmp: Path, procs: Processes) -> list[str]:
    """Start falcon, deploy ``bench``, and return the JS stream rows of each round."""
    bench = bench_app(settings.min_warm, settings.cold_functions)
    stack.deploy(Workdir(tmp / "work-bench"), "bench", bench, "Bench functions")
    falcon_port, _ = start_falcon(procs, settings.workers)
    lines: list[str] = []
    for round_ in range(settings.rounds):
        say(f"round {round_ + 1}: one {JS_MB} MB JS stream, then falcon's ...")
        streams = measure_streams(
            stack.runtime_port, stack.host("bench"), falcon_port, {"js": JS_MB}
        )
        lines += stream_rows(streams)
    return lines


def main() -> int:
    exit_on_signals()
    settings = Settings.from_env()
    say(f"load average at start: {load_average()}")
    with scratch_stack(settings) as (stack, tmp, procs):
        lines = measure(settings, stack, tmp, procs)
    print("\n".join(lines))
    say(f"load average at end: {load_average()}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
