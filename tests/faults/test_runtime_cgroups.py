"""A function's daemon does not outlive the runtime: a real stack, stopped and crashed.

A function forks, calls ``setsid()`` and forks again: the daemon is in no
process group, session or parent the runtime kills. It must die when the
runtime stops (its worker removes the version's cgroup, the master sweeps the
install); one left by a SIGKILLed worker, when the worker's replacement
starts; one left by a crashed runtime, when the next one starts. Without
cgroups (``EDGE_CGROUP_ROOT`` pointing at no mount) the sweep kills the
install's function uids instead.
"""

from __future__ import annotations

import os
import shutil
import signal
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from function_harness import alive
from stack import Stack, Workdir, make_stack, wait_for

from edge.redisserver import RedisServer
from edge.runtime.python.cgroups import detect
from edge.uids import reserve_base

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="function uids need a root platform")

APP = "daemons-" + uuid.uuid4().hex[:6]
MANIFEST = f"""
app = "{APP}"

[functions.daemon]
entry = "functions/daemon.py"
routes = ["/daemon"]
"""
DAEMON = """
import os, time

def handle(request):
    r, w = os.pipe()
    child = os.fork()
    if child == 0:
        os.setsid()
        if os.fork() == 0:
            os.write(w, str(os.getpid()).encode())
            while True:
                time.sleep(1)
        os._exit(0)
    os.waitpid(child, 0)
    return {"daemon": int(os.read(r, 32))}
"""


@pytest.fixture
def make(tmp_path: Path) -> Iterator[object]:
    """Builds a stack (platform + runtime) with the app deployed; closes it after."""
    folders: list[Path] = []
    stacks: list[Stack] = []
    redis = RedisServer(tmp_path / "redis.sock", tmp_path / "redis")
    redis.start()

    def build(**settings: str) -> Stack:
        # Below a folder every uid may traverse, as `edge up` lays EDGE_HOME out.
        base = Path(tempfile.mkdtemp(prefix="edge-daemons-"))
        os.chmod(base, 0o711)
        folders.append(base)
        home = base / "home"
        stack = make_stack(base, f"sqlite:///{home / 'edge.db'}", redis.url, **settings)
        os.chmod(home, 0o711)
        stacks.append(stack)
        stack.start("platform")
        stack.start("runtime")
        work = Workdir(tmp_path / f"app-{len(stacks)}")
        work.commit("daemon", {"edge.toml": MANIFEST, "functions/daemon.py": DAEMON})
        out = work.push(stack.remote(APP))
        assert "v1 live at" in out.stderr, out.stderr
        return stack

    yield build
    for stack in stacks:
        stack.close()
    redis.stop()
    for base in folders:
        shutil.rmtree(base, ignore_errors=True)


def start_daemon(stack: Stack) -> int:
    response = stack.get(stack.host(APP), "/daemon")
    assert response.status_code == 200, response.text
    pid = int(response.json()["daemon"])
    assert alive(pid)
    return pid


def cgroups_of(pid: int) -> str:
    return Path(f"/proc/{pid}/cgroup").read_text()


@pytest.mark.skipif(detect(Path("/sys/fs/cgroup")) is None, reason="no writable cgroups")
def test_a_daemon_dies_when_the_runtime_stops_its_worker_dies_or_after_a_crash(
    make: object,
) -> None:
    assert callable(make)
    stack = make()
    daemon = start_daemon(stack)
    try:
        assert f"edge-{reserve_base(stack.home)}/" in cgroups_of(daemon)
        stack.stop("runtime")
        wait_for(lambda: not alive(daemon), timeout=10, message="the daemon to die")

        stack.start("runtime")
        daemon = start_daemon(stack)
        worker = int(cgroups_of(daemon).split("/w", 1)[1].split("-", 1)[0])
        os.kill(worker, signal.SIGKILL)  # the worker's replacement sweeps its groups
        wait_for(lambda: not alive(daemon), timeout=30, message="the dead worker's daemon to die")

        daemon = start_daemon(stack)
        stack.stop("runtime", signal.SIGKILL)  # the master and its process group: a crash
        assert alive(daemon)  # nothing of the runtime is left to kill it
        stack.start("runtime")  # the new runtime sweeps its install's groups
        wait_for(lambda: not alive(daemon), timeout=10, message="the stale daemon to die")
    finally:
        if alive(daemon):
            os.kill(daemon, signal.SIGKILL)


def test_without_cgroups_a_daemon_dies_by_uid_when_the_runtime_stops(
    make: object, tmp_path: Path
) -> None:
    assert callable(make)
    stack = make(EDGE_CGROUP_ROOT=str(tmp_path / "no-cgroup-mount"))
    daemon = start_daemon(stack)
    try:
        assert "edge-" not in cgroups_of(daemon)
        stack.stop("runtime")
        wait_for(lambda: not alive(daemon), timeout=10, message="the daemon to die")
    finally:
        if alive(daemon):
            os.kill(daemon, signal.SIGKILL)
