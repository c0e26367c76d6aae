"""``python -m bench.quick``: only the hello and realistic throughput rows, for A/B work.

Starts the platform and bare falcon as ``make bench`` does, then runs
``BENCH_ROUNDS`` rounds of wrk over hello Python, hello JS, bare falcon and the
realistic rows, with each row's ratio taken inside its round (no workerd, no
cold starts, streams or pushes). Prints one line per round and the medians.
``BENCH_ONLY=key,key`` measures only those rows (with bare falcon and their
baselines).
"""

from __future__ import annotations

import os
import sys

from bench.__main__ import (
    baseline_targets,
    check_hello,
    check_realistic,
    deploy_apps,
    edge_targets,
    realistic_targets,
    say,
)
from bench.edgestack import scratch_stack
from bench.procs import exit_on_signals
from bench.realistic import wrk_script
from bench.settings import Settings
from bench.throughput import measure, warm_up


def main() -> int:
    exit_on_signals()
    settings = Settings.from_env()
    with scratch_stack(settings) as (stack, tmp, procs):
        deploy_apps(stack, tmp, settings)
        targets = edge_targets(stack, settings)
        falcon = baseline_targets(procs, settings, [], workerd=False)[0]
        targets.append(falcon)
        check_hello(targets)
        check_realistic(stack)
        targets += realistic_targets(stack, falcon, str(wrk_script(tmp)))
        only = [key for key in os.environ.get("BENCH_ONLY", "").split(",") if key]
        if only:  # the rows asked for, with bare falcon and their baselines
            keep = {"falcon", *only, *(t.baseline for t in targets if t.key in only)}
            targets = [t for t in targets if t.key in keep]
        warm_up(targets, settings)
        results = measure(targets, "falcon", settings)
    say("")
    for measured in results:
        ratios = " / ".join(f"{r:.2f}" for r in measured.ratios)
        print(
            f"{measured.target.key:14} {measured.median('rps'):8,.0f} req/s  "
            f"{measured.ratio:.2f}x (rounds {ratios})  p99 {measured.median('p99_ms'):.1f} ms  "
            f"errors {measured.errors}"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
