"""``python -m bench``: Edge against bare falcon and Cloudflare's workerd, one table.

Starts the whole platform (embedded Redis, SQLite, control plane, runtime)
in a temporary ``EDGE_HOME``, deploys by ``git push``, starts the baselines,
then measures, in this order: throughput and latency rounds (wrk), streams,
the KV get round trip, cold starts, push-to-live. Prints one markdown table
and writes it to ``bench/results.md``. Every process started is killed with
its process group on exit, including on Ctrl-C, SIGTERM and errors.

Settings come from ``BENCH_*`` variables (see :class:`bench.settings.Settings`),
e.g. ``BENCH_DURATION=5 BENCH_ROUNDS=1 python -m bench`` for a quick look.
"""

from __future__ import annotations

import json
import sys
import tempfile
from contextlib import ExitStack
from pathlib import Path

from bench.apps import bench_app, cold_paths, live_app
from bench.baselines import Unavailable, install_workerd, start_falcon, start_workerd
from bench.client import get, post
from bench.coldstart import spaced_and_burst
from bench.edgestack import EdgeStack, node_cpu_ms, start_edge
from bench.facts import load_average, machine_facts
from bench.gitwork import Workdir
from bench.kvbench import deploy_kv, measure_kv
from bench.packages import measure_ml, measure_push_with_requirements, write_wheel
from bench.packages import rows as package_rows
from bench.procs import Processes, exit_on_signals
from bench.pushlive import measure_push
from bench.realistic import request_body, respond, wrk_script
from bench.report import TIMES, Results, footer, table
from bench.settings import Settings
from bench.streams import measure_streams
from bench.throughput import Target, measure, warm_up
from bench.wrk import wrk_command, wrk_version

RESULTS = Path(__file__).resolve().parent / "results.md"
LOG_TAIL_LINES = 30


def say(message: str) -> None:
    """Progress, on stderr: stdout carries only the table."""
    print(message, file=sys.stderr, flush=True)


def deploy_apps(stack: EdgeStack, tmp: Path, settings: Settings) -> Workdir:
    """Push app ``bench`` and the first version of app ``live``; returns live's workdir."""
    say("deploying apps bench and live by git push ...")
    stack.deploy(
        Workdir(tmp / "work-bench"),
        "bench",
        bench_app(settings.min_warm, settings.cold_functions),
        "Bench functions",
    )
    live = Workdir(tmp / "work-live")
    stack.deploy(live, "live", live_app(0), "push 0")
    return live


def edge_targets(stack: EdgeStack, settings: Settings) -> list[Target]:
    """The hello functions of app ``bench``, reached through the runtime."""
    workers = f"{settings.workers} workers"
    return [
        Target(
            "edge-py",
            f"Edge, hello Python function ({workers}, {settings.min_warm} warm instances each, "
            f"EDGE_APP_CPU_MS={node_cpu_ms()})",
            stack.runtime_port,
            "/py",
            stack.host("bench"),
        ),
        Target(
            "edge-js",
            f"Edge, hello JS function ({workers}, V8 isolate)",
            stack.runtime_port,
            "/js",
            stack.host("bench"),
        ),
    ]


def realistic_targets(stack: EdgeStack, falcon: Target, script: str) -> list[Target]:
    """The realistic work (:mod:`bench.realistic`) in bare falcon, then in Edge,
    each Edge row's ratio taken against that falcon row."""
    return [
        Target(
            "falcon-real",
            f"falcon, realistic (2 KB JSON in, 10 KB out), {falcon.label}",
            falcon.port,
            "/real",
            script=script,
        ),
        Target(
            "edge-real-py",
            "Edge, realistic Python function (ratio against falcon doing the same work; "
            f"app CPU quota EDGE_APP_CPU_MS={node_cpu_ms()})",
            stack.runtime_port,
            "/real/py",
            stack.host("bench"),
            script=script,
            baseline="falcon-real",
        ),
        Target(
            "edge-real-js",
            "Edge, realistic JS function (ratio against falcon doing the same work)",
            stack.runtime_port,
            "/real/js",
            stack.host("bench"),
            script=script,
            baseline="falcon-real",
        ),
    ]


def baseline_targets(
    procs: Processes, settings: Settings, unavailable: list[str], *, workerd: bool = True
) -> list[Target]:
    """Bare falcon, and workerd (if asked) unless it cannot be installed or started."""
    say("starting bare falcon" + (" and workerd ..." if workerd else " ..."))
    port, start_ms = start_falcon(procs, settings.workers)
    targets = [
        Target(
            "falcon",
            f"falcon ASGI + gunicorn `-k asgi` (uvloop) {TIMES}{settings.workers}",
            port,
            start_ms=start_ms,
        )
    ]
    if not workerd:
        return targets
    try:
        binary, _ = install_workerd()
        port, start_ms = start_workerd(procs, binary, settings.workers)
    except (Unavailable, RuntimeError) as exc:
        unavailable.append(str(exc))
        return targets
    targets.append(
        Target(
            "workerd",
            f"Cloudflare workerd {TIMES}{settings.workers} (SO_REUSEPORT, one socket each)",
            port,
            start_ms=start_ms,
        )
    )
    return targets


def check_hello(targets: list[Target]) -> None:
    """Every system answers ``hello world`` before any load is put on it."""
    for target in targets:
        reply = get(target.port, target.path, host=target.host)
        if reply.status != 200 or reply.body != b"hello world":
            raise RuntimeError(f"{target.key} answered {reply.status}: {reply.body[:300]!r}")


def check_realistic(stack: EdgeStack) -> None:
    """Both realistic functions give the answer bare falcon would, before any load."""
    expected = respond(json.loads(request_body()))
    for path in ("/real/py", "/real/js"):
        reply = post(stack.runtime_port, path, request_body(), host=stack.host("bench"))
        if reply.status != 200 or json.loads(reply.body) != expected:
            raise RuntimeError(f"{path} answered {reply.status}: {reply.body[:300]!r}")


def run(settings: Settings, tmp: Path, procs: Processes, services: ExitStack) -> Results:
    """Start everything, then measure throughput, cold starts and push-to-live."""
    say(f"starting Edge (platform + runtime, {settings.workers} workers) in {tmp} ...")
    stack = start_edge(tmp, settings, procs, services)
    live = deploy_apps(stack, tmp, settings)
    unavailable: list[str] = []
    targets = edge_targets(stack, settings) + baseline_targets(procs, settings, unavailable)
    check_hello(targets)
    check_realistic(stack)
    falcon = next(t for t in targets if t.key == "falcon")
    targets += realistic_targets(stack, falcon, str(wrk_script(tmp)))
    baseline = "workerd" if any(t.key == "workerd" for t in targets) else "falcon"
    say(
        f"warming up ({settings.warmup}s each), then {settings.rounds} rounds of "
        f"{settings.duration}s per system ..."
    )
    warm_up(targets, settings)
    throughput = measure(targets, baseline, settings)
    say("streams: one download and 200 first chunks per language, Edge and bare falcon ...")
    falcon = next(t for t in targets if t.key == "falcon")
    streams = measure_streams(
        stack.runtime_port, stack.host("bench"), falcon.port, {"py": 256, "js": 64}
    )
    say(f"KV get round trip: {settings.kv_requests} warm requests per function ...")
    deploy_kv(stack, Workdir(tmp / "work-kvbench"))
    kv = measure_kv(stack, settings.kv_requests)
    say(
        f"cold starts: {settings.cold_passes} passes over {settings.cold_functions} "
        f"functions per language, {settings.cold_gap:g} s apart, then back to back ..."
    )
    cold = spaced_and_burst(
        stack.runtime_port,
        stack.host("bench"),
        {
            "Python": cold_paths("py", settings.cold_functions),
            "JS": cold_paths("js", settings.cold_functions),
        },
        settings.cold_passes,
        settings.idle_ttl,
        settings.cold_gap,
    )
    say(f"push-to-live: {settings.pushes} pushes ...")
    push = measure_push(stack, live, settings.pushes)
    say("python packages: push-to-live with requirements.txt, the ML example ...")
    write_wheel(tmp / "wheels")
    with_requirements = measure_push_with_requirements(stack, tmp, settings.pushes)
    ml = measure_ml(stack, tmp, settings)
    extra = package_rows(with_requirements, ml)
    return Results(baseline, throughput, unavailable, cold, push, streams, extra, kv)


def dump_logs(folder: Path) -> None:
    """The tail of every server log, for when a run fails (the folder is about to go)."""
    for log in sorted(folder.rglob("*.log")):
        lines = log.read_text(errors="replace").splitlines()[-LOG_TAIL_LINES:]
        if lines:
            say(f"--- {log.name} (last {len(lines)} lines) ---\n" + "\n".join(lines))


def measure_all(settings: Settings) -> Results:
    """:func:`run` inside a temporary folder, with every process stopped afterwards."""
    with ExitStack() as cleanup:
        tmp = Path(
            cleanup.enter_context(
                tempfile.TemporaryDirectory(prefix="edge-bench-", ignore_cleanup_errors=True)
            )
        )
        services = cleanup.enter_context(ExitStack())  # closed after the processes
        procs = cleanup.enter_context(Processes(tmp))
        try:
            return run(settings, tmp, procs, services)
        except Exception:
            dump_logs(tmp)
            raise


def main() -> int:
    exit_on_signals()
    settings = Settings.from_env()
    facts = machine_facts(wrk=wrk_version())
    results = measure_all(settings)
    facts["load average at end"] = load_average()
    facts["workerd"] = "unavailable" if results.unavailable else install_workerd()[1]
    command = " ".join(filter(None, [settings.overrides(), "make bench"]))
    load = " ".join(wrk_command(settings, settings.duration, "URL")[:-2])
    text = table(results) + "\n\n" + footer(command, load, facts) + "\n"
    print("\n" + text)
    RESULTS.write_text(text)
    say(f"written to {RESULTS}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
