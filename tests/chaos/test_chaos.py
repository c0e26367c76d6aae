"""Chaos under load: SIGKILL every kind of process of `edge up`, one at a time.

`edge up` runs the whole platform (embedded Redis, SQLite, control plane,
runtime) while a load loop calls a Python and a JavaScript app. Each kind of
process is killed in turn: an instance, a template, a zygote, a V8 host, a
runtime worker, the embedded Redis, the runtime's gunicorn master (which
`edge up` restarts), and the control plane in the middle of a push. After each:
both apps serve again within 1 s (the master: once `edge up` has restarted it,
and the test prints how long that took), no release is lost or half-written,
and the interrupted push succeeds when retried.
"""

from __future__ import annotations

import os
import signal
import subprocess
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest
from stack import Foreground, Workdir, local_env, wait_for

from edge.config import Config
from edge.platform.store import Store

RECOVERY_S = 1.0

PY_MANIFEST = """
[functions.hello]
entry = "hello.py"
routes = ["/*"]
min_warm = 2
"""
PY = 'import os\n\ndef handle(request):\n    return {"version": "VERSION", "pid": os.getpid()}\n'
JS_MANIFEST = '[functions.hello]\nentry = "hello.js"\nroutes = ["/*"]\n'
JS = "export default { fetch() { return Response.json({ runtime: 'v8' }); } };\n"


@dataclass
class Load:
    """Requests to both apps in a loop; (time, app, ok) for every answer."""

    url: str
    hosts: dict[str, str]
    results: list[tuple[float, str, bool]] = field(default_factory=list)
    stop: threading.Event = field(default_factory=threading.Event)

    def run(self) -> None:
        with httpx.Client(timeout=5) as client:
            while not self.stop.is_set():
                for app, host in self.hosts.items():
                    try:
                        ok = client.get(self.url, headers={"Host": host}).status_code == 200
                    except httpx.HTTPError:
                        ok = False
                    self.results.append((time.monotonic(), app, ok))

    def served_since(self, moment: float) -> bool:
        """Both apps answered 200 after ``moment``."""
        return {app for t, app, ok in list(self.results) if ok and t > moment} == set(self.hosts)


@dataclass
class Platform:
    up: Foreground
    env: dict[str, str]
    config: Config
    token: str
    work: dict[str, Workdir]
    load: Load

    def remote(self, app: str) -> str:
        return f"http://x:{self.token}@127.0.0.1:{self.config.platform_port}/git/{app}.git"


def processes() -> dict[int, tuple[int, bytes]]:
    """Every process: pid -> (parent pid, command line)."""
    found = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                ppid = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
                found[int(entry.name)] = (ppid, (entry / "cmdline").read_bytes())
            except (OSError, IndexError, ValueError):
                continue
    return found


def descendants(root: int, table: dict[int, tuple[int, bytes]]) -> list[int]:
    found, todo = [], [root]
    while todo:
        parent = todo.pop()
        kids = [pid for pid, (ppid, _) in table.items() if ppid == parent]
        found.extend(kids)
        todo.extend(kids)
    return found


def find(platform: Platform, pick: Callable[[int, dict[int, tuple[int, bytes]]], bool]) -> int:
    """One live process of `edge up` that ``pick`` accepts."""

    def one() -> int | None:
        table = processes()
        mine = descendants(platform.up.proc.pid, table)
        return next((pid for pid in mine if pick(pid, table)), None)

    pid = wait_for(one, message="the process to kill")
    assert isinstance(pid, int)
    return pid


def cmd(pid: int, table: dict[int, tuple[int, bytes]]) -> bytes:
    return table.get(pid, (0, b""))[1]


def side(name: bytes) -> Callable[[int, dict[int, tuple[int, bytes]]], bool]:
    """The gunicorn master of `edge platform` / `edge runtime`."""
    return lambda pid, t: cmd(pid, t).endswith(b"edge.cli\0" + name + b"\0")


def worker_of(name: bytes) -> Callable[[int, dict[int, tuple[int, bytes]]], bool]:
    master = side(name)
    return lambda pid, t: master(t[pid][0], t)


def zygote(pid: int, t: dict[int, tuple[int, bytes]]) -> bool:
    return b"python.process.zygote" in cmd(pid, t) and b"zygote" not in cmd(t[pid][0], t)


def template(pid: int, t: dict[int, tuple[int, bytes]]) -> bool:
    return b"python.process.zygote" in cmd(pid, t) and zygote(t[pid][0], t)


def instance(pid: int, t: dict[int, tuple[int, bytes]]) -> bool:
    return b"python.process.zygote" in cmd(pid, t) and template(t[pid][0], t)


def v8_host(pid: int, t: dict[int, tuple[int, bytes]]) -> bool:
    return b"edge.runtime.js.host" in cmd(pid, t)


def redis_server(pid: int, t: dict[int, tuple[int, bytes]]) -> bool:
    return b"redis-server" in cmd(pid, t)


@pytest.fixture(scope="module")
def platform(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Platform]:
    tmp = Path(tmp_path_factory.mktemp("chaos"))
    env = local_env(tmp / "home", EDGE_DEPLOY_TIMEOUT="30")
    with Foreground(["up"], tmp, env) as up:
        up.wait_for_line("Ctrl-C stops everything", timeout=120)
        config = Config.from_env(env)
        token = (config.home / "admin.token").read_text().strip()
        apps = {"chaos-py-" + uuid.uuid4().hex[:6]: (PY_MANIFEST, "hello.py", PY)}
        apps["chaos-js-" + uuid.uuid4().hex[:6]] = (JS_MANIFEST, "hello.js", JS)
        work = {}
        for app, (manifest, entry, source) in apps.items():
            work[app] = Workdir(tmp / app)
            work[app].commit("v1", {"edge.toml": manifest, entry: source.replace("VERSION", "1")})
        load = Load(
            f"http://127.0.0.1:{config.runtime_port}/",
            {app: f"{app}.{config.domain}" for app in apps},
        )
        chaos = Platform(up, env, config, token, work, load)
        for app, workdir in work.items():
            out = workdir.push(chaos.remote(app))
            assert "v1 live at" in out.stderr, out.stderr
        thread = threading.Thread(target=load.run)
        thread.start()
        try:
            wait_for(lambda: load.served_since(0), message="the load to be served")
            yield chaos
        finally:
            load.stop.set()
            thread.join()
            print(up.output[-3000:])


def kill_and_recover(platform: Platform, pid: int, bound: float = RECOVERY_S) -> float:
    """SIGKILL ``pid``; returns the seconds until both apps answered 200 again."""
    killed = time.monotonic()
    os.kill(pid, signal.SIGKILL)
    wait_for(
        lambda: platform.load.served_since(killed),
        timeout=max(bound * 2, 60),
        interval=0.01,
        message="both apps to answer again",
    )
    per_app = [
        min(t for t, app, ok in list(platform.load.results) if ok and t > killed and app == name)
        for name in platform.load.hosts
    ]
    return max(per_app) - killed


@pytest.mark.parametrize(
    "kind",
    [
        pytest.param(instance, id="instance"),
        pytest.param(template, id="template"),
        pytest.param(zygote, id="zygote"),
        pytest.param(v8_host, id="v8-host"),
        pytest.param(worker_of(b"runtime"), id="runtime-worker"),
        pytest.param(redis_server, id="redis"),
    ],
)
def test_a_killed_process_is_replaced_within_a_second(
    platform: Platform, kind: Callable[[int, dict[int, tuple[int, bytes]]], bool]
) -> None:
    took = kill_and_recover(platform, find(platform, kind))
    print(f"served again {took * 1000:.0f} ms after the kill")
    assert took <= RECOVERY_S


def test_a_killed_runtime_master_is_restarted_by_edge_up(platform: Platform) -> None:
    master = find(platform, side(b"runtime"))
    took = kill_and_recover(platform, master, bound=30)
    print(f"runtime master SIGKILLed: serving again after {took * 1000:.0f} ms")
    assert find(platform, side(b"runtime")) != master
    platform.up.wait_for_line("the runtime is back in", timeout=30)


def test_a_push_interrupted_by_a_control_plane_kill_can_be_retried(platform: Platform) -> None:
    app = next(name for name in platform.work if name.startswith("chaos-py"))
    work = platform.work[app]
    # v2 takes 3 s to import, so the runtime's pre-warm holds the deploy open
    # and the kill lands mid-deploy, after the ref moved.
    slow = "import time\n\ntime.sleep(3)\n" + PY.replace("VERSION", "2")
    work.commit("v2", {"hello.py": slow})
    master = find(platform, side(b"platform"))
    push = subprocess.Popen(
        ["git", "push", platform.remote(app), "HEAD:main"],
        cwd=work.path,
        env=work.env,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert push.stderr is not None
    for line in push.stderr:  # kill the control plane once the deploy has begun
        if "Deploying" in line:
            break
    table = processes()
    for pid in [master, *descendants(master, table)]:
        os.kill(pid, signal.SIGKILL)
    push.communicate(timeout=60)
    wait_for(
        lambda: find(platform, side(b"platform")) != master,
        timeout=60,
        message="edge up to restart the control plane",
    )
    platform.up.wait_for_line("the platform is back in", timeout=60)
    retried = work.push(platform.remote(app))
    assert "v3 live at" in retried.stderr, retried.stderr  # v2 died with its deploy
    host = platform.load.hosts[app]
    wait_for(
        lambda: httpx.get(platform.load.url, headers={"Host": host}).json()["version"] == "2",
        message="v2 to serve",
    )
    assert_releases_whole(platform)


def assert_releases_whole(platform: Platform) -> None:
    """Every app has exactly one active production release, its files are on disk,
    and no release is stuck half-way."""
    store = Store.from_url(platform.config.database_url)
    try:
        for app in platform.work:
            releases = store.list_releases(app)
            active = [r for r in releases if r.status == "active"]
            assert len(active) == 1, [(r.version, r.status) for r in releases]
            assert (platform.config.releases_dir / app / active[0].artifact).is_dir()
            assert not [r for r in releases if r.status == "deploying"]
    finally:
        store.close()
