"""``python -m bench.cpu``: CPU time per request, by process role, under wrk load.

Throughput on a shared 2-core machine swings with whatever else runs; the CPU
time each process spends per request does much less. This starts the platform
and bare falcon as ``make bench`` does, puts ``wrk`` load on each hello target
and each realistic one (:mod:`bench.realistic`) in turn, and reads from
``/proc`` how much CPU (user + system) went, per request, to: the runtime
workers, the Python function processes (zygote, templates, instances), the V8
hosts, and the bare falcon workers. It also counts the context switches per
request of the same processes.

``BENCH_ROUNDS`` rounds; each line is the median over them. ``BENCH_ONLY`` (keys
separated by commas, e.g. ``edge-py,falcon``) measures only those targets.
"""

from __future__ import annotations

import os
import resource
import statistics
import sys
from dataclasses import dataclass
from pathlib import Path

from bench.__main__ import (
    baseline_targets,
    check_hello,
    check_realistic,
    deploy_apps,
    edge_targets,
    realistic_targets,
    say,
)
from bench.baselines import start_falcon
from bench.edgestack import scratch_stack
from bench.procs import exit_on_signals
from bench.realistic import wrk_script
from bench.settings import Settings
from bench.throughput import Target
from bench.wrk import run_wrk

TICK = os.sysconf("SC_CLK_TCK")


@dataclass
class Usage:
    """CPU seconds and context switches of a set of processes."""

    cpu: float = 0.0
    switches: float = 0
    system: float = 0.0


def _stat(pid: int) -> tuple[int, float, float, str]:
    """(ppid, user and system cpu seconds, command line) of ``pid``."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
    return int(fields[1]), int(fields[11]) / TICK, int(fields[12]) / TICK, cmdline


def _switches(pid: int) -> int:
    total = 0
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if "ctxt_switches:" in line:
            total += int(line.split()[-1])
    return total


def role(cmdline: str, ppid_role: str | None) -> str | None:
    """What a process is, from its command line and its parent's role."""
    if "edge.runtime.js.host" in cmdline:
        return "v8 host"
    if "edge.runtime.python.process" in cmdline or ppid_role == "python":
        return "python"
    if "edge.cli runtime" in cmdline:  # gunicorn workers keep their master's
        return "worker" if ppid_role == "master" else "master"
    if "falcon_hello:raw" in cmdline or ppid_role == "raw asgi":
        return "raw asgi"
    if "falcon_hello" in cmdline or ppid_role == "falcon":
        return "falcon"
    return None


def usage_by_role() -> dict[str, Usage]:
    """CPU and context switches of this process's live descendants, summed per role."""
    stats: dict[int, tuple[int, float, float, str]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stats[int(entry.name)] = _stat(int(entry.name))
            except (OSError, IndexError, ValueError):
                continue
    roles: dict[int, str | None] = {}

    roles[os.getpid()] = "bench"

    def find(pid: int) -> str | None:
        if pid not in roles:
            roles[pid] = None  # not ours, unless an ancestor is this process
            ppid, _, _, cmdline = stats[pid]
            parent = find(ppid) if ppid in stats else None
            roles[pid] = role(cmdline, parent) if parent is not None else None
        return roles[pid]

    totals: dict[str, Usage] = {}
    for pid, (_, user, system, _) in stats.items():
        name = find(pid)
        if name is None:
            continue
        usage = totals.setdefault(name, Usage())
        usage.cpu += user + system
        usage.system += system
        try:
            usage.switches += _switches(pid)
        except OSError:
            continue
    return totals


def per_request(target: Target, settings: Settings) -> tuple[float, dict[str, Usage]]:
    """One wrk run: its req/s and the CPU us and switches per request of every role."""
    before = usage_by_role()
    wrk_before = resource.getrusage(resource.RUSAGE_CHILDREN)
    result = run_wrk(settings, target.url, target.host, script=target.script)
    wrk_after = resource.getrusage(resource.RUSAGE_CHILDREN)
    after = usage_by_role()
    wrk_cpu = sum(getattr(wrk_after, f) - getattr(wrk_before, f) for f in ("ru_utime", "ru_stime"))
    after["wrk"] = Usage(wrk_cpu, 0, wrk_after.ru_stime - wrk_before.ru_stime)
    requests = result.rps * settings.duration
    spent: dict[str, Usage] = {}
    for name, used in after.items():
        was = before.get(name, Usage())
        spent[name] = Usage(
            (used.cpu - was.cpu) / requests * 1e6,
            (used.switches - was.switches) / requests,
            (used.system - was.system) / requests * 1e6,
        )
    return result.rps, spent


def main() -> int:
    exit_on_signals()
    settings = Settings.from_env()
    with scratch_stack(settings) as (stack, tmp, procs):
        deploy_apps(stack, tmp, settings)
        raw_port, _ = start_falcon(procs, settings.workers, "bench.falcon_hello:raw")
        falcon = baseline_targets(procs, settings, [], workerd=False)[0]
        targets = [
            *edge_targets(stack, settings),
            falcon,
            Target("raw-asgi", "bare ASGI callable on gunicorn", raw_port),
        ]
        check_hello(targets)
        check_realistic(stack)
        targets += realistic_targets(stack, falcon, str(wrk_script(tmp)))
        only = os.environ.get("BENCH_ONLY", "").split(",")
        targets = [t for t in targets if t.key in only] if only != [""] else targets
        for target in targets:
            run_wrk(settings, target.url, target.host, settings.warmup, target.script)
        rounds: dict[str, list[tuple[float, dict[str, Usage]]]] = {t.key: [] for t in targets}
        for number in range(settings.rounds):
            for target in targets:
                say(f"  round {number + 1}: {target.key}")
                rounds[target.key].append(per_request(target, settings))
    for key, runs in rounds.items():
        rps = statistics.median(r for r, _ in runs)
        names = sorted({name for _, spent in runs for name in spent})
        parts = []
        for name in names:
            cpu = statistics.median(s.get(name, Usage()).cpu for _, s in runs)
            if cpu >= 1:
                system = statistics.median(s.get(name, Usage()).system for _, s in runs)
                switches = statistics.median(s.get(name, Usage()).switches for _, s in runs)
                parts.append(f"{name} {cpu:.0f} us (sys {system:.0f}, {switches:.1f} cs)")
        print(f"{key:12} {rps:8,.0f} req/s  " + ", ".join(parts))
    return 0


if __name__ == "__main__":
    sys.exit(main())
