"""Control groups of Python function processes: track every process, kill them all.

A function that forks, calls ``setsid()`` and forks again leaves a daemon no
process group, session or parent-death signal reaches, and a thread left
spinning after its response keeps a CPU busy. Control groups follow every
process a function makes, whatever it does, and the kernel enforces their
limits. The layout, in every hierarchy used (v2: one; v1: memory, pids, cpu,
cpuacct, freezer)::

    <root>/edge-<uid block>/          this install (named from its uid block,
                                      so two installs never share one)
        app-<uid>/                    one app on this node: CPU quota, pids.max
            w<worker>-<n>-<version>/  one function version in one worker: the
                                      template, its instances and everything
                                      they fork; the memory backstop

The worker creates a version's group before it asks the zygote for the
template, and the zygote moves the forked template into it before the
template runs anything (the spec's ``cgroups``), so no function code ever runs
outside it. Pool close, release retire and worker stop kill the group (v2:
``cgroup.kill``; v1: freeze, SIGKILL every pid, thaw, until empty, as runc
and the kernel's freezer documentation describe) and remove it; runtime start
and stop sweep the whole install's tree (:meth:`Cgroups.sweep`).

Without usable cgroups (not root, no writable hierarchy with the controllers,
or ``EDGE_CGROUP_ROOT`` pointing elsewhere) there are no groups: rlimits still
hold, and the sweep kills every process running as a uid of the install's
block instead.

APPSEC: cgroup files are root's; a function's uid can neither write
``cgroup.procs`` to leave its group nor raise a limit.
"""

from __future__ import annotations

import abc
import contextlib
import hashlib
import itertools
import logging
import os
import signal
import time
from dataclasses import dataclass
from pathlib import Path

from edge.uids import BLOCK

logger = logging.getLogger(__name__)

PERIOD_US = 100_000  # the CFS period the CPU quota is expressed in (100 ms)
PROCESS_MB = 64  # memory backstop headroom per process: the interpreter's own pages
KILL_WAIT_S = 2.0
V1_CONTROLLERS = ("memory", "pids", "cpu", "cpuacct", "freezer")
V2_CONTROLLERS = ("cpu", "memory", "pids")


@dataclass(frozen=True)
class AppLimits:
    """What every app gets on this node, all its functions and workers together.

    Attributes:
        cpu_ms: CPU time per 100 ms period (``EDGE_APP_CPU_MS``; 100 = one CPU).
        pids: processes and threads (``EDGE_APP_PIDS``).
    """

    cpu_ms: int = 100
    pids: int = 256


class Hierarchy(abc.ABC):
    """The cgroup files of one host, v1 or v2; ``rel`` is a group's path below the root."""

    @abc.abstractmethod
    def dirs(self, rel: str) -> list[Path]:
        """The group's folder in every hierarchy used (v2: one)."""

    def create(self, rel: str) -> None:
        for path in self.dirs(rel):
            path.mkdir(parents=True, exist_ok=True)

    @abc.abstractmethod
    def limit_app(self, rel: str, limits: AppLimits) -> None:
        """Set an app group's CPU quota and pids limit."""

    @abc.abstractmethod
    def limit_memory(self, rel: str, limit: int) -> None:
        """Set a version group's memory limit, in bytes."""

    def procs_files(self, rel: str) -> list[str]:
        return [str(path / "cgroup.procs") for path in self.dirs(rel)]

    def pids(self, rel: str) -> set[int]:
        found: set[int] = set()
        for path in self.dirs(rel):
            found |= _read_pids(path / "cgroup.procs")
        return found

    @abc.abstractmethod
    def kill(self, rel: str) -> bool:
        """SIGKILL every process in the group; True once it is empty."""

    @abc.abstractmethod
    def memory_peak_file(self, rel: str) -> Path:
        """The file holding the peak (v2 before 5.19: current) memory charged to
        the group, in bytes."""

    def memory_peak_kb(self, rel: str) -> int:
        """The peak (v2 before 5.19: current) memory charged to the group."""
        return _read_int(self.memory_peak_file(rel)) // 1024

    @abc.abstractmethod
    def cpu_usage_ns(self, rel: str) -> int:
        """CPU time the group's processes used so far."""

    @abc.abstractmethod
    def oom_kills(self, rel: str) -> int:
        """Processes the kernel killed for the group's memory limit so far."""


class V2(Hierarchy):
    """The unified hierarchy mounted at ``root`` (with cpu, memory and pids)."""

    def __init__(self, root: Path) -> None:
        self.root = root

    def dirs(self, rel: str) -> list[Path]:
        return [self.root / rel]

    def create(self, rel: str) -> None:
        # Children get controllers only if every ancestor enables them for its subtree.
        path = self.root / rel
        for parent in reversed(path.relative_to(self.root).parents):
            folder = self.root / parent
            folder.mkdir(exist_ok=True)
            there = set(_read(folder / "cgroup.controllers").split())
            wanted = [f"+{name}" for name in V2_CONTROLLERS if name in there]
            if wanted:
                _write(folder / "cgroup.subtree_control", " ".join(wanted))
        path.mkdir(exist_ok=True)

    def limit_app(self, rel: str, limits: AppLimits) -> None:
        _write(self.root / rel / "cpu.max", f"{limits.cpu_ms * 1000} {PERIOD_US}")
        _write(self.root / rel / "pids.max", str(limits.pids))

    def limit_memory(self, rel: str, limit: int) -> None:
        _write(self.root / rel / "memory.max", str(limit))

    def kill(self, rel: str) -> bool:
        path = self.root / rel
        if not (path / "cgroup.kill").exists():
            return self.freeze_kill(rel)  # before Linux 5.14
        _write(path / "cgroup.kill", "1")
        return _until(lambda: not self.pids(rel))

    def freeze_kill(self, rel: str) -> bool:
        """Freeze, SIGKILL every pid, thaw, until empty (what ``cgroup.kill`` does at once)."""
        path = self.root / rel
        deadline = time.monotonic() + KILL_WAIT_S
        while self.pids(rel) and time.monotonic() < deadline:
            _write(path / "cgroup.freeze", "1")
            _until(lambda: _stat(path / "cgroup.events", "frozen") == 1, 0.5)
            _kill_all(self.pids(rel))
            _write(path / "cgroup.freeze", "0")
            _until(lambda: not self.pids(rel), 0.2)
        return not self.pids(rel)

    def memory_peak_file(self, rel: str) -> Path:
        path = self.root / rel
        peak = path / "memory.peak"  # Linux 5.19+
        return peak if peak.exists() else path / "memory.current"

    def cpu_usage_ns(self, rel: str) -> int:
        return _stat(self.root / rel / "cpu.stat", "usage_usec") * 1000

    def oom_kills(self, rel: str) -> int:
        return _stat(self.root / rel / "memory.events", "oom_kill")


class V1(Hierarchy):
    """Separate hierarchies per controller (``root/<controller>``)."""

    def __init__(self, root: Path) -> None:
        self.mounts = {name: root / name for name in V1_CONTROLLERS}

    def dirs(self, rel: str) -> list[Path]:
        unique = {path.resolve(): path for path in self.mounts.values()}  # cpu,cpuacct co-mounted
        return [path / rel for path in unique.values()]

    def limit_app(self, rel: str, limits: AppLimits) -> None:
        cpu = self.mounts["cpu"] / rel
        _write(cpu / "cpu.cfs_period_us", str(PERIOD_US))
        _write(cpu / "cpu.cfs_quota_us", str(limits.cpu_ms * 1000))
        _write(self.mounts["pids"] / rel / "pids.max", str(limits.pids))

    def limit_memory(self, rel: str, limit: int) -> None:
        _write(self.mounts["memory"] / rel / "memory.limit_in_bytes", str(limit))

    def kill(self, rel: str) -> bool:
        # A frozen process cannot fork, so the pid list cannot grow while we kill;
        # SIGKILL takes effect once thawed. Repeat for what joined meanwhile.
        freezer = self.mounts["freezer"] / rel / "freezer.state"
        deadline = time.monotonic() + KILL_WAIT_S
        while self.pids(rel) and time.monotonic() < deadline:
            _write(freezer, "FROZEN")
            _until(lambda: _read(freezer) != "FREEZING", 0.5)
            _kill_all(self.pids(rel))
            _write(freezer, "THAWED")
            _until(lambda: not self.pids(rel), 0.2)
        return not self.pids(rel)

    def memory_peak_file(self, rel: str) -> Path:
        return self.mounts["memory"] / rel / "memory.max_usage_in_bytes"

    def cpu_usage_ns(self, rel: str) -> int:
        return _read_int(self.mounts["cpuacct"] / rel / "cpuacct.usage")

    def oom_kills(self, rel: str) -> int:
        return _stat(self.mounts["memory"] / rel / "memory.oom_control", "oom_kill")


def detect(root: Path) -> Hierarchy | None:
    """The usable hierarchy below ``root`` (e.g. ``/sys/fs/cgroup``), or None.

    v2 at ``root`` (a v2-only host), else v1 controllers, else v2 at
    ``root/unified`` (a hybrid host) when it has the controllers.
    """
    if os.geteuid() != 0:
        return None
    if _v2_usable(root):
        return V2(root)
    if all(os.access(root / name / "cgroup.procs", os.W_OK) for name in V1_CONTROLLERS):
        return V1(root)
    if _v2_usable(root / "unified"):
        return V2(root / "unified")
    return None


def _v2_usable(root: Path) -> bool:
    try:
        controllers = (root / "cgroup.controllers").read_text().split()
    except OSError:
        return False
    return set(V2_CONTROLLERS) <= set(controllers) and os.access(root, os.W_OK)


class Group:
    """One function version's group in one worker."""

    def __init__(self, hierarchy: Hierarchy, rel: str) -> None:
        self.hierarchy = hierarchy
        self.rel = rel
        self._peak_fd = -1  # kept open: the pool samples the peak every few requests

    @property
    def procs_files(self) -> list[str]:
        """The ``cgroup.procs`` files a process writes its pid to, to join."""
        return self.hierarchy.procs_files(self.rel)

    def pids(self) -> set[int]:
        return self.hierarchy.pids(self.rel)

    def kill(self) -> None:
        """SIGKILL every process in the group (whatever sessions they made)."""
        with contextlib.suppress(OSError):
            if not self.hierarchy.kill(self.rel):
                logger.warning("cgroup %s: processes survived the kill", self.rel)

    def remove(self) -> None:
        """Kill what is left and remove the group."""
        if self._peak_fd >= 0:
            os.close(self._peak_fd)
            self._peak_fd = -1
        self.kill()
        for path in self.hierarchy.dirs(self.rel):
            with contextlib.suppress(OSError):
                path.rmdir()

    def memory_peak_kb(self) -> int:
        """The peak memory charged to the group (every process, shared memory too):
        one ``pread`` of the file opened on the first call: ~1 us, against ~15 us
        for a path lookup, open, read and close (measured on cgroup v1)."""
        with contextlib.suppress(OSError, ValueError):
            if self._peak_fd < 0:
                path = self.hierarchy.memory_peak_file(self.rel)
                self._peak_fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
            return int(os.pread(self._peak_fd, 64, 0)) // 1024
        return 0

    def cpu_usage_ns(self) -> int:
        """CPU time used by every process of the group so far."""
        return self.hierarchy.cpu_usage_ns(self.rel)

    def oom_kills(self) -> int:
        """Processes the kernel killed for the group's memory limit so far."""
        with contextlib.suppress(OSError, ValueError):
            return self.hierarchy.oom_kills(self.rel)
        return 0


class Cgroups:
    """This install's groups on this node; without a hierarchy, the uid fallback.

    Args:
        hierarchy: what :func:`detect` found, or None.
        uid_base: the install's block of function uids (:mod:`edge.uids`).
        limits: every app's CPU quota and pids limit.
    """

    def __init__(self, hierarchy: Hierarchy | None, uid_base: int, limits: AppLimits) -> None:
        self.hierarchy = hierarchy
        self.uid_base = uid_base
        self.limits = limits
        self.install = f"edge-{uid_base}"
        self._serial = itertools.count(1)

    @classmethod
    def for_host(cls, root: Path, uid_base: int, limits: AppLimits) -> Cgroups:
        """Detect the hierarchy below ``root``."""
        return cls(detect(root), uid_base, limits)

    def version_group(self, uid: int, key: str, memory_mb: int, processes: int) -> Group | None:
        """Create the group of a function version in this worker (None: no cgroups).

        The app's group gets the CPU quota and pids limit; the version's group a
        memory backstop of ``processes * (memory_mb + PROCESS_MB)``: RLIMIT_DATA
        bounds each process's heap, this bounds what it misses (shared memory,
        page cache, forked helpers).
        """
        if self.hierarchy is None:
            return None
        app = f"{self.install}/app-{uid}"
        self.hierarchy.create(app)
        self.hierarchy.limit_app(app, self.limits)
        digest = hashlib.sha256(key.encode()).hexdigest()[:16]
        rel = f"{app}/w{os.getpid()}-{next(self._serial)}-{digest}"
        self.hierarchy.create(rel)
        self.hierarchy.limit_memory(rel, processes * (memory_mb + PROCESS_MB) << 20)
        return Group(self.hierarchy, rel)

    def sweep(self) -> None:
        """Kill every function process of this install and remove its groups.

        Run when the runtime starts (leftovers of a crash) and stops. Without
        cgroups, kills every process of the install's function uids instead.
        """
        if self.hierarchy is None:
            if os.geteuid() == 0:  # else functions run as the platform user: no uid to kill
                kill_uids(self.uid_base, self.uid_base + BLOCK)
            return
        for top in self.hierarchy.dirs(self.install):
            for path in sorted(top.glob("**/"), key=lambda p: len(p.parts), reverse=True):
                rel = str(path.relative_to(top.parent))
                Group(self.hierarchy, rel).remove()

    def sweep_dead_workers(self) -> None:
        """Kill the groups of this install's workers that are gone.

        A worker that was SIGKILLed (or crashed) removed nothing; the master
        starts a new one in its place, which calls this.
        """
        if self.hierarchy is None:
            return
        top = self.hierarchy.dirs(self.install)[0]
        for path in top.glob("app-*/w*-*"):
            worker = path.name[1:].split("-")[0]
            if worker.isdigit() and not os.path.exists(f"/proc/{worker}"):
                Group(self.hierarchy, str(path.relative_to(top.parent))).remove()


def kill_uids(low: int, high: int) -> None:
    """SIGKILL every process whose real uid is in ``[low, high)``, until none is left."""
    deadline = time.monotonic() + KILL_WAIT_S
    while (pids := _pids_of_uids(low, high)) and time.monotonic() < deadline:
        _kill_all(pids)
        time.sleep(0.01)


def _pids_of_uids(low: int, high: int) -> set[int]:
    found = set()
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        with contextlib.suppress(OSError, ValueError, IndexError):
            status = (entry / "status").read_text()
            uid = int(status.split("\nUid:", 1)[1].split()[0])
            zombie = "\nState:\tZ" in status
            if low <= uid < high and not zombie:
                found.add(int(entry.name))
    return found


def _kill_all(pids: set[int]) -> None:
    for pid in pids:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.kill(pid, signal.SIGKILL)


def _until(condition: object, timeout: float = KILL_WAIT_S) -> bool:
    assert callable(condition)
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.002)
    return True


def _write(path: Path, value: str) -> None:
    with open(path, "w") as file:
        file.write(value)


def _read(path: Path) -> str:
    return path.read_text().strip()


def _read_int(path: Path) -> int:
    return int(_read(path))


def _read_pids(path: Path) -> set[int]:
    try:
        return {int(line) for line in path.read_text().split()}
    except OSError:
        return set()


def _stat(path: Path, key: str) -> int:
    """A ``key value`` line of a cgroup stat file; 0 when absent."""
    with contextlib.suppress(OSError):
        for line in path.read_text().splitlines():
            name, _, value = line.partition(" ")
            if name == key:
                return int(value)
    return 0
