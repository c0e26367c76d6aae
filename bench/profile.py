"""Where a runtime worker's CPU goes for a hello request: py-spy under wrk load.

``.venv/bin/python -m bench.profile [py|js] [instance]`` starts the platform as
``make bench`` does, deploys the bench app, puts ``wrk`` load on the hello
function, samples one runtime worker with py-spy (its own threads included) and
prints the functions with the most self time, grouped by module, as a share of
the worker's samples. It also prints the worker's CPU time per request (from
/proc, over the same window), which turns shares into microseconds. With
``instance`` (Python only) it samples one instance of the hello function
instead, and the CPU per request is that of all the worker's hello instances.
"""

from __future__ import annotations

import collections
import os
import subprocess
import sys
import tempfile
import threading
from collections.abc import Callable
from contextlib import ExitStack
from pathlib import Path

from bench.apps import bench_app
from bench.edgestack import start_edge
from bench.gitwork import Workdir
from bench.procs import Processes
from bench.settings import Settings
from bench.wrk import run_wrk

SECONDS = 8
TOP = 25


def cpu_ticks(pid: int) -> int:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return int(fields[11]) + int(fields[12])


def children(parent: int, marker: bytes = b"") -> list[int]:
    """Live children of ``parent`` whose command line contains ``marker``."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                ppid = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
                cmdline = (entry / "cmdline").read_bytes()
            except (OSError, IndexError, ValueError):
                continue
            if ppid == parent and marker in cmdline:
                found.append(int(entry.name))
    return found


def instance_groups(worker: int) -> list[list[int]]:
    """The instances of each of the worker's templates (worker -> zygote ->
    template -> instances)."""
    templates = [t for zygote in children(worker) for t in children(zygote)]
    return [children(t) for t in templates]


def busiest(groups: list[list[int]], load: Callable[[], object]) -> list[int]:
    """The group of processes that used the most CPU while ``load()`` ran."""
    before = [sum(cpu_ticks(pid) for pid in group) for group in groups]
    load()
    after = [sum(cpu_ticks(pid) for pid in group) for group in groups]
    return max(zip(after, before, groups, strict=True), key=lambda t: t[0] - t[1])[2]


def self_time(raw: str) -> collections.Counter[str]:
    """Collapsed stacks (``a;b;c count``) -> samples per innermost frame."""
    counts: collections.Counter[str] = collections.Counter()
    for line in raw.splitlines():
        stack, _, count = line.rpartition(" ")
        if stack and count.isdigit():
            frame = stack.split(";")[-1]
            counts[frame.split(" (")[0] + " " + frame[frame.find("(") :]] += int(count)
    return counts


def main() -> int:
    language = sys.argv[1] if len(sys.argv) > 1 else "py"
    instance = sys.argv[2:] == ["instance"]
    settings = Settings.from_env()
    with ExitStack() as cleanup:
        tmp = Path(cleanup.enter_context(tempfile.TemporaryDirectory(prefix="edge-prof-")))
        services = cleanup.enter_context(ExitStack())
        procs = cleanup.enter_context(Processes(tmp))
        stack = start_edge(tmp, settings, procs, services)
        stack.deploy(Workdir(tmp / "work"), "bench", bench_app(settings.min_warm, 0), "bench")
        url = f"http://127.0.0.1:{stack.runtime_port}/{language}"
        run_wrk(settings, url, stack.host("bench"), duration=2)  # warm up
        master = children(os.getpid(), b"edge.cli\0runtime")[0]
        worker = children(master)[0]
        measured = [worker]
        if instance:  # the hello function's instances: the ones the load keeps busy
            warm = lambda: run_wrk(settings, url, stack.host("bench"), duration=1)  # noqa: E731
            measured = busiest(instance_groups(worker), warm)
        sampled = measured[0]
        out = tmp / "profile.txt"
        spy = subprocess.Popen(
            [
                str(Path(sys.executable).parent / "py-spy"), "record", "--format", "raw",
                "--nonblocking", "-r", "500", "-d", str(SECONDS), "-o", str(out),
                "-p", str(sampled),
            ]
        )  # fmt: skip
        before = sum(cpu_ticks(pid) for pid in measured)
        result: list[float] = []
        load = threading.Thread(
            target=lambda: result.append(run_wrk(settings, url, stack.host("bench"), SECONDS).rps)
        )
        load.start()
        load.join()
        used = sum(cpu_ticks(pid) for pid in measured) - before
        spy.wait()
        rps = result[0]
        workers = settings.workers
        per_request_us = used / 100 / (rps * SECONDS / workers) * 1e6
        counts = self_time(out.read_text())
        total = sum(counts.values())
        side = f"instances ({len(measured)})" if instance else "worker"
        print(f"{language}: {rps:,.0f} req/s; {side} CPU {per_request_us:.0f} us per request")
        for frame, count in counts.most_common(TOP):
            share = count / total
            print(f"{share:6.1%} {share * per_request_us:7.1f} us  {frame}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
