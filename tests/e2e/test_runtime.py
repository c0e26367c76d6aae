"""The runtime, end to end: routing, hot swap under load, pools, worker and Redis faults."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import threading
import uuid
from pathlib import Path

import httpx
from stack import ROOT, Stack, Workdir, descendants, running, wait_for

from edge.redisserver import RedisServer
from edge.runtime import firewall

PID_MANIFEST = """
[functions.stable]
entry = "functions/stable.py"
routes = ["/stable"]
min_warm = 1

[functions.changing]
entry = "functions/changing.py"
routes = ["/changing", "/changing/:x"]
min_warm = 1
"""
PID_FUNCTION = "import os\n\ndef handle(request):\n    return {'pid': os.getpid(), 'v': '%s'}\n"


def app_name() -> str:
    return "rt-" + uuid.uuid4().hex[:8]


def pid_app(work: Workdir, stable: str, changing: str) -> None:
    work.commit(
        f"{stable}/{changing}",
        {
            "edge.toml": PID_MANIFEST,
            "functions/stable.py": PID_FUNCTION % stable,
            "functions/changing.py": PID_FUNCTION % changing,
        },
    )


def serving_pid_app(
    stack: Stack, tmp_path: Path, *changing: str
) -> tuple[subprocess.Popen[bytes], str]:
    """Start the stack's control plane and runtime and push a pid app once per
    ``changing`` version; returns the runtime's master and the app's host."""
    stack.start("platform")
    master = stack.start("runtime")
    app = app_name()
    work = Workdir(tmp_path / app)
    for version in changing:
        pid_app(work, "s1", version)
        work.push(stack.remote(app))
    return master, stack.host(app)


def worker_pids(master: int) -> set[int]:
    pids = set()
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            if int(stat.rsplit(")", 1)[1].split()[1]) == master:
                pids.add(int(entry.name))
    return {p for p in pids if "edge-runtime" in _cmdline(p) or "edge.cli" in _cmdline(p)}


def _cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
    except OSError:
        return ""


def test_sample_app_answers_with_params_and_env(runtime_stack: Stack, tmp_path: Path) -> None:
    work = Workdir(tmp_path / "shop")
    work.copy_from(ROOT / "sample-app")
    work.write(
        {
            "edge.toml": (ROOT / "sample-app/edge.toml")
            .read_text()
            .replace('app = "shop"', 'app = "shop-e2e"')
        }
    )
    work.commit("sample")
    out = work.push(runtime_stack.remote("shop-e2e"))
    assert "v1 live at" in out.stderr, out.stderr
    host = runtime_stack.host("shop-e2e")
    user = runtime_stack.get(host, "/api/users/42").json()
    assert user["name"] == "Arthur Dent" and user["table"] == "users"
    rest = runtime_stack.get(host, "/api/users/a/b").json()
    assert rest == {"table": "users", "path": "a/b"}
    echo = runtime_stack.call("POST", host, "/api/echo", json={"x": 1}).json()
    assert echo["json"] == {"x": 1} and echo["api_base"] == "https://api.example.com"
    assert runtime_stack.get(host, "/api/echo").status_code == 404  # POST-only route
    missing = runtime_stack.get(host, "/nope")
    assert missing.status_code == 404 and "/nope" in missing.json()["message"]
    unknown = runtime_stack.get("nothing.edge.localhost", "/")
    assert unknown.status_code == 404 and "nothing.edge.localhost" in unknown.json()["message"]
    first = runtime_stack.get(host, "/")
    assert first.headers["x-edge-cold-start"] in ("true", "false")
    assert float(first.headers["x-edge-duration-ms"]) >= 0
    assert len(first.headers["x-edge-request-id"]) >= 16


def test_redeploy_under_load_drops_nothing_and_keeps_unchanged_pools(
    runtime_stack: Stack, tmp_path: Path
) -> None:
    app = app_name()
    work = Workdir(tmp_path / app)
    pid_app(work, "s1", "c1")
    work.push(runtime_stack.remote(app))
    host = runtime_stack.host(app)

    def pids(path: str, rounds: int = 60) -> set[int]:
        seen = set()
        for _ in range(rounds):  # fresh connections spread over both workers
            resp = httpx.get(runtime_stack.runtime_url + path, headers={"Host": host})
            seen.add(resp.json()["pid"])
        return seen

    stable_before = pids("/stable")
    errors: list[str] = []
    answers: dict[str, int] = {}
    stop = threading.Event()

    def load() -> None:
        with httpx.Client(timeout=30) as client:
            while not stop.is_set():
                try:
                    resp = client.get(
                        runtime_stack.runtime_url + "/changing/1", headers={"Host": host}
                    )
                    if resp.status_code != 200:
                        errors.append(f"{resp.status_code} {resp.text[:200]}")
                    else:
                        v = resp.json()["v"]
                        answers[v] = answers.get(v, 0) + 1
                except httpx.HTTPError as exc:
                    errors.append(repr(exc))

    threads = [threading.Thread(target=load) for _ in range(4)]
    for thread in threads:
        thread.start()
    try:
        wait_for(lambda: sum(answers.values()) > 500, message="load before the deploy")
        pid_app(work, "s1", "c2")
        out = work.push(runtime_stack.remote(app))
        assert "v2 live at" in out.stderr
        before = answers.get("c2", 0)
        wait_for(lambda: answers.get("c2", 0) > before + 500, message="load after the deploy")
    finally:
        stop.set()
        for thread in threads:
            thread.join()
    assert errors == []
    assert sum(answers.values()) > 1000
    assert runtime_stack.get(host, "/changing").json()["v"] == "c2"
    assert pids("/stable") <= stable_before  # same warm instances, no new ones


def test_idle_instances_are_reaped_and_lru_pools_evicted(
    own_stack: tuple[Stack, RedisServer], tmp_path: Path
) -> None:
    stack, _ = own_stack
    stack.env.update(EDGE_IDLE_TTL="1", EDGE_MAX_WARM_POOLS="2", EDGE_RUNTIME_WORKERS="1")
    stack.start("platform")
    stack.start("runtime")
    app = app_name()
    work = Workdir(tmp_path / app)
    manifest = "".join(
        f'[functions.f{i}]\nentry = "f{i}.py"\nroutes = ["/f{i}"]\n' for i in range(3)
    )
    work.commit(
        "three",
        {
            "edge.toml": manifest,
            **{
                f"f{i}.py": "import os\ndef handle(request):\n    return {'pid': os.getpid()}\n"
                for i in range(3)
            },
        },
    )
    work.push(stack.remote(app))
    host = stack.host(app)

    first = stack.get(host, "/f0")
    assert first.headers["x-edge-cold-start"] == "true"
    warm = stack.get(host, "/f0")
    assert warm.headers["x-edge-cold-start"] == "false"
    assert warm.json()["pid"] == first.json()["pid"]
    # Past the 1 s idle TTL the instance is reaped: the next call forks a new one.
    wait_for(
        lambda: not Path(f"/proc/{first.json()['pid']}").exists(),
        timeout=10,
        message="the idle instance to be reaped",
    )
    again = stack.get(host, "/f0")
    assert again.headers["x-edge-cold-start"] == "true"
    # Three pools with room for two: the least recently used (f0) is evicted.
    stack.get(host, "/f1")
    stack.get(host, "/f2")
    f0_pid = again.json()["pid"]
    wait_for(
        lambda: not Path(f"/proc/{f0_pid}").exists(),
        timeout=10,
        message="the LRU pool to be evicted",
    )

    def eviction_logged() -> bool:
        records = stack.http.get(
            f"http://127.0.0.1:{stack.config.platform_port}/v1/apps/{app}/logs",
            headers={"Authorization": f"Bearer {stack.token}"},
        ).json()["records"]
        return any(
            "warm pool of f0 evicted" in r["message"] and r["kind"] == "platform" for r in records
        )

    wait_for(eviction_logged, timeout=10, message="the eviction in the app's logs")


def test_sigkill_of_a_worker_loses_only_that_worker(
    own_stack: tuple[Stack, RedisServer], tmp_path: Path
) -> None:
    stack, _ = own_stack
    master, host = serving_pid_app(stack, tmp_path, "c1", "c2")
    workers = worker_pids(master.pid)
    assert len(workers) == 2
    victim = sorted(workers)[0]
    os.kill(victim, signal.SIGKILL)
    failures = 0
    for _ in range(200):
        try:
            resp = httpx.get(stack.runtime_url + "/changing", headers={"Host": host})
            failures += resp.status_code != 200
        except httpx.HTTPError:
            failures += 1
    assert failures <= 1  # at most a request that was in flight on the victim
    wait_for(
        lambda: len(worker_pids(master.pid) - {victim}) == 2,
        timeout=30,
        message="gunicorn to replace the killed worker",
    )
    for _ in range(50):
        resp = httpx.get(stack.runtime_url + "/changing", headers={"Host": host})
        assert resp.json()["v"] == "c2"


def test_runtime_keeps_serving_without_redis_and_catches_up(
    own_stack: tuple[Stack, RedisServer], tmp_path: Path
) -> None:
    stack, redis = own_stack
    stack.start("platform")
    stack.start("runtime")
    app = app_name()
    work = Workdir(tmp_path / app)
    pid_app(work, "s1", "c1")
    work.push(stack.remote(app))
    host = stack.host(app)
    redis.stop()
    for _ in range(100):
        assert stack.get(host, "/changing").json()["v"] == "c1"
    redis.start()
    pid_app(work, "s1", "c2")
    out = work.push(stack.remote(app))
    assert "v2" in out.stderr
    wait_for(
        lambda: stack.get(host, "/changing").json()["v"] == "c2",
        timeout=30,
        message="the runtime to catch up after Redis returned",
    )


def test_a_deploy_is_the_whole_new_route_table(runtime_stack: Stack, tmp_path: Path) -> None:
    """A function removed from edge.toml stops answering; its pool is retired."""
    app = app_name()
    work = Workdir(tmp_path / app)
    pid_app(work, "s1", "c1")
    work.push(runtime_stack.remote(app))
    host = runtime_stack.host(app)
    gone = runtime_stack.get(host, "/changing").json()["pid"]
    work.commit(
        "drop changing",
        {
            "edge.toml": PID_MANIFEST.split("[functions.changing]", maxsplit=1)[0],
            "functions/stable.py": PID_FUNCTION % "s2",
        },
    )
    work.git("rm", "-q", "functions/changing.py")
    work.git("commit", "-q", "-m", "remove the file too")
    out = work.push(runtime_stack.remote(app))
    assert "v2 live at" in out.stderr
    missing = runtime_stack.get(host, "/changing")
    assert missing.status_code == 404 and "/changing" in missing.json()["message"]
    assert runtime_stack.get(host, "/stable").json()["v"] == "s2"
    wait_for(
        lambda: not Path(f"/proc/{gone}").exists(),
        timeout=30,
        message="the removed function's instance to be retired",
    )


def test_workers_and_function_processes_run_sched_batch(
    own_stack: tuple[Stack, RedisServer], tmp_path: Path
) -> None:
    """No process of the runtime preempts another when woken: a worker woken by a
    reply lets the instance on its CPU run on to its next queued request, and an
    instance woken by a request lets the worker finish its turn."""
    stack, _ = own_stack
    master, host = serving_pid_app(stack, tmp_path, "c1")
    assert stack.get(host, "/stable").json()["v"] == "s1"
    workers = worker_pids(master.pid)
    assert len(workers) == 2
    functions = set().union(*(descendants(worker) for worker in workers))
    assert functions, "no function processes"
    policies = {pid: os.sched_getscheduler(pid) for pid in workers | functions if running(pid)}
    assert set(policies.values()) == {os.SCHED_BATCH}, policies
    assert os.sched_getscheduler(master.pid) == os.SCHED_OTHER  # the master is not a router


def test_a_worker_that_exits_leaves_the_other_workers_functions_and_the_firewall(
    own_stack: tuple[Stack, RedisServer], tmp_path: Path
) -> None:
    """gunicorn's workers leave through the master's frames (SystemExit after the
    fork): the master's cleanup there, killing every function process of the node
    and removing the egress rules, must run in the master only."""
    stack, _ = own_stack
    master, host = serving_pid_app(stack, tmp_path, "c1")
    workers = sorted(worker_pids(master.pid))
    assert len(workers) == 2
    victim, survivor = workers
    wait_for(lambda: len(descendants(survivor)) >= 3, message="the survivor's function processes")
    theirs = descendants(survivor)
    table = firewall.table_name(stack.config, master.pid)
    guarded = os.geteuid() == 0 and shutil.which("nft") is not None
    if guarded:
        assert table in nft_tables()
    os.kill(victim, signal.SIGTERM)  # a graceful exit, as gunicorn recycles a worker
    wait_for(lambda: victim not in worker_pids(master.pid), message="the victim to exit")
    wait_for(lambda: len(worker_pids(master.pid)) == 2, timeout=30, message="a replacement worker")
    assert theirs <= descendants(survivor), "the survivor lost function processes"
    if guarded:
        assert table in nft_tables(), "the egress rules went with the worker"
    for _ in range(20):
        assert stack.get(host, "/stable").json()["v"] == "s1"


def nft_tables() -> str:
    return subprocess.run(
        ["nft", "list", "tables"], capture_output=True, text=True, check=True
    ).stdout
