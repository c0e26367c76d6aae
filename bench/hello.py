"""``python -m bench.hello``: the hello Python row of ``make bench`` alone, quickly.

Starts the platform and bare falcon as ``python -m bench`` does, deploys app
``bench`` by ``git push``, then runs ``BENCH_ROUNDS`` paired wrk rounds of
Edge's hello Python function and bare falcon, and prints each round's req/s
and the ratio Edge / falcon (medians last). For iterating on the Python hop
without the whole bench (cold starts, pushes, packages); ``BENCH_*`` settings
apply as in :mod:`bench.settings`.
"""

from __future__ import annotations

import statistics
import sys
import tempfile
from contextlib import ExitStack
from pathlib import Path

from bench.__main__ import baseline_targets, check_hello, deploy_apps, edge_targets, say
from bench.edgestack import start_edge
from bench.procs import Processes, exit_on_signals
from bench.settings import Settings
from bench.throughput import measure, warm_up


def main() -> int:
    exit_on_signals()
    settings = Settings.from_env()
    with ExitStack() as cleanup:
        tmp = Path(
            cleanup.enter_context(
                tempfile.TemporaryDirectory(prefix="edge-hello-", ignore_cleanup_errors=True)
            )
        )
        services = cleanup.enter_context(ExitStack())
        procs = cleanup.enter_context(Processes(tmp))
        stack = start_edge(tmp, settings, procs, services)
        deploy_apps(stack, tmp, settings)
        edge = next(t for t in edge_targets(stack, settings) if t.key == "edge-py")
        falcon = next(t for t in baseline_targets(procs, settings, []) if t.key == "falcon")
        check_hello([edge, falcon])
        warm_up([edge, falcon], settings)
        falcon_runs, edge_runs = measure([falcon, edge], "falcon", settings)
    for number, (f, e, ratio) in enumerate(
        zip(falcon_runs.rounds, edge_runs.rounds, edge_runs.ratios, strict=True), 1
    ):
        say(f"round {number}: falcon {f.rps:,.0f} req/s, edge-py {e.rps:,.0f} req/s, {ratio:.3f}x")
    print(
        f"edge-py / falcon: median {edge_runs.ratio:.3f}x over {settings.rounds} rounds "
        f"(falcon {falcon_runs.median('rps'):,.0f} req/s, edge-py {edge_runs.median('rps'):,.0f};"
        f" p50 {edge_runs.median('p50_ms'):.2f} ms, p99 {edge_runs.median('p99_ms'):.2f} ms;"
        f" errors {edge_runs.errors})"
    )
    print(f"ratios per round: {', '.join(f'{r:.3f}' for r in edge_runs.ratios)}")
    print(f"spread: {statistics.pstdev(edge_runs.ratios):.3f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
