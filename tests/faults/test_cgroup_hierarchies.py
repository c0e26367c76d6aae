"""Both cgroup hierarchies kill a process tree that left its session: v1 and v2.

The pools use whichever one :func:`edge.runtime.python.cgroups.detect` finds;
here each hierarchy this machine has is driven directly (v2's controllers may
be elsewhere, as on a hybrid host: killing needs none of them).
"""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from pathlib import Path

import pytest
from function_harness import alive
from stack import wait_for

from edge.runtime.python.cgroups import V1, V1_CONTROLLERS, V2, Group, Hierarchy

ROOT = Path("/sys/fs/cgroup")
DAEMONIZE = """
import os, sys, time
sys.stdin.readline()
r, w = os.pipe()
if os.fork() == 0:
    os.setsid()
    if os.fork() == 0:
        os.write(w, str(os.getpid()).encode())
        while True:
            time.sleep(1)
    os._exit(0)
print(os.read(r, 32).decode(), flush=True)
while True:
    time.sleep(1)
"""


def hierarchies() -> list[pytest.ParameterSet]:
    v1 = all(os.access(ROOT / name / "cgroup.procs", os.W_OK) for name in V1_CONTROLLERS)
    v2 = next((p for p in (ROOT, ROOT / "unified") if (p / "cgroup.controllers").exists()), None)
    root = os.geteuid() == 0
    return [
        pytest.param(
            lambda: V1(ROOT), id="v1", marks=pytest.mark.skipif(not (root and v1), reason="no v1")
        ),
        pytest.param(
            lambda: V2(v2 or ROOT),
            id="v2",
            marks=pytest.mark.skipif(not (root and v2), reason="no v2"),
        ),
        pytest.param(
            lambda: OldV2(v2 or ROOT),
            id="v2-freeze",
            marks=pytest.mark.skipif(not (root and v2), reason="no v2"),
        ),
    ]


class OldV2(V2):
    """v2 as on a kernel before 5.14, which has no ``cgroup.kill``."""

    def kill(self, rel: str) -> bool:
        return self.freeze_kill(rel)


@pytest.mark.parametrize("make", hierarchies())
def test_the_group_kills_a_setsid_daemon_and_goes(make: object) -> None:
    assert callable(make)
    hierarchy: Hierarchy = make()
    rel = f"edge-test-{uuid.uuid4().hex[:8]}/app-1/w1-1-version"
    hierarchy.create(rel)
    group = Group(hierarchy, rel)
    daemon = 0
    with subprocess.Popen(
        [sys.executable, "-c", DAEMONIZE], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
    ) as proc:
        try:
            daemon = start(proc, group)
            assert os.getsid(daemon) != os.getsid(proc.pid)  # its own session: killpg misses it
            assert group.pids() == {proc.pid, daemon}
            group.remove()
            wait_for(lambda: not alive(daemon), message="the daemon to die")
            assert proc.wait(timeout=5) == -9
            assert not any(Path(path).parent.exists() for path in group.procs_files)
        finally:
            proc.kill()
            if daemon and alive(daemon):
                os.kill(daemon, 9)
            remove_tree(hierarchy, rel.split("/", maxsplit=1)[0])


def start(proc: subprocess.Popen[str], group: Group) -> int:
    """Put ``proc`` in the group, let it daemonize; returns the daemon's pid."""
    assert proc.stdin is not None and proc.stdout is not None
    for path in group.procs_files:
        Path(path).write_text(str(proc.pid))
    proc.stdin.write("go\n")
    proc.stdin.flush()
    return int(proc.stdout.readline())


def remove_tree(hierarchy: Hierarchy, top: str) -> None:
    for path in hierarchy.dirs(top):
        for folder in sorted(path.glob("**"), key=lambda p: len(p.parts), reverse=True):
            folder.rmdir()
