"""The sandbox of function processes: environment, ids, rlimits, fds.

Everything here runs inside the zygote or its forked children (templates and
instances), except :func:`zygote_env` (used by the worker to exec the zygote).

What holds, by how the platform runs:

* **As root** (production): each template drops to its app's own uid/gid
  (:func:`edge.uids.function_ids`) before it imports any function code, with no
  supplementary groups, ``PR_SET_NO_NEW_PRIVS`` and non-dumpable. So a
  function cannot read other apps' release folders (the exporter makes them
  readable by their app's group only) nor the platform's files that are not
  world-readable, cannot signal or ptrace the worker or other apps, and
  ``RLIMIT_NPROC`` (counted per uid, ignored for root) caps a fork bomb at
  ``Limits.nproc`` processes for the whole app.
* **Not root** (development): functions run with the platform's own uid. The
  environment scrub, fd closing, ``RLIMIT_DATA``/``CORE``/``NOFILE`` and the
  timeout still hold, but there is no uid separation: a function can read
  whatever the platform user can read (though not its env: it was never
  inherited) and could signal the platform's processes. ``RLIMIT_NPROC`` is
  not applied, because it would count every process and thread of the
  platform user; a fork bomb is then bounded only by that user's own limit.

APPSEC: all decisions tagged below are the trust boundary between the
platform and untrusted function code.
"""

from __future__ import annotations

import ctypes
import functools
import os
import resource
import signal
import sys
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

# APPSEC: the only variables of the worker the zygote may inherit: what the
# interpreter needs to start and import ``edge``. Never EDGE_*, tokens, etc.
ZYGOTE_ENV_KEYS = ("PATH", "LANG", "LC_ALL", "LC_CTYPE", "TZ", "PYTHONPATH", "PYTHONHOME")

_PR_SET_PDEATHSIG = 1
_PR_SET_DUMPABLE = 4
_PR_SET_CHILD_SUBREAPER = 36
_PR_SET_NO_NEW_PRIVS = 38
_MIB = 1024 * 1024


@dataclass(frozen=True)
class Limits:
    """Per-process limits of function processes besides memory and time.

    Attributes:
        nofile: ``RLIMIT_NOFILE``: open files per process.
        nproc: ``RLIMIT_NPROC``: processes (and threads) per app uid, across
            all of the app's templates and instances on this machine; only
            applied with uid separation (root).
    """

    nofile: int = 256
    nproc: int = 256


class SandboxError(Exception):
    """The sandbox of a function process could not be set up."""


def zygote_env(
    environ: Mapping[str, str], import_root: Path | None = None, extra: Iterable[Path] = ()
) -> dict[str, str]:
    """The scrubbed environment the zygote is exec'ed with.

    APPSEC: ``/proc/<pid>/environ`` of every forked function process shows
    this exec-time environment, so it must hold nothing secret.

    Args:
        environ: the worker's environment.
        import_root: a folder to put first on ``PYTHONPATH`` (the one holding
            the ``edge`` package), so the zygote imports the same code.
        extra: folders to put after it (the zygote runs without ``site``).
    """
    env = {key: environ[key] for key in ZYGOTE_ENV_KEYS if key in environ}
    if import_root is not None:
        parts = [
            str(import_root),
            *map(str, extra),
            *filter(None, env.get("PYTHONPATH", "").split(os.pathsep)),
        ]
        env["PYTHONPATH"] = os.pathsep.join(dict.fromkeys(parts))
    env.setdefault("PATH", os.defpath)
    return env


def privileged() -> bool:
    """Whether uid separation is possible (the process is root)."""
    return os.geteuid() == 0


def status_kb(field: str, pid: int | str = "self") -> int:
    """A ``kB`` field (e.g. ``VmData``) of ``/proc/<pid>/status``; 0 if missing."""
    prefix = field + ":"
    with open(f"/proc/{pid}/status", encoding="ascii") as status:
        for line in status:
            if line.startswith(prefix):
                return int(line.split()[1])
    return 0


def limit_memory(memory_mb: int) -> int:
    """Cap this process's data segment at its current size plus ``memory_mb`` MiB.

    APPSEC: ``RLIMIT_DATA`` covers heap and private anonymous mappings, so a
    memory bomb gets a clean ``MemoryError`` instead of the machine's OOM
    killer. Soft and hard limits are equal: the function cannot raise them.

    Returns:
        The limit in bytes.
    """
    limit = status_kb("VmData") * 1024 + memory_mb * _MIB
    resource.setrlimit(resource.RLIMIT_DATA, (limit, limit))
    return limit


def limit_resources(limits: Limits, *, separate_uid: bool) -> None:
    """No core dumps, bounded open files, and (with uid separation) processes.

    APPSEC: cores could leak request data to disk; NOFILE bounds fd
    exhaustion; NPROC contains fork bombs (ignored for root, hence only with a
    dropped uid).
    """
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
    resource.setrlimit(resource.RLIMIT_NOFILE, (limits.nofile, limits.nofile))
    if separate_uid:
        resource.setrlimit(resource.RLIMIT_NPROC, (limits.nproc, limits.nproc))


def drop_privileges(uid: int, gid: int) -> None:
    """Become ``uid``/``gid`` for good: no supplementary groups, no capabilities.

    APPSEC: order matters: groups and gid while still root, uid last.
    """
    os.setgroups([])
    os.setresgid(gid, gid, gid)
    os.setresuid(uid, uid, uid)
    if os.getuid() != uid or os.geteuid() != uid or os.getegid() != gid:
        raise SandboxError(f"could not drop privileges to {uid}:{gid}")


def harden() -> None:
    """Forbid privilege gain through exec and make the process non-dumpable.

    APPSEC: NO_NEW_PRIVS makes setuid binaries useless to the function;
    non-dumpable keeps other processes of the same uid from ptracing it or
    reading its ``/proc/<pid>/mem`` and ``environ``. Call after any uid change
    (a credential change resets dumpability).
    """
    _prctl(_PR_SET_NO_NEW_PRIVS, 1)
    _prctl(_PR_SET_DUMPABLE, 0)


def die_with_parent(parent: int) -> None:
    """Get SIGKILLed when the parent dies; exit now if it already has.

    Must be set after any uid change (a credential change clears it).
    """
    _prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)
    if os.getppid() != parent:
        os._exit(1)


def become_subreaper() -> None:
    """Adopt orphaned descendants, so they are reaped here, not left as zombies."""
    _prctl(_PR_SET_CHILD_SUBREAPER, 1)


def close_inherited_fds(keep: Iterable[int]) -> None:
    """Close every fd above 2 except ``keep``.

    APPSEC: a forked child inherits whatever its parent had open; a function
    must hold only its own socket (and the directory pins it imports through).
    """
    low = 3
    for fd in sorted(set(keep)):
        if fd >= low:
            os.closerange(low, fd)
            low = fd + 1
    os.closerange(low, resource.getrlimit(resource.RLIMIT_NOFILE)[0] + 1)


def redirect_stdio() -> None:
    """Point fds 0, 1 and 2 at ``/dev/null``.

    APPSEC: C-level writes of function code must not land in the platform's
    logs; Python-level output is captured per invocation instead.
    """
    null = os.open(os.devnull, os.O_RDWR)
    for fd in (0, 1, 2):
        os.dup2(null, fd)
    if null > 2:
        os.close(null)


class PathPins:
    """Import paths kept reachable after a uid drop, through directory fds.

    The interpreter or a release folder may sit below a directory the
    function's uid cannot traverse (e.g. a Python under ``/root``). Opening
    the directories before the drop and importing through
    ``/proc/self/fd/<n>`` keeps exactly those trees readable, and nothing
    above them. APPSEC: only ``sys.path`` entries (interpreter, platform
    packages) and the function's own release folder are pinned.
    """

    def __init__(self) -> None:
        self._fds: dict[str, int] = {}

    def pin(self, paths: Iterable[str]) -> None:
        """Open ``paths`` (existing directories only); call while still privileged."""
        for path in paths:
            if path and path not in self._fds and os.path.isdir(path):
                self._fds[path] = os.open(path, os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)

    def fds(self) -> list[int]:
        return list(self._fds.values())

    def resolve(self, path: str) -> str:
        """``path`` itself if it is reachable now, else its pinned alias."""
        fd = self._fds.get(path)
        if fd is None or os.access(path, os.R_OK | os.X_OK):
            return path
        return f"/proc/self/fd/{fd}"

    def apply(self) -> None:
        """Reroute ``sys.path`` and loaded packages through pins; call after the drop."""
        mapping = {path: alias for path in self._fds if (alias := self.resolve(path)) != path}
        for path, fd in list(self._fds.items()):
            if path not in mapping:
                os.close(fd)
                del self._fds[path]
        if not mapping:
            return
        sys.path[:] = [mapping.get(entry, entry) for entry in sys.path]
        sys.path_importer_cache.clear()
        for module in list(sys.modules.values()):
            package_path = getattr(module, "__path__", None)
            if isinstance(package_path, list):
                package_path[:] = [_reroute(entry, mapping) for entry in package_path]


def _reroute(entry: str, mapping: dict[str, str]) -> str:
    for old, new in mapping.items():
        if entry == old or entry.startswith(old + "/"):
            return new + entry[len(old) :]
    return entry


@functools.cache
def _libc() -> ctypes.CDLL:
    return ctypes.CDLL(None, use_errno=True)


def _prctl(option: int, value: int) -> None:
    if _libc().prctl(option, value, 0, 0, 0) != 0:
        errno = ctypes.get_errno()
        raise SandboxError(f"prctl({option}) failed: {os.strerror(errno)}")
