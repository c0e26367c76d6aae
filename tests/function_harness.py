"""Real Python function processes for tests: folders, versions, a runner.

Function folders are sealed the way the artifact exporter seals a release
(root-owned, readable by the app's group only, no write bits) when the tests
run as root, so the sandbox's uid drop is exercised for real. Every test runs
its scenario under ``asyncio.run`` (or uvloop), closes the pools, and then
checks that no process it started is left.
"""

from __future__ import annotations

import asyncio
import os
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, TypeVar

from stack import wait_for

from edge.runtime.invocation import FunctionVersion, Invocation
from edge.runtime.python.client import Zygote
from edge.runtime.python.process.sandbox import Limits
from edge.runtime.registry import PoolRegistry
from edge.uids import function_ids

T = TypeVar("T")
AS_ROOT = os.geteuid() == 0


async def async_wait_for(
    condition: Callable[[], Any], timeout: float = 10.0, message: str = ""
) -> Any:
    """Like :func:`wait_for`, yielding to the event loop between polls."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {message or condition}")
        await asyncio.sleep(0.01)


def invocation(
    path: str = "/",
    *,
    method: str = "GET",
    query: str = "",
    headers: list[tuple[str, str]] | None = None,
    body: bytes = b"",
    params: dict[str, str] | None = None,
) -> Invocation:
    """A request as the router would hand it to a pool."""
    url = f"http://app.edge.localhost{path}" + (f"?{query}" if query else "")
    return Invocation(method, url, path, query, headers or [], body, params or {}, uuid.uuid4().hex)


def alive(pid: int) -> bool:
    """Whether ``pid`` is a running (not zombie) process."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


def processes_of(uid: int) -> list[int]:
    """Live processes running as ``uid``."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                status = (entry / "status").read_text()
            except OSError:
                continue
            uids = next(line for line in status.splitlines() if line.startswith("Uid:"))
            if int(uids.split()[1]) == uid and alive(int(entry.name)):
                found.append(int(entry.name))
    return found


def _seal(root: Path, app: str) -> None:
    """What the exporter does to a release folder (edge.platform.artifacts)."""
    if not AS_ROOT:
        return
    gid = function_ids(app)[1]
    for path in [root, *root.rglob("*")]:
        os.chown(path, 0, gid)
        path.chmod(0o550 if path.is_dir() else 0o440)


@dataclass
class Functions:
    """Writes function folders and describes them as FunctionVersions.

    Attributes:
        base: where the folders go (a pytest ``tmp_path``: not traversable by
            function uids, like a release below an ``EDGE_HOME`` in ``/root``).
        apps: every app name used, to check for leftover processes.
    """

    base: Path
    apps: set[str] = field(default_factory=set)

    def version(
        self,
        source: str,
        *,
        app: str = "tapp",
        name: str = "fn",
        handler: str = "handle",
        files: dict[str, str] | None = None,
        **overrides: Any,
    ) -> FunctionVersion:
        """A sealed folder holding ``<name>.py`` (= ``source``) and ``files``."""
        self.apps.add(app)
        root = self.base / f"{app}-{name}-{uuid.uuid4().hex[:8]}"
        for relative, text in {f"{name}.py": source, **(files or {})}.items():
            target = root / relative
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_text(text)
        _seal(root, app)
        version = FunctionVersion(
            key=uuid.uuid4().hex,
            app=app,
            environment="production",
            release=1,
            name=name,
            runtime="python",
            root=root,
            path=f"{name}.py",
            handler=handler,
            env={"GREETING": "hi"},
            memory_mb=64,
            timeout_ms=5000,
            min_warm=0,
            max_instances=4,
        )
        return replace(version, **overrides)

    def run(
        self,
        scenario: Callable[[PoolRegistry], Awaitable[T]],
        *,
        uvloop: bool = False,
        limits: Limits | None = None,
        **pools_options: Any,
    ) -> T:
        """Run ``scenario(pools)`` on a fresh zygote; then check nothing is left."""
        zygotes: list[int] = []

        async def main() -> T:
            zygote = Zygote()
            pools = PoolRegistry(zygote, limits=limits, **pools_options)
            try:
                await zygote.start()
                zygotes.append(zygote.pid or 0)
                return await scenario(pools)
            finally:
                if zygote.pid:
                    zygotes.append(zygote.pid)
                await pools.close()

        if uvloop:
            import uvloop as uv

            with asyncio.Runner(loop_factory=uv.new_event_loop) as runner:
                result = runner.run(main())
        else:
            result = asyncio.run(main())
        self.assert_no_leftovers(zygotes)
        return result

    def assert_no_leftovers(self, pids: list[int]) -> None:
        """No zygote, template, instance or descendant of ours is still running."""
        wait_for(
            lambda: not any(alive(pid) for pid in pids), timeout=5, message="the zygote to exit"
        )
        if AS_ROOT:
            for app in self.apps:
                uid = function_ids(app)[0]
                wait_for(
                    lambda uid=uid: not processes_of(uid),
                    timeout=5,
                    message=f"the processes of app uid {uid} to exit",
                )
