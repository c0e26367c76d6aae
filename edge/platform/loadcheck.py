"""Load every changed Python entry before the ref moves, in a template's sandbox.

For each function the ``update`` step starts ``python -S -P -m
edge.runtime.python.process.check`` (exec'ed with the zygote's scrubbed
environment), sends it the spec a runtime template would get (the exported
release folder, the package environment, the app's uid, memory and file
limits, the function's variables) and waits, up to a time limit, for
``ready`` or the import's own error. All checks of one push run at once.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import edge
from edge.runtime.python.client import process_imports
from edge.runtime.python.process.sandbox import Limits, zygote_env
from edge.runtime.wire import ProtocolError, recv_control, send_control

LOAD_TIMEOUT_S = 30.0
CHECK_COMMAND = (sys.executable, "-S", "-P", "-m", "edge.runtime.python.process.check")


@dataclass
class _Running:
    name: str
    proc: subprocess.Popen[bytes]
    sock: socket.socket


def check_python(
    specs: dict[str, dict[str, Any]], timeout: float = LOAD_TIMEOUT_S
) -> dict[str, str]:
    """Import each spec's entry in its sandbox; returns ``{function: error}`` for failures.

    Args:
        specs: template specs by function name (see ``TemplateSource._spec``).
        timeout: seconds the imports may take, all together.
    """
    running = [_start(name, spec) for name, spec in specs.items()]
    deadline = time.monotonic() + timeout
    failures = {}
    for check in running:
        problem = _wait(check, deadline, timeout)
        if problem:
            failures[check.name] = problem
    return failures


def template_spec(
    *,
    app: str,
    uid: int,
    name: str,
    root: Path,
    path: str,
    handler: str,
    env: dict[str, str],
    memory_mb: int,
    packages: Path | None,
    kind: str,
) -> dict[str, Any]:
    """The spec a runtime template gets for this function (limits as the runtime's)."""
    limits = Limits()
    return {
        "key": f"check:{app}:{name}",
        "app": app,
        "uid": uid,
        "name": name,
        "root": str(root),
        "path": path,
        "handler": handler or "handle",
        "env": env,
        "memory_mb": memory_mb,
        "nofile": limits.nofile,
        "nproc": limits.nproc,
        "packages": str(packages) if packages is not None else "",
        "kind": kind,
        "cgroups": [],  # the check is bounded by its rlimits and time limit
    }


def _start(name: str, spec: dict[str, Any]) -> _Running:
    ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    import_root = Path(edge.__file__).resolve().parent.parent
    try:
        # APPSEC: exec'ed like the zygote: scrubbed env, only its socket.
        proc = subprocess.Popen(
            [*CHECK_COMMAND, str(theirs.fileno())],
            pass_fds=[theirs.fileno()],
            close_fds=True,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            env=zygote_env(os.environ, import_root, process_imports()),
            cwd="/",  # no new session here: the check calls setsid() itself, as a template
        )
    finally:
        theirs.close()
    send_control(ours, {"op": "check", "spec": spec})
    return _Running(name, proc, ours)


def _wait(check: _Running, deadline: float, timeout: float) -> str:
    try:
        check.sock.settimeout(max(0.01, deadline - time.monotonic()))
        message, _fds = recv_control(check.sock)
    except TimeoutError:
        return f"importing it took longer than {timeout:g} s"
    except (ProtocolError, OSError):
        message = None
    finally:
        check.sock.close()
        _stop(check.proc)
    if isinstance(message, dict) and message.get("op") == "ready":
        return ""
    if isinstance(message, dict) and message.get("op") == "error":
        return str(message.get("message"))[:4000]
    stderr = check.proc.stderr.read().decode("utf-8", "replace")[-500:] if check.proc.stderr else ""
    return f"the load check exited with status {check.proc.returncode}: {stderr.strip()}"


def _stop(proc: subprocess.Popen[bytes]) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        if os.getpgid(proc.pid) == proc.pid:  # it reached setsid(): its group is its own
            os.killpg(proc.pid, signal.SIGKILL)
    proc.kill()
    proc.wait()
